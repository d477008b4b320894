"""What the scheduler model schedules: tasks and CPUs (the kernel's ``task_struct`` and per-CPU
state, as far as :mod:`~arch_sim.models.scheduler` and its policies read and write them).

A :class:`Task` carries its state (new, running, runnable, blocked, exited), the CPU it holds
or last held (cache warmth), the scheduler time it owes before its next burst, and each
policy's bookkeeping (EEVDF's virtual runtime and deadline, goodness()'s tick counter).  A
:class:`Cpu` carries who runs on it, who ran last, when it is free, and how long it has idled
(its caches go cold meanwhile).  Neither does anything by itself: the scheduler moves them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import simpy

US = 1e-6
#: what a task ``yield from``s: a generator of SimPy events, or a plain iterable of them (none,
#: or one timeout) where no generator is needed
Steps = Iterable[simpy.Event]


class Task:
    """A schedulable thread of control.

    ``counted`` tasks belong to the server: their switches are its reschedules.  ``pin`` ties a
    task to one CPU (the state-group worker is "one thread per CPU").  A task that is not
    ``preemptible`` (a kernel thread in Linux 2.2/2.4) keeps its CPU until it blocks.
    """

    __slots__ = ("name", "code", "refill", "idles_seen", "counted", "pin", "cpu", "last_cpu",
                 "lead", "used", "event", "state", "v", "vkey", "vstart", "deadline", "vlag",
                 "queued", "delayed", "counter", "preemptible", "mm", "on_dispatch", "warm")

    def __init__(self, name: str, counted: bool = True, pin: Cpu | None = None,
                 code: str | None = None, refill: float = 0.0, preemptible: bool = True,
                 mm: object = None) -> None:
        self.name = name
        self.preemptible = preemptible
        # its address space, if it has one of its own (a process): a switch into it from a
        # task of another address space pays SchedulerParams.mm_switch_us (None: a thread of
        # the server's one process, or a kernel thread - nothing to switch)
        self.mm = mm
        # the code it runs: tasks with the same code share cache lines (default: the name up
        # to its first "/", so "pool/3" and "pool/7" share "pool")
        self.code = code if code is not None else name.split("/", 1)[0]
        self.refill = refill  # CPU (s) to bring its code back into cold caches after an idle
        # its code's warm CPU a request (s): with it, a refill is the code's own debt, paid
        # over one run through the code (0: the CPU's shared debt, at cold_slowdown)
        self.warm = 0.0
        self.idles_seen = -1  # the CPU's idle count when it last checked for cold caches
        self.counted = counted
        self.pin = pin
        self.cpu: Cpu | None = None  # the CPU it holds, if running
        self.last_cpu: Cpu | None = None
        self.lead = 0.0  # scheduler time to pay before its next burst starts
        self.used = 0.0  # CPU used since it was last dispatched (for the time slice)
        self.event: simpy.Event | None = None  # fires when it is dispatched
        self.state = "new"  # new | running | runnable | blocked | exited
        # policy bookkeeping: EEVDF's virtual time; goodness()'s ticks left
        self.v = 0.0  # virtual runtime: CPU time received
        self.vkey = 0  # v as the EEVDF run queue's integer sum holds it, while queued
        self.vstart = 0.0  # when it started running (v grows from then on; ticks counted)
        self.deadline = 0.0  # virtual deadline
        self.vlag = 0.0  # lag kept while asleep
        self.queued = False  # counts in the run queue's average (running, runnable or delayed)
        self.delayed = False  # asleep but still queued, owing time (DELAY_DEQUEUE)
        self.counter = 0  # Linux 2.2/2.4: timer ticks left in its slice
        # called with the wake-up event instead of resuming the task's generator when it is
        # next dispatched (see Scheduler.block), then cleared
        self.on_dispatch: Any = None

    def __repr__(self) -> str:
        return f"<Task {self.name} {self.state}>"


class Cpu:
    """One processor: who runs on it, who ran last (cache warmth), when it is free."""

    __slots__ = ("index", "current", "last", "free_at", "need_resched", "burst_end", "burst",
                 "idle_since", "idle_total", "idles", "warm", "extra_cost", "mm", "debt",
                 "refills", "debts")

    def __init__(self, index: int) -> None:
        self.index = index
        self.current: Task | None = None
        self.last: Task | None = None
        self.free_at = 0.0  # end of the switch into the idle task
        self.need_resched = False
        self.burst_end = 0.0  # when the current burst of work ends
        self.burst = 0.0  # its length (without the scheduler time before it)
        self.idle_since = 0.0  # when it last went idle
        self.idle_total = 0.0  # idle time so far (its caches go cold while it idles)
        self.idles = 0  # idle periods so far
        self.warm: dict[str, float] = {}  # code -> idle_total when it last ran here
        self.extra_cost = 0.0  # policy work charged to the next schedule() (2.2's recalc)
        self.mm: object = None  # the address space its page tables hold (kept across idle)
        self.debt = 0.0  # refill still to pay, with SchedulerParams.cold_slowdown (s)
        self.refills: dict[str, float] = {}  # code -> its whole refill (s): the debt's cap
        # code -> (refill still to pay, s; what a second of the code's warm work pays of it)
        self.debts: dict[str, tuple[float, float]] = {}
