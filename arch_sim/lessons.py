"""The exercises of notebook 03: a fresh problem per student seed, and its computed answers.

As in the homework simulators of *Operating Systems: Three Easy Pieces*, every student gets a
scenario of their own, drawn from a seed, and the program that poses the problems also answers
them.  :func:`exercise` draws one exercise's inputs (how many sleeps, which time slice, what
goodness() costs...) from ``random.Random`` seeded with the student seed and the exercise's
number, so a seed always gives the same problem and two seeds almost surely different ones.
:func:`answers` computes the answers from those inputs: by the models (a few thousand requests)
or, for the live exercise, the count one can reason out (the live count is shown beside it).
The notebook and ``arch-sim lab`` (:mod:`arch_sim.lab`) both call these two functions, so they
cannot disagree.

Nothing here depends on ``QUICK`` or on the newest run in ``results/``: the models run the
packaged presets (``arch_sim/models/presets/``, committed with the code), so an answer changes
only when the code does.  Every model exercise gives the student the inputs the answer follows
from (costs per request, a time slice, a baseline run) and asks for a quantity one can reason
out from them; the explanation then says how far the simple reasoning carries.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from arch_sim import explore
from arch_sim.models import ModelParams, load_preset, simulate_point
from arch_sim.reveal import format_number
from real_servers.core.lifecycle import LOGGING, NAMES, SEND_DATA, WAIT_HEADERS

#: the pinned presets (packaged, committed): the 1999 machine and the calibrated host
OLD, HOST = "linux-2.2-1999", "host"
#: measured requests per model run: enough for a stable mean, few enough for seconds
REQUESTS = 3000
BADGES = ("live machine", "model")
@dataclass(frozen=True)
class Ask:
    """One quantity the student predicts (one ``my_prediction...`` variable)."""

    part: str  # "" for the only one, else "a", "b"
    what: str
    rel_tol: float = 0.25
    abs_tol: float = 0.05


@dataclass(frozen=True)
class Exercise:
    """One seeded problem: its inputs, the question built from them, what to predict."""

    number: int
    section: int
    badge: str  # "live machine" (measured here) or "model" (computed by the models)
    minutes: int
    inputs: dict[str, Any]
    question: str
    asks: tuple[Ask, ...]
    explanation: str
    given: dict[str, float] = field(default_factory=dict)  # model outputs shown as inputs

    def label(self, ask: Ask) -> str:
        """``Exercise 4b: sleeps per request`` - the answer key's and the notebook's name."""
        return f"Exercise {self.number}{ask.part}: {ask.what}"


def prediction_name(ask: Ask) -> str:
    """The notebook variable for *ask*: ``my_prediction`` or ``my_prediction_a``..."""
    return "my_prediction" + (f"_{ask.part}" if ask.part else "")


def _fixed_costs_us(p: ModelParams, arch: str, kb: float, connection: bool) -> float:
    """CPU of one request of *kb* KB in *arch*'s server, as the preset lists it (us)."""
    s = p.for_arch(arch).server
    cost = s.parse_us + s.send_us + s.send_us_per_kb * kb + s.log_us
    return cost + (s.accept_us + s.close_us if connection else 0.0)


# -- the exercises: inputs drawn from the seed (make) and answers computed (solve) --------------

def _make1(rng: random.Random) -> Exercise:
    n, ms, spin = rng.randrange(20, 81, 5), rng.choice((1, 2, 3)), rng.choice((0.05, 0.1, 0.2))
    return Exercise(
        1, 1, "live machine", 5, {"sleeps": n, "sleep_ms": ms, "spin_s": spin},
        f"This thread will call `time.sleep({ms / 1000})` **{n}** times, then compute for "
        f"{spin} s. How many **voluntary** switches will `getrusage(RUSAGE_THREAD)` count "
        "for it?",
        (Ask("", "voluntary switches", rel_tol=0.1),),
        f"Each sleep blocks once: {n} voluntary switches. Computing adds none; the count "
        "measured here may add one or two when a helper thread of the notebook's kernel "
        "wants the GIL: after the switch interval (`sys.getswitchinterval()`, 5 ms) it asks "
        "the computing thread to drop the GIL, and that thread then waits until the helper "
        "has taken it (docs/SOURCES.md [PY-gil]).")


def _solve1(ex: Exercise, host: str) -> list[float]:
    return [float(ex.inputs["sleeps"])]


def _measure1(ex: Exercise) -> float:
    """Run exercise 1 on this thread and count its voluntary switches with getrusage."""
    import resource
    import time

    who = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)
    time.sleep(0.05)  # let the notebook kernel's helper threads send their messages first
    before = resource.getrusage(who).ru_nvcsw
    for _ in range(ex.inputs["sleeps"]):
        time.sleep(ex.inputs["sleep_ms"] / 1000)
    end = time.perf_counter() + ex.inputs["spin_s"]
    while time.perf_counter() < end:
        pass
    return float(resource.getrusage(who).ru_nvcsw - before)


