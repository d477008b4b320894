"""How well the model reproduces a measurement: simulate the measured points, compare.

* :func:`simulate_like` simulates exactly the load points of a measured sweep - same
  architecture, connections, CPUs and file set, a closed wrk-like workload with exponential think
  times at the measured target rate (unpaced for the ``max`` rows) - with the simulate
  command's parallel, seeded runner.
* :func:`fidelity` puts measured and simulated reschedules per request side by side per
  architecture and load point, with the difference and whether it is within tolerance:
  25% of the measured value or 0.1 absolute, whichever is larger.

    >>> import pandas as pd
    >>> m = pd.DataFrame({"source": "measured", "arch": "state-group", "target_rps": [200.0] * 2,
    ...                   "rps": [199.0, 201.0], "reschedules_per_request": [0.90, 0.88]})
    >>> s = m.assign(source="simulated", reschedules_per_request=[0.80, 0.82])
    >>> row = fidelity(m, s).iloc[0]
    >>> round(float(row["rel_diff"]), 2), bool(row["within"])
    (-0.09, True)
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from arch_sim import ARCHS, schema
from arch_sim.models import ModelParams, load_preset, point_seed
from arch_sim.stats import mean_ci

#: the acceptance rule: within 25% of the measured value or 0.1 absolute, whichever is larger
REL_TOLERANCE = 0.25
ABS_TOLERANCE = 0.1
#: measured file sets -> the model's file sizes
FILE_SIZES = {"specweb99": "specweb99", "1k": "fixed:1"}

COLUMNS = ("arch", "load", "target_rps", "connections", "measured_rps", "measured",
           "measured_ci", "measured_n", "simulated_rps", "simulated", "simulated_ci",
           "simulated_n", "diff", "abs_diff", "rel_diff", "tolerance", "within")


def load_label(target_rps: float | None) -> str:
    """``'200'`` for a paced point, ``'max'`` for an unpaced one."""
    if target_rps is None or (isinstance(target_rps, float) and math.isnan(target_rps)):
        return "max"
    return f"{float(target_rps):g}"


def tolerance(measured: float) -> float:
    """The allowed |simulated - measured| for a measured reschedules-per-request value."""
    return max(REL_TOLERANCE * abs(measured), ABS_TOLERANCE)


def _threads(server: Any) -> int | None:
    match = re.search(r"--threads[ =](\d+)", str(server))
    return int(match.group(1)) if match else None


def plan_like(measured: pd.DataFrame, params: ModelParams | str, reps: int = 3,
              requests: int = 6000, seed: int = 1) -> list[dict[str, Any]]:
    """The simulate_point keyword sets that mirror the measured sweep's load points."""
    params = load_preset(params)
    rows = measured[measured["source"] == "measured"] if "source" in measured else measured
    rows = rows[rows["arch"].isin(ARCHS)]
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
        threads = _threads(r.get("server")) if r["arch"] == "thread-per-request" else None
        key = (r["arch"], target, connections, cpus, file_sizes, threads)
        if key in seen:
            continue
        seen.add(key)
        for rep in range(reps):
            jobs.append({
                "arch": r["arch"], "params": params, "target_rps": target,
                "workload": "closed", "connections": connections, "requests": requests,
                "seed": point_seed(seed, target, rep, connections), "rep": rep, "cpus": cpus,
                "threads": threads, "file_sizes": file_sizes,
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

    from arch_sim.simulate import WALL_FIELDS, run_jobs

    plan = plan_like(measured, params, reps, requests, seed)
    if not plan:
        return schema.to_frame([])
    workers = jobs if jobs is not None else (os.cpu_count() or 1)
    rows = run_jobs(plan, workers=workers, progress=progress)
    for row in rows:
        row["run_id"] = run_id or f"like-{row['preset']}"
    return schema.to_frame([{k: v for k, v in r.items() if k not in WALL_FIELDS} for r in rows])


def _points(df: pd.DataFrame) -> dict[tuple, dict[str, float]]:
    out: dict[tuple, dict[str, float]] = {}
    df = df[df["arch"].isin(ARCHS)] if "arch" in df else df
    for (arch, label), group in df.assign(_load=df["target_rps"].map(load_label)).groupby(
            ["arch", "_load"], sort=False):
        mean, ci = mean_ci(pd.to_numeric(group["reschedules_per_request"], errors="coerce"))
        rps = float(pd.to_numeric(group["rps"], errors="coerce").mean())
        conns = group["connections"].dropna() if "connections" in group else pd.Series([])
        out[(arch, label)] = {
            "mean": mean, "ci": ci, "n": int(group["reschedules_per_request"].notna().sum()),
            "rps": rps, "connections": float(conns.iloc[0]) if len(conns) else math.nan,
            "target_rps": (math.nan if label == "max" else float(label)),
        }
    return out


def fidelity(measured: pd.DataFrame, simulated: pd.DataFrame) -> pd.DataFrame:
    """Per architecture and load point: measured and simulated reschedules per request.

    Columns: ``arch``, ``load`` ('200', 'max'), ``target_rps``, ``connections``,
    ``measured_rps``, ``measured`` (mean over repetitions), ``measured_ci`` (95% half-width),
    ``measured_n``, the same for ``simulated``, ``diff`` (simulated - measured), ``abs_diff``,
    ``rel_diff`` (diff / measured), ``tolerance`` (max(25% of measured, 0.1)) and ``within``
    (|diff| <= tolerance).  Points measured but not simulated get NaN and ``within`` False.
    Rows are in architecture order, then by load (``max`` last).
    """
    meas = _points(measured)
    sim = _points(simulated)
    rows = []
    for (arch, label), m in meas.items():
        s = sim.get((arch, label), {})
        s_mean = s.get("mean", math.nan)
        diff = s_mean - m["mean"]
        tol = tolerance(m["mean"])
        rows.append({
            "arch": arch, "load": label, "target_rps": m["target_rps"],
            "connections": m["connections"], "measured_rps": m["rps"],
            "measured": m["mean"], "measured_ci": m["ci"], "measured_n": m["n"],
            "simulated_rps": s.get("rps", math.nan), "simulated": s_mean,
            "simulated_ci": s.get("ci", math.nan), "simulated_n": s.get("n", 0),
            "diff": diff,
            "abs_diff": abs(diff),
            "rel_diff": diff / m["mean"] if m["mean"] else math.nan,
            "tolerance": tol,
            "within": bool(np.isfinite(diff) and abs(diff) <= tol),
        })
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if df.empty:
        return df
    rank = {a: i for i, a in enumerate(ARCHS)}
    order = df.assign(_a=df["arch"].map(rank),
                      _t=df["target_rps"].fillna(np.inf)).sort_values(["_a", "_t"])
    return order.drop(columns=["_a", "_t"]).reset_index(drop=True)


def fidelity_markdown(table: pd.DataFrame) -> str:
    """The fidelity table as Markdown (for REPORT.md)."""
    lines = ["| arch | load | measured req/s | measured resched/req (95% CI) | simulated "
             "resched/req | difference | within? |",
             "|---|---|---:|---:|---:|---:|:---:|"]
    for _, r in table.iterrows():
        ci = "" if pd.isna(r["measured_ci"]) else f" ± {r['measured_ci']:.2f}"
        rel = "" if pd.isna(r["rel_diff"]) else f" ({r['rel_diff']:+.0%})"
        lines.append(
            f"| {r['arch']} | {r['load']} | {r['measured_rps']:,.0f} | {r['measured']:.3f}{ci} "
            f"| {r['simulated']:.3f} | {r['diff']:+.3f}{rel} | "
            f"{'yes' if r['within'] else 'no'} |")
    return "\n".join(lines)
