"""What the real state-group worker holds each time it goes to sleep, and (with
``--wrk-passes``) how wrk's loop runs meanwhile.

Builds a real :class:`~real_servers.stategroup.worker.Worker` in this process on CPU 0 over the
specweb99 file set and runs wrk (64 connections, unpaced unless ``--rate``) on CPU 1 for a few
seconds.  The worker's epoll object is wrapped: each ``poll`` with a timeout other than 0 - the
worker's sleep, the call it makes when a pass moved nothing - notes the open connections, how
many of them wait in wait_headers for their request, the queues, how long the call took and
what it returned (the listener, a connection).  It prints those at the sleeps of the wrk run,
the worker's passes and busy polls per request, and the state moves per request.  The wrapper
costs the worker a Python call per poll, so its CPU per request is a little above the
server's own.

``--wrk-passes`` (root, bpftrace) also traces wrk's ``epoll_wait`` calls: the events each
returned, how long each waited, and the time between two calls - one pass of wrk's loop
(docs/SOURCES.md [WRK-loop]).  bpftrace runs on CPU 1 beside wrk.

    python benchmarks/sg_dry_sleeps.py --connection close --wrk-passes
"""

from __future__ import annotations

import collections
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, too

from arch_sim.argtypes import OneLineParser, one_of, positive_float, positive_int  # noqa: E402
from arch_sim.harness import fileset, wrk  # noqa: E402
from arch_sim.harness.plan import CONNECTION_MODES  # noqa: E402
from real_servers.stategroup.config import Config  # noqa: E402
from real_servers.stategroup.lifecycle import NAMES, WAIT_HEADERS  # noqa: E402
from real_servers.stategroup.worker import Worker  # noqa: E402

WRK_PASSES_BT = """
tracepoint:syscalls:sys_enter_epoll_wait /comm == "wrk"/ {
  @enter[tid] = nsecs;
  if (@last[tid]) { @pass_us = hist((nsecs - @last[tid]) / 1000); }
}
tracepoint:syscalls:sys_exit_epoll_wait /comm == "wrk" && @enter[tid]/ {
  @events = lhist(args->ret, 0, 66, 6); @wait_us = hist((nsecs - @enter[tid]) / 1000);
  @last[tid] = nsecs; @calls = count(); @returned = sum(args->ret); delete(@enter[tid]);
}
"""

#: a sleeping poll that took longer than this blocked (a wake-up by another CPU takes longer);
#: shorter ones found an event already pending
BLOCKED_US = 20.0


class SleepLog:
    """The worker's epoll, with each blocking ``poll`` noted."""

    def __init__(self, worker: Worker) -> None:
        self.worker, self.epoll = worker, worker.epoll
        self.on = False
        self.sleeps: list[tuple[float, int, int, tuple[int, ...], int, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.epoll, name)

    def poll(self, timeout: float = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        if timeout == 0 or not self.on:
            return self.epoll.poll(timeout, maxevents)
        w = self.worker
        parked = sum(1 for conn in w.conns.values() if conn.state == WAIT_HEADERS)
        held = (len(w.conns), parked, tuple(len(q) for q in w.queues))
        t0 = time.perf_counter()
        events = self.epoll.poll(timeout, maxevents)
        slept = time.perf_counter() - t0
        listener = sum(1 for fd, _ in events if fd == w.listen_fd)
        self.sleeps.append((slept, *held, len(events), listener))
        return events


def percentiles(values: list[float], qs: tuple[float, ...] = (0.1, 0.5, 0.9, 0.99)) -> str:
    s = sorted(values)
    return " / ".join(f"{s[int(q * (len(s) - 1))]:.1f}" for q in qs)


def run(connection: str, rate: float | None, duration: int, wrk_passes: bool) -> None:
    root = tempfile.mkdtemp(prefix="arch-sim-dry-")
    tracer = None
    try:
        files = fileset.generate(root)
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1024)
        port = listener.getsockname()[1]
        os.sched_setaffinity(0, {0})
        worker = Worker(Config(root=root), listener)
        log = SleepLog(worker)
        worker.epoll = log
        thread = threading.Thread(target=worker.serve, daemon=True)
        thread.start()
        if wrk_passes:
            tracer = subprocess.Popen(["taskset", "-c", "1", "bpftrace", "-e", WRK_PASSES_BT],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True)
            time.sleep(3.0)  # bpftrace attaches its probes
        before = (worker.requests, worker.passes, worker.busy_polls, list(worker.moved))
        log.on = True
        result = wrk.run_wrk(f"http://127.0.0.1:{port}", files.urls, connections=64,
                             duration=duration, rate=rate, cpus=(1,),
                             keep_alive=connection == "keep-alive", weights=files.weights)
        log.on = False
        n = max(1, worker.requests - before[0])
        worker.request_stop()
        thread.join(timeout=5)
        print(f"{connection}, {'unpaced' if rate is None else f'{rate:g} requests/s'}: "
              f"{n} requests ({n / duration:.0f}/s; wrk {result.requests / duration:.0f}/s)")
        print(f"  passes {(worker.passes - before[1]) / n:.4f} a request, busy polls "
              f"{(worker.busy_polls - before[2]) / n:.4f}, sleeps {len(log.sleeps) / n:.4f}")
        moved = [(a - b) / n for a, b in zip(worker.moved, before[3], strict=True)]
        print("  moved out of each state a request: "
              + ", ".join(f"{name} {m:.3f}" for name, m in zip(NAMES, moved, strict=True)))
        if not log.sleeps:
            print("  the worker never slept")
            return
        slept = [s[0] * 1e6 for s in log.sleeps]
        print(f"  a sleep, us (10/50/90/99%): {percentiles(slept)}; asleep "
              f"{sum(slept) / 1e6 / duration:.1%} of the run; {sum(u > BLOCKED_US for u in slept)} "
              f"of the {len(slept)} calls took over {BLOCKED_US:g} us (the others found an event "
              "pending and did not block)")
        print(f"  open connections at a sleep (10/50/90/99%): "
              f"{percentiles([float(s[1]) for s in log.sleeps])}; of them waiting for their "
              f"request: {percentiles([float(s[2]) for s in log.sleeps])}")
        queued = collections.Counter(s[3] for s in log.sleeps).most_common(3)
        print(f"  queues at a sleep ({', '.join(NAMES)}): {queued}")
        woke = collections.Counter((s[4], s[5]) for s in log.sleeps).most_common(5)
        print(f"  woken by (events, of them the listener): {woke}")
    finally:
        if tracer is not None:
            tracer.terminate()
            out, _ = tracer.communicate(timeout=30)
            print("wrk's epoll_wait calls (bpftrace):")
            print(out)
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connection", type=one_of(CONNECTION_MODES), default="close",
                        help="close (a connection per request; default) or keep-alive")
    parser.add_argument("--rate", type=positive_float, default=None,
                        help="offered requests/s (default: unpaced)")
    parser.add_argument("--duration", type=positive_int, default=3,
                        help="seconds of wrk (default 3, at most 30)")
    parser.add_argument("--wrk-passes", action="store_true",
                        help="trace wrk's epoll_wait calls with bpftrace (root)")
    args = parser.parse_args(argv)
    if args.duration > 30:
        parser.error("--duration: at most 30 s")
    if args.wrk_passes and (os.geteuid() != 0 or shutil.which("bpftrace") is None):
        parser.error("--wrk-passes needs root and bpftrace (apt-get install bpftrace)")
    run(args.connection, args.rate, args.duration, args.wrk_passes)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
