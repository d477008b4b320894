"""arch_sim.threadcpu: a multi-threaded server's CPU thread by thread (schedstat), and how
calibrate writes it into the preset: the staged server's split over its stages, the pool's
dispatcher share."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import tomllib
from argparse import Namespace

import pytest
from helpers import CALIBRATION, status_after_requests

from arch_sim import calibrate_servers, threadcpu
from arch_sim.models.calibration import host_preset_text
from arch_sim.models.connection_costs import accept_share, split
from arch_sim.models.params import from_dict
from arch_sim.models.request_costs import DISPATCHER_SHARE, STATE_SHARES

PID = 500
#: two readings of a staged server: tid -> (kernel name, ns run)
BEFORE = {PID: ("python", 1_000, 1, 0), 501: ("accept-0", 10, 1, 0),
          502: ("wait_headers-0", 1_000_000, 9, 2), 503: ("send_data-0", 500_000, 5, 5),
          504: ("send_data-1", 0, 0, 0), 505: ("logging-0", 100_000, 3, 0)}
AFTER = {PID: ("python", 2_000, 2, 0), 501: ("accept-0", 10, 1, 0),
         502: ("wait_headers-0", 5_000_000, 90, 20), 503: ("send_data-0", 2_500_000, 50, 50),
         504: ("send_data-1", 2_500_000, 40, 30), 505: ("logging-0", 1_100_000, 30, 0),
         506: ("send_data-2", 1_000, 1, 0)}


def test_the_staged_threads_count_in_their_stages_and_the_main_thread_apart():
    groups = threadcpu.split("staged", PID, BEFORE, AFTER)
    # wait_headers 4 ms; send_data 2 + 2.5 ms and a thread new since the first reading
    # (counted from zero); logging 1 ms; the main thread 1 us; accept nothing
    assert groups == {"main": 1_000, "accept": 0, "wait_headers": 4_000_000,
                      "send_data": 4_501_000, "logging": 1_000_000}
    shares = threadcpu.shares("staged", groups)
    assert shares == pytest.approx({"parse": 4 / 9.501, "send": 4.501 / 9.501,
                                    "log": 1 / 9.501})


def test_the_pool_s_dispatcher_is_its_main_thread():
    before = {PID: ("python", 0, 0, 0), 601: ("python", 0, 0, 0), 602: ("python", 0, 0, 0)}
    after = {PID: ("python", 1_000, 1, 0), 601: ("python", 4_000, 5, 1),
             602: ("python", 5_000, 6, 0)}
    groups = threadcpu.split("thread-per-request", PID, before, after)
    assert groups == {"main": 1_000, "pool": 9_000}
    assert threadcpu.shares("thread-per-request", groups) == {"dispatch": 0.1}


def test_the_pool_thread_s_split_takes_the_clock_out_of_every_state():
    # 1,000 serves and 1,000 sends timed, 1 us a clock read: parse and send as timed less
    # their reads (2 and 1 us a request), the pool threads' other CPU the logging state's
    timed = {"wait_headers": {"cpu_us": 12_000.0, "calls": 1_000},
             "send_data": {"cpu_us": 11_000.0, "calls": 1_000}}
    shares = threadcpu.pool_shares(40_000_000.0, timed, read_us=1.0)
    # parse 10,000 us, send 10,000, log 40,000 - 23,000 timed - 1,000 (half of each serve's
    # reads outside it) = 16,000; all three: 36,000 us
    assert shares == pytest.approx({"parse": 10 / 36, "send": 10 / 36, "log": 16 / 36})


def test_the_clock_reads_are_two_a_timed_call():
    timed = {"wait_headers": {"cpu_us": 1.0, "calls": 300}, "send_data": {"cpu_us": 1.0,
                                                                       "calls": 200}}
    assert threadcpu.clock_reads_ns(timed, read_us=0.5) == pytest.approx(500_000.0)


def test_a_pool_that_timed_nothing_or_too_much_is_an_error():
    with pytest.raises(ValueError, match="--state-cpu"):
        threadcpu.pool_shares(1e6, {}, read_us=0.5)
    timed = {"wait_headers": {"cpu_us": 900.0, "calls": 10},
             "send_data": {"cpu_us": 900.0, "calls": 10}}
    with pytest.raises(ValueError, match="more CPU than its threads ran"):
        threadcpu.pool_shares(1e6, timed, read_us=0.5)


def test_a_server_whose_threads_ran_nothing_is_an_error_not_a_split():
    with pytest.raises(ValueError, match="ran no CPU"):
        threadcpu.shares("staged", {"main": 5.0, "accept": 0.0})
    with pytest.raises(ValueError, match="prefork"):
        threadcpu.measure("prefork")


def test_this_process_s_threads_are_read_by_name_and_runtime():
    done = threading.Event()

    def spin() -> None:
        end = time.thread_time() + 0.02
        while time.thread_time() < end:
            pass
        done.wait(5)

    worker = threading.Thread(target=spin)
    worker.start()
    try:
        time.sleep(0.1)
        found = threadcpu.thread_counts([os.getpid()])
        tid = worker.native_id
        assert tid in found and found[tid][1] >= 15_000_000  # ns: it spun 20 ms
        assert found[tid][2] >= 1  # it slept once at least (in sleep's wait)
        assert os.getpid() in found and all(len(c) == 4 for c in found.values())
    finally:
        done.set()
        worker.join()


def measured(staged: dict | None, pool: dict | None) -> dict:
    """calibrate's measurements with the staged server's saturation point, and the per-thread
    CPU of the staged and pool servers where given."""
    servers = {name: dict(row) for name, row in CALIBRATION["servers"].items()}
    servers["staged"] = {"cpu_us_per_request": 40.0, "reschedules_per_request": 1.4,
                         "rps": 27000.0}
    if staged is not None:
        servers["staged"]["threads_cpu"] = staged
    if pool is not None:
        servers["thread-per-request"]["threads_cpu"] = pool
    return {**CALIBRATION, "servers": servers}


STAGED = {"shares": {"parse": 0.5, "send": 0.3, "log": 0.2}, "requests": 54000,
          "us_per_request": {"wait_headers": 20.0, "send_data": 12.0, "logging": 8.0},
          "cpu_us_per_request": 40.5, "seconds": 2.0}
POOL = {"shares": {"dispatch": 0.2}, "requests": 56000, "cpu_us_per_request": 30.0,
        "us_per_request": {"main": 6.0, "pool": 24.0}, "seconds": 2.0,
        "pool_shares": {"parse": 0.35, "send": 0.4, "log": 0.25}}


def section(text: str, arch: str) -> dict[str, str]:
    """The lines of a preset's ``[server.ARCH]``, by key."""
    lines = text.splitlines()
    start = lines.index(f"[server.{arch}]") + 1
    out = {}
    for line in lines[start:]:
        if not line.strip() or line.startswith("["):
            break
        out[line.split()[0]] = line
    return out


