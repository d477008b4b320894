"""The shared counter board of the multi-process servers: fields are never seen half written,
and /server-status counts every request a client already has its reply to."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest
from helpers import exchange, get

from arch_sim.harness import servers
from real_servers.core import board as b
from real_servers.stategroup import status
from real_servers.stategroup.lifecycle import NAMES


def test_a_reader_in_another_process_never_sees_a_counter_zeroed_while_it_is_written():
    """A worker rewrites its counters while another worker reads them for /server-status: the
    reader must see the old value or the new one, never 0 (struct.pack_into zero-fills first)."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the writer and the reader must run at once: needs two CPUs")
    board = b.Board(1)
    write = board.writer(0, b.REQUESTS, b.STIME - b.REQUESTS + 1)
    write(*range(1, 9))
    child = os.fork()
    if child == 0:  # the writer: counters that are never 0, rewritten as fast as it can
        end = time.monotonic() + 0.6
        n = 1
        while time.monotonic() < end:
            n += 1
            write(n, n, n, n, n, n, n, n)
        os._exit(0)
    slot, zeros, reads, changes, last = board.slot(0), 0, 0, 0, 0
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        value = slot[b.REQUESTS]
        reads += 1
        zeros += value == 0
        changes += value != last
        last = value
    os.waitpid(child, 0)
    assert changes > 100, "the writer never ran beside the reader: nothing was tested"
    assert zeros == 0, f"{zeros} of {reads} reads saw a counter at 0 while it was rewritten"


def test_a_status_read_never_sees_a_dead_workers_requests_twice_or_not_at_all():
    """The master retires dead workers (their requests move to RETIRED_REQUESTS, the slot is
    cleared) while another process reads the totals: a worker that served N requests is
    respawned and serves N more, so the total a reader sees never goes down - unless it read
    in the middle of a retire, with N counted twice."""
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("the master and the reader must run at once: needs two CPUs")
    board, served = b.Board(1), 7
    slot = board.slot(0)
    child = os.fork()
    if child == 0:  # the master: a worker serves, dies and is retired, again and again
        end = time.monotonic() + 1.2
        while time.monotonic() < end:
            slot[b.PID], slot[b.ALIVE] = 4242, 1  # respawned: 0 requests
            slot[b.REQUESTS] = served
            b.retire(board, 0)
            gap = time.perf_counter() + 30e-6  # the next death: readers get a quiet moment
            while time.perf_counter() < gap:
                pass
        os._exit(0)
    last, drops, reads, changes = 0, 0, 0, 0
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        total = b.totals(board)["requests"]
        reads += 1
        drops += total < last
        changes += total != last
        last = total
    os.waitpid(child, 0)
    assert changes > 100, "the master never retired beside the reader: nothing was tested"
    assert drops == 0, f"{drops} of {reads} reads came after one that counted a retire twice"


def fake_worker(board: b.Board, index: int) -> SimpleNamespace:
    """The parts of a state-group Worker that publish() and refresh() use."""
    return SimpleNamespace(
        board=board, slot=board.slot(index), requests=0, passes=0, sleeps=0, busy_polls=0,
        moved=[0] * len(NAMES), conns={}, now=0.0, published=0.0, counted_at=0.0, answered=0,
        state_ns=None,  # (not started with --state-cpu)
        _write_counters=board.writer(index, b.REQUESTS, b.STIME - b.REQUESTS + 1),
        _write_states=board.writer(index, b.MOVED, 2 * len(NAMES)))


def two_workers() -> tuple[b.Board, SimpleNamespace, SimpleNamespace]:
    board = b.Board(2)
    asking, busy = fake_worker(board, 0), fake_worker(board, 1)
    for i, worker in enumerate((asking, busy)):
        worker.slot[b.PID], worker.slot[b.ALIVE] = 1000 + i, 1
        status.publish(worker)
    return board, asking, busy


def test_status_waits_for_a_busy_worker_to_publish_what_it_served(monkeypatch):
    """The other worker served 3 requests since it last published (it publishes every
    PUBLISH_S while busy): /server-status asks, and it answers at the end of its pass."""
    monkeypatch.setattr(status, "STATUS_WAIT_S", 2.0)
    board, asking, busy = two_workers()
    busy.requests = 3

    def busy_loop():  # the worker's passes: it publishes at the end of the first one due
        busy.now = busy.published  # (it published just now: PUBLISH_S is far off)
        end = time.monotonic() + 5  # past the wait: a worker deaf to the request is seen
        while not status.due(busy) and time.monotonic() < end:
            time.sleep(0.001)
        time.sleep(0.02)  # the rest of its pass
        status.publish(busy)

    thread = threading.Thread(target=busy_loop)
    thread.start()
    unanswered = status.refresh(asking)
    counted = status.collect(board)["requests"]
    thread.join()
    assert (unanswered, counted) == ([], 3)


def test_status_does_not_wait_for_a_sleeping_worker(monkeypatch):
    """A worker asleep in epoll published before it blocked: its counters are current, and
    nobody would answer the request (the test hangs to its timeout if refresh waited)."""
    monkeypatch.setattr(status, "STATUS_WAIT_S", 600.0)
    board, asking, sleeping = two_workers()
    sleeping.requests = 4
    status.publish(sleeping)
    sleeping.slot[b.ASLEEP] = 1
    assert status.refresh(asking) == []
    assert status.collect(board)["requests"] == 4


def test_a_worker_that_never_answers_is_named_after_the_wait(monkeypatch):
    monkeypatch.setattr(status, "STATUS_WAIT_S", 0.01)
    board, asking, stuck = two_workers()
    assert status.refresh(asking) == [stuck.slot[b.PID]]


def test_two_workers_count_every_request_answered_before_the_status_request(site, tmp_path):
    """Real server, two workers: between two /server-status documents the requests go up by
    exactly the ones made in between (the previous status request included), round after
    round - a busy worker's counters are not up to PUBLISH_S old."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2:
        pytest.skip("two workers need two CPUs")
    server = servers.start("state-group", site, args=["--cpus", ",".join(map(str, cpus))],
                           log_dir=tmp_path)
    try:
        assert len(server.status()["workers"]) == 2
        previous, off = server.status()["requests"], []
        for round_ in range(300):
            for _ in range(3):
                exchange(server.url, get("/page.html"))
            now = server.status()["requests"]
            if now != previous + 4:
                off.append((round_, now - previous))
            previous = now
        assert not off, f"rounds (round, requests counted) that missed or doubled: {off[:10]}"
    finally:
        assert server.stop() == 0


def test_busy_workers_answer_the_status_request_within_their_pass(site, tmp_path):
    """Under unpaced wrk both workers are busy and rarely sleep: each status request is still
    answered by both (no worker left at its last publication) and the counts only grow."""
    cpus = sorted(os.sched_getaffinity(0))[:2]
    if len(cpus) < 2 or shutil.which("wrk") is None:
        pytest.skip("needs two CPUs and wrk (make test installs it)")
    server = servers.start("state-group", site, args=["--cpus", ",".join(map(str, cpus))],
                           log_dir=tmp_path)
    try:
        load = subprocess.Popen(["wrk", "-t1", "-c32", "-d3s", f"{server.url}/page.html"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        docs = []
        while load.poll() is None and len(docs) < 40:
            docs.append(server.status())
            time.sleep(0.02)
        load.wait(timeout=30)
        assert len(docs) >= 10
        assert [d["unanswered"] for d in docs] == [[]] * len(docs)
        counts = [d["requests"] for d in docs]
        assert counts == sorted(counts) and counts[-1] > counts[0]
    finally:
        assert server.stop() == 0
