"""The figures of ``arch-sim reproduce`` that put the seed's own sentences beside numbers.

* :func:`seed_regime` - the seed's experiment measured on this host: reschedules/s and per
  request against achieved load, HTTP/1.0 (a connection per request), both counts, with the
  seed's two sentences drawn where they make their claims;
* :func:`eras` - old vs new across kernel eras (:func:`arch_sim.eras.era_table`);
* :func:`sensitivity` - the 1999 model with one assumption changed at a time, against the
  claims (:func:`arch_sim.eras.sensitivity_table`);
* :func:`per_state` - the state-group server's work by lifecycle state (requests each state
  moved, per request), measured and modelled, in each workload.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from arch_sim import claims, plotstyle
from arch_sim.plots import annotate_claims, series
from arch_sim.plotseries import require
from arch_sim.plotstyle import Keys, draw_max, legend_outside, new_figure, split_max, use
from real_servers.core.lifecycle import NAMES, moved_column

STATE_COLORS = ("tab:purple", "tab:blue", "tab:green", "tab:olive", "tab:gray")

SHAPE_COLORS = {"thread per connection": "tab:red", "pool": "tab:orange",
                "state-group": "tab:blue"}
COUNT_STYLES = {"server": {"ls": "-", "marker": "o"}, "cpu": {"ls": "--", "marker": "s"}}
COUNT_NAMES = {"server": "server's own switches", "cpu": "every switch on its CPU (vmstat)"}


def _shape_name(key: dict) -> str:
    if key["arch"] != "thread-per-request":
        return str(key["arch"])
    threads = key.get("threads")
    if threads is None or pd.isna(threads) or int(threads) > 0:
        return "pool" if threads is None or pd.isna(threads) else f"pool of {int(threads)}"
    return "thread per connection"


def _color(name: str) -> str:
    return SHAPE_COLORS.get("pool" if name.startswith("pool") else name, "0.4")


def seed_regime(measured: pd.DataFrame, style: str = "paper") -> Figure:
    """Reschedules/s (left) and per request (right) of the real servers with a connection per
    request, both counts, with the seed's sentences.  Colour is the server's shape, line style
    and marker the count; unpaced runs are stars."""
    require(measured, "seed_regime", "source", "arch", "rps")
    df = measured[measured["source"] == "measured"]
    df = df.assign(threads=pd.to_numeric(df.get("threads"), errors="coerce"))
    with use(style):
        s = plotstyle.current().scale
        fig, (left, right) = new_figure(ncols=2)
        keys, counts, loads, stars = Keys(), Keys(), [], set()
        for ax, per_request in ((left, False), (right, True)):
            for count, (per_s, per_req) in claims.COUNTS.items():
                y = per_req if per_request else per_s
                if y not in df.columns or df[y].isna().all():
                    continue
                cs = COUNT_STYLES[count]
                counts.line(COUNT_NAMES[count], ls=cs["ls"], marker=cs["marker"])
                for key, points in series(df.assign(regime=None, workload=None), y):
                    name = _shape_name(key)
                    keys.line(name, color=_color(name), lw=2.5 * s)
                    paced, unpaced = split_max(points)
                    ci = paced[f"{y}_ci"].fillna(0.0)
                    ax.errorbar(paced["rps"], paced[y], yerr=ci if (ci > 0).any() else None,
                                color=_color(name), ls=cs["ls"], marker=cs["marker"],
                                ms=4 * s, lw=1.2 * s, capsize=2 * s,
                                label=f"{name}: {COUNT_NAMES[count]}")
                    if not unpaced.empty:
                        draw_max(ax, unpaced["rps"], unpaced[y], _color(name),
                                 hollow=count == "cpu", yerr=unpaced[f"{y}_ci"].fillna(0.0))
                        stars.add(count)
                    loads.append(points["rps"])
            _load_axis(ax, loads)
            ax.set_ylabel("per request" if per_request else "per second")
            ax.grid(True, alpha=0.3)
            ax.set_ylim(bottom=0)
            annotate_claims(ax, per_request=per_request)
        left.set_title("Context switches per second")
        right.set_title("Context switches per request")
        keys.entries.update(counts.entries)
        for count in COUNT_STYLES:  # the second count's stars are hollow
            if count in stars:
                keys.max_point(f"max (unpaced): {COUNT_NAMES[count].split(' (')[0]}",
                               hollow=count == "cpu")
        legend_outside(fig, keys)
        fig.suptitle("The seed's regime on this host: HTTP/1.0, a connection per request "
                     "(SPECweb99 files, 64 clients)")
        return plotstyle.finish(fig)


def _load_axis(ax: Axes, loads: list[pd.Series]) -> None:
    """Achieved requests/s on x: logarithmic when the loads span a decade."""
    if loads and plotstyle.wants_log(pd.concat(loads)):
        ax.set_xscale("log")
        ax.set_xlabel("achieved requests/s (log scale)")
    else:
        ax.set_xlim(left=0)
        ax.set_xlabel("achieved requests/s")


def _shape_kind(shape: str) -> str:
    """'pool of 10' and 'pool of 64' are one kind of bar: the pool (its size differs by era)."""
    return "pool" if shape.startswith("pool") else shape


def eras(table: pd.DataFrame, style: str = "paper") -> Figure:
    """Left: old (one bar per thread-per-request shape) and new reschedules per request at the
    reference load, per era.  Right: the old design's throughput at saturation as a share of
    the new design's, per shape."""
    with use(style):
        fig, (left, right) = new_figure(ncols=2)
        if table.empty:
            return plotstyle.finish(fig)
        require(table, "eras", "era", "old_shape", "old_resched_per_request",
                "new_resched_per_request", "old_over_new_throughput")
        table = table.assign(kind=table["old_shape"].astype(str).map(_shape_kind))
        era_names = list(dict.fromkeys(table["era"]))
        kinds = list(dict.fromkeys(table["kind"]))
        x = np.arange(len(era_names))
        keys = Keys()
        width = 0.8 / (len(kinds) + 1)
        shades = {"thread per connection": "#f4a3a3"}
        for i, kind in enumerate(kinds):
            sub = table[table["kind"] == kind].set_index("era").reindex(era_names)
            shapes = sorted(set(table.loc[table["kind"] == kind, "old_shape"]),
                            key=lambda v: (len(v), v))  # pool of 10 before pool of 64
            label = "old: " + ", ".join(shapes).replace(", pool of", " /")
            color = shades.get(kind, "tab:red")
            offset = (i - len(kinds) / 2) * width
            left.bar(x + offset, sub["old_resched_per_request"], width, color=color,
                     label=label)
            right.bar(x + (i - (len(kinds) - 1) / 2) * 0.8 / len(kinds),
                      sub["old_over_new_throughput"], 0.8 / len(kinds), color=color,
                      label=label)
            keys.patch(label, color=color)
        new = table.groupby("era", sort=False)["new_resched_per_request"].mean()
        left.bar(x + (len(kinds) / 2) * width, new.reindex(era_names), width,
                 color="tab:blue", label="new: state-group")
        keys.patch("new: state-group", color="tab:blue")
        left.set_yscale("log")
        left.set_ylabel("server's reschedules per request (log scale)")
        left.set_title("Reschedules per request at 1,000 requests/s")
        right.axhline(1.0, color="0.3", lw=1, ls=":")
        right.set_ylabel("old / new throughput at saturation")
        right.set_title("Does the old design 'perform again'?")
        names = [e.replace(" (", "\n(") for e in era_names]
        for ax in (left, right):
            ax.set_xticks(x, names)
            ax.grid(True, axis="y", alpha=0.3)
        legend_outside(fig, keys)
        fig.suptitle("Old vs new across kernel eras (1999 machine, HTTP/1.0) and on this host")
        return plotstyle.finish(fig)


