"""The prefork master: open the listener, fork the workers, reap and respawn them.

After ``READY`` the master sleeps in ``sigwaitinfo``: it makes no context switch of its own
unless a worker dies or it is told to stop.  A worker that dies is reaped - its request count
moves to the board's retired total and its context switches and CPU time reach the master's
``RUSAGE_CHILDREN`` - and a new one is forked in its slot (after ``BACKOFF_S`` if it keeps
dying within ``QUICK_DEATH_S`` of its start).  SIGTERM/SIGINT: every worker is told to drain
(real_servers/prefork/worker.py), the master waits for them and exits 0 if all exited 0.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import resource
import signal
import sys
import time
import traceback

from ..core import board as b
from ..core.serving import announce_ready, check_root, listener, raise_fd_limit
from ..core.status import status_access
from .worker import Worker

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
QUICK_DEATH_S = 1.0
BACKOFF_S = 0.5
STOP_GRACE_S = 2.0  # beyond --drain-timeout, before a worker still running is killed
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Master:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.board = b.Board(args.workers)
        self.workers: dict[int, int] = {}  # pid -> slot index
        self.started: dict[int, float] = {}  # slot index -> start time
        self.respawn_at: dict[int, float] = {}  # slot index -> when to fork it again
        self.quick_deaths: dict[int, int] = {}
        self.draining = False
        self.sock = None

    def run(self) -> int:
        check_root(self.args.root)
        status_access(self.args.status)  # a bad --status token: one message, no workers
        raise_fd_limit()  # before forking: the workers inherit it
        self.sock = listener(self.args.host, self.args.port)
        self.board.master[b.M_PID] = os.getpid()
        signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
        for index in range(self.args.workers):
            self.spawn(index)
        announce_ready(self.sock)
        return self.supervise()

    def spawn(self, index: int) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os._exit(self._child(index))
        self.workers[pid] = index
        self.started[index] = time.monotonic()
        slot = self.board.slot(index)  # listed at once (the worker fills in its counters)
        slot[b.PID] = pid
        slot[b.ALIVE] = 1

    def _child(self, index: int) -> int:
        code = 1
        try:
            worker = Worker(self.args, self.sock, self.board, index)
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, worker.on_term)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            _die_with(self.board.master[b.M_PID])
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            gc.freeze()  # the long-lived objects of start-up need no more scanning
            code = worker.serve()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return code

    def supervise(self) -> int:
        while True:
            b.publish_rusage(self.board.master, b.M_NVCSW)
            if self.respawn_at:
                wait = max(0.0, min(self.respawn_at.values()) - time.monotonic())
                info = signal.sigtimedwait(SIGNALS, wait)
            else:
                info = signal.sigwaitinfo(SIGNALS)
            if info is None or info.si_signo == signal.SIGCHLD:
                self._reap()
                self._respawn_due()
            else:
                return self._stop()

    def _reap(self) -> bool:
        """Reap exited workers (and schedule their respawn); True if all exited with 0."""
        clean = True
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return clean
            if pid == 0:
                return clean
            index = self.workers.pop(pid, None)
            if index is None:
                continue
            clean &= os.waitstatus_to_exitcode(status) == 0
            slot = self.board.slot(index)
            self.board.master[b.RETIRED_REQUESTS] += slot[b.REQUESTS]
            b.clear(slot)
            b.publish_rusage(self.board.master, b.C_NVCSW, resource.RUSAGE_CHILDREN)
            if not self.draining:
                print(f"prefork: worker {pid} {_describe(status)}; starting another",
                      file=sys.stderr, flush=True)
                young = time.monotonic() - self.started[index] < QUICK_DEATH_S
                self.quick_deaths[index] = self.quick_deaths.get(index, 0) + 1 if young else 0
                backoff = BACKOFF_S if self.quick_deaths[index] > 1 else 0.0
                self.respawn_at[index] = time.monotonic() + backoff

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for index, when in list(self.respawn_at.items()):
            if when <= now:
                del self.respawn_at[index]
                self.board.master[b.RESTARTS] += 1
                self.spawn(index)

    def _stop(self) -> int:
        """Tell every worker to drain, wait for them; 0 if every one exited with 0."""
        self.draining = True
        self.respawn_at.clear()
        self.sock.close()  # the workers hold their own references to the listener
        for pid in self.workers:
            _kill(pid, signal.SIGTERM)
        clean = True
        deadline = time.monotonic() + self.args.drain_timeout + STOP_GRACE_S
        while self.workers:
            left = deadline - time.monotonic()
            if left <= 0:
                for pid in self.workers:
                    _kill(pid, signal.SIGKILL)
                deadline, clean = time.monotonic() + 5.0, False
            signal.sigtimedwait({signal.SIGCHLD}, max(0.01, min(left, 0.2)))
            clean &= self._reap()
        return 0 if clean else 1


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def _die_with(master: int) -> None:
    """Get SIGTERM (so: drain and exit) when the master dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass
    if os.getppid() != master:  # the master died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
