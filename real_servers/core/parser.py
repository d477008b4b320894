"""A small, explicit, sans-IO HTTP/1.x request parser (in the spirit of h11).

Bytes go in with :meth:`RequestParser.feed`; complete requests come out of
:meth:`RequestParser.next_request` in the order they were sent (pipelining), or a
:class:`ParseError` carrying the status code to answer with.  The parser never touches a socket.

A request is returned as soon as its header block is complete.  A body announced with
``Content-Length`` is skipped before the next request is parsed (a static server has no use for
it); :meth:`RequestParser.detach` hands the raw bytes of the last request and everything buffered
after it to whoever takes the connection over (the state-group server's ``userspace`` state).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_HEADER_BYTES = 8192  # request line + header fields; over this -> 431
MAX_URI_BYTES = 4096  # request target; over this -> 414
LINE_SLACK = 48  # method, spaces and version: a request line over MAX_URI_BYTES + this -> 414
MAX_BODY_BYTES = 1 << 20  # a body we skip or relay; over this -> 413
MAX_HEADERS = 100  # header fields; over this -> 431

KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9])\.([0-9])")
_HEADER = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(.*?)[ \t]*")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_HEAD_END = re.compile(rb"\n\r?\n")
_LINE_SPLIT = re.compile(rb"\r?\n")
_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})?")
_ABSOLUTE = re.compile(r"(?i)https?://[^/?#]*")
# The fast path: a well-formed origin-form HTTP/1.x head with CRLF line ends, validated and
# captured by one regex match in C.  Anything else takes the careful line-by-line path.
_VALUE = rb"[\t\x20-\x7e\x80-\xff]"
_FAST_HEAD = re.compile(
    rb"(" + _TOKEN + rb") (/[\x21-\x7e]*) HTTP/1\.([01])\r\n"
    rb"((?:" + _TOKEN + rb":" + _VALUE + rb"*\r\n)*)\r\n"
)
# Greedy value (trailing blanks are stripped after decoding): a lazy one backtracks per byte.
_FAST_FIELD = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _VALUE + rb"*)\r\n")
# RFC 9112 3.2: Host = uri-host [ ":" port ]; an IP literal or a reg-name, or empty
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]*)?")
GOOD_HOSTS_KEPT = 64  # valid Host values remembered (a server sees few): no regex per request
_GOOD_HOSTS: set[str] = set()
_FRAMING = frozenset(("transfer-encoding", "content-length", "expect"))
_BLANK = (b"\r", b"\n")  # a buffer starting with one holds empty lines first

REASONS: dict[int, str] = {
    200: "OK",
    301: "Moved Permanently",
    304: "Not Modified",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    414: "URI Too Long",
    417: "Expectation Failed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


class ParseError(Exception):
    """The request cannot be served; answer with :attr:`status` and close the connection."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status} {REASONS.get(status, '')}: {detail}")
        self.status = status
        self.detail = detail


