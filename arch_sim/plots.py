"""Figures drawn from the one results schema, so measured and simulated curves share axes.

Every figure function takes a schema DataFrame (``arch_sim.schema``) and returns a matplotlib
:class:`~matplotlib.figure.Figure` drawn with the Agg backend (no display needed):

* :func:`reschedules_vs_load` - the seed's graph: reschedules/s against achieved requests/s
* :func:`reschedules_per_request` - the same, per request: ~constant for the old design,
  falling towards 0 for the new one
* :func:`throughput_and_latency` - achieved vs offered load, and p50/p99 latency
* :func:`overlay_host` - measured points against the host-preset model, both architectures:
  reschedules/s and reschedules/request

One line per (source, arch) - plus preset, CPUs or workload when those vary - averaged over
repetitions, with a 95% confidence band (simulated) or error bars (measured).  Simulated rows
are lines, measured rows are points joined by thin lines, peers (nginx, ...) are grey.

``arch-sim plot RUN_DIR [RUN_DIR...] [--out DIR]`` draws all three for one or more run folders
or CSV files - one's own measurements too, with only the minimal columns
(:func:`arch_sim.schema.complete`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from arch_sim import ARCHS, claims, runinfo, schema
from arch_sim.argtypes import UsageError, check_out_dir
from arch_sim.stats import summarize

#: The seed's two claims (arch_sim.claims).
SEED_OLD_RESCHEDULES_PER_S = claims.OLD_RESCHEDULES_PER_S
SEED_NEW_HARDLY_ABOVE_RPS = claims.NEW_HARDLY_ABOVE_RPS

ARCH_COLORS = {"thread-per-request": "tab:red", "state-group": "tab:blue"}
ARCH_NAMES = {
    "thread-per-request": "thread-per-request (old, <= 0.1.2)",
    "state-group": "state-group (new, >= 0.1.3)",
}
PEER_COLORS = ("0.35", "0.55", "0.2", "0.7")
PEER_MARKERS = ("s", "^", "D", "v")
LINESTYLES = ("-", "--", ":", "-.")
FIGURES = ("reschedules_vs_load", "reschedules_per_request", "throughput_and_latency")


# -- series: one line per (source, arch, ...) -------------------------------------------------

def _series_keys(df: pd.DataFrame) -> list[str]:
    """source and arch, plus preset / CPUs / workload where they vary within one source."""
    keys = ["source", "arch"]
    for col in ("preset", "cpus", "workload", "regime", "threads"):
        if col in df.columns and (df.groupby("source")[col].nunique(dropna=True) > 1).any():
            keys.append(col)
    return keys


def _label(key: dict) -> str:
    arch = ARCH_NAMES.get(key["arch"], str(key["arch"]))
    extras = []
    if "preset" in key and pd.notna(key["preset"]):
        extras.append(str(key["preset"]))
    if "cpus" in key and pd.notna(key["cpus"]):
        extras.append(f"{int(key['cpus'])} CPU")
    if "workload" in key and pd.notna(key["workload"]):
        extras.append(str(key["workload"]))
    if "regime" in key and pd.notna(key["regime"]):
        extras.append(str(key["regime"]))
    if key.get("threads") is not None and pd.notna(key["threads"]):
        arch = ("thread per connection" if int(key["threads"]) == 0
                else f"thread-per-request, pool of {int(key['threads'])}")
    tail = f" [{', '.join(extras)}]" if extras else ""
    return f"{key['source']}: {arch}{tail}"


def series(df: pd.DataFrame, *ys: str) -> Iterator[tuple[dict, pd.DataFrame]]:
    """(key, points) per line: mean rps, mean of each y and ``{y}_ci`` per load point.

    A load point is a (target_rps, connections) pair; repetitions of it are averaged.
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


class _Styler:
    """Colour by arch (peers in grey), line style by preset/CPUs/workload variant."""

    def __init__(self) -> None:
        self.variants: dict[str, dict[tuple, int]] = {}  # per source
        self.peers: dict[str, int] = {}

    def __call__(self, key: dict) -> dict:
        arch = str(key["arch"])
        variant = tuple(str(v) for k, v in key.items() if k not in ("source", "arch"))
        mine = self.variants.setdefault(key["source"], {})
        ls = LINESTYLES[mine.setdefault(variant, len(mine)) % len(LINESTYLES)]
        if arch in ARCH_COLORS:
            color, marker = ARCH_COLORS[arch], "o"
        else:
            i = self.peers.setdefault(arch, len(self.peers))
            color, marker = PEER_COLORS[i % len(PEER_COLORS)], PEER_MARKERS[i % len(PEER_MARKERS)]
        return {"color": color, "marker": marker, "ls": ls}


