"""Looks shared by every figure: the two styles, axes scales and ticks, legends, "max" points.

* **Styles.** ``paper`` (the default: figures for a report or README) and ``slides`` (16:9,
  large fonts).  :func:`use` sets matplotlib's rcParams for the figure being built and remembers
  the style, so :func:`new_figure` knows the size and :func:`finish` can freeze the font sizes:
  matplotlib creates tick labels lazily, when a figure is drawn - in a notebook or by ``savefig``
  long after the ``with`` block - so :func:`finish` writes the sizes into each axis (their tick
  keywords) instead of leaving them to the rcParams of that later moment.
* **Scales.** :func:`wants_log`: a load axis is logarithmic when its values span a decade or
  more (100 to 2,000 requests/s is where the interrupt-to-polling change happens; a linear axis
  squashes it against 0).  :func:`plain_ticks`: tick labels read 100, 1,000, 10,000 (never
  10^3 or 4x10^0); log axes with under two decades get 2 and 5 ticks too.
* **Legends** go outside the axes (:func:`legend_outside`) and are built from
  :class:`Keys`: one entry per design, plus one per encoding (measured vs model, p50 vs p99,
  the "max" marker), not one per drawn line.
* **Unpaced points.** A "max" row (no offered load) is drawn as a star of the series' colour,
  never joined to the paced line: its achieved load may be below the top paced point's, and a
  line to it would double back.  :func:`split_max` separates them; :data:`MAX_GID` tags them.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import textwrap
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import (
    FuncFormatter,
    LogFormatter,
    LogLocator,
    NullFormatter,
    ScalarFormatter,
)

#: the artist id (``get_gid()``) of every drawn "max" (unpaced) point
MAX_GID = "max"
MAX_MARKER = "*"
MAX_LABEL = "max (unpaced)"


@dataclass(frozen=True)
class Style:
    """A figure style: rcParams plus the sizes figures ask for by name."""

    name: str
    rc: dict = field(default_factory=dict)
    #: figure size in inches for 1, 2, 3 ... panels (the last one is used beyond)
    sizes: tuple[tuple[float, float], ...] = ((8.0, 5.0),)
    #: line widths and marker sizes are multiplied by this
    scale: float = 1.0
    #: legend columns when the legend is below the panels
    legend_cols: int = 4

    def size(self, ncols: int) -> tuple[float, float]:
        return self.sizes[min(ncols, len(self.sizes)) - 1]


_COMMON = {"legend.frameon": False, "axes.spines.top": False, "axes.spines.right": False}
STYLES: dict[str, Style] = {
    "paper": Style("paper", {**_COMMON, "font.size": 10, "axes.titlesize": 11,
                             "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
                             "legend.fontsize": 9, "figure.titlesize": 12},
                   sizes=((8.5, 4.8), (13.0, 5.4)), scale=1.0, legend_cols=4),
    # 16:9 whatever the panel count (1920 x 1080 pixels at the 150 dpi of save): a slide
    "slides": Style("slides", {**_COMMON, "font.size": 18, "axes.titlesize": 20,
                               "axes.labelsize": 18, "xtick.labelsize": 16,
                               "ytick.labelsize": 16, "legend.fontsize": 15,
                               "figure.titlesize": 22},
                    sizes=((12.8, 7.2),), scale=1.6, legend_cols=3),
}
DEFAULT_STYLE = "paper"

_current: ContextVar[Style] = ContextVar("arch_sim_plot_style", default=STYLES[DEFAULT_STYLE])


def add_style_argument(parser: argparse.ArgumentParser) -> None:
    """``--style paper|slides`` on every command that draws figures."""
    parser.add_argument("--style", choices=tuple(STYLES), default=DEFAULT_STYLE,
                        help="figure style: paper (default) or slides (16:9, large fonts)")


def get_style(name: str | Style) -> Style:
    """The named style; a ValueError naming the choices for anything else."""
    if isinstance(name, Style):
        return name
    try:
        return STYLES[name]
    except KeyError:
        raise ValueError(f"unknown figure style {name!r}; choose one of "
                         f"{', '.join(STYLES)}") from None


@contextlib.contextmanager
def use(name: str | Style) -> Iterator[Style]:
    """Build a figure in this style: its rcParams, and :func:`current` answers it."""
    style = get_style(name)
    token = _current.set(style)
    try:
        with mpl.rc_context(style.rc):
            yield style
    finally:
        _current.reset(token)


def current() -> Style:
    return _current.get()


def new_figure(ncols: int = 1) -> tuple[Figure, list[Axes]]:
    """A figure of ``ncols`` panels side by side in the current style, constrained layout (so
    titles, labels and an outside legend are fitted in, not clipped), with the Agg canvas."""
    fig = Figure(figsize=current().size(ncols), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


# -- scales and ticks -------------------------------------------------------------------------

def wants_log(values: Sequence[float] | pd.Series | np.ndarray, decades: float = 1.0) -> bool:
    """True when the positive finite values span at least ``decades`` decades (10x for 1)."""
    x = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    return x.size >= 2 and x.max() / x.min() >= 10 ** decades * 0.999


def plain(value: float, _pos: object = None) -> str:
    """A tick label without exponents: 0.001, 0.5, 100, 1,000, 10,000, 250,000, 1.5M."""
    if not math.isfinite(value):
        return ""
    v = abs(value)
    if v >= 1e6:
        text = f"{value / 1e6:,.4g}M"
    elif v >= 1 or v == 0:
        text = f"{value:,.6g}" if v < 1e4 else f"{value:,.0f}"
    else:
        text = f"{value:.6f}".rstrip("0").rstrip(".")  # 0.001, never 1e-03
    return text.replace("-", "\N{MINUS SIGN}")


def plain_ticks(ax: Axes) -> None:
    """Plain tick labels on both axes of ``ax`` (call once the limits are final).

    Only matplotlib's default formatters are replaced: an axis given its own labels (bar
    categories, the "max" slot) keeps them.  A log axis spanning under two decades would show
    one labelled tick or none (and matplotlib then labels the minor ones as 4x10^0), so it
    gets ticks at 1, 2 and 5 of each decade.
    """
    for axis, (lo, hi) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
        if not isinstance(axis.get_major_formatter(), (ScalarFormatter, LogFormatter)):
            continue
        if axis.get_scale() == "log":
            lo, hi = sorted((lo, hi))
            span = math.log10(hi / lo) if lo > 0 and hi > 0 else 99.0
            subs = (1.0,) if span >= 2 else (1.0, 2.0, 5.0) if span >= 0.7 else \
                (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
            axis.set_major_locator(LogLocator(base=10, subs=subs))
            axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10) * 1.0))
            axis.set_minor_formatter(NullFormatter())
        axis.set_major_formatter(FuncFormatter(plain))


def log_axis_ticks(lo: float, hi: float) -> list[float]:
    """Major tick values of a log axis from lo to hi, as :func:`plain_ticks` would put them."""
    span = math.log10(hi / lo)
    subs = (1.0,) if span >= 2 else (1.0, 2.0, 5.0)
    locator = LogLocator(base=10, subs=subs)
    return [t for t in locator.tick_values(lo, hi) if lo * 0.999 <= t <= hi * 1.001]


def wrap(text: Text, width_in: float, original: str) -> None:
    """Set ``original`` (its own line breaks kept) broken into lines that fit ``width_in``
    inches at ~0.55 em a character: large slide fonts would otherwise run a long title past
    its panel, and constrained layout squeezes the axes to make room for it."""
    chars = int(width_in * 72 / (0.55 * text.get_fontsize()))
    lines = original.split("\n")
    if chars > 10 and any(len(line) > chars for line in lines):
        text.set_text("\n".join(textwrap.fill(line, chars) for line in lines))
    else:
        text.set_text(original)


def finish(fig: Figure) -> Figure:
    """Plain ticks everywhere, titles and x labels wrapped to their panel's width, and the
    style's tick label sizes fixed on every axis (see the module doc: tick labels are made when
    the figure is drawn, maybe outside :func:`use`).

    Wrapping takes two passes: first to an estimate of the panel's width (a title far wider
    than its panel makes constrained layout squeeze the axes), then to the width the layout
    actually gave the panel, which a dry draw (no pixels) computes.
    """
    rc = mpl.rcParams
    width = fig.get_size_inches()[0]
    for ax in fig.axes:
        plain_ticks(ax)
        clip_stray_max(ax)
        for name in ("x", "y"):
            size = FontProperties(size=rc[f"{name}tick.labelsize"]).get_size_in_points()
            ax.tick_params(axis=name, which="both", labelsize=size)
    texts = [t for ax in fig.axes for t in (ax.title, ax.xaxis.label)]
    suptitle = fig._suptitle  # (no public getter but get_suptitle(), which gives the text)
    originals = {id(t): t.get_text() for t in [*texts, *([suptitle] if suptitle else [])]}
    for dry_run in (False, True):
        if dry_run:
            fig.draw_without_rendering()  # runs the layout: panel widths are final
        if suptitle is not None:
            wrap(suptitle, width * 0.95, originals[id(suptitle)])
        for ax in fig.axes:
            if dry_run:
                panel = ax.get_position().width * width
            else:
                spec = ax.get_subplotspec()
                panel = width / (spec.get_gridspec().ncols if spec is not None else 1) * 0.8
            for text in (ax.title, ax.xaxis.label):
                wrap(text, panel, originals[id(text)])
    return fig


# -- series points ----------------------------------------------------------------------------

def split_max(points: pd.DataFrame, x: str = "rps") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(paced points sorted by ``x``, unpaced "max" points): a line joins only the first.

    Sorting by the plotted x keeps a line from doubling back where an overloaded paced point
    achieved less than a lighter one.  Points without a ``target_rps`` column are all paced.
    """
    if "target_rps" in points.columns:
        unpaced = pd.to_numeric(points["target_rps"], errors="coerce").isna()
    else:
        unpaced = pd.Series(False, index=points.index)
    return points[~unpaced].sort_values(x, kind="stable"), points[unpaced]


