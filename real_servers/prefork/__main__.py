"""``python -m real_servers.prefork``: Apache 1.3's prefork architecture."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.serving import check_limits, common_arguments
from .master import Master

DEFAULT_WORKERS = 64  # as many as the thread pool's threads and wrk's connections


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m real_servers.prefork",
        description="Prefork HTTP server (Apache 1.3's architecture): a master forks worker "
        "processes, each blocking in accept() and serving one connection at a time.",
    )
    common_arguments(parser)
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS,
        help="worker processes, each serving one connection at a time; a connection beyond "
        f"them waits in the listen backlog (default {DEFAULT_WORKERS})",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.max_connections < 1:
        parser.error("--max-connections must be >= 1")
    check_limits(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    return Master(parse_args(argv)).run()


if __name__ == "__main__":
    sys.exit(main())
