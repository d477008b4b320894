"""The state-group worker's accept batch ends with an accept that finds the queue empty.

Measured on the real server in process (benchmarks/sg_pass_cost.py): a wake cycle that accepts
one connection - the pass that accepts it and tries its first recv, the pass that finds
nothing, the counters published - costs 26 us warm, of which 5.7 us is the last accept(),
which meets EAGAIN and raises: once the listener is reported readable the real worker accepts
until the call fails (real_servers/stategroup/states/accept.py).  Unpaced that call ends a
batch of up to 64 connections; with a connection per request at a few thousand requests/s it
ends nearly every connection's own wake-up.  kHTTPd (no readiness events) looks at its queue
on every pass instead, which its pass cost holds.
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


def _model(readiness: bool) -> StateGroup:
    params = load_preset("host").for_arch("state-group")
    params = params.replace(scheduler={"cpu_time_cv": 0.0},
                            server={"cold_refill_us": 0.0, "readiness_events": readiness})
    env = simpy.Environment()
    sched = Scheduler(env, 1, params.scheduler)
    recorder = Recorder(env, 0, 1, 1000, lambda: {})
    return StateGroup(env, sched, params, recorder)


def _pass_over_new_connections(readiness: bool, k: int) -> float:
    """The CPU time of one pass that finds ``k`` new connections whose requests have not come
    yet (the client thinks after connecting, as wrk does with a connection per request)."""
    model = _model(readiness)
    worker = model.workers[0]
    for _ in range(k):
        conn = Connection(load_preset("host").network)
        model.backlog.append(Request(conn, 4 * KB, 0.0, math.inf, True))
    p = worker.one_pass(0.0)
    assert len(worker.wait_headers) == k and p.moved == k
    return p.t


def test_an_accept_batch_ends_with_one_failed_accept_with_readiness_events():
    s = load_preset("host").for_arch("state-group").server
    for k in (1, 3):
        # the pass, k accepts, the accept that finds the queue empty, each connection's
        # first recv that finds nothing
        want = (s.pass_us + k * s.accept_us + s.poll_item_us + k * s.poll_item_us) * US
        assert math.isclose(_pass_over_new_connections(True, k), want, rel_tol=1e-9)


def test_kHTTPd_pays_no_failed_accept_after_a_batch():
    s = load_preset("host").for_arch("state-group").server
    want = (s.pass_us + 3 * s.accept_us + 3 * s.poll_item_us) * US
    assert math.isclose(_pass_over_new_connections(False, 3), want, rel_tol=1e-9)


def test_a_pass_with_nothing_to_accept_pays_no_failed_accept():
    """Only a listener event (a connection queued) makes the worker try accept(): a pass over
    a connection parked for its request (already looked at once) costs the pass alone."""
    model = _model(True)
    worker = model.workers[0]
    req = Request(Connection(load_preset("host").network), 4 * KB, 0.0, math.inf, True)
    req.looked = True
    worker.wait_headers.append(req)
    p = worker.one_pass(0.0)
    assert p.moved == 0 and worker.wait_headers == [req]
    assert math.isclose(p.t, model.pass_cost, rel_tol=1e-9)


def test_a_wake_cycle_that_accepts_one_connection_costs_what_its_calls_add_up_to():
    """An idle worker woken by one connection (warm caches, no jitter): it runs from the
    wake-up to its sleep for the pass that accepts (with the failed accept and the first
    recv), the pass that finds nothing, and the switch out."""
    model = _model(True)
    env, sched, worker = model.env, model.sched, model.workers[0]
    seen: dict[str, float] = {}
    one_pass, block = worker.one_pass, sched.block

    def passes(t):
        p = one_pass(t)
        if p.moved:
            seen["start"] = t
        return p

    def blocks(task, after=0.0):
        if "start" in seen and "sleep" not in seen:
            seen["sleep"] = env.now + task.lead + after
        return block(task, after)

    worker.one_pass, sched.block = passes, blocks

    def connect() -> None:
        model.submit(Request(Connection(load_preset("host").network), 4 * KB, env.now,
                             math.inf, True))

    call_at(env, 0.005, connect)
    env.run(until=0.010)
    s = load_preset("host").for_arch("state-group").server
    want = (2 * s.pass_us + s.accept_us + 2 * s.poll_item_us) * US
    assert math.isclose(seen["sleep"] - seen["start"], want, rel_tol=1e-6)


def test_connections_that_come_while_the_worker_wakes_are_in_its_first_pass():
    """epoll_wait and accept() look at the queues when the woken worker runs, a wake-up
    latency after the first connection woke it: one that came meanwhile is accepted in the
    same pass (the model's worker looked at the wake-up instant until 2026-12-02, and took it in
    a pass of its own: at 5,000 requests/s with a connection per request it accepted 3.2
    connections a cycle that accepted, the real worker 5.0, the model now 4.3)."""
    model = _model(True)
    env, sched, worker = model.env, model.sched, model.workers[0]
    latency = sched.params.wakeup_latency_us * US
    assert latency > 10 * US
    accepted: list[int] = []
    one_pass = worker.one_pass

    def passes(t):
        before = len(model.backlog)
        p = one_pass(t)
        if before:
            accepted.append(before - len(model.backlog))
        return p

    worker.one_pass = passes

    def connect() -> None:
        model.submit(Request(Connection(load_preset("host").network), 4 * KB, env.now,
                             math.inf, True))

    call_at(env, 0.005, connect)
    call_at(env, 0.005 + latency / 2, connect)  # while the worker wakes
    env.run(until=0.010)
    assert accepted == [2]
