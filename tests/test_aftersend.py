"""arch_sim.aftersend: the prefork worker's work after a reply's last send, the share of its
CPU the model's ``log_us`` stands for, and how calibrate writes it into the preset."""

from __future__ import annotations

import os
import shutil
import tomllib
from argparse import Namespace

import pytest
from helpers import CALIBRATION

from arch_sim import aftersend, calibrate_servers
from arch_sim.models.calibration import host_preset_text
from arch_sim.models.connection_costs import accept_share
from arch_sim.models.params import from_dict
from arch_sim.models.request_costs import STATE_SHARES, state_shares

#: perf script -F tid,time,event: two workers interleaved
SCRIPT = """\
  101  10.000000: syscalls:sys_enter_recvfrom:
  101  10.000050: syscalls:sys_exit_sendto:
  202  10.000060: syscalls:sys_exit_sendfile64:
  101  10.000080: syscalls:sys_enter_recvfrom:
  202  10.000100: syscalls:sys_enter_poll:
  101  10.000200: syscalls:sys_exit_sendmsg:
  101  10.003200: syscalls:sys_enter_recvfrom:
  202  10.003300: syscalls:sys_enter_ppoll:
  202  10.004000: syscalls:sys_exit_sendto:
  202  10.004010: sched:sched_switch:
  101  10.004100: syscalls:sys_exit_sendto:
  202  10.004120: syscalls:sys_enter_recvfrom:
  101  10.004125: syscalls:sys_enter_recvfrom:
"""


def test_a_stretch_runs_from_a_send_to_the_same_workers_next_wait():
    got = [round(s * 1e6, 3) for s in aftersend.stretches(SCRIPT)]
    # 101: 30 us; 202: 40 us; 101's 3-ms stretch was preempted; 202's wait at 10.0033 had no
    # send before it; 202's 120-us stretch held a switch out (another worker ran); 101: 25 us
    assert got == [30.0, 40.0, 25.0]


def test_a_measured_share_replaces_the_logging_estimate_and_keeps_parse_to_send():
    assert state_shares() == STATE_SHARES
    shares = state_shares(0.24)
    assert shares["log"] == 0.24 and sum(shares.values()) == pytest.approx(1.0)
    assert shares["parse"] / shares["send"] == pytest.approx(
        STATE_SHARES["parse"] / STATE_SHARES["send"])


def calibration(after_send: dict | None) -> dict:
    """calibrate's measurements with prefork's saturation point (and its after-send trace)."""
    prefork = {"cpu_us_per_request": 100.0, "reschedules_per_request": 0.7, "rps": 9000.0}
    if after_send is not None:
        prefork["after_send"] = after_send
    return {**CALIBRATION, "servers": {**CALIBRATION["servers"], "prefork": prefork}}


def test_the_preset_takes_prefork_s_logging_share_from_the_measurement():
    found = {"after_send_us": 24.0, "cpu_us_per_request": 100.0, "stretches": 30000,
             "share": 0.24, "seconds": 3.0}
    text = host_preset_text(calibration(found), solve=False)
    prefork = from_dict(tomllib.loads(text)).server_by_arch["prefork"]
    budget = 100.0 - 0.7 * CALIBRATION["switch"]["switch_us"]  # less its switches
    assert prefork["log_us"] == pytest.approx(0.24 * budget, abs=0.01)
    line = next(x for x in text.splitlines() if x.startswith("log_us")
                and "after the last send" in x)
    assert "24% of it" in line and "24.0 of 100.0 us" in line and "30000 sends" in line
    estimated = host_preset_text(calibration(None), solve=False)
    prefork = from_dict(tomllib.loads(estimated)).server_by_arch["prefork"]
    assert prefork["log_us"] == pytest.approx(STATE_SHARES["log"] * budget, abs=0.01)
    assert "after the last send" not in estimated