def draw_max(ax: Axes, x: Sequence[float], y: Sequence[float], color: str,
             hollow: bool = False, yerr: Sequence[float] | None = None) -> None:
    """Unpaced points: a star of the series' colour with a dark edge (hollow: white with an
    edge of the colour), not joined to anything, and not clipped at the axes' edge (a count
    of 0 sits on the x axis)."""
    s = current().scale
    # a hollow star is a little larger and below a filled one, so where both fall on one
    # spot (two counts or the model and the measurement agreeing) both stay visible
    kwargs = {"ls": "none", "marker": MAX_MARKER, "ms": (16 if hollow else 13) * s,
              "color": color, "mec": color if hollow else "0.15",
              "mew": (1.4 if hollow else 0.8) * s, "mfc": "white" if hollow else color,
              "zorder": 4 if hollow else 5, "clip_on": False}
    if yerr is not None and np.nanmax(np.asarray(yerr, dtype=float), initial=0.0) > 0:
        container = ax.errorbar(x, y, yerr=yerr, capsize=2 * s, elinewidth=0.8 * s, **kwargs)
        container.lines[0].set_gid(MAX_GID)
        for part in (*container.lines[1], *container.lines[2]):  # bars may reach past a limit
            part.set_clip_on(True)
    else:
        (line,) = ax.plot(x, y, **kwargs)
        line.set_gid(MAX_GID)


