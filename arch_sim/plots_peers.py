"""The peers benchmark's figure (``benchmarks/servers.py``): server CPU per request at
saturation, every server side by side, one panel per file set."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from arch_sim import plotstyle
from arch_sim.plotseries import require
from arch_sim.plotstyle import new_figure, use

#: bar colour by the label's start: our designs as everywhere, peers in grey
LABEL_COLORS = (("state-group", "tab:blue"), ("thread-per-request (pool", "tab:red"),
                ("thread-per-request", "#f4a3a3"), ("nginx", "0.3"), ("", "0.65"))
#: long benchmark labels, shortened for the axis
SHORT = {"thread-per-request (pool 64)": "pool of 64 (old)",
         "thread-per-request (per connection)": "thread per connection (old)",
         "state-group": "state-group (new)", "python-http-server": "Python http.server"}


def _color(label: str) -> str:
    return next(color for start, color in LABEL_COLORS if label.startswith(start))


def cpu_per_request(table: pd.DataFrame, style: str = "paper") -> Figure:
    """Horizontal bars of ``cpu_us_per_request`` (± its SD over rounds) per server label, one
    panel per workload (``file_set``, and with a ``connection_mode`` column a panel of its own
    for a connection per request), each bar noted with its value and its ratio to nginx."""
    require(table, "cpu_per_request", "file_set", "label", "cpu_us_per_request", "cpu_us_sd",
            "cpu_vs_nginx")
    modes = (table["connection_mode"] if "connection_mode" in table
             else pd.Series("keep-alive", index=table.index))
    panel = [f"{file_set} files" if mode == "keep-alive"
             else f"seed: {file_set} files, a connection per request"
             for file_set, mode in zip(table["file_set"], modes, strict=True)]
    how = "keep-alive" if set(modes) == {"keep-alive"} else "per workload"
    with use(style):
        groups = list(table.groupby(pd.Series(panel, index=table.index), sort=False))
        fig, axes = new_figure(ncols=max(1, len(groups)))
        for ax, (file_set, sub) in zip(axes, groups, strict=False):
            labels = [SHORT.get(label, label) for label in sub["label"]]
            y = np.arange(len(sub))
            ax.barh(y, sub["cpu_us_per_request"], xerr=sub["cpu_us_sd"].fillna(0),
                    color=[_color(label) for label in sub["label"]])
            for yy, v, sd, ratio in zip(y, sub["cpu_us_per_request"], sub["cpu_us_sd"].fillna(0),
                                        sub["cpu_vs_nginx"], strict=True):
                note = f"{v:.1f} µs" + ("" if pd.isna(ratio) else f" ({ratio:.1f}x nginx)")
                ax.annotate(note, xy=(v + sd, yy), xytext=(6, 0), textcoords="offset points",
                            va="center", fontsize="small", in_layout=False)  # x limits leave room
            ax.set_yticks(y, labels)
            ax.set_title(file_set)
            ax.set_xlabel("CPU µs per request (user + system)")
            ax.invert_yaxis()
            ax.set_xlim(0, sub["cpu_us_per_request"].max() * 1.7)
            ax.grid(True, axis="x", alpha=0.3)
        fig.suptitle(f"Server CPU per request at saturation (wrk -c 64, {how})")
        return plotstyle.finish(fig)
