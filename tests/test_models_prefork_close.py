"""The prefork model with a connection per request: the work a worker does after its last send
(the lingering close, its counters, the way back to accept()) runs as slowly as the rest of the
burst that sent the reply - measured on the real server (benchmarks/prefork_close_race.bt), it
is about a fifth of the request's CPU at every load, cold or warm."""

from __future__ import annotations

import random

import pytest
import simpy

from arch_sim.models import load_preset
from arch_sim.models.network import Connection, Request
from arch_sim.models.prefork import Prefork
from arch_sim.models.scheduler import US, Scheduler
from arch_sim.models.thread_per_request import ThreadPerRequest


class Replies:
    """A recorder stub: when the worker finished each reply's burst, and when the reply left."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.ends: list[float] = []

    def complete(self, req: Request, t: float) -> None:
        self.ends.append(self.env.now)

    def closed(self, req: Request) -> None:
        pass


class Written(Connection):
    """A connection that notes when each write left."""

    __slots__ = ("sent",)

    def __init__(self, net) -> None:
        super().__init__(net)
        self.sent: list[float] = []

    def write(self, nbytes: float, t: float) -> None:
        self.sent.append(t)
        super().write(nbytes, t)


def one_reply(refill_us: float, idle_s: float, arch: type = Prefork) -> tuple[float, float]:
    """One worker serves one connection whose request arrives after the CPU idled ``idle_s``:
    (time from the reply's last write to the end of its burst, the log work it had)."""
    params = load_preset("host").for_arch("prefork").replace(
        scheduler={"cpu_time_cv": 0.0}, server={"cold_refill_us": refill_us, "workers": 1})
    env = simpy.Environment()
    sched = Scheduler(env, 1, params.scheduler, random.Random(1))
    replies = Replies(env)
    if arch is Prefork:
        model = Prefork(env, sched, params, replies, workers=1)
    else:
        model = ThreadPerRequest(env, sched, params, replies, threads=1)
    conn = Written(params.network)
    sent = conn.sent
    req = Request(conn, 1024.0, 0.0, idle_s, True, closes=True)

    def arrive():
        yield env.timeout(1e-6)
        model.submit(req)
        yield env.timeout(idle_s)
        model.data_ready(req)

    env.process(arrive())
    env.run(until=idle_s + 0.05)
    assert len(replies.ends) == 1 and sent
    log_work = (params.server.log_us + params.server.close_us) * US
    return replies.ends[0] - sent[-1], log_work


def test_warm_burst_sends_log_work_before_its_end() -> None:
    """No refill: the reply leaves the log work (and close) before the burst ends."""
    after, log_work = one_reply(0.0, 0.02)
    assert after == pytest.approx(log_work, rel=1e-9)


def test_cold_burst_runs_the_work_after_the_send_slower() -> None:
    """A burst that paid a cache refill ran all its code slower: the time from the reply's
    last write to accept() grows by the same factor as the whole burst."""
    warm_after, log_work = one_reply(0.0, 0.02)
    cold_after, _ = one_reply(1000.0, 0.02)  # 20 ms idle: most of the refill is paid
    assert cold_after > 3.0 * warm_after
    # the thread pool's model keeps its costed log work (other models' rows unchanged)
    pool_after, pool_log = one_reply(1000.0, 0.02, arch=ThreadPerRequest)
    assert pool_after == pytest.approx(pool_log, rel=1e-9)
