"""The sweep engine: run simulate_point jobs - serially, in a process pool, or on a Dask
cluster - and get the rows back in job order, the same whatever ran them.

Library code (``arch-sim simulate``, the fidelity and eras runs of ``arch-sim reproduce``,
the notebooks) runs its sweeps through :func:`run_jobs`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from tqdm import tqdm

from arch_sim.models import simulate_point

#: fields of simulate_point's row that depend on the wall clock (kept out of the CSVs)
WALL_FIELDS = ("wall_s", "sim_requests_per_wall_s")
#: seconds to wait for a Dask scheduler before giving up
DASK_CONNECT_TIMEOUT_S = 5.0
DASK_INSTALL_HINT = "pip install 'arch-sim[dask]'"


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
        bar.update()
        if on_row is not None:
            on_row(i, row)

    client = None
    if dask is not None:  # connect before the progress bar, so an error message stays clean
        client = connect_dask(dask) if isinstance(dask, str) else dask
    bar = tqdm(total=len(jobs), desc="simulate", unit="run", disable=not progress,
               file=sys.stderr)
    try:
        if client is not None:
            _run_on_dask(client, jobs, done)
        elif workers <= 1:
            for i, job in enumerate(jobs):
                done(i, _job(job))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(_job, job): i for i, job in enumerate(jobs)}
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