def _make2(rng: random.Random) -> Exercise:
    k, slice_ms, secs = rng.choice((2, 3, 4, 6)), rng.choice((4, 5, 10, 20, 25)), rng.choice(
        (0.5, 1.0, 2.0))
    return Exercise(
        2, 2, "model", 5, {"tasks": k, "slice_ms": slice_ms, "seconds": secs},
        f"**{k}** CPU-bound tasks (they never block) share **one** CPU for **{secs} s**. A "
        "round-robin scheduler (the model's `fifo` policy: the task that has waited longest "
        "runs next - not Linux 2.2's goodness() choice of section 3) preempts the running "
        f"task once it has used a time slice of **{slice_ms} ms** while another waits; a "
        f"switch costs {load_preset(OLD).scheduler.switch_us:g} us. How many **involuntary** "
        "switches in all, counting every task?",
        (Ask("", "involuntary switches, all tasks"),),
        f"Every slice ends in one preemption, whoever runs: about {secs} s / {slice_ms} ms = "
        f"{secs * 1000 / slice_ms:g}, a little less because each switch also costs CPU. The "
        f"number of tasks ({k}) changes how long each one waits, not how often the CPU "
        "switches.")


def _solve2(ex: Exercise, host: str) -> list[float]:
    p = explore.tweak(OLD, policy="fifo", timeslice_ms=float(ex.inputs["slice_ms"]))
    counts = explore.spinners(p, ex.inputs["tasks"], ex.inputs["seconds"])
    return [float(counts["involuntary"])]


def _make3(rng: random.Random) -> Exercise:
    inputs = {"switch_us": rng.choice((3.0, 6.0, 10.0)),
              "per_runnable_us": rng.choice((0.1, 0.2, 0.5, 1.0)),
              "working_set_kb": rng.choice((4.0, 8.0, 16.0)),
              "runnable": rng.choice((50, 100, 200, 400))}
    refill = load_preset(OLD).scheduler.refill_us_per_kb
    return Exercise(
        3, 3, "model", 8, inputs,
        f"Linux 2.2's scheduler, with **{inputs['runnable']}** CPU-bound tasks runnable on "
        f"one CPU. A switch costs `switch_us` = **{inputs['switch_us']:g} us**, goodness() "
        f"costs `per_runnable_us` = **{inputs['per_runnable_us']:g} us** per runnable task, "
        f"and the incoming task must refill **{inputs['working_set_kb']:g} KB** of cache at "
        f"{refill:g} us per KB. What is the mean CPU cost of one `schedule()`, in us?",
        (Ask("", "us per schedule()"),),
        "switch_us + per_runnable_us x runnable tasks + refill: the loop over the run queue "
        "grows with the queue (schedule() calls goodness() for every runnable task, "
        "docs/SOURCES.md [K22-schedule-loop]). The model's mean is a little higher: now and "
        "then every runnable task has used its counter, and 2.2's schedule() then walks every "
        "task in the system to refill the counters - a second O(n) loop ([K22-recalc]).")


def _solve3(ex: Exercise, host: str) -> list[float]:
    i = ex.inputs
    p = explore.tweak(OLD, switch_us=i["switch_us"], per_runnable_us=i["per_runnable_us"],
                      working_set_kb=i["working_set_kb"])
    return [explore.schedule_cost_us(p, i["runnable"], switches=100)]


def _make4(rng: random.Random) -> Exercise:
    kb, rho = rng.choice((1, 2, 4, 8)), rng.choice((0.3, 0.4, 0.5, 0.6))
    p = load_preset(OLD)
    cost = _fixed_costs_us(p, "state-group", kb, connection=False)
    rate = round(rho * 1e6 / cost / 10) * 10
    s = p.server
    return Exercise(
        4, 4, "model", 8, {"kb": kb, "rate": rate},
        f"The state-group server on the 1999 machine's costs, **one** CPU, clients that each "
        f"keep a connection open and send requests at random (Poisson) times, **{rate:,}** "
        f"requests/s in all, every reply **{kb} KB**. A request costs the worker `parse_us` "
        f"{s.parse_us:g} + `send_us` {s.send_us:g} + {kb} KB x `send_us_per_kb` "
        f"{s.send_us_per_kb:g} + `log_us` {s.log_us:g} = **{cost:g} us** of CPU. The worker "
        "blocks in epoll (no timer tick) whenever a pass finds nothing to do, and a request "
        "that arrives while it is busy waits for the next pass. (a) What share of the CPU is "
        "busy? (b) How many times per request does the worker go to sleep?",
        (Ask("a", "share of the CPU busy"), Ask("b", "sleeps per request")),
        "(a) Utilisation = arrival rate x CPU per request (the utilisation law). (b) The worker "
        "sleeps once per busy period, and a busy period begins with a request that finds it "
        "asleep. Poisson arrivals see the CPU as it is on average (PASTA): busy with the "
        "probability (a), so a share 1 - (a) of the requests wake the worker and each of "
        "those ends in one sleep. The model's worker also pays a switch and a pass per "
        "wake-up, so its busy periods are a little longer: a little fewer sleeps.")


