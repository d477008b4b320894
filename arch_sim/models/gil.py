"""CPython's global interpreter lock (GIL) on top of the scheduler model.

A Python server's threads run Python code only while holding the GIL.  A thread drops it around
every system call (``recv``, ``send``, ``epoll_wait``, a blocking ``lock.acquire``...) and takes
it back afterwards.  Modelled on CPython 3.11's ``Python/ceval_gil.h``:

* ``take_gil``: lock ``gil->mutex``; while the GIL is held, wait on ``gil->cond`` (which
  releases the mutex) for at most the switch interval; a waiter that timed out while nobody else
  took the GIL sets ``gil_drop_request``; then mark the GIL held and unlock the mutex.
* ``drop_gil``: lock the mutex, mark the GIL free, signal one waiter, unlock the mutex; if a drop
  was requested and nobody has taken the GIL since, wait until someone does (FORCE_SWITCHING).
* the running thread checks ``gil_drop_request`` between bytecodes and drops the GIL if set.

The mutex and the condition variable are futexes: waiting on them is a voluntary switch, and
signalling one wakes a thread (a futex wake: the signaller pays ``SchedulerParams.wake_us`` of
CPU before the woken thread is runnable) - which, if the kernel lets it preempt the signaller
(see the ``eevdf`` policy in scheduler.py), runs at once and finds the GIL (or the mutex) still
held, so it sleeps again.  That is where a Python thread hand-off gets its extra reschedules.

``gil->mutex`` is a glibc mutex, a futex with three states (nptl's ``lll_lock``): 0 free, 1 held,
2 held and maybe waited for.  ``lock`` takes a free mutex as 1; otherwise it swaps in 2 and sleeps
until it finds the mutex free.  ``unlock`` frees it and wakes one sleeper only if the state was 2.
A thread returning from a condition wait re-locks with 2 (``lll_cond_lock``: it cannot know
whether others still wait).  So a thread that took the mutex while a woken sleeper was still on
its way wakes nobody when it unlocks: sleepers are woken one at a time, each by the unlock of the
one woken before it - not one per unlock.  (The pool server at saturation makes 0.6-0.9 mutex
wake-ups per request - ``benchmarks/gil_audit.py`` counts them; waking one per unlock would give
2.1.)

:class:`NoGil` has the same interface and does nothing (servers without an interpreter lock).
"""

from __future__ import annotations

from collections import deque

import simpy

from arch_sim.models.clock import call_after
from arch_sim.models.scheduler import Scheduler, Steps, Task


class NoGil:
    """Threads that need no lock to run: Python code is plain CPU time."""

    enabled = False

    def __init__(self, sched: Scheduler) -> None:
        self.sched = sched
        self.waits = 0
        self.forced = 0

    def take(self, task: Task) -> Steps:
        return ()

    def drop(self, task: Task) -> Steps:
        return ()

    def py(self, task: Task, seconds: float) -> Steps:
        """Run Python code for ``seconds`` of CPU (the scheduler's steps themselves: no
        generator of its own around them)."""
        return self.sched.run(task, seconds)

    def call(self, task: Task, seconds: float) -> Steps:
        """A system call that does not block, ``seconds`` of CPU with the GIL dropped."""
        return self.sched.run(task, seconds)


