"""The models' shortcuts change how a run is computed, never what it computes.

* A CPU burst no event can interrupt moves the clock at once instead of scheduling a timeout
  (``Scheduler.compute_bursts``): every design, on every preset policy, gives the same row
  with it as without it.
* :func:`arch_sim.models.clock.call_at` queues a plain call where a ``Timeout`` with a
  callback would have been: it fires at the same time and in the same order among equal times.
* The clients' timers (wrk's loop, a request's two hops) cost a state-group request on the
  host preset about one event: fewer than two SimPy events per request in all.
"""

from __future__ import annotations

import math

import pytest
import simpy

from arch_sim.models import load_preset, simulate_point
from arch_sim.models.clock import call_after, call_at
from arch_sim.models.params import SchedulerParams
from arch_sim.models.recorder import Recorder
from arch_sim.models.scheduler import Scheduler, Task
from arch_sim.sweep import WALL_FIELDS

#: (preset, arch, load, cpus): closed host runs (EEVDF, the GIL), open 1999 runs (goodness())
CASES = [("host", "thread-per-request", 8000.0, 1), ("host", "state-group", 12000.0, 1),
         ("host", "prefork", 3000.0, 1), ("host", "staged", 8000.0, 1),
         ("linux-2.2-1999", "thread-per-request", 1500.0, 2),
         ("linux-2.2-1999", "state-group", 2500.0, 2),
         ("linux-2.4", "thread-per-request", 1500.0, 1)]


def _row(preset: str, arch: str, load: float, cpus: int) -> dict:
    row = simulate_point(arch, load_preset(preset), load, requests=1500, seed=7, cpus=cpus)
    # NaN (a column that does not apply) as None, so that == compares every value exactly
    return {k: None if isinstance(v, float) and math.isnan(v) else v
            for k, v in row.items() if k not in WALL_FIELDS}


@pytest.mark.parametrize(("preset", "arch", "load", "cpus"), CASES)
def test_computed_bursts_give_the_rows_of_scheduled_ones(monkeypatch, preset, arch, load,
                                                         cpus):
    computed = _row(preset, arch, load, cpus)
    monkeypatch.setattr(Scheduler, "compute_bursts", False)
    scheduled = _row(preset, arch, load, cpus)
    assert computed == scheduled


def test_call_at_fires_where_a_timeout_would():
    env = simpy.Environment()
    order: list[tuple[str, float]] = []

    def note(name: str) -> None:
        order.append((name, env.now))

    def timeout(name: str, delay: float) -> None:
        env.timeout(delay).callbacks.append(lambda _ev: note(name))

    timeout("t1", 2.0)
    call_after(env, 2.0, note, "c1")
    call_at(env, 1.0, note, "c0")
    timeout("t2", 2.0)
    call_at(env, 2.0, note, "c2")
    env.run()
    assert order == [("c0", 1.0), ("t1", 2.0), ("c1", 2.0), ("t2", 2.0), ("c2", 2.0)]


def test_host_state_group_schedules_under_two_events_per_request():
    envs: list[simpy.Environment] = []

    def recorder(env: simpy.Environment, *args) -> Recorder:
        envs.append(env)
        return Recorder(env, *args)

    row = simulate_point("state-group", load_preset("host"), 12000.0, requests=3000, seed=3,
                         cpus=1, recorder_factory=recorder)
    offered = row["sim_requests_per_wall_s"] * row["wall_s"]
    assert next(envs[0]._eid) / offered < 2.0


def _count_resumes(monkeypatch) -> list[int]:
    """Count every SimPy process resume from now on (a one-element list)."""
    count = [0]
    resume = simpy.events.Process._resume

    def counting(self, event):
        count[0] += 1
        resume(self, event)

    monkeypatch.setattr(simpy.events.Process, "_resume", counting)
    return count


