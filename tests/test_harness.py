"""The measurement harness: a real short sweep of both servers, and what it does on failure."""

from __future__ import annotations

import json
import math
import threading
import time

import pandas as pd
import psutil
import pytest
from conftest import have_module, need_binary, need_wrk

from arch_sim import cli, schema
from arch_sim.argtypes import UsageError
from arch_sim.harness.plan import parse_loads
from arch_sim.harness.wrk import lua_script

pytestmark = pytest.mark.real


def test_parse_loads():
    assert parse_loads("100, 2000,max") == [100.0, 2000.0, None]
    assert parse_loads(["100,2000", "max"]) == [100.0, 2000.0, None]  # as argparse gives them
    with pytest.raises(UsageError, match="not a number"):
        parse_loads("100,lots")
    with pytest.raises(UsageError, match="positive"):
        parse_loads("0")


def test_lua_paces_with_exponential_think_times_and_picks_urls_by_weight():
    paced = lua_script(["/a", "/b"], [3, 1], mean_think_ms=40.0, seed=7)
    assert "function delay()" in paced and "math.log(1 - math.random())" in paced
    assert "local mean_ms = 40.000000" in paced
    assert "0.750000000, 1.000000000" in paced  # cumulative weights
    unpaced = lua_script(["/a"], mean_think_ms=0)
    assert "function delay()" not in unpaced
    assert 'wrk.headers["Connection"] = "close"' in lua_script(["/a"], keep_alive=False)


