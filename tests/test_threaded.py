"""The thread-per-request server under concurrent load: nobody starves, counters keep counts."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest
from conftest import need_wrk
from helpers import address, wait_for

from arch_sim.harness import servers
from arch_sim.harness.wrk import run_wrk

pytestmark = pytest.mark.real

CLIENT_DEADLINE_S = 30.0


def hammer(url: str, site, clients: int, requests: int) -> list[float]:
    """*clients* keep-alive clients x *requests* each; returns each client's elapsed time."""
    manifest = json.loads((site / "fileset.json").read_text())
    paths = [u for u, s in zip(manifest["urls"], manifest["sizes"], strict=True) if s <= 100_000]
    expected = {p: (site / p.lstrip("/")).read_bytes() for p in paths}
    host, port = address(url)
    elapsed: list[float] = []
    failures: list[str] = []
    start = threading.Barrier(clients)

    def one(idx: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=CLIENT_DEADLINE_S)
        start.wait()
        t0 = time.monotonic()
        try:
            for i in range(requests):
                path = paths[(idx * 7 + i) % len(paths)]
                conn.request("GET", path)
                reply = conn.getresponse()
                if reply.read() != expected[path] or reply.status != 200:
                    failures.append(f"client {idx} request {i}: wrong body for {path}")
                    return
        except OSError as exc:
            failures.append(f"client {idx}: {exc!r}")
        finally:
            elapsed.append(time.monotonic() - t0)
            conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CLIENT_DEADLINE_S + 30)
    assert not failures, failures[:5]
    assert len(elapsed) == clients
    return elapsed


@pytest.mark.parametrize(
    "args, clients, requests",
    [(["--threads", "16"], 256, 20), (["--threads", "0"], 64, 50)],
    ids=["pool-16-x-256-clients", "per-connection-x-64-clients"],
)
def test_no_client_starves(site, tmp_path, args, clients, requests):
    with servers.start("thread-per-request", site, args=args, log_dir=tmp_path) as server:
        elapsed = hammer(server.url, site, clients, requests)
        assert max(elapsed) < CLIENT_DEADLINE_S, f"slowest client took {max(elapsed):.1f} s"
        status = server.status()
        assert status["requests"] >= clients * requests
        server.check_alive()


@pytest.mark.parametrize(
    "args", [["--threads", "16"], ["--threads", "0"]], ids=["pool", "per-conn"]
)
def test_counters_survive_exited_threads(site, tmp_path, args):
    """After 10,000+ wrk requests, getrusage still holds the switches of threads that exited."""
    need_wrk()
    with servers.start("thread-per-request", site, args=args, log_dir=tmp_path,
                       cpus=[0]) as server:
        before = server.status()
        done = 0
        for _ in range(4):  # bounded: at most 4 x 3 s of load
            result = run_wrk(server.url, ["/class1/class1_1.bin"], connections=16, duration=3,
                             cpus=[1])
            done += result.requests
            if done >= 10_000:
                break
        if args == ["--threads", "0"]:  # wrk closed: the connection threads exit
            wait_for(lambda: server.status()["threads_alive"] <= 3, timeout=10)
        after = server.status()
    assert done >= 10_000, f"wrk managed only {done} requests in 12 s"
    assert after["requests"] - before["requests"] >= 10_000
    assert after["requests"] - before["requests"] >= done  # the server answered all wrk saw
    assert after["voluntary_ctxt_switches"] > before["voluntary_ctxt_switches"]
    if args == ["--threads", "0"]:
        # wrk's connections closed, so their threads exited - their switches were kept
        assert after["threads_alive"] <= 3
        assert after["voluntary_ctxt_switches"] - before["voluntary_ctxt_switches"] >= 16
