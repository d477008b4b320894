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
from matplotlib.figure import Figure

from arch_sim import claims
from arch_sim.plots import _new_figure, annotate_claims, series
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


def seed_regime(measured: pd.DataFrame) -> Figure:
    """Reschedules/s (left) and per request (right) of the real servers with a connection per
    request, both counts, with the seed's sentences."""
    fig, (left, right) = _new_figure(ncols=2)
    df = measured[measured["source"] == "measured"]
    df = df.assign(threads=pd.to_numeric(df.get("threads"), errors="coerce"))
    for ax, per_request in ((left, False), (right, True)):
        for count, (per_s, per_req) in claims.COUNTS.items():
            y = per_req if per_request else per_s
            if y not in df.columns or df[y].isna().all():
                continue
            for key, points in series(df.assign(regime=None, workload=None), y):
                name = _shape_name(key)
                style = COUNT_STYLES[count]
                ci = points[f"{y}_ci"].fillna(0.0)
                ax.errorbar(points["rps"], points[y], yerr=ci if (ci > 0).any() else None,
                            color=_color(name), ls=style["ls"], marker=style["marker"], ms=4,
                            lw=1.2, capsize=2, label=f"{name}: {COUNT_NAMES[count]}")
        ax.set_xscale("log")
        ax.set_xlabel("achieved requests/s (log scale)")
        ax.set_ylabel("per request" if per_request else "per second")
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
        annotate_claims(ax, per_request=per_request)
    left.set_title("Context switches per second")
    right.set_title("Context switches per request")
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle("The seed's regime measured on this host: HTTP/1.0, a new connection per "
                 "request (SPECweb99 files, 64 clients)")
    return fig


def eras(table: pd.DataFrame) -> Figure:
    """Left: old and new reschedules per request at the reference load, per era.  Right: the
    old design's throughput at saturation as a share of the new design's."""
    fig, (left, right) = _new_figure(ncols=2)
    if table.empty:
        return fig
    labels = [f"{r.era}\n{r.old_shape}" for r in table.itertuples()]
    x = np.arange(len(table))
    left.bar(x - 0.2, table["old_resched_per_request"], 0.4, color="tab:red",
             label="old: thread-per-request")
    left.bar(x + 0.2, table["new_resched_per_request"], 0.4, color="tab:blue",
             label="new: state-group")
    left.set_yscale("log")
    left.set_ylabel("server's reschedules per request (log scale)")
    left.set_title("Reschedules per request at 1,000 requests/s")
    right.bar(x, table["old_over_new_throughput"], 0.6, color="tab:purple")
    right.axhline(1.0, color="0.3", lw=1, ls=":")
    right.set_ylabel("old / new throughput at saturation")
    right.set_title("Does the old design 'perform again'?")
    for ax in (left, right):
        ax.set_xticks(x, labels, fontsize=7, rotation=30, ha="right")
        ax.grid(True, axis="y", alpha=0.3)
    left.legend(fontsize=8)
    fig.suptitle("Old vs new design across kernel eras (1999 machine, HTTP/1.0) and on this host")
    return fig


def sensitivity(table: pd.DataFrame) -> Figure:
    """One bar per assumption: the old design's peak reschedules/s (left, the 10,000-20,000
    band shaded) and the new design's worst reschedules per request above 2,000 requests/s
    (right, 0.05 marked); solid bars count the server's switches, hatched ones every switch."""
    fig, (left, right) = _new_figure(ncols=2)
    if table.empty:
        return fig
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
                text = "not judged" if pd.isna(value) else (
                    f"{value:,.0f}" if column == "old_peak_per_s" else f"{value:.3g}")
                mark = "" if ok is None or pd.isna(ok) else (" holds" if ok else "")
                ax.annotate(text + mark, xy=(max(value, floor[column]) if not pd.isna(value)
                                             else floor[column] or 1.0, yy),
                            xytext=(3, 0), textcoords="offset points", va="center",
                            fontsize=6)
        ax.set_yticks(y, variants, fontsize=8)
        ax.invert_yaxis()
        ax.grid(True, axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    lo, hi = claims.OLD_PEAK_BAND
    left.axvspan(lo, hi, color="tab:red", alpha=0.1, lw=0)
    left.axvline(claims.OLD_RESCHEDULES_PER_S, color="tab:red", ls=":", lw=1)
    left.set_xlabel("old design: peak reschedules/s")
    left.set_title(f"'{claims.OLD_QUOTE}'", fontsize=9)
    right.axvline(claims.NEW_HARDLY_PER_REQUEST, color="tab:blue", ls=":", lw=1)
    right.set_xscale("log")
    right.set_xlim(left=floor["new_worst_per_request"])
    right.set_xlabel("new design: worst reschedules per request above 2,000 requests/s (log)")
    right.set_title("'schedules hardly at all' above 2,000 requests/s", fontsize=9)
    fig.suptitle("The linux-2.2-1999 model with one assumption changed at a time")
    return fig


def per_state(measured: pd.DataFrame, simulated: pd.DataFrame) -> Figure:
    """One panel per workload: requests moved out of each lifecycle state per request against
    achieved load - measured points (the server's /server-status), modelled lines."""
    regimes = [r for r in ("today", "seed")
               if "regime" in measured.columns and (measured["regime"] == r).any()]
    fig, axes = _new_figure(ncols=max(1, len(regimes)))
    frames = {"measured": measured, "simulated": simulated}
    for ax, regime in zip(axes, regimes, strict=False):
        for i, name in enumerate(NAMES):
            column = moved_column(i)
            for source, df in frames.items():
                if df is None or column not in df.columns:
                    continue
                sub = df[(df["arch"] == "state-group") & (df["regime"] == regime)]
                sub = sub.dropna(subset=[column])
                if sub.empty:
                    continue
                pts = sub.groupby(sub["target_rps"].fillna(-1.0))[["rps", column]].mean()
                pts = pts.sort_values("rps")
                if source == "measured":
                    ax.plot(pts["rps"], pts[column], "o", color=STATE_COLORS[i], ms=5,
                            label=f"{name} (measured)")
                else:
                    ax.plot(pts["rps"], pts[column], "-", color=STATE_COLORS[i], lw=1.8,
                            label=f"{name} (model)")
        ax.set_xscale("log")
        ax.set_xlabel("achieved requests/s (log scale)")
        ax.set_ylabel("requests moved out of the state, per request")
        ax.set_title(f"state-group, {regime}")
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=5, fontsize=8)
    fig.suptitle("Work by lifecycle state: the real server's counters and the model's stages")
    return fig
