"""What is specific to the prefork and staged servers (the conformance, hostile-input,
reliability and fault suites run against them through conftest.SERVER_CONFIGS).

- prefork: an exited worker's context switches stay counted (the master's RUSAGE_CHILDREN),
  the worker is respawned and requests are still served; a connection holds its worker, so
  connections beyond ``--workers`` wait in the listen backlog until one is free.
- staged: ``--stage-threads`` parsing; the per-state moved counters the harness reads (each
  completed request moves once out of wait_headers, send_data and logging).
- both: SIGTERM with an idle keep-alive connection open exits 0 at once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import Reader, connect, exchange, get, kept_alive, wait_for

from arch_sim.harness import counters, servers
from real_servers.core.lifecycle import ACCEPT, LOGGING, NAMES, SEND_DATA, WAIT_HEADERS
from real_servers.staged.options import DEFAULT_THREADS, STAGES, parse_args

pytestmark = pytest.mark.real


# -- prefork ----------------------------------------------------------------------------------
def test_prefork_keeps_a_killed_workers_switches_and_respawns_it(site, tmp_path):
    with servers.start("prefork", site, args=["--workers", "4"], log_dir=tmp_path) as server:
        sock = connect(server.url)
        reader = Reader(sock)
        for _ in range(200):  # one worker serves them all, blocking in recv between requests
            sock.sendall(get("/page.html"))
            assert reader.response().status == 200
        sock.sendall(get("/server-status"))  # answered by the same worker: it names itself
        before = json.loads(reader.response().body)
        victim = before["answered_by"]
        own = next(p for p in before["processes"] if p["pid"] == victim)
        switches = own["voluntary_ctxt_switches"] + own["involuntary_ctxt_switches"]
        assert own["requests"] >= 200 and switches >= 100, own  # (preempted, if not asleep)
        os.kill(victim, signal.SIGKILL)
        assert reader.response() is None  # the connection died with its worker
        # until the master has reaped it, the victim is still listed (5 pids, no restart yet)
        assert wait_for(lambda: victim not in server.status()["pids"], 5)
        assert wait_for(lambda: len(server.status()["pids"]) == 5, 5)
        after = server.status()
        assert victim not in after["pids"] and after["restarts"] == 1, after
        for key in ("voluntary_ctxt_switches", "involuntary_ctxt_switches"):
            assert after[key] >= before[key], (key, before[key], after[key])
        assert after["requests"] >= before["requests"] + 1
        for _ in range(8):  # every worker, the new one included, still serves
            assert exchange(server.url, get("/page.html"))[0].status == 200


def test_prefork_connections_beyond_the_workers_wait_for_a_free_one(site, tmp_path):
    with servers.start("prefork", site, args=["--workers", "2"], log_dir=tmp_path) as server:
        idle = kept_alive(server.url, 2)  # each holds a worker, blocked in recv
        waiting = Reader(connect(server.url))  # completed by the kernel, in the backlog
        waiting.sock.sendall(get("/page.html"))
        waiting.sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            waiting.sock.recv(1)
        idle[0].sock.close()  # its worker sees EOF and accepts the waiting connection
        waiting.sock.settimeout(5)
        assert waiting.response().status == 200
        waiting.sock.sendall(get("/server-status"))  # (both workers are taken: ask this one)
        assert json.loads(waiting.response().body)["connections_open"] == 2


# -- staged -----------------------------------------------------------------------------------
def test_stage_threads_defaults_and_overrides():
    assert STAGES == tuple(NAMES[s] for s in (ACCEPT, WAIT_HEADERS, SEND_DATA, LOGGING))
    assert parse_args(["--root", "."]).stage_threads == DEFAULT_THREADS == {
        "accept": 1, "wait_headers": 1, "send_data": 4, "logging": 1}
    args = parse_args(["--root", ".", "--stage-threads", "send_data=8, logging=2"])
    assert args.stage_threads == {"accept": 1, "wait_headers": 1, "send_data": 8, "logging": 2}


@pytest.mark.parametrize("value", ["userspace=1", "send=4", "send_data", "send_data=0",
                                   "send_data=-1", "send_data=x", "accept=1,,logging=1", ""])
def test_bad_stage_threads_are_an_argparse_error_naming_the_stages(value):
    done = subprocess.run(
        [sys.executable, "-m", "real_servers.staged", "--root", ".", "--stage-threads", value],
        capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert "--stage-threads" in last and all(name in last for name in STAGES), last


def test_staged_moves_each_request_once_out_of_each_state(site, tmp_path):
    with servers.start("staged", site, log_dir=tmp_path) as server:
        before = server.status()  # (itself moves on after this snapshot: one request more)
        sock = connect(server.url)
        reader = Reader(sock)
        for _ in range(10):  # keep-alive: logging parks the connection for the next one
            sock.sendall(get("/page.html"))
            assert reader.response().status == 200
        sock.sendall(get("/page.html") * 3)  # pipelined: the next is buffered, no epoll event
        assert [reader.response().status for _ in range(3)] == [200] * 3
        for _ in range(5):
            assert exchange(server.url, get("/nope", extra="Connection: close\r\n"))[
                0].status == 404
        time.sleep(0.3)  # the last responses' logging
        after = server.status()
        moved = counters.delta(counters.snapshot(before["pids"], before),
                               counters.snapshot(after["pids"], after)).moved
        requests = 10 + 3 + 5 + 1  # and the first /server-status
        assert after["requests"] - before["requests"] == requests
        assert {name: moved[name] for name in ("wait_headers", "send_data", "logging")} == {
            "wait_headers": requests, "send_data": requests, "logging": requests}
        assert moved["accept"] == 1 + 5 + 1  # the keep-alive one, five, the second status's
        assert moved["userspace"] == 0


# -- both -------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch, args", [("prefork", ["--workers", "4"]), ("staged", [])])
def test_sigterm_with_an_idle_keep_alive_connection_exits_0_at_once(site, tmp_path, arch, args):
    server = servers.start(arch, site, args=args, log_dir=tmp_path)
    try:
        (idle,) = kept_alive(server.url, 1)
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)  # the master only: it stops its workers
        assert server.proc.wait(10) == 0
        took = time.monotonic() - started
        assert took < 1.5, f"{took:.2f} s: the drain waited for the idle connection"
        assert idle.closed(timeout=1)
    finally:
        server.stop()