def test_missing_wrk_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert cli.main(["bench", "--quick", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "wrk not found" in err and "apt-get install -y wrk" in err
    assert not (tmp_path / "run").exists()


def test_a_folder_holding_a_run_is_not_appended_to(tmp_path, capsys):
    need_wrk()
    out = tmp_path / "run"
    out.mkdir()
    (out / "measurements.csv").write_text("source,arch\nmeasured,old-run\n")
    assert cli.main(["bench", "--quick", "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "measurements.csv").read_text() == "source,arch\nmeasured,old-run\n"
    assert not (out / "meta.json").exists()


def test_row_writer_refuses_a_csv_with_other_columns(tmp_path):
    path = tmp_path / "rows.csv"
    with schema.RowWriter(path, ["extra"]) as rows:
        rows.write({"source": "simulated", "extra": 1})
    with schema.RowWriter(path, ["extra"]) as rows:  # same columns: appends
        rows.write({"source": "simulated", "extra": 2})
    assert list(pd.read_csv(path)["extra"]) == [1, 2]
    before = path.read_bytes()
    with pytest.raises(ValueError, match="other columns"):
        schema.RowWriter(path, ["extra", "more"])
    assert path.read_bytes() == before


@pytest.fixture(scope="module")
def short_sweep(tmp_path_factory):
    """Both architectures, a paced low point and an unpaced one, 2 s each."""
    need_wrk()
    if not have_module("real_servers.stategroup.__main__"):
        pytest.skip("the state-group server is not built yet")
    out = tmp_path_factory.mktemp("sweep") / "run"
    code = cli.main(["bench", "--loads", "200,max", "--duration", "2", "--warmup", "1",
                     "--reps", "1", "--out", str(out), "--no-plots"])
    assert code == 0
    return out


def test_sweep_rows_follow_the_schema(short_sweep):
    df = schema.load(short_sweep)
    assert set(df["source"]) == {"measured"}
    assert len(df) == 4
    assert sorted(df["arch"].unique()) == ["state-group", "thread-per-request"]
    for arch in ("state-group", "thread-per-request"):
        sub = df[df["arch"] == arch]
        assert sorted(sub["target_rps"].fillna(-1)) == [-1, 200]
    assert (df["errors"] == 0).all()
    assert (df["rps"] > 0).all() and (df["reschedules_per_s"] > 0).all()
    # the machine's speed before each point and the steal in each window (machine_state)
    assert (df["reference_us"] > 0).all()
    assert df["steal_frac"].between(0, 1).all()
    meta = json.loads((short_sweep / "meta.json").read_text())
    assert meta["complete"] is True
    speed = meta["machine_state"]["reference_us"]
    assert speed["min"] == df["reference_us"].min() and speed["max"] == df["reference_us"].max()
    for key in ("host", "kernel", "cpu_model", "python", "wrk", "git", "pinning", "args",
                "started", "ended"):
        assert key in meta, key


def test_wrk_and_server_agree_on_request_counts(short_sweep):
    df = schema.load(short_sweep)
    ratio = df["server_requests"] / df["wrk_requests"]
    # the server also counts requests in flight when wrk stops and the status probes
    assert ((ratio > 0.95) & (ratio < 1.05)).all(), ratio.tolist()


def test_reschedule_sources_agree(short_sweep):
    df = schema.load(short_sweep)
    perf = df["perf_reschedules_per_s"].dropna()
    if len(perf):  # perf's window opens slightly before wrk's and closes after it
        ratio = perf / df.loc[perf.index, "reschedules_per_s"]
        assert ((ratio > 0.8) & (ratio < 1.5)).all(), ratio.tolist()
    # the whole system switches at least as often as the server alone
    assert (df["system_ctxt_per_s"] >= df["reschedules_per_s"] * 0.9).all()


def test_every_switch_on_the_server_cpu_is_counted_idle_included(short_sweep):
    """The seed's count: perf -a on the server's CPU.  At 200 req/s the CPU goes idle between
    requests, and each time it does, the switch from the idle task back to the server is one the
    server's getrusage never sees (a switch between two server threads counts once in both), so
    the CPU-wide count exceeds the server's own; the idle background measured before the point
    is recorded beside it.  By how much varies: state-group's one thread left its CPU idle after
    nearly every request (0.89-1.02 extra switches a request in four of these sweeps), the
    pool's margin ranged from 0.25 to 0.87 in the same four (why it moves is not pinned down),
    so only state-group is held to one extra switch every other request."""
    from arch_sim.harness.counters import PerfCounter

    if not PerfCounter.available()[0]:
        pytest.skip("perf stat is not usable here")
    df = schema.load(short_sweep)
    idle = df["cpu_switches_idle_per_s"]
    assert idle.notna().all() and (idle >= 0).all()
    low = df[df["target_rps"] == 200]
    extra = (low["cpu_switches_per_s"] - low["reschedules_per_s"]) / low["rps"]
    shown = low.assign(extra=extra)[["arch", "cpu_switches_per_s", "reschedules_per_s", "rps",
                                     "extra"]]
    assert (extra > 0.1).all(), shown
    assert (extra[low["arch"] == "state-group"] > 0.5).all(), shown
    # per request, the load's switches: the background taken off
    expect = (low["cpu_switches_per_s"] - low["cpu_switches_idle_per_s"]) / low["rps"]
    assert (abs(low["cpu_switches_per_request"] - expect) < 0.05 * expect + 0.01).all()


def test_the_cpu_count_is_traced_at_paced_loads_and_counted_by_perf_stat_unpaced(short_sweep):
    """A paced point's switches on the server's CPU come from a trace that leaves other
    processes' runs out (``cpu_switches_foreign_per_s`` says how many it left); an unpaced one
    from perf stat, so that a saturated server is not charged a tracepoint per switch."""
    meta = json.loads((short_sweep / "meta.json").read_text())
    if not meta["perf"].get("cpu_trace"):
        pytest.skip("perf may not record the scheduler's tracepoints here")
    df = schema.load(short_sweep)
    foreign = df.set_index(df["target_rps"].fillna(-1))["cpu_switches_foreign_per_s"]
    assert foreign.loc[200].notna().all() and (foreign.loc[200] >= 0).all()
    assert foreign.loc[-1].isna().all()


def test_old_design_reschedules_per_request_new_design_stops(short_sweep):
    df = schema.load(short_sweep)
    old = df[df["arch"] == "thread-per-request"]
    assert (old["reschedules_per_request"] >= 0.5).all(), old["reschedules_per_request"].tolist()
    new = df[df["arch"] == "state-group"]
    new = new.set_index(new["target_rps"].fillna(-1))
    unpaced, low = new.loc[-1, "reschedules_per_request"], new.loc[200, "reschedules_per_request"]
    assert unpaced < 0.2, unpaced
    assert unpaced < low


def test_a_server_dying_mid_sweep_keeps_rows_and_says_incomplete(tmp_path, capsys):
    need_wrk()
    out = tmp_path / "run"
    result: dict = {}
    argv = ["bench", "--arch", "thread-per-request", "--loads", "100,150,200", "--duration", "1",
            "--warmup", "0", "--reps", "1", "--out", str(out), "--no-plots"]
    runner = threading.Thread(target=lambda: result.setdefault("code", cli.main(argv)))
    runner.start()
    csv = out / "measurements.csv"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if csv.exists() and len(csv.read_text().splitlines()) >= 2:
            break
        time.sleep(0.1)
    victims = [p for p in psutil.Process().children(recursive=True)
               if "real_servers.threaded" in " ".join(p.cmdline())]
    assert victims, "the server process was not found"
    for proc in victims:
        proc.kill()
    runner.join(60)
    assert result.get("code") == 1
    meta = json.loads((out / "meta.json").read_text())
    assert meta["complete"] is False and "log" in meta["error"]
    df = pd.read_csv(csv)
    assert 1 <= len(df) < 3  # the finished rows survive
    assert not math.isnan(df["rps"].iloc[0])
    assert "server exited" in capsys.readouterr().err


def test_peers_run_through_the_same_sweep(tmp_path, monkeypatch):
    """nginx and the stdlib server, from a relative --out (nginx resolves paths oddly)."""
    need_wrk()
    import argparse

    from arch_sim.harness import bench
    from arch_sim.harness.peers import nginx_binary

    need_binary("nginx", nginx_binary)
    monkeypatch.chdir(tmp_path)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--peer", "nginx", "--peer", "python-http-server", "--loads",
                              "300", "--duration", "1", "--warmup", "0", "--reps", "1",
                              "--out", "run", "--no-plots", "--peers-only"])
    plan = bench.make_plan(args)
    assert plan.names == [("nginx", None), ("python-http-server", None)]
    assert bench.Bench(plan, args).run() == 0
    df = schema.load(tmp_path / "run")
    assert sorted(df["arch"]) == ["nginx", "python-http-server"]
    assert (df["errors"] == 0).all()
    # the stdlib server stalls ~40 ms per response (Nagle + delayed ACK): few requests in 1 s
    assert (df["wrk_requests"] >= 10).all() and (df["rps"] > 5).all()
    by_arch = df.set_index("arch")
    # nginx has no /server-status: perf over its process tree, else its live threads in /proc
    from arch_sim.harness.counters import PerfCounter

    expected = "perf" if PerfCounter.available()[0] else "proc"
    assert by_arch.loc["nginx", "reschedule_source"] == expected
    assert by_arch.loc["python-http-server", "reschedule_source"] == "getrusage"
    assert (df["reschedules_per_s"] > 0).all()


def test_both_workloads_in_one_run(tmp_path):
    """--connection keep-alive,close sweeps every server once per mode, rows labelled."""
    need_wrk()
    import argparse

    from arch_sim.harness import bench
    from arch_sim.harness.peers import nginx_binary

    need_binary("nginx", nginx_binary)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--peer", "nginx", "--connection", "keep-alive,close", "--loads",
                              "300", "--duration", "1", "--warmup", "0", "--reps", "1",
                              "--out", str(tmp_path / "run"), "--no-plots", "--peers-only"])
    plan = bench.make_plan(args)
    assert plan.modes == ["keep-alive", "close"]
    assert plan.names == [("nginx", None)]
    assert bench.Bench(plan, args).run() == 0
    df = schema.load(tmp_path / "run")
    assert list(zip(df["connection_mode"], df["regime"], strict=True)) == [
        ("keep-alive", "today"), ("close", "seed")]
    assert (df["errors"] == 0).all() and (df["rps"] > 0).all()
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert meta["connection_modes"] == ["keep-alive", "close"]
    assert meta["regime"] == ["today", "seed"]