def costs(text: str, arch: str) -> dict[str, float]:
    return from_dict(tomllib.loads(text)).server_by_arch[arch]


def test_the_preset_splits_the_staged_server_as_its_threads_ran():
    switch_us = CALIBRATION["switch"]["switch_us"]
    text = host_preset_text(measured(STAGED, None), solve=False)
    staged = costs(text, "staged")
    budget = 40.0 - 1.4 * switch_us
    assert staged["parse_us"] == pytest.approx(0.5 * budget, abs=0.01)
    assert staged["log_us"] == pytest.approx(0.2 * budget, abs=0.01)
    lines = section(text, "staged")
    assert "the wait_headers thread's share" in lines["parse_us"]
    assert "20.0 us a request over 54000 requests" in lines["parse_us"]
    assert "30% of it" in lines["send_us"] and "send_data thread" in lines["send_us"]
    assert "20% of it" in lines["log_us"] and "logging thread" in lines["log_us"]
    # without the per-thread reading: the estimated split, and no such comment
    estimated = host_preset_text(measured(None, None), solve=False)
    assert costs(estimated, "staged")["parse_us"] == pytest.approx(
        STATE_SHARES["parse"] * budget, abs=0.01)
    assert "thread's share of the stage" not in estimated


def test_the_preset_takes_the_pool_s_dispatcher_share_from_its_main_thread():
    budget = 30.0 - 2.2 * CALIBRATION["switch"]["switch_us"]
    text = host_preset_text(measured(None, POOL), solve=False)
    assert costs(text, "thread-per-request")["dispatch_us"] == pytest.approx(0.2 * budget,
                                                                             abs=0.01)
    line = section(text, "thread-per-request")["dispatch_us"]
    assert "20% of the pool server's" in line and "56000 requests" in line
    pool = costs(text, "thread-per-request")
    assert pool["log_us"] == pytest.approx(0.25 * 0.8 * budget, abs=0.01)  # of the pool's 80%
    assert "--state-cpu" in section(text, "thread-per-request")["parse_us"]
    estimated = host_preset_text(measured(None, None), solve=False)
    assert costs(estimated, "thread-per-request")["dispatch_us"] == pytest.approx(
        DISPATCHER_SHARE * budget, abs=0.01)
    assert "perf sched" in section(estimated, "thread-per-request")["dispatch_us"]
    assert costs(estimated, "thread-per-request")["log_us"] == pytest.approx(
        STATE_SHARES["log"] * (1 - DISPATCHER_SHARE) * budget, abs=0.01)


POOL_CLOSE = {**POOL, "cpu_us_per_request": 90.0, "us_per_request": {"main": 20.0, "pool": 70.0}}


