"""Writing one response with blocking calls, under one wall-clock deadline.

A pool thread (or a connection's own thread) blocks in ``send``/``sendfile`` while the client's
socket buffer is full.  ``SO_SNDTIMEO`` (set once per connection) makes a blocked call return
after ``SEND_POLL_S``, so the thread looks at its deadlines at least that often: the
response's own (``--send-timeout`` from its first short write - a response written in one call,
the common case, never looks at the clock) and the drain's (SIGTERM + ``--drain-timeout``).
A per-call socket timeout alone is no deadline: a client that reads a little now and then makes
every call return some progress, and ``sendfile`` held a pool thread for minutes that way.

A response that cannot be finished - past a deadline, the client gone, the file shrunk, a bug -
is *cut*: ``SO_LINGER`` 0, so closing the socket sends a reset, and the client can tell a cut
response from a whole one without counting bytes.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Protocol

from ..core import Response
from ..core.faults import report

SEND_POLL_S = 0.5  # SO_SNDTIMEO: how late past a deadline a blocked thread notices it
MSG_MORE = socket.MSG_MORE
_RESET = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset

now = time.monotonic


class Limits(Protocol):
    """What a send needs to know of its server (the server object itself)."""

    send_timeout: float
    drain_end: float  # monotonic time the drain ends; infinity until SIGTERM


class Cut(Exception):
    """The response cannot be finished in time (or at all)."""


def send(sock: socket.socket, response: Response, limits: Limits, fd: int = -1) -> bool:
    """Write *response* (and the open file *fd*, which is closed) with blocking calls.

    False if it could not be written whole; the socket is then set to reset when closed.
    """
    try:
        if fd >= 0:
            return _send_file(sock, response, fd, limits)
        wire = response.wire  # a reused reply: head and body joined once, one send
        if wire is None:
            wire = response.head
            body = response.body
            if body:
                try:
                    sent = sock.sendmsg((wire, body))
                except BlockingIOError:  # SO_SNDTIMEO passed with nothing sent
                    sent = 0
                if sent < len(wire) + len(body):
                    rest = memoryview(wire + body)[sent:]
                    _write(sock, rest, 0, now() + limits.send_timeout, limits)
                return True
        try:
            sent = sock.send(wire)
        except BlockingIOError:
            sent = 0
        if sent < len(wire):
            _write(sock, memoryview(wire)[sent:], 0, now() + limits.send_timeout, limits)
        return True
    except (OSError, Cut):  # reset, broken pipe, a deadline passed, the file shrank
        cut(sock)
        return False
    except Exception as exc:  # a bug: this response is cut, the thread carries on
        report("sending a response", exc)
        cut(sock)
        return False


def cut(sock: socket.socket) -> None:
    """Make the coming close of *sock* send a reset (the response on it is incomplete)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
    except OSError:
        pass


def _write(sock: socket.socket, data: memoryview, flags: int, deadline: float,
           limits: Limits) -> None:
    while data:
        t = now()
        if t >= deadline or t >= limits.drain_end:
            raise Cut("deadline")
        try:
            data = data[sock.send(data, flags) :]
        except BlockingIOError:  # blocked SEND_POLL_S with nothing sent: look at the clock
            continue


def _send_file(sock: socket.socket, response: Response, fd: int, limits: Limits) -> bool:
    deadline = now() + limits.send_timeout
    try:
        _write(sock, memoryview(response.head), MSG_MORE, deadline, limits)
        out, offset, length = sock.fileno(), 0, response.length
        while offset < length:
            try:
                n = os.sendfile(out, fd, offset, length - offset)
            except BlockingIOError:
                n = -1
            if n == 0:
                raise Cut("the file shrank while being sent")
            if n > 0:
                offset += n
            if offset < length:
                t = now()
                if t >= deadline or t >= limits.drain_end:
                    raise Cut("deadline")
        return True
    finally:
        os.close(fd)
