"""Whom a wake-up preempts, and why: the kernel's EEVDF state at every wake-up, real and modelled.

    .venv/bin/python benchmarks/wake_audit.py [--arch staged] [--rate 100] [--seconds 3]
        [--connection close] [--file-set specweb99] [--out FILE]

Runs one of our Python servers (the thread-per-request pool or the staged server) under wrk
-c 64 (keep-alive, or ``--connection close``: a connection per request, the model likewise),
paced at ``--rate`` (default: unpaced), server on CPU 0 and wrk on CPU 1, and
reads with bpftrace, at every ``sched_wakeup`` of a server thread (which fires after
check_preempt_wakeup_fair() has decided), the woken task's and the running task's vruntime and
deadline, the running task's protected slice (``vprot``), the run queue's ``zero_vruntime``,
``sum_w_vruntime``, ``sum_weight`` and ``nr_queued``, and whether the running task was told to
reschedule.  From these: the queue's average V (the running task is not in the tree's sums:
it is added with its own weight), each task's lag V - v, whether the running task was
eligible (lag >= 0), and the decision.  Per (waker's group, woken thread's group): wake-ups per
request, the share that preempted, the share with the waker eligible, with the woken owed
time (lag > 0), and the mean queue length - beside the same from the host model
(:func:`arch_sim.models.policy_eevdf.watch_wake_checks`).

And at every switch away from a server thread that sleeps (``sched_switch`` with a state other
than 0 and 0x100, the two a preemption reports: docs/SOURCES.md [LX-switch-state]): whether it
stays queued owing time (``sched_delayed``, DELAY_DEQUEUE) or leaves with its lag (``vlag``:
owed time if positive, exactly 0 if it was alone), and the queue's length - per thread group,
the share of its sleeps owed, at lag 0 and delayed, beside the model's
(:func:`arch_sim.models.policy_eevdf.watch_sleeps`).  ``vlag`` shares its field with ``vprot``
and is only read for a thread that left the queue.

Kernel rules decide the same way in both when the state is the same (an eligible running task
inside its slice is never preempted; an ineligible one is, when the woken task is the pick);
what this shows is whether the *state* - lags, delayed sleepers - is the same.  The kernel's
fields are read through each thread's task_struct, remembered at its system calls (no kprobes
needed, only tracepoints and BTF).  Needs root and bpftrace.

The probes cost the traced server enough to change what they measure: a probe at every system
call and a line printed at every wake-up and sleep.  The pool server at 2,000 requests/s had
its dispatcher preempted 0.43 times a request under a bpftrace program that prints every
switch, 0.98 under perf and 1.09 untraced; one that only counts in maps (printed at the end)
left it at 1.00 (docs/SOURCES.md [MEAS-pool-cycles]).  Read the real column as a slowed
server's; `staged_cycles.py` (perf) shows the unslowed one's cycles.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from arch_sim.models.policy_eevdf import SleepCheck, WakeCheck, watch_sleeps, watch_wake_checks
from arch_sim.models.runner import default_warmup, simulate_point
from arch_sim.runinfo import git_commit, host_info, now_iso, write_json_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gil_audit import loaded_server, task_names, thread_groups  # noqa: E402

#: bpftrace: the fields of every wake-up of a thread of process $1 (see the module docstring)
PROGRAM = r"""
tracepoint:raw_syscalls:sys_enter /curtask->tgid == $1/ { @task[tid] = (uint64)curtask; }
tracepoint:sched:sched_wakeup /@task[args->pid]/ {
  $p = (struct task_struct *)@task[args->pid];
  $cfs = $p->se.cfs_rq;
  $c = $cfs->rq->curr;
  printf("W %llu %d %d %llu %llu %llu %llu %llu %llu %lld %llu %u %d %llu\n", nsecs, $c->pid,
    $p->pid,
    $p->se.vruntime, $p->se.deadline, $c->se.vruntime, $c->se.deadline, $c->se.vprot,
    $cfs->zero_vruntime, $cfs->sum_w_vruntime, $cfs->sum_weight, $cfs->nr_queued,
    $c->thread_info.flags & 0x18, $c->se.load.weight);
}
tracepoint:sched:sched_switch
/@task[args->prev_pid] && args->prev_state != 0 && args->prev_state != 0x100/ {
  $q = (struct task_struct *)@task[args->prev_pid];
  printf("S %llu %d %lld %d %u\n", nsecs, $q->pid, $q->se.vlag, $q->se.sched_delayed,
    $q->se.cfs_rq->nr_queued);
}
"""
NICE_0_SHIFT = 10  # scale_load_down(): the tree's sums use the weight without its fixed point


@dataclass(frozen=True)
class Check:
    """One wake-up check, from either side: groups, lags (ns or s: only signs are compared)."""

    waker: str
    woken: str
    woken_lag: float
    curr_eligible: bool
    queued: int
    preempted: bool


def parse(lines: Iterable[str], groups: dict[int, str]) -> tuple[list[Check], float]:
    """bpftrace's ``W`` lines as :class:`Check` rows, and the seconds from the first wake-up
    to the last; wake-ups whose running task is not a server thread (an idle CPU, another
    process) are left out."""
    out, times = [], []
    for line in lines:
        f = line.split()
        if len(f) != 15 or f[0] != "W":
            continue
        try:
            (ns, curr, woken, pv, _pdl, cv, _cdl, _vprot, zero, sum_w, weight, queued, flags,
             cweight) = (int(x) for x in f[1:])
        except ValueError:
            continue
        times.append(ns)
        if curr not in groups or woken not in groups:
            continue
        w = cweight >> NICE_0_SHIFT
        avg = zero + (sum_w + (cv - zero) * w) / (weight + w)
        out.append(Check(groups[curr], groups[woken], avg - pv, cv <= avg, queued, flags != 0))
    return out, (max(times) - min(times)) * 1e-9 if times else 0.0


def from_model(check: WakeCheck) -> Check:
    group = lambda name: name.split("/", 1)[0]  # noqa: E731
    return Check(group(check.curr), group(check.woken), check.woken_lag,
                 check.curr_lag >= -1e-12, check.queued, check.preempted)


def tally(checks: list[Check], requests: float) -> dict[str, dict[str, float]]:
    """Per "waker -> woken": wake-ups per request, and the shares that preempted, whose waker
    was eligible, whose woken thread was owed time; the mean queue length."""
    by: dict[str, list[Check]] = collections.defaultdict(list)
    for c in checks:
        by[f"{c.waker} -> {c.woken}"].append(c)
    return {pair: {"per_request": len(cs) / requests,
                   "preempted": sum(c.preempted for c in cs) / len(cs),
                   "waker_eligible": sum(c.curr_eligible for c in cs) / len(cs),
                   "woken_owed": sum(c.woken_lag > 0 for c in cs) / len(cs),
                   "queued": sum(c.queued for c in cs) / len(cs)}
            for pair, cs in sorted(by.items())}


@dataclass(frozen=True)
class Sleep:
    """A thread going to sleep, from either side (lag in ns or s: only its sign is used)."""

    group: str
    lag: float
    delayed: bool
    queued: int


def parse_sleeps(lines: Iterable[str], groups: dict[int, str]) -> list[Sleep]:
    """bpftrace's ``S`` lines of server threads as :class:`Sleep` rows."""
    out = []
    for line in lines:
        f = line.split()
        if len(f) != 6 or f[0] != "S":
            continue
        try:
            _ns, pid, vlag, delayed, queued = (int(x) for x in f[1:])
        except ValueError:
            continue
        if pid in groups:
            out.append(Sleep(groups[pid], 0.0 if delayed else float(vlag), delayed != 0,
                             queued))
    return out


