"""How well the model reproduces a measurement: simulate the measured points, compare.

* :func:`simulate_like` simulates exactly the load points of a measured sweep - same
  architecture and thread-per-request shape, regime (keep-alive or a connection per request),
  connections, CPUs and file set, a closed wrk-like workload with exponential think times at the
  measured target rate (unpaced for the ``max`` rows) - with the simulate command's parallel,
  seeded runner.
* :func:`fidelity` puts measured and simulated values side by side per regime, architecture,
  shape and load point, for both counts: the server's own reschedules per request (``server``)
  and every switch on its CPUs per request, idle included (``cpu``).  A point is within
  tolerance when ``|ln(simulated / measured)| <= ln 1.10`` (10%) or the two differ by at most
  0.01 per request.

    >>> import pandas as pd
    >>> m = pd.DataFrame({"source": "measured", "arch": "state-group", "target_rps": [200.0] * 2,
    ...                   "rps": [199.0, 201.0], "reschedules_per_request": [0.90, 0.88]})
    >>> s = m.assign(source="simulated", reschedules_per_request=[0.85, 0.87])
    >>> row = fidelity(m, s).iloc[0]
    >>> round(float(row["rel_diff"]), 3), bool(row["within"])
    (-0.034, True)
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from arch_sim import ALL_ARCHS, schema
from arch_sim.claims import COUNTS
from arch_sim.models import ModelParams, load_preset, point_seed
from arch_sim.regimes import REGIMES, add_regime
from arch_sim.stats import mean_ci

#: the acceptance rule: within 10% (as a log ratio) or 0.01 reschedules per request
REL_TOLERANCE = 0.10
ABS_TOLERANCE = 0.01
#: measured file sets -> the model's file sizes
FILE_SIZES = {"specweb99": "specweb99", "1k": "fixed:1"}

COLUMNS = ("regime", "arch", "threads", "count", "load", "target_rps", "connections",
           "measured_rps", "measured", "measured_ci", "measured_n", "simulated_rps",
           "simulated", "simulated_ci", "simulated_n", "diff", "rel_diff", "log_ratio",
           "within", "in_ci")


def load_label(target_rps: float | None) -> str:
    """``'200'`` for a paced point, ``'max'`` for an unpaced one."""
    if target_rps is None or (isinstance(target_rps, float) and math.isnan(target_rps)):
        return "max"
    return f"{float(target_rps):g}"


def within(measured: float, simulated: float) -> bool:
    """The fidelity rule for one point: 10% (log ratio) or 0.01 absolute."""
    if not (np.isfinite(measured) and np.isfinite(simulated)):
        return False
    if abs(simulated - measured) <= ABS_TOLERANCE:
        return True
    if measured <= 0 or simulated <= 0:
        return False
    return abs(math.log(simulated / measured)) <= math.log1p(REL_TOLERANCE)


def threads_of(row: Any) -> int | None:
    """A thread-per-request row's shape: its ``threads`` column, or ``--threads N`` in its
    ``server`` (older runs); None for other architectures."""
    if row.get("arch") != "thread-per-request":
        return None
    value = row.get("threads")
    if value is not None and not pd.isna(value):
        return int(value)
    match = re.search(r"--threads[ =](\d+)", str(row.get("server", "")))
    return int(match.group(1)) if match else None


def plan_like(measured: pd.DataFrame, params: ModelParams | str, reps: int = 3,
              requests: int = 6000, seed: int = 1) -> list[dict[str, Any]]:
    """The simulate_point keyword sets that mirror the measured sweep's load points.

    A paced point is simulated as the bench measured it: windows of the bench's length, each
    a new wrk run that opens its connections at the start and closes them at the end
    (``bench_window_s``: the measured duration in wrk's whole seconds).  An unpaced point
    ("max") is simulated in the steady state: there a window's 64 accepts and closes are
    spread over tens of thousands of requests."""
    params = load_preset(params)
    rows = measured[measured["source"] == "measured"] if "source" in measured else measured
    rows = add_regime(rows[rows["arch"].isin(ALL_ARCHS)])
    jobs: list[dict[str, Any]] = []
    seen: set[tuple] = set()
    for _, r in rows.iterrows():
        target = r.get("target_rps")
        target = None if target is None or pd.isna(target) else float(target)
        connections = r.get("connections")
        connections = (params.workload.connections if connections is None or pd.isna(connections)
                       else int(connections))
        cpus = r.get("cpus")
        cpus = None if cpus is None or pd.isna(cpus) else int(cpus)
        file_set = r.get("file_set")
        file_sizes = FILE_SIZES.get(str(file_set)) if file_set is not None else None
        threads = threads_of(r)
        connection = REGIMES[r["regime"]].connection
        duration = r.get("duration_s")
        window = (float(max(1, round(float(duration))))
                  if target is not None and duration is not None and not pd.isna(duration)
                  else None)
        key = (r["arch"], target, connections, cpus, file_sizes, threads, connection, window)
        if key in seen:
            continue
        seen.add(key)
        for rep in range(reps):
            jobs.append({
                "arch": r["arch"], "params": params, "target_rps": target,
                "workload": "closed", "connection": connection, "connections": connections,
                "requests": requests, "seed": point_seed(seed, target, rep, connections),
                "rep": rep, "cpus": cpus, "threads": threads, "file_sizes": file_sizes,
                "bench_window_s": window,
            })
    return jobs


def simulate_like(measured: pd.DataFrame, params: ModelParams | str, reps: int = 3,
                  requests: int = 6000, seed: int = 1, *, jobs: int | None = None,
                  progress: bool = False, run_id: str = "") -> pd.DataFrame:
    """Simulate the measured sweep's points (schema rows, ``source == 'simulated'``).

    Runs in a process pool of ``jobs`` workers (default: all CPUs) with the simulate command's
    runner; the rows come back in a fixed order and repeat exactly for the same arguments.
    """
    import os

    from arch_sim.sweep import WALL_FIELDS, run_jobs

    plan = plan_like(measured, params, reps, requests, seed)
    if not plan:
        return schema.to_frame([])
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    rows = run_jobs(plan, workers=workers, progress=progress)
    for row in rows:
        row["run_id"] = run_id or f"like-{row['preset']}"
    return schema.to_frame([{k: v for k, v in r.items() if k not in WALL_FIELDS} for r in rows])


def _points(df: pd.DataFrame, column: str) -> dict[tuple, dict[str, float]]:
    """Mean, 95% CI and n of ``column`` per (regime, arch, threads, load)."""
    out: dict[tuple, dict[str, float]] = {}
    if column not in df.columns:
        return out
    df = add_regime(df[df["arch"].isin(ALL_ARCHS)] if "arch" in df else df)
    shapes = [threads_of(r) for _, r in df.iterrows()]
    df = df.assign(_load=df["target_rps"].map(load_label),
                   _threads=[-1 if t is None else t for t in shapes])
    for (regime, arch, threads, label), group in df.groupby(
            ["regime", "arch", "_threads", "_load"], sort=False):
        values = pd.to_numeric(group[column], errors="coerce")
        if values.notna().sum() == 0:
            continue
        mean, ci = mean_ci(values)
        conns = group["connections"].dropna() if "connections" in group else pd.Series([])
        out[(regime, arch, threads, label)] = {
            "mean": mean, "ci": ci, "n": int(values.notna().sum()),
            "rps": float(pd.to_numeric(group["rps"], errors="coerce").mean()),
            "connections": float(conns.iloc[0]) if len(conns) else math.nan,
            "target_rps": (math.nan if label == "max" else float(label)),
        }
    return out


def fidelity(measured: pd.DataFrame, simulated: pd.DataFrame,
             counts: tuple[str, ...] = tuple(COUNTS)) -> pd.DataFrame:
    """Per regime, architecture, shape, count and load point: measured and simulated per
    request, side by side.

    Columns: ``regime``, ``arch``, ``threads`` (thread-per-request shape, NaN otherwise),
    ``count`` (``server`` or ``cpu``), ``load`` ('200', 'max'), ``target_rps``,
    ``connections``, ``measured_rps``, ``measured`` (mean over repetitions), ``measured_ci``
    (95% half-width), ``measured_n``, the same for ``simulated``, ``diff`` (simulated -
    measured), ``rel_diff`` (diff / measured), ``log_ratio`` (ln simulated / measured) and
    ``within`` (:func:`within`), and ``in_ci``: the simulated value lies inside the measured
    mean's 95% interval (a miss the measurement itself cannot resolve).  Points measured but
    not simulated get NaN and ``within`` False.  Rows are ordered by regime, count,
    architecture, shape, then load (``max`` last).
    """
    rows = []
    for count in counts:
        column = COUNTS[count][1]
        meas = _points(measured, column)
        sim = _points(simulated, column)
        for (regime, arch, threads, label), m in meas.items():
            s = sim.get((regime, arch, threads, label), {})
            s_mean = s.get("mean", math.nan)
            diff = s_mean - m["mean"]
            ratio = (math.log(s_mean / m["mean"]) if m["mean"] > 0 and s_mean > 0
                     else math.nan)
            rows.append({
                "regime": regime, "arch": arch, "threads": math.nan if threads < 0 else threads,
                "count": count, "load": label, "target_rps": m["target_rps"],
                "connections": m["connections"], "measured_rps": m["rps"],
                "measured": m["mean"], "measured_ci": m["ci"], "measured_n": m["n"],
                "simulated_rps": s.get("rps", math.nan), "simulated": s_mean,
                "simulated_ci": s.get("ci", math.nan), "simulated_n": s.get("n", 0),
                "diff": diff, "rel_diff": diff / m["mean"] if m["mean"] else math.nan,
                "log_ratio": ratio, "within": within(m["mean"], s_mean),
                "in_ci": bool(np.isfinite(diff) and np.isfinite(m["ci"])
                              and abs(diff) <= m["ci"]),
            })
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if df.empty:
        return df
    order = df.assign(
        _r=df["regime"].map({r: i for i, r in enumerate(REGIMES)}).fillna(9),
        _c=df["count"].map({c: i for i, c in enumerate(COUNTS)}),
        _a=df["arch"].map({a: i for i, a in enumerate(ALL_ARCHS)}),
        _s=df["threads"].fillna(-1), _t=df["target_rps"].fillna(np.inf))
    order = order.sort_values(["_r", "_c", "_a", "_s", "_t"])
    return order.drop(columns=["_r", "_c", "_a", "_s", "_t"]).reset_index(drop=True)


def shape_label(arch: str, threads: float | None) -> str:
    """``thread per connection``, ``pool of 64``, ``state-group``..."""
    if arch != "thread-per-request" or threads is None or pd.isna(threads):
        return arch
    return "thread-per-request, a thread per connection" if int(threads) == 0 else \
        f"thread-per-request, pool of {int(threads)}"


def headline(table: pd.DataFrame) -> str:
    """'N of M points within 10%' (over every regime, count and point of the table)."""
    if table is None or table.empty:
        return "no points compared"
    text = f"{int(table['within'].sum())} of {len(table)} points within 10% (or 0.01 per request)"
    if "in_ci" in table:
        misses = table[~table["within"].astype(bool)]
        text += (f"; {int(misses['in_ci'].astype(bool).sum())} of the {len(misses)} others lie "
                 "inside the measurement's own 95% interval")
    return text


def _verdict(row: pd.Series) -> str:
    if row["within"]:
        return "yes"
    return "**no** (in CI)" if row.get("in_ci", False) else "**no**"


def fidelity_markdown(table: pd.DataFrame) -> str:
    """The fidelity table as Markdown (for REPORT.md)."""
    lines = ["| regime | count | server | load | measured req/s | measured per request (95% CI) "
             "| simulated | difference | within? |",
             "|---|---|---|---|---:|---:|---:|---:|:---:|"]
    for _, r in table.iterrows():
        ci = "" if pd.isna(r["measured_ci"]) else f" ± {r['measured_ci']:.3f}"
        rel = "" if pd.isna(r["rel_diff"]) else f" ({r['rel_diff']:+.0%})"
        lines.append(
            f"| {r['regime']} | {r['count']} | {shape_label(r['arch'], r['threads'])} "
            f"| {r['load']} | {r['measured_rps']:,.0f} | {r['measured']:.3f}{ci} "
            f"| {r['simulated']:.3f} | {r['diff']:+.3f}{rel} | "
            f"{_verdict(r)} |")
    return "\n".join(lines)
