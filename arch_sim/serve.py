"""``arch-sim serve``: run one of the real servers in the foreground (Ctrl-C stops it)."""

from __future__ import annotations

import argparse
import os
import sys

from . import ARCHS
from .harness.servers import SERVER_MODULES


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("arch", choices=ARCHS, help="which architecture to run")
    p.add_argument(
        "server_args",
        nargs=argparse.REMAINDER,
        help="options for the server, e.g. --root DIR --port 8080 (see --help of each)",
    )


def run(args: argparse.Namespace) -> int:
    cmd = [sys.executable, "-m", SERVER_MODULES[args.arch], *args.server_args]
    os.execv(sys.executable, cmd)
    return 0  # not reached
