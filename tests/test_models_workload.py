"""Workloads, presets and the one-row interface of the models."""

from __future__ import annotations

import math
import random
import re
import time

import pytest

from arch_sim import schema
from arch_sim.models import (
    MODELS,
    load_preset,
    point_seed,
    preset_names,
    simulate_point,
)
from arch_sim.models.network import KB, Connection
from arch_sim.models.params import PRESET_DIR, NetworkParams
from arch_sim.models.workload import FileSizes

# -- file sizes ------------------------------------------------------------------------------


def test_specweb99_class_mix(tmp_path):
    sizes = FileSizes("specweb99")
    rng = random.Random(5)
    draws = [sizes.draw(rng) for _ in range(40000)]
    shares = [
        sum(lo <= d < hi for d in draws) / len(draws)
        for lo, hi in ((0, KB), (KB, 10 * KB), (10 * KB, 100 * KB), (100 * KB, 1000 * KB))
    ]
    assert shares == pytest.approx([0.35, 0.50, 0.14, 0.01], abs=0.01)
    # 0.35 * 0.5 + 0.5 * 5 + 0.14 * 50 + 0.01 * 500 KB, with class 0's base 102 bytes
    assert sizes.mean_bytes() == pytest.approx(14.675 * KB, rel=1e-4)
    # the very files the harness generates for the real servers
    from arch_sim.harness.fileset import generate

    files = generate(tmp_path / "www", "specweb99")
    assert sorted(files.sizes) == sorted({int(d) for d in draws})
    assert sum(w * s for w, s in zip(files.weights, files.sizes, strict=True)) == \
        pytest.approx(sizes.mean_bytes())


def test_fixed_and_exponential_sizes():
    rng = random.Random(1)
    assert FileSizes("fixed:1").draw(rng) == KB
    draws = [FileSizes("exp:4").draw(rng) for _ in range(20000)]
    assert sum(draws) / len(draws) == pytest.approx(4 * KB, rel=0.03)
    for bad in ("pareto:1", "fixed:x", "exp:-1"):
        with pytest.raises(ValueError):
            FileSizes(bad)


def test_connection_drains_at_client_bandwidth():
    conn = Connection(NetworkParams(sndbuf_kb=64, client_mbit_s=8.0))  # 1 MB/s
    conn.write(64 * KB, 0.0)
    assert conn.free(0.0) == 0.0
    assert conn.writable(0.0, 10 * KB) == 0.0  # full: a write would block
    assert conn.drained_at(0.0) == pytest.approx(64 * KB / 1e6)
    half = conn.space_at(0.0)  # a blocked writer wakes when half is free
    assert half == pytest.approx(32 * KB / 1e6)
    assert conn.writable(half, 100 * KB) == pytest.approx(32 * KB)


# -- presets ---------------------------------------------------------------------------------


def test_shipped_presets():
    assert {"linux-2.2-1999", "linux-2.6-o1", "host"} <= set(preset_names())
    old, o1, host = (load_preset(n) for n in ("linux-2.2-1999", "linux-2.6-o1", "host"))
    assert 1 <= old.cpus <= 4
    assert old.scheduler.per_runnable_us > 0 and o1.scheduler.per_runnable_us == 0
    # the shipped host preset is a placeholder until `arch-sim calibrate` rewrites it
    assert host.placeholder or "measured by arch-sim calibrate" in \
        (PRESET_DIR / "host.toml").read_text()
    assert not old.placeholder and not o1.placeholder
    assert old.server.max_send_kb_per_pass == 16  # kHTTPd's DataSending


@pytest.mark.parametrize("name", ["linux-2.2-1999", "linux-2.6-o1", "host"])
def test_every_number_in_a_preset_says_where_it_comes_from(name):
    text = (PRESET_DIR / f"{name}.toml").read_text()
    for line in text.splitlines():
        if re.match(r"\s*[a-z_]+\s*=", line) and not line.lstrip().startswith(("name", "desc")):
            if line.split("=")[0].strip() == "placeholder":
                continue
            assert "#" in line and len(line.split("#", 1)[1].strip()) > 10, line