def _run4(ex: Exercise, host: str) -> dict[str, Any]:
    p = explore.tweak(OLD, cpus=1, sleep_timeout_jiffies=0.0, cohort_factor=1.0,
                      server_mbit_s=math.inf, file_sizes=f"fixed:{ex.inputs['kb']}")
    return simulate_point("state-group", p, ex.inputs["rate"], workload="closed",
                          connection="keep-alive", connections=256, requests=REQUESTS,
                          seed=ex.inputs["model_seed"])


def _solve4(ex: Exercise, host: str) -> list[float]:
    row = _run4(ex, host)
    return [row["cpu_util"], row["sleeps_per_request"]]


def _cohort_params(ex: Exercise, factor: float) -> ModelParams:
    return explore.tweak(OLD, cpus=1, server_mbit_s=math.inf, cohort_factor=factor,
                         file_sizes=f"fixed:{ex.inputs['kb']}")


def _run5(ex: Exercise, factor: float) -> dict[str, Any]:
    return simulate_point("state-group", _cohort_params(ex, factor), None, workload="closed",
                          connection="keep-alive", connections=ex.inputs["connections"],
                          requests=REQUESTS, seed=ex.inputs["model_seed"])


def _make5(rng: random.Random) -> Exercise:
    inputs = {"connections": rng.choice((8, 16, 32, 64)), "kb": rng.choice((1, 2, 4)),
              "factor": rng.choice((0.5, 0.6, 0.7, 0.8))}
    s = load_preset(OLD).server
    return Exercise(
        5, 5, "model", 8, inputs,
        f"The state-group server on the 1999 machine's costs, **one** CPU, **"
        f"{inputs['connections']}** keep-alive clients sending as fast as it answers, every "
        f"reply **{inputs['kb']} KB**. Per request it spends `parse_us` {s.parse_us:g} in "
        f"wait_headers, `send_us` {s.send_us:g} + {s.send_us_per_kb:g} us per KB in "
        f"send_data, `log_us` {s.log_us:g} in logging. With `cohort_factor` 1.0 (no cache "
        "benefit) the model serves **{rps:,.0f}** requests/s, in mean batches of "
        "{batch_wait_headers:.1f} (wait_headers), {batch_send_data:.1f} (send_data) and "
        "{batch_logging:.1f} (logging) requests per pass. How many requests/s with "
        f"`cohort_factor` = **{inputs['factor']}** - each request after the first of a batch "
        "pays that share of its state's fixed cost (not the per-KB copy)?",
        (Ask("", "requests/s with the cohort factor"),),
        "At saturation one CPU serves 1 / (CPU per request) requests/s, so work out the CPU "
        "per request (1 / the requests/s at 1.0) and take off what batching saves: in a batch "
        "of B the B - 1 later requests save (1 - cohort_factor) of each state's fixed cost. "
        "Long batches give nearly the whole saving; the per-KB copy and the pass itself do "
        "not shrink. (Batches also change a little when requests get cheaper.)")


def _given5(ex: Exercise) -> dict[str, float]:
    row = _run5(ex, 1.0)
    batches = [f"batch_{NAMES[s]}" for s in (WAIT_HEADERS, SEND_DATA, LOGGING)]
    return {k: float(row[k]) for k in ("rps", *batches)}


def _solve5(ex: Exercise, host: str) -> list[float]:
    return [float(_run5(ex, ex.inputs["factor"])["rps"])]


def _run6(ex: Exercise, host: ModelParams | str, **knobs: Any) -> dict[str, Any]:
    return simulate_point("thread-per-request", explore.tweak(host, cpus=1, **knobs), None,
                          workload="closed", connections=ex.inputs["connections"],
                          requests=REQUESTS, seed=ex.inputs["model_seed"])


