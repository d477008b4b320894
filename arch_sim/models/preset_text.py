"""The ``host`` preset's TOML text, one section at a time, a comment on every number.

:func:`render` writes the whole file from the calibration's
:class:`~arch_sim.models.calibration_inputs.Inputs` and the per-design
costs being solved (:func:`arch_sim.models.calibration.host_preset_text` solves them, rendering
again after each step); :mod:`~arch_sim.models.calibration_more` writes the sections of the
designs beyond the seed's two.
"""

from __future__ import annotations

import math
import time
from typing import Any

from arch_sim import ALL_ARCHS
from arch_sim.hostbench import cold_curve_text
from arch_sim.machine_state import calibration_reference_us
from arch_sim.models.calibration_inputs import (
    FALLBACK_CLIENT_US,
    FALLBACK_COLD_SLOWDOWN,
    FALLBACK_CPU_CV,
    FALLBACK_WAKE_US,
    Inputs,
)
from arch_sim.models.calibration_more import more_sections
from arch_sim.models.request_costs import SEND_US_PER_KB
from real_servers.stategroup.config import DEFAULT_SEND_CHUNK

#: the model's file-size spec for each harness file set
FILE_SIZES = {"specweb99": "specweb99", "1k": "fixed:1"}

#: What the measured state-group server sends to one connection per pass (its default)
SEND_CHUNK_KB = DEFAULT_SEND_CHUNK / 1024
#: State-group: fixed cost of a pass over the five state modules (five Python calls and an
#: epoll.poll(0)), charged per pass rather than per request.
PASS_US = 2.0


def render(i: Inputs, costs: dict[str, dict[str, float]], refill: dict[str, float],
           conn: dict[str, Any]) -> str:
    """The preset's whole text with these per-design costs, cache refills and connection
    costs."""
    cpu_us = {a: float(i.servers[a]["cpu_us_per_request"]) for a in i.measured_archs}
    lines = (_head(i) + [""] + _scheduler(i) + [""] + _server(i) + [""]
             + _thread_per_request(i, costs, refill, conn) + [""]
             + _state_group(i, costs, refill, conn)
             + more_sections(costs, refill, conn, i.measured_archs, cpu_us, i.why, i.cold_why,
                             i.conn_whys, {a: i.shares(a) for a in ALL_ARCHS},
                             {a: i.measured(a, "after_send") for a in ALL_ARCHS},
                             {a: i.measured(a, "threads_cpu") for a in ALL_ARCHS},
                             i.measured("staged", "handoffs"), i.switch_us,
                             FALLBACK_WAKE_US if i.wake_us is None else float(i.wake_us))
             + [""] + _network() + [""] + _workload(i, conn) + [""])
    return "\n".join(lines)


def _head(i: Inputs) -> list[str]:
    name, host, hostname, kernel, placeholder = i.name, i.host, i.hostname, i.kernel, i.placeholder
    cpus, tag, server_cpus, hz = i.cpus, i.tag, i.server_cpus, i.hz
    return [
        f"# {name}: this machine, for comparing the models with the real Python servers.",
        f"# Written by arch-sim calibrate ({_now()}) from measurements on {hostname}"
        + (f" taken {i.m['time']}" if i.m.get("time") else ""),
        f"# (kernel {kernel or 'unknown'}, {host.get('cpu_model', 'unknown CPU')}, "
        f"Python {host.get('python', '?')}).",
        "# Numbers marked 'measured' come from that run; the others say where they come "
        "from.",
    ] + ([
        "# PLACEHOLDER for any other machine: run `arch-sim calibrate` to measure yours.",
    ] if placeholder else []) + [
        "",
        f'name = "{name}"',
        f'description = "{hostname}: Linux {kernel or "?"} (EEVDF), CPython servers, '
        f'wrk on loopback"',
        f"placeholder = {'true' if placeholder else 'false'}",
        "",
        "[machine]",
        f"cpus = {cpus}        # {tag}: the servers were pinned to CPUs {server_cpus}",
        f"hz = {hz}        # CONFIG_HZ of the kernel (250 unless calibrate read another); "
        "no model path here depends on ticks: epoll sleeps have no timeout",
    ] + _reference_line(i)


