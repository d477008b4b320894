"""Clients: who sends requests, when, for which files, and how fast they drain the replies.

* **open** workload - new connections arrive as a Poisson process at the target rate, one
  request each (HTTP/1.0, as in kHTTPd's days).  Arrivals beyond ``max_connections`` are
  refused and counted as errors.
* **closed** workload - wrk-like: C connections; each sends a request, waits for the whole
  reply, thinks for an exponential time with mean C / target rate (0 when the target is
  unpaced) and sends the next.  With ``connection="keep-alive"`` the next request goes on the
  same connection; with ``"close"`` (HTTP/1.0, one request per connection) the client opens a
  new connection right after each reply and thinks *after* it is established, as wrk does
  [WRK-close]: the server holds an accepted, idle connection for the think time.

File sizes follow the SPECweb99 class mix (or a fixed or exponential size).  Each connection
has a socket send buffer that its client drains at the client's bandwidth; every connection's
bytes also cross the server's one network link (``server_mbit_s``, a FIFO line: the device
queue [NET-qdisc]).  A server that writes faster than that blocks (thread) or moves on
(state-group) until there is room.

A request's bytes reach the server at ``Request.data_at``; the clients tell the server when
that happens (``server.data_ready(req)``), so a server waiting for them - a thread in recv(),
a worker asleep - is woken by the arrival, not by a timer of its own.

The :class:`Recorder` is the measurement: it numbers requests, opens the window after the
warm-up requests, closes it after the measured ones and snapshots the counters at both ends.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from arch_sim import specweb99
from arch_sim.models.params import NetworkParams

KB = 1024.0
US = 1e-6
#: how a closed workload's clients use connections: HTTP/1.1 keep-alive, or one per request
CONNECTION_MODES = ("keep-alive", "close")

class FileSizes:
    """Draws reply sizes in bytes: ``specweb99``, ``fixed:KB`` or ``exp:KB``."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        kind, _, arg = spec.partition(":")
        self.kind = kind
        if kind == "specweb99":  # the class mix, the same files the real servers serve
            self._cum = list(np.cumsum([share for _, _, share in specweb99.CLASSES]))
            self._sizes = [[float(base * i) for i in range(1, specweb99.FILES_PER_CLASS + 1)]
                           for _, base, _ in specweb99.CLASSES]
        elif kind in ("fixed", "exp"):
            try:
                self.kb = float(arg)
            except ValueError:
                msg = f"file sizes {spec!r}: expected {kind}:KB, e.g. {kind}:1"
                raise ValueError(msg) from None
            if self.kb <= 0:
                raise ValueError(f"file sizes {spec!r}: size must be positive")
        else:
            raise ValueError(f"unknown file sizes {spec!r}: use specweb99, fixed:KB or exp:KB")

    def draw(self, rng: random.Random) -> float:
        """One reply size in bytes."""
        if self.kind == "specweb99":
            cls = min(bisect.bisect_right(self._cum, rng.random()), len(self._sizes) - 1)
            return rng.choice(self._sizes[cls])
        if self.kind == "fixed":
            return self.kb * KB
        return rng.expovariate(1.0 / (self.kb * KB))

    def mean_bytes(self) -> float:
        """Expected reply size in bytes."""
        if self.kind == "specweb99":
            return specweb99.mean_bytes()
        return self.kb * KB


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
        while chunks and chunks[0][1] <= t:
            chunks.popleft()
        left = 0.0
        for begin, end, nbytes in chunks:
            if t <= begin:
                left += nbytes
            else:
                left += nbytes * (end - t) / (end - begin)
        return left

    def free(self, t: float) -> float:
        """Room in the send buffer at time t."""
        return self.sndbuf - self.buffered(t)

    def writable(self, t: float, left: float) -> float:
        """Bytes a write at time t may put in the buffer: 0 unless the socket is writable.

        As poll() and a blocking write() see it: writable once ``wake_free`` bytes (or all
        that is left to send) are free.
        """
        room = self.free(t)
        # a byte's tolerance: space_at() wakes a writer exactly when the room is there
        return min(left, room) if room + 1.0 >= min(self.wake_free, left) else 0.0

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
        excess = self.buffered(t) - (self.sndbuf - self.wake_free)
        if excess <= 0.0:
            return t
        for begin, end, nbytes in self.chunks:  # oldest first: they drain one after another
            start = max(t, begin)
            here = nbytes * (end - start) / (end - begin) if end > begin else 0.0
            if here >= excess:
                return start + (end - start) * excess / here if here else start
            excess -= here
        return self.chunks[-1][1]


