"""An experiment, not in the model: the state-group connection paths going cold on their own.

The real worker's wake cycle that accepts one connection costs 26 us warm and much more after
an idle CPU, and so does the logging state's close (``benchmarks/sg_pass_cost.py``, in
process: the same work after 0.1-10 ms of sleep).  The model's refill is one per task
(``cold_refill_us``, solved from keep-alive runs, which never accept or close), taken for the
idle since the task last woke; so a cycle woken by a new connection right after the worker
slept is nearly warm in the model whatever the load.  Here an accept batch pays a refill of its
own for the CPU's idle time since the worker last accepted, ``refill * (1 - exp(-idle /
decay))``, and a logging batch that closes connections one for the idle since it last closed,
each with refill and decay fitted to its cold curve measured in process
(``hostbench.fit_cold_decay``); the host model is run with a connection per request beside the
unchanged one (``--paths accept`` for the accept path alone).

    python benchmarks/sg_accept_cold.py --cpu 0 --rounds 3 500 2000 5000
"""

from __future__ import annotations

import math
import os
import statistics
import sys
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, too

from arch_sim.argtypes import OneLineParser, positive_float  # noqa: E402
from arch_sim.hostbench import fit_cold_decay  # noqa: E402
from arch_sim.models import simulate_point  # noqa: E402
from arch_sim.models import state_group as sg  # noqa: E402
from benchmarks.sg_pass_cost import GAPS_MS, measure  # noqa: E402


def cold_curve(rows: list[dict[str, float]], name: str) -> tuple[list[float], float]:
    """Median (over the measurements ``rows``) extra us of ``name`` (``accept_cycle``,
    ``close``) after each gap, and its warm us."""
    warm = statistics.median(r[f"{name}_us"] for r in rows)
    extra = [max(0.0, statistics.median(r[f"{name}_after_{g:g}ms_us"] for r in rows) - warm)
             for g in GAPS_MS]
    return extra, warm


def _refill(worker: sg.Worker, key: str, fit: tuple[float, float]) -> float:
    """The refill (s) of one connection path (``key``) now, for the CPU's idle time since the
    worker last ran it; that path is warm from now."""
    decay_ms, refill_us = fit
    cpu = worker.task.cpu
    idle = cpu.idle_total - getattr(worker, key, -math.inf)
    setattr(worker, key, cpu.idle_total)
    return -refill_us * 1e-6 * math.expm1(-idle / (decay_ms * 1e-3))


@contextmanager
def paths_go_cold(accept_fit: tuple[float, float], close_fit: tuple[float, float] | None):
    """The accept stage (and the logging stage when it closes) pays its path's own refill
    (see the module docstring); a fit is (decay_ms, refill_us)."""
    stages = sg.STAGES
    accept, log = stages[0], stages[4]

    def cold_accept(self: sg.Worker, p: sg.Pass) -> None:
        if self.model.backlog:
            p.t += _refill(self, "accept_warm", accept_fit)
        accept(self, p)

    def cold_log(self: sg.Worker, p: sg.Pass) -> None:
        if close_fit is not None and any(req.closes for req in p.logging):
            p.t += _refill(self, "close_warm", close_fit)
        log(self, p)

    sg.STAGES = (cold_accept, *stages[1:4], cold_log)
    try:
        yield
    finally:
        sg.STAGES = stages


def point(rate: float) -> str:
    row = simulate_point("state-group", "host", rate, workload="closed", connection="close",
                         requests=6000, bench_window_s=3.0)
    cpu_us = row["cpu_util"] * 1e6 / row["rps"]
    return f"{row['reschedules_per_request']:.3f} ({cpu_us:.0f} us)"


def main(argv: list[str]) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("rates", nargs="*", type=positive_float, metavar="RATE",
                        default=[500.0, 2000.0, 5000.0], help="requests/s (default 500 2000 5000)")
    parser.add_argument("--cpu", type=int, default=0, help="CPU for the in-process measurement")
    parser.add_argument("--rounds", type=int, default=3, help="cold-curve measurements (median)")
    parser.add_argument("--paths", choices=("accept", "both"), default="both",
                        help="the accept path alone, or accept and close (default)")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu})
    rows = [measure() for _ in range(args.rounds)]
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
    fits = {}
    for name in ("accept_cycle", "close"):
        extra, warm = cold_curve(rows, name)
        fits[name] = fit_cold_decay(GAPS_MS, extra)
        print(f"{name}: warm {warm:.1f} us; extra after "
              + ", ".join(f"{g:g} ms {e:.1f}" for g, e in zip(GAPS_MS, extra, strict=True))
              + f" us; fit: refill {fits[name][1]:.0f} us, decay {fits[name][0]:.2f} ms")
    close_fit = fits["close"] if args.paths == "both" else None
    for rate in args.rates:
        base = point(rate)
        with paths_go_cold(fits["accept_cycle"], close_fit):
            cold = point(rate)
        print(f"{rate:g}/s: switches per request (CPU per request) model {base}, "
              f"with the {args.paths} path(s)' own refill {cold}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
