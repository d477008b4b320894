"""Every architecture on one set of axes: the figure and the table of ``arch-sim simulate --like``.

A results frame that holds measured rows of several servers (ours and peers, from
``arch-sim bench``) and simulated rows of the same load points (the model of each of ours)
becomes:

* :func:`architectures` - one figure, a row of three panels per workload (keep-alive, then a
  connection per request): reschedules per request, CPU per request and p99 latency, each
  against achieved requests/s.  Measured points carry their 95% CI; the model of the same
  design is the thick line of the same colour; peers (nginx, Apache, lighttpd, a server a
  user brought) are measured only, in greys.
* :func:`architectures_table` - the same numbers as a tidy table (one row per workload,
  design and load point, measured and modelled side by side) and :func:`table_markdown`.

CPU per request is the server's CPU time over its requests: measured rows carry it
(``cpu_us_per_request``, from the server's getrusage or /proc); a model's is its busy time,
``cpu_util x cpus / rps``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from arch_sim import plotstyle
from arch_sim.plotseries import (
    Styler,
    axis_labels,
    design_label,
    draw,
    line_label,
    load_axis,
    order,
    require,
    series,
)
from arch_sim.plotstyle import legend_outside, use
from arch_sim.regimes import REGIMES, add_regime

#: (column, axis label, panel title) of the three panels, left to right
PANELS: tuple[tuple[str, str, str], ...] = (
    ("reschedules_per_request", "reschedules per request", "Reschedules per request"),
    ("cpu_us_per_request", "CPU us per request", "CPU per request"),
    ("lat_p99_ms", "p99 latency (ms)", "p99 latency"),
)
METRICS = tuple(p[0] for p in PANELS)


def with_cpu_per_request(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``cpu_us_per_request`` for every row: kept where measured, else the model's
    busy CPU time per completed request (``cpu_util x cpus x 1e6 / rps``)."""
    derived = (pd.to_numeric(df["cpu_util"], errors="coerce")
               * pd.to_numeric(df["cpus"], errors="coerce")
               * 1e6 / pd.to_numeric(df["rps"], errors="coerce"))
    given = (pd.to_numeric(df["cpu_us_per_request"], errors="coerce")
             if "cpu_us_per_request" in df.columns else pd.Series(np.nan, index=df.index))
    return df.assign(cpu_us_per_request=given.where(given.notna(), derived))


def _prepared(df: pd.DataFrame) -> pd.DataFrame:
    require(df, "architectures", "source", "arch", "rps", "cpu_util", "cpus",
            "reschedules_per_request", "lat_p99_ms")
    return add_regime(with_cpu_per_request(df))


def architectures(df: pd.DataFrame, style: str = "paper") -> Figure:
    """Reschedules, CPU and p99 latency per request against load: every design, measured
    beside modelled, one row of panels per workload present in ``df``."""
    df = _prepared(df)
    regimes = [r for r in REGIMES if (df["regime"] == r).any()]
    if not regimes:
        regimes = ["today"]
    with use(style):
        current = plotstyle.current()
        width, height = current.size(len(PANELS))
        fig = Figure(figsize=(width, height * (0.35 + 0.65 * len(regimes))),
                     layout="constrained")
        FigureCanvasAgg(fig)
        styler = Styler()
        for j, (y, ylabel, title) in enumerate(PANELS):
            # the series of the whole frame, so a design is the same line in every row
            by_regime = _by_regime(df, y, regimes[0])
            for i, regime in enumerate(regimes):
                part = df[df["regime"] == regime]
                ax = fig.add_subplot(len(regimes), len(PANELS), i * len(PANELS) + j + 1)
                drawn = by_regime.get(regime, [])
                for key, points in drawn:
                    if draw(ax, key, points, y, styler(key), line_label(key)):
                        styler.star_sources.add(str(key["source"]))
                loads = (pd.concat([p["rps"] for _, p in drawn]) if drawn
                         else pd.Series(dtype=float))
                load_axis(ax, loads)
                axis_labels(ax, "achieved requests/s", ylabel)
                if y == "lat_p99_ms" and plotstyle.wants_log(part[y], decades=2):
                    ax.set_yscale("log")
                else:
                    ax.set_ylim(bottom=0)
                plotstyle.plain_ticks(ax)
                ax.set_title(f"{title}\n{REGIMES[regime].label}")
        fig.suptitle("Every architecture: measured (points) and modelled (lines)")
        legend_outside(fig, styler.keys(markers="measured" in styler.sources))
        return plotstyle.finish(fig)


def _by_regime(df: pd.DataFrame, y: str, only: str) -> dict[str, list[tuple[dict, pd.DataFrame]]]:
    """The frame's series of ``y`` grouped by workload, each key without its regime (the row
    of panels says it); ``only`` names the workload when the frame has one."""
    out: dict[str, list[tuple[dict, pd.DataFrame]]] = {}
    for key, points in series(order(df), y):
        regime = str(key.pop("regime", only))
        out.setdefault(regime, []).append((key, points))
    return out


