"""The sweep engine: run simulate_point jobs - serially, in a process pool, or on a Dask
cluster - and get the rows back in job order, the same whatever ran them.

Library code (``arch-sim simulate``, the fidelity and eras runs of ``arch-sim reproduce``,
the notebooks) plans its sweeps with :func:`plan` and runs them through :func:`run_jobs`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

import numpy as np
from tqdm import tqdm

from arch_sim.models import ModelParams, point_seed, simulate_point

#: fields of simulate_point's row that depend on the wall clock (kept out of the CSVs)
WALL_FIELDS = ("wall_s", "sim_requests_per_wall_s")
#: seconds to wait for a Dask scheduler before giving up
DASK_CONNECT_TIMEOUT_S = 5.0
DASK_INSTALL_HINT = "pip install 'arch-sim[dask]'"


def plan(params: ModelParams, loads: Iterable[float | None], archs: Sequence[str], *,
         workload: str | None = None, connection: str | None = None,
         connections: int | None = None, requests: int = 20000, reps: int = 1, seed: int = 1,
         **fixed: Any) -> list[dict[str, Any]]:
    """A sweep as :func:`~arch_sim.models.simulate_point` keyword sets, arch by load by rep.

    Every architecture gets the same seed at a point (common random numbers: the same arrivals
    and file draws, so a difference between them is the architecture's).  *workload* and the
    number of *connections* default to the preset's; *fixed* (``warmup``, ``cpus``,
    ``threads``, ``file_sizes``...) goes to every job as given."""
    workload = params.workload.kind if workload is None else workload
    conns = params.workload.connections if connections is None else connections
    loads = list(loads)
    return [{"arch": arch, "params": params, "target_rps": load, "workload": workload,
             "connection": connection, "connections": conns, "requests": requests,
             "seed": point_seed(seed, load, rep, conns if workload == "closed" else None),
             "rep": rep, **fixed}
            for arch in archs for load in loads for rep in range(reps)]


def parse_load_range(text: str) -> list[float]:
    """``START:STOP:N`` -> N evenly spaced loads from START to STOP (requests/s)."""
    try:
        start, stop, n = text.split(":")
        start_f, stop_f, count = float(start), float(stop), int(n)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--load-range {text!r}: expected START:STOP:N, e.g. 100:20000:25") from None
    if count < 1 or start_f <= 0 or stop_f < start_f:
        raise argparse.ArgumentTypeError(
            f"--load-range {text!r}: need 0 < START <= STOP and N >= 1")
    return [float(x) for x in np.linspace(start_f, stop_f, count)]


def default_load_range(params: ModelParams, points: int = 25) -> str:
    """``100:TOP:POINTS`` with TOP the smaller of 20,000 requests/s and what the preset's
    shared link can carry (beyond it open arrivals only pile up - and the simulation slows
    down)."""
    from arch_sim.eras import OVERLOAD_LIMIT, link_capacity_rps

    top = min(20000.0, OVERLOAD_LIMIT * link_capacity_rps(params))
    return f"100:{max(top, 200.0):.0f}:{points}"


def over_link_note(params: ModelParams, jobs: Sequence[dict[str, Any]]) -> str | None:
    """One line for a sweep whose open-workload loads exceed what the preset's link carries,
    or None.  Past it arrivals pile up faster than replies leave: the run never reaches a
    steady state, the state-group model polls every connection that waits in send_data each
    pass, and such a run takes ten times as long as one below the link."""
    from arch_sim.eras import OVERLOAD_LIMIT, link_capacity_rps

    top = OVERLOAD_LIMIT * link_capacity_rps(params)
    over = sorted({j["target_rps"] for j in jobs if j.get("workload", "open") == "open"
                   and j.get("target_rps") is not None and j["target_rps"] > top})
    if not over:
        return None
    return (f"note: {len(over)} load(s) from {over[0]:,.0f} requests/s are above what the "
            f"link of preset {params.name!r} carries (~{top:,.0f} requests/s at its mean reply): "
            "arrivals pile up with no steady state and those runs are slow; the default "
            f"--load-range ({default_load_range(params)}) stops below it")


def plan_options(args: argparse.Namespace, params: ModelParams) -> list[dict[str, Any]]:
    """The jobs of ``arch-sim simulate`` with these options (its meta.json's ``args``), in
    output order: the loads (``--loads``, ``--load-range`` or the preset's default range; a
    closed workload without either runs unpaced), then :func:`plan`."""
    workload = args.workload or params.workload.kind
    if args.loads:
        loads: list[float | None] = [float(x) for x in args.loads]
    elif workload == "closed" and not args.load_range:
        loads = [None]  # unpaced: no think time, as wrk without pacing
    else:
        loads = parse_load_range(args.load_range or default_load_range(params))
    return plan(params, loads, args.arch, workload=workload, connection=args.connection,
               connections=args.connections or None, requests=args.requests,
               reps=args.reps, seed=args.seed, warmup=args.warmup, cpus=args.cpus,
               threads=args.threads, file_sizes=args.file_sizes,
               **{k: getattr(args, k) for k in ("workers", "stage_threads")
                  if getattr(args, k, None) is not None})


def describe(job: dict[str, Any]) -> str:
    """A run in a few words, for the progress bar: ``state-group 1,580 req/s rep 2``."""
    load = job.get("target_rps")
    rate = "unpaced" if load is None or load != load else f"{load:,.0f} req/s"
    return f"{job.get('arch')} {rate} rep {job.get('rep', 0)}"


def dearest_first(jobs: Sequence[dict[str, Any]]) -> list[int]:
    """Job indices, the heaviest load first (a run's cost grows with its load; unpaced runs
    count as heaviest), in job order among equals."""
    def load(i: int) -> float:
        value = jobs[i].get("target_rps")
        return float("inf") if value is None or value != value else float(value)

    return sorted(range(len(jobs)), key=lambda i: -load(i))


def _job(job: dict[str, Any]) -> dict[str, Any]:
    return simulate_point(**job)


class DaskError(RuntimeError):
    """Dask is not installed, or its scheduler cannot be reached."""


def connect_dask(address: str, timeout: float | None = None) -> Any:
    """A ``distributed.Client`` connected to the scheduler at ``address`` (imported lazily).

    Raises :class:`DaskError` when dask.distributed is missing or the scheduler does not answer
    within ``timeout`` seconds (default :data:`DASK_CONNECT_TIMEOUT_S`).
    """
    try:
        from distributed import Client
    except ImportError as exc:
        raise DaskError(f"--dask needs dask.distributed: {DASK_INSTALL_HINT}") from exc
    timeout = DASK_CONNECT_TIMEOUT_S if timeout is None else timeout
    try:
        return Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise DaskError(f"cannot reach the Dask scheduler at {address} within {timeout:g} s "
                        f"({type(exc).__name__}: {exc})") from exc


def executor_name(dask: Any = None) -> str:
    """``local`` or ``dask <scheduler address>`` (recorded in meta.json)."""
    if dask is None:
        return "local"
    address = dask if isinstance(dask, str) else getattr(dask.scheduler, "address", str(dask))
    return f"dask {address}"


def run_jobs(jobs: Sequence[dict[str, Any]], workers: int = 1, progress: bool = True,
             on_row: Callable[[int, dict], None] | None = None,
             dask: Any = None) -> list[dict[str, Any]]:
    """Run every job; rows come back in job order, the same whatever runs them.

    ``dask=None`` runs locally (in a process pool if workers > 1); ``dask`` = a scheduler
    address or a ``distributed.Client`` runs the jobs on that Dask cluster (``workers`` is then
    ignored).  ``on_row(index, row)`` is called as each row arrives.
    """
    rows: list[dict[str, Any] | None] = [None] * len(jobs)

    def done(i: int, row: dict[str, Any]) -> None:
        rows[i] = row
        bar.set_postfix_str(describe(jobs[i]), refresh=False)
        bar.update()
        if on_row is not None:
            on_row(i, row)

    client = None
    if dask is not None:  # connect before the progress bar, so an error message stays clean
        client = connect_dask(dask) if isinstance(dask, str) else dask
    bar = tqdm(total=len(jobs), desc=f"simulating {len(jobs)} runs", unit="run",
               disable=not progress, file=sys.stderr)
    try:
        if client is not None:
            _run_on_dask(client, jobs, done)
        elif workers <= 1:
            for i, job in enumerate(jobs):
                done(i, _job(job))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                # the dearest runs first, so that no long run starts last and runs alone
                futures = {pool.submit(_job, jobs[i]): i for i in dearest_first(jobs)}
                for future in as_completed(futures):
                    done(futures[future], future.result())
    finally:
        bar.close()
        if client is not None and client is not dask:
            client.close()
    return [r for r in rows if r is not None]


def _run_on_dask(client: Any, jobs: Sequence[dict[str, Any]],
                 done: Callable[[int, dict], None]) -> None:
    """Submit every job to the cluster; ``done(index, row)`` as each finishes."""
    from distributed import as_completed as dask_as_completed

    # pure=False: every job is its own task (no hashing of the params, no deduplication)
    futures = client.map(_job, list(jobs), pure=False)
    index = {future.key: i for i, future in enumerate(futures)}
    try:
        for future in dask_as_completed(futures, loop=client.loop):
            done(index[future.key], future.result())
    finally:
        client.cancel([f for f in futures if not f.done()])
