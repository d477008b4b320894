"""What the staged server's hand-offs cost its threads, from each thread's own CPU clock.

    .venv/bin/python benchmarks/staged_handoffs.py [--rate 100,max] [--window 4] [--warmup 1.5]
        [--connections 64] [--file-set specweb99]

A staged thread's loop is ``get()`` from its queue, its state's work, ``put()`` onto the next
queue (wait_headers: ``epoll.poll()`` instead of ``get()``).  The model (arch_sim/models/staged.py)
charges a stage's CPU as its state's work and a hand-off only the futex wake (``wake_us``).  This
script runs the real server (on CPU 0; wrk on CPU 1) with those calls wrapped in two reads of the
calling thread's CPU clock (``CLOCK_THREAD_CPUTIME_ID``, docs/SOURCES.md [LX-thread-cputime]), in
this process's own child, and prints per request and per call, by thread group:

    get_ready   a ``get()`` that found an item (no sleep)
    get_block   a ``get()`` that found the queue empty and slept, split at the condition's wait:
                ``pre`` (``Condition.wait``'s set-up, the GIL held), ``wait`` (the blocking
                acquire: drop the GIL, futex wait, the switches, the wake-up, take the GIL back)
                and ``post`` (re-lock the queue, take the item, the GIL held)
    put_wake    a ``put()`` that woke a thread asleep on the queue; ``put_nowake`` one that did not
    poll        wait_headers' ``epoll.poll()`` calls

beside each group's whole CPU from ``/proc/PID/task/TID/schedstat``.  The split at the wait comes
from wrapping the lock ``Condition.wait`` allocates (``threading._allocate_lock``): its second
acquire is the wait.  Each clock read costs about 0.7 us (a system call), so every timed span
holds about that much of the clock's own.  A measurement of mechanism, not a figure for the
README: the wrappers themselves add CPU.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KEYS = ("get_ready", "get_block", "pre", "wait", "post", "put_wake", "put_nowake", "poll")


# -- the server side (a child process: `--serve SNAPSHOTS -- server args`) -------------------

def serve(snapshots: str, argv: list[str]) -> int:
    """The staged server with its queue and poll calls timed; a snapshot of the sums is
    written to ``snapshots.<ns>`` each time someone writes to the fifo ``snapshots.go``."""
    import queue

    from arch_sim import threadcpu
    from real_servers.staged import __main__ as staged_main
    from real_servers.staged.server import StagedServer

    clock = time.thread_time_ns
    sums: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    local = threading.local()

    def add(key: str, ns: int) -> None:
        cell = sums[threading.current_thread().name][key]
        cell[0] += ns
        cell[1] += 1

    real_lock = threading._allocate_lock

    class WaitLock:
        """The lock Condition.wait allocates; its second acquire is the wait."""

        __slots__ = ("lock", "n")

        def __init__(self) -> None:
            self.lock, self.n = real_lock(), 0

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            self.n += 1
            if self.n == 2 and getattr(local, "start", None) is not None:
                local.wait0 = clock()
                try:
                    return self.lock.acquire(blocking, timeout)
                finally:
                    local.wait1 = clock()
            return self.lock.acquire(blocking, timeout)

        def release(self) -> None:
            self.lock.release()

        def locked(self) -> bool:
            return self.lock.locked()

    threading._allocate_lock = WaitLock
    get, put = queue.Queue.get, queue.Queue.put

    def timed_get(self, *args, **kwargs):
        empty = not self.qsize()
        local.wait0 = local.wait1 = None
        start = local.start = clock()
        try:
            return get(self, *args, **kwargs)
        finally:
            end = clock()
            local.start = None
            add("get_block" if empty else "get_ready", end - start)
            if local.wait0 is not None:
                add("pre", local.wait0 - start)
                add("wait", local.wait1 - local.wait0)
                add("post", end - local.wait1)

    def timed_put(self, item, *args, **kwargs):
        sleepers = len(self.not_empty._waiters)
        start = clock()
        try:
            return put(self, item, *args, **kwargs)
        finally:
            add("put_wake" if sleepers else "put_nowake", clock() - start)

    queue.Queue.get, queue.Queue.put = timed_get, timed_put

    class TimedEpoll:
        def __init__(self, epoll) -> None:
            self.epoll = epoll

        def poll(self, *args):
            start = clock()
            try:
                return self.epoll.poll(*args)
            finally:
                add("poll", clock() - start)

        def __getattr__(self, name):
            return getattr(self.epoll, name)

    init = StagedServer.__init__

    def timed_init(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        self.epoll = TimedEpoll(self.epoll)

    StagedServer.__init__ = timed_init

    def snapshot() -> None:
        proc: dict[str, int] = defaultdict(int)
        for comm, ns, *_ in threadcpu.thread_counts([os.getpid()]).values():
            proc[comm] += ns
        out = {"sums": {t: dict(k) for t, k in list(sums.items())}, "proc": proc}
        Path(f"{snapshots}.{time.monotonic_ns()}").write_text(json.dumps(out))

    def on_demand() -> None:
        fifo = snapshots + ".go"
        os.mkfifo(fifo)
        while True:
            with open(fifo) as f:  # blocks without CPU until the driver writes
                f.read()
            snapshot()

    threading.Thread(target=on_demand, daemon=True, name="snapshots").start()
    return staged_main.main(argv)


# -- the driver ------------------------------------------------------------------------------

def measure(rate: float | None, args: argparse.Namespace) -> dict:
    """One run: server on CPU 0, wrk on CPU 1; the sums' increments over ``args.window``."""
    from arch_sim.harness import fileset, loaded, servers

    with tempfile.TemporaryDirectory(prefix="arch-sim-handoffs-") as tmp:
        fs = fileset.generate(Path(tmp, "root"), args.file_set)
        snaps = str(Path(tmp, "snap"))
        cmd = [sys.executable, __file__, "--serve", snaps, "--", "--root", str(fs.root),
               "--port", "0"]
        with servers.launch("staged-handoffs", cmd, cpus=[0]) as server, \
                loaded.wrk_load(server, fs, seconds=args.window, warmup=args.warmup,
                                connections=args.connections, rate=rate):
            for pause in (args.window, 0.5):
                Path(snaps + ".go").write_text("")
                time.sleep(pause)
        files = sorted((f for f in glob.glob(snaps + ".*") if not f.endswith(".go")),
                       key=lambda f: int(f.rsplit(".", 1)[1]))
        if len(files) < 2:
            raise SystemExit(f"staged_handoffs: the server wrote {len(files)} of its 2 "
                             "snapshots (did it die? its exit code: "
                             f"{server.proc.returncode})")
        before, after = (json.loads(Path(f).read_text()) for f in files[:2])
    return {"before": before, "after": after}