def _reference_line(i: Inputs) -> list[str]:
    """``[machine] reference_us``: :func:`~arch_sim.machine_state.calibration_reference_us`."""
    value = calibration_reference_us(i.m)
    if not value:
        return []
    end = (i.m.get("machine_state") or {}).get("reference_us_end")
    when = "" if not end else (f", {float(i.cold_warm):.2f} us at the start of the calibration "
                               f"and {float(end):.2f} at its end: their mean")
    return [f"reference_us = {value:.2f}  # {i.tag}: the reference work's warm time on CPU "
            f"{i.server_cpus[0]} (machine_state.ReferenceWork, timed by hostbench.cold_cache"
            f"{when}); simulate --like compares a bench run's with it"]


def _waiter(futex: dict) -> str:
    """How the woken thread was run, for measurements that say (older ones do not)."""
    if futex.get("waiter_policy") == "idle":
        return (", the woken thread at SCHED_IDLE so that it cannot preempt the releaser "
                f"(preempted {float(futex['waker_preempted']):.2f} times a release)")
    if futex.get("waiter_policy") == "normal":
        return (", SCHED_IDLE refused: the woken thread preempted the releaser "
                f"{float(futex['waker_preempted']):.2f} times a release, its switches included")
    return ""


def _scheduler(i: Inputs) -> list[str]:
    kernel, tag, switch, switch_us, base, ncpu_host = (i.kernel, i.tag, i.switch, i.switch_us,
                                                       i.base, i.ncpu_host)
    slice_ms, wake, wake_us, futex, cv, decay, decay_ms = (i.slice_ms, i.wake, i.wake_us, i.futex,
                                                           i.cv, i.decay, i.decay_ms)
    return [
        "[scheduler]",
        f'policy = "eevdf"          # Linux {kernel or ">= 6.6"}: EEVDF picks the eligible '
        "task with the earliest virtual deadline (kernel/sched/fair.c)",
        f"switch_us = {switch_us:.3f}        # {tag}: lat_ctx-style pipe ping-pong between "
        f"two processes on one CPU, {switch['roundtrip_us']:.2f} us per round trip minus "
        f"2 x {switch['pipe_pair_us']:.2f} us of pipe work, halved",
        "per_runnable_us = 0.0      # EEVDF keeps runnable tasks in a tree ordered by "
        "deadline: no per-task loop",
        "refill_us_per_kb = 0.0     # not modelled separately: the measured CPU per request "
        "below already includes whatever cache refill the real servers pay",
        "working_set_kb = 0.0       # see refill_us_per_kb",
        f"timeslice_ms = {slice_ms:.2f}        # EEVDF base slice: "
        f"{base:.2f} ms x (1 + log2({min(max(ncpu_host, 1), 8)} CPUs)), "
        "sysctl_sched_base_slice with SCHED_TUNABLESCALING_LOG (kernel/sched/fair.c)",
        "wakeup_preempt = true      # kept for the fifo policy; EEVDF decides preemption "
        "from lag and deadlines",
        f"wakeup_latency_us = {float(wake['median_us']):.1f}   # {tag}: median time from "
        "a pipe write on one CPU to the blocked reader running on the other "
        f"(p99 {float(wake['p99_us']):.1f} us)",
        f"wake_us = {float(wake_us if wake_us is not None else FALLBACK_WAKE_US):.2f}"
        "             # "
        + (f"{tag}: a Python thread's CPU time in a Lock.release() that wakes a thread "
           f"asleep on it on the same CPU ({float(futex['release_woke_us']):.2f} us), less "
           f"a release nobody waits for ({float(futex['release_idle_us']):.2f} us): the "
           f"futex wake{_waiter(futex)} (hostbench.futex_wake_us)" if wake_us is not None else
           "not measured by this calibrate run: hostbench.futex_wake_us() on the "
           "development host"),
        f"cpu_time_cv = {cv if cv is not None else FALLBACK_CPU_CV:.3f}      # "
        + (f"{tag}: run-to-run variation of the CPU time of the same Python work, "
           f"1 ms apart{i.cv_left_out} (hostbench.cpu_time_cv)" if cv is not None else
           "not measured by this calibrate run: cpu_time_cv() on the development host "
           "(same Python work, 1 ms apart); it decides EEVDF's close calls"),
        f"cold_decay_ms = {decay_ms:.2f}       # "
        + ("set by hand (an experiment on the refill's shape), not measured"
           if i.decay_by_hand else _unfit_why(i, tag) if i.decay_unfit else
           f"{tag}: extra CPU of the same short socket + Python work after the CPU "
           "idled 0.3-30 ms, fitted to 1 - exp(-idle / decay) (hostbench.cold_cache)"
           if decay is not None else
           "not measured by this calibrate run: cold_cache() on the development host "
           "(4-8 ms)"),
        _slowdown_line(i, tag),
        _mm_switch_line(i, tag),
    ]


