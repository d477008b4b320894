"""Responses for parsed requests: pre-rendered heads plus ``Date`` and ``Connection``.

A :class:`Response` is data, not I/O: each server writes ``head`` then ``body`` (one
``sendmsg``, so no Nagle stall between them) or, for a large file, ``head`` then
``os.sendfile`` of ``file``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from .clock import Clock
from .docroot import DocumentRoot, Entry, NotServable
from .parser import KNOWN_METHODS, REASONS, Request

STATUS_PATH = "/server-status"
ALLOW = b"Allow: GET, HEAD\r\n"
KEEP_ALIVE_1_0 = b"Connection: keep-alive\r\n"
CLOSE = b"Connection: close\r\n"


@dataclass(slots=True)
class Response:
    status: int
    head: bytes
    body: bytes = b""  # what follows the head in memory (empty for HEAD and 304)
    file: str | None = None  # a file to sendfile after the head instead
    length: int = 0  # bytes of the body, in memory or in the file
    keep_alive: bool = True


class Responder:
    """Turns requests into responses for one document root."""

    def __init__(
        self,
        docroot: DocumentRoot,
        status: Callable[[], dict] | None = None,
    ) -> None:
        self.docroot = docroot
        self.clock: Clock = docroot.clock
        self.status = status
        self._error_heads = {code: self._render_error(code) for code in REASONS if code >= 400}

    # -- public --------------------------------------------------------------------------
    def respond(self, request: Request, loopback: bool = True) -> Response:
        """The response to a well-formed request."""
        keep = request.keep_alive
        if request.method not in ("GET", "HEAD"):
            return self.error(405 if request.method in KNOWN_METHODS else 501, keep, request)
        if request.path == STATUS_PATH and self.status is not None:
            if not loopback:
                return self.error(403, keep, request)
            return self._json(self.status(), request)
        try:
            entry = self.docroot.lookup(request.path)
        except NotServable as exc:
            return self.error(exc.status, keep, request)
        since = request.headers.get("if-modified-since")
        if since is not None and _not_modified(entry, since):
            return self._not_modified(entry, request)
        return self._file(entry, request)

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
                entry.reply = _with_body(entry, entry.head_now, keep)
            return entry.reply
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
            + b"Content-Type: text/html; charset=utf-8\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
        )
        return head, body


def _with_body(entry: Entry, head: bytes, keep_alive: bool) -> Response:
    """A 200 with the file's body: from the cache, or the file to sendfile."""
    if entry.body is not None:
        return Response(200, head, entry.body, None, entry.size, keep_alive)
    return Response(200, head, b"", entry.real, entry.size, keep_alive)


def _connection(keep_alive: bool, request: Request | None) -> bytes:
    if not keep_alive:
        return CLOSE
    if request is not None and request.version == "HTTP/1.0":
        return KEEP_ALIVE_1_0
    return b""


def _not_modified(entry: Entry, since: str) -> bool:
    if since == entry.last_modified:
        return True
    try:
        return entry.mtime <= parsedate_to_datetime(since).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False  # an unparseable date is ignored, as RFC 9110 says
