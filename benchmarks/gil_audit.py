"""Why the Python pool server reschedules: every switch of its threads by cause, real and modelled.

    .venv/bin/python benchmarks/gil_audit.py [--arch staged] [--rate 100] [--seconds 2]
        [--file-set specweb99] [--out FILE]

Runs one of our Python servers - the thread-per-request pool (64 threads, the default) or the
staged server (its default stage threads) - under wrk -c 64 keep-alive, unpaced (saturation) or
paced at ``--rate`` requests/s, server on CPU 0, wrk on CPU 1; records one window with ``perf
record`` (the server threads' sched_switch, sched_wakeup and futex calls) and sorts every switch
of a server thread by what it was waiting for, in all and per thread group (the pool; or each
stage, its threads told apart by the order the server starts them):

    own lock    a futex word only one thread waits on: a pool thread's own lock until the
                dispatcher hands it a request; in the staged server the waiter lock that
                ``queue.Queue.get()``'s condition variable allocates per wait
    gil cond    waiting for the GIL (gil->cond)
    gil mutex   waiting for the GIL's mutex (gil->mutex)
    other lock  any other futex (the pool's shared lock, CPython's switch_cond...)
    preempted   involuntary: a woken thread or the tick took the CPU
    other       blocked outside a futex (epoll_wait, recv, send)

A futex word is named by who waits on it: a word only one thread ever waits on is that thread's
own lock; the shared word most waited on with FUTEX_WAIT and value 2 is a glibc mutex held
by someone else - the GIL's; the shared FUTEX_WAIT_BITSET words next to the most waited one are
a glibc condition variable - the GIL's.  Beside it, the host-preset model's counters for the
same workload (closed, same connections, unpaced).  Tracing slows the server (perf writes an
event for every switch and futex call), so the real column is the traced server; the
server's own counters over the same window are printed too.  Needs root and ``perf``
(Debian: ``apt-get install -y linux-perf``).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from arch_sim.harness import fileset, loaded, servers
from arch_sim.models.runner import simulate_point
from arch_sim.runinfo import git_commit, host_info, now_iso, write_json_atomic
from real_servers.staged.options import DEFAULT_THREADS, STAGES

EVENTS = ("sched:sched_switch", "sched:sched_wakeup", "syscalls:sys_enter_futex",
          "syscalls:sys_exit_futex")
FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_CMD_MASK = 0, 9, 0x7F
CAUSES = ("own lock", "gil cond", "gil mutex", "other lock", "preempted", "other")
LINE = re.compile(r"^\s*(\d+)\s+([\d.]+):\s+(\S+):\s+(.*)$")
FUTEX = re.compile(r"uaddr: (0x[0-9a-f]+), op: (0x[0-9a-f]+), val: (0x[0-9a-f]+)")


# -- reading the trace -------------------------------------------------------------------------


def parse(lines: Iterable[str]) -> tuple[list[tuple[int, str, str]], float]:
    """``perf script -F tid,time,event,trace`` lines as (tid, event, fields), and the seconds
    from the first event to the last."""
    events, times = [], []
    for line in lines:
        m = LINE.match(line)
        if m:
            events.append((int(m.group(1)), m.group(3).split(":", 1)[-1], m.group(4)))
            times.append(float(m.group(2)))
    return events, (times[-1] - times[0]) if times else 0.0


def name_words(events: list[tuple[int, str, str]]) -> dict[str, str]:
    """Which futex word is whose: own locks, the GIL's mutex and condition variable."""
    waiters: dict[str, set[int]] = collections.defaultdict(set)
    waits: collections.Counter[tuple[str, str]] = collections.Counter()
    for tid, event, fields in events:
        m = FUTEX.search(fields) if event == "sys_enter_futex" else None
        if not m:
            continue
        word, cmd, val = m.group(1), int(m.group(2), 16) & FUTEX_CMD_MASK, int(m.group(3), 16)
        if cmd == FUTEX_WAIT and val == 2:
            waiters[word].add(tid)
            waits[(word, "mutex")] += 1
        elif cmd in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
            waiters[word].add(tid)
            waits[(word, "cond")] += 1
    names = {word: "own lock" if len(tids) == 1 else "other lock" for word, tids in waiters.items()}
    for kind, cause in (("mutex", "gil mutex"), ("cond", "gil cond")):
        shared = [(n, w) for (w, k), n in waits.items() if k == kind and len(waiters[w]) > 1]
        if shared:
            top = int(max(shared)[1], 16)
            for _, word in shared:  # a glibc condvar waits on two neighbouring words
                if abs(int(word, 16) - top) <= (8 if kind == "cond" else 0):
                    names[word] = cause
    return names


