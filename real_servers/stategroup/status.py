"""The ``/server-status`` document, read from the shared board.

Totals sum every live worker's own ``getrusage(RUSAGE_SELF)`` plus the master's
``RUSAGE_SELF`` and ``RUSAGE_CHILDREN`` (workers that died and were reaped), so a restart loses
no context switches.  Per worker: its CPU, passes, sleeps (blocking polls), busy polls and, per
state, the requests it moved and the connections in it.
"""

from __future__ import annotations

from . import board as b
from .lifecycle import NAMES

ARCH = "state-group"


def collect(board: b.Board) -> dict:
    master = board.master
    workers = [_worker(slot) for slot in board.slots() if slot[b.ALIVE]]
    pids = ([master[b.M_PID]] if master[b.M_PID] else []) + [w["pid"] for w in workers]
    return {
        "arch": ARCH,
        "pids": pids,
        "requests": master[b.RETIRED_REQUESTS] + sum(w["requests"] for w in workers),
        "voluntary_ctxt_switches": master[b.M_NVCSW] + master[b.C_NVCSW]
        + sum(w["voluntary_ctxt_switches"] for w in workers),
        "involuntary_ctxt_switches": master[b.M_NIVCSW] + master[b.C_NIVCSW]
        + sum(w["involuntary_ctxt_switches"] for w in workers),
        "cpu_user_s": (master[b.M_UTIME] + master[b.C_UTIME]) / 1e6
        + sum(w["cpu_user_s"] for w in workers),
        "cpu_system_s": (master[b.M_STIME] + master[b.C_STIME]) / 1e6
        + sum(w["cpu_system_s"] for w in workers),
        "threads_alive": len(pids),  # every process is single-threaded
        "connections_open": sum(w["connections_open"] for w in workers),
        "restarts": master[b.RESTARTS],
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
