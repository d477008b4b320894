"""Live counts on this machine for the notebooks: one measured window of a running real server
(:func:`live_point`, exactly as ``arch-sim bench`` measures one), and a check, before the live
cells, that the machine is quiet enough for such counts to mean something (:func:`quiet_check`).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from arch_sim import schema


def live_point(server: Any, files: Any, rate: float | None, *, connections: int = 8,
               duration: float = 3.0, client_cpus: Sequence[int] = (1,),
               seed: int = 1) -> dict[str, Any]:
    """One measured window of a running server (from :func:`arch_sim.harness.servers.start`)
    under wrk, exactly as ``arch-sim bench`` measures it: one schema row.

    *files* is the :class:`~arch_sim.harness.fileset.FileSet` it serves; *rate* None is
    unpaced.  Besides the schema columns, a state-group server's worker counters over the
    window are added: ``worker_requests``, ``worker_sleeps``, ``worker_passes`` and
    ``passes_per_request``.
    """
    from arch_sim.harness.measure import Load, Target, measure, row
    from arch_sim.harness.servers import SERVER_MODULES

    snapshots: list[dict] = []

    def status() -> dict:
        snapshot = server.status()
        snapshots.append(snapshot)
        return snapshot

    target = Target(server.arch, SERVER_MODULES.get(server.arch, server.arch), server.url,
                    lambda: server.status()["pids"], status, server.check_alive)
    load = Load(rate, connections, duration, True, files.urls, files.weights,
                tuple(client_cpus), seed)
    result, delta, perf, *cpu_count = measure(target, load, use_perf=False)
    cpus = server.cpus or ()
    fixed = {"preset": files.name, "cpus": max(len(cpus), 1), "rep": 0, "seed": seed,
             "run_id": "live", "connection_mode": "keep-alive", "file_set": files.name,
             "server_cpus": ",".join(map(str, cpus)),
             "client_cpus": ",".join(map(str, client_cpus))}
    out = row(target, load, result, delta, perf, max(len(cpus), 1), fixed, *cpu_count)
    before, after = snapshots[-2], snapshots[-1]
    if "workers" in after:
        def total(snap: dict, key: str) -> int:
            return sum(int(w.get(key, 0)) for w in snap["workers"])

        reqs = total(after, "requests") - total(before, "requests")
        out["worker_requests"] = reqs
        out["worker_sleeps"] = total(after, "sleeps") - total(before, "sleeps")
        out["worker_passes"] = total(after, "passes") - total(before, "passes")
        out["passes_per_request"] = out["worker_passes"] / reqs if reqs else math.nan
    return out


def live_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Rows from :func:`live_point` as a schema DataFrame (for :mod:`arch_sim.plots`)."""
    return schema.validate(schema.to_frame(list(rows)))


# -- a quiet machine before the live cells -----------------------------------------------------

#: a machine is "quiet" when its 1-minute load average per CPU and the spread of repeated spin
#: calibrations stay under these
QUIET_LOAD_PER_CPU = 0.5
QUIET_SPREAD = 0.10


def quiet_warnings(load1: float, cpus: int, rates: Sequence[float],
                   involuntary: int) -> list[str]:
    """What makes a machine too noisy for live counts (empty list: quiet).

    *load1* is the 1-minute load average (the idle baseline: runnable tasks on average),
    *rates* the loop iterations per second of each repeated spin calibration (a busy neighbour
    on the CPU makes them vary), *involuntary* the preemptions the spinning thread suffered (a
    thread alone on its CPU suffers none)."""
    out = []
    if load1 / max(cpus, 1) > QUIET_LOAD_PER_CPU:
        out.append(f"load average {load1:.2f} on {cpus} CPU(s): other work is running")
    if len(rates) >= 2:
        spread = (max(rates) - min(rates)) / max(statistics.fmean(rates), 1e-12)
        if spread > QUIET_SPREAD:
            out.append(f"spin calibrations vary by {spread:.0%} between repeats "
                       f"(quiet: under {QUIET_SPREAD:.0%})")
    if involuntary:
        out.append(f"{involuntary} involuntary switch(es) while spinning alone: something else "
                   "wants this CPU")
    return out


def quiet_check(repeats: int = 5, spin_s: float = 0.05) -> dict[str, Any]:
    """Is this machine quiet enough for live counts?  Measures an idle baseline (the load
    average), then *repeats* spin calibrations of *spin_s* each (loop iterations per second,
    and this thread's involuntary switches meanwhile); prints the numbers and a warning if they
    look noisy.  Returns them, with ``quiet`` and ``warnings``."""
    import resource

    who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
    load1 = os.getloadavg()[0]
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    before = resource.getrusage(who).ru_nivcsw
    rates = []
    for _ in range(repeats):
        n, t0 = 0, time.perf_counter()
        end = t0 + spin_s
        while time.perf_counter() < end:
            n += 1
        rates.append(n / (time.perf_counter() - t0))
    involuntary = resource.getrusage(who).ru_nivcsw - before
    warnings = quiet_warnings(load1, cpus or 1, rates, involuntary)
    print(f"idle baseline: load average {load1:.2f} on {cpus} CPU(s); {repeats} spin "
          f"calibrations of {spin_s * 1e3:.0f} ms: {min(rates) / 1e6:.2f}-"
          f"{max(rates) / 1e6:.2f} M loops/s, {involuntary} involuntary switch(es)")
    if warnings:
        print("WARNING - this machine is not quiet, live counts will be noisy: "
              + "; ".join(warnings) + ". Close other programs and re-run this cell.")
    else:
        print("quiet enough for live counts")
    return {"load1": load1, "cpus": cpus, "rates": rates, "involuntary": involuntary,
            "quiet": not warnings, "warnings": warnings}


