"""What the staged server's hand-offs cost its threads, from each thread's own CPU clock.

A staged thread's loop is ``get()`` from its queue, its state's work, ``put()`` onto the next
queue (wait_headers: ``epoll.poll()`` instead of ``get()``).  The model
(arch_sim/models/staged.py) charges a blocking ``get()`` its Python around the wait
(``queue_wait_us``) and the blocking acquire's own CPU (``futex_wait_us``), a ``put()`` that
wakes a thread the futex wake (``wake_us``) and the rest of its way back (``wake_extra_us``),
and a poll that sleeps ``poll_wait_us``.  :func:`measure` runs the real server (on the server's
CPU; wrk unpaced with keep-alive on the client's) with those calls wrapped in two reads of the
calling thread's CPU clock (``CLOCK_THREAD_CPUTIME_ID``, docs/SOURCES.md [LX-thread-cputime]), in
a child of its own (``python -m arch_sim.handoffs --serve``), and sums per thread and call:

    get_ready   a ``get()`` that found an item (no sleep)
    get_block   a ``get()`` that found the queue empty and slept, split at the condition's wait:
                ``pre`` (``Condition.wait``'s set-up, the GIL held), ``wait`` (the blocking
                acquire: drop the GIL, futex wait, the switches, the wake-up, take the GIL back)
                and ``post`` (re-lock the queue, take the item, the GIL held)
    put_wake    a ``put()`` that woke a thread asleep on the queue; ``put_nowake`` one that did not
    poll        wait_headers' ``epoll.poll()`` calls

The split at the wait comes from wrapping the lock ``Condition.wait`` allocates
(``threading._allocate_lock``): its second acquire is the wait.  Each timed span holds about one
clock read of its own; the child times one (``clock_read_ns``) so it can be taken out.
:func:`preset_costs` turns a measurement into the model's four costs.  The wrappers add CPU of
their own, so the server runs a little slower than untimed; the costs are per call, not per
request.
"""

from __future__ import annotations

import glob
import json
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from real_servers.core.lifecycle import LOGGING, NAMES, SEND_DATA, WAIT_HEADERS

KEYS = ("get_ready", "get_block", "pre", "wait", "post", "put_wake", "put_nowake", "poll")
#: the stage threads whose calls are timed (thread names: the state's name, a dash, a number)
POLLER, LOGGER = NAMES[WAIT_HEADERS], NAMES[LOGGING]
GROUPS = (POLLER, NAMES[SEND_DATA], LOGGER)


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
    read_ns = clock_read_ns(clock)

    def snapshot() -> None:
        proc: dict[str, int] = defaultdict(int)
        for comm, ns, *_ in threadcpu.thread_counts([os.getpid()]).values():
            proc[comm] += ns
        out = {"sums": {t: dict(k) for t, k in list(sums.items())}, "proc": proc,
               "clock_read_ns": read_ns}
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


def clock_read_ns(clock=time.thread_time_ns, reads: int = 20000) -> float:
    """One read of the thread's CPU clock, in ns: the span between two reads back to back."""
    best = float("inf")
    for _ in range(5):
        t0 = clock()
        for _ in range(reads):
            clock()
        best = min(best, (clock() - t0) / reads)
    return best


# -- the driver ------------------------------------------------------------------------------

def run(seconds: float = 2.0, server_cpu: int = 0, client_cpu: int = 1,
        file_set: str = "specweb99", connections: int = 64, warmup: float = 1.0,
        rate: float | None = None) -> dict[str, Any]:
    """One run: the timed server on ``server_cpu``, wrk on ``client_cpu`` (unpaced, or paced at
    ``rate``); the two snapshots of the sums around ``seconds``."""
    from arch_sim.harness import fileset, loaded, servers

    with tempfile.TemporaryDirectory(prefix="arch-sim-handoffs-") as tmp:
        fs = fileset.generate(Path(tmp, "root"), file_set)
        snaps = str(Path(tmp, "snap"))
        cmd = [sys.executable, "-m", "arch_sim.handoffs", "--serve", snaps, "--", "--root",
               str(fs.root), "--port", "0"]
        with servers.launch("staged-handoffs", cmd, cpus=[server_cpu]) as server, \
                loaded.wrk_load(server, fs, seconds=seconds, warmup=warmup,
                                client_cpu=client_cpu, connections=connections, rate=rate):
            for pause in (seconds, 0.5):
                Path(snaps + ".go").write_text("")
                time.sleep(pause)
        files = sorted((f for f in glob.glob(snaps + ".*") if not f.endswith(".go")),
                       key=lambda f: int(f.rsplit(".", 1)[1]))
        if len(files) < 2:
            raise RuntimeError(f"the timed staged server wrote {len(files)} of its 2 "
                               f"snapshots (exit code {server.proc.returncode})")
        before, after = (json.loads(Path(f).read_text()) for f in files[:2])
    return {"before": before, "after": after}


