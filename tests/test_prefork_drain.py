"""A prefork drain that a worker still starting up cannot stall: the master SIGTERMs the
workers still running again every ``resignal_s``, and a repeated SIGTERM sets the shared
listener's accept timeout again (a new worker's start-up clears it; an accept() retried after
that clear would wait with none, and the master would SIGKILL the worker and exit 1)."""

from __future__ import annotations

import math
import os
import signal
import socket
import struct
import time
from types import SimpleNamespace

from real_servers.core import board as b
from real_servers.core.supervisor import Supervisor
from real_servers.prefork.master import Master
from real_servers.prefork.worker import DRAIN_ACCEPT_S, Worker
from real_servers.threaded.connection import set_timeout


def accept_timeout(sock: socket.socket) -> float:
    sec, usec = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16))
    return sec + usec / 1e6


def drain_timeout_set(sock: socket.socket) -> bool:
    """SO_RCVTIMEO is DRAIN_ACCEPT_S (the kernel keeps it in jiffies: a few ms over)."""
    return DRAIN_ACCEPT_S <= accept_timeout(sock) <= DRAIN_ACCEPT_S + 0.011


def test_a_repeated_sigterm_sets_the_accept_timeout_again():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        worker = SimpleNamespace(draining=False, drain_end=math.inf, conn=None,
                                 args=SimpleNamespace(drain_timeout=3.0), listener=listener)
        Worker.on_term(worker, signal.SIGTERM, None)
        assert worker.draining and drain_timeout_set(listener)
        end = worker.drain_end
        set_timeout(listener, socket.SO_RCVTIMEO, 0)  # a worker starting up clears it
        assert accept_timeout(listener) == 0
        Worker.on_term(worker, signal.SIGTERM, None)
        assert drain_timeout_set(listener)
        assert worker.drain_end == end  # the drain's deadline runs from the first SIGTERM


class TwoTerms(Supervisor):
    """One worker that exits 0 only at its second SIGTERM (exit 3 after 10 s without it)."""

    def spawn(self, index: int) -> None:
        ready, told = os.pipe()
        pid = os.fork()
        if pid == 0:
            terms = [0]
            signal.signal(signal.SIGTERM, lambda *_: terms.__setitem__(0, terms[0] + 1))
            os.write(told, b"x")
            give_up = time.monotonic() + 10
            while terms[0] < 2 and time.monotonic() < give_up:
                time.sleep(0.005)
            os._exit(0 if terms[0] >= 2 else 3)
        os.read(ready, 1)
        os.close(ready)
        os.close(told)
        self.forked(pid, index)


def test_the_prefork_master_sigterms_a_worker_still_running_again():
    assert Master.resignal_s is not None and Master.resignal_s < 1.0
    master = TwoTerms(b.Board(1))
    master.resignal_s = 0.1
    master.spawn(0)
    started = time.monotonic()
    assert master.stop_workers(grace=5.0)  # exited 0: it got its second SIGTERM
    assert time.monotonic() - started < 2.0
    once = TwoTerms(b.Board(1))  # SIGTERM sent once: killed after the grace, not clean
    once.spawn(0)
    assert not once.stop_workers(grace=0.5)
