"""What switches on the server's CPU at low load: every switch on CPU 0 over the bench's own
window, by task and by cause.

    PYTHONPATH=. python benchmarks/cpu0_switches.py [--arch state-group] [--connection close]
        [--rate 100] [--duration 3] [--reps 2] [--out FILE]

Runs one of our servers on CPU 0 as ``arch-sim bench`` did before it read CPU 0 from a trace
(the same ``measure()`` with ``perf stat -a -C 0`` counting every switch on CPU 0 - its count is
``perf_stat_cpu_per_request`` - perf counting the server's pids, wrk -c 64 paced on CPU 1, the
idle baseline of one second taken just before) while ``perf record -a`` (pinned to CPU 1)
traces sched_switch, sched_wakeup and sched_process_fork.  Each switch on CPU 0 is put down
as ``prev -> next`` with each task named by kind:

    idle      the idle task (pid 0)
    server    a thread or process of the server
    harness   the bench's own Python process, and the children it forks (perf, wrk) before
              they exec
    perf      the perf stat counters the harness starts and stops around each window
    wrk       the load generator (pinned to CPU 1; it should never be here)
    kthread   a kernel thread, by name (ksoftirqd/0, kworker/0:N, rcu_*, migration/0...)
    other     any other process: another user's work on this shared machine

and by phase: ``window`` (wrk running: from the fork of wrk to its exit) or ``margin`` (the
rest of ``measure()``: perf starting, the settle time, the counters' snapshots, perf
stopping) - the margin is what the bench takes off at the idle baseline rate, so what the
margin holds above that rate lands in ``cpu_switches_per_request``.  Each switch into a task
other than idle carries its waker (the kind of the task that woke it, and on which CPU).

Beside it, the host model's switches at the same point (``simulate_point(..., workload =
"closed", bench_window_s = 3.0)``) by the same kinds.
Needs root and perf.
"""

from __future__ import annotations

import collections
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from arch_sim.argtypes import OneLineParser
from arch_sim.harness import counters, fileset, measure, servers
from arch_sim.harness.bench import IDLE_BASELINE_S
from arch_sim.harness.measure import Load, Target
from arch_sim.models.runner import simulate_point
from arch_sim.models.trace import switch_traces

IDLE_TRACE_S = 3.0  # seconds of the idle server traced for the background
EVENTS = ("sched:sched_switch", "sched:sched_wakeup", "sched:sched_process_fork")
LINE = re.compile(r"^\s*(\S+)\s+(\d+)\s+\[(\d+)\]\s+([\d.]+):\s+(\S+):\s+(.*)$")
SWITCH = re.compile(r"prev_comm=(.*) prev_pid=(\d+) prev_prio=\d+ prev_state=(\S+) ==> "
                    r"next_comm=(.*) next_pid=(\d+) next_prio=\d+")
WAKEUP = re.compile(r"comm=(.*) pid=(\d+) prio=\d+ target_cpu=(\d+)")
FORK = re.compile(r"comm=(.*) pid=(\d+) child_comm=(.*) child_pid=(\d+)")
KTHREAD = re.compile(r"^(ksoftirqd|kworker|rcu|migration|cpuhp|idle_inject|watchdog|kthreadd|"
                     r"irq/|jbd2|kcompactd|khugepaged|kswapd|oom_reaper|writeback|kblockd|"
                     r"scsi_|ext4|xfs|kauditd|khungtaskd|ksmd|pool_workqueue|kdamond)")


def kthread_name(comm: str) -> str:
    """A kernel thread's name without its per-instance number (kworker/0:1H -> kworker/0)."""
    if comm.startswith("kworker/"):
        return "kworker/" + comm.split("/", 1)[1].split(":", 1)[0].split("-", 1)[0]
    return comm


class Kinds:
    """Names a tid by kind (see the module docstring) from what the trace and /proc told."""

    def __init__(self, server: set[int], harness: int) -> None:
        self.server = server
        self.harness = {harness}
        self.comm: dict[int, str] = {}  # the last name the trace gave each tid

    def fork(self, parent: int, child: int) -> None:
        if parent in self.harness:
            self.harness.add(child)
        if parent in self.server:
            self.server.add(child)

    def of(self, tid: int) -> str:
        if tid == 0:
            return "idle"
        if tid in self.server:
            return "server"
        comm = self.comm.get(tid, "?")
        if comm == "wrk":
            return "wrk"
        if comm == "perf":
            return "perf"
        if tid in self.harness:
            return "harness"
        if KTHREAD.match(comm):
            return f"kthread {kthread_name(comm)}"
        return f"other {comm}"


