"""send_data (kHTTPd: datasending.c, DataSending): write responses without blocking.

A response from the in-memory cache goes out in one ``send`` of its ``wire`` (a reused reply:
head and body joined once) or one ``sendmsg([head, body])``; a large file is
opened first (so a file that may not be read is a 403, not a 200 head and then a close), then
its head (``MSG_MORE``) and ``os.sendfile``.  Each connection gets at most ``--send-chunk``
bytes per pass (kHTTPd: 16 KB), so one big file cannot starve the rest; a connection whose
socket buffer is full parks until epoll reports it writable.  A finished response moves to
``logging``.

Each response has one deadline, ``--send-timeout`` from the first time it could not be sent at
once (a response sent in one call never looks at the clock): a client that reads a little now
and then does not push it back.  A response past it, or one that fails (reset, the file shrank),
is cut - closed with a reset, so the client can tell.
"""

from __future__ import annotations

import os
import socket

from ..lifecycle import CUT, SEND_DATA, WRITE

MSG_MORE = socket.MSG_MORE


def run(worker) -> int:
    return worker.service(SEND_DATA, _send)


def expire(worker, conn) -> None:
    worker.end(conn, CUT)  # past its response's deadline: a client that stopped reading


def _send(worker, conn) -> int:
    try:
        if conn.pending is None and conn.file_fd < 0:  # a fresh response
            return _start(worker, conn, conn.response)
        return _send_rest(worker, conn)
    except OSError:  # reset, broken pipe, the file shrank: the response cannot finish
        _finish(worker, conn, CUT)
        return 1


def _start(worker, conn, response) -> int:
    conn.send_end = 0.0  # no deadline until it first has to wait
    if response.file is None:
        wire = response.wire
        if len(response.body) <= worker.config.send_chunk:
            if wire is not None:  # a reused reply: head and body joined once
                return _send_buffer(worker, conn, wire)
            return _send_memory(worker, conn, response.head, response.body)
        conn.pending = memoryview(response.head + response.body if wire is None else wire)
        return _send_rest(worker, conn)
    response, fd = worker.responder.opened(response, conn.request, conn.loopback)
    conn.response = response
    if fd < 0:  # the file cannot be opened: its error page instead
        return _start(worker, conn, response)
    conn.file_fd = fd
    conn.file_off = 0
    conn.file_end = response.length
    conn.pending = memoryview(response.head)
    return _send_rest(worker, conn)


def _send_buffer(worker, conn, data: bytes) -> int:
    """A whole response in one buffer, in one system call: finished, or the rest pending."""
    try:
        sent = conn.sock.send(data)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        worker.end(conn, conn.ending)  # nothing pending, no file: finished
        return 1
    conn.pending = memoryview(data)[sent:]
    return _park(worker, conn, sent)


def _send_memory(worker, conn, head: bytes, body: bytes) -> int:
    """Head and cached body in one system call (``sendmsg``: no copy to join them)."""
    if not body:
        return _send_buffer(worker, conn, head)
    try:
        sent = conn.sock.sendmsg((head, body))
    except BlockingIOError:
        sent = 0
    if sent == len(head) + len(body):
        worker.end(conn, conn.ending)  # nothing pending, no file: finished
        return 1
    conn.pending = memoryview(head + body)[sent:]
    return _park(worker, conn, sent)


def _send_rest(worker, conn) -> int:
    """Continue a response: unsent head/body bytes, then the file; at most one chunk."""
    budget = worker.config.send_chunk
    pending = conn.pending
    if pending is not None:
        flags = MSG_MORE if conn.file_fd >= 0 else 0
        want = min(len(pending), budget)
        try:
            sent = conn.sock.send(pending[:want], flags)
        except BlockingIOError:
            return _park(worker, conn, 0)
        if sent < len(pending):
            conn.pending = pending[sent:]
            return _again(worker, conn) if sent == want else _park(worker, conn, sent)
        conn.pending = None
        budget -= sent
    if conn.file_fd >= 0 and budget > 0:
        want = min(budget, conn.file_end - conn.file_off)
        try:
            sent = os.sendfile(conn.fd, conn.file_fd, conn.file_off, want)
        except BlockingIOError:
            return _park(worker, conn, 0)
        if sent == 0:
            raise OSError("file shrank while being sent")
        conn.file_off += sent
        if conn.file_off < conn.file_end:
            return _again(worker, conn) if sent == want else _park(worker, conn, sent)
        os.close(conn.file_fd)
        conn.file_fd = -1
    if conn.pending is None and conn.file_fd < 0:
        _finish(worker, conn, conn.ending)
        return 1
    return _again(worker, conn)


def _again(worker, conn) -> int:
    """Sent a whole chunk and more is left: go round once more next pass (unless past the
    response's deadline: a client reading fast enough never gets there)."""
    if not conn.send_end:
        _start_clock(worker, conn)
    elif worker.now >= conn.send_end:
        _finish(worker, conn, CUT)
        return 1
    worker.queues[SEND_DATA].append(conn)
    return 1


def _park(worker, conn, sent: int) -> int:
    """The socket buffer is full: wait for epoll to report it writable (the sweep cuts it
    if its deadline passes first)."""
    conn.writable = False
    conn.wait = WRITE
    if not conn.send_end:
        _start_clock(worker, conn)
    return 1 if sent else 0


def _start_clock(worker, conn) -> None:
    worker.set_deadline(conn, worker.config.send_timeout)
    conn.send_end = conn.deadline


def _finish(worker, conn, ending: int) -> None:
    if conn.file_fd >= 0:
        os.close(conn.file_fd)
        conn.file_fd = -1
    conn.pending = None
    worker.end(conn, ending)
