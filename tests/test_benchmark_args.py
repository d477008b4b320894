"""Benchmark scripts refuse bad arguments with one line and exit 2, before anything runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def refused(script: str, *argv: str) -> str:
    """Run ``benchmarks/SCRIPT ARGV...``; it must exit 2 with one line on stderr and nothing on
    stdout.  Returns that line."""
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *argv],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert out.stdout == ""
    return lines[0]


@pytest.mark.parametrize("argv, says", [(["abc"], "'abc' is not a number"),
                                        (["--", "-5"], "give a number > 0")])
def test_sg_reconnect_race_refuses_a_bad_rate_in_one_line(argv, says):
    assert says in refused("sg_reconnect_race.py", *argv)


def test_staged_chain_refuses_a_negative_force_in_one_line():
    assert "--force must be >= 0" in refused("staged_chain.py", "--force", "-1")


@pytest.mark.parametrize("argv, says", [(["--gaps", "abc"], "give idle times in microseconds"),
                                        (["--gaps", "10,-1"], "give idle times in microseconds"),
                                        (["--rounds", "0"], "--rounds >= 1")])
def test_wake_latency_refuses_bad_arguments_in_one_line(argv, says):
    assert says in refused("wake_latency.py", *argv)


@pytest.mark.parametrize("argv, says", [(["--seconds", "0"], "give a whole number >= 1"),
                                        (["--connection", "pipelined"], "keep-alive, close"),
                                        (["--arch", "nginx"], "invalid choice")])
def test_wrk_syscalls_refuses_bad_arguments_in_one_line(argv, says):
    assert says in refused("wrk_syscalls.py", *argv)


def test_scripts_that_import_other_benchmarks_run_as_scripts_too():
    """``python benchmarks/X.py`` puts benchmarks/, not the repository, on sys.path: a script
    importing ``benchmarks.Y`` must add the repository root first (three did not)."""
    import ast

    missing = []
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        tree = ast.parse(path.read_text())
        body = tree.body
        first = next((i for i, node in enumerate(body) if isinstance(node, ast.ImportFrom)
                      and (node.module or "").startswith("benchmarks")), None)
        if first is None:
            continue
        before = ast.unparse(ast.Module(body=body[:first], type_ignores=[]))
        if "sys.path.insert(0" not in before or "parent.parent" not in before:
            missing.append(path.name)
    assert not missing, missing


@pytest.mark.parametrize("argv, says", [
    (["results/no-such-run", "x.toml"], "measurements.csv not found"),
    (["results/archs-bench-2026-11-30-c", "x.toml", "--paced", "1000"],
     "no thread-per-request keep-alive rows 1000 requests/s"),
    (["results/byo-2026-11-30", "x.toml"], "--connection keep-alive,close"),
    (["results/archs-bench-2026-11-30-c", "x.json"], "must be a .toml file"),
    (["results/archs-bench-2026-11-30-c", "x.toml", "--paced", "abc"], "'abc' is not a number"),
    (["results/archs-bench-2026-11-30-c", "x.toml", "--cold-decay-ms", "0"],
     "give a number > 0")])
def test_calibrate_from_bench_refuses_in_one_line(argv, says):
    assert says in refused("calibrate_from_bench.py", *argv)


@pytest.mark.parametrize("argv, says", [(["--rate", "abc"], "'abc' is not a number or 'max'"),
                                        (["--rate", "-5"], "must be positive"),
                                        (["--window", "0"], "--window"),
                                        (["--file-set", "nope"], "--file-set")])
def test_staged_handoffs_refuses_bad_arguments_in_one_line(argv, says):
    assert says in refused("staged_handoffs.py", *argv)


@pytest.mark.parametrize("argv, says", [(["--duration", "40"], "at most 30"),
                                        (["--duration", "0"], "--duration"),
                                        (["--rate", "-5"], "--rate"),
                                        (["--connection", "pipelined"], "--connection")])
def test_sg_dry_sleeps_refuses_bad_arguments_in_one_line(argv, says):
    assert says in refused("sg_dry_sleeps.py", *argv)


def test_model_threads_cpu_refuses_a_design_without_threads_in_one_line():
    assert "invalid choice: 'state-group'" in refused("model_threads_cpu.py", "state-group")


@pytest.mark.parametrize("connection", ["keep-alive", "close"])
def test_model_threads_cpu_groups_add_up_to_the_model_s_cpu_per_request(connection):
    """Each task group's share of the traced CPU, summed, is the point's CPU per request (the
    CPU is busy throughout unpaced): a group lost or counted twice would show."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.model_threads_cpu import model_groups

    row, groups = model_groups("staged", "host", connection, requests=1500)
    assert {"wait_headers", "send_data", "logging"} <= set(groups)
    assert (groups.get("accept", 0.0) > 5.0) == (connection == "close")
    want = row["cpu_util"] * row["cpus"] * 1e6 / row["rps"]
    assert sum(groups.values()) == pytest.approx(want, rel=0.03)
