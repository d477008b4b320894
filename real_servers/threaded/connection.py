"""One client connection and the blocking I/O that serves its requests."""

from __future__ import annotations

import os
import socket
import struct
import threading
import time

from ..core import ParseError, RequestParser, Responder, Response
from ..core.status import is_loopback

RECV_BYTES = 65536
SEND_TIMEOUT_S = 30.0  # a client that stops reading frees its thread after this
LINGER_S = 2.0  # a gracefully closing connection waits this long at most for the client's EOF
DRAIN_READS = 4  # reads per lingering connection per sweep
EOF, MORE, NOTHING = range(3)  # what draining a socket found


class Connection:
    """A client socket in blocking mode, its parser, and its deadlines."""

    __slots__ = ("sock", "fd", "parser", "loopback", "deadline", "idle", "busy", "graceful")

    def __init__(self, sock: socket.socket, peer: object) -> None:
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        set_timeout(sock, socket.SO_SNDTIMEO, SEND_TIMEOUT_S)
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


def serve_ready(conn: Connection, responder: Responder) -> tuple[int, bool]:
    """Answer every complete request buffered in *conn*, with blocking sends.

    Returns (requests answered, connection still usable).
    """
    answered = 0
    while True:
        try:
            request = conn.parser.next_request()
        except ParseError as exc:
            conn.graceful = send(conn.sock, responder.error(exc.status))
            return answered, False
        if request is None:
            return answered, not conn.parser.closed
        response = responder.respond(request, conn.loopback)
        if not send(conn.sock, response):
            return answered, False
        answered += 1
        if not response.keep_alive:
            conn.graceful = True
            return answered, False


def send(sock: socket.socket, response: Response) -> bool:
    """Write a response with blocking calls; False if the client went away."""
    try:
        if response.file is not None:
            sock.sendall(response.head, socket.MSG_MORE)
            return _sendfile(sock, response.file, response.length)
        if response.body:
            sent = sock.sendmsg((response.head, response.body))
            total = len(response.head) + len(response.body)
            if sent < total:
                sock.sendall(memoryview(response.head + response.body)[sent:])
        else:
            sock.sendall(response.head)
        return True
    except OSError:
        return False


def _sendfile(sock: socket.socket, path: str, length: int) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        offset = 0
        while offset < length:
            n = os.sendfile(sock.fileno(), fd, offset, length - offset)
            if n == 0:  # the file shrank under us: the framing is broken, close
                return False
            offset += n
        return True
    finally:
        os.close(fd)


def now() -> float:
    return time.monotonic()


class Closing:
    """Sockets being closed gracefully, as Apache's lingering close and the state-group
    server's ``logging`` state do: our side is shut down (the client reads our FIN after the
    response), and what the client still sends - the rest of a refused request, pipelined
    requests - is read and dropped until its EOF or ``LINGER_S``.  Closing with unread bytes
    would make the kernel send a reset, which can destroy a response the client has not read.

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
        found = drain(sock)
        if found == EOF or (found == NOTHING and not wait_for_eof):
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


def drain(sock: socket.socket) -> int:
    """Read and drop what the client sent, without blocking: EOF (or error), MORE, NOTHING."""
    got = False
    for _ in range(DRAIN_READS):
        try:
            data = sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return MORE if got else NOTHING
        except OSError:
            return EOF
        if not data:
            return EOF
        got = True
    return MORE
