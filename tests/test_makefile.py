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
