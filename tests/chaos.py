"""The clients and faults of the fault-injection suite (tests/test_faults.py).

A :class:`Site` is a document root whose every valid answer is known: fixed files of every size,
files a mutator keeps replacing (each version is recorded), chmod-ing and deleting, and a file
no HTTP date can describe.  Well-behaved clients check every response against it and write the
outcome to a :class:`Ledger`; misbehaving clients (non-readers, resets mid-response, tricklers,
garbage) only must not break anything.  Every byte each client reads goes through one strict
reader, so a truncated body that ends in a clean EOF is told apart from a reset.
"""

from __future__ import annotations

import hashlib
import os
import random
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

IO_TIMEOUT = 15.0  # a well-behaved client gives up after this long without a byte
BAD_MTIME = 10**12  # no HTTP date can say it: the server must answer 500
RESET = struct.pack("ii", 1, 0)


def digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


# -- the document root -------------------------------------------------------------------------
class Site:
    """Fixed files (small and large), mutable ones with every version ever written, bad.bin."""

    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.rng = random.Random(seed)
        self.fixed: dict[str, bytes] = {}
        self.versions: dict[str, set[bytes]] = {}  # name -> digests of every version written
        self.sizes: dict[str, set[int]] = {}
        self.lock = threading.Lock()
        for i in range(30):
            self._fixed(f"s{i}.bin", self.rng.randint(1, 60_000))
        for i in range(5):
            self._fixed(f"l{i}.bin", self.rng.randint(200_000, 2_000_000))
        self._fixed("index.html", 100)
        for i in range(6):
            self.replace(f"m{i}.bin")
        bad = root / "bad.bin"
        bad.write_bytes(b"b" * 100)
        os.utime(bad, (BAD_MTIME, BAD_MTIME))
        self.bad_date = os.stat(bad).st_mtime == BAD_MTIME  # (tmpfs stores it, ext4 not)

    def _fixed(self, name: str, size: int) -> None:
        data = self.rng.randbytes(size)
        (self.root / name).write_bytes(data)
        self.fixed[name] = data

    def replace(self, name: str) -> None:
        """Write a new version atomically (a temporary file renamed over the old one)."""
        size = self.rng.choice([self.rng.randint(1, 60_000), self.rng.randint(70_000, 600_000)])
        data = self.rng.randbytes(size)
        with self.lock:
            self.versions.setdefault(name, set()).add(digest(data))
            self.sizes.setdefault(name, set()).add(size)
        tmp = self.root / f".{name}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, self.root / name)

    def mutate(self) -> str:
        """One random change to a mutable file: replace it, chmod it, or delete it for a while."""
        name = f"m{self.rng.randrange(6)}.bin"
        path = self.root / name
        action = self.rng.choice(["replace", "replace", "chmod", "delete"])
        try:
            if action == "replace":
                self.replace(name)
            elif action == "chmod":  # not world-readable: a root server answers 403
                path.chmod(0o600 if path.stat().st_mode & 0o004 else 0o644)
            else:
                path.unlink()
                time.sleep(0.05)
                self.replace(name)
        except FileNotFoundError:
            self.replace(name)
        return action

    def names(self) -> list[str]:
        return [*self.fixed, *self.versions] + (["bad.bin"] if self.bad_date else [])

    def check(self, name: str, status: int, length: int, body: bytes | None) -> str | None:
        """None if (*status*, *body*) is a valid answer for *name*; else what is wrong.
        *body* None: a HEAD, whose Content-Length alone is checked."""
        if name == "bad.bin":
            return None if status == 500 else f"bad.bin: {status}, expected 500"
        if name in self.fixed:
            if status != 200:
                return f"{name}: {status}"
            data = self.fixed[name]
            if length != len(data) or (body is not None and body != data):
                return f"{name}: wrong body ({length} bytes)"
            return None
        if status in (403, 404):
            return None  # chmod-ed or deleted meanwhile
        if status == 503:
            # replaced again between the second lookup's stat and its open: the core looks a
            # changed file up once more, then answers 503 with Retry-After (response.py
            # Responder.opened) rather than a head that does not describe the bytes sent
            return None
        if status != 200:
            return f"{name}: {status}"
        with self.lock:
            if body is None:
                return None if length in self.sizes[name] else f"{name}: length {length}"
            return None if digest(body) in self.versions[name] else f"{name}: no such version"


