"""The ``Date`` header, rendered at most once per second (kHTTPd's thread 0 did the same)."""

from __future__ import annotations

import time
from email.utils import formatdate


class Clock:
    """Caches ``Date: ...\\r\\n`` for the current second."""

    __slots__ = ("_second", "_line")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def date_line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
            self._second = now
        return self._line

    @property
    def second(self) -> int:
        """The current second (the cache's revalidation tick); renders ``Date`` if it moved."""
        now = int(time.time())
        if now != self._second:
            self.date_line()
            return self._second
        return now


def http_date(timestamp: float) -> str:
    return formatdate(int(timestamp), usegmt=True)