def test_preset_by_path_and_errors(tmp_path):
    text = (PRESET_DIR / "host.toml").read_text().replace('name = "host"', 'name = "mine"')
    path = tmp_path / "mine.toml"
    path.write_text(re.sub(r"(?m)^switch_us = [\d.]+", "switch_us = 9.5", text))
    mine = load_preset(str(path))
    assert mine.name == "mine" and mine.scheduler.switch_us == 9.5
    with pytest.raises(ValueError, match="linux-2.2-1999"):
        load_preset("no-such-preset")
    (tmp_path / "bad.toml").write_text("[scheduler]\nswitch_ms = 1\n")
    with pytest.raises(ValueError, match="switch_ms"):
        load_preset(tmp_path / "bad.toml")


def test_replace_changes_one_field():
    p = load_preset("linux-2.2-1999")
    q = p.replace(scheduler={"switch_us": 0.0}, cpus=1)
    assert q.scheduler.switch_us == 0.0 and q.cpus == 1
    assert q.scheduler.per_runnable_us == p.scheduler.per_runnable_us
    assert p.scheduler.switch_us == 6.0  # unchanged


# -- one load point -> one schema row --------------------------------------------------------


@pytest.mark.parametrize("arch", list(MODELS))
def test_a_row_follows_the_schema_and_repeats_exactly(arch):
    p = load_preset("linux-2.2-1999")
    kw = {"requests": 1500, "seed": 42, "rep": 3, "run_id": "t"}
    row = simulate_point(arch, p, 1500.0, **kw)
    again = simulate_point(arch, p, 1500.0, **kw)
    wall = ("wall_s", "sim_requests_per_wall_s")
    assert {k: v for k, v in row.items() if k not in wall} == \
        {k: v for k, v in again.items() if k not in wall}
    other = simulate_point(arch, p, 1500.0, **{**kw, "seed": 43})
    assert other["rps"] != row["rps"]
    df = schema.validate(schema.to_frame([row]))
    assert df.loc[0, "source"] == "simulated" and df.loc[0, "arch"] == arch
    assert row["server"] == f"simpy:{arch}" and row["preset"] == "linux-2.2-1999"
    assert row["voluntary_per_s"] + row["involuntary_per_s"] == \
        pytest.approx(row["reschedules_per_s"])
    assert 0 < row["sched_overhead_frac"] < row["cpu_util"] <= 1.0
    assert row["lat_p50_ms"] <= row["lat_p99_ms"]
    assert math.isnan(row["connections"]) and row["errors"] == 0 and row["rep"] == 3


def test_overload_is_refused_not_queued_forever():
    p = load_preset("linux-2.2-1999").replace(server={"max_connections": 100})
    row = simulate_point("state-group", p, 50000, cpus=1, requests=3000, seed=2)
    assert row["errors"] > 1000 and row["cpu_util"] > 0.99


def test_seeds_are_per_point_and_shared_by_both_archs():
    assert point_seed(1, 2000.0, 0) == point_seed(1, 2000.0, 0)
    assert len({point_seed(1, 2000.0, r) for r in range(5)}) == 5
    assert point_seed(1, 2000.0, 0) != point_seed(1, 2500.0, 0)
    assert point_seed(1, None, 0, 64) != point_seed(1, None, 0, 32)


#: prefork as a pool of the preset's size (its 64 workers' herd on one CPU of Linux 2.2 would
#: leave the CPU no room for what these tests look at)
SHAPE = {"prefork": {"workers": 10}}


@pytest.mark.parametrize("arch", list(MODELS))
def test_twenty_thousand_requests_take_seconds_not_minutes(arch):
    """~50% utilisation on one CPU: a few seconds even on a slow machine (typically < 1 s)."""
    rate = {"thread-per-request": 800.0, "state-group": 1000.0, "prefork": 800.0,
            "staged": 1000.0}[arch]
    start = time.perf_counter()
    row = simulate_point(arch, load_preset("linux-2.2-1999"), rate, cpus=1, requests=20000,
                         **SHAPE.get(arch, {}))
    assert time.perf_counter() - start < 20.0
    assert 0.3 < row["cpu_util"] < 0.7


