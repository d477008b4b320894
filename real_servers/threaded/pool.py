"""``--threads N``: a dispatcher hands every request to one of N blocking pool threads.

Each connection is registered once, edge-triggered: the dispatcher hears of every arrival of
bytes and never re-arms a connection (no ``epoll_ctl`` per request).  An arrival while a thread
has the connection is noted (``again``) under the pool's lock; that thread, done with its
request, hands the connection off once more (to an idle thread, or the backlog) instead of
letting it go; so does a thread whose read filled its buffer, or whose client has shut its side
(an edge that came with the bytes: the EOF behind them is still to be read).  A pool thread
reads without blocking (``MSG_DONTWAIT``): a hand-off whose bytes its previous thread already
read finds nothing and simply ends (the rules of edge-triggered epoll: docs/SOURCES.md
[LX-epoll-et]).
"""

from __future__ import annotations

import select
import socket
import threading
from collections import deque

from ..core.faults import report
from ..core.serving import pending
from .connection import RECV_BYTES, Connection, now, serve_ready, time_out
from .sending import send
from .server import ThreadedServer
from .statecpu import instrument

EPOLL_CONN = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLET
PEER_SHUT = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR  # the client sends no more
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
        if args.state_cpu:  # time the pool threads' states (statecpu.py)
            self.state_cpu = instrument(self)

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
            for fd, ev in self.epoll.poll(SWEEP_EVERY_S):
                if fd == listen_fd:
                    self._accept()
                else:
                    self._hand_off(fd, ev)
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
                self.epoll.register(conn.fd, EPOLL_CONN)

    def _hand_off(self, fd: int, ev: int = 0) -> None:
        """Give the request that arrived on *fd* to a free thread (or queue it); a connection a
        thread has is marked to be handed off again when that thread is done with it."""
        conn = self.conns.get(fd)
        if conn is None:
            return
        if ev & PEER_SHUT:
            conn.peer_shut = True
        with self._lock:
            if conn.busy:
                conn.again = True
                return
            conn.busy = True
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
    def finished(self, worker: PoolThread, conn: Connection, usable: bool) -> Connection | None:
        """*worker* is done with *conn*: close it (not *usable*), or let it go - or hand it off
        again if bytes arrived meanwhile.  Returns a queued connection for *worker*, or None
        after putting it on the idle stack."""
        if not usable:
            self._close(conn)  # (still busy: the dispatcher hands it to nobody meanwhile)
        other = None
        with self._lock:
            if usable and conn.again:  # a hand-off like the dispatcher's
                conn.again = False
                other = self.idle.pop() if self.idle else None
                if other is None:
                    self.backlog.append(conn)
            else:
                conn.busy = False
                self._busy -= 1
            nxt = self.backlog.popleft() if self.backlog else None
            if nxt is None:
                self.idle.append(worker)
        if other is not None:
            other.wake_with(conn)
        return nxt

    def _serve(self, conn: Connection) -> tuple[int, bool]:
        try:
            data = conn.sock.recv(RECV_BYTES, socket.MSG_DONTWAIT)
        except BlockingIOError:  # read by this connection's previous thread
            return 0, not self.draining
        except OSError:  # reset
            return 0, False
        if not data:
            return 0, False
        if len(data) == RECV_BYTES or conn.peer_shut:
            conn.again = True  # more (or the EOF) may wait, and it brings no new edge
        conn.parser.feed(data)
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
                conn = server.finished(self, conn, usable)
