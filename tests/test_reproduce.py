"""`arch-sim reproduce --quick` end to end into a temp folder, and `arch-sim calibrate`."""

from __future__ import annotations

import json
import tomllib

import pytest
from conftest import need_wrk

from arch_sim import cli, schema
from arch_sim.hostbench import context_switch_us, wakeup_latency_us
from arch_sim.models import load_preset

pytestmark = pytest.mark.real

FIGURES = ("overlay_host", "then_and_now")


def test_switch_cost_is_physically_plausible():
    cost = context_switch_us(iterations=3000, repeats=1)
    # a switch costs something, and far less than a scheduler tick
    assert 0.05 < cost.switch_us < 200
    assert cost.roundtrip_us > 2 * cost.pipe_pair_us
    wake = wakeup_latency_us(samples=200)
    assert 0 < wake["median_us"] <= wake["p99_us"] < 20_000


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    need_wrk()
    out = tmp_path_factory.mktemp("reproduce") / "run"
    assert cli.main(["reproduce", "--quick", "--out", str(out)]) == 0
    return out


def test_every_file_is_there(quick_run):
    expected = ["REPORT.md", "meta.json", "host.toml", "host.calibration.json", "fidelity.csv",
                "measured/measurements.csv", "measured/meta.json",
                "simulated-host/simulated.csv", "simulated-host-sweep/simulated.csv",
                "simulated-1999/simulated.csv"]
    expected += [f"{name}.{ext}" for name in FIGURES for ext in ("png", "svg")]
    expected += [f"measured/reschedules_vs_load.{ext}" for ext in ("png", "svg")]
    missing = [p for p in expected if not (quick_run / p).is_file()]
    assert not missing, missing
    for p in expected:
        assert (quick_run / p).stat().st_size > 0, p


def test_meta_and_preset(quick_run):
    meta = json.loads((quick_run / "meta.json").read_text())
    assert meta["complete"] is True and meta["mode"] == "quick" and not meta["skipped"]
    cal = json.loads((quick_run / "host.calibration.json").read_text())
    assert cal["switch"]["switch_us"] > 0 and set(cal["servers"]) == {
        "thread-per-request", "state-group"}
    tomllib.loads((quick_run / "host.toml").read_text())
    params = load_preset(quick_run / "host.toml")  # the models load it
    assert params.cpus >= 1


def test_csvs_follow_the_schema_and_fidelity_covers_every_measured_point(quick_run):
    measured = schema.load(quick_run / "measured")
    simulated = schema.load(quick_run / "simulated-host")
    assert set(measured["source"]) == {"measured"} and set(simulated["source"]) == {"simulated"}
    import pandas as pd

    fidelity = pd.read_csv(quick_run / "fidelity.csv")
    points = measured.groupby(["arch", measured["target_rps"].fillna(-1)]).ngroups
    assert len(fidelity) == points
    assert {"arch", "within"} <= set(fidelity.columns)


def test_report_names_the_numbers_and_figures(quick_run):
    report = (quick_run / "REPORT.md").read_text()
    for needle in ("## Headline numbers", "## Fidelity", "overlay_host.png", "then_and_now.png",
                   "reschedules per request", "Context switch"):
        assert needle in report, needle
