"""The staged server: its connections, the parked set and its deadlines, counters, drain.

A connection waiting for a request is *parked*: in ``parked`` and armed in the wait_headers
epoll set (one-shot, so exactly one wait_headers thread takes it).  Whoever takes it out of
``parked`` (under ``lock``: an event, the deadline sweep, the drain) owns it until it parks it
again or closes it, so a connection is never served by two threads at once.  A keep-alive
connection whose next request is already buffered produces no epoll event: logging puts it on
``ready`` and writes the wake pipe instead.

Deadlines are the threaded server's (threaded/connection.py ``update_deadline``): the header
timeout from the connect and from a later request's first byte, the keep-alive timeout after a
response; a partial header past its deadline gets a 408.  wait_headers sweeps at most every
``SWEEP_S`` and only once a deadline may have passed; with nothing parked it sleeps without a
timeout.  Closing is the shared lingering close (threaded/connection.py ``Closing``).

Drain (the same policy as the other servers): on SIGTERM the backlog is accepted once more and
the listener closed, idle keep-alive connections are closed (unless a request has arrived on
one: that is answered), every request received is answered with ``Connection: close``, and the
responses being written get ``--drain-timeout``; those still unfinished are then cut with a
reset and the server exits 0.
"""

from __future__ import annotations

import argparse
import math
import os
import queue
import select
import signal
import socket
import threading
import time
from collections import deque

from ..core import DocumentRoot, Responder
from ..core.lifecycle import ACCEPT, LOGGING, NAMES, SEND_DATA, WAIT_HEADERS
from ..core.serving import name_os_thread, pending
from ..core.status import rusage_counters, status_access
from ..threaded.connection import Closing, Connection, time_out, update_deadline
from ..threaded.sending import SEND_POLL_S, cut
from . import stages
from .options import STAGES

ARCH = "staged"
ARM = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT
SWEEP_S = 0.5  # parked connections' deadlines are checked at most this often
LOG_RING = 1024
ACCESS_LOG_TAIL = 10
SIGNALS = {signal.SIGTERM, signal.SIGINT}
LOOPS = {NAMES[ACCEPT]: stages.accept, NAMES[WAIT_HEADERS]: stages.wait_headers,
         NAMES[SEND_DATA]: stages.send_data, NAMES[LOGGING]: stages.logging}


def _named(name: str, loop, server: StagedServer, cell: list[int]) -> None:
    """A stage thread: named ``STAGE-N`` in the kernel too, then the stage's loop."""
    name_os_thread(name)
    loop(server, cell)


class StagedConn(Connection):
    """A connection and the request it carries between stages."""

    __slots__ = ("request", "response", "ok", "armed")

    def __init__(self, sock: socket.socket, peer: object) -> None:
        super().__init__(sock, peer)  # blocking, TCP_NODELAY, SO_SNDTIMEO (threaded/sending)
        self.request = None
        self.response = None
        self.ok = True  # its response was sent whole
        self.armed = False  # registered in the epoll set


