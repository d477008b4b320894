"""Linux >= 6.6's EEVDF scheduler as a policy (kernel/sched/fair.c); the hooks are described in
:mod:`arch_sim.models.policies`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from math import ldexp
from typing import TYPE_CHECKING, Any

from arch_sim.models.policies import Policy

if TYPE_CHECKING:
    from arch_sim.models.scheduler import Cpu, Scheduler, Task


@dataclass(frozen=True)
class WakeCheck:
    """One check_preempt_wakeup_fair() on a busy CPU: who woke whom and what the kernel saw.

    ``woken_lag`` and ``curr_lag`` are V - v (s) after update_curr(), with the woken task
    queued; ``queued`` counts every queued task (running, runnable, delayed) as the kernel's
    ``cfs_rq->nr_queued`` does.
    """

    curr: str
    woken: str
    woken_lag: float
    curr_lag: float
    curr_protected: bool  # eligible and before its deadline (RUN_TO_PARITY)
    queued: int
    delayed: int  # of them, sleepers still queued (DELAY_DEQUEUE)
    preempted: bool


_WATCHERS: list[Callable[[WakeCheck], None]] = []


@dataclass(frozen=True)
class SleepCheck:
    """A task going to sleep, as dequeue_entity() sees it: its lag V - v (s) and whether it
    stays queued owing time (``delayed``: DELAY_DEQUEUE); ``queued`` counts the tasks queued
    then, itself included, as ``cfs_rq->nr_queued`` does."""

    task: str
    lag: float
    delayed: bool
    queued: int


_SLEEP_WATCHERS: list[Callable[[SleepCheck], None]] = []

#: the run queue's sum of v is kept in integer units of 2**-VKEY_BITS s (see Eevdf._avg_v):
#: a float v is a 53-bit integer times a power of two, so every |v| >= 2**(52 - VKEY_BITS) s
#: (2.6e-23 s) is held exactly - a lone task's V is its v, bit for bit
VKEY_BITS = 128


def vkey(v: float) -> int:
    """``v`` (s) as the integer the run queue's sum holds for it."""
    return int(ldexp(v, VKEY_BITS))


@contextlib.contextmanager
def _watching(watchers: list[Callable[[Any], None]], watch: Callable[[Any], None]
              ) -> Iterator[None]:
    watchers.append(watch)
    try:
        yield
    finally:
        watchers.remove(watch)


def watch_wake_checks(watch: Callable[[WakeCheck], None]) -> contextlib.AbstractContextManager:
    """Give every EEVDF wake-up check made inside the block to ``watch`` as well."""
    return _watching(_WATCHERS, watch)


def watch_sleeps(watch: Callable[[SleepCheck], None]) -> contextlib.AbstractContextManager:
    """Give every EEVDF sleep (a task blocking) inside the block to ``watch`` as well."""
    return _watching(_SLEEP_WATCHERS, watch)


def _protected(curr: Task, avg: float) -> bool:
    """RUN_TO_PARITY's protection: the running task is eligible (v <= V) and before its
    deadline."""
    return curr.v <= avg + 1e-12 and curr.v < curr.deadline


