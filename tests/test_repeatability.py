"""arch_sim.repeatability: several bench runs judged against each other, and the model against
each - in fidelity.md when ``simulate --like`` is given two or more runs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from arch_sim import ALL_ARCHS
from arch_sim.compare import write_comparison
from arch_sim.repeatability import model_against_runs, repeatability_markdown, runs

RUN = Path(__file__).resolve().parents[1] / "results" / "archs-bench-2026-11-30-c"


def _two_runs() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The committed run as run ``a``, and as run ``b`` with the state-group keep-alive 500/s
    server switches 20% higher; the model's rows are run ``a``'s."""
    a = pd.read_csv(RUN / "measurements.csv")
    a = a[a["arch"].isin(ALL_ARCHS)].assign(run_id="a")
    b = a.assign(run_id="b")
    hit = ((b["arch"] == "state-group") & (b["connection_mode"] == "keep-alive")
           & (b["target_rps"] == 500))
    b.loc[hit, "reschedules_per_request"] *= 1.2
    return pd.concat([a, b], ignore_index=True), a.assign(source="simulated")


def test_the_model_is_judged_against_each_run_and_its_misses_in_every_run_listed():
    measured, simulated = _two_runs()
    assert list(runs(measured)) == ["a", "b"]
    table = model_against_runs(runs(measured), simulated)
    assert len(table) == 80 and table["within_a"].all()
    assert int(table["within_b"].sum()) == 79 and int(table["every"].sum()) == 79
    text = repeatability_markdown(measured, simulated)
    assert "- `b` against `a`: 79 of 80 points" in text
    assert "- the model against `a`: 80 of 80" in text
    assert "every run at 79 of 80 points, of at least one at 80" in text
    assert "Missed in every run" not in text  # the model meets run a everywhere
    # a model 30% off at that point misses it in both runs
    off = simulated.copy()
    hit = ((off["arch"] == "state-group") & (off["connection_mode"] == "keep-alive")
           & (off["target_rps"] == 500))
    off.loc[hit, "reschedules_per_request"] *= 0.7
    text = repeatability_markdown(measured, off)
    assert "Missed in every run" in text and "| today | server | state-group | 500 |" in text


def test_fidelity_md_gets_the_section_with_two_runs_and_not_with_one(tmp_path):
    measured, simulated = _two_runs()
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    write_comparison(measured, simulated, tmp_path / "two", figures=False)
    assert "## Against each run" in (tmp_path / "two" / "fidelity.md").read_text()
    one = measured[measured["run_id"] == "a"]
    write_comparison(one, simulated, tmp_path / "one", figures=False)
    assert "## Against each run" not in (tmp_path / "one" / "fidelity.md").read_text()
    assert repeatability_markdown(one, simulated) == ""


def test_a_run_splits_into_its_even_and_odd_windows():
    """halves(): every point's windows 0, 2 and 1, 3 - disjoint, all of them, each half with
    every point - and a run with one window a point cannot be split."""
    import pytest

    from arch_sim.repeatability import agreement, halves

    run = pd.read_csv(RUN / "measurements.csv")
    run = run[run["arch"].isin(ALL_ARCHS)]
    even, odd = halves(run)
    assert set(even["rep"]) == {0, 2} and set(odd["rep"]) == {1, 3}
    assert len(even) + len(odd) == len(run)
    assert len(agreement(even, odd)) == 80  # both halves have every point
    with pytest.raises(ValueError, match="one window"):
        halves(run[run["rep"] == 0])
    with pytest.raises(ValueError, match="no rep column"):
        halves(run.drop(columns="rep"))


def test_fidelity_md_says_how_far_each_run_agrees_with_itself(tmp_path):
    """One run with four windows a point: its odd windows against its even ones (the committed
    run: 67 of 80), in fidelity.md beside the model's count; one window a point: no section."""
    from arch_sim.repeatability import self_agreement_markdown

    run = pd.read_csv(RUN / "measurements.csv")
    run = run[run["arch"].isin(ALL_ARCHS)]
    simulated = run.assign(source="simulated")
    write_comparison(run, simulated, tmp_path, figures=False)
    text = (tmp_path / "fidelity.md").read_text()
    assert "## The measurement against itself" in text
    assert "67 of 80 points" in text and "## Against each run" not in text
    assert self_agreement_markdown(run[run["rep"] == 0]) == ""
    two, _ = _two_runs()
    lines = [x for x in self_agreement_markdown(two).splitlines() if x.startswith("- `")]
    assert lines == ["- `a`: 67 of 80 points", "- `b`: 67 of 80 points"]
