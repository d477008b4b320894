"""Figures drawn from the one results schema, so measured and simulated curves share axes.

Every figure function takes a schema DataFrame (``arch_sim.schema``) and a ``style``
(``"paper"``, the default, or ``"slides"``: 16:9, large fonts; :mod:`arch_sim.plotstyle`) and
returns a matplotlib :class:`~matplotlib.figure.Figure` drawn with the Agg backend:

* :func:`reschedules_vs_load` - the seed's graph: reschedules/s against achieved requests/s
* :func:`reschedules_per_request` - the same, per request: ~constant for the old design,
  falling towards 0 for the new one
* :func:`throughput_and_latency` - achieved vs offered load (the unpaced run in a "max" slot
  right of the paced loads), and p50/p99 latency
* :func:`overlay_host` - measured points against the host-preset model, both architectures:
  reschedules/s and reschedules/request

One line per (source, arch) - plus preset, CPUs, workload or threads when those vary - averaged
over repetitions, with a 95% confidence band (simulated) or error bars (measured).  Colour is
the design (red old, blue new, peers grey), line style and marker the variant; the model is a
thick line, measurements are points joined by a thin one.  Unpaced ("max") points are stars,
not joined to the line (:func:`arch_sim.plotstyle.split_max`); load axes are logarithmic when
the loads span a decade.  The legend, outside the axes, has one entry per design and one per
encoding.

``arch-sim plot RUN_DIR [RUN_DIR...] [--out DIR] [--style slides]`` draws the three figures for
one or more run folders or CSV files - one's own measurements too, with only the minimal columns
(:func:`arch_sim.schema.complete`); ``arch-sim redraw RUN_DIR...`` redraws every figure an
existing results folder holds (:mod:`arch_sim.redraw`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter

from arch_sim import ARCHS, claims, plotstyle, runinfo, schema
from arch_sim.argtypes import UsageError, check_out_dir
from arch_sim.plotseries import (  # noqa: F401  (ARCH_COLORS, ARCH_NAMES, series: re-exported)
    ARCH_COLORS,
    ARCH_NAMES,
    Styler,
    axis_labels,
    draw,
    line_kwargs,
    line_label,
    load_axis,
    order,
    require,
    series,
)
from arch_sim.plotstyle import draw_max, legend_outside, new_figure, split_max, use

#: The seed's two claims (arch_sim.claims).
SEED_OLD_RESCHEDULES_PER_S = claims.OLD_RESCHEDULES_PER_S
SEED_NEW_HARDLY_ABOVE_RPS = claims.NEW_HARDLY_ABOVE_RPS

FIGURES = ("reschedules_vs_load", "reschedules_per_request", "throughput_and_latency")
STYLES = tuple(plotstyle.STYLES)
DIAGONAL = "achieved = offered"


# -- the seed's claims ------------------------------------------------------------------------

def annotate_claims(ax: Axes, per_request: bool = False) -> None:
    """Mark the seed's claims: ~15,000 reschedules/s (old) and 'hardly at all' above 2,000 req/s.

    The notes sit below the data (zorder 1: a line may cross a note, a note never hides a
    point), with headroom above the data for the one at the top, and stay out of the layout
    (it would shrink the axes to fit a note running past them): they are broken into lines
    short enough for a panel instead.
    """
    right = max(ax.get_xlim()[1], SEED_NEW_HARDLY_ABOVE_RPS * 1.5)
    ax.axvspan(SEED_NEW_HARDLY_ABOVE_RPS, right, color="tab:blue", alpha=0.06, lw=0)
    ax.axvline(SEED_NEW_HARDLY_ABOVE_RPS, color="tab:blue", ls=":", lw=1)
    ax.set_xlim(right=right)
    top = max(ax.get_ylim()[1], ax.dataLim.y1 / 0.78)
    if not per_request:
        top = max(top, SEED_OLD_RESCHEDULES_PER_S * 1.15)
    ax.set_ylim(top=top)
    note = {"textcoords": "offset points", "fontsize": "x-small", "zorder": 1,
            "in_layout": False,
            "bbox": {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8}}
    # the note reads rightwards from the 2,000 line, or leftwards when the line is so near the
    # right edge that the note would run out of the axes (into the legend beside them)
    at = ax.transAxes.inverted().transform(ax.transData.transform((SEED_NEW_HARDLY_ABOVE_RPS,
                                                                   ax.get_ylim()[0])))[0]
    leftwards = at > 0.7
    ax.annotate("seed, new design:\n'schedules hardly at all'\nabove 2,000 requests/s",
                xy=(SEED_NEW_HARDLY_ABOVE_RPS, 0.97), xycoords=("data", "axes fraction"),
                xytext=(-4 if leftwards else 4, 0), ha="right" if leftwards else "left",
                va="top", color="tab:blue", **note)
    if not per_request:
        ax.axhline(SEED_OLD_RESCHEDULES_PER_S, color="tab:red", ls=":", lw=1)
        ax.annotate("seed, old design: '15000 reschedules\nper second was no exception'",
                    xy=(0.01, SEED_OLD_RESCHEDULES_PER_S), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), color="tab:red", **note)


def wants_claims(df: pd.DataFrame) -> bool:
    """Claims are drawn by default when simulated linux-2.2-1999 rows are in the frame."""
    sim = df[df["source"] == "simulated"]
    return bool((sim["preset"].astype(str) == "linux-2.2-1999").any())


# -- the figures ------------------------------------------------------------------------------

def _rate_panel(ax: Axes, df: pd.DataFrame, y: str, ylabel: str, style: Styler) -> None:
    """y against achieved requests/s, one line per series; log x when the loads span decades."""
    drawn = list(series(order(df), y))
    for key, points in drawn:
        if draw(ax, key, points, y, style(key), line_label(key)):
            style.star_sources.add(str(key["source"]))
    loads = pd.concat([p["rps"] for _, p in drawn]) if drawn else pd.Series(dtype=float)
    load_axis(ax, loads)
    axis_labels(ax, "achieved requests/s", ylabel)
    ax.set_ylim(bottom=0)


def _rate_figure(df: pd.DataFrame, y: str, ylabel: str, title: str, claims: bool,
                 per_request: bool, style: str) -> Figure:
    require(df, title, "source", "arch", "rps", y)
    with use(style):
        fig, (ax,) = new_figure()
        styler = Styler()
        _rate_panel(ax, df, y, ylabel, styler)
        ax.set_title(title)
        if claims:
            annotate_claims(ax, per_request=per_request)
        legend_outside(fig, styler.keys(markers="measured" in styler.sources), where="right")
        return plotstyle.finish(fig)


def reschedules_vs_load(df: pd.DataFrame, claims: bool = False,
                        style: str = "paper") -> Figure:
    """The seed's graph: reschedules (context switches) per second against achieved load."""
    return _rate_figure(df, "reschedules_per_s", "reschedules/s (voluntary + involuntary)",
                        "Reschedules vs load", claims, per_request=False, style=style)


