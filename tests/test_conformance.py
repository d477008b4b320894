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


def test_a_file_with_a_trailing_slash_is_404(server):
    """nginx answers 404 for /index.html/: a file is not a directory."""
    for path in ("/index.html/", "/page.html/", "/dir_with_index/index.html/", "/link_in.html/"):
        assert exchange(server.url, get(path))[0].status == 404, path


def test_a_directory_without_its_slash_is_redirected(server):
    """A directory's index is served only at the path with the trailing slash (relative links
    in it resolve against that); without it, 301 to it, as nginx does.  The Location is the
    normalised path, so //dir never becomes a redirect to another host."""
    cases = {
        "/dir_with_index": "/dir_with_index/",
        "/dir_without_index": "/dir_without_index/",
        "//dir_with_index": "/dir_with_index/",
        "/./dir_with_index?x=1&y=%20": "/dir_with_index/?x=1&y=%20",
        "/caf%C3%A9-dir": "/caf%C3%A9-dir/",
        "http://t/dir_with_index": "/dir_with_index/",
    }
    for path, location in cases.items():
        reply, reader = exchange(server.url, get(path))
        assert reply.status == 301, path
        assert reply.header("location") == location, path
        assert not reader.closed(timeout=0.1)
    reply, _ = exchange(server.url, get("/dir_with_index/"))
    assert reply.status == 200 and b"inner index" in reply.body


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
    old = "Sat, 01 Jan 2000 00:00:00 GMT"
    assert exchange(server.url, get("/page.html", extra=f"If-Modified-Since: {old}\r\n"))[
        0].status == 200
    junk = exchange(server.url, get("/page.html", extra="If-Modified-Since: yesterday\r\n"))[0]
    assert junk.status == 200


def ims(server, path: str, extra: str) -> int:
    return exchange(server.url, get(path, extra=extra))[0].status


def test_if_modified_since_in_the_future_is_ignored(server):
    """RFC 9110 13.1.3: a date later than the server's clock is not a valid condition."""
    later = formatdate(time.time() + 3600, usegmt=True)
    assert ims(server, "/page.html", f"If-Modified-Since: {later}\r\n") == 200


def test_if_none_match_takes_precedence_over_if_modified_since(server):
    """RFC 9110 13.1.3 and 13.2.2: with If-None-Match present, If-Modified-Since is ignored;
    we send no ETag, so no entity-tag matches and the file is sent."""
    lm = exchange(server.url, get("/page.html"))[0].header("last-modified")
    both = f'If-None-Match: "abc"\r\nIf-Modified-Since: {lm}\r\n'
    assert ims(server, "/page.html", both) == 200
    assert ims(server, "/page.html", 'If-None-Match: W/"abc", "def"\r\n') == 200


def test_if_none_match_star_is_304_for_an_existing_file(server):
    reply, reader = exchange(server.url, get("/page.html", extra="If-None-Match: *\r\n"))
    assert reply.status == 304 and reply.body == b"" and reply.header("last-modified")
    assert not reader.closed(timeout=0.2)
    big = "/class3/class3_9.bin"
    assert ims(server, big, "If-None-Match: *\r\n") == 304
    assert ims(server, "/nope", "If-None-Match: *\r\n") == 404
    lm = "Sat, 01 Jan 2000 00:00:00 GMT"  # would say "modified": If-None-Match wins
    assert ims(server, "/page.html", f"If-None-Match: *\r\nIf-Modified-Since: {lm}\r\n") == 304


def test_changed_file_is_noticed(server, site):
    target = site / "mutable" / f"{server.arch}-{server.port}.txt"
    target.write_text("version one\n")
    assert exchange(server.url, get(f"/mutable/{target.name}"))[0].body == b"version one\n"
    target.write_text("version two, longer\n")
    os.utime(target, (time.time() + 5, time.time() + 5))
    time.sleep(1.1)  # the cache revalidates at most once per second
    assert exchange(server.url, get(f"/mutable/{target.name}"))[0].body == b"version two, longer\n"


# -- permissions -------------------------------------------------------------------------------
def test_a_cached_file_made_unreadable_is_403_within_a_second(server, site):
    """chmod changes neither mtime nor size: revalidation must notice it (from the stat it
    already makes), and stop serving the cached copy."""
    target = site / "mutable" / f"perm-{server.arch}-{server.port}.txt"
    target.write_text("readable\n")
    target.chmod(0o644)
    path = f"/mutable/{target.name}"
    assert exchange(server.url, get(path))[0].body == b"readable\n"
    target.chmod(0o000)
    time.sleep(1.1)  # the cache revalidates at most once per second
    reply, reader = exchange(server.url, get(path))
    assert reply.status == 403
    assert not reader.closed(timeout=0.1)
    target.chmod(0o644)
    time.sleep(1.1)
    assert exchange(server.url, get(path))[0].body == b"readable\n"


def test_a_never_served_unreadable_large_file_is_403(server, site):
    """A large file (sent with sendfile, never in the cache) that may not be read: 403, as
    nginx answers, never a 200 head and then nothing."""
    target = site / "mutable" / f"perm-big-{server.arch}-{server.port}.bin"
    target.write_bytes(b"q" * (300 << 10))
    target.chmod(0o600 if os.geteuid() == 0 else 0o000)  # root reads anything: not world-readable
    reply, reader = exchange(server.url, get(f"/mutable/{target.name}"))
    assert reply.status == 403
    assert exchange(server.url, get(f"/mutable/{target.name}",
                                    extra="Connection: close\r\n"))[0].status == 403
    target.chmod(0o644)
    time.sleep(1.1)
    assert len(exchange(server.url, get(f"/mutable/{target.name}"))[0].body) == 300 << 10


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
    "/dir_index_out/",  # a directory whose index.html is a symlink out of the root
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
