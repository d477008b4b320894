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
