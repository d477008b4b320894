"""Switches on the server's CPU at low load: the bench counts them without other processes'.

The pure part (reading perf script, cutting foreign tasks out of a CPU's sequence) runs
anywhere; the trace of a real CPU needs root and perf, and is skipped without them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from arch_sim.harness.cpu_trace import CpuSwitchTrace, Switch, collapse, parse

SERVER, OTHER, KTHREAD = 100, 200, 15


def count(seq: list[tuple[int, int, bool]]) -> tuple[int, int]:
    switches = [Switch(0, float(i), p, n, pre) for i, (p, n, pre) in enumerate(seq)]
    return collapse(switches, lambda tid: tid == OTHER)


@pytest.mark.parametrize(("seq", "kept"), [
    # the server alone: every switch counts
    ([(0, SERVER, True), (SERVER, 0, False)], 2),
    # another process between two idles: nothing
    ([(0, OTHER, True), (OTHER, 0, False)], 0),
    # the server blocks, another process runs, the server again: server -> idle -> server
    ([(0, SERVER, True), (SERVER, OTHER, False), (OTHER, SERVER, True), (SERVER, 0, False)], 4),
    # the server is preempted by another process and gets the CPU back: no switch of ours
    ([(0, SERVER, True), (SERVER, OTHER, True), (OTHER, SERVER, True), (SERVER, 0, False)], 2),
    # the server blocks into another process that then idles: server -> idle, once
    ([(0, SERVER, True), (SERVER, OTHER, False), (OTHER, 0, False)], 2),
    # a kernel thread is ours: idle -> rcu -> idle, two
    ([(0, KTHREAD, True), (KTHREAD, 0, False)], 2),
    # the trace opens inside another process's run
    ([(OTHER, SERVER, True), (SERVER, 0, False)], 2),
])
def test_collapse_counts_as_if_other_processes_ran_elsewhere(seq, kept):
    assert count(seq) == (kept, len(seq))


PERF_SCRIPT = """\
 4643 [000] 63767.611357:       sched:sched_switch: prev_comm=perf prev_pid=4643 prev_prio=120 \
prev_state=S ==> next_comm=swapper/0 next_pid=0 next_prio=120
    0 [000] 63767.613629:       sched:sched_switch: prev_comm=swapper/0 prev_pid=0 \
prev_prio=120 prev_state=R ==> next_comm=my server next_pid=4644 next_prio=120
 4644 [000] 63767.614577: sched:sched_process_fork: comm=sh pid=4644 child_comm=sh \
child_pid=4646
 4646 [000] 63767.614630:       sched:sched_switch: prev_comm=sleep prev_pid=4646 \
prev_prio=120 prev_state=R+ ==> next_comm=sh next_pid=4644 next_prio=120
"""


def test_parse_reads_switches_names_and_forks():
    switches, names, forks = parse(PERF_SCRIPT)
    assert switches == [Switch(0, 63767.611357, 4643, 0, False),
                        Switch(0, 63767.613629, 0, 4644, True),
                        Switch(0, 63767.614630, 4646, 4644, True)]
    assert names[4644] == "my server" and names[0] == "swapper/0"
    assert forks == [(4644, 4646)]


# -- a real CPU ------------------------------------------------------------------------------

SLEEPER = """
import os, sys, time
os.sched_setaffinity(0, {0})
n, pause = int(sys.argv[1]), float(sys.argv[2])
print("ready", flush=True)
sys.stdin.readline()
for _ in range(n):
    time.sleep(pause)
