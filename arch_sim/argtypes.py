"""Command-line values shared by every subcommand: lists, counts, output folders, one-line errors.

A bad value is reported in one line that names the fix, with exit code 2, before anything is
written.  Two routes lead there:

* values argparse can check on its own (a count, a list item) are argparse ``type``/``action``
  errors; :class:`OneLineParser` prints them as one line instead of argparse's usage block;
* values only a command can judge (a CPU this host lacks, a folder it cannot create) raise
  :class:`UsageError`, which :func:`arch_sim.cli.main` turns into the same one line.

Lists take the same syntax on every command: space-separated, comma-separated, or both
(``--loads 100,200 500`` = ``--loads 100 200 500``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

#: what every list option's help says
LIST_HELP = "space- or comma-separated"


class UsageError(Exception):
    """A command-line value the command cannot use; the message says what to give instead."""


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``PROG: error: ... (see PROG --help)``).

    argparse's default prints the whole usage block above the error, which buries the one
    line that matters.  Subparsers made by ``add_subparsers`` use the parent's class, so every
    subcommand inherits this.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def split_list(values: str | Iterable[Any]) -> list[str]:
    """``"100,200"`` or ``["100,200", "500"]`` -> ``["100", "200", "500"]`` (blanks dropped)."""
    if isinstance(values, str):
        values = [values]
    return [part.strip() for value in values for part in str(value).split(",") if part.strip()]


class ListAction(argparse.Action):
    """``nargs="+"`` whose values may also be comma-separated; each item goes through ``item``.

    argparse applies ``type`` to whole tokens (``"100,200"`` is not a float), so the splitting
    and the per-item conversion happen here instead; a ValueError, ArgumentTypeError or
    UsageError from ``item`` becomes argparse's one-line error naming the option.
    """

    def __init__(self, option_strings: Sequence[str], dest: str,
                 item: Callable[[str], Any] = str, extend: bool = False,
                 **kwargs: Any) -> None:
        kwargs.setdefault("nargs", "+")
        self.item = item
        # extend: a repeated option adds to the list (``--arch a --arch b``), where by default
        # the last one given wins
        self.extend = extend
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        items = split_list(values)
        if not items:
            raise argparse.ArgumentError(self, f"give at least one value, {LIST_HELP}")
        try:
            converted = [self.item(x) for x in items]
        except (ValueError, argparse.ArgumentTypeError, UsageError) as exc:
            raise argparse.ArgumentError(self, str(exc)) from None
        current = getattr(namespace, self.dest, None)
        if self.extend and isinstance(current, list) and current is not self.default:
            converted = list(dict.fromkeys(current + converted))
        setattr(namespace, self.dest, converted)


def one_of(choices: Sequence[str]) -> Callable[[str], str]:
    """A ListAction ``item`` accepting only *choices* (argparse's own ``choices`` check would
    see the unsplit ``"a,b"``)."""
    def check(text: str) -> str:
        if text not in choices:
            raise argparse.ArgumentTypeError(f"{text!r}: choose from {', '.join(choices)}")
        return text
    return check


def checked_by(parse: Callable[[str], Any]) -> Callable[[str], str]:
    """An argparse type that keeps the text but lets the code that will use it check it first
    (a ValueError becomes argparse's one-line error), so a typo fails before any work."""
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def _number(text: str, kind: Callable[[str], Any], what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (counts: CPUs, repetitions, requests, connections)."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give a whole number >= 1")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (0 has a meaning, e.g. ``--threads 0`` = a thread per connection)."""
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give a whole number >= 0")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (loads in requests/s)."""
    value = _number(text, float, "a number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not allowed: give a number > 0")
    return value


def check_out_dir(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Raise :class:`UsageError` unless a folder can be made (or written) at *path*.

    Probes by creating and removing an empty temporary folder in the deepest part of *path*
    that exists, so nothing is left behind whatever the answer; permission bits alone would
    not do (root passes every ``os.access`` check, yet cannot write under ``/proc``).
    """
    path = Path(path)
    fix = f"choose another {flag}"
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path}: is a file, not a folder; {fix}")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, so no folder can be made "
                         f"under it; {fix}")
    try:
        probe = tempfile.mkdtemp(prefix=".arch-sim-probe-", dir=existing)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot create a folder in {existing} "
                         f"({exc.strerror or exc}); {fix}") from None
    os.rmdir(probe)
    return path


def report(command: str, message: str, file: Any = None) -> int:
    """Print the one-line error of ``arch-sim COMMAND`` and return its exit code, 2."""
    print(f"arch-sim {command}: error: {message}", file=file or sys.stderr)
    return 2


def options(add_arguments: Callable[[argparse.ArgumentParser], None],
            **values: Any) -> argparse.Namespace:
    """A command's options as its parser's defaults with *values* set: how one command runs
    another (``bench.run(options(bench.add_arguments, out=..., loads="100,max"))``) without
    spelling a command line.  Values take the forms the option's ``type``/``ListAction``
    produce (or a string the command's own parse_* accepts); a name the command does not have
    is a TypeError, so a renamed option cannot be set silently."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    args = parser.parse_args([])
    unknown = sorted(set(values) - set(vars(args)))
    if unknown:
        raise TypeError(f"no option {', '.join(unknown)} (has: {', '.join(sorted(vars(args)))})")
    for name, value in values.items():
        setattr(args, name, value)
    return args
