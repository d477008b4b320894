"""Reliability of both real servers under faults and resource pressure: header and keep-alive
timeouts (slowloris), --max-connections, 5,000 idle connections, SIGTERM drain, a killed
state-group worker, and the harness's atomic writes and error messages.

The state-group server's own timeout, limit, drain and restart tests are in
test_stategroup.py; the harness's "server died mid-sweep" test is in test_harness.py.  Here the
same behaviour is checked for the threaded server (pool and per-connection), and for all three
configurations where one test covers them.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest
from conftest import SERVER_CONFIGS
from helpers import (
    Reader,
    connect,
    drain_clients,
    drain_site,
    exchange,
    get,
    kept_alive,
    wait_for,
)

from arch_sim import runinfo
from arch_sim.harness import servers
from real_servers.core.serving import DEFAULT_HEADER_TIMEOUT
from real_servers.stategroup.config import parse_args as stategroup_args
from real_servers.threaded.__main__ import parse_args as threaded_args

pytestmark = pytest.mark.real

THREADED = [c for c in SERVER_CONFIGS if c[1] == "thread-per-request"]
ALL_IDS = [c[0] for c in SERVER_CONFIGS]
THREADED_IDS = [c[0] for c in THREADED]
SWEEP_S = 0.5  # both servers check deadlines at most this often
SLACK_S = 1.0  # scheduling slack on a loaded 2-CPU machine


def start(config, root, *args: str, tmp=None, cpus=None) -> servers.ServerProcess:
    _, arch, base = config
    return servers.start(arch, root, args=[*base, *args], log_dir=tmp, cpus=cpus)


def pids(server: servers.ServerProcess) -> list[int]:
    return server.status()["pids"]


def descriptors(pid_list: list[int]) -> int:
    return sum(len(os.listdir(f"/proc/{pid}/fd")) for pid in pid_list)


def rss(pid_list: list[int]) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in pid_list)


def page(site: Path) -> bytes:
    return (site / "page.html").read_bytes()


def get_page(url: str, site: Path, timeout: float = 5.0) -> float:
    """One normal request on a new connection; returns its latency in seconds."""
    started = time.monotonic()
    reply, _ = exchange(url, get("/page.html"), timeout=timeout)
    assert reply is not None and reply.status == 200 and reply.body == page(site)
    return time.monotonic() - started


class Trickler(threading.Thread):
    """A slowloris client: sends a never-ending header one byte every *gap* seconds and records
    when (and how) the server ended the connection."""

    def __init__(self, url: str, gap: float) -> None:
        super().__init__(daemon=True)
        self.sock = connect(url, timeout=30)
        self.gap = gap
        self.started = time.monotonic()
        self.closed_after: float | None = None
        self.reply = b""

    def run(self) -> None:
        data = b"GET /page.html HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 10_000
        self.sock.settimeout(self.gap)
        try:
            for byte in data:
                try:
                    got = self.sock.recv(4096)  # waits `gap`: the server's answer, or its close
                except TimeoutError:
                    self.sock.sendall(bytes([byte]))
                    continue
                self.reply += got
                if not got:
                    break
        except OSError:  # reset, or a send after the close
            pass
        self.closed_after = time.monotonic() - self.started
        self.sock.close()


def assert_closed_by_server(sock: socket.socket, within: float) -> None:
    """The server ends the connection within *within* s: at once, or after a 408."""
    sock.settimeout(within)
    got = b""
    try:
        while data := sock.recv(65536):
            got += data
    except TimeoutError:
        pytest.fail(f"the server did not close the connection within {within} s")
    except ConnectionResetError:
        pass
    assert got == b"" or got.startswith(b"HTTP/1.1 408"), got[:60]


# -- header timeout: slowloris -----------------------------------------------------------------
@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_slowloris_is_closed_after_header_timeout_and_starves_no_one(site, tmp_path, config):
    """Eight trickling clients (twice the pool) are closed after --header-timeout; meanwhile
    a normal client is served as if they were not there (the state-group worker and the pool
    threads are never tied up by them)."""
    timeout = 1.5
    args = ["--header-timeout", str(timeout)]
    if config[0] == "threaded-pool":
        args += ["--threads", "4"]
    with start(config, site, *args, tmp=tmp_path) as server:
        tricklers = [Trickler(server.url, gap=0.1) for _ in range(8)]
        for t in tricklers:
            t.start()
        time.sleep(0.3)  # all of them are mid-header now
        latencies = [get_page(server.url, site) for _ in range(20)]
        assert max(latencies) < 0.5, f"a normal client waited {max(latencies):.2f} s"
        for t in tricklers:
            t.join(timeout + SWEEP_S + SLACK_S + 2)
        for t in tricklers:
            assert t.closed_after is not None, "a trickling client is still connected"
            assert timeout - 0.1 < t.closed_after < timeout + SWEEP_S + SLACK_S, t.closed_after
            assert t.reply == b"" or t.reply.startswith(b"HTTP/1.1 408"), t.reply[:60]
        assert wait_for(lambda: server.status()["connections_open"] <= 1, 2)
        get_page(server.url, site)


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_silent_connection_is_closed_after_header_timeout(site, tmp_path, config):
    """A client that connects and sends nothing owes its first header within --header-timeout
    (not --keepalive-timeout, which only bounds the wait between requests)."""
    with start(config, site, "--header-timeout", "0.8", "--keepalive-timeout", "30",
               tmp=tmp_path) as server:
        started = time.monotonic()
        assert_closed_by_server(connect(server.url), within=0.8 + SWEEP_S + SLACK_S)
        assert time.monotonic() - started > 0.7


def test_the_default_header_timeout_is_10s_and_in_effect(site, tmp_path):
    """Parsed defaults of both servers, then one trickle per configuration, concurrently,
    against servers started without --header-timeout."""
    assert DEFAULT_HEADER_TIMEOUT == 10.0
    assert threaded_args(["--root", str(site)]).header_timeout == 10.0
    assert stategroup_args(["--root", str(site)]).header_timeout == 10.0
    started = [start(config, site, tmp=tmp_path) for config in SERVER_CONFIGS]
    try:
        tricklers = [Trickler(server.url, gap=0.5) for server in started]
        for t in tricklers:
            t.start()
        for t in tricklers:
            t.join(10 + SWEEP_S + SLACK_S + 2)
        for config, t in zip(SERVER_CONFIGS, tricklers, strict=True):
            assert t.closed_after is not None, f"{config[0]}: still connected after 12 s"
            assert 9.9 < t.closed_after < 10 + SWEEP_S + SLACK_S, (config[0], t.closed_after)
    finally:
        for server in started:
            assert server.stop() == 0


# -- keep-alive timeout ------------------------------------------------------------------------
@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_idle_keep_alive_connections_close_after_keepalive_timeout(site, tmp_path, config):
    """Six idle keep-alive connections (three times a pool of 2) hold no thread: a normal client
    is served meanwhile; all six are closed after --keepalive-timeout."""
    args = ["--keepalive-timeout", "1"]
    if config[0] == "threaded-pool":
        args += ["--threads", "2"]
    with start(config, site, *args, tmp=tmp_path) as server:
        idle = kept_alive(server.url, 6)
        started = time.monotonic()
        assert max(get_page(server.url, site) for _ in range(10)) < 0.5
        for reader in idle:
            assert reader.closed(timeout=1 + SWEEP_S + SLACK_S + 1), "idle connection kept"
        elapsed = time.monotonic() - started
        assert elapsed < 1 + SWEEP_S + SLACK_S, elapsed
        assert wait_for(lambda: server.status()["connections_open"] <= 1, 2)


@pytest.mark.parametrize("config", THREADED, ids=THREADED_IDS)
def test_threaded_busy_keep_alive_connection_outlives_the_timeout(site, tmp_path, config):
    with start(config, site, "--keepalive-timeout", "0.6", tmp=tmp_path) as server:
        reader = Reader(connect(server.url))
        for _ in range(8):  # 1.6 s in all, never idle for 0.6 s
            reader.sock.sendall(get("/page.html"))
            assert reader.response().status == 200
            time.sleep(0.2)


# -- requests that arrive with the client's FIN before the server accepts ------------------------
@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_a_request_and_fin_arriving_together_are_answered_then_closed(site, tmp_path, config):
    """Accepted clients send a request (or part of one) and half-close while the server is
    stopped (SIGSTOP), so the data and the FIN are reported in one event when it resumes: each
    complete request is answered and every connection closed at once, not after a timeout.
    (A state-group worker that took the short read for a drained socket would miss the FIN,
    whose edge has passed: the connection would sit until the keep-alive timeout.)"""
    with start(config, site, "--header-timeout", "20", "--keepalive-timeout", "20",
               tmp=tmp_path) as server:
        readers = [Reader(connect(server.url)) for _ in range(6)]
        assert wait_for(lambda: server.status()["connections_open"] >= 7, 5)  # all accepted
        stopped = pids(server)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        try:
            for i, reader in enumerate(readers):
                reader.sock.sendall(get("/page.html") if i % 2 == 0 else b"GET /page.ht")
                reader.sock.shutdown(socket.SHUT_WR)
            time.sleep(0.2)
        finally:
            for pid in stopped:
                os.kill(pid, signal.SIGCONT)
        for i, reader in enumerate(readers):
            if i % 2 == 0:
                reply = reader.response()
                assert reply is not None and reply.status == 200 and reply.body == page(site)
                assert reader.closed(timeout=2), "answered, but not closed after the client's FIN"
            else:
                assert reader.closed(timeout=2), "a half-closed partial request was kept open"
                assert reader.buf == b""


# -- --max-connections ---------------------------------------------------------------------------
@pytest.mark.parametrize("config", THREADED, ids=THREADED_IDS)
def test_threaded_max_connections_gets_503_and_a_clean_close(site, tmp_path, config):
    with start(config, site, "--max-connections", "3", tmp=tmp_path) as server:
        held = kept_alive(server.url, 3)
        excess = []
        for _ in range(30):  # a burst beyond the limit
            reader = Reader(connect(server.url))
            reader.sock.sendall(get("/page.html"))
            excess.append(reader)
        for reader in excess:
            reply = reader.response()
            assert reply.status == 503 and reply.header("connection") == "close"
            assert reader.sock.recv(1) == b"", "expected a clean EOF, not a reset"
            reader.sock.close()
        for reader in held:  # the admitted connections are unaffected
            reader.sock.sendall(get("/page.html"))
            assert reader.response().status == 200
        held[0].sock.close()
        assert wait_for(lambda: exchange(server.url, get("/page.html"))[0].status == 200, 3)
        server.check_alive()


# -- 5,000 idle connections ----------------------------------------------------------------------
IDLE = 5000
#: resident memory a server may add per idle connection: a few KB of Python objects for a
#: socket, its parser and state (pool, state-group); a thread's stack pages and state too
#: (per-connection: ~25 KB measured)
BYTES_PER_CONN = {"threaded-pool": 8 << 10, "state-group": 8 << 10, "staged": 8 << 10,
                  "threaded-per-connection": 64 << 10}


def raise_own_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= need:
        return
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    except (ValueError, OSError) as exc:
        pytest.skip(f"cannot raise RLIMIT_NOFILE to {need} (hard limit {hard}): {exc}")


def soft_fd_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no 'Max open files' line")


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_5000_idle_connections_then_back_to_the_descriptor_baseline(site, tmp_path, config):
    if config[1] == "prefork":
        pytest.skip("a prefork worker process holds one connection (Apache 1.3's MaxClients): "
                    "connections beyond --workers wait in the backlog, as "
                    "tests/test_prefork_staged.py checks")
    raise_own_fd_limit(IDLE + 1000)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # start the server with a low soft limit: it must raise its own limit in-process
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    try:
        server = start(config, site, "--header-timeout", "120", tmp=tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    socks: list[socket.socket] = []
    try:
        get_page(server.url, site)
        procs = pids(server)
        for pid in procs:
            assert soft_fd_limit(pid) >= IDLE + 100, "the server did not raise RLIMIT_NOFILE"
        base_fds, base_rss = descriptors(procs), rss(procs)
        threads = server.status()["threads_alive"]
        for _ in range(IDLE):
            socks.append(socket.create_connection(("127.0.0.1", server.port), timeout=10))
        assert wait_for(lambda: server.status(timeout=30)["connections_open"] >= IDLE, 30, 0.2), (
            server.status(timeout=30)["connections_open"])
        get_page(server.url, site)  # served while 5,000 connections sit idle
        peak_fds, peak_rss = descriptors(procs), rss(procs)
        assert peak_fds >= base_fds + IDLE - 5, "the connections are not all open in the server"
        bound = IDLE * BYTES_PER_CONN[config[0]]
        assert peak_rss - base_rss < bound, f"{(peak_rss - base_rss) >> 20} MB for {IDLE} conns"
        for sock in socks:
            sock.close()
        socks.clear()
        # a thread per connection: 5,000 threads wake at once to see EOF and exit, all under one
        # GIL, so /server-status may take seconds to answer meanwhile (1.6-4.3 s measured here)
        assert wait_for(lambda: server.status(timeout=30)["connections_open"] <= 1, 60, 0.2)
        assert wait_for(lambda: abs(descriptors(procs) - base_fds) <= 5, 10), (
            descriptors(procs), base_fds)
        assert wait_for(lambda: server.status()["threads_alive"] <= threads, 10)
        assert rss(procs) - base_rss < bound
        get_page(server.url, site)
        print(f"{config[0]}: fds {base_fds} -> {peak_fds} -> {descriptors(procs)}, "
              f"RSS +{(peak_rss - base_rss) >> 20} MB for {IDLE} idle connections")
    finally:
        for sock in socks:
            sock.close()
        assert server.stop() == 0


# -- SIGTERM drain -------------------------------------------------------------------------------
@pytest.mark.parametrize("config", THREADED, ids=THREADED_IDS)
def test_threaded_sigterm_drains_a_large_response_in_flight_then_exits_0(tmp_path, config):
    big = drain_site(tmp_path / "www", seed=8)
    server = start(config, tmp_path / "www", tmp=tmp_path)
    try:
        slow, idle = drain_clients(server.url)
        time.sleep(0.3)  # the big response is blocked mid-way in a send
        os.kill(server.pid, signal.SIGTERM)
        assert idle.closed(timeout=2), "an idle keep-alive connection was not closed"

        def refused() -> bool:
            try:
                connect(server.url, timeout=1).close()
            except ConnectionRefusedError:
                return True
            return False

        assert wait_for(refused, 2), "still accepting connections after SIGTERM"
        assert server.alive()  # ...but still sending
        reader = Reader(slow)
        reply = reader.response()
        assert reply.status == 200 and reply.body == big
        assert reader.closed(timeout=2)
        assert server.proc.wait(10) == 0
    finally:
        server.stop()


# -- a killed state-group worker: the other worker's connections carry on -------------------------
def test_a_killed_worker_fails_none_of_the_other_workers_connections(site, tmp_path):
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    if len(cpus) < 2:
        pytest.skip("needs 2 CPUs")
    with servers.start("state-group", site, args=["--cpus", "0,1"], cpus=[0, 1],
                       log_dir=tmp_path) as server:
        by_worker: dict[int, list[Reader]] = {}
        for _ in range(40):  # SO_REUSEPORT spreads connections over both workers
            reader = Reader(connect(server.url))
            reader.sock.sendall(get("/server-status"))
            owner = json.loads(reader.response().body)["access_log"]["pid"]
            by_worker.setdefault(owner, []).append(reader)
        assert len(by_worker) == 2, "every connection went to one worker"
        victim, survivor = sorted(by_worker, key=lambda pid: len(by_worker[pid]))
        os.kill(victim, signal.SIGKILL)
        for _ in range(3):  # before, during and after the replacement
            for reader in by_worker[survivor]:
                reader.sock.sendall(get("/page.html"))
                reply = reader.response()
                assert reply.status == 200 and reply.body == page(site)
            time.sleep(0.3)
        for reader in by_worker[victim]:
            assert reader.closed(timeout=2)  # the dead worker's connections end, cleanly or not
        assert wait_for(lambda: server.status()["restarts"] == 1, 3)  # (2 s: test_stategroup)
        assert victim not in server.status()["pids"]
        for _ in range(20):
            get_page(server.url, site)


# -- the harness: errors name the log, writes are atomic -------------------------------------------
def test_a_dead_server_error_names_its_log(site, tmp_path):
    server = servers.start("thread-per-request", site, log_dir=tmp_path)
    try:
        os.kill(server.pid, signal.SIGKILL)
        server.proc.wait(5)
        with pytest.raises(servers.ServerError) as info:
            server.check_alive()
        assert str(server.log_path) in str(info.value) and server.log_path.exists()
        with pytest.raises(servers.ServerError) as info:
            server.status()
        assert str(server.log_path) in str(info.value)
    finally:
        server.stop()


def test_meta_json_is_replaced_atomically(tmp_path, monkeypatch):
    path = tmp_path / "meta.json"
    runinfo.write_json_atomic(path, {"complete": True, "rows": 3})
    real_dump = json.dump

    def dump_then_fail(data, f, **kw):
        real_dump({"half": "written"}, f)
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", dump_then_fail)
    with pytest.raises(OSError):
        runinfo.write_json_atomic(path, {"complete": False})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"complete": True, "rows": 3}  # the old one, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json"]  # no temp file left


def test_figures_are_replaced_atomically(tmp_path):
    plots = pytest.importorskip("arch_sim.plots")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    written = plots.save(fig, tmp_path, "figure")
    before = {p.name: p.read_bytes() for p in written}
    real_savefig = fig.savefig

    def savefig_then_fail(fname, **kw):
        real_savefig(fname, **kw)
        Path(fname).write_bytes(b"half")
        raise OSError("disk full")

    fig.savefig = savefig_then_fail
    with pytest.raises(OSError):
        plots.save(fig, tmp_path, "figure")
    plt.close(fig)
    assert {p.name: p.read_bytes() for p in written} == before  # the old figures, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "figure.svg"]