"""


def _sleeper(n: int, pause: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER, str(n), str(pause)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


@pytest.mark.skipif(os.geteuid() != 0 or (os.cpu_count() or 1) < 2,
                    reason="needs root and two CPUs")
def test_trace_leaves_out_another_process_on_the_server_cpu():
    """A "server" on CPU 0 sleeps 150 times (each sleep: itself -> idle -> itself, two
    switches of the CPU's), while another process on the same CPU sleeps 600 times: the
    count keeps the server's and the idle task's, not the other's."""
    if not CpuSwitchTrace.available():
        pytest.skip("perf record of sched tracepoints not usable here")
    server, other = _sleeper(150, 0.004), _sleeper(600, 0.001)
    try:
        trace = CpuSwitchTrace([0], lambda: [server.pid])
        trace.start()
        t0 = time.monotonic()
        for proc in (server, other):
            proc.stdin.write("go\n")
            proc.stdin.flush()
        server.wait(30)
        other.wait(30)
        t1 = time.monotonic()
        trace.stop()
    finally:
        for proc in (server, other):
            proc.kill()
    counted = trace.count(t0, t1)
    # the server's 300, plus kernel threads' (the two processes' exits free memory through RCU)
    assert 290 <= counted.kept <= 400, counted
    assert counted.all >= counted.kept + 2 * 500, counted  # the other's were there


# -- the model's grace-period thread ---------------------------------------------------------


def _gp_thread_switches(rate: float, seconds: float, params) -> float:
    """Switches per second the grace-period thread adds to an otherwise idle CPU when
    connections close at Poisson times at ``rate``."""
    import random

    import simpy

    from arch_sim.models.params import load_preset
    from arch_sim.models.rcu import GracePeriods
    from arch_sim.models.scheduler import Scheduler

    env = simpy.Environment()
    sched = Scheduler(env, 1, load_preset("host").scheduler, random.Random(1))
    rcu = GracePeriods(env, sched, params, sched.cpus[0])
    rng = random.Random(2)

    def closes():
        while True:
            yield env.timeout(rng.expovariate(rate))
            rcu.closed()

    env.process(closes())
    env.run(until=1.0)  # the first grace periods, and the thread's creation, are behind us
    before = sched.switches
    env.run(until=1.0 + seconds)
    return (sched.switches - before) / seconds


@pytest.mark.parametrize("rate", [20.0, 100.0, 1000.0])
def test_grace_periods_follow_from_their_inputs(rate):
    """Two switches a run, ``runs_per_gp`` runs a grace period, and a grace period for the
    closes that arrive while none runs or during the one before: at rate r that is
    2 k r / (r G + exp(-r G)) a second (benchmarks/rcu_grace_periods.py's model)."""
    import math

    from arch_sim.models.rcu import RcuParams

    params = RcuParams(runs_per_gp=2.0, gp_ms=10.0, run_us=10.0, source="test")
    g = params.gp_ms / 1000
    expect = 2 * params.runs_per_gp * rate / (rate * g + math.exp(-rate * g))
    got = _gp_thread_switches(rate, 60.0, params)
    assert got == pytest.approx(expect, rel=0.08)


def test_host_model_counts_the_rcu_thread_with_a_connection_per_request_only(monkeypatch):
    """At 100 requests/s the host model's CPU count gains the grace-period thread's switches
    with a connection per request (about what the bare-socket input predicts per close) and
    next to none with keep-alive (its connections close only when a bench window ends); the
    server's own count moves little (the thread is not the server's; it preempts the server
    only when it wakes while the server runs)."""
    import math

    from arch_sim.models import rcu
    from arch_sim.models.runner import simulate_point

    params = rcu.load_rcu("host")
    if params is None:
        pytest.skip("no presets/host.rcu.json")

    def point(connection: str) -> dict:
        return simulate_point("state-group", "host", 100, workload="closed",
                              connection=connection, requests=1500, bench_window_s=3.0)

    with_rcu = {c: point(c) for c in ("close", "keep-alive")}
    monkeypatch.setattr(rcu, "load_rcu", lambda preset, source="": None)
    without = {c: point(c) for c in ("close", "keep-alive")}
    added = {c: with_rcu[c]["cpu_switches_per_request"] - without[c]["cpu_switches_per_request"]
             for c in with_rcu}
    r, g = with_rcu["close"]["rps"], params.gp_ms / 1000
    per_close = 2 * params.runs_per_gp / (r * g + math.exp(-r * g))
    assert added["close"] == pytest.approx(per_close, rel=0.25), added
    # (two runs a thread apart: they part ways, so "none" may come out a hair below zero)
    assert -0.02 < added["keep-alive"] < 0.15, added
    for c in with_rcu:
        assert with_rcu[c]["reschedules_per_request"] == pytest.approx(
            without[c]["reschedules_per_request"], abs=0.15)


def test_host_model_feeds_the_rcu_thread_with_open_arrivals_too(monkeypatch):
    """Open arrivals are a connection each, closed after its reply: the grace-period thread
    adds its switches to the host model's CPU count as with a closed workload's connection per
    request."""
    import math

    from arch_sim.models import rcu
    from arch_sim.models.runner import simulate_point

    params = rcu.load_rcu("host")
    if params is None:
        pytest.skip("no presets/host.rcu.json")

    def point() -> dict:
        return simulate_point("state-group", "host", 100, workload="open", requests=1500)

    with_rcu = point()
    monkeypatch.setattr(rcu, "load_rcu", lambda preset, source="": None)
    added = with_rcu["cpu_switches_per_request"] - point()["cpu_switches_per_request"]
    r, g = with_rcu["rps"], params.gp_ms / 1000
    assert added == pytest.approx(2 * params.runs_per_gp / (r * g + math.exp(-r * g)),
                                  rel=0.25)


@pytest.mark.parametrize(("script", "argv", "says"), [
    ("cpu0_switches.py", ["--rate", "abc"], "invalid float value"),
    ("cpu0_switches.py", ["--rate", "-5"], "--rate must be > 0"),
    ("rcu_grace_periods.py", ["--rates", "25,x"], "give rates like"),
    ("rcu_grace_periods.py", ["--seconds", "0"], "must be > 0"),
])
def test_the_benchmarks_refuse_bad_arguments_in_one_line(script, argv, says):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(root / "benchmarks" / script), *argv],
                         capture_output=True, text=True, timeout=60, cwd=root,
                         env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and says in lines[0], out.stderr
    assert out.stdout == ""
