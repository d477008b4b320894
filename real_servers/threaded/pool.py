"""``--threads N``: a dispatcher hands every request to one of N blocking pool threads."""

from __future__ import annotations

import select
import socket
import threading
from collections import deque

from ..core.faults import report
from ..core.serving import pending
from .connection import Connection, now, receive, serve_ready, time_out
from .sending import send
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
        self.idle: list[PoolThread] = []  # LIFO: the most recently idle thread works next
        self.backlog: deque[Connection] = deque()  # requests waiting for a free thread
        self._lock = threading.Lock()  # guards idle, backlog and _busy
        self._busy = 0

    def serve_forever(self) -> int:
        self.listener.setblocking(False)
        self.epoll.register(self.listener.fileno(), select.EPOLLIN)
        pool = [PoolThread(self, i) for i in range(self.args.threads)]
        self.idle.extend(pool)
        for t in pool:
            t.thread.start()
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
        """Give the request that arrived on *fd* to a free thread (or queue it)."""
        conn = self.conns.get(fd)
        if conn is None or conn.busy:
            return
        conn.busy = True
        with self._lock:
            self._busy += 1
            worker = self.idle.pop() if self.idle else None
            if worker is None:
                self.backlog.append(conn)
        if worker is not None:
            worker.wake_with(conn)

    def _sweep(self) -> None:
        """Close connections whose header or keep-alive deadline has passed (a partial header
        gets a 408), and lingering ones whose client has closed."""
        t = now()
        for conn in [c for c in list(self.conns.values()) if not c.busy and c.deadline < t]:
            time_out(conn, self.responder)
            self._close(conn)
        self.closing.sweep()

    def _close(self, conn: Connection) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        try:
            self.epoll.unregister(conn.fd)
        except OSError:
            pass
        self.release(conn)

    # -- pool threads --------------------------------------------------------------------
    def next_or_idle(self, worker: PoolThread) -> Connection | None:
        """*worker* finished a request: a queued one for it, or None after putting it on the
        idle stack."""
        with self._lock:
            self._busy -= 1
            if self.backlog:
                return self.backlog.popleft()
            self.idle.append(worker)
            return None

    def _serve(self, conn: Connection) -> tuple[int, bool]:
        if not receive(conn):
            return 0, False
        answered, usable = serve_ready(conn, self)
        if usable:
            self.update_deadline(conn, answered)
            # a header trickling in past its deadline ends here: the dispatcher's sweep skips
            # busy connections, and a byte-a-moment client is busy whenever it wakes the sweep
            if now() >= conn.deadline:
                time_out(conn, self.responder)
                usable = False
        return answered, usable and not self.draining

    def failed(self, conn: Connection, exc: Exception) -> None:
        """A bug while serving *conn* outside the response itself (which ``send`` guards):
        report it, answer 500 and close - the pool thread carries on."""
        report("serving a connection", exc)
        conn.graceful = send(conn.sock, self.responder.error(500), self)

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

    # -- shutdown ------------------------------------------------------------------------
    def _drain(self, pool: list[PoolThread]) -> None:
        """SIGTERM (see server.py): the backlog is accepted once more, a connection with a
        request waiting is handed to a thread (answered with Connection: close), every other
        idle one is closed; then the threads get until the drain's end."""
        self._accept()
        self.epoll.unregister(self.listener.fileno())
        self.listener.close()
        for conn in [c for c in list(self.conns.values()) if not c.busy]:
            if pending(conn.sock):
                self._hand_off(conn.fd)
            else:
                conn.graceful = True  # nothing in flight: a FIN, never a reset
                self._close(conn)
        self.wait_drained(lambda: self._busy)
        for worker in pool:
            worker.wake_with(None)
        self.cut_all([c for c in self.conns.values() if c.busy])
        for conn in list(self.conns.values()):
            self._close(conn)
        self.closing.close_all()


class PoolThread:
    """One pool thread.  It sleeps on its own lock, so a hand-off wakes exactly this thread."""

    def __init__(self, server: PoolServer, index: int) -> None:
        self.server = server
        self.conn: Connection | None = None
        self.wake = threading.Lock()
        self.wake.acquire()  # held while asleep; the dispatcher releases it to hand off
        self.thread = threading.Thread(target=self.run, name=f"pool-{index}", daemon=True)

    def wake_with(self, conn: Connection | None) -> None:
        self.conn = conn
        self.wake.release()

    def run(self) -> None:
        server = self.server
        count = server.requests.cell()
        while True:
            self.wake.acquire()  # blocks: this is the reschedule every hand-off costs
            conn = self.conn
            if conn is None:
                return
            while conn is not None:
                try:
                    answered, usable = server._serve(conn)
                except Exception as exc:  # a bug costs this connection, never the thread
                    server.failed(conn, exc)
                    answered, usable = 0, False
                count[0] += answered
                server._done(conn, usable)
                conn = server.next_or_idle(self)
