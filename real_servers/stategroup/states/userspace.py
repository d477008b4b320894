"""userspace (kHTTPd: userspace.c): hand a request the static path cannot serve to the
user-space server on ``--userspace-port``.

kHTTPd only peeked at the header and then moved the whole connected socket to the user-space
server's accept queue, so that server read the request itself and owned the rest of the
connection.  A user-space worker cannot pass a socket to an unrelated process's accept queue,
so it does the equivalent: it connects to the user-space server, sends it the request byte for
byte as the client sent it (``RequestParser.detach()``), and relays the rest of the connection
both ways, without blocking, until the user-space server closes (a client's EOF is passed on as
a half-close).  If the user-space server cannot be reached the client gets a 502.
"""

from __future__ import annotations

import errno
import socket

from ..connection import Relay
from ..lifecycle import ABORT, ANY, GRACEFUL, USERSPACE

CHUNK = 65536  # bytes per direction per pass (and the most buffered per direction)


def run(worker) -> int:
    return worker.service(USERSPACE, _relay)


def _relay(worker, conn) -> int:
    return _start(worker, conn) if conn.relay is None else _pump(worker, conn)


def _start(worker, conn) -> int:
    first = conn.parser.detach()
    up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    up.setblocking(False)
    err = up.connect_ex(worker.userspace_addr)
    if err not in (0, errno.EINPROGRESS):
        up.close()
        return _bad_gateway(worker, conn)
    up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    relay = Relay(up, conn, first)
    relay.connected = relay.writable = err == 0
    conn.relay = relay
    worker.add_relay(relay)
    worker.set_deadline(conn, worker.config.keepalive_timeout)
    _pump(worker, conn)
    return 1


def _pump(worker, conn) -> int:
    """Move what can be moved in both directions; 1 if anything moved."""
    relay = conn.relay
    if not relay.connected:
        if not (relay.writable or relay.readable):
            conn.wait = ANY
            return 0
        if relay.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            return _bad_gateway(worker, conn)
        relay.connected = True
    try:
        moved = _relay_both_ways(conn, relay)
    except OSError:  # either side reset: nothing more can be relayed
        return _end(worker, conn, ABORT)
    if relay.up_eof and not relay.to_client:
        return _end(worker, conn, GRACEFUL)  # user space closed and everything was passed on
    if moved:
        conn.deadline = worker.now + worker.config.keepalive_timeout
        worker.queues[USERSPACE].append(conn)  # go round again until both sides would block
        return 1
    conn.wait = ANY
    return 0


def _relay_both_ways(conn, relay: Relay) -> bool:
    up_got, up_sent = _move(conn, relay, relay.to_up, relay.client_eof)
    relay.client_eof |= up_got < 0
    if relay.client_eof and not relay.to_up and not relay.up_shut:
        relay.sock.shutdown(socket.SHUT_WR)  # pass the client's half-close on
        relay.up_shut = True
    down_got, down_sent = _move(relay, conn, relay.to_client, relay.up_eof)
    relay.up_eof |= down_got < 0
    conn.relayed += down_sent
    return bool(up_got or up_sent or down_got or down_sent)


def _move(src, dst, buf: bytearray, src_eof: bool) -> tuple[int, int]:
    """One direction: read what *src* has into *buf* (if room), send *buf* on to *dst*.

    Returns (bytes read, -1 at EOF; bytes sent).
    """
    got = sent = 0
    if src.readable and not src_eof and len(buf) < CHUNK:
        got = _read(src, buf)
    if buf and dst.writable:
        sent = _write(dst, buf)
    return got, sent


def _read(side, buf: bytearray) -> int:
    """Append what *side* has to *buf*: bytes read, 0 if none now, -1 at EOF."""
    try:
        data = side.sock.recv(CHUNK)
    except BlockingIOError:
        side.readable = False
        return 0
    buf += data
    return len(data) or -1


def _write(side, buf: bytearray) -> int:
    """Send *buf* to *side*, dropping what was sent: bytes sent."""
    try:
        sent = side.sock.send(buf)
    except BlockingIOError:
        sent = 0
    if sent < len(buf):
        side.writable = False
    del buf[:sent]
    return sent


def _bad_gateway(worker, conn) -> int:
    worker.drop_relay(conn)
    worker.answer(conn, worker.responder.error(502, False, conn.request))
    return 1


def _end(worker, conn, ending: int) -> int:
    worker.drop_relay(conn)
    worker.end(conn, ending)
    return 1