def _mm_switch_line(i: Inputs, tag: str) -> str:
    """``mm_switch_us``: what a switch to another of the prefork server's many processes
    costs beyond ``switch_us``, as calibrate measured it, or 0 where it did not."""
    ring = i.m.get("process_switch")
    if not ring:
        return ("mm_switch_us = 0.0         # switch_us above was measured between two "
                "processes: it holds the page-table switch a prefork worker pays [LX-switch-mm]")
    return (f"mm_switch_us = {float(ring['extra_us']):.2f}       # {tag}: a token passed round a "
            f"ring of {ring['members']} processes, each with a Python heap of its own, "
            f"{float(ring['processes_us']):.1f} us a turn against "
            f"{float(ring['threads_us']):.1f} in a ring of as many threads "
            "(hostbench.process_switch_us): a switch into another of the prefork server's "
            "workers meets a cold address space and working set [LX-switch-mm]")


def _unfit_why(i: Inputs, tag: str) -> str:
    """``cold_decay_ms``'s comment where calibrate's cold curve had no decay to fit."""
    pairs = cold_curve_text(i.cold_curve)
    return (f"{tag}, but no decay fits what it measured (the same short socket + Python work "
            f"took {pairs or 'no time'} more than warm; the fit ran to its bound, "
            f"{float(i.decay):.2f} ms): the development host's, as if not measured "
            "(hostbench.cold_cache: 4-8 ms)")


def _slowdown_line(i: Inputs, tag: str) -> str:
    """``cold_slowdown``: calibrate's cold reference work's refill over its warm time, or the
    development host's (:data:`FALLBACK_COLD_SLOWDOWN`) where this calibration did not measure
    both or no decay fits its curve."""
    if i.cold_refill and i.cold_warm and not (i.decay_by_hand or i.decay_unfit):
        k = float(i.cold_refill) / float(i.cold_warm)
        return (f"cold_slowdown = {k:.2f}       # {tag}: the cold reference work's refill over "
                f"its warm time ({float(i.cold_refill):.1f} / {float(i.cold_warm):.1f} us, "
                "hostbench.cold_cache): cold code runs this much + 1 times slower until the "
                "refill is paid")
    why = ("no decay fits this calibrate run's cold curve (cold_decay_ms above)"
           if i.decay_unfit else "not measured by this calibrate run")
    return (f"cold_slowdown = {FALLBACK_COLD_SLOWDOWN:.2f}       # {why}: the development "
            "host's, as its decay (its cold reference work's refill over its warm time, 39.9 / "
            "13.1 us on 2026-12-01): cold code runs this much + 1 times slower until the refill "
            "is paid")


