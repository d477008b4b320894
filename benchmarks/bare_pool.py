"""The thread pool's floor in CPython: pool.py's dispatcher and hand-off, without the HTTP core.

    python benchmarks/bare_pool.py PORT ROOT [--threads 64] [--file file_1k.bin]

A dispatcher thread waits in epoll over the listener and every connection (edge-triggered,
registered once) and hands each arrival to one of N pool threads, each asleep on its own lock,
as real_servers/threaded/pool.py does; the pool thread reads without blocking, answers every
request head it read (``\\r\\n\\r\\n``) with one prebuilt 200 reply of ROOT/FILE and hands the
connection back.  No parsing, no status, no log, no deadlines: what is left is the design's own
cost in CPython - the epoll wake-up, the lock hand-off between two threads under one GIL and two
system calls.  ``benchmarks/servers.py --servers`` measures it beside the real pool and nginx
(run through ``arch-sim bench --server-cmd``, counted from its pid with perf like any server a
user brings).
"""

from __future__ import annotations

import argparse
import select
import signal
import socket
import sys
import threading
from collections import deque
from pathlib import Path

ET = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
HEAD_END = b"\r\n\r\n"


class Conn:
    __slots__ = ("sock", "busy", "again")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.busy = False
        self.again = False


class Pool:
    def __init__(self, listener: socket.socket, reply: bytes, threads: int) -> None:
        self.listener = listener
        self.reply = reply
        self.epoll = select.epoll()
        self.conns: dict[int, Conn] = {}
        self.idle: list[Worker] = []
        self.backlog: deque[Conn] = deque()
        self.lock = threading.Lock()
        for _ in range(threads):
            worker = Worker(self)
            self.idle.append(worker)
            threading.Thread(target=worker.run, daemon=True).start()

    def dispatch(self) -> None:
        listen_fd = self.listener.fileno()
        self.epoll.register(listen_fd, select.EPOLLIN)
        while True:
            for fd, _ in self.epoll.poll():
                if fd == listen_fd:
                    self.accept()
                    continue
                conn = self.conns.get(fd)
                if conn is None:
                    continue
                with self.lock:
                    if conn.busy:
                        conn.again = True
                        continue
                    conn.busy = True
                    worker = self.idle.pop() if self.idle else None
                    if worker is None:
                        self.backlog.append(conn)
                if worker is not None:
                    worker.wake_with(conn)

    def accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conns[sock.fileno()] = Conn(sock)
            self.epoll.register(sock.fileno(), ET)

    def serve(self, conn: Conn) -> bool:
        """Answer what arrived; False when the client has closed."""
        try:
            data = conn.sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:  # read by the previous hand-off
            return True
        except OSError:
            return False
        if not data:
            return False
        conn.sock.sendall(self.reply * data.count(HEAD_END))
        return True

    def finished(self, worker: Worker, conn: Conn, usable: bool) -> Conn | None:
        if not usable:
            self.conns.pop(conn.sock.fileno(), None)
            conn.sock.close()
        other = None
        with self.lock:
            if usable and conn.again:
                conn.again = False
                other = self.idle.pop() if self.idle else None
                if other is None:
                    self.backlog.append(conn)
            else:
                conn.busy = False
            nxt = self.backlog.popleft() if self.backlog else None
            if nxt is None:
                self.idle.append(worker)
        if other is not None:
            other.wake_with(conn)
        return nxt


class Worker:
    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.conn: Conn | None = None
        self.wake = threading.Lock()
        self.wake.acquire()

    def wake_with(self, conn: Conn) -> None:
        self.conn = conn
        self.wake.release()

    def run(self) -> None:
        pool = self.pool
        while True:
            self.wake.acquire()
            conn = self.conn
            while conn is not None:
                conn = pool.finished(self, conn, pool.serve(conn))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("root", type=Path)
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--file", default="file_1k.bin", help="the one file every reply holds")
    args = parser.parse_args(argv)
    try:
        body = (args.root / args.file).read_bytes()
    except OSError as exc:
        parser.exit(2, f"bare_pool: cannot read {args.root / args.file}: {exc.strerror}\n")
    if args.threads < 1:
        parser.exit(2, "bare_pool: --threads must be at least 1\n")
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(1024)
    listener.setblocking(False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Pool(listener, head + body, args.threads).dispatch()
    return 0


if __name__ == "__main__":
    sys.exit(main())
