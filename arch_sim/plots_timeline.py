"""Figures of the scheduler lesson (:mod:`arch_sim.timeline`): who ran when, and what a
``schedule()`` costs.

* :func:`gantt` - one panel per scheduler, one row per CPU, a bar per turn on the CPU coloured by
  task, a marker where each turn ended saying why (blocked, preempted by a wake-up, slice used
  up), a black sliver for the scheduler's own cost at the start of each turn, and a dotted line
  at the wake-up;
* :func:`schedule_cost` - microseconds per ``schedule()`` against the number of runnable tasks,
  one line per scheduler.

Like :mod:`arch_sim.plots`, each returns a matplotlib :class:`~matplotlib.figure.Figure` drawn
with the Agg backend (no display needed); ``arch-sim timeline`` saves both.  Colours: the
tasks of the hand-off get their own (the designs' red and blue stay with the designs in
:mod:`arch_sim.plots`); a task that is neither waker nor worker is grey, as
:mod:`arch_sim.plots` draws peers.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from arch_sim import plotstyle
from arch_sim.timeline import MS, HandOff

TASK_COLORS = {"waker": "tab:purple", "worker": "tab:orange", "hog": "0.6"}
OTHER_COLOR = "0.75"
#: how a turn ended -> (marker, colour, legend text); turns that end otherwise get no marker
REASON_MARKERS = {
    "blocked": ("v", "black", "blocked (voluntary)"),
    "exited": ("x", "black", "exited"),
    "wakeup": ("*", "tab:red", "preempted by a wake-up"),
    "slice": ("D", "tab:green", "slice used up (preempted)"),
}
COST_STYLES = ("-", "--", ":", "-.")
COST_MARKERS = ("o", "s", "^", "D")
BAR_HEIGHT = 0.6


def _new_figure(height: float) -> Figure:
    """A figure in the current style (:func:`arch_sim.plotstyle.use`): 9 inches wide and
    *height* tall for paper, the style's own 16:9 size for slides."""
    style = plotstyle.current()
    size = (9.0, height) if style.name == plotstyle.DEFAULT_STYLE else style.size(1)
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def gantt(runs: Mapping[str, HandOff], title: str | None = None,
          style: str = plotstyle.DEFAULT_STYLE) -> Figure:
    """One panel per hand-off in ``runs`` (label -> :class:`~arch_sim.timeline.HandOff`), one
    row per CPU (CPU 0 on top), time in ms.  *style*: ``"paper"`` or ``"slides"``
    (:mod:`arch_sim.plotstyle`)."""
    if not runs:
        raise ValueError("nothing to draw: no hand-offs given")
    with plotstyle.use(style):
        return _gantt(runs, title)


def _gantt(runs: Mapping[str, HandOff], title: str | None) -> Figure:
    fig = _new_figure(1.2 + 1.35 * len(runs))
    axes = fig.subplots(len(runs), 1, sharex=True, squeeze=False)[:, 0]
    seen_tasks: dict[str, str] = {}
    seen_reasons: set[str] = set()
    for ax, (label, run) in zip(axes, runs.items(), strict=True):
        for row in run.rows:
            y = run.cpus - 1 - row.cpu
            width = (row.end - row.start) / MS
            if row.task == "idle":
                ax.broken_barh([(row.start / MS, width)], (y - 0.04, 0.08), color="0.85")
                continue
            color = TASK_COLORS.get(row.task, OTHER_COLOR)
            seen_tasks.setdefault(row.task, color)
            ax.broken_barh([(row.start / MS, width)], (y - BAR_HEIGHT / 2, BAR_HEIGHT),
                           facecolor=color, edgecolor="white", linewidth=0.5)
            if row.sched > 0:  # schedule()'s own time at the start of the turn
                ax.broken_barh([(row.start / MS, row.sched / MS)],
                               (y - BAR_HEIGHT / 2, BAR_HEIGHT), color="black")
            if width > 0.06 * run.end / MS:
                ax.text((row.start + row.end) / 2 / MS, y, row.task, ha="center",
                        va="center", fontsize="small")
            if row.why in REASON_MARKERS:
                marker, mcolor, _ = REASON_MARKERS[row.why]
                seen_reasons.add(row.why)
                ax.plot(row.end / MS, y + BAR_HEIGHT / 2 + 0.08, marker=marker, color=mcolor,
                        ms=8 if marker == "*" else 6, ls="none", clip_on=False)
        ax.axvline(run.woken_at / MS, color="tab:red", ls=":", lw=1.2)
        ax.set_yticks(range(run.cpus), [f"CPU {run.cpus - 1 - i}" for i in range(run.cpus)])
        ax.set_ylim(-0.6, run.cpus - 0.2)
        ax.set_xlim(0, run.end / MS)
        ax.set_title(f"{label}: the worker waited {run.wait / MS:.2f} ms for a CPU",
                     fontsize="medium", loc="left")
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time (ms); dotted line: the waker wakes the worker")
    handles = [Patch(facecolor=c, label=t) for t, c in seen_tasks.items()]
    handles.append(Patch(facecolor="black", label="schedule() cost"))
    handles += [Line2D([], [], marker=REASON_MARKERS[r][0], color=REASON_MARKERS[r][1],
                       ls="none", label=REASON_MARKERS[r][2])
                for r in REASON_MARKERS if r in seen_reasons]
    fig.legend(handles=handles, loc="outside lower center", ncol=min(len(handles), 4),
               fontsize="small", frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def schedule_cost(costs: pd.DataFrame, title: str | None = None,
                  style: str = plotstyle.DEFAULT_STYLE) -> Figure:
    """``costs`` from :func:`arch_sim.timeline.schedule_costs` (a row per runnable-task count,
    a column per scheduler, us per ``schedule()``): one line per scheduler, log-log.  *style*:
    ``"paper"`` or ``"slides"``."""
    if costs.empty:
        raise ValueError("nothing to draw: no schedule() costs given")
    with plotstyle.use(style):
        return _schedule_cost(costs, title)


def _schedule_cost(costs: pd.DataFrame, title: str | None) -> Figure:
    fig = _new_figure(4.5)
    ax = fig.subplots()
    for i, column in enumerate(costs.columns):
        ax.plot(costs.index, costs[column], ls=COST_STYLES[i % len(COST_STYLES)],
                marker=COST_MARKERS[i % len(COST_MARKERS)], lw=2, label=column)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("runnable tasks on the CPU")
    ax.set_ylabel("CPU per schedule() (us, model)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or "What one schedule() costs as the run queue grows")
    plotstyle.plain_ticks(ax)  # 10, 100, 1,000 rather than 10^1, 10^2, 10^3
    return fig
