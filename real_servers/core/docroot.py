"""URL path -> file under the document root, and the cache of what was found.

Security lives here, in one place: a path is split into segments after percent-decoding, any
``..`` segment or backslash is refused, and the real path (symlinks resolved) must stay under
the root.  Only regular files are served; a directory serves its ``index.html`` or is 403.

Each found file becomes a cache :class:`Entry` with its response head pre-rendered (all but
``Date`` and ``Connection``).  Files up to ``cache_max_file`` bytes keep their body in memory;
larger ones are sent with ``os.sendfile``.  An entry is revalidated (realpath + stat) at most
once per clock second and reloaded when its mtime or size changed, so a changed file is
noticed within a second.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from .clock import Clock, http_date
from .mime import content_type

CACHE_MAX_FILE = 64 * 1024
CACHE_MAX_BYTES = 64 * 1024 * 1024
CACHE_MAX_ENTRIES = 20_000


class NotServable(Exception):
    """The path maps to nothing we may serve: answer with :attr:`status`."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@dataclass(slots=True)
class Entry:
    real: str  # resolved path of the file
    size: int
    mtime: int
    last_modified: str
    head_200: bytes  # status line + Server, Content-Type, Content-Length, Last-Modified
    body: bytes | None  # in memory when small, else None (sendfile)
    checked: int  # clock second of the last revalidation
    head_now: bytes = b""  # the whole keep-alive HTTP/1.1 head for second ``checked``
    reply: object = None  # the Responder's keep-alive GET response built on head_now


class DocumentRoot:
    """The served directory tree."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        clock: Clock | None = None,
        server_name: str = "arch-sim",
        cache_max_file: int = CACHE_MAX_FILE,
        cache_max_bytes: int = CACHE_MAX_BYTES,
    ) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise NotADirectoryError(f"document root {root!s} is not a directory")
        self.root = real
        self.clock = clock or Clock()
        self.server_line = f"Server: {server_name}\r\n".encode()
        self.cache_max_file = cache_max_file
        self.cache_max_bytes = cache_max_bytes
        self._cache: dict[str, Entry] = {}
        self._cached_bytes = 0

    def lookup(self, path: str) -> Entry:
        """The entry for a decoded URL path, or raise :class:`NotServable` (403/404).

        The cache is keyed by the decoded path as requested: a path that was normalised and
        resolved once maps to the same file again until the entry is revalidated.
        """
        entry = self._cache.get(path)
        second = self.clock.second
        if entry is not None and entry.checked == second:
            return entry
        real, st = self._resolve(_normalise(path))
        if entry is not None:
            if (entry.real, entry.mtime, entry.size) == (real, int(st.st_mtime), st.st_size):
                self._stamp(entry, second)
                return entry
            self._drop(path)
        entry = self._entry(real, st)
        self._stamp(entry, second)
        self._store(path, entry)
        return entry

    def _stamp(self, entry: Entry, second: int) -> None:
        """Revalidated this second: render its common head (with this second's Date) once."""
        entry.checked = second
        entry.head_now = entry.head_200 + self.clock.date_line() + b"\r\n"
        entry.reply = None

    # -- internals -----------------------------------------------------------------------
    def _resolve(self, key: str) -> tuple[str, os.stat_result]:
        real = os.path.realpath(os.path.join(self.root, key))
        if real != self.root and not real.startswith(self.root + os.sep):
            raise NotServable(403)  # a symlink pointing outside the root
        st = _stat(real)
        if stat.S_ISDIR(st.st_mode):
            index = os.path.join(real, "index.html")
            st = _stat(index, missing=403)
            real = index
        if not stat.S_ISREG(st.st_mode):
            raise NotServable(403)  # FIFOs, devices, sockets: never
        return real, st

    def _entry(self, real: str, st: os.stat_result) -> Entry:
        body = None
        if st.st_size <= self.cache_max_file:
            try:
                with open(real, "rb") as f:
                    body = f.read()
            except PermissionError:
                raise NotServable(403) from None
            except OSError:
                raise NotServable(404) from None
        mtime = int(st.st_mtime)
        size = len(body) if body is not None else st.st_size
        last_modified = http_date(mtime)
        head = (
            b"HTTP/1.1 200 OK\r\n"
            + self.server_line
            + f"Content-Type: {content_type(real)}\r\n"
            f"Content-Length: {size}\r\n"
            f"Last-Modified: {last_modified}\r\n".encode()
        )
        return Entry(real, size, mtime, last_modified, head, body, -1)

    def _store(self, key: str, entry: Entry) -> None:
        if len(self._cache) >= CACHE_MAX_ENTRIES:
            self._cache.clear()
            self._cached_bytes = 0
        if entry.body is not None:
            if self._cached_bytes + entry.size > self.cache_max_bytes:
                return  # serve it, but keep the cache bounded
            self._cached_bytes += entry.size
        self._cache[key] = entry

    def _drop(self, key: str) -> None:
        entry = self._cache.pop(key, None)
        if entry is not None and entry.body is not None:
            self._cached_bytes -= entry.size


def _normalise(path: str) -> str:
    """Decoded URL path -> relative key; refuses anything that could climb out of the root."""
    if "\\" in path or "\x00" in path:
        raise NotServable(403)
    segments = [s for s in path.split("/") if s and s != "."]
    if ".." in segments:
        raise NotServable(403)
    return "/".join(segments)


def _stat(path: str, missing: int = 404) -> os.stat_result:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise NotServable(missing) from None
    except PermissionError:
        raise NotServable(403) from None
    except OSError:
        raise NotServable(404) from None
