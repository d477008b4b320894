"""The ``host`` preset's sections for the designs beyond the seed's two: ``[server.prefork]`` and
``[server.staged]`` (:func:`arch_sim.models.preset_text.render` writes the rest).

A design ``arch-sim calibrate`` measured gets its costs solved as the seed's two get theirs (its
CPU per request at saturation split over the states, the cache refill from the paced run, the
connection costs from the connection-per-request run); one it did not measure - no real server
module yet, or not in this calibration - is a *placeholder*: thread-per-request's values, each
line saying so, until ``arch-sim calibrate --arch NAME`` measures it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arch_sim import MORE_ARCHS
from arch_sim.models.params import ServerParams
from arch_sim.threadcpu import STAGE_OF
from real_servers.core.lifecycle import ACCEPT, LOGGING, NAMES

#: the comment of every placeholder value
PLACEHOLDER = ("placeholder until arch-sim calibrate --arch prefork --arch staged: "
               "thread-per-request's value")
#: what each design is called in a cost's comment
WHO = {"prefork": "prefork worker's", "staged": "staged server's"}


def shape_line(arch: str) -> str:
    """The design's shape, as the real server runs it by default."""
    if arch == "prefork":
        return (f"workers = {ServerParams.workers}               # the real prefork server's "
                "--workers default (real_servers/prefork), one per wrk connection")
    return (f'stage_threads = "{ServerParams.stage_threads}"  # the real staged server\'s '
            "--stage-threads defaults (real_servers/staged)")


#: the staged server's hand-offs, measured once with benchmarks/staged_handoffs.py (2026-12-01,
#: wrk unpaced with keep-alive, 62,628 requests; the logging thread's blocking gets, the puts
#: that woke a thread, wait_headers' blocking polls), each clock read's 0.7 us taken out and, for
#: the waits, that calibration's switch_us (4.35 us) too: the model charges a switch itself.
#: What a preset takes where its calibration did not time them (:mod:`arch_sim.handoffs`).
HANDOFFS = {
    "queue_wait_us": (6.0, "a blocking get()'s Python, 3.9 before the wait and 3.5 after"),
    "futex_wait_us": (8.5, "its blocking acquire's own CPU, 13.6 us, less switch_us"),
    "wake_extra_us": (3.1, "a put() that woke a thread took 9.3 us, one that did not 3.1: "
                           "the rest beyond wake_us"),
    "poll_wait_us": (12.1, "wait_headers' epoll.poll() that slept, 17.2 us, less switch_us"),
}


def handoff_lines(measured: dict[str, Any] | None = None, switch_us: float = 0.0,
                  wake_us: float = 0.0, why: Callable[[str], str] | None = None) -> list[str]:
    """``[server.staged]``'s hand-off costs, each with where it came from: timed by this
    calibrate run (``measured``: :func:`arch_sim.handoffs.measure`; ``why`` writes the
    comment), or :data:`HANDOFFS`."""
    from arch_sim.handoffs import preset_costs

    found = preset_costs(measured, switch_us, wake_us) if measured else {}
    lines = []
    for key, (value, what) in HANDOFFS.items():
        if key in found and why is not None:
            value, what = found[key]
            lines.append(f"{key} = {value:.1f}".ljust(26) + " # " + why(
                f"{what} (each thread's CPU clock around its queue calls over "
                f"{int(measured['requests'])} requests unpaced; handoffs.py)"))
        else:
            lines.append(f"{key} = {value:.1f}".ljust(26) + " # measured once (benchmarks/"
                         f"staged_handoffs.py, 2026-12-01, unpaced): {what}")
    return lines


def thread_share(what: str, threads: dict[str, Any] | None) -> str:
    """Where a staged cost's share came from: the ``what`` stage thread's share of the stage
    threads' CPU as calibrate read it thread by thread (:mod:`arch_sim.threadcpu`), or
    nothing (the estimate)."""
    if threads is None:
        return ""
    per = threads["us_per_request"]
    return (f": the {what} thread's share of the stage threads' CPU "
            f"({float(per.get(what, 0.0)):.1f} us a request over {int(threads['requests'])} "
            "requests, schedstat; threadcpu.py)")


