"""Clients: who sends requests, when, for which files.

* **open** workload - new connections arrive as a Poisson process at the target rate, one
  request each (HTTP/1.0, as in kHTTPd's days).  Arrivals beyond ``max_connections`` are
  refused and counted as errors.
* **closed** workload - wrk-like: C connections; each sends a request, waits for the whole
  reply, thinks for an exponential time with mean C / target rate (0 when the target is
  unpaced) and sends the next.  With ``connection="keep-alive"`` the next request goes on the
  same connection; with ``"close"`` (HTTP/1.0, one request per connection) the client opens a
  new connection right after each reply and thinks *after* it is established, as wrk does
  [WRK-close]: the server holds an accepted, idle connection for the think time.

File sizes follow the SPECweb99 class mix (or a fixed or exponential size).  The wire - the
server's link, each connection's send buffer - is :mod:`arch_sim.models.network`; the
measurement window is :mod:`arch_sim.models.recorder`.

A request's bytes reach the server at ``Request.data_at``; the clients tell the server when
that happens (``server.data_ready(req)``), so a server waiting for them - a thread in recv(),
a worker asleep - is woken by the arrival, not by a timer of its own.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from arch_sim import specweb99
from arch_sim.models.clock import call_after, call_at, later
from arch_sim.models.network import KB, Connection, Link, Request
from arch_sim.models.params import NetworkParams
from arch_sim.models.recorder import Recorder

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
        call_after(self.env, max(0.0, t - self.env.now), self.server.data_ready, req)


class OpenClients(Clients):
    """Poisson arrivals of new connections, one request each."""

    def __init__(self, env: simpy.Environment, workload: Workload, net: NetworkParams,
                 rng: random.Random, server: Any, recorder: Recorder) -> None:
        super().__init__(env, workload, net, rng, server, recorder)
        self.rate = float(workload.target_rps)
        self.lag = net.request_lag_us * US
        call_after(env, rng.expovariate(self.rate), self.arrival)

    def arrival(self) -> None:
        """A new connection; its request follows after the lag, the next connection after
        Exp(1/rate) seconds (a chain of calls: no process, no generator)."""
        env, rng = self.env, self.rng
        now = env.now
        size = self.sizes.draw(rng)
        userspace = self.userspace_frac > 0 and rng.random() < self.userspace_frac
        req = Request(self.connection(), size, now, math.inf, True, userspace)
        if self.recorder.arrive(req):
            self.server.submit(req)
            self.data_at(req, now + self.lag)
        call_after(env, rng.expovariate(self.rate), self.arrival)


class Slot:
    """One of the client's C connections (wrk's ``connection``): the socket it has open now and
    the request it is working on."""

    __slots__ = ("conn", "req", "established", "closed")

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.req: Request | None = None  # the request of a connection it opened, not yet sent
        self.established = False  # the server's side of that connection exists
        self.closed = False  # the client is gone (a bench window's end): it sends no more


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
        self.connections = n = workload.connections
        rate = workload.target_rps
        self.think_mean = n / rate if rate else 0.0
        self.tick = workload.think_tick_ms * 1e-3
        self.loop = bool(self.tick and self.think_mean)  # wrk's event loop and its timers
        self.timers: list[tuple[int, int, Slot]] = []  # (due tick, order, slot)
        self._order = itertools.count()
        self._wake_at = math.inf  # when the loop's epoll_wait times out (inf: no timer)
        self._alarms: list[float] = []  # times of the wake-up calls queued for it
        self.client_cost = workload.client_us * US
        self.connect_cost = workload.client_connect_us * US
        self.client_wake = workload.client_wake_us * US
        self.client_free = 0.0  # when the client's thread is done with its last request
        recorder.on_complete = self.reply_received
        self._slot_of: dict[Request, Slot] = {}  # requests in flight -> their connection
        self.slots: list[Slot] = []
        self.start()

    def start(self) -> None:
        """The connections are there when the run starts (keep-alive: opened before it)."""
        self.slots = [Slot() for _ in range(self.connections)]
        for slot in self.slots:
            if self.close:
                self._connect(slot)
            else:
                slot.conn = self.connection()
            self._first(slot)
        if self.loop:
            self._loop_runs()

    def _first(self, slot: Slot) -> None:
        """Arm ``slot``'s first request: a think time (wrk delays the first request too)."""
        if self.loop:
            self._add_timer(slot)
        else:  # stagger the first requests so the connections do not start in lockstep
            first = self.think() if self.think_mean else self.rng.uniform(0.0, 1e-3)
            self._send_later(slot, first)

    def think(self) -> float:
        return self.rng.expovariate(1.0 / self.think_mean) if self.think_mean else 0.0

    def _connect(self, slot: Slot) -> None:
        """A new connection: the server can accept it one network hop from now; its request
        is not sent yet (a keep-alive connection's first: the server keeps it open after)."""
        rng = self.rng
        userspace = self.userspace_frac > 0 and rng.random() < self.userspace_frac
        conn = self.connection()
        req = Request(conn, self.sizes.draw(rng), self.env.now, math.inf, True, userspace,
                      closes=self.close)
        slot.conn, slot.req, slot.established = conn, req, False
        self._slot_of[req] = slot
        call_after(self.env, self.one_way, self._established, slot, req)

    def _established(self, slot: Slot, req: Request) -> None:
        slot.established = True
        if self.recorder.arrive(req):
            self.server.submit(req)

    def reply_received(self, req: Request, t: float) -> None:
        """The reply is in at time t: think, then send the next request.

        A keep-alive reply already in (t <= now: a server reports a reply after the CPU burst
        that sent it - a state-group pass, a worker's logging after its last send) is handled
        as of t: the client, on a CPU of its own, answered it while the server's burst went on,
        so its next request may already be at the server when the burst ends."""
        now = self.env._now
        if t <= now and not self.close:
            self._next(self._slot_of.pop(req), t)
            return
        call_after(self.env, max(0.0, t - now), self._reply_of, req)

    def _reply_of(self, req: Request) -> None:
        self._reply_in(self._slot_of.pop(req))

    def _reply_in(self, slot: Slot) -> None:
        if slot.closed:
            return
        if self.close:
            # wrk handles the reply on its one thread - woken first if it was idle - closes the
            # connection and opens the next (wrk.c response_complete -> reconnect_socket): the
            # server sees the new connection only after that [WRK-close]
            now = self.env.now
            woken = now + self.client_wake if self.client_free <= now else now
            self.client_free = max(woken, self.client_free) + self.connect_cost
            call_after(self.env, self.client_free - now, self._reconnected, slot)
            return
        self._next(slot)

    def _reconnected(self, slot: Slot) -> None:
        self._connect(slot)
        self._next(slot)

    def _next(self, slot: Slot, since: float | None = None) -> None:
        """Think, then send the next request on ``slot`` (the think time runs from ``since``,
        a reply's time already past, or from now)."""
        if slot.closed:
            return
        if self.loop:
            self._loop_runs(self._add_timer(slot))
        else:
            self._send_later(slot, self.think(), since)

    # -- wrk's event loop (with a tick) ------------------------------------------------------

    def _now_tick(self) -> int:
        return math.floor(self.env.now / self.tick + 1e-9)

    def _add_timer(self, slot: Slot) -> int:
        """Arm ``slot``'s think-time timer; the tick it is now."""
        ticks = max(0, math.floor(self.think() / self.tick + self.rng.random()))
        now_tick = self._now_tick()
        heapq.heappush(self.timers, (now_tick + ticks, next(self._order), slot))
        return now_tick

    def _loop_runs(self, now_tick: int | None = None) -> None:
        """The loop is awake: fire the due timers, then sleep until the next one is due.

        Each sleep has its own timeout (``_wake_at``), but a reply that wakes the loop early
        only moves it: one queued wake-up call (``_alarm``) at or before the timeout stands
        for every sleep, and re-queues itself for the current one if it fires too early."""
        if now_tick is None:
            now_tick = self._now_tick()
        timers = self.timers
        while timers and timers[0][0] <= now_tick:
            slot = heapq.heappop(timers)[2]
            if self.close:
                self._send_later(slot, 0.0)
            else:  # nothing else at this instant uses the client's thread (keep-alive)
                self._client_sends(slot)
        if not timers:
            self._wake_at = math.inf
            return
        wake = later(self.env, (timers[0][0] - now_tick) * self.tick)
        self._wake_at = wake
        if not self._alarms or self._alarms[0] > wake:
            self._set_alarm(wake)

    def _set_alarm(self, t: float) -> None:
        heapq.heappush(self._alarms, t)
        call_at(self.env, t, self._alarm)

    def _alarm(self) -> None:
        heapq.heappop(self._alarms)  # this call's own time: the earliest queued
        wake = self._wake_at
        if wake == self.env.now:  # the sleep timed out: no reply woke the loop meanwhile
            self._loop_runs()
        elif wake < math.inf and (not self._alarms or self._alarms[0] > wake):
            self._set_alarm(wake)

    # -- sending -------------------------------------------------------------------------

    def _send_later(self, slot: Slot, delay: float, since: float | None = None) -> None:
        """The request on ``slot`` is due ``delay`` s after ``since`` (default: now): the
        client's one thread sends it when it is free; its bytes reach the server one network
        hop later.  (Keep-alive) due already: the client sends it as of that time."""
        if since is not None and since + delay < self.env._now:
            self._client_sends(slot, since + delay)
        else:
            call_after(self.env, delay if since is None else since + delay - self.env._now,
                       self._client_sends, slot)

    def _client_sends(self, slot: Slot, due: float | None = None) -> None:
        """The client's thread sends the request when it is free (from ``due``, a time already
        past, or now).  Keep-alive: the request leaves ``client_us`` later and arrives one hop
        after that - one call at the time that chain of two timers would reach, or at once if
        that time has passed (its bytes were there before the server looked)."""
        if slot.closed:
            return
        now = self.env._now
        sent = max(now if due is None else due, self.client_free) + self.client_cost
        self.client_free = sent
        leaves = later(self.env, sent - now) if sent > now else sent
        if slot.req is None:  # on an open keep-alive connection
            if leaves + self.one_way <= now:
                self._arrive(slot, leaves + self.one_way)
            else:
                call_at(self.env, leaves + self.one_way, self._arrive, slot)
        elif sent > now:
            call_at(self.env, leaves, self._send, slot)
        else:
            self._send(slot)

    def _send(self, slot: Slot) -> None:
        """(close) The request of the connection the client opened leaves now."""
        now = self.env.now
        req = slot.req
        if slot.closed or req is None:
            return
        if not slot.established:  # a think time shorter than the handshake: wait for it
            call_after(self.env, self.one_way, self._send, slot)
            return
        if req.id < 0:  # the server refused the connection: the client opens another
            self._slot_of.pop(req, None)
            self._reply_in(slot)
            return
        if not self.close:
            slot.req = None  # sent: the connection carries keep-alive requests from now on
        self.recorder.sent(req, now)
        self.data_at(req, now + self.one_way)

    def _arrive(self, slot: Slot, at: float | None = None) -> None:
        """A keep-alive request's bytes are at the server (since ``at``, or now): it is
        submitted as it arrives."""
        now = self.env._now if at is None else at
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