def _server(i: Inputs) -> list[str]:
    threads, tag = i.threads, i.tag
    return [
        "[server]",
        "# Both real servers share the HTTP core; their loops differ, so each architecture "
        "gets its own",
        "# per-request costs below ([server.ARCH]), solved so that the model spends the "
        "measured CPU",
        "# per request at saturation.  The split over states is an estimate (it moves "
        "where the GIL",
        "# is dropped within a request, not what a request costs).",
        "accept_us = 20.0           # estimate, for servers not in the [server.ARCH] "
        "sections below (which solve their own from a connection-per-request run)",
        "close_us = 15.0            # estimate: as accept_us",
        "thread_create_us = 30.0    # estimate: as accept_us (threading.Thread start)",
        f"threads = {threads}               # {tag}: the bench ran the pool server with "
        f"--threads {threads}",
        f"dispatcher = {'true' if threads > 0 else 'false'}          # "
        "real_servers/threaded/pool.py: a dispatcher thread epolls the idle connections "
        "and wakes one pool thread per request",
        "gil = true                 # both real servers run on CPython: one interpreter "
        "lock per process",
        "gil_interval_ms = 5.0      # sys.getswitchinterval() default (CPython "
        "Python/ceval_gil.h)",
        "max_connections = 1000     # the real servers' --max-connections default",
        "cold_refill_us = 0.0       # per architecture below: each server's code is its own "
        "working set",
        f"pass_us = {PASS_US:.1f}              # estimate: one pass calls five state "
        "modules and epoll.poll(0)",
        "poll_item_us = 3.0         # estimate: a new connection's first recv() that finds "
        "nothing yet (EAGAIN: a system call and an exception)",
        "readiness_events = true    # real_servers/stategroup: a connection waits parked "
        "until epoll reports it readable (edge-triggered), not looked at every pass",
        "cohort_factor = 1.0        # not measured for Python: no cohort effect assumed",
        f"max_send_kb_per_pass = {SEND_CHUNK_KB:.1f}  # the state-group server's "
        "--send-chunk default (real_servers/stategroup/config.py): at most that much per "
        "connection per pass (kHTTPd: 16 KB)",
        "sleep_timeout_jiffies = 0.0  # the real worker blocks in epoll_wait with no "
        "timeout when a pass moved nothing (no jiffy tick, unlike kHTTPd)",
        "userspace_frac = 0.0       # static files only",
        "userspace_handoff_us = 20.0  # estimate; unused (no user-space requests)",
        "userspace_service_us = 200.0  # estimate; unused (no user-space requests)",
        f"send_us_per_kb = {SEND_US_PER_KB:.2f}      # estimate: loopback send copies each "
        "byte once into the socket buffer (~10 GB/s)",
    ]


def _thread_per_request(i: Inputs, costs: dict[str, dict[str, float]], refill: dict[str, float],
                        conn: dict[str, Any]) -> list[str]:
    t, tpr, mean_kb = costs["thread-per-request"], i.tpr, i.mean_kb
    why, cold_why, conn_why = i.why, i.cold_why, i.conn_why
    shares = i.shares("thread-per-request")
    threads = i.measured("thread-per-request", "threads_cpu")
    accept_why, close_why = i.conn_whys("thread-per-request", "accept4, register",
                                        "unregister, shutdown, close")
    whose = ("the dispatcher's (main thread's) share of the server's CPU as calibrate read it "
             f"thread by thread over {int(threads['requests'])} requests (schedstat; "
             "threadcpu.py)" if threads else
             "the share is the dispatcher's, measured once with perf sched on the development "
             "host")
    return [
        "[server.thread-per-request]",
        f"dispatch_us = {t['dispatch_us']:.2f}        # "
        + why("thread-per-request",
              f"{i.dispatch_share():.0%} of the pool server's "
              f"{float(tpr.get('cpu_us_per_request', math.nan)):.1f} us per request at "
              f"saturation (less {float(tpr.get('reschedules_per_request', 0)):.2f} "
              f"switches x switch_us); {whose}"),
        f"parse_us = {t['parse_us']:.2f}           # "
        + why("thread-per-request", f"{shares['parse']:.0%} of the pool thread's "
              "share (recv, parse, respond)" + (
                  "; the pool thread's split as it timed its serving and sending with "
                  "--state-cpu, the rest of its CPU (from /proc) the logging state's "
                  "(threadcpu.py)" if threads and threads.get("pool_shares") else "")),
        f"send_us = {t['send_us']:.2f}            # "
        + why("thread-per-request", f"{shares['send']:.0%} of the pool thread's "
              f"share, less the per-KB part for a {mean_kb:.1f} KB mean reply"),
        f"log_us = {t['log_us']:.2f}             # "
        + why("thread-per-request", f"{shares['log']:.0%} of the pool thread's "
              "share (letting the connection go, bookkeeping)"),
        f"cold_refill_us = {refill['thread-per-request']:.1f}     # "
        + cold_why("thread-per-request"),
        f"accept_us = {conn['thread-per-request']['accept_us']:.2f}          # " + accept_why,
        f"close_us = {conn['thread-per-request']['close_us']:.2f}           # " + close_why,
        f"thread_create_us = {conn['thread-per-request']['thread_create_us']:.2f}   # "
        + conn_why("thread-per-connection", "threading.Thread set-up and start, split "
                   "between the acceptor and the new thread"),
    ]


