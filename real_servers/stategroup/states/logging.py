"""logging - logging and cleanup (kHTTPd: logging.c).

Every finished request is written to the worker's access-log ring (the last ``RING`` requests:
monotonic time, status - 0 for one relayed to user space -, bytes, method, target) and counted.
Then the connection either goes back to ``wait_headers`` (keep-alive) or is closed: at once
when the peer is gone, with a reset when its response was cut (``CUT``), or gracefully - our
side shut down, and, if the client has sent more than we read, its bytes drained until it
closes (or ``LINGER_S``), so that closing never resets a response the client has not read yet.
"""

from __future__ import annotations

import socket

from ...core.closing import EMPTIED, EOF, LINGER_S, NOTHING, done, drain
from ..lifecycle import ABORT, CUT, GRACEFUL, KEEP, LOGGING, READ, WAIT_HEADERS

RING = 1024


class AccessLog:
    """A fixed ring of the last *size* requests."""

    __slots__ = ("entries", "size", "count")

    def __init__(self, size: int = RING) -> None:
        self.entries: list[tuple | None] = [None] * size
        self.size = size
        self.count = 0

    def tail(self, n: int) -> list[tuple]:
        """The last *n* entries, oldest first."""
        n = min(n, self.count, self.size)
        return [self.entries[(self.count - n + i) % self.size] for i in range(n)]


def setup(worker) -> None:
    worker.access_log = AccessLog()


def run(worker) -> int:
    return worker.service(LOGGING, _clean_up)


def _clean_up(worker, conn) -> int:
    if conn.lingering:
        _linger(worker, conn)
        return 1
    # the log entry (written out here: once a request)
    request, response = conn.request, conn.response
    if response is not None or request is not None:  # (neither: ended between requests)
        if response is not None:
            status, length = response.status, response.length
        else:  # relayed to user space
            status, length = 0, conn.relayed
        log = worker.access_log
        method, target = (request.method, request.target) if request is not None else ("", "")
        count = log.count
        log.entries[count % log.size] = (worker.now, status, length, method, target)
        log.count = count + 1
        worker.requests += 1
    _end(worker, conn)
    return 1


def _end(worker, conn) -> None:
    response = conn.response
    ending = conn.ending
    conn.request = conn.response = None
    if ending == KEEP:
        if response is not None and response.keep_alive and not worker.draining:
            _keep_alive(worker, conn)
            return
        ending = GRACEFUL
    if ending == ABORT:
        worker.close(conn)
    elif ending == CUT:
        worker.cut(conn)
    else:
        _shutdown(worker, conn, ending)


def _keep_alive(worker, conn) -> None:
    deadline = worker.now + worker.config.keepalive_timeout
    conn.deadline = deadline
    if deadline < worker.min_deadline:
        worker.min_deadline = deadline
    waiting = conn.readable or conn.parser.buffered  # a pipelined request is waiting
    worker.move(conn, WAIT_HEADERS, queue=waiting)
    if not waiting:
        conn.wait = READ


def _shutdown(worker, conn, ending: int) -> None:
    """A graceful end: the client sent nothing unread (the usual case), so ``close`` sends a
    FIN, not a reset; else shut down our side and linger for its EOF."""
    worker.uncount(conn)
    if done(_drain(worker, conn), wait_for_eof=ending != GRACEFUL):
        worker.close(conn)
        return
    try:
        conn.sock.shutdown(socket.SHUT_WR)
    except OSError:
        worker.close(conn)
        return
    conn.lingering = True  # still in logging, parked until the client's EOF
    worker.set_deadline(conn, LINGER_S)
    conn.wait = READ


def _linger(worker, conn) -> None:
    if conn.ending == ABORT or _drain(worker, conn) == EOF:
        worker.close(conn)
    else:
        conn.wait = READ


def _drain(worker, conn) -> int:
    """:func:`drain` into the worker's read buffer, noting when the socket ran dry (epoll is
    edge-triggered: it reports the socket again only when more arrives)."""
    found = drain(conn.sock, worker.rbuf)
    if found in (EMPTIED, NOTHING):
        conn.readable = False
    return found
