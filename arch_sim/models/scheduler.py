"""The kernel scheduler as a cost: CPUs, one run queue, and a price for every reschedule.

A *task* (a kHTTPd thread, a request thread, the acceptor) computes, blocks and is woken.
Each time a CPU switches tasks it runs ``schedule()``, which costs

    switch_us                          direct switch: save/restore, address space
  + per_runnable_us * runnable tasks   Linux 2.2: goodness() over the whole run queue
  + cache refill                       the incoming task's working set, unless it was the
                                       last task on this CPU (its cache is still warm)

That time is CPU time nobody's request gets: it is charged to ``sched_time`` and
``sched_overhead_frac`` is its share of all CPU time.

Every switch of a *counted* task (the server's own) is a reschedule:

* voluntary   - the task blocked (waiting for a connection, for data, for buffer space,
                a state-group worker with nothing to do) or exited;
* involuntary - it was preempted: its time slice ran out while others waited (timer tick),
                or a woken task asked for its CPU (wake-up preemption).

As in the 2.2 and 2.4 kernels, kernel code is not preemptible: a preemption request only
takes effect when the running task next reaches a checkpoint (the start of its next burst of
work).  That is also what keeps the model cheap: a burst of CPU work is a single SimPy timeout.

Two policies pick the next task (``SchedulerParams.policy``):

* ``fifo`` - one FIFO run queue: Linux 2.2 and the O(1) scheduler with equal priorities.  A
  wake-up onto a busy machine preempts someone (if ``wakeup_preempt``) and a task that used its
  time slice is preempted when others wait.
* ``eevdf`` - Linux >= 6.6.  Every task has a virtual runtime ``v`` (CPU time received) and a
  virtual deadline ``v + slice``; the average ``V`` of the queued tasks' ``v`` is the fair
  share.  A task's *lag* ``V - v`` is what it is owed: it is *eligible* when the lag is not
  negative, and the eligible task with the earliest deadline runs.  A sleeping task keeps its
  lag and is placed back at ``V - lag`` when woken; a task that goes to sleep owing time
  (negative lag) stays queued, not runnable, until it is eligible again, and then leaves with
  lag 0 (DELAY_DEQUEUE, DELAY_ZERO).  A woken task preempts the running one only if the running
  one is no longer eligible and the woken one is the eligible task with the earliest deadline
  (RUN_TO_PARITY protects an eligible running task until its deadline).  So whether a wake-up
  preempts depends on history: a thread that waited in the run queue while others ran wakes
  up owed time and takes the CPU from its waker at once; one that ran its fill does not.
  (kernel/sched/fair.c: place_entity, pick_eevdf, check_preempt_wakeup_fair, dequeue_entity.)
  The model keeps one run queue for all CPUs, so it is exact for one CPU and an approximation
  for several (Linux has one queue per CPU).

With ``cpu_time_cv`` > 0 every burst of work takes its nominal time times a random factor (mean
1): the same code does not always cost the same, and EEVDF's decisions turn on such details.

A CPU's caches go cold while it idles: the first burst a task runs after an idle pays its code's
refill (``Task.refill``) times ``1 - exp(-idle / cold_decay_ms)`` extra, unless a task running
the same code (``Task.code``) already paid since.  So the first thread of a busy period
runs slower than the ones after it - which decides who leaves that period owed time (lag), and
so whose next wake-up preempts its waker.

A task uses the scheduler in three ways::

    yield from sched.run(task, seconds)   # compute (on a CPU; may be preempted before)
    yield sched.block(task)               # sleep until someone calls sched.wake(task)
    sched.wake(task)                      # make a blocked task runnable
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Generator
from typing import Any

import simpy

from arch_sim.models.params import SchedulerParams

US = 1e-6


class Task:
    """A schedulable thread of control.

    ``counted`` tasks belong to the server: their switches are its reschedules.  ``pin`` ties a
    task to one CPU (the state-group worker is "one thread per CPU").
    """

    __slots__ = ("name", "code", "refill", "idles_seen", "counted", "pin", "cpu", "last_cpu",
                 "lead", "used", "event", "state", "v", "vstart", "deadline", "vlag", "queued",
                 "delayed")

    def __init__(self, name: str, counted: bool = True, pin: Cpu | None = None,
                 code: str | None = None, refill: float = 0.0) -> None:
        self.name = name
        # the code it runs: tasks with the same code share cache lines (default: the name up
        # to its first "/", so "pool/3" and "pool/7" share "pool")
        self.code = code if code is not None else name.split("/", 1)[0]
        self.refill = refill  # CPU (s) to bring its code back into cold caches after an idle
        self.idles_seen = -1  # the CPU's idle count when it last checked for cold caches
        self.counted = counted
        self.pin = pin
        self.cpu: Cpu | None = None  # the CPU it holds, if running
        self.last_cpu: Cpu | None = None
        self.lead = 0.0  # scheduler time to pay before its next burst starts
        self.used = 0.0  # CPU used since it was last dispatched (for the time slice)
        self.event: simpy.Event | None = None  # fires when it is dispatched
        self.state = "new"  # new | running | runnable | blocked | exited
        # EEVDF bookkeeping (unused by the fifo policy)
        self.v = 0.0  # virtual runtime: CPU time received
        self.vstart = 0.0  # when it started running (v grows from then on)
        self.deadline = 0.0  # virtual deadline
        self.vlag = 0.0  # lag kept while asleep
        self.queued = False  # counts in the run queue's average (running, runnable or delayed)
        self.delayed = False  # asleep but still queued, owing time (DELAY_DEQUEUE)

    def __repr__(self) -> str:
        return f"<Task {self.name} {self.state}>"


class Cpu:
    """One processor: who runs on it, who ran last (cache warmth), when it is free."""

    __slots__ = ("index", "current", "last", "free_at", "need_resched", "burst_end", "burst",
                 "idle_since", "idle_total", "idles", "warm")

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


class Scheduler:
    """CPUs sharing one run queue (Linux 2.2 had a single global run queue)."""

    def __init__(self, env: simpy.Environment, cpus: int, params: SchedulerParams,
                 rng: random.Random | None = None) -> None:
        if cpus < 1:
            raise ValueError("need at least one CPU")
        self.env = env
        self.rng = rng or random.Random(0)
        cv = params.cpu_time_cv
        self._jitter = math.sqrt(math.log1p(cv * cv)) if cv > 0 else 0.0
        self.params = params
        self.cpus = [Cpu(i) for i in range(cpus)]
        self.idle: deque[Cpu] = deque(self.cpus)
        self.runqueue: deque[Task] = deque()
        self.any_pinned = False
        self._switch = params.switch_us * US
        self._per_runnable = params.per_runnable_us * US
        self._refill = params.cache_refill_us * US
        self._slice = params.timeslice_ms * 1e-3
        self._wake_latency = params.wakeup_latency_us * US
        self._cold_decay = max(params.cold_decay_ms * 1e-3, 1e-12)
        self.eevdf = params.policy == "eevdf"
        if self.eevdf:
            # lag is clamped to what a task could be owed over two slices (or one tick)
            self._lag_limit = max(2 * self._slice, 1.0 / params.hz)
            self.queue: list[Task] = []  # every queued task (running, runnable, delayed)
            self.zero_v = 0.0  # where a task woken onto an empty run queue starts
        # what the measurement window reads
        self.voluntary = 0
        self.involuntary = 0
        self.switches = 0  # every schedule() that switched, counted or not
        self.sched_time = 0.0
        self.busy_time = 0.0

    # -- what a task does ------------------------------------------------------------------

    def start(self, task: Task) -> simpy.Event:
        """A new task becomes runnable; the returned event fires when it first runs."""
        if task.pin is not None:
            self.any_pinned = True
        return self._make_runnable(task)

    def run(self, task: Task, seconds: float) -> Generator[simpy.Event, Any, None]:
        """Use ``seconds`` of CPU.  A pending preemption takes effect first (a checkpoint)."""
        cpu = task.cpu
        if self.eevdf:
            # (the slice test inlined for the common case: a running task short of its deadline)
            if cpu.need_resched or (
                task.v + max(0.0, self.env.now - task.vstart) >= task.deadline
                and self._slice_used(task)
            ):
                cpu.need_resched = False
                best = self._eevdf_pick(cpu, include_running=True)
                if best is not None and best is not task:
                    yield self._preempt(task)
        elif cpu.need_resched or task.used >= self._slice:
            cpu.need_resched = False
            if self._someone_waits(cpu):
                yield self._preempt(task)
            else:  # nobody else wants this CPU: schedule() would pick us again
                task.used = 0.0
        if self._jitter and seconds > 0.0:  # the same work does not always take as long
            sigma = self._jitter
            seconds *= self.rng.lognormvariate(-0.5 * sigma * sigma, sigma)
        if task.refill and task.idles_seen != cpu.idles:
            seconds += self._cold_start(task, cpu)
        dt = task.lead + seconds
        if dt > 0.0:
            task.lead = 0.0
            task.used += seconds
            self.busy_time += seconds
            cpu.burst_end = self.env.now + dt
            cpu.burst = seconds
            yield self.env.timeout(dt)

    def block(self, task: Task, after: float = 0.0) -> simpy.Event:
        """Give up the CPU until :meth:`wake`; the event fires once the task runs again.

        ``after`` seconds of work still to do before blocking are charged to this CPU without
        a SimPy event of their own: the CPU is busy with them before it runs anyone else.
        """
        if after > 0.0:
            cpu = task.cpu
            if task.refill and task.idles_seen != cpu.idles:
                after += self._cold_start(task, cpu)
            cpu.burst_end = self.env.now + task.lead + after
            cpu.burst = after
            task.lead += after
            task.used += after
            self.busy_time += after
        event = self.env.event()
        task.event = event
        task.state = "blocked"
        self._switch_out(task, voluntary=True)
        return event

    def wake(self, task: Task) -> bool:
        """Make a blocked task runnable (False if it was not blocked)."""
        if task.state != "blocked":
            return False
        self._make_runnable(task, task.event)
        return True

    def exit(self, task: Task) -> None:
        """The task ends; its last switch counts as voluntary (Linux's do_exit -> schedule)."""
        task.state = "exited"
        self._switch_out(task, voluntary=True)

    def checkpoint(self, task: Task) -> Generator[simpy.Event, Any, None]:
        """A point where a pending preemption takes effect (e.g. the return from the system
        call that woke someone)."""
        yield from self.run(task, 0.0)

    # -- the kernel's side -----------------------------------------------------------------

    def _make_runnable(self, task: Task, event: simpy.Event | None = None) -> simpy.Event:
        if event is None:
            event = self.env.event()
        task.event = event
        task.state = "runnable"
        if self.eevdf:
            self._enqueue(task)
        cpu = self._idle_cpu_for(task)
        if cpu is not None:
            self._dispatch(cpu, task, from_idle=True)
            return event
        self.runqueue.append(task)
        if self.eevdf:
            victim = self._eevdf_victim(task)
            if victim is not None:
                victim.need_resched = True
        elif self.params.wakeup_preempt:
            victim = self._victim_for(task)
            if victim is not None:
                victim.need_resched = True
        return event

    def _idle_cpu_for(self, task: Task) -> Cpu | None:
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

    def _victim_for(self, task: Task) -> Cpu | None:
        if task.pin is not None:
            cpu = task.pin
            return cpu if cpu.current is not None and not cpu.need_resched else None
        last = task.last_cpu
        if last is not None and last.current is not None and not last.need_resched:
            return last
        for cpu in self.cpus:
            if cpu.current is not None and not cpu.need_resched:
                return cpu
        return None

    def _someone_waits(self, cpu: Cpu) -> bool:
        if not self.any_pinned:
            return bool(self.runqueue)
        return any(t.pin is None or t.pin is cpu for t in self.runqueue)

    def _preempt(self, task: Task) -> simpy.Event:
        event = self.env.event()
        task.event = event
        task.state = "runnable"
        self._switch_out(task, voluntary=False, requeue=True)
        return event

    def _switch_out(self, task: Task, voluntary: bool, requeue: bool = False) -> None:
        cpu = task.cpu
        now = self.env.now
        if self.eevdf:  # charge its CPU time (including work still owed) to its v
            self._account(task, now + task.lead)
            if not requeue:
                self._dequeue(task)
        if task.lead > 0.0:  # switched in, then out again before computing anything
            cpu.free_at = now + task.lead
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
        nxt = self._pick(cpu)
        if nxt is not None:
            self._dispatch(cpu, nxt, from_idle=False)
        else:  # switch to the idle task
            self.switches += 1
            start = max(now, cpu.free_at)
            cpu.free_at = start + self._switch
            cpu.idle_since = cpu.free_at
            self.sched_time += self._switch
            self.busy_time += self._switch
            self.idle.append(cpu)

    def _pick(self, cpu: Cpu) -> Task | None:
        queue = self.runqueue
        if self.eevdf:
            return self._eevdf_take(cpu)
        if not queue:
            return None
        if not self.any_pinned:
            return queue.popleft()
        for i, t in enumerate(queue):
            if t.pin is None or t.pin is cpu:
                del queue[i]
                return t
        return None

    def _dispatch(self, cpu: Cpu, task: Task, from_idle: bool) -> None:
        """``schedule()`` on ``cpu`` picked ``task``: charge its cost, then let it run."""
        now = self.env.now
        cost = self._switch + self._per_runnable * (len(self.runqueue) + 1)
        if cpu.last is not task:
            cost += self._refill
        start = max(now + self._wake_latency if from_idle else now, cpu.free_at)
        if from_idle:  # its caches went cold meanwhile
            cpu.idle_total += max(0.0, start - cpu.idle_since)
            cpu.idles += 1
        self.switches += 1
        self.sched_time += cost
        self.busy_time += cost
        task.lead = (start - now) + cost
        task.used = 0.0
        task.vstart = start
        task.cpu = cpu
        task.state = "running"
        cpu.current = task
        event = task.event
        task.event = None
        event.succeed()

    def _cold_start(self, task: Task, cpu: Cpu) -> float:
        """The cache refill ``task`` pays now: its code went cold while ``cpu`` idled since a
        task running that code last ran here (the first run on a CPU pays it whole)."""
        task.idles_seen = cpu.idles
        idle = cpu.idle_total - cpu.warm.get(task.code, -math.inf)
        if idle <= 0.0:
            return 0.0
        cpu.warm[task.code] = cpu.idle_total
        return -task.refill * math.expm1(-idle / self._cold_decay)

    # -- EEVDF ------------------------------------------------------------------------------

    def _v(self, task: Task) -> float:
        """A task's virtual runtime now (a running task's grows with the time it has run)."""
        if task.cpu is not None:
            return task.v + max(0.0, self.env.now - task.vstart)
        return task.v

    def _account(self, task: Task, until: float) -> None:
        task.v += max(0.0, until - task.vstart)
        task.vstart = until

    def _avg_v(self) -> float:
        """V: the average virtual runtime of the queued tasks (the fair share so far)."""
        queue = self.queue
        if not queue:
            return self.zero_v
        now, total = self.env.now, 0.0  # (the sum of _v over the queue, inlined: a hot path)
        for t in queue:
            total += t.v + max(0.0, now - t.vstart) if t.cpu is not None else t.v
        return total / len(queue)

    def _enqueue(self, task: Task) -> None:
        """place_entity(): a woken task rejoins at V minus the lag it kept while asleep."""
        if task.queued:  # asleep but still queued (delayed): it simply becomes runnable
            task.delayed = False
            v_avg = self._avg_v()
            if task.v < v_avg:  # DELAY_ZERO: owed time is forgiven, it starts afresh at V
                task.v = v_avg
                task.deadline = task.v + self._slice
            return
        n = len(self.queue)
        if n:
            # the kept lag is scaled up by (n + 1) / n so that adding the task does not
            # move V (kernel/sched/fair.c place_entity)
            task.v = self._avg_v() - task.vlag * (n + 1) / n
        else:
            task.v = self.zero_v
        task.deadline = task.v + self._slice
        task.queued = True
        self.queue.append(task)

    def _dequeue(self, task: Task) -> None:
        """A task goes to sleep (or exits): it keeps its lag, or stays queued if it owes."""
        if not task.queued:
            return
        lag = self._avg_v() - task.v
        if lag < 0.0 and task.state == "blocked":  # owes time: DELAY_DEQUEUE
            task.delayed = True
            return
        self._remove(task, min(lag, self._lag_limit))

    def _remove(self, task: Task, lag: float) -> None:
        task.vlag = max(-self._lag_limit, lag)
        task.queued = False
        task.delayed = False
        self.queue.remove(task)
        if not self.queue:
            self.zero_v = task.v

    def _slice_used(self, task: Task) -> bool:
        """update_deadline(): a task that used its slice gets the next deadline."""
        v = self._v(task)
        if v < task.deadline:
            return False
        task.deadline = v + self._slice
        return True

    def _eevdf_pick(self, cpu: Cpu, include_running: bool) -> Task | None:
        """pick_eevdf(): the eligible queued task with the earliest virtual deadline.

        Candidates: runnable tasks ``cpu`` may run, delayed sleepers and, if
        ``include_running``, the task running on ``cpu``.
        """
        limit = self._avg_v() + 1e-12  # eligible: v <= V
        best = None
        for t in self.queue:
            if t.cpu is not None:
                if not include_running or t.cpu is not cpu:
                    continue
                if self._v(t) > limit:
                    continue
            elif t.state == "runnable" and t.pin is not None and t.pin is not cpu:
                continue
            elif t.v > limit:  # not eligible (not running: its v is current)
                continue
            if best is None or t.deadline < best.deadline:
                best = t
        return best

    def _eevdf_take(self, cpu: Cpu) -> Task | None:
        """schedule() on a CPU whose task stopped: the next task, or None (the CPU idles).

        A delayed sleeper that comes out on top leaves the queue for good (lag 0) and the
        pick is repeated; a CPU that idles with nobody else queued settles all their debts.
        """
        while True:
            t = self._eevdf_pick(cpu, include_running=False)
            if t is not None and t.delayed:
                self._remove(t, 0.0)
                continue
            if t is None:  # nobody eligible that this CPU may run
                runnable = [r for r in self.runqueue if r.pin is None or r.pin is cpu]
                if not runnable:
                    if not any(q.cpu is not None or q.state == "runnable" for q in self.queue):
                        for q in list(self.queue):
                            self._remove(q, 0.0)
                    return None
                t = min(runnable, key=lambda r: r.deadline)
            self.runqueue.remove(t)
            return t

    def _eevdf_victim(self, woken: Task) -> Cpu | None:
        """check_preempt_wakeup_fair(): the CPU whose task the woken one preempts, if any."""
        cpus = [woken.pin] if woken.pin is not None else self.cpus
        for cpu in cpus:
            curr = cpu.current
            if curr is None or cpu.need_resched:
                continue
            if self._v(curr) <= self._avg_v() + 1e-12 and self._v(curr) < curr.deadline:
                continue  # RUN_TO_PARITY: an eligible task runs on to its deadline
            if self._eevdf_pick(cpu, include_running=True) is woken:
                return cpu
        return None

    # -- what the measurement reads ---------------------------------------------------------

    def counters(self) -> dict[str, float]:
        """A snapshot of the cumulative counters (the window subtracts two snapshots).

        Work is charged when a burst starts; the part of a burst still in the future is taken
        off again, so a long burst across the window's edge is split correctly.
        """
        now = self.env.now
        ahead = sum(min(c.burst, c.burst_end - now) for c in self.cpus if c.burst_end > now)
        return {
            "voluntary": self.voluntary,
            "involuntary": self.involuntary,
            "switches": self.switches,
            "sched_time": self.sched_time,
            "busy_time": self.busy_time - ahead,
        }