class Eevdf(Policy):
    """Linux >= 6.6: Earliest Eligible Virtual Deadline First (kernel/sched/fair.c) [EEVDF].

    Every task has a virtual runtime ``v`` (CPU time received) and a virtual deadline
    ``v + slice``; the average ``V`` of the queued tasks' ``v`` is the fair share.  A task's
    *lag* ``V - v`` is what it is owed: it is *eligible* when the lag is not negative, and the
    eligible task with the earliest deadline runs.  A sleeping task keeps its lag and is placed
    back at ``V - lag`` when woken; a new task starts at ``V`` with half a slice to its deadline
    (PLACE_DEADLINE_INITIAL); a task that goes to sleep owing time (negative lag) stays queued,
    not runnable, until it is eligible again, and then leaves with lag 0 (DELAY_DEQUEUE,
    DELAY_ZERO).  A woken task preempts the running one only if the running one is no longer
    eligible and the woken one is the eligible task with the earliest deadline (RUN_TO_PARITY
    protects an eligible running task until its deadline).  So whether a wake-up preempts
    depends on history: a thread that waited in the run queue while others ran wakes up owed
    time and takes the CPU from its waker at once; one that ran its fill does not.
    (place_entity, pick_eevdf, check_preempt_wakeup_fair, dequeue_entity.)  One run queue for
    all CPUs: exact for one CPU, an approximation for several (Linux has one per CPU).

    **A running task's v is what update_curr() last charged** [EEVDF].  The kernel brings the
    running task's vruntime up to date only at an update_curr(): the tick, an enqueue_entity() (a
    sleeper, or a new task, joining its queue), a dequeue or preemption of it, and the wake-up
    preemption check.  Waking a *delayed* sleeper is none of these: enqueue_task_fair() with
    ENQUEUE_DELAYED goes straight to requeue_delayed_entity(), whose update_entity_lag() computes
    the sleeper's lag against an avg_vruntime() that still holds the waker's vruntime from its
    last update_curr() - typically from when it was picked.  Only if that lag is positive does
    DELAY_ZERO drop it and place the sleeper afresh at the others' average (place_entity() with
    no lag, a full slice); otherwise the sleeper keeps its vruntime and deadline.  Then
    check_preempt_wakeup_fair() calls update_curr(): the waker's vruntime catches up, and a waker
    that has run longer than the sleeper overran when it blocked is no longer eligible - so
    RUN_TO_PARITY does not protect it, and the sleeper (now eligible) is picked.  That is how a
    thread blocked in Thread.start() right after clone() preempts the new thread as soon as it
    is told the thread runs (python_threads.py).

    The wake-up check itself is 6.18's: update_curr(), then preempt if pick_eevdf() - which keeps
    an eligible running task inside its protected slice - returns the woken task.  Checked on the
    6.18.44 VM with bpftrace (se.vruntime, deadline, vlag/vprot, cfs_rq sums at sched_wakeup and
    sched_switch): a futex wake-up from a waker that is not eligible does not reschedule it unless
    the woken task is the pick (so no "reschedule an ineligible waker" rule, 6.19's NEXT_BUDDY
    rework), and a lag-0 sleeper woken by an eligible, protected waker does not preempt it (so no
    next buddy: NEXT_BUDDY is off).

    Two of the kernel's scheduler features (switchable at run time through debugfs) are knobs
    here, both on by default as in the kernel [EEVDF-wakeup-preempt]:

    * ``wakeup_preemption`` (WAKEUP_PREEMPTION): off, a wake-up never preempts -
      check_preempt_wakeup_fair() returns before looking; the woken task waits until the
      running one blocks or uses up its slice.
    * ``run_to_parity`` (RUN_TO_PARITY): off, an eligible running task inside its slice is not
      protected: a wake-up preempts it whenever pick_eevdf() would pick the woken task.

    ``SchedulerParams.eevdf_wakeup_preemption`` and ``eevdf_run_to_parity`` set them.

    Inside ``with watch_wake_checks(fn):`` every wake-up check of every EEVDF scheduler is
    also given to ``fn`` as a :class:`WakeCheck` - what ``benchmarks/wake_audit.py`` compares
    with the same fields read from the kernel at ``sched_wakeup``.
    """

    name = "eevdf"

    def __init__(self, sched: Scheduler, wakeup_preemption: bool = True,
                 run_to_parity: bool = True) -> None:
        super().__init__(sched)
        self.wakeup_preemption = wakeup_preemption
        self.run_to_parity = run_to_parity
        # lag is clamped to what a task could be owed over two slices (or one tick)
        self._lag_limit = max(2 * self._slice, 1.0 / sched.params.hz)
        self.queue: list[Task] = []  # every queued task (running, runnable, delayed)
        self.zero_v = 0.0  # where a task woken onto an empty run queue starts
        self.env = sched.env
        self._hz = sched.params.hz
        self._cpus = sched.cpus
        self.vsum = 0  # the sum of the queued tasks' Task.vkey (see _avg_v)

    def set_v(self, task: Task, v: float) -> None:
        """Set a task's v; if it is queued the queue's sum follows (avg_vruntime_sub/_add).
        Every change of a queued task's v goes through here (or V is wrong)."""
        task.v = v
        if task.queued:
            key = int(ldexp(v, VKEY_BITS))
            self.vsum += key - task.vkey
            task.vkey = key

    def _v(self, task: Task) -> float:
        """A task's virtual runtime now (a running task's grows with the time it has run)."""
        if task.cpu is not None:
            ran = self.env._now - task.vstart
            if ran > 0.0:
                return task.v + ran
        return task.v

    def _account(self, task: Task, until: float) -> None:
        ran = until - task.vstart
        if ran > 0.0:
            self.set_v(task, task.v + ran)
        task.vstart = until

    def _update_curr(self, task: Task) -> None:
        """update_curr(): charge a running task's CPU so far to its v."""
        now = self.env._now
        if task.cpu is not None and now > task.vstart:
            self.set_v(task, task.v + (now - task.vstart))
            task.vstart = now

    def _charged_v(self, task: Task) -> float:
        """The v the kernel holds for a task: for a running one, what the last update_curr()
        charged - at the last timer tick (every 1/HZ) if one came since the model last did."""
        if task.cpu is None:
            return task.v
        tick = math.floor(self.env._now * self._hz) / self._hz
        return task.v + (tick - task.vstart) if tick > task.vstart else task.v

    def _avg_v(self) -> float:
        """V: the average virtual runtime of the queued tasks (the fair share so far).

        Kept as the kernel keeps avg_vruntime(): not a walk over the queue but a sum updated
        when a task joins or leaves the queue or its v is charged (avg_vruntime_add/_sub on
        enqueue/dequeue, update_curr()), in integers - each task's v as ``vkey(v)``, the same
        integer added and later taken off, so the sum never drifts however long the run.  The
        running tasks' CPU since they were last charged is added on top.
        """
        queue = self.queue
        if not queue:
            return self.zero_v
        total = ldexp(self.vsum, -VKEY_BITS)
        now = self.env._now
        for cpu in self._cpus:
            t = cpu.current
            if t is not None and t.queued:
                ran = now - t.vstart
                if ran > 0.0:
                    total += ran
        return total / len(queue)

    def enqueue(self, task: Task, initial: bool) -> None:
        """place_entity(): a woken task rejoins at V minus the lag it kept while asleep."""
        if task.queued:  # asleep but still queued (delayed): requeue_delayed_entity()
            task.delayed = False
            # update_entity_lag() against V as the kernel has it: running tasks' v as last
            # charged (no update_curr() on this path)
            others = [self._charged_v(t) for t in self.queue if t is not task]
            if others and task.v < (task.v + sum(others)) / (len(others) + 1):
                # DELAY_ZERO: its positive lag is dropped; place_entity() with no lag puts it
                # at the others' average, a full slice to its deadline
                self.set_v(task, sum(others) / len(others))
                task.deadline = task.v + self._slice
            return
        queue = self.queue
        n = len(queue)
        if n:
            for cpu in self._cpus:  # enqueue_entity(): update_curr() before place_entity()
                t = cpu.current
                if t is not None and t.queued:
                    self._update_curr(t)
            # the kept lag is scaled up by (n + 1) / n so that adding the task does not
            # move V (kernel/sched/fair.c place_entity)
            task.v = self._avg_v() - task.vlag * (n + 1) / n
        else:
            task.v = self.zero_v
        task.vkey = int(ldexp(task.v, VKEY_BITS))
        self.vsum += task.vkey
        # a new task joins halfway through a slice, as the others are on average
        task.deadline = task.v + (self._slice / 2 if initial else self._slice)
        task.queued = True
        self.queue.append(task)

    def switched_out(self, task: Task, requeue: bool) -> None:
        """Charge its CPU time (including work still owed) to its v; a sleeper leaves."""
        self._account(task, self.env._now + task.lead)
        if not requeue:
            self._dequeue(task)

    def _dequeue(self, task: Task) -> None:
        """A task goes to sleep (or exits): it keeps its lag, or stays queued if it owes."""
        if not task.queued:
            return
        lag = self._avg_v() - task.v
        if _SLEEP_WATCHERS and task.state == "blocked":
            check = SleepCheck(task.name, lag, lag < 0.0, len(self.queue))
            for watch in _SLEEP_WATCHERS:
                watch(check)
        if lag < 0.0 and task.state == "blocked":  # owes time: DELAY_DEQUEUE
            task.delayed = True
            return
        self._remove(task, lag if lag <= self._lag_limit else self._lag_limit)

    def _remove(self, task: Task, lag: float) -> None:
        floor = -self._lag_limit
        task.vlag = floor if floor >= lag else lag
        task.queued = False
        task.delayed = False
        self.queue.remove(task)
        self.vsum -= task.vkey
        if not self.queue:
            self.zero_v = task.v

    def slice_over(self, task: Task, cpu: Cpu) -> bool:
        """update_deadline(): a task that used its slice gets the next deadline."""
        ran = self.env._now - task.vstart
        v = task.v + ran if ran > 0.0 else task.v  # _v(task), inlined: a hot path
        if v < task.deadline:
            return False
        task.deadline = v + self._slice
        return True

    def keeps_cpu(self, task: Task, cpu: Cpu) -> bool:
        best = self._pick(cpu, include_running=True)
        return best is None or best is task

    def _pick(self, cpu: Cpu, include_running: bool, avg: float | None = None) -> Task | None:
        """pick_eevdf(): the eligible queued task with the earliest virtual deadline.

        Candidates: runnable tasks ``cpu`` may run, delayed sleepers and, if
        ``include_running``, the task running on ``cpu``.  ``avg``: V, if the caller has just
        computed it (nothing changed since).
        """
        queue = self.queue
        now = self.env._now
        limit = (self._avg_v() if avg is None else avg) + 1e-12  # eligible: v <= V
        best = None
        for t in queue:
            if t.cpu is not None:
                if not include_running or t.cpu is not cpu:
                    continue
                ran = now - t.vstart
                if (t.v + ran if ran > 0.0 else t.v) > limit:  # (_v(t), inlined)
                    continue
            elif t.state == "runnable" and t.pin is not None and t.pin is not cpu:
                continue
            elif t.v > limit:  # not eligible (not running: its v is current)
                continue
            if best is None or t.deadline < best.deadline:
                best = t
        return best

    def pick(self, cpu: Cpu) -> Task | None:
        """schedule() on a CPU whose task stopped: the next task, or None (the CPU idles).

        A delayed sleeper that comes out on top leaves the queue for good (lag 0) and the
        pick is repeated; a CPU that idles with nobody else queued settles all their debts.
        """
        runqueue = self.sched.runqueue
        while True:
            t = self._pick(cpu, include_running=False)
            if t is not None and t.delayed:
                self._remove(t, 0.0)
                continue
            if t is None:  # nobody eligible that this CPU may run
                runnable = [r for r in runqueue if r.pin is None or r.pin is cpu]
                if not runnable:
                    if not any(q.cpu is not None or q.state == "runnable" for q in self.queue):
                        for q in list(self.queue):
                            self._remove(q, 0.0)
                    return None
                t = min(runnable, key=lambda r: r.deadline)
            runqueue.remove(t)
            return t

    def wake_victim(self, task: Task, waker: Task | None) -> Cpu | None:
        """check_preempt_wakeup_fair(): the CPU whose task the woken one preempts, if any.

        The running task's v is first brought up to date (update_curr()); an eligible running
        task before its deadline is protected (RUN_TO_PARITY); otherwise the woken task preempts
        if a pick would now choose it.  That pick is pick_next_entity()'s, as the kernel's has
        been since commit ac8e69e69363 (2026; in 6.18 stable): a delayed sleeper that comes
        out on top is eligible, so it leaves the queue (lag 0) and the pick is made again -
        it no longer stands in the woken task's way (docs/SOURCES.md [LX-wakeup-delayed]).
        """
        if not self.wakeup_preemption:
            return None
        cpus = [task.pin] if task.pin is not None else self.sched.cpus
        for cpu in cpus:
            curr = cpu.current
            if curr is None or cpu.need_resched:
                continue
            self._update_curr(curr)
            avg = self._avg_v()
            protected = _protected(curr, avg)
            preempt = False
            if not (self.run_to_parity and protected):
                best = self._pick(cpu, include_running=True, avg=avg)
                while best is not None and best.delayed:  # eligible: past its 0-lag point
                    self._remove(best, 0.0)
                    avg = self._avg_v()  # the pick again, protection included: the running
                    if self.run_to_parity and _protected(curr, avg):  # task may be eligible
                        best = curr  # again without the sleeper
                        break
                    best = self._pick(cpu, include_running=True, avg=avg)
                preempt = best is task
            if _WATCHERS:
                check = WakeCheck(curr.name, task.name, avg - task.v, avg - curr.v, protected,
                                  len(self.queue), sum(t.delayed for t in self.queue), preempt)
                for watch in _WATCHERS:
                    watch(check)
            if preempt:  # (RUN_TO_PARITY: an eligible task runs on to its deadline)
                return cpu
        return None
