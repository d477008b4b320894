"""The work a prefork worker does after the last send of a reply, before it waits for the next
request, measured: the share of a request's CPU the model's ``log_us`` stands for.

At saturation with keep-alive that work races wrk's answer on the other CPU: a worker that is
still busy when the next request arrives finds it there and does not sleep (docs/FIDELITY.md,
"Prefork").  The model's prefork worker runs ``log_us`` after its last send, so the share of a
request's CPU spent there decides how often it sleeps - and a fixed guess of that share (15%)
made the model sleep on every request.

How: the prefork server on the server's CPU under wrk -c 64, keep-alive, unpaced (the client's
CPU); ``perf record`` of the syscall tracepoints on the server's CPU for ``seconds``.  For each
worker, the time from the end of a send (``sendto``, ``sendmsg``, ``sendfile64``) to the start
of its next wait (``recvfrom``, ``poll``, ``ppoll``) is one after-send stretch; a stretch
during which the worker was switched out (``sched:sched_switch`` with it as the task leaving:
another worker ran meanwhile, for about a request's time) is left out, and so is any over
``PREEMPTED_S``.  Their mean, over the CPU a request cost
over the whole wrk run (getrusage through ``/server-status``, read before and after it), is the
share.  Needs root and perf (as calibrate's other traced measurements do).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

SEND_EXITS = ("syscalls:sys_exit_sendto", "syscalls:sys_exit_sendmsg",
              "syscalls:sys_exit_sendfile64")
WAIT_ENTERS = ("syscalls:sys_enter_recvfrom", "syscalls:sys_enter_poll",
               "syscalls:sys_enter_ppoll")
#: with a connection per request the worker's next wait is accept(): the stretch then holds
#: the close too (shutdown, the drain's recv, close), so it ends only there
ACCEPT_ENTERS = ("syscalls:sys_enter_accept4", "syscalls:sys_enter_accept")
#: fires with the task leaving the CPU as its ``tid``
SWITCH = "sched:sched_switch"
#: a stretch this long was preempted (the work itself takes tens of microseconds)
PREEMPTED_S = 1e-3
#: ``perf script -F tid,time,event``: "  TID  SECONDS: EVENT:"
LINE = re.compile(r"^\s*(\d+)\s+([\d.]+):\s+(\S+?):?\s*$")


def stretches(script: str, waits: tuple[str, ...] = WAIT_ENTERS) -> list[float]:
    """The after-send stretches (s) in ``perf script -F tid,time,event`` output, per thread:
    from a send's end to the thread's next wait (one of ``waits``); a wait with no send before
    it (the first request, a connection's first bytes) starts none; one the thread was switched
    out in (preempted) is left out, as is one over ``PREEMPTED_S``."""
    sent: dict[int, float] = {}
    out: list[float] = []
    for line in script.splitlines():
        m = LINE.match(line)
        if m is None:
            continue
        tid, t, event = int(m.group(1)), float(m.group(2)), m.group(3)
        if event in SEND_EXITS:
            sent[tid] = t
        elif event == SWITCH:
            sent.pop(tid, None)
        elif event in waits and tid in sent:
            gap = t - sent.pop(tid)
            if gap < PREEMPTED_S:
                out.append(gap)
    return out


def perf_missing() -> str | None:
    """Why this cannot run here (no perf, not root), or None."""
    if shutil.which("perf") is None:
        return "perf not found (Debian: apt-get install -y linux-perf)"
    if os.geteuid() != 0:
        return "perf record of syscall tracepoints needs root"
    return None


def measure(seconds: float = 3.0, server_cpu: int = 0, client_cpu: int = 1,
            file_set: str = "specweb99", connections: int = 64,
            warmup: float = 1.0, keep_alive: bool = True) -> dict[str, Any]:
    """The prefork server's after-send work at saturation (see the module docstring):
    ``after_send_us`` (mean), ``stretches``, ``cpu_us_per_request`` and ``share``.  Not
    ``keep_alive``: a connection per request, each stretch up to the worker's next accept()."""
    waits = WAIT_ENTERS if keep_alive else ACCEPT_ENTERS
    from arch_sim.harness import loaded, servers

    why = perf_missing()
    if why is not None:
        raise RuntimeError(why)
    with tempfile.TemporaryDirectory(prefix="arch-sim-aftersend-") as tmp:
        data = Path(tmp) / "perf.data"
        with loaded.serving("prefork", servers.arch_args("prefork", None, [server_cpu]),
                            server_cpu=server_cpu, file_set=file_set) as (server, fs):
            # every worker holds one of wrk's connections while it runs, so /server-status
            # is read before wrk starts and after it exits: the CPU per request is the whole
            # run's (its 64 connects and closes are a few in ten thousand requests)
            before = server.status()
            with loaded.wrk_load(server, fs, seconds=seconds, warmup=warmup,
                                 client_cpu=client_cpu, connections=connections,
                                 keep_alive=keep_alive):
                subprocess.run(["perf", "record", "-q", "-C", str(server_cpu), "-o", str(data)]
                               + [f"-e{e}" for e in SEND_EXITS + waits + (SWITCH,)]
                               + ["--", "sleep", str(seconds)],
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            after = server.status()
        script = subprocess.run(["perf", "script", "-i", str(data), "-F", "tid,time,event"],
                                check=True, capture_output=True, text=True).stdout
    gaps = stretches(script, waits)
    served = after["requests"] - before["requests"]
    cpu_s = sum(after[k] - before[k] for k in ("cpu_user_s", "cpu_system_s"))
    if not gaps or served <= 0:
        raise RuntimeError(f"no after-send stretch traced ({served} requests served)")
    mean_us = sum(gaps) / len(gaps) * 1e6
    cpu_us = cpu_s / served * 1e6
    return {"after_send_us": mean_us, "stretches": len(gaps), "cpu_us_per_request": cpu_us,
            "share": mean_us / cpu_us, "seconds": seconds}
