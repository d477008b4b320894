"""The worker loop (kHTTPd: main.c, MainDaemon): one process per CPU, states in turn.

Each pass runs every state's ``run(worker)`` once, in lifecycle order, each servicing its whole
queue as a batch.  If the pass moved nothing the worker blocks in ``epoll.poll`` until a socket
event (interrupt-driven: a ``sleep``); otherwise it polls with timeout 0 and goes round again
(polling: a ``busy poll``).  Epoll events only *queue* connections for their state; all work is
done by the states.

Timeouts are checked at most every ``SWEEP_S`` and only once a deadline may have passed; an idle
worker with no connections blocks in epoll without a timeout.

Drain (the same policy as the threaded server's): on SIGTERM the worker accepts its backlog once
more and closes its listener, closes idle keep-alive connections (unless a request has arrived
on one: that is answered), answers every request received with ``Connection: close``, and gives
the responses being written ``--drain-timeout`` seconds; those still unfinished are then cut
with a reset.
"""

from __future__ import annotations

import functools
import math
import os
import select
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable, Mapping

from ..core import DocumentRoot, Responder, Response, cputime
from ..core import board as b
from ..core.status import status_access
from . import states as state_modules
from .config import Config
from .connection import Conn, Relay
from .lifecycle import (
    ABORT,
    CLOSED,
    CUT,
    EPOLLIN,
    GRACEFUL,
    KEEP,
    LOGGING,
    NAMES,
    READ,
    RECV_BYTES,
    REGISTER,
    SEND_DATA,
    SHUT,
    WAIT_HEADERS,
    WRITE,
    may_move,
)
from .status import announce, document, due, publish

MAX_EVENTS = 512
SWEEP_S = 0.5  # timeouts are checked at most this often
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset
MAX_WARNINGS = 50
#: ALLOWED[src][dst]: the lifecycle's table as nested lists, so the move check on the hot path
#: is two index operations (index -1, CLOSED, is each row's last column)
ALLOWED = [[may_move(src, dst) for dst in (*range(len(NAMES)), CLOSED)]
           for src in range(len(NAMES))]


class LifecycleError(RuntimeError):
    """A state tried a move the request lifecycle does not have (a bug in that state)."""


