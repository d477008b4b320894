"""Apache (prefork and worker MPMs) and lighttpd as peers: generated configs and starters.

Each is configured as nginx is in :mod:`arch_sim.harness.peers`: static files from the run's
document root, bound to 127.0.0.1 on a free port, keep-alive on with no limit of requests per
connection (75 s idle), sendfile on, no access log, run in the foreground and pinned to the
server CPUs.  Nothing of the system's configuration (``/etc/apache2``, ``/etc/lighttpd``) is
read and no system service is used: the config, pid file, mutex directory and error log live in
a temporary folder under the run's log folder.

- ``apache-prefork``: Apache 1.3's design kept as an MPM - one single-threaded process per
  connection.  A fixed pool of :data:`APACHE_PROCESSES` processes, all started at once and
  never trimmed or recycled (MaxSpareServers = the pool, MaxConnectionsPerChild 0), so each of
  the harness's 64 keep-alive connections can hold one.
- ``apache-worker``: one process with :data:`APACHE_PROCESSES` threads, one per connection (a
  listener thread accepts and hands each connection to an idle worker thread).
- ``lighttpd``: one single-threaded process around an epoll loop - the packaged relative of
  thttpd, the select() server the seed names beside Zeus.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from .servers import ServerError, ServerProcess, launch

#: processes (prefork) or threads (worker): one per wrk connection, as our prefork's default
APACHE_PROCESSES = 64
APACHE_MODULES = Path("/usr/lib/apache2/modules")  # Debian's module folder
LIGHTTPD_MODULES = Path("/usr/lib/lighttpd")

APACHE_COMMON = """\
ServerRoot "{tmp}"
LoadModule {mpm}_module {modules}/mod_{mpm}.so
LoadModule authz_core_module {modules}/mod_authz_core.so
LoadModule mime_module {modules}/mod_mime.so
{user}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {tmp}/apache.pid
Mutex file:{tmp} default
DefaultRuntimeDir {tmp}
ErrorLog {tmp}/error.log
LogLevel warn
TypesConfig {tmp}/mime.types
HostnameLookups Off
DocumentRoot "{root}"
<Directory />
    Require all granted
    Options None
    AllowOverride None
</Directory>
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 75
EnableSendfile On
MaxConnectionsPerChild 0
"""
# every process started at once; idle ones are trimmed only above MaxSpareServers, which is the
# whole pool, and none is added past ServerLimit: the pool stays fixed through a run
APACHE_PREFORK = """\
StartServers {n}
ServerLimit {n}
MaxRequestWorkers {n}
MinSpareServers 1
MaxSpareServers {n}
"""
# one child process, its threads never trimmed (MaxSpareThreads above the pool)
APACHE_WORKER = """\
StartServers 1
ServerLimit 1
ThreadLimit {n}
ThreadsPerChild {n}
MaxRequestWorkers {n}
MinSpareThreads 1
MaxSpareThreads {spare}
"""
MIME_TYPES = """\
text/html html htm
text/css css
text/plain txt
application/json json
"""

LIGHTTPD_CONF = """\
server.document-root = "{root}"
server.bind = "127.0.0.1"
server.port = {port}
{user}
server.modules = ()
server.max-worker = 0
server.event-handler = "linux-sysepoll"
server.network-backend = "sendfile"
server.max-keep-alive-requests = 1000000
server.max-keep-alive-idle = 75
mimetype.assign = (
    ".html" => "text/html", ".htm" => "text/html", ".css" => "text/css",
    ".txt" => "text/plain", ".json" => "application/json",
    "" => "application/octet-stream",
)
"""


def _find(names: Iterable[str], peer: str, package: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise ServerError(
        f"peer {peer}: binary not found. Install it with 'apt-get install -y {package}' "
        f"(Debian/Ubuntu) or drop --peer {peer}."
    )


def apache_binary(peer: str = "apache-prefork") -> str:
    path = _find(("apache2", "/usr/sbin/apache2"), peer, "apache2")
    mpm = APACHE_MODULES / "mod_mpm_prefork.so"
    if not mpm.exists():
        raise ServerError(f"peer {peer}: {mpm} not found (Debian's apache2 package installs it); "
                          "install it with 'apt-get install -y apache2'")
    return path


def lighttpd_binary() -> str:
    return _find(("lighttpd", "/usr/sbin/lighttpd"), "lighttpd", "lighttpd")


def _version(cmd: list[str], prefix: str) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    lines = (out.stdout + out.stderr).splitlines()
    return lines[0].strip().removeprefix(prefix) if lines else "unavailable"


def apache_version() -> str:
    try:
        return _version([apache_binary(), "-v"], "Server version: ")
    except ServerError:
        return "unavailable"


def lighttpd_version() -> str:
    try:
        return _version([lighttpd_binary(), "-v"], "").split(" - ")[0]
    except ServerError:
        return "unavailable"


def _unprivileged_user() -> str | None:
    """Who the server's children run as when we are root (both refuse, or warn, as root)."""
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    return None