def tally(events: list[tuple[int, str, str]], tids: set[int] | dict[int, str]
          ) -> collections.Counter:
    """Switches of the server threads ``tids`` by cause (see the module docstring); given a
    dict tid -> thread group, also by (group, cause)."""
    names = name_words(events)
    group = tids if isinstance(tids, dict) else {}
    inside: dict[int, str] = {}  # tid -> futex word it is waiting on now
    counts: collections.Counter = collections.Counter()
    for tid, event, fields in events:
        if event == "sys_enter_futex":
            m = FUTEX.search(fields)
            if m:
                inside[tid] = m.group(1)
        elif event == "sys_exit_futex":
            inside.pop(tid, None)
        elif event == "sched_switch":
            prev = int(re.search(r"prev_pid=(\d+)", fields).group(1))
            if prev not in tids:
                continue
            state = re.search(r"prev_state=(\S+)", fields).group(1)
            if state.startswith("R"):
                cause = "preempted"
            elif prev in inside:
                cause = names.get(inside[prev], "other lock")
            else:
                cause = "other"
            counts[cause] += 1
            if prev in group:
                counts[(group[prev], cause)] += 1
                if cause == "preempted":  # and by whom: the thread switched to
                    nxt = int(re.search(r"next_pid=(\d+)", fields).group(1))
                    counts[("preempted by", group[prev], group.get(nxt, "another process"))] += 1
    return counts


def thread_groups(arch: str, pid: int, tids: Iterable[int],
                  names: Mapping[int, str] | None = None) -> dict[int, str]:
    """Each server thread's group: ``main``, then ``pool`` - or, for the staged server, its
    stage.  The staged server names each stage thread ``STAGE-N`` in the kernel
    (``names``: tid -> ``/proc/PID/task/TID/comm``); a thread without such a name is placed by
    start order as the default stage threads start (thread ids grow in start order)."""
    names = names or {}
    others = sorted(t for t in tids if t != pid)
    labels: list[str] = []
    if arch == "staged":
        for name in STAGES:
            labels += [name] * DEFAULT_THREADS[name]
    groups = {pid: "main"}
    for i, tid in enumerate(others):
        stage = names.get(tid, "").rpartition("-")[0]
        if arch == "staged" and stage in STAGES:
            groups[tid] = stage
        else:
            groups[tid] = labels[i] if i < len(labels) else "pool" if not labels else "other"
    return groups


