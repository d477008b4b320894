"""Microbenchmarks of this host for ``arch-sim calibrate`` (lmbench ``lat_ctx`` style).

- :func:`context_switch_us`: two processes pinned to one CPU pass a byte back and forth over two
  pipes; each round trip is two switches plus two pipe write/read pairs.  The same pairs done by
  one process alone (no switch) are timed too and subtracted, as lmbench does.
- :func:`wakeup_latency_us`: a process blocked in ``read`` is woken by a write from another CPU
  carrying the writer's clock; the reader's clock on waking minus that is the wake-up latency.
- :func:`futex_wake_us`: what waking a thread costs the waker: a Python thread's CPU time in a
  ``Lock.release()`` another thread (same CPU, ``SCHED_IDLE`` so that it cannot preempt the
  releaser) sleeps on, less a release nobody waits for.
- :func:`cpu_time_cv`: run-to-run variation of the CPU time of one fixed piece of work.
- :func:`cold_cache`: how fast an idle CPU's caches go cold (:func:`fit_cold_decay` fits it).
"""

from __future__ import annotations

import math
import os
import statistics
import struct
import time
from dataclasses import dataclass

from arch_sim.machine_state import ReferenceWork, pinned


@dataclass
class SwitchCost:
    switch_us: float  # one context switch, pipe costs subtracted
    roundtrip_us: float  # two switches + two pipe write/read pairs
    pipe_pair_us: float  # one write + one read of a byte, same process
    iterations: int
    cpu: int


def _pin(cpu: int) -> None:
    os.sched_setaffinity(0, {cpu})


def _one_process_pipe_us(iterations: int) -> float:
    r, w = os.pipe()
    try:
        t0 = time.perf_counter_ns()
        for _ in range(iterations):
            os.write(w, b"x")
            os.read(r, 1)
        return (time.perf_counter_ns() - t0) / iterations / 1e3
    finally:
        os.close(r)
        os.close(w)


def context_switch_us(iterations: int = 20_000, cpu: int = 0, repeats: int = 3) -> SwitchCost:
    """Cost of one context switch between two processes pinned to *cpu* (best of *repeats*)."""
    best_rt = best_pipe = float("inf")
    for _ in range(repeats):
        best_rt = min(best_rt, _pingpong_roundtrip_us(iterations, cpu))
        with pinned(cpu):
            best_pipe = min(best_pipe, _one_process_pipe_us(iterations))
    switch = max(0.0, (best_rt - 2 * best_pipe) / 2)
    return SwitchCost(switch, best_rt, best_pipe, iterations, cpu)


def _pingpong_roundtrip_us(iterations: int, cpu: int) -> float:
    a_r, a_w = os.pipe()  # parent -> child
    b_r, b_w = os.pipe()  # child -> parent
    pid = os.fork()
    if pid == 0:
        try:
            _pin(cpu)
            os.close(a_w)
            os.close(b_r)
            for _ in range(iterations + 1):
                os.read(a_r, 1)
                os.write(b_w, b"y")
        finally:
            os._exit(0)
    os.close(a_r)
    os.close(b_w)
    try:
        with pinned(cpu):
            os.write(a_w, b"x")  # warm-up round
            os.read(b_r, 1)
            t0 = time.perf_counter_ns()
            for _ in range(iterations):
                os.write(a_w, b"x")
                os.read(b_r, 1)
            elapsed = time.perf_counter_ns() - t0
    finally:
        os.close(a_w)
        os.close(b_r)
        os.waitpid(pid, 0)
    return elapsed / iterations / 1e3


def wakeup_latency_us(samples: int = 2_000, waker_cpu: int = 1, sleeper_cpu: int = 0,
                      gap_us: float | None = None) -> dict:
    """Median and p99 time from a write to the blocked reader running (microseconds).

    Between samples the waker sleeps 0.2 ms (calibrate's setting: the sleeper's CPU idles about
    0.25 ms before each write), or with ``gap_us`` spins that long on its own CPU, so that the
    sleeper's CPU idles for a known time (``benchmarks/wake_latency.py`` runs a range)."""
    r, w = os.pipe()
    back_r, back_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the sleeper
        try:
            _pin(sleeper_cpu)
            os.close(w)
            os.close(back_r)
            for _ in range(samples):
                sent = struct.unpack("q", os.read(r, 8))[0]
                os.write(back_w, struct.pack("q", time.perf_counter_ns() - sent))
        finally:
            os._exit(0)
    os.close(r)
    os.close(back_w)
    lat = []
    try:
        with pinned(waker_cpu):
            for _ in range(samples):
                if gap_us is None:
                    time.sleep(0.0002)  # let the sleeper block again
                else:  # spin: the waker's own sleep would add its timer slack to the gap
                    until = time.perf_counter_ns() + int(gap_us * 1e3)
                    while time.perf_counter_ns() < until:
                        pass
                os.write(w, struct.pack("q", time.perf_counter_ns()))
                lat.append(struct.unpack("q", os.read(back_r, 8))[0] / 1e3)
    finally:
        os.close(w)
        os.close(back_r)
        os.waitpid(pid, 0)
    lat.sort()
    return {
        "median_us": statistics.median(lat),
        "p99_us": lat[int(0.99 * (len(lat) - 1))],
        "samples": samples,
        "waker_cpu": waker_cpu,
        "sleeper_cpu": sleeper_cpu,
    }


