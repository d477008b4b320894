"""Instruments for checking the models against queueing theory with independent measurements.

A row's ``littles_L`` is the time average of the number in the system computed from the same
arrival and completion times as its mean response time, so Little's law can never fail there.
This module measures the model a second way, without changing the runner:

* :class:`ProbedRecorder` is a :class:`~arch_sim.models.recorder.Recorder` that also keeps

  - each accepted :class:`~arch_sim.models.network.Request` (its size and arrival time: the
    random draws the clients made) and the simulated time at which the server let go of it
    (called :meth:`~Recorder.complete`, which takes it out of ``in_system``);
  - a *sampler*: a SimPy process of its own that looks at ``in_system`` at the instants of a
    Poisson process (its own random stream) and keeps the values seen inside the measurement
    window.  Given how many samples fell into the window, Poisson instants are independent
    and uniform over it, so the samples are i.i.d. draws from the window's time distribution
    of the number in the system: their mean estimates the time-average L with standard error
    ``sd / sqrt(n)`` - with no assumption about the model, and without touching the
    per-request timestamps.

* :func:`probe_point` runs :func:`~arch_sim.models.simulate_point` with a probed recorder
  (its ``recorder_factory``); it returns the row and the probe.

* :func:`lindley_response` gives the response times of an exact FCFS single server on given
  arrival times and service times (Lindley's recursion), to hold a one-server model's
  per-request response times against.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import simpy

from arch_sim.models import runner
from arch_sim.models.network import Request
from arch_sim.models.params import ModelParams
from arch_sim.models.recorder import Recorder


class ProbedRecorder(Recorder):
    """A Recorder that keeps the accepted requests, their release times and Poisson samples
    of ``in_system`` taken inside the measurement window (``sample_rate`` per second)."""

    def __init__(self, env: simpy.Environment, warmup: int, requests: int,
                 max_connections: int, snapshot: Callable[[], dict[str, float]], *,
                 sample_rate: float, rng: random.Random) -> None:
        super().__init__(env, warmup, requests, max_connections, snapshot)
        self.accepted: list[Request] = []  # by request id
        self.released: list[float] = []  # when complete() was called, by request id
        self.samples: list[int] = []  # in_system at the sampling instants inside the window
        if sample_rate > 0:
            env.process(self._sampler(sample_rate, rng))

    def arrive(self, req: Request) -> bool:
        accepted = super().arrive(req)
        if accepted:
            self.accepted.append(req)
            self.released.append(math.nan)
        return accepted

    def complete(self, req: Request, t: float) -> None:
        self.released[req.id] = self.env.now
        super().complete(req, t)

    def _sampler(self, rate: float, rng: random.Random) -> Generator[simpy.Event, Any, None]:
        """Look at ``in_system`` at Poisson instants until the window closes."""
        env = self.env
        while self.t1 is None:
            yield env.timeout(rng.expovariate(rate))
            if self.t0 is not None and self.t1 is None:
                self.samples.append(self.in_system)

    def sampled_L(self) -> tuple[float, float]:
        """Mean number in the system over the window from the samples, and its standard error."""
        samples = np.asarray(self.samples, dtype=float)
        return float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(samples.size))

    def lambda_W(self, until: str = "done") -> float:
        """Little's lambda W from the window's request records.

        lambda: accepted window arrivals per second of window; W: their mean time from arrival
        to ``until`` - ``"done"`` (the response time: last byte at the client, as the row
        reports it) or ``"released"`` (when the server let go of the request).
        """
        if until not in ("done", "released"):
            raise ValueError(f"until must be 'done' or 'released', not {until!r}")
        window = np.asarray(self.window, dtype=bool)
        end = np.asarray(self.done if until == "done" else self.released)[window]
        mean_w = float(np.mean(end - np.asarray(self.arrived)[window]))
        return int(window.sum()) / (self.t1 - self.t0) * mean_w


def probe_point(arch: str, params: ModelParams | str, target_rps: float | None = None, *,
                sample_rate: float = 0.0, sample_seed: int = 0,
                **kwargs: Any) -> tuple[dict[str, Any], ProbedRecorder]:
    """:func:`~arch_sim.models.simulate_point` with a :class:`ProbedRecorder`: (row, probe).

    ``sample_rate`` samples of ``in_system`` per simulated second (0: none), drawn from
    ``random.Random(sample_seed)``; other arguments as for ``simulate_point``.
    """
    made: list[ProbedRecorder] = []

    def make(*args: Any) -> ProbedRecorder:
        made.append(ProbedRecorder(*args, sample_rate=sample_rate,
                                   rng=random.Random(sample_seed)))
        return made[-1]

    row = runner.simulate_point(arch, params, target_rps, recorder_factory=make, **kwargs)
    return row, made[0]


def lindley_response(arrived: np.ndarray, service: np.ndarray) -> np.ndarray:
    """Response times of a FCFS single server, empty before the first arrival.

    Customer n arrives at ``arrived[n]`` (non-decreasing) and needs ``service[n]``; its wait
    follows Lindley's recursion W[n+1] = max(0, W[n] + S[n] - A[n+1]) with A[n+1] the time
    between arrivals n and n+1, and its response time is W[n] + S[n].
    """
    gaps = np.diff(arrived, prepend=arrived[0])
    out = np.empty(len(arrived))
    wait = 0.0
    prev_service = 0.0
    for n, (gap, s) in enumerate(zip(gaps.tolist(), service.tolist(), strict=True)):
        wait = max(0.0, wait + prev_service - gap)
        out[n] = wait + s
        prev_service = s
    return out
