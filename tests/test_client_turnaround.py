"""A reply a server reports after the CPU burst that sent it: the client (on a CPU of its own)
answers it as of the reply's time, so a blocking server that works on after its last send can
find the next request already there when it calls recv() - or, with a connection per request,
the next connection already in the listen queue when it calls accept()."""

from __future__ import annotations

import dataclasses
import random

import pytest
import simpy

from arch_sim.models import load_preset, simulate_point
from arch_sim.models.params import NetworkParams
from arch_sim.models.workload import Workload
from arch_sim.models.wrk_clients import ClosedClients


class _Sink:
    """Server and recorder stand-in: notes when each request is submitted and its times."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.submitted: list[float] = []
        self.requests: list = []
        self.on_complete = None

    def arrive(self, req) -> bool:
        req.id = len(self.requests)
        return True

    def data_ready(self, req) -> None:
        pass

    def sent(self, req, t: float) -> None:
        req.arrived = t

    def submit(self, req) -> None:
        self.submitted.append(self.env.now)
        self.requests.append(req)


def _one_client(client_us: float, one_way_us: float, connection: str = "keep-alive",
                connect_us: float = 0.0, wake_us: float = 0.0):
    env = simpy.Environment()
    sink = _Sink(env)
    work = Workload(kind="closed", target_rps=None, connections=1, file_sizes="fixed:1",
                    client_us=client_us, connection=connection, client_connect_us=connect_us,
                    client_wake_us=wake_us)
    clients = ClosedClients(env, work, NetworkParams(one_way_us=one_way_us),
                            random.Random(1), sink, sink)
    env.run(until=1e-3)
    return env, sink, clients


def test_a_reply_reported_late_is_answered_as_of_its_time():
    """Reply in at 0.900 ms, reported at 1 ms: the next request left 10 us after the reply and
    was at the server 5 us later (0.915 ms) - submitted at once, with that arrival time."""
    env, sink, clients = _one_client(client_us=10.0, one_way_us=5.0)
    assert len(sink.requests) == 1
    clients.reply_received(sink.requests[0], 0.900e-3)
    assert len(sink.requests) == 2 and sink.submitted[1] == pytest.approx(1e-3)
    nxt = sink.requests[1]
    assert nxt.arrived == pytest.approx(0.915e-3) and nxt.data_at == pytest.approx(0.915e-3)


def test_a_reply_whose_answer_is_not_there_yet_arrives_when_it_is():
    """Reply in at 0.995 ms, reported at 1 ms: the next request reaches the server at 1.010 ms,
    not before."""
    env, sink, clients = _one_client(client_us=10.0, one_way_us=5.0)
    clients.reply_received(sink.requests[0], 0.995e-3)
    assert len(sink.requests) == 1
    env.run(until=2e-3)
    assert sink.submitted[1:] == [pytest.approx(1.010e-3)]
    assert sink.requests[1].arrived == pytest.approx(1.010e-3)


def test_a_connection_per_request_reply_reported_late_reconnects_as_of_its_time():
    """A connection per request: reply in at 0.800 ms, reported at 1 ms.  wrk, idle, is woken
    20 us later, closes and connects in 30 us (0.850 ms); the connection is at the server one
    5-us hop after that: in the listen queue at once.  Its request (unpaced: no think time)
    leaves when the client has spent 10 us on it (0.860 ms) and its bytes are there a hop
    later (0.865 ms), before the server looks."""
    env, sink, clients = _one_client(client_us=10.0, one_way_us=5.0, connection="close",
                                     connect_us=30.0, wake_us=20.0)
    first = sink.requests[0]
    sink.submitted.clear()
    clients.reply_received(first, 0.800e-3)
    assert len(sink.requests) == 2 and sink.submitted == [pytest.approx(1e-3)]
    nxt = sink.requests[1]
    assert nxt.opens and nxt.arrived == pytest.approx(0.860e-3)  # sent: wrk's latency starts
    assert nxt.data_at == pytest.approx(0.865e-3)


def test_a_connection_per_request_reply_not_answered_yet_reconnects_when_it_is():
    """Reply in at 0.990 ms, reported at 1 ms: the new connection reaches the server at
    0.990 + 0.020 + 0.030 + 0.005 ms, not before."""
    env, sink, clients = _one_client(client_us=10.0, one_way_us=5.0, connection="close",
                                     connect_us=30.0, wake_us=20.0)
    clients.reply_received(sink.requests[0], 0.990e-3)
    assert len(sink.requests) == 1
    env.run(until=2e-3)
    assert sink.submitted[1] == pytest.approx(1.045e-3)
    assert sink.requests[1].data_at == pytest.approx(1.055e-3)  # sent 10 us after connecting


def _prefork_at_saturation(log_us: float) -> float:
    """Voluntary reschedules per request of 8 prefork workers, 8 unpaced keep-alive
    connections, 1 KB replies; the host preset with the worker's work after its last send set
    to ``log_us`` (the request's total kept)."""
    p = load_preset("host")
    costs = dict(p.server_by_arch["prefork"])
    total = costs["parse_us"] + costs["log_us"]
    costs.update(log_us=log_us, parse_us=total - log_us)
    p = dataclasses.replace(p, server_by_arch={**p.server_by_arch, "prefork": costs})
    row = simulate_point("prefork", p, None, workload="closed", connection="keep-alive",
                         connections=8, workers=8, file_sizes="fixed:1", requests=2000,
                         seed=3)
    return row["voluntary_per_s"] / row["rps"]


def test_a_worker_busy_past_the_clients_turnaround_finds_its_next_request():
    """The host client's turnaround is client_us + two hops (about 24 us): a worker whose work
    after its last send is longer never blocks in recv() at saturation; one whose work is
    shorter blocks once a request."""
    p = load_preset("host")
    turnaround_us = p.workload.client_us + 2 * p.network.one_way_us
    assert _prefork_at_saturation(turnaround_us + 30.0) < 0.1
    assert _prefork_at_saturation(max(1.0, turnaround_us - 15.0)) == pytest.approx(1.0, abs=0.02)
