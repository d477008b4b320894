"""benchmarks/midrun.py: bad arguments are one line and exit 2 before any server starts, and
a window's reschedules per request come from the two /server-status replies around it."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "midrun.py"
_spec = importlib.util.spec_from_file_location("midrun", SCRIPT)
midrun = importlib.util.module_from_spec(_spec)
sys.modules["midrun"] = midrun  # (its dataclass looks its module up)
_spec.loader.exec_module(midrun)


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
