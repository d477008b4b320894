"""The four stages' threads (SEDA: a stage is an event queue, a handler and a thread pool).

- ``accept``: blocks in ``accept()``; a new connection is parked in the wait_headers epoll set
  (``EPOLLIN | EPOLLONESHOT``): that set is the queue into wait_headers.
- ``wait_headers``: blocks in ``epoll.poll()``; a connection reported readable is taken out of
  the parked set, read once without blocking and fed to the core parser.  A complete request
  gets its response from the core (status, head, or the file to send) and goes onto the
  send_data queue; an incomplete one is parked again.  It also times out parked connections
  and sweeps the lingering closes.
- ``send_data``: ``queue.get()``, then the head and body with blocking ``send``/``sendfile``
  (threaded/sending.py: one deadline per response); then onto the logging queue.
- ``logging``: ``queue.get()``, count and log the request, then close the connection or park it
  again for its next request.

Each thread counts in its own cell (no lock per request): requests it moved out of its stage,
blocking waits (a ``poll``, or a ``get`` that found its queue empty) and, in logging, requests.
"""

from __future__ import annotations

import socket
import time

from ..core import ParseError
from ..core.faults import report
from ..threaded.connection import RECV_BYTES, time_out, update_deadline
from ..threaded.sending import send

MOVED, SLEEPS, REQUESTS = range(3)  # a thread's cell
MAX_EVENTS = 512
EMFILE_BACKOFF_S = 0.05


def accept(server, cell: list[int]) -> None:
    listener = server.listener
    while True:
        try:
            sock, peer = listener.accept()
        except OSError:  # EMFILE; or the drain woke us (EINVAL, EAGAIN)
            if server.stopping:
                return
            time.sleep(EMFILE_BACKOFF_S)
            continue
        cell[MOVED] += 1
        server.admit_and_park(sock, peer)


def wait_headers(server, cell: list[int]) -> None:
    poll = server.epoll.poll
    wake_r = server.wake_r
    while not server.stopped:
        timeout = server.poll_timeout()
        cell[SLEEPS] += 1
        for fd, _ in poll(timeout, MAX_EVENTS):
            if fd == wake_r:
                server.read_wake()
                continue
            conn = server.unpark(fd)
            if conn is not None:
                decode(server, conn, cell, True)
        while (conn := server.next_ready()) is not None:
            decode(server, conn, cell, False)
        server.sweep()


def decode(server, conn, cell: list[int], read: bool) -> None:
    """Read what *conn* has sent (if *read*) and hand a complete request to send_data."""
    try:
        if read:
            try:
                data = conn.sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
            except BlockingIOError:  # a stale event (the fd was reused): nothing to read
                data = None
            except OSError:
                data = b""
            if data == b"":  # the client closed (or reset): nothing to answer
                server.release(conn)
                return
            if data:
                conn.parser.feed(data)
                update_deadline(conn, 0, server.args)  # a later request's header timeout
        try:
            request = conn.parser.next_request()
        except ParseError as exc:
            conn.request, conn.response = None, server.responder.error(exc.status)
            _hand_off(server, conn, cell)
            return
        if request is None:
            if conn.parser.closed:
                server.release(conn)
            elif time.monotonic() >= conn.deadline:  # a header trickling past its deadline
                time_out(conn, server.responder)
                server.release(conn)
            else:
                server.park(conn)
            return
        if server.draining:
            request.keep_alive = False  # answered with Connection: close
        try:
            response = server.responder.respond(request, conn.loopback)
        except Exception as exc:  # a bug past the core's own guard: a 500 for this request
            report(f"answering {request.target[:200]!r}", exc)
            response = server.responder.error(500, False, request)
        conn.request, conn.response = request, response
        _hand_off(server, conn, cell)
    except Exception as exc:  # a bug costs this connection only
        report("decoding a request", exc)
        server.release(conn)


def _hand_off(server, conn, cell: list[int]) -> None:
    cell[MOVED] += 1
    server.send_q.put(conn)  # wakes a sleeping send_data thread


def _items(queue, cell: list[int]):
    """A stage thread's work: what its queue hands it until the stop marker (None); a get()
    that finds the queue empty is counted as a sleep."""
    while True:
        if not queue.qsize():
            cell[SLEEPS] += 1
        conn = queue.get()
        if conn is None:
            return
        yield conn


def send_data(server, cell: list[int]) -> None:
    responder = server.responder
    for conn in _items(server.send_q, cell):
        response, fd = conn.response, -1
        try:
            if response.file is not None:  # opened before the head: a 403 can still be sent
                response, fd = responder.opened(response, conn.request, conn.loopback)
        except Exception as exc:
            report("opening a file", exc)
            response, fd = responder.error(500, False, conn.request), -1
        conn.response = response
        conn.ok = send(conn.sock, response, server, fd)
        cell[MOVED] += 1
        server.log_q.put(conn)


def logging(server, cell: list[int]) -> None:
    log = server.access_log
    for conn in _items(server.log_q, cell):
        cell[MOVED] += 1
        cell[REQUESTS] += 1
        request, response = conn.request, conn.response
        log.append((time.monotonic(), response.status if conn.ok else 0,
                    request.method if request else "-", request.target[:200] if request else "-"))
        try:
            server.finish(conn)
        except Exception as exc:  # a bug costs this connection only
            report("ending a request", exc)
            server.release(conn)
