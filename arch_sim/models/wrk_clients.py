"""The closed workload's clients: wrk's C connections and its one event loop.

Each connection sends a request, waits for the whole reply, thinks for an exponential time with
mean C / target rate and sends the next (:class:`~arch_sim.models.workload.Workload`); with a
connection per request wrk reconnects right after a reply and thinks after the connection is
established [WRK-close].  :mod:`arch_sim.models.bench_window` opens and closes these
connections as one bench window does.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from typing import Any

import simpy

from arch_sim.models.clock import call_after, call_at, later
from arch_sim.models.network import Connection, Request
from arch_sim.models.params import NetworkParams
from arch_sim.models.recorder import Recorder
from arch_sim.models.workload import US, Clients, OpenClients, Workload


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

    def _connect(self, slot: Slot, at: float | None = None) -> None:
        """A new connection, opened now (or at ``at``, a time already past): the server can
        accept it one network hop later - at once, if that time has passed too; its request
        is not sent yet (a keep-alive connection's first: the server keeps it open after)."""
        rng = self.rng
        userspace = self.userspace_frac > 0 and rng.random() < self.userspace_frac
        conn = self.connection()
        opened = self.env._now if at is None else at
        req = Request(conn, self.sizes.draw(rng), opened, math.inf, True, userspace,
                      closes=self.close)
        slot.conn, slot.req, slot.established = conn, req, False
        self._slot_of[req] = slot
        if at is None:
            call_after(self.env, self.one_way, self._established, slot, req)
        elif opened + self.one_way <= self.env._now:
            self._established(slot, req)
        else:
            call_at(self.env, opened + self.one_way, self._established, slot, req)

    def _established(self, slot: Slot, req: Request) -> None:
        slot.established = True
        if self.recorder.arrive(req):
            self.server.submit(req)

    def reply_received(self, req: Request, t: float) -> None:
        """The reply is in at time t: think, then send the next request (with a connection per
        request: reconnect first).

        A reply already in (t <= now: a server reports a reply after the CPU burst that sent
        it - a state-group pass, a worker's logging after its last send) is handled as of t:
        the client, on a CPU of its own, answered it while the server's burst went on, so its
        next request - or its next connection - may already be at the server when the burst
        ends."""
        now = self.env._now
        if t <= now:
            slot = self._slot_of.pop(req)
            if self.close:
                self._reply_in(slot, t)
            else:
                self._next(slot, t)
            return
        call_after(self.env, t - now, self._reply_of, req)

    def _reply_of(self, req: Request) -> None:
        self._reply_in(self._slot_of.pop(req))

    def _reply_in(self, slot: Slot, at: float | None = None) -> None:
        """The reply on ``slot`` is in (at ``at``, a time already past, or now)."""
        if slot.closed:
            return
        if self.close:
            # wrk handles the reply on its one thread - woken first if it was idle - closes the
            # connection and opens the next (wrk.c response_complete -> reconnect_socket): the
            # server sees the new connection only after that [WRK-close].  A reply the server
            # reported after the burst that sent it is handled as of its own time, so the new
            # connection may be in the listen queue before the server's burst ends.
            now = self.env._now
            t = now if at is None else at
            woken = t + self.client_wake if self.client_free <= t else t
            self.client_free = max(woken, self.client_free) + self.connect_cost
            if self.client_free <= now:
                self._reconnected(slot, self.client_free)
            else:
                call_after(self.env, self.client_free - now, self._reconnected, slot)
            return
        self._next(slot)

    def _reconnected(self, slot: Slot, at: float | None = None) -> None:
        """The client opened ``slot``'s next connection (at ``at``, already past, or now);
        its think time runs from then."""
        self._connect(slot, at)
        self._next(slot, at)

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
            self._send(slot, sent)

    def _send(self, slot: Slot, at: float | None = None) -> None:
        """(close) The request of the connection the client opened leaves now (or at ``at``,
        a time already past: its bytes may be at the server already)."""
        now = self.env._now if at is None else at
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