def log_why(share: float, measured: dict[str, Any] | None) -> str:
    """What ``log_us`` is: the estimated share, or the work after the last send as measured
    (:mod:`arch_sim.aftersend`)."""
    if measured is None:
        return f"{share:.0%} of it (logging: log line, re-arm)"
    return (f"{share:.0%} of it: the work after the last send "
            f"({float(measured['after_send_us']):.1f} of "
            f"{float(measured['cpu_us_per_request']):.1f} us a request over "
            f"{int(measured['stretches'])} sends, perf record of the syscalls; aftersend.py)")


def more_sections(costs: dict[str, dict[str, float]], refill: dict[str, float],
                  conn: dict[str, dict[str, float]], measured: list[str],
                  cpu_us: dict[str, float], why: Callable[[str, str], str],
                  cold_why: Callable[[str], str],
                  conn_whys: Callable[[str, str, str], tuple[str, str]],
                  shares: dict[str, dict[str, float]],
                  after_send: dict[str, dict[str, Any]] | None = None,
                  threads_cpu: dict[str, dict[str, Any] | None] | None = None,
                  handoffs: dict[str, Any] | None = None, switch_us: float = 0.0,
                  wake_us: float = 0.0) -> list[str]:
    """The TOML lines of ``[server.prefork]`` and ``[server.staged]``: measured (``why``,
    ``cold_why``, ``conn_whys`` write the comments, as for the seed's two) or placeholders.
    ``shares``: per design, how its CPU was split over parse, send and log; ``after_send``
    and ``threads_cpu``: calibrate's measurements those shares came from, where it made
    them (the work after the last send; the CPU thread by thread); ``handoffs``: the staged
    server's hand-offs as calibrate timed them (with the preset's ``switch_us`` and
    ``wake_us``)."""
    after_send = after_send or {}
    threads_cpu = threads_cpu or {}
    tpr, tpr_conn = costs["thread-per-request"], conn["thread-per-request"]
    lines: list[str] = []
    for arch in MORE_ARCHS:
        lines += ["", f"[server.{arch}]", shape_line(arch)]
        if arch == "staged":
            lines += handoff_lines(handoffs, switch_us, wake_us,
                                   lambda what: why("staged", what))
        if arch not in measured:
            values = [("parse_us", tpr["parse_us"], ".2f"), ("send_us", tpr["send_us"], ".2f"),
                      ("log_us", tpr["log_us"], ".2f"),
                      ("cold_refill_us", refill["thread-per-request"], ".1f"),
                      ("accept_us", tpr_conn["accept_us"], ".2f"),
                      ("close_us", tpr_conn["close_us"], ".2f")]
            lines += [f"{key} = {value:{fmt}}".ljust(26) + f" # {PLACEHOLDER}"
                      for key, value, fmt in values]
            continue
        c = costs[arch]
        measured_log = after_send.get(arch)
        split = shares[arch]
        threads = threads_cpu.get(arch) if arch == "staged" else None
        accept_why, close_why = conn_whys(arch, NAMES[ACCEPT], f"close in {NAMES[LOGGING]}")
        lines += [
            f"parse_us = {c['parse_us']:.2f}           # "
            + why(arch, f"{split['parse']:.0%} of the {WHO[arch]} "
                  f"{cpu_us[arch]:.1f} us per request at saturation"
                  + thread_share(STAGE_OF["parse"], threads)),
            f"send_us = {c['send_us']:.2f}            # "
            + why(arch, f"{split['send']:.0%} of it, less the per-KB part"
                  + thread_share(STAGE_OF["send"], threads)),
            f"log_us = {c['log_us']:.2f}             # "
            + why(arch, f"{split['log']:.0%} of it" + thread_share(STAGE_OF["log"], threads)
                  if threads is not None else log_why(split["log"], measured_log)),
            f"cold_refill_us = {refill[arch]:.1f}     # " + cold_why(arch),
            f"accept_us = {conn[arch]['accept_us']:.2f}          # " + accept_why,
            f"close_us = {conn[arch]['close_us']:.2f}           # " + close_why,
        ]
    return lines
