"""Reliability over real sockets, against every server configuration:

1. a failure while serving a request costs that request only: a 500, never a dead thread
2. a client that stops reading holds a thread or a connection no longer than --send-timeout
3. permissions: a file the server may not read is a 403, never a 200 head and then EOF
7. SIGTERM: requests that arrived are answered, a cut response ends in a reset, one deadline
8. the 503 and 408 are the core's, the start-up pipe is closed, /server-status is opt-in

Items 4 (cache keys and the cache's memory) are in test_cache.py, 5 and 6 (conditional requests,
paths) in test_conformance.py, the mixed faults in test_faults.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import SERVER_CONFIGS
from helpers import (
    Reader,
    connect,
    exchange,
    get,
    kept_alive,
    launch_wrapped,
    read_to_end,
    wait_for,
)

from arch_sim.harness import servers
from real_servers.core.serving import common_arguments

pytestmark = pytest.mark.real

ALL_IDS = [c[0] for c in SERVER_CONFIGS]
SLACK_S = 1.5  # scheduling slack on a loaded 2-CPU machine
PAGE = b"page\n"
BAD_MTIME = 10**12  # year 33658: no HTTP date can say it


def start(config, root, *args: str, tmp=None) -> servers.ServerProcess:
    _, arch, base = config
    return servers.start(arch, root, args=[*base, *args], log_dir=tmp)


def pool_of(config, threads: int) -> list[str]:
    """Extra arguments that make a pool configuration's pool *threads* threads small."""
    return ["--threads", str(threads)] if config[0] == "threaded-pool" else []


def pids(server) -> list[int]:
    return server.status()["pids"]


def ok(url: str, timeout: float = 5.0) -> float:
    """One normal request on a new connection; returns its latency."""
    started = time.monotonic()
    reply, _ = exchange(url, get("/page.html"), timeout=timeout)
    assert reply is not None and reply.status == 200 and reply.body == PAGE
    return time.monotonic() - started


def stop_timed(server) -> tuple[int | None, float]:
    started = time.monotonic()
    code = server.stop(timeout=15)
    return code, time.monotonic() - started


@pytest.fixture(scope="module")
def www(tmp_path_factory) -> Path:
    """A document root on tmpfs (which stores 64-bit times): page.html, a 10 MB big.bin, and
    bad-date.txt / bad-date.bin whose mtime no HTTP date can express."""
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") else tmp_path_factory.getbasetemp()
    root = Path(tempfile.mkdtemp(prefix="arch-sim-r2-", dir=base))
    root.chmod(0o755)
    (root / "page.html").write_bytes(PAGE)
    (root / "big.bin").write_bytes(os.urandom(10 << 20))
    (root / "bad-date.txt").write_bytes(b"small\n")
    (root / "bad-date.bin").write_bytes(b"x" * (200 << 10))
    for name in ("bad-date.txt", "bad-date.bin"):
        os.utime(root / name, (BAD_MTIME, BAD_MTIME))
    yield root
    shutil.rmtree(root, ignore_errors=True)


