"""Are the models' rows unchanged?  Replays committed simulated rows and, where a change of the
models alters the order of random draws, compares means over seeds with their run-to-run CI.

    .venv/bin/python benchmarks/check_rows.py replay [--points 3] [FOLDER ...]
    .venv/bin/python benchmarks/check_rows.py seeds --against REF_GIT_REV [--seeds 10]

``replay`` re-simulates committed rows (``arch_sim.results.replay``) and prints how many are
``same`` (every compared column within 1e-9, relative).  The default folders are the current
reference runs; three rows of reproduce-full-2026-11-30's eras (unpaced, state-group, a
connection per request) predate the clients' answering a reply as of its own time, so 33 of its
36 replay the same.  ``seeds`` runs the same points with
``--seeds`` seeds in this tree and in a checkout of ``REF_GIT_REV`` (``git worktree``) and
prints, per point and column, both means, their difference and the 95% CI of that difference
(Welch): a change that only reorders random draws keeps the difference inside it.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FOLDERS = ("results/fidelity-2026-11-30-b", "results/perf-sweep-2026-11-30-c",
                   "results/reproduce-full-2026-11-30/simulated-eras")
#: (preset, arch, load) points of the ``seeds`` check: both host models at 50% and 90% of
#: one CPU (closed, the preset's workload) and the 1999 preset (open) at a low and a high load
POINTS = (("host", "thread-per-request", 6000.0), ("host", "state-group", 6000.0),
          ("host", "thread-per-request", 11000.0), ("host", "state-group", 16000.0),
          ("linux-2.2-1999", "thread-per-request", 1000.0),
          ("linux-2.2-1999", "state-group", 1000.0),
          ("linux-2.2-1999", "thread-per-request", 4000.0),
          ("linux-2.2-1999", "state-group", 4000.0))
COLUMNS = ("rps", "reschedules_per_request", "cpu_switches_per_request", "lat_p50_ms",
           "lat_p99_ms", "cpu_util")


def replay(folders: list[str], points: int) -> int:
    from arch_sim.results import replay as run_replay

    bad = 0
    for folder in folders:
        df = run_replay(ROOT / folder, points=points)
        same = int(df["same"].sum())
        print(f"{folder}: {same} of {len(df)} replayed rows same")
        for _, row in df[~df["same"]].iterrows():
            bad += 1
            cols = {k: v for k, v in row.items() if "(now)" in k or "(committed)" in k}
            print("  differs:", row.get("arch"), row.get("target_rps"), cols)
    return 1 if bad else 0


SAMPLE = """
import json, sys
from arch_sim.models import load_preset, simulate_point
points, seeds, requests, cols = json.loads(sys.argv[1])
out = []
for preset, arch, load in points:
    rows = [simulate_point(arch, load_preset(preset), load, requests=requests, seed=s, cpus=1)
            for s in range(1, seeds + 1)]
    out.append({c: [r[c] for r in rows] for c in cols})
print(json.dumps(out))
"""


def sample(tree: Path, seeds: int, requests: int) -> list[dict[str, list[float]]]:
    arg = json.dumps([POINTS, seeds, requests, COLUMNS])
    done = subprocess.run([sys.executable, "-c", SAMPLE, arg], cwd=tree, check=True,
                          capture_output=True, text=True, env={"PYTHONPATH": str(tree)})
    return json.loads(done.stdout)


def welch(a: list[float], b: list[float]) -> tuple[float, float]:
    """(difference of means b - a, half-width of its 95% CI)."""
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return statistics.fmean(b) - statistics.fmean(a), 2.1 * se  # t(0.975, >= 9 dof) < 2.27


def seeds(rev: str, n: int, requests: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ref = Path(tmp) / "ref"
        subprocess.run(["git", "worktree", "add", "--detach", str(ref), rev], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            before = sample(ref, n, requests)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(ref)], cwd=ROOT,
                           check=True, capture_output=True)
    after = sample(ROOT, n, requests)
    outside = 0
    print(f"{'point':42s} {'column':26s} {'before':>10s} {'after':>10s} {'diff':>9s} "
          f"{'95% CI':>8s}")
    for (preset, arch, load), b, a in zip(POINTS, before, after, strict=True):
        for col in COLUMNS:
            diff, half = welch(b[col], a[col])
            flag = "" if abs(diff) <= half else "  OUTSIDE"
            outside += bool(flag)
            print(f"{preset + ' ' + arch + f' {load:g}':42s} {col:26s} "
                  f"{statistics.fmean(b[col]):10.4g} {statistics.fmean(a[col]):10.4g} "
                  f"{diff:9.3g} {half:8.3g}{flag}")
    total = len(POINTS) * len(COLUMNS)
    print(f"{total - outside} of {total} differences inside their 95% CI "
          f"(about {0.05 * total:.1f} outside expected by chance)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    rp = sub.add_parser("replay")
    rp.add_argument("--points", type=int, default=3)
    rp.add_argument("folders", nargs="*", default=list(DEFAULT_FOLDERS))
    sp = sub.add_parser("seeds")
    sp.add_argument("--against", required=True, help="git revision to compare with")
    sp.add_argument("--seeds", type=int, default=10)
    sp.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args(argv)
    if args.cmd == "replay":
        return replay(args.folders, args.points)
    return seeds(args.against, args.seeds, args.requests)


if __name__ == "__main__":
    sys.exit(main())
