"""The state-group server's settings and command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..core.docroot import CACHE_MAX_BYTES
from ..core.serving import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SEND_TIMEOUT,
    check_limits,
    common_arguments,
    cpu_list,
)
from .lifecycle import NAMES

DEFAULT_SEND_CHUNK = 64 * 1024


@dataclass
class Config:
    root: str
    host: str = "127.0.0.1"
    port: int = 0
    cpus: tuple[int, ...] = ()  # () = every CPU this process may run on
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    send_timeout: float = DEFAULT_SEND_TIMEOUT  # one deadline per response
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    cache_max_bytes: int = CACHE_MAX_BYTES  # per worker process
    status: str = "off"  # who may read /server-status (core.status)
    userspace_port: int | None = None
    send_chunk: int = DEFAULT_SEND_CHUNK
    states: dict[str, str] = field(default_factory=dict)  # state -> replacement module
    state_cpu: bool = False  # time each state's batches (calibrate's measurement)


def parse_args(argv: Sequence[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(
        prog="python -m real_servers.stategroup",
        description="State-group HTTP server (kHTTPd >= 0.1.3's architecture): one worker "
        "process per CPU, requests serviced in groups by state.",
    )
    common_arguments(parser)
    parser.add_argument(
        "--cpus", type=parse_cpus, default=(), help="CPUs to run one worker on each, e.g. 0,1 "
        "or 0-3 (default: every CPU this process may use)",
    )
    parser.add_argument(
        "--userspace-port", type=int, default=None, help="hand requests the static path cannot "
        "serve (other methods, query strings) to this port on 127.0.0.1 (kHTTPd: clientport)",
    )
    parser.add_argument(
        "--send-chunk", type=int, default=DEFAULT_SEND_CHUNK, help="most bytes sent to one "
        "connection per pass (kHTTPd: 16384)",
    )
    parser.add_argument(
        "--state", action="append", default=[], metavar="NAME=MODULE", help="replace one state "
        f"({', '.join(NAMES)}) by a module name or .py file with run(worker) -> int",
    )
    parser.add_argument(
        "--state-cpu", action="store_true", help="time each state's batches with the worker's "
        "CPU clock and show them in /server-status (per_state cpu_us): two clock reads per "
        "state per pass, so it is off unless asked for (arch-sim calibrate asks)",
    )
    args = parser.parse_args(argv)
    if args.max_connections < 1 or args.send_chunk < 1:
        parser.error("--max-connections and --send-chunk must be >= 1")
    check_limits(parser, args)
    states = {}
    for item in args.state:
        name, sep, module = item.partition("=")
        if not sep or name not in NAMES or not module:
            parser.error(f"--state {item!r}: expected NAME=MODULE with NAME one of {NAMES}")
        states[name] = module
    return Config(
        root=args.root, host=args.host, port=args.port, cpus=args.cpus,
        max_connections=args.max_connections, header_timeout=args.header_timeout,
        keepalive_timeout=args.keepalive_timeout, send_timeout=args.send_timeout,
        drain_timeout=args.drain_timeout, cache_max_bytes=args.cache_max_bytes,
        status=args.status, userspace_port=args.userspace_port,
        send_chunk=args.send_chunk, states=states, state_cpu=args.state_cpu,
    )


def parse_cpus(text: str) -> tuple[int, ...]:
    """``--cpus``: the core's CPU-list grammar (``"0,2-3"`` -> ``(0, 2, 3)``)."""
    try:
        return cpu_list(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad CPU list {text!r}; use e.g. 0,1 or 0-3") from None