# -- 1. a failure while serving costs that request only ----------------------------------------
@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_a_file_the_core_cannot_date_is_a_500_and_no_thread_dies(www, tmp_path, config):
    """70 requests (more than the pool's 4 threads) for files whose mtime has no HTTP date:
    each gets a 500 and a close; the server keeps its threads, /server-status answers and
    SIGTERM ends it at once.  (An exception escaping a pool thread would end that thread: no
    answer, a leaked socket, one thread fewer.)"""
    if os.stat(www / "bad-date.txt").st_mtime != BAD_MTIME:
        pytest.skip("this file system cannot store the far-future mtime")
    server = start(config, www, *pool_of(config, 4), tmp=tmp_path)
    try:
        threads = server.status()["threads_alive"]
        for i in range(70):
            name = "bad-date.txt" if i % 2 else "bad-date.bin"
            reply, reader = exchange(server.url, get(f"/{name}"), timeout=5)
            assert reply is not None and reply.status == 500, name
            assert reply.header("connection") == "close"
            assert reader.closed(timeout=2)
        ok(server.url)
        # a thread per connection ends after its client has gone: give the last one a moment
        # (a pool thread that died would leave the count short for good)
        assert wait_for(lambda: server.status()["threads_alive"] == threads, 5), \
            (server.status()["threads_alive"], threads)
    finally:
        code, took = stop_timed(server)
    assert code == 0 and took < 2.5, (code, took)


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_a_bug_while_serving_is_a_500_and_the_server_carries_on(site, tmp_path, config):
    """A bug injected past the core's own guard (``Responder.respond`` raises for /boom):
    every /boom request gets a 500 and a close, a pipelined request before it is answered, and
    the server keeps its threads and workers."""
    server = launch_wrapped(config, site, *pool_of(config, 4), bug="/boom", tmp=tmp_path)
    try:
        before = server.status()
        for _ in range(40):
            reply, reader = exchange(server.url, get("/boom"), timeout=5)
            assert reply is not None and reply.status == 500
            assert reader.closed(timeout=2)
        sock = connect(server.url)
        sock.sendall(get("/page.html") + get("/boom") + get("/page.html"))
        reader = Reader(sock)
        assert reader.response().status == 200
        assert reader.response().status == 500
        assert reader.closed(timeout=2)
        assert exchange(server.url, get("/page.html"))[0].status == 200
        # a thread per connection ends after its client has gone: give the last one a moment
        deadline = time.monotonic() + 5
        after = server.status()
        while (after["threads_alive"] != before["threads_alive"]
               and time.monotonic() < deadline):
            time.sleep(0.05)
            after = server.status()
        assert after["threads_alive"] == before["threads_alive"]
        assert after["pids"] == before["pids"]  # no state-group worker died either
    finally:
        code, took = stop_timed(server)
    assert code == 0 and took < 2.5, (code, took)


# -- 2. clients that never read ------------------------------------------------------------------
def non_reader(url: str, path: str = "/big.bin") -> socket.socket:
    """A client with a small receive buffer that asks for *path* and never reads."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(30)
    sock.connect((host, int(port)))
    sock.sendall(get(path))
    return sock


class Trickler(threading.Thread):
    """Reads a 10 MB response 4 KB at a time, 0.2 s apart: progress on every read, so a
    per-call socket timeout never fires; records how long until the server cut it."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.sock = non_reader(url)
        self.started = time.monotonic()
        self.got = 0
        self.ended: float | None = None
        self.how = ""

    def run(self) -> None:
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    self.how = "eof"
                    break
                self.got += len(data)
                time.sleep(0.2)
        except ConnectionResetError:
            self.how = "reset"
        except OSError as exc:
            self.how = repr(exc)
        self.ended = time.monotonic() - self.started
        self.sock.close()


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_a_response_has_one_deadline_however_slowly_the_client_reads(www, tmp_path, config):
    """Two tricklers and then four non-readers (six, for a pool of 4) ask for 10 MB: every
    one of them is cut - with a reset, so it can tell - within --send-timeout of its response's
    start, however often it read a little (a per-call socket timeout held a pool thread for
    minutes), and a normal request behind them waits for a thread at most that long."""
    timeout = 2.0
    with start(config, www, "--send-timeout", str(timeout), *pool_of(config, 4),
               tmp=tmp_path) as server:
        tricklers = [Trickler(server.url) for _ in range(2)]
        for t in tricklers:
            t.start()
        time.sleep(0.2)  # the tricklers have their threads
        stalled = [non_reader(server.url) for _ in range(4)]
        time.sleep(0.3)
        assert ok(server.url, timeout=10) < timeout + 1 + SLACK_S
        for t in tricklers:
            t.join(timeout + 1 + SLACK_S + 5)
            assert t.ended is not None, "a trickling reader still holds its response"
            assert t.got < 10 << 20 and t.how == "reset", (t.got, t.how)
            assert t.ended < timeout + 1 + SLACK_S, t.ended
        assert wait_for(lambda: server.status()["connections_open"] <= 1, 3)
        for sock in stalled:
            assert read_to_end(sock) == "reset"
            sock.close()
        ok(server.url)


