"""`arch-sim reproduce --quick` end to end into a temp folder, and `arch-sim calibrate`."""

from __future__ import annotations

import json
import time
import tomllib

import pytest
from conftest import need_wrk

from arch_sim import cli, schema
from arch_sim.hostbench import context_switch_us, wakeup_latency_us
from arch_sim.models import load_preset

pytestmark = pytest.mark.real

FIGURES = ("seed_regime", "overlay_today", "overlay_seed", "eras", "sensitivity")


def test_switch_cost_is_physically_plausible():
    cost = context_switch_us(iterations=3000, repeats=1)
    # a switch costs something, and far less than a scheduler tick
    assert 0.05 < cost.switch_us < 200
    assert cost.roundtrip_us > 2 * cost.pipe_pair_us
    wake = wakeup_latency_us(samples=200)
    assert 0 < wake["median_us"] <= wake["p99_us"] < 20_000
    # the sleeper's CPU idle for a chosen time: the waker spins that long between writes
    t0 = time.perf_counter()
    spun = wakeup_latency_us(samples=50, gap_us=2000.0)
    assert time.perf_counter() - t0 >= 50 * 0.002
    assert 0 < spun["median_us"] <= spun["p99_us"] < 20_000


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    need_wrk()
    out = tmp_path_factory.mktemp("reproduce") / "run"
    # one-second windows: the pipeline end to end, not numbers worth keeping
    assert cli.main(["reproduce", "--quick", "--window", "1", "--out", str(out)]) == 0
    return out


def test_every_file_is_there(quick_run):
    expected = ["REPORT.md", "meta.json", "host.toml", "host.calibration.json", "fidelity.csv",
                "eras.csv", "sensitivity.csv",
                "measured-today/measurements.csv", "measured-today/meta.json",
                "measured-seed/measurements.csv", "measured-seed/meta.json",
                "simulated-host/simulated.csv", "simulated-eras/simulated.csv",
                "sensitivity/simulated.csv"]
    expected += [f"{name}.{ext}" for name in FIGURES for ext in ("png", "svg")]
    expected += [f"measured-seed/reschedules_vs_load.{ext}" for ext in ("png", "svg")]
    missing = [p for p in expected if not (quick_run / p).is_file()]
    assert not missing, missing
    for p in expected:
        assert (quick_run / p).stat().st_size > 0, p


def test_meta_and_preset(quick_run):
    meta = json.loads((quick_run / "meta.json").read_text())
    for regime in ("today", "seed"):  # --window reached every measured window
        bench_meta = json.loads((quick_run / f"measured-{regime}" / "meta.json").read_text())
        assert (bench_meta["duration_s"], bench_meta["warmup_s"]) == (1.0, 0.5)
    assert meta["complete"] is True and meta["mode"] == "quick" and not meta["skipped"]
    cal = json.loads((quick_run / "host.calibration.json").read_text())
    # the quick run calibrates the two designs it measures; the others' costs are placeholders
    assert cal["switch"]["switch_us"] > 0 and set(cal["servers"]) == {
        "thread-per-request", "state-group"}
    toml = (quick_run / "host.toml").read_text()
    for arch in ("prefork", "staged"):
        section = toml[toml.index(f"[server.{arch}]"):].split("\n\n", 1)[0]
        assert "placeholder until arch-sim calibrate" in section
    # the connection-per-request runs that price a connection of its own
    assert {"state-group", "thread-per-request", "thread-per-connection"} <= set(cal["close"])
    tomllib.loads((quick_run / "host.toml").read_text())
    params = load_preset(quick_run / "host.toml")  # the models load it
    assert params.cpus >= 1


def test_both_workloads_both_counts_and_fidelity_covers_every_measured_point(quick_run):
    import pandas as pd

    today = schema.load(quick_run / "measured-today")
    seed = schema.load(quick_run / "measured-seed")
    simulated = schema.load(quick_run / "simulated-host")
    assert set(today["regime"]) == {"today"} and set(seed["regime"]) == {"seed"}
    assert set(seed["connection_mode"]) == {"close"}
    # the seed regime: both thread-per-request shapes and the state-group server
    assert set(seed["threads"].dropna().astype(int)) == {0, 64}
    assert set(seed["arch"]) == {"thread-per-request", "state-group"}
    assert set(simulated["source"]) == {"simulated"}
    assert set(simulated["regime"]) == {"today", "seed"}
    for df in (today, seed, simulated):  # both counts on every row
        assert df["reschedules_per_request"].notna().all()
        assert df["cpu_switches_per_request"].notna().all()
    fidelity = pd.read_csv(quick_run / "fidelity.csv")
    measured = pd.concat([today, seed])
    points = measured.groupby(["regime", "arch", measured["threads"].fillna(-1),
                               measured["target_rps"].fillna(-1)]).ngroups
    assert len(fidelity) == 2 * points  # every point, both counts
    assert set(fidelity["count"]) == {"server", "cpu"}
    assert {"regime", "arch", "within", "log_ratio"} <= set(fidelity.columns)


def test_report_names_the_numbers_and_figures(quick_run):
    report = (quick_run / "REPORT.md").read_text()
    for needle in ("## The seed's sentences beside the numbers", "15000 reschedules per second",
                   "## Fidelity", "points within 10%", "### Points outside the tolerance",
                   "perform again", "## What it would take", "## Inputs: where each came from",
                   "seed_regime.png", "eras.png", "sensitivity.png", "Linux 2.4"):
        assert needle in report, needle
