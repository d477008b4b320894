"""The wire between the model's server and its clients: the server's one network link, each
TCP connection's send buffer, and the requests that travel on them.

Every connection's bytes cross the server's link (``server_mbit_s``, a FIFO line: the device
queue [NET-qdisc]) and are drained by their client at the client's bandwidth; a server that
writes faster than that blocks (thread) or moves on (state-group) until there is room.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from arch_sim.models.params import NetworkParams

KB = 1024.0
#: bytes added to the writable level when bounding when it is reached (:meth:`Connection.
#: write_room`): far above the rounding of a buffer's byte count (~1e-10 bytes) and of a
#: crossing time (at most ~1e-5 bytes' worth at the client's rate for a clock of 1e4 s)
BOUND_MARGIN = 1e-3


class Link:
    """The server's network interface: one line every connection's replies cross in the order
    they were written (a FIFO device queue).  ``rate`` inf: no shared bottleneck."""

    __slots__ = ("rate", "free_at")

    def __init__(self, mbit_s: float = math.inf) -> None:
        self.rate = mbit_s * 1e6 / 8.0  # bytes per second
        self.free_at = 0.0  # when the line has sent everything queued on it

    def transmit(self, nbytes: float, t: float) -> tuple[float, float]:
        """Queue ``nbytes`` at time t: (when they start leaving, when the last one has left)."""
        if self.rate == math.inf:
            return t, t
        start = max(t, self.free_at)
        self.free_at = start + nbytes / self.rate
        return start, self.free_at


class Connection:
    """A TCP connection: a send buffer, drained by the link and the client.

    Each write is a chunk ``[begin, end, bytes]`` delivered to the client at an even pace
    between ``begin`` and ``end``: it begins when the link starts sending it and the connection's
    earlier chunks are through, and takes at least its bytes at the client's rate and the
    link's (the link is free for the next chunk once it has sent this one).  The chunks are
    kept analytically, so no simulation event is spent on draining.
    """

    __slots__ = ("rate", "sndbuf", "wake_free", "chunks", "link", "owner", "handler", "pending",
                 "waiting", "accepted", "armed")

    def __init__(self, net: NetworkParams, link: Link | None = None) -> None:
        self.rate = net.client_mbit_s * 1e6 / 8.0  # bytes per second
        self.sndbuf = net.sndbuf_kb * KB
        self.wake_free = min(self.sndbuf * net.wake_free_frac, self.sndbuf)
        self.chunks: deque[list[float]] = deque()  # [begin, end, bytes], oldest first
        self.link = link if link is not None else Link()
        self.owner: Any = None  # state-group worker owning it (keep-alive)
        self.handler: Any = None  # thread serving it (thread per connection, keep-alive)
        self.pending: deque[Request] = deque()  # keep-alive requests not yet picked up
        self.waiting = False  # its thread sleeps in recv() (thread per connection, Python)
        self.accepted = False  # (dispatcher) taken off the listen queue and registered
        self.armed = False  # (dispatcher) registered in epoll, waiting for its request

    def buffered(self, t: float) -> float:
        """Bytes still in the send buffer at time t."""
        chunks = self.chunks
        self.drop_drained(t)
        left = 0.0
        for begin, end, nbytes in chunks:
            if t <= begin:
                left += nbytes
            else:
                left += nbytes * (end - t) / (end - begin)
        return left

    def drop_drained(self, t: float) -> None:
        """Forget the chunks the client has read by time t (what every query at t does first:
        a query at an earlier time afterwards no longer counts them)."""
        chunks = self.chunks
        while chunks and chunks[0][1] <= t:
            chunks.popleft()

    def free(self, t: float) -> float:
        """Room in the send buffer at time t."""
        return self.sndbuf - self.buffered(t)

    def writable(self, t: float, left: float) -> float:
        """Bytes a write at time t may put in the buffer: 0 unless the socket is writable.

        As poll() and a blocking write() see it: writable once ``wake_free`` bytes (or all
        that is left to send) are free.
        """
        return self.write_room(t, left)[0]

    def write_room(self, t: float, left: float) -> tuple[float, float]:
        """(:meth:`writable` at time t; when it finds no room, a lower bound on when it may
        next find some - else -inf).  Until the bound a writer can skip the exact check.

        The chunks already written drain on a fixed schedule (a later write only appends a
        chunk, and the link's later traffic only delays later chunks), so the buffer's byte
        count falls no faster than they do and only rises with writes.  A write needs it at or
        below ``sndbuf - min(wake_free, left) + 1``; the time the chunks bring it down to that
        level plus :data:`BOUND_MARGIN` bytes comes before that, with room to spare for
        rounding.  The bound holds while ``left`` does not change (it only falls, with writes).
        """
        held = self.buffered(t)
        room = self.sndbuf - held
        need = min(self.wake_free, left)
        # a byte's tolerance: space_at() wakes a writer exactly when the room is there
        if room + 1.0 >= need:
            return min(left, room), -math.inf
        return 0.0, self._falls_to(self.sndbuf - need + 1.0 + BOUND_MARGIN, t, held)

    def _falls_to(self, level: float, t: float, held: float | None = None) -> float:
        """When the chunks written so far bring the buffer down to ``level`` bytes (t if it
        is there already); ``held``: the bytes in it at t, if known."""
        excess = (self.buffered(t) if held is None else held) - level
        if excess <= 0.0:
            return t
        for begin, end, nbytes in self.chunks:  # oldest first: they drain one after another
            start = max(t, begin)
            here = nbytes * (end - start) / (end - begin) if end > begin else 0.0
            if here >= excess:
                return start + (end - start) * excess / here if here else start
            excess -= here
        return self.chunks[-1][1]

    def write(self, nbytes: float, t: float) -> None:
        """The server put nbytes into the buffer at time t."""
        if nbytes <= 0.0:
            return
        start, sent = self.link.transmit(nbytes, t)
        chunks = self.chunks
        begin = max(start, chunks[-1][1]) if chunks else start
        end = max(begin + nbytes / self.rate, sent)
        chunks.append([begin, end, nbytes])

    def drained_at(self, t: float) -> float:
        """When the client has read everything written up to time t."""
        return max(t, self.chunks[-1][1]) if self.chunks else t

    def space_at(self, t: float) -> float:
        """When a writer blocked at time t is woken (``wake_free`` bytes free again)."""
        return self._falls_to(self.sndbuf - self.wake_free, t)


class Request:
    """One HTTP request, from its arrival at the server to its last byte at the client.

    ``opens``: the request comes on a new connection, which the server accepts first;
    ``closes``: the server closes the connection after the reply (HTTP/1.0, a connection per
    request; both default to ``opens``).  A keep-alive connection's first request opens it and
    does not close it.  ``eof`` marks no request at all: the client closed the connection, so
    the server's read returns 0 bytes and it closes its side (:meth:`Request.end_of`).
    """

    __slots__ = ("id", "conn", "size", "left", "arrived", "data_at", "opens", "closes", "eof",
                 "userspace", "in_window", "reader", "looked", "ready_at")

    def __init__(self, conn: Connection, size: float, arrived: float, data_at: float,
                 opens: bool, userspace: bool = False, closes: bool | None = None) -> None:
        self.id = -1
        self.conn = conn
        self.size = size
        self.left = size  # bytes not yet written
        self.arrived = arrived
        self.data_at = data_at  # when the request's bytes are at the server (inf: not sent)
        self.opens = opens
        self.closes = opens if closes is None else closes
        self.eof = False
        self.userspace = userspace
        self.in_window = False
        self.reader: Any = None  # who waits for its bytes (a thread in recv(), a worker)
        self.looked = False  # a state-group worker tried to read it before its bytes came
        #: (state-group) no write can go out before this time (Connection.write_room()); inf:
        #: its reply is all written
        self.ready_at = -math.inf

    @classmethod
    def end_of(cls, conn: Connection, t: float) -> Request:
        """The client's FIN on ``conn``, at the server at time t: read as end of file."""
        fin = cls(conn, 0.0, t, t, False, closes=True)
        fin.eof = True
        return fin
