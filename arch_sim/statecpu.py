"""Where the state-group worker's CPU goes, state by state, measured: the split of its CPU per
request over its states.

The model divides the worker's CPU per request over the lifecycle (``parse_us``, ``send_us``,
``log_us``).  The worker serves its
states in turn within one thread, so the kernel cannot tell them apart; started with
``--state-cpu`` the worker reads its thread's CPU clock (``time.thread_time_ns``,
``CLOCK_THREAD_CPUTIME_ID``) before and after each state's batch and publishes the sums in
``/server-status`` (``per_state`` ``cpu_us``).  Off by default: the clock costs two reads per
state per pass.

How: the worker on the server's CPU under wrk, keep-alive, unpaced (the client's CPU), as
calibrate's saturation bench runs it (and once more with a connection per request: the accept
and logging states' extra split a connection's own cost, connection_costs.accept_share); after
a warm-up ``/server-status`` is read, again ``seconds`` later. Each state's batches took its
share of the CPU. The worker's CPU beyond its states' (``getrusage``: polling, dispatching the
ready events, publishing its counters, the loop) is reported per request, not used: at
saturation a pass serves dozens of requests, so it is mostly per-event work and says little
about the model's fixed ``pass_us``. The clock's own cost is timed here and taken out: each
state's sum holds about one read a pass, the rest of the worker's CPU the other five.
"""

from __future__ import annotations

import time
from typing import Any

from real_servers.core.lifecycle import NAMES

from .threadcpu import STAGE_COSTS, clock_us

ARCH = "state-group"


def totals(status: dict[str, Any]) -> dict[str, float]:
    """The live workers' sums in one ``/server-status`` reply: ``cpu_us`` (getrusage),
    ``passes`` and each state's ``cpu_us`` (``state:NAME``)."""
    out = {"cpu_us": 0.0, "passes": 0.0, **{f"state:{n}": 0.0 for n in NAMES}}
    for worker in status["workers"]:
        out["cpu_us"] += (worker["cpu_user_s"] + worker["cpu_system_s"]) * 1e6
        out["passes"] += worker["passes"]
        for name in NAMES:
            out[f"state:{name}"] += worker["per_state"][name]["cpu_us"]
    return out


def split(before: dict[str, Any], after: dict[str, Any], clock: float) -> dict[str, Any]:
    """The split between two ``/server-status`` replies, the clock's cost (``clock`` us a read)
    taken out: ``shares`` of ``parse``, ``send`` and ``log`` (wait_headers, send_data and
    logging over their sum), ``us_per_request`` per state, ``outside_us_per_request`` (the
    worker's CPU beyond its states), ``passes_per_request``, ``requests``.  ValueError if the
    worker served nothing or timed no state."""
    a, b = totals(before), totals(after)
    served = after["requests"] - before["requests"]
    passes = b["passes"] - a["passes"]
    if served <= 0 or passes <= 0:
        raise ValueError(f"the state-group server served {served} requests in {passes} passes")
    states = {n: max(0.0, b[f"state:{n}"] - a[f"state:{n}"] - clock * passes) for n in NAMES}
    if sum(states.values()) <= 0:
        raise ValueError("the state-group worker timed no state (was it started with "
                         "--state-cpu?)")
    outside = b["cpu_us"] - a["cpu_us"] - sum(states.values()) - 10 * clock * passes
    costs = {cost: states[stage] for stage, cost in STAGE_COSTS.items()}
    mine = sum(costs.values())
    return {"shares": {cost: us / mine for cost, us in costs.items()},
            "us_per_request": {n: us / served for n, us in states.items()},
            "outside_us_per_request": max(0.0, outside) / served,
            "passes_per_request": passes / served,
            "clock_us": clock, "requests": served}


def measure(seconds: float = 2.0, server_cpu: int = 0, client_cpu: int = 1,
            file_set: str = "specweb99", connections: int = 64,
            warmup: float = 1.0, keep_alive: bool = True) -> dict[str, Any]:
    """The state-group worker's CPU state by state under unpaced load, keep-alive or (not
    ``keep_alive``) a connection per request (see :func:`split`; ``seconds`` too)."""
    from arch_sim.harness import loaded, servers

    clock = clock_us()
    args = servers.arch_args(ARCH, None, [server_cpu]) + ["--state-cpu"]
    with loaded.under_wrk(ARCH, args, seconds=seconds, warmup=warmup, server_cpu=server_cpu,
                          client_cpu=client_cpu, file_set=file_set,
                          connections=connections, keep_alive=keep_alive) as server:
        first = server.status()
        time.sleep(seconds)
        last = server.status()
    return {**split(first, last, clock), "seconds": seconds}