def _state_group(i: Inputs, costs: dict[str, dict[str, float]], refill: dict[str, float],
                 conn: dict[str, Any]) -> list[str]:
    s, sg = costs["state-group"], i.sg
    why, cold_why = i.why, i.cold_why
    shares, found = i.shares("state-group"), i.measured("state-group", "states_cpu")
    accept_why, close_why = i.conn_whys("state-group", "accept state", "close in logging")
    timed = ("" if not found else
             f" (its states' shares of their CPU, timed by the worker over "
             f"{int(found['requests'])} requests with --state-cpu; statecpu.py)")
    return [
        "[server.state-group]",
        f"parse_us = {s['parse_us']:.2f}           # "
        + why("state-group", f"{shares['parse']:.0%} of the state-group worker's "
              f"{float(sg.get('cpu_us_per_request', math.nan)):.1f} us per request at "
              f"saturation{timed}"),
        f"send_us = {s['send_us']:.2f}            # "
        + why("state-group", f"{shares['send']:.0%} of it, less the per-KB part"),
        f"log_us = {s['log_us']:.2f}             # "
        + why("state-group", f"{shares['log']:.0%} of it (logging state: log "
              "line, re-arm)"),
        f"cold_refill_us = {refill['state-group']:.1f}     # "
        + cold_why("state-group"),
        f"accept_us = {conn['state-group']['accept_us']:.2f}          # " + accept_why,
        f"close_us = {conn['state-group']['close_us']:.2f}           # " + close_why,
    ]


def _network() -> list[str]:
    return [
        "[network]",
        "sndbuf_kb = 4096.0         # loopback TCP autotunes the send buffer up to "
        "net.ipv4.tcp_wmem's maximum (4 MB default)",
        "wake_free_frac = 0.333     # a TCP writer is woken when at least a third of the "
        "buffer is free (sk_stream_wspace) [NET-wspace-24]",
        "client_mbit_s = 20000.0    # estimate: wrk reads loopback replies at memory-copy "
        "speed",
        "request_lag_us = 5.0       # estimate: loopback handshake to request",
        "one_way_us = 5.0           # estimate: loopback delivery runs in the sender's "
        "system call, a few us",
    ]


def _workload(i: Inputs, conn: dict[str, Any]) -> list[str]:
    tag, file_set, connections, client, client_close = (i.tag, i.file_set, i.connections,
                                                         i.client, i.client_close)
    return [
        "[workload]",
        'kind = "closed"            # wrk: a fixed number of connections, each waiting for '
        "its reply before the next request",
        f'file_sizes = "{FILE_SIZES.get(file_set, "specweb99")}"   # {tag}: '
        f"the bench's --file-set {file_set}",
        f"connections = {connections}           # {tag}: the bench's --connections",
        "think_tick_ms = 1.0        # wrk: delay() returns whole ms and its ae timers have "
        "ms resolution; one event loop fires them when it next wakes, in bursts",
        f"client_us = {client if client is not None else FALLBACK_CLIENT_US:.2f}         # "
        + (f"{tag}: wrk's CPU per request at saturation (one thread: requests leave "
           "it one at a time)" if client is not None else
           "not measured by this calibrate run: wrk -t1's CPU per request at "
           "saturation on the development host (9.9-14.4 us); wrk sends one request "
           "at a time"),
        f"client_close_us = {float(client_close if client_close is not None else conn['client_close_us']):.2f}   # "  # noqa: E501
        + (f"{tag}: wrk's extra CPU per request with a connection per request (connect, "
           "close), unpaced against the faster server" if client_close is not None else
           "not measured by this calibrate run: kept from the previous host preset"),
    ]


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
