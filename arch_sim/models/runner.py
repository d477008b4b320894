"""One simulated load point -> one row of the results schema.

    >>> from arch_sim.models import load_preset, simulate_point
    >>> row = simulate_point("state-group", load_preset("linux-2.2-1999"), 2000, requests=2000)
    >>> row["source"], row["arch"]
    ('simulated', 'state-group')

The same (arch, params, load, workload, seed) gives the same row, bit for bit.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from arch_sim import ALL_ARCHS, STATES
from arch_sim.models.bench_window import (
    BenchWindows,
    WindowClients,
    WindowRecorder,
    windows_for,
)
from arch_sim.models.clock import Environment
from arch_sim.models.params import ModelParams, load_preset
from arch_sim.models.prefork import Prefork, check_workload
from arch_sim.models.rcu import attach_rcu
from arch_sim.models.recorder import Recorder
from arch_sim.models.scheduler import Scheduler
from arch_sim.models.staged import POOLED, Staged
from arch_sim.models.state_group import StateGroup
from arch_sim.models.thread_per_request import make as make_thread_per_request
from arch_sim.models.workload import Workload
from arch_sim.models.wrk_clients import make_clients
from arch_sim.regimes import regime_of
from real_servers.core.lifecycle import moved_column

MODELS = {"thread-per-request": make_thread_per_request, "state-group": StateGroup,
          "prefork": Prefork, "staged": Staged}
assert tuple(MODELS) == ALL_ARCHS


def default_warmup(requests: int, workload: str, connections: int) -> int:
    """Requests discarded before the window opens: a tenth, at least 200 (closed: 2 per conn)."""
    warmup = max(200, requests // 10)
    if workload == "closed":
        warmup = max(warmup, 2 * connections)
    return warmup


def point_seed(base_seed: int, target_rps: float | None, rep: int,
               connections: int | None = None) -> int:
    """The seed of one (load, repetition), independent of arch (common random numbers)."""
    load_key = 0 if target_rps is None or math.isnan(target_rps) else int(round(target_rps * 1000))
    key = [int(base_seed) & 0xFFFFFFFF, int(rep), load_key, int(connections or 0)]
    return int(np.random.SeedSequence(key).generate_state(1, dtype=np.uint32)[0])


def simulate_point(arch: str, params: ModelParams | str, target_rps: float | None = None, *,
                   workload: str | None = None, connection: str | None = None,
                   connections: int | None = None,
                   requests: int = 20000, warmup: int | None = None, seed: int = 1,
                   rep: int = 0, cpus: int | None = None, threads: int | None = None,
                   workers: int | None = None, stage_threads: str | None = None,
                   file_sizes: str | None = None, think_tick_ms: float | None = None,
                   bench_window_s: float | None = None, run_id: str = "",
                   recorder_factory: Callable[..., Recorder] = Recorder) -> dict[str, Any]:
    """Simulate ``requests`` measured requests of one architecture at one load; one schema row.

    ``target_rps`` is the offered rate (open: Poisson arrivals; closed: think time
    connections / rate, or no think time when None).  Warm-up requests are discarded.
    The preset's server costs for ``arch`` (``[server.ARCH]``) apply.  ``recorder_factory``
    builds the measurement (:class:`~arch_sim.models.recorder.Recorder`'s arguments; the
    validation module passes one that also samples the system).  The shape of a design:
    ``threads`` (thread-per-request: pool size, 0 = a thread per connection), ``workers``
    (prefork: worker processes), ``stage_threads`` (staged: ``"send_data=8"``...); each
    defaults to the preset's and is ignored by the other designs.

    ``bench_window_s`` measures the point as ``arch-sim bench`` does: windows of that many
    seconds, each a new wrk run whose connections are opened at its start and closed at its end
    (:mod:`~arch_sim.models.bench_window`; enough windows for about ``requests`` replies, no
    warm-up) - for a paced closed workload.  Without it the connections are open before the
    window and stay open (the steady state).
    """
    if arch not in MODELS:
        raise ValueError(f"unknown arch {arch!r}: choose from {', '.join(MODELS)}")
    params = load_preset(params).for_arch(arch)
    cpus = params.cpus if cpus is None else int(cpus)
    connections = params.workload.connections if connections is None else int(connections)
    workload = params.workload.kind if workload is None else workload
    connection = params.workload.connection if connection is None else connection
    close = workload == "closed" and connection == "close"
    paced = target_rps is not None and not math.isnan(target_rps)
    windows = 0
    if bench_window_s is not None and not math.isnan(bench_window_s):
        if workload != "closed" or not paced or bench_window_s <= 0:
            raise ValueError("bench windows need a closed workload at a target rate and a "
                             f"positive window length, not {bench_window_s!r} s")
        windows = windows_for(requests, float(target_rps), float(bench_window_s))
    load = Workload(
        kind=workload,
        target_rps=float(target_rps) if paced else None,
        connections=connections,
        file_sizes=file_sizes or params.workload.file_sizes,
        userspace_frac=params.server.userspace_frac,
        think_tick_ms=(params.workload.think_tick_ms if think_tick_ms is None
                       else float(think_tick_ms)),
        client_us=params.workload.client_us,
        client_connect_us=params.workload.client_close_us if close or windows else 0.0,
        client_wake_us=params.scheduler.wakeup_latency_us if close else 0.0,
        connection=connection,
    )
    if warmup is None:
        warmup = default_warmup(requests, workload, connections)
    if arch == "prefork":
        workers = params.server.workers if workers is None else int(workers)
        check_workload(workers, workload, connection, connections)

    wall = time.perf_counter()
    env = Environment()  # a SimPy environment with a faster run loop (the same run)
    sched = Scheduler(env, cpus, params.scheduler, random.Random(seed ^ 0x5C4ED))
    model_box: list[Any] = []

    def snapshot() -> dict[str, float]:
        return {**sched.counters(), **model_box[0].counters()}

    if windows:
        warmup = 0
        recorder = WindowRecorder(env, params.server.max_connections, snapshot,
                                  float(bench_window_s))
    else:
        recorder = recorder_factory(env, warmup, requests, params.server.max_connections,
                                    snapshot)
    if arch == "thread-per-request":
        model = make_thread_per_request(env, sched, params, recorder, threads=threads)
    elif arch == "prefork":
        model = Prefork(env, sched, params, recorder, workers=workers)
    elif arch == "staged":
        model = Staged(env, sched, params, recorder, stage_threads=stage_threads)
    else:
        model = StateGroup(env, sched, params, recorder)
    model_box.append(model)
    # the preset's RCU thread, fed by every closed connection: one per request with a
    # connection per request or open arrivals (each a connection of its own)
    attach_rcu(env, sched, params.name, recorder, arch, close or workload == "open",
               params.source)
    if windows:
        clients = WindowClients(env, load, params.network, random.Random(seed), model, recorder)
        BenchWindows(env, clients, recorder, windows)
    else:
        make_clients(env, load, params.network, random.Random(seed), model, recorder)
    env.run(until=recorder.finished)
    wall = time.perf_counter() - wall

    stats = recorder.stats()
    delta = recorder.delta()
    span = stats["duration_s"]
    done = max(stats["completions"], 1)
    capacity = cpus * span
    reschedules = delta["voluntary"] + delta["involuntary"]
    row: dict[str, Any] = {
        "source": "simulated",
        "arch": arch,
        "server": model.model_name,
        "preset": params.name,
        "cpus": cpus,
        "connections": connections if workload == "closed" else math.nan,
        "target_rps": math.nan if load.target_rps is None else load.target_rps,
        "rps": stats["rps"],
        "reschedules_per_s": reschedules / span,
        "voluntary_per_s": delta["voluntary"] / span,
        "involuntary_per_s": delta["involuntary"] / span,
        "reschedules_per_request": reschedules / done,
        "lat_p50_ms": stats["lat_p50_ms"],
        "lat_p99_ms": stats["lat_p99_ms"],
        "cpu_util": delta["busy_time"] / capacity,
        "sched_overhead_frac": delta["sched_time"] / capacity,
        "errors": stats["errors"],
        "rep": rep,
        "seed": seed,
        "duration_s": span,
        "run_id": run_id,
        # extras
        "workload": workload,
        "file_sizes": load.file_sizes,
        "threads": getattr(model, "threads", math.nan) if arch == "thread-per-request" else (
            math.nan),
        "requests": requests,
        "warmup": warmup,
        "bench_window_s": float(bench_window_s) if windows else math.nan,
        "bench_windows": windows,
        "completions": stats["completions"],
        "offered_rps": stats["offered_rps"],
        "mean_response_ms": stats["mean_response_ms"],
        "littles_L": stats["littles_L"],
        "littles_lambda_W": stats["littles_lambda_W"],
        "littles_rel_err": stats["littles_rel_err"],
        # every switch on the server's CPUs, to and from idle included (vmstat's cs, as the
        # seed's author counted); the model has no background, so all of it is the load's
        "cpu_switches_per_s": delta["switches"] / span,
        "cpu_switches_idle_per_s": 0.0,
        "cpu_switches_per_request": delta["switches"] / done,
        "connection_mode": connection if workload == "closed" else "close",
        "regime": regime_of(connection, workload),
        "wall_s": wall,
        "sim_requests_per_wall_s": recorder.offered / wall if wall > 0 else math.nan,
    }
    if arch != "state-group":  # the designs with threads that may share a GIL
        cond, mutex = delta["gil_cond_waits"], delta["gil_mutex_waits"]
        row["gil_waits_per_request"] = (cond + mutex) / done
        row["gil_cond_waits_per_request"] = cond / done
        row["gil_mutex_waits_per_request"] = mutex / done
        if arch != "staged":  # a pool in accept() (prefork: the herd's wake-ups)
            row["pool_wakeups_per_request"] = delta["pool_wakeups"] / done
            row["spurious_wakeups_per_request"] = delta["spurious_wakeups"] / done
        row["gil_forced_per_s"] = delta["gil_forced"] / span
    if arch == "thread-per-request":
        row["dispatcher_wakeups_per_request"] = delta["dispatcher_wakeups"] / done
        row["again_handoffs_per_request"] = delta["again_handoffs"] / done
    if arch == "prefork":
        row["workers"] = model.workers
    if arch == "staged":
        row["stage_threads"] = model.stage_threads
        row["wakeups_per_request"] = sum(delta[f"wakeups_{STATES[s]}"] for s in POOLED) / done
        for state in POOLED:
            row[f"wakeups_{STATES[state]}_per_request"] = delta[f"wakeups_{STATES[state]}"] / done
        for i, state in enumerate(STATES):
            row[moved_column(i)] = delta[f"moved_{state}"] / done
    if arch == "state-group":
        row["sleeps_per_request"] = delta["sleeps"] / done
        row["passes_per_request"] = delta["passes"] / done
        for i, state in enumerate(STATES):
            batches, moved = delta[f"batches_{state}"], delta[f"moved_{state}"]
            row[f"batch_{state}"] = moved / batches if batches else math.nan
            row[moved_column(i)] = moved / done  # as the real server's /server-status counts
    return row


def rate_for_utilisation(arch: str, params: ModelParams | str, utilisation: float, *,
                         cpus: int | None = None, requests: int = 4000, seed: int = 1,
                         iterations: int = 5, **kwargs: Any) -> float:
    """The open-workload rate at which ``arch`` keeps its CPUs ``utilisation`` busy.

    Fixed-point iteration on rate * utilisation / measured utilisation (a server's cost per
    request changes with load - batching - so one step is not enough).  For ``utilisation``
    well below 1.
    """
    params = load_preset(params)
    n = params.cpus if cpus is None else cpus
    rate = 0.3 * n * 1e6 / max(1.0, _cost_guess_us(params))
    for _ in range(iterations):
        row = simulate_point(arch, params, rate, cpus=n, requests=requests, seed=seed, **kwargs)
        rate *= utilisation / max(row["cpu_util"], 1e-9)
    return rate


def _cost_guess_us(params: ModelParams) -> float:
    s = params.server
    return s.accept_us + s.parse_us + s.send_us + s.log_us + s.close_us + 15 * s.send_us_per_kb