class Worker:
    """One worker: a listener, an epoll, the state modules and their queues."""

    def __init__(
        self,
        config: Config,
        listener: socket.socket,
        board: b.Board | None = None,
        index: int = 0,
        cpu: int = -1,
        states: Mapping[str, object] | None = None,
    ) -> None:
        self.config = config
        self.listener: socket.socket | None = listener
        listener.setblocking(False)
        self.listen_fd = listener.fileno()
        self.board = board or b.Board(1)
        self.slot = self.board.slot(index)
        self._write_counters = self.board.writer(index, b.REQUESTS, b.STIME - b.REQUESTS + 1)
        self._write_states = self.board.writer(index, b.MOVED, 2 * len(NAMES))
        self._write_state_cpu = self.board.writer(index, b.STATE_CPU, len(NAMES))
        # ns of CPU each state's batches took, with --state-cpu (else None: not timed)
        self.state_ns: list[int] | None = [0] * len(NAMES) if config.state_cpu else None
        self.cpu = cpu
        docroot = DocumentRoot(config.root, cache_max_bytes=config.cache_max_bytes)
        self.responder = Responder(docroot, status=functools.partial(document, self),
                                   access=status_access(config.status))
        port = config.userspace_port
        self.userspace_addr = ("127.0.0.1", port) if port else None
        self.epoll = select.epoll()
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.epoll.register(self.listen_fd, EPOLLIN)
        self.epoll.register(self.wake_r, EPOLLIN)
        self.conns: dict[int, Conn] = {}
        self.relays: dict[int, Relay] = {}
        self.queues: list[list] = [[] for _ in NAMES]
        self.states = state_modules.load({**config.states, **(states or {})})
        self.moved = [0] * len(NAMES)  # per state, in total
        self.requests = self.passes = self.sleeps = self.busy_polls = self.open_count = 0
        self.rbuf = bytearray(RECV_BYTES)  # scratch for reads whose bytes are discarded
        self.now = self.last_sweep = self.published = self.counted_at = time.monotonic()
        self.answered = 0  # the last request for fresh counters published for (status.py)
        self.min_deadline = math.inf  # no connection's deadline is earlier than this
        self.accept_ready = True
        self.draining = False
        self.drain_end = math.inf
        self._stop_requested = False
        self._warnings = 0
        for module in self.states:
            setup = getattr(module, "setup", None)
            if setup is not None:
                setup(self)
        self._expire_hooks = [getattr(module, "expire", None) for module in self.states]
        announce(self)

    # -- the loop --------------------------------------------------------------------------
    def _timed(self, state: int, run):
        """``run`` with the CPU its batch takes added to ``state_ns[state]`` (--state-cpu only,
        so the plain loop pays nothing)."""
        spent = self.state_ns

        def charge(ns: int) -> None:
            spent[state] += ns

        return cputime.timed(run, charge)

    def serve(self) -> int:
        """Run passes until drained; returns the exit code (0)."""
        runs = [module.run for module in self.states]
        if self.state_ns is not None:
            runs = [self._timed(i, run) for i, run in enumerate(runs)]
        moved_total = self.moved
        poll = self.epoll.poll
        monotonic = time.monotonic
        slot = self.slot
        while True:
            moved = 0
            for i, run in enumerate(runs):
                n = run(self)
                if n:
                    moved += n
                    moved_total[i] += n
            self.passes += 1
            if moved:
                self.busy_polls += 1
                if due(self):
                    publish(self)
                events = poll(0, MAX_EVENTS)
            else:
                if self.draining and (not self.conns and self.listener is None):
                    break
                self.sleeps += 1
                publish(self)
                slot[b.ASLEEP] = 1
                events = poll(self._sleep_timeout(), MAX_EVENTS)
                slot[b.ASLEEP] = 0
            self.now = now = monotonic()
            if events:
                self._dispatch(events)
            if now >= self.min_deadline and now - self.last_sweep >= SWEEP_S:
                if now >= self.drain_end:
                    break
                self._sweep()
        for conn in list(self.conns.values()):
            if conn.state == SEND_DATA:
                self.cut(conn)  # the drain is over: what is still being sent is cut
        publish(self)
        return 0

    def _dispatch(self, events: list[tuple[int, int]]) -> None:
        conns, queues = self.conns, self.queues
        for fd, ev in events:
            conn = conns.get(fd)
            if conn is None:
                self._other_event(fd, ev)
                continue
            if ev & READ:
                conn.readable = True
                if ev & SHUT:
                    conn.peer_shut = True
            if ev & WRITE:
                conn.writable = True
            if conn.wait & ev:
                conn.wait = 0
                queues[conn.state].append(conn)

    def _other_event(self, fd: int, ev: int) -> None:
        if fd == self.listen_fd:
            self.accept_ready = True
        elif fd == self.wake_r:
            while True:
                try:
                    if not os.read(self.wake_r, 512):
                        break
                except BlockingIOError:
                    break
            if self._stop_requested and not self.draining:
                self._begin_drain()
        else:
            relay = self.relays.get(fd)
            if relay is None:
                return
            if ev & READ:
                relay.readable = True
            if ev & WRITE:
                relay.writable = True
            conn = relay.conn
            if conn.wait:
                conn.wait = 0
                self.queues[conn.state].append(conn)

    def _sleep_timeout(self) -> float:
        """Block until the next deadline may have passed; forever if there is none."""
        if self.min_deadline == math.inf:
            return -1
        due = max(self.min_deadline, self.last_sweep + SWEEP_S)
        return max(0.0, due - self.now)

    # -- what the states use ----------------------------------------------------------------
    def service(self, state: int, handle: Callable[[Worker, Conn], int]) -> int:
        """Service *state*'s queue as one batch, ``handle(worker, conn)`` for each connection.

        Connections queued meanwhile wait for the next pass.  A handler that raises (a bug)
        costs that connection only.  Returns the requests moved (handlers' sum).
        """
        batch = self.queues[state]
        if not batch:
            return 0
        self.queues[state] = []
        moved = 0
        for conn in batch:
            try:
                moved += handle(self, conn)
            except Exception as exc:
                self.fault(conn, exc)
                moved += 1
        return moved

    def move(self, conn: Conn, state: int, queue: bool = True) -> None:
        """The one place a connection changes state: the lifecycle's table must allow the
        move (``LifecycleError`` otherwise - a bug, which costs that connection only); with
        ``queue`` it joins the state's batch for the next pass, else it stays parked.  A state
        keeping a connection (the same state again) is not a move."""
        src = conn.state
        if state != src and not ALLOWED[src][state]:
            raise LifecycleError(f"{NAMES[src]} -> {NAMES[state] if state >= 0 else 'closed'} "
                                 "is not a move of the request lifecycle")
        conn.state = state
        if queue:
            self.queues[state].append(conn)

    def answer(self, conn: Conn, response: Response, ending: int = KEEP) -> None:
        """Hand *conn* to send_data with *response*."""
        conn.response = response
        conn.ending = ending
        self.move(conn, SEND_DATA)

    def end(self, conn: Conn, ending: int) -> None:
        """Hand *conn* to logging, which logs its request and ends it as *ending* says."""
        conn.wait = 0
        conn.ending = ending
        self.move(conn, LOGGING)

    def add(self, conn: Conn) -> None:
        """Register a new connection (edge-triggered, both directions, once)."""
        self.conns[conn.fd] = conn
        self.epoll.register(conn.fd, REGISTER)
        if conn.counted:
            self.open_count += 1
            self.slot[b.OPEN] = self.open_count

    def add_relay(self, relay: Relay) -> None:
        self.relays[relay.fd] = relay
        self.epoll.register(relay.fd, REGISTER)

    def drop_relay(self, conn: Conn) -> None:
        relay = conn.relay
        if relay is not None:
            conn.relay = relay.conn = None
            self.relays.pop(relay.fd, None)
            relay.sock.close()

    def uncount(self, conn: Conn) -> None:
        """The connection no longer counts as open (it is closing)."""
        if conn.counted:
            conn.counted = False
            self.open_count -= 1
            self.slot[b.OPEN] = self.open_count

    def cut(self, conn: Conn) -> None:
        """Close a connection whose response is incomplete with a reset (SO_LINGER 0), so the
        client can tell it from a whole one."""
        try:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        except OSError:
            pass
        self.close(conn)

    def close(self, conn: Conn) -> None:
        """Close a connection now (closing the fd also removes it from epoll)."""
        if conn.file_fd >= 0:
            os.close(conn.file_fd)
            conn.file_fd = -1
        self.drop_relay(conn)
        self.uncount(conn)
        if self.conns.pop(conn.fd, None) is not None:
            conn.sock.close()

    def set_deadline(self, conn: Conn, seconds: float) -> None:
        deadline = self.now + seconds
        conn.deadline = deadline
        if deadline < self.min_deadline:
            self.min_deadline = deadline

    def stop_listening(self) -> None:
        if self.listener is not None:
            self.listener.close()  # also leaves the epoll set
            self.listener = None
            self.listen_fd = -1

    def fault(self, conn: Conn, exc: BaseException) -> None:
        """A state failed on *conn* (a bug): report it, carry on.  A request none of whose
        response has been sent gets a 500 and a graceful close; a response under way is cut;
        a relayed connection is closed."""
        self.warn("".join(traceback.format_exception(exc)).rstrip())
        state, response = conn.state, conn.response
        fresh = conn.pending is None and conn.file_fd < 0 and conn.relay is None
        if state == WAIT_HEADERS or (state == SEND_DATA and fresh and response is not None
                                     and response.status != 500):
            conn.wait = 0
            self.answer(conn, self.responder.error(500, False, conn.request), GRACEFUL)
            return
        if state == SEND_DATA:
            self.end(conn, CUT)
            return
        if state != LOGGING:
            self.end(conn, ABORT)
            return
        try:  # logging itself failed on it: do not hand it back
            self.close(conn)
        except OSError:
            self.conns.pop(conn.fd, None)

    def warn(self, message: str) -> None:
        self._warnings += 1
        if self._warnings <= MAX_WARNINGS:
            print(f"stategroup worker {os.getpid()}: {message}", file=sys.stderr, flush=True)

    # -- timeouts and draining ----------------------------------------------------------------
    def _sweep(self) -> None:
        now = self.last_sweep = self.now
        earliest = self.drain_end
        expired = []
        for conn in self.conns.values():
            deadline = conn.deadline
            if conn.wait and deadline <= now:
                expired.append(conn)
            elif deadline < earliest:
                earliest = deadline
        self.min_deadline = earliest
        for conn in expired:
            self._expire(conn)

    def _expire(self, conn: Conn) -> None:
        """A parked connection's deadline passed: its state decides (``expire``); a state
        without the hook ends it (idle, a lingering close, a silent user-space server)."""
        conn.wait = 0
        expire = self._expire_hooks[conn.state]
        if expire is None:
            self.end(conn, ABORT)
        else:
            expire(self, conn)

    def request_stop(self) -> None:
        """Begin draining at the next wake-up (safe from a signal handler or another thread)."""
        self._stop_requested = True
        try:
            os.write(self.wake_w, b"x")
        except OSError:
            pass

    def _begin_drain(self) -> None:
        """Stop accepting, let in-flight requests finish; each state's ``stop`` does its part
        (wait_headers closes the idle connections)."""
        self.draining = True
        self.drain_end = self.now + self.config.drain_timeout
        for module in self.states:  # each state's own part of the drain, if it has one
            stop = getattr(module, "stop", None)
            if stop is not None:
                stop(self)
        self.min_deadline = min(self.min_deadline, self.drain_end)
        self.accept_ready = True  # accept the backlog once more, then close the listener
