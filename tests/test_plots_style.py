"""How the figures look: the "max" point on every panel, log load axes, no line doubling back,
distinct styles, legends outside, plain ticks, the slides style, and `arch-sim redraw`."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import two_at_a_time
from matplotlib.figure import Figure

from arch_sim import plotstyle, schema
from arch_sim.cli import main
from arch_sim.compare import LIKE_CSV
from arch_sim.plots import (
    DIAGONAL,
    overlay_host,
    reschedules_per_request,
    reschedules_vs_load,
    throughput_and_latency,
)
from arch_sim.plots_peers import cpu_per_request
from arch_sim.plots_seed import eras, seed_regime, sensitivity
from arch_sim.plotstyle import MAX_GID
from arch_sim.redraw import NOTE_PREFIX

ROOT = Path(__file__).resolve().parent.parent
#: offered load -> achieved, per arch: the old design overloads at 10,000 (achieves less than
#: at 2,000) and its unpaced run ("max", None) achieves less than its top paced point
ACHIEVED = {
    "thread-per-request": {100.0: 100.0, 500.0: 495.0, 2000.0: 1900.0, 10000.0: 1500.0,
                           None: 1700.0},
    "state-group": {100.0: 100.0, 500.0: 500.0, 2000.0: 2000.0, 10000.0: 9900.0,
                    None: 30000.0},
}


def rows(source: str, arch: str, threads: float | None = None, scale: float = 1.0) -> list:
    out = []
    for target, rps in ACHIEVED[arch].items():
        for rep in range(2):
            rps_ = rps * scale * (1 + 0.01 * rep)
            per_request = 2.0 if arch == "thread-per-request" else 1.0 / (1 + rps_ / 500)
            out.append({
                "source": source, "arch": arch, "server": arch, "preset": "host", "cpus": 1,
                "threads": threads, "connections": 64,
                "target_rps": np.nan if target is None else target * scale, "rps": rps_,
                "reschedules_per_s": per_request * rps_, "voluntary_per_s": per_request * rps_,
                "involuntary_per_s": 0.0, "reschedules_per_request": per_request,
                "cpu_switches_per_s": 1.5 * per_request * rps_,
                "cpu_switches_per_request": 1.5 * per_request,
                "lat_p50_ms": 0.2 + rps_ / 1e4, "lat_p99_ms": 1.0 + rps_ / 1e3,
                "cpu_util": 0.5, "sched_overhead_frac": 0.01, "errors": 0, "rep": rep,
                "seed": rep, "duration_s": 5.0, "run_id": f"{source}-run",
            })
    return out


def make_frame(scale: float = 1.0, sources=("measured", "simulated")) -> pd.DataFrame:
    data = [r for source in sources for arch in ACHIEVED for r in rows(source, arch, scale=scale)]
    return schema.validate(schema.to_frame(data))


@pytest.fixture
def frame() -> pd.DataFrame:
    return make_frame()


def seed_frame() -> pd.DataFrame:
    data = (rows("measured", "thread-per-request", threads=0)
            + rows("measured", "thread-per-request", threads=64)
            + rows("measured", "state-group"))
    return schema.to_frame(data)


def figures(frame: pd.DataFrame, style: str = "paper") -> dict[str, Figure]:
    measured, simulated = (frame[frame.source == s] for s in ("measured", "simulated"))
    return {
        "reschedules_vs_load": reschedules_vs_load(frame, claims=True, style=style),
        "reschedules_per_request": reschedules_per_request(frame, style=style),
        "throughput_and_latency": throughput_and_latency(frame, style=style),
        "overlay_host": overlay_host(measured, simulated, style=style),
        "seed_regime": seed_regime(seed_frame(), style=style),
    }


def max_points(ax) -> list:
    return [line for line in ax.get_lines() if line.get_gid() == MAX_GID]


def joined_lines(ax) -> list:
    """Every line drawn with a line style through more than one point, stars excepted."""
    return [line for line in ax.get_lines()
            if line.get_linestyle() not in ("None", "none", "", " ")
            and len(line.get_xdata()) > 1 and line.get_gid() != MAX_GID]


def labelled_lines(ax) -> dict:
    """label -> data line of every series: plain lines and error bars' (whose label is their
    container's)."""
    found = {c.get_label(): c.lines[0] for c in ax.containers if hasattr(c, "has_yerr")}
    found.update({line.get_label(): line for line in ax.get_lines()
                  if not line.get_label().startswith("_")})
    return {label: line for label, line in found.items() if line in joined_lines(ax)}


