"""How long does a CPU that has idled take to run the thread a packet wakes, by how long it idled?

    python benchmarks/wake_latency.py [--gaps 10,30,100,300,1000,3000,10000] [--rounds 3]
                                      [--samples 400] [--cpu 0 --other-cpu 1] [--json FILE]

``arch-sim calibrate`` measures the preset's ``wakeup_latency_us`` once, as the median time
from a pipe write on one CPU to the blocked reader running on the other, with that CPU idle for
about 0.25 ms before each write (``arch_sim.hostbench.wakeup_latency_us``).  The model uses that
one number for every wake-up of an idle CPU, however long it idled.  This script measures the
same latency with the waker spinning ``gap`` between writes (so the reader's CPU idles about
that long), for each gap, in ``--rounds`` interleaved rounds with the gaps' order rotated, and
prints per gap the median of the rounds' medians and each round's median (``--json``: the
rounds' p99 too).
In a virtual machine an idle CPU halts and the hypervisor deschedules it; how long it takes to
come back can grow with how long it was away.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arch_sim.hostbench import wakeup_latency_us  # noqa: E402

DEFAULT_GAPS = "10,30,100,300,1000,3000,10000"


def gaps_of(text: str) -> list[float]:
    """The comma-separated idle times (us); ValueError naming the fix if there are none or one
    is not a number >= 0."""
    try:
        gaps = [float(g) for g in text.split(",") if g.strip()]
    except ValueError:
        gaps = []
    if not gaps or any(not g >= 0 for g in gaps):
        raise ValueError(f"--gaps {text!r}: give idle times in microseconds, e.g. "
                         f"{DEFAULT_GAPS}")
    return gaps


def measure(gaps: list[float], rounds: int, samples: int, cpu: int,
            other: int) -> dict[float, list[dict]]:
    """Per gap, one ``wakeup_latency_us`` result per round (the gaps rotated round by round)."""
    found: dict[float, list[dict]] = {g: [] for g in gaps}
    for r in range(rounds):
        order = gaps[r % len(gaps):] + gaps[:r % len(gaps)]
        for gap in order:
            found[gap].append(wakeup_latency_us(samples=samples, waker_cpu=other,
                                                sleeper_cpu=cpu, gap_us=gap))
    return found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gaps", default=DEFAULT_GAPS, help="idle times to try, us (comma list)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=400, help="wake-ups per gap and round")
    ap.add_argument("--cpu", type=int, default=0, help="the sleeper's CPU (the server's)")
    ap.add_argument("--other-cpu", type=int, default=1, help="the waker's CPU (wrk's)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    try:
        gaps = gaps_of(args.gaps)
        if args.rounds < 1 or args.samples < 10:
            raise ValueError("give --rounds >= 1 and --samples >= 10")
    except ValueError as e:
        print(f"wake_latency: {e}", file=sys.stderr)
        return 2
    found = measure(gaps, args.rounds, args.samples, args.cpu, args.other_cpu)
    print(f"{'idle, us':>9}  {'median wake-up latency, us (rounds)':<40}")
    rows = []
    for gap in gaps:
        medians = [r["median_us"] for r in found[gap]]
        rows.append({"gap_us": gap, "median_us": statistics.median(medians),
                     "round_medians_us": medians,
                     "round_p99_us": [r["p99_us"] for r in found[gap]]})
        print(f"{gap:>9g}  {statistics.median(medians):6.1f}  "
              f"({', '.join(f'{m:.1f}' for m in medians)})")
    if args.json:
        args.json.write_text(json.dumps({"cpu": args.cpu, "other_cpu": args.other_cpu,
                                         "samples": args.samples, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
