"""HTTP conformance of the real servers, written once and run against every server.

Each test drives a real server process over real sockets (http.client, curl, raw bytes).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import time
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

import pytest
from conftest import SECRET
from helpers import Reader, address, connect, exchange, get

from arch_sim.harness import fileset

pytestmark = pytest.mark.real


def client(server) -> http.client.HTTPConnection:
    host, port = address(server.url)
    return http.client.HTTPConnection(host, port, timeout=10)


# -- bodies, keep-alive, HEAD ------------------------------------------------------------------
def test_every_file_of_the_specweb99_set_is_byte_identical_over_one_connection(server, site):
    manifest = json.loads((site / fileset.MANIFEST).read_text())
    assert len(manifest["urls"]) == 36
    conn = client(server)
    first_sock = None
    for url in manifest["urls"]:
        conn.request("GET", url)
        reply = conn.getresponse()
        body = reply.read()
        assert reply.status == 200, url
        assert body == (site / url.lstrip("/")).read_bytes(), url
        assert int(reply.getheader("Content-Length")) == len(body)
        first_sock = first_sock or conn.sock
        assert conn.sock is first_sock, "keep-alive connection was not reused"
    conn.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_fetches_small_and_large_files(server, site, tmp_path):
    for rel in ("class0/class0_1.bin", "class2/class2_5.bin", "class3/class3_9.bin"):
        out = tmp_path / "out.bin"
        code = subprocess.run(
            ["curl", "-sS", "--http1.1", "-o", str(out), "-w", "%{http_code}",
             f"{server.url}/{rel}"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
        assert code == "200"
        assert out.read_bytes() == (site / rel).read_bytes()


def test_head_has_length_and_no_body(server, site):
    size = (site / "class2/class2_3.bin").stat().st_size
    sock = connect(server.url)
    sock.sendall(b"HEAD /class2/class2_3.bin HTTP/1.1\r\nHost: t\r\n\r\n" + get("/page.html"))
    reader = Reader(sock)
    head = reader.response(head_request=True)
    assert head.status == 200 and int(head.header("content-length")) == size
    nxt = reader.response()  # the HEAD reply carried no body: the next reply follows directly
    assert nxt.status == 200 and nxt.body == (site / "page.html").read_bytes()


def test_http11_keep_alive_serves_many_requests_on_one_socket(server):
    sock = connect(server.url)
    reader = Reader(sock)
    for _ in range(5):
        sock.sendall(get("/page.html"))
        assert reader.response().status == 200
    assert not reader.closed(timeout=0.3)


def test_http11_connection_close_closes(server):
    reply, reader = exchange(server.url, get("/page.html", extra="Connection: close\r\n"))
    assert reply.status == 200 and reply.header("connection") == "close"
    assert reader.closed()


def test_http10_closes_by_default_and_keeps_alive_on_request(server):
    reply, reader = exchange(server.url, b"GET /page.html HTTP/1.0\r\n\r\n")
    assert reply.status == 200
    assert reader.closed()
    sock = connect(server.url)
    reader = Reader(sock)
    for _ in range(3):
        sock.sendall(b"GET /page.html HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        reply = reader.response()
        assert reply.status == 200 and reply.header("connection").lower() == "keep-alive"
    assert not reader.closed(timeout=0.3)


def test_pipelined_requests_are_answered_in_order(server, site):
    paths = ["/class0/class0_2.bin", "/nope", "/class1/class1_4.bin", "/page.html",
             "/class3/class3_1.bin", "/class0/class0_9.bin"]
    sock = connect(server.url)
    sock.sendall(b"".join(get(p) for p in paths))
    reader = Reader(sock)
    for path in paths:
        reply = reader.response()
        if path == "/nope":
            assert reply.status == 404
        else:
            assert reply.status == 200
            assert reply.body == (site / path.lstrip("/")).read_bytes(), path


def test_headers_date_server_type_last_modified(server, site):
    reply, _ = exchange(server.url, get("/page.html"))
    assert reply.header("server")
    date = parsedate_to_datetime(reply.header("date")).timestamp()
    assert abs(date - time.time()) < 5
    assert reply.header("content-type").startswith("text/html")
    mtime = int((site / "page.html").stat().st_mtime)
    assert parsedate_to_datetime(reply.header("last-modified")).timestamp() == mtime


@pytest.mark.parametrize(
    "path, ctype",
    [("/style.css", "text/css"), ("/page.html", "text/html"),
     ("/class0/class0_1.bin", "application/octet-stream"), ("/with%20space.txt", "text/plain")],
)
def test_mime_types(server, path, ctype):
    reply, _ = exchange(server.url, get(path))
    assert reply.status == 200
    assert reply.header("content-type").startswith(ctype)


def test_percent_decoded_names(server):
    reply, _ = exchange(server.url, get("/caf%C3%A9.txt"))
    assert reply.status == 200 and reply.body == b"utf-8 name\n"


def test_query_string_on_static_path_is_ignored(server, site):
    reply, _ = exchange(server.url, get("/page.html?x=1&y=2"))
    assert reply.status == 200 and reply.body == (site / "page.html").read_bytes()


def test_absolute_form_target(server, site):
    reply, _ = exchange(server.url, get("http://test/page.html"))
    assert reply.status == 200 and reply.body == (site / "page.html").read_bytes()


# -- directories, symlinks, odd files --------------------------------------------------------
def test_directory_serves_index_or_is_forbidden(server):
    assert exchange(server.url, get("/"))[0].status == 200
    reply, _ = exchange(server.url, get("/dir_with_index/"))
    assert reply.status == 200 and b"inner index" in reply.body
    assert exchange(server.url, get("/dir_without_index/"))[0].status == 403


def test_symlink_inside_root_is_served(server, site):
    reply, _ = exchange(server.url, get("/link_in.html"))
    assert reply.status == 200 and reply.body == (site / "page.html").read_bytes()


def test_fifo_is_refused_without_hanging(server):
    reply, _ = exchange(server.url, get("/fifo"), timeout=5)
    assert reply.status == 403


# -- conditional GET ---------------------------------------------------------------------------
def test_if_modified_since(server, site):
    first, _ = exchange(server.url, get("/page.html"))
    lm = first.header("last-modified")
    reply, _ = exchange(server.url, get("/page.html", extra=f"If-Modified-Since: {lm}\r\n"))
    assert reply.status == 304 and reply.body == b""
    later = formatdate(time.time() + 3600, usegmt=True)
    assert exchange(server.url, get("/page.html", extra=f"If-Modified-Since: {later}\r\n"))[
        0].status == 304
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert exchange(server.url, get("/page.html", extra=f"If-Modified-Since: {old}\r\n"))[
        0].status == 200
    junk = exchange(server.url, get("/page.html", extra="If-Modified-Since: yesterday\r\n"))[0]
    assert junk.status == 200


def test_changed_file_is_noticed(server, site):
    target = site / "mutable" / f"{server.arch}-{server.port}.txt"
    target.write_text("version one\n")
    assert exchange(server.url, get(f"/mutable/{target.name}"))[0].body == b"version one\n"
    target.write_text("version two, longer\n")
    os.utime(target, (time.time() + 5, time.time() + 5))
    time.sleep(1.1)  # the cache revalidates at most once per second
    assert exchange(server.url, get(f"/mutable/{target.name}"))[0].body == b"version two, longer\n"


# -- errors ------------------------------------------------------------------------------------
def test_404(server):
    reply, reader = exchange(server.url, get("/no/such/file"))
    assert reply.status == 404
    assert not reader.closed(timeout=0.2), "a 404 must not end a keep-alive connection"


def test_405_has_allow_and_keeps_framing(server, site):
    sock = connect(server.url)
    sock.sendall(b"POST /page.html HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"
                 + get("/page.html"))
    reader = Reader(sock)
    reply = reader.response()
    assert reply.status == 405
    assert {m.strip() for m in reply.header("allow").split(",")} == {"GET", "HEAD"}
    assert reader.response().body == (site / "page.html").read_bytes()


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /page.html\r\n\r\n", 400),
        (b"GET  /page.html HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET /page.html HTTP/1.1\r\n\r\n", 400),  # no Host on 1.1
        (b"GET /page.html HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"GET /page.html HTTP/1.1\r\nHost: t\r\nNoColonHere\r\n\r\n", 400),
        (b"GET /%zz HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", 501),
        (b"GET /page.html HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
        (b"GET /page.html HTTP/1.1\r\nHost: t\r\n" + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    ],
    ids=["garbage", "http09", "double-space", "no-host", "two-hosts", "no-colon", "bad-percent",
         "unknown-method", "http2", "uri-too-long", "headers-too-large"],
)
def test_error_codes(server, raw, status):
    reply, reader = exchange(server.url, raw)
    assert reply is not None and reply.status == status
    if status != 501:  # an unknown method in a well-formed request may keep the connection
        assert reader.closed(), "the connection must close after a malformed request"


def test_server_still_answers_after_errors(server, site):
    reply, _ = exchange(server.url, get("/page.html"))
    assert reply.status == 200 and reply.body == (site / "page.html").read_bytes()


# -- security: never leave the document root ----------------------------------------------------
TRAVERSALS = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E/secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e%2fsecret.txt",
    "/class0/../../secret.txt",
    "/class0/%2e%2e/%2e%2e/secret.txt",
    "/.%2e/secret.txt",
    "//../secret.txt",
    "/./../secret.txt",
    "/..\\secret.txt",
    "/%5c..%5csecret.txt",
    "/%252e%252e/secret.txt",
    "/..%00/secret.txt",
    "/link_out",
    "/link_dir_out/secret.txt",
    "/link_dir_out/www/../secret.txt",
    "http://test/../secret.txt",
    "/%2e%2e%5csecret.txt",
    "/class0/..%2f..%2fsecret.txt",
]


@pytest.mark.parametrize("target", TRAVERSALS)
def test_traversal_never_returns_the_secret(server, target):
    reply, _ = exchange(server.url, get(target))
    assert reply is not None
    assert reply.status in (400, 403, 404), f"{target} -> {reply.status}"
    assert SECRET not in reply.body


# -- counters ----------------------------------------------------------------------------------
def test_server_status_keys(server):
    status = server.status()
    for key in ("arch", "pids", "requests", "voluntary_ctxt_switches",
                "involuntary_ctxt_switches", "threads_alive", "connections_open",
                "cpu_user_s", "cpu_system_s"):
        assert key in status, key
    assert status["arch"] == server.arch
    assert server.pid in status["pids"] or all(Path(f"/proc/{p}").exists() for p in status["pids"])
    before = status["requests"]
    for _ in range(5):
        exchange(server.url, get("/page.html"))
    assert server.status()["requests"] >= before + 5
