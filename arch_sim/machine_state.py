"""How fast this machine is right now, so a bench run and a calibration can be told apart.

The machine is shared: a neighbour on the same host can slow every piece of work on it by half
or more, and a virtual CPU can be kept off its physical one ("steal" time).  A calibration holds
the machine's speed of the hour it ran; a bench run measured in another hour is not its to
predict unless the machine ran at the same speed.  Two probes say which hour was which:

* :class:`ReferenceWork` - one short piece of server-like work (a 2 KB send and receive on a
  socket pair and a little Python), timed warm, back to back, on one CPU.  ``arch-sim
  calibrate`` times it at its start (as the warm side of its cold-cache curve,
  ``hostbench.cold_cache``) and at its end, and writes their mean into the preset (``[machine]
  reference_us``, :func:`calibration_reference_us`); ``arch-sim bench`` times it on the
  server's CPU before every load point (the ``reference_us`` column).
* :func:`cpu_times` - each CPU's ``/proc/stat`` line; :func:`steal_fraction` is the share of
  their time the hypervisor gave to someone else over a window (proc(5): the eighth value,
  ``steal``; docs/SOURCES.md [CS-proc-stat-steal]; the ``steal_frac`` column).

:func:`speed_note` compares a bench run's reference time with a preset's: a line to print
where they differ by more than :data:`SPEED_TOLERANCE`, else None; :func:`drift_note` does the
same for the reference times at a calibration's start and end.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import statistics
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

#: bench and calibration ran the reference work within this factor of each other: same machine
SPEED_TOLERANCE = 1.25
#: a window whose CPUs lost more than this share of their time to steal is reported
STEAL_WARN = 0.05
#: warm-up runs, then timed runs, of :meth:`ReferenceWork.warm_us`
WARMUP_RUNS = 200
TIMED_RUNS = 200


class ReferenceWork:
    """The reference work and its socket pair (use as a context manager, or :meth:`close`)."""

    def __init__(self) -> None:
        self.a, self.b = socket.socketpair()
        self.blob = os.urandom(2048)

    def run(self) -> int:
        """One piece of the work: a 2 KB send and receive, a small dict serialised."""
        self.a.send(self.blob)
        self.b.recv(65536)
        return len(json.dumps({i: str(i) for i in range(20)}))

    def timed_us(self) -> float:
        """One run's CPU time (this thread's clock), us."""
        t0 = time.thread_time_ns()
        self.run()
        return (time.thread_time_ns() - t0) / 1e3

    def warm_us(self, runs: int = TIMED_RUNS, warmup: int = WARMUP_RUNS) -> float:
        """Median CPU time of ``runs`` runs back to back, after ``warmup`` untimed ones."""
        for _ in range(warmup):
            self.run()
        return statistics.median(self.timed_us() for _ in range(runs))

    def close(self) -> None:
        self.a.close()
        self.b.close()

    def __enter__(self) -> ReferenceWork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """This thread on ``cpu`` meanwhile (None: left where it is), its CPUs given back after."""
    if cpu is None:
        yield
        return
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, old)


def reference_us(cpu: int | None = None, runs: int = TIMED_RUNS) -> float:
    """The reference work's warm time on ``cpu`` (this thread pinned there meanwhile), us."""
    with pinned(cpu), ReferenceWork() as work:
        return work.warm_us(runs)


def cpu_times(stat: str | None = None) -> dict[int, tuple[int, int]]:
    """Each CPU's (steal, total) clock ticks from ``/proc/stat`` (or the text ``stat``).

    Total is every state's ticks (user nice system idle iowait irq softirq steal); guest time
    is already inside user and nice, so it is not added again."""
    text = Path("/proc/stat").read_text() if stat is None else stat
    out: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(" ")
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        values = [int(v) for v in rest.split()[:8]]
        values += [0] * (8 - len(values))
        out[int(name[3:])] = (values[7], sum(values))
    return out


