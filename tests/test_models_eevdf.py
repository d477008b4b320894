"""The eevdf scheduler policy and the GIL: the mechanisms behind a Python thread hand-off."""

from __future__ import annotations

import pytest
import simpy

from arch_sim.models.gil import Gil, NoGil
from arch_sim.models.params import SchedulerParams
from arch_sim.models.scheduler import US, Scheduler, Task

EEVDF = SchedulerParams(switch_us=0.0, timeslice_ms=1.0, hz=250, policy="eevdf")


def test_cpu_hogs_share_a_cpu_slice_by_slice():
    """Two tasks that never sleep alternate about once per slice and get equal CPU."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, EEVDF)
    used = {"a": 0.0, "b": 0.0}

    def hog(task):
        yield sched.start(task)
        while True:
            yield from sched.run(task, 50 * US)
            used[task.name] += 50 * US

    for name in "ab":
        env.process(hog(Task(name)))
    env.run(until=0.2)
    assert used["a"] == pytest.approx(used["b"], rel=0.05)
    assert 150 <= sched.involuntary <= 250  # 200 ms of 1 ms slices
    assert sched.voluntary == 0


def _handoff(waiter_waits_first: bool):
    """A waker that wakes a sleeper and then keeps computing: is it preempted at once?"""
    env = simpy.Environment()
    sched = Scheduler(env, 1, EEVDF)
    waker, sleeper, other = Task("waker"), Task("sleeper"), Task("other")
    seen = {}

    def sleeper_body():
        yield sched.start(sleeper)
        if waiter_waits_first:  # it queues behind `other` for 200 us, then naps briefly
            yield from sched.run(sleeper, 5 * US)
        yield sched.block(sleeper)
        seen["sleeper_ran_at"] = env.now
        yield sched.block(sleeper)

    def other_body():
        yield sched.start(other)
        yield from sched.run(other, 200 * US)
        yield sched.block(other)

    def waker_body():
        yield env.timeout(1e-3)
        yield sched.start(waker)
        yield from sched.run(waker, 20 * US)
        before = sched.involuntary
        sched.wake(sleeper)
        yield from sched.checkpoint(waker)
        seen["preempted"] = sched.involuntary > before
        yield from sched.run(waker, 20 * US)
        yield sched.block(waker)

    if waiter_waits_first:
        env.process(other_body())
    env.process(sleeper_body())
    env.process(waker_body())
    env.run()
    return seen["preempted"]


def test_a_woken_task_owed_nothing_does_not_preempt_its_waker():
    """RUN_TO_PARITY: an eligible running task keeps the CPU when a lag-0 task wakes up."""
    assert _handoff(waiter_waits_first=False) is False


def test_a_woken_task_owed_time_preempts_its_waker():
    """It waited in the run queue (lag > 0), slept with that lag and takes the CPU at once."""
    assert _handoff(waiter_waits_first=True) is True


def test_a_task_that_overran_stays_queued_until_the_cpu_idles():
    """DELAY_DEQUEUE: a sleeper owing time counts in the average until it is settled."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, EEVDF)
    a, b = Task("a"), Task("b")

    def body(task, work):
        yield sched.start(task)
        yield from sched.run(task, work)
        yield sched.block(task)

    env.process(body(a, 300 * US))
    env.process(body(b, 20 * US))
    env.run(until=310 * US)
    assert a.delayed and a.queued  # a ran 300 us against b's 20 us: it owes
    env.run()
    assert not sched.queue and a.vlag == 0.0  # the idle CPU settled the debt


def test_fifo_policy_ignores_lag():
    params = SchedulerParams(switch_us=0.0, policy="fifo")
    env = simpy.Environment()
    sched = Scheduler(env, 1, params)
    assert not sched.eevdf and not hasattr(sched, "queue")


def test_cpu_time_jitter_keeps_the_mean():
    params = SchedulerParams(cpu_time_cv=0.3)
    env = simpy.Environment()
    sched = Scheduler(env, 1, params)
    task = Task("t")

    def body():
        yield sched.start(task)
        for _ in range(4000):
            yield from sched.run(task, 10 * US)

    env.process(body())
    env.run()
    assert env.now == pytest.approx(4000 * 10 * US, rel=0.03)


# -- the GIL ---------------------------------------------------------------------------------


def test_a_thread_woken_while_another_holds_the_gil_sleeps_again():
    """The preempted waker holds the GIL: the woken thread waits on it (a voluntary switch)
    until the waker drops it at its next system call."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, SchedulerParams(switch_us=0.0, policy="fifo",
                                              wakeup_preempt=True))
    gil = Gil(env, sched, 5e-3)
    waker, woken = Task("waker"), Task("woken")
    order = []

    def woken_body():
        yield sched.start(woken)
        yield sched.block(woken)  # its own lock, GIL not held
        yield from gil.take(woken)
        order.append(("woken has the GIL", env.now))
        yield from gil.py(woken, 10 * US)
        yield from gil.drop(woken)
        yield sched.block(woken)

    def waker_body():
        yield env.timeout(1e-4)
        yield sched.start(waker)
        yield from gil.take(waker)
        sched.wake(woken)  # always preempts under fifo + wakeup_preempt
        yield from sched.checkpoint(waker)
        yield from gil.py(waker, 20 * US)
        order.append(("waker drops", env.now))
        yield from gil.drop(waker)
        yield sched.block(waker)

    env.process(woken_body())
    env.process(waker_body())
    env.run()
    assert gil.waits >= 1
    assert [o[0] for o in order] == ["waker drops", "woken has the GIL"]
    # woken: own lock, GIL wait (and maybe the GIL's mutex), end; waker: preempted, end
    assert sched.involuntary >= 1 and sched.voluntary >= 3


def test_gil_call_lets_a_waiter_in_during_the_system_call():
    env = simpy.Environment()
    sched = Scheduler(env, 1, EEVDF)
    gil = Gil(env, sched, 5e-3)
    a, b = Task("a"), Task("b")
    got = []

    def a_body():
        yield sched.start(a)
        yield from gil.take(a)
        yield from gil.drop(a)
        yield sched.block(a)  # a blocking call: b may take the GIL now

    def b_body():
        yield sched.start(b)
        yield from gil.take(b)
        got.append(b.name)
        yield from gil.drop(b)

    env.process(a_body())
    env.process(b_body())
    env.run()
    assert got == ["b"] and gil.holder is None


def test_a_waiter_that_waited_the_switch_interval_forces_a_switch():
    """Two threads that never make a system call: the waiter's 5 ms timeout asks the holder
    to drop the GIL (CPython's forced switching)."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, SchedulerParams(switch_us=0.0, timeslice_ms=1.0,
                                              policy="eevdf"))
    gil = Gil(env, sched, 5e-3)
    ran = {"a": 0, "b": 0}

    def spin(task):
        yield sched.start(task)
        yield from gil.take(task)
        while True:
            yield from gil.py(task, 100 * US)
            ran[task.name] += 1

    for name in "ab":
        env.process(spin(Task(name)))
    env.run(until=0.1)
    assert gil.forced >= 5
    assert ran["a"] > 50 and ran["b"] > 50


def test_no_gil_is_plain_cpu_time():
    env = simpy.Environment()
    sched = Scheduler(env, 1, EEVDF)
    gil = NoGil(sched)
    task = Task("t")

    def body():
        yield sched.start(task)
        yield from gil.take(task)
        yield from gil.call(task, 10 * US)
        yield from gil.py(task, 10 * US)
        yield from gil.drop(task)

    env.process(body())
    env.run()
    assert env.now == pytest.approx(20 * US) and gil.waits == 0
