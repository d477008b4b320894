"""Teaching mode: notebook 03's exercises posed, checked and handed out (``arch-sim lab``).

    arch-sim lab answers --seed 7                     # the answer key of student seed 7
    arch-sim lab handout --seed 7 --out lab-7.ipynb   # notebook 03 for that student, no answers

In the notebook, :func:`show` poses exercise N of the student's seed (with its badge: *live
machine* or *model*) and :func:`check` puts the computed answer beside the prediction - only
once there is a prediction, or when ``REVEAL=1`` is set (:func:`arch_sim.reveal.reveal`); the
explanation is printed only with the answer.  Both take the exercise and its answers from
:mod:`arch_sim.lessons`, as the answer key does, so the notebook and the key cannot disagree.

The models run the pinned, packaged presets (:data:`arch_sim.lessons.HOST`), not the newest
calibration in ``results/``: a lesson's answers change only with the code.  To teach with
another host preset, set ``ARCH_SIM_LAB_HOST`` (a preset name or TOML path, or ``latest`` for
the newest reproduction's calibrated host) or pass ``--host`` - to the key as well.
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path
from typing import Any

from arch_sim import lessons
from arch_sim.argtypes import UsageError, check_out_dir, non_negative_int
from arch_sim.reveal import format_number, reveal

#: where the notebook and the handout take the student's seed from, if not set in the notebook
SEED_ENV = "STUDENT_SEED"
DEFAULT_SEED = 1
#: which host preset the lessons model (default: the packaged one)
HOST_ENV = "ARCH_SIM_LAB_HOST"
NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "03_teach_os_scheduling.ipynb"
#: notebook cell tags: the cell setting STUDENT_SEED, and the cells revealing answers
SEED_TAG, ANSWER_TAG = "seed", "answer"

#: section of notebook 03 -> (title, minutes, learning objective)
SECTIONS: dict[int, tuple[str, int, str]] = {
    1: ("What is a reschedule?", 10, "count a thread's voluntary and involuntary context "
        "switches with getrusage, and say which waits cause them"),
    2: ("Voluntary and involuntary", 8, "predict how many preemptions a time slice causes"),
    3: ("The run queue and the O(n) goodness() loop", 10, "compute what one schedule() costs "
        "when it walks a long run queue"),
    4: ("Interrupt-driven vs polling: a real server", 12, "explain why a one-thread-per-CPU "
        "server sleeps less per request as load grows (utilisation, busy periods)"),
    5: ("Grouping work by state: cache locality", 8, "estimate what batching by state "
        "(cohort scheduling) gains"),
    6: ("A hand-off in Python: the GIL, futexes and lock convoys", 12, "explain how wake-up "
        "preemption turns a lock hand-off into a convoy"),
}

def student_seed(value: Any = None) -> int:
    """The student's seed: *value* (the notebook's ``STUDENT_SEED``) if set, else the
    environment's ``STUDENT_SEED``, else :data:`DEFAULT_SEED`.  A whole number >= 0."""
    raw = value if value is not None else os.environ.get(SEED_ENV, "").strip() or DEFAULT_SEED
    try:
        seed = int(str(raw).strip())
    except ValueError:
        raise ValueError(f"STUDENT_SEED {raw!r} is not a whole number: "
                         "use the number your teacher gave you, e.g. STUDENT_SEED = 7") from None
    if seed < 0:
        raise ValueError(f"STUDENT_SEED {seed} is negative: give a whole number >= 0")
    return seed




def teaching_host(value: str | None = None) -> str:
    """The host preset the lessons model: *value*, else ``ARCH_SIM_LAB_HOST``, else the
    packaged ``host`` preset.  ``latest`` means the newest reproduction's calibrated
    ``host.toml`` (the packaged preset if there is none)."""
    name = (value or os.environ.get(HOST_ENV, "")).strip() or lessons.HOST
    if name != "latest":
        return name
    from arch_sim import results

    try:
        path = Path(results.latest("reproduce")) / "host.toml"
    except results.NoReferenceRun:
        return lessons.HOST
    return str(path) if path.is_file() else lessons.HOST


def _display(markdown: str) -> None:
    try:
        from IPython.display import Markdown, display
    except ImportError:  # outside Jupyter
        print(markdown)
    else:
        display(Markdown(markdown))


def show(seed: int, number: int, host: str | None = None) -> str:
    """Pose exercise *number* to student *seed* (Markdown in a notebook); returns the text."""
    ex = lessons.exercise(seed, number, teaching_host(host))
    names = " and ".join(f"`{lessons.prediction_name(ask)}`" for ask in ex.asks)
    text = (f"**Exercise {ex.number}** · badge: *{ex.badge}* · {ex.minutes} min · "
            f"STUDENT_SEED {seed}\n\n{ex.question}\n\nPut your prediction in {names} below.")
    _display(text)
    return text


