"""Reschedules per request in the middle of a wrk run beside a whole bench window.

    .venv/bin/python benchmarks/midrun.py --arch staged --rate 100 --connections 64 --window 3
        [--rate 100,2000,max] [--lead 1] [--tail 1] [--rounds 3] [--connection close]
        [--warmup 1] [--file-set specweb99] [--threads 64] [--out FILE]

``arch-sim bench`` reads a server's counters around one whole wrk run, so every window it
measures holds that run's start and end: wrk opens its keep-alive connections when it starts
(each one accepted by the server) and closes them when it stops.  This script splits that
window from the steady state.  Per round, side by side on the same server (our server on CPU
0, wrk on CPU 1):

    bench   the server's /server-status counters around one wrk run of ``--window`` seconds,
            as ``arch-sim bench`` takes them (per request: wrk's count, as bench divides)
    midrun  one wrk run of lead + window + tail seconds, the counters read at t = lead and at
            t = lead + window: no connection opens or closes inside (keep-alive), so what is
            left is the steady state (per request: the server's own count in that span)

The two kinds alternate in order from round to round, so a slow drift of the shared machine
touches both alike.  Reschedules are the server's getrusage (voluntary + involuntary) as its
/server-status reports them.  The mid-run window is also split by thread group - the threads'
kernel names (``comm``) without a trailing ``-N``, so the staged server's ``send_data-0`` ..
``send_data-3`` are one group - from each live thread's ``/proc/PID/task/TID/schedstat`` (CPU
time on the CPU) and ``status`` (voluntary and involuntary switches): where the steady state's
switches and CPU go, per request.
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from arch_sim import threadcpu
from arch_sim.argtypes import LIST_HELP, ListAction, OneLineParser, positive_float, positive_int
from arch_sim.harness import fileset, servers
from arch_sim.harness.plan import load_item
from arch_sim.harness.wrk import WrkError, WrkResult, find_wrk, run_wrk
from arch_sim.runinfo import git_commit, host_info, now_iso, write_json_atomic

KINDS = ("bench", "midrun")
_SUFFIX = re.compile(r"-\d+$")
MODES = ("keep-alive", "close")


@dataclass
class Window:
    """Counter increments over one measured span."""

    kind: str
    requests: int  # the divisor: wrk's count (bench) or the server's (midrun)
    server_requests: int
    voluntary: int
    involuntary: int
    seconds: float
    groups: dict[str, list[float]] | None = None  # name -> [cpu us, voluntary, involuntary]

    @property
    def per_request(self) -> float:
        return (self.voluntary + self.involuntary) / max(self.requests, 1)


def counters(status: dict) -> tuple[int, int, int]:
    """(requests, voluntary, involuntary) from a /server-status reply."""
    return (int(status["requests"]), int(status["voluntary_ctxt_switches"]),
            int(status["involuntary_ctxt_switches"]))


def group_of(comm: str) -> str:
    """A thread's group: its kernel name without a trailing ``-N`` (``send_data-3``)."""
    return _SUFFIX.sub("", comm)


def thread_counts(pids: list[int]) -> dict[int, tuple[str, int, int, int]]:
    """Every live thread of ``pids``: tid -> (group, CPU ns, voluntary, involuntary)."""
    return {tid: (group_of(name), *rest)
            for tid, (name, *rest) in threadcpu.thread_counts(pids).items()}


def by_group(before: dict[int, tuple[str, int, int, int]],
             after: dict[int, tuple[str, int, int, int]], requests: int) -> dict[str, list[float]]:
    """Per thread group, per request: [CPU us, voluntary, involuntary] between two
    :func:`thread_counts` (a thread that started meanwhile counts from zero)."""
    out: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0])
    n = max(requests, 1)
    for tid, (group, run_ns, vol, inv) in after.items():
        _, run0, vol0, inv0 = before.get(tid, (group, 0, 0, 0))
        cell = out[group]
        cell[0] += (run_ns - run0) / 1e3 / n
        cell[1] += (vol - vol0) / n
        cell[2] += (inv - inv0) / n
    return dict(out)


def window(kind: str, before: dict, after: dict, requests: int | None,
           seconds: float) -> Window:
    """The increments between two /server-status replies (``requests`` None: the server's)."""
    (r0, v0, i0), (r1, v1, i1) = counters(before), counters(after)
    served = r1 - r0
    return Window(kind, served if requests is None else requests, served, v1 - v0, i1 - i0,
                  seconds)


class Runner:
    """One server under the two kinds of window."""

    def __init__(self, server: servers.ServerProcess, fs: fileset.FileSet,
                 args: argparse.Namespace) -> None:
        self.server, self.fs, self.args = server, fs, args

    def wrk(self, rate: float | None, seconds: float, seed: int) -> WrkResult:
        a = self.args
        return run_wrk(self.server.url, self.fs.urls, a.connections, seconds, rate, cpus=[1],
                       keep_alive=a.connection == "keep-alive", seed=seed,
                       weights=self.fs.weights)

    def bench(self, rate: float | None, seed: int) -> Window:
        before = self.server.status()
        result = self.wrk(rate, self.args.window, seed)
        after = self.server.status()
        return window("bench", before, after, result.requests, result.duration_s)

    def midrun(self, rate: float | None, seed: int) -> Window:
        a = self.args
        done: list[WrkResult | BaseException] = []

        def load() -> None:
            try:
                done.append(self.wrk(rate, a.lead + a.window + a.tail, seed))
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                done.append(exc)

        thread = threading.Thread(target=load, daemon=True)
        start = time.monotonic()
        thread.start()
        time.sleep(a.lead)
        before, t0 = self.server.status(), time.monotonic()
        pids = list(before.get("pids") or [self.server.pid])
        threads0 = thread_counts(pids)
        time.sleep(max(0.0, start + a.lead + a.window - t0))
        after, t1 = self.server.status(), time.monotonic()
        threads1 = thread_counts(pids)
        thread.join()
        if done and isinstance(done[0], BaseException):
            raise done[0]
        w = window("midrun", before, after, None, t1 - t0)
        w.groups = by_group(threads0, threads1, w.requests)
        return w