def summarize(run_: dict[str, Any]) -> dict[str, Any]:
    """A run's increments per thread group: for each call kind, total us and calls; each
    group's CPU (us, schedstat); the requests (the logging thread's gets); one clock read."""
    before, after = run_["before"], run_["after"]
    calls: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
    cpu: dict[str, float] = defaultdict(float)
    for thread, keys in after["sums"].items():
        group = thread.rsplit("-", 1)[0]
        for key, (ns, n) in keys.items():
            ns0, n0 = before["sums"].get(thread, {}).get(key, (0, 0))
            calls[group][key][0] += (ns - ns0) / 1e3
            calls[group][key][1] += n - n0
    for comm, ns in after["proc"].items():
        cpu[comm.rsplit("-", 1)[0]] += (ns - before["proc"].get(comm, 0)) / 1e3
    requests = sum(n for key, (_, n) in calls[LOGGER].items() if key.startswith("get_"))
    return {"requests": int(requests),
            "calls": {g: {k: [round(us, 3), int(n)] for k, (us, n) in calls[g].items()}
                      for g in GROUPS if g in calls},
            "cpu_us": {g: round(cpu[g], 3) for g in GROUPS if g in cpu},
            "clock_read_us": float(after.get("clock_read_ns", 0.0)) / 1e3}


def measure(seconds: float = 2.0, server_cpu: int = 0, client_cpu: int = 1,
            file_set: str = "specweb99", connections: int = 64,
            warmup: float = 1.0) -> dict[str, Any]:
    """calibrate's measurement: one unpaced run, summarized (:func:`summarize`)."""
    found = summarize(run(seconds, server_cpu, client_cpu, file_set, connections, warmup))
    if found["requests"] <= 0 or LOGGER not in found["calls"]:
        raise RuntimeError("the timed staged server answered no request")
    return found


def _mean(found: dict[str, Any], groups: tuple[str, ...], key: str) -> float | None:
    """The mean us of one ``key`` call over ``groups``, or None if none was made."""
    us = sum(found["calls"].get(g, {}).get(key, [0.0, 0])[0] for g in groups)
    n = sum(found["calls"].get(g, {}).get(key, [0.0, 0])[1] for g in groups)
    return us / n if n else None


def preset_costs(found: dict[str, Any], switch_us: float, wake_us: float
                 ) -> dict[str, tuple[float, str]]:
    """The model's hand-off costs from a measurement, each with what it is made of: the
    logging thread's blocking gets (its Python before and after the wait; the wait, less the
    switch the model charges itself), the puts that woke a thread against those that did not
    (less the futex wake), wait_headers' polls (less the switch); each span's own clock read
    taken out.  A cost whose calls were not seen is left out."""
    clock = float(found.get("clock_read_us", 0.0))
    out: dict[str, tuple[float, str]] = {}
    pre, post = _mean(found, (LOGGER,), "pre"), _mean(found, (LOGGER,), "post")
    wait = _mean(found, (LOGGER,), "wait")
    if pre is not None and post is not None:
        out["queue_wait_us"] = (max(0.0, pre + post - 2 * clock),
                                f"a blocking get()'s Python, {pre:.1f} before the wait and "
                                f"{post:.1f} after")
    if wait is not None:
        out["futex_wait_us"] = (max(0.0, wait - clock - switch_us),
                                f"its blocking acquire's own CPU, {wait:.1f} us, less switch_us")
    woke, not_woke = _mean(found, GROUPS, "put_wake"), _mean(found, GROUPS, "put_nowake")
    if woke is not None and not_woke is not None:
        out["wake_extra_us"] = (max(0.0, woke - not_woke - wake_us),
                                f"a put() that woke a thread took {woke:.1f} us, one that did "
                                f"not {not_woke:.1f}: the rest beyond wake_us")
    poll = _mean(found, (POLLER,), "poll")
    if poll is not None:
        out["poll_wait_us"] = (max(0.0, poll - clock - switch_us),
                               f"wait_headers' epoll.poll(), {poll:.1f} us, less switch_us")
    return out


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    sys.exit(serve(sys.argv[2], sys.argv[4:]))
