"""How well does the measurement agree with itself?  ``arch-sim bench`` runs of the same servers
at the same points, judged against each other by the rule the models are judged by.

    .venv/bin/python benchmarks/bench_repeat.py RUN_A RUN_B [RUN_C ...] [--model SIM] [--list]
    .venv/bin/python benchmarks/bench_repeat.py RUN [RUN ...] --halves

The fidelity rule (``arch_sim.fidelity.within``: |ln(b / a)| <= ln 1.10, or within 0.01 per
request) is applied to every pair of runs, the earlier named as the measurement, per regime,
design, count and load, over the four designs of our own servers.  On a shared machine a point
moves between runs hours apart by more than its windows' 95% interval says (the windows of one
point run back to back), so the pairs' counts are what a model exact in the mean could hope for
against any one run.

``--model SIM`` (a ``simulate --like`` folder) judges the model's rows against each run and
prints how many points it meets in every run and in at least one; ``--list`` prints the points
where two runs disagree (or, with ``--model``, the points the model misses in every run: the
misses no run-to-run drift explains).  ``--halves`` judges each run's even-numbered windows
against its odd ones (a run against itself: the windows of a point run back to back), and, with
two or more runs, the same half of each run against the others, so that both comparisons have
the same number of windows.  The judging is :mod:`arch_sim.repeatability`'s, which
``arch-sim simulate --like A --like B`` also writes into its ``fidelity.md``.  Runs that timed
the machine's reference work (``reference_us``, :mod:`arch_sim.machine_state`) print its range
first, and a line where two runs' medians differ by more than 25%.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from arch_sim import ALL_ARCHS  # noqa: E402
from arch_sim.compare import reference_times  # noqa: E402
from arch_sim.machine_state import same_speed  # noqa: E402
from arch_sim.repeatability import agreement, halves, model_against_runs  # noqa: E402


class Refused(Exception):
    """A bad argument: one line on stderr, exit 2."""


def rows(folder: str, name: str = "measurements.csv") -> pd.DataFrame:
    path = Path(folder) / name
    if not path.is_file():
        raise Refused(f"{path} not found: give the folder of an arch-sim "
                      + ("bench run" if name == "measurements.csv" else "simulate --like run"))
    df = pd.read_csv(path)
    return df[df["arch"].isin(ALL_ARCHS)]


def summary(table: pd.DataFrame) -> list[str]:
    lines = [f"{int(table['within'].sum())} of {len(table)} points within 10% "
             "(or 0.01 per request)"]
    for (regime, count), group in table.groupby(["regime", "count"], sort=False):
        lines.append(f"  {regime:<6} {count:<6} {int(group['within'].sum()):>2} of {len(group)}")
    for arch, group in table.groupby("arch", sort=False):
        lines.append(f"  {arch:<20} {int(group['within'].sum()):>2} of {len(group)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="RUN", help="arch-sim bench folders (two or more)")
    ap.add_argument("--model", metavar="SIM", help="a simulate --like folder to judge as well")
    ap.add_argument("--halves", action="store_true",
                    help="judge each run's even windows against its odd ones, and the runs' "
                         "halves against each other")
    ap.add_argument("--list", action="store_true",
                    help="print the disagreeing points (with --model: the model's misses in "
                         "every run)")
    args = ap.parse_args(argv)
    try:
        if args.halves:
            if args.model:
                raise Refused("--halves judges the runs, not a model: leave out --model")
            return report_halves(args)
        if len(args.runs) < 2:
            raise Refused("give at least two bench runs (or one with --halves)")
        return report(args)
    except Refused as e:
        print(f"bench_repeat: {e}", file=sys.stderr)
        return 2


def speeds(runs: dict[str, pd.DataFrame]) -> list[str]:
    """Each run's machine speed where it recorded one (``reference_us``, arch_sim.machine_state),
    and a line when two runs' medians differ by more than the tolerance: they ran on two
    machines, so their disagreement is not the measurement's own."""
    medians, lines = {}, []
    for name, df in runs.items():
        ref = reference_times(df)
        if not ref.empty:
            medians[name] = float(ref.median())
            lines.append(f"{name}: the reference work took {ref.min():.1f}-{ref.max():.1f} us "
                         f"(median {medians[name]:.1f})")
    for (na, a), (nb, b) in itertools.combinations(medians.items(), 2):
        if not same_speed(a, b):
            lines.append(f"{nb} and {na} ran the reference work {b / a:.2f} times as long: "
                         "two machines, not one measured twice")
    return lines


def report(args: argparse.Namespace) -> int:
    runs = {Path(r).name: rows(r) for r in args.runs}
    for line in speeds(runs):
        print(line)
    for (na, a), (nb, b) in itertools.combinations(runs.items(), 2):
        table = agreement(a, b)
        if table.empty:
            raise Refused(f"{na} and {nb} share no point")
        lines = summary(table)
        print(f"{nb} against {na}: {lines[0]}")
        print("\n".join(lines[1:]))
        if args.list and not args.model:
            for _, r in table[~table["within"]].iterrows():
                print(f"    {r['regime']:<6} {r['count']:<6} {r['arch']:<20} {r['load']:>5}: "
                      f"{r['measured']:.3f} (+-{r['measured_ci']:.3f}) then "
                      f"{r['simulated']:.3f} (+-{r['simulated_ci']:.3f}), "
                      f"{100 * r['rel_diff']:+.0f}%")
    if args.model:
        sim = rows(args.model, "simulated.csv")
        table = model_against_runs(runs, sim)
        for name in runs:
            print(f"the model against {name}: {int(table[f'within_{name}'].sum())} of "
                  f"{len(table)}")
        print(f"the model within 10% of every run at {int(table['every'].sum())} of "
              f"{len(table)} points, of at least one at {int(table['some'].sum())}")
        if args.list:
            print("missed in every run (model; runs):")
            for _, r in table[~table["some"]].iterrows():
                measured = " / ".join(f"{r[n]:.3f}" for n in runs)
                print(f"    {r['regime']:<6} {r['count']:<6} {r['arch']:<20} {r['load']:>5}: "
                      f"{r['simulated']:.3f}; {measured}")
    return 0


def report_halves(args: argparse.Namespace) -> int:
    split = {}
    for r in args.runs:
        try:
            split[Path(r).name] = halves(rows(r))
        except ValueError as e:
            raise Refused(f"{r}: {e}") from None
    for name, (even, odd) in split.items():
        table = agreement(even, odd)
        print(f"{name}, odd windows against even: {summary(table)[0]}")
    for side, label in ((0, "even"), (1, "odd")):
        for (na, a), (nb, b) in itertools.combinations(split.items(), 2):
            table = agreement(a[side], b[side])
            print(f"{nb} against {na}, {label} windows of each: {summary(table)[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
