"""``--threads N``: a dispatcher hands every request to one of N blocking pool threads."""

from __future__ import annotations

import queue
import select
import socket
import threading

from .connection import Connection, now, receive, serve_ready
from .server import ThreadedServer

EPOLL_IDLE = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLONESHOT
SWEEP_EVERY_S = 0.5


class PoolServer(ThreadedServer):
    """Acceptor + dispatcher thread (epoll over idle connections) and a fixed thread pool."""

    mode = "pool"

    def __init__(self, listener: socket.socket, args) -> None:
        super().__init__(listener, args)
        self.epoll = select.epoll()
        self.conns: dict[int, Connection] = {}
        self.work: queue.SimpleQueue[Connection | None] = queue.SimpleQueue()
        self._busy = 0
        self._busy_lock = threading.Lock()

    def serve_forever(self) -> int:
        self.listener.setblocking(False)
        self.epoll.register(self.listener.fileno(), select.EPOLLIN)
        pool = [
            threading.Thread(target=self._worker, name=f"pool-{i}", daemon=True)
            for i in range(self.args.threads)
        ]
        for t in pool:
            t.start()
        self.install_signals()
        self._dispatch()
        self._drain(pool)
        return 0

    # -- dispatcher (main thread) --------------------------------------------------------
    def _dispatch(self) -> None:
        listen_fd = self.listener.fileno()
        next_sweep = now() + SWEEP_EVERY_S
        while not self.stopping.is_set():
            for fd, _ in self.epoll.poll(SWEEP_EVERY_S):
                if fd == listen_fd:
                    self._accept()
                else:
                    self._hand_off(fd)
            if now() >= next_sweep:
                self._sweep()
                next_sweep = now() + SWEEP_EVERY_S

    def _accept(self) -> None:
        while True:
            try:
                sock, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # EMFILE and friends: try again on the next event
                return
            conn = self.admit(sock, peer)
            if conn is not None:
                conn.deadline = now() + self.args.header_timeout
                self.conns[conn.fd] = conn
                self.epoll.register(conn.fd, EPOLL_IDLE)

    def _hand_off(self, fd: int) -> None:
        conn = self.conns.get(fd)
        if conn is None or conn.busy:
            return
        conn.busy = True
        with self._busy_lock:
            self._busy += 1
        self.work.put(conn)

    def _sweep(self) -> None:
        """Close connections whose header or keep-alive deadline has passed."""
        t = now()
        for conn in [c for c in list(self.conns.values()) if not c.busy and c.deadline < t]:
            self._close(conn)

    def _close(self, conn: Connection) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        try:
            self.epoll.unregister(conn.fd)
        except OSError:
            pass
        self.release(conn)

    # -- pool threads --------------------------------------------------------------------
    def _worker(self) -> None:
        count = self.requests.cell()
        while True:
            conn = self.work.get()
            if conn is None:
                return
            answered, usable = self._serve(conn)
            count[0] += answered
            self._done(conn, usable)

    def _serve(self, conn: Connection) -> tuple[int, bool]:
        fresh = conn.parser.buffered == 0  # this recv starts a new request
        if not receive(conn):
            return 0, False
        answered, usable = serve_ready(conn, self.responder)
        if usable:
            if conn.parser.buffered == 0:
                conn.deadline = now() + self.args.keepalive_timeout
            elif fresh or answered:
                conn.deadline = now() + self.args.header_timeout
        return answered, usable and not self.stopping.is_set()

    def _done(self, conn: Connection, usable: bool) -> None:
        """Hand the connection back to the dispatcher, or close it."""
        if usable:
            conn.busy = False
            try:
                self.epoll.modify(conn.fd, EPOLL_IDLE)
            except OSError:  # swept or closed meanwhile
                usable = False
        if not usable:
            conn.busy = False
            self._close(conn)
        with self._busy_lock:
            self._busy -= 1

    # -- shutdown ------------------------------------------------------------------------
    def _drain(self, pool: list[threading.Thread]) -> None:
        self.epoll.unregister(self.listener.fileno())
        self.listener.close()
        self.wait_drained(lambda: self._busy)
        for _ in pool:
            self.work.put(None)
        for conn in list(self.conns.values()):
            self._close(conn)
