"""The Makefile installs what the README's Quick start says it installs (``make -n``: the recipe
is printed, nothing runs)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def recipe(target: str, *overrides: str) -> str:
    return subprocess.run(["make", "-n", "-C", str(ROOT), target, *overrides], check=True,
                          capture_output=True, text=True).stdout


def test_make_wrk_installs_every_package_the_quick_start_names():
    readme = (ROOT / "README.md").read_text()
    quick = readme[readme.index("## Quick start"):readme.index("## Words used here")]
    named = set(re.findall(r"`(wrk|nginx-light|apache2|lighttpd|curl|linux-perf)`", quick))
    assert named == {"wrk", "nginx-light", "apache2", "lighttpd", "curl", "linux-perf"}
    pairs = set(re.findall(r"(\w+):([\w-]+)", recipe("wrk").split("for pair in", 1)[1]
                           .split(";", 1)[0]))
    assert {pkg for _, pkg in pairs} == named
    assert ("perf", "linux-perf") in pairs  # the command whose absence triggers the install


def test_make_trace_tools_installs_bpftrace_the_same_way():
    text = recipe("trace-tools")
    assert "bpftrace:bpftrace" in text and "apt-get install" in text
    assert "policy-rc.d" in text  # no service starts while it installs, as for make wrk
    assert "zzz:zzz-pkg" in recipe("trace-tools", "TRACE_TOOLS=zzz:zzz-pkg")


def test_make_test_runs_the_model_tests_two_at_a_time_then_the_rest():
    text = recipe("test")
    first, second = text.index("-m parallel -n 2"), text.index('-m "not parallel"')
    assert first < second  # every test is in exactly one of the two runs
    assert "--dist loadfile" in text  # a file's module fixtures run once, in one worker


def test_files_run_two_at_a_time_start_no_server_load_or_tracer():
    from conftest import PARALLEL_FILES

    files = {p for pattern in PARALLEL_FILES for p in (ROOT / "tests").glob(pattern)}
    assert len(files) >= 20
    for path in files:
        source = path.read_text()
        for call in ("servers.start(", "under_wrk(", "serving(", "run_wrk(", '"bpftrace"',
                     '"perf"', "pytest.mark.real", "need_wrk("):
            assert call not in source, f"{path.name} has {call}: it must run alone"
