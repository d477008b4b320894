"""The mechanisms of 1999, one by one: each test fails when its mechanism is taken out.

* Linux 2.2 wakes every thread asleep in accept() on a new connection; 2.4 wakes one
  (docs/SOURCES.md [K22-accept-wake-all] [K24-accept-exclusive]);
* 2.2's reschedule_idle(): the waker's CPU reschedules when the woken task's counter beats the
  waker's by more than 3, else an idle CPU takes it, never another busy CPU; 2.4 preempts the
  CPU whose task it beats by the most goodness (> 1) ([K22-reschedule-idle] [K24-reschedule-idle]);
* a fork halves the parent's counter ([K22-fork]); when every runnable counter is spent, every
  task's is recalculated, at a cost per task ([K22-recalc]);
* kernel threads are never preempted on 2.2/2.4 ([K22-nonpreempt]);
* the server's replies share one network link ([NET-qdisc]);
* HTTP/1.0: every request pays for its connection (accept, close);
* the CPU-wide count includes the switches to and from the idle task ([CS-perf]).
"""

from __future__ import annotations

import math

import pytest
import simpy

from arch_sim.eras import link_capacity_rps
from arch_sim.models import load_preset, simulate_point
from arch_sim.models.params import SchedulerParams
from arch_sim.models.scheduler import US, Scheduler, Task

P = load_preset("linux-2.2-1999")
#: the 1999 preset without its shared link, so CPU effects stand alone
NO_LINK = P.replace(network={"server_mbit_s": math.inf})
OLD, NEW = "thread-per-request", "state-group"


# -- accept(): wake-all vs wake-one -----------------------------------------------------------

@pytest.mark.parametrize("threads", [4, 16])
def test_wake_all_accept_wakes_every_idle_pool_thread(threads):
    """At low load every pool thread sleeps in accept(): 2.2 wakes all of them per connection,
    and all but one find nothing and sleep again - a reschedule each."""
    rows = {}
    for wake_all in (True, False):
        p = NO_LINK.replace(scheduler={"accept_wakes_all": wake_all})
        rows[wake_all] = simulate_point(OLD, p, 100, cpus=1, threads=threads, requests=1500,
                                        seed=3, file_sizes="fixed:1")
    herd, one = rows[True], rows[False]
    assert herd["spurious_wakeups_per_request"] == pytest.approx(threads - 1, rel=0.1)
    assert one["spurious_wakeups_per_request"] < 0.1
    extra = herd["reschedules_per_request"] - one["reschedules_per_request"]
    assert extra == pytest.approx(threads - 1, rel=0.15)


# -- reschedule_idle() -----------------------------------------------------------------------

def _two_cpus(policy: str, waker_counter: int, woken_counter: int, other_busy: bool,
              other_counter: int = 20):
    """The waker runs on one CPU (the other runs ``other`` or idles) when it wakes ``woken``:
    returns (whether the woken task first ran on the waker's CPU, need_resched of the waker's
    CPU, of the other CPU)."""
    env = simpy.Environment()
    sched = Scheduler(env, 2, SchedulerParams(policy=policy, hz=100))
    waker, woken, other = Task("waker"), Task("woken"), Task("other")
    seen: dict = {}

    def woken_body():
        yield sched.start(woken)
        yield sched.block(woken)
        seen["cpu"] = woken.cpu

    def other_body():
        yield sched.start(other)
        other.counter = other_counter
        yield from sched.run(other, 1.0)  # busy all along

    def waker_body():
        yield env.timeout(1e-3)
        yield sched.start(waker)
        waker.counter, woken.counter = waker_counter, woken_counter
        mine = waker.cpu
        other_cpu = sched.cpus[1 - mine.index]
        seen["mine"] = mine
        sched.wake(woken)
        seen["resched"] = (mine.need_resched, other_cpu.need_resched)
        yield from sched.run(waker, 10 * US)
        yield sched.block(waker)

    env.process(woken_body())
    if other_busy:
        env.process(other_body())
    env.process(waker_body())
    env.run(until=0.5)
    return seen.get("cpu") is seen["mine"], seen["resched"], sched


def test_2_2_woken_task_far_ahead_takes_the_wakers_cpu_not_the_idle_one():
    on_mine, (mine, other), _ = _two_cpus("linux-2.2", waker_counter=5, woken_counter=20,
                                          other_busy=False)
    assert mine and not other  # the waker's CPU reschedules...
    assert on_mine  # ...and the idle CPU is not used


def test_2_2_woken_task_not_far_ahead_goes_to_an_idle_cpu():
    on_mine, (mine, other), _ = _two_cpus("linux-2.2", waker_counter=18, woken_counter=20,
                                          other_busy=False)
    assert not mine and not on_mine


def test_2_2_never_preempts_a_busy_cpu_other_than_the_wakers():
    _, (mine, other), _ = _two_cpus("linux-2.2", waker_counter=18, woken_counter=20,
                                    other_busy=True, other_counter=1)
    assert not mine and not other  # it waits for the next schedule() on either CPU


def test_2_4_preempts_the_cpu_it_beats_by_the_most():
    _, (mine, other), _ = _two_cpus("linux-2.4", waker_counter=18, woken_counter=20,
                                    other_busy=True, other_counter=1)
    assert other and not mine  # the other CPU's task has the lower goodness


def test_2_4_does_not_preempt_for_a_goodness_margin_of_one():
    _, (mine, other), _ = _two_cpus("linux-2.4", waker_counter=20, woken_counter=20,
                                    other_busy=True, other_counter=19)
    assert not mine and not other


# -- counters: fork and recalculation --------------------------------------------------------

@pytest.mark.parametrize("policy, parent_after, child", [("linux-2.2", 10, 10),
                                                           ("linux-2.4", 10, 11)])