def futex_wake_us(samples: int = 2_000, cpu: int = 0) -> dict:
    """CPU time a Python thread spends releasing a lock another thread sleeps on (microseconds).

    CPython's ``threading.Lock`` is a POSIX semaphore: ``release()`` is ``sem_post``, which
    enters the kernel (``futex(FUTEX_WAKE)``: try_to_wake_up, enqueue, the wake-up preemption
    check) only when a thread is blocked on it.  Both threads are pinned to ``cpu``, as the
    servers' threads are; the releaser's own CPU time (``thread_time``) is read around each
    release, with the waiter asleep in ``acquire()``, and around a release nobody waits for;
    the difference of the medians is the wake-up's cost to the waker.

    The waiter runs under ``SCHED_IDLE``, whose wake-ups never preempt a normal task
    (kernel/sched/fair.c, check_preempt_wakeup_fair) [LX-sched-idle]: otherwise the woken
    thread takes the CPU at the release's return about once a release, and the releaser's
    time would include its own switch out and back in - which the model charges separately,
    as ``switch_us`` - on top of the wake (measured on the 6.18 VM: 3.3-3.8 us with a normal
    waiter, 1.5 preemptions of the releaser a release; 2.5 us with the waiter idle, none).
    ``waker_preempted``: the releaser's involuntary switches per release while timed (from
    /proc/thread-self/status; about 0 when the waiter could be made idle); ``waiter_policy``:
    ``"idle"``, or ``"normal"`` where the system refused ``SCHED_IDLE``.
    Returns ``{"wake_us", "release_woke_us", "release_idle_us", "waker_preempted",
    "waiter_policy", "samples", "cpu"}``.
    """
    import threading

    lock = threading.Lock()
    lock.acquire()
    asleep = threading.Semaphore(0)
    done = False
    policy = ["normal"]

    def waiter() -> None:
        os.sched_setaffinity(0, {cpu})
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            policy[0] = "idle"
        except (OSError, AttributeError):  # not Linux, or not allowed: measured as it is
            pass
        while True:
            asleep.release()
            lock.acquire()  # blocks in sem_wait: the futex the release below wakes
            if done:
                return

    woke, idle = [], []
    with pinned(cpu):
        t = threading.Thread(target=waiter, daemon=True)
        t.start()
        spare = threading.Lock()
        before = involuntary_switches()
        for _ in range(samples):
            asleep.acquire()
            time.sleep(0.0002)  # the waiter runs on and blocks in acquire()
            t0 = time.thread_time_ns()
            lock.release()
            woke.append((time.thread_time_ns() - t0) / 1e3)
            spare.acquire()
            t0 = time.thread_time_ns()
            spare.release()  # nobody waits: no system call
            idle.append((time.thread_time_ns() - t0) / 1e3)
        preempted = (involuntary_switches() - before) / samples
        asleep.acquire()  # the waiter is back in acquire(): let it out
        done = True
        lock.release()
        t.join(timeout=1.0)
    woke_us, idle_us = statistics.median(woke), statistics.median(idle)
    return {"wake_us": max(0.0, woke_us - idle_us), "release_woke_us": woke_us,
            "release_idle_us": idle_us, "waker_preempted": preempted,
            "waiter_policy": policy[0], "samples": samples, "cpu": cpu}


