"""What the real state-group worker's bookkeeping costs, warm, on this machine: a pass that
finds nothing (the five state modules and ``epoll.poll(0)``), the counters it publishes before
each sleep (``status.publish``: ``getrusage`` and a write to the shared board), an ``accept``
that finds the listen queue empty (``EAGAIN`` and the exception) and a ``recv`` that finds no
bytes - the real counterparts of the host preset's estimates ``pass_us`` and ``poll_item_us`` -,
and a whole wake cycle that accepts one connection, warm and after the CPU idled 0.1-10 ms (what
``arch_sim.hostbench.cold_cache`` measures for a small piece of work, for this cycle).

Builds a real :class:`~real_servers.stategroup.worker.Worker` in this process (no client), pins
it to the CPU given and times each piece many times back to back (thread CPU time, medians of
batches).

    python benchmarks/sg_pass_cost.py --cpu 0
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable

from arch_sim.argtypes import OneLineParser
from real_servers.stategroup import status
from real_servers.stategroup.config import Config
from real_servers.stategroup.lifecycle import GRACEFUL
from real_servers.stategroup.states import logging as logging_state
from real_servers.stategroup.worker import Worker

GAPS_MS = (0.1, 0.3, 1.0, 3.0, 10.0)


def per_call_us(fn: Callable[[], object], calls: int = 2000, batches: int = 15) -> float:
    """Median over ``batches`` of the thread CPU time per call of ``calls`` calls in a row."""
    out = []
    for _ in range(batches):
        t0 = time.thread_time_ns()
        for _ in range(calls):
            fn()
        out.append((time.thread_time_ns() - t0) / calls / 1e3)
    return statistics.median(out)


def measure() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as root:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen(128)
        worker = Worker(Config(root=root), listener)
        runs = [module.run for module in worker.states]
        poll = worker.epoll.poll

        def empty_pass() -> None:  # Worker.serve's loop body when nothing moves, without sleep
            moved = 0
            for run in runs:
                moved += run(worker)
            worker.passes += 1
            poll(0, 512)

        def failing_accept() -> None:
            worker.accept_ready = True
            runs[0](worker)  # the accept state: one accept() that meets EAGAIN

        a, b = socket.socketpair()
        a.setblocking(False)
        buf = bytearray(4096)

        def failing_recv() -> None:
            try:
                a.recv_into(buf)
            except BlockingIOError:
                pass

        worker.accept_ready = False
        port = listener.getsockname()[1]

        def accept_cycle(gap_ms: float = 0.0) -> float:
            """One connection from wake-up to sleep, as ``Worker.serve`` runs it: the poll that
            reports the listener, a pass that accepts it (and tries its first recv), the poll
            and the pass that find nothing, the counters published; the client's connect and
            both closes happen outside the timed part."""
            client = socket.create_connection(("127.0.0.1", port))
            if gap_ms:
                time.sleep(gap_ms / 1e3)  # the CPU idles (nothing else runs on it)
            t0 = time.thread_time_ns()
            worker._dispatch(poll(0, 512))
            for run in runs:
                run(worker)
            worker._dispatch(poll(0, 512))
            for run in runs:
                run(worker)
            status.publish(worker)
            took = (time.thread_time_ns() - t0) / 1e3
            for conn in list(worker.conns.values()):
                worker.close(conn)
            client.close()
            return took

        def close_one(gap_ms: float = 0.0) -> float:
            """The close of a connection per request as the logging state does it (uncount,
            drain - a recv that finds nothing -, close: the FIN goes out), after ``gap_ms``
            of idle; the connection is accepted and the client closed outside the timed part."""
            client = socket.create_connection(("127.0.0.1", port))
            worker._dispatch(poll(0, 512))
            runs[0](worker)
            conn = next(iter(worker.conns.values()))
            if gap_ms:
                time.sleep(gap_ms / 1e3)
            t0 = time.thread_time_ns()
            logging_state._shutdown(worker, conn, GRACEFUL)
            took = (time.thread_time_ns() - t0) / 1e3
            for other in list(worker.conns.values()):
                worker.close(other)
            worker.queues = [[] for _ in worker.queues]
            client.close()
            return took

        for _ in range(200):
            accept_cycle()
            close_one()
        out = {"accept_cycle_us": statistics.median(accept_cycle() for _ in range(3000)),
               "empty_pass_us": per_call_us(empty_pass),
               "publish_us": per_call_us(lambda: status.publish(worker)),
               "failing_accept_us": per_call_us(failing_accept),
               "failing_recv_us": per_call_us(failing_recv)}
        out["close_us"] = statistics.median(close_one() for _ in range(3000))
        for gap in GAPS_MS:  # the same cycle after the CPU idled: its cold curve
            out[f"accept_cycle_after_{gap:g}ms_us"] = statistics.median(
                accept_cycle(gap) for _ in range(max(20, int(300 / (1 + gap)))))
            out[f"close_after_{gap:g}ms_us"] = statistics.median(
                close_one(gap) for _ in range(max(20, int(300 / (1 + gap)))))
        a.close()
        b.close()
        listener.close()
    return out


def main(argv: list[str]) -> int:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", type=int, default=0, help="CPU to pin to (default 0)")
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, {args.cpu})
    row = measure()
    print("  ".join(f"{k}={v:.2f}" for k, v in row.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
