"""``--threads 0``: one new thread per connection, serving all of its requests."""

from __future__ import annotations

import socket
import threading

from ..core.serving import pending
from .connection import Connection, now, serve_connection
from .server import ThreadedServer

ACCEPT_POLL_S = 0.5  # how often the acceptor looks at the stop flag


class PerConnectionServer(ThreadedServer):
    """The acceptor starts a thread for each connection; that thread blocks in recv and send."""

    mode = "per-connection"

    def __init__(self, listener: socket.socket, args) -> None:
        super().__init__(listener, args)
        self.live: set[Connection] = set()
        self._live_lock = threading.Lock()

    def serve_forever(self) -> int:
        self.listener.settimeout(ACCEPT_POLL_S)
        self.install_signals()
        next_sweep = now() + ACCEPT_POLL_S
        while not self.stopping.is_set():
            if now() >= next_sweep:
                self.closing.sweep()  # connections closing gracefully whose client has gone
                next_sweep = now() + ACCEPT_POLL_S
            try:
                sock, peer = self.listener.accept()
            except (TimeoutError, InterruptedError):
                continue
            except OSError:  # EMFILE: back off briefly instead of spinning
                self.stopping.wait(0.05)
                continue
            self._start(sock, peer)
        self._drain()
        return 0

    def _start(self, sock: socket.socket, peer: object) -> None:
        conn = self.admit(sock, peer)
        if conn is not None:
            with self._live_lock:
                self.live.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        count = self.requests.cell()
        try:
            serve_connection(conn, self, count)
        finally:
            with self._live_lock:
                self.live.discard(conn)
            self.requests.retire(count)
            self.release(conn)

    def _drain(self) -> None:
        """SIGTERM (see server.py): accept the backlog once more, end the threads blocked on
        an idle connection with nothing sent, let the rest answer (Connection: close)."""
        self.listener.setblocking(False)
        while True:
            try:
                sock, peer = self.listener.accept()
            except OSError:  # EAGAIN: the backlog is empty
                break
            self._start(sock, peer)
        self.listener.close()
        with self._live_lock:
            idle = [c for c in self.live if not c.busy]
        for conn in idle:  # wake threads blocked in recv on an idle keep-alive connection
            if pending(conn.sock):
                continue  # a request has arrived: its thread answers it
            try:
                conn.sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        self.wait_drained(lambda: len(self.live))
        with self._live_lock:
            self.cut_all(list(self.live))
        self.closing.close_all()
