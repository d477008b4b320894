"""accept (kHTTPd: accept.c, AcceptConnections): take new connections off the listener.

New connections go straight to ``wait_headers`` (their request has often arrived already).
Beyond ``--max-connections`` (open connections over all workers) a connection gets a 503 with
``Connection: close`` and is closed cleanly.  While draining, the backlog is accepted once more
and the listener is closed.
"""

from __future__ import annotations

import socket

from ...core.status import is_loopback
from ..connection import Conn
from ..lifecycle import LINGER, WAIT_HEADERS

BATCH = 64  # connections accepted per pass (the other states get their turn)
STREAM = int(socket.SOCK_STREAM)


def run(worker) -> int:
    if not worker.accept_ready or worker.listener is None:
        return 0
    limit = 1 << 30 if worker.draining else BATCH
    listener = worker.listener
    family = listener.family.value
    moved = 0
    while moved < limit:
        try:
            # the socket module's accept() without its per-call enum conversions of the
            # listener's family and type: the new socket gets the listener's as plain ints
            # (docs/SOURCES.md [PY-socket-accept])
            fd, peer = listener._accept()
            sock = socket.socket(family, STREAM, 0, fd)
        except BlockingIOError:
            worker.accept_ready = False
            break
        except OSError as exc:  # EMFILE, ENOBUFS...: let the others run, retry next event
            worker.accept_ready = False
            worker.warn(f"accept failed: {exc}")
            break
        moved += 1
        _admit(worker, sock, peer)
    if worker.draining:
        worker.stop_listening()
    return moved


def _admit(worker, sock: socket.socket, peer: object) -> None:
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    over = worker.board.open_connections() >= worker.config.max_connections
    conn = Conn(sock, is_loopback(peer), counted=not over)
    worker.add(conn)
    if over:
        worker.answer(conn, worker.responder.error(503), LINGER)  # its request is never read
    else:
        conn.in_header = True  # the header timeout runs from the connect
        worker.set_deadline(conn, worker.config.header_timeout)
        worker.move(conn, WAIT_HEADERS)