def test_send_and_drain_timeouts_are_common_options():
    import argparse

    args = common_arguments(argparse.ArgumentParser()).parse_args(["--root", "/"])
    assert args.send_timeout == 30.0 and args.drain_timeout == 3.0
    assert args.cache_max_bytes == 64 << 20 and args.status == "off"


# -- 3. permissions --------------------------------------------------------------------------------
@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_a_file_the_server_may_not_open_is_403_before_any_byte(tmp_path, config):
    """Files world-readable by their mode bits whose owner (the server's user) may not read
    them: the kernel refuses the open.  The answer is a 403 and the connection goes on - not a
    200 head followed by EOF: the file is opened before its head is sent.
    The server runs as root without CAP_DAC_OVERRIDE, so the kernel checks modes for it."""
    if os.geteuid() != 0:
        pytest.skip("needs root (to run the server as root without CAP_DAC_OVERRIDE)")
    root = tmp_path / "www"
    root.mkdir()
    (root / "page.html").write_bytes(PAGE)
    for name, size in (("large.bin", 300 << 10), ("small.txt", 100)):
        path = root / name
        path.write_bytes(b"z" * size)
        path.chmod(0o074)  # owner: nothing; group: rwx; others: read
        assert path.stat().st_mode & stat.S_IROTH
    server = launch_wrapped(config, root, no_dac=True, tmp=tmp_path)
    try:
        for name in ("large.bin", "small.txt", "large.bin"):
            reply, reader = exchange(server.url, get(f"/{name}"), timeout=5)
            assert reply is not None and reply.status == 403, name
            assert not reader.closed(timeout=0.2), "a 403 keeps the connection"
        ok(server.url)
    finally:
        assert server.stop() == 0


# -- 7. SIGTERM ------------------------------------------------------------------------------------
def wake_pipe(pid: int) -> int:
    """The write end of a state-group worker's wake-up pipe (the one pipe it holds both ends
    of), opened through /proc: writing to it is what the worker's SIGTERM handler does."""
    ends: dict[str, list[int]] = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        if target.startswith("pipe:"):
            ends.setdefault(target, []).append(int(fd))
    for fds in ends.values():
        for fd in fds:
            flags = Path(f"/proc/{pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0]
            if len(fds) == 2 and int(flags, 8) & os.O_ACCMODE == os.O_WRONLY:
                return os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY)
    raise AssertionError(f"no wake-up pipe in worker {pid}")


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_requests_that_arrived_before_sigterm_are_answered(site, tmp_path, config):
    """With the server stopped (SIGSTOP) and told to stop (SIGTERM, pending), requests arrive
    on idle keep-alive connections and on new connections still in the listen backlog; then
    SIGCONT.  Every one of them arrived before the server acted on SIGTERM: each gets its
    response and then a clean EOF, not an EOF or a reset with no response.  A
    state-group worker's wake-up pipe is made readable before the requests arrive, so its
    epoll reports the stop first - the order in which a drain that closed every idle-looking
    connection would leave those requests unanswered."""
    server = start(config, site, tmp=tmp_path)
    try:
        idle = kept_alive(server.url, 4)
        stopped = pids(server)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            for pid in stopped:
                if config[1] == "state-group" and pid != server.pid:  # a state-group worker
                    fd = wake_pipe(pid)
                    os.write(fd, b"x")
                    os.close(fd)
                    os.kill(pid, signal.SIGTERM)
            os.kill(server.pid, signal.SIGTERM)
            time.sleep(0.1)
            fresh = [Reader(connect(server.url)) for _ in range(4)]  # completed by the kernel
            for reader in idle + fresh:
                reader.sock.sendall(get("/page.html"))
            time.sleep(0.2)
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        for i, reader in enumerate(idle + fresh):
            reply = reader.response()
            assert reply is not None, f"request {i} was dropped"
            assert reply.status == 200 and reply.body == (site / "page.html").read_bytes()
            assert reader.closed(timeout=3)
        assert server.proc.wait(10) == 0
    finally:
        server.stop()


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_sigterm_cuts_an_unfinished_download_with_a_reset_after_one_drain_time(www, tmp_path,
                                                                              config):
    """A download that cannot finish: after SIGTERM the server waits the drain time (3 s, the
    same for every server), then cuts it with a reset - a client must be able to tell a cut
    response from a whole one without counting bytes - and exits 0."""
    server = start(config, www, tmp=tmp_path)
    try:
        stuck = non_reader(server.url)
        time.sleep(0.3)
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        code = server.proc.wait(15)
        took = time.monotonic() - started
        assert code == 0
        assert 3.0 - 0.1 < took < 3.0 + SLACK_S, took
        assert read_to_end(stuck) == "reset"
    finally:
        server.stop()


