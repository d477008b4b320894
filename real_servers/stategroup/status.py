"""A worker's counters on the shared board, and the ``/server-status`` document read from it.

Each worker writes its own slot (:func:`publish`: requests, passes, sleeps, busy polls, its
``getrusage``, per state the requests moved and the connections in it); :func:`collect` reads
every slot back.

Totals sum every live worker's own ``getrusage(RUSAGE_SELF)`` plus the master's
``RUSAGE_SELF`` and ``RUSAGE_CHILDREN`` (workers that died and were reaped), so a restart loses
no context switches.  Per worker: its CPU, passes, sleeps (blocking polls), busy polls and, per
state, the requests it moved and the connections in it.
"""

from __future__ import annotations

import os
from resource import RUSAGE_SELF, getrusage
from typing import Any

from ..core import board as b
from .lifecycle import NAMES

ARCH = "state-group"
PUBLISH_S = 0.05  # a busy worker publishes its counters this often (an idle one before sleeping)
RECOUNT_S = 0.5  # per-state connection counts are taken at most this often
ACCESS_LOG_TAIL = 10  # access-log entries shown in /server-status


def announce(worker: Any) -> None:
    """A new worker's slot: its pid and CPU, alive, first counters."""
    slot = worker.slot
    slot[b.PID] = os.getpid()
    slot[b.CPU] = worker.cpu
    slot[b.ALIVE] = 1
    publish(worker, recount=True)


def publish(worker: Any, recount: bool = False) -> None:
    """Write *worker*'s counters to its board slot (per-state counts every ``RECOUNT_S``)."""
    ru = getrusage(RUSAGE_SELF)
    worker._write_counters(
        worker.requests, worker.passes, worker.sleeps, worker.busy_polls,
        ru.ru_nvcsw, ru.ru_nivcsw, int(ru.ru_utime * 1e6), int(ru.ru_stime * 1e6),
    )
    worker.published = worker.now
    if recount or worker.now - worker.counted_at >= RECOUNT_S:
        counts = [0] * len(NAMES)
        for conn in worker.conns.values():
            counts[conn.state] += 1
        worker.counted_at = worker.now
        worker._write_states(*worker.moved, *counts)


def document(worker: Any) -> dict:
    """The ``/server-status`` document as *worker* serves it: every worker's counters (this
    one's fresh) and the tail of this worker's access log."""
    publish(worker, recount=True)
    out = collect(worker.board)
    out["cache"] = worker.responder.docroot.cache_stats()  # this worker's
    log = getattr(worker, "access_log", None)  # kept by the logging state
    if log is not None:
        out["access_log"] = {"pid": os.getpid(), "logged": log.count,
                             "tail": log.tail(ACCESS_LOG_TAIL)}
    return out


def collect(board: b.Board) -> dict:
    workers = [_worker(slot) for slot in board.slots() if slot[b.ALIVE]]
    return {
        "arch": ARCH,
        **b.totals(board),
        "states": list(NAMES),
        "workers": workers,
    }


def _worker(slot) -> dict:
    return {
        "pid": slot[b.PID],
        "cpu": slot[b.CPU],
        "requests": slot[b.REQUESTS],
        "passes": slot[b.PASSES],
        "sleeps": slot[b.SLEEPS],
        "busy_polls": slot[b.BUSY_POLLS],
        "connections_open": slot[b.OPEN],
        "voluntary_ctxt_switches": slot[b.NVCSW],
        "involuntary_ctxt_switches": slot[b.NIVCSW],
        "cpu_user_s": slot[b.UTIME] / 1e6,
        "cpu_system_s": slot[b.STIME] / 1e6,
        "per_state": {
            name: {"moved": slot[b.MOVED + i], "queue": slot[b.QUEUE + i]}
            for i, name in enumerate(NAMES)
        },
    }