@pytest.mark.parametrize(("preset", "load", "cpus"), [("linux-2.2-1999", 1500.0, 2),
                                                      ("linux-2.2-1999", 3000.0, 4),
                                                      ("linux-2.4", 1500.0, 1)])
def test_herd_wakeups_handled_by_a_dispatch_hook_give_the_same_rows(monkeypatch, preset, load,
                                                                    cpus):
    """A kernel pool thread woken in accept() with nothing to take polls and sleeps again in
    its scheduler on_dispatch hook instead of its generator: the same row, fewer resumes."""
    resumes = _count_resumes(monkeypatch)
    hooked = _row(preset, "thread-per-request", load, cpus)
    hooked_resumes, resumes[0] = resumes[0], 0
    monkeypatch.setattr(Scheduler, "dispatch_hooks", False)
    resumed = _row(preset, "thread-per-request", load, cpus)
    assert hooked == resumed
    if hooked["spurious_wakeups_per_request"]:  # the herd (2.2's wake-all) is what the hook saves
        assert hooked_resumes < resumes[0]


@pytest.mark.parametrize("version", ["2.2", "2.4"])
def test_goodness_pick_prefers_the_task_that_last_ran_on_the_cpu(version):
    """The written-out run-queue loop is goodness(): equal counters, the task whose cache is
    on this CPU (PROC_CHANGE_PENALTY) wins over one queued before it; no ticks left loses."""
    sched = Scheduler(simpy.Environment(), 2, SchedulerParams(policy=f"linux-{version}"))
    here, there = sched.cpus
    away, home, spent = Task("away"), Task("home"), Task("spent")
    away.last_cpu, home.last_cpu, spent.last_cpu = there, here, here
    away.counter, home.counter, spent.counter = 20, 20, 0
    sched.runqueue.extend([spent, away, home])
    assert sched.policy.pick(here) is home
    assert sched.policy.pick(here) is away


def test_the_bursts_lognormal_draw_is_random_lognormvariate_from_the_same_stream():
    """The bursts' jitter is one call per draw, and the draws are the standard library's:
    the same values from the same seed, and the stream left where lognormvariate leaves it."""
    import random

    from arch_sim.models.jitter import lognormal_draw

    ours, stdlib = random.Random(11), random.Random(11)
    draw = lognormal_draw(ours, -0.036, 0.27)
    assert [draw() for _ in range(20000)] == [stdlib.lognormvariate(-0.036, 0.27)
                                               for _ in range(20000)]
    assert ours.random() == stdlib.random()


@pytest.mark.parametrize(("preset", "arch", "load", "cpus"), CASES)
def test_the_faster_run_loop_gives_the_rows_of_simpys(monkeypatch, preset, arch, load, cpus):
    """clock.Environment's run loop calls a Call's function without its callback list: the
    same row as SimPy's own Environment.run()."""
    from arch_sim.models import runner

    fast = _row(preset, arch, load, cpus)
    monkeypatch.setattr(runner, "Environment", simpy.Environment)
    assert _row(preset, arch, load, cpus) == fast


def test_the_faster_run_loop_runs_until_a_time_an_event_or_the_end():
    from arch_sim.models.clock import Environment

    env = Environment()
    seen: list[tuple[str, float]] = []
    call_at(env, 1.0, lambda: seen.append(("call", env.now)))
    env.timeout(2.0).callbacks.append(lambda _ev: seen.append(("timeout", env.now)))
    env.run(until=1.5)
    assert seen == [("call", 1.0)] and env.now == 1.5
    done = env.timeout(3.0, value="v")
    assert env.run(until=done) == "v" and env.now == 4.5
    assert seen == [("call", 1.0), ("timeout", 2.0)]
    assert env.run(until=done) == "v"  # already processed
    with pytest.raises(RuntimeError):
        env.run(until=env.event())  # nothing left to trigger it
    failing = Environment()
    failing.event().fail(ValueError("boom"))
    with pytest.raises(ValueError, match="boom"):
        failing.run()