def measure(args: argparse.Namespace) -> list[dict]:
    """Every load point, ``--rounds`` interleaved rounds of both kinds each."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="arch-sim-midrun-") as tmp:
        fs = fileset.generate(Path(tmp) / "root", args.file_set)
        with servers.start(args.arch, fs.root, cpus=[0],
                           args=servers.arch_args(args.arch, args.threads, [0])) as server:
            runner = Runner(server, fs, args)
            runner.wrk(None, 1, 0)  # prime the caches
            for rate in args.rate:
                if args.warmup:
                    runner.wrk(rate, args.warmup, 0)
                for rnd in range(args.rounds):
                    kinds = KINDS if rnd % 2 == 0 else KINDS[::-1]
                    for kind in kinds:
                        w = getattr(runner, kind)(rate, args.seed * 1000 + rnd)
                        rows.append({"rate": rate, "round": rnd, **vars(w),
                                     "per_request": w.per_request})
                        server.check_alive()
    return rows


def table(rows: list[dict], rates: list[float | None]) -> str:
    """Mean reschedules per request per load and kind (min-max over the rounds)."""
    out = [f"{'load':>7s} {'bench':>14s} {'midrun':>14s} {'ratio':>6s} {'req/s':>8s}"
           f" {'vol/req mid':>11s} {'inv/req mid':>11s}"]
    for rate in rates:
        cells, means = [], {}
        for kind in KINDS:
            vals = [r["per_request"] for r in rows if r["rate"] == rate and r["kind"] == kind]
            means[kind] = statistics.mean(vals)
            cells.append(f"{means[kind]:5.2f} ({min(vals):4.2f}-{max(vals):4.2f})")
        mid = [r for r in rows if r["rate"] == rate and r["kind"] == "midrun"]
        rps = statistics.mean(r["server_requests"] / r["seconds"] for r in mid)
        vol = statistics.mean(r["voluntary"] / max(r["requests"], 1) for r in mid)
        inv = statistics.mean(r["involuntary"] / max(r["requests"], 1) for r in mid)
        ratio = means["midrun"] / means["bench"] if means["bench"] else float("nan")
        label = "max" if rate is None else f"{rate:g}"
        out.append(f"{label:>7s} {cells[0]:>14s} {cells[1]:>14s} {ratio:6.2f} {rps:8,.0f}"
                   f" {vol:11.2f} {inv:11.2f}")
    return "\n".join(out)


def group_table(rows: list[dict], rates: list[float | None]) -> str:
    """The mid-run windows per thread group: CPU us, voluntary, involuntary per request."""
    out = [f"{'load':>7s} {'threads':14s} {'cpu_us':>8s} {'vol':>6s} {'inv':>6s}"]
    for rate in rates:
        mid = [r for r in rows if r["rate"] == rate and r["kind"] == "midrun" and r["groups"]]
        names = sorted({g for r in mid for g in r["groups"]})
        label = "max" if rate is None else f"{rate:g}"
        for g in names:
            cells = [statistics.mean(r["groups"].get(g, [0.0] * 3)[i] for r in mid)
                     for i in range(3)]
            if any(cells):
                out.append(f"{label:>7s} {g:14s} {cells[0]:8.1f} {cells[1]:6.2f} {cells[2]:6.2f}")
    return "\n".join(out)


def parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="midrun.py", description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="staged", choices=tuple(servers.SERVER_MODULES))
    p.add_argument("--rate", action=ListAction, item=load_item, default=[100.0],
                   metavar="RPS", help=f"offered req/s or 'max' (unpaced), {LIST_HELP}")
    p.add_argument("--connections", type=positive_int, default=64)
    p.add_argument("--connection", default="keep-alive", choices=MODES)
    p.add_argument("--window", type=positive_int, default=3,
                   help="measured seconds (wrk runs whole seconds)")
    p.add_argument("--lead", type=positive_float, default=1.0,
                   help="seconds of the mid-run's wrk before its window")
    p.add_argument("--tail", type=positive_float, default=1.0,
                   help="seconds of the mid-run's wrk after its window")
    p.add_argument("--rounds", type=positive_int, default=3)
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load before a point")
    p.add_argument("--file-set", default="specweb99", choices=fileset.FILE_SETS)
    p.add_argument("--threads", type=positive_int, default=64,
                   help="thread-per-request's pool size")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    if (args.lead + args.window + args.tail) % 1:
        p.error(f"--lead {args.lead:g} + --window + --tail {args.tail:g} must be whole seconds "
                "(wrk runs whole seconds); give e.g. --lead 1 --tail 1")
    if args.warmup < 0:
        p.error(f"--warmup {args.warmup:g} must be >= 0")
    try:
        find_wrk()
    except WrkError as exc:
        print(f"midrun.py: error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    rows = measure(args)
    mode = args.connection
    print(f"{args.arch}, {mode}, {args.connections} connections, {args.window} s windows, "
          f"{args.rounds} rounds: reschedules per request (mean, min-max)")
    print(table(rows, args.rate))
    print("\nmid-run windows by thread group, per request (the server's live threads)")
    print(group_table(rows, args.rate))
    if args.out:
        write_json_atomic(args.out, {"kind": "midrun", **host_info(), "git": git_commit(),
                                     "when": now_iso(), "args": vars(args) | {"out": None},
                                     "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
