"""One prefork worker process: accept, serve the connection to its end, accept again.

The worker blocks in ``accept()`` on the listener it inherited from the master; every worker
waits on the same socket, and Linux wakes one of them per connection (an exclusive wait,
docs/SOURCES.md [LINUX-accept-exclusive]).  The connection is then served with blocking
``recv``/``send``/``sendfile`` by the thread-per-connection server's loop, keep-alive requests
included, under the same header, keep-alive and send deadlines.  Its close is Apache 1.3's
lingering close, done in the worker itself: our side shut down, then the worker blocks reading
(and dropping) what the client still sends until its EOF or ``LINGER_S``.

SIGTERM: the handler never raises (an exception between ``accept()`` returning and its result
being stored would drop a connection the kernel had completed).  It gives the listener a
receive timeout (``SO_RCVTIMEO``, which bounds ``accept()``): the ``accept()`` it interrupted is
retried by Python (PEP 475) and now returns ``EAGAIN`` once the backlog is empty.  A worker
waiting on an idle keep-alive connection has that connection's reading side shut down, so its
``recv`` returns at once.  The worker answers the backlog with ``Connection: close`` and exits
0; responses still being written get until ``--drain-timeout`` (see threaded/sending.py).  The
timeout is the listening socket's, shared by every worker: one that is not draining retries on
``EAGAIN``, and a worker forked afterwards clears it.
"""

from __future__ import annotations

import argparse
import math
import os
import select
import socket
import time

from ..core import DocumentRoot, Responder
from ..core import board as b
from ..core.closing import EOF, LINGER_S, done, drain
from ..core.serving import pending
from ..core.status import status_access
from ..threaded.connection import Connection, serve_connection, set_timeout
from ..threaded.sending import send
from .status import collect, fullest_cache, publish

EMFILE_BACKOFF_S = 0.05
DRAIN_ACCEPT_S = 0.05  # draining: accept() gives up after the backlog is this long empty


class Worker:
    """A single-threaded worker; it is also the ``Server`` the blocking loop serves for."""

    def __init__(self, args: argparse.Namespace, listener: socket.socket, board: b.Board,
                 index: int) -> None:
        self.args = args
        self.listener = listener
        self.board = board
        self.slot = board.slot(index)
        docroot = DocumentRoot(args.root, cache_max_bytes=args.cache_max_bytes)
        self.responder = Responder(docroot, status=self.status, access=status_access(args.status))
        self.draining = False  # SIGTERM: answer with Connection: close
        self.send_timeout = args.send_timeout
        self.drain_end = math.inf
        self.count = [0]  # requests answered
        self.conn: Connection | None = None  # the connection being served
        set_timeout(listener, socket.SO_RCVTIMEO, 0)  # accept() blocks (a drain may have set it)
        self.slot[b.PID] = os.getpid()
        self.slot[b.CPU] = -1
        self.slot[b.ALIVE] = 1
        self.publish()

    # -- counters -----------------------------------------------------------------------
    def publish(self) -> None:
        publish(self.slot, self.count[0], self.responder.docroot.cache_stats())

    def status(self) -> dict:
        self.publish()
        cache = fullest_cache(self.board, self.args.cache_max_bytes)
        return {**collect(self.board, self.args), "cache": cache}

    # -- the loop -----------------------------------------------------------------------
    def serve(self) -> int:
        listener = self.listener
        while not self.draining:
            self.publish()
            try:
                sock, peer = listener.accept()
            except BlockingIOError:  # a draining worker set the accept timeout
                continue
            except OSError:  # EMFILE and friends: back off instead of spinning
                time.sleep(EMFILE_BACKOFF_S)
                continue
            self.handle(sock, peer)
        self._accept_backlog()
        self.publish()
        return 0

    def handle(self, sock: socket.socket, peer: object) -> None:
        """Serve one connection to its end (or refuse it at --max-connections)."""
        over = self.board.open_connections() >= self.args.max_connections
        conn = Connection(sock, peer)
        if over:
            busy = self.responder.error(503)
            if send(sock, busy, self):
                linger(sock, True, self.drain_end)  # its request is never read
            else:
                conn.close()
            return
        self.slot[b.OPEN] = 1
        self.conn = conn
        try:
            serve_connection(conn, self, self.count, self.publish)
        finally:
            self.conn = None
            if conn.graceful:
                linger(conn.sock, False, self.drain_end)
            else:
                conn.close()
            self.slot[b.OPEN] = 0

    # -- SIGTERM ------------------------------------------------------------------------
    def on_term(self, signum: int, frame: object) -> None:
        """Start draining; a repeated SIGTERM (the master sends one every ``resignal_s`` while
        it waits) sets the listener's accept timeout again: a worker still starting up when
        the drain began clears that shared timeout in its ``__init__``, and an accept()
        retried after that clear would wait with none."""
        if not self.draining:
            self.draining = True
            self.drain_end = time.monotonic() + self.args.drain_timeout
        try:  # the interrupted accept() is retried: now it ends when the backlog is empty
            set_timeout(self.listener, socket.SO_RCVTIMEO, DRAIN_ACCEPT_S)
        except OSError:
            pass
        conn = self.conn
        if conn is not None and not conn.busy and not conn.parser.buffered \
                and not pending(conn.sock):
            try:  # idle keep-alive connection: its blocked recv returns EOF now
                conn.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass

    def _accept_backlog(self) -> None:
        """Draining: answer the connections the kernel has already completed (every worker
        takes some), with Connection: close - until the drain's end, however many more
        clients keep connecting."""
        while time.monotonic() < self.drain_end:
            try:
                sock, peer = self.listener.accept()
            except OSError:  # EAGAIN (SO_RCVTIMEO): the backlog is empty
                return
            self.handle(sock, peer)


def linger(sock: socket.socket, wait_for_eof: bool, drain_end: float = math.inf) -> None:
    """Close *sock* without resetting a response the client has not read (core/closing.py):
    shut down our side, then - unless nothing unread is waiting - block reading until the
    client's EOF, for at most LINGER_S (and not past the drain's end)."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        sock.close()
        return
    if not done(drain(sock), wait_for_eof):
        deadline = min(time.monotonic() + LINGER_S, drain_end)
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        while (left := deadline - time.monotonic()) > 0:
            if not poller.poll(left * 1000) or drain(sock) == EOF:
                break
    sock.close()
