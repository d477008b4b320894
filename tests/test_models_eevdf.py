"""The eevdf scheduler policy and the GIL: the mechanisms behind a Python thread hand-off."""

from __future__ import annotations

import math

import pytest
import simpy
from scenarios import EEVDF, eevdf_handoff

from arch_sim.models.gil import Gil, NoGil
from arch_sim.models.params import SchedulerParams
from arch_sim.models.scheduler import US, Scheduler, Task


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


def _handoff(waiter_waits_first: bool) -> bool:
    """A waker that wakes a sleeper and then keeps computing: is it preempted at once?"""
    return eevdf_handoff(sleeper_owed=waiter_waits_first)[0]


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
    assert not sched.policy.queue and a.vlag == 0.0  # the idle CPU settled the debt


def _clone_then_wait(child_runs_us: float):
    """Thread.start(): the parent clones, runs on 30 us, blocks until the child wakes it after
    ``child_runs_us`` of its own; then the child computes on.  Is it preempted at that wake?"""
    env = simpy.Environment()
    sched = Scheduler(env, 1, EEVDF)
    parent, child = Task("parent"), Task("child")
    seen = {}

    def child_body():
        yield started
        yield from sched.run(child, child_runs_us * US)
        before = sched.involuntary
        sched.wake(parent)  # _started.set(): the child releases the parent's lock
        seen["kept_v"] = parent.v == seen["v_at_block"]
        yield from sched.checkpoint(child)
        seen["preempted"] = sched.involuntary > before
        yield from sched.run(child, 50 * US)
        yield sched.block(child)

    def parent_body():
        nonlocal started
        yield env.timeout(1e-3)  # clear of the 4 ms ticks
        yield sched.start(parent)
        yield from sched.run(parent, 20 * US)
        started = sched.start(child, parent)  # clone(): the child joins at the parent's v
        env.process(child_body())
        yield from sched.checkpoint(parent)
        assert parent.cpu is not None  # RUN_TO_PARITY: the new child waits its turn
        yield from sched.run(parent, 30 * US)  # the rest of Thread.start()
        blocked = sched.block(parent)
        seen["v_at_block"], seen["delayed"] = parent.v, parent.delayed
        yield blocked
        yield sched.block(parent)

    started = None
    env.process(parent_body())
    env.run()
    assert seen["delayed"]  # it overran the child it placed at its own v: DELAY_DEQUEUE
    return seen


def test_a_parent_blocked_after_clone_preempts_a_child_that_ran_longer_when_woken():
    """requeue_delayed_entity() takes the delayed parent's lag against the child's v as charged
    when it was picked: negative, so the parent keeps its v (no DELAY_ZERO).  The wake-up check's
    update_curr() then charges the child's 60 us: it has run past the parent, is not eligible,
    RUN_TO_PARITY does not protect it, and the parent is picked.  (With the child's v brought
    up to date first, the parent's lag would be positive, DELAY_ZERO would place it at the
    child's v, and the eligible child would run on.)"""
    seen = _clone_then_wait(child_runs_us=60)
    assert seen["kept_v"] and seen["preempted"]


def test_a_child_that_ran_less_than_its_parents_overrun_keeps_the_cpu():
    seen = _clone_then_wait(child_runs_us=20)
    assert seen["kept_v"] and not seen["preempted"]


def test_fifo_policy_ignores_lag():
    params = SchedulerParams(switch_us=0.0, policy="fifo")
    env = simpy.Environment()
    sched = Scheduler(env, 1, params)
    assert sched.policy.name == "fifo" and not hasattr(sched.policy, "queue")


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


# -- cold caches after an idle CPU -------------------------------------------------------------

COLD = SchedulerParams(switch_us=0.0, timeslice_ms=1.4, hz=250, policy="eevdf", cold_decay_ms=5.0)