def sleep_from_model(check: SleepCheck) -> Sleep:
    return Sleep(check.task.split("/", 1)[0], 0.0 if check.delayed else check.lag,
                 check.delayed, check.queued)


def tally_sleeps(sleeps: list[Sleep], requests: float) -> dict[str, dict[str, float]]:
    """Per thread group: sleeps per request, the shares that left owed time, left at lag 0
    (alone in the queue) and stayed queued owing (delayed); the mean queue length."""
    by: dict[str, list[Sleep]] = collections.defaultdict(list)
    for s in sleeps:
        by[s.group].append(s)
    return {group: {"per_request": len(ss) / requests,
                    "owed": sum(not s.delayed and s.lag > 0 for s in ss) / len(ss),
                    "zero": sum(not s.delayed and s.lag == 0 for s in ss) / len(ss),
                    "delayed": sum(s.delayed for s in ss) / len(ss),
                    "queued": sum(s.queued for s in ss) / len(ss)}
            for group, ss in sorted(by.items())}


def record(args) -> dict:
    bpftrace = shutil.which("bpftrace")
    if bpftrace is None:
        raise SystemExit("error: bpftrace not found; install it (Debian: apt-get install -y "
                         "bpftrace) and run as root")
    with tempfile.TemporaryDirectory(prefix="arch-sim-wake-") as tmp:
        program, out = Path(tmp) / "wake.bt", Path(tmp) / "wake.txt"
        program.write_text(PROGRAM)
        with loaded_server(args, Path(tmp)) as server, out.open("w") as sink:
            bt = subprocess.Popen([bpftrace, str(program), str(server.pid)], stdout=sink,
                                  stderr=subprocess.STDOUT)
            time.sleep(args.attach)
            before, t0 = server.status(), time.monotonic()
            time.sleep(args.seconds)
            after, t1 = server.status(), time.monotonic()
            bt.terminate()
            bt.wait()
            names = task_names(server.pid)
            groups = thread_groups(args.arch, server.pid, names, names)
        lines = out.read_text().splitlines()
    if args.arch == "thread-per-request":  # the pool server's main thread is its dispatcher,
        groups = {tid: "dispatcher" if g == "main" else g  # as the model names it
                  for tid, g in groups.items()}
    # the trace spans more than [t0, t1]: per request at the server's own rate over its span
    rps = (after["requests"] - before["requests"]) / (t1 - t0)
    checks, span = parse(lines, groups)
    return {"rps": rps, "traced_s": span, "pairs": tally(checks, rps * span),
            "sleeps": tally_sleeps(parse_sleeps(lines, groups), rps * span)}


