"""Bench windows in the models: a point simulated as ``arch-sim bench`` measures it, each window
a new wrk run whose connections the server accepts at its start and closes at its end."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import simpy

from arch_sim import ALL_ARCHS
from arch_sim.fidelity import plan_like
from arch_sim.models import bench_window, runner, simulate_point
from arch_sim.models.network import Connection, Request
from arch_sim.models.params import NetworkParams

CONNECTIONS = 16


def windowed(arch: str, connection: str, rps: float = 200.0, window: float | None = 1.0,
             requests: int = 400, **kw) -> dict:
    return simulate_point(arch, "host", rps, workload="closed", connection=connection,
                          connections=CONNECTIONS, requests=requests, seed=5,
                          bench_window_s=window, **kw)


class Counting(bench_window.WindowRecorder):
    """Counts the connections the server closed on its client's end of file."""

    seen: list[int] = []

    def closed(self, req) -> None:
        assert req.eof
        Counting.seen.append(req.conn is not None)
        super().closed(req)


@pytest.mark.parametrize("connection", ["keep-alive", "close"])
@pytest.mark.parametrize("arch", ALL_ARCHS)
def test_the_server_reads_every_end_of_file_a_window_sends(arch, connection, monkeypatch):
    """Every connection wrk leaves at a window's end is closed by the server (keep-alive: all
    of them; a connection per request: those opened and still waiting for their request)."""
    sent: list[int] = []
    stop_all = bench_window.WindowClients.stop_all

    def counting_stop(self) -> int:
        sent.append(stop_all(self))
        return sent[-1]

    Counting.seen = []
    monkeypatch.setattr(runner, "WindowRecorder", Counting)
    monkeypatch.setattr(bench_window.WindowClients, "stop_all", counting_stop)
    row = windowed(arch, connection)
    assert row["bench_windows"] == len(sent) == 2
    if connection == "keep-alive":
        assert sent == [CONNECTIONS, CONNECTIONS]
    assert sum(sent) > 0
    assert len(Counting.seen) == sum(sent)


@pytest.mark.parametrize("arch", ["state-group", "staged"])
def test_every_window_accepts_every_keep_alive_connection(arch):
    row = windowed(arch, "keep-alive")
    accepted = row["moved_accept_per_request"] * row["completions"]
    assert accepted == pytest.approx(CONNECTIONS * row["bench_windows"])
    steady = windowed(arch, "keep-alive", window=None)
    assert steady["moved_accept_per_request"] == 0


def test_counts_are_per_reply_inside_the_windows():
    row = windowed("state-group", "keep-alive", rps=400, window=1.0, requests=1000)
    assert row["bench_windows"] == bench_window.windows_for(1000, 400, 1.0) == 3
    assert row["duration_s"] == pytest.approx(3.0)
    assert row["rps"] == pytest.approx(400, rel=0.15)
    assert row["warmup"] == 0 and row["bench_window_s"] == 1.0


def test_a_blocking_design_pays_for_the_window_at_low_load():
    """Prefork: a worker woken in accept() for each new connection and in recv() for each end
    of file: two switches per connection more than the steady state's (the server's threads
    are asleep before the first window opens, so their start-up is not in it)."""
    kw = {"rps": 100.0, "window": 2.0, "requests": 800}
    win = windowed("prefork", "keep-alive", **kw)
    steady = windowed("prefork", "keep-alive", **{**kw, "window": None})
    per_conn = (win["reschedules_per_request"] - steady["reschedules_per_request"]) * (
        win["completions"] / (CONNECTIONS * win["bench_windows"]))
    assert 1.8 <= per_conn <= 2.2


@pytest.mark.parametrize("kw", [{"rps": None}, {"rps": 100.0, "window": 0.0},
                                {"rps": 100.0, "workload": "open"}])
def test_bench_windows_need_a_paced_closed_load(kw):
    kw = {"workload": "closed", **kw}
    with pytest.raises(ValueError, match="bench windows"):
        simulate_point("state-group", "host", kw.pop("rps"), connection="keep-alive",
                       requests=100, bench_window_s=kw.pop("window", 1.0), **kw)


def test_like_plans_paced_points_as_bench_windows_and_max_as_steady_state():
    measured = pd.DataFrame([
        {"source": "measured", "arch": "prefork", "target_rps": 100.0, "connections": 64,
         "duration_s": 3.004, "connection_mode": "keep-alive", "regime": "today"},
        {"source": "measured", "arch": "prefork", "target_rps": math.nan, "connections": 64,
         "duration_s": 3.1, "connection_mode": "keep-alive", "regime": "today"},
    ])
    jobs = plan_like(measured, "host", reps=1)
    windows = {j["target_rps"]: j["bench_window_s"] for j in jobs}
    assert windows == {100.0: 3.0, None: None}


def test_a_reply_counts_only_if_it_is_in_before_wrk_stops():
    env = simpy.Environment()
    rec = bench_window.WindowRecorder(env, 10, lambda: {"voluntary": 0.0}, window_s=1.0)
    rec.open_window()
    conn = Connection(NetworkParams())
    inside, late = (Request(conn, 1.0, 0.0, 0.0, False) for _ in range(2))
    assert rec.arrive(inside) and rec.arrive(late)
    rec.complete(inside, 0.5)
    rec.complete(late, 1.0)  # wrk has stopped: it never reads this reply
    rec.close_window()
    stats = rec.stats()
    assert stats["completions"] == 1 and stats["duration_s"] == 1.0
