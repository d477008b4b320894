"""Series of schema rows and how they look: one line per design and source.

:func:`series` groups rows into lines (one per source and arch, plus preset, CPUs, workload,
regime or threads where those vary) and averages repetitions per load point with a 95% CI.
:class:`Styler` gives each line its looks - colour by arch (red old, blue new, peers in grey
shades), line style and marker by variant within an arch, so the same variant looks the same
measured and modelled - and builds the legend that explains them: one entry per design and
one per encoding (model vs measured, the "max" star), never one per drawn line.
:func:`draw` draws one series on a panel: the paced points as a line in order of achieved load,
the unpaced ones as stars (:mod:`arch_sim.plotstyle`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from arch_sim import ALL_ARCHS, plotstyle
from arch_sim.plotstyle import MAX_LABEL, Keys, draw_max, split_max
from arch_sim.schema import SchemaError
from arch_sim.stats import summarize

ARCH_COLORS = {"thread-per-request": "tab:red", "state-group": "tab:blue",
               "prefork": "tab:orange", "staged": "tab:green"}
ARCH_NAMES = {"thread-per-request": "thread-per-request (old)", "state-group": "state-group (new)",
              "prefork": "prefork (processes)", "staged": "staged (SEDA)"}
SOURCE_NAMES = {"simulated": "model (95% CI band)", "measured": "measured (95% CI)"}
#: the peers arch-sim starts itself, each its own muted colour (the seed's "Apache-like" old
#: design in browns, its Zeus/thttpd-like new one's relatives in purple and dark grey)
NAMED_PEER_COLORS = {"nginx": "0.25", "lighttpd": "tab:purple", "apache-prefork": "tab:brown",
                     "apache-worker": "#c49c94", "python-http-server": "tab:olive"}
#: any other peer (a server the user brought): greys
PEER_COLORS = ("0.3", "0.6", "0.1", "0.75")
PEER_MARKERS = ("s", "^", "D", "v")
LINESTYLES = ("-", "--", ":", "-.")
VARIANT_MARKERS = ("o", "s", "^", "D")

# -- series -----------------------------------------------------------------------------------

def require(df: pd.DataFrame, figure: str, *columns: str) -> None:
    """A SchemaError naming the figure and every column it needs that ``df`` lacks (a frame
    read with :func:`arch_sim.schema.load` has them all; one built by hand may not)."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SchemaError(f"{figure} needs the column(s) {', '.join(missing)}; the frame has "
                          f"{', '.join(map(str, df.columns)) or 'none'} (arch_sim.schema.complete "
                          f"fills what can be derived)")


def _series_keys(df: pd.DataFrame) -> list[str]:
    """source and arch, plus preset / CPUs / workload where they vary within one source."""
    keys = ["source", "arch"]
    for col in ("preset", "cpus", "workload", "regime", "threads"):
        if col in df.columns and (df.groupby("source")[col].nunique(dropna=True) > 1).any():
            keys.append(col)
    return keys


def design_label(key: dict) -> str:
    """The design a series shows, without its source: 'state-group (new), 2 CPU'."""
    arch = ARCH_NAMES.get(key["arch"], str(key["arch"]))
    if key.get("threads") is not None and pd.notna(key["threads"]):
        arch = ("thread per connection (old)" if int(key["threads"]) == 0
                else f"pool of {int(key['threads'])} (old)")
    extras = [str(key["preset"]) if "preset" in key and pd.notna(key["preset"]) else None,
              f"{int(key['cpus'])} CPU" if "cpus" in key and pd.notna(key["cpus"]) else None,
              str(key["workload"]) if "workload" in key and pd.notna(key["workload"]) else None,
              str(key["regime"]) if "regime" in key and pd.notna(key["regime"]) else None]
    return ", ".join([arch] + [e for e in extras if e])


def line_label(key: dict) -> str:
    return f"{key['source']}: {design_label(key)}"


def series(df: pd.DataFrame, *ys: str) -> Iterator[tuple[dict, pd.DataFrame]]:
    """(key, points) per line: mean rps, mean of each y and ``{y}_ci`` per load point.

    A load point is a (target_rps, connections) pair; repetitions of it are averaged.  The
    unpaced point (target_rps NaN) is one of them: :func:`plotstyle.split_max` sets it apart.
    """
    keys = _series_keys(df)
    point = [c for c in ("target_rps", "connections") if c in df.columns]
    columns = ["rps"] + [y for y in ys if y != "rps"]
    for key, group in df.groupby(keys, dropna=False, sort=False):
        key = dict(zip(keys, key if isinstance(key, tuple) else (key,), strict=True))
        points = summarize(group, point, columns)  # in offered-load order
        points = points[np.isfinite(points["rps"]) & np.isfinite(points[columns[-1]])]
        if not points.empty:
            yield key, points


