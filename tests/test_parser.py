"""The sans-IO request parser and the document root, without sockets."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from real_servers.core import DocumentRoot, ParseError, RequestParser, Responder
from real_servers.core.docroot import NotServable
from real_servers.core.parser import MAX_HEADER_BYTES, Request


def parse_all(data: bytes, chunk: int | None = None) -> list[Request]:
    parser = RequestParser()
    out = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        parser.feed(piece)
        while (req := parser.next_request()) is not None:
            out.append(req)
    return out


def test_pipelined_requests_come_out_in_order_whatever_the_chunking():
    data = b"".join(f"GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(5))
    for chunk in (None, 1, 3, 7, 64):
        assert [r.path for r in parse_all(data, chunk)] == [f"/{i}" for i in range(5)]


def test_keep_alive_rules():
    (a,) = parse_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    (b,) = parse_all(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    (c,) = parse_all(b"GET / HTTP/1.0\r\n\r\n")
    (d,) = parse_all(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
    assert (a.keep_alive, b.keep_alive, c.keep_alive, d.keep_alive) == (True, False, False, True)


def test_body_is_skipped_before_the_next_request():
    reqs = parse_all(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nGET GET /b HTTP/1.1"
                     b"\r\nHost: h\r\n\r\n", chunk=5)
    assert [(r.method, r.path) for r in reqs] == [("POST", "/a"), ("GET", "/b")]


def test_detach_hands_over_the_raw_bytes():
    parser = RequestParser()
    raw = b"POST /x?q=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"
    parser.feed(raw + b"abcGET")
    req = parser.next_request()
    assert req.query == "q=1"
    assert parser.detach() == raw + b"abcGET"
    assert parser.closed and parser.next_request() is None


def test_bare_lf_and_leading_empty_lines_are_tolerated():
    (req,) = parse_all(b"\r\n\nGET /x HTTP/1.1\nHost: h\n\n")
    assert req.path == "/x"


@pytest.mark.parametrize(
    "raw, status",
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX : y\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
         400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nHost: h\r\nExpect: teapot\r\n\r\n", 417),
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999\r\n\r\n", 413),
        (b"GET /%c3%28 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET /a%00b HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET relative HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 101 + b"\r\n", 431),
        (b"GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505),
    ],
)
def test_errors(raw, status):
    with pytest.raises(ParseError) as info:
        parse_all(raw)
    assert info.value.status == status


def test_oversized_blocks_are_refused_before_they_complete():
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * (MAX_HEADER_BYTES + 10))
    with pytest.raises(ParseError) as info:
        parser.next_request()
    assert info.value.status == 431
    parser = RequestParser()
    parser.feed(b"GET /" + b"a" * 5000)
    with pytest.raises(ParseError) as info:
        parser.next_request()
    assert info.value.status == 414


def test_chunked_and_expect_end_the_connection_after_the_answer():
    (a,) = parse_all(b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n")
    (b,) = parse_all(b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                     b"Expect: 100-continue\r\n\r\n")
    assert not a.keep_alive and not b.keep_alive


# -- property-based: any bytes give a request or a ParseError, never anything else --------------
@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_yield_requests_or_parse_error(data):
    parser = RequestParser()
    parser.feed(data)
    try:
        for _ in range(50):
            if parser.next_request() is None:
                break
    except ParseError as exc:
        assert 400 <= exc.status < 600


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12).filter(
    lambda s: s not in ("host", "content-length", "transfer-encoding", "expect", "connection")
)
_value = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
_segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._-~", min_size=1, max_size=10)


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "HEAD", "POST", "DELETE"]),
    segments=st.lists(_segment, max_size=5),
    query=st.none() | st.text(alphabet="abc=&123", max_size=10),
    version=st.sampled_from(["HTTP/1.0", "HTTP/1.1"]),
    headers=st.dictionaries(_token, _value, max_size=6),
)
def test_valid_requests_round_trip(method, segments, query, version, headers):
    path = "/" + "/".join(segments)
    target = path + (f"?{query}" if query is not None else "")
    headers = {"host": "example", **headers}
    original = Request(method, target, path, query, version, headers)
    (parsed,) = parse_all(original.to_bytes())
    assert (parsed.method, parsed.target, parsed.path, parsed.query, parsed.version) == (
        method, target, path, query, version)
    assert parsed.headers == headers
    assert parsed.to_bytes() == original.to_bytes()


# -- document root -----------------------------------------------------------------------------
def test_docroot_refuses_to_leave_the_root(tmp_path):
    (tmp_path / "secret").write_text("s")
    root = tmp_path / "www"
    root.mkdir()
    (root / "ok.txt").write_text("ok")
    os.symlink(tmp_path / "secret", root / "out")
    docroot = DocumentRoot(root)
    assert docroot.lookup("/ok.txt").body == b"ok"
    for path in ("/../secret", "/a/../../secret", "/..\\secret", "/out"):
        with pytest.raises(NotServable) as info:
            docroot.lookup(path)
        assert info.value.status in (403, 404)


def test_small_files_are_cached_with_prerendered_heads_large_ones_are_not(tmp_path):
    (tmp_path / "small.bin").write_bytes(b"x" * 100)
    (tmp_path / "large.bin").write_bytes(b"y" * 200_000)
    docroot = DocumentRoot(tmp_path)
    small, large = docroot.lookup("/small.bin"), docroot.lookup("/large.bin")
    assert small.body == b"x" * 100 and b"Content-Length: 100\r\n" in small.head_200
    assert large.body is None and large.size == 200_000
    assert docroot.lookup("/small.bin") is small  # served from the cache


def test_date_is_rendered_once_per_second(tmp_path):
    (tmp_path / "a").write_text("a")
    responder = Responder(DocumentRoot(tmp_path))
    (req,) = parse_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
    first = responder.clock.date_line()
    rendered = {id(responder.clock.date_line()) for _ in range(2000)}  # well under a second
    assert len(rendered) <= 2  # the same bytes object within a second (at most one tick)
    time.sleep(1.05)
    assert responder.clock.date_line() is not first
    assert responder.respond(req).status == 200


def test_a_keep_alive_reply_is_reused_within_its_second_only(tmp_path, monkeypatch):
    from real_servers.core import clock

    (tmp_path / "a").write_text("a")
    now = [1_800_000_000.2]
    monkeypatch.setattr(clock.time, "time", lambda: now[0])
    responder = Responder(DocumentRoot(tmp_path))
    get, head, close = parse_all(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                                 b"HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n"
                                 b"GET /a HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    first = responder.respond(get)
    assert responder.respond(get) is first and first.body == b"a"
    assert responder.respond(head).body == b"" and responder.respond(head).head == first.head
    closing = responder.respond(close)
    assert b"Connection: close" in closing.head and b"Connection" not in first.head
    now[0] += 1.0  # the next second: a new Date, so a new head and a new reply
    later = responder.respond(get)
    assert later is not first and later.body == b"a"
    assert b"Date: Fri, 15 Jan 2027 08:00:01 GMT" in later.head
    assert b"Date: Fri, 15 Jan 2027 08:00:00 GMT" in first.head


def test_a_body_that_fills_the_buffer_exactly_leaves_nothing_to_parse() -> None:
    parser = RequestParser()
    parser.feed(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n")
    assert parser.next_request().content_length == 5
    parser.feed(b"hel")
    assert parser.next_request() is None
    parser.feed(b"lo")  # the body's last bytes, nothing after them
    assert parser.next_request() is None and parser.buffered == 0
    parser.feed(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n")
    assert parser.next_request().path == "/a"


def test_header_values_lose_trailing_blanks_but_keep_inner_ones() -> None:
    parser = RequestParser()
    parser.feed(b"GET / HTTP/1.1\r\nHost: t\r\nX-A:  one \t two \t \r\nX-B:\r\n\r\n")
    request = parser.next_request()
    assert request.headers["x-a"] == "one \t two"
    assert request.headers["x-b"] == ""
