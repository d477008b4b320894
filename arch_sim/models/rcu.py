"""RCU's grace-period kernel thread on the server's CPU: what closing connections costs that CPU
after the server has closed them.

A closed socket's memory is freed after an RCU grace period (call_rcu), and on today's kernels a
kernel thread (``rcu_preempt``; ``rcu_sched`` without preemptible RCU) drives the grace
periods: it is woken when one is requested and then by a timer every ``jiffies_till_next_fqs``
jiffies until every CPU has passed through a quiescent state [RCU-gp-kthread].  Measured on
this host at 100 requests/s with a connection per request, it switches in and out of the
server's otherwise idle CPU 1.0-1.5 times per request - with keep-alive connections almost
never (benchmarks/cpu0_switches.py; docs/FIDELITY.md, "Switches on the server's CPU at low
load").  It is none of the server's own switches, but every one is a switch of the CPU's.

:class:`GracePeriods` models it: the first connection closed while no grace period runs starts
one of ``gp_ms``; one closed during a grace period asks for the next, which starts when this
one ends (its callback must wait a whole grace period); the thread, a task of its own pinned
to the server's CPU and not counted as the server's, is woken ``runs_per_gp`` times in each,
spread over it, and runs ``run_us`` each time.  The three inputs come from
:mod:`arch_sim.rcubench` (a step of ``arch-sim calibrate``; ``benchmarks/rcu_grace_periods.py``
runs it alone), which closes bare loopback TCP connections on the server's CPU at rates from 25
to 1,600/s with no HTTP server at all, into ``NAME.rcu.json`` beside the preset's TOML file; a
preset without that file (the period kernels: RCU came with Linux 2.5) has no such thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import simpy

from arch_sim.models.params import PRESET_DIR
from arch_sim.models.scheduler import Scheduler
from arch_sim.models.tasks import Task

US = 1e-6


@dataclass(frozen=True)
class RcuParams:
    """The grace-period thread's inputs (see the module docstring)."""

    runs_per_gp: float  # times the thread runs in one grace period
    gp_ms: float  # a grace period's length
    run_us: float  # the thread's CPU per run
    source: str  # where they were measured


def rcu_path(preset: Path) -> Path:
    """Where a preset file's grace-period inputs belong: ``NAME.rcu.json`` beside ``NAME.toml``
    (``arch-sim calibrate`` writes them there)."""
    return preset.with_name(preset.stem + ".rcu.json")


def rcu_file(preset: str, source: str = "") -> Path | None:
    """Where a preset's inputs are: beside its TOML file ``source`` (:func:`rcu_path`), else
    ``presets/PRESET.rcu.json``; None if neither exists."""
    for path in ([rcu_path(Path(source))] if source else []) + [PRESET_DIR / f"{preset}.rcu.json"]:
        if path.exists():
            return path
    return None


def load_rcu(preset: str, source: str = "") -> RcuParams | None:
    """The inputs measured for preset ``preset`` (see :func:`rcu_file`), or None."""
    path = rcu_file(preset, source)
    if path is None:
        return None
    data = json.loads(path.read_text())
    return RcuParams(float(data["runs_per_gp"]), float(data["gp_ms"]), float(data["run_us"]),
                     f"{path.name}: {data.get('command', '')} ({data.get('when', '')})")


class GracePeriods:
    """The grace-period thread on ``cpu``, woken while closed connections wait for a grace
    period.  :meth:`closed` is called for every connection the server closes."""

    def __init__(self, env: simpy.Environment, sched: Scheduler, params: RcuParams,
                 cpu: Any) -> None:
        self.env = env
        self.sched = sched
        self.gp_s = params.gp_ms / 1000.0
        self.runs_per_gp = params.runs_per_gp
        self.run_s = params.run_us * US
        self.task = Task("rcu_gp", counted=False, pin=cpu, code="rcu_gp")
        self.running = False  # a grace period is in progress
        self.requested = False  # a callback waits for the next one
        self.periods = 0
        self._credit = 0.0  # runs owed: a fractional runs_per_gp spread over periods
        self.started = False  # the thread is created at its first run: a run with no closed
        # connection has no such task at all, and schedules exactly as it would without it

    def closed(self, *_: object) -> None:
        """A connection was closed: its socket waits for a grace period."""
        if self.running:
            self.requested = True
        else:
            self.running = True
            self.env.process(self._period())

    def _period(self) -> Generator[simpy.Event, Any, None]:
        while True:
            self.periods += 1
            self._credit += self.runs_per_gp
            runs = int(self._credit)
            self._credit -= runs
            spacing = self.gp_s / max(runs, 1)
            for _ in range(runs):  # the request's wake-up, then the timer's, over the period
                self._wake()
                yield self.env.timeout(spacing)
            if runs == 0:
                yield self.env.timeout(self.gp_s)
            if not self.requested:
                self.running = False
                return
            self.requested = False

    def _wake(self) -> None:
        if self.started:
            self.sched.wake(self.task)  # None as waker: an interrupt or a timer
        else:
            self.started = True
            self.env.process(self._thread())

    def _thread(self) -> Generator[simpy.Event, Any, None]:
        sched = self.sched
        yield sched.start(self.task)
        while True:
            yield from sched.run(self.task, self.run_s)
            yield sched.block(self.task)


def attach_rcu(env: simpy.Environment, sched: Scheduler, preset: str, recorder: Any,
               arch: str, close: bool, source: str = "") -> GracePeriods | None:
    """Model the preset's grace-period thread (if it has one) on the server's first CPU, fed
    by every connection the server closes.  With a connection per request (``close``: a closed
    workload's, or open arrivals, each a connection of its own) the server closes each right
    after its reply, which the recorder hears of as the request's completion; with keep-alive
    a connection closes when its client closes it (a bench window's end), which the recorder
    hears of as ``closed`` (prefork's workers do not tell it: a handful of grace periods per
    window, left out).  ``source``: the preset's TOML file, beside which its inputs are looked
    for first."""
    params = load_rcu(preset, source)
    if params is None:
        return None
    rcu = GracePeriods(env, sched, params, sched.cpus[0])
    name = "complete" if close else "closed"
    inner: Callable[..., None] = getattr(recorder, name)

    def hooked(*args: Any) -> None:
        inner(*args)
        rcu.closed()

    setattr(recorder, name, hooked)
    return rcu