def sensitivity(table: pd.DataFrame, style: str = "paper") -> Figure:
    """One bar per assumption: the old design's peak reschedules/s (left, the 10,000-20,000
    band shaded) and the new design's worst reschedules per request above 2,000 requests/s
    (right, 0.05 marked); solid bars count the server's switches, hatched ones every switch."""
    with use(style):
        fig, (left, right) = new_figure(ncols=2)
        if table.empty:
            return plotstyle.finish(fig)
        require(table, "sensitivity", "variant", "count", "old_peak_per_s", "old_holds",
                "new_worst_per_request", "new_holds")
        variants = list(dict.fromkeys(table["variant"]))
        y = np.arange(len(variants))
        floor = {"old_peak_per_s": 0.0, "new_worst_per_request": 1e-3}  # (a log axis has no 0)
        for ax, column, holds in ((left, "old_peak_per_s", "old_holds"),
                                  (right, "new_worst_per_request", "new_holds")):
            for offset, count in ((-0.2, "server"), (0.2, "cpu")):
                sub = table[table["count"] == count].set_index("variant").reindex(variants)
                values = sub[column].astype(float)
                ax.barh(y + offset, values.clip(lower=floor[column]), 0.4,
                        color="tab:red" if ax is left else "tab:blue",
                        hatch=None if count == "server" else "//", alpha=0.85,
                        label=COUNT_NAMES[count])
                for yy, value, ok in zip(y + offset, values, sub[holds], strict=True):
                    _bar_note(ax, yy, value, ok, floor[column],
                              money=column == "old_peak_per_s")
            ax.set_yticks(y, variants if ax is left else [])  # one set of names, on the left
            ax.invert_yaxis()
            ax.grid(True, axis="x", alpha=0.3)
        lo, hi = claims.OLD_PEAK_BAND
        left.axvspan(lo, hi, color="tab:red", alpha=0.1, lw=0)
        left.axvline(claims.OLD_RESCHEDULES_PER_S, color="tab:red", ls=":", lw=1)
        left.set_xlabel("old design: peak reschedules/s")
        left.set_title(f"'{claims.OLD_QUOTE}'")
        left.set_xlim(0, np.nanmax([table["old_peak_per_s"].max(), hi]) * 1.25)
        right.axvline(claims.NEW_HARDLY_PER_REQUEST, color="tab:blue", ls=":", lw=1)
        right.set_xscale("log")
        worst = np.nanmax([table["new_worst_per_request"].max(), 1.0])
        right.set_xlim(floor["new_worst_per_request"], worst * 6)
        right.set_xlabel("new design: worst reschedules/request above 2,000 req/s")
        right.set_title("'schedules hardly at all' above 2,000 requests/s")
        keys = Keys()
        keys.patch(COUNT_NAMES["server"], facecolor="0.55")
        keys.patch(COUNT_NAMES["cpu"], facecolor="0.55", hatch="//")
        keys.patch("'holds': within the seed's claim", facecolor="none", edgecolor="none")
        legend_outside(fig, keys)
        fig.suptitle("The linux-2.2-1999 model with one assumption changed at a time")
        return plotstyle.finish(fig)


