"""One hand-off, four schedulers: who runs when, and what ``schedule()`` costs.

The lesson of ``notebooks/04_scheduler_timeline.ipynb``, and ``arch-sim timeline``:

* :func:`handoff` - a *waker* on one CPU wakes a sleeping *worker* (a lock hand-off, a request
  handed to a pool thread) while a CPU-bound *hog* runs on the other CPU, simulated by the
  model's own :class:`~arch_sim.models.scheduler.Scheduler` with a
  :class:`~arch_sim.models.trace.SwitchTrace` as its observer: who ran when on each CPU, and why
  each switch happened;
* :func:`handoffs` - the same under each of :data:`SCHEDULERS` (Linux 2.2's goodness(), 2.6's
  O(1), EEVDF with and without wake-up preemption);
* :func:`schedule_costs` - the mean cost of one ``schedule()`` against the number of runnable
  tasks, per scheduler, from :func:`arch_sim.explore.schedule_cost_us` (the model's scheduler
  run with N CPU-bound tasks on one CPU);
* :func:`reveal` - an exercise's answer, shown only once a prediction is made (or ``REVEAL=1``).

Figures: :mod:`arch_sim.plots_timeline`.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from arch_sim import explore
from arch_sim.models import ModelParams, load_preset
from arch_sim.models.trace import Slice, SwitchTrace

MS = 1e-3

#: label -> (preset whose scheduler section is used, scheduler changes)
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "Linux 2.2 goodness()": ("linux-2.2-1999", {}),
    "Linux 2.6 O(1)": ("linux-2.6-o1", {}),
    "EEVDF, wake-up preemption": ("host", {}),
    "EEVDF, no wake-up preemption": ("host", {"eevdf_wakeup_preemption": False}),
}


def cost_presets() -> dict[str, ModelParams]:
    """label -> preset, for the cost of schedule(): the 1999 PC under 2.2 and 2.6's O(1), and
    this host (``host``: EEVDF) as it is and with Linux 2.2's scheduler
    (:func:`arch_sim.explore.linux22_on`) - the same hardware under both."""
    return {
        "Linux 2.2 goodness() (1999 PC)": load_preset("linux-2.2-1999"),
        "Linux 2.6 O(1) (1999 PC)": load_preset("linux-2.6-o1"),
        "Linux 2.2 goodness() (this host)": explore.linux22_on("host"),
        "EEVDF (this host)": load_preset("host"),
    }

#: the three tasks of the hand-off
TASKS = ("waker", "worker", "hog")


@dataclass(frozen=True)
class HandOff:
    """What :func:`handoff` saw: the trace and the moments that matter (seconds)."""

    label: str
    rows: list[Slice]
    cpus: int
    woken_at: float  # the waker's wake-up call makes the worker runnable
    worker_runs_at: float  # the worker's own work starts
    end: float  # the simulation's end

    @property
    def wait(self) -> float:
        """How long the woken worker waited for a CPU (s)."""
        return self.worker_runs_at - self.woken_at

    def preempted_at_wakeup(self) -> list[str]:
        """Tasks switched out by the wake-up (``why`` = wakeup at or right after it)."""
        return [r.task for r in self.rows
                if r.why == "wakeup" and self.woken_at <= r.end <= self.worker_runs_at + 1e-9]

    def frame(self) -> pd.DataFrame:
        """The trace as a table, times in ms."""
        df = pd.DataFrame([dataclasses.asdict(r) for r in self.rows])
        for col in ("start", "end", "sched"):
            df[col] = df[col] / MS
        return df.rename(columns={"start": "start_ms", "end": "end_ms", "sched": "sched_ms"})


def scheduler_params(preset: str | ModelParams, **changes: Any):
    """A preset's scheduler section with ``changes``, and no run-to-run noise in CPU time."""
    sched = load_preset(preset).scheduler
    return dataclasses.replace(sched, **{"cpu_time_cv": 0.0, **changes})


def handoff(params: Any, label: str = "", before_ms: float = 2.0, after_ms: float = 3.0,
            work_ms: float = 2.0, hog_burst_ms: float = 0.02) -> HandOff:
    """Simulate one hand-off on two CPUs under scheduler parameters ``params``.

    At 0 the *worker* starts on CPU 0, sets up for 0.2 ms and blocks (waiting for work); the
    *hog* starts on CPU 1 and computes in bursts of ``hog_burst_ms`` for ever (a burst boundary
    is where a preemption takes effect).  At 0.3 ms the *waker* starts on the idle CPU 0,
    computes ``before_ms``, wakes the worker (a futex wake: ``Scheduler.wake_from``), computes
    ``after_ms`` more and blocks.  The worker, once it runs, computes ``work_ms`` and blocks.
    """
    import simpy

    from arch_sim.models.scheduler import Scheduler, Task

    env = simpy.Environment()
    sched = Scheduler(env, 2, params)
    sched.observer = trace = SwitchTrace()
    waker, worker, hog = (Task(name) for name in TASKS)
    seen: dict[str, float] = {}

    def run_worker():
        yield sched.start(worker)
        yield from sched.run(worker, 0.2 * MS)
        yield sched.block(worker)
        seen["runs"] = env.now + worker.lead  # dispatched: its own work starts after the lead
        yield from sched.run(worker, work_ms * MS)
        yield sched.block(worker)

    def run_hog():
        yield sched.start(hog)
        while True:
            yield from sched.run(hog, hog_burst_ms * MS)

    def run_waker():
        yield env.timeout(0.3 * MS)
        yield sched.start(waker)
        yield from sched.run(waker, before_ms * MS)
        seen["woken"] = env.now + (sched.params.wake_us * 1e-6)  # after the futex call's CPU
        yield from sched.wake_from(waker, worker)
        yield from sched.run(waker, after_ms * MS)
        yield sched.block(waker)

    for proc in (run_worker, run_hog, run_waker):
        env.process(proc())
    end = (0.3 + before_ms + after_ms + work_ms + 2.0) * MS
    env.run(until=end)
    return HandOff(label, trace.finish(env.now, cpus=2), 2, seen["woken"], seen["runs"], end)


