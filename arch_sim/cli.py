"""The `arch-sim` command line: serve | bench | simulate | calibrate | plot | redraw | reproduce |
lab | timeline.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them up.  A subcommand whose module is not built yet
says so and exits 2 - never a fake result.  A bad value exits 2 with one line naming the fix:
argparse's errors via :class:`~arch_sim.argtypes.OneLineParser`, a command's own checks via
:class:`~arch_sim.argtypes.UsageError` (see :mod:`arch_sim.argtypes`).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from arch_sim.argtypes import OneLineParser, UsageError, report

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("arch_sim.serve", "run one of the real servers in the foreground"),
    "bench": ("arch_sim.harness.bench", "drive real servers with wrk, count their reschedules"),
    "simulate": ("arch_sim.simulate", "run the SimPy models over a load sweep"),
    "calibrate": ("arch_sim.calibrate", "measure this host and write the `host` model preset"),
    "plot": ("arch_sim.plots", "draw the figures of one or more run folders"),
    "redraw": ("arch_sim.redraw", "redraw every figure of results folders from their CSVs"),
    "reproduce": ("arch_sim.reproduce", "the main job: calibrate, measure, simulate, report"),
    "lab": ("arch_sim.lab", "notebook 03's teaching mode: a student's answer key or handout"),
    "timeline": ("arch_sim.timeline", "one hand-off under four schedulers; schedule()'s cost"),
}

def _load(name: str):
    return importlib.import_module(COMMANDS[name][0])


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="arch-sim",
        description="kHTTPd's old vs new web-server architecture: measured, simulated, explained.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _load(name).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module = _load(args.command)
    try:
        return int(module.run(args) or 0)
    except UsageError as exc:
        return report(args.command, str(exc))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
