"""A measured point as ``arch-sim bench`` measures it: windows that are each one wrk run.

The bench reads the server's counters before wrk starts and after it exits
(arch_sim/harness/measure.py), so everything one wrk run does to the server is in the window:

* at the start wrk opens all its connections at once, one ``connect()`` after another on its
  thread, and each connection waits its first think time before its first request - the server
  accepts every one of them inside the window (a keep-alive connection too);
* at the end wrk stops and exits, and its connections are closed one after another: the server
  reads end of file on each (a worker asleep in ``recv()`` on it is woken, an event loop finds
  it readable) and closes its side - also inside the window (docs/SOURCES.md [WRK-run]).

:class:`BenchWindows` repeats that: at a window's start the clients open their connections
(:meth:`WindowClients.open_all`), ``window_s`` later they stop and close them
(:meth:`WindowClients.stop_all`); when the server has read every end of file, and ``SETTLE_S``
later, the window's counters are read; ``GAP_S`` later the next window starts.  A point is
``count`` such windows; its per-request figures divide the counters summed over them by the
replies completed inside them, as wrk counts (:class:`WindowRecorder`).

A steady-state run (:class:`~arch_sim.models.recorder.Recorder`: connections open before the
window and never closed) leaves those accepts and closes out.  A design that blocks a thread
or process per connection pays two switches per connection for them (a wake-up in accept(),
one in recv() at the end of file): with 64 connections and 300 requests a window (100
requests/s for 3 s), 0.4 a request; one thread that takes a burst of them in a pass, next to
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import simpy

from arch_sim.models.clock import call_after, call_at
from arch_sim.models.network import Connection, Request
from arch_sim.models.recorder import Recorder
from arch_sim.models.wrk_clients import ClosedClients, Slot

#: the bench reads the counters after wrk has exited (a /server-status request): the server
#: has finished the bursts the last ends of file started and gone back to sleep by then
SETTLE_S = 0.01
#: between two windows the bench starts perf and waits before opening the next (at least
#: arch_sim.harness.measure.PERF_SETTLE_S, 0.15 s); the server is idle meanwhile
GAP_S = 0.15
#: wrk's CPU per connection is measured for connect and close together (``client_close_us``);
#: opening one is taken as half of it, closing one as the other half (an estimate: wrk's one
#: thread does both, so they cannot be told apart as a server's threads can)
CONNECT_SHARE = 0.5
#: a window whose ends of file the server has not all read this long after the clients closed
#: (a connection it refused) is read anyway
CLOSE_GRACE_S = 1.0


def windows_for(requests: int, target_rps: float, window_s: float) -> int:
    """How many windows of ``window_s`` at ``target_rps`` hold about ``requests`` replies
    (at least one)."""
    return max(1, math.ceil(requests / (target_rps * window_s)))


class WindowRecorder(Recorder):
    """Counters summed over the bench windows; the replies completed inside them.

    A request counts when its reply is complete inside a window (wrk counts the replies it
    read before it stopped); the counters are read at each window's start and after the
    server has closed the window's connections.
    """

    def __init__(self, env: simpy.Environment, max_connections: int,
                 snapshot: Callable[[], dict[str, float]], window_s: float) -> None:
        super().__init__(env, 0, 0, max_connections, snapshot)
        self.window_s = window_s
        self.spans: list[tuple[float, float]] = []  # (open, stop) of each window
        self.totals: dict[str, float] = {}
        self.on_closed: Callable[[Request], None] | None = None
        self._snap: dict[str, float] = {}

    def open_window(self) -> None:
        now = self.env.now
        self.spans.append((now, now + self.window_s))
        self._snap = self.snapshot()
        if self.t0 is None:
            self.t0 = now

    def close_window(self) -> None:
        end = self.snapshot()
        for key, value in end.items():
            self.totals[key] = self.totals.get(key, 0.0) + value - self._snap[key]
        self.t1 = self.env.now

    def arrive(self, req: Request) -> bool:
        """A request reaches the server; False if it is refused (too many connections: an
        error while wrk runs).  Whether it counts is decided when its reply is in."""
        self.offered += 1
        return self._admit(req, False, bool(self.spans) and self.env.now < self.spans[-1][1])

    def closed(self, req: Request) -> None:
        """The server closed its side of a connection whose client had closed it."""
        if req.id >= 0:  # an opened connection's request that was never sent
            self.in_system -= 1
        if self.on_closed is not None:
            self.on_closed(req)

    def complete(self, req: Request, t: float) -> None:
        """The reply's last byte reached the client at time t: in the window if wrk was still
        running then."""
        self.done[req.id] = t
        self.in_system -= 1
        start, stop = self.spans[-1]
        if start <= t < stop:
            self.window[req.id] = True
        if self.on_complete is not None:
            self.on_complete(req, t)

    def delta(self) -> dict[str, float]:
        return dict(self.totals)

    def stats(self) -> dict[str, float]:
        """Throughput and latency over the windows (wrk's duration: ``window_s`` each)."""
        span = self.window_s * len(self.spans)
        arrived = np.asarray(self.arrived)
        done = np.asarray(self.done)
        counted = np.asarray(self.window, dtype=bool)
        resp = done[counted] - arrived[counted]
        completions = int(resp.size)
        mean_w = float(resp.mean()) if resp.size else math.nan
        lam = completions / span
        # the time-average number in the system over the windows, from the counted requests
        littles_L = float(resp.sum() / span) if resp.size else 0.0
        return {
            "duration_s": span,
            "completions": completions,
            "rps": lam,
            "offered_rps": lam,
            "errors": self.errors,
            "mean_response_ms": mean_w * 1e3,
            "lat_p50_ms": float(np.percentile(resp, 50)) * 1e3 if resp.size else math.nan,
            "lat_p99_ms": float(np.percentile(resp, 99)) * 1e3 if resp.size else math.nan,
            "littles_L": littles_L,
            "littles_lambda_W": lam * mean_w if resp.size else 0.0,
            "littles_rel_err": 0.0,
        }


class BenchWindows:
    """Runs ``count`` bench windows of ``window_s`` seconds one after another."""

    def __init__(self, env: simpy.Environment, clients: Any, recorder: WindowRecorder,
                 count: int) -> None:
        self.env = env
        self.clients = clients
        self.recorder = recorder
        self.count = count
        self.done = 0
        self.fins = 0  # ends of file the clients sent in this window
        self.read = 0  # ... that the server has read and closed
        self.stopping = False
        self.generation = 0
        recorder.on_closed = self._closed
        # the server starts first: its threads are asleep waiting for work when wrk starts
        call_after(env, GAP_S, self._open)

    def _open(self) -> None:
        self.stopping = False
        self.fins = self.read = 0
        self.recorder.open_window()
        self.clients.open_all()
        call_after(self.env, self.recorder.window_s, self._stop)

    def _stop(self) -> None:
        self.stopping = True
        self.fins = self.clients.stop_all()
        self.generation += 1
        if self.read >= self.fins:
            self._settle()
        else:
            call_after(self.env, CLOSE_GRACE_S, self._grace, self.generation)

    def _closed(self, req: Request) -> None:
        self.read += 1
        if self.stopping and self.read == self.fins:
            self._settle()

    def _grace(self, generation: int) -> None:
        if self.stopping and generation == self.generation and self.read < self.fins:
            self._settle()

    def _settle(self) -> None:
        self.stopping = False
        call_after(self.env, SETTLE_S, self._end)

    def _end(self) -> None:
        self.recorder.close_window()
        self.done += 1
        if self.done < self.count:
            call_after(self.env, GAP_S, self._open)
        else:
            self.recorder.finished.succeed()


class WindowClients(ClosedClients):
    """wrk's connections as a bench window has them: opened at its start, closed at its end.

    ``connect_cost`` (wrk's CPU per connection, :data:`CONNECT_SHARE` of it each way) spaces
    the ``connect()`` calls at the start and the closes at the end: wrk makes them one after
    another on its thread, and its exit closes its sockets one after another.
    """

    def start(self) -> None:
        """Nothing is open before the first window (:class:`BenchWindows` opens them)."""
        self.spacing = CONNECT_SHARE * self.connect_cost

    def open_all(self) -> None:
        """wrk starts: a connection after another, each one's first request after a think."""
        self.slots = [Slot() for _ in range(self.connections)]
        for i, slot in enumerate(self.slots):
            call_after(self.env, i * self.spacing, self._open, slot)

    def _open(self, slot: Slot) -> None:
        if not slot.closed:
            self._connect(slot)
            self._next(slot)

    def _reconnected(self, slot: Slot, at: float | None = None) -> None:
        if not slot.closed:
            super()._reconnected(slot, at)

    def stop_all(self) -> int:
        """wrk stops and exits: each connection is closed, one after another, and the server
        reads its end of file one hop later - after the request in flight on it, if any (a
        connection per request: only one whose request was not sent yet).  Returns how many
        ends of file the server has to read."""
        self.timers.clear()
        self._wake_at = math.inf
        now, fins = self.env.now, 0
        for i, slot in enumerate(self.slots):
            slot.closed = True
            at = now + i * self.spacing + self.one_way
            req = slot.req
            if req is not None and req.data_at == math.inf:  # opened, its request not sent
                self._slot_of.pop(req, None)
                req.eof = req.closes = True
                self.data_at(req, at)
                fins += 1
            elif not self.close and slot.conn is not None:
                call_at(self.env, at, self._fin, slot.conn)
                fins += 1
        return fins

    def _fin(self, conn: Connection) -> None:
        self.server.submit(Request.end_of(conn, self.env.now))
