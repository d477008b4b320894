"""Raw-socket HTTP helpers for the tests: send exact bytes, read exact responses."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import multiprocessing
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class RawResponse:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    version: str = "HTTP/1.1"

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def connect(url: str, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(address(url), timeout=timeout)


def get(path: str, host: str = "test", version: str = "HTTP/1.1", extra: str = "") -> bytes:
    """A request's bytes (extra: more header lines, each ending in CRLF)."""
    return f"GET {path} {version}\r\nHost: {host}\r\n{extra}\r\n".encode()


class Reader:
    """Reads whole HTTP responses (Content-Length framed) from a socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def response(self, head_request: bool = False) -> RawResponse | None:
        """The next response, or None if the server closed before sending one."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                if self.buf:
                    raise AssertionError(f"truncated response head: {self.buf[:200]!r}")
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        version, status, reason = (lines[0].split(" ", 2) + [""])[:3]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_request or status in ("304",) else int(headers.get("content-length", 0))
        while len(self.buf) < length:
            if not self._fill():
                raise AssertionError(f"body truncated at {len(self.buf)} of {length}")
        body, self.buf = self.buf[:length], self.buf[length:]
        return RawResponse(int(status), reason, headers, body, version)

    def closed(self, timeout: float = 5.0) -> bool:
        """True if the server closes the connection (EOF or reset) within *timeout*."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def exchange(url: str, data: bytes, head_request: bool = False, timeout: float = 10.0):
    """Send *data* on a new connection; return (first response or None, reader)."""
    sock = connect(url, timeout)
    sock.sendall(data)
    reader = Reader(sock)
    return reader.response(head_request), reader


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def kept_alive(url: str, n: int) -> list[Reader]:
    """*n* keep-alive connections, each served ``/page.html`` once (200) and left open."""
    readers = []
    for _ in range(n):
        reader = Reader(connect(url))
        reader.sock.sendall(get("/page.html"))
        assert reader.response().status == 200
        readers.append(reader)
    return readers


def drain_site(root, seed: int) -> bytes:
    """A document root for the SIGTERM drain tests: ``big.bin`` (8 MB, more than both sides'
    socket buffers hold, returned) and ``page.html``."""
    import random

    root.mkdir()
    big = random.Random(seed).randbytes(8 << 20)
    (root / "big.bin").write_bytes(big)
    (root / "page.html").write_text("page\n")
    return big


def drain_clients(url: str) -> tuple[socket.socket, Reader]:
    """A slow reader that asked for ``/big.bin`` (its response stalls mid-way) and an idle
    keep-alive connection that has had one page."""
    host, port = address(url)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    slow.settimeout(10)
    slow.connect((host, port))
    slow.sendall(get("/big.bin"))
    (idle,) = kept_alive(url, 1)
    return slow, idle


def launch_wrapped(config, root, *args: str, bug: str | None = None, no_dac: bool = False,
                   tmp=None):
    """Start server *config* (a SERVER_CONFIGS row) through ``tests/fault_server.py``: with a
    bug injected for path *bug*, or as root that the kernel checks file modes for (*no_dac*);
    otherwise as ``servers.start`` would."""
    import sys
    from pathlib import Path

    from arch_sim.harness import servers

    name, arch, base = config
    wrapper = [sys.executable, str(Path(__file__).with_name("fault_server.py"))]
    if bug is not None:
        wrapper += ["--bug", bug]
    if no_dac:
        wrapper += ["--no-dac-override"]
    cmd = [*wrapper, servers.SERVER_MODULES[arch], "--root", str(root), "--host", "127.0.0.1",
           "--port", "0", *getattr(servers, "STATUS_ARGS", ()), *base, *args]
    return servers.launch(name, cmd, log_dir=tmp)


def read_to_end(sock: socket.socket, timeout: float = 10.0) -> str:
    """Read and drop everything the server sends: how it ended - "eof" (a clean close),
    "reset", or "timeout" (still open after *timeout* s of silence)."""
    sock.settimeout(timeout)
    try:
        while sock.recv(1 << 20):
            pass
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "timeout"
    return "eof"


def benchmark(name: str):
    """The script benchmarks/NAME.py, imported as module NAME (its main() not run).  It is
    put in ``sys.modules`` first, as an import would: a dataclass looks its module up there."""
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def in_two_processes(run: Callable, *args, reps: int) -> list:
    """``run(*args, rep)`` for rep in 0..reps-1, in two forked processes: replications are each
    one CPU's work with a seed of their own, so two CPUs halve the time and the results are
    those of a loop."""
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(functools.partial(run, *args), range(reps)))


@contextlib.contextmanager
def two_at_a_time(calls: dict) -> Iterator[dict[str, Future]]:
    """Start every call (``{key: (fn, *args)}``, in that order) two at a time on threads - each
    runs a process of its own (a notebook kernel, a command), one CPU's work - and give their
    futures by key; on leaving, wait for the running ones and drop those not started."""
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        yield {key: pool.submit(*call) for key, call in calls.items()}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


#: what ``arch-sim calibrate`` measures, as its calibration.json holds it: a host and the seed's
#: two designs (the presets written from it in tests; add a design's record to test its section)
CALIBRATION = {
    "host": {"host": "testbox", "kernel": "6.18.1", "cpu_count": 2, "cpu_model": "x86",
             "python": "3.11.7"},
    "switch": {"switch_us": 1.5, "roundtrip_us": 4.2, "pipe_pair_us": 0.6},
    "wakeup": {"median_us": 15.0, "p99_us": 40.0},
    "servers": {
        "thread-per-request": {"cpu_us_per_request": 30.0, "reschedules_per_request": 2.2,
                               "rps": 28000.0, "threads": 64},
        "state-group": {"cpu_us_per_request": 15.0, "reschedules_per_request": 0.005,
                        "rps": 40000.0},
    },
    "server_cpus": [0], "client_cpus": [1], "file_set": "specweb99", "connections": 64,
}


def status_after_requests(arch: str, args: list[str], root, requests: int = 100) -> dict:
    """``/server-status`` of our server ``arch`` (started with ``args``, serving the 1 KB file
    set under ``root``) after ``requests`` GETs of its file, one connection each."""
    import urllib.request

    from arch_sim.harness import loaded

    with loaded.serving(arch, args, file_set="1k", root=root) as (server, fs):
        for _ in range(requests):
            with urllib.request.urlopen(server.url + fs.urls[0], timeout=5) as reply:
                reply.read()
        return server.status()
