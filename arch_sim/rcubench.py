"""RCU's grace-period kernel thread on the server's CPU, per closed TCP connection, measured
without any HTTP server: the input of :mod:`arch_sim.models.rcu`, written by ``arch-sim
calibrate`` (and ``benchmarks/rcu_grace_periods.py``) into ``PRESET.rcu.json`` beside the preset.

A bare Python process pinned to the server's CPU accepts loopback TCP connections, reads one
byte and closes each; a client on the other CPU opens them at random (Poisson) times at each
rate in turn, sends the byte and closes its end after the server's.  ``perf record -C CPU``
(perf itself on the client's CPU) traces sched_switch on the server's CPU, and every switch into
or out of the grace-period thread (``rcu_preempt``, or ``rcu_sched`` on a kernel without
preemptible RCU) is counted, with its time on the CPU per run.

A closed socket's memory is freed after an RCU grace period (call_rcu), and on this kernel the
grace periods are driven by that thread: it wakes when a grace period is requested, then on a
timer every ``jiffies_till_next_fqs`` jiffies until every CPU has passed a quiescent state
[RCU-gp-kthread].  The model (:class:`arch_sim.models.rcu.GracePeriods`) takes that as: the
first connection closed while no grace period runs starts one of ``gp_ms``; one closed during
it asks for the next, which starts when it ends; the thread runs ``runs_per_gp`` times in each.
For Poisson closes at rate r that makes the thread's switches on the CPU (two per run: into it,
out of it)

    2 * runs_per_gp * r / (r * G + exp(-r * G))       per second (G = gp_ms / 1000)

:func:`fit` picks ``runs_per_gp`` and ``gp_ms`` that fit these bare-socket rates (least squares
on the switches per second); nothing of the HTTP servers' measurements goes in.  Needs root and
perf (:class:`RcuUnavailable` says which is missing).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .harness.cpu_trace import LINE, SWITCH
from .machine_state import pinned
from .runinfo import host_info, now_iso

GP_THREADS = ("rcu_preempt", "rcu_sched")
RATES = (25.0, 50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)
WHAT = "RCU grace-period thread on the server's CPU per closed TCP connection"

ACCEPTOR = """
import os, socket, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(128)
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.recv(1)
    c.close()