@dataclass(slots=True)
class Request:
    method: str
    target: str  # the request target as sent
    path: str  # percent-decoded path, always starting with "/"
    query: str | None  # raw query string, without "?"
    version: str  # "HTTP/1.0" or "HTTP/1.1"
    headers: dict[str, str] = field(default_factory=dict)  # lower-case names
    keep_alive: bool = True
    content_length: int = 0
    raw: bytes = b""  # the header block exactly as the client sent it

    def to_bytes(self) -> bytes:
        """Serialise (header block only): ``RequestParser`` parses it back to an equal request."""
        lines = [f"{self.method} {self.target} {self.version}"]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class RequestParser:
    """Parses the request stream of one connection."""

    __slots__ = ("_buf", "_skip", "closed", "_last_raw", "max_header_bytes", "max_uri_bytes")
    _buf: bytes

    def __init__(
        self, max_header_bytes: int = MAX_HEADER_BYTES, max_uri_bytes: int = MAX_URI_BYTES
    ) -> None:
        self._buf = b""  # usually one recv holds one whole request: no copy on feed
        self._skip = 0  # body bytes of the previous request still to discard
        #: True once a request (or error) ended the connection: answer it, then close (an
        #: attribute the parser alone sets; read on every request, so not a property)
        self.closed = False
        self._last_raw = b""
        self.max_header_bytes = max_header_bytes
        self.max_uri_bytes = max_uri_bytes

    # -- input ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if not self.closed:
            self._buf = self._buf + data if self._buf else bytes(data)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed (a partial request when > 0)."""
        return len(self._buf)

    # -- output --------------------------------------------------------------------------
    def next_request(self) -> Request | None:
        """The next complete request, None if more bytes are needed, or raise ParseError."""
        if self.closed or not self._buf or (self._skip and not self._discard_body()):
            return None
        buf = self._buf
        if buf[:1] in _BLANK:  # tolerate empty lines between requests
            buf = self._buf = buf.lstrip(b"\r\n")
        fast = _FAST_HEAD.match(buf)
        if fast is not None:
            end = fast.end()
            if end <= self.max_header_bytes + 4:
                # (the usual read holds exactly one request: slicing bytes to its ends copies
                # nothing, buf[:end] is buf and buf[end:] the empty bytes)
                self._buf = buf[end:]
                return self._accept(buf[:end], self._parse_fast, fast)
        match = _HEAD_END.search(buf)
        if match is None:
            self._check_incomplete()
            return None
        end = match.end()
        if end > self.max_header_bytes + 4:
            self._check_line(buf[: buf.find(b"\n")])
            self._fail(431, "header block too large")
        self._buf = buf[end:]
        return self._accept(buf[:end], self._parse, buf[:end])

    def _accept(self, raw: bytes, parse, arg) -> Request:
        """Parse *raw*, already taken off the buffer; the request's fate sets the parser's."""
        try:
            request = parse(arg)
        except ParseError:
            self.closed = True
            raise
        request.raw = raw
        self._last_raw = raw
        self._skip = request.content_length
        if not request.keep_alive:
            self.closed = True
        return request

    def detach(self) -> bytes:
        """Raw bytes of the last request plus everything buffered after it; closes the parser."""
        data = self._last_raw + self._buf
        self._buf = b""
        self.closed = True
        return data

    # -- internals -----------------------------------------------------------------------
    def _discard_body(self) -> bool:
        if self._skip:
            n = min(self._skip, len(self._buf))
            self._buf = self._buf[n:]
            self._skip -= n
        return self._skip == 0

    def _fail(self, status: int, detail: str) -> None:
        self.closed = True
        raise ParseError(status, detail)

    def _check_line(self, line: bytes) -> None:
        """414 for a request line (or target) too long - decided the same way whether the line
        arrives whole or in pieces, so the answer never depends on how TCP split it."""
        if len(line.rstrip(b"\r")) > self.max_uri_bytes + LINE_SLACK:
            self._fail(414, "request line too long")
        parts = line.split(b" ")
        if len(parts) >= 2 and len(parts[1]) > self.max_uri_bytes:
            self._fail(414, "request target too long")

    def _check_incomplete(self) -> None:
        buf = self._buf
        nl = buf.find(b"\n")
        first = buf if nl < 0 else buf[:nl]
        if len(first) > self.max_uri_bytes + LINE_SLACK:
            self._fail(414, "request line too long")
        if len(buf) > self.max_header_bytes:
            self._fail(431, "header block too large")

    def _parse_fast(self, match: re.Match[bytes]) -> Request:
        method, target_b, minor, fields = match.groups()
        if match.start(4) - 2 > self.max_uri_bytes + LINE_SLACK:
            raise ParseError(414, "request line too long")
        if len(target_b) > self.max_uri_bytes:
            raise ParseError(414, "request target too long")
        found = _FAST_FIELD.findall(fields)
        if len(found) > MAX_HEADERS:
            raise ParseError(431, "too many header fields")
        headers: dict[str, str] = {}
        for name_b, value_b in found:
            name = name_b.decode("ascii").lower()
            value = value_b.decode("latin-1").rstrip(" \t")
            if name in headers:
                _add_header(headers, name, value)
            else:
                headers[name] = value
        target = target_b.decode("ascii")
        if "%" in target or "?" in target:
            path, query = _split_target(method, target)
        else:
            path, query = target, None
        version = "HTTP/1.1" if minor == b"1" else "HTTP/1.0"
        request = Request(method.decode("ascii"), target, path, query, version, headers)
        _check_framing(request)
        return request

    def _parse(self, raw: bytes) -> Request:
        lines = _LINE_SPLIT.split(raw)[:-2]  # the block ends with an empty line
        self._check_line(lines[0])
        line = _REQUEST_LINE.fullmatch(lines[0])
        if line is None:
            raise ParseError(400, "malformed request line")
        method_b, target_b, major, minor = line.groups()
        if major != b"1":
            raise ParseError(505, "only HTTP/1.x is served")
        version = "HTTP/1.0" if minor == b"0" else "HTTP/1.1"
        headers = _parse_headers(lines[1:])
        target = target_b.decode("ascii")
        path, query = _split_target(method_b, target)
        request = Request(
            method=method_b.decode("ascii"),
            target=target,
            path=path,
            query=query,
            version=version,
            headers=headers,
            raw=raw,
        )
        _check_framing(request)
        return request


def _parse_headers(lines: list[bytes]) -> dict[str, str]:
    if len(lines) > MAX_HEADERS:
        raise ParseError(431, "too many header fields")
    headers: dict[str, str] = {}
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            raise ParseError(400, "obsolete line folding")
        match = _HEADER.fullmatch(line)
        if match is None:
            raise ParseError(400, "malformed header field")
        name_b, value_b = match.groups()
        if _BAD_VALUE.search(value_b):
            raise ParseError(400, "control character in header value")
        _add_header(headers, name_b.decode("ascii").lower(), value_b.decode("latin-1"))
    return headers


def _add_header(headers: dict[str, str], name: str, value: str) -> None:
    if name not in headers:
        headers[name] = value
    elif name == "host":
        raise ParseError(400, "duplicate Host")
    elif name == "content-length":
        if headers[name] != value:
            raise ParseError(400, "conflicting Content-Length")
    else:
        headers[name] = headers[name] + ", " + value


def _split_target(method: bytes, target: str) -> tuple[str, str | None]:
    if target == "*":
        if method != b"OPTIONS":
            raise ParseError(400, "asterisk-form is only for OPTIONS")
        return "*", None
    if not target.startswith("/"):
        absolute = _ABSOLUTE.match(target)
        if absolute is None:
            raise ParseError(400, "request target is not a path or an absolute URI")
        target = target[absolute.end() :] or "/"
        if not target.startswith(("/", "?")):
            raise ParseError(400, "malformed absolute URI")
        if target.startswith("?"):
            target = "/" + target
    raw_path, sep, query = target.partition("?")
    return percent_decode(raw_path), (query if sep else None)


def percent_decode(raw: str) -> str:
    """Decode ``%XX`` escapes; a malformed escape, NUL or invalid UTF-8 is a 400."""
    if "%" not in raw:
        return raw

    def one(match: re.Match[bytes]) -> bytes:
        if match.group(1) is None:
            raise ParseError(400, "invalid percent-encoding")
        return bytes([int(match.group(1), 16)])

    decoded = _PERCENT.sub(one, raw.encode("ascii"))
    if b"\x00" in decoded:
        raise ParseError(400, "NUL in path")
    try:
        return decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(400, "path is not UTF-8") from None


def _check_framing(request: Request) -> None:
    """Host, body framing, Expect and keep-alive: the parts that decide the connection's fate."""
    headers = request.headers
    http11 = request.version == "HTTP/1.1"
    host = headers.get("host")
    if host is None:
        if http11:
            raise ParseError(400, "HTTP/1.1 request without Host")
    elif host not in _GOOD_HOSTS:
        if _HOST.fullmatch(host) is None:
            raise ParseError(400, "invalid Host")
        if len(_GOOD_HOSTS) >= GOOD_HOSTS_KEPT:
            _GOOD_HOSTS.clear()
        _GOOD_HOSTS.add(host)
    connection = headers.get("connection")
    if connection is None:
        request.keep_alive = http11
    else:
        tokens = {t.strip().lower() for t in connection.split(",")}
        request.keep_alive = "close" not in tokens if http11 else "keep-alive" in tokens
    if headers.keys().isdisjoint(_FRAMING):
        return
    te = headers.get("transfer-encoding")
    cl = headers.get("content-length")
    if te is not None:
        if cl is not None:
            raise ParseError(400, "both Transfer-Encoding and Content-Length")
        if te.strip().lower() != "chunked":
            raise ParseError(501, f"transfer-coding {te!r} not implemented")
        request.keep_alive = False  # answer, then close: the body is not read
    elif cl is not None:
        if not cl.isdigit() or not cl.isascii():
            raise ParseError(400, "invalid Content-Length")
        request.content_length = int(cl)
        if request.content_length > MAX_BODY_BYTES:
            raise ParseError(413, "request body too large")
    expect = headers.get("expect")
    if expect is not None:
        if expect.strip().lower() != "100-continue":
            raise ParseError(417, "only 100-continue is understood")
        if request.content_length:
            request.keep_alive = False  # we answer without reading the body, then close
            request.content_length = 0