def parse(text: str, kinds: Kinds, marks: dict[str, float], cpu: int = 0) -> dict:
    """Tally the switches on ``cpu`` of ``perf script -F comm,tid,cpu,time,event,trace``."""
    window: collections.Counter[str] = collections.Counter()
    margin: collections.Counter[str] = collections.Counter()
    woken_by: collections.Counter[str] = collections.Counter()
    waker: dict[int, str] = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        comm, tid, on, t, event, fields = (m.group(1), int(m.group(2)), int(m.group(3)),
                                           float(m.group(4)), m.group(5), m.group(6))
        kinds.comm.setdefault(tid, comm)
        if comm in ("wrk", "perf"):
            kinds.comm[tid] = comm
        event = event.rstrip(":").split(":")[-1]
        if event == "sched_process_fork":
            f = FORK.search(fields)
            if f:
                kinds.fork(int(f.group(2)), int(f.group(4)))
            continue
        if event == "sched_wakeup":
            w = WAKEUP.search(fields)
            if w and int(w.group(3)) == cpu:
                who = kinds.of(tid) if tid else "idle (an interrupt)"
                waker[int(w.group(2))] = f"{who} on CPU {on}"
            continue
        if event != "sched_switch" or on != cpu:
            continue
        s = SWITCH.search(fields)
        if not s or not marks["measure0"] <= t <= marks["measure1"]:
            continue
        prev, nxt = int(s.group(2)), int(s.group(5))
        kinds.comm.setdefault(nxt, s.group(4))
        kinds.comm.setdefault(prev, s.group(1))
        key = f"{kinds.of(prev)} -> {kinds.of(nxt)}"
        inside = marks["wrk0"] <= t <= marks["wrk1"]
        (window if inside else margin)[key] += 1
        if inside and nxt:
            by = waker.pop(nxt, "none seen (preempted back)")
            woken_by[f"{kinds.of(nxt)} woken by {by}"] += 1
    return {"window": window, "margin": margin, "woken_by": woken_by}


def server_tids(pids: Iterable[int]) -> set[int]:
    tids: set[int] = set()
    for pid in pids:
        tids.add(pid)
        try:
            tids.update(int(p.name) for p in Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            pass
    return tids


def one_window(target: Target, load: Load | None, idle: float, tmp: Path, perf: str) -> dict:
    """``measure()`` exactly as the bench calls it, traced; marks on CLOCK_MONOTONIC.  Without
    a load, the same length of the server idling, traced the same way (the background)."""
    data = tmp / "perf.data"
    marks: dict[str, float] = {}
    real_drive = measure.drive

    def drive(*a, **kw):
        marks["wrk0"] = time.monotonic()
        try:
            return real_drive(*a, **kw)
        finally:
            marks["wrk1"] = time.monotonic()

    rec = subprocess.Popen(
        [perf, "record", "-q", "-a", "-k", "CLOCK_MONOTONIC", "-m", "16M", "-o", str(data)]
        + [f"-e{e}" for e in EVENTS], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {1}))
    time.sleep(1.0)  # perf record attached everywhere
    measure.drive = drive
    try:
        marks["measure0"] = time.monotonic()
        if load is None:
            marks["wrk0"] = marks["measure0"]
            time.sleep(IDLE_TRACE_S)
            marks["measure1"] = marks["wrk1"] = time.monotonic()
        else:
            result, d, perf_count, cpu = measure.measure(target, load, True, [0], idle)
            marks["measure1"] = time.monotonic()
    finally:
        measure.drive = real_drive
    time.sleep(0.3)
    rec.send_signal(signal.SIGINT)
    rec.wait(30)
    script = subprocess.run([perf, "script", "-i", str(data), "-F",
                             "comm,tid,cpu,time,event,trace"],
                            capture_output=True, text=True, check=True).stdout
    kinds = Kinds(server_tids(target.pids()), os.getpid())
    tally = parse(script, kinds, marks)
    if load is None:
        span = marks["wrk1"] - marks["wrk0"]
        return {"seconds": span,
                "per_s": {k: v / span for k, v in tally["window"].most_common()},
                "woken_by_per_s": {k: v / span for k, v in tally["woken_by"].most_common()}}
    requests = max(result.requests, 1)
    margin_s = (marks["measure1"] - marks["measure0"]) - (marks["wrk1"] - marks["wrk0"])
    return {
        "requests": result.requests, "rps": result.rps, "window_s": marks["wrk1"] - marks["wrk0"],
        "margin_s": margin_s, "idle_per_s": idle,
        "server_per_request": (d.reschedules or 0) / requests,
        "perf_stat_cpu_per_request": (cpu.count - idle * result.duration_s) / requests
        if cpu.count is not None else None,
        "traced_window_per_request": sum(tally["window"].values()) / requests,
        "traced_margin_less_idle_per_request": (sum(tally["margin"].values())
                                                - idle * margin_s) / requests,
        "window": {k: v / requests for k, v in tally["window"].most_common()},
        "margin": {k: v / requests for k, v in tally["margin"].most_common()},
        "woken_by": {k: v / requests for k, v in tally["woken_by"].most_common()},
    }