class Request:
    """One HTTP request, from its arrival at the server to its last byte at the client."""

    __slots__ = ("id", "conn", "size", "left", "arrived", "data_at", "new_conn", "userspace",
                 "in_window", "reader", "looked")

    def __init__(self, conn: Connection, size: float, arrived: float, data_at: float,
                 new_conn: bool, userspace: bool = False) -> None:
        self.id = -1
        self.conn = conn
        self.size = size
        self.left = size  # bytes not yet written
        self.arrived = arrived
        self.data_at = data_at  # when the request's bytes are at the server (inf: not sent)
        self.new_conn = new_conn
        self.userspace = userspace
        self.in_window = False
        self.reader: Any = None  # who waits for its bytes (a thread in recv(), a worker)
        self.looked = False  # a state-group worker tried to read it before its bytes came


@dataclass(frozen=True)
class Workload:
    """What the clients do."""

    kind: str = "open"  # open | closed
    target_rps: float | None = None  # offered rate; closed + None = no think time
    connections: int = 64  # closed only
    file_sizes: str = "specweb99"
    userspace_frac: float = 0.0
    think_tick_ms: float = 0.0  # closed only: think times in whole ticks, one client loop
    client_us: float = 0.0  # closed only: the client's CPU per request (one request at a time)
    client_connect_us: float = 0.0  # close only: the client's CPU to close and reconnect
    client_wake_us: float = 0.0  # close only: how long a reply takes to wake an idle client
    connection: str = "keep-alive"  # closed only: keep-alive | close (a connection per request)

    def __post_init__(self) -> None:
        if self.kind not in ("open", "closed"):
            raise ValueError(f"workload must be open or closed, not {self.kind!r}")
        if self.connection not in CONNECTION_MODES:
            raise ValueError(f"connection must be one of {', '.join(CONNECTION_MODES)}, not "
                             f"{self.connection!r}")
        if self.kind == "open" and not (self.target_rps and self.target_rps > 0):
            raise ValueError("an open workload needs a positive target rate")
        if self.kind == "closed" and self.connections < 1:
            raise ValueError("a closed workload needs at least one connection")