def test_fork_halves_the_parents_counter(policy, parent_after, child):
    env = simpy.Environment()
    sched = Scheduler(env, 1, SchedulerParams(policy=policy, priority_ticks=20))
    parent, kid = Task("parent"), Task("kid")
    counters = {}

    def body():
        yield sched.start(parent)
        parent.counter = 21
        sched.start(kid, parent=parent)
        counters.update(parent=parent.counter, kid=kid.counter)
        yield sched.block(parent)

    env.process(body())
    env.run(until=1.0)
    assert (counters["parent"], counters["kid"]) == (parent_after, child)


def test_recalculation_refills_every_task_and_costs_a_loop_over_all_of_them():
    """Two runnable tasks out of ticks, ten asleep: when the running task blocks, schedule()
    gives every task, asleep or not, counter / 2 + priority, and charges per_runnable_us for
    each of them."""
    env = simpy.Environment()
    params = SchedulerParams(policy="linux-2.2", priority_ticks=20, per_runnable_us=1.0)
    sched = Scheduler(env, 1, params)
    sleepers = [Task(f"s{i}") for i in range(10)]
    runner, x, y = Task("runner"), Task("x"), Task("y")

    def sleeper(task):
        yield sched.start(task)
        task.counter = 6
        yield sched.block(task)

    def runner_body():
        yield env.timeout(1e-3)
        yield sched.start(runner)
        for task in (x, y):  # runnable behind the runner, out of ticks
            env.process(spent(task))
        yield from sched.run(runner, 2e-3)
        seen["before"] = sched.sched_time
        yield sched.block(runner)

    def spent(task):
        started = sched.start(task)
        task.counter = 0
        yield started

    seen: dict = {}
    for task in sleepers:
        env.process(sleeper(task))
    env.process(runner_body())
    env.run(until=0.1)
    assert sched.recalculations == 1
    assert all(t.counter == 6 // 2 + 20 for t in sleepers)
    # the switch to x: its goodness() over the run queue, plus the loop over all 13 live tasks
    # (y's later switch adds its own)
    assert sched.sched_time - seen["before"] >= 13 * US


# -- kernel threads --------------------------------------------------------------------------

@pytest.mark.parametrize("kernel_threads, preempted", [(True, False), (False, True)])
def test_kernel_threads_are_not_preempted(kernel_threads, preempted):
    """A woken task that out-scores the running kernel thread waits until it blocks."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, SchedulerParams(policy="linux-2.4", hz=100))
    busy = Task("busy", preemptible=not kernel_threads)
    woken = Task("woken")

    def busy_body():
        yield sched.start(busy)
        busy.counter = 1
        for _ in range(100):
            yield from sched.run(busy, 100 * US)
        yield sched.block(busy)

    def woken_body():
        yield sched.start(woken)
        woken.counter = 20
        yield sched.block(woken)

    def alarm():
        yield env.timeout(2e-3)
        sched.wake(woken)

    env.process(woken_body())
    env.process(busy_body())
    env.process(alarm())
    env.run(until=1.0)
    assert (sched.involuntary > 0) is preempted


# -- the network and the connection ---------------------------------------------------------

def test_a_shared_link_caps_throughput():
    link = link_capacity_rps(P)
    capped = simulate_point(NEW, P, None, workload="closed", connection="close",
                            connections=64, requests=3000, seed=5)
    free = simulate_point(NEW, NO_LINK, None, workload="closed", connection="close",
                          connections=64, requests=3000, seed=5)
    assert capped["rps"] <= 1.03 * link
    assert free["rps"] > 1.3 * link


def test_a_connection_per_request_pays_for_accept_and_close():
    """The same requests, keep-alive or a connection each: the difference in CPU per request is
    what accept and close cost (all scheduler costs off, one CPU, 1 KB replies)."""
    p = NO_LINK.replace(scheduler={"switch_us": 0.0, "per_runnable_us": 0.0,
                                   "refill_us_per_kb": 0.0},
                        server={"pass_us": 0.0, "poll_item_us": 0.0})
    cpu = {}
    for mode in ("keep-alive", "close"):
        row = simulate_point(NEW, p, 200, workload="closed", connection=mode, connections=64,
                             cpus=1, requests=2000, seed=6, file_sizes="fixed:1")
        cpu[mode] = row["cpu_util"] * 1e6 / row["rps"]
    s = p.server
    assert cpu["close"] - cpu["keep-alive"] == pytest.approx(s.accept_us + s.close_us, rel=0.1)


def test_2_2_writers_wake_at_every_ack_not_at_half_the_buffer():
    """A large reply through a slow client: with 2.2's rule a blocked writer wakes (a
    reschedule) every couple of segments; with half the buffer free, far less often."""
    rows = {}
    for frac in (0.045, 0.5):
        p = NO_LINK.replace(network={"wake_free_frac": frac})
        rows[frac] = simulate_point(OLD, p, 20, cpus=1, threads=0, requests=300, seed=7,
                                    file_sizes="fixed:500")
    assert rows[0.045]["voluntary_per_s"] > 5 * rows[0.5]["voluntary_per_s"]


# -- counting as the seed counted ------------------------------------------------------------

def test_the_cpu_wide_count_includes_switches_to_and_from_idle():
    """At low load the state-group worker sleeps once or more per request; each sleep is one
    switch of the server (to idle) and one more of the CPU (from idle back to the server)."""
    p = NO_LINK.replace(server={"sleep_timeout_jiffies": 0.0})
    row = simulate_point(NEW, p, 100, cpus=1, requests=1500, seed=8, file_sizes="fixed:1")
    assert row["reschedules_per_request"] >= 0.9
    assert row["cpu_switches_per_request"] == pytest.approx(
        2 * row["reschedules_per_request"], rel=0.02)
