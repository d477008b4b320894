"""URL path -> file under the document root, and the cache of what was found.

Security lives here, in one place: a path is split into segments after percent-decoding, any
``..`` segment or backslash is refused, and the real path (symlinks resolved, a directory's
``index.html`` too) must stay under the root.  Only regular files are served; a directory
serves its ``index.html`` (403 without one) at the path with its trailing slash and is a 301 to
that path without it; a file named with a trailing slash is a 404 (nginx answers the same).  A
server running as root could read anything, so it serves only world-readable files (kHTTPd's
``perm_required``); any other user serves what the kernel lets it open.

The cache maps a *normalised* path (one key however the path is spelt: ``//f``, ``/./f`` and
``/f`` are one entry) to an :class:`Entry` with its response head pre-rendered (all but
``Date`` and ``Connection``).  Files up to ``cache_max_file`` bytes keep their body in memory;
larger ones are sent with ``os.sendfile``.  Every entry - key, heads, body and the objects
around them - is counted against ``cache_max_bytes`` (one cap per process); the oldest entries
make room for new ones.  An entry is revalidated (realpath + the stat that says what to serve)
at most once per clock second and reloaded when its file's inode, size, mtime, ctime or mode
changed - a ``chmod`` changes the ctime - so a changed file is noticed within a second.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
from collections import deque
from dataclasses import dataclass

from .clock import Clock, http_date
from .mime import content_type

CACHE_MAX_FILE = 64 * 1024
CACHE_MAX_BYTES = 64 * 1024 * 1024
#: bytes an entry costs besides its key, path, heads (all three) and body: the Entry, its stat
#: signature and Last-Modified string, the two Responses reused for it and its slot in the
#: cache's ordered dict
#: (measured with tracemalloc: about 570; tests/test_cache.py checks the count is not short)
ENTRY_OVERHEAD = 1024
DATE_LINE = 37  # "Date: ...\r\n" in the head rendered each second
#: a reused reply of a body up to this size also keeps head and body joined, to go out in one
#: ``send``: a small response's cost is mostly per call, not per byte (a larger one is sent
#: with ``sendmsg`` of head and body, which copies nothing)
WIRE_MAX = 4096
CLOSE_LINE = 21  # "Connection: close\r\n" and the blank line, in a closing reply's head


class NotServable(Exception):
    """The path maps to nothing we may serve: answer with :attr:`status` (and, for a 301,
    redirect to :attr:`location`, a normalised path)."""

    def __init__(self, status: int, location: str = "") -> None:
        super().__init__(status)
        self.status = status
        self.location = location


class Changed(Exception):
    """The file was replaced or changed since its entry was revalidated: look it up again."""


@dataclass(slots=True)
class Entry:
    key: str  # the normalised path it is cached under
    real: str  # resolved path of the file
    size: int
    mtime: int
    last_modified: str
    head_200: bytes  # status line + Server, Content-Type, Content-Length, Last-Modified
    body: bytes | None  # in memory when small, else None (sendfile)
    checked: int  # clock second of the last revalidation
    signature: tuple  # (dev, inode, size, mtime_ns, ctime_ns, mode): what revalidation compares
    cost: int = 0  # bytes counted against the cache's cap
    head_now: bytes = b""  # the whole keep-alive HTTP/1.1 head for second ``checked``
    reply: object = None  # the Responder's keep-alive GET response built on head_now
    close_reply: object = None  # its GET response with Connection: close, this second


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
        self._inside = real.rstrip(os.sep) + os.sep
        self.clock = clock or Clock()
        self.server_line = f"Server: {server_name}\r\n".encode()
        self.cache_max_file = cache_max_file
        self.cache_max_bytes = cache_max_bytes
        self.world_readable_only = os.geteuid() == 0
        self._cache: dict[str, Entry] = {}
        self._order: deque[Entry] = deque()  # oldest first (and entries since dropped)
        self._cached_bytes = 0
        self._lock = threading.Lock()  # stores and evictions only: a hit takes no lock

    def lookup(self, path: str) -> Entry:
        """The entry for a decoded URL path, or raise :class:`NotServable` (301/403/404/500).

        Keys are normalised paths, so a path found as a key is normal: a hit costs one dict
        lookup, and only a miss normalises the path (when it has an empty or dot segment or a
        backslash) and looks again.
        """
        entry = self._cache.get(path)
        if entry is None and ("//" in path or "/." in path or "\\" in path):
            path = normalise(path)
            entry = self._cache.get(path)
        second = self.clock.second
        if entry is not None and entry.checked == second:
            return entry
        try:
            real, st = self._resolve(path)
        except NotServable:
            if entry is not None:
                self._drop(entry)
            raise
        if entry is not None:
            if entry.real == real and entry.signature == _signature(st):
                self._stamp(entry, second)
                return entry
            self._drop(entry)
        entry = self._entry(path, real, st)
        self._stamp(entry, second)
        self._store(entry)
        return entry

    def open_file(self, entry: Entry) -> int:
        """Open a large entry's file for sendfile, before any byte of its response is sent.

        Raises :class:`NotServable` (403/404) if it cannot be opened, and :class:`Changed` if
        the file opened is not the one the entry's head describes (replaced or rewritten within
        the second since revalidation): the caller looks it up again.
        """
        try:
            fd = os.open(entry.real, os.O_RDONLY | os.O_CLOEXEC)
        except PermissionError:
            raise NotServable(403) from None
        except OSError:
            raise NotServable(404) from None
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) != entry.signature[:4]:
            os.close(fd)
            entry.checked = -1  # revalidate at the next lookup
            raise Changed(entry.key)
        return fd

    def cache_stats(self) -> dict[str, int]:
        """Entries, counted bytes and the cap (for ``/server-status``)."""
        return {"entries": len(self._cache), "bytes": self._cached_bytes,
                "cap": self.cache_max_bytes}

    @property
    def cached_bytes(self) -> int:
        return self._cached_bytes

    def __len__(self) -> int:
        return len(self._cache)

    def _stamp(self, entry: Entry, second: int) -> None:
        """Revalidated this second: render its common head (with this second's Date) once."""
        entry.checked = second
        entry.head_now = entry.head_200 + self.clock.date_line() + b"\r\n"
        entry.reply = entry.close_reply = None

    # -- internals -----------------------------------------------------------------------
    def _resolve(self, key: str) -> tuple[str, os.stat_result]:
        if "\x00" in key:
            raise NotServable(403)
        rel = key.strip("/")
        real = os.path.realpath(os.path.join(self.root, rel)) if rel else self.root
        self._check_inside(real)  # a symlink pointing outside the root
        st = _stat(real)
        if stat.S_ISDIR(st.st_mode):
            if not key.endswith("/"):
                raise NotServable(301, key + "/")  # relative links in its index need the slash
            real = os.path.realpath(os.path.join(real, "index.html"))
            self._check_inside(real)  # an index.html that is a symlink out of the root
            st = _stat(real, missing=403)
        elif key.endswith("/"):
            raise NotServable(404)  # a file is not a directory
        if not stat.S_ISREG(st.st_mode):
            raise NotServable(403)  # FIFOs, devices, sockets: never
        if self.world_readable_only and not st.st_mode & stat.S_IROTH:
            raise NotServable(403)
        return real, st

    def _check_inside(self, real: str) -> None:
        if real != self.root and not real.startswith(self._inside):
            raise NotServable(403)

    def _entry(self, key: str, real: str, st: os.stat_result) -> Entry:
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
        try:
            last_modified = http_date(mtime)
        except (ValueError, OverflowError, OSError):  # a year beyond 9999, or before 1
            raise NotServable(500) from None
        head = (
            b"HTTP/1.1 200 OK\r\n"
            + self.server_line
            + f"Content-Type: {content_type(real)}\r\n"
            f"Content-Length: {size}\r\n"
            f"Last-Modified: {last_modified}\r\n".encode()
        )
        entry = Entry(key, real, size, mtime, last_modified, head, body, -1, _signature(st))
        entry.cost = (
            ENTRY_OVERHEAD + sys.getsizeof(key) + sys.getsizeof(real)
            + 2 * sys.getsizeof(head) + DATE_LINE + (sys.getsizeof(body) if body else 0)
            + sys.getsizeof(head) + DATE_LINE + CLOSE_LINE  # the closing reply's head
        )
        if body is not None and len(body) <= WIRE_MAX:  # the reused replies' joined copies
            entry.cost += 2 * (sys.getsizeof(head) + DATE_LINE + CLOSE_LINE + len(body))
        return entry

    def _store(self, entry: Entry) -> None:
        """Cache *entry*, first dropping the oldest entries until it fits under the cap."""
        with self._lock:
            old = self._cache.pop(entry.key, None)
            if old is not None:  # another thread revalidated it meanwhile
                self._cached_bytes -= old.cost
            if entry.cost > self.cache_max_bytes:
                return  # serve it, uncached
            order, cache = self._order, self._cache
            while cache and self._cached_bytes + entry.cost > self.cache_max_bytes:
                oldest = order.popleft()
                if cache.get(oldest.key) is oldest:  # (not one dropped or replaced since)
                    del cache[oldest.key]
                    self._cached_bytes -= oldest.cost
            cache[entry.key] = entry
            self._cached_bytes += entry.cost
            order.append(entry)
            if len(order) > 2 * len(cache) + 64:  # forget the dropped ones (the dict keeps
                self._order = deque(cache.values())  # insertion order: oldest first)

    def _drop(self, entry: Entry) -> None:
        with self._lock:
            if self._cache.get(entry.key) is entry:
                del self._cache[entry.key]
                self._cached_bytes -= entry.cost


def normalise(path: str) -> str:
    """Decoded URL path -> its cache key: ``/`` + the segments without empty and ``.`` ones,
    keeping a trailing slash; refuses anything that could climb out of the root (403)."""
    if "\\" in path or "\x00" in path:
        raise NotServable(403)
    segments = [s for s in path.split("/") if s and s != "."]
    if ".." in segments:
        raise NotServable(403)
    key = "/" + "/".join(segments)
    if segments and path.endswith(("/", "/.")):
        key += "/"
    return key


def _signature(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def _stat(path: str, missing: int = 404) -> os.stat_result:
    try:
        return os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        raise NotServable(missing) from None
    except PermissionError:
        raise NotServable(403) from None
    except OSError:
        raise NotServable(404) from None
