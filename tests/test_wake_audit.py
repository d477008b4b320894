"""What a wake-up check saw: the model's WakeCheck reports, and benchmarks/wake_audit.py's reading
of the kernel's fields at sched_wakeup."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from scenarios import eevdf_handoff

from arch_sim.models.policy_eevdf import watch_wake_checks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import wake_audit as audit  # noqa: E402  (a script of benchmarks/, as it imports gil_audit)


def _handoff(sleeper_owed: bool) -> list:
    """Every wake-up check made while the waker of tests/scenarios.py's hand-off ran."""
    return eevdf_handoff(sleeper_owed)[1]


def test_a_wake_check_reports_an_owed_sleeper_preempting_an_unprotected_waker():
    (check,) = _handoff(sleeper_owed=True)
    assert check.preempted and check.woken == "sleeper/0"
    assert check.woken_lag > 0 > check.curr_lag and not check.curr_protected
    assert check.queued == 2 and check.delayed == 0


def test_a_wake_check_reports_a_protected_waker_keeping_the_cpu():
    (check,) = _handoff(sleeper_owed=False)
    assert not check.preempted and check.curr_protected
    assert check.woken_lag == pytest.approx(0.0, abs=1e-12)


def test_wake_checks_are_reported_only_inside_the_watch():
    checks: list = []
    with watch_wake_checks(checks.append):
        pass
    _handoff(sleeper_owed=True)
    assert checks == []


def _line(curr_v: int, flags: int = 0, curr: int = 11, woken: int = 12) -> str:
    # ns, curr, woken, woken v, woken deadline, curr v, curr deadline, vprot, zero_vruntime,
    # sum_w_vruntime, sum_weight, nr_queued, flags, curr load.weight: the woken task alone is
    # in the tree, 100 ns past zero_vruntime, with the nice-0 weight (1024 scaled down)
    return (f"W 5000 {curr} {woken} 1100 2500 {1000 + curr_v} 2400 2400 1000 {100 * 1024} "
            f"1024 2 {flags} 1048576")


def test_the_kernel_fields_give_v_with_the_running_task_in_it():
    """V = zero + (tree sum + running task's key x its weight) / (tree weight + its weight)."""
    groups = {11: "send_data", 12: "logging"}
    lines = [_line(110, flags=16), _line(90), _line(90, curr=99), "garbage", "W 1 2", ""]
    checks, _ = audit.parse(lines, groups)
    assert len(checks) == 2  # a running task outside the server is left out
    ran_past, behind = checks
    assert ran_past.woken_lag == pytest.approx(5.0)  # V = 1105, the woken at 1100
    assert not ran_past.curr_eligible and ran_past.preempted
    assert behind.woken_lag == pytest.approx(-5.0) and behind.curr_eligible
    assert not behind.preempted
    assert (ran_past.waker, ran_past.woken, ran_past.queued) == ("send_data", "logging", 2)


def test_tally_gives_shares_per_waker_and_woken_group():
    groups = {11: "send_data", 12: "logging"}
    checks, span = audit.parse([_line(110, flags=16), _line(90), _line(110, flags=16)], groups)
    table = audit.tally(checks, requests=2.0)
    row = table["send_data -> logging"]
    assert row["per_request"] == pytest.approx(1.5)
    assert row["preempted"] == pytest.approx(2 / 3)
    assert row["waker_eligible"] == pytest.approx(1 / 3)
    assert row["woken_owed"] == pytest.approx(2 / 3)
    assert span == 0.0  # every line at the same time


def test_sleeps_are_read_as_owed_alone_or_delayed_on_both_sides():
    """The kernel's ``S`` lines (a delayed sleeper's vlag is not read: it shares its field with
    vprot) and the model's sleeps: per group the shares owed, at lag 0 and delayed."""
    groups = {11: "send_data", 12: "logging"}
    lines = ["S 1 11 -40 1 2", "S 2 11 0 0 1", "S 3 12 25 0 2", "S 4 12 99999 1 3",
             "S 5 99 10 0 1", "S 6 12", "W 1 2"]
    sleeps = audit.parse_sleeps(lines, groups)
    assert [(s.group, s.delayed) for s in sleeps] == [
        ("send_data", True), ("send_data", False), ("logging", False), ("logging", True)]
    tally = audit.tally_sleeps(sleeps, requests=2)
    assert tally["send_data"] == {"per_request": 1.0, "owed": 0.0, "zero": 0.5, "delayed": 0.5,
                                  "queued": 1.5}
    assert tally["logging"]["owed"] == 0.5 and tally["logging"]["delayed"] == 0.5
    # the model: in the hand-off of tests/scenarios.py the owed sleeper slept behind `other`
    from arch_sim.models.policy_eevdf import watch_sleeps

    seen: list = []
    with watch_sleeps(seen.append):
        _handoff(sleeper_owed=True)
    first = [audit.sleep_from_model(c) for c in seen if c.task == "sleeper/0"][0]
    assert first.lag > 0 and not first.delayed and first.queued == 2


def test_the_model_side_runs_a_connection_per_request_when_asked():
    """``--connection close`` reaches the model: RCU's grace-period thread, which runs once per
    closed connection, wakes only then."""
    import argparse

    def args(connection: str) -> argparse.Namespace:
        return argparse.Namespace(arch="thread-per-request", rate=500.0, connection=connection,
                                  connections=64, threads=64, model_requests=300,
                                  file_set="specweb99")

    closed, kept = audit.model(args("close")), audit.model(args("keep-alive"))
    assert closed["rps"] > 0 and "rcu_gp" in closed["sleeps"]
    assert "rcu_gp" not in kept["sleeps"]
