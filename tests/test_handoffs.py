"""arch_sim.handoffs: the staged server's hand-offs timed by its threads' CPU clocks, and how
calibrate writes them into the preset instead of the costs timed once on another machine."""

from __future__ import annotations

import json
import shutil
from argparse import Namespace

import pytest
from helpers import CALIBRATION

from arch_sim import calibrate_servers, handoffs
from arch_sim.models.calibration import host_preset_text
from arch_sim.models.calibration_more import HANDOFFS

#: one timed run: per group, call kind -> [us in all, calls]
FOUND = {
    "requests": 1000,
    "calls": {
        "wait_headers": {"put_wake": [240.0, 100], "put_nowake": [330.0, 300],
                         "poll": [84.0, 10]},
        "send_data": {"put_wake": [340.0, 100], "put_nowake": [550.0, 500]},
        "logging": {"pre": [150.0, 100], "wait": [280.0, 100], "post": [130.0, 100]},
    },
    "cpu_us": {"logging": 6000.0},
    "clock_read_us": 0.2,
}
KEYS = ("queue_wait_us", "futex_wait_us", "wake_extra_us", "poll_wait_us")


def test_the_costs_take_out_each_span_s_clock_read_and_what_the_model_charges_itself():
    costs = {k: v for k, (v, _) in handoffs.preset_costs(FOUND, switch_us=0.8,
                                                          wake_us=0.7).items()}
    assert costs["queue_wait_us"] == pytest.approx(1.5 + 1.3 - 2 * 0.2)
    assert costs["futex_wait_us"] == pytest.approx(2.8 - 0.2 - 0.8)
    assert costs["wake_extra_us"] == pytest.approx(580 / 200 - 880 / 800 - 0.7)
    assert costs["poll_wait_us"] == pytest.approx(8.4 - 0.2 - 0.8)
    # never below zero; a call never seen gives no cost
    assert handoffs.preset_costs(FOUND, switch_us=50.0, wake_us=0.7)["futex_wait_us"][0] == 0
    no_polls = {**FOUND, "calls": {**FOUND["calls"], "wait_headers": {}}}
    assert "poll_wait_us" not in handoffs.preset_costs(no_polls, 0.8, 0.7)


def _staged_section(measurements: dict) -> str:
    text = host_preset_text(measurements, only=[])
    return text[text.index("[server.staged]"):].split("\n\n", 1)[0]


def test_the_preset_takes_the_hand_offs_calibrate_timed():
    measured = json.loads(json.dumps(CALIBRATION))
    measured["servers"]["staged"] = {"cpu_us_per_request": 40.0, "reschedules_per_request": 5.0,
                                     "rps": 20000.0, "handoffs": FOUND}
    section = _staged_section(measured)
    switch_us = float(CALIBRATION["switch"]["switch_us"])
    assert f"\nfutex_wait_us = {2.8 - 0.2 - switch_us:.1f} " in section
    for key in KEYS:
        line = next(x for x in section.splitlines() if x.startswith(key + " "))
        assert "handoffs.py" in line and "over 1000 requests" in line
    # without the timing (older calibrations), the costs timed once, and said so
    for key, (value, _) in HANDOFFS.items():
        assert f"\n{key} = {value:.1f} " in _staged_section(CALIBRATION)
    assert "benchmarks/staged_handoffs.py, 2026-12-01" in _staged_section(CALIBRATION)


def test_calibrate_goes_on_when_the_hand_offs_cannot_be_timed(monkeypatch, capsys):
    def fail(**kwargs):
        raise RuntimeError("the timed staged server answered no request")

    monkeypatch.setattr(handoffs, "measure", fail)
    args = Namespace(duration=2.0, server_cpus="0", client_cpus="1", file_set="specweb99",
                     connections=64)
    assert calibrate_servers.staged_handoffs(args) is None
    out = capsys.readouterr().out.strip().splitlines()
    assert "answered no request" in out[-1] and "timed once" in out[-1]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")
def test_the_real_staged_server_s_hand_offs_are_timed():
    found = handoffs.measure(seconds=0.5, warmup=0.5)
    assert found["requests"] > 500
    logging = found["calls"]["logging"]
    assert logging["get_block"][1] > 0 and logging["wait"][1] == logging["get_block"][1]
    assert 0.0 < found["clock_read_us"] < 5.0
    costs = handoffs.preset_costs(found, switch_us=1.0, wake_us=1.0)
    assert set(costs) >= {"queue_wait_us", "futex_wait_us", "wake_extra_us"}
    assert all(0.0 <= v < 200.0 for v, _ in costs.values())
