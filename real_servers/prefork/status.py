"""A prefork worker's counters on the shared board, and the ``/server-status`` document.

Each worker writes its own slot: its pid, whether it holds a connection, the requests it has
answered and its own ``getrusage(RUSAGE_SELF)`` - before every blocking wait (``accept`` or
``recv``), so a slot is never behind by more than the request being served.  Totals add the
master's ``RUSAGE_SELF`` and ``RUSAGE_CHILDREN`` (reaped workers: an exited worker's switches
are kept there, see :mod:`real_servers.core.board`).

Per-process rows are under ``processes`` (not ``workers``, which the harness reads as the
state-group worker's loop counters: passes, sleeps, per-state moves a prefork worker has not).
"""

from __future__ import annotations

import argparse
import os

from ..core import board as b

ARCH = "prefork"


def publish(slot: memoryview, requests: int, cache: dict[str, int]) -> None:
    slot[b.REQUESTS] = requests
    slot[b.CACHE_BYTES] = cache["bytes"]
    slot[b.CACHE_ENTRIES] = cache["entries"]
    b.publish_rusage(slot, b.NVCSW)


def fullest_cache(board: b.Board, cap: int) -> dict[str, int]:
    """The file cache of the worker that holds the most (each worker has its own, capped)."""
    slot = max((s for s in board.slots() if s[b.ALIVE]), key=lambda s: s[b.CACHE_BYTES])
    return {"entries": slot[b.CACHE_ENTRIES], "bytes": slot[b.CACHE_BYTES], "cap": cap,
            "pid": slot[b.PID]}


def collect(board: b.Board, args: argparse.Namespace) -> dict:
    processes = [
        {
            "pid": slot[b.PID],
            "requests": slot[b.REQUESTS],
            "connections_open": slot[b.OPEN],
            "voluntary_ctxt_switches": slot[b.NVCSW],
            "involuntary_ctxt_switches": slot[b.NIVCSW],
        }
        for slot in board.slots() if slot[b.ALIVE]
    ]
    return {"arch": ARCH, "workers_configured": args.workers, **b.totals(board),
            "processes": processes, "answered_by": os.getpid()}
