"""The measurement inside a model run: the :class:`Recorder` numbers requests, opens the window
after the warm-up requests, closes it after the measured ones, snapshots the server's counters
at both ends and turns the per-request times into throughput, latency and Little's law.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import simpy

from arch_sim.models.network import Request


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
        return self._admit(req, in_window, in_window)

    def _admit(self, req: Request, in_window: bool, counts: bool) -> bool:
        """Number ``req`` and keep its times - unless the server holds ``max_connections``
        already: then it is refused, an error if ``counts``."""
        if self.in_system >= self.max_connections:
            if counts:
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

    def closed(self, req: Request) -> None:
        """The server closed a connection on its client's end of file (none in this window:
        its connections stay open; :mod:`~arch_sim.models.bench_window` closes them)."""

    def delta(self) -> dict[str, float]:
        """What the server's counters moved by over the window."""
        return {k: self.snap1[k] - self.snap0[k] for k in self.snap0}

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
