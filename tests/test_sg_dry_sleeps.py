"""benchmarks/sg_dry_sleeps.py: its wrapper of the real worker's epoll notes each sleeping poll -
what the worker held, how long the call took, what woke it - and not the busy polls (its bad
arguments: tests/test_benchmark_args.py)."""

import socket
import tempfile

from helpers import benchmark

from real_servers.stategroup.config import Config
from real_servers.stategroup.worker import Worker

dry = benchmark("sg_dry_sleeps")


def test_sleeping_polls_are_noted_with_what_woke_them() -> None:
    with tempfile.TemporaryDirectory() as root, socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        worker = Worker(Config(root=root), listener)
        log = dry.SleepLog(worker)
        worker.epoll = log
        assert log.poll(0.01) == [] and log.sleeps == []  # not on yet: not noted
        log.on = True
        assert log.poll(0) == [] and log.sleeps == []  # a busy poll: not a sleep
        assert log.poll(0.01) == []  # nothing comes: the call times out
        with socket.create_connection(listener.getsockname()):
            events = log.poll(5)  # a new connection wakes it: the listener's event
        assert [fd for fd, _ in events] == [worker.listen_fd]
        (slept, held, parked, queues, n, listened), woken = log.sleeps
        assert slept >= 0.009 and (held, parked, n, listened) == (0, 0, 0, 0)
        assert queues == tuple(0 for _ in worker.queues)
        assert woken[4:] == (1, 1)
