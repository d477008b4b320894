"""The state-group worker's race with wrk's reconnect, with a connection per request.

Runs the real state-group server on CPU 0 and paced wrk (``Connection: close``) on CPU 1, and
traces with bpftrace (as root; bpftrace itself on CPU 1): the worker's sends and its blocking
``epoll_wait`` calls, wrk's ``connect`` and the server side of each handshake completing (the
new connection is in the listen queue).  For each reply it prints, as medians: how long the
worker runs after it (until it blocks), how long wrk takes to connect again, and how often
the next connection is queued before the worker blocks - accepted then without a sleep of its
own.  It also prints the worker's sleeps (blocking polls) and voluntary switches per request
from ``/server-status``, to compare with an untraced ``arch-sim bench`` (the probes are few).

    python benchmarks/sg_reconnect_race.py 100 500 2000
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from arch_sim.argtypes import OneLineParser, positive_float
from arch_sim.harness import fileset, servers
from arch_sim.harness.wrk import run_wrk

PROBES = """
tracepoint:syscalls:sys_enter_epoll_wait /pid == $1 && args->timeout != 0/ { printf("%llu SLEEP\\n", nsecs); }
tracepoint:syscalls:sys_enter_sendto /pid == $1/ { printf("%llu SEND\\n", nsecs); }
tracepoint:syscalls:sys_enter_sendfile64 /pid == $1/ { printf("%llu SEND\\n", nsecs); }
tracepoint:syscalls:sys_enter_sendmsg /pid == $1/ { printf("%llu SEND\\n", nsecs); }
tracepoint:syscalls:sys_enter_connect /comm == "wrk"/ { printf("%llu CONNECT\\n", nsecs); }
tracepoint:sock:inet_sock_set_state /args->oldstate == 3 && args->newstate == 1/ { printf("%llu QUEUED\\n", nsecs); }
"""  # noqa: E501  (bpftrace lines)

COUNTERS = ("requests", "sleeps", "voluntary_ctxt_switches")


def race(lines: list[str]) -> dict[str, float]:
    """Medians (us) after each send of: the worker's next blocking poll, wrk's next connect,
    the next handshake done; and the share of sends whose next connection came first."""
    events = sorted((int(t), kind) for t, kind in (line.split() for line in lines
                                                   if line[:1].isdigit()))
    rows = []
    for i, (t, kind) in enumerate(events):
        if kind != "SEND":
            continue
        after: dict[str, int] = {}
        for u, other in events[i + 1:i + 50]:
            if other == "SEND":
                break
            after.setdefault(other, u)
        if len(after) == 3 and after["CONNECT"] < after["QUEUED"]:
            rows.append([(after[k] - t) / 1e3 for k in ("SLEEP", "CONNECT", "QUEUED")])
    if not rows:
        return {"replies": 0}

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    return {"replies": len(rows),
            "worker_runs_us": median([r[0] for r in rows]),
            "wrk_connects_us": median([r[1] for r in rows]),
            "queued_us": median([r[2] for r in rows]),
            "queued_first": sum(r[2] < r[0] for r in rows) / len(rows)}


@contextmanager
def traced_worker(tmp: Path) -> Iterator[tuple[Any, Any, int]]:
    """The state-group server on CPU 0 over a SPECweb99 file set made in ``tmp``: its
    process, the file set and the pid of its one worker (what the probes trace)."""
    files = fileset.generate(tmp / "www", "specweb99")
    with servers.start("state-group", files.root, cpus=[0], args=["--cpus", "0"]) as proc:
        yield proc, files, proc.status()["workers"][0]["pid"]


def bpftrace(probes: Path, pid: int, sink: IO[str]) -> subprocess.Popen:
    """bpftrace running ``probes`` on the worker ``pid``, on wrk's CPU (1) so that it takes
    none of the server's, printing into ``sink``."""
    return subprocess.Popen(["taskset", "-c", "1", "bpftrace", "-q", str(probes), str(pid)],
                            stdout=sink, stderr=subprocess.DEVNULL)


def measure(rate: float, seconds: int = 4) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        probes = Path(tmp) / "race.bt"
        probes.write_text(PROBES)
        with traced_worker(Path(tmp)) as (proc, files, pid):
            run_wrk(proc.url, files.urls, 64, 2, rate, (1,), False, 1, weights=files.weights)
            before = proc.status()["workers"][0]
            log = Path(tmp) / "race.log"
            with log.open("w") as sink:
                trace = bpftrace(probes, pid, sink)
                time.sleep(2.5)  # bpftrace attaches
                run_wrk(proc.url, files.urls, 64, seconds, rate, (1,), False, 2,
                        weights=files.weights)
                trace.terminate()
                trace.wait()
            out = log.read_text().splitlines()
            after = proc.status()["workers"][0]
    got = {k: after[k] - before[k] for k in COUNTERS}
    n = max(got["requests"], 1)
    return {"rate": rate, "sleeps_per_request": got["sleeps"] / n,
            "voluntary_per_request": got["voluntary_ctxt_switches"] / n, **race(out)}


def main(argv: list[str]) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("rates", nargs="*", type=positive_float, metavar="RATE",
                        default=[100.0, 500.0, 2000.0],
                        help="offered requests/s, one traced run each (default 100 500 2000)")
    rates = parser.parse_args(argv).rates
    for rate in rates:
        row = measure(rate)
        print("  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