def _bar_note(ax: Axes, y: float, value: float, ok: object, floor: float, money: bool) -> None:
    """The bar's value right of it, and 'holds' when it meets the seed's claim."""
    text = "not judged" if pd.isna(value) else f"{value:,.0f}" if money else f"{value:.3g}"
    mark = "" if ok is None or pd.isna(ok) or not ok else " holds"
    x = (floor or 1.0) if pd.isna(value) else max(value, floor)
    ax.annotate(text + mark, xy=(x, y), xytext=(3, 0), textcoords="offset points",
                va="center", fontsize="x-small", in_layout=False)  # the x limits leave room


def per_state(measured: pd.DataFrame, simulated: pd.DataFrame | None,
              style: str = "paper") -> Figure:
    """One panel per workload: requests moved out of each lifecycle state per request against
    achieved load - measured points (the server's /server-status), modelled lines; unpaced
    runs are stars."""
    regimes = [r for r in ("today", "seed")
               if "regime" in measured.columns and (measured["regime"] == r).any()]
    frames = {"measured": measured, "simulated": simulated}
    with use(style):
        s = plotstyle.current().scale
        fig, axes = new_figure(ncols=max(1, len(regimes)))
        keys, sources, stars = Keys(), Keys(), set()
        for ax, regime in zip(axes, regimes, strict=False):
            loads = []
            for i, name in enumerate(NAMES):
                column = moved_column(i)
                for source, df in frames.items():
                    if df is None or column not in df.columns:
                        continue
                    sub = df[(df["arch"] == "state-group") & (df["regime"] == regime)]
                    sub = sub.dropna(subset=[column])
                    if sub.empty:
                        continue
                    pts = (sub.groupby(sub["target_rps"].fillna(-1.0))[["rps", column]].mean()
                           .rename_axis("load").reset_index())
                    pts["target_rps"] = pts["load"].where(pts["load"] >= 0)
                    paced, unpaced = split_max(pts)
                    color = STATE_COLORS[i % len(STATE_COLORS)]
                    keys.line(name, color=color, lw=2.5 * s)
                    if source == "measured":
                        ax.plot(paced["rps"], paced[column], "o", color=color, ms=5 * s,
                                label=f"{name} (measured)")
                        sources.line("measured", ls="none", marker="o")
                    else:
                        ax.plot(paced["rps"], paced[column], "-", color=color, lw=1.8 * s,
                                label=f"{name} (model)")
                        sources.line("model", lw=1.8 * s)
                    if not unpaced.empty:
                        draw_max(ax, unpaced["rps"], unpaced[column], color,
                                 hollow=source != "measured")
                        stars.add(source)
                    loads.append(pts["rps"])
            _load_axis(ax, loads)
            ax.set_ylabel("requests moved out of the state, per request")
            ax.set_title(f"state-group, {regime}")
            ax.grid(True, alpha=0.3)
        keys.entries.update(sources.entries)
        for source in ("measured", "simulated"):  # the model's stars are hollow
            if source in stars:
                keys.max_point(f"max (unpaced), {'model' if source == 'simulated' else source}",
                               hollow=source == "simulated")
        legend_outside(fig, keys)
        fig.suptitle("Work by lifecycle state: the real server's counters and the model's stages")
        return plotstyle.finish(fig)
