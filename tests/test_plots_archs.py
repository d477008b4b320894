"""The all-architectures figure and table (arch_sim.plots_archs) and the comparison files
`arch-sim simulate --like` writes (arch_sim.compare), on small synthetic frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba

from arch_sim import schema
from arch_sim.argtypes import UsageError
from arch_sim.compare import measured_rows, modelled_archs, write_comparison
from arch_sim.plots_archs import (
    PANELS,
    architectures,
    architectures_table,
    table_markdown,
    with_cpu_per_request,
)
from arch_sim.plotseries import ARCH_COLORS

LOADS = (100.0, 1000.0, None)


def frame(source: str, arch: str, mode: str = "keep-alive", per_request: float = 1.0,
          cpu_us: float | None = 50.0) -> pd.DataFrame:
    rows = []
    for target in LOADS:
        rps = 20000.0 if target is None else target
        for rep in range(2):
            row = {
                "source": source, "arch": arch, "server": arch, "preset": "host", "cpus": 1,
                "connections": 64, "target_rps": np.nan if target is None else target,
                "rps": rps, "reschedules_per_s": per_request * rps,
                "voluntary_per_s": per_request * rps, "involuntary_per_s": 0.0,
                "reschedules_per_request": per_request + 0.1 * rep,
                "lat_p50_ms": 0.5, "lat_p99_ms": 2.0, "cpu_util": rps * 40e-6,
                "sched_overhead_frac": 0.0, "errors": 0, "rep": rep, "seed": rep,
                "duration_s": 5.0, "run_id": f"{source}-{mode}", "connection_mode": mode,
            }
            if cpu_us is not None:
                row["cpu_us_per_request"] = cpu_us
            rows.append(row)
    return schema.to_frame(rows)


@pytest.fixture
def both() -> pd.DataFrame:
    parts = []
    for mode in ("keep-alive", "close"):
        parts += [frame("measured", "prefork", mode, 3.0), frame("measured", "staged", mode),
                  frame("measured", "lighttpd", mode, 0.1),
                  frame("simulated", "prefork", mode, 2.0, cpu_us=None),
                  frame("simulated", "staged", mode, 1.0, cpu_us=None)]
    return pd.concat(parts, ignore_index=True)


def test_a_models_cpu_per_request_is_its_busy_time_over_its_requests():
    sim = with_cpu_per_request(frame("simulated", "staged", cpu_us=None))
    assert sim["cpu_us_per_request"].tolist() == pytest.approx([40.0] * len(sim))
    meas = with_cpu_per_request(frame("measured", "staged", cpu_us=77.0))
    assert (meas["cpu_us_per_request"] == 77.0).all()  # a measured value is kept


def test_table_has_measured_beside_model_and_peers_measured_only(both):
    table = architectures_table(both)
    assert list(table["regime"].unique()) == ["today", "seed"]
    pre = table[(table["regime"] == "today") & (table["design"] == "prefork (processes)")]
    assert list(pre["load"]) == ["100", "1000", "max"]
    assert pre["reschedules_per_request_measured"].tolist() == pytest.approx([3.05] * 3)
    assert pre["reschedules_per_request_model"].tolist() == pytest.approx([2.05] * 3)
    assert pre["cpu_us_per_request_model"].tolist() == pytest.approx([40.0] * 3)
    peer = table[table["design"] == "lighttpd"]
    assert len(peer) == 6 and peer["reschedules_per_request_model"].isna().all()
    md = table_markdown(table)
    assert "### seed: HTTP/1.0" in md and "| lighttpd | max | 20,000 | 0.15 |" in md
    assert "| prefork (processes) | 100 | 100 / 100 | 3.05 / 2.05 |" in md


def test_figure_has_a_row_of_panels_per_workload_and_one_colour_per_design(both):
    fig = architectures(both)
    axes = fig.axes
    assert len(axes) == 2 * len(PANELS)
    assert "today" in axes[0].get_title() and "seed" in axes[len(PANELS)].get_title()
    orange = to_rgba(ARCH_COLORS["prefork"])
    for ax in (axes[0], axes[len(PANELS)]):  # prefork is orange in both rows
        colours = {to_rgba(line.get_color()) for line in ax.get_lines()}
        assert orange in colours
    one = architectures(both[both["connection_mode"] == "keep-alive"])
    assert len(one.axes) == len(PANELS)


def test_write_comparison_writes_figure_tables_and_fidelity(both, tmp_path):
    measured = both[both["source"] == "measured"]
    simulated = both[both["source"] == "simulated"]
    files = write_comparison(measured, simulated, tmp_path)
    names = {p.name for p in files}
    assert {"architectures.png", "architectures.csv", "architectures.md", "fidelity.csv",
            "fidelity.md", "like-measurements.csv"} <= names
    kept = pd.read_csv(tmp_path / "like-measurements.csv")  # the folder redraws on its own
    assert len(kept) == len(measured) and set(kept["source"]) == {"measured"}
    check = pd.read_csv(tmp_path / "fidelity.csv")
    server = check[check["count"] == "server"]
    # staged's model equals its measurement; prefork's is a third low; the peer is not judged
    assert set(server["arch"]) == {"prefork", "staged"}
    assert server[server["arch"] == "staged"]["within"].all()
    assert not server[server["arch"] == "prefork"]["within"].any()
    assert "points within 10%" in (tmp_path / "fidelity.md").read_text()


def test_measured_rows_and_modelled_archs(both, tmp_path):
    run = tmp_path / "bench"
    run.mkdir()
    both[both["source"] == "measured"].to_csv(run / "measurements.csv", index=False)
    measured = measured_rows([run])
    assert set(measured["source"]) == {"measured"}
    assert modelled_archs(measured) == ["prefork", "staged"]
    with pytest.raises(UsageError, match="--like"):
        measured_rows([tmp_path / "missing"])
    sim_only = tmp_path / "sim"
    sim_only.mkdir()
    both[both["source"] == "simulated"].to_csv(sim_only / "simulated.csv", index=False)
    with pytest.raises(UsageError, match="no measured rows"):
        measured_rows([sim_only])
    assert not math.isnan(float(measured["rps"].iloc[0]))


def test_verdict_names_the_best_design_per_condition(both):
    from arch_sim.choose import verdict

    df = with_cpu_per_request(both[both["source"] == "simulated"]).assign(
        preset=lambda d: "mode=" + d["connection_mode"])
    df.loc[df["arch"] == "staged", "lat_p99_ms"] = 9.0  # prefork answers faster
    df.loc[(df["arch"] == "prefork") & df["target_rps"].isna(), "rps"] = 30000.0
    table = verdict(df, at=1000)
    assert list(table.index) == ["mode=keep-alive", "mode=close"]
    row = table.loc["mode=close"]
    assert row["most req/s (max)"] == "prefork (30,000)"
    assert row["fewest reschedules/request @ 1000"] == "staged (1.05)"
    assert row["lowest p99 @ 1000"] == "prefork (2)"


def test_simulate_like_mirrors_a_bench_run_and_writes_the_comparison(both, tmp_path):
    import json

    from arch_sim.cli import main

    run = tmp_path / "bench"
    run.mkdir()
    measured = both[both["source"] == "measured"].assign(file_set="1k", run_id="bench-x")
    measured.to_csv(run / "measurements.csv", index=False)
    out = tmp_path / "sim"
    assert main(["simulate", "--preset", "host", "--like", str(run), "--reps", "1",
                 "--requests", "400", "--jobs", "1", "--out", str(out), "--quiet"]) == 0
    sim = schema.load(out)
    # our two designs in it, at its loads and in both of its workloads; the peer has no model
    assert sorted(sim["arch"].unique()) == ["prefork", "staged"]
    assert set(zip(sim["connection_mode"], sim["target_rps"].fillna(-1), strict=True)) == {
        (m, t) for m in ("keep-alive", "close") for t in (100.0, 1000.0, -1)}
    assert set(sim["file_sizes"]) == {"fixed:1"}
    meta = json.loads((out / "meta.json").read_text())
    assert meta["like"] == ["bench-x"] and "architectures.png" in meta["files"]
    table = pd.read_csv(out / "architectures.csv")
    assert {"prefork (processes)", "staged (SEDA)", "lighttpd"} <= set(table["design"])
    assert (out / "fidelity.md").read_text().startswith("Fidelity: ")


@pytest.mark.parametrize("times, warned", [(3.0, True), (1.0, False)])
def test_simulate_like_warns_when_the_bench_machine_ran_at_another_speed(both, tmp_path, capsys,
                                                                        times, warned):
    import json

    from arch_sim.cli import main
    from arch_sim.models import load_preset

    run = tmp_path / "bench"
    run.mkdir()
    calibrated = load_preset("host").reference_us
    measured = both[both["source"] == "measured"].assign(file_set="1k", run_id="bench-x",
                                                         reference_us=calibrated * times)
    measured = measured[measured["arch"] == "staged"]
    measured.to_csv(run / "measurements.csv", index=False)
    out = tmp_path / "sim"
    assert main(["simulate", "--preset", "host", "--like", str(run), "--reps", "1",
                 "--requests", "200", "--jobs", "1", "--no-figures", "--out", str(out),
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    meta = json.loads((out / "meta.json").read_text())
    fidelity_md = (out / "fidelity.md").read_text()
    if warned:
        assert "warning: the bench ran the reference work 3.00x slower" in err
        assert "3.00x slower" in meta["machine_note"] and "**Warning:**" in fidelity_md
    else:
        assert "reference work" not in err and "machine_note" not in meta
        assert "Warning" not in fidelity_md


def test_simulate_like_refuses_runs_without_our_servers(both, tmp_path, capsys):
    from arch_sim.cli import main

    run = tmp_path / "peers-only"
    run.mkdir()
    both[(both["source"] == "measured") & (both["arch"] == "lighttpd")].to_csv(
        run / "measurements.csv", index=False)
    out = tmp_path / "sim"
    assert main(["simulate", "--preset", "host", "--like", str(run), "--out", str(out)]) == 2
    assert "none of our architectures" in capsys.readouterr().err
    assert not out.exists()


def test_conditions_figure_draws_each_design_against_the_knob(both):
    from arch_sim.plots_archs import conditions

    df = both[both["source"] == "simulated"].assign(
        preset=lambda d: "connection=" + d["connection_mode"])
    fig = conditions(df, "connection", at=1000)
    assert len(fig.axes) == 3
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["keep-alive", "close"]
    staged = [line for line in fig.axes[1].get_lines()
              if to_rgba(line.get_color()) == to_rgba(ARCH_COLORS["staged"])]
    assert len(staged) == 1
    assert list(staged[0].get_ydata()) == pytest.approx([1.05, 1.05])  # mean of the reps at 1000