def _make6(rng: random.Random) -> Exercise:
    conns = rng.choice((16, 32, 64, 128))
    return Exercise(
        6, 6, "model", 8, {"connections": conns},
        f"This host's model (the packaged `host` preset): the Python pool server on **one** "
        f"CPU, **{conns}** keep-alive clients sending as fast as it answers. Under EEVDF a "
        "request costs **{eevdf_reschedules:.2f}** reschedules: {eevdf_pool:.2f} of them the "
        "hand-off (a pool thread woken on its own lock), {eevdf_mutex:.2f} sleeps on the "
        "GIL's mutex (convoys), the rest waits for the GIL and preemptions. Now take Linux "
        "2.6's first-come-first-served order (`policy=\"fifo\"`) with **no wake-up "
        "preemption** (`wakeup_preempt=False`): a woken thread waits until the running one "
        "blocks. (a) How many reschedules per request? (b) How many of them are sleeps on the "
        "GIL's mutex?",
        (Ask("a", "reschedules per request, no wake-up preemption"),
         Ask("b", "GIL mutex sleeps per request, no wake-up preemption")),
        "With no wake-up preemption nobody is preempted while holding the GIL's mutex, so "
        "there are no convoys: (b) is about 0. The running thread gives up the CPU only by "
        "blocking, and the next one finds the GIL free, so the GIL waits and preemptions go "
        "too: what is left is mostly the hand-off (compare the pool wake-ups given above). "
        "Compare EEVDF's "
        "count: the difference is what preemption at wake-up costs a Python server.")


def _given6(ex: Exercise, host: str) -> dict[str, float]:
    row = _run6(ex, load_preset(host))
    return {"eevdf_reschedules": row["reschedules_per_request"],
            "eevdf_pool": row["pool_wakeups_per_request"],
            "eevdf_mutex": row["gil_mutex_waits_per_request"]}


def _solve6(ex: Exercise, host: str) -> list[float]:
    row = _run6(ex, load_preset(host), policy="fifo", wakeup_preempt=False)
    return [row["reschedules_per_request"], row["gil_mutex_waits_per_request"]]


# -- one place for the notebook and the command line -------------------------------------------

@dataclass(frozen=True)
class Spec:
    """How to pose and answer one exercise."""

    make: Callable[[random.Random], Exercise]  # draw the inputs, write the question
    solve: Callable[[Exercise, str], list[float]]  # the answers, one per Ask
    given: Callable[[Exercise, str], dict[str, float]] | None = None  # model outputs as inputs
    measure: Callable[[Exercise], float] | None = None  # the live count beside the answer


EXERCISES: dict[int, Spec] = {
    1: Spec(_make1, _solve1, measure=_measure1),
    2: Spec(_make2, _solve2),
    3: Spec(_make3, _solve3),
    4: Spec(_make4, _solve4),
    5: Spec(_make5, _solve5, given=lambda ex, host: _given5(ex)),
    6: Spec(_make6, _solve6, given=_given6),
}


@functools.lru_cache(maxsize=64)
def exercise(seed: int, number: int, host: str = HOST) -> Exercise:
    """Exercise *number* of student *seed*: inputs drawn from ``Random(seed, number)``, the
    question filled in (with any model outputs it gives as inputs)."""
    if number not in EXERCISES:
        raise ValueError(f"no exercise {number}: choose from {', '.join(map(str, EXERCISES))}")
    spec = EXERCISES[number]
    ex = spec.make(random.Random(f"arch-sim lesson {seed} {number}"))
    ex = replace(ex, inputs={**ex.inputs, "model_seed": 1000 * seed + number})
    if spec.given is not None:
        values = spec.given(ex, host)
        ex = replace(ex, given=values, question=ex.question.format(**values))
    return ex


def scenario(seed: int, host: str = HOST) -> list[Exercise]:
    """Every exercise of student *seed*."""
    return [exercise(seed, n, host) for n in EXERCISES]


@functools.lru_cache(maxsize=64)
def answers(seed: int, number: int, host: str = HOST) -> tuple[float, ...]:
    """The answers to exercise *number* of student *seed*, one per :class:`Ask`."""
    ex = exercise(seed, number, host)
    return tuple(float(v) for v in EXERCISES[number].solve(ex, host))


def measure(seed: int, number: int, host: str = HOST) -> float | None:
    """Run a live-machine exercise here and return its count (None for a model exercise)."""
    spec = EXERCISES[number]
    return None if spec.measure is None else spec.measure(exercise(seed, number, host))


def key_lines(seed: int, host: str = HOST) -> list[str]:
    """The answer key, one line per predicted quantity: ``Exercise 4b: sleeps per request:
    0.55`` - the same text the notebook's answer cells begin their lines with."""
    out = []
    for ex in scenario(seed, host):
        for ask, value in zip(ex.asks, answers(seed, ex.number, host), strict=True):
            out.append(f"{ex.label(ask)}: {format_number(value)}")
    return out
