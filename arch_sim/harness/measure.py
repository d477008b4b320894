"""One measured load point: counters around exactly one wrk window, turned into a schema row."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from real_servers.core.lifecycle import NAMES, moved_column

from .counters import Delta, PerfCounter, delta, snapshot
from .cpu_trace import CpuSwitchTrace
from .wrk import WrkResult, run_wrk

#: columns the harness adds after the shared schema, so the sources can be compared
EXTRA_COLUMNS = (
    "reschedule_source",
    "proc_reschedules_per_s",
    "perf_reschedules_per_s",
    "cpu_switches_per_s",
    "cpu_switches_idle_per_s",
    "cpu_switches_per_request",
    "cpu_switches_foreign_per_s",
    "system_ctxt_per_s",
    "wrk_requests",
    "server_requests",
    "lat_p90_ms",
    "lat_p999_ms",
    "cpu_user_s",
    "cpu_system_s",
    "cpu_us_per_request",
    "client_cpu_us_per_request",
    "sleeps_per_request",
    "connection_mode",
    "regime",
    "threads",
    "file_set",
    "server_cpus",
    "client_cpus",
    "steal_frac",
    "reference_us",
    *(moved_column(i) for i in range(len(NAMES))),  # per lifecycle state (state-group)
)
PERF_SETTLE_S = 0.15  # perf needs a moment to attach before the window opens


@dataclass
class Target:
    """A running server as the harness sees it."""

    name: str  # arch or peer name
    server: str  # what ran (module and options, or binary and version)
    url: str
    pids: Callable[[], Sequence[int]]
    status: Callable[[], dict | None]
    check_alive: Callable[[], None]


@dataclass
class CpuCount:
    """Every switch on the server's CPUs over one window, and the idle background rate."""

    count: float | None  # in the wrk window (the seconds counted beyond it taken off)
    idle_per_s: float | None  # the same CPUs with no load, measured just before
    foreign: float | None = None  # switches other processes caused there (left out of count)


@dataclass
class Load:
    target_rps: float | None  # None = unpaced ("max")
    connections: int
    duration: float
    keep_alive: bool
    paths: Sequence[str]
    weights: Sequence[float]
    client_cpus: Sequence[int]
    seed: int


def drive(target: Target, load: Load, duration: float | None = None) -> WrkResult:
    """Run wrk once (used for priming and warm-up: nothing is recorded)."""
    return run_wrk(
        target.url, load.paths, load.connections, duration or load.duration, load.target_rps,
        load.client_cpus, load.keep_alive, load.seed, weights=load.weights,
    )


def measure(target: Target, load: Load, use_perf: bool, server_cpus: Sequence[int] = (),
            idle_per_s: float | None = None, trace: bool = False,
            ) -> tuple[WrkResult, Delta, int | None, CpuCount]:
    """Counters before, wrk, counters after: the deltas cover exactly the wrk window.

    With perf, also every switch on ``server_cpus``.  With ``trace`` (perf may record the
    scheduler's tracepoints) they are read from a trace of those CPUs
    (:class:`~arch_sim.harness.cpu_trace.CpuSwitchTrace`): only the switches while wrk runs,
    as if no other process had run there.  Without it, ``perf stat`` counts every switch there
    a little longer than the wrk window (it starts first and stops last).  Either way the
    count's seconds beyond wrk's own duration are taken off at the ``idle_per_s`` background.
    """
    pids = list(target.pids())
    perf = PerfCounter(pids) if use_perf else None
    on_cpus: PerfCounter | CpuSwitchTrace | None = None
    if use_perf and server_cpus:
        on_cpus = CpuSwitchTrace(server_cpus, target.pids) if trace else PerfCounter(
            cpus=server_cpus)
    for counter in (perf, on_cpus):
        if counter is not None:
            counter.start()
    if perf is not None:
        time.sleep(PERF_SETTLE_S)
    before = snapshot(pids, target.status())
    t0 = time.monotonic()
    result = drive(target, load)
    t1 = time.monotonic()
    after = snapshot(pids, target.status())
    perf_count = perf.stop() if perf is not None else None
    cpu = CpuCount(None, idle_per_s)
    seconds: float | None = None
    if isinstance(on_cpus, CpuSwitchTrace):
        on_cpus.stop()
        counted = on_cpus.count(t0, t1)
        cpu = CpuCount(float(counted.kept), idle_per_s, float(counted.all - counted.kept))
        seconds = counted.seconds
    elif on_cpus is not None:
        count = on_cpus.stop()
        cpu = CpuCount(None if count is None else float(count), idle_per_s)
        seconds = on_cpus.seconds
    if cpu.count is not None and seconds and idle_per_s is not None:
        cpu.count = max(0.0, cpu.count - idle_per_s * max(0.0, seconds - result.duration_s))
    target.check_alive()
    return result, delta(before, after, {*server_cpus, *load.client_cpus}), perf_count, cpu