def test_the_first_burst_after_an_idle_pays_the_cache_refill_once_per_code():
    """A CPU that idled 10 ms: the first pool thread pays 1 - exp(-10/5) of the refill, a
    second pool thread right after it runs warm, the dispatcher (other code) pays its own; run
    back to back nobody pays; after 1 ms of idle, 1 - exp(-1/5) of it."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, COLD)
    refill = 100 * US
    p1, p2 = Task("pool/1", refill=refill), Task("pool/2", refill=refill)
    disp = Task("dispatcher", refill=refill)
    took = {}

    def body(task, key, work=10 * US):
        yield sched.start(task)
        t0 = env.now
        yield from sched.run(task, work)
        took[key] = env.now - t0
        yield from sched.run(task, work)  # still warm: the same code just ran
        took[key + "+"] = env.now - t0 - took[key]
        yield sched.block(task)

    def scenario():
        yield env.timeout(10e-3)
        for key, task in (("p1", p1), ("p2", p2), ("disp", disp)):
            env.process(body(task, key))
        yield env.timeout(1e-3)
        again = Task("pool/3", refill=refill)
        env.process(body(again, "p3"))

    sched.cpus[0].warm.update({"pool": 0.0, "dispatcher": 0.0})  # warm at t=0, then 10 ms idle
    env.process(scenario())
    env.run()
    cold10 = refill * (1 - math.exp(-2.0))
    assert took["p1"] == pytest.approx(10 * US + cold10, rel=1e-6)
    assert took["p2"] == pytest.approx(10 * US, rel=1e-6)  # same code as p1: warm
    assert took["disp"] == pytest.approx(10 * US + cold10, rel=1e-6)  # its own code
    assert took["p1+"] == took["p2+"] == pytest.approx(10 * US, rel=1e-6)
    idle = sched.cpus[0].idle_total
    assert idle == pytest.approx(10e-3 + 1e-3 - 3 * 20 * US - 2 * 10 * US - 100 * US
                                 - 2 * cold10, rel=0.02)
    p3_idle = 1e-3 - 3 * 20 * US - 2 * cold10
    assert took["p3"] == pytest.approx(10 * US + refill * -math.expm1(-p3_idle / 5e-3),
                                       rel=1e-3)


def _busy_period_then_handoff(refill: float, pool_threads: int) -> bool:
    """The dispatcher wakes ``pool_threads`` pool threads (the requests of one wrk tick),
    each serves 20 us of work and sleeps on its lock; the CPU idles 1 ms; the dispatcher wakes
    the thread that ran last: does it preempt the dispatcher (at the futex wake's return)?"""
    env = simpy.Environment()
    sched = Scheduler(env, 1, COLD)
    disp = Task("dispatcher", refill=refill)
    pool = [Task(f"pool/{i}", refill=refill) for i in range(pool_threads)]
    order: list[Task] = []
    seen = {}

    def pool_body(task):
        yield sched.start(task)
        yield sched.block(task)  # idle, on its own lock
        while True:
            yield from sched.run(task, 20 * US)
            order.append(task)
            yield sched.block(task)

    def disp_body():
        yield sched.start(disp)
        yield sched.block(disp)  # in epoll_wait
        for task in pool:  # one epoll return, several requests
            yield from sched.run(disp, 3 * US)
            sched.wake(task)
            yield from sched.checkpoint(disp)
        yield sched.block(disp)
        yield from sched.run(disp, 3 * US)  # the next request, 1 ms later
        before = sched.involuntary
        sched.wake(order[-1])
        yield from sched.checkpoint(disp)
        seen["preempted"] = sched.involuntary > before
        yield sched.block(disp)

    for task in pool:
        env.process(pool_body(task))
    env.process(disp_body())

    def network():
        yield env.timeout(5e-3)
        sched.wake(disp)
        yield env.timeout(1e-3)
        sched.wake(disp)

    env.process(network())
    env.run(until=20e-3)
    return seen["preempted"]


def test_the_last_thread_of_a_busy_period_preempts_the_next_hand_off():
    """What perf sched shows on the host at 1000 req/s: the pool thread that ran last in a busy
    period of two or more preempts the dispatcher that wakes it next (83-89% of 900 hand-offs);
    one that ran alone never does (0 of 476).  The first thread after the idle pays the cache
    refill, the next runs warm and leaves owed time (positive lag): EEVDF places it ahead of its
    waker."""
    assert _busy_period_then_handoff(refill=50 * US, pool_threads=2) is True
    assert _busy_period_then_handoff(refill=50 * US, pool_threads=1) is False


def test_without_cold_caches_two_equal_requests_leave_nobody_owed():
    """Without the refill both threads of the busy period run the same 20 us: the last one
    leaves owing (negative lag, delayed dequeue, settled to 0) and does not preempt."""
    assert _busy_period_then_handoff(refill=0.0, pool_threads=2) is False


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


def test_gil_mutex_wakes_its_sleepers_one_at_a_time_like_glibc():
    """gil->mutex is glibc's three-state futex: an unlock wakes a sleeper only if the word
    says 2 (contended).  A thread that re-takes the freed mutex before the woken sleeper runs
    holds it as 1 and wakes nobody; the woken sleeper holds it as 2 and wakes the next."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, SchedulerParams(switch_us=0.0, policy="fifo",
                                              wakeup_preempt=False))
    gil = Gil(env, sched, 5e-3)
    holder, first, second = Task("holder"), Task("first"), Task("second")
    log = []

    def holder_body():
        yield sched.start(holder)
        yield from gil._lock_mutex(holder)
        yield sched.block(holder)  # the sleepers queue up meanwhile
        yield from gil._unlock_mutex(holder)  # state 2: wakes "first"
        yield from gil._lock_mutex(holder)  # barges in before "first" runs: state 1
        yield from gil._unlock_mutex(holder)  # wakes nobody
        log.append(("holder done", [t.name for t in gil.mutex_waiters]))
        yield sched.block(holder)

    def sleeper(task):
        yield sched.start(task)
        yield from gil._lock_mutex(task)
        log.append((task.name, gil.mutex_state))
        yield from gil._unlock_mutex(task)
        yield sched.block(task)

    env.process(holder_body())
    for task in (first, second):
        env.process(sleeper(task))

    def alarm():
        yield env.timeout(50 * US)
        sched.wake(holder)

    env.process(alarm())
    env.run(until=1e-3)
    assert gil.mutex_waits == 2
    assert log == [("holder done", ["second"]), ("first", 2), ("second", 2)]
    assert gil.mutex is None and gil.mutex_state == 0


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


def _wake_behind_a_delayed_sleeper(waker_runs_us: float) -> dict[str, bool]:
    """``woken`` queues 200 us behind ``other`` and sleeps owed time; ``delayed`` overruns the
    waker queued behind it and sleeps owing time (DELAY_DEQUEUE); the waker then runs
    ``waker_runs_us`` and wakes ``woken``: was it preempted at once, and is ``delayed`` still
    queued?"""
    env = simpy.Environment()
    sched = Scheduler(env, 1, EEVDF)
    waker, delayed, woken, other = Task("waker"), Task("delayed"), Task("woken"), Task("other")
    seen: dict[str, bool] = {}

    def sleeper(task, work, start=0.0):
        yield env.timeout(start)
        yield sched.start(task)
        yield from sched.run(task, work)
        yield sched.block(task)
        yield sched.block(task)

    def waker_body():
        yield env.timeout(1e-3 + 1 * US)
        yield sched.start(waker)
        yield from sched.run(waker, waker_runs_us * US)
        seen["was_delayed"] = delayed.delayed
        before = sched.involuntary
        sched.wake(woken)
        yield from sched.checkpoint(waker)
        seen["preempted"] = sched.involuntary > before
        seen["still_queued"] = delayed.queued
        yield sched.block(waker)

    env.process(sleeper(other, 200 * US))
    env.process(sleeper(woken, 5 * US))
    env.process(sleeper(delayed, 300 * US, start=1e-3))
    env.process(waker_body())
    env.run()
    return seen


def test_a_delayed_sleeper_on_top_leaves_and_the_woken_task_preempts():
    """Since commit ac8e69e69363 the wake-up check picks as pick_next_entity() does: a delayed
    sleeper that comes out on top is eligible, so it leaves the queue and the pick is made
    again - here the woken task, owed time, which preempts (before, the sleeper's earlier
    deadline kept the waker running)."""
    seen = _wake_behind_a_delayed_sleeper(400)
    assert seen["was_delayed"]
    assert seen["preempted"] and not seen["still_queued"]


def test_a_cold_refill_paid_as_a_slowdown_is_spread_over_the_next_bursts():
    """``cold_slowdown`` K: after 10 ms of idle the refill (1 - exp(-10/5) of it) is the CPU's
    debt, which each burst of 10 us pays 2 x 10 us of until it is gone, whichever code runs;
    a second code's refill adds to it, at most both codes' whole refills.  The lump that a
    model spreading its refill itself takes (``cold_start``) is still the whole refill."""
    params = SchedulerParams(switch_us=0.0, timeslice_ms=1.4, hz=250, policy="eevdf",
                             cold_decay_ms=5.0, cold_slowdown=2.0)
    env = simpy.Environment()
    sched = Scheduler(env, 1, params)
    refill = 100 * US
    pool, disp = Task("pool/1", refill=refill), Task("dispatcher", refill=refill)
    took: list[float] = []

    def body():
        yield env.timeout(10e-3)
        yield sched.start(pool)
        for _ in range(6):
            t0 = env.now
            yield from sched.run(pool, 10 * US)
            took.append(env.now - t0)
        yield sched.block(pool)

    sched.cpus[0].warm.update({"pool": 0.0, "dispatcher": 0.0})
    env.process(body())
    env.run()
    cold10 = refill * (1 - math.exp(-2.0))  # 86.5 us
    assert took[:4] == pytest.approx([30 * US] * 4, rel=1e-6)
    assert took[4] == pytest.approx(10 * US + cold10 - 80 * US, rel=1e-6)
    assert took[5] == pytest.approx(10 * US, rel=1e-6)
    cpu = sched.cpus[0]
    cpu.debt, cpu.idles = 150 * US, cpu.idles + 1
    cpu.idle_total += 1.0  # a long idle: both codes all cold
    assert sched._cold_start(disp, cpu) == 0.0  # as a debt, capped at both refills
    assert cpu.debt == pytest.approx(200 * US)
    worker = Task("worker", refill=refill)
    worker.cpu = cpu
    assert sched.cold_start(worker) == pytest.approx(refill)  # the lump, for its own spreading