def clip_stray_max(ax: Axes) -> None:
    """Clip the stars :func:`draw_max` left unclipped when a point lies outside the final view:
    a 0 on a log axis (or a point past a limit set by hand) would otherwise be drawn at a huge
    offset, and a tight bounding box or the constrained layout would try to take it in."""
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    for line in ax.get_lines():
        if line.get_gid() != MAX_GID or line.get_clip_on():
            continue
        x = np.asarray(line.get_xdata(), dtype=float)
        y = np.asarray(line.get_ydata(), dtype=float)
        inside = ((x >= x0 - 1e-9 * abs(x0)) & (x <= x1 + 1e-9 * abs(x1))
                  & (y >= y0 - 1e-9 * abs(y0)) & (y <= y1 + 1e-9 * abs(y1)))
        if not inside.all():
            line.set_clip_on(True)


# -- legends ----------------------------------------------------------------------------------

class Keys:
    """Legend entries without duplicates, in the order first added: lines or patches."""

    def __init__(self) -> None:
        self.entries: dict[str, Line2D | Patch] = {}

    def line(self, label: str, **kwargs: object) -> None:
        if label not in self.entries:
            s = current().scale
            kwargs = {"color": "0.2", "lw": 1.6 * s, **kwargs}
            if "ms" not in kwargs and kwargs.get("marker"):
                kwargs["ms"] = 6 * s
            self.entries[label] = Line2D([], [], **kwargs)

    def patch(self, label: str, **kwargs: object) -> None:
        if label not in self.entries:
            self.entries[label] = Patch(**kwargs)

    def max_point(self, label: str = MAX_LABEL, hollow: bool = False) -> None:
        """The key to :func:`draw_max`'s stars (grey: they take the series' colour)."""
        s = current().scale
        self.line(label, ls="none", marker=MAX_MARKER, ms=12 * s, color="0.5",
                  mec="0.5" if hollow else "0.15", mew=(1.4 if hollow else 0.8) * s,
                  mfc="white" if hollow else "0.5")

    def __len__(self) -> int:
        return len(self.entries)


def legend_outside(fig: Figure, keys: Keys, where: str = "below") -> None:
    """The legend beside (right of) or below the panels, never over the data."""
    if not keys.entries:
        return
    handles, labels = list(keys.entries.values()), list(keys.entries)
    if where == "right":
        fig.legend(handles, labels, loc="outside right upper")
    else:  # as few rows as the style's columns allow, the entries spread evenly over them
        rows = math.ceil(len(handles) / current().legend_cols)
        fig.legend(handles, labels, loc="outside lower center",
                   ncols=math.ceil(len(handles) / rows))