class Recorder:
    """Numbers requests, keeps the measurement window and the per-request times."""

    def __init__(self, env: simpy.Environment, warmup: int, requests: int,
                 max_connections: int, snapshot: Callable[[], dict[str, float]]) -> None:
        self.env = env
        self.warmup = warmup
        self.requests = requests
        self.max_connections = max_connections
        self.snapshot = snapshot
        self.offered = 0
        self.arrived: list[float] = []
        self.done: list[float] = []
        self.window: list[bool] = []
        self.in_system = 0
        self.outstanding = 0  # window requests not yet complete
        self.errors = 0  # refused window arrivals
        self.t0: float | None = None
        self.t1: float | None = None
        self.snap0: dict[str, float] = {}
        self.snap1: dict[str, float] = {}
        self.finished = env.event()
        self.on_complete: Callable[[Request, float], None] | None = None

    def arrive(self, req: Request) -> bool:
        """A request reaches the server; False if it is refused (too many connections)."""
        i = self.offered
        self.offered += 1
        if i == self.warmup:
            self.t0 = self.env.now
            self.snap0 = self.snapshot()
        elif i == self.warmup + self.requests:
            self.t1 = self.env.now
            self.snap1 = self.snapshot()
            self._maybe_finish()
        in_window = self.warmup <= i < self.warmup + self.requests
        if self.in_system >= self.max_connections:
            if in_window:
                self.errors += 1
            return False
        req.id = len(self.arrived)
        req.in_window = in_window
        self.arrived.append(req.arrived)
        self.done.append(math.nan)
        self.window.append(in_window)
        self.in_system += 1
        if in_window:
            self.outstanding += 1
        return True

    def sent(self, req: Request, t: float) -> None:
        """The client sent the request at time t (after opening its connection earlier): its
        response time counts from here, as wrk's latency does."""
        req.arrived = t
        if req.id >= 0:
            self.arrived[req.id] = t

    def complete(self, req: Request, t: float) -> None:
        """The request's last byte reached the client at time t."""
        self.done[req.id] = t
        self.in_system -= 1
        if req.in_window:
            self.outstanding -= 1
            self._maybe_finish()
        if self.on_complete is not None:
            self.on_complete(req, t)

    def _maybe_finish(self) -> None:
        if self.t1 is not None and self.outstanding == 0 and not self.finished.triggered:
            self.finished.succeed()

    def stats(self) -> dict[str, float]:
        """Throughput, latency and Little's law over the window [t0, t1)."""
        t0, t1 = self.t0, self.t1
        span = t1 - t0
        arrived = np.asarray(self.arrived)
        done = np.asarray(self.done)
        window = np.asarray(self.window, dtype=bool)
        finished = ~np.isnan(done)
        resp = done[window & finished] - arrived[window & finished]
        completions = int(np.count_nonzero(finished & (done >= t0) & (done < t1)))
        # time-average number in the system over the window (each request's overlap)
        end = np.where(finished, done, self.env.now)
        overlap = np.clip(np.minimum(end, t1) - np.maximum(arrived, t0), 0.0, None)
        littles_L = float(overlap.sum() / span)
        lam = float(np.count_nonzero(window) / span)
        mean_w = float(resp.mean()) if resp.size else math.nan
        return {
            "duration_s": span,
            "completions": completions,
            "rps": completions / span,
            "offered_rps": self.requests / span,
            "errors": self.errors,
            "mean_response_ms": mean_w * 1e3,
            "lat_p50_ms": float(np.percentile(resp, 50)) * 1e3 if resp.size else math.nan,
            "lat_p99_ms": float(np.percentile(resp, 99)) * 1e3 if resp.size else math.nan,
            "littles_L": littles_L,
            "littles_lambda_W": lam * mean_w,
            "littles_rel_err": abs(littles_L - lam * mean_w) / littles_L if littles_L else 0.0,
        }


class Clients:
    """What both kinds of client share: the file mix, the network, who they send to."""

    def __init__(self, env: simpy.Environment, workload: Workload, net: NetworkParams,
                 rng: random.Random, server: Any, recorder: Recorder) -> None:
        self.env = env
        self.sizes = FileSizes(workload.file_sizes)
        self.userspace_frac = workload.userspace_frac
        self.net = net
        self.link = Link(net.server_mbit_s)
        self.rng = rng
        self.server = server
        self.recorder = recorder

    def connection(self) -> Connection:
        return Connection(self.net, self.link)

    def data_at(self, req: Request, t: float) -> None:
        """The request's bytes reach the server at time t: tell the server then."""
        req.data_at = t
        timer = self.env.timeout(max(0.0, t - self.env.now))
        timer.callbacks.append(lambda _ev: self.server.data_ready(req))


class OpenClients(Clients):
    """Poisson arrivals of new connections, one request each."""

    def __init__(self, env: simpy.Environment, workload: Workload, net: NetworkParams,
                 rng: random.Random, server: Any, recorder: Recorder) -> None:
        super().__init__(env, workload, net, rng, server, recorder)
        self.rate = float(workload.target_rps)
        self.lag = net.request_lag_us * US
        env.process(self.arrivals())

    def arrivals(self):
        """A new connection every Exp(1/rate) seconds; its request follows after the lag."""
        env, rng, rate = self.env, self.rng, self.rate
        while True:
            yield env.timeout(rng.expovariate(rate))
            now = env.now
            size = self.sizes.draw(rng)
            userspace = self.userspace_frac > 0 and rng.random() < self.userspace_frac
            req = Request(self.connection(), size, now, math.inf, True, userspace)
            if self.recorder.arrive(req):
                self.server.submit(req)
                self.data_at(req, now + self.lag)


