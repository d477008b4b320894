"""One cache policy for every server: keys are normalised paths, and the
cache's memory - keys, heads and bodies together - stays under one cap per process.

Over real sockets, every configuration: thousands of spellings of one file cache it once;
20,000 HEADs on distinct long spellings add nothing; files of every size, requested under
several spellings, never take the cache over its cap.  In process: what the cap counts.
"""

from __future__ import annotations

import os
import random
import sys

import psutil
import pytest
from conftest import SERVER_CONFIGS
from helpers import Reader, connect, get

from arch_sim.harness import servers
from real_servers.core import RequestParser, Responder
from real_servers.core import docroot as dr

pytestmark = pytest.mark.real

ALL_IDS = [c[0] for c in SERVER_CONFIGS]
MB = 1 << 20


def start(config, root, *args: str, tmp=None) -> servers.ServerProcess:
    _, arch, base = config
    return servers.start(arch, root, args=[*base, *args], log_dir=tmp)


def rss(server) -> int:
    return sum(psutil.Process(pid).memory_info().rss for pid in server.status()["pids"])


def rss_each(server) -> dict[int, int]:
    return {pid: psutil.Process(pid).memory_info().rss for pid in server.status()["pids"]}


def growth(server, arch: str, base: int, base_each: dict[int, int]) -> int:
    """Resident memory grown since ``base`` (``base_each``: per process).  For prefork the
    largest growth of one worker: every connection may land on a worker process of its own,
    which grows by its first request alone (pages it touches for the first time) - the sum over
    64 processes measures which workers wrk's connections landed on, not the cache."""
    if arch == "prefork":
        return max(now - base_each.get(pid, 0) for pid, now in rss_each(server).items())
    return rss(server) - base


def pipelined(url: str, requests: list[bytes], head: bool = False, batch: int = 200) -> list:
    """Send *requests* over one keep-alive connection, *batch* at a time; the responses."""
    sock = connect(url, timeout=20)
    reader = Reader(sock)
    replies = []
    try:
        for i in range(0, len(requests), batch):
            chunk = requests[i : i + batch]
            sock.sendall(b"".join(chunk))
            replies += [reader.response(head_request=head) for _ in chunk]
    finally:
        sock.close()
    return replies


def spread(url: str, requests: list[bytes], head: bool = False, connections: int = 8) -> list:
    """Like :func:`pipelined` over *connections* connections (so every state-group worker
    gets its share)."""
    replies: list = [None] * len(requests)
    for k in range(connections):
        replies[k::connections] = pipelined(url, requests[k::connections], head)
    return replies


def spellings(name: str, n: int) -> list[str]:
    """*n* distinct spellings of ``/name``: extra slashes and ``.`` segments."""
    out = []
    k = 0
    while len(out) < n:
        dots, slashes = divmod(k, 40)
        out.append("/" * (slashes + 1) + "./" * dots + name)
        k += 1
    return out


@pytest.fixture(scope="module")
def sizes_root(tmp_path_factory):
    """400 files of 1 B to 64 KB (random sizes: 13 MB in all) and one 64 KB file."""
    root = tmp_path_factory.mktemp("cache-www")
    rng = random.Random(4)
    for i in range(400):
        (root / f"f{i:03d}.bin").write_bytes(rng.randbytes(rng.randint(1, 64 << 10)))
    (root / "one.bin").write_bytes(rng.randbytes(64 << 10))
    (root / "page.html").write_bytes(b"page\n")
    return root


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_spellings_of_one_file_are_cached_once(sizes_root, tmp_path, config):
    """1,500 spellings of one 64 KB file, then 20,000 HEADs on long distinct spellings (up to
    4 KB each): the file is cached once, so memory hardly moves (a cache keyed by the raw path
    would hold 1,500 copies, about 67 MB, and a key per spelling besides)."""
    body = (sizes_root / "one.bin").read_bytes()
    with start(config, sizes_root, tmp=tmp_path) as server:
        spread(server.url, [get("/page.html")] * 16)
        base, base_each = rss(server), rss_each(server)
        replies = spread(server.url, [get(p) for p in spellings("one.bin", 1500)])
        assert all(r.status == 200 and r.body == body for r in replies)
        grew = growth(server, config[1], base, base_each)
        assert grew < 8 * MB, f"+{grew / MB:.1f} MB for 1,500 spellings of one file"
        long_ones = ["/" * (1 + k // 1000) + "./" * (k % 1000) + "/" * 1000 + "one.bin"
                     for k in range(20_000)]
        assert len(set(long_ones)) == 20_000 and max(map(len, long_ones)) < 4096
        heads = spread(server.url, [get(p).replace(b"GET", b"HEAD", 1) for p in long_ones],
                       head=True)
        assert all(r.status == 200 for r in heads)
        grew = growth(server, config[1], base, base_each)
        assert grew < 8 * MB, f"+{grew / MB:.1f} MB after 20,000 long spellings"
        cache = server.status()["cache"]
        assert cache["entries"] <= 3, cache  # one.bin and page.html (a worker's own count)


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=ALL_IDS)
def test_the_cache_stays_under_its_cap_whatever_is_asked(sizes_root, tmp_path, config):
    """A cap of 4 MiB, 13 MB of files of every size from 1 B to 64 KB, each asked under three
    spellings, twice: every body correct, the cache's own count never over the cap, and resident
    memory within the cap plus the interpreter's slack."""
    cap = 4 * MB
    files = sorted(p.name for p in sizes_root.glob("f*.bin"))
    bodies = {name: (sizes_root / name).read_bytes() for name in files}
    with start(config, sizes_root, "--cache-max-bytes", str(cap), tmp=tmp_path) as server:
        spread(server.url, [get("/page.html")] * 16)
        base, base_each = rss(server), rss_each(server)
        for _ in range(2):
            asked = [(n, s) for n in files for s in (f"/{n}", f"//{n}", f"/./{n}")]
            random.Random(len(asked)).shuffle(asked)
            replies = spread(server.url, [get(s) for _, s in asked])
            for (name, _), reply in zip(asked, replies, strict=True):
                assert reply.status == 200 and reply.body == bodies[name], name
            cache = server.status()["cache"]
            assert cache["cap"] == cap and 0 < cache["bytes"] <= cap, cache
        grew = growth(server, config[1], base, base_each)  # the cap is per process
        assert grew < cap + 12 * MB, f"+{grew / MB:.1f} MB with a {cap / MB:.0f} MiB cache"