def architectures_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (workload, design, load point): achieved req/s and the three metrics,
    measured and modelled side by side (``<metric>_measured``, ``<metric>_model``; NaN where
    that source has no row, e.g. a peer's model)."""
    df = _prepared(df)
    out: list[pd.DataFrame] = []
    only = str(df["regime"].iloc[0]) if len(df) else "today"
    for key, points in series(order(df), *METRICS):
        regime = str(key.pop("regime", only))
        suffix = "measured" if key["source"] == "measured" else "model"
        cols = {"rps": f"rps_{suffix}", **{m: f"{m}_{suffix}" for m in METRICS}}
        points = points.rename(columns=cols)[["target_rps", *cols.values()]]
        out.append(points.assign(regime=regime, design=design_label(key)))
    if not out:
        return pd.DataFrame(columns=["regime", "design", "load"])
    table = pd.concat(out, ignore_index=True)
    table["load"] = table["target_rps"].map(lambda v: "max" if pd.isna(v) else f"{v:g}")
    table = table.groupby(["regime", "design", "load"], sort=False, as_index=False).first()
    rank = {r: i for i, r in enumerate(REGIMES)}
    table["_r"] = table["regime"].map(rank)
    table["_l"] = table["target_rps"].fillna(math.inf)
    table = table.sort_values(["_r", "design", "_l"], kind="stable")
    front = ["regime", "design", "load"]
    metrics = [c for m in ("rps", *METRICS) for c in (f"{m}_measured", f"{m}_model")
               if c in table.columns]
    return table[front + metrics].reset_index(drop=True)


def _cell(value: float) -> str:
    if value is None or not np.isfinite(value):
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table_markdown(table: pd.DataFrame) -> str:
    """The table as Markdown: a section per workload, measured / model in each cell."""
    names = {"rps": "req/s", "reschedules_per_request": "reschedules/request",
             "cpu_us_per_request": "CPU us/request", "lat_p99_ms": "p99 ms"}
    lines: list[str] = []
    for regime, part in table.groupby("regime", sort=False):
        lines += [f"### {REGIMES[str(regime)].label}", "",
                  "| design | load | " + " | ".join(names.values()) + " |",
                  "|---|---|" + "---|" * len(names)]
        for _, r in part.iterrows():
            cells = []
            for m in names:
                measured = r.get(f"{m}_measured", np.nan)
                model = r.get(f"{m}_model", np.nan)
                cells.append(_cell(measured) if pd.isna(model)
                             else f"{_cell(measured)} / {_cell(model)}")
            lines.append(f"| {r['design']} | {r['load']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("Cells: measured / model (one value: measured only; '-': no row).")
    return "\n".join(lines) + "\n"


def conditions(df: pd.DataFrame, knob: str, at: float, style: str = "paper") -> Figure:
    """What one condition does to each design (:func:`arch_sim.choose.compare`'s rows): the
    unpaced throughput, and reschedules and CPU per request at offered load *at*, against the
    knob's values (in the order given), one line per design."""
    from arch_sim.plotseries import ARCH_COLORS, ARCH_NAMES

    df = with_cpu_per_request(df)
    labels = list(dict.fromkeys(df["preset"]))
    x = range(len(labels))
    ticks = [str(label).split("=", 1)[-1] for label in labels]
    panels = (("rps", None, "requests/s, unpaced (max)"),
              ("reschedules_per_request", at, f"reschedules per request at {at:g}/s"),
              ("cpu_us_per_request", at, f"CPU us per request at {at:g}/s"))
    with use(style):
        fig, axes = plotstyle.new_figure(ncols=len(panels))
        keys = plotstyle.Keys()
        for arch in dict.fromkeys(df["arch"]):
            mine = df[df["arch"] == arch]
            color = ARCH_COLORS.get(arch, "0.4")
            for ax, (y, load, ylabel) in zip(axes, panels, strict=True):
                rows = mine[mine["target_rps"].isna()] if load is None else mine[
                    mine["target_rps"] == load]
                means = rows.groupby("preset")[y].mean().reindex(labels)
                ax.plot(x, means.to_numpy(), color=color, marker="o",
                        lw=2.0 * plotstyle.current().scale)
                ax.set_ylabel(ylabel)
            keys.line(ARCH_NAMES.get(arch, arch), color=color, marker="o")
        for ax in axes:
            ax.set_xticks(list(x), ticks)
            ax.set_xlabel(knob)
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            plotstyle.plain_ticks(ax)
        fig.suptitle(f"Which design when: {knob}")
        legend_outside(fig, keys)
        return plotstyle.finish(fig)
