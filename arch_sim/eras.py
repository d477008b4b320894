"""Kernel eras and the seed's assumptions: the 1999 model as written, across kernels, and what
it takes to land the seed's numbers.

* :func:`era_jobs` - both designs (the old one in both of kHTTPd 0.1.2's possible shapes: an
  Apache-like pool in accept(), and a thread forked per connection) on the same 4-way 1999
  machine under Linux 2.2 (goodness() loop, wake-all accept), 2.4 (goodness() loop, wake-one) and
  2.6 (O(1)): HTTP/1.0 connections arriving as a Poisson stream at each load, plus a saturation
  point (64 clients with no think time, a connection per request).
* :func:`era_table` - per era, old vs new: reschedules per request at a reference load, CPU per
  request and throughput at saturation; the host's rows (measured and modelled) beside them.
* :func:`sensitivity_jobs` / :func:`sensitivity_table` - the linux-2.2-1999 preset with one
  assumption changed at a time (CPUs, the old design's shape and size, wake-one, the network,
  the costs, closed clients), judged against the seed's claims (:mod:`arch_sim.claims`) with
  either count.  None of these variants is fitted: each says how far one assumption would have
  to move for a claim to hold.

Rows are the results schema plus ``era`` / ``variant`` columns naming what produced them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pandas as pd

from arch_sim import claims
from arch_sim.models import ModelParams, load_preset, point_seed

#: (era label, preset) - the same 1999 machine and costs, three kernels
ERAS = (("Linux 2.2", "linux-2.2-1999"), ("Linux 2.4", "linux-2.4"),
        ("Linux 2.6 O(1)", "linux-2.6-o1"))
#: (arch, threads or None for the preset's) - the old design's two shapes, then the new design
SHAPES = (("thread-per-request", None), ("thread-per-request", 0), ("state-group", None))
LOADS = {"quick": [200, 1000, 2000, 3000],
         "full": [100, 200, 500, 1000, 1500, 2000, 2500, 3000]}
#: the load at which the eras table compares reschedules per request
REFERENCE_RPS = 1000.0
#: the saturation point: closed clients, a connection per request, no think time
SATURATION_CLIENTS = 64
#: open loads are simulated up to this share of what the server's link can carry
OVERLOAD_LIMIT = 0.98


def _job(params: ModelParams | str, arch: str, threads: int | None, load: float | None,
         rep: int, requests: int, seed: int, **extra: Any) -> dict[str, Any]:
    job: dict[str, Any] = {"arch": arch, "params": params, "target_rps": load,
                           "requests": requests, "rep": rep, "threads": threads}
    if load is None:  # saturation: 64 clients, no think time, HTTP/1.0
        job.update(workload="closed", connection="close", connections=SATURATION_CLIENTS,
                   seed=point_seed(seed, None, rep, SATURATION_CLIENTS))
    else:
        job.update(seed=point_seed(seed, load, rep))
    job.update(extra)
    return job


def era_jobs(loads: list[float], reps: int, requests: int, seed: int = 1) -> list[dict]:
    """simulate_point keyword sets for every era x shape x load (+ saturation) x rep; each
    carries a ``label`` (era) that :func:`run` copies into the rows."""
    jobs = []
    for era, preset in ERAS:
        params = load_preset(preset)
        for arch, threads in SHAPES:
            for load in [*loads, None]:
                for rep in range(reps):
                    job = _job(params, arch, threads, load, rep, requests, seed)
                    jobs.append({**job, "label": era})
    return jobs


def run(jobs: list[dict], column: str, workers: int, progress: bool) -> pd.DataFrame:
    """Run labelled jobs (:func:`era_jobs`, :func:`sensitivity_jobs`): schema rows with the
    label in ``column``."""
    from arch_sim import schema
    from arch_sim.sweep import WALL_FIELDS, run_jobs

    labels = [j.pop("label") for j in jobs]
    rows = run_jobs(jobs, workers=workers, progress=progress)
    for row, label in zip(rows, labels, strict=True):
        row[column] = label
        row["run_id"] = f"{column}-{row['preset']}"
    return schema.to_frame([{k: v for k, v in r.items() if k not in WALL_FIELDS} for r in rows])


# -- the eras table ---------------------------------------------------------------------------

def _shape(df: pd.DataFrame, arch: str, threads: int | None) -> pd.DataFrame:
    sub = df[df["arch"] == arch]
    if arch == "thread-per-request" and threads is not None and "threads" in sub.columns:
        sub = sub[pd.to_numeric(sub["threads"], errors="coerce") == threads]
    return sub


def _at(df: pd.DataFrame, column: str, rps: float) -> float:
    """``column`` at the paced load nearest ``rps`` (mean over repetitions)."""
    paced = df[pd.to_numeric(df["target_rps"], errors="coerce").notna()]
    if paced.empty or column not in paced.columns:
        return math.nan
    pts = paced.groupby("target_rps")[column].mean()
    return float(pts.iloc[(abs(pts.index.to_numpy() - rps)).argmin()])


def _saturation(df: pd.DataFrame) -> tuple[float, float]:
    """(requests/s, CPU us per request) at the unpaced point."""
    sat = df[pd.to_numeric(df["target_rps"], errors="coerce").isna()]
    if sat.empty:
        return math.nan, math.nan
    rps = float(sat["rps"].mean())
    if "cpu_us_per_request" in sat.columns and sat["cpu_us_per_request"].notna().any():
        cpu = float(sat["cpu_us_per_request"].mean())
    else:
        cpu = float((sat["cpu_util"] * sat["cpus"] * 1e6 / sat["rps"]).mean())
    return rps, cpu


def era_table(eras: pd.DataFrame, host: dict[str, pd.DataFrame] | None = None,
              pool_threads: int | None = None) -> pd.DataFrame:
    """One row per era and old-design shape: old vs new reschedules per request at
    :data:`REFERENCE_RPS` (both counts), CPU per request and throughput at saturation.

    ``host``: {"measured": rows, "model": rows} of the seed regime on this host, whose old
    design is the pool (``pool_threads``) and the thread per connection.
    """
    rows = []
    sets = [(era, eras[eras["era"] == era], None) for era, _ in ERAS]
    for label, df in (host or {}).items():
        if df is not None and not df.empty:
            sets.append((f"this host ({label})", df, pool_threads))
    for era, df, pool in sets:
        new = _shape(df, "state-group", None)
        new_rps, new_cpu = _saturation(new)
        for threads in (pool, 0):
            old = _shape(df, "thread-per-request", threads)
            if threads is None:  # the preset's pool: every tpr row that is not per connection
                old = old[pd.to_numeric(old.get("threads"), errors="coerce") != 0]
            if old.empty:
                continue
            shape = int(pd.to_numeric(old["threads"], errors="coerce").dropna().iloc[0]) \
                if "threads" in old.columns and old["threads"].notna().any() else None
            old_rps, old_cpu = _saturation(old)
            rows.append({
                "era": era,
                "old_shape": "thread per connection" if shape == 0 else f"pool of {shape}",
                "old_resched_per_request": _at(old, "reschedules_per_request", REFERENCE_RPS),
                "new_resched_per_request": _at(new, "reschedules_per_request", REFERENCE_RPS),
                "old_cpu_switches_per_request": _at(old, "cpu_switches_per_request",
                                                    REFERENCE_RPS),
                "new_cpu_switches_per_request": _at(new, "cpu_switches_per_request",
                                                    REFERENCE_RPS),
                "old_cpu_us_per_request": old_cpu, "new_cpu_us_per_request": new_cpu,
                "old_saturation_rps": old_rps, "new_saturation_rps": new_rps,
                "old_over_new_throughput": old_rps / new_rps if new_rps else math.nan,
            })
    return pd.DataFrame(rows)


# -- sensitivity ------------------------------------------------------------------------------

def _costs(params: ModelParams, factor: float) -> ModelParams:
    s = params.server
    keys = ("accept_us", "parse_us", "send_us", "send_us_per_kb", "log_us", "close_us",
            "thread_create_us", "pass_us", "poll_item_us")
    return params.replace(server={k: getattr(s, k) * factor for k in keys})


#: (label, what changes, change to the preset, simulate_point extras) - one assumption each
VARIANTS: tuple[tuple[str, str, Callable[[ModelParams], ModelParams], dict], ...] = (
    ("as written", "linux-2.2-1999 as sourced", lambda p: p, {}),
    ("1 CPU", "a uniprocessor", lambda p: p.replace(cpus=1), {}),
    ("2 CPUs", "a 2-way SMP box", lambda p: p.replace(cpus=2), {}),
    ("thread per connection", "the old design forks a thread per connection",
     lambda p: p.replace(server={"threads": 0}), {}),
    ("pool of 150", "Apache 1.3's MaxClients default: 150 threads in accept()",
     lambda p: p.replace(server={"threads": 150}), {}),
    ("wake-one accept", "2.3's exclusive accept() wake-ups on 2.2",
     lambda p: p.replace(scheduler={"accept_wakes_all": False}), {}),
    ("no shared link", "replies limited only by each client's Fast Ethernet",
     lambda p: p.replace(network={"server_mbit_s": math.inf}), {}),
    ("one 100 Mbit NIC", "the server on one Fast Ethernet card",
     lambda p: p.replace(network={"server_mbit_s": 94.0}), {}),
    ("costs x 0.5", "every server CPU cost halved", lambda p: _costs(p, 0.5), {}),
    ("costs x 2", "every server CPU cost doubled", lambda p: _costs(p, 2.0), {}),
    ("64 closed clients", "64 HTTP/1.0 clients with think times instead of open arrivals",
     lambda p: p, {"workload": "closed", "connection": "close", "connections": 64}),
)


def link_capacity_rps(params: ModelParams) -> float:
    """Requests/s the server's link can carry at the preset's mean reply size."""
    from arch_sim.models.workload import FileSizes

    return params.network.server_mbit_s * 1e6 / 8.0 / FileSizes(
        params.workload.file_sizes).mean_bytes()


def sensitivity_jobs(loads: list[float], reps: int, requests: int, seed: int = 1,
                     preset: str = "linux-2.2-1999") -> list[dict]:
    """Both designs over ``loads`` for every variant (labelled by variant), plus its saturation
    point.  Open loads beyond what a variant's link can carry are left out: arrivals would only
    pile up (and the simulation with them) without telling more than the saturation point."""
    base = load_preset(preset)
    jobs = []
    for label, _, change, extra in VARIANTS:
        params = change(base).replace(name=f"{base.name}: {label}")
        top = OVERLOAD_LIMIT * link_capacity_rps(params)
        for arch in ("thread-per-request", "state-group"):
            for load in [x for x in loads if x <= top] + [None]:
                for rep in range(reps):
                    job = _job(params, arch, None, load, rep, requests, seed, **extra)
                    jobs.append({**job, "label": label})
    return jobs


def sensitivity_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per variant and count: the old design's peak reschedules/s and the new design's worst
    reschedules per request above 2,000 requests/s, each with whether the claim holds."""
    rows = []
    for label, what, _, _ in VARIANTS:
        sub = df[df["variant"] == label]
        if sub.empty:
            continue
        for count in claims.COUNTS:
            old = claims.judge_old(sub[sub["arch"] == "thread-per-request"], count)
            new = claims.judge_new(sub[sub["arch"] == "state-group"], count)
            rows.append({"variant": label, "change": what, "count": count,
                         "old_peak_per_s": old.value, "old_peak_at_rps": old.at_rps,
                         "old_holds": old.holds, "new_worst_per_request": new.value,
                         "new_worst_at_rps": new.at_rps, "new_holds": new.holds})
    return pd.DataFrame(rows)
