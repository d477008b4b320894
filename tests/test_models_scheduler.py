"""The scheduler cost model: what each reschedule costs, and who gets preempted when."""

from __future__ import annotations

import pytest
import simpy

from arch_sim.models.params import SchedulerParams
from arch_sim.models.scheduler import US, Scheduler, Task

COSTS = SchedulerParams(switch_us=5.0, per_runnable_us=1.0, refill_us_per_kb=2.0,
                        working_set_kb=10.0)  # refill 20 us


def test_ping_pong_pays_switch_goodness_and_refill_every_time():
    """Two tasks handing a token back and forth: every switch brings in a cold task."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, COSTS)
    ping, pong = Task("ping"), Task("pong")
    rounds = 50

    def player(me, other, serve_first):
        yield sched.start(me)
        if not serve_first:
            yield sched.block(me)
        for _ in range(rounds):
            yield from sched.run(me, 10 * US)
            sched.wake(other)
            yield sched.block(me)

    env.process(player(pong, ping, serve_first=False))  # starts first, waits for the token
    env.process(player(ping, pong, serve_first=True))
    env.run()
    per_switch = (5.0 + 1.0 + 20.0) * US  # one runnable task looked at, cold cache
    assert sched.voluntary == 2 * rounds + 1
    assert sched.switches == 2 * rounds + 2  # + pong's start and its first hand-over
    assert sched.sched_time == pytest.approx(sched.switches * per_switch)
    # the final switch back to ping is charged, but ping ends without computing after it
    elapsed = 2 * rounds * 10 * US + (sched.switches - 1) * per_switch
    assert env.now == pytest.approx(elapsed)


def test_a_task_coming_back_to_its_own_cpu_finds_its_cache_warm():
    env = simpy.Environment()
    sched = Scheduler(env, 1, COSTS)
    task = Task("sleeper")
    naps = 20

    def sleeper():
        yield sched.start(task)
        for _ in range(naps):
            yield from sched.run(task, 10 * US)
            woken = sched.block(task)
            env.timeout(1e-3).callbacks.append(lambda _e: sched.wake(task))
            yield woken

    env.process(sleeper())
    env.run()
    # first dispatch is cold; every later wake-up pays switch + goodness(1), no refill;
    # every block pays the switch to the idle task
    expected = (26.0 + naps * 6.0 + naps * 5.0) * US
    assert sched.sched_time == pytest.approx(expected)
    assert sched.voluntary == naps


def test_goodness_loop_grows_with_the_run_queue():
    """Linux 2.2: schedule() looks at every runnable task."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, COSTS)
    k = 5

    def worker(task):
        yield sched.start(task)
        yield from sched.run(task, 1e-3)
        yield sched.block(task)  # forever

    for i in range(k):
        env.process(worker(Task(f"t{i}")))
    env.run()
    # dispatches look at 1, 4, 3, 2, 1 runnable tasks; then one switch to idle
    expected = k * (5.0 + 20.0) + (1 + 4 + 3 + 2 + 1) * 1.0 + 5.0
    assert sched.sched_time == pytest.approx(expected * US)


def test_timer_tick_preempts_cpu_hogs_only_when_others_wait():
    params = SchedulerParams(switch_us=1.0, timeslice_ms=10.0)
    env = simpy.Environment()
    sched = Scheduler(env, 1, params)

    def hog(task, bursts):
        yield sched.start(task)
        for _ in range(bursts):
            yield from sched.run(task, 1e-3)

    env.process(hog(Task("a"), 100))
    env.process(hog(Task("b"), 100))
    env.run()
    # 200 ms of work in 10 ms slices, two tasks taking turns
    assert 15 <= sched.involuntary <= 21
    assert sched.voluntary == 0

    env = simpy.Environment()
    alone = Scheduler(env, 1, params)
    env.process(hog(Task("solo"), 100))  # nobody waits: never preempted
    sched = alone
    env.run()
    assert alone.involuntary == 0


@pytest.mark.parametrize("preempt", [True, False])
def test_wakeup_preemption(preempt):
    params = SchedulerParams(switch_us=1.0, wakeup_preempt=preempt)
    env = simpy.Environment()
    sched = Scheduler(env, 1, params)
    hog, napper = Task("hog"), Task("napper")

    def run_hog():
        yield sched.start(hog)
        for _ in range(50):
            yield from sched.run(hog, 1e-3)
        yield sched.block(hog)

    def run_napper():
        yield sched.start(napper)
        for _ in range(9):
            woken = sched.block(napper)
            env.timeout(5e-3).callbacks.append(lambda _e: sched.wake(napper))
            yield woken
            yield from sched.run(napper, 1e-4)
        yield sched.block(napper)

    env.process(run_napper())
    env.process(run_hog())
    env.run()
    if preempt:  # every wake-up of the napper takes the CPU from the hog at its next burst
        assert 8 <= sched.involuntary <= 9
    else:
        assert sched.involuntary == 0


def test_uncounted_tasks_cost_cpu_but_are_not_the_servers_reschedules():
    env = simpy.Environment()
    sched = Scheduler(env, 1, COSTS)
    other = Task("apache", counted=False)

    def run():
        yield sched.start(other)
        yield from sched.run(other, 1e-3)
        yield sched.block(other)

    env.process(run())
    env.run()
    assert sched.voluntary == 0 and sched.involuntary == 0
    assert sched.sched_time > 0 and sched.busy_time > 1e-3


def test_pinned_tasks_stay_on_their_cpu():
    env = simpy.Environment()
    sched = Scheduler(env, 2, COSTS)
    seen: dict[str, set[int]] = {"w0": set(), "w1": set()}

    def worker(task):
        yield sched.start(task)
        for _ in range(20):
            seen[task.name].add(task.cpu.index)
            yield from sched.run(task, 1e-4)
            woken = sched.block(task)
            env.timeout(1e-4).callbacks.append(lambda _e, t=task: sched.wake(t))
            yield woken

    for i in (1, 0):
        env.process(worker(Task(f"w{i}", pin=sched.cpus[i])))
    env.run()
    assert seen == {"w0": {0}, "w1": {1}}


def test_busy_time_of_a_burst_across_a_snapshot_is_split():
    env = simpy.Environment()
    sched = Scheduler(env, 1, SchedulerParams())
    task = Task("t")

    def run():
        yield sched.start(task)
        yield from sched.run(task, 1.0)

    env.process(run())
    env.run(until=0.25)
    assert sched.counters()["busy_time"] == pytest.approx(0.25)


@pytest.mark.parametrize("wake_us", [0.0, 3.0])
def test_a_futex_wake_costs_the_waker_wake_us_before_the_wakee_is_runnable(wake_us):
    """wake_from(): the waker spends ``wake_us`` of CPU in the system call first; the woken
    task only becomes runnable after it (and with two CPUs starts on the idle one then)."""
    env = simpy.Environment()
    sched = Scheduler(env, 2, SchedulerParams(wake_us=wake_us))
    waker, sleeper = Task("waker"), Task("sleeper")
    seen = {}

    def sleeping():
        yield sched.start(sleeper)
        yield sched.block(sleeper)
        seen["woke_at"] = env.now

    def waking():
        yield sched.start(waker)
        yield from sched.run(waker, 10 * US)
        yield from sched.wake_from(waker, sleeper)
        seen["back_at"] = env.now

    env.process(sleeping())
    env.process(waking())
    env.run()
    assert seen["woke_at"] == pytest.approx(10 * US + wake_us * US)
    assert seen["back_at"] == pytest.approx(10 * US + wake_us * US)
    assert sched.busy_time == pytest.approx((10.0 + wake_us) * US)
