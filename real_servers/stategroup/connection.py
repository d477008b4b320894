"""One client connection of a worker, and the upstream side of a relayed one."""

from __future__ import annotations

import socket

from ..core import Request, RequestParser, Response
from .lifecycle import ACCEPT, KEEP


class Conn:
    """A client socket and everything the states know about its current request.

    ``readable``/``writable`` remember edges reported by epoll (the sockets are edge-triggered):
    they are cleared when a read or write finds the socket drained or full.  ``peer_shut``
    remembers that the client's FIN was reported: its edge has passed, so a short read must not
    be taken for a drained socket - the EOF behind the data is still to be read.
    """

    __slots__ = (
        "sock", "fd", "parser", "loopback", "state", "wait", "readable", "writable", "peer_shut",
        "deadline", "in_header", "counted", "ending", "lingering",
        "request", "response", "pending", "file_fd", "file_off", "file_end", "send_end",
        "relayed", "relay",
    )

    def __init__(self, sock: socket.socket, loopback: bool, counted: bool = True) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.parser = RequestParser()
        self.loopback = loopback
        self.state = ACCEPT  # the accept state moves it on
        self.wait = 0  # epoll events that requeue it while parked; 0 = queued
        self.readable = True  # a fresh connection may already hold its request
        self.writable = True
        self.peer_shut = False  # the client shut down its side: read on until EOF
        self.deadline = 0.0  # monotonic; only enforced while parked
        self.in_header = False  # part of a header block has arrived (header timeout runs)
        self.counted = counted  # counts against --max-connections
        self.ending = KEEP  # how logging ends it (lifecycle.KEEP ... ABORT)
        self.lingering = False  # closed for writing; reading until the client's EOF
        self.request: Request | None = None
        self.response: Response | None = None
        self.pending: memoryview | None = None  # unsent bytes of the head (and memory body)
        self.file_fd = -1  # the file being sent with sendfile, or -1
        self.file_off = 0
        self.file_end = 0
        self.send_end = 0.0  # the response's deadline (monotonic), 0 until it first waits
        self.relayed = 0  # bytes relayed from user space to the client (for the access log)
        self.relay: Relay | None = None


class Relay:
    """The upstream (user-space server) side of a connection handed to user space.

    Bytes from the client go to ``to_up``, bytes from upstream to ``to_client``; each direction
    ends with an EOF flag.
    """

    __slots__ = (
        "sock", "fd", "conn", "readable", "writable", "connected",
        "to_up", "to_client", "client_eof", "up_eof", "up_shut",
    )

    def __init__(self, sock: socket.socket, conn: Conn, first: bytes) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.conn = conn
        self.readable = False
        self.writable = False
        self.connected = False
        self.to_up = bytearray(first)
        self.to_client = bytearray()
        self.client_eof = False
        self.up_eof = False
        self.up_shut = False