"""


class RcuUnavailable(Exception):
    """The measurement cannot run here (no perf, not root); the message names the fix."""


def closes_at(rate: float, seconds: float, port: int, rng: random.Random) -> int:
    """Open, use and close connections at Poisson times at ``rate``/s; how many."""
    n, t_end = 0, time.monotonic() + seconds
    t_next = time.monotonic()
    while True:
        t_next += rng.expovariate(rate)
        if t_next >= t_end:
            break
        pause = t_next - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        with socket.create_connection(("127.0.0.1", port)) as c:
            c.sendall(b"x")
            c.recv(1)  # the server's close
        n += 1
    return n


def gp_thread_switches(text: str, t0: float, t1: float, cpu: int = 0) -> tuple[int, float]:
    """(switches into or out of the grace-period thread on ``cpu`` in [t0, t1] of ``perf
    script`` output, its mean time on the CPU per run in microseconds)."""
    count, ran, runs, since = 0, 0.0, 0, None
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or int(m.group(2)) != cpu or not m.group(4).startswith("sched:sched_switch"):
            continue
        t = float(m.group(3))
        s = SWITCH.search(m.group(5))
        if not s or not t0 <= t <= t1:
            continue
        prev, nxt = s.group(1), s.group(4)
        if prev in GP_THREADS or nxt in GP_THREADS:
            count += 1
        if nxt in GP_THREADS:
            since = t
        elif prev in GP_THREADS and since is not None:
            ran, runs, since = ran + (t - since), runs + 1, None
    return count, 1e6 * ran / runs if runs else math.nan


def measure(rates: list[float], seconds: float, cpu: int = 0, other_cpu: int = 1,
            progress: Any = None) -> list[dict]:
    """One row per rate (first a rate of 0: the thread's own background), each ``seconds``
    long.  The calling process runs the client on ``other_cpu`` meanwhile (its CPU affinity
    is restored after)."""
    perf = shutil.which("perf")
    if perf is None:
        raise RcuUnavailable("perf not installed (Debian: apt-get install -y linux-perf)")
    if os.geteuid() != 0:
        raise RcuUnavailable("tracing sched_switch with perf needs root")
    with pinned(other_cpu):  # the client, and perf (its child), off the CPU
        rng = random.Random(1)
        acceptor = subprocess.Popen([sys.executable, "-c", ACCEPTOR, str(cpu)],
                                    stdout=subprocess.PIPE, text=True)
        try:
            port = int(acceptor.stdout.readline())
            with tempfile.TemporaryDirectory(prefix="arch-sim-rcu-") as tmp:
                data = Path(tmp) / "perf.data"
                rec = subprocess.Popen([perf, "record", "-q", "-k", "CLOCK_MONOTONIC", "-C",
                                        str(cpu), "-e", "sched:sched_switch", "-o", str(data)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                spans = []
                for rate in [0.0, *rates]:
                    if progress is not None:
                        progress(rate)
                    t0 = time.monotonic()
                    n = closes_at(rate, seconds, port, rng) if rate else time.sleep(seconds) or 0
                    t1 = time.monotonic()
                    spans.append((rate, n, t0, t1))
                    time.sleep(0.3)  # the last grace period ends before the next rate starts
                rec.send_signal(signal.SIGINT)
                rec.wait(30)
                text = subprocess.run([perf, "script", "-i", str(data), "-F",
                                       "tid,cpu,time,event,trace"], capture_output=True, text=True,
                                      check=True).stdout
        finally:
            acceptor.kill()
            acceptor.wait()
    rows = []
    for rate, n, t0, t1 in spans:
        count, run_us = gp_thread_switches(text, t0, t1, cpu)
        rows.append({"rate": rate, "closes_per_s": n / (t1 - t0), "seconds": t1 - t0,
                     "gp_thread_switches_per_s": count / (t1 - t0), "run_us": run_us})
    return rows


def predicted(r: np.ndarray, runs_per_gp: float, gp_s: float) -> np.ndarray:
    """The model's switches per second of the grace-period thread at close rate r."""
    return 2.0 * runs_per_gp * r / (r * gp_s + np.exp(-r * gp_s))


def fit(rows: list[dict]) -> tuple[float, float]:
    """(runs_per_gp, gp_ms) by least squares over the rates with closes, the idle rate of the
    thread taken off first."""
    idle = next((r["gp_thread_switches_per_s"] for r in rows if r["rate"] == 0), 0.0)
    loaded = [r for r in rows if r["rate"] > 0]
    x = np.array([r["closes_per_s"] for r in loaded])
    y = np.array([max(0.0, r["gp_thread_switches_per_s"] - idle) for r in loaded])
    best = (math.inf, 1.0, 10.0)
    for gp_ms in np.arange(1.0, 100.0, 0.25):
        shape = predicted(x, 1.0, gp_ms / 1000)
        k = float(shape @ y / (shape @ shape))  # the best runs_per_gp for this length
        err = float(((k * shape - y) ** 2).sum())
        if err < best[0]:
            best = (err, k, float(gp_ms))
    return best[1], best[2]


def record(rows: list[dict], command: str, by: str) -> dict:
    """The JSON a preset's ``.rcu.json`` holds: the fitted inputs, the median run length and
    every rate's row (with what the fit gives there); ``by``: what measured them."""
    runs_per_gp, gp_ms = fit(rows)
    run_us = float(np.nanmedian([r["run_us"] for r in rows if r["rate"] > 0]))
    x = np.array([r["closes_per_s"] for r in rows])
    for row, pred in zip(rows, predicted(x, runs_per_gp, gp_ms / 1000), strict=True):
        row["fitted_switches_per_s"] = float(pred)
    return {"what": f"{WHAT} ({by})", "when": now_iso(), "host": host_info(),
            "command": command, "runs_per_gp": round(runs_per_gp, 3), "gp_ms": gp_ms,
            "run_us": round(run_us, 2), "rows": rows}
