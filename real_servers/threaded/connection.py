"""One client connection, and serving the requests it has sent with blocking calls."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Protocol

from ..core import ParseError, RequestParser, Responder
from ..core.closing import EOF, LINGER_S, done, drain
from ..core.faults import report
from ..core.status import is_loopback
from .sending import SEND_POLL_S, Limits, send

RECV_BYTES = 65536


class Connection:
    """A client socket in blocking mode, its parser, and its deadlines."""

    __slots__ = ("sock", "fd", "parser", "loopback", "deadline", "idle", "busy", "graceful")

    def __init__(self, sock: socket.socket, peer: object) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        set_timeout(sock, socket.SO_SNDTIMEO, SEND_POLL_S)  # (see sending.py)
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = RequestParser()
        self.loopback = is_loopback(peer)
        self.deadline = 0.0  # monotonic time by which the next byte/header must arrive
        self.idle = False  # between requests: the keep-alive timeout runs, not the header one
        self.busy = False  # a thread is working on it
        self.graceful = False  # its last response said it ends the connection: close gracefully

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Server(Limits, Protocol):
    """What serving a connection needs of its server."""

    responder: Responder
    draining: bool  # SIGTERM: answer with Connection: close


def set_timeout(sock: socket.socket, option: int, seconds: float) -> None:
    """SO_RCVTIMEO / SO_SNDTIMEO on a blocking socket (0 = wait forever)."""
    sec = int(max(0.0, seconds))
    usec = int((max(0.0, seconds) - sec) * 1e6)
    if seconds > 0 and sec == 0 and usec == 0:
        usec = 1  # "almost expired" must not read as "wait forever"
    sock.setsockopt(socket.SOL_SOCKET, option, struct.pack("ll", sec, usec))


def receive(conn: Connection) -> bool:
    """One blocking recv into the parser; False when the peer closed or timed out."""
    try:
        data = conn.sock.recv(RECV_BYTES)
    except OSError:  # timeout (EAGAIN from SO_RCVTIMEO), reset...
        return False
    if not data:
        return False
    conn.parser.feed(data)
    return True


def serve_ready(conn: Connection, server: Server) -> tuple[int, bool]:
    """Answer every complete request buffered in *conn*, with blocking sends.

    Returns (requests answered, connection still usable).
    """
    responder = server.responder
    answered = 0
    while True:
        try:
            request = conn.parser.next_request()
        except ParseError as exc:
            conn.graceful = send(conn.sock, responder.error(exc.status), server)
            return answered, False
        if request is None:
            return answered, not conn.parser.closed
        if server.draining:
            request.keep_alive = False  # answered with Connection: close, then closed
        try:
            response = responder.respond(request, conn.loopback)
            fd = -1
            if response.file is not None:  # opened before the head: a 403 can still be sent
                response, fd = responder.opened(response, request, conn.loopback)
        except Exception as exc:  # a bug past the core's own guard: a 500 for this request
            report(f"answering {request.target[:200]!r}", exc)
            response, fd = responder.error(500, False, request), -1
        if not send(conn.sock, response, server, fd):
            return answered, False
        answered += 1
        if not response.keep_alive:
            conn.graceful = True
            return answered, False


def time_out(conn: Connection, responder: Responder) -> None:
    """The header deadline passed: a partly received request gets a 408 (as from the
    state-group server), sent without blocking, and a graceful close; a silent one just ends."""
    if not conn.parser.buffered or conn.parser.closed:
        return
    response = responder.error(408)
    data = response.head + response.body
    try:
        conn.graceful = conn.sock.send(data, socket.MSG_DONTWAIT) == len(data)
    except OSError:
        pass


def now() -> float:
    return time.monotonic()


class Closing:
    """Sockets being closed gracefully (``core/closing.py``): shut down on our side, drained
    until the client's EOF or ``LINGER_S``.

    ``add`` may be called from any thread; one thread (the acceptor or the dispatcher) calls
    ``sweep`` regularly.  Nothing here blocks.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: dict[socket.socket, float] = {}  # socket -> linger deadline

    def __len__(self) -> int:
        return len(self._socks)

    def add(self, sock: socket.socket, wait_for_eof: bool = False) -> None:
        """Shut down our side of *sock* and close it as soon as that sends no reset.

        Without *wait_for_eof* it is closed at once if the client has sent nothing unread
        (the usual case); with it (a request that was never read) it waits for the EOF.
        """
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if done(drain(sock), wait_for_eof):
            sock.close()
            return
        with self._lock:
            self._socks[sock] = now() + LINGER_S

    def sweep(self) -> None:
        """Close the sockets whose client has closed or whose linger time is over."""
        if not self._socks:
            return
        with self._lock:
            lingering = list(self._socks.items())
        t = now()
        done = [sock for sock, deadline in lingering if deadline <= t or drain(sock) == EOF]
        with self._lock:
            for sock in done:
                del self._socks[sock]
        for sock in done:
            sock.close()

    def close_all(self) -> None:
        with self._lock:
            socks, self._socks = list(self._socks), {}
        for sock in socks:
            sock.close()
