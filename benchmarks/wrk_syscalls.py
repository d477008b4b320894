"""Where wrk's CPU per request goes: reading replies, writing requests, making connections.

    .venv/bin/python benchmarks/wrk_syscalls.py [--arch state-group] [--seconds 3]
        [--connection keep-alive,close] [--rounds 2]

wrk's CPU per request (the presets' ``client_us``) falls on both sides of a reply - reading
it, writing the next request - and with a connection per request its extra (``client_close_us``)
between them, where the connection is reopened; an experiment that put the model's client on
wrk's loop of passes needed that split (docs/FIDELITY.md, "wrk's loop in passes").  This script
measures it on the real wrk, unpaced against one of our servers
(server on CPU 0, wrk on CPU 1, the specweb99 file set): bpftrace sums the time wrk spends in
each system call (``raw_syscalls`` enter to exit; ``epoll_wait`` left out, since it sleeps
there), and wrk's rusage gives its whole CPU.  Per request:

    read     read / recvfrom / ioctl(FIONREAD): the reply
    write    write / sendto: the request (on loopback the sender's call also delivers it)
    connect  socket, connect, close, fcntl, setsockopt, getsockopt, epoll_ctl: a connection
             (epoll_ctl is there with keep-alive too: wrk arms and disarms writing each request)
    rest     wrk's CPU (its rusage) less the above: user space (parsing, the Lua script's
             request()), epoll_wait's own CPU, interrupts

Tracing every system call slows each a little, so the traced CPU is above an untraced run's.

Needs root (bpftrace) and wrk.  Prints one line per round and mode.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from arch_sim.argtypes import OneLineParser, positive_int  # noqa: E402
from arch_sim.harness import fileset, servers  # noqa: E402
from arch_sim.harness.wrk import find_wrk, lua_script  # noqa: E402

#: runs wrk (its output to a file) and writes wrk's own CPU seconds beside it
WRAPPER = """
import resource, subprocess, sys
out = sys.argv[1]
with open(out + "/wrk.out", "w") as sink:
    subprocess.run(sys.argv[2:], stdout=sink, check=False)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(out + "/cpu", "w").write(str(r.ru_utime + r.ru_stime))
"""

#: x86-64 system call numbers, by what they do for wrk
GROUPS = {
    "read": {0, 16, 45},  # read, ioctl (FIONREAD: more to read?), recvfrom
    "write": {1, 44},  # write, sendto
    "connect": {3, 41, 42, 54, 55, 72, 233},  # close socket connect setsockopt getsockopt fcntl
                                               # epoll_ctl
}
#: where wrk sleeps: epoll_wait, epoll_pwait, epoll_pwait2 (its loop), clock_nanosleep and
#: nanosleep (its main thread waits out the duration), futex (joining the loop's thread)
SKIP = {232, 281, 441, 230, 35, 202}

PROGRAM = r"""
tracepoint:raw_syscalls:sys_enter /comm == "wrk"/ { @start[tid] = nsecs; @nr[tid] = args->id; }
tracepoint:raw_syscalls:sys_exit /comm == "wrk" && @start[tid]/ {
    @ns[@nr[tid]] = sum(nsecs - @start[tid]);
    delete(@start[tid]); delete(@nr[tid]);
}
END { clear(@start); clear(@nr); }
"""


def one_run(url: str, fs: fileset.FileSet, seconds: int, keep_alive: bool) -> dict[str, float]:
    """One unpaced wrk run of ``seconds`` under bpftrace: us per request by group."""
    wrk = find_wrk()
    with tempfile.TemporaryDirectory(prefix="arch-sim-wrksys-") as tmp:
        script = Path(tmp) / "load.lua"
        script.write_text(lua_script(fs.urls, fs.weights, 0.0, keep_alive, 1))
        wrapper = Path(tmp) / "run.py"
        wrapper.write_text(WRAPPER)
        cmd = (f"{sys.executable} {wrapper} {tmp} taskset -c 1 {wrk} -t1 -c64 -d{seconds}s "
               f"--timeout={seconds + 2}s -s {script} {url}")
        trace = subprocess.run(["bpftrace", "-c", cmd, "-e", PROGRAM], capture_output=True,
                               text=True, timeout=seconds + 60, check=False)
        summary = (Path(tmp) / "wrk.out").read_text()
        cpu_s = float((Path(tmp) / "cpu").read_text())
    found = re.search(r"(\d+) requests in", summary)
    if trace.returncode != 0 or not found:
        raise SystemExit(f"wrk_syscalls: the traced wrk run failed: {trace.stderr.strip()[-300:]}")
    requests = int(found.group(1))
    ns = {int(m.group(1)): int(m.group(2))
          for m in re.finditer(r"@ns\[(\d+)\]: (\d+)", trace.stdout)}
    us = {name: sum(v for k, v in ns.items() if k in ids) / 1e3 / requests
          for name, ids in GROUPS.items()}
    other = sum(v for k, v in ns.items()
                if k not in SKIP and not any(k in ids for ids in GROUPS.values()))
    us["other_syscalls"] = other / 1e3 / requests
    us["cpu"] = cpu_s * 1e6 / requests  # wrk's whole CPU, traced
    us["requests"] = requests
    return us


def main(argv: list[str] | None = None) -> int:
    ap = OneLineParser(prog="wrk_syscalls", description=__doc__.split("\n")[0])
    ap.add_argument("--arch", default="state-group", choices=sorted(servers.SERVER_MODULES))
    ap.add_argument("--seconds", type=positive_int, default=3)
    ap.add_argument("--connection", default="keep-alive,close")
    ap.add_argument("--rounds", type=positive_int, default=2)
    a = ap.parse_args(argv)
    modes = [m.strip() for m in a.connection.split(",") if m.strip()]
    if not modes or set(modes) - {"keep-alive", "close"}:
        ap.error(f"--connection {a.connection!r}: give keep-alive, close or both")
    with tempfile.TemporaryDirectory(prefix="arch-sim-wrksys-root-") as tmp:
        fs = fileset.generate(Path(tmp) / "root", "specweb99")
        with servers.start(a.arch, fs.root, cpus=[0],
                           args=servers.arch_args(a.arch, 64, [0])) as server:
            for rnd in range(a.rounds):
                for mode in modes:
                    us = one_run(server.url, fs, a.seconds, mode == "keep-alive")
                    print(f"round {rnd} {mode:10} requests {us['requests']:.0f}: "
                          f"read {us['read']:.2f}  write {us['write']:.2f}  "
                          f"connect {us['connect']:.2f}  other syscalls "
                          f"{us['other_syscalls']:.2f}  rest "
                          f"{us['cpu'] - sum(us[g] for g in (*GROUPS, 'other_syscalls')):.2f}"
                          f"  (all of wrk's CPU, traced: {us['cpu']:.1f}) us a request",
                          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
