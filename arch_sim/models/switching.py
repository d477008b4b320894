"""The kernel's side of the scheduler model: a wake-up (``try_to_wake_up()``), a CPU switching
tasks (``schedule()``, ``context_switch()``) and what each costs.

:class:`~arch_sim.models.scheduler.Scheduler` is built on :class:`Switching`: the scheduler's
module holds what a task does (compute, block, wake someone, exit), this one what the kernel
does in response, on the state the scheduler owns (its CPUs, run queue, idle list, policy and
counters).  The costs are the scheduler module's: see its docstring.
"""

from __future__ import annotations

import math
from heapq import heappush
from typing import TYPE_CHECKING, Any

import simpy
from simpy.events import NORMAL

from arch_sim.models.clock import Call
from arch_sim.models.tasks import Cpu, Task

if TYPE_CHECKING:
    from collections import deque

    from arch_sim.models.policies import Policy


def refill_shares(work: dict[Any, float], path: tuple[Any, ...] | None = None
                  ) -> dict[Any, float]:
    """Each code's share of a server's cache refill after an idle CPU: its warm CPU a request
    (``work``: code -> us) over the request path's (the codes in ``path``; default all).  A
    code's refill is what its first run after the idle misses in the caches, so it grows with
    the code and data that run - a dispatcher's few microseconds of hand-off miss little, a
    pool thread's parse, send and log much.  A code off the path (a staged server's accept
    stage, which a keep-alive request does not run) is sized against the path all the same."""
    total = sum(work[code] for code in (path if path is not None else work))
    if total <= 0.0:
        return dict.fromkeys(work, 1.0)
    return {code: us / total for code, us in work.items()}


