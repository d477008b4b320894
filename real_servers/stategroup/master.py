"""The master process: one pinned worker per CPU, restarted when it dies (kHTTPd's manager
thread did the same), drained on SIGTERM.

The master binds the port once without listening (so ``--port 0`` learns a port and nobody
else can take it while workers come and go); each worker opens its own ``SO_REUSEPORT``
listener on it.  ``READY`` is printed only when every worker accepts.  The master then keeps
them running (real_servers/core/supervisor.py: it sleeps in ``sigwaitinfo``, reaps, retires and
restarts workers).
"""

from __future__ import annotations

import gc
import os
import select
import signal
import socket
import sys
import time
import traceback

from ..core import board as b
from ..core.serving import announce_ready, bind, check_root, raise_fd_limit
from ..core.serving import listener as make_listener
from ..core.status import status_access
from ..core.supervisor import SIGNALS, Supervisor, describe, die_with
from . import states as state_modules
from .config import Config
from .worker import Worker

READY_TIMEOUT_S = 20.0


class Master(Supervisor):
    name = "stategroup"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.cpus = config.cpus or tuple(sorted(os.sched_getaffinity(0)))
        super().__init__(b.Board(len(self.cpus)))
        self.reserved: socket.socket | None = None
        self.ready_r = -1  # the start-up pipe's read end, while the first workers start

    def run(self) -> int:
        check_root(self.config.root)
        self._check()
        raise_fd_limit()  # before forking: the workers inherit it
        self.reserved = reserve(self.config.host, self.config.port)
        self.config.port = self.reserved.getsockname()[1]
        self.board.master[b.M_PID] = os.getpid()
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        self.ready_r, ready_w = os.pipe()
        for index in range(len(self.cpus)):
            self.spawn(index, ready_w)
        os.close(ready_w)
        ready = self._wait_ready(self.ready_r)
        os.close(self.ready_r)
        self.ready_r = -1
        if not ready:
            self.stop_workers(2.0)
            return 1
        announce_ready(self.reserved)
        return self.supervise()

    def _check(self) -> None:
        """Fail before forking, with a message, on settings every worker would fail on."""
        missing = set(self.cpus) - set(range(os.cpu_count() or 1))
        if missing:
            sys.exit(f"error: --cpus {sorted(missing)} not on this machine "
                     f"(it has CPUs 0-{(os.cpu_count() or 1) - 1})")
        try:
            state_modules.load(self.config.states)
        except Exception as exc:
            sys.exit(f"error: --state: cannot load a replacement state: {exc}")
        status_access(self.config.status)  # a bad --status token: one message, no workers

    # -- workers ----------------------------------------------------------------------------
    def spawn(self, index: int, ready_fd: int = -1) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(self._child(index, ready_fd))
        self.forked(pid, index)

    def worker_name(self, pid: int, index: int) -> str:
        return f"worker {pid} on CPU {self.cpus[index]}"

    def _child(self, index: int, ready_fd: int) -> int:
        code = 1
        try:
            self.reserved.close()
            if self.ready_r >= 0:  # the master's end of the start-up pipe, not ours to keep
                os.close(self.ready_r)
            master = self.board.master[b.M_PID]
            code = run_worker(self.config, self.board, index, self.cpus[index], master, ready_fd)
        except SystemExit as exc:  # the listener could not be opened: its message is printed
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return code

    def _wait_ready(self, ready_r: int) -> bool:
        """Wait until every worker has written its ready byte; False if one died first."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        got = 0
        while got < len(self.cpus):
            left = deadline - time.monotonic()
            if left <= 0:
                print("error: workers did not start within "
                      f"{READY_TIMEOUT_S:.0f} s", file=sys.stderr)
                return False
            if select.select([ready_r], [], [], min(left, 0.1))[0]:
                got += len(os.read(ready_r, 64))
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid:
                print(f"error: worker {pid} exited during start-up "
                      f"({describe(status)}); see the messages above", file=sys.stderr)
                self.workers.pop(pid, None)
                return False
        return True

    def stop(self) -> int:
        """Tell every worker to drain and wait for them; 0 if all exited cleanly."""
        return 0 if self.stop_workers(self.config.drain_timeout + 2.0) else 1


def reserve(host: str, port: int) -> socket.socket:
    """Bind *host*:*port* with SO_REUSEPORT but do not listen: the workers' listeners share it."""
    return bind(host, port, reuseport=True)


def run_worker(
    config: Config, board: b.Board, index: int, cpu: int, master: int, ready_fd: int = -1
) -> int:
    """The body of a forked worker process: pin, listen, announce, serve."""
    os.sched_setaffinity(0, {cpu})
    sock = make_listener(config.host, config.port, reuseport=True)
    worker = Worker(config, sock, board, index, cpu)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.request_stop())
    die_with(master)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if ready_fd >= 0:
        os.write(ready_fd, b"R")
        os.close(ready_fd)
    gc.freeze()  # the long-lived objects of start-up need no more scanning
    return worker.serve()
