"""A worker's counters on the shared board, and the ``/server-status`` document read from it.

Each worker writes its own slot (:func:`publish`: requests, passes, sleeps, busy polls, its
``getrusage``, per state the requests moved and the connections in it, and with --state-cpu the
CPU its batches took); :func:`collect` reads every slot back.

Totals sum every live worker's own ``getrusage(RUSAGE_SELF)`` plus the master's
``RUSAGE_SELF`` and ``RUSAGE_CHILDREN`` (workers that died and were reaped), so a restart loses
no context switches.  Per worker: its CPU, passes, sleeps (blocking polls), busy polls and, per
state, the requests it moved and the connections in it.
"""

from __future__ import annotations

import os
import time
from resource import RUSAGE_SELF, getrusage
from typing import Any

from ..core import board as b
from .lifecycle import NAMES

ARCH = "state-group"
PUBLISH_S = 0.05  # a busy worker publishes its counters this often (an idle one before sleeping)
RECOUNT_S = 0.5  # per-state connection counts are taken at most this often
ACCESS_LOG_TAIL = 10  # access-log entries shown in /server-status
STATUS_WAIT_S = 0.25  # how long /server-status waits for a busy worker's fresh counters


def announce(worker: Any) -> None:
    """A new worker's slot: its pid and CPU, alive, first counters."""
    slot = worker.slot
    slot[b.PID] = os.getpid()
    slot[b.CPU] = worker.cpu
    slot[b.ALIVE] = 1
    publish(worker, recount=True)


def publish(worker: Any, recount: bool = False) -> None:
    """Write *worker*'s counters to its board slot (per-state counts every ``RECOUNT_S``); they
    answer every request for fresh counters made before it (``worker.answered``)."""
    asked = worker.board.master[b.STATUS_ASKED]  # read first: what follows is at least as new
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
    if worker.state_ns is not None:
        worker._write_state_cpu(*(ns // 1000 for ns in worker.state_ns))
    worker.slot[b.ANSWERED] = worker.answered = asked


def due(worker: Any) -> bool:
    """Whether a busy worker publishes at the end of this pass: every ``PUBLISH_S``, and at
    once when a /server-status request asked for fresh counters (:func:`refresh`)."""
    return (worker.now - worker.published >= PUBLISH_S
            or worker.board.master[b.STATUS_ASKED] != worker.answered)


def refresh(worker: Any) -> list[int]:
    """Ask every worker for fresh counters and wait (at most ``STATUS_WAIT_S``) until each live
    one has published since or is asleep: a busy worker otherwise publishes only every
    ``PUBLISH_S``, and /server-status would miss the requests it served meanwhile.  Returns
    the pids of the workers that did not answer in time (stopped or dying ones: their last
    counters are what there is)."""
    board = worker.board
    asked = board.master[b.STATUS_ASKED] + 1
    board.master[b.STATUS_ASKED] = asked
    publish(worker, recount=True)
    others = [s for s in board.slots() if s[b.PID] != worker.slot[b.PID]]
    deadline = time.monotonic() + STATUS_WAIT_S
    while waiting := [s[b.PID] for s in others
                      if s[b.ALIVE] and not s[b.ASLEEP] and s[b.ANSWERED] < asked]:
        if time.monotonic() >= deadline:
            return waiting
        time.sleep(0.0002)
        if board.master[b.STATUS_ASKED] != worker.answered:
            publish(worker)  # another worker asks at the same time: answer it too
    return []


def document(worker: Any) -> dict:
    """The ``/server-status`` document as *worker* serves it: every worker's counters, fresh
    (:func:`refresh`), and the tail of this worker's access log."""
    unanswered = refresh(worker)
    out = collect(worker.board)
    out["unanswered"] = unanswered  # these workers' counters are as they last published them
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
            name: {"moved": slot[b.MOVED + i], "queue": slot[b.QUEUE + i],
                   "cpu_us": slot[b.STATE_CPU + i]}  # (0 unless --state-cpu)
            for i, name in enumerate(NAMES)
        },
    }
