"""The staged server's command line: the common options plus ``--stage-threads``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..core.lifecycle import ACCEPT, LOGGING, NAMES, SEND_DATA, WAIT_HEADERS
from ..core.serving import check_limits, common_arguments

#: the stages, in lifecycle order (user space is not one: static files never go there)
STAGES: tuple[str, ...] = tuple(NAMES[s] for s in (ACCEPT, WAIT_HEADERS, SEND_DATA, LOGGING))
DEFAULT_THREADS: dict[str, int] = {
    NAMES[ACCEPT]: 1, NAMES[WAIT_HEADERS]: 1, NAMES[SEND_DATA]: 4, NAMES[LOGGING]: 1,
}


def stage_threads(text: str) -> dict[str, int]:
    """``--stage-threads``: ``NAME=N,...`` -> threads per stage (the defaults for stages not
    named); an unknown stage, a missing ``=`` or a count below 1 is an argparse error."""
    threads = dict(DEFAULT_THREADS)
    valid = ", ".join(STAGES)
    for item in text.split(","):
        name, sep, count = item.strip().partition("=")
        if not sep or name not in STAGES:
            raise argparse.ArgumentTypeError(
                f"{item.strip()!r}: expected NAME=N with NAME one of {valid}")
        try:
            threads[name] = int(count)
        except ValueError:
            threads[name] = 0
        if threads[name] < 1:
            raise argparse.ArgumentTypeError(
                f"{item.strip()!r}: expected NAME=N with N a whole number >= 1 and NAME one of "
                f"{valid}")
    return threads


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m real_servers.staged",
        description="Staged HTTP server (SEDA's architecture): a thread pool per lifecycle "
        "state, a queue between each pair of states.",
    )
    common_arguments(parser)
    default = ",".join(f"{name}={n}" for name, n in DEFAULT_THREADS.items())
    parser.add_argument(
        "--stage-threads", type=stage_threads, default=dict(DEFAULT_THREADS),
        metavar="NAME=N,...", help=f"threads per stage, stages {', '.join(STAGES)} "
        f"(default {default})",
    )
    args = parser.parse_args(argv)
    if args.max_connections < 1:
        parser.error("--max-connections must be >= 1")
    check_limits(parser, args)
    return args