def test_without_perf_calibrate_says_so_in_one_line_and_keeps_the_estimate(monkeypatch,
                                                                              capsys):
    monkeypatch.setattr(aftersend, "perf_missing", lambda: "perf not found (install it)")
    args = Namespace(duration=2.0, server_cpus="0", client_cpus="1", file_set="specweb99",
                     connections=64)
    assert calibrate_servers.prefork_after_send(args) is None
    out = capsys.readouterr().out.strip().splitlines()
    assert "perf not found" in out[-1] and "estimated logging share" in out[-1]


@pytest.mark.skipif(shutil.which("perf") is None or os.geteuid() != 0,
                    reason="needs root and perf")
def test_the_real_prefork_server_spends_a_share_of_its_cpu_after_the_send():
    found = aftersend.measure(seconds=1.0, warmup=0.5)
    assert found["stretches"] > 1000
    assert 5.0 < found["after_send_us"] < found["cpu_us_per_request"]
    assert 0.05 < found["share"] < 0.6
    # with a connection per request the stretch runs on to accept() (the close is in it) and
    # is traced about once a request too.  Whether it is longer than the keep-alive one is the
    # machine's: 24.5 -> 35.2 us on the VM calibrated on 2026-12-01, a median of 35 -> 27 us
    # on the one of 2026-12-02 (1-s runs, twice each) - so it is not asserted; where it is not
    # longer, no accept share is measured and the preset keeps the estimate (the unit test
    # below checks both cases)
    close = aftersend.measure(seconds=1.0, warmup=0.5, keep_alive=False)
    assert close["stretches"] > 500
    assert 5.0 < close["after_send_us"] < close["cpu_us_per_request"]
    share = accept_share("prefork", {"after_send": found, "after_send_close": close})
    assert share is None or 0.0 < share < 1.0


def test_prefork_s_accept_share_is_the_extra_less_what_the_close_adds_after_the_send():
    keep = {"after_send_us": 24.5, "cpu_us_per_request": 106.0}
    close = {"after_send_us": 35.2, "cpu_us_per_request": 156.0}
    assert accept_share("prefork", {"after_send": keep, "after_send_close": close}) == (
        pytest.approx(1 - 10.7 / 50.0))
    assert accept_share("prefork", {"after_send": keep}) is None
    shorter = {**close, "after_send_us": 20.0}
    assert accept_share("prefork", {"after_send": keep, "after_send_close": shorter}) is None
    # the stretch with a connection per request ends at accept(), not at the drain's recv()
    script = SCRIPT.replace("sys_enter_recvfrom", "sys_enter_accept4")
    assert [round(s * 1e6, 3) for s in aftersend.stretches(script)] == [40.0]  # 202's poll
    got = [round(s * 1e6, 3) for s in aftersend.stretches(script, aftersend.ACCEPT_ENTERS)]
    assert got == [30.0, 25.0]  # 101's; 202's poll ends nothing now


def test_the_preset_says_prefork_s_split_was_measured():
    keep = {"after_send_us": 24.5, "cpu_us_per_request": 106.0, "stretches": 3000,
            "share": 0.23, "seconds": 3.0}
    cal = calibration(keep)
    cal["servers"]["prefork"]["after_send_close"] = {**keep, "after_send_us": 35.2,
                                                     "cpu_us_per_request": 156.0}
    cal["close"] = {**cal.get("close", {}), "prefork": {"cpu_us_per_request": 156.0}}
    text = host_preset_text(cal, solve=False)
    section = text[text.index("[server.prefork]"):].split("\n\n")[0]
    accept = next(x for x in section.splitlines() if x.startswith("accept_us"))
    assert "79% of a connection's own cost" in accept and "aftersend.py" in accept
    del cal["servers"]["prefork"]["after_send_close"]
    text = host_preset_text(cal, solve=False)
    section = text[text.index("[server.prefork]"):].split("\n\n")[0]
    assert "the split an estimate" in section