def reschedules_per_request(df: pd.DataFrame, claims: bool = False,
                            style: str = "paper") -> Figure:
    """Reschedules per request: flat for thread-per-request, falling for state-group."""
    return _rate_figure(df, "reschedules_per_request", "reschedules per request",
                        "Reschedules per request vs load", claims, per_request=True,
                        style=style)


def _max_slot_axis(ax: Axes, offered: pd.Series) -> float:
    """Offered load on x with a "max" slot right of the top paced load (past a dotted
    divider) for the unpaced runs; returns the slot's x."""
    offered = offered.dropna()
    if offered.empty:  # unpaced runs only: the slot alone
        ax.set_xlim(0, 2)
        ax.xaxis.set_major_locator(FixedLocator([1.0]))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: "max"))
        return 1.0
    lo, top = float(offered.min()), float(offered.max())
    if plotstyle.wants_log(offered):
        ax.set_xscale("log")
        ax.set_yscale("log")  # both log: achieved = offered stays a straight diagonal
        slot, divider = top * 2.5, top * 2.5 ** 0.5
        ticks = plotstyle.log_axis_ticks(lo, top)
        ax.set_xlim(lo / 1.6, slot * 1.6)
    else:
        slot, divider = top * 1.25, top * 1.125
        ticks = [t for t in np.linspace(0, top, 6) if t <= top * 1.001]
        ax.set_xlim(0, slot * 1.08)
        ax.set_ylim(bottom=0)
    ax.axvline(divider, color="0.6", lw=0.8, ls=":")
    ax.xaxis.set_major_locator(FixedLocator([*ticks, slot]))
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda v, _p: "max" if abs(v - slot) <= 1e-9 * slot else plotstyle.plain(v)))
    start = lo if ax.get_xscale() == "log" else 0.0
    ax.plot([start, top], [start, top], color="0.55", lw=plotstyle.current().scale, ls=":",
            label=DIAGONAL)
    return slot


