"""The master process: one pinned worker per CPU, restarted when it dies (kHTTPd's manager
thread did the same), drained on SIGTERM.

The master binds the port once without listening (so ``--port 0`` learns a port and nobody
else can take it while workers come and go); each worker opens its own ``SO_REUSEPORT``
listener on it.  ``READY`` is printed only when every worker accepts.  The master then sleeps in
``sigwaitinfo`` - it makes no context switches of its own unless a worker dies or it is told to
stop.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
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
from . import states as state_modules
from .config import Config
from .worker import Worker

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
READY_TIMEOUT_S = 20.0
QUICK_DEATH_S = 1.0  # workers dying this young twice in a row are restarted after BACKOFF_S
BACKOFF_S = 0.5
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Master:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.cpus = config.cpus or tuple(sorted(os.sched_getaffinity(0)))
        self.board = b.Board(len(self.cpus))
        self.workers: dict[int, int] = {}  # pid -> slot index
        self.started: dict[int, float] = {}  # slot index -> start time
        self.respawn_at: dict[int, float] = {}  # slot index -> when to start it again
        self.quick_deaths: dict[int, int] = {}  # slot index -> deaths in a row soon after start
        self.reserved: socket.socket | None = None
        self.ready_r = -1  # the start-up pipe's read end, while the first workers start
        self.draining = False

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
            self._stop_workers()
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
        self.workers[pid] = index
        self.started[index] = time.monotonic()

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
                      f"({_describe(status)}); see the messages above", file=sys.stderr)
                self.workers.pop(pid, None)
                return False
        return True

    def supervise(self) -> int:
        """Restart workers that die until SIGTERM/SIGINT; then drain."""
        while True:
            self._publish()
            if self.respawn_at:
                wait = max(0.0, min(self.respawn_at.values()) - time.monotonic())
                info = signal.sigtimedwait(SIGNALS, wait)
            else:
                info = signal.sigwaitinfo(SIGNALS)
            if info is None or info.si_signo == signal.SIGCHLD:
                self._reap()
                self._respawn_due()
            else:
                return self._drain()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            index = self.workers.pop(pid, None)
            if index is None:
                continue
            self._retire(index)
            if not self.draining:
                print(f"stategroup: worker {pid} on CPU {self.cpus[index]} "
                      f"{_describe(status)}; restarting it", file=sys.stderr, flush=True)
                young = time.monotonic() - self.started[index] < QUICK_DEATH_S
                self.quick_deaths[index] = self.quick_deaths.get(index, 0) + 1 if young else 0
                crash_loop = self.quick_deaths[index] > 1
                self.respawn_at[index] = time.monotonic() + (BACKOFF_S if crash_loop else 0.0)

    def _retire(self, index: int) -> None:
        """Keep a dead worker's requests; its rusage now shows in RUSAGE_CHILDREN."""
        slot = self.board.slot(index)
        self.board.master[b.RETIRED_REQUESTS] += slot[b.REQUESTS]
        b.clear(slot)
        b.publish_rusage(self.board.master, b.C_NVCSW, resource.RUSAGE_CHILDREN)

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for index, when in list(self.respawn_at.items()):
            if when <= now:
                del self.respawn_at[index]
                self.board.master[b.RESTARTS] += 1
                self.spawn(index)

    def _drain(self) -> int:
        """Tell every worker to drain and wait for them; 0 if all exited cleanly."""
        self.draining = True
        self.respawn_at.clear()
        clean = self._stop_workers(self.config.drain_timeout + 2.0)
        self._publish()
        return 0 if clean else 1

    def _stop_workers(self, grace: float = 2.0) -> bool:
        for pid in self.workers:
            _kill(pid, signal.SIGTERM)
        clean = True
        deadline = time.monotonic() + grace
        while self.workers:
            left = deadline - time.monotonic()
            if left <= 0:
                for pid in self.workers:
                    _kill(pid, signal.SIGKILL)
                deadline, clean = time.monotonic() + 5.0, False
            signal.sigtimedwait({signal.SIGCHLD}, max(0.01, min(left, 0.2)))
            clean &= self._reap_exits()
        return clean

    def _reap_exits(self) -> bool:
        clean = True
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                break
            if pid == 0:
                break
            if self.workers.pop(pid, None) is not None:
                clean &= os.waitstatus_to_exitcode(status) == 0
        return clean

    def _publish(self) -> None:
        b.publish_rusage(self.board.master, b.M_NVCSW)


def reserve(host: str, port: int) -> socket.socket:
    """Bind *host*:*port* with SO_REUSEPORT but do not listen: the workers' listeners share it."""
    return bind(host, port, reuseport=True)


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def run_worker(
    config: Config, board: b.Board, index: int, cpu: int, master: int, ready_fd: int = -1
) -> int:
    """The body of a forked worker process: pin, listen, announce, serve."""
    os.sched_setaffinity(0, {cpu})
    sock = make_listener(config.host, config.port, reuseport=True)
    worker = Worker(config, sock, board, index, cpu)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.request_stop())
    _die_with(master)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    if ready_fd >= 0:
        os.write(ready_fd, b"R")
        os.close(ready_fd)
    gc.freeze()  # the long-lived objects of start-up need no more scanning
    return worker.serve()


def _die_with(master: int) -> None:
    """Get SIGTERM (so: drain and exit) when the master dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: an orphaned worker then runs until it is stopped itself
    if os.getppid() != master:  # the master died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