# -- 8. smaller ------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_the_503_at_max_connections_is_the_cores(site, tmp_path, config):
    with start(config, site, "--max-connections", "2", tmp=tmp_path) as server:
        held = kept_alive(server.url, 2)
        reply, reader = exchange(server.url, get("/page.html"))
        assert reply.status == 503 and reply.header("connection") == "close"
        assert reply.header("date") and reply.header("server") == "arch-sim"
        assert reply.header("retry-after") == "1"
        assert reply.header("content-type").startswith("text/html") and b"503" in reply.body
        assert reader.sock.recv(1) == b""
        for r in held:
            r.sock.close()


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
@pytest.mark.parametrize("partial", [b"GET /page.html HTTP/1.1\r\nHost: t\r\nX-Slow: a",
                                     b"GET /page.html\r\n"], ids=["slowloris", "http09"])
def test_a_header_that_never_completes_gets_408(site, tmp_path, config, partial):
    with start(config, site, "--header-timeout", "1", tmp=tmp_path) as server:
        sock = connect(server.url)
        sock.sendall(partial)
        started = time.monotonic()
        reader = Reader(sock)
        reply = reader.response()
        assert reply is not None and reply.status == 408, "closed without a 408"
        assert reply.header("connection") == "close" and reply.header("date")
        assert reader.closed(timeout=2)
        assert 0.9 < time.monotonic() - started < 1 + 0.5 + SLACK_S


def test_no_worker_keeps_the_start_up_pipe(site, tmp_path):
    """Every pipe a state-group worker holds is its own wake-up pipe (both ends); the read end
    of the master's start-up pipe is closed in every worker, the first ones included."""
    with servers.start("state-group", site, log_dir=tmp_path) as server:
        workers = [p for p in pids(server) if p != server.pid]
        assert workers
        for pid in workers:
            ends: dict[str, int] = {}
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("pipe:"):
                    ends[target] = ends.get(target, 0) + 1
            assert all(n == 2 for n in ends.values()), (pid, ends)


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_server_status_is_exposed_only_when_asked(site, tmp_path, monkeypatch, config):
    """Off unless asked: without --status, /server-status is an ordinary path (404) even from
    loopback (a reverse proxy on the same host is loopback too); --status loopback serves it to
    loopback peers; --status token only to requests that carry the token."""
    name, arch, base = config
    module = servers.SERVER_MODULES[arch]
    cmd = [sys.executable, "-m", module, "--root", str(site), "--port", "0", *base]
    with servers.launch(name, cmd, log_dir=tmp_path) as server:
        reply, _ = exchange(server.url, get("/server-status"))
        assert reply.status == 404
    with servers.launch(name, [*cmd, "--status", "loopback"], log_dir=tmp_path) as server:
        reply, _ = exchange(server.url, get("/server-status"))
        assert reply.status == 200 and b'"requests"' in reply.body
    monkeypatch.setenv("ARCH_SIM_STATUS_TOKEN", "s3cret-t0ken-for-tests")
    with servers.launch(name, [*cmd, "--status", "token"], log_dir=tmp_path) as server:
        assert exchange(server.url, get("/server-status"))[0].status == 403
        wrong = "Authorization: Bearer nope\r\n"
        assert exchange(server.url, get("/server-status", extra=wrong))[0].status == 403
        right = "Authorization: Bearer s3cret-t0ken-for-tests\r\n"
        reply, _ = exchange(server.url, get("/server-status", extra=right))
        assert reply.status == 200 and b'"requests"' in reply.body


def test_the_harness_asks_for_server_status(site, tmp_path):
    with servers.start("thread-per-request", site, log_dir=tmp_path) as server:
        assert "requests" in server.status()
