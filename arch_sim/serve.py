"""``arch-sim serve``: run one of the real servers in the foreground (Ctrl-C stops it)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import ALL_ARCHS
from .argtypes import UsageError
from .harness.servers import SERVER_MODULES

MAX_PORT = 65535


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", choices=ALL_ARCHS, help="which architecture to run")
    p.add_argument(
        "server_args",
        nargs=argparse.REMAINDER,
        help="options for the server, e.g. --root DIR --port 8080 (0 = any free port; see "
        "--help of each)",
    )


def check_server_args(server_args: list[str]) -> None:
    """Raise :class:`UsageError` for a missing or absent ``--root`` or a port out of range.

    The server parses its own options after the exec; these two are checked here first so
    their errors are one line, not a usage block or an OverflowError traceback.  The rest
    (and ``--help``) is left to the server.
    """
    if "-h" in server_args or "--help" in server_args:
        return
    probe = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    probe.add_argument("--root")
    probe.add_argument("--port")
    try:
        known, _ = probe.parse_known_args(server_args)
    except argparse.ArgumentError as exc:  # e.g. --port with no value
        raise UsageError(f"{exc}; give e.g. --root DIR --port 8080") from None
    if known.root is None:
        raise UsageError("--root DIR is required: the folder of files to serve, e.g. "
                         "arch-sim serve state-group --root ./www --port 8080")
    if not Path(known.root).is_dir():
        raise UsageError(f"--root {known.root}: not a folder; create it or point at one")
    if known.port is not None:
        try:
            port = int(known.port)
        except ValueError:
            port = -1
        if not 0 <= port <= MAX_PORT:
            raise UsageError(f"--port {known.port}: give a port from 1 to {MAX_PORT} "
                             "(0 = any free port)")


def run(args: argparse.Namespace) -> int:
    check_server_args(args.server_args)
    cmd = [sys.executable, "-m", SERVER_MODULES[args.arch], *args.server_args]
    os.execv(sys.executable, cmd)
    return 0  # not reached