def involuntary_switches() -> int:
    """The calling thread's involuntary context switches so far (its
    ``nonvoluntary_ctxt_switches`` in /proc/thread-self/status; 0 where there is none)."""
    try:
        with open("/proc/thread-self/status") as f:
            for line in f:
                if line.startswith("nonvoluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


#: a ring's members: as many as the prefork server has workers (real_servers/prefork
#: --workers' default), one per wrk connection
RING_MEMBERS = 64
#: a ring that has not gone round by then lost its token (a member died)
RING_TIMEOUT_S = 60.0


def _ring_member(rfd: int, wfd: int, first: bool, rounds: int, cpu: int) -> int:
    """One member of :func:`process_switch_us`'s ring: on each turn, wait for the token, run a
    little request-like Python over its own heap, pass the token on; its CPU time (ns)."""
    import json

    os.sched_setaffinity(0, {cpu})
    heap = {i: str(i) * 5 for i in range(2000)}  # a working set of its own, as a worker's
    start = time.thread_time_ns()
    for _ in range(rounds):
        if not first:
            os.read(rfd, 1)
        json.dumps({i: str(i) for i in range(60)})
        sum(len(v) for v in list(heap.values())[:300])
        os.write(wfd, b"x")
        if first:
            os.read(rfd, 1)
    return time.thread_time_ns() - start


def _ring_us(members: int, rounds: int, cpu: int, processes: bool) -> float:
    """CPU per turn (us) of a token passed round a ring of ``members`` threads of this process,
    or of as many forked processes, all on ``cpu``."""
    import multiprocessing
    import threading

    pipes = [os.pipe() for _ in range(members)]  # pipe i leads into member i
    spent: list[int] = []
    try:
        if processes:
            ctx = multiprocessing.get_context("fork")
            results = ctx.SimpleQueue()

            def run(i: int) -> None:
                results.put(_ring_member(pipes[i][0], pipes[(i + 1) % members][1], i == 0,
                                         rounds, cpu))

            workers = [ctx.Process(target=run, args=(i,)) for i in range(members)]
        else:
            def run(i: int) -> None:
                spent.append(_ring_member(pipes[i][0], pipes[(i + 1) % members][1], i == 0,
                                          rounds, cpu))

            workers = [threading.Thread(target=run, args=(i,), daemon=True)
                       for i in range(members)]
        for w in workers[1:] + workers[:1]:  # the token's holder last, once all wait
            w.start()
        deadline = time.monotonic() + RING_TIMEOUT_S
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        if any(w.is_alive() for w in workers) or (
                processes and any(w.exitcode != 0 for w in workers)):
            for w in workers:  # a member died and the token with it: the others wait forever
                if processes and w.is_alive():
                    w.kill()
            raise OSError(f"the ring of {members} did not go round in {RING_TIMEOUT_S:g} s")
        if processes:
            spent = [results.get() for _ in range(members)]
    finally:
        for r, w in pipes:
            os.close(r)
            os.close(w)
    return sum(spent) / (members * rounds) / 1e3


def process_switch_us(members: int = RING_MEMBERS, rounds: int = 100, cpu: int = 0,
                      repeats: int = 2) -> dict:
    """What a switch to another of many processes costs beyond a switch between threads: a
    token passed round a ring of ``members`` processes, each running a little Python over a
    heap of its own, against the same ring of threads of one process, on one CPU (threads
    first, then processes, ``repeats`` times; medians).  With a ring as long as the prefork
    server has workers every turn lands in an address space and a working set that the
    other members have pushed out of the TLB and the caches since - what a prefork worker
    woken in turn meets - where a pair of processes (``context_switch_us``) stays warm.
    Returns ``{"extra_us", "threads_us", "processes_us", "members", "rounds"}``."""
    threads, procs = [], []
    with pinned(cpu):  # the members pin themselves; this thread's CPUs come back after
        for _ in range(repeats):
            threads.append(_ring_us(members, rounds, cpu, processes=False))
            procs.append(_ring_us(members, rounds, cpu, processes=True))
    t, p = statistics.median(threads), statistics.median(procs)
    return {"extra_us": max(0.0, p - t), "threads_us": t, "processes_us": p,
            "members": members, "rounds": rounds}


#: a run of the work that took more than this many times the median was interrupted (on this
#: VM the hypervisor, or a sibling hyperthread's tenant, held the CPU inside the span), not slow
INTERRUPTED_X = 5.0


def variation(times: list[float]) -> tuple[float, float, int]:
    """``(cv, mean, left_out)`` of CPU times: the coefficient of variation and mean of the
    runs, those above :data:`INTERRUPTED_X` times the median left out (how many: ``left_out``).
    One interrupted run of 1.5 ms among 1,500 of 90 us would otherwise make the cv 1 or more
    (calibrations on 2026-11-30 measured 0.96 and 1.97 beside 0.27-0.31)."""
    limit = INTERRUPTED_X * statistics.median(times)
    kept = [t for t in times if t <= limit]
    mean = statistics.fmean(kept)
    return statistics.pstdev(kept) / mean, mean, len(times) - len(kept)


def cpu_time_cv(samples: int = 1500, gap_s: float = 0.001, cpu: int | None = None) -> dict:
    """Run-to-run variation of the CPU time of one fixed piece of Python work.

    The work (~50 us: dict stores, bytes, json.dumps) runs ``samples`` times, ``gap_s`` apart
    (the CPU idles in between, as a server's between requests); its thread CPU time is read
    around each run, and :func:`variation` gives the cv.  Returns ``{"cv", "mean_us",
    "median_us", "samples", "left_out", "gap_s"}``.  Pin with ``cpu`` to measure one CPU.
    """
    import json

    with pinned(cpu):
        def work() -> int:
            d: dict[int, bytes] = {}
            for i in range(300):
                d[i % 37] = str(i).encode() + b"x"
            return len(json.dumps(list(d)))

        times = []
        for _ in range(samples):
            if gap_s:
                time.sleep(gap_s)
            t0 = time.thread_time_ns()
            work()
            times.append((time.thread_time_ns() - t0) / 1e3)
    cv, mean, left_out = variation(times)
    return {"cv": cv, "mean_us": mean, "median_us": statistics.median(times),
            "samples": samples, "left_out": left_out, "gap_s": gap_s}


def cold_cache(gaps_ms: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0, 30.0), rounds: int = 100,
               cpu: int | None = None) -> dict:
    """How fast an idle CPU's caches go cold: the extra CPU time of a short piece of server-like
    work (:class:`~arch_sim.machine_state.ReferenceWork`: a 2 KB send and recv on a socket
    pair, a little Python) run right after the thread
    slept ``gap`` ms (0.3-30), over the same work run back to back.

    The extra grows with the gap as ``refill * (1 - exp(-gap / decay))``; ``decay_ms`` is fitted
    (least squares over a log grid, :data:`DECAY_GRID_MS`).  A fit that runs to the grid's
    bound found no decay in the curve (:func:`decay_fitted`: flat, or one gap's median taken by
    a slow stretch of a shared host), and the preset does not use it.  The gaps take turns round
    by round, so a slow stretch of the machine touches every gap's samples alike rather than one
    gap's whole block.  The ``refill_us`` here is this small work's own; a server's request
    touches more code, so the preset solves its refill from the servers themselves.
    Returns ``{"decay_ms", "refill_us", "warm_us", "gaps_ms", "extra_us", "rounds"}``.
    """
    with pinned(cpu), ReferenceWork() as work:
        warm = work.warm_us(rounds * 2)
        samples: list[list[float]] = [[] for _ in gaps_ms]
        n = len(gaps_ms)
        for r in range(rounds):  # every gap once a round, starting one further each round
            for k in range(n):
                i = (r + k) % n
                time.sleep(gaps_ms[i] / 1e3)
                samples[i].append(work.timed_us())
        extra = [max(0.0, statistics.median(s) - warm) for s in samples]
    decay, refill = fit_cold_decay(gaps_ms, extra)
    return {"decay_ms": decay, "refill_us": refill, "warm_us": warm, "gaps_ms": list(gaps_ms),
            "extra_us": extra, "rounds": rounds}