def throughput_and_latency(df: pd.DataFrame, style: str = "paper") -> Figure:
    """Left: achieved vs offered requests/s, the unpaced runs in a "max" slot.  Right: p50
    (solid) and p99 (dashed) latency against achieved requests/s; marker and colour per design."""
    require(df, "throughput_and_latency", "source", "arch", "target_rps", "rps", "lat_p50_ms",
            "lat_p99_ms")
    with use(style):
        s = plotstyle.current().scale
        fig, (left, right) = new_figure(ncols=2)
        ordered = order(df)
        slot = _max_slot_axis(left, pd.to_numeric(df["target_rps"], errors="coerce"))
        styler, stars = Styler(), set()
        for key, points in series(ordered, "rps"):
            st = styler(key)
            paced, unpaced = split_max(points, x="target_rps")
            line = line_kwargs(key, st)
            left.plot(paced["target_rps"], paced["rps"], label=line_label(key),
                      **{**line, "ls": "-"})
            if not unpaced.empty:
                draw_max(left, [slot] * len(unpaced), unpaced["rps"], st["color"])
                stars.add("p99")
        left.set_title("Throughput")
        axis_labels(left, "offered requests/s", "achieved requests/s")
        for key, points in series(ordered, "lat_p99_ms", "lat_p50_ms"):
            st = styler(key)
            paced, unpaced = split_max(points)
            line = line_kwargs(key, st)
            for metric, ls, hollow in (("p50", "-", True), ("p99", "--", False)):
                right.plot(paced["rps"], paced[f"lat_{metric}_ms"],
                           label=f"{line_label(key)} {metric}", **{**line, "ls": ls})
                if not unpaced.empty:
                    draw_max(right, unpaced["rps"], unpaced[f"lat_{metric}_ms"], st["color"],
                             hollow=hollow)
                    stars.add(metric)
        load_axis(right, pd.to_numeric(df["rps"], errors="coerce"))
        right.set_yscale("log")
        right.set_title("Latency")
        axis_labels(right, "achieved requests/s", "latency (ms)")
        keys = styler.keys(ls="-", stars=False)
        keys.line("p50", ls="-", lw=1.2 * s)
        keys.line("p99", ls="--", lw=1.2 * s)
        if any(line.get_label() == DIAGONAL for line in left.get_lines()):
            keys.line(DIAGONAL, color="0.55", ls=":", lw=1.0 * s)
        if "p50" in stars:  # filled stars: throughput and p99; hollow: p50
            keys.max_point(f"{plotstyle.MAX_LABEL}: throughput, p99")
            keys.max_point(f"{plotstyle.MAX_LABEL}: p50", hollow=True)
        elif stars:
            keys.max_point()
        legend_outside(fig, keys)
        return plotstyle.finish(fig)


