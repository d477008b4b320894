"""Start, watch and stop the real servers (ours and peers) as separate, pinned processes.

Every server prints ``READY http://HOST:PORT`` once it accepts.  Its stdout and stderr go to a
log file (never a pipe nobody drains), which is also what an error shows when it dies.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

#: our architectures -> the module that implements them
SERVER_MODULES: dict[str, str] = {
    "thread-per-request": "real_servers.threaded",
    "state-group": "real_servers.stategroup",
    "prefork": "real_servers.prefork",
    "staged": "real_servers.staged",
}
#: our servers serve /server-status only when asked: the harness reads its counters from
#: loopback, so it asks for loopback exposure (first, so a caller's own --status wins)
STATUS_ARGS: tuple[str, ...] = ("--status", "loopback")
_READY = re.compile(r"READY (http://\S+):(\d+)")


class ServerError(RuntimeError):
    """A server did not start or died; the message names its log and the fix."""


@dataclass
class ServerProcess:
    arch: str
    proc: subprocess.Popen
    host: str
    port: int
    log_path: Path
    cpus: tuple[int, ...] | None = None
    _log: object = field(default=None, repr=False)
    scratch: Path | None = None  # a temporary log folder of our own, removed after a clean exit

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check_alive(self) -> None:
        """Raise :class:`ServerError` (with its log's last lines) if the server has exited."""
        if not self.alive():
            raise ServerError(
                f"{self.arch} server exited with code {self.proc.returncode}; "
                f"log {self.log_path}:\n{log_tail(self.log_path)}"
            )

    def status(self, timeout: float = 5.0) -> dict:
        """The server's ``/server-status`` JSON (a dead server raises :class:`ServerError`)."""
        request = urllib.request.Request(f"{self.url}/server-status")
        token = os.environ.get("ARCH_SIM_STATUS_TOKEN")
        if token:  # a server started with --status token wants it
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as reply:
                return json.loads(reply.read())
        except OSError as exc:
            self.check_alive()
            raise ServerError(
                f"{self.arch} server at {self.url} did not answer /server-status ({exc}); "
                f"log {self.log_path}:\n{log_tail(self.log_path)}"
            ) from exc

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after *timeout*; returns the exit code."""
        if self.alive():
            _signal_group(self.proc, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.proc, signal.SIGKILL)
                self.proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.scratch is not None and self.proc.returncode == 0:
            shutil.rmtree(self.scratch, ignore_errors=True)  # a failed server keeps its log
            self.scratch = None
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def arch_args(arch: str, threads: int | None, cpus: Sequence[int]) -> list[str]:
    """The command-line options `arch-sim bench` gives our server *arch*: its shape (the
    thread-per-request pool size), the CPUs it spreads over (state-group), or the design's
    defaults: 64 prefork workers (one per wrk connection; *threads* is the thread pool's) and
    the staged server's default stage threads."""
    if arch == "thread-per-request":
        return ["--threads", str(threads)]
    if arch == "prefork":
        return ["--workers", "64"]
    if arch == "staged":
        return []
    return ["--cpus", ",".join(map(str, cpus))]


def start(
    arch: str,
    root: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    cpus: Iterable[int] | None = None,
    args: Sequence[str] = (),
    log_dir: str | os.PathLike[str] | None = None,
    ready_timeout: float = 20.0,
) -> ServerProcess:
    """Start our server *arch* serving *root*, pinned to *cpus*; return once it is READY."""
    if arch not in SERVER_MODULES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(SERVER_MODULES)}")
    cmd = [sys.executable, "-m", SERVER_MODULES[arch], "--root", str(root)]
    cmd += ["--host", host, "--port", str(port), *STATUS_ARGS, *args]
    return launch(arch, cmd, cpus=cpus, log_dir=log_dir, ready_timeout=ready_timeout)


def launch(
    name: str,
    cmd: Sequence[str],
    *,
    cpus: Iterable[int] | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    ready_timeout: float = 20.0,
    ready: str | None = None,
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """Run *cmd* in its own session with its affinity set to *cpus*; wait for its READY line.

    *ready* is a ``host:port`` to poll for peers that print no READY line (nginx).
    """
    cpus_t = tuple(sorted(set(cpus))) if cpus is not None else None
    scratch = None if log_dir else Path(tempfile.mkdtemp(prefix="arch-sim-"))
    log_dir = Path(log_dir or scratch)
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}-{int(time.time() * 1000)}.log"
    log = open(log_path, "wb")

    def pin() -> None:
        if cpus_t:
            os.sched_setaffinity(0, cpus_t)

    proc = subprocess.Popen(
        list(cmd),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=pin,
        start_new_session=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    server = ServerProcess(name, proc, "127.0.0.1", 0, log_path, cpus_t, log, scratch)
    try:
        server.host, server.port = _wait_ready(server, ready, ready_timeout)
    except BaseException:
        server.stop(timeout=2)
        raise
    return server


def _wait_ready(server: ServerProcess, ready: str | None, timeout: float) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_alive()
        if ready is not None:
            host, port = ready.rsplit(":", 1)
            if _accepts(host, int(port)):
                return host, int(port)
        else:
            match = _READY.search(server.log_path.read_text(errors="replace"))
            if match:
                return match.group(1).removeprefix("http://"), int(match.group(2))
        time.sleep(0.02)
    raise ServerError(
        f"{server.arch} server printed no READY line within {timeout:.0f} s; "
        f"log {server.log_path}:\n{log_tail(server.log_path)}"
    )


def _accepts(host: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def log_tail(path: str | os.PathLike[str], lines: int = 15) -> str:
    """The last *lines* lines of a log file (for error messages)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"
