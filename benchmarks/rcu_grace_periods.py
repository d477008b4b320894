"""RCU's grace-period kernel thread on the server's CPU, per closed TCP connection, measured
without any HTTP server: the input of :mod:`arch_sim.models.rcu`.

    PYTHONPATH=. python benchmarks/rcu_grace_periods.py [--seconds 3] [--rates 25,50,...]
        [--write arch_sim/models/presets/host.rcu.json]

The measurement and the fit are :mod:`arch_sim.rcubench`'s (its docstring says how), the same
that ``arch-sim calibrate`` runs to write ``host.rcu.json`` beside the preset it writes; this
script runs them alone and prints the JSON (``--write``: into a file too).  Needs root and perf.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arch_sim.argtypes import OneLineParser  # noqa: E402
from arch_sim.rcubench import RATES, RcuUnavailable, measure, record  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--rates", default=",".join(f"{r:g}" for r in RATES))
    p.add_argument("--write", type=Path, help="write the fitted inputs to this JSON file")
    args = p.parse_args(argv)
    try:
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError:
        p.error(f"--rates {args.rates!r}: give rates like 25,100,400")
    if args.seconds <= 0 or any(r <= 0 for r in rates):
        p.error("--seconds and every rate must be > 0")
    try:
        rows = measure(rates, args.seconds)
    except RcuUnavailable as e:
        print(f"rcu_grace_periods: {e}", file=sys.stderr)
        return 2
    out = record(rows, " ".join(["benchmarks/rcu_grace_periods.py", *sys.argv[1:]]),
                 "benchmarks/rcu_grace_periods.py")
    text = json.dumps(out, indent=1)
    if args.write:
        args.write.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
