"""Helpers for the notebooks: turn a model knob, re-run a sweep in seconds, time a live window.

The notebooks call these instead of carrying code of their own; every figure they show is then
drawn by :mod:`arch_sim.plots` from the schema rows returned here.

    >>> from arch_sim.explore import tweak
    >>> from arch_sim.models import load_preset
    >>> p = tweak(load_preset("linux-2.2-1999"), switch_us=30)
    >>> p.scheduler.switch_us, p.name
    (30, 'linux-2.2-1999 switch_us=30')

* :func:`tweak` / :func:`knobs_table` - the knobs a researcher turns, by short name
* :func:`sweep` - the designs over a list of loads: a schema DataFrame, labelled by ``preset``
* :func:`vary` - one sweep per value of one knob, stacked (one line per value in the plots)
* :func:`linux22_on` - today's machine (a host preset) with Linux 2.2's scheduler
* :func:`live_point` / :func:`quiet_check` - one measured window of a running real server, and
  a check that the machine is quiet enough for one (:mod:`arch_sim.live`)
* :func:`reveal` - an exercise's computed answer beside the learner's prediction, hidden until
  there is one or ``REVEAL=1`` (:mod:`arch_sim.reveal`)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from arch_sim import ALL_ARCHS, ARCHS, schema
from arch_sim.live import live_frame as live_frame
from arch_sim.live import live_point as live_point
from arch_sim.live import quiet_check as quiet_check
from arch_sim.live import quiet_warnings as quiet_warnings
from arch_sim.models import ModelParams, load_preset
from arch_sim.reveal import REVEAL_ENV as REVEAL_ENV
from arch_sim.reveal import parse_prediction as parse_prediction
from arch_sim.reveal import reveal as reveal
from arch_sim.reveal import reveal_all as reveal_all

#: knob -> (section of ModelParams or None for top level, field, what it means)
KNOBS: dict[str, tuple[str | None, str, str]] = {
    "switch_us": ("scheduler", "switch_us", "direct cost of one context switch (us)"),
    "per_runnable_us": ("scheduler", "per_runnable_us",
                        "Linux 2.2 goodness(): cost per runnable task at every schedule() (us)"),
    "refill_us_per_kb": ("scheduler", "refill_us_per_kb",
                         "cache refill after a switch, per KB of the task's working set (us)"),
    "working_set_kb": ("scheduler", "working_set_kb",
                       "working set a task must bring back into the cache (KB)"),
    "timeslice_ms": ("scheduler", "timeslice_ms", "CPU a task may use before a tick preempts it"),
    "hz": ("scheduler", "hz", "timer ticks per second (one jiffy = 1/hz)"),
    "wakeup_preempt": ("scheduler", "wakeup_preempt",
                       "a woken task may preempt a running one (involuntary switches)"),
    "wakeup_latency_us": ("scheduler", "wakeup_latency_us",
                          "delay before a task woken onto an idle CPU runs (us)"),
    "policy": ("scheduler", "policy",
               "who runs next: linux-2.2 / linux-2.4 (goodness(), counters), fifo (2.6's O(1),"
               " equal priorities) or eevdf (Linux >= 6.6: lag, deadlines)"),
    "priority_ticks": ("scheduler", "priority_ticks",
                       "Linux 2.2/2.4: the ticks a task's counter is refilled to (its slice)"),
    "accept_wakes_all": ("scheduler", "accept_wakes_all",
                         "a new connection wakes every thread asleep in accept() (2.2), not one"),
    "cpus": (None, "cpus", "CPUs (state-group: one worker per CPU)"),
    "threads": ("server", "threads",
                "thread-per-request: pool size, 0 = one thread per connection"),
    "workers": ("server", "workers", "prefork: worker processes, each blocked in accept()"),
    "stage_threads": ("server", "stage_threads",
                      "staged: threads per stage, e.g. 'send_data=8' (the others: defaults)"),
    "mm_switch_us": ("scheduler", "mm_switch_us",
                     "extra cost of a switch into another process's address space (us)"),
    "gil": ("server", "gil",
            "CPython's interpreter lock: one thread at a time runs Python code"),
    "cohort_factor": ("server", "cohort_factor",
                      "state-group: cost of the 2nd, 3rd... item of a batch (warm cache)"),
    "pass_us": ("server", "pass_us", "state-group: fixed cost of one pass over the states (us)"),
    "poll_item_us": ("server", "poll_item_us",
                     "state-group: cost of looking at a request that cannot move yet (us)"),
    "sleep_timeout_jiffies": ("server", "sleep_timeout_jiffies",
                              "state-group: an idle worker sleeps at most this many ticks"),
    "kernel_threads": ("server", "kernel_threads",
                       "kernel threads (kHTTPd): Linux 2.2/2.4 never preempt them"),
    "max_connections": ("server", "max_connections", "connections in the server at once"),
    "workload_kind": ("workload", "kind",
                      "open (a new connection per request, Poisson arrivals) or closed (clients)"),
    "connection": ("workload", "connection",
                   "closed workload: keep-alive (HTTP/1.1) or close (a connection per request)"),
    "connections": ("workload", "connections", "closed workload: clients (connections)"),
    "file_sizes": ("workload", "file_sizes", "file mix: specweb99, fixed:KB or exp:KB"),
    "client_mbit_s": ("network", "client_mbit_s", "bandwidth at which one client drains"),
    "server_mbit_s": ("network", "server_mbit_s",
                      "the server's link, shared by every reply (inf: no limit)"),
    "wake_free_frac": ("network", "wake_free_frac",
                       "a writer blocked on a full socket buffer wakes when this share is free"),
    "sndbuf_kb": ("network", "sndbuf_kb", "socket send buffer per connection (KB)"),
    "one_way_us": ("network", "one_way_us", "one-way network latency (us)"),
}

#: fields of a simulated row that depend on the wall clock, not on the model
WALL_FIELDS = ("wall_s", "sim_requests_per_wall_s")


def quick() -> bool:
    """True when the environment asks for a short run (``QUICK=1``, as the tests do)."""
    return os.environ.get("QUICK", "").strip().lower() not in ("", "0", "false", "no")


# -- knobs ------------------------------------------------------------------------------------

def _where(knob: str) -> tuple[str | None, str]:
    if knob in KNOBS:
        section, field, _ = KNOBS[knob]
        return section, field
    if "." in knob:  # any field, as "section.field"
        section, field = knob.split(".", 1)
        return section, field
    raise ValueError(f"unknown knob {knob!r}: use one of {', '.join(KNOBS)} or SECTION.FIELD")


def knob_value(params: ModelParams, knob: str, arch: str | None = None) -> Any:
    """The current value of a knob in *params* (as *arch* sees it, for per-design costs)."""
    section, field = _where(knob)
    if arch is not None and hasattr(params, "for_arch"):
        params = params.for_arch(arch)
    owner = params if section is None else getattr(params, section)
    return getattr(owner, field)


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def tweak(params: ModelParams | str, name: str | None = None, **knobs: Any) -> ModelParams:
    """A copy of *params* with some knobs changed, named after the change (for plot legends).

    Knobs are the short names of :data:`KNOBS` (``switch_us=30``, ``cpus=2``...).  *name*
    replaces the automatic name "<preset> knob=value ...".
    """
    params = load_preset(params)
    changes: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for knob, value in knobs.items():
        section, field = _where(knob)
        owner = params if section is None else getattr(params, section)
        if not hasattr(owner, field):
            raise ValueError(f"unknown knob {knob!r}: {section or 'ModelParams'} has no {field}")
        if section is None:
            top[field] = value
        else:
            changes.setdefault(section, {})[field] = value
    if name is None:
        name = " ".join([params.name] + [f"{k}={_fmt(v)}" for k, v in knobs.items()])
    by_arch = getattr(params, "server_by_arch", None)
    if by_arch and "server" in changes:  # a turned server knob holds for both designs
        top["server_by_arch"] = {
            arch: {k: v for k, v in over.items() if k not in changes["server"]}
            for arch, over in by_arch.items()
        }
    return params.replace(name=name, **top, **changes)


def knobs_table(params: ModelParams | str) -> pd.DataFrame:
    """Every knob of :data:`KNOBS` with its value in *params* and what it means."""
    params = load_preset(params)
    rows = []
    for knob in KNOBS:
        row = {"knob": knob, "value": knob_value(params, knob)}
        for arch in ALL_ARCHS:  # a preset may give each design its own server costs
            value = knob_value(params, knob, arch)
            if value != row["value"]:
                row[f"value ({arch})"] = value
        rows.append({**row, "meaning": KNOBS[knob][2]})
    table = pd.DataFrame(rows).set_index("knob")
    return table[[c for c in table.columns if c != "meaning"] + ["meaning"]]


# -- sweeps -----------------------------------------------------------------------------------

def jobs(params: ModelParams | str, loads: Iterable[float | None],
         archs: Sequence[str] = ARCHS, *, workload: str | None = None,
         connection: str | None = None, connections: int | None = None, requests: int = 4000,
         reps: int = 1, seed: int = 1, cpus: int | None = None,
         threads: int | None = None, workers: int | None = None,
         stage_threads: str | None = None) -> list[dict[str, Any]]:
    """The :func:`~arch_sim.models.simulate_point` keyword sets of a sweep, as
    ``arch-sim simulate`` plans them (same seeds for every arch: common random numbers).

    *archs* may be any of ``ALL_ARCHS`` (prefork and staged too).  *workload* (``open`` /
    ``closed``) and *connection* (closed: ``keep-alive`` / ``close``) default to the preset's
    (``workload.kind``, ``workload.connection``); *threads*, *workers* and *stage_threads* set
    the shape of thread-per-request, prefork and staged (default: the preset's)."""
    from arch_sim.sweep import plan

    shapes = {k: v for k, v in (("workers", workers), ("stage_threads", stage_threads))
              if v is not None}
    return plan(load_preset(params), loads, archs, workload=workload, connection=connection,
                connections=connections, requests=requests, reps=reps, seed=seed, cpus=cpus,
                threads=threads, **shapes)


def sweep(params: ModelParams | str, loads: Iterable[float | None],
          archs: Sequence[str] = ARCHS, *, label: str | None = None, workers: int = 1,
          prefork_workers: int | None = None, **kwargs: Any) -> pd.DataFrame:
    """Simulate *archs* (any of ``ALL_ARCHS``) at every load; schema rows with ``preset`` =
    *label* (or the preset's name).  Keyword arguments as :func:`jobs` (workload, connection,
    connections, requests, reps, seed, cpus, threads, stage_threads); ``prefork_workers`` is
    prefork's worker processes (``jobs``' *workers*).  ``workers`` > 1 runs the points in a
    process pool."""
    from arch_sim.sweep import run_jobs

    params = load_preset(params)
    if prefork_workers is not None:
        kwargs["workers"] = prefork_workers
    rows = run_jobs(jobs(params, list(loads), archs, **kwargs), workers=workers, progress=False)
    df = schema.to_frame(rows)
    df["preset"] = label or params.name
    df["run_id"] = "explore"
    return df


def vary(base: ModelParams | str, knob: str, values: Iterable[Any],
         loads: Iterable[float | None], archs: Sequence[str] = ARCHS,
         **kwargs: Any) -> pd.DataFrame:
    """One :func:`sweep` per value of *knob* (all else as in *base*), stacked.

    Each value's rows are labelled ``"<knob>=<value>"`` in the ``preset`` column, so the
    :mod:`arch_sim.plots` figures draw one line per (arch, value).
    """
    base = load_preset(base)
    loads = list(loads)
    frames = [
        sweep(tweak(base, name=f"{knob}={_fmt(v)}", **{knob: v}), loads, archs, **kwargs)
        for v in values
    ]
    return pd.concat(frames, ignore_index=True)


def simulated_requests_per_s(df: pd.DataFrame) -> float:
    """How fast the models ran: simulated requests per wall-clock second over *df*'s rows."""
    if "wall_s" not in df.columns or df["wall_s"].sum() <= 0:
        return math.nan
    total = (df["requests"] + df["warmup"]).sum()
    return float(total / df["wall_s"].sum())


def table(df: pd.DataFrame, columns: Sequence[str] = (
        "rps", "reschedules_per_s", "reschedules_per_request", "cpu_util",
        "sched_overhead_frac", "lat_p50_ms", "lat_p99_ms")) -> pd.DataFrame:
    """Means over repetitions per (preset, arch, offered load), for printing beside a figure."""
    keys = [k for k in ("preset", "arch", "cpus", "connections", "target_rps") if k in df]
    cols = [c for c in columns if c in df.columns]
    out = df.groupby(keys, dropna=False, sort=False)[cols].mean(numeric_only=True)
    return out.round(3)


# -- then and now -----------------------------------------------------------------------------

def linux22_on(host: ModelParams | str, per_runnable_us: float | None = None) -> ModelParams:
    """Today's machine (*host*: its switch and cache costs, its server costs) running Linux
    2.2's scheduler: goodness() over one run queue, counters of 20 ticks at HZ=100 (210 ms
    slices), 2.2's reschedule_idle() on a wake-up, and accept() waking every sleeper - the
    ``linux-2.2-1999`` preset's scheduler section.  The host's server threads stay what they
    are (user-space threads: preemptible).

    The goodness() cost per runnable task is 2.2's, scaled by how much cheaper a context
    switch is on *host* than on the 1999 machine (``host.switch_us / 6 us``) - an assumption;
    pass *per_runnable_us* to set it yourself.
    """
    host = load_preset(host)
    old = load_preset("linux-2.2-1999").scheduler
    if per_runnable_us is None:
        per_runnable_us = old.per_runnable_us * host.scheduler.switch_us / old.switch_us
    scheduler = {"per_runnable_us": per_runnable_us, "timeslice_ms": old.timeslice_ms,
                 "hz": old.hz, "wakeup_preempt": old.wakeup_preempt, "policy": old.policy,
                 "priority_ticks": old.priority_ticks,
                 "accept_wakes_all": old.accept_wakes_all}
    return host.replace(name=f"{host.name} + Linux 2.2 scheduler", scheduler=scheduler)


def spinners(params: ModelParams | str, runnable: int, seconds: float,
             burst_s: float | None = None) -> dict[str, float]:
    """The model's :class:`~arch_sim.models.scheduler.Scheduler` running *runnable* CPU-bound
    tasks on one CPU for *seconds* of simulated time; its counters (``voluntary``,
    ``involuntary``, ``switches``, ``sched_time``, ``busy_time``).

    Each task computes in bursts of *burst_s* (default: 1 ms, or a quarter of the time slice
    if that is shorter) and never blocks: every switch between them is a preemption, taken at
    the start of a burst once the running task's slice is used up."""
    import simpy

    from arch_sim.models.scheduler import Scheduler, Task

    sched_params = load_preset(params).scheduler
    env = simpy.Environment()
    sched = Scheduler(env, 1, sched_params)
    burst = burst_s or min(1e-3, sched_params.timeslice_ms * 1e-3 / 4)

    def spinner(task: Any):
        yield sched.start(task)
        while True:
            yield from sched.run(task, burst)

    for i in range(runnable):
        env.process(spinner(Task(f"spin/{i}")))
    env.run(until=seconds)
    return sched.counters()


def schedule_cost_us(params: ModelParams | str, runnable: int, switches: int = 200) -> float:
    """Mean CPU cost (us) of one ``schedule()`` in the model's scheduler when *runnable*
    CPU-bound tasks share one CPU: each switch picks among the others (2.2's goodness() loop
    over the run queue, plus now and then its recalculation of every task's counter) and the
    incoming task's cache is cold.  Measured by running the
    :class:`~arch_sim.models.scheduler.Scheduler` itself (:func:`spinners`), not by a
    formula."""
    if runnable < 2:
        raise ValueError("need at least 2 runnable tasks for a CPU to switch between them")
    sched_params = load_preset(params).scheduler
    burst = min(1e-3, sched_params.timeslice_ms * 1e-3 / 4)
    counts = spinners(params, runnable, switches * (sched_params.timeslice_ms * 1e-3 + burst),
                      burst)
    return counts["sched_time"] / max(counts["switches"], 1) * 1e6