# -- the "max" point, log axes, no doubling back ----------------------------------------------

def test_every_panel_shows_the_unpaced_max_point(frame):
    for name, fig in figures(frame).items():
        for ax in fig.axes:
            assert max_points(ax), f"{name}: {ax.get_title()} has no max point"
    left = throughput_and_latency(frame).axes[0]
    # one star per series, at its own achieved load: throughput lessons no longer look alike
    ys = sorted(float(y) for line in max_points(left) for y in line.get_ydata())
    expected = frame[frame.target_rps.isna()].groupby(["source", "arch"])["rps"].mean()
    assert ys == pytest.approx(sorted(expected))


def test_load_axes_are_logarithmic_when_the_loads_span_a_decade(frame):
    for name, fig in figures(frame).items():
        for ax in fig.axes:
            assert ax.get_xscale() == "log", f"{name}: {ax.get_title()}"
            assert "log scale" in ax.get_xlabel()
    narrow = frame[(frame.rps >= 495) & (frame.rps < 4950)]  # under a decade, max included
    assert narrow.target_rps.isna().any()
    assert reschedules_vs_load(narrow).axes[0].get_xscale() == "linear"
    assert throughput_and_latency(narrow).axes[1].get_xscale() == "linear"  # achieved load
    assert throughput_and_latency(narrow).axes[0].get_xscale() == "log"  # offered: 500-10,000


def test_no_line_doubles_back_and_max_is_never_joined(frame):
    for name, fig in figures(frame).items():
        for ax in fig.axes:
            stars = {float(x) for line in max_points(ax) for x in line.get_xdata()}
            for line in joined_lines(ax):
                x = np.asarray(line.get_xdata(), dtype=float)
                assert np.all(np.diff(x) >= 0), f"{name}: {line.get_label()} doubles back"
                if line.get_label() != DIAGONAL:
                    assert not stars & set(x.tolist()), f"{name}: max joined to a line"


def test_each_series_and_metric_has_its_own_style(frame):
    right = labelled_lines(throughput_and_latency(frame).axes[1])
    looks = [(line.get_color(), line.get_linestyle(), line.get_marker(), line.get_linewidth())
             for line in right.values()]
    assert len(looks) == 8  # 2 sources x 2 archs x p50/p99
    assert len(set(looks)) == len(looks)
    assert len({line.get_color() for line in right.values()}) == 2  # colour per architecture
    p50 = {line.get_linestyle() for label, line in right.items() if label.endswith("p50")}
    p99 = {line.get_linestyle() for label, line in right.items() if label.endswith("p99")}
    assert p50 and p99 and not p50 & p99  # line style per metric
    # two variants of one design: one colour, two line styles
    seed = labelled_lines(reschedules_vs_load(seed_frame()).axes[0])
    old = [line for label, line in seed.items() if "(old)" in label]
    assert len(old) == 2
    assert len({line.get_color() for line in old}) == 1
    assert len({line.get_linestyle() for line in old}) == 2


def test_a_max_point_off_the_axes_does_not_blow_up_the_figure(frame, tmp_path):
    """A p50 of 0 at max on the log latency axis: clipped, not drawn at a huge offset that a
    tight bounding box (notebooks) or the layout would try to take in."""
    zero = frame.copy()
    zero.loc[zero.target_rps.isna(), "lat_p50_ms"] = 0.0
    fig = throughput_and_latency(zero)
    fig.savefig(tmp_path / "f.png", dpi=100, bbox_inches="tight")
    width, height = png_size(tmp_path / "f.png")
    assert width <= 1400 and height <= 700  # the figure is 13 x 5.4 inches


# -- legends and ticks ------------------------------------------------------------------------

def test_legends_sit_outside_the_data_with_short_labels(frame):
    for name, fig in figures(frame).items():
        assert all(ax.get_legend() is None for ax in fig.axes), name
        assert len(fig.legends) == 1, name
        fig.draw_without_rendering()
        renderer = fig.canvas.get_renderer()
        box = fig.legends[0].get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), f"{name}: legend on data"
        texts = [t.get_text() for t in fig.legends[0].get_texts()]
        assert len(texts) <= 10 and max(map(len, texts)) <= 40, (name, texts)