@pytest.mark.parametrize("arch", list(MODELS))
def test_userspace_requests_are_served_by_the_userspace_server(arch):
    """A fifth of the requests go to the user-space server: they complete there, and its
    CPU time shows in the utilisation, while its own switches are not the server's."""
    p = load_preset("linux-2.2-1999")
    shape = SHAPE.get(arch, {})
    base = simulate_point(arch, p, 500, cpus=1, requests=3000, seed=6, **shape)
    handed = simulate_point(arch, p.replace(server={"userspace_frac": 0.2}), 500, cpus=1,
                            requests=3000, seed=6, **shape)
    free = simulate_point(arch, p.replace(server={"userspace_frac": 0.2,
                                                   "userspace_service_us": 0.0}), 500, cpus=1,
                          requests=3000, seed=6, **shape)
    assert handed["errors"] == 0 and handed["completions"] >= 0.98 * 3000
    assert handed["littles_rel_err"] < 0.02
    # ~100 req/s x 1 ms of user-space CPU each (against a user-space server that costs nothing)
    assert handed["cpu_util"] - free["cpu_util"] == pytest.approx(0.1, abs=0.02)
    # ... and none of its switches are the server's
    assert handed["reschedules_per_request"] == pytest.approx(free["reschedules_per_request"],
                                                              rel=0.1)
    if arch == "state-group":
        assert handed["batch_userspace"] >= 1.0
        assert math.isnan(base["batch_userspace"])


class _Think(random.Random):
    """Think times in order from a list (ms); the rounding draw is always 0."""

    def __init__(self, think_ms: list[float]) -> None:
        super().__init__(1)
        self.think_ms = list(think_ms)

    def expovariate(self, lambd: float) -> float:
        return self.think_ms.pop(0) * 1e-3

    def random(self) -> float:
        return 0.0


class _Sink:
    """Server and recorder stand-in: notes when each request arrives."""

    def __init__(self, env) -> None:
        self.env = env
        self.arrivals: list[float] = []
        self.requests: list = []
        self.on_complete = None

    def arrive(self, req) -> bool:
        req.id = len(self.requests)  # as the Recorder numbers what it admits
        return True

    def sent(self, req, t: float) -> None:
        req.arrived = t

    def data_ready(self, req) -> None:
        pass

    def submit(self, req) -> None:
        self.arrivals.append(round(self.env.now * 1e3, 6))
        self.requests.append(req)


def test_wrk_loop_fires_a_due_timer_when_it_next_wakes():
    """wrk's timers fire when its loop wakes: a reply that comes in after the edge fires them
    at once; with none, the loop's epoll_wait of whole ms, counted from when it went to sleep,
    ends a fraction of a ms past the edge (ae.c) - not on the edge itself."""
    import simpy

    from arch_sim.models.workload import Workload
    from arch_sim.models.wrk_clients import ClosedClients

    env = simpy.Environment()
    sink = _Sink(env)
    work = Workload(kind="closed", target_rps=1000.0, connections=2, file_sizes="fixed:1",
                    think_tick_ms=1.0)
    # first requests: no think (0 ms) for both; then 2 ms after each reply
    clients = ClosedClients(env, work, NetworkParams(), _Think([0, 0, 2, 2]), sink, sink)
    env.run(until=1e-6)
    assert sink.arrivals == [0.0, 0.0]
    a, b = sink.requests  # the first request of each connection

    # a reply at 0.3 ms: due on the 2 ms edge; the loop sleeps 2 whole ms from 0.3 ms
    env.run(until=0.3e-3)
    clients.reply_received(a, env.now)
    env.run(until=3e-3)
    assert sink.arrivals[2:] == [2.3]
    a2 = sink.requests[2]  # connection a's second request
    # a reply at 3.2 ms, due at 5 ms; another reply comes in at 5.1 ms and wakes the loop first
    env.run(until=3.2e-3)
    clients.reply_received(b, env.now)
    env.run(until=5.1e-3)
    clients.rng.think_ms = [10]  # the second reply's think time: far beyond this test
    clients.reply_received(a2, env.now)
    env.run(until=6e-3)
    assert sink.arrivals[3:] == [5.1]


def test_a_client_reconnects_only_after_handling_the_reply():
    """wrk closes and reopens the connection on its one thread after reading the reply (woken
    first if idle): the server sees the next connection wake + connect CPU after the reply."""
    import simpy

    from arch_sim.models.workload import Workload
    from arch_sim.models.wrk_clients import ClosedClients

    env = simpy.Environment()
    sink = _Sink(env)
    work = Workload(kind="closed", target_rps=None, connections=1, file_sizes="fixed:1",
                    connection="close", client_connect_us=30.0, client_wake_us=40.0)
    clients = ClosedClients(env, work, NetworkParams(), random.Random(1), sink, sink)
    env.run(until=1e-3)
    first = sink.requests[0]
    assert sink.arrivals == [0.0]  # the first connection at once
    clients.reply_received(first, env.now)  # its reply at 1 ms
    env.run(until=2e-3)
    assert sink.arrivals[1:] == [pytest.approx(1.0 + 0.040 + 0.030)]
