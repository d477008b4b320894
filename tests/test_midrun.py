"""benchmarks/midrun.py: bad arguments are one line and exit 2 before any server starts, and
a window's reschedules per request come from the two /server-status replies around it."""

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import benchmark

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "midrun.py"
midrun = benchmark("midrun")


@pytest.mark.parametrize("argv, says", [
    (["--rate", "0"], "--rate"),
    (["--rate", "fast"], "--rate"),
    (["--arch", "nginx"], "--arch"),
    (["--window", "0"], "--window"),
    (["--lead", "0.5"], "whole seconds"),
    (["--rounds", "-1"], "--rounds"),
    (["--connection", "pipelined"], "--connection"),
    (["--warmup", "-1"], "--warmup"),
])
def test_bad_arguments_are_one_line_exit_2(argv: list[str], says: str) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and says in lines[0], out.stderr


def test_window_counts_between_two_status_replies() -> None:
    before = {"requests": 100, "voluntary_ctxt_switches": 1000, "involuntary_ctxt_switches": 10}
    after = {"requests": 400, "voluntary_ctxt_switches": 1900, "involuntary_ctxt_switches": 310}
    mid = midrun.window("midrun", before, after, None, 3.0)
    assert (mid.requests, mid.voluntary, mid.involuntary) == (300, 900, 300)
    assert mid.per_request == pytest.approx(4.0)
    bench = midrun.window("bench", before, after, 240, 3.0)  # bench divides by wrk's count
    assert bench.per_request == pytest.approx(5.0) and bench.server_requests == 300


def test_thread_groups_sum_a_stage_pool_per_request() -> None:
    before = {11: ("send_data", 1_000, 5, 1), 12: ("send_data", 2_000, 7, 0),
              13: ("logging", 0, 0, 0)}
    after = {11: ("send_data", 101_000, 15, 3), 12: ("send_data", 102_000, 17, 2),
             13: ("logging", 50_000, 20, 0), 14: ("logging", 50_000, 10, 10)}  # 14: new
    groups = midrun.by_group(before, after, requests=10)
    assert groups["send_data"] == pytest.approx([20.0, 2.0, 0.4])
    assert groups["logging"] == pytest.approx([10.0, 3.0, 1.0])


def test_thread_counts_reads_this_process() -> None:
    import os
    import threading

    stop = threading.Event()
    worker = threading.Thread(target=stop.wait, name="probe-3")
    worker.start()
    try:
        counts = midrun.thread_counts([os.getpid()])
    finally:
        stop.set()
        worker.join()
    assert counts[os.getpid()][1] > 0  # this thread has run
    assert len(counts) >= 2 and all(len(c) == 4 for c in counts.values())


def test_a_pool_is_one_group() -> None:
    assert midrun.group_of("send_data-3") == "send_data"
    assert midrun.group_of("wait_headers-0") == "wait_headers"
    assert midrun.group_of("python3") == "python3"