class Switching:
    """Wake-ups and context switches; a base of :class:`~arch_sim.models.scheduler.Scheduler`,
    whose ``__init__`` sets the state used here."""

    env: simpy.Environment
    policy: Policy
    cpus: list[Cpu]
    idle: deque[Cpu]
    runqueue: deque[Task]
    any_pinned: bool
    observer: Any
    voluntary: int
    involuntary: int
    switches: int
    sched_time: float
    busy_time: float
    _switch: float
    _per_runnable: float
    _refill: float
    _wake_latency: float
    _cold_decay: float
    _slowdown: float
    _mm_switch: float

    def _make_runnable(self, task: Task, event: simpy.Event | None = None,
                       initial: bool = False, waker: Task | None = None) -> simpy.Event:
        if event is None:
            event = self.env.event()
        task.event = event
        task.state = "runnable"
        policy = self.policy
        policy.enqueue(task, initial)
        cpu = policy.wake_cpu(task, waker)
        if cpu is not None:
            self._dispatch(cpu, task, True)
            return event
        self.runqueue.append(task)
        victim = policy.wake_victim(task, waker)
        if victim is not None:
            victim.need_resched = True
        return event

    def idle_cpu_for(self, task: Task) -> Cpu | None:
        """An idle CPU the task may run on - its last one if that is idle - taken off the
        idle list; None if there is none."""
        if not self.idle:
            return None
        if task.pin is not None:
            if task.pin.current is None and task.pin in self.idle:
                self.idle.remove(task.pin)
                return task.pin
            return None
        last = task.last_cpu
        if last is not None and last.current is None and last in self.idle:
            self.idle.remove(last)  # wake where its cache is
            return last
        return self.idle.popleft()

    def someone_waits(self, cpu: Cpu) -> bool:
        """A runnable task other than the running one that ``cpu`` may run."""
        if not self.any_pinned:
            return bool(self.runqueue)
        return any(t.pin is None or t.pin is cpu for t in self.runqueue)

    def _preempt(self, task: Task, why: str) -> simpy.Event:
        event = self.env.event()
        task.event = event
        task.state = "runnable"
        self._switch_out(task, voluntary=False, requeue=True, why=why)
        return event

    def _switch_out(self, task: Task, voluntary: bool, requeue: bool = False,
                    why: str = "") -> None:
        cpu = task.cpu
        now = self.env._now
        policy = self.policy
        policy.switched_out(task, requeue)
        lead = task.lead
        if self.observer is not None:  # the CPU is busy with the task's owed work until then
            self.observer.switched_out(cpu, task, now + lead, why or task.state)
        if lead > 0.0:  # switched in, then out again before computing anything
            cpu.free_at = now + lead
            task.lead = 0.0
        task.cpu = None
        task.last_cpu = cpu
        cpu.current = None
        cpu.last = task
        cpu.need_resched = False
        if task.counted:
            if voluntary:
                self.voluntary += 1
            else:
                self.involuntary += 1
        if requeue:
            self.runqueue.append(task)
        nxt = policy.pick(cpu)
        if nxt is not None:
            self._dispatch(cpu, nxt, False)
        else:  # switch to the idle task
            self.switches += 1
            start = now if now >= cpu.free_at else cpu.free_at
            if self.observer is not None:
                self.observer.switched_in(cpu, None, start, cpu.extra_cost + self._switch)
            start += cpu.extra_cost
            cpu.extra_cost = 0.0
            cpu.free_at = start + self._switch
            cpu.idle_since = cpu.free_at
            self.sched_time += self._switch
            self.busy_time += self._switch
            self.idle.append(cpu)

    def _dispatch(self, cpu: Cpu, task: Task, from_idle: bool) -> None:
        """``schedule()`` on ``cpu`` picked ``task``: charge its cost, then let it run."""
        env = self.env
        now = env._now
        cost = self._switch + self._per_runnable * (len(self.runqueue) + 1) + cpu.extra_cost
        cpu.extra_cost = 0.0
        if cpu.last is not task:
            cost += self._refill
        mm = task.mm
        if mm is not None and mm is not cpu.mm:  # switch_mm(): another process
            cost += self._mm_switch
            cpu.mm = mm
        free_at = cpu.free_at
        if from_idle:  # its caches went cold meanwhile
            start = now + self._wake_latency
            if free_at > start:  # (max(), written out: a hot path)
                start = free_at
            idle = start - cpu.idle_since
            if idle > 0.0:
                cpu.idle_total += idle
            cpu.idles += 1
        else:
            start = free_at if free_at > now else now
        self.switches += 1
        self.sched_time += cost
        self.busy_time += cost
        task.lead = (start - now) + cost
        if self.observer is not None:
            self.observer.switched_in(cpu, task, start, cost)
        task.used = 0.0
        task.vstart = start
        task.cpu = cpu
        task.state = "running"
        cpu.current = task
        event = task.event
        task.event = None
        hook = task.on_dispatch
        if hook is not None:  # a call in the event's place, under the key it would get
            task.on_dispatch = None
            heappush(env._queue, (now, NORMAL, next(env._eid), Call(hook, (event,))))
        else:  # event.succeed(), written out: env.schedule() pushes the same key
            event._ok = True
            event._value = None
            heappush(env._queue, (now, NORMAL, next(env._eid), event))

    def cold_start(self, task: Task) -> float:
        """The cache refill ``task``'s next burst would pay (0 with warm caches), taken now: a
        model that spreads the refill over its own work rather than ahead of it (a
        state-group pass) takes it here, and its burst pays nothing more for it."""
        cpu = task.cpu
        if cpu is None or not task.refill or task.idles_seen == cpu.idles:
            return 0.0
        return self._cold_start(task, cpu, lump=True)

    def _cold_start(self, task: Task, cpu: Cpu, lump: bool = False) -> float:
        """The cache refill ``task`` pays now: its code went cold while ``cpu`` idled since a
        task running that code last ran here (the first run on a CPU pays it whole).  With a
        slowdown (``cold_slowdown``) and not ``lump``, it becomes the CPU's debt instead (at
        most every code's whole refill: caches no colder than empty) - or its code's own debt,
        at most the code's whole refill, if the task's ``warm`` is known - and 0 is paid now."""
        task.idles_seen = cpu.idles
        idle = cpu.idle_total - cpu.warm.get(task.code, -math.inf)
        if idle <= 0.0:
            return 0.0
        cpu.warm[task.code] = cpu.idle_total
        refill = -task.refill * math.expm1(-idle / self._cold_decay)
        if lump or not self._slowdown:
            return refill
        if task.warm > 0.0:  # the code's own debt, paid off over one run through the code
            owed = cpu.debts.get(task.code, (0.0, 0.0))[0]
            owed = min(owed + refill, task.refill)
            cpu.debts[task.code] = (owed, owed / task.warm)
            return 0.0
        cpu.refills[task.code] = task.refill
        cpu.debt = min(cpu.debt + refill, sum(cpu.refills.values()))
        return 0.0

    def _cold_extra(self, task: Task, cpu: Cpu, seconds: float) -> float:
        """What a burst of ``seconds`` by ``task`` (which has a refill) costs on top, its caches
        cold: the refill at its first burst after an idle (as a lump), and its share of the
        CPU's debt (as a slowdown) - or, for a task whose code's warm CPU is known
        (``Task.warm``), its share of its code's own debt, paid off over one run through the
        code."""
        extra = self._cold_start(task, cpu) if task.idles_seen != cpu.idles else 0.0
        if task.warm > 0.0:
            owed, rate = cpu.debts.get(task.code, (0.0, 0.0))
            if owed > 0.0:
                pay = min(rate * seconds, owed)
                cpu.debts[task.code] = (owed - pay, rate)
                extra += pay
            return extra
        if cpu.debt:
            extra += self._pay_debt(cpu, seconds + extra)
        return extra

    def _pay_debt(self, cpu: Cpu, seconds: float) -> float:
        """The refill a burst of ``seconds`` of warm work pays off the CPU's debt: ``K`` times
        its length, at most the debt (its extra CPU)."""
        extra = self._slowdown * seconds
        if extra >= cpu.debt:
            extra, cpu.debt = cpu.debt, 0.0
        else:
            cpu.debt -= extra
        return extra