def _draw(ax, key: dict, points: pd.DataFrame, y: str, style: dict, label: str) -> None:
    x, mean, ci = points["rps"], points[y], points[f"{y}_ci"].fillna(0.0)
    if key["source"] == "simulated":
        ax.plot(x, mean, ls=style["ls"], color=style["color"], lw=2, label=label)
        if (ci > 0).any():
            ax.fill_between(x, mean - ci, mean + ci, color=style["color"], alpha=0.18, lw=0)
    else:
        ax.errorbar(x, mean, yerr=ci if (ci > 0).any() else None, ls=style["ls"], lw=0.8,
                    color=style["color"], marker=style["marker"], ms=5, capsize=2,
                    label=label)


def _new_figure(ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(7.5 * ncols, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def _finish(ax, xlabel: str, ylabel: str) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.set_xlim(left=0)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")


def _order(df: pd.DataFrame) -> pd.DataFrame:
    """Our two architectures first (in lifecycle order), peers after."""
    rank = {a: i for i, a in enumerate(ARCHS)}
    ranked = df.assign(_rank=df["arch"].map(rank).fillna(len(rank)))
    return ranked.sort_values(["_rank", "source"], kind="stable").drop(columns="_rank")


# -- the seed's claims ------------------------------------------------------------------------

def annotate_claims(ax, per_request: bool = False) -> None:
    """Mark the seed's claims: ~15,000 reschedules/s (old) and 'hardly at all' above 2,000 req/s."""
    right = max(ax.get_xlim()[1], SEED_NEW_HARDLY_ABOVE_RPS * 1.5)
    ax.axvspan(SEED_NEW_HARDLY_ABOVE_RPS, right, color="tab:blue", alpha=0.06, lw=0)
    ax.axvline(SEED_NEW_HARDLY_ABOVE_RPS, color="tab:blue", ls=":", lw=1)
    ax.set_xlim(right=right)
    box = {"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.8}
    ax.annotate("seed, new design: 'schedules hardly at all'\nabove 2,000 requests/s",
                xy=(SEED_NEW_HARDLY_ABOVE_RPS, 0.97), xycoords=("data", "axes fraction"),
                xytext=(4, 0), textcoords="offset points", va="top", fontsize=8,
                color="tab:blue", bbox=box)
    if not per_request:
        top = max(ax.get_ylim()[1], SEED_OLD_RESCHEDULES_PER_S * 1.15)
        ax.set_ylim(top=top)
        ax.axhline(SEED_OLD_RESCHEDULES_PER_S, color="tab:red", ls=":", lw=1)
        ax.annotate("seed, old design: '15000 reschedules per second was no exception'",
                    xy=(0.01, SEED_OLD_RESCHEDULES_PER_S), xycoords=("axes fraction", "data"),
                    xytext=(0, 3), textcoords="offset points", fontsize=8, color="tab:red",
                    bbox=box)


def wants_claims(df: pd.DataFrame) -> bool:
    """Claims are drawn by default when simulated linux-2.2-1999 rows are in the frame."""
    sim = df[df["source"] == "simulated"]
    return bool((sim["preset"].astype(str) == "linux-2.2-1999").any())


# -- the figures ------------------------------------------------------------------------------

def _rate_figure(df: pd.DataFrame, y: str, ylabel: str, title: str, claims: bool,
                 per_request: bool) -> Figure:
    fig, (ax,) = _new_figure()
    style = _Styler()
    for key, points in series(_order(df), y):
        _draw(ax, key, points, y, style(key), _label(key))
    ax.set_title(title)
    _finish(ax, "achieved requests/s", ylabel)
    ax.set_ylim(bottom=0)
    if claims:
        annotate_claims(ax, per_request=per_request)
    return fig


def reschedules_vs_load(df: pd.DataFrame, claims: bool = False) -> Figure:
    """The seed's graph: reschedules (context switches) per second against achieved load."""
    return _rate_figure(df, "reschedules_per_s", "reschedules/s (voluntary + involuntary)",
                        "Reschedules vs load", claims, per_request=False)


def reschedules_per_request(df: pd.DataFrame, claims: bool = False) -> Figure:
    """Reschedules per request: flat for thread-per-request, falling for state-group."""
    return _rate_figure(df, "reschedules_per_request", "reschedules per request",
                        "Reschedules per request vs load", claims, per_request=True)


def throughput_and_latency(df: pd.DataFrame) -> Figure:
    """Left: achieved vs offered requests/s.  Right: p50 (solid) and p99 (dashed) latency."""
    fig, (left, right) = _new_figure(ncols=2)
    paced = df[pd.to_numeric(df["target_rps"], errors="coerce").notna()]
    style = _Styler()
    for key, points in series(_order(paced), "rps"):
        left.plot(points["target_rps"], points["rps"], label=_label(key),
                  **_line_kwargs(key, style(key)))
    if not paced.empty:
        top = float(np.nanmax(pd.to_numeric(paced["target_rps"], errors="coerce")))
        left.plot([0, top], [0, top], color="0.6", lw=0.8, ls="--", label="achieved = offered")
    else:
        left.text(0.5, 0.5, "no paced runs (unpaced load only)", ha="center",
                  transform=left.transAxes)
    left.set_title("Throughput")
    _finish(left, "offered requests/s", "achieved requests/s")
    style = _Styler()
    for key, points in series(_order(df), "lat_p99_ms", "lat_p50_ms"):
        kwargs = _line_kwargs(key, style(key))
        right.plot(points["rps"], points["lat_p50_ms"], label=f"{_label(key)} p50", **kwargs)
        right.plot(points["rps"], points["lat_p99_ms"], label=f"{_label(key)} p99",
                   **{**kwargs, "ls": "--", "lw": 1})
    right.set_yscale("log")
    right.set_title("Latency")
    _finish(right, "achieved requests/s", "latency (ms)")
    return fig


def _line_kwargs(key: dict, style: dict) -> dict:
    if key["source"] == "simulated":
        return {"color": style["color"], "ls": style["ls"], "lw": 2}
    return {"color": style["color"], "ls": style["ls"], "lw": 0.8, "marker": style["marker"],
            "ms": 5}


def _two_panels(df: pd.DataFrame, title: str) -> Figure:
    """Reschedules/s (left) and reschedules/request (right) against achieved requests/s."""
    fig, (left, right) = _new_figure(ncols=2)
    for ax, y, ylabel in ((left, "reschedules_per_s", "reschedules/s (voluntary + involuntary)"),
                          (right, "reschedules_per_request", "reschedules per request")):
        style = _Styler()
        for key, points in series(_order(df), y):
            points = points.sort_values("rps") if key["source"] == "simulated" else points
            _draw(ax, key, points, y, style(key), _label(key))
        _finish(ax, "achieved requests/s (log scale)", ylabel)
        ax.set_xscale("log")  # 100 to tens of thousands of requests/s
        ax.autoscale(axis="x")
        ax.set_ylim(bottom=0)
    fig.suptitle(title)
    return fig


def overlay_host(measured_df: pd.DataFrame, simulated_df: pd.DataFrame) -> Figure:
    """Measured points (95% CI error bars) over the host-preset model's curves, both archs.

    ``simulated_df`` is the model on the ``host`` preset (e.g. the measured points simulated
    with :func:`arch_sim.fidelity.simulate_like`, or a denser sweep); its lines are drawn in
    order of achieved load.
    """
    measured = measured_df[measured_df["source"] == "measured"]
    measured = measured[measured["arch"].isin(ARCHS)]
    simulated = simulated_df[simulated_df["source"] == "simulated"]
    df = pd.concat([measured, simulated], ignore_index=True)
    presets = sorted(set(simulated["preset"].dropna().astype(str)))
    name = ", ".join(presets) or "host"
    return _two_panels(df, f"Measured on this host vs the model ({name} preset)")


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


def draw_all(df: pd.DataFrame, out_dir: str | Path, claims: bool | None = None) -> list[Path]:
    """Draw the three figures of a results frame into out_dir; returns the files written."""
    schema.validate(df)
    if claims is None:
        claims = wants_claims(df)
    figures = {
        "reschedules_vs_load": reschedules_vs_load(df, claims=claims),
        "reschedules_per_request": reschedules_per_request(df, claims=claims),
        "throughput_and_latency": throughput_and_latency(df),
    }
    paths: list[Path] = []
    try:
        for name, fig in figures.items():
            paths += save(fig, out_dir, name)
    except BaseException:  # no half set of figures: take back the ones this call wrote
        for path in paths:
            path.unlink(missing_ok=True)
        raise
    return paths


# -- arch-sim plot ----------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                        help="run folders (measurements.csv and/or simulated.csv) or CSV files")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write the figures (default: the first RUN_DIR)")
    parser.add_argument("--claims", choices=("auto", "yes", "no"), default="auto",
                        help="mark the seed's two claims (auto: when linux-2.2-1999 rows are "
                             "present)")


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
    for path in draw_all(df, out, claims=claims):
        print(path)
    return 0

