"""Responses for parsed requests: pre-rendered heads plus ``Date`` and ``Connection``.

A :class:`Response` is data, not I/O: each server writes ``head`` then ``body`` (one
``sendmsg``, so no Nagle stall between them) or, for a large file, opens it with
:meth:`Responder.opened` *before* any byte goes out, then writes ``head`` and ``os.sendfile``.
The 200 of a cached file is built once per second per entry and connection fate (keep-alive
HTTP/1.1, or ``Connection: close``) and reused; for a small body it carries ``wire``, head and
body joined in one bytes object, which a server sends with one ``send`` (no ``sendmsg`` of two
buffers).

:meth:`Responder.respond` never raises: a file the core cannot serve is its 4xx, a failure
(say a file whose mtime no HTTP date can express, or a bug) a 500 that closes the connection.
Conditional requests follow RFC 9110 13.1-13.2: ``If-None-Match`` (we send no entity-tags, so
only ``*`` matches an existing file) takes precedence over ``If-Modified-Since``, which is
ignored when unparseable or later than the server's clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from .clock import Clock
from .docroot import WIRE_MAX, Changed, DocumentRoot, Entry, NotServable
from .faults import report
from .parser import KNOWN_METHODS, REASONS, Request
from .status import StatusAccess

STATUS_PATH = "/server-status"
ALLOW = b"Allow: GET, HEAD\r\n"
RETRY_AFTER = b"Retry-After: 1\r\n"
KEEP_ALIVE_1_0 = b"Connection: keep-alive\r\n"
CLOSE = b"Connection: close\r\n"
LOCATION_SAFE = "/!$&'()*+,;=:@-._~"  # RFC 3986 pchar and "/": kept as they are in a Location


@dataclass(slots=True)
class Response:
    status: int
    head: bytes
    body: bytes = b""  # what follows the head in memory (empty for HEAD and 304)
    file: str | None = None  # a file to sendfile after the head instead
    length: int = 0  # bytes of the body, in memory or in the file
    keep_alive: bool = True
    source: Entry | None = None  # the cache entry a file response describes
    wire: bytes | None = None  # head + body in one object (a reused reply), else None


class Responder:
    """Turns requests into responses for one document root."""

    def __init__(
        self,
        docroot: DocumentRoot,
        status: Callable[[], dict] | None = None,
        access: StatusAccess | None = None,
    ) -> None:
        self.docroot = docroot
        self.clock: Clock = docroot.clock
        # without an access policy a status callback is served to loopback (in-process tests)
        self.access = access or StatusAccess("loopback" if status is not None else "off")
        self.status = status if self.access.exposed else None  # off: an ordinary path
        self._error_heads = {code: self._render_error(code) for code in REASONS if code >= 400}

    # -- public --------------------------------------------------------------------------
    def respond(self, request: Request, loopback: bool = True) -> Response:
        """The response to a well-formed request; never raises."""
        keep = request.keep_alive
        if request.method not in ("GET", "HEAD"):
            return self.error(405 if request.method in KNOWN_METHODS else 501, keep, request)
        try:
            if request.path == STATUS_PATH and self.status is not None:
                if not self.access.allows(loopback, request.headers):
                    return self.error(403, keep, request)
                return self._json(self.status(), request)
            entry = self.docroot.lookup(request.path)
            headers = request.headers
            if ("if-none-match" in headers or "if-modified-since" in headers) and _unchanged(
                entry, headers, self.clock.second
            ):
                return self._not_modified(entry, request)
            return self._file(entry, request)
        except NotServable as exc:
            if exc.status == 301:
                return self._redirect(exc.location, request)
            return self.error(exc.status, keep and exc.status < 500, request)
        except Exception as exc:  # a bug: this request gets a 500, the server carries on
            report(f"answering {request.method} {request.target[:200]!r}", exc)
            return self.error(500, False, request)

    def opened(self, response: Response, request: Request, loopback: bool = True
               ) -> tuple[Response, int]:
        """Open the file of a sendfile response before any of it is sent.

        Returns the response to send and the open descriptor, or an error response (403 if
        the file may not be read, 404 if it is gone) and -1.  A file replaced since its entry
        was revalidated is looked up again, once, so the head always describes the bytes sent.
        """
        for _ in range(2):
            try:
                return response, self.docroot.open_file(response.source)
            except NotServable as exc:
                return self.error(exc.status, request.keep_alive, request), -1
            except Changed:
                response = self.respond(request, loopback)
                if response.file is None:
                    return response, -1
        return self.error(503, request.keep_alive, request), -1  # changing under our feet

    def error(
        self, status: int, keep_alive: bool = False, request: Request | None = None
    ) -> Response:
        """An error page; parse errors (no *request*) always close the connection."""
        head, body = self._error_heads.get(status) or self._render_error(status)
        if request is not None and request.method == "HEAD":
            body = b""
        head = head + self.clock.date_line() + _connection(keep_alive, request) + b"\r\n"
        return Response(status, head, body, None, len(body), keep_alive)

    # -- internals -----------------------------------------------------------------------
    def _file(self, entry: Entry, request: Request) -> Response:
        keep = request.keep_alive
        head_only = request.method == "HEAD"
        if keep and request.version == "HTTP/1.1":  # the common case: this second's head
            if head_only:
                return Response(200, entry.head_now, b"", None, 0, keep)
            if entry.reply is None:  # servers never change a Response: it can be sent again
                entry.reply = _with_body(entry, entry.head_now, keep, reused=True)
            return entry.reply
        if not keep and not head_only:  # Connection: close (HTTP/1.0 or 1.1): also reused
            if entry.close_reply is None:
                head = entry.head_200 + self.clock.date_line() + CLOSE + b"\r\n"
                entry.close_reply = _with_body(entry, head, False, reused=True)
            return entry.close_reply
        head = entry.head_200 + self.clock.date_line() + _connection(keep, request) + b"\r\n"
        if head_only:
            return Response(200, head, b"", None, 0, keep)
        return _with_body(entry, head, keep)

    def _not_modified(self, entry: Entry, request: Request) -> Response:
        head = (
            b"HTTP/1.1 304 Not Modified\r\n"
            + self.docroot.server_line
            + f"Last-Modified: {entry.last_modified}\r\n".encode()
            + self.clock.date_line()
            + _connection(request.keep_alive, request)
            + b"\r\n"
        )
        return Response(304, head, b"", None, 0, request.keep_alive)

    def _redirect(self, location: str, request: Request) -> Response:
        """301 to a directory's path with its slash: the normalised path, percent-encoded (so
        ``//dir`` cannot become a redirect to another host), with the query as sent."""
        target = quote(location, safe=LOCATION_SAFE)
        if request.query is not None:
            target += "?" + request.query
        page = b"<html><body><h1>301 Moved Permanently</h1></body></html>\n"
        body = b"" if request.method == "HEAD" else page
        head = (
            b"HTTP/1.1 301 Moved Permanently\r\n"
            + self.docroot.server_line
            + f"Location: {target}\r\n".encode()
            + b"Content-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(page)}\r\n".encode()
            + self.clock.date_line()
            + _connection(request.keep_alive, request)
            + b"\r\n"
        )
        return Response(301, head, body, None, len(body), request.keep_alive)

    def _json(self, payload: dict, request: Request) -> Response:
        body = (json.dumps(payload, sort_keys=True) + "\n").encode()
        head = (
            b"HTTP/1.1 200 OK\r\n"
            + self.docroot.server_line
            + b"Content-Type: application/json\r\nCache-Control: no-store\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + self.clock.date_line()
            + _connection(request.keep_alive, request)
            + b"\r\n"
        )
        if request.method == "HEAD":
            body = b""
        return Response(200, head, body, None, len(body), request.keep_alive)

    def _render_error(self, status: int) -> tuple[bytes, bytes]:
        reason = REASONS.get(status, "Error")
        body = f"<html><body><h1>{status} {reason}</h1></body></html>\n".encode()
        head = (
            f"HTTP/1.1 {status} {reason}\r\n".encode()
            + self.docroot.server_line
            + (ALLOW if status == 405 else b"")
            + (RETRY_AFTER if status == 503 else b"")
            + b"Content-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
        )
        return head, body


