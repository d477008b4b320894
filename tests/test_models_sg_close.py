"""The state-group worker after a cold wake: where its replies leave within its pass.

Measured on the real server (a connection per request, bpftrace on the worker): after a wake the
worker spends about as long after its last send - logging, close, one more pass, then
``epoll_wait`` - as before it, long enough that wrk's next connection is often already in the
listen queue when it would sleep.  The model must therefore slow the whole pass by its cold
caches, not put the refill before the pass's work: a reply leaves at the same share of the
pass's burst whether the caches were cold or warm.
"""

from __future__ import annotations

import math

import simpy

from arch_sim.models import load_preset
from arch_sim.models.clock import call_at
from arch_sim.models.network import KB, Connection, Request
from arch_sim.models.recorder import Recorder
from arch_sim.models.scheduler import US, Scheduler
from arch_sim.models.state_group import StateGroup


def _one_request(refill_us: float) -> dict[str, float]:
    """One connection-per-request request 10 ms after the start (the CPU idled meanwhile):
    when the worker's pass started, when the reply was in, when the worker went to sleep."""
    params = load_preset("host").for_arch("state-group")
    # no jitter (exact times), and the refill as a lump: with a slowdown the worker's first
    # run would leave the whole refill as the CPU's debt, paid by this pass on top of its own
    params = params.replace(scheduler={"cpu_time_cv": 0.0, "cold_slowdown": 0.0},
                            server={"cold_refill_us": refill_us})
    env = simpy.Environment()
    sched = Scheduler(env, 1, params.scheduler)
    recorder = Recorder(env, 0, 1, 1000, lambda: {})
    model = StateGroup(env, sched, params, recorder)
    worker = model.workers[0]
    seen: dict[str, float] = {}
    recorder.on_complete = lambda req, t: seen.setdefault("reply", t)
    one_pass, block = worker.one_pass, sched.block

    def passes(t):
        p = one_pass(t)
        if p.moved and "start" not in seen:
            seen["start"] = t
        return p

    def blocks(task, after=0.0):
        if "reply" in seen and "sleep" not in seen:
            seen["sleep"] = env.now + task.lead + after
        return block(task, after)

    worker.one_pass, sched.block = passes, blocks

    def arrive() -> None:
        req = Request(Connection(params.network), 4 * KB, env.now, env.now, True)
        if recorder.arrive(req):
            model.submit(req)

    call_at(env, 0.010, arrive)
    env.run(until=0.020)
    return seen


def test_a_cold_pass_is_slowed_after_its_last_send_too():
    warm, cold = _one_request(0.0), _one_request(600.0)
    share = {}
    for name, seen in (("warm", warm), ("cold", cold)):
        busy = seen["sleep"] - seen["start"]
        share[name] = (seen["sleep"] - seen["reply"]) / busy
    # the cold pass is much longer (the refill) ...
    assert cold["sleep"] - cold["start"] > 5 * (warm["sleep"] - warm["start"])
    # ... and its reply leaves at about the same share of it (the network hop and the empty
    # pass, not stretched, make up the difference); a refill lumped before the pass's work
    # would put the reply near the end: a share under a tenth of the warm one
    assert 0.5 * share["warm"] < share["cold"] < 2.0 * share["warm"]


def test_a_warm_pass_is_not_stretched():
    seen = _one_request(0.0)
    params = load_preset("host").for_arch("state-group").server
    after_send = (params.log_us + params.close_us + params.pass_us) * US
    # after the reply (one hop after the send): log, close, one empty pass - no more
    assert seen["sleep"] - seen["reply"] < after_send + 1e-9
    assert not math.isnan(seen["start"])
