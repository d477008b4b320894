"""A master process that forks workers and keeps them running: the state-group server's (a
worker per CPU, as kHTTPd's manager thread kept its daemons) and prefork's (a worker per slot,
as Apache 1.3's parent kept its children).

The master sleeps in ``sigwaitinfo`` with SIGCHLD, SIGTERM and SIGINT blocked: it makes no
context switch of its own unless a worker dies or it is told to stop.  A worker that dies is
reaped and retired - its request count moves to the board's retired total and, once reaped,
its context switches and CPU time are in the master's ``RUSAGE_CHILDREN``, which the master
publishes - and a new one is forked in its slot (after ``BACKOFF_S`` if it died within
``QUICK_DEATH_S`` of its start twice in a row).  SIGTERM/SIGINT: :meth:`Supervisor.stop`, which
a server defines (tell every worker to drain, wait for them).
"""

from __future__ import annotations

import ctypes
import math
import os
import signal
import sys
import time

from . import board as b

SIGNALS = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT}
QUICK_DEATH_S = 1.0  # workers dying this young twice in a row are restarted after BACKOFF_S
BACKOFF_S = 0.5
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class Supervisor:
    """The bookkeeping of a master's workers; a server adds :meth:`spawn` and :meth:`stop`."""

    name = "server"  # the first word of the master's messages
    #: while stopping, SIGTERM the workers still running again this often (None: once); a
    #: server whose workers may miss the first one's effect sets it (prefork: a shared accept
    #: timeout that a worker still starting up clears)
    resignal_s: float | None = None

    def __init__(self, board: b.Board) -> None:
        self.board = board
        self.workers: dict[int, int] = {}  # pid -> slot index
        self.started: dict[int, float] = {}  # slot index -> start time
        self.respawn_at: dict[int, float] = {}  # slot index -> when to fork it again
        self.quick_deaths: dict[int, int] = {}  # slot index -> deaths in a row soon after start
        self.draining = False

    # -- what a server defines ----------------------------------------------------------------
    def spawn(self, index: int) -> None:
        """Fork the worker of slot *index* (and record it with :meth:`forked`)."""
        raise NotImplementedError

    def stop(self) -> int:
        """SIGTERM/SIGINT: stop the workers; the master's exit code."""
        raise NotImplementedError

    def worker_name(self, pid: int, index: int) -> str:
        return f"worker {pid}"

    # -- the loop -----------------------------------------------------------------------------
    def forked(self, pid: int, index: int) -> None:
        self.workers[pid] = index
        self.started[index] = time.monotonic()

    def supervise(self) -> int:
        """Restart workers that die until SIGTERM/SIGINT; then :meth:`stop`."""
        while True:
            self.publish()
            if self.respawn_at:
                wait = max(0.0, min(self.respawn_at.values()) - time.monotonic())
                info = signal.sigtimedwait(SIGNALS, wait)
            else:
                info = signal.sigwaitinfo(SIGNALS)
            if info is None or info.si_signo == signal.SIGCHLD:
                self.reap()
                self.respawn_due()
            else:
                return self.stop()

    def reap(self) -> bool:
        """Reap and retire exited workers (scheduling their respawn unless draining); True if
        every one reaped exited with 0."""
        clean = True
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return clean
            if pid == 0:
                return clean
            index = self.workers.pop(pid, None)
            if index is None:
                continue
            clean &= os.waitstatus_to_exitcode(status) == 0
            self.retire(index)
            if not self.draining:
                print(f"{self.name}: {self.worker_name(pid, index)} {describe(status)}; "
                      "starting another", file=sys.stderr, flush=True)
                young = time.monotonic() - self.started[index] < QUICK_DEATH_S
                self.quick_deaths[index] = self.quick_deaths.get(index, 0) + 1 if young else 0
                crash_loop = self.quick_deaths[index] > 1
                self.respawn_at[index] = time.monotonic() + (BACKOFF_S if crash_loop else 0.0)

    def retire(self, index: int) -> None:
        """Keep a dead worker's requests; its rusage now shows in RUSAGE_CHILDREN."""
        b.retire(self.board, index)

    def respawn_due(self) -> None:
        now = time.monotonic()
        for index, when in list(self.respawn_at.items()):
            if when <= now:
                del self.respawn_at[index]
                self.board.master[b.RESTARTS] += 1
                self.spawn(index)

    def stop_workers(self, grace: float) -> bool:
        """SIGTERM every worker, SIGKILL those still running after *grace* seconds; reap them
        all.  True if every one exited with 0."""
        self.draining = True
        self.respawn_at.clear()
        for pid in self.workers:
            kill(pid, signal.SIGTERM)
        clean = True
        deadline = time.monotonic() + grace
        resignal = math.inf if self.resignal_s is None else time.monotonic() + self.resignal_s
        while self.workers:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                for pid in self.workers:
                    kill(pid, signal.SIGKILL)
                deadline, clean, resignal = now + 5.0, False, math.inf
            elif now >= resignal:
                for pid in self.workers:
                    kill(pid, signal.SIGTERM)
                resignal = now + self.resignal_s
            signal.sigtimedwait({signal.SIGCHLD}, max(0.01, min(left, 0.2)))
            clean &= self.reap()
        self.publish()
        return clean

    def publish(self) -> None:
        b.publish_rusage(self.board.master, b.M_NVCSW)


def kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def describe(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def die_with(master: int) -> None:
    """In a worker: get SIGTERM (so: drain and exit) when the master dies, even by SIGKILL."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: an orphaned worker then runs until it is stopped itself
    if os.getppid() != master:  # the master died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)
