"""One client connection, and serving the requests it has sent with blocking calls."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from ..core import ParseError, RequestParser, Responder
from ..core.closing import EOF, LINGER_S, done, drain
from ..core.faults import report
from ..core.serving import pending
from ..core.status import is_loopback
from .sending import SEND_POLL_S, Limits, send

RECV_BYTES = 65536


class Connection:
    """A client socket in blocking mode, its parser, and its deadlines."""

    __slots__ = ("sock", "fd", "parser", "loopback", "deadline", "idle", "busy", "again",
                 "peer_shut", "graceful")

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
        self.again = False  # (pool) bytes arrived while busy: hand it off again when done
        self.peer_shut = False  # (pool) epoll said the client shut its side down
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
    args: Any  # header_timeout, keepalive_timeout (the common options)


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


def update_deadline(conn: Connection, answered: int, args: Any) -> None:
    """After serving, set the deadline by which the next bytes must arrive.

    As in the state-group server: the header timeout runs from the connect for the first
    request and from the first byte of a later one; the keep-alive timeout runs from the
    last response until then (body bytes we skip do not start the header timeout).
    """
    if answered:
        conn.idle = True
        conn.deadline = now() + args.keepalive_timeout
    if conn.idle and conn.parser.buffered:
        conn.idle = False
        conn.deadline = now() + args.header_timeout


def receive_until_deadline(conn: Connection) -> bool:
    """Block in recv for more of the request, until the header or keep-alive deadline."""
    remaining = conn.deadline - now()
    if remaining <= 0:
        return False
    set_timeout(conn.sock, socket.SO_RCVTIMEO, remaining)
    return receive(conn)


def serve_connection(conn: Connection, server: Server, count: list[int],
                     before_wait: Callable[[], None] | None = None) -> None:
    """Serve every request of *conn*, blocking in recv and send, until it ends: the client
    closes, a response ends it, a deadline passes (a partial header gets its 408) or the
    server drains and nothing more has arrived.  *count[0]* counts the requests answered.

    The caller closes the connection afterwards (``conn.graceful`` says how).  A thread per
    connection and a prefork worker process both serve a connection this way; *before_wait*
    (the prefork worker's counter publishing) runs before each blocking wait for more bytes.
    """
    conn.deadline = now() + server.args.header_timeout  # the first header is due from connect
    try:
        while True:
            conn.busy = True
            answered, usable = serve_ready(conn, server)
            conn.busy = False
            count[0] += answered
            update_deadline(conn, answered, server.args)
            if not usable or (server.draining and not pending(conn.sock)):
                break  # (draining: a request that has arrived is still answered)
            if before_wait is not None:
                before_wait()
            if not receive_until_deadline(conn):
                if now() >= conn.deadline:
                    time_out(conn, server.responder)  # a partial header gets its 408
                break
    except Exception as exc:  # a bug costs this connection only
        report("serving a connection", exc)
        conn.graceful = send(conn.sock, server.responder.error(500), server)


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
        """Close *sock* as soon as that sends no reset.

        Without *wait_for_eof* it is closed at once if the client has sent nothing unread
        (the usual case: the close sends our FIN); else our side is shut down and it waits
        for the EOF (always with *wait_for_eof*: a request that was never read).
        """
        if done(drain(sock), wait_for_eof):  # nothing unread: close sends a FIN, no reset
            sock.close()
            return
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        with self._lock:
            self._socks[sock] = now() + LINGER_S

    def refuse(self, sock: socket.socket, busy: object) -> bool:
        """Answer a new connection with *busy* (the core's 503) and close it gracefully; False
        if the answer could not be sent (the socket is closed)."""
        try:
            sock.setblocking(True)
            sock.sendall(busy.head + busy.body)  # a new socket's buffer is empty
        except OSError:
            sock.close()
            return False
        self.add(sock, wait_for_eof=True)  # its request is never read
        return True

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
