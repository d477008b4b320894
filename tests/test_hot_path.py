"""The servers' cheap hot path keeps its behaviour: reused replies, the parser's one-buffer fast
path, the pool's edge-triggered hand-offs, and the benchmark's per-workload ratios."""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest
from helpers import Reader, benchmark, connect, get

from arch_sim.harness import servers
from real_servers.core import DocumentRoot, ParseError, RequestParser, Responder
from real_servers.core.docroot import WIRE_MAX
from real_servers.core.parser import MAX_HEADER_BYTES, MAX_URI_BYTES

ROOT = Path(__file__).resolve().parents[1]


def _request(data: bytes):
    parser = RequestParser()
    parser.feed(data)
    return parser.next_request()


# -- the core: reused replies -------------------------------------------------------------------
def test_reused_replies_are_whole_and_say_how_the_connection_ends(tmp_path):
    (tmp_path / "small.txt").write_bytes(b"s" * 100)
    (tmp_path / "large.txt").write_bytes(b"L" * (WIRE_MAX + 1))
    responder = Responder(DocumentRoot(tmp_path))
    keep = responder.respond(_request(get("/small.txt")))
    assert responder.respond(_request(get("/small.txt"))) is keep  # reused within the second
    assert keep.wire == keep.head + keep.body and keep.body == b"s" * 100
    assert b"connection:" not in keep.head.lower()
    close = responder.respond(_request(get("/small.txt", extra="Connection: close\r\n")))
    assert responder.respond(_request(get("/small.txt", version="HTTP/1.0"))) is close
    assert close.wire == close.head + close.body and not close.keep_alive
    assert b"\r\nConnection: close\r\n" in close.head and close.head.endswith(b"\r\n\r\n")
    large = responder.respond(_request(get("/large.txt", extra="Connection: close\r\n")))
    assert large.wire is None and len(large.body) == WIRE_MAX + 1  # sent as head + body
    head = responder.respond(_request(b"HEAD /small.txt HTTP/1.1\r\nHost: t\r\n"
                                      b"Connection: close\r\n\r\n"))
    assert head.body == b"" and head.wire is None and b"Content-Length: 100" in head.head


# -- the core: the parser's fast path ----------------------------------------------------------
def test_a_head_that_is_the_whole_buffer_leaves_nothing_behind():
    parser = RequestParser()
    parser.feed(get("/a") + b"\r\n")  # one request, then an empty line
    assert parser.next_request().path == "/a" and parser.buffered == 2
    parser.feed(get("/b"))
    assert parser.next_request().path == "/b" and parser.buffered == 0
    assert not parser.closed
    parser.feed(get("/c", extra="Connection: close\r\n"))
    assert parser.next_request().path == "/c" and parser.closed and parser.buffered == 0


def test_an_overlong_head_in_one_buffer_is_refused():
    """A head over the limit that arrives whole (the fast pattern matches it) is refused as one
    arriving in pieces is: 414 for too long a target, else 431."""
    target = "/" + "x" * (MAX_URI_BYTES + 10)
    filler = "X-Pad: " + "p" * (MAX_HEADER_BYTES - len(target)) + "\r\n"
    with pytest.raises(ParseError) as info:
        _request(get(target, extra=filler))
    assert info.value.status == 414
    filler = "X-Pad: " + "p" * MAX_HEADER_BYTES + "\r\n"  # a short line, too long a head
    with pytest.raises(ParseError) as info:
        _request(get("/a", extra=filler))
    assert info.value.status == 431


# -- the pool: edge-triggered hand-offs --------------------------------------------------------
@pytest.mark.real
def test_the_pool_answers_a_pipelined_burst_larger_than_one_read(site, tmp_path):
    """More than one read's worth (64 KiB) of pipelined requests sent at once: no new edge
    follows the first, so the thread that read the first part hands the rest off again."""
    n = 64 * 1024 // len(get("/page.html")) + 200
    expected = (site / "page.html").read_bytes()
    with servers.start("thread-per-request", site, args=["--threads", "4"],
                       log_dir=tmp_path) as server:
        sock = connect(server.url, timeout=10.0)
        sender = threading.Thread(target=sock.sendall, args=(get("/page.html") * n,))
        sender.start()
        reader = Reader(sock)
        bodies = [reader.response() for _ in range(n)]
        sender.join()
        sock.close()
        server.check_alive()
    assert all(r is not None and r.status == 200 and r.body == expected for r in bodies)


# -- the benchmark: a ratio is to nginx in the same workload and round --------------------------
def _bench_module():
    return benchmark("servers")


def test_ratios_are_per_workload_even_on_one_file_set():
    bench = _bench_module()
    rows = []
    for workload, mode, nginx, ours in (("specweb99", "keep-alive", 10.0, 15.0),
                                        ("seed", "close", 40.0, 60.0)):
        for round_ in range(2):
            for label, cpu in (("nginx (1 worker)", nginx), ("state-group", ours)):
                rows.append({"workload": workload, "file_set": "specweb99",
                             "connection_mode": mode, "label": label, "round": round_,
                             "rps": 1.0, "cpu_us_per_request": cpu,
                             "reschedules_per_request": 0.0, "errors": 0})
    table = bench.summarise(pd.DataFrame(rows)).set_index(["workload", "label"])
    assert table.loc[("specweb99", "state-group"), "cpu_vs_nginx"] == pytest.approx(1.5)
    assert table.loc[("seed", "state-group"), "cpu_vs_nginx"] == pytest.approx(1.5)
    assert bench.workloads("1k,seed") == ["1k", "seed"]
    assert bench.WORKLOADS["seed"] == ("specweb99", "close")


def test_servers_to_measure_are_chosen_by_name_and_the_floor_runs_on_1k_only():
    bench = _bench_module()
    order = bench.schedule(["1k", "seed"], 2, bench.servers("nginx,bare-pool"))
    seen = [(r, w, label) for r, w, (label, _, _) in order]
    assert [s for s in seen if s[1] == "seed"] == [(0, "seed", "nginx (1 worker)"),
                                                    (1, "seed", "nginx (1 worker)")]
    assert [label for r, w, label in seen if w == "1k"] == [
        "nginx (1 worker)", "bare pool 64 (no HTTP core)",  # round 0
        "bare pool 64 (no HTTP core)", "nginx (1 worker)"]  # round 1: rotated
    with pytest.raises(Exception, match="nginx included"):
        bench.servers("pool,bare-pool")


def test_the_bare_pool_answers_every_pipelined_head_and_refuses_a_missing_file(tmp_path):
    import subprocess
    import sys

    from arch_sim.harness.peers import free_port

    body = b"k" * 1024
    (tmp_path / "file_1k.bin").write_bytes(body)
    script = str(ROOT / "benchmarks/bare_pool.py")
    bad = subprocess.run([sys.executable, script, "1", str(tmp_path / "none")],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "cannot read" in bad.stderr
    port = free_port()
    proc = servers.launch("bare-pool", [sys.executable, script, str(port), str(tmp_path),
                                        "--threads", "4"], cpus=None, log_dir=tmp_path,
                          ready=f"127.0.0.1:{port}", ready_timeout=20)
    try:
        sock = connect(f"http://127.0.0.1:{port}/")
        sock.sendall(get("/a") * 3)
        reader = Reader(sock)
        replies = [reader.response() for _ in range(3)]
        sock.close()
    finally:
        proc.stop()
    assert all(r is not None and r.status == 200 and r.body == body for r in replies)
