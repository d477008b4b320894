"""What a connection of its own costs each server: the HTTP/1.0 regime's inputs, solved.

With a new connection per request (the seed's regime) a request also pays for ``accept`` (the
listener, the new socket's set-up) and for closing the connection (unregister, shutdown,
close); the thread-per-connection server also starts and ends a thread.  ``arch-sim
calibrate`` measures each server unpaced in that regime (wrk ``Connection: close``); this
module solves the costs so that the host model, run the same way, spends the measured CPU per
request:

* ``accept_us`` and ``close_us`` of each architecture - one connection cost, split between
  the two (the split decides where in a request the CPU is spent and the GIL dropped, not what
  a request costs), as calibrate measured it (:func:`accept_share`): where the accepting and
  the closing code run in threads or states of their own, by what each spends more with a
  connection per request; for prefork, whose one process does both, by how much longer its
  work after a reply's last send gets (the close) against the whole extra;
* ``thread_create_us`` from the thread-per-connection server, with the pool's connection costs
  (the two shapes share the code that accepts, serves and closes);
* ``client_close_us``: wrk's own extra CPU per request for connecting and closing, from the
  run where the client was busiest (the faster server).

Only CPU per request is fitted; the reschedules the model then predicts are compared with the
measured ones (arch-sim reproduce's fidelity table), never fed back.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from arch_sim import ALL_ARCHS
from arch_sim.models.params import ModelParams
from real_servers.core.lifecycle import ACCEPT, LOGGING, NAMES

#: share of a connection's own cost spent accepting it (the rest: closing it), where it is
#: not measured: an estimate
ACCEPT_SHARE = 0.5
#: where the split is measured: calibrate's record of the design's CPU by thread (threadcpu.py)
#: or by state (statecpu.py) - keep-alive, and with a connection per request under the same key
#: with ``_close`` - and the groups in it that accept and that close a connection
ACCEPT_SPLIT = {"thread-per-request": ("threads_cpu", "main", "pool"),
                "staged": ("threads_cpu", NAMES[ACCEPT], NAMES[LOGGING]),
                "state-group": ("states_cpu", NAMES[ACCEPT], NAMES[LOGGING])}
#: prefork: calibrate's records of its work after a reply's last send (aftersend.py), keep-alive
#: and with a connection per request
AFTER_SEND = ("after_send", "after_send_close")
#: what those groups are, in a preset's comments
GROUP_NAMES = {"thread-per-request": ("dispatcher (main) thread", "pool threads"),
               "staged": (f"{NAMES[ACCEPT]} thread", f"{NAMES[LOGGING]} thread"),
               "state-group": (f"{NAMES[ACCEPT]} state", f"{NAMES[LOGGING]} state")}
#: the keep-alive estimates a preset starts from (they are not on the keep-alive path)
START_CONNECTION_US = 35.0
START_THREAD_US = 30.0


def model_cpu_us(arch: str, params: ModelParams, threads: int | None = None,
                 requests: int = 3000, seed: int = 1) -> float:
    """The model's CPU per request (us), unpaced with a connection per request."""
    from arch_sim.models.runner import simulate_point

    row = simulate_point(arch, params, None, workload="closed", connection="close",
                         requests=requests, seed=seed, threads=threads)
    return row["cpu_util"] * row["cpus"] * 1e6 / row["rps"]


def with_costs(params: ModelParams, arch: str, **costs: float) -> ModelParams:
    """``params`` with ``costs`` set in ``[server.ARCH]``."""
    by_arch = {**params.server_by_arch, arch: {**params.server_by_arch.get(arch, {}), **costs}}
    return params.replace(server_by_arch=by_arch)


def solve(cpu_of: Callable[[float], float], want: float, start: float) -> float:
    """The x >= 0 with ``cpu_of(x) == want``, by secant steps (CPU per request grows about
    linearly with a per-request cost)."""
    lo, hi = 0.0, max(start, 1.0)
    f_lo, f_hi = cpu_of(lo), cpu_of(hi)
    for _ in range(4):
        slope = (f_hi - f_lo) / (hi - lo) if hi != lo else 0.0
        if slope <= 0:
            return hi
        guess = max(0.0, hi + (want - f_hi) / slope)
        lo, f_lo, hi, f_hi = hi, f_hi, guess, cpu_of(guess)
        if abs(f_hi - want) <= 0.01 * want:
            break
    return hi


def split(connection_us: float, share: float = ACCEPT_SHARE) -> dict[str, float]:
    return {"accept_us": share * connection_us, "close_us": (1.0 - share) * connection_us}


def accept_share(arch: str, server: dict[str, Any]) -> float | None:
    """The measured share of ``arch``'s connection cost spent accepting: per request, what the
    accepting thread (or state) spends more with a connection per request than with keep-alive,
    over that and what the closing one spends more - from calibrate's record of ``arch``
    (``server``); None where it holds no such pair, or a group did not grow."""
    if arch == "prefork":
        return _prefork_share(server.get(AFTER_SEND[0]), server.get(AFTER_SEND[1]))
    if arch not in ACCEPT_SPLIT:
        return None
    key, accepting, closing = ACCEPT_SPLIT[arch]
    keep_alive, close = server.get(key), server.get(f"{key}_close")
    if not keep_alive or not close:
        return None
    before, after = keep_alive["us_per_request"], close["us_per_request"]
    grew = [float(after.get(g, 0.0)) - float(before.get(g, 0.0)) for g in (accepting, closing)]
    if min(grew) <= 0:
        return None
    return grew[0] / (grew[0] + grew[1])