class StagedServer:
    def __init__(self, listener: socket.socket, args: argparse.Namespace) -> None:
        self.listener = listener
        self.args = args
        docroot = DocumentRoot(args.root, cache_max_bytes=args.cache_max_bytes)
        self.responder = Responder(docroot, status=self.status, access=status_access(args.status))
        self.draining = False  # SIGTERM: answer with Connection: close
        self.stopping = False  # the accept threads return
        self.stopped = False  # the wait_headers threads return
        self.send_timeout = args.send_timeout
        self.drain_end = math.inf
        self.epoll = select.epoll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.epoll.register(self.wake_r, select.EPOLLIN)
        self.lock = threading.Lock()  # guards parked, ready, the deadlines and open
        self.parked: dict[int, StagedConn] = {}
        self.ready: deque[StagedConn] = deque()
        self.min_deadline = math.inf  # no parked connection's deadline is earlier
        self.poll_until = math.inf  # when the wait_headers threads wake at the latest
        self.last_sweep = time.monotonic()
        self.send_q: queue.Queue[StagedConn | None] = queue.Queue()
        self.log_q: queue.Queue[StagedConn | None] = queue.Queue()
        self.closing = Closing()
        self.open: set[StagedConn] = set()
        self.access_log: deque[tuple] = deque(maxlen=LOG_RING)
        self.cells: dict[str, list[list[int]]] = {name: [] for name in STAGES}
        self.threads: dict[str, list[threading.Thread]] = {name: [] for name in STAGES}

    # -- threads ------------------------------------------------------------------------
    def start(self) -> None:
        """Start every stage's threads (SIGTERM/SIGINT blocked in them: :meth:`wait` takes
        them)."""
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        for name in STAGES:
            for i in range(self.args.stage_threads[name]):
                cell = [0, 0, 0]
                self.cells[name].append(cell)
                thread = threading.Thread(target=_named, args=(f"{name}-{i}", LOOPS[name],
                                                               self, cell),
                                          name=f"{name}-{i}", daemon=True)
                self.threads[name].append(thread)
                thread.start()

    def wait(self) -> int:
        """Sleep until SIGTERM/SIGINT, then drain; returns the exit code (0)."""
        signal.sigwait(SIGNALS)
        self._drain()
        return 0

    # -- connections --------------------------------------------------------------------
    def admit_and_park(self, sock: socket.socket, peer: object) -> None:
        """A new connection: parked for its first request, or a 503 at --max-connections."""
        with self.lock:
            full = len(self.open) >= self.args.max_connections
        if full:
            if self.closing.refuse(sock, self.responder.error(503)):
                self._wake_by(time.monotonic() + SWEEP_S)  # for the sweep
            return
        conn = StagedConn(sock, peer)
        conn.deadline = time.monotonic() + self.args.header_timeout  # due from the connect
        with self.lock:
            self.open.add(conn)
        self.park(conn)

    def park(self, conn: StagedConn) -> None:
        """Put *conn* in the wait_headers epoll set until its next bytes arrive.

        ``armed`` is settled under the lock: once registered, an event may hand the
        connection to wait_headers - which may park it again - before this call returns.
        """
        deadline = conn.deadline
        with self.lock:
            self.parked[conn.fd] = conn
            if deadline < self.min_deadline:
                self.min_deadline = deadline
            wake = deadline < self.poll_until
            if wake:
                self.poll_until = deadline
            first, conn.armed = not conn.armed, True
        try:
            if first:
                self.epoll.register(conn.fd, ARM)
            else:
                self.epoll.modify(conn.fd, ARM)
        except OSError:  # closed meanwhile by the drain
            return
        if wake:
            self._wake()

    def unpark(self, fd: int) -> StagedConn | None:
        """Take the connection an event reported (None if the sweep or the drain took it)."""
        with self.lock:
            return self.parked.pop(fd, None)

    def next_ready(self) -> StagedConn | None:
        with self.lock:
            return self.ready.popleft() if self.ready else None

    def finish(self, conn: StagedConn) -> None:
        """logging's end of a request: close the connection or park it for the next one."""
        response, conn.request, conn.response = conn.response, None, None
        if not conn.ok:  # a cut response: its socket is set to reset when closed
            self.release(conn)
            return
        if not response.keep_alive or conn.parser.closed:
            conn.graceful = True
            self.release(conn)
            return
        self._keep_alive(conn)

    def _keep_alive(self, conn: StagedConn) -> None:
        update_deadline(conn, 1, self.args)
        if conn.parser.buffered:  # a pipelined request: no epoll event will announce it
            with self.lock:
                self.ready.append(conn)
            self._wake()
        elif self.draining and not pending(conn.sock):
            conn.graceful = True
            self.release(conn)
        else:
            self.park(conn)

    def release(self, conn: StagedConn) -> None:
        """The connection is done with: close it (gracefully after a final response)."""
        with self.lock:
            self.open.discard(conn)
        if conn.graceful:
            self.closing.add(conn.sock)
            if len(self.closing):
                self._wake_by(time.monotonic() + SWEEP_S)
        else:
            conn.close()

    # -- waking and sweeping (the wait_headers threads) --------------------------------------
    def _wake(self) -> None:
        try:
            os.write(self.wake_w, b"x")
        except OSError:  # the pipe is full: a wake-up is pending anyway
            pass

    def _wake_by(self, when: float) -> None:
        with self.lock:
            wake = when < self.poll_until
            if wake:
                self.poll_until = when
        if wake:
            self._wake()

    def read_wake(self) -> None:
        while True:
            try:
                if not os.read(self.wake_r, 4096):
                    return
            except BlockingIOError:
                return

    def poll_timeout(self) -> float:
        """How long wait_headers may sleep: until the next deadline may have passed (at most
        every SWEEP_S), or forever if nothing is parked and nothing lingers."""
        now = time.monotonic()
        with self.lock:
            due = self.min_deadline
            if len(self.closing):
                due = min(due, now + SWEEP_S)
            if due != math.inf:
                due = max(due, self.last_sweep + SWEEP_S)
            self.poll_until = due
        return -1 if due == math.inf else max(0.0, due - now)

    def sweep(self) -> None:
        """Time out the parked connections past their deadline; close lingering sockets."""
        now = time.monotonic()
        with self.lock:
            if now - self.last_sweep < SWEEP_S or (now < self.min_deadline
                                                   and not len(self.closing)):
                return
            self.last_sweep = now
            expired = [c for c in self.parked.values() if c.deadline <= now]
            for conn in expired:
                del self.parked[conn.fd]
            self.min_deadline = min((c.deadline for c in self.parked.values()), default=math.inf)
        for conn in expired:
            time_out(conn, self.responder)  # a partial header gets its 408
            self.release(conn)
        self.closing.sweep()

    # -- /server-status -----------------------------------------------------------------
    def status(self) -> dict:
        per_state = {name: {"moved": 0, "queue": 0} for name in NAMES}
        sleeps = 0
        for name, cells in self.cells.items():
            per_state[name]["moved"] = sum(cell[stages.MOVED] for cell in cells)
            sleeps += sum(cell[stages.SLEEPS] for cell in cells)
        requests = sum(cell[stages.REQUESTS] for cell in self.cells[NAMES[LOGGING]])
        with self.lock:
            per_state[NAMES[WAIT_HEADERS]]["queue"] = len(self.parked) + len(self.ready)
            open_count = len(self.open)
        per_state[NAMES[SEND_DATA]]["queue"] = self.send_q.qsize()
        per_state[NAMES[LOGGING]]["queue"] = self.log_q.qsize()
        per_state[NAMES[ACCEPT]]["queue"] = 0
        pid = os.getpid()
        counters = rusage_counters()
        return {
            "arch": ARCH,
            "stage_threads": dict(self.args.stage_threads),
            "pids": [pid],
            "requests": requests,
            "threads_alive": threading.active_count(),
            "connections_open": open_count,
            "cache": self.responder.docroot.cache_stats(),
            **counters,
            "states": list(NAMES),
            # one process: one row, so the harness's per-state columns fill as for state-group
            "workers": [{"pid": pid, "requests": requests, "sleeps": sleeps,
                         "connections_open": open_count, **counters, "per_state": per_state}],
            "access_log": {"pid": pid, "logged": requests,
                           "tail": list(self.access_log)[-ACCESS_LOG_TAIL:]},
        }

    # -- SIGTERM ------------------------------------------------------------------------
    def _drain(self) -> None:
        self.drain_end = time.monotonic() + self.args.drain_timeout
        self.draining = self.stopping = True
        self.listener.setblocking(False)
        while True:  # the backlog, once more
            try:
                sock, peer = self.listener.accept()
            except OSError:  # EAGAIN: empty
                break
            self.admit_and_park(sock, peer)
        try:
            self.listener.shutdown(socket.SHUT_RD)  # wakes the threads asleep in accept()
        except OSError:
            pass
        for thread in self.threads[NAMES[ACCEPT]]:
            thread.join(1.0)
        self.listener.close()
        with self.lock:  # idle keep-alive connections with nothing arrived: closed
            idle = [c for c in self.parked.values()
                    if not c.parser.buffered and not pending(c.sock)]
            for conn in idle:
                del self.parked[conn.fd]
        for conn in idle:
            conn.graceful = True  # nothing in flight: a FIN, never a reset
            self.release(conn)
        deadline = self.drain_end + SEND_POLL_S + 0.5  # a blocked send notices the drain's end
        while time.monotonic() < deadline:
            with self.lock:
                if not self.open:
                    break
            time.sleep(0.01)
        self.stopped = True
        self._wake()
        for _ in self.threads[NAMES[SEND_DATA]]:
            self.send_q.put(None)
        for _ in self.threads[NAMES[LOGGING]]:
            self.log_q.put(None)
        with self.lock:
            left = list(self.open)
        for conn in left:  # still mid-response (or a header never finished): a reset
            cut(conn.sock)
            conn.close()
        self.closing.close_all()
