"""Where a multi-threaded server's CPU goes, thread by thread, measured: the staged server's
split over its stages and the pool server's dispatcher share.

The models divide a design's CPU per request over the lifecycle (``parse_us``, ``send_us``,
``log_us``; the pool's ``dispatch_us``).  Where a design gives each part a thread of its own,
the kernel already keeps the split: each thread's ``sum_exec_runtime`` (the first field of
``/proc/PID/task/TID/schedstat``, nanoseconds on the CPU) [LX-schedstat].  Nothing in the
server is timed for that, so it costs the server nothing.

* staged: the ``wait_headers``, ``send_data`` and ``logging`` threads (each named
  ``STAGE-N`` in the kernel by the server) give the shares of ``parse_us``, ``send_us`` and
  ``log_us``; the accept thread (idle with keep-alive) and the main thread (it waits for a
  signal) are counted in the total only.
* thread-per-request (the pool): the main thread is the dispatcher (accept, epoll over idle
  connections, hand-offs); its share of the process's CPU is ``dispatch_us``'s.  The pool
  threads' own split (``pool_shares``) needs the server's help: started with ``--state-cpu``
  it times each thread's serving and sending (real_servers/threaded/statecpu.py); the rest of
  the pool threads' CPU is the logging state's.

How: the server on the server's CPU under wrk, keep-alive, unpaced (the client's CPU), as
calibrate's saturation bench runs it - and once more with a connection per request, where what
the accepting thread spends more than with keep-alive, against what the closing threads spend
more, splits a connection's own cost (connection_costs.accept_share); after a warm-up every
thread's runtime and the server's request count (``/server-status``) are read, again
``seconds`` later, and the differences divided.  Threads that exist only at one end (none,
with these servers' fixed pools) count from zero.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from real_servers.core.lifecycle import LOGGING, NAMES, SEND_DATA, WAIT_HEADERS

#: the designs measured here, and the cost each thread group's share stands for
ARCHS = ("staged", "thread-per-request")
STAGE_COSTS = {NAMES[WAIT_HEADERS]: "parse", NAMES[SEND_DATA]: "send", NAMES[LOGGING]: "log"}
#: the stage whose thread a cost's share is read from
STAGE_OF = {cost: stage for stage, cost in STAGE_COSTS.items()}


def thread_counts(pids: list[int]) -> dict[int, tuple[str, int, int, int]]:
    """Every thread of ``pids``: tid -> (its kernel name, ns it has run, voluntary and
    involuntary switches).  A thread that exits while being read is left out."""
    out: dict[int, tuple[str, int, int, int]] = {}
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                name = (task / "comm").read_text().strip()
                ns = int((task / "schedstat").read_text().split()[0])
                fields = dict(line.split(":", 1) for line in
                              (task / "status").read_text().splitlines() if ":" in line)
                counts = (int(fields["voluntary_ctxt_switches"]),
                          int(fields["nonvoluntary_ctxt_switches"]))
            except (OSError, ValueError, IndexError, KeyError):
                continue
            out[int(task.name)] = (name, ns, *counts)
    return out


def clock_us(reads: int = 20000) -> float:
    """What one ``time.thread_time_ns()`` costs here (us, the median of five batches)."""
    clock, costs = time.thread_time_ns, []
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(reads):
            clock()
        costs.append((time.perf_counter_ns() - start) / reads / 1e3)
    return sorted(costs)[2]


def group(arch: str, pid: int, tid: int, name: str) -> str:
    """The group a server thread's CPU counts in: ``main`` for the process's first thread
    (the pool's dispatcher), a stage's name for a staged thread (``send_data-2``), else
    ``pool``."""
    if tid == pid:
        return "main"
    if arch == "staged":
        stage = name.rpartition("-")[0]
        return stage if stage in NAMES else "other"
    return "pool"


def split(arch: str, pid: int, before: dict[int, tuple[str, int, int, int]],
          after: dict[int, tuple[str, int, int, int]]) -> dict[str, float]:
    """ns each group ran between two :func:`thread_counts` readings."""
    out: dict[str, float] = {}
    for tid, (name, ns, *_) in after.items():
        ran = ns - before.get(tid, (name, 0))[1]
        key = group(arch, pid, tid, name)
        out[key] = out.get(key, 0.0) + max(ran, 0)
    return out


def shares(arch: str, groups: dict[str, float]) -> dict[str, float]:
    """What the model's costs are split by: for staged the stage threads' shares of their
    sum (``parse``, ``send``, ``log``), for the pool the dispatcher's share of the whole
    (``dispatch``).  ValueError if the groups hold no such CPU."""
    if arch == "staged":
        stages = {cost: groups.get(stage, 0.0) for stage, cost in STAGE_COSTS.items()}
        total = sum(stages.values())
        if total <= 0:
            raise ValueError("the staged server's stage threads ran no CPU")
        return {cost: ns / total for cost, ns in stages.items()}
    total = sum(groups.values())
    if total <= 0:
        raise ValueError(f"the {arch} server's threads ran no CPU")
    return {"dispatch": groups.get("main", 0.0) / total}


def clock_reads_ns(timed: dict[str, dict[str, float]], read_us: float) -> float:
    """What the clock reads of ``--state-cpu`` cost the pool threads (ns): two a timed call."""
    return 2 * read_us * 1e3 * sum(state.get("calls", 0) for state in timed.values())


def pool_shares(pool_ns: float, timed: dict[str, dict[str, float]],
                read_us: float) -> dict[str, float]:
    """The pool thread's own split (``parse``, ``send``, ``log``): its states' CPU as it timed
    them with ``--state-cpu`` (``timed``: per state the us and calls over the window), the
    rest of the pool threads' CPU (``pool_ns``, from /proc) the logging state's.  The clock's
    own reads (``read_us`` each, two a timed call) are taken out of all three: a send's lie
    inside its ``_serve``, half of each of a ``_serve``'s own outside it.  ValueError if
    nothing was timed or the times exceed the threads' CPU."""
    headers, sends = timed.get(NAMES[WAIT_HEADERS], {}), timed.get(NAMES[SEND_DATA], {})
    serves, sent = headers.get("calls", 0), sends.get("calls", 0)
    clock = read_us * 1e3
    parse = headers.get("cpu_us", 0.0) * 1e3 - clock * (serves + sent)
    send = sends.get("cpu_us", 0.0) * 1e3 - clock * sent
    log = pool_ns - (parse + send) - clock_reads_ns(timed, read_us)
    if parse + send <= 0:
        raise ValueError("the pool timed no state (was it started with --state-cpu?)")
    if log < 0:
        raise ValueError("the pool's timed states took more CPU than its threads ran")
    total = parse + send + log
    return {"parse": parse / total, "send": send / total, "log": log / total}


def measure(arch: str, seconds: float = 2.0, server_cpu: int = 0, client_cpu: int = 1,
            file_set: str = "specweb99", connections: int = 64, threads: int = 64,
            warmup: float = 1.0, keep_alive: bool = True) -> dict[str, Any]:
    """``arch``'s CPU per request by thread group under unpaced load, keep-alive or (not
    ``keep_alive``) a connection per request (``threads``: the pool's size): ``shares`` (see
    :func:`shares`), ``us_per_request`` per group, ``cpu_us_per_request``, ``requests`` and
    ``seconds``."""
    from arch_sim.harness import loaded, servers

    if arch not in ARCHS:
        raise ValueError(f"{arch!r}: the per-thread split is measured for {', '.join(ARCHS)}")
    pool = arch == "thread-per-request"
    clock = clock_us() if pool else 0.0
    args = servers.arch_args(arch, threads, [server_cpu]) + (["--state-cpu"] if pool else [])
    with loaded.under_wrk(arch, args, seconds=seconds, warmup=warmup, server_cpu=server_cpu,
                          client_cpu=client_cpu, file_set=file_set,
                          connections=connections, keep_alive=keep_alive) as server:
        pid = server.pid
        first, status0 = thread_counts([pid]), server.status()
        time.sleep(seconds)
        last, status1 = thread_counts([pid]), server.status()
    served = status1["requests"] - status0["requests"]
    if served <= 0:
        raise RuntimeError(f"the {arch} server served no request in {seconds:g} s")
    groups = split(arch, pid, first, last)
    found = {"us_per_request": {k: ns / 1e3 / served for k, ns in sorted(groups.items())},
             "cpu_us_per_request": sum(groups.values()) / 1e3 / served,
             "requests": served, "seconds": seconds}
    if not pool:
        return {"shares": shares(arch, groups), **found}
    # the pool thread's own split, from the states it timed, and the dispatcher's share of
    # the CPU the server spends without the clock's reads
    timed = {name: {k: status1["per_state"][name][k] - status0["per_state"][name][k]
                    for k in ("cpu_us", "calls")} for name in status1["per_state"]}
    plain = {**groups, "pool": groups.get("pool", 0.0) - clock_reads_ns(timed, clock)}
    return {"shares": shares(arch, plain), **found,
            "pool_shares": pool_shares(groups.get("pool", 0.0), timed, clock)}