def overlay_host(measured_df: pd.DataFrame, simulated_df: pd.DataFrame,
                 style: str = "paper") -> Figure:
    """Measured points (95% CI error bars) over the host-preset model's curves, both archs:
    reschedules/s (left) and reschedules/request (right) against achieved requests/s.

    ``simulated_df`` is the model on the ``host`` preset (e.g. the measured points simulated
    with :func:`arch_sim.fidelity.simulate_like`, or a denser sweep); its lines are drawn in
    order of achieved load.
    """
    for frame in (measured_df, simulated_df):
        require(frame, "overlay_host", "source", "arch", "rps", "reschedules_per_s",
                "reschedules_per_request")
    measured = measured_df[measured_df["source"] == "measured"]
    measured = measured[measured["arch"].isin(ARCHS)]
    simulated = simulated_df[simulated_df["source"] == "simulated"]
    df = pd.concat([measured, simulated], ignore_index=True)
    presets = sorted(set(simulated["preset"].dropna().astype(str)))
    name = ", ".join(presets) or "host"
    with use(style):
        fig, (left, right) = new_figure(ncols=2)
        styler = Styler()
        _rate_panel(left, df, "reschedules_per_s", "reschedules/s", styler)
        _rate_panel(right, df, "reschedules_per_request", "reschedules per request", styler)
        left.set_title("Reschedules per second")
        right.set_title("Reschedules per request")
        fig.suptitle(f"Measured on this host vs the model ({name} preset)")
        legend_outside(fig, styler.keys())
        return plotstyle.finish(fig)


# -- files ------------------------------------------------------------------------------------

def save(fig: Figure, out_dir: str | Path, name: str) -> list[Path]:
    """Write NAME.png and NAME.svg into out_dir atomically (temp file + os.replace)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("png", "svg"):
        final = out / f"{name}.{ext}"
        runinfo.write_atomic(final, lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=150))
        written.append(final)
    return written


def save_all(figures: dict[str, Figure], out_dir: str | Path) -> list[Path]:
    """Save every figure, or none: on a failure the files this call wrote are taken back."""
    paths: list[Path] = []
    try:
        for name, fig in figures.items():
            paths += save(fig, out_dir, name)
    except BaseException:
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return paths


def draw_all(df: pd.DataFrame, out_dir: str | Path, claims: bool | None = None,
             style: str = "paper") -> list[Path]:
    """Draw the three figures of a results frame into out_dir; returns the files written."""
    schema.validate(df)
    if claims is None:
        claims = wants_claims(df)
    figures = {
        "reschedules_vs_load": reschedules_vs_load(df, claims=claims, style=style),
        "reschedules_per_request": reschedules_per_request(df, claims=claims, style=style),
        "throughput_and_latency": throughput_and_latency(df, style=style),
    }
    return save_all(figures, out_dir)


# -- arch-sim plot ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run folders (measurements.csv and/or simulated.csv) or CSV files")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the figures (default: the first RUN_DIR)")
    parser.add_argument("--claims", choices=("auto", "yes", "no"), default="auto",
                        help="mark the seed's two claims (auto: when linux-2.2-1999 rows are "
                             "present)")
    plotstyle.add_style_argument(parser)


def run(args: argparse.Namespace) -> int:
    """Load every input and check the output folder first; a bad one exits 2, drawing none."""
    frames = []
    for path in args.run_dirs:
        try:
            frames.append(schema.load(path))
        except (FileNotFoundError, schema.SchemaError) as exc:
            raise UsageError(str(exc)) from None
    df = pd.concat(frames, ignore_index=True)
    drawable = df[np.isfinite(pd.to_numeric(df["rps"], errors="coerce"))
                  & np.isfinite(pd.to_numeric(df["reschedules_per_s"], errors="coerce"))]
    if drawable.empty:
        raise UsageError("nothing to plot: no row has both rps and reschedules_per_s (or "
                         "reschedules_per_request) values; fill them in")
    first = args.run_dirs[0]
    out = args.out or (first if first.is_dir() else first.parent)
    check_out_dir(out)
    claims = {"auto": None, "yes": True, "no": False}[args.claims]
    for path in draw_all(df, out, claims=claims, style=args.style):
        print(path)
    return 0
