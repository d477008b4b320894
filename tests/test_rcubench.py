"""arch_sim.rcubench and calibrate's RCU step: RCU's grace-period thread per closed connection,
measured on bare sockets, fitted, and written beside the preset, where the model finds it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from test_byo import need_perf

from arch_sim import rcubench
from arch_sim.argtypes import options
from arch_sim.calibrate import add_arguments, write_rcu
from arch_sim.models import load_preset, rcu
from arch_sim.models.params import PRESET_DIR
from arch_sim.models.runner import simulate_point


def test_the_fit_recovers_the_grace_period_model():
    """Rows made by the model's own formula (plus the thread's background at rate 0) give back
    its runs per grace period and grace-period length."""
    rates = np.array([25.0, 50, 100, 200, 400, 800, 1600])
    switches = rcubench.predicted(rates, 0.8, 0.012) + 0.4
    rows = [{"rate": 0.0, "closes_per_s": 0.0, "gp_thread_switches_per_s": 0.4}] + [
        {"rate": r, "closes_per_s": r, "gp_thread_switches_per_s": s}
        for r, s in zip(rates, switches, strict=True)]
    runs_per_gp, gp_ms = rcubench.fit(rows)
    assert runs_per_gp == pytest.approx(0.8, rel=0.01) and gp_ms == pytest.approx(12.0)


def test_only_the_grace_period_threads_switches_on_the_cpu_count():
    def line(cpu: int, t: float, prev: str, nxt: str) -> str:
        return (f"   12 [{cpu:03d}] {t:.6f}: sched:sched_switch: prev_comm={prev} prev_pid=1 "
                f"prev_prio=120 prev_state=S ==> next_comm={nxt} next_pid=2 next_prio=120")

    text = "\n".join([
        line(0, 1.000000, "swapper/0", "rcu_preempt"), line(0, 1.000010, "rcu_preempt",
                                                              "swapper/0"),
        line(1, 1.000020, "swapper/1", "rcu_preempt"),  # another CPU
        line(0, 1.000030, "swapper/0", "python"),  # another thread
        line(0, 1.000100, "python", "rcu_preempt"), line(0, 1.000130, "rcu_preempt", "python"),
        line(0, 3.0, "swapper/0", "rcu_preempt"),  # after the span
    ])
    count, run_us = rcubench.gp_thread_switches(text, 0.5, 2.0, cpu=0)
    assert count == 4 and run_us == pytest.approx(20.0)


def _preset_copy(tmp_path, runs_per_gp: float | None):
    out = tmp_path / "mine.toml"
    shutil.copy(PRESET_DIR / "host.toml", out)
    if runs_per_gp is not None:
        (tmp_path / "mine.rcu.json").write_text(json.dumps(
            {"runs_per_gp": runs_per_gp, "gp_ms": 10.0, "run_us": 10.0, "command": "test"}))
    return out


def test_a_presets_rcu_inputs_are_read_beside_its_file_first(tmp_path):
    """A preset written elsewhere (``calibrate --out``) uses the .rcu.json beside it; without
    one, the packaged preset's of the same name, as before."""
    mine = _preset_copy(tmp_path, 3.0)
    assert rcu.load_rcu("host", str(mine)).runs_per_gp == 3.0
    packaged = rcu.load_rcu("host")
    (tmp_path / "bare").mkdir()
    bare = _preset_copy(tmp_path / "bare", None)
    assert rcu.load_rcu("host", str(bare)) == packaged

    def cpu_switches(preset) -> float:
        return simulate_point("state-group", load_preset(preset), 100, workload="open",
                              requests=400)["cpu_switches_per_request"]

    (tmp_path / "mine.rcu.json").write_text(json.dumps(
        {"runs_per_gp": 0.0, "gp_ms": 10.0, "run_us": 10.0}))
    none = cpu_switches(mine)
    (tmp_path / "mine.rcu.json").write_text(json.dumps(
        {"runs_per_gp": 4.0, "gp_ms": 10.0, "run_us": 10.0}))
    assert cpu_switches(mine) > none + 3.0  # ~8 switches a close: the thread runs 4x a period


def test_calibrate_writes_the_rcu_inputs_beside_the_preset(tmp_path, capsys):
    need_perf()
    out = _preset_copy(tmp_path, None)
    args = options(add_arguments, out=str(out), rcu_seconds=0.3)
    path = write_rcu(args, out, rates=(100.0, 400.0))  # calibrate's own: rcubench.RATES
    assert path == tmp_path / "mine.rcu.json"
    data = json.loads(path.read_text())
    assert [r["rate"] for r in data["rows"]] == [0.0, 100.0, 400.0]
    assert data["rows"][1]["gp_thread_switches_per_s"] > 0  # closes wake the thread
    assert data["runs_per_gp"] >= 0 and 1.0 <= data["gp_ms"] < 100.0
    assert data["command"].startswith("arch-sim calibrate") and "grace-period" in data["what"]
    assert rcu.load_rcu("host", str(out)).runs_per_gp == data["runs_per_gp"]
    assert "wrote mine.rcu.json" in capsys.readouterr().out


def test_without_perf_calibrate_says_so_and_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(rcubench.shutil, "which", lambda name: None)
    out = _preset_copy(tmp_path, None)
    assert write_rcu(options(add_arguments, out=str(out)), out) is None
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "perf not installed" in err[0] and "host.rcu.json" in err[0]
    assert not (tmp_path / "mine.rcu.json").exists()


@pytest.mark.parametrize("quick", [True, False])
def test_a_full_reproduce_measures_the_grace_periods_and_a_quick_one_does_not(
        tmp_path, monkeypatch, quick):
    """reproduce's calibrate step: the full run writes host.rcu.json beside its host.toml (so
    its own simulations use it), the quick one keeps the packaged inputs.  The host and server
    measurements are stubbed: this checks the step's wiring, which the 18-minute full run
    alone would otherwise exercise."""
    from arch_sim import calibrate, reproduce

    monkeypatch.setattr(calibrate, "measure", lambda args, archs=None: {"servers_skipped": None})
    monkeypatch.setattr(calibrate, "write_preset", lambda m, out: out)
    called = []
    monkeypatch.setattr(calibrate, "write_rcu", lambda args, out: called.append(out) or out)
    run = reproduce.Reproduction(options(reproduce.add_arguments, out=tmp_path / "r",
                                         quick=quick))
    run.calibrate()
    assert called == ([] if quick else [tmp_path / "r" / "host.toml"])
