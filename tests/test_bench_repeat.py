"""benchmarks/bench_repeat.py: bench runs judged against each other by the fidelity rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
from helpers import benchmark

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "results" / "archs-bench-2026-11-30-c"



def _copy(tmp_path: Path, name: str, scale: float = 1.0) -> Path:
    """A copy of the committed run whose state-group keep-alive 500/s rows have their server's
    switches per request scaled by ``scale``."""
    out = tmp_path / name
    out.mkdir()
    df = pd.read_csv(RUN / "measurements.csv")
    hit = ((df["arch"] == "state-group") & (df["connection_mode"] == "keep-alive")
           & (df["target_rps"] == 500))
    assert hit.sum() >= 2
    df.loc[hit, "reschedules_per_request"] *= scale
    df.to_csv(out / "measurements.csv", index=False)
    return out


def test_a_point_moved_by_a_fifth_is_the_only_disagreement(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b", 1.2)
    assert benchmark("bench_repeat").main([str(a), str(b), "--list"]) == 0
    out = capsys.readouterr().out
    assert "b against a: 79 of 80 points within 10%" in out
    listed = [line for line in out.splitlines() if line.startswith("    ")]
    assert len(listed) == 1 and "state-group" in listed[0] and "500" in listed[0]
    assert "+20%" in listed[0]


def test_the_model_is_judged_against_every_run(tmp_path, capsys):
    a, b = _copy(tmp_path, "a"), _copy(tmp_path, "b", 1.2)
    sim = tmp_path / "sim"
    sim.mkdir()  # the model in run a's place: exact against a, 1/1.2 of b at that point
    shutil.copy(a / "measurements.csv", sim / "simulated.csv")
    assert benchmark("bench_repeat").main([str(a), str(b), "--model", str(sim), "--list"]) == 0
    out = capsys.readouterr().out
    assert "the model against a: 80 of 80" in out
    assert "the model against b: 79 of 80" in out
    assert "within 10% of every run at 79 of 80 points, of at least one at 80" in out


def test_bad_arguments_get_one_line_and_exit_2(tmp_path, capsys):
    mod = benchmark("bench_repeat")
    assert mod.main([str(RUN)]) == 2
    assert capsys.readouterr().err.strip() == ("bench_repeat: give at least two bench runs (or "
                                               "one with --halves)")
    assert mod.main([str(RUN), str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "measurements.csv not found" in err[0]


def test_halves_judge_a_run_against_itself_and_runs_half_by_half(tmp_path, capsys):
    """--halves: a run's even windows against its odd ones, then the same half of two runs.
    Run b is run a with one point's odd windows 30% higher: only the odd halves disagree."""
    a = _copy(tmp_path, "a")
    b = tmp_path / "b"
    b.mkdir()
    df = pd.read_csv(a / "measurements.csv")
    hit = ((df["arch"] == "state-group") & (df["connection_mode"] == "keep-alive")
           & (df["target_rps"] == 500) & (df["rep"] % 2 == 1))
    assert hit.sum() == 2
    df.loc[hit, "reschedules_per_request"] *= 1.3
    df.to_csv(b / "measurements.csv", index=False)
    assert benchmark("bench_repeat").main([str(a), str(b), "--halves"]) == 0
    out = capsys.readouterr().out.splitlines()
    mine = [x for x in out if "odd windows against even" in x]
    assert len(mine) == 2 and mine[0].startswith("a, ") and mine[1].startswith("b, ")
    assert "b against a, even windows of each: 80 of 80" in "\n".join(out)
    assert "b against a, odd windows of each: 79 of 80" in "\n".join(out)
    assert benchmark("bench_repeat").main([str(a), "--halves", "--model", str(a)]) == 2
    assert "leave out --model" in capsys.readouterr().err


def test_runs_that_timed_the_machine_say_how_fast_it_ran(tmp_path, capsys):
    """A run with ``reference_us`` prints its range; two runs whose medians differ by over 25%
    are named as two machines.  A run without the column (older) says nothing."""
    a, b, c = (_copy(tmp_path, n) for n in ("a", "b", "c"))
    for folder, ref in ((a, 10.0), (b, 20.0)):
        df = pd.read_csv(folder / "measurements.csv")
        df["reference_us"] = ref
        df.to_csv(folder / "measurements.csv", index=False)
    assert benchmark("bench_repeat").main([str(a), str(b), str(c)]) == 0
    out = capsys.readouterr().out
    assert "a: the reference work took 10.0-10.0 us (median 10.0)" in out
    assert "b and a ran the reference work 2.00 times as long: two machines" in out
    assert "c: the reference" not in out
