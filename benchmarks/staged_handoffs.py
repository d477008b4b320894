"""What the staged server's hand-offs cost its threads, from each thread's own CPU clock.

    .venv/bin/python benchmarks/staged_handoffs.py [--rate 100,max] [--window 4] [--warmup 1.5]
        [--connections 64] [--file-set specweb99]

The measurement is :mod:`arch_sim.handoffs` (``arch-sim calibrate`` makes it unpaced and puts
the model's four hand-off costs in the preset): the real staged server on CPU 0 (wrk on CPU 1)
with its queue and poll calls wrapped in reads of the calling thread's CPU clock.  This prints,
per request and per call, by thread group, each call kind's mean (``get_ready``,
``get_block`` split into ``pre``, ``wait`` and ``post``, ``put_wake``, ``put_nowake``,
``poll``) beside the group's whole CPU from ``/proc/PID/task/TID/schedstat``, and the costs the
preset would take from it.  A measurement of mechanism, not a figure for the README: the
wrappers themselves add CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arch_sim import handoffs  # noqa: E402
from arch_sim.argtypes import (  # noqa: E402
    LIST_HELP,
    ListAction,
    OneLineParser,
    positive_float,
    positive_int,
)


def report(rate: float | None, found: dict) -> None:
    requests = max(found["requests"], 1)
    print(f"rate {rate or 'max'}: {found['requests']} requests in the window "
          f"(a clock read {found['clock_read_us']:.2f} us)")
    for group in handoffs.GROUPS:
        keys = found["calls"].get(group, {})
        parts = [f"{k} {us / n:.1f} us x {n / requests:.2f}"
                 for k in handoffs.KEYS for us, n in [keys.get(k, (0.0, 0))] if n]
        print(f"  {group:13s} {found['cpu_us'].get(group, 0.0) / requests:6.1f} us a request | "
              + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    from arch_sim.harness import fileset
    from arch_sim.harness.plan import load_item
    from arch_sim.harness.wrk import WrkError, find_wrk
    from arch_sim.hostbench import context_switch_us, futex_wake_us

    p = OneLineParser(prog="staged_handoffs.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", action=ListAction, item=load_item, default=[100.0, None],
                   metavar="RPS", help=f"offered req/s or 'max' (unpaced), {LIST_HELP} "
                   "(default 100,max)")
    p.add_argument("--window", type=positive_float, default=4.0,
                   help="seconds measured (default 4)")
    p.add_argument("--warmup", type=positive_float, default=1.5,
                   help="seconds of load before them (default 1.5)")
    p.add_argument("--connections", type=positive_int, default=64)
    p.add_argument("--file-set", default="specweb99", choices=fileset.FILE_SETS)
    args = p.parse_args(argv)
    try:
        find_wrk()
    except WrkError as exc:
        p.error(str(exc))
    switch_us = context_switch_us(cpu=0).switch_us
    wake_us = futex_wake_us(cpu=0)["wake_us"]
    for rate in args.rate:
        found = handoffs.summarize(handoffs.run(args.window, file_set=args.file_set,
                                                connections=args.connections,
                                                warmup=args.warmup, rate=rate))
        report(rate, found)
        costs = handoffs.preset_costs(found, switch_us, wake_us)
        print(f"  as the preset would take them (switch_us {switch_us:.2f}, wake_us "
              f"{wake_us:.2f}): " + ", ".join(f"{k} {v:.1f}" for k, (v, _) in costs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
