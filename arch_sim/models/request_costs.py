"""What a request costs each server: the keep-alive inputs of the ``host`` preset, solved.

``arch-sim calibrate`` measures each real server's CPU per request at saturation; the model
needs it per lifecycle state.  :func:`split_costs` divides it in fixed shares (the split only
decides where in a request the GIL is dropped, not how much a request costs) and
:func:`scale_costs` shifts the total by what the model, run unpaced on the preset, spends beyond
the measurement - the CPU it charges itself for every context switch included.
:func:`solve_refill` solves the cache refill after an idle CPU from the paced bench the same
way.  Only CPU per request is fitted; reschedule counts are predicted, never fed back.

When calibrate cannot run the servers, the costs of the current ``host`` preset are kept
(``previous_*``), or the defaults measured on the development host.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from arch_sim import ALL_ARCHS

#: Share of the thread-per-request server's CPU per request spent by its dispatcher thread:
#: measured once with ``perf sched`` on the development host at saturation (dispatcher 3.8 us,
#: pool threads 30.0 us per request).
DISPATCHER_SHARE = 0.11
#: Split of a request's own CPU (pool thread, or state-group states) over the lifecycle.
STATE_SHARES = {"parse": 0.40, "send": 0.45, "log": 0.15}
#: Loopback send: each byte is copied once into the socket buffer (~10 GB/s memcpy).
SEND_US_PER_KB = 0.1


#: per-request costs when neither a measurement nor a previous host preset has them
#: (host_preset_text on the development host's reference sweep)
#: (prefork and staged, never measured there: thread-per-request's pool thread, as their
#: placeholders in host.toml)
DEFAULT_COSTS = {
    "thread-per-request": {"dispatch_us": 2.4, "parse_us": 7.9, "send_us": 7.5, "log_us": 3.0},
    "state-group": {"parse_us": 4.8, "send_us": 4.1, "log_us": 1.8},
    "prefork": {"parse_us": 7.9, "send_us": 7.5, "log_us": 3.0},
    "staged": {"parse_us": 7.9, "send_us": 7.5, "log_us": 3.0},
}


def previous_server_costs(preset: str | Path = "host") -> dict[str, dict[str, float]]:
    """The per-arch costs of the current ``host`` preset (or ``preset``: what calibrate keeps
    when it cannot run the servers, or is told to re-measure others), or
    :data:`DEFAULT_COSTS`."""
    costs = {arch: dict(values) for arch, values in DEFAULT_COSTS.items()}
    try:
        from arch_sim.models.params import load_preset

        previous = load_preset(preset).server_by_arch
    except (OSError, ValueError):
        return costs
    for arch, values in costs.items():
        for key in values:
            if key in previous.get(arch, {}):
                values[key] = float(previous[arch][key])
    return costs


def previous_cold_refill_us(preset: str | Path = "host") -> dict[str, float]:
    """Each architecture's ``cold_refill_us`` in the current ``host`` preset (or ``preset``;
    0 if none)."""
    refill = {arch: 0.0 for arch in ALL_ARCHS}
    try:
        from arch_sim.models.params import load_preset

        previous = load_preset(preset)
    except (OSError, ValueError):
        return refill
    for arch in refill:
        refill[arch] = float(previous.for_arch(arch).server.cold_refill_us)
    return refill


def solve_refill(arch: str, params, paced: dict[str, Any], connections: int) -> float:
    """The ``cold_refill_us`` with which the model, paced like the bench, spends the measured
    CPU per request there (the model's CPU per request grows linearly with it)."""
    want = float(paced["cpu_us_per_request"])
    rate = float(paced["target_rps"])

    def cpu(refill_us: float) -> float:
        by_arch = {**params.server_by_arch,
                   arch: {**params.server_by_arch.get(arch, {}), "cold_refill_us": refill_us}}
        p = params.replace(server_by_arch=by_arch)
        return model_cpu_us_per_request(arch, p, target_rps=rate, connections=connections)

    lo, hi = 0.0, 100.0
    cpu_lo, cpu_hi = cpu(lo), cpu(hi)
    for _ in range(2):  # secant steps on a (nearly) straight line
        slope = (cpu_hi - cpu_lo) / (hi - lo)
        if slope <= 0:
            return lo
        guess = max(0.0, hi + (want - cpu_hi) / slope)
        lo, cpu_lo, hi, cpu_hi = hi, cpu_hi, guess, cpu(guess)
    return hi


def model_cpu_us_per_request(arch: str, params, requests: int = 3000, seed: int = 1,
                             target_rps: float | None = None,
                             connections: int | None = None) -> float:
    """The model's CPU per request (us) with its preset's connections, unpaced (or paced at
    ``target_rps``, as the bench's wrk connections with exponential think times)."""
    from arch_sim.models.runner import simulate_point

    row = simulate_point(arch, params, target_rps, workload="closed", requests=requests,
                         seed=seed, connections=connections)
    return row["cpu_util"] * row["cpus"] * 1e6 / row["rps"]


def state_shares(log_share: float | None = None) -> dict[str, float]:
    """The shares of a request's CPU per state: :data:`STATE_SHARES`, or with the logging
    state's share measured (``log_share``: the work after the last send, arch_sim/aftersend.py)
    and parse and send splitting the rest as they split it there."""
    if log_share is None:
        return dict(STATE_SHARES)
    log = min(max(log_share, 0.0), 0.9)
    rest = (1.0 - log) / (STATE_SHARES["parse"] + STATE_SHARES["send"])
    return {"parse": STATE_SHARES["parse"] * rest, "send": STATE_SHARES["send"] * rest,
            "log": log}


def split_costs(budget_us: float, arch: str, mean_kb: float,
                shares: dict[str, float] | None = None,
                dispatch_share: float | None = None) -> dict[str, float]:
    """A design's CPU per request (``budget_us``, switches taken out) over the model's costs:
    ``shares`` of parse, send and log (default :data:`STATE_SHARES`; see :func:`state_shares`
    and :mod:`arch_sim.threadcpu` for measured ones) and, for the pool, the dispatcher's share
    first (``dispatch_share``, default :data:`DISPATCHER_SHARE`)."""
    budget = max(budget_us, 1.0)
    shares = dict(STATE_SHARES) if shares is None else shares
    out: dict[str, float] = {}
    if arch == "thread-per-request":
        out["dispatch_us"] = (DISPATCHER_SHARE if dispatch_share is None
                              else dispatch_share) * budget
        budget -= out["dispatch_us"]
    out["parse_us"] = shares["parse"] * budget
    out["send_us"] = max(0.5, shares["send"] * budget - SEND_US_PER_KB * mean_kb)
    out["log_us"] = shares["log"] * budget
    return out


def scale_costs(costs: dict[str, float], want: float, got: float, arch: str,
           params) -> dict[str, float]:
    """Shift the per-request costs by the difference between measured and modelled CPU."""
    total = sum(costs.values())
    if total <= 0:
        return costs
    factor = max(0.05, (total + (want - got)) / total)
    return {k: v * factor for k, v in costs.items()}