def _with_body(entry: Entry, head: bytes, keep_alive: bool, reused: bool = False) -> Response:
    """A 200 with the file's body: from the cache, or the file to sendfile.  A *reused* one
    (kept on the entry for this second) of a small body carries head and body joined
    (``wire``), counted in the entry's cost."""
    body = entry.body
    if body is not None:
        wire = head + body if reused and len(body) <= WIRE_MAX else None
        return Response(200, head, body, None, entry.size, keep_alive, None, wire)
    return Response(200, head, b"", entry.real, entry.size, keep_alive, entry)


def _connection(keep_alive: bool, request: Request | None) -> bytes:
    if not keep_alive:
        return CLOSE
    if request is not None and request.version == "HTTP/1.0":
        return KEEP_ALIVE_1_0
    return b""


def _unchanged(entry: Entry, headers: dict[str, str], now: int) -> bool:
    """True when a conditional GET/HEAD is answered 304 (RFC 9110 13.2.2, steps 3 and 4)."""
    tags = headers.get("if-none-match")
    if tags is not None:  # If-Modified-Since is then ignored
        return tags.strip() == "*"  # no ETag is ever sent, so no other tag can match
    since = headers["if-modified-since"]
    if since == entry.last_modified:
        return entry.mtime <= now
    try:
        date = parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an unparseable date is ignored, as RFC 9110 says
    return entry.mtime <= date <= now  # a date in the future is ignored too
