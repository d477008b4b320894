"""How far a measurement agrees with itself, and a model with each of several measurements.

On a shared machine a point measured again hours later moves by more than its own windows' 95%
interval says (docs/FIDELITY.md, "The measurement against itself"), so a model judged against
one bench run is judged partly against that run's drift.  Given several runs of the same points
(``arch-sim simulate --like A --like B``), this module judges each pair of runs by the fidelity
rule (:func:`arch_sim.fidelity.within`), the model against each run, and counts the points the
model meets in every run and in at least one: a point missed in every run is the model's own.
"""

from __future__ import annotations

import itertools

import pandas as pd

from arch_sim.fidelity import fidelity

KEY = ["regime", "count", "arch", "load"]


def runs(measured: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The measured rows per bench run (``run_id``), in the order they first appear."""
    if "run_id" not in measured.columns:
        return {"measured": measured}
    ids = measured["run_id"].fillna("").astype(str)
    return {name: measured[ids == name] for name in dict.fromkeys(ids)}


def agreement(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """The fidelity table of rows ``b`` against run ``a`` (``a`` in the measured columns), only
    the points both have."""
    table = fidelity(a, b)
    return table[table["simulated"].notna()]


def halves(measured: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One run's windows split in two: the even-numbered repetitions of every point and the
    odd ones (``rep`` 0, 2, ... and 1, 3, ...).  The windows of a point run back to back, so
    judging the halves against each other shows how far a run agrees with itself; the gap to
    how far two runs agree is drift between the runs, which more windows would not take out."""
    if "rep" not in measured.columns:
        raise ValueError("the rows have no rep column: not one bench run's windows")
    even = measured["rep"] % 2 == 0
    if even.all() or not even.any():
        raise ValueError("every point has one window: nothing to split")
    return measured[even], measured[~even]


def self_agreement_markdown(measured: pd.DataFrame) -> str:
    """A section for ``fidelity.md``: each bench run's odd windows judged against its even ones
    by the fidelity rule (:func:`halves`) - about as many points as a model exact in the mean
    could meet against that run.  "" when no run has two windows a point."""
    lines = []
    for name, rows in runs(measured).items():
        try:
            even, odd = halves(rows)
        except ValueError:
            continue
        t = agreement(even, odd)
        if len(t):
            lines.append(f"- `{name}`: {int(t['within'].sum())} of {len(t)} points")
    if not lines:
        return ""
    return "\n".join([
        "## The measurement against itself", "",
        "Each point's windows split in two, the even-numbered against the odd ones, judged by "
        "the same rule.  The windows of a point run back to back, so a line is about the most "
        "a model exact in the mean could expect to meet of that run; runs hours apart agree "
        "less (drift between them).", "", *lines]) + "\n"


def model_against_runs(by_run: dict[str, pd.DataFrame], simulated: pd.DataFrame) -> pd.DataFrame:
    """Per point: the model's value (``simulated``), each run's (a column per run name), whether
    the model is within the rule of each (``within_NAME``), of ``every`` run and of ``some``."""
    out = None
    for name, measured in by_run.items():
        t = agreement(measured, simulated).set_index(KEY)
        part = t[["measured", "within"]].rename(columns={"measured": name,
                                                         "within": f"within_{name}"})
        out = part.join(t[["simulated"]]) if out is None else out.join(part, how="inner")
    if out is None:
        return pd.DataFrame(columns=[*KEY, "simulated", "every", "some"])
    flags = out[[f"within_{n}" for n in by_run]]
    return out.assign(every=flags.all(axis=1), some=flags.any(axis=1)).reset_index()


def repeatability_markdown(measured: pd.DataFrame, simulated: pd.DataFrame) -> str:
    """A section for ``fidelity.md`` when the measurement holds two or more runs ("" with one):
    the runs against each other, the model against each, and the points it misses in every run.
    """
    by_run = runs(measured)
    if len(by_run) < 2:
        return ""
    lines = ["## Against each run", "",
             f"The measured side above pools {len(by_run)} runs: "
             + ", ".join(f"`{n}`" for n in by_run) + ".  The same rule, run against run and the "
             "model against each run:", ""]
    for (na, a), (nb, b) in itertools.combinations(by_run.items(), 2):
        t = agreement(a, b)
        lines.append(f"- `{nb}` against `{na}`: {int(t['within'].sum())} of {len(t)} points")
    table = model_against_runs(by_run, simulated)
    for name in by_run:
        lines.append(f"- the model against `{name}`: {int(table[f'within_{name}'].sum())} of "
                     f"{len(table)}")
    lines.append(f"- the model within 10% of every run at {int(table['every'].sum())} of "
                 f"{len(table)} points, of at least one at {int(table['some'].sum())}")
    missed = table[~table["some"]]
    if len(missed):
        lines += ["", "Missed in every run (the model's own misses):", "",
                  "| regime | count | design | load | simulated | "
                  + " | ".join(f"`{n}`" for n in by_run) + " |",
                  "|---|---|---|---|---:|" + "---:|" * len(by_run)]
        for _, r in missed.iterrows():
            lines.append(f"| {r['regime']} | {r['count']} | {r['arch']} | {r['load']} | "
                         f"{r['simulated']:.3f} | "
                         + " | ".join(f"{r[n]:.3f}" for n in by_run) + " |")
    return "\n".join(lines) + "\n"
