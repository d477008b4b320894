"""Small scheduler scenarios more than one test file runs (no I/O: SimPy and the models only)."""

from __future__ import annotations

import simpy

from arch_sim.models.params import SchedulerParams
from arch_sim.models.policy_eevdf import WakeCheck, watch_wake_checks
from arch_sim.models.scheduler import US, Scheduler, Task

#: EEVDF on one CPU with free switches: only the policy's decisions show
EEVDF = SchedulerParams(switch_us=0.0, timeslice_ms=1.0, hz=250, policy="eevdf")


def eevdf_handoff(sleeper_owed: bool) -> tuple[bool, list[WakeCheck]]:
    """A waker wakes a sleeper and computes on.  The sleeper first queued 200 us behind another
    task and so sleeps owed time (``sleeper_owed``), or slept at once (owed nothing).
    Returns whether the waker was preempted at once, and the wake-up checks made while the
    waker ran (one: the sleeper's)."""
    env = simpy.Environment()
    sched = Scheduler(env, 1, EEVDF)
    waker, sleeper, other = Task("waker/0"), Task("sleeper/0"), Task("other")
    seen: dict[str, bool] = {}

    def sleeper_body():
        yield sched.start(sleeper)
        if sleeper_owed:  # it queues behind `other` for 200 us, then naps briefly
            yield from sched.run(sleeper, 5 * US)
        yield sched.block(sleeper)
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

    if sleeper_owed:
        env.process(other_body())
    env.process(sleeper_body())
    env.process(waker_body())
    checks: list[WakeCheck] = []
    with watch_wake_checks(checks.append):
        env.run()
    return seen["preempted"], [c for c in checks if c.curr == waker.name]
