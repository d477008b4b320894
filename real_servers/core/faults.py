"""Reporting a failure the servers survive: a bug, or a file the core cannot describe.

A failure while serving one request costs that request only - a 500, or for a response already
under way a reset - never a thread, a worker or another connection.  What failed is written to
stderr (the server's log): the first ``MAX_REPORTS`` in full, then every ``EVERY``-th, so a
client that triggers the same failure in a loop cannot fill the disk.
"""

from __future__ import annotations

import os
import sys
import traceback

MAX_REPORTS = 20
EVERY = 1000

_count = 0


def report(what: str, exc: BaseException) -> None:
    """Write *exc* (raised while *what*) to stderr, rate-limited."""
    global _count
    _count += 1  # (a lost update between threads only skews the rate limit)
    if _count <= MAX_REPORTS or _count % EVERY == 0:
        trace = "".join(traceback.format_exception(exc)).rstrip()
        print(f"[pid {os.getpid()}] failure #{_count} while {what}:\n{trace}", file=sys.stderr,
              flush=True)
