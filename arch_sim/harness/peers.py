"""Well-known servers run through the same sweep as ours: nginx, Apache (prefork and worker
MPMs), lighttpd and the stdlib's server.

- ``nginx``: Debian's nginx-light, generated config, one worker, pinned like ours, same root,
  keep-alive, sendfile, no access log.
- ``apache-prefork``, ``apache-worker``, ``lighttpd``: the same, configured and started by
  :mod:`arch_sim.harness.peer_configs`.
- These four have no ``/server-status``: their reschedules come from ``perf stat`` attached to
  their processes, which follows processes and threads started later and keeps the counts of
  those that exit (:class:`arch_sim.harness.counters.PerfCounter`), else from the live threads'
  ``/proc/PID/task/*/status``.
- ``python-http-server``: ``http.server.ThreadingHTTPServer`` speaking HTTP/1.1 with
  ``SimpleHTTPRequestHandler`` (access log silenced, as nginx's is), run by
  :mod:`arch_sim.harness.pyhttp`, which adds only a ``/server-status`` with getrusage.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

from . import peer_configs
from .measure import Target
from .servers import ServerError, ServerProcess, launch

PEERS = ("nginx", "apache-prefork", "apache-worker", "lighttpd", "python-http-server")

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 8192; use epoll; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    open_file_cache max=10000 inactive=60s;
    types {{ text/html html; text/css css; text/plain txt; application/json json; }}
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {root};
        location / {{ }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def nginx_binary() -> str:
    for name in ("nginx", "/usr/sbin/nginx"):
        path = shutil.which(name)
        if path:
            return path
    raise ServerError(
        "peer nginx: binary not found. Install it with 'apt-get install -y nginx-light' "
        "(Debian/Ubuntu) or drop --peer nginx."
    )


def nginx_version() -> str:
    try:
        out = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, timeout=5)
    except (ServerError, OSError, subprocess.TimeoutExpired):
        return "unavailable"
    return out.stderr.strip().removeprefix("nginx version: ")


def start_peer(
    name: str, root: str | Path, cpus: Iterable[int] | None, log_dir: str | Path
) -> ServerProcess:
    """Start peer *name* serving *root*; returns once it accepts."""
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    if name == "nginx":
        return _start_nginx(root, cpus, log_dir)
    if name in ("apache-prefork", "apache-worker"):
        return peer_configs.start_apache(name.removeprefix("apache-"), root, cpus, log_dir,
                                         free_port())
    if name == "lighttpd":
        return peer_configs.start_lighttpd(root, cpus, log_dir, free_port())
    if name == "python-http-server":
        cmd = [sys.executable, "-m", "arch_sim.harness.pyhttp", "--root", str(root), "--port", "0"]
        return launch(name, cmd, cpus=cpus, log_dir=log_dir)
    raise ValueError(f"unknown peer {name!r}; choose one of {', '.join(PEERS)}")


def _start_nginx(
    root: str | Path, cpus: Iterable[int] | None, log_dir: str | Path
) -> ServerProcess:
    binary = nginx_binary()
    # absolute: nginx resolves a relative -c against its -p prefix
    tmp = Path(tempfile.mkdtemp(prefix="arch-sim-nginx-", dir=log_dir)).resolve()
    port = free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, root=Path(root).resolve()))
    cmd = [binary, "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")]
    return launch("nginx", cmd, cpus=cpus, log_dir=log_dir, ready=f"127.0.0.1:{port}")


def peer_version(name: str) -> str:
    """The version string a peer's binary reports (for meta.json and the rows' label)."""
    if name == "nginx":
        return nginx_version()
    if name.startswith("apache-"):
        return peer_configs.apache_version()
    if name == "lighttpd":
        return peer_configs.lighttpd_version()
    return f"Python {sys.version.split()[0]} http.server"


def peer_label(name: str) -> str:
    """What ran, for the rows' ``server`` column."""
    if name.startswith("apache-"):
        mpm = name.removeprefix("apache-")
        unit = "processes" if mpm == "prefork" else "threads"
        return (f"{peer_version(name)} mpm_{mpm} "
                f"({peer_configs.APACHE_PROCESSES} {unit})")
    if name == "nginx":
        return f"nginx {nginx_version()}"
    return peer_version(name)


def peer_target(name: str, proc: ServerProcess) -> Target:
    """What the harness measures of a running peer: its label, counters and pids."""
    if name != "python-http-server":  # no /server-status: counted from its process tree
        return tree_target(name, peer_label(name), proc)
    return Target(name, "http.server.ThreadingHTTPServer (HTTP/1.1)", proc.url,
                  lambda: proc.status()["pids"], proc.status, proc.check_alive)


def tree_target(name: str, label: str, proc: ServerProcess) -> Target:
    """A server known only by its pid: counted over its process tree (perf, /proc)."""
    return Target(name, label, proc.url, lambda: process_tree(proc.pid), lambda: None,
                  proc.check_alive)


def process_tree(pid: int) -> list[int]:
    """*pid* and all its descendants (a master and its workers)."""
    import psutil

    try:
        proc = psutil.Process(pid)
        return [pid] + [c.pid for c in proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
