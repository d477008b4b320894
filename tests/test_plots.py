"""The shared figures: measured and simulated rows on the same axes, peers in grey."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from arch_sim import schema
from arch_sim.cli import main
from arch_sim.plots import (
    ARCH_COLORS,
    FIGURES,
    draw_all,
    reschedules_per_request,
    reschedules_vs_load,
    save,
    series,
    throughput_and_latency,
)

LOADS = (1000.0, 4000.0, 8000.0)


def rows(source: str, arch: str, per_request: float, reps: int = 3, preset: str = "x"):
    """Synthetic schema rows: achieved = offered, reschedules = per_request * rps (+ noise)."""
    out = []
    for load in LOADS:
        for rep in range(reps):
            rps = load * (1 + 0.01 * rep)
            out.append({
                "source": source, "arch": arch, "server": arch, "preset": preset, "cpus": 1,
                "connections": 64, "target_rps": load, "rps": rps,
                "reschedules_per_s": per_request * rps + 10 * rep,
                "voluntary_per_s": per_request * rps, "involuntary_per_s": 10 * rep,
                "reschedules_per_request": per_request, "lat_p50_ms": 1.0 + load / 1e4,
                "lat_p99_ms": 5.0 + load / 1e3, "cpu_util": load / 1e4,
                "sched_overhead_frac": 0.01, "errors": 0, "rep": rep, "seed": rep,
                "duration_s": 10.0, "run_id": f"{source}-run",
            })
    return out


@pytest.fixture
def frame() -> pd.DataFrame:
    data = (rows("measured", "thread-per-request", 1.0) + rows("measured", "state-group", 0.1)
            + rows("measured", "nginx", 0.05, reps=1)
            + rows("measured", "python-http-server", 1.2, reps=1)
            + rows("simulated", "thread-per-request", 1.5, preset="linux-2.2-1999")
            + rows("simulated", "state-group", 0.2, preset="linux-2.2-1999"))
    return schema.validate(schema.to_frame(data))


def labels(fig: Figure) -> list[str]:
    return [h.get_label() for ax in fig.axes for h in ax.get_legend_handles_labels()[0]]


def test_one_series_per_source_and_arch_with_ci(frame):
    found = {(k["source"], k["arch"]): p for k, p in series(frame, "reschedules_per_s")}
    assert len(found) == 6
    pts = found[("measured", "thread-per-request")]
    assert list(pts["target_rps"]) == list(LOADS)
    # reps at 1000 req/s: 1000, 1010 + 10, 1020 + 20 -> mean 1020, CI from t(2) = 4.303
    assert pts["reschedules_per_s"].iloc[0] == pytest.approx(1020.0)
    assert pts["reschedules_per_s_ci"].iloc[0] == pytest.approx(4.303 * 20 / math.sqrt(3),
                                                                 rel=1e-3)
    assert math.isnan(found[("measured", "nginx")]["reschedules_per_s_ci"].iloc[0])


def test_reschedules_vs_load_draws_every_series_in_its_style(frame):
    fig = reschedules_vs_load(frame)
    assert isinstance(fig, Figure)
    names = labels(fig)
    assert len(names) == 6
    assert any("measured" in n and "thread-per-request" in n for n in names)
    assert any("simulated" in n and "state-group" in n for n in names)
    assert any("nginx" in n for n in names) and any("python-http-server" in n for n in names)
    ax = fig.axes[0]
    for line in ax.get_lines():
        if line.get_label() and "nginx" in line.get_label():  # peers are neutral grey
            r, g, b, _ = to_rgba(line.get_color())
            assert r == g == b
    sim = [ln for ln in ax.get_lines() if ln.get_label().startswith("simulated: state")]
    assert sim and to_rgba(sim[0].get_color()) == to_rgba(ARCH_COLORS["state-group"])
    assert ax.collections  # CI bands (simulated) and error bars (measured)
    assert "requests/s" in ax.get_xlabel() and "reschedules" in ax.get_ylabel()


def texts_of(*axes) -> str:
    """Every note on the axes, line breaks read as spaces (notes are wrapped to fit)."""
    return " ".join(" ".join(t.get_text().split()) for ax in axes for t in ax.texts)


def test_claims_are_marked(frame):
    fig = reschedules_vs_load(frame, claims=True)
    texts = texts_of(fig.axes[0])
    assert "15000 reschedules per second" in texts and "hardly at all" in texts
    assert fig.axes[0].get_ylim()[1] >= 15000
    per_request = reschedules_per_request(frame, claims=True)
    assert "hardly at all" in texts_of(per_request.axes[0])
    plain = reschedules_vs_load(frame)
    assert not plain.axes[0].texts


def test_throughput_and_latency(frame):
    fig = throughput_and_latency(frame)
    left, right = fig.axes
    assert right.get_yscale() == "log"
    assert any("achieved = offered" in n for n in labels(fig))
    assert sum("p99" in n for n in labels(fig)) == 6
    # unpaced rows (no target) are left out of the throughput panel but not the latency one
    unpaced = frame.assign(target_rps=np.nan)
    fig = throughput_and_latency(unpaced)
    assert sum("p50" in n for n in labels(fig)) == 6


def test_save_is_atomic_and_writes_png_and_svg(tmp_path, frame):
    paths = save(reschedules_vs_load(frame), tmp_path / "figs", "rvl")
    assert [p.name for p in paths] == ["rvl.png", "rvl.svg"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert b"<svg" in paths[1].read_bytes()[:500]
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["rvl.png", "rvl.svg"]


def test_draw_all_marks_claims_for_the_1999_preset(tmp_path, frame):
    written = draw_all(frame, tmp_path)
    assert sorted(p.name for p in written) == sorted(f"{n}.{e}" for n in FIGURES
                                                     for e in ("png", "svg"))


def test_plot_command_overlays_run_folders(tmp_path, frame):
    measured, simulated, out = tmp_path / "m", tmp_path / "s", tmp_path / "out"
    measured.mkdir()
    simulated.mkdir()
    frame[frame.source == "measured"].to_csv(measured / "measurements.csv", index=False)
    frame[frame.source == "simulated"].to_csv(simulated / "simulated.csv", index=False)
    assert main(["plot", str(measured), str(simulated), "--out", str(out)]) == 0
    for name in FIGURES:
        assert (out / f"{name}.png").exists() and (out / f"{name}.svg").exists()
    # default --out is the first run folder
    assert main(["plot", str(simulated)]) == 0
    assert (simulated / "reschedules_vs_load.svg").exists()


def test_plot_command_names_a_missing_folder(tmp_path, capsys):
    assert main(["plot", str(tmp_path)]) == 2  # a bad input, like every other (issue 16)
    assert "simulated.csv" in capsys.readouterr().err


# -- one's own measurements: a minimal CSV (README, Commands) ---------------------------------

MINIMAL = ("arch,rps,reschedules_per_request\n"
           "thread-per-request,1000,1.5\nthread-per-request,2000,1.4\n"
           "state-group,1000,0.3\nstate-group,2000,0.1\n")


def test_a_minimal_csv_plots_beside_our_rows(tmp_path, frame, capsys):
    mine = tmp_path / "mine.csv"
    mine.write_text(MINIMAL)
    ours = tmp_path / "ours"
    ours.mkdir()
    frame[frame.source == "simulated"].to_csv(ours / "simulated.csv", index=False)
    out = tmp_path / "figs"
    assert main(["plot", str(mine), str(ours), "--out", str(out)]) == 0
    for name in FIGURES:
        assert (out / f"{name}.png").stat().st_size > 1000
    warnings = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("warning:")]
    assert len(warnings) == 3  # one per guessed column: source, target_rps, reschedules_per_s
    df = schema.load(mine, warn=None)
    fig = reschedules_vs_load(df)
    assert sum(n.startswith("measured:") for n in labels(fig)) == 2
    # each row keeps its own load point: 4 rows, 4 points (not one "max" point per arch)
    assert sum(len(points) for _, points in series(df, "reschedules_per_s")) == 4


def test_a_minimal_csv_gets_the_derived_columns_with_one_warning_each(tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text(MINIMAL)
    said: list[str] = []
    df = schema.load(mine, warn=said.append)
    assert list(df.columns[:len(schema.COLUMNS)]) == list(schema.COLUMNS)
    assert set(df["source"]) == {"measured"}
    assert list(df["target_rps"]) == list(df["rps"]) == [1000.0, 2000.0, 1000.0, 2000.0]
    assert list(df["reschedules_per_s"]) == pytest.approx([1500.0, 2800.0, 300.0, 200.0])
    assert len(said) == 3
    assert [w for w in said if "'source'" in w and "measured" in w]
    assert [w for w in said if "'target_rps'" in w and "rps" in w]
    assert [w for w in said if "'reschedules_per_s'" in w and "x rps" in w]
    # the other way round: offered load and per-second counts -> rps and per-request counts
    other = tmp_path / "other.csv"
    other.write_text("arch,target_rps,reschedules_per_s,cpu_switches_per_s,source\n"
                     "nginx,500,250,1000,measured\n")
    said.clear()
    row = schema.load(other, warn=said.append).iloc[0]
    assert row["rps"] == 500.0 and row["reschedules_per_request"] == 0.5
    assert row["cpu_switches_per_request"] == 2.0
    assert len(said) == 3  # rps, reschedules_per_request, cpu_switches_per_request
    # a complete results file is read as before: nothing guessed
    full = tmp_path / "full.csv"
    schema.to_frame(rows("measured", "nginx", 0.5, reps=1)).to_csv(full, index=False)
    said.clear()
    schema.load(full, warn=said.append)
    assert said == []


@pytest.mark.parametrize(("text", "message"), [
    ("arch,reschedules_per_s\nnginx,100\n", "no load column: add target_rps"),
    ("arch,rps\nnginx,100\n", "no reschedule column: add reschedules_per_s"),
    ("rps,reschedules_per_s\n100,100\n", "no 'arch' column"),
    ("arch,rps,reschedules_per_s\nnginx,fast,100\n", "column rps holds 'fast'"),
    ("arch,rps,reschedules_per_s\nnginx,,100\n", "the load column has no values"),
])
def test_a_csv_without_what_a_plot_needs_is_a_clear_error(tmp_path, capsys, text, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    with pytest.raises(schema.SchemaError, match=message):
        schema.load(bad)
    assert main(["plot", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(bad) in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]


def test_overlay_host_puts_measured_points_over_the_model(tmp_path, frame):
    from arch_sim.plots import overlay_host

    measured = frame[frame.source == "measured"]
    simulated = frame[frame.source == "simulated"].assign(preset="host")
    fig = overlay_host(measured, simulated)
    left, right = fig.axes
    assert "reschedules/s" in left.get_ylabel() and "per request" in right.get_ylabel()
    assert left.get_xscale() == "linear"  # 1,000 to 8,000 requests/s: under a decade
    wide = frame.assign(rps=frame["rps"] / 10 ** frame["target_rps"].rank(method="dense"))
    assert overlay_host(wide[wide.source == "measured"],
                        wide[wide.source == "simulated"]).axes[0].get_xscale() == "log"
    names = labels(fig)
    # both archs, measured and simulated, in each panel; peers are left out
    assert sum("measured" in n for n in names) == 4 and sum("simulated" in n for n in names) == 4
    assert not any("nginx" in n for n in names)
    assert right.collections  # measured 95% CI error bars
    assert "host" in fig.get_suptitle()
    written = save(fig, tmp_path, "overlay_host")
    assert [p.name for p in written] == ["overlay_host.png", "overlay_host.svg"]


def test_seed_regime_figure_shows_both_counts_per_shape_and_the_seed_sentences():
    import pandas as pd

    from arch_sim.plots_seed import seed_regime

    rows = []
    for arch, threads in (("thread-per-request", 0), ("thread-per-request", 64),
                          ("state-group", None)):
        for target, rps in ((200.0, 195.0), (float("nan"), 5000.0)):
            rows.append({"source": "measured", "arch": arch, "threads": threads,
                         "target_rps": target, "rps": rps, "reschedules_per_s": rps * 3,
                         "reschedules_per_request": 3.0, "cpu_switches_per_s": rps * 4,
                         "cpu_switches_per_request": 4.0, "connections": 64})
    fig = seed_regime(pd.DataFrame(rows))
    left, right = fig.axes[:2]
    names = labels(fig)
    assert sum("thread per connection" in n for n in names) == 4  # 2 counts x 2 panels
    assert sum("pool of 64" in n for n in names) == 4
    assert any("vmstat" in n for n in names) and any("server's own" in n for n in names)
    texts = texts_of(left, right)
    assert "15000 reschedules per second" in texts and "2,000 requests/s" in texts


def test_eras_and_sensitivity_figures_draw_a_bar_per_row():
    import pandas as pd

    from arch_sim.plots_seed import eras, sensitivity

    table = pd.DataFrame([{"era": e, "old_shape": "pool of 10", "old_resched_per_request": 2.0,
                           "new_resched_per_request": 1.0, "old_over_new_throughput": 0.9}
                          for e in ("Linux 2.2", "Linux 2.4")])
    fig = eras(table)
    assert len(fig.axes[0].patches) == 4 and len(fig.axes[1].patches) == 2
    sens = pd.DataFrame([{"variant": v, "change": "x", "count": c, "old_peak_per_s": 12000.0,
                          "old_holds": True, "new_worst_per_request": 0.0, "new_holds": True}
                         for v in ("as written", "1 CPU") for c in ("server", "cpu")])
    fig = sensitivity(sens)
    assert len(fig.axes[0].patches) == 4 + 1  # a bar per variant and count, and the band
    assert "holds" in " ".join(t.get_text() for t in fig.axes[0].texts)