#: the decay times :func:`fit_cold_decay` tries, ms: 0.1 to 100, 30 steps per decade
DECAY_GRID_MS = (0.1, 100.0)


def decay_fitted(decay_ms: float) -> bool:
    """Whether a fitted decay is inside the grid: at either bound the curve had none to fit."""
    lo, hi = DECAY_GRID_MS
    return lo * 1.001 < decay_ms < hi / 1.001


def cold_curve_text(cold: dict) -> str:
    """A cold_cache() record's curve in words: "43.2 us after 0.3 ms, 4.3 us after 1 ms..."."""
    return ", ".join(f"{float(e):.1f} us after {float(g):g} ms"
                     for g, e in zip(cold.get("gaps_ms", []), cold.get("extra_us", []),
                                     strict=False))


def fit_cold_decay(gaps_ms, extra_us) -> tuple[float, float]:
    """Least-squares fit of ``extra = refill * (1 - exp(-gap / decay))``: (decay_ms, refill)."""
    lo, hi = DECAY_GRID_MS
    steps = round(30 * math.log10(hi / lo))
    best = (math.inf, lo, 0.0)
    for i in range(steps + 1):
        decay = lo * 10 ** (i / 30)
        shape = [-math.expm1(-g / decay) for g in gaps_ms]
        norm = sum(x * x for x in shape)
        refill = sum(x * e for x, e in zip(shape, extra_us, strict=True)) / norm if norm else 0.0
        err = sum((refill * x - e) ** 2 for x, e in zip(shape, extra_us, strict=True))
        if err < best[0]:
            best = (err, decay, refill)
    return best[1], best[2]
