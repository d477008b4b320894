"""Bring your own server, and counting a server from its pid tree with exited tasks included.

- perf attached to a process counts the switches of a child and grandchild it forks later,
  after they have exited;
- /proc's CPU time of a pid set keeps a child reaped inside the window;
- ``arch-sim bench --server-cmd ... --server-name ...``: bad commands are one-line errors
  (exit 2) before anything starts; nginx from a wrapper script and the stdlib's http.server
  give rows under the user's names.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import psutil
import pytest
from conftest import need_binary, need_wrk

from arch_sim import cli, schema
from arch_sim.argtypes import UsageError
from arch_sim.harness import bench, byo
from arch_sim.harness.counters import PerfCounter, proc_cpu_seconds
from arch_sim.harness.peers import nginx_binary

PINGS = 5000  # round trips over two pipes: at least two switches each

# waits for GO, then forks a child that forks a grandchild; the two ping-pong PINGS times over
# pipes and exit; the parent reaps the child, prints DONE and sleeps
TREE = """
import os, sys, time
go, n = sys.argv[1], int(sys.argv[2])
print("UP", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
child = os.fork()
if child == 0:
    a_r, a_w = os.pipe(); b_r, b_w = os.pipe()
    if os.fork() == 0:
        for _ in range(n):
            os.read(a_r, 1); os.write(b_w, b"x")
        os._exit(0)
    for _ in range(n):
        os.write(a_w, b"x"); os.read(b_r, 1)
    os.wait()
    os._exit(0)
os.waitpid(child, 0)
print("DONE", flush=True)
time.sleep(60)
"""

BURN = """
import os, sys, time
go = sys.argv[1]
print("UP", flush=True)
while not os.path.exists(go):
    time.sleep(0.01)
child = os.fork()
if child == 0:
    end = time.process_time() + 0.4
    while time.process_time() < end:
        pass
    os._exit(0)
os.waitpid(child, 0)
print("DONE", flush=True)
time.sleep(60)
"""


def need_perf() -> None:
    """Skip without a usable perf - except as root, where perf is expected."""
    ok, reason = PerfCounter.available()
    if not ok:
        if os.geteuid() == 0:
            pytest.fail(f"perf is not usable although we are root: {reason}")
        pytest.skip(reason)


def _tree(script: str, go, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", script, str(go), *args],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "UP"
    return proc


def test_perf_on_a_pid_counts_children_forked_and_exited_in_the_window(tmp_path):
    need_perf()
    go = tmp_path / "go"
    proc = _tree(TREE, go, str(PINGS))
    try:
        counter = PerfCounter([proc.pid])
        counter.start()
        time.sleep(0.3)  # perf attached
        go.touch()
        assert proc.stdout.readline().strip() == "DONE"  # both forked tasks have exited
        count = counter.stop()
    finally:
        proc.kill()
        proc.wait()
    assert count is not None and count >= 2 * PINGS * 0.95, count


def test_proc_cpu_time_keeps_a_child_reaped_in_the_window(tmp_path):
    go = tmp_path / "go"
    proc = _tree(BURN, go)
    try:
        before = proc_cpu_seconds([proc.pid])
        go.touch()
        assert proc.stdout.readline().strip() == "DONE"
        after = proc_cpu_seconds([proc.pid])
    finally:
        proc.kill()
        proc.wait()
    assert after - before >= 0.3, (before, after)


# -- the command line -------------------------------------------------------------------------
def _bench_error(argv: list[str], tmp_path, capsys, monkeypatch) -> str:
    def no_sweep(*args):  # a command let through must fail here, not start a sweep
        raise AssertionError("the bad command was accepted and a sweep was started")

    monkeypatch.setattr(bench.Bench, "__init__", no_sweep)
    out = tmp_path / "run"
    assert cli.main(["bench", *argv, "--out", str(out)]) == 2
    assert not out.exists(), "nothing may be written before the command is judged"
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


PY_SERVER = f"{sys.executable} -m http.server {{port}} --bind 127.0.0.1 --directory {{root}}"


@pytest.mark.parametrize(("argv", "message"), [
    (["--server-cmd", f"{sys.executable} -m http.server", "--server-name", "mine"], "{port}"),
    (["--server-cmd", PY_SERVER, "--server-name", "nginx"], "taken"),
    (["--server-cmd", PY_SERVER, "--server-name", "State-Group"], "taken"),
    (["--server-cmd", PY_SERVER + " 'open", "--server-name", "mine"], "quotation"),
    (["--server-cmd", PY_SERVER], "pairs"),
    (["--server-cmd", PY_SERVER, "--server-name", "a", "--server-cmd", PY_SERVER,
      "--server-name", "a"], "twice"),
    (["--server-cmd", "no-such-program-xyz {port}", "--server-name", "mine"], "not found"),
    (["--server-cmd", PY_SERVER, "--server-name", "bad name"], "letters"),
])
def test_bad_server_commands_are_one_line_errors(argv, message, tmp_path, capsys, monkeypatch):
    assert message in _bench_error(argv, tmp_path, capsys, monkeypatch)


def test_server_config_file(tmp_path, capsys, monkeypatch):
    good = tmp_path / "servers.toml"
    good.write_text(f'[[server]]\nname = "py"\ncmd = "{PY_SERVER}"\n')
    found = byo.parse_servers(["x {port}".replace("x", sys.executable)], ["first"], good)
    assert [s.name for s in found] == ["first", "py"]
    assert found[1].argv[-1] == "{root}"
    bad = tmp_path / "bad.toml"
    bad.write_text('[[server]]\nname = "py"\ncmd = "python3 -m http.server"\n')
    assert "{port}" in _bench_error(["--server-config", str(bad)], tmp_path, capsys, monkeypatch)
    bad.write_text("[[server]\n")
    assert "TOML" in _bench_error(["--server-config", str(bad)], tmp_path, capsys, monkeypatch)
    with pytest.raises(UsageError, match="cannot read"):
        byo.parse_servers(None, None, tmp_path / "missing.toml")


def test_placeholders_are_filled_word_by_word():
    server = byo.parse_one("w", "sh -c 'echo {port} {root}' {tmp}/x.conf {other}")
    assert byo.substitute(server.argv, 81, "/r", "/t") == ["sh", "-c", "echo 81 /r",
                                                            "/t/x.conf", "{other}"]


# -- a bounded bench through the bring-your-own path -------------------------------------------
NGINX_WRAPPER = """#!/bin/sh
# usage: run-nginx.sh PORT ROOT TMP - writes a config for PORT/ROOT into TMP, nginx in front
port=$1 root=$2 tmp=$3
cat > "$tmp/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    client_body_temp_path $tmp/body;
    proxy_temp_path $tmp/proxy;
    fastcgi_temp_path $tmp/fastcgi;
    uwsgi_temp_path $tmp/uwsgi;
    scgi_temp_path $tmp/scgi;
    server {{ listen 127.0.0.1:$port; root $root; }}
}}
EOF
exec {nginx} -c "$tmp/nginx.conf" -p "$tmp" -e "$tmp/error.log"
"""


@pytest.mark.real
def test_bring_your_own_servers_run_through_the_sweep(tmp_path):
    need_wrk()
    nginx = need_binary("nginx", nginx_binary)
    script = tmp_path / "run-nginx.sh"
    script.write_text(NGINX_WRAPPER.format(nginx=nginx))
    script.chmod(0o755)
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([
        "--server-cmd", f"{script} {{port}} {{root}} {{tmp}}", "--server-name", "my-nginx",
        "--server-cmd", PY_SERVER, "--server-name", "my-python",
        "--loads", "300", "--duration", "1", "--warmup", "0", "--reps", "1",
        "--out", str(tmp_path / "run"), "--no-plots", "--peers-only"])
    plan = bench.make_plan(args)
    assert [n for n, _ in plan.names] == ["my-nginx", "my-python"]
    assert bench.Bench(plan, args).run() == 0
    df = schema.load(tmp_path / "run").set_index("arch")
    assert sorted(df.index) == ["my-nginx", "my-python"]
    assert (df["errors"] == 0).all() and (df["wrk_requests"] >= 20).all()
    assert (df["reschedules_per_s"] > 0).all()
    perf_ok = PerfCounter.available()[0]
    assert set(df["reschedule_source"]) == {"perf" if perf_ok else "proc"}
    assert df.loc["my-nginx", "server"].startswith("my-nginx: ")
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    assert [s["name"] for s in meta["byo_servers"]] == ["my-nginx", "my-python"]
    assert meta["byo_servers"][1]["cmd"] == PY_SERVER
    assert meta["complete"] is True
    # stopped: nothing of theirs is left running
    left = [p for p in psutil.Process().children(recursive=True)
            if "http.server" in " ".join(p.cmdline()) or "nginx" in " ".join(p.cmdline())]
    assert not left, left


def test_without_perf_meta_says_which_servers_lose_exited_tasks(tmp_path, monkeypatch):
    from arch_sim.harness import counters
    from arch_sim.harness.counters import Delta
    from arch_sim.harness.measure import _reschedules

    monkeypatch.setattr(counters.PerfCounter, "available",
                        staticmethod(lambda: (False, "perf not installed")))
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(["--arch", "state-group", "--peer", "lighttpd", "--server-cmd",
                              PY_SERVER, "--server-name", "mine", "--out", str(tmp_path / "r")])
    notes = bench.Bench(bench.make_plan(args), args).meta["notes"]
    assert len(notes) == 1 and notes[0].startswith("lighttpd, mine: no /server-status and no perf")
    # and the rows' count: perf when it ran, else the live threads' /proc counts
    d = Delta(None, None, 7, 0, None, None, 0.0, None, None)
    assert _reschedules(d, 11) == ("perf", 11) and _reschedules(d, None) == ("proc", 7)
