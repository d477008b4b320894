"""Apache (prefork, worker) and lighttpd as peers: started from a generated config on a
generated root, they serve the root's bytes over one keep-alive connection and stop cleanly."""

from __future__ import annotations

import http.client
import os
import shutil
import tempfile
from pathlib import Path

import psutil
import pytest
from conftest import need_binary

from arch_sim.harness import fileset, peer_configs, peers
from arch_sim.harness.servers import ServerError

pytestmark = pytest.mark.real

NEW_PEERS = ("apache-prefork", "apache-worker", "lighttpd")
BINARY = {"apache-prefork": peer_configs.apache_binary, "apache-worker": peer_configs.apache_binary,
          "lighttpd": peer_configs.lighttpd_binary}


def need_peer(name: str) -> None:
    need_binary(name, BINARY[name])


@pytest.fixture(scope="module")
def files():
    # not under pytest's tmp folder (mode 0700): the peers' children run as www-data
    base = tempfile.mkdtemp(prefix="arch-sim-peers-")
    os.chmod(base, 0o755)
    yield fileset.generate(Path(base) / "www", "specweb99")
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("name", NEW_PEERS)
def test_peer_serves_the_roots_bytes_over_keep_alive_and_stops(name, files, tmp_path):
    need_peer(name)
    proc = peers.start_peer(name, files.root, None, tmp_path)
    try:
        host, port = proc.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        sock = None
        for url in files.urls[:5] + files.urls[-2:]:
            conn.request("GET", url)
            reply = conn.getresponse()
            body = reply.read()
            assert reply.status == 200, (url, reply.status)
            assert body == (files.root / url.lstrip("/")).read_bytes(), url
            assert not reply.will_close, f"{name} closed the connection after {url}"
            sock = sock or conn.sock
            assert conn.sock is sock, "a new connection was opened: keep-alive does not hold"
        conn.close()
        tree = peers.process_tree(proc.pid)
        threads = sum(psutil.Process(p).num_threads() for p in tree)
        if name == "apache-prefork":  # the fixed pool, one process per connection
            assert len(tree) >= peer_configs.APACHE_PROCESSES + 1, len(tree)
        elif name == "apache-worker":  # one child with a thread per connection
            assert len(tree) == 2 and threads >= peer_configs.APACHE_PROCESSES, (tree, threads)
        else:  # one single-threaded event loop
            assert len(tree) == 1 and threads == 1, (tree, threads)
    finally:
        code = proc.stop()
    assert code == 0, f"{name} did not exit cleanly on SIGTERM (code {code}); {proc.log_path}"
    assert not [p for p in tree if psutil.pid_exists(p)
                and psutil.Process(p).status() != psutil.STATUS_ZOMBIE], "processes left"


@pytest.mark.parametrize("mpm", ["prefork", "worker"])
def test_apache_config_reads_nothing_of_the_system(mpm, tmp_path):
    conf = peer_configs.apache_config(mpm, tmp_path, 8080, tmp_path / "www")
    assert "/etc/" not in conf and "Include" not in conf
    loads = [line.split()[2] for line in conf.splitlines() if line.startswith("LoadModule")]
    assert loads and all(m.startswith(str(peer_configs.APACHE_MODULES)) for m in loads)
    assert f"mod_mpm_{mpm}.so" in conf
    for line in ("MaxKeepAliveRequests 0", "KeepAlive On", "EnableSendfile On",
                 "MaxConnectionsPerChild 0", "Listen 127.0.0.1:8080"):
        assert line in conf
    assert "CustomLog" not in conf  # no access log


@pytest.mark.parametrize(("name", "package"), [("apache-prefork", "apache2"),
                                               ("apache-worker", "apache2"),
                                               ("lighttpd", "lighttpd")])
def test_missing_peer_binary_names_the_package(name, package, monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda cmd: None)
    with pytest.raises(ServerError, match=f"apt-get install -y {package}"):
        peers.start_peer(name, tmp_path, None, tmp_path)
