"""benchmarks/sg_dry_sleeps.py: bad arguments are one line and exit 2 before any server starts,
and its wrapper of the real worker's epoll notes each sleeping poll - what the worker held, how
long the call took, what woke it - and not the busy polls."""

import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import benchmark

from real_servers.stategroup.config import Config
from real_servers.stategroup.worker import Worker

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "sg_dry_sleeps.py"
dry = benchmark("sg_dry_sleeps")


@pytest.mark.parametrize("argv, says", [
    (["--duration", "40"], "at most 30"),
    (["--duration", "0"], "--duration"),
    (["--rate", "-5"], "--rate"),
    (["--connection", "pipelined"], "--connection"),
])
def test_bad_arguments_are_one_line_exit_2(argv: list[str], says: str) -> None:
    out = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and says in lines[0], out.stderr


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