def _scratch(prefix: str, log_dir: str | Path) -> Path:
    # absolute: Apache resolves relative paths against ServerRoot
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=log_dir)).resolve()
    os.chmod(tmp, 0o755)
    return tmp


def apache_config(mpm: str, tmp: Path, port: int, root: str | Path) -> str:
    """The whole httpd.conf for ``mpm`` ('prefork' or 'worker')."""
    user = _unprivileged_user()
    group = "www-data" if user == "www-data" else "nogroup"
    n = APACHE_PROCESSES
    body = (APACHE_PREFORK.format(n=n) if mpm == "prefork"
            else APACHE_WORKER.format(n=n, spare=2 * n))
    return APACHE_COMMON.format(
        tmp=tmp, mpm=f"mpm_{mpm}", modules=APACHE_MODULES, port=port,
        root=Path(root).resolve(), user=f"User {user}\nGroup {group}" if user else "",
    ) + body


def start_apache(mpm: str, root: str | Path, cpus: Iterable[int] | None,
                 log_dir: str | Path, port: int) -> ServerProcess:
    peer = f"apache-{mpm}"
    binary = apache_binary(peer)
    tmp = _scratch("arch-sim-apache-", log_dir)
    (tmp / "mime.types").write_text(MIME_TYPES)
    conf = tmp / "httpd.conf"
    conf.write_text(apache_config(mpm, tmp, port, root))
    cmd = [binary, "-d", str(tmp), "-f", str(conf), "-DFOREGROUND"]
    server = launch(peer, cmd, cpus=cpus, log_dir=log_dir, ready=f"127.0.0.1:{port}")
    try:
        _wait_for_pool(server, mpm)
    except BaseException:
        server.stop(timeout=2)
        raise
    return server


def _wait_for_pool(server: ServerProcess, mpm: str, timeout: float = 20.0) -> None:
    """Return once Apache's whole pool runs: its port accepts as soon as it listens, while the
    parent is still forking children (prefork) or a child still starting threads (worker)."""
    import psutil

    deadline = time.monotonic() + timeout
    have = 0
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            children = psutil.Process(server.pid).children()
            if mpm == "prefork":
                have = len(children)
            else:  # the worker threads plus the listener and the child's main thread
                have = max((c.num_threads() - 2 for c in children), default=0)
        except psutil.NoSuchProcess:
            pass
        if have >= APACHE_PROCESSES:
            return
        time.sleep(0.05)
    raise ServerError(f"apache-{mpm} started {have} of its {APACHE_PROCESSES} "
                      f"{'processes' if mpm == 'prefork' else 'threads'} in {timeout:.0f} s; "
                      f"log {server.log_path} and {Path(server.log_path).parent}")


def lighttpd_config(port: int, root: str | Path) -> str:
    user = _unprivileged_user()
    group = "www-data" if user == "www-data" else "nogroup"
    # no server.errorlog: lighttpd writes to stderr, which is the harness's log of the run
    return LIGHTTPD_CONF.format(
        port=port, root=Path(root).resolve(),
        user=f'server.username = "{user}"\nserver.groupname = "{group}"' if user else "",
    )


def start_lighttpd(root: str | Path, cpus: Iterable[int] | None, log_dir: str | Path,
                   port: int) -> ServerProcess:
    binary = lighttpd_binary()
    tmp = _scratch("arch-sim-lighttpd-", log_dir)
    conf = tmp / "lighttpd.conf"
    conf.write_text(lighttpd_config(port, root))
    cmd = [binary, "-D", "-f", str(conf), "-m", str(LIGHTTPD_MODULES)]
    return launch("lighttpd", cmd, cpus=cpus, log_dir=log_dir, ready=f"127.0.0.1:{port}")
