"""What both real servers do the same way around the HTTP core: options, listener, READY."""

from __future__ import annotations

import argparse
import os
import resource
import socket
import sys

from .docroot import CACHE_MAX_BYTES
from .status import STATUS_MODES

DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_KEEPALIVE_TIMEOUT = 75.0
DEFAULT_MAX_CONNECTIONS = 10_000
DEFAULT_SEND_TIMEOUT = 30.0
DEFAULT_DRAIN_TIMEOUT = 3.0


def cpu_list(text: str) -> tuple[int, ...]:
    """The one CPU-list grammar: ``"0,2-3"`` -> ``(0, 2, 3)`` (ValueError if it is not one)."""
    cpus: set[int] = set()
    for part in str(text).split(","):
        if not part.strip():
            continue
        lo, sep, hi = part.strip().partition("-")
        cpus.update(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    if not cpus:
        raise ValueError(f"empty CPU list {text!r}")
    return tuple(sorted(cpus))


def port_number(text: str) -> int:
    """``--port``: 0..65535, checked here so 80801 is an argparse error, not bind()'s
    OverflowError traceback."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: give a port from 1 to 65535 (0 = any free)")
    return port


def common_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The knobs both servers take (they echo kHTTPd's sysctls)."""
    parser.add_argument("--root", required=True, help="document root (kHTTPd: documentroot)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=port_number, default=8080,
        help="port, 0 = pick a free one (kHTTPd: serverport)",
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=DEFAULT_MAX_CONNECTIONS,
        help="open connections beyond this get 503 and are closed (kHTTPd: maxconnect)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=DEFAULT_HEADER_TIMEOUT,
        help="seconds a client may take to send a whole header block",
    )
    parser.add_argument(
        "--keepalive-timeout",
        type=float,
        default=DEFAULT_KEEPALIVE_TIMEOUT,
        help="seconds an idle keep-alive connection is kept open",
    )
    parser.add_argument(
        "--send-timeout",
        type=float,
        default=DEFAULT_SEND_TIMEOUT,
        help="seconds one response may take to write, from its first byte; then it is cut "
        "with a reset (one deadline per response, however slowly the client reads)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT,
        help="on SIGTERM, seconds requests already received get to finish; then the "
        "responses still being written are cut with a reset and the server exits",
    )
    parser.add_argument(
        "--cache-max-bytes",
        type=int,
        default=CACHE_MAX_BYTES,
        help="the file cache's memory per process - keys, heads and bodies (default 64 MiB)",
    )
    parser.add_argument(
        "--status",
        choices=STATUS_MODES,
        default="off",
        help="who may read /server-status: off (default; an ordinary path), loopback (peers "
        "on 127.0.0.0/8 and ::1; also a reverse proxy on this host!), token (requests with "
        "'Authorization: Bearer $ARCH_SIM_STATUS_TOKEN')",
    )
    return parser


def check_limits(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse limits that cannot work (a zero timeout would cut every response)."""
    for name in ("send_timeout", "drain_timeout"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0")
    if args.cache_max_bytes < 0:
        parser.error("--cache-max-bytes must be >= 0")


def raise_fd_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; returns the new soft limit.

    Every connection is a descriptor: with a distribution's default soft limit (often 1024)
    a server would fail to accept long before ``--max-connections`` (default 10,000).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20  # Linux's default fs.nr_open
    if soft == hard or soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ValueError, OSError):
        return soft
    return want


def check_root(root: str) -> str:
    if not os.path.isdir(root):
        sys.exit(f"error: --root {root!r} is not a directory; create it or point at one")
    return root


def bind(host: str, port: int, reuseport: bool = False) -> socket.socket:
    """A TCP socket bound to *host*:*port*; a busy port exits with a message naming the fix."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        sys.exit(
            f"error: cannot listen on {host}:{port}: {exc.strerror}. "
            "Is another server using that port? Pick another with --port (0 = any free port)."
        )
    return sock


def listener(host: str, port: int, reuseport: bool = False, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket (see :func:`bind`)."""
    sock = bind(host, port, reuseport)
    sock.listen(backlog)
    return sock


def announce_ready(sock: socket.socket) -> None:
    """Print the one ``READY http://HOST:PORT`` line the harness waits for."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    print(f"READY http://{host}:{port}", flush=True)


def pending(sock: socket.socket) -> bool:
    """True if the client has sent bytes not read yet - without reading them (a draining server
    answers a request that has arrived instead of closing its connection unanswered)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:  # nothing there (EAGAIN), or reset
        return False


def name_os_thread(name: str) -> None:
    """Give the calling thread ``name`` in the kernel too (``/proc/PID/task/TID/comm``, at most
    15 bytes), so perf, top and the audits can tell the threads apart; CPython does not.
    Where /proc is not writable the thread keeps the interpreter's name."""
    try:
        with open("/proc/thread-self/comm", "w") as f:
            f.write(name[:15])
    except OSError:
        pass
