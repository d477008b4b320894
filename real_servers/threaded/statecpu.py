"""``--state-cpu`` for the pool: where a pool thread's CPU goes, from its own CPU clock.

A pool thread serves a connection in one call (``PoolServer._serve``: recv, parse, respond,
send) and then hands it back (``finished``) and sleeps on its lock again.  With ``--state-cpu``
the server wraps ``_serve`` and the ``send`` that ``serve_ready`` calls in two reads of the
thread's CPU clock each (:func:`..core.cputime.timed`), summed per thread without a lock: what
``_serve`` took less what ``send`` took is the wait_headers state's CPU (recv, parse, respond),
``send`` the send_data state's.  The thread's CPU beyond ``_serve`` - after the last send until
it sleeps again, and its wake-ups - is the logging state's; the thread's total is the kernel's
(``/proc``), so calibrate subtracts (arch_sim/threadcpu.py).  Off by default: nothing is wrapped
and nothing is read.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..core import cputime
from ..core.lifecycle import NAMES, SEND_DATA, WAIT_HEADERS
from . import connection

#: a thread's cell: ns in _serve (its sends included), ns in send, and how many calls of each
SERVED, SENT, SERVED_CALLS, SENT_CALLS = range(4)


class StateCpu:
    """Per-thread sums of the two timed calls, added up on demand."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: list[list[int]] = []
        self._local = threading.local()

    def cell(self) -> list[int]:
        """This thread's sums (registered once, then no lock)."""
        cell = getattr(self._local, "cell", None)
        if cell is None:
            cell = self._local.cell = [0, 0, 0, 0]
            with self._lock:
                self._cells.append(cell)
        return cell

    def timed(self, call: Callable[..., Any], field: int) -> Callable[..., Any]:
        """``call`` with the CPU it takes added to the calling thread's ``field`` (and a call
        to the count two fields on)."""
        cell = self.cell

        def charge(ns: int) -> None:
            sums = cell()
            sums[field] += ns
            sums[field + 2] += 1

        return cputime.timed(call, charge)

    def per_state(self) -> dict[str, dict[str, float]]:
        """The /server-status entry, over every pool thread: per timed state the us of CPU its
        calls took (wait_headers: ``_serve`` less its sends) and how many calls were timed
        (the clock's own cost is the reader's to take out)."""
        with self._lock:
            served, sent, served_calls, sent_calls = (sum(c[i] for c in self._cells)
                                                      for i in range(4))
        return {NAMES[WAIT_HEADERS]: {"cpu_us": (served - sent) / 1e3, "calls": served_calls},
                NAMES[SEND_DATA]: {"cpu_us": sent / 1e3, "calls": sent_calls}}


def instrument(server: Any) -> StateCpu:
    """Time ``server._serve`` and the ``send`` its ``serve_ready`` calls; returns the sums."""
    sums = StateCpu()
    server._serve = sums.timed(server._serve, SERVED)
    connection.send = sums.timed(connection.send, SENT)
    return sums
