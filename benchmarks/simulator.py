"""Simulator speed: simulated requests per wall-second of both models at 50% load on one core.

    .venv/bin/python benchmarks/simulator.py [--presets host,linux-2.2-1999] [--requests 20000]

For each preset and architecture, the offered rate that loads one simulated CPU to 50% (open
Poisson workload), ``--seeds`` runs of ``--requests`` requests each; the best run counts (the
machine is shared: a slower run measured the neighbours).  Prints a table and, with ``--out``,
writes it as JSON with the host it ran on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from arch_sim.models import load_preset
from arch_sim.models.runner import rate_for_utilisation, simulate_point
from arch_sim.runinfo import git_commit, host_info, now_iso, write_json_atomic

ARCHS = ("thread-per-request", "state-group")


def measure(preset: str, arch: str, requests: int, seeds: int) -> dict:
    params = load_preset(preset)
    rate = rate_for_utilisation(arch, params, 0.5, cpus=1)
    runs = [simulate_point(arch, params, rate, cpus=1, requests=requests, seed=seed)
            for seed in range(1, seeds + 1)]
    best = max(runs, key=lambda r: r["sim_requests_per_wall_s"])
    return {"preset": preset, "arch": arch, "offered_rps": rate, "cpu_util": best["cpu_util"],
            "requests": requests, "runs": seeds,
            "sim_requests_per_wall_s": best["sim_requests_per_wall_s"],
            "all_runs": [r["sim_requests_per_wall_s"] for r in runs]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="host,linux-2.2-1999")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    args = parser.parse_args(argv)
    rows = [measure(preset, arch, args.requests, args.seeds)
            for preset in args.presets.split(",") for arch in ARCHS]
    print(f"{'preset':16s} {'arch':20s} {'offered req/s':>13s} {'util':>5s} {'req/wall-s':>11s}")
    for r in rows:
        print(f"{r['preset']:16s} {r['arch']:20s} {r['offered_rps']:13,.0f} "
              f"{r['cpu_util']:5.2f} {r['sim_requests_per_wall_s']:11,.0f}")
    if args.out:
        write_json_atomic(args.out, {"kind": "simulator-speed", **host_info(),
                                     "git": git_commit(), "when": now_iso(), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