def check(seed: int, number: int, *predictions: Any, host: str | None = None) -> list[str]:
    """Reveal exercise *number*'s answers beside the predictions, one line per asked quantity
    (each hidden while its prediction is missing, unless ``REVEAL=1``).  Once every answer is
    shown, a live-machine exercise is run here and its count printed, then the explanation."""
    host = teaching_host(host)
    ex = lessons.exercise(seed, number, host)
    if len(predictions) != len(ex.asks):
        raise ValueError(f"exercise {number} takes {len(ex.asks)} prediction(s): "
                         + ", ".join(lessons.prediction_name(a) for a in ex.asks))
    values = lessons.answers(seed, number, host)
    lines = [reveal(guess, value, ex.label(ask), ask.rel_tol, ask.abs_tol,
                            lessons.prediction_name(ask))
             for ask, guess, value in zip(ex.asks, predictions, values, strict=True)]
    if any(" hidden - " in line for line in lines):
        return lines
    measured = lessons.measure(seed, number, host)
    if measured is not None:
        print(f"measured on this machine just now: {format_number(measured)}")
    print(ex.explanation)
    return lines


# -- the command line ------------------------------------------------------------------------

def answer_key(seed: int, host: str | None = None) -> str:
    """The printable answer key of *seed* (``arch-sim lab answers --seed N``)."""
    host = teaching_host(host)
    head = [f"Answer key, notebook 03, STUDENT_SEED = {seed} (presets: {lessons.OLD}, {host})"]
    for ex in lessons.scenario(seed, host):
        head.append(f"  Exercise {ex.number} [{ex.badge}] inputs: " + ", ".join(
            f"{k}={v}" for k, v in ex.inputs.items() if k != "model_seed"))
    return "\n".join(head + [""] + lessons.key_lines(seed, host))


def handout(seed: int, out: str | os.PathLike[str], source: Path = NOTEBOOK) -> Path:
    """Write notebook 03 for student *seed* to *out*: its ``STUDENT_SEED`` set, every answer
    cell left out, no outputs."""
    import nbformat

    from arch_sim.runinfo import write_atomic

    nb = nbformat.read(source, as_version=4)
    cells, seeded = [], False
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if ANSWER_TAG in tags:
            continue
        if SEED_TAG in tags:
            cell.source, n = re.subn(r"(?m)^STUDENT_SEED = .*$",
                                     f"STUDENT_SEED = {seed}  # your seed: keep it", cell.source)
            seeded = seeded or n > 0
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cells.append(cell)
    if not seeded:
        raise RuntimeError(f"{source}: no cell tagged {SEED_TAG!r} sets STUDENT_SEED")
    note = nbformat.v4.new_markdown_cell(
        f"**Handout for STUDENT_SEED {seed}.** The answer cells are left out: write your "
        "predictions in the `my_prediction...` cells and hand them in; your teacher checks "
        f"them against `arch-sim lab answers --seed {seed}`.")
    nb.cells = [note] + cells
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, lambda tmp: nbformat.write(nb, str(tmp)))
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="lab_command", metavar="ACTION", required=True)
    for name, text in (("answers", "print the answer key of one student seed"),
                       ("handout", "write notebook 03 for one student seed, without answers")):
        q = sub.add_parser(name, help=text, description=text)
        q.add_argument("--seed", type=non_negative_int, required=True,
                       help="the student's seed (a whole number >= 0)")
        q.add_argument("--host", default=None,
                       help=f"host preset name or TOML path, or 'latest' (default: ${HOST_ENV} "
                            "or the packaged 'host' preset)")
        if name == "handout":
            q.add_argument("--out", type=Path, required=True, help="the notebook to write "
                           "(FILE.ipynb)")


def _check_out(out: Path) -> None:
    if out.suffix != ".ipynb":
        raise UsageError(f"--out {out}: give a file name ending in .ipynb")
    if out.is_dir():
        raise UsageError(f"--out {out}: is a folder; give a file name ending in .ipynb")
    check_out_dir(out.parent, "--out")


def run(args: argparse.Namespace) -> int:
    from arch_sim.models import load_preset

    host = teaching_host(args.host)
    try:
        load_preset(host)
    except (ValueError, OSError) as exc:
        raise UsageError(f"--host {host}: {exc}") from None
    if args.lab_command == "answers":
        print(answer_key(args.seed, host))
        return 0
    _check_out(args.out)
    if not NOTEBOOK.is_file():
        raise UsageError(f"notebook 03 not found at {NOTEBOOK}: run from a checkout of arch-sim")
    path = handout(args.seed, args.out)
    print(f"wrote {path}: notebook 03 for STUDENT_SEED {args.seed}, without answer cells")
    return 0