class Slot:
    """One of the client's C connections (wrk's ``connection``): the socket it has open now and
    the request it is working on."""

    __slots__ = ("conn", "req", "established")

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.req: Request | None = None  # (close) the request of the connection it opened
        self.established = False  # (close) the server's side of that connection exists


class ClosedClients(Clients):
    """wrk-like clients: request, whole reply, think, next request.

    Keep-alive: the next request goes on the same connection.  Close (a connection per
    request): right after a reply the client opens a new connection, which the server can
    accept at once; the think time runs from then and the request follows it [WRK-close].

    With a tick (``think_tick_ms``: wrk's millisecond clock) the connections share one event
    loop, as a wrk thread's do (wrk's ae.c).  A think time is ``floor(x / tick + U)`` whole
    ticks (x exponential, U uniform: wrk's ``delay()`` rounds at random, so the mean is kept):
    a timer due on the tick edge that many ticks after the tick the reply came in.  A due timer
    fires only when the loop wakes - when a reply comes in, or when its ``epoll_wait`` times
    out.  The loop sleeps the whole ticks from the tick it is in to the next due edge, counted
    from when it goes to sleep (ae truncates its clock to the tick), so a burst sent on a
    timeout leaves up to a tick after its edge and bursts are not evenly spaced (measured: gaps
    of 0.3-1.6 ms between wrk's bursts at 10,000 requests/s).  A think time of 0 ticks fires
    at once.
    """

    def __init__(self, env: simpy.Environment, workload: Workload, net: NetworkParams,
                 rng: random.Random, server: Any, recorder: Recorder) -> None:
        super().__init__(env, workload, net, rng, server, recorder)
        self.one_way = net.one_way_us * US
        self.close = workload.connection == "close"
        n = workload.connections
        rate = workload.target_rps
        self.think_mean = n / rate if rate else 0.0
        self.tick = workload.think_tick_ms * 1e-3
        self.loop = bool(self.tick and self.think_mean)  # wrk's event loop and its timers
        self.timers: list[tuple[int, int, Slot]] = []  # (due tick, order, slot)
        self._order = itertools.count()
        self._naps = 0  # the loop's sleeps so far (a timeout belongs to one of them)
        self.client_cost = workload.client_us * US
        self.connect_cost = workload.client_connect_us * US
        self.client_wake = workload.client_wake_us * US
        self.client_free = 0.0  # when the client's thread is done with its last request
        recorder.on_complete = self.reply_received
        self._slot_of: dict[Request, Slot] = {}  # requests in flight -> their connection
        self.slots = [Slot() for _ in range(n)]
        for slot in self.slots:
            if self.close:
                self._connect(slot)
            else:
                slot.conn = self.connection()
            if self.loop:
                self._add_timer(slot)
            else:  # stagger the first requests so the connections do not start in lockstep
                first = self.think() if self.think_mean else rng.uniform(0.0, 1e-3)
                self._send_later(slot, first)
        if self.loop:
            self._loop_runs()

    def think(self) -> float:
        return self.rng.expovariate(1.0 / self.think_mean) if self.think_mean else 0.0

    def _connect(self, slot: Slot) -> None:
        """A new connection: the server can accept it one network hop from now; its request
        is not sent yet."""
        rng = self.rng
        userspace = self.userspace_frac > 0 and rng.random() < self.userspace_frac
        conn = self.connection()
        req = Request(conn, self.sizes.draw(rng), self.env.now, math.inf, True, userspace)
        slot.conn, slot.req, slot.established = conn, req, False
        self._slot_of[req] = slot
        timer = self.env.timeout(self.one_way)
        timer.callbacks.append(lambda _ev: self._established(slot, req))

    def _established(self, slot: Slot, req: Request) -> None:
        slot.established = True
        if self.recorder.arrive(req):
            self.server.submit(req)

    def reply_received(self, req: Request, t: float) -> None:
        """The reply is in at time t: think, then send the next request."""
        woken = self.env.timeout(max(0.0, t - self.env.now))
        woken.callbacks.append(lambda _ev, req=req: self._reply_in(self._slot_of.pop(req)))

    def _reply_in(self, slot: Slot) -> None:
        if self.close:
            # wrk handles the reply on its one thread - woken first if it was idle - closes the
            # connection and opens the next (wrk.c response_complete -> reconnect_socket): the
            # server sees the new connection only after that [WRK-close]
            now = self.env.now
            woken = now + self.client_wake if self.client_free <= now else now
            self.client_free = max(woken, self.client_free) + self.connect_cost
            timer = self.env.timeout(self.client_free - now)
            timer.callbacks.append(lambda _ev, slot=slot: self._reconnected(slot))
            return
        self._next(slot)

    def _reconnected(self, slot: Slot) -> None:
        self._connect(slot)
        self._next(slot)

    def _next(self, slot: Slot) -> None:
        """Think, then send the next request on ``slot``."""
        if self.loop:
            self._add_timer(slot)
            self._loop_runs()
        else:
            self._send_later(slot, self.think())

    # -- wrk's event loop (with a tick) ------------------------------------------------------

    def _now_tick(self) -> int:
        return math.floor(self.env.now / self.tick + 1e-9)

    def _add_timer(self, slot: Slot) -> None:
        ticks = max(0, math.floor(self.think() / self.tick + self.rng.random()))
        heapq.heappush(self.timers, (self._now_tick() + ticks, next(self._order), slot))

    def _loop_runs(self) -> None:
        """The loop is awake: fire the due timers, then sleep until the next one is due."""
        now_tick = self._now_tick()
        while self.timers and self.timers[0][0] <= now_tick:
            self._send_later(heapq.heappop(self.timers)[2], 0.0)
        self._naps += 1
        if self.timers:
            nap = self._naps
            timeout = self.env.timeout((self.timers[0][0] - now_tick) * self.tick)
            timeout.callbacks.append(lambda _ev: self._timed_out(nap))

    def _timed_out(self, nap: int) -> None:
        if nap == self._naps:  # no reply woke the loop meanwhile
            self._loop_runs()

    # -- sending -------------------------------------------------------------------------

    def _send_later(self, slot: Slot, delay: float) -> None:
        """The request on ``slot`` is due in ``delay`` s: the client's one thread sends it
        when it is free; its bytes reach the server one network hop later."""
        timer = self.env.timeout(delay)
        timer.callbacks.append(lambda _ev, slot=slot: self._client_sends(slot))

    def _client_sends(self, slot: Slot) -> None:
        sent = max(self.env.now, self.client_free) + self.client_cost
        self.client_free = sent
        if sent > self.env.now:
            timer = self.env.timeout(sent - self.env.now)
            timer.callbacks.append(lambda _ev, slot=slot: self._send(slot))
        else:
            self._send(slot)

    def _send(self, slot: Slot) -> None:
        now = self.env.now
        if not self.close:
            arrive = self.env.timeout(self.one_way)
            arrive.callbacks.append(lambda _ev, slot=slot: self._arrive(slot))
            return
        req = slot.req
        if not slot.established:  # a think time shorter than the handshake: wait for it
            timer = self.env.timeout(self.one_way)
            timer.callbacks.append(lambda _ev, slot=slot: self._send(slot))
            return
        if req.id < 0:  # the server refused the connection: the client opens another
            self._slot_of.pop(req, None)
            self._reply_in(slot)
            return
        self.recorder.sent(req, now)
        self.data_at(req, now + self.one_way)

    def _arrive(self, slot: Slot) -> None:
        """A keep-alive request's bytes are at the server: it is submitted as it arrives."""
        now = self.env.now
        rng = self.rng
        userspace = self.userspace_frac > 0 and rng.random() < self.userspace_frac
        req = Request(slot.conn, self.sizes.draw(rng), now, now, False, userspace)
        if self.recorder.arrive(req):
            self._slot_of[req] = slot
            self.server.submit(req)


def make_clients(env: simpy.Environment, workload: Workload, net: NetworkParams,
                 rng: random.Random, server: Any,
                 recorder: Recorder) -> OpenClients | ClosedClients:
    """The clients of a workload, already started."""
    cls = OpenClients if workload.kind == "open" else ClosedClients
    return cls(env, workload, net, rng, server, recorder)
