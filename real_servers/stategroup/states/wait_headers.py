"""wait_headers - "decode header" (kHTTPd: waitheaders.c, WaitForHeaders).

Reads what a connection has sent into its parser and decodes the next request: a static one
gets its response from the HTTP core and moves to ``send_data``; one the static path cannot
serve (another method, a query string) moves to ``userspace`` when a user-space server is
configured; malformed bytes get the core's 4xx and a close.  A connection with no complete
request parks until epoll reports more bytes; one request per connection per pass, so a
pipelining client cannot hog a pass.

A header block that is not complete by its deadline (``--header-timeout``) gets a 408; an idle
keep-alive connection past its deadline is closed.  When the worker drains, the idle ones are
closed at once - after a look (a non-blocking peek): a request may have arrived whose epoll
event comes later in the batch, or after the wake-up that said "stop", and it is answered.
"""

from __future__ import annotations

from ...core import ParseError, Request
from ...core.serving import pending
from ..lifecycle import ABORT, READ, RECV_BYTES, USERSPACE, WAIT_HEADERS

STATIC_METHODS = ("GET", "HEAD")


def run(worker) -> int:
    return worker.service(WAIT_HEADERS, _decode)


def expire(worker, conn) -> None:
    if conn.parser.buffered and not conn.parser.closed:
        worker.answer(conn, worker.responder.error(408))  # a header trickled in too slowly
    else:
        worker.end(conn, ABORT)  # an idle keep-alive connection


def stop(worker) -> None:
    for conn in list(worker.conns.values()):
        if conn.wait and conn.state == WAIT_HEADERS and not conn.parser.buffered:
            if pending(conn.sock):
                conn.wait = 0
                conn.readable = True
                worker.queues[WAIT_HEADERS].append(conn)
            else:
                worker.end(conn, ABORT)


def _decode(worker, conn) -> int:
    parser = conn.parser
    fed = parser.buffered  # (an empty buffer holds no request: skip the parser)
    while True:
        if fed:
            try:
                request = parser.next_request()
            except ParseError as exc:
                worker.answer(conn, worker.responder.error(exc.status))
                return 1
            if request is not None:
                return _route(worker, conn, request)
        if not conn.readable or parser.closed:
            return _park(worker, conn)
        try:
            data = conn.sock.recv(RECV_BYTES)  # (cheaper than recv_into plus a copy)
        except BlockingIOError:
            conn.readable = False
            fed = False
            continue
        except OSError:
            data = b""
        if not data:  # the client closed (or reset): nothing to answer
            worker.end(conn, ABORT)
            return 1
        if len(data) < RECV_BYTES and not conn.peer_shut:
            conn.readable = False  # drained: the next edge says when more arrives
        parser.feed(data)
        fed = True


def _route(worker, conn, request: Request) -> int:
    conn.in_header = False
    conn.request = request
    if worker.userspace_addr is not None and (
        request.query is not None or request.method not in STATIC_METHODS
    ):
        worker.move(conn, USERSPACE)
        return 1
    if worker.draining:
        request.keep_alive = False  # answer with Connection: close
    worker.answer(conn, worker.responder.respond(request, conn.loopback))
    return 1


def _park(worker, conn) -> int:
    if conn.parser.buffered and not conn.in_header:
        conn.in_header = True  # part of a header block: the header timeout starts
        worker.set_deadline(conn, worker.config.header_timeout)
    conn.wait = READ
    return 0