class Gil(NoGil):
    """One interpreter lock shared by all of a process's threads."""

    enabled = True

    def __init__(self, env: simpy.Environment, sched: Scheduler, interval_s: float) -> None:
        super().__init__(sched)
        self.env = env
        self.interval = interval_s
        self.holder: Task | None = None
        self.waiters: deque[Task] = deque()  # waiting on gil->cond
        self.mutex: Task | None = None  # holder of gil->mutex
        self.mutex_state = 0  # the futex word: 0 free, 1 held, 2 held and maybe waited for
        self.mutex_waiters: deque[Task] = deque()
        self.drop_request = False
        self.last_holder: Task | None = None
        self.switch_number = 0
        self.switch_waiters: deque[Task] = deque()  # droppers waiting for a taker
        self._wait_gen: dict[Task, int] = {}
        self._timed_out: set[Task] = set()
        self.waits = 0  # cond waits: a thread found the GIL held and slept
        self.mutex_waits = 0  # a thread found gil->mutex held and slept
        self.forced = 0  # forced drops (a waiter's interval ran out)

    # -- the mutex ------------------------------------------------------------------------------

    def _lock_mutex(self, task: Task, after_wait: bool = False) -> Steps:
        """pthread_mutex_lock (``after_wait``: the re-lock at the end of a condition wait)."""
        if self.mutex is None:
            self.mutex = task
            self.mutex_state = 2 if after_wait else 1
            return
        while True:
            free = self.mutex is None
            self.mutex_state = 2  # atomic exchange: a sleeper is (or may be) waiting
            if free:
                self.mutex = task
                return
            self.mutex_waiters.append(task)
            self.mutex_waits += 1
            yield self.sched.block(task)

    def _unlock_mutex(self, task: Task, checkpoint: bool = True) -> Steps:
        contended, self.mutex_state, self.mutex = self.mutex_state == 2, 0, None
        if contended and self.mutex_waiters:  # futex_wake(1); its return to user space is
            # a preemption point unless a wait follows at once (``checkpoint`` False)
            yield from self.sched.wake_from(task, self.mutex_waiters.popleft(), checkpoint)

    # -- take_gil / drop_gil --------------------------------------------------------------------

    def take(self, task: Task) -> Steps:
        """take_gil: the steps to ``yield from``.  Uncontended - the mutex free (so its futex
        word 0), the GIL free, no forced dropper waiting for a taker - it is taken at once and
        there are none (no generator: the hot path)."""
        if self.mutex is None and self.holder is None and not self.switch_waiters:
            self.holder = task  # (lock, take, unlock: the mutex is free again)
            if self.last_holder is not task:
                self.last_holder = task
                self.switch_number += 1
            return ()
        return self._take(task)

    def _take(self, task: Task) -> Steps:
        yield from self._lock_mutex(task)
        while self.holder is not None:
            saved = self.switch_number
            # COND_TIMED_WAIT releases the mutex and sleeps until signalled or timed out
            yield from self._unlock_mutex(task, checkpoint=False)
            self.waiters.append(task)
            self.waits += 1
            gen = self._wait_gen.get(task, 0) + 1
            self._wait_gen[task] = gen
            # the timed wait's timer: a plain call, queued where env.timeout() would be
            call_after(self.env, self.interval, self._timeout, task, gen)
            yield self.sched.block(task)
            timed_out = task in self._timed_out
            self._timed_out.discard(task)
            yield from self._lock_mutex(task, after_wait=True)  # the wait re-locks it
            if timed_out and self.holder is not None and self.switch_number == saved:
                self.drop_request = True
        self.holder = task
        if self.last_holder is not task:
            self.last_holder = task
            self.switch_number += 1
        if self.switch_waiters:  # COND_SIGNAL(switch_cond): a forced dropper may go on
            yield from self.sched.wake_from(task, self.switch_waiters.popleft(), False)
        yield from self._unlock_mutex(task)

    def _timeout(self, task: Task, gen: int) -> None:
        if self._wait_gen.get(task) == gen and task in self.waiters:
            self.waiters.remove(task)
            self._timed_out.add(task)
            self.sched.wake(task)

    def drop(self, task: Task) -> Steps:
        """drop_gil: the steps to ``yield from``.  With the mutex free, nobody waiting on
        gil->cond and no drop requested there are none (no generator: the hot path)."""
        if self.mutex is None and not self.waiters and not self.drop_request:
            self.last_holder = task
            self.holder = None  # (lock, release, unlock: the mutex is free again)
            return ()
        return self._drop(task)

    def _drop(self, task: Task) -> Steps:
        self.last_holder = task
        yield from self._lock_mutex(task)
        self.holder = None
        if self.waiters:  # COND_SIGNAL(gil->cond), still holding the mutex
            waiter = self.waiters.popleft()
            self._wait_gen[waiter] = self._wait_gen.get(waiter, 0) + 1
            yield from self.sched.wake_from(task, waiter)
        yield from self._unlock_mutex(task)
        if self.drop_request and self.last_holder is task:
            # FORCE_SWITCHING: wait until another thread has taken the GIL
            self.drop_request = False
            self.forced += 1
            self.switch_waiters.append(task)
            yield self.sched.block(task)

    def py(self, task: Task, seconds: float) -> Steps:
        if self.drop_request and self.holder is task:  # the eval breaker
            return self._yield_and_run(task, seconds)
        return self.sched.run(task, seconds)  # (its steps: no generator around them)

    def _yield_and_run(self, task: Task, seconds: float) -> Steps:
        yield from self.drop(task)
        yield from self.take(task)
        yield from self.sched.run(task, seconds)

    def call(self, task: Task, seconds: float) -> Steps:
        yield from self.drop(task)
        yield from self.sched.run(task, seconds)
        yield from self.take(task)