def record(args) -> list[dict]:
    perf = shutil.which("perf")
    if perf is None:
        raise SystemExit("error: perf not found (Debian: apt-get install -y linux-perf); run "
                         "as root")
    threads = 64 if args.arch == "thread-per-request" else None
    out = []
    with tempfile.TemporaryDirectory(prefix="arch-sim-cpu0-") as tmp:
        fs = fileset.generate(Path(tmp) / "root", args.file_set)
        with servers.start(args.arch, fs.root, cpus=[0],
                           args=servers.arch_args(args.arch, threads, [0])) as server:
            target = Target(args.arch, args.arch, server.url,
                            lambda: server.status()["pids"], server.status, server.check_alive)

            def load(rep: int, rate: float | None) -> Load:
                return Load(rate, 64, args.duration, args.connection == "keep-alive", fs.urls,
                            fs.weights, [1], 1000 + rep)

            measure.drive(target, load(0, None), duration=1)  # prime caches, as the bench does
            idle = counters.idle_cpu_switches([0], IDLE_BASELINE_S) or 0.0
            measure.drive(target, load(0, args.rate), duration=1)  # warm-up
            out.append(one_window(target, None, idle, Path(tmp), perf))
            for rep in range(args.reps):
                out.append(one_window(target, load(rep, args.rate), idle, Path(tmp), perf))
    return out


def model(args) -> dict:
    """The host model at the same point, and its switches by kind over the whole run (a
    :class:`~arch_sim.models.trace.SwitchTrace` on the scheduler): each change of task on the
    CPU, named idle, server or kthread (the RCU grace-period thread, :mod:`arch_sim.models.rcu`)."""
    with switch_traces() as traces:
        row = simulate_point(args.arch, "host", args.rate, workload="closed",
                             connection=args.connection, requests=3000, bench_window_s=3.0)
    rows = [r for r in traces[0].finish(0.0) if r.cpu == 0]
    kinds: collections.Counter[str] = collections.Counter()
    for a, b in zip(rows, rows[1:], strict=False):
        if a.task != b.task:
            kinds[f"{_model_kind(a.task)} -> {_model_kind(b.task)}"] += 1
    served = row["completions"] / max(row["duration_s"], 1e-9) * (rows[-1].end - rows[0].start)
    return {"cpu_per_request": row["cpu_switches_per_request"],
            "server_per_request": row["reschedules_per_request"],
            "by_kind_per_request": {k: v / served for k, v in kinds.most_common()}}


def _model_kind(task: str) -> str:
    return task if task == "idle" else "kthread rcu_gp" if task == "rcu_gp" else "server"


def main(argv: list[str] | None = None) -> int:
    p = OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="state-group", choices=sorted(servers.SERVER_MODULES))
    p.add_argument("--connection", default="close", choices=("keep-alive", "close"))
    p.add_argument("--rate", type=float, default=100.0)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--file-set", default="specweb99")
    p.add_argument("--out", type=Path)
    p.add_argument("--model-only", action="store_true", help="only the model's split")
    args = p.parse_args(argv)
    if args.rate <= 0 or args.reps < 1 or args.duration < 1:
        p.error("--rate must be > 0, --reps >= 1, --duration >= 1")
    report = {"arch": args.arch, "connection": args.connection, "rate": args.rate,
              "real": [] if args.model_only else record(args), "model": model(args)}
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