def _reschedules(d: Delta, perf_count: int | None) -> tuple[str, float]:
    """(source, count) of a server's reschedules in the window.

    A server with ``/server-status`` reports its own getrusage (exited threads included).  One
    without (peers, bring-your-own servers) is counted by perf attached to its process tree,
    which keeps processes and threads that start or exit in the window; without perf, by its
    live threads' /proc counts, which lose a task that exits in the window.
    """
    if d.reschedules is not None:
        return "getrusage", d.reschedules
    if perf_count is not None:
        return "perf", perf_count
    return "proc", d.proc_reschedules


def row(
    target: Target,
    load: Load,
    result: WrkResult,
    d: Delta,
    perf_count: int | None,
    ncpus: int,
    fixed: dict,
    cpu: CpuCount | None = None,
) -> dict:
    """The schema row (plus extras) for one measured point."""
    secs = result.duration_s or load.duration
    reqs = max(result.requests, 1)
    cpu = cpu or CpuCount(None, None)
    idle = cpu.idle_per_s if cpu.idle_per_s is not None else math.nan
    cpu_per_s = cpu.count / secs if cpu.count is not None else math.nan
    source, total = _reschedules(d, perf_count)
    vol, invol = (d.voluntary, d.involuntary) if source == "getrusage" else (None, None)
    cpu_s = (d.cpu_user_s + d.cpu_system_s) if d.cpu_user_s is not None else d.proc_cpu_s
    return {
        "source": "measured",
        "arch": target.name,
        "server": target.server,
        "connections": load.connections,
        "target_rps": load.target_rps if load.target_rps is not None else math.nan,
        "rps": result.rps,
        "reschedules_per_s": total / secs,
        "voluntary_per_s": vol / secs if vol is not None else math.nan,
        "involuntary_per_s": invol / secs if invol is not None else math.nan,
        "reschedules_per_request": total / reqs,
        "lat_p50_ms": result.lat_p50_ms,
        "lat_p99_ms": result.lat_p99_ms,
        "cpu_util": cpu_s / secs / max(ncpus, 1),
        "sched_overhead_frac": math.nan,  # not observable from outside the kernel
        "errors": result.total_errors,
        "duration_s": secs,
        "reschedule_source": source,
        "proc_reschedules_per_s": d.proc_reschedules / secs,
        "perf_reschedules_per_s": perf_count / secs if perf_count is not None else math.nan,
        "cpu_switches_per_s": cpu_per_s,
        "cpu_switches_idle_per_s": idle,
        # what the load added to the server's CPUs, per request (the idle background off)
        "cpu_switches_per_request": (cpu_per_s - idle) * secs / reqs,
        # switches other processes caused on those CPUs, left out of cpu_switches_per_s
        "cpu_switches_foreign_per_s": cpu.foreign / secs if cpu.foreign is not None else math.nan,
        "system_ctxt_per_s": d.system_ctxt / secs,
        "wrk_requests": result.requests,
        "server_requests": d.server_requests if d.server_requests is not None else math.nan,
        "lat_p90_ms": result.lat_p90_ms,
        "lat_p999_ms": result.lat_p999_ms,
        "cpu_user_s": d.cpu_user_s if d.cpu_user_s is not None else math.nan,
        "cpu_system_s": d.cpu_system_s if d.cpu_system_s is not None else math.nan,
        "cpu_us_per_request": 1e6 * cpu_s / reqs,
        "client_cpu_us_per_request": 1e6 * result.cpu_s / reqs,
        "sleeps_per_request": d.sleeps / reqs if d.sleeps is not None else math.nan,
        "steal_frac": d.steal_frac,
        **{moved_column(i): (d.moved.get(name, 0) / reqs if d.moved is not None else math.nan)
           for i, name in enumerate(NAMES)},
        **fixed,
    }
