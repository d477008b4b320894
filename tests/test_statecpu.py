"""arch_sim.statecpu and the state-group worker's --state-cpu: the worker's CPU state by state,
and how calibrate writes the split into the preset."""

from __future__ import annotations

import shutil
import tomllib

import pytest
from helpers import CALIBRATION, status_after_requests

from arch_sim import statecpu
from arch_sim.harness import servers
from arch_sim.models.calibration import host_preset_text
from arch_sim.models.connection_costs import accept_share
from arch_sim.models.params import from_dict
from arch_sim.models.request_costs import STATE_SHARES
from real_servers.core.lifecycle import NAMES


def status(requests: int, passes: int, cpu_s: float, **state_us: float) -> dict:
    """A /server-status reply of one worker with these totals."""
    per_state = {n: {"moved": 0, "queue": 0, "cpu_us": state_us.get(n, 0.0)} for n in NAMES}
    return {"requests": requests, "workers": [
        {"passes": passes, "cpu_user_s": cpu_s, "cpu_system_s": 0.0, "per_state": per_state}]}


def test_the_split_takes_the_clock_out_of_each_state_and_of_the_rest():
    before = status(1_000, 100, 1.0, wait_headers=100.0, send_data=100.0, logging=100.0)
    after = status(2_000, 200, 1.04, wait_headers=10_200.0, send_data=20_200.0,
                   logging=5_200.0)
    found = statecpu.split(before, after, clock=1.0)
    # 100 passes: each state's sum holds a read a pass (100 us), the rest five more (500 us)
    assert found["us_per_request"]["wait_headers"] == pytest.approx(10.0)
    assert found["us_per_request"]["send_data"] == pytest.approx(20.0)
    assert found["us_per_request"]["logging"] == pytest.approx(5.0)
    assert found["shares"] == pytest.approx({"parse": 10 / 35, "send": 20 / 35, "log": 5 / 35})
    # 40,000 us in all, 35,000 in the states, 1,000 of reads (5 x 2 a pass): 4 us a request
    assert found["outside_us_per_request"] == pytest.approx(4.0)
    assert found["passes_per_request"] == pytest.approx(0.1) and found["requests"] == 1_000


def test_a_worker_that_timed_nothing_or_served_nothing_is_an_error():
    before = status(1_000, 100, 1.0)
    with pytest.raises(ValueError, match="--state-cpu"):
        statecpu.split(before, status(2_000, 200, 1.1), clock=0.5)
    with pytest.raises(ValueError, match="served 0 requests"):
        statecpu.split(before, status(1_000, 200, 1.1, send_data=50.0), clock=0.5)


def test_the_clock_read_is_timed():
    assert 0.0 < statecpu.clock_us(reads=2_000) < 50.0


def sg_measured(states_cpu: dict | None) -> dict:
    servers_ = {name: dict(row) for name, row in CALIBRATION["servers"].items()}
    if states_cpu is not None:
        servers_["state-group"]["states_cpu"] = states_cpu
    return {**CALIBRATION, "servers": servers_}


def test_the_preset_splits_the_state_group_worker_as_its_states_ran():
    found = {"shares": {"parse": 0.4, "send": 0.54, "log": 0.06}, "requests": 95000,
             "us_per_request": {}, "outside_us_per_request": 0.7, "passes_per_request": 0.02,
             "clock_us": 0.7}
    text = host_preset_text(sg_measured(found), solve=False)
    sg = from_dict(tomllib.loads(text)).server_by_arch["state-group"]
    budget = 15.0 - 0.005 * CALIBRATION["switch"]["switch_us"]
    assert sg["log_us"] == pytest.approx(0.06 * budget, abs=0.01)
    assert sg["parse_us"] == pytest.approx(0.4 * budget, abs=0.01)
    line = next(x for x in text.splitlines() if x.startswith("parse_us")
                and "state-group worker" in x)
    assert "95000 requests with --state-cpu" in line
    estimated = host_preset_text(sg_measured(None), solve=False)
    sg = from_dict(tomllib.loads(estimated)).server_by_arch["state-group"]
    assert sg["log_us"] == pytest.approx(STATE_SHARES["log"] * budget, abs=0.01)
    assert "--state-cpu" not in estimated


def test_the_worker_times_its_states_only_when_asked(tmp_path):
    seen = {}
    for flag in ([], ["--state-cpu"]):
        args = servers.arch_args("state-group", None, [0]) + flag
        worker = status_after_requests("state-group", args, tmp_path / str(bool(flag)))
        worker = worker["workers"][0]
        seen[bool(flag)] = {n: worker["per_state"][n]["cpu_us"] for n in NAMES}
    assert not any(seen[False].values())  # the plain loop reads no clock
    assert seen[True]["wait_headers"] > 0 and seen[True]["send_data"] > 0
    assert seen[True]["logging"] > 0


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")
def test_the_real_worker_s_cpu_is_read_state_by_state():
    found = statecpu.measure(seconds=0.5, warmup=0.5)
    assert found["requests"] > 1000
    assert found["shares"]["parse"] > 0.1 and found["shares"]["send"] > 0.1
    assert 0.0 < found["shares"]["log"] < 0.5
    assert sum(found["shares"].values()) == pytest.approx(1.0)
    # with a connection per request the accept state works for every request, and the split
    # of a connection's cost between accept and logging's close comes out of the two runs
    close = statecpu.measure(seconds=0.5, warmup=0.5, keep_alive=False)
    assert close["us_per_request"]["accept"] > found["us_per_request"]["accept"] + 5.0
    share = accept_share("state-group", {"states_cpu": found, "states_cpu_close": close})
    assert share is not None and 0.05 < share < 0.95