def test_tick_labels_are_plain_numbers(frame):
    for name, fig in figures(frame).items():
        fig.draw_without_rendering()
        for ax in fig.axes:
            for label in ax.get_xticklabels() + ax.get_yticklabels():
                text = label.get_text()
                assert not any(s in text for s in ("$", "^", "times", "e+", "e-")), (name, text)
    ax = reschedules_vs_load(frame).axes[0]
    ax.figure.draw_without_rendering()
    shown = [t.get_text() for t in ax.get_xticklabels()
             if ax.get_xlim()[0] <= t.get_position()[0] <= ax.get_xlim()[1]]
    assert {"100", "1,000", "10,000"} <= set(shown)
    assert plotstyle.plain(4.0) == "4" and plotstyle.plain(0.001) == "0.001"


# -- the slides style -------------------------------------------------------------------------

def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


def tables() -> dict[str, pd.DataFrame]:
    era = pd.DataFrame([{"era": e, "old_shape": s, "old_resched_per_request": 2.0,
                         "new_resched_per_request": 1.0, "old_over_new_throughput": 0.9}
                        for e in ("Linux 2.2", "this host (measured)")
                        for s in ("pool of 10", "thread per connection")])
    sens = pd.DataFrame([{"variant": v, "change": "x", "count": c, "old_peak_per_s": 12000.0,
                          "old_holds": True, "new_worst_per_request": 0.01, "new_holds": True}
                         for v in ("as written", "1 CPU") for c in ("server", "cpu")])
    peers = pd.DataFrame([{"file_set": f, "label": label, "cpu_us_per_request": v,
                           "cpu_us_sd": 1.0, "cpu_vs_nginx": v / 8.0}
                          for f in ("1k", "specweb99")
                          for label, v in (("state-group", 12.0), ("nginx", 8.0))])
    return {"eras": era, "sensitivity": sens, "peers": peers}


def test_slides_style_is_16_9_with_large_fonts(tmp_path, frame):
    t = tables()
    slides = {**figures(frame, style="slides"), "eras": eras(t["eras"], style="slides"),
              "sensitivity": sensitivity(t["sensitivity"], style="slides"),
              "cpu_per_request": cpu_per_request(t["peers"], style="slides")}
    for name, fig in slides.items():
        width, height = fig.get_size_inches()
        assert width / height == pytest.approx(16 / 9), name
        fig.draw_without_rendering()  # outside plotstyle.use: the sizes must have stuck
        for ax in fig.axes:
            for label in ax.get_xticklabels() + ax.get_yticklabels():
                assert label.get_fontsize() >= 14, (name, label.get_text())
            if ax.get_title():
                assert ax.title.get_fontsize() >= 18, name
        for legend in fig.legends:
            assert min(t.get_fontsize() for t in legend.get_texts()) >= 14, name
    paper = reschedules_vs_load(frame)
    paper.draw_without_rendering()
    assert max(t.get_fontsize() for t in paper.axes[0].get_xticklabels()) < 14
    with pytest.raises(ValueError, match="paper, slides"):
        reschedules_vs_load(frame, style="poster")


def test_plot_command_draws_slides(tmp_path, frame):
    run = tmp_path / "run"
    run.mkdir()
    frame.to_csv(run / "measurements.csv", index=False)
    assert main(["plot", str(run), "--style", "slides", "--out", str(tmp_path / "s")]) == 0
    assert png_size(tmp_path / "s" / "throughput_and_latency.png") == (1920, 1080)
    assert main(["plot", str(run), "--out", str(tmp_path / "p")]) == 0
    assert png_size(tmp_path / "p" / "throughput_and_latency.png") != (1920, 1080)


# -- errors -----------------------------------------------------------------------------------

def test_a_missing_column_is_named(frame, tmp_path, capsys):
    with pytest.raises(schema.SchemaError, match=r"throughput_and_latency needs the "
                                                 r"column\(s\) lat_p99_ms"):
        throughput_and_latency(frame.drop(columns="lat_p99_ms"))
    with pytest.raises(schema.SchemaError, match="eras needs the column"):
        eras(tables()["eras"].drop(columns="old_shape"))
    peers = tmp_path / "peers"
    peers.mkdir()
    tables()["peers"].drop(columns="cpu_vs_nginx").to_csv(peers / "peers.csv", index=False)
    assert main(["redraw", str(peers)]) == 2
    assert "cpu_vs_nginx" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["redraw", str(empty)]) == 2
    assert "nothing to redraw" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "peers"]
    assert [p.name for p in peers.iterdir()] == ["peers.csv"]


# -- arch-sim redraw --------------------------------------------------------------------------

def committed_folders() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return sorted({ROOT / Path(p).parts[0] / Path(p).parts[1] for p in out if p.endswith(".png")})


def figure_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for ext in ("png", "svg") for p in folder.rglob(f"*.{ext}")}


