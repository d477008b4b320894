"""Why the state-group worker wakes, with a connection per request: the real worker traced.

Runs the real state-group server on CPU 0 and paced wrk (``Connection: close``) on CPU 1 and
traces the worker with bpftrace (as root; bpftrace on CPU 1), after an untraced wrk run on the
same server whose sleeps per request (``/server-status``) show what the probes change.  The
trace is cut into *wake cycles*, each from one return of a blocking ``epoll_wait`` (a sleep) to
the next blocking call.  For each cycle: what woke the worker (the events that sleep returned:
the listener - a new connection -, a connection readable - request bytes, or its client's end
of file -, or only writable), how long the wake-up took (``sched_waking``, in the waker, to the
worker running: the IPI and the idle exit included), how long the worker then ran, how long it
had slept before, and the passes, accepts and sends it made (counted in the kernel: two lines
a cycle, so the probes slow the worker little).  It prints totals per request, medians per
cycle, and the busy time of the cycles that accepted one connection and sent nothing, by the
sleep before them.  ``--race`` traces the reconnect race instead (the worker's last send, its
sleep, wrk's connect, the handshake done: benchmarks/sg_reconnect_race.py's probes and
account), ``--tail`` what the worker does between its last send and its sleep.
``benchmarks/sg_wake_model.py`` prints the same account for the model.

    python benchmarks/sg_wake_causes.py 2000 5000
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script, too

from arch_sim.argtypes import OneLineParser, positive_float  # noqa: E402
from arch_sim.harness.wrk import run_wrk  # noqa: E402
from benchmarks.sg_reconnect_race import PROBES as RACE_PROBES  # noqa: E402 (the reconnect race)
from benchmarks.sg_reconnect_race import bpftrace, race, traced_worker  # noqa: E402

# a blocking epoll_wait's events: struct epoll_event is packed on x86-64 (u32 events, u64 data;
# Python's epoll keeps the fd in data), 12 bytes each; the first 8 events are printed raw
PROBES = r"""
tracepoint:sched:sched_waking /args->pid == $1/ { @wk = nsecs; }
tracepoint:sched:sched_switch /args->next_pid == $1 && @wk/ { @lat = nsecs - @wk; @wk = 0; }
tracepoint:syscalls:sys_enter_epoll_wait /pid == $1/ {
  @evp = args->events; @blk = args->timeout != 0;
  if (args->timeout != 0) {
    printf("%llu SLEEP %d %d %d %llu %llu\n", nsecs, @passes, @acc, @sends, @sends ? nsecs - @ls : 0, @pe ? nsecs - @pe : 0);
    @passes = 0; @acc = 0; @sends = 0; @pe = 0;
  } else { @passes++; }
}
tracepoint:syscalls:sys_exit_epoll_wait /pid == $1 && !@blk/ { @pe = nsecs; }
tracepoint:syscalls:sys_exit_epoll_wait /pid == $1 && @blk && args->ret > 0/ {
  printf("%llu WOKE %d %d %r\n", nsecs, args->ret, @lat, buf(uptr(@evp), 96)); @lat = 0;
}
tracepoint:syscalls:sys_exit_accept4 /pid == $1 && args->ret >= 0/ { @acc++; }
tracepoint:syscalls:sys_enter_accept4 /pid == $1 && !@seen/ { printf("%llu LISTEN %d\n", nsecs, args->fd); @seen = 1; }
tracepoint:syscalls:sys_exit_sendto /pid == $1/ { @sends++; @ls = nsecs; }
tracepoint:syscalls:sys_exit_sendmsg /pid == $1/ { @sends++; @ls = nsecs; }
tracepoint:syscalls:sys_exit_sendfile64 /pid == $1/ { @sends++; @ls = nsecs; }
"""  # noqa: E501  (bpftrace lines)


# what the worker does between its last send and its sleep: sends, closes (enter and exit),
# non-blocking polls (one a pass), accepts, recvs, sleeps
TAIL_PROBES = r"""
tracepoint:syscalls:sys_enter_epoll_wait /pid == $1/ { printf("%llu %s\n", nsecs, args->timeout != 0 ? "SLEEP" : "POLL"); }
tracepoint:syscalls:sys_enter_sendto /pid == $1/ { printf("%llu SEND\n", nsecs); }
tracepoint:syscalls:sys_enter_sendfile64 /pid == $1/ { printf("%llu SEND\n", nsecs); }
tracepoint:syscalls:sys_enter_sendmsg /pid == $1/ { printf("%llu SEND\n", nsecs); }
tracepoint:syscalls:sys_enter_close /pid == $1/ { printf("%llu CLOSE\n", nsecs); }
tracepoint:syscalls:sys_exit_close /pid == $1/ { printf("%llu CLOSED\n", nsecs); }
tracepoint:syscalls:sys_exit_accept4 /pid == $1/ { printf("%llu ACCEPT\n", nsecs); }
tracepoint:syscalls:sys_enter_recvfrom /pid == $1/ { printf("%llu RECV\n", nsecs); }
"""  # noqa: E501  (bpftrace lines)


def tail(lines: list[str]) -> dict[str, float]:
    """Medians (us) over the sleeps after a send with no accept in between: from the last send
    to the first close, the close calls' own time, from the last close's return to the sleep,
    and the passes (non-blocking polls) in that tail."""
    events = sorted((int(t), kind) for t, kind in (line.split()[:2] for line in lines
                                                   if line[:1].isdigit()))
    rows = []
    last_send, seen = None, []
    for t, kind in events:
        if kind == "SEND":
            last_send, seen = t, []
        elif kind == "SLEEP":
            kinds = [k for _, k in seen]
            if last_send is not None and "ACCEPT" not in kinds and "CLOSE" in kinds:
                opened = [u for u, k in seen if k == "CLOSE"]
                shut = [u for u, k in seen if k == "CLOSED"]
                in_close = sum(b - a for a, b in zip(opened, shut, strict=False))
                rows.append(((opened[0] - last_send) / 1e3, in_close / 1e3,
                             (t - shut[-1]) / 1e3 if shut else float("nan"),
                             kinds.count("POLL"), (t - last_send) / 1e3, kinds.count("CLOSE"),
                             kinds.count("RECV")))
            last_send, seen = None, []
        elif last_send is not None:
            seen.append((t, kind))
    names = ("to_first_close_us", "in_close_us", "after_close_us", "polls", "send_to_sleep_us",
             "closes", "recvs")
    return {"sleeps": len(rows), **{n: median([r[i] for r in rows])
                                    for i, n in enumerate(names)}}


EPOLLIN, EPOLLOUT, EPOLLRDHUP, EPOLLHUP = 0x1, 0x4, 0x2000, 0x10


def decode_events(count: int, raw: str) -> list[tuple[int, int]]:
    """(fd, mask) of the first events of an ``epoll_wait`` from bpftrace's ``%r`` text."""
    data = raw.encode("latin-1").decode("unicode_escape").encode("latin-1")
    out = []
    for i in range(min(count, len(data) // 12)):
        chunk = data[12 * i:12 * i + 12]
        out.append((int.from_bytes(chunk[4:8], "little"), int.from_bytes(chunk[:4], "little")))
    return out


def cause(events: list[tuple[int, int]], listen_fd: int) -> str:
    """What woke the worker: the listener, request bytes (or an end of file), or only room to
    write (a new connection's first EPOLLOUT edge)."""
    if any(fd == listen_fd for fd, _ in events):
        return "listener"
    if any(mask & (EPOLLRDHUP | EPOLLHUP) for _, mask in events):
        return "eof"
    if any(mask & EPOLLIN for _, mask in events):
        return "bytes"
    return "writable"


def cycles(lines: list[str]) -> list[dict]:
    """The wake cycles of a trace (see the module docstring), in time order."""
    events = []
    for line in lines:
        parts = line.split(" ", 2)
        if len(parts) > 1 and parts[0].isdigit():
            rest = parts[2] if len(parts) > 2 else ""  # WOKE's raw events may hold spaces
            args = rest.split(" ", 2) if parts[1] == "WOKE" else rest.split()
            events.append((int(parts[0]), parts[1], args))
    events.sort(key=lambda e: e[0])
    listen_fd = next((int(a[0]) for _, k, a in events if k == "LISTEN"), -1)
    out: list[dict] = []
    cur: dict | None = None
    slept_at = None
    for t, kind, args in events:
        if kind == "WOKE":
            evs = decode_events(int(args[0]), args[2] if len(args) > 2 else "")
            latency = int(args[1]) / 1e3 if int(args[1]) > 0 else None
            cur = {"start": t, "cause": cause(evs, listen_fd), "events": int(args[0]),
                   "latency_us": latency,
                   "idle_us": (t - slept_at) / 1e3 if slept_at is not None else None}
        elif kind == "SLEEP" and cur is None:
            slept_at = t
        elif kind == "SLEEP" and cur is not None:
            cur["busy_us"] = (t - cur["start"]) / 1e3
            cur["passes"] = int(args[0]) + 1
            cur["accepts"] = int(args[1])
            cur["sends"] = int(args[2])
            cur["after_send_us"] = int(args[3]) / 1e3 if int(args[2]) else None
            cur["empty_pass_us"] = int(args[4]) / 1e3 if int(args[4]) else None
            out.append(cur)
            cur = None
            slept_at = t
    return out


IDLE_EDGES_US = (0.0, 100.0, 300.0, 1000.0, 3000.0, float("inf"))


def by_idle(rows: list[dict]) -> dict[str, float]:
    """Median busy time of the cycles that accepted one connection and sent nothing, by how
    long the worker slept before them (us): how much slower a cold wake-up's work runs."""
    out = {}
    one = [r for r in rows if r["accepts"] == 1 and not r.get("sends") and r.get("idle_us")]
    for lo, hi in zip(IDLE_EDGES_US, IDLE_EDGES_US[1:], strict=False):
        busy = [r["busy_us"] for r in one if lo <= r["idle_us"] < hi]
        out[f"accept1_after_{lo:g}us_n"] = float(len(busy))
        out[f"accept1_after_{lo:g}us_busy"] = median(busy)
    return out


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if values else float("nan")


def summary(rows: list[dict], requests: int) -> dict[str, float]:
    """Per request: wake cycles by cause, passes, accepts; per cycle: medians and means."""
    n = max(requests, 1)
    out: dict[str, float] = {"cycles_per_request": len(rows) / n}
    for what in ("listener", "bytes", "eof", "writable"):
        out[f"woken_{what}_per_request"] = sum(r["cause"] == what for r in rows) / n
    for what in ("passes", "accepts"):
        out[f"{what}_per_request"] = sum(r[what] for r in rows) / n
    out["accepts_per_accepting_cycle"] = (sum(r["accepts"] for r in rows)
                                          / max(1, sum(r["accepts"] > 0 for r in rows)))
    lat = [r["latency_us"] for r in rows if r["latency_us"] is not None]
    out["wake_latency_us_median"] = median(lat)
    out["wake_latency_us_mean"] = sum(lat) / len(lat) if lat else float("nan")
    out["busy_us_median"] = median([r["busy_us"] for r in rows])
    out["busy_us_mean"] = sum(r["busy_us"] for r in rows) / max(1, len(rows))
    out["accepts_per_cycle"] = sum(r["accepts"] for r in rows) / max(1, len(rows))
    out["sends_per_request"] = sum(r["sends"] for r in rows) / n
    only_accepts = [r for r in rows if r["accepts"] and not r["sends"]]
    only_sends = [r for r in rows if r["sends"] and not r["accepts"]]
    out["accept_only_cycles_per_request"] = len(only_accepts) / n
    out["accept_only_busy_us_median"] = median([r["busy_us"] for r in only_accepts])
    out["accept_only_accepts"] = sum(r["accepts"] for r in only_accepts) / max(1, len(only_accepts))
    out["send_only_cycles_per_request"] = len(only_sends) / n
    out["send_only_busy_us_median"] = median([r["busy_us"] for r in only_sends])
    out.update(by_idle(rows))
    out["after_last_send_us_median"] = median([r["after_send_us"] for r in rows
                                               if r["after_send_us"] is not None])
    out["empty_pass_us_median"] = median([r["empty_pass_us"] for r in rows
                                          if r["empty_pass_us"] is not None])
    return out


def measure(rate: float, seconds: int = 3, probes_text: str = PROBES) -> dict[str, float]:
    """One server: an untraced wrk run (its sleeps per request from ``/server-status``, to see
    what the probes cost), then a traced one."""
    with tempfile.TemporaryDirectory() as tmp:
        probes = Path(tmp) / "wake.bt"
        probes.write_text(probes_text)
        with traced_worker(Path(tmp)) as (proc, files, pid):
            run_wrk(proc.url, files.urls, 64, 1, rate, (1,), False, 1, weights=files.weights)
            before = proc.status()["workers"][0]
            run_wrk(proc.url, files.urls, 64, seconds, rate, (1,), False, 3,
                    weights=files.weights)
            after = proc.status()["workers"][0]
            untraced = ((after["sleeps"] - before["sleeps"])
                        / max(after["requests"] - before["requests"], 1))
            log = Path(tmp) / "wake.log"
            with log.open("w") as sink:
                trace = bpftrace(probes, pid, sink)
                time.sleep(3.0)  # bpftrace attaches
                before = proc.status()["workers"][0]
                run_wrk(proc.url, files.urls, 64, seconds, rate, (1,), False, 2,
                        weights=files.weights)
                after = proc.status()["workers"][0]
                trace.terminate()
                trace.wait()
            lines = log.read_text(encoding="latin-1").splitlines()
    requests = after["requests"] - before["requests"]
    out: dict[str, float] = {}
    if probes_text is TAIL_PROBES:
        out.update({f"tail_{k}": float(v) for k, v in tail(lines).items()})
    if probes_text is RACE_PROBES:
        out.update({f"race_{k}": float(v) for k, v in race(lines).items()})
    rows = cycles(lines)
    out |= {"rate": rate, "requests": float(requests), "untraced_sleeps_per_request": untraced,
           "sleeps_per_request": (after["sleeps"] - before["sleeps"]) / max(requests, 1)}
    if probes_text is PROBES:
        out.update(summary(rows, requests))
    return out


def main(argv: list[str]) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("rates", nargs="*", type=positive_float, metavar="RATE",
                        default=[2000.0, 5000.0],
                        help="offered requests/s, one traced run each (default 2000 5000)")
    parser.add_argument("--seconds", type=int, default=3, help="traced wrk run (default 3)")
    parser.add_argument("--race", action="store_true",
                        help="trace the reconnect race instead (sends, sleeps, connects)")
    parser.add_argument("--tail", action="store_true",
                        help="trace what the worker does from its last send to its sleep")
    args = parser.parse_args(argv)
    probes = RACE_PROBES if args.race else TAIL_PROBES if args.tail else PROBES
    for rate in args.rates:
        row = measure(rate, args.seconds, probes)
        print("  ".join(f"{k}={v:.3g}" for k, v in row.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