def report(rate: float | None, run: dict) -> None:
    before, after = run["before"], run["after"]
    groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
    cpu: dict[str, float] = defaultdict(float)
    for thread, keys in after["sums"].items():
        group = thread.rsplit("-", 1)[0]
        for key, (ns, n) in keys.items():
            ns0, n0 = before["sums"].get(thread, {}).get(key, (0, 0))
            groups[group][key][0] += (ns - ns0) / 1e3
            groups[group][key][1] += n - n0
    for comm, ns in after["proc"].items():
        cpu[comm.rsplit("-", 1)[0]] += (ns - before["proc"].get(comm, 0)) / 1e3
    requests = sum(n for key, (_, n) in groups["logging"].items() if key.startswith("get_"))
    print(f"rate {rate or 'max'}: {requests} requests in the window")
    for group in ("wait_headers", "send_data", "logging"):
        keys = groups.get(group, {})
        parts = [f"{k} {us / n:.1f} us x {n / max(requests, 1):.2f}"
                 for k in KEYS for us, n in [keys.get(k, (0.0, 0))] if n]
        print(f"  {group:13s} {cpu[group] / max(requests, 1):6.1f} us a request | "
              + ", ".join(parts))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve"]:
        return serve(argv[1], argv[3:])
    from arch_sim.argtypes import LIST_HELP, ListAction, OneLineParser, positive_float, positive_int
    from arch_sim.harness import fileset
    from arch_sim.harness.plan import load_item
    from arch_sim.harness.wrk import WrkError, find_wrk

    p = OneLineParser(prog="staged_handoffs.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--rate", action=ListAction, item=load_item, default=[100.0, None],
                   metavar="RPS", help=f"offered req/s or 'max' (unpaced), {LIST_HELP} "
                   "(default 100,max)")
    p.add_argument("--window", type=positive_float, default=4.0,
                   help="seconds measured (default 4)")
    p.add_argument("--warmup", type=positive_float, default=1.5,
                   help="seconds of load before them (default 1.5)")
    p.add_argument("--connections", type=positive_int, default=64)
    p.add_argument("--file-set", default="specweb99", choices=fileset.FILE_SETS)
    args = p.parse_args(argv)
    try:
        find_wrk()
    except WrkError as exc:
        p.error(str(exc))
    for rate in args.rate:
        report(rate, measure(rate, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
