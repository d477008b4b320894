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

File sizes follow the SPECweb99 class mix (or a fixed or exponential size).  The closed
workload's clients - wrk's connections and its event loop - are
:mod:`arch_sim.models.wrk_clients`; the wire - the server's link, each connection's send
buffer - is :mod:`arch_sim.models.network`; the measurement window is
:mod:`arch_sim.models.recorder`.

A request's bytes reach the server at ``Request.data_at``; the clients tell the server when
that happens (``server.data_ready(req)``), so a server waiting for them - a thread in recv(),
a worker asleep - is woken by the arrival, not by a timer of its own.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import simpy

from arch_sim import specweb99
from arch_sim.models.clock import call_after
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