def redraw_twin(folder: Path) -> tuple:
    """What ``arch-sim redraw`` does with *folder* depends on the figures it holds and on the
    files and columns of its CSVs (the format of the run that wrote them): two folders alike in
    both are redrawn by the same code on the same columns."""
    tables = tuple((str(p.relative_to(folder)), p.open().readline().strip())
                   for p in sorted(folder.rglob("*.csv")))
    return tuple(sorted(figure_files(folder))), tables


def redraw_groups() -> dict[Path, list[Path]]:
    """The committed folders by :func:`redraw_twin`: the newest of each group (by name) stands
    for its group and is redrawn (redrawing every folder took about three CPU minutes of the
    suite's fifteen; a twin fails where its representative does)."""
    groups: dict[tuple, list[Path]] = {}
    for folder in committed_folders():
        groups.setdefault(redraw_twin(folder), []).append(folder)
    return {members[-1]: members for members in groups.values()}


@pytest.fixture(scope="module")
def redrawn(tmp_path_factory) -> dict[str, Future]:
    """One committed folder of each :func:`redraw_groups` group, copied without its figures and
    redrawn by ``arch-sim redraw`` in a process of its own, two at a time (drawing is one CPU's
    work: two CPUs redraw two folders in the time of one), the largest first.  Key: the
    folder's name; value: (the copy, its meta.json files before, the finished command)."""
    base = tmp_path_factory.mktemp("redraw")

    def redraw(folder: Path):
        copy = base / folder.name
        shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.png", "*.svg"))
        metas = {p: json.loads(p.read_text()) for p in copy.rglob("meta.json")}
        done = subprocess.run([sys.executable, "-m", "arch_sim.cli", "redraw", str(copy)],
                              capture_output=True, text=True, cwd=ROOT, timeout=280)
        return copy, metas, done

    folders = sorted(redraw_groups(), key=lambda f: -len(figure_files(f)))
    with two_at_a_time({folder.name: (redraw, folder) for folder in folders}) as futures:
        yield futures


def test_every_way_of_redrawing_has_a_representative():
    """Each kind of committed folder ``arch-sim redraw`` tells apart (a reproduction, a peers
    table, a bench, a simulation, a ``simulate --like`` comparison) is among the folders
    redrawn below, with each figure name any folder of that kind holds."""
    def ways(folders) -> set[tuple[str, str]]:
        found = set()
        for f in folders:
            data = [n for n in ("REPORT.md", "peers.csv", LIKE_CSV, "measurements.csv",
                                "simulated.csv") if (f / n).exists()]
            found |= {(data[0] if data else "?", Path(fig).stem) for fig in figure_files(f)}
        return found

    assert ways(redraw_groups()) == ways(committed_folders())


@pytest.mark.parametrize("folder", sorted(redraw_groups()), ids=lambda p: p.name)
def test_redraw_gives_back_each_kind_of_committed_figure(folder, redrawn):
    copy, metas, done = redrawn[folder.name].result()
    assert done.returncode == 0, done.stderr[-3000:]
    assert figure_files(copy) == figure_files(folder)
    printed = set(done.stdout.split())
    assert printed == {str(copy / f) for f in figure_files(folder)}
    drawn = {(copy / f).parent for f in figure_files(folder)}
    for path, before in metas.items():
        after = json.loads(path.read_text())
        if path.parent in drawn and isinstance(before.get("notes"), list):
            # redrawn, with a place for a note: one note, and nothing else changed
            notes = after.pop("notes")
            assert notes[:-1] == [n for n in before.pop("notes") if not n.startswith(NOTE_PREFIX)]
            assert notes[-1].startswith(NOTE_PREFIX)
        assert after == before


def test_redraw_elsewhere_writes_the_figures_only(tmp_path):
    """``--out``: the figures go to another folder in the style asked for, and the results
    folder (its meta.json included) is left as it was - once, on the smallest committed folder
    whose meta.json has notes a redraw in place would add to (every folder is redrawn in place
    above)."""
    def takes_notes(f: Path) -> bool:
        meta = f / "meta.json"
        return meta.exists() and isinstance(json.loads(meta.read_text()).get("notes"), list)

    folder = min(filter(takes_notes, committed_folders()), key=lambda f: len(figure_files(f)))
    copy = tmp_path / folder.name
    shutil.copytree(folder, copy, ignore=shutil.ignore_patterns("*.png", "*.svg"))
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert main(["redraw", str(copy), "--style", "slides", "--out", str(tmp_path / "o")]) == 0
    assert figure_files(tmp_path / "o") == figure_files(folder)
    assert {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()} == before