def steal_fraction(before: Mapping[int, tuple[int, int]], after: Mapping[int, tuple[int, int]],
                   cpus: Iterable[int]) -> float:
    """The share of ``cpus``' time stolen between two :func:`cpu_times` readings (nan if none
    of them was read or no tick passed)."""
    stolen = total = 0
    for cpu in cpus:
        if cpu in before and cpu in after:
            stolen += after[cpu][0] - before[cpu][0]
            total += after[cpu][1] - before[cpu][1]
    return stolen / total if total > 0 else math.nan


def same_speed(a_us: float, b_us: float) -> bool:
    """Two reference times within :data:`SPEED_TOLERANCE` of each other, either way: one
    machine's speed (both positive)."""
    return 1 / SPEED_TOLERANCE <= b_us / a_us <= SPEED_TOLERANCE


def speed_note(bench_us: float, preset_us: float, preset: str = "the preset") -> str | None:
    """A line saying that a bench run's machine was not the calibration's, or None.

    ``bench_us`` is the bench run's reference time (the median over its points), ``preset_us``
    the preset's; either missing (0 or nan) says nothing."""
    if not (bench_us > 0 and preset_us > 0) or math.isnan(bench_us) or math.isnan(preset_us):
        return None
    if same_speed(preset_us, bench_us):
        return None
    ratio = bench_us / preset_us
    how = f"{ratio:.2f}x slower" if ratio > 1 else f"{1 / ratio:.2f}x faster"
    return (f"the bench ran the reference work {how} than the calibration of {preset} "
            f"({bench_us:.1f} against {preset_us:.1f} us): its machine was not the one "
            "calibrated, so the model is not expected to agree - run arch-sim calibrate "
            "beside the bench")


def summarise(reference: Iterable[float], steal: Iterable[float]) -> dict:
    """A bench run's machine, from its rows' ``reference_us`` and ``steal_frac``: the spread of
    the reference time over its points, the most any window lost to steal, and a warning for
    each that says the run's points were not all measured on the same machine."""
    ref = sorted(x for x in reference if x > 0 and not math.isnan(x))
    stolen = [x for x in steal if not math.isnan(x)]
    out: dict = {"warnings": []}
    if ref:
        lo, hi = ref[0], ref[-1]
        out["reference_us"] = {"min": lo, "median": statistics.median(ref), "max": hi}
        if not same_speed(lo, hi):
            out["warnings"].append(
                f"the machine's speed changed during the run: the reference work took "
                f"{lo:.1f} to {hi:.1f} us between load points, so points measured apart may "
                "differ for the machine's sake; compare points measured side by side, or run "
                "again on a quieter machine")
    if stolen:
        worst = max(stolen)
        out["steal_frac_max"] = worst
        many = sum(x > STEAL_WARN for x in stolen)
        if many:
            out["warnings"].append(
                f"{many} of {len(stolen)} windows lost more than {STEAL_WARN:.0%} of their "
                f"CPUs' time to the hypervisor (steal, up to {worst:.0%}): the host was busy")
    return out


def drift_note(start_us: float, end_us: float) -> str | None:
    """A line when the reference work's time at a calibration's end differs from its start by
    more than :data:`SPEED_TOLERANCE` (the measurements between them mix two machines)."""
    if not (start_us > 0 and end_us > 0):
        return None
    if same_speed(start_us, end_us):
        return None
    return (f"the machine's speed changed during the calibration: the reference work took "
            f"{start_us:.1f} us at its start and {end_us:.1f} us at its end, so its numbers mix "
            "two machines; calibrate again when the machine is quieter")


def calibration_reference_us(calibration: Mapping) -> float:
    """A calibration's reference time (what its preset's ``reference_us`` holds): the mean of
    the reference work's times at the calibration's start (``hostbench.cold_cache``'s warm
    side) and end, or the start's alone where it was not timed at the end (older calibrations);
    0.0 where it was not timed at all."""
    start = float((calibration.get("cold_cache") or {}).get("warm_us") or 0.0)
    end = float((calibration.get("machine_state") or {}).get("reference_us_end") or 0.0)
    return (start + end) / 2 if start and end else start
