"""benchmarks/calibrate_from_bench.py: a preset whose per-design inputs are a bench run's own."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from helpers import benchmark

from arch_sim import ALL_ARCHS
from arch_sim.models import load_preset

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "results" / "archs-bench-2026-11-30-c"


def mean(rows: pd.DataFrame, arch: str, mode: str, rps: float | None, column: str) -> float:
    sel = rows[(rows["arch"] == arch) & (rows["connection_mode"] == mode)]
    sel = sel[sel["target_rps"].isna()] if rps is None else sel[sel["target_rps"] == rps]
    return float(sel[column].mean())


def test_every_per_design_input_is_the_runs_and_the_host_inputs_are_kept(tmp_path):
    script = benchmark("calibrate_from_bench")
    out = tmp_path / "fromrun.toml"
    assert script.main([str(RUN), str(out), "--paced", "2000", "--no-solve"]) == 0
    rows = pd.read_csv(RUN / "measurements.csv")
    cal = json.loads(out.with_suffix(".calibration.json").read_text())
    shipped = json.loads((script.PRESETS / "host.calibration.json").read_text())
    for arch in ALL_ARCHS:
        server, closing = cal["servers"][arch], cal["close"][arch]
        assert server["cpu_us_per_request"] == mean(rows, arch, "keep-alive", None,
                                                    "cpu_us_per_request")
        assert server["paced"]["target_rps"] == 2000
        assert server["paced"]["cpu_us_per_request"] == mean(rows, arch, "keep-alive", 2000,
                                                             "cpu_us_per_request")
        assert closing["rps"] == mean(rows, arch, "close", None, "rps")
    # wrk's costs as calibrate takes them: against the fastest server
    wrk = min(mean(rows, arch, "keep-alive", None, "client_cpu_us_per_request")
              for arch in ALL_ARCHS)
    wrk_close = min(mean(rows, arch, "close", None, "client_cpu_us_per_request")
                    for arch in ALL_ARCHS)
    workload = tomllib.loads(out.read_text())["workload"]
    assert workload["client_us"] == pytest.approx(wrk, abs=0.006)
    assert workload["client_close_us"] == pytest.approx(wrk_close - wrk, abs=0.006)
    for host_input in ("switch", "wakeup", "futex", "cpu_jitter", "cold_cache"):
        assert cal[host_input] == shipped[host_input]
    assert out.with_name("fromrun.rcu.json").read_bytes() == (
        script.PRESETS / "host.rcu.json").read_bytes()
    assert load_preset(out).name == "fromrun"


def test_a_decay_time_set_by_hand_is_used_and_says_so(tmp_path):
    """``--cold-decay-ms``: the preset's decay is the one given, its comment and the
    calibration record say it was set by hand; every other host input is kept."""
    script = benchmark("calibrate_from_bench")
    out = tmp_path / "decay.toml"
    assert script.main([str(RUN), str(out), "--no-solve", "--cold-decay-ms", "2"]) == 0
    line = next(x for x in out.read_text().splitlines() if x.startswith("cold_decay_ms"))
    assert line.startswith("cold_decay_ms = 2.00 ") and "set by hand" in line
    assert "measured by" not in line
    assert load_preset(out).scheduler.cold_decay_ms == 2.0
    cal = json.loads(out.with_suffix(".calibration.json").read_text())
    assert cal["cold_cache"] == {"decay_ms": 2.0, "set_by_hand": True}
    shipped = json.loads((script.PRESETS / "host.calibration.json").read_text())
    for host_input in ("switch", "wakeup", "futex", "cpu_jitter"):
        assert cal[host_input] == shipped[host_input]


def test_what_calibrate_measures_beside_the_bench_is_kept(tmp_path, monkeypatch):
    """calibrate traces prefork's work after the last send (arch_sim/aftersend.py), reads the
    staged server's CPU thread by thread (arch_sim/threadcpu.py) and the state-group worker's
    state by state (arch_sim/statecpu.py); a bench run's rows hold none of them, so the preset
    made from them keeps the packaged ones."""
    script = benchmark("calibrate_from_bench")
    packaged = json.loads((script.PRESETS / "host.calibration.json").read_text())
    found = {"after_send_us": 25.0, "cpu_us_per_request": 100.0, "stretches": 9000,
             "share": 0.25, "seconds": 3.0}
    threads = {"shares": {"parse": 0.3, "send": 0.5, "log": 0.2}, "requests": 7000,
               "us_per_request": {"wait_headers": 12.0, "send_data": 20.0, "logging": 8.0},
               "cpu_us_per_request": 40.0, "seconds": 2.0}
    states = {"shares": {"parse": 0.4, "send": 0.55, "log": 0.05}, "requests": 9000,
              "us_per_request": {}, "outside_us_per_request": 0.7, "passes_per_request": 0.02,
              "clock_us": 0.7}
    packaged["servers"]["prefork"]["after_send"] = found
    packaged["servers"]["staged"]["threads_cpu"] = threads
    packaged["servers"]["state-group"]["states_cpu"] = states
    presets = tmp_path / "presets"
    presets.mkdir()
    (presets / "host.calibration.json").write_text(json.dumps(packaged))
    (presets / "host.rcu.json").write_bytes((script.PRESETS / "host.rcu.json").read_bytes())
    monkeypatch.setattr(script, "PRESETS", presets)
    out = tmp_path / "kept.toml"
    assert script.main([str(RUN), str(out), "--no-solve"]) == 0
    cal = json.loads(out.with_suffix(".calibration.json").read_text())
    assert cal["servers"]["prefork"]["after_send"] == found
    assert cal["servers"]["prefork"]["cpu_us_per_request"] == mean(
        pd.read_csv(RUN / "measurements.csv"), "prefork", "keep-alive", None,
        "cpu_us_per_request")  # the rest is the run's
    assert any(line.startswith("log_us") and "after the last send" in line
               for line in out.read_text().splitlines())
    assert cal["servers"]["staged"]["threads_cpu"] == threads
    assert cal["servers"]["state-group"]["states_cpu"] == states
    assert any(line.startswith("parse_us") and "7000 requests" in line
               for line in out.read_text().splitlines())