def handoffs(schedulers: Mapping[str, tuple[str, dict[str, Any]]] | None = None,
             **kwargs: Any) -> dict[str, HandOff]:
    """:func:`handoff` under each scheduler of ``schedulers`` (default :data:`SCHEDULERS`);
    keyword arguments as :func:`handoff`."""
    chosen = SCHEDULERS if schedulers is None else schedulers
    return {label: handoff(scheduler_params(preset, **changes), label, **kwargs)
            for label, (preset, changes) in chosen.items()}


def summary(runs: Mapping[str, HandOff]) -> pd.DataFrame:
    """One line per scheduler: how long the worker waited and whom the wake-up preempted."""
    return pd.DataFrame([{
        "scheduler": label,
        "worker waited (ms)": round(run.wait / MS, 3),
        "preempted by the wake-up": ", ".join(run.preempted_at_wakeup()) or "nobody",
        "switches": sum(1 for r in run.rows if r.why != "running"),
    } for label, run in runs.items()]).set_index("scheduler")


# -- the cost of schedule() -------------------------------------------------------------------

def schedule_costs(sizes: Iterable[int] = (2, 10, 100, 1000),
                   presets: Mapping[str, str | ModelParams] | None = None,
                   switches: int = 200) -> pd.DataFrame:
    """Mean us per ``schedule()`` with N runnable tasks on one CPU, per scheduler: a column
    per label of ``presets`` (default :func:`cost_presets`), a row per N.  Each value is the
    model's scheduler run (:func:`arch_sim.explore.schedule_cost_us`), not a formula."""
    chosen = cost_presets() if presets is None else presets
    sizes = list(sizes)
    data = {label: [explore.schedule_cost_us(p, n, switches) for n in sizes]
            for label, p in chosen.items()}
    return pd.DataFrame(data, index=pd.Index(sizes, name="runnable tasks"))


# -- exercises --------------------------------------------------------------------------------

def reveal(prediction: Any, answer: float, what: str = "answer",
           why: str = "", rel_tol: float = 0.25) -> str:
    """An exercise's answer (:func:`arch_sim.reveal.reveal`: hidden until ``prediction`` is set
    or ``REVEAL=1``) and, once it is shown, ``why``.  Returns the printed text."""
    from arch_sim import reveal as answers

    text = answers.reveal(prediction, answer, what, rel_tol)
    if why and answers.shown(prediction):
        print(why)
        text += "\n" + why
    return text


# -- arch-sim timeline ------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="timeline", metavar="DIR",
                        help="folder for handoff.png, handoff.csv and schedule_cost.png "
                             "(default: %(default)s)")
    parser.add_argument("--sizes", default="2,10,100,1000", metavar="N[,N...]",
                        help="runnable-task counts for the schedule() cost (default: "
                             "%(default)s)")
    from arch_sim.plotstyle import add_style_argument

    add_style_argument(parser)


def _sizes(text: str) -> list[int]:
    from arch_sim.argtypes import UsageError

    try:
        sizes = [int(x) for x in text.replace(",", " ").split()]
    except ValueError:
        raise UsageError(f"--sizes {text!r}: give whole numbers, e.g. 2,10,100") from None
    if not sizes or min(sizes) < 2:
        raise UsageError(f"--sizes {text!r}: every count must be >= 2")
    return sizes


def run(args: argparse.Namespace) -> int:
    """Draw the hand-off under every scheduler and the cost of schedule() into ``--out``."""
    from arch_sim import plots_timeline
    from arch_sim.argtypes import check_out_dir

    sizes = _sizes(args.sizes)
    out = check_out_dir(args.out)
    runs = handoffs()
    costs = schedule_costs(sizes)
    out.mkdir(parents=True, exist_ok=True)
    style = getattr(args, "style", "paper")
    figures = {"handoff.png": plots_timeline.gantt(runs, style=style),
               "schedule_cost.png": plots_timeline.schedule_cost(costs, style=style)}
    for name, fig in figures.items():
        fig.savefig(Path(out) / name, dpi=120)
    pd.concat([run.frame().assign(scheduler=label) for label, run in runs.items()]).to_csv(
        Path(out) / "handoff.csv", index=False)
    print(summary(runs).to_string())
    print(costs.round(2).to_string())
    print(f"wrote {', '.join(sorted([*figures, 'handoff.csv']))} to {out}")
    return 0