def task_names(pid: int) -> dict[int, str]:
    """Every thread of ``pid``: tid -> its kernel name (``comm``)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[int(task.name)] = (task / "comm").read_text().strip()
        except OSError:  # the thread exited meanwhile
            pass
    return out


# -- the real server under perf ----------------------------------------------------------------


def need_perf() -> str:
    perf = shutil.which("perf")
    if perf is None:
        raise SystemExit("error: perf not found; install it (Debian: apt-get install -y "
                         "linux-perf) and run as root")
    return perf


@contextlib.contextmanager
def loaded_server(args, tmp: Path) -> Iterator[servers.ServerProcess]:
    """The server on CPU 0 with wrk (CPU 1) loading it (saturated, or paced at ``args.rate``),
    after the warm-up; the load lasts ``args.seconds`` more, plus a margin."""
    with loaded.under_wrk(args.arch, servers.arch_args(args.arch, args.threads, [0]),
                          seconds=args.seconds, warmup=args.warmup, file_set=args.file_set,
                          connections=args.connections, rate=args.rate, root=tmp,
                          keep_alive=getattr(args, "connection", "keep-alive") != "close"
                          ) as server:
        yield server


def record(args) -> dict:
    """Run the server under load and trace one window; counts per request."""
    perf = need_perf()
    with tempfile.TemporaryDirectory(prefix="arch-sim-audit-") as tmp:
        with loaded_server(args, Path(tmp)) as server:
            before, t0 = server.status(), time.monotonic()
            data = Path(tmp) / "perf.data"
            subprocess.run([perf, "record", "-q", "-m", "16M", "-o", str(data),
                            "-p", str(server.pid)] + [f"-e{e}" for e in EVENTS]
                           + ["--", "sleep", str(args.seconds)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            after, t1 = server.status(), time.monotonic()
            names = task_names(server.pid)
            tids = thread_groups(args.arch, server.pid, names, names)
        script = subprocess.run([perf, "script", "-i", str(data), "-F", "tid,time,event,trace"],
                                check=True, capture_output=True, text=True).stdout
    # the server's counters span perf's start and end too: rates from them, counts from the trace
    requests = after["requests"] - before["requests"]
    rps = requests / (t1 - t0)
    events, span = parse(script.splitlines())
    traced = rps * span  # requests served while perf recorded
    counts = tally(events, tids)
    groups = sorted(set(tids.values()), key=list(tids.values()).index)
    own = sum(after[k] - before[k] for k in ("voluntary_ctxt_switches",
                                             "involuntary_ctxt_switches"))
    return {"rps": rps, "traced_s": span, "traced_requests": traced,
            "per_request": {c: counts[c] / traced for c in CAUSES},
            "per_group": {g: {c: counts[(g, c)] / traced for c in CAUSES} for g in groups},
            "words": words_summary(events, traced),
            "preempted_by": {f"{k[1]} by {k[2]}": n / traced for k, n in counts.items()
                             if isinstance(k, tuple) and k[0] == "preempted by"},
            "traced_total": sum(counts[c] for c in CAUSES) / traced,
            "server_counters_total": own / requests}


def words_summary(events: list[tuple[int, str, str]], traced: float) -> list[dict]:
    """The futex words waited on most: name, waits per request (by kind), waiting threads."""
    names = name_words(events)
    waits: collections.Counter[str] = collections.Counter()
    tids: dict[str, set[int]] = collections.defaultdict(set)
    for tid, event, fields in events:
        m = FUTEX.search(fields) if event == "sys_enter_futex" else None
        if m and int(m.group(2), 16) & FUTEX_CMD_MASK in (FUTEX_WAIT, FUTEX_WAIT_BITSET):
            waits[m.group(1)] += 1
            tids[m.group(1)].add(tid)
    return [{"word": w, "name": names.get(w, "?"), "waits_per_request": n / traced,
             "threads": len(tids[w])} for w, n in waits.most_common(8)]


def model(args) -> dict:
    """The host-preset model's switches per request by cause, same workload."""
    row = simulate_point(args.arch, "host", args.rate, workload="closed",
                         connections=args.connections, threads=args.threads,
                         requests=args.model_requests, seed=1, file_sizes=args.file_set)
    own = row.get("pool_wakeups_per_request", row.get("wakeups_per_request", 0.0))
    per = {"own lock": own,
           "gil cond": row["gil_cond_waits_per_request"],
           "gil mutex": row["gil_mutex_waits_per_request"],
           "preempted": row["involuntary_per_s"] / row["rps"]}
    total = row["reschedules_per_request"]
    per["other"] = max(0.0, total - sum(per.values()))
    per["other lock"] = 0.0
    return {"rps": row["rps"], "per_request": per, "total": total}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="thread-per-request",
                        choices=("thread-per-request", "staged"))
    parser.add_argument("--rate", type=float, default=None,
                        help="offered requests/s (default: unpaced, saturation)")
    parser.add_argument("--seconds", type=float, default=2.0, help="traced window")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--file-set", default="specweb99", choices=sorted(fileset.FILE_SETS))
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--model-requests", type=int, default=6000)
    parser.add_argument("--out", type=Path, help="write both breakdowns as JSON here")
    args = parser.parse_args(argv)
    real, sim = record(args), model(args)
    load = f"at {args.rate:g}/s" if args.rate else "at saturation"
    print(f"{args.arch} server {load}: real {real['rps']:,.0f} requests/s (traced), "
          f"model {sim['rps']:,.0f}\n")
    print(f"{'switches per request':22s} {'real':>8s} {'model':>8s}")
    for cause in CAUSES:
        print(f"{cause:22s} {real['per_request'][cause]:8.3f} {sim['per_request'][cause]:8.3f}")
    print(f"{'total':22s} {real['traced_total']:8.3f} {sim['total']:8.3f}")
    print(f"(the server's own counters over the traced window: "
          f"{real['server_counters_total']:.3f} per request)")
    print(f"\nreal, per thread group: {'  '.join(f'{c:>10s}' for c in CAUSES)}")
    for g, per in real["per_group"].items():
        print(f"{g:22s} {'  '.join(f'{per[c]:10.3f}' for c in CAUSES)}")
    print("\npreemptions per request, by the thread switched to:")
    for pair, n in sorted(real["preempted_by"].items(), key=lambda kv: -kv[1]):
        print(f"  {pair:40s} {n:7.3f}")
    print("\nfutex words waited on most (waits per request, waiting threads):")
    for w in real["words"]:
        print(f"  {w['word']} {w['name']:10s} {w['waits_per_request']:7.3f} {w['threads']:3d}")
    if args.out:
        write_json_atomic(args.out, {"kind": "gil-audit", **host_info(), "git": git_commit(),
                                     "when": now_iso(), "args": vars(args) | {"out": None},
                                     "real": real, "model": sim})
    return 0


if __name__ == "__main__":
    sys.exit(main())
