"""Wall time of a whole ``arch-sim simulate`` sweep, written beside the sweep's own files.

    .venv/bin/python benchmarks/sweep_time.py --out results/perf-sweep-DATE [-- SIMULATE_ARGS]

Runs ``python -m arch_sim.cli simulate --out OUT SIMULATE_ARGS`` (default: the default sweep
with ``--reps 3 --jobs 2``), times it from start to exit (process start, the runs, the CSV and
the figures) and writes ``timing.json`` into OUT: the command, its wall time and the host.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from arch_sim.runinfo import git_commit, host_info, now_iso, write_json_atomic

DEFAULT_ARGS = ["--reps", "3", "--jobs", "2"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("simulate_args", nargs="*", default=DEFAULT_ARGS)
    args = parser.parse_args(argv)
    command = [sys.executable, "-m", "arch_sim.cli", "simulate", "--out", str(args.out),
               *args.simulate_args]
    started = now_iso()
    wall = time.perf_counter()
    done = subprocess.run(command, check=False)
    wall = time.perf_counter() - wall
    if done.returncode != 0:
        print(f"simulate failed (exit {done.returncode})", file=sys.stderr)
        return done.returncode
    shown = "arch-sim simulate " + " ".join(command[4:])
    write_json_atomic(args.out / "timing.json", {
        "kind": "sweep-timing", "command": shown, "wall_s": wall, "start": started,
        "end": now_iso(), "git": git_commit(), **host_info()})
    print(f"{shown}: {wall:.1f} s wall")
    return 0


if __name__ == "__main__":
    sys.exit(main())