def _prefork_share(keep_alive: dict[str, Any] | None,
                   close: dict[str, Any] | None) -> float | None:
    """Prefork's accept share: the whole extra CPU a request with a connection per request,
    less what its work after the last send grows by (the close), over the whole extra."""
    if not keep_alive or not close:
        return None
    closing = float(close["after_send_us"]) - float(keep_alive["after_send_us"])
    extra = float(close["cpu_us_per_request"]) - float(keep_alive["cpu_us_per_request"])
    if closing <= 0 or extra <= closing:
        return None
    return 1.0 - closing / extra


def split_why(arch: str, share: float | None, accepting: str,
              closing: str) -> tuple[str, str]:
    """The comments of ``accept_us`` and ``close_us`` (what each does: ``accepting``,
    ``closing``), the split measured (``share``) or not (None)."""
    if share is None:
        return (f"half of a connection's own cost ({accepting}; the split an estimate)",
                f"the other half ({closing})")
    if arch == "prefork":
        return (f"{share:.0%} of a connection's own cost ({accepting}): the worker's extra CPU "
                "a request unpaced with a connection per request over keep-alive, less what its "
                "work after a reply's last send grows by (perf record, aftersend.py)",
                f"the rest ({closing}: that growth)")
    key = ACCEPT_SPLIT[arch][0]
    a, c = GROUP_NAMES[arch]
    how = "thread by thread, threadcpu.py" if key == "threads_cpu" else "statecpu.py"
    of = "'" if c.endswith("s") else "'s"  # the pool threads' / the logging thread's
    return (f"{share:.0%} of a connection's own cost ({accepting}): the {a}'s extra CPU a "
            f"request unpaced with a connection per request over keep-alive, against it plus "
            f"the {c}{of} extra ({how})", f"the rest ({closing})")


def solve_connection_costs(params: ModelParams, close: dict[str, Any], threads: int,
                           shares: dict[str, float] | None = None
                           ) -> dict[str, dict[str, float]]:
    """Per-architecture ``accept_us``/``close_us`` (and ``thread_create_us``) from the
    close-mode saturation measurements ``close``::

        {"state-group": {"cpu_us_per_request": ...},
         "prefork": {...}, "staged": {...},
         "thread-per-request": {"cpu_us_per_request": ...},               # the pool
         "thread-per-connection": {"cpu_us_per_request": ...}}            # --threads 0

    Missing entries are skipped (their costs stay as they are).  ``shares``: each design's
    measured accept share (:func:`accept_share`); :data:`ACCEPT_SHARE` where it has none.
    """
    shares = shares or {}
    out: dict[str, dict[str, float]] = {}
    for arch, shape in (("state-group", None), ("thread-per-request", threads),
                        ("prefork", None), ("staged", None)):
        measured = close.get(arch)
        if not measured:
            continue
        want = float(measured["cpu_us_per_request"])

        share = shares.get(arch, ACCEPT_SHARE)

        def cpu(connection_us: float, arch: str = arch, shape: int | None = shape,
                base: ModelParams = params, share: float = share) -> float:
            return model_cpu_us(arch, with_costs(base, arch, **split(connection_us, share)),
                                shape)

        out[arch] = split(solve(cpu, want, START_CONNECTION_US), share)
        params = with_costs(params, arch, **out[arch])
    measured = close.get("thread-per-connection")
    if measured:
        want = float(measured["cpu_us_per_request"])

        def cpu_t(create_us: float) -> float:
            p = with_costs(params, "thread-per-request", thread_create_us=create_us)
            return model_cpu_us("thread-per-request", p, 0)

        out.setdefault("thread-per-request", {})["thread_create_us"] = solve(
            cpu_t, want, START_THREAD_US)
    return out


#: connection costs when neither a measurement nor a previous host preset has them
DEFAULT_CONNECTION_COSTS = {
    "thread-per-request": {"accept_us": 20.0, "close_us": 15.0, "thread_create_us": 30.0},
    "state-group": {"accept_us": 20.0, "close_us": 15.0},
    "prefork": {"accept_us": 20.0, "close_us": 15.0},
    "staged": {"accept_us": 20.0, "close_us": 15.0},
    "client_close_us": 0.0,
}


def previous_connection_costs(preset: str | Path = "host") -> dict[str, Any]:
    """accept_us, close_us (per arch), thread_create_us and client_close_us of the current
    ``host`` preset (or ``preset``), or :data:`DEFAULT_CONNECTION_COSTS`."""
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v)
                           for k, v in DEFAULT_CONNECTION_COSTS.items()}
    try:
        from arch_sim.models.params import load_preset

        previous = load_preset(preset)
    except (OSError, ValueError):
        return out
    for arch in ALL_ARCHS:
        server = previous.for_arch(arch).server
        for key in out[arch]:
            out[arch][key] = float(getattr(server, key))
    out["client_close_us"] = float(previous.workload.client_close_us)
    return out
