"""From ``arch-sim calibrate``'s raw measurements of a host to a ``host`` model preset.

:func:`host_preset_text` solves the costs and writes the TOML (:mod:`~arch_sim.models.preset_text`
renders it section by section).  Every number in it carries a comment: either
"measured by arch-sim calibrate on HOST: what", or, for a number nobody measured, where it comes
from (kernel source, the real servers' code) and why it is that.

The measurements it reads (``arch_sim.calibrate`` collects them)::

    {"host": {...runinfo.host_info()...},
     "switch": {"switch_us", "roundtrip_us", "pipe_pair_us"},      # lat_ctx-style ping-pong
     "wakeup": {"median_us", "p99_us"},                             # cross-CPU wake-up
     "servers": {"thread-per-request": {"cpu_us_per_request", "reschedules_per_request",
                                        "rps", "threads"},
                 "state-group": {...}, "prefork": {...}, "staged": {...}},  # saturation
     "server_cpus": [0], "client_cpus": [1], "file_set": "specweb99", "connections": 64,
     # optional - measured when calibrate provides them, else the fallbacks below:
     "client": {"cpu_us_per_request"},     # wrk's own CPU per request at saturation
     "cpu_jitter": {"cv"},                 # cpu_time_cv(): run-to-run CPU time variation
     "cold_cache": {"decay_ms"},           # cold_cache(): how fast an idle CPU goes cold
     "futex": {"wake_us", ...},            # futex_wake_us(): a wake-up's cost to its waker
     # and, per server, "paced": {"target_rps", "cpu_us_per_request", ...}: the same bench at
     # a paced load, where the CPU idles between requests (solves cold_refill_us)
     "close": {"state-group" | "thread-per-request" | "thread-per-connection" | "prefork"
               | "staged":
                   {"cpu_us_per_request", ...},      # unpaced, a connection per request
               "client_close_us"},                   # wrk's extra CPU per request for that
    }

A CPU that idled runs the next request slower (its caches went cold: on this 2-vCPU VM a request
at 1000 req/s costs three times its CPU at saturation).  The model charges that as a cache refill
on a task's first burst after an idle (``cold_refill_us``, ``cold_decay_ms`` in scheduler.py);
its decay time comes from a microbenchmark, its size is solved like the server costs: so that the
model spends the measured CPU per request at the paced load.

The servers' CPU per request at saturation is split over the lifecycle states in fixed shares
(the split only decides where in a request the GIL is dropped, not how much a request costs),
and the total is then solved so that the model, run unpaced on this preset, spends the
measured CPU per request: the preset reproduces what was measured, including the CPU the model
itself charges for every context switch.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from arch_sim.models.calibration_inputs import Inputs
from arch_sim.models.connection_costs import previous_connection_costs
from arch_sim.models.params import from_dict
from arch_sim.models.preset_text import render
from arch_sim.models.request_costs import (
    model_cpu_us_per_request,
    previous_cold_refill_us,
    previous_server_costs,
    scale_costs,
    solve_refill,
    split_costs,
)


def host_preset_text(measurements: dict[str, Any], *, name: str = "host",
                     solve: bool = True, placeholder: bool = False,
                     only: Iterable[str] | None = None, previous: str | Path = "host") -> str:
    """The TOML text of a preset for the host ``measurements`` describe.

    With ``solve`` (default) the per-request server costs are adjusted with a few short unpaced
    simulations so that the model's CPU per request at saturation equals the measured one for
    each architecture (to within 2%); without, they are set analytically (measured CPU minus
    the measured switches times the switch cost).  ``placeholder`` marks a preset shipped for
    another machine than the one it was measured on.

    ``only``: solve these architectures' costs alone (``arch-sim calibrate --arch``); every
    other architecture keeps its costs from the ``previous`` preset exactly as they were
    (their comments still name the measurements in ``measurements``).  A design beyond the
    seed's two that ``measurements`` holds no saturation bench of gets thread-per-request's
    values as placeholders (:mod:`~arch_sim.models.calibration_more`).
    """
    i = Inputs(measurements, name=name, placeholder=placeholder)
    servers, close = i.servers, i.close
    solved = [a for a in i.measured_archs if only is None or a in set(only)]
    paced = {a: row for a, row in i.paced_all.items() if a in solved}  # solved here
    # per arch, solved below from the paced benches.  A design solved here starts from no
    # refill, not from the previous preset's: the solve stops within a tolerance, so where it
    # started would show in what it finds, and the same measurements would render a different
    # preset after every calibration
    refill = {arch: 0.0 if arch in paced else value
              for arch, value in previous_cold_refill_us(previous).items()}
    costs = previous_server_costs(previous)
    conn = previous_connection_costs(previous)
    for arch in solved:
        costs[arch] = split_costs(float(servers[arch]["cpu_us_per_request"])
                                  - float(servers[arch].get("reschedules_per_request", 0.0))
                                  * i.switch_us, arch, i.mean_kb, i.shares(arch),
                                  i.dispatch_share())

    text = render(i, costs, refill, conn)
    if solve:
        # the refill changes what the model spends at saturation a little (the CPU idles now
        # and then even unpaced), so with paced benches solve both twice
        for _ in range(2 if paced else 1):
            for _ in range(3):
                params = from_dict(_toml(text), source="calibration")
                worst = 0.0
                scaled = {}
                for arch in solved:
                    want = float(servers[arch]["cpu_us_per_request"])
                    got = model_cpu_us_per_request(arch, params)
                    worst = max(worst, abs(got - want) / want)
                    if got > 0:
                        scaled[arch] = scale_costs(costs[arch], want, got, arch, params)
                if worst <= 0.02:
                    break
                costs.update(scaled)
                text = render(i, costs, refill, conn)
            if paced:
                params = from_dict(_toml(text), source="calibration")
                for arch, row in paced.items():
                    refill[arch] = solve_refill(arch, params, row, i.connections)
                text = render(i, costs, refill, conn)
        mine = {k: v for k, v in close.items() if isinstance(v, dict) and (
            k if k != "thread-per-connection" else "thread-per-request") in solved}
        if mine:
            from arch_sim.models.connection_costs import solve_connection_costs

            params = from_dict(_toml(text), source="calibration")
            for arch, values in solve_connection_costs(params, mine, i.threads,
                                                       i.accept_shares()).items():
                conn[arch].update(values)
            text = render(i, costs, refill, conn)
    return text


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)
