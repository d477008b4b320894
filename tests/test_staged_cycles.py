"""benchmarks/staged_cycles.py: a CPU's switches cut into idle-to-idle cycles, real and model."""

from __future__ import annotations

import pytest
from helpers import benchmark

US = 1e-6
#: one traced stretch of CPU 0: a cycle seen in part, two whole ones, one unfinished
SWITCHES = [
    (0.9, "send_data", True, "logging"),
    (1.0, "logging", False, "idle"),
    (2.0, "idle", False, "wait_headers"),
    (2.0 + 100 * US, "wait_headers", False, "send_data"),
    (2.0 + 150 * US, "send_data", True, "logging"),
    (2.0 + 160 * US, "logging", False, "send_data"),
    (2.0 + 200 * US, "send_data", False, "logging"),
    (2.0 + 230 * US, "logging", False, "idle"),
    (3.0, "idle", False, "wait_headers"),
    (3.0 + 80 * US, "wait_headers", False, "idle"),
    (4.0, "idle", False, "send_data"),
]


def test_cycles_run_from_one_idle_stretch_to_the_next():
    script = benchmark("staged_cycles")
    cycles = script.cycles_from_switches(SWITCHES)
    assert [script.pattern(c) for c in cycles] == ["wa se! lo se lo", "wa"]
    assert [round(us, 3) for _, _, us in cycles[0]] == [100, 50, 10, 40, 30]
    s = script.summary(cycles, requests=2, top=5)
    assert s["per_request"]["send_data preempted"] == 0.5
    assert s["per_request"]["send_data blocked"] == 0.5
    assert s["per_request"]["wait_headers blocked"] == 1.0
    assert s["cycles_common"][0] == ("wa se! lo se lo", 1, [100.0, 50.0, 10.0, 40.0, 30.0])


def test_the_models_cycles_at_low_load():
    """At 100 requests/s each request wakes wait_headers once from an idle CPU: about one
    wait_headers sleep a request, and every cycle is made of the stages' threads.  The
    send_data -> logging hand-off preempts as on the kernel (two traced runs: send_data
    preempted 1.12 and 1.46 times a request; docs/FIDELITY.md, "Staged: cycle by cycle"): the
    commonest cycle has logging preempting send_data - the model before 2026-12-01 made 0.02
    such preemptions a request, its commonest cycle `wa se lo`."""
    script = benchmark("staged_cycles")
    cycles, served = script.model(100.0, requests=600)
    s = script.summary(cycles, served, top=50)
    assert 0.8 < s["per_request"]["wait_headers blocked"] < 1.2
    tokens = {t.rstrip("!") for p, _, _ in s["cycles_common"] for t in p.split()}
    assert tokens <= {"wa", "se", "lo", "ac", "ot"}
    assert "se! lo" in s["cycles_common"][0][0]
    assert 0.8 < s["per_request"]["send_data preempted"] < 2.0


@pytest.mark.parametrize("argv", [["--rate", "0"], ["--requests", "x"]])
def test_bad_arguments_are_refused(argv, capsys):
    script = benchmark("staged_cycles")
    with pytest.raises(SystemExit) as stop:
        script.main(argv + ["--model-only"])
    assert stop.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
