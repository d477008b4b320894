"""An exercise's answer beside the learner's prediction - hidden until there is one.

    >>> from arch_sim.reveal import reveal
    >>> _ = reveal(12, 12.5, "switches per request")     # doctest: +SKIP
    switches per request: 12.5  - you predicted 12: close

``REVEAL=1`` in the environment shows every answer (teachers, the answer key's tests).  The
exercises themselves are in :mod:`arch_sim.lessons`, posed and checked by :mod:`arch_sim.lab`.
"""

from __future__ import annotations

import math
import os
from typing import Any

#: set to 1 to show every answer even without a prediction (teachers, the answer key's tests)
REVEAL_ENV = "REVEAL"


def reveal_all() -> bool:
    """True when the environment asks for every answer (``REVEAL=1``)."""
    return os.environ.get(REVEAL_ENV, "").strip().lower() not in ("", "0", "false", "no")


def parse_prediction(value: Any) -> float | None:
    """A learner's prediction as a number: None stays None; ``12``, ``"12"``, ``"1,234"``,
    ``" 0.4 "`` and ``"40%"`` (= 0.4) are read; anything else raises ValueError saying what to
    write instead."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number: write e.g. my_prediction = 12")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip().replace(",", "").replace("_", "")
    scale = 1.0
    if text.endswith("%"):
        text, scale = text[:-1].strip(), 0.01
    try:
        number = float(text) * scale
    except ValueError:
        raise ValueError(f"could not read {value!r} as a number: write e.g. "
                         "my_prediction = 12 (or 0.4, or \"40%\")") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number: write e.g. my_prediction = 12")
    return number


def shown(prediction: Any) -> bool:
    """Whether :func:`reveal` shows the answer for *prediction*: a readable prediction, or
    ``REVEAL=1``."""
    if reveal_all():
        return True
    try:
        return parse_prediction(prediction) is not None
    except ValueError:
        return False


def reveal(prediction: Any, answer: float, what: str = "answer", rel_tol: float = 0.25,
           abs_tol: float = 0.05, name: str = "my_prediction") -> str:
    """The computed *answer* beside the learner's *prediction*; returns (and prints) the text.

    The answer stays hidden until there is a prediction (a number, or a string such as
    ``"40%"``: :func:`parse_prediction`), unless ``REVEAL=1`` is set.  A prediction is
    "close" within *rel_tol* of the answer - or within *abs_tol* of it when the answer is
    that small (a relative error to 0 would be infinite).  *name* is the variable the hidden
    answer's message asks the learner to set."""
    show_all = reveal_all()
    try:
        guess = parse_prediction(prediction)
        problem = ""
    except ValueError as exc:
        guess, problem = None, str(exc)
    if guess is None and not show_all:
        why = problem or "you made no prediction"
        text = (f"{what}: hidden - {why}. Set {name} above and re-run this cell "
                f"(or set {REVEAL_ENV}=1 to see every answer).")
        print(text)
        return text
    text = f"{what}: {format_number(answer)}"
    if guess is None:
        text += f"  ({problem or 'no prediction made'})"
    elif not math.isfinite(answer):
        text += f"  - you predicted {format_number(guess)}: the model gave no number to compare"
    else:
        diff = guess - answer
        if abs(answer) <= abs_tol:
            near, off = abs(diff) <= abs_tol, f"off by {format_number(abs(diff))}"
        else:
            near = abs(diff) <= rel_tol * abs(answer)
            off = f"off by {100 * abs(diff) / abs(answer):.0f}%"
        verdict = "close" if near else ("too high" if diff > 0 else "too low")
        text += f"  - you predicted {format_number(guess)}: {verdict}"
        if not near:
            text += f" ({off})"
    print(text)
    return text


def format_number(x: float) -> str:
    """1,234 for big numbers, 4 significant digits for small ones."""
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"