def test_the_accept_share_is_what_the_accepting_thread_spends_more_with_a_connection_each():
    """Pool: the dispatcher spends 14 us more a request, the pool threads 46: 14 / 60."""
    server = {"threads_cpu": POOL, "threads_cpu_close": POOL_CLOSE}
    assert accept_share("thread-per-request", server) == pytest.approx(14.0 / 60.0)
    staged = {"threads_cpu": STAGED, "threads_cpu_close": {
        **STAGED, "us_per_request": {"accept": 21.0, "wait_headers": 23.0, "send_data": 12.0,
                                     "logging": 23.0}}}
    assert accept_share("staged", staged) == pytest.approx(21.0 / 36.0)
    assert accept_share("thread-per-request", {"threads_cpu": POOL}) is None  # no close run
    shrunk = {**POOL_CLOSE, "us_per_request": {"main": 5.0, "pool": 70.0}}
    assert accept_share("thread-per-request", {"threads_cpu": POOL,
                                               "threads_cpu_close": shrunk}) is None
    assert accept_share("prefork", {"threads_cpu": POOL, "threads_cpu_close": POOL_CLOSE}) is None
    assert split(100.0, 0.25) == {"accept_us": 25.0, "close_us": 75.0}


def test_the_preset_says_where_the_connection_cost_s_split_comes_from():
    cal = measured(None, POOL)
    cal["servers"]["thread-per-request"]["threads_cpu_close"] = POOL_CLOSE
    cal["close"] = {**cal.get("close", {}), "thread-per-request": {"cpu_us_per_request": 90.0}}
    lines = section(host_preset_text(cal, solve=False), "thread-per-request")
    assert "23% of a connection's own cost" in lines["accept_us"]
    assert "dispatcher (main) thread's extra" in lines["accept_us"]
    assert ": the rest (unregister, shutdown, close)" in lines["close_us"]
    del cal["servers"]["thread-per-request"]["threads_cpu_close"]
    estimated = section(host_preset_text(cal, solve=False), "thread-per-request")
    assert "half of a connection's own cost" in estimated["accept_us"]
    assert "the split an estimate" in estimated["accept_us"]


def test_calibrate_says_in_one_line_when_it_cannot_read_the_threads(monkeypatch, capsys):
    def fail(arch, **kwargs):
        raise RuntimeError("the staged server served no request in 2 s")

    monkeypatch.setattr(threadcpu, "measure", fail)
    args = Namespace(duration=2.0, server_cpus="0", client_cpus="1", file_set="specweb99",
                     connections=64)
    assert calibrate_servers.cpu_split(args, "staged") is None
    out = capsys.readouterr().out.strip().splitlines()
    assert "served no request" in out[-1] and "estimated split" in out[-1]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")
@pytest.mark.parametrize("arch", threadcpu.ARCHS)
def test_the_real_server_s_cpu_is_read_thread_by_thread(arch):
    found = threadcpu.measure(arch, seconds=0.5, warmup=0.5)
    close = threadcpu.measure(arch, seconds=0.5, warmup=0.5, keep_alive=False)
    # with a connection per request the accepting thread works for every request (keep-alive:
    # staged's accept thread sleeps; the dispatcher only hands requests off)
    accepting = "main" if arch == "thread-per-request" else "accept"
    assert close["us_per_request"][accepting] > found["us_per_request"][accepting] + 5.0
    assert 0.05 < accept_share(arch, {"threads_cpu": found, "threads_cpu_close": close}) < 0.95
    assert found["requests"] > 500
    assert sum(found["shares"].values()) <= 1.0 + 1e-9
    if arch == "staged":
        assert found["shares"]["parse"] > 0.1 and found["shares"]["send"] > 0.1
        assert found["us_per_request"]["logging"] > 0.5
    else:
        assert 0.01 < found["shares"]["dispatch"] < 0.5
        assert found["us_per_request"]["pool"] > found["us_per_request"]["main"]
        pool = found["pool_shares"]  # timed by the pool threads themselves (--state-cpu)
        assert sum(pool.values()) == pytest.approx(1.0)
        assert all(0.05 < share < 0.8 for share in pool.values())


def test_the_pool_times_its_states_only_when_asked(tmp_path):
    from arch_sim.harness import servers

    seen = {}
    for flag in ([], ["--state-cpu"]):
        args = servers.arch_args("thread-per-request", 4, [0]) + flag
        status = status_after_requests("thread-per-request", args, tmp_path / str(bool(flag)))
        seen[bool(flag)] = status.get("per_state")
    assert seen[False] is None  # nothing is wrapped without the flag
    assert seen[True]["wait_headers"]["calls"] >= 100
    assert seen[True]["send_data"]["calls"] >= 100
    assert seen[True]["wait_headers"]["cpu_us"] > 0 and seen[True]["send_data"]["cpu_us"] > 0


def test_the_pool_alone_takes_state_cpu():
    proc = subprocess.run([sys.executable, "-m", "real_servers.threaded", "--root", ".",
                           "--threads", "0", "--state-cpu"], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2 and "give --threads N" in proc.stderr.strip().splitlines()[-1]