# -- in process: what the cap counts ----------------------------------------------------------
def test_entry_cost_counts_key_head_and_body(tmp_path):
    (tmp_path / "a.txt").write_bytes(b"a" * 1000)
    root = dr.DocumentRoot(tmp_path)
    entry = root.lookup("/a.txt")
    assert entry.cost >= 1000 + sys.getsizeof("/a.txt") + len(entry.head_200)
    assert root.cached_bytes == entry.cost
    assert root.lookup("//a.txt") is entry and root.lookup("/./a.txt") is entry
    assert len(root) == 1


def test_entry_cost_is_not_less_than_what_python_allocates(tmp_path):
    """The cap is stated in real bytes: tracemalloc sees no more than the counted cost."""
    import tracemalloc

    for i in range(300):
        (tmp_path / f"{'n' * 100}{i}.txt").write_bytes(os.urandom(i * 50))
    root = dr.DocumentRoot(tmp_path)
    responder = Responder(root)
    requests = []
    for i in range(300):  # parsed beforehand: only what the cache keeps is measured
        parser = RequestParser()
        parser.feed(get(f"/{'n' * 100}{i}.txt"))
        requests.append(parser.next_request())
    responder.respond(requests[0])
    first = root.cached_bytes
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for request in requests[1:]:
        responder.respond(request)  # caches the entry, its head for this second and its reply
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert used <= (root.cached_bytes - first) * 1.05, (used, root.cached_bytes - first)


def test_the_oldest_entries_make_room_and_the_count_never_passes_the_cap(tmp_path):
    for i in range(50):
        (tmp_path / f"{i}.bin").write_bytes(b"b" * 10_000)
    root = dr.DocumentRoot(tmp_path, cache_max_bytes=100_000)
    for i in range(50):
        root.lookup(f"/{i}.bin")
        assert root.cached_bytes <= 100_000
    assert 5 <= len(root) < 10
    assert root.lookup("/49.bin") is root.lookup("/49.bin")  # the newest stayed


def test_default_cap_is_64_mib():
    assert dr.CACHE_MAX_BYTES == 64 * MB


def test_a_file_replaced_before_each_open_is_looked_up_once_more_then_a_503(tmp_path):
    """A sendfile response opens its file before the first byte: a file replaced since its
    entry was revalidated is looked up again and served as it now is; replaced again before
    that second open, the answer is a 503 with Retry-After, never a head for other bytes."""
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * 4096)
    root = dr.DocumentRoot(tmp_path, cache_max_file=1024)  # 4 KB: served with sendfile
    responder = Responder(root)
    parser = RequestParser()
    parser.feed(get("/big.bin"))
    request = parser.next_request()
    opens, sizes = [0], iter([5000, 6000, 7000])
    real_open = root.open_file

    def replaced_first(entry):  # another version renamed over it just before the open
        opens[0] += 1
        tmp = tmp_path / ".big.tmp"
        tmp.write_bytes(b"b" * next(sizes))
        os.replace(tmp, path)
        return real_open(entry)

    root.open_file = replaced_first
    response, fd = responder.opened(responder.respond(request), request)
    assert opens[0] == 2 and fd == -1 and response.status == 503
    assert b"Retry-After:" in response.head
    root.open_file = real_open  # replaced once: looked up again, and its head is the new file
    path.write_bytes(b"c" * 3000)
    response, fd = responder.opened(responder.respond(request), request)
    try:
        assert response.status == 200 and fd >= 0 and os.fstat(fd).st_size == 3000
        assert b"Content-Length: 3000" in response.head
    finally:
        os.close(fd)