class Styler:
    """Colour by arch (peers in grey shades), line style and marker by variant within an arch -
    the same variant the same style in every source - and the legend that explains them."""

    def __init__(self) -> None:
        self.variants: dict[str, dict[tuple, int]] = {}  # per arch
        self.peers: dict[str, int] = {}
        self.designs: dict[str, dict] = {}  # legend label -> style, in drawing order
        self.sources: set[str] = set()
        self.star_sources: set[str] = set()  # sources with an unpaced point drawn

    def __call__(self, key: dict) -> dict:
        arch = str(key["arch"])
        variant = tuple(str(v) for k, v in key.items() if k not in ("source", "arch"))
        mine = self.variants.setdefault(arch, {})
        i = mine.setdefault(variant, len(mine))
        if arch in ARCH_COLORS:
            color, marker = ARCH_COLORS[arch], VARIANT_MARKERS[i % len(VARIANT_MARKERS)]
        else:
            j = self.peers.setdefault(arch, len(self.peers))
            color = NAMED_PEER_COLORS.get(arch, PEER_COLORS[j % len(PEER_COLORS)])
            marker = PEER_MARKERS[j % len(PEER_MARKERS)]
        style = {"color": color, "marker": marker, "ls": LINESTYLES[i % len(LINESTYLES)]}
        self.designs.setdefault(design_label(key), style)
        self.sources.add(str(key["source"]))
        return style

    def keys(self, ls: str | None = None, markers: bool = True, stars: bool = True) -> Keys:
        """Designs (colour, line style; markers if points are drawn), then the sources when
        both are drawn, then the max star (unless ``stars`` is False: the caller adds it after
        keys of its own).  ``ls`` forces one line style (a panel whose line style means
        something else)."""
        keys = Keys()
        s = plotstyle.current().scale
        for label, style in self.designs.items():
            keys.line(label, color=style["color"], ls=ls or style["ls"],
                      marker=style["marker"] if markers else None)
        if len(self.sources) > 1:
            for source in sorted(self.sources, reverse=True):  # the model first
                thick = source == "simulated"
                keys.line(SOURCE_NAMES.get(source, source), lw=(2.4 if thick else 1.0) * s,
                          marker=None if thick else "o")
        if stars and len(self.star_sources) > 1:  # the model's stars are hollow
            keys.max_point(f"{MAX_LABEL}, measured")
            keys.max_point(f"{MAX_LABEL}, model", hollow=True)
        elif stars and self.star_sources:
            keys.max_point(hollow=self.star_sources == {"simulated"})
        return keys


def draw(ax: Axes, key: dict, points: pd.DataFrame, y: str, style: dict, label: str) -> bool:
    """One series: paced points as a line in order of achieved load, unpaced ones as stars
    (hollow for the model).  Returns whether a star was drawn."""
    s = plotstyle.current().scale
    paced, unpaced = split_max(points)
    x, mean, ci = paced["rps"], paced[y], paced[f"{y}_ci"].fillna(0.0)
    if key["source"] == "simulated":
        ax.plot(x, mean, ls=style["ls"], color=style["color"], lw=2.2 * s, label=label)
        if (ci > 0).any():
            ax.fill_between(x, mean - ci, mean + ci, color=style["color"], alpha=0.18, lw=0)
    elif not paced.empty:
        ax.errorbar(x, mean, yerr=ci if (ci > 0).any() else None, ls=style["ls"], lw=1.0 * s,
                    color=style["color"], marker=style["marker"], ms=5 * s, capsize=2 * s,
                    label=label)
    if not unpaced.empty:
        yerr = None if key["source"] == "simulated" else unpaced[f"{y}_ci"].fillna(0.0)
        draw_max(ax, unpaced["rps"], unpaced[y], style["color"], yerr=yerr,
                 hollow=key["source"] == "simulated")
    return not unpaced.empty


def load_axis(ax: Axes, values: pd.Series, axis: str = "x") -> None:
    """Logarithmic when the loads span a decade, else linear from 0."""
    if plotstyle.wants_log(values):
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    elif axis == "x":
        ax.set_xlim(left=0)
    else:
        ax.set_ylim(bottom=0)


def axis_labels(ax: Axes, xlabel: str, ylabel: str) -> None:
    scale = ax.get_xscale() == "log"
    ax.set_xlabel(f"{xlabel} (log scale)" if scale else xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which="major", alpha=0.3)


def order(df: pd.DataFrame) -> pd.DataFrame:
    """Our architectures first (the seed's two, then the others), peers after."""
    rank = {a: i for i, a in enumerate(ALL_ARCHS)}
    ranked = df.assign(_rank=df["arch"].map(rank).fillna(len(rank)))
    return ranked.sort_values(["_rank", "source"], kind="stable").drop(columns="_rank")


def line_kwargs(key: dict, style: dict) -> dict:
    s = plotstyle.current().scale
    if key["source"] == "simulated":
        return {"color": style["color"], "ls": style["ls"], "lw": 2.2 * s,
                "marker": style["marker"], "ms": 3.5 * s}
    return {"color": style["color"], "ls": style["ls"], "lw": 1.0 * s,
            "marker": style["marker"], "ms": 5 * s}
