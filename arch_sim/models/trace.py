"""Who ran when on each CPU: an observer for :class:`~arch_sim.models.scheduler.Scheduler`.

    sched.observer = trace = SwitchTrace()
    ...                                     # run the simulation
    rows = trace.finish(env.now)            # [Slice(cpu, task, start, end, sched, why), ...]

    with switch_traces() as traces:         # a run that builds its own scheduler(s)
        simulate_point(...)                 # (traces[0]: the first scheduler's trace)

Each :class:`Slice` is one stretch of one CPU: a task's turn (from the moment ``schedule()``
starts switching to it, ``sched`` seconds of which are the scheduler's own cost, to the moment
it stops) or an idle stretch (``task`` "idle").  ``why`` says how the stretch ended:

* ``blocked`` / ``exited`` - the task gave the CPU up (a voluntary switch);
* ``wakeup`` - it was preempted because a wake-up set need_resched;
* ``slice`` - it was preempted because its time slice (2.2: counter; EEVDF: deadline) ran out;
* ``idle`` - the CPU had nothing to run;
* ``running`` - still running when the trace was finished.

Per CPU the stretches follow each other without gaps or overlaps, from ``since`` (when the
trace was set up; every CPU idles until its first switch) on.  The scheduler calls the
observer only when one is set, so an untraced run pays one attribute test per switch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: how a stretch of a CPU ended (see the module docstring)
REASONS = ("blocked", "exited", "wakeup", "slice", "idle", "running")


@dataclass(frozen=True)
class Slice:
    """One stretch of one CPU."""

    cpu: int
    task: str  # the task's name, or "idle"
    start: float  # s: schedule() starts switching to it
    end: float  # s: it stops (the next stretch of this CPU starts here)
    sched: float  # s of [start, end) spent in schedule() before the task's own work
    why: str  # how it ended: one of REASONS


class SwitchTrace:
    """Collects :class:`Slice` rows from a scheduler's switches (its ``observer``)."""

    def __init__(self, since: float = 0.0) -> None:
        self.since = since  # every CPU idles from here until its first switch
        self.rows: list[Slice] = []
        self._open: dict[int, tuple[str, float, float]] = {}  # cpu -> (task, start, sched)
        self._seen: set[int] = set()

    def switched_in(self, cpu: Any, task: Any, start: float, cost: float) -> None:
        """``schedule()`` on ``cpu`` starts switching to ``task`` (None: the idle task) at
        ``start``; ``cost`` of it is the scheduler's.  An idle stretch ends here."""
        index = cpu.index
        name = "idle" if task is None else task.name
        if index not in self._seen:  # it idled since the trace began
            self._seen.add(index)
            if start > self.since:
                self._open[index] = ("idle", self.since, 0.0)
        held = self._open.pop(index, None)
        if held is not None:  # only an idle stretch is still open when a task comes
            self._close(index, held, start, "idle")
        self._open[index] = (name, start, cost)

    def switched_out(self, cpu: Any, task: Any, end: float, why: str) -> None:
        """``task`` stops running on ``cpu`` at ``end``, for reason ``why``."""
        held = self._open.pop(cpu.index, None)
        if held is not None:
            self._close(cpu.index, held, end, why)

    def _close(self, cpu: int, held: tuple[str, float, float], end: float, why: str) -> None:
        name, start, cost = held
        end = max(end, start)
        self.rows.append(Slice(cpu, name, start, end, min(cost, end - start), why))

    def finish(self, now: float, cpus: int = 0) -> list[Slice]:
        """Close what is still open at ``now`` (``running``, or ``idle``); the rows, by CPU
        and start.  Of ``cpus`` CPUs, one that never switched idled all along."""
        for index in range(cpus):
            if index not in self._seen:
                self._seen.add(index)
                self._open[index] = ("idle", self.since, 0.0)
        for index, held in sorted(self._open.items()):
            self._close(index, held, max(now, held[1]), "idle" if held[0] == "idle" else
                        "running")
        self._open.clear()
        return sorted(self.rows, key=lambda r: (r.cpu, r.start, r.end))


@contextlib.contextmanager
def switch_traces() -> Iterator[list[SwitchTrace]]:
    """Give every :class:`~arch_sim.models.scheduler.Scheduler` made inside the block a
    :class:`SwitchTrace` as its observer; yields the list they are added to, in order."""
    from arch_sim.models.scheduler import Scheduler  # (scheduler.py reports to this module)

    traces: list[SwitchTrace] = []
    made = Scheduler.__init__

    def traced(self: Any, *args: Any, **kwargs: Any) -> None:
        made(self, *args, **kwargs)
        self.observer = SwitchTrace()
        traces.append(self.observer)

    Scheduler.__init__ = traced  # type: ignore[method-assign]
    try:
        yield traces
    finally:
        Scheduler.__init__ = made  # type: ignore[method-assign]
