"""The standard library's ThreadingHTTPServer (HTTP/1.1) as a peer, plus ``/server-status``.

Everything but the status route is ``http.server.SimpleHTTPRequestHandler`` unchanged, except
that its per-request access log to stderr is silenced (nginx runs with ``access_log off``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from real_servers.core.status import rusage_counters

_requests = 0
_lock = threading.Lock()


class Handler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        global _requests
        with _lock:
            _requests += 1
        if self.path == "/server-status":
            self._status()
            return
        super().do_GET()

    def _status(self) -> None:
        body = json.dumps(
            {
                "arch": "python-http-server",
                "pids": [os.getpid()],
                "requests": _requests,
                "threads_alive": threading.active_count(),
                "connections_open": threading.active_count() - 1,
                **rusage_counters(),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description="stdlib ThreadingHTTPServer peer")
    parser.add_argument("--root", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    handler = functools.partial(Handler, directory=args.root)
    ThreadingHTTPServer.daemon_threads = True
    server = ThreadingHTTPServer((args.host, args.port), handler)
    host, port = server.server_address[:2]
    print(f"READY http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