def model(args) -> dict:
    checks: list[WakeCheck] = []
    sleeps: list[SleepCheck] = []
    with watch_wake_checks(checks.append), watch_sleeps(sleeps.append):
        row = simulate_point(args.arch, "host", args.rate, workload="closed",
                             connection=args.connection,
                             connections=args.connections, threads=args.threads,
                             requests=args.model_requests, seed=1, file_sizes=args.file_set)
    # the checks span the warm-up too: per request over every request simulated
    done = args.model_requests + default_warmup(args.model_requests, "closed", args.connections)
    return {"rps": row["rps"], "pairs": tally([from_model(c) for c in checks], done),
            "sleeps": tally_sleeps([sleep_from_model(c) for c in sleeps], done)}


def print_table(title: str, real: dict[str, dict[str, float]],
                sim: dict[str, dict[str, float]], cols: tuple[str, ...]) -> None:
    """One row per key of either side, each cell ``real / model``."""
    print(f"{title:32s} " + " ".join(f"{c:>16s}" for c in cols))
    for key in sorted(set(real) | set(sim)):
        r, m = real.get(key, {}), sim.get(key, {})
        print(f"{key:32s} " + " ".join(
            f"{r.get(c, 0.0):7.2f} / {m.get(c, 0.0):6.2f}" for c in cols))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="staged", choices=("thread-per-request", "staged"))
    parser.add_argument("--rate", type=float, default=None, help="requests/s (default: unpaced)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--attach", type=float, default=1.0, help="seconds bpftrace gets to "
                        "attach before the window")
    parser.add_argument("--file-set", default="specweb99")
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--connection", default="keep-alive", choices=("keep-alive", "close"),
                        help="wrk's connections: keep-alive, or one per request (HTTP/1.0)")
    parser.add_argument("--model-requests", type=int, default=3000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    real, sim = record(args), model(args)
    print(f"{args.arch} at {args.rate or 'max'}: real {real['rps']:,.0f}/s, model "
          f"{sim['rps']:,.0f}/s")
    print_table("waker -> woken", real["pairs"], sim["pairs"],
                ("per_request", "preempted", "waker_eligible", "woken_owed", "queued"))
    print_table("sleeps of", real["sleeps"], sim["sleeps"],
                ("per_request", "owed", "zero", "delayed", "queued"))
    print("(each cell: real / model)")
    if args.out:
        write_json_atomic(args.out, {"kind": "wake-audit", **host_info(), "git": git_commit(),
                                     "when": now_iso(), "args": vars(args) | {"out": None},
                                     "real": real, "model": sim})
    return 0


if __name__ == "__main__":
    sys.exit(main())