# -- reading responses strictly ------------------------------------------------------------------
class Failure(Exception):
    """The connection failed before a whole response: ``kind`` says how."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind  # "refused", "reset", "eof" (before a byte), "eof-mid-response", ...


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Conn:
    sock: socket.socket
    opened: float
    buf: bytes = b""
    pause: float = 0.0  # a slow reader: sleep this long after every read

    @classmethod
    def open(cls, addr: tuple[str, int], rcvbuf: int = 0) -> Conn:
        sock = socket.socket()
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(IO_TIMEOUT)
        try:
            sock.connect(addr)
        except ConnectionRefusedError:
            sock.close()
            raise Failure("refused") from None
        except ConnectionResetError:  # the listener closed with this connection still queued
            sock.close()
            raise Failure("reset") from None
        except OSError as exc:
            sock.close()
            raise Failure(f"connect: {exc}") from None
        return cls(sock, time.monotonic())

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise Failure("reset" if isinstance(exc, ConnectionResetError | BrokenPipeError)
                          else f"send: {exc}") from None

    def _fill(self, mid: bool) -> None:
        try:
            data = self.sock.recv(65536 if self.pause else 1 << 20)
        except ConnectionResetError:
            raise Failure("reset") from None
        except TimeoutError:
            raise Failure("timeout") from None
        if not data:
            raise Failure("eof-mid-response" if mid or self.buf else "eof")
        self.buf += data
        if self.pause:
            time.sleep(self.pause)

    def reply(self, head: bool = False) -> Reply:
        while b"\r\n\r\n" not in self.buf:
            self._fill(False)
        block, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = block.decode("latin-1").split("\r\n")
        version, status, _ = (lines[0].split(" ", 2) + [""])[:3]
        if version != "HTTP/1.1" or not status.isdigit():
            raise AssertionError(f"malformed status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise AssertionError(f"malformed header {line!r}")
            headers[name.lower()] = value.strip()
        code = int(status)
        length = int(headers.get("content-length", "0"))
        if not head and code != 304:
            while len(self.buf) < length:
                self._fill(True)
        cut = 0 if head or code == 304 else length
        body, self.buf = self.buf[:cut], self.buf[cut:]
        return Reply(code, headers, body)

    def close(self, reset: bool = False) -> None:
        if reset:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET)
            except OSError:
                pass
        self.sock.close()

    def ending(self, timeout: float) -> str:
        """Read to the end: "eof", "reset" or "timeout"."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(1 << 20):
                pass
        except ConnectionResetError:
            return "reset"
        except TimeoutError:
            return "timeout"
        return "eof"


# -- the ledger of well-behaved requests --------------------------------------------------------
@dataclass
class Ledger:
    """Every well-behaved request's outcome; the faults injected and when."""

    ok: int = 0
    errors: int = 0  # a valid error status (403, 404, 500)
    failures: list[tuple[float, float, str]] = field(default_factory=list)  # opened, when, kind
    wrong: list[str] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            self.faults[what] = self.faults.get(what, 0) + 1

    def unexplained(self) -> list[tuple[float, float, str]]:
        """Connection failures no worker kill explains: a kill between the connection's open
        and (shortly after) its failure."""
        return [f for f in self.failures
                if not any(f[0] - 0.05 <= k <= f[1] + 0.5 for k in self.kills)]


def request(name: str, spelling: int, method: str = "GET", version: str = "HTTP/1.1",
            extra: str = "") -> bytes:
    path = ("/", "//", "/./", "/.//")[spelling] + name
    host = "Host: t\r\n" if version == "HTTP/1.1" else ""
    return f"{method} {path} {version}\r\n{host}{extra}\r\n".encode()
