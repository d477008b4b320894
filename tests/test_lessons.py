"""Teaching mode (issue 16 item 1): seeded exercises, hidden answers, the answer key, handouts.

The notebook's lesson cells (setup, seed, and every exercise, prediction and answer cell) are
run in a fresh kernel, as a student would: with no prediction every answer stays hidden, and
with ``REVEAL=1`` the lines it prints are the lines of ``arch-sim lab answers`` for that seed.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from arch_sim import cli, explore, lab, lessons

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "03_teach_os_scheduling.ipynb"
LESSON_TAGS = {"seed", "exercise", "prediction", "answer"}

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")


def key_of(seed: int, capsys) -> list[str]:
    """The answer lines ``arch-sim lab answers --seed SEED`` prints."""
    assert cli.main(["lab", "answers", "--seed", str(seed)]) == 0
    return [line for line in capsys.readouterr().out.splitlines()
            if line.startswith("Exercise ")]


def run_lessons(monkeypatch, **env: str):
    """Run notebook 03's setup cell and its lesson cells in a fresh kernel; the executed
    cells."""
    monkeypatch.delenv(explore.REVEAL_ENV, raising=False)
    monkeypatch.delenv(lab.SEED_ENV, raising=False)
    monkeypatch.delenv(lab.HOST_ENV, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(NOTEBOOK, as_version=4)
    setup = next(c for c in nb.cells if c.cell_type == "code")
    nb.cells = [setup] + [c for c in nb.cells
                          if LESSON_TAGS & set(c.metadata.get("tags", []))]
    nbclient.NotebookClient(nb, kernel_name="python3", timeout=120, startup_timeout=60,
                            resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    return nb.cells


def output_text(cell) -> str:
    return "".join(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", ""))
                   for o in cell.get("outputs", []))


# -- seeds ------------------------------------------------------------------------------------

def test_two_seeds_give_two_scenarios_and_one_seed_always_the_same():
    one, two = lessons.scenario(1), lessons.scenario(2)
    assert [ex.inputs for ex in one] != [ex.inputs for ex in two]
    assert sum(a.question != b.question for a, b in zip(one, two, strict=True)) >= 4
    assert lessons.key_lines(1) != lessons.key_lines(2)
    lessons.exercise.cache_clear()
    lessons.answers.cache_clear()
    assert [ex.question for ex in lessons.scenario(1)] == [ex.question for ex in one]
    assert [ex.badge for ex in one] == ["live machine"] + ["model"] * 5
    assert {ex.badge for ex in one} <= set(lessons.BADGES)


def test_model_exercises_give_their_inputs_in_the_question():
    for ex in lessons.scenario(4):
        assert "{" not in ex.question, ex.question  # every given value filled in
        shown = [v for k, v in ex.inputs.items() if k != "model_seed"]
        assert any(f"{v:,}" in ex.question or f"{v:g}" in ex.question or str(v) in ex.question
                   for v in shown), (ex.number, ex.question)


def test_answers_come_from_the_pinned_presets_not_the_newest_run(monkeypatch):
    from arch_sim import results

    def no_results(*args, **kwargs):
        raise AssertionError("the lessons looked in results/")

    monkeypatch.setattr(results, "latest", no_results)
    monkeypatch.setattr(results, "host_preset", no_results)
    monkeypatch.delenv(lab.HOST_ENV, raising=False)
    assert lab.teaching_host() == lessons.HOST == "host"
    lessons.exercise.cache_clear()
    lessons.answers.cache_clear()
    assert len(lessons.key_lines(3)) == 8


def test_student_seed_reads_the_notebook_value_then_the_environment(monkeypatch):
    monkeypatch.setenv(lab.SEED_ENV, "12")
    assert lab.student_seed(None) == 12 and lab.student_seed(" 7 ") == 7
    monkeypatch.delenv(lab.SEED_ENV)
    assert lab.student_seed(None) == lab.DEFAULT_SEED
    with pytest.raises(ValueError, match="not a whole number"):
        lab.student_seed("seven")


# -- reveal -----------------------------------------------------------------------------------

def test_reveal_hides_the_answer_until_a_prediction_or_reveal(monkeypatch, capsys):
    monkeypatch.delenv(explore.REVEAL_ENV, raising=False)
    text = explore.reveal(None, 1234.5, "the thing")
    assert "hidden" in text and "1,234" not in text and "1,235" not in text
    monkeypatch.setenv(explore.REVEAL_ENV, "1")
    assert "1,234" in explore.reveal(None, 1234.4, "the thing")
    monkeypatch.setenv(explore.REVEAL_ENV, "0")
    assert "hidden" in explore.reveal(None, 3.0)


def test_reveal_with_an_answer_of_zero_uses_an_absolute_tolerance():
    assert "close" in explore.reveal(0.0, 0.0) and "close" in explore.reveal(0.03, 0.0)
    far = explore.reveal(1.0, 0.0)
    assert "too high" in far and "off by 1" in far and "%" not in far
    assert "too low" in explore.reveal(-0.5, 0.0)


def test_reveal_reads_a_prediction_typed_as_a_string(monkeypatch):
    monkeypatch.delenv(explore.REVEAL_ENV, raising=False)
    assert "close" in explore.reveal("12", 12.0)
    assert "close" in explore.reveal(" 1,200 ", 1200.0)
    assert "close" in explore.reveal("40%", 0.4)
    text = explore.reveal("about ten", 10.0)
    assert "hidden" in text and "could not read 'about ten'" in text
    with pytest.raises(ValueError, match="my_prediction = 12"):
        explore.parse_prediction("twelve")


def test_check_prints_the_explanation_only_with_the_answer(monkeypatch, capsys):
    monkeypatch.delenv(explore.REVEAL_ENV, raising=False)
    ex = lessons.exercise(2, 3)
    lab.check(2, 3, None)
    hidden = capsys.readouterr().out
    assert "hidden" in hidden and ex.explanation not in hidden
    lab.check(2, 3, 100.0)
    shown = capsys.readouterr().out
    assert ex.explanation in shown and "hidden" not in shown
    with pytest.raises(ValueError, match="my_prediction_a, my_prediction_b"):
        lab.check(2, 4, 1.0)
    lab.check(2, 4, None, "0.3")  # each part hidden on its own, naming its variable
    out = capsys.readouterr().out
    assert "Set my_prediction_a above" in out and "4b: sleeps per request: hidden" not in out
    assert lessons.exercise(2, 4).explanation not in out


# -- the notebook -----------------------------------------------------------------------------

def test_answer_cells_are_tagged_collapsed_and_hold_no_explanation():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    answer = [c for c in nb.cells if "answer" in c.metadata.get("tags", [])]
    checks = [c for c in nb.cells if "lab.check(" in c.source]
    assert answer == checks and len(answer) == len(lessons.EXERCISES)
    for cell in answer:
        assert cell.metadata.get("jupyter", {}).get("source_hidden") is True, cell.source
        assert "print(" not in cell.source and "reveal(" not in cell.source, cell.source
    text = "\n".join(c.source for c in nb.cells)
    for ex in lessons.scenario(1):
        assert ex.explanation not in text
        assert f"### Exercise {ex.number} · badge: *{ex.badge}*" in text
    for n, (title, minutes, objective) in lab.SECTIONS.items():
        assert f"## {n}. {title} · {minutes} min\n\n**Objective:** {objective}." in text
    assert "results.host_preset" not in text  # the pinned presets, not the newest run


def test_run_all_shows_no_answer_before_a_prediction(monkeypatch, capsys):
    cells = run_lessons(monkeypatch, STUDENT_SEED="6")
    key = key_of(6, capsys)
    answers = [c for c in cells if "answer" in c.metadata.get("tags", [])]
    for cell in answers:
        assert "hidden - you made no prediction" in output_text(cell), output_text(cell)
        assert "Set my_prediction" in output_text(cell)
    everything = "\n".join(output_text(c) for c in cells)
    for line in key:
        assert line not in everything
    assert "measured on this machine" not in everything


def test_notebook_answers_equal_the_answer_key_of_the_same_seed(monkeypatch, capsys):
    cells = run_lessons(monkeypatch, STUDENT_SEED="9", REVEAL="1")
    shown = [re.sub(r"  \(.*\)$", "", line) for c in cells
             for line in output_text(c).splitlines() if line.startswith("Exercise ")]
    assert shown == key_of(9, capsys)
    assert shown != key_of(10, capsys)
    assert "measured on this machine just now" in "\n".join(output_text(c) for c in cells)


def test_handout_has_the_seed_and_no_answer_cells(tmp_path, capsys):
    out = tmp_path / "sub" / "lab-7.ipynb"
    assert cli.main(["lab", "handout", "--seed", "7", "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    nb = nbformat.read(out, as_version=4)
    nbformat.validate(nb)
    assert not [c for c in nb.cells if "answer" in c.metadata.get("tags", [])]
    assert not [c for c in nb.cells if "lab.check(" in c.source]
    assert sum("lab.show(SEED" in c.source for c in nb.cells) == len(lessons.EXERCISES)
    (seed,) = [c for c in nb.cells if lab.SEED_TAG in c.metadata.get("tags", [])]
    assert re.search(r"(?m)^STUDENT_SEED = 7\b", seed.source)
    assert "arch-sim lab answers --seed 7" in nb.cells[0].source
    original = nbformat.read(NOTEBOOK, as_version=4)
    assert len(nb.cells) == len(original.cells) - len(lessons.EXERCISES) + 1


# -- the command line -------------------------------------------------------------------------

@pytest.mark.parametrize(("argv", "words"), [
    (["lab"], ["ACTION"]),
    (["lab", "answers"], ["--seed"]),
    (["lab", "answers", "--seed", "-1"], ["--seed", ">= 0"]),
    (["lab", "answers", "--seed", "seven"], ["--seed", "'seven'", "whole number"]),
    (["lab", "answers", "--seed", "1", "--host", "nosuch"], ["--host", "nosuch", "preset"]),
    (["lab", "handout", "--seed", "1"], ["--out"]),
    (["lab", "handout", "--seed", "1", "--out", "OUT/lab.txt"], ["--out", ".ipynb"]),
    (["lab", "handout", "--seed", "1", "--out", "OUT"], ["--out", "folder"]),
    (["lab", "frobnicate"], ["frobnicate"]),
], ids=lambda v: " ".join(v) if isinstance(v, list) and v[0] == "lab" else None)
def test_lab_refuses_bad_input_in_one_line_with_exit_2(tmp_path, capsys, argv, words):
    argv = [a.replace("OUT", str(tmp_path / "out.ipynb")) if a.startswith("OUT") else a
            for a in argv]
    if "--out" in argv and argv[-1].endswith("out.ipynb"):
        (tmp_path / "out.ipynb").mkdir()  # a folder where the notebook should go
    before = sorted(p.name for p in tmp_path.rglob("*"))
    try:
        code = cli.main(argv)
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    assert code == 2, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("arch-sim lab"), captured.err
    for word in words:
        assert word in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert "Exercise" not in captured.out


# -- the quiet-machine check ------------------------------------------------------------------

def test_quiet_warnings_name_what_is_noisy():
    assert explore.quiet_warnings(0.2, 2, [1.00e6, 1.02e6, 0.99e6], 0) == []
    noisy = explore.quiet_warnings(3.0, 2, [1.0e6, 0.5e6], 4)
    assert len(noisy) == 3
    assert "load average 3.00" in noisy[0] and "vary by" in noisy[1] and "4 involuntary" in noisy[2]


def test_quiet_check_reports_its_numbers(capsys):
    result = explore.quiet_check(repeats=2, spin_s=0.01)
    out = capsys.readouterr().out
    assert "idle baseline: load average" in out and len(result["rates"]) == 2
    assert result["quiet"] == (not result["warnings"])
    assert ("WARNING" in out) == (not result["quiet"])