def test_peers_only_runs_no_server_of_ours():
    import argparse

    from arch_sim.harness import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    plan = bench.make_plan(parser.parse_args(["--peer", "nginx"]))
    assert [n for n, _ in plan.names] == ["thread-per-request", "state-group", "nginx"]
    plan = bench.make_plan(parser.parse_args(["--peer", "nginx", "--peers-only"]))
    assert plan.names == [("nginx", None)]
    plan = bench.make_plan(parser.parse_args(
        ["--peers-only", "--server-cmd", "python3 -m http.server {port}", "--server-name", "mine"]))
    assert plan.names == [("mine", None)]


@pytest.mark.parametrize(("argv", "words"), [
    (["--peers-only"], ["--peer NAME", "--server-cmd"]),
    (["--peers-only", "--peer", "nginx", "--arch", "staged"], ["--arch staged", "--peers-only"]),
])
def test_peers_only_without_peers_or_with_arch_is_one_line(argv, words, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["bench", *argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not out.exists()


@pytest.mark.parametrize("mode", ["keepalive", "close,sometimes"])
def test_a_bad_connection_mode_is_one_line_and_exit_2(mode, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["bench", "--connection", mode, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "--connection" in err and len(err.splitlines()) == 1
    assert "keep-alive,close" in err
    assert not out.exists()


def test_missing_peer_binary_names_the_package(monkeypatch, tmp_path):
    import shutil

    from arch_sim.harness import peers
    from arch_sim.harness.servers import ServerError

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ServerError, match="apt-get install -y nginx-light"):
        peers.start_peer("nginx", tmp_path, None, tmp_path)


def test_one_cpu_list_grammar_for_the_harness_and_the_servers():
    from arch_sim.harness import plan as bench_plan
    from real_servers.core.serving import cpu_list
    from real_servers.stategroup.config import parse_cpus as server_cpus

    assert cpu_list("0,2-3") == (0, 2, 3) and cpu_list("1") == (1,)
    assert server_cpus("0-1") == (0, 1)
    assert bench_plan.parse_cpus("0-1") == [0, 1] and bench_plan.parse_cpus(["0", "1"]) == [0, 1]
    with pytest.raises(ValueError):
        cpu_list("a-b")


def test_a_quick_bench_and_no_cpu_trace_count_with_perf_stat(tmp_path):
    """The trace of the server's CPUs costs a perf record session a window (about 2 s): a
    quick bench and ``--no-cpu-trace`` (calibrate's benches, which use no switch count) count
    with perf stat instead."""
    from arch_sim.argtypes import options
    from arch_sim.harness import bench
    from arch_sim.harness.counters import PerfCounter
    from arch_sim.harness.cpu_trace import CpuSwitchTrace

    need_wrk()
    if not (PerfCounter.available()[0] and CpuSwitchTrace.available()):
        pytest.skip("perf may not record the scheduler's tracepoints here")

    def traced(**values) -> bool:
        args = options(bench.add_arguments, out=str(tmp_path / "run"), **values)
        return bench.Bench(bench.make_plan(args), args).trace_ok

    assert traced()
    assert not traced(quick=True)
    assert not traced(no_cpu_trace=True)
