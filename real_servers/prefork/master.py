"""The prefork master: open the listener, fork the workers, then keep them running
(real_servers/core/supervisor.py: reap, retire, respawn).  SIGTERM/SIGINT: every worker is told
to drain (real_servers/prefork/worker.py), the master waits for them and exits 0 if all exited 0.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import traceback

from ..core import board as b
from ..core.serving import announce_ready, check_root, listener, raise_fd_limit
from ..core.status import status_access
from ..core.supervisor import SIGNALS, Supervisor, die_with
from .worker import Worker

STOP_GRACE_S = 2.0  # beyond --drain-timeout, before a worker still running is killed


class Master(Supervisor):
    name = "prefork"
    resignal_s = 0.5  # (see Worker.on_term)

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(b.Board(args.workers))
        self.args = args
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
        self.forked(pid, index)
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
            die_with(self.board.master[b.M_PID])
            signal.pthread_sigmask(signal.SIG_SETMASK, [])
            gc.freeze()  # the long-lived objects of start-up need no more scanning
            code = worker.serve()
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
        return code

    def stop(self) -> int:
        """Tell every worker to drain, wait for them; 0 if every one exited with 0."""
        self.sock.close()  # the workers hold their own references to the listener
        return 0 if self.stop_workers(self.args.drain_timeout + STOP_GRACE_S) else 1
