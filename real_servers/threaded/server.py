"""What both threaded shapes share: listener, counters, /server-status, SIGTERM drain.

Drain (the same policy as the state-group server's): on SIGTERM the server stops accepting -
after accepting, once more, the connections the kernel has already completed - closes idle
keep-alive connections (unless a request has arrived on one: that is answered), answers every
request already received with ``Connection: close``, and gives the responses being written
``--drain-timeout`` seconds; those still unfinished are then cut with a reset and it exits 0.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import socket
import threading
import time

from ..core import DocumentRoot, Responder
from ..core.status import rusage_counters, status_access
from .connection import Closing, Connection, update_deadline
from .sending import SEND_POLL_S, cut

ARCH = "thread-per-request"


class Counter:
    """Per-thread request counts summed on demand: no lock (and no futex) per request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[int, list[int]] = {}
        self._retired = 0

    def cell(self) -> list[int]:
        cell = [0]
        with self._lock:
            self._cells[id(cell)] = cell
        return cell

    def retire(self, cell: list[int]) -> None:
        with self._lock:
            self._cells.pop(id(cell), None)
            self._retired += cell[0]

    def total(self) -> int:
        with self._lock:
            return self._retired + sum(c[0] for c in self._cells.values())


class ThreadedServer:
    """Base for the pool and thread-per-connection shapes."""

    mode = "base"

    def __init__(self, listener: socket.socket, args: argparse.Namespace) -> None:
        self.listener = listener
        self.args = args
        docroot = DocumentRoot(args.root, cache_max_bytes=args.cache_max_bytes)
        self.responder = Responder(docroot, status=self.status, access=status_access(args.status))
        self.requests = Counter()
        self.stopping = threading.Event()
        self.draining = False  # SIGTERM: answer with Connection: close
        self.send_timeout = args.send_timeout
        self.drain_end = math.inf  # when the drain ends (monotonic)
        self._open_lock = threading.Lock()
        self._open = 0
        self.closing = Closing()  # answered connections being closed without a reset
        self.state_cpu = None  # the pool's --state-cpu sums (threaded/statecpu.py), if asked

    # -- connection accounting -----------------------------------------------------------
    def admit(self, sock: socket.socket, peer: object) -> Connection | None:
        """Wrap a new socket, or answer the core's 503 and close it at --max-connections."""
        with self._open_lock:
            full = self._open >= self.args.max_connections
            if not full:
                self._open += 1
        if full:
            self.closing.refuse(sock, self.responder.error(503))
            return None
        return Connection(sock, peer)

    def release(self, conn: Connection) -> None:
        """The connection is done with: close it (gracefully after a final response)."""
        if conn.graceful:
            self.closing.add(conn.sock)
        else:
            conn.close()
        with self._open_lock:
            self._open -= 1

    def update_deadline(self, conn: Connection, answered: int) -> None:
        """After serving, set the deadline by which the next bytes must arrive."""
        update_deadline(conn, answered, self.args)

    # -- /server-status ------------------------------------------------------------------
    def status(self) -> dict:
        return {
            "arch": ARCH,
            "mode": self.mode,
            "threads": self.args.threads,
            "pids": [os.getpid()],
            "requests": self.requests.total(),
            "threads_alive": threading.active_count(),
            "connections_open": self._open,
            "cache": self.responder.docroot.cache_stats(),
            **rusage_counters(),
            **({} if self.state_cpu is None else {"per_state": self.state_cpu.per_state()}),
        }

    # -- lifecycle -----------------------------------------------------------------------
    def install_signals(self) -> None:
        def on_term(signum: int, frame: object) -> None:
            if not self.draining:
                self.drain_end = time.monotonic() + self.args.drain_timeout
                self.draining = True
            self.stopping.set()

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)

    def serve_forever(self) -> int:
        raise NotImplementedError

    def wait_drained(self, in_flight) -> None:
        """Wait until *in_flight()* is zero: by the drain's end plus the time a blocked send
        takes to notice it (threads cut what they were writing then)."""
        deadline = self.drain_end + SEND_POLL_S + 0.5
        while in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)

    def cut_all(self, conns) -> None:
        """At exit: connections still open are mid-response; make their close a reset."""
        for conn in conns:
            cut(conn.sock)
