"""``python -m real_servers.threaded``: kHTTPd's old thread-per-request architecture."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..core.serving import (
    announce_ready,
    check_limits,
    check_root,
    common_arguments,
    listener,
    raise_fd_limit,
)
from .per_connection import PerConnectionServer
from .pool import PoolServer


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m real_servers.threaded",
        description="Thread-per-request HTTP server (kHTTPd <= 0.1.2's architecture).",
    )
    common_arguments(parser)
    parser.add_argument(
        "--threads",
        type=int,
        default=64,
        help="pool threads; 0 = one new thread per connection (default 64)",
    )
    parser.add_argument(
        "--state-cpu", action="store_true", help="time each pool thread's serving (recv, "
        "parse, respond) and sending with its CPU clock and show them in /server-status "
        "(per_state cpu_us): two clock reads per call, so off unless asked for (arch-sim "
        "calibrate asks); the pool only",
    )
    args = parser.parse_args(argv)
    if args.threads < 0:
        parser.error("--threads must be >= 0")
    if args.state_cpu and args.threads == 0:
        parser.error("--state-cpu times the pool's threads: give --threads N (N > 0)")
    check_limits(parser, args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    check_root(args.root)
    raise_fd_limit()  # one descriptor per connection: up to --max-connections of them
    sock = listener(args.host, args.port)
    server = (PoolServer if args.threads > 0 else PerConnectionServer)(sock, args)
    announce_ready(sock)
    return server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
