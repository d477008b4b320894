"""Fault injection: random mixes of faults against every server, for a bounded time.

For ``ARCH_SIM_FAULTS_S`` seconds per server configuration (default 12: a minute over the five
in ``make test``; set it higher for a soak), with a random seed (``ARCH_SIM_FAULTS_SEED`` to
repeat one; it is printed):

- well-behaved clients: keep-alive, pipelined, HTTP/1.0, HEAD, conditional requests, every
  spelling of every file (see chaos.Site), a slow reader that still reads in time;
- misbehaving clients: non-readers that hold big responses for up to 5 s, resets mid-response,
  header tricklers, garbage;
- faults: files replaced, chmod-ed and deleted under load, a file no HTTP date can describe
  (a 500), SIGKILL of a random state-group worker every 3-6 s; at the end SIGTERM under load.

Afterwards: every well-behaved request got a complete, correct response or a valid error
status; the only connection failures are those a worker kill explains; a response is never cut
short with a clean EOF (a cut response ends in a reset); the server logged no traceback;
connections, descriptors and threads are back to their baseline; each process's resident
memory grew by less than its cache cap plus ``RSS_SLACK``; and SIGTERM under load ends the
server within the drain time, exit code 0, every in-flight response whole or reset.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest
from chaos import Conn, Failure, Ledger, Site, request
from conftest import SERVER_CONFIGS
from helpers import wait_for

from arch_sim.harness import servers

pytestmark = pytest.mark.real

SECONDS = float(os.environ.get("ARCH_SIM_FAULTS_S", "12"))
SEND_TIMEOUT = 3.0
DRAIN_TIMEOUT = 3.0
CACHE_CAP = 8 << 20
RSS_SLACK = 24 << 20  # per process, beyond its cache cap: connections, buffers, the allocator
CLIENTS = {"good": 6, "slow": 2, "stall": 3, "reset": 2, "trickle": 1, "garbage": 1}


class Env:
    def __init__(self, addr: tuple[str, int], site: Site, ledger: Ledger) -> None:
        self.addr, self.site, self.ledger = addr, site, ledger
        self.stop = threading.Event()


# -- the clients: one episode each ----------------------------------------------------------------
def good(env: Env, rng: random.Random) -> None:
    """A keep-alive connection, a few batches of pipelined requests, each answer checked."""
    site, ledger = env.site, env.ledger
    try:
        conn = Conn.open(env.addr)
    except Failure as failure:
        ledger.failures.append((time.monotonic(), time.monotonic(), failure.kind))
        return
    try:
        for _ in range(rng.randint(1, 6)):
            batch = []
            for i in range(rng.randint(1, 4)):
                name = rng.choice(site.names())
                method = rng.choice(["GET", "GET", "GET", "HEAD"])
                last = i == 3 or rng.random() < 0.3  # only the last may end the connection
                version = "HTTP/1.0" if last and rng.random() < 0.2 else "HTTP/1.1"
                extra = "If-None-Match: *\r\n" if rng.random() < 0.1 else ""
                batch.append((name, method, version, extra))
                if last or name == "bad.bin":
                    break
            conn.send(b"".join(request(n, rng.randrange(4), m, v, x) for n, m, v, x in batch))
            for name, method, version, extra in batch:
                reply = conn.reply(head=method == "HEAD")
                length = int(reply.headers.get("content-length", "0"))
                status = reply.status
                if status == 304 and extra and name != "bad.bin":
                    wrong = None  # If-None-Match: * on a file that exists
                else:
                    wrong = site.check(name, status, length,
                                       None if method == "HEAD" else reply.body)
                with ledger.lock:
                    if wrong:
                        ledger.wrong.append(f"{method} {name} {version}: {wrong}")
                    elif status >= 300:
                        ledger.errors += 1
                    else:
                        ledger.ok += 1
                if reply.headers.get("connection", "").lower() == "close" or (
                        version == "HTTP/1.0"):
                    return
            time.sleep(rng.uniform(0, 0.03))
    except Failure as failure:
        ledger.failures.append((conn.opened, time.monotonic(), failure.kind))
    except AssertionError as exc:
        ledger.wrong.append(f"malformed: {exc}")
    finally:
        conn.close()


def slow(env: Env, rng: random.Random) -> None:
    """A reader with a small buffer reading 64 KB every 15 ms: slow, but well within the send
    timeout - it must get the whole file."""
    name = rng.choice([n for n in env.site.fixed if n.startswith("l")])
    try:
        conn = Conn.open(env.addr, rcvbuf=32768)
    except Failure as failure:
        env.ledger.failures.append((time.monotonic(), time.monotonic(), failure.kind))
        return
    conn.pause = 0.015
    try:
        conn.send(request(name, rng.randrange(4)))
        reply = conn.reply()
        wrong = env.site.check(name, reply.status, len(reply.body), reply.body)
        with env.ledger.lock:
            if wrong:
                env.ledger.wrong.append(f"slow reader: {wrong}")
            else:
                env.ledger.ok += 1
    except Failure as failure:
        env.ledger.failures.append((conn.opened, time.monotonic(), failure.kind))
    finally:
        conn.close()


def stall(env: Env, rng: random.Random) -> None:
    """Ask for big files and never read; hang up (or reset) after a while."""
    names = [n for n in env.site.fixed if n.startswith("l")]
    conn = Conn.open(env.addr, rcvbuf=16384)
    try:
        conn.send(b"".join(request(rng.choice(names), 0) for _ in range(rng.randint(1, 3))))
        env.stop.wait(rng.uniform(0.5, 5.0))
    finally:
        conn.close(reset=rng.random() < 0.5)
    env.ledger.count("non-reader")


def reset(env: Env, rng: random.Random) -> None:
    conn = Conn.open(env.addr)
    try:
        conn.send(request(rng.choice(list(env.site.fixed)), 0) * rng.randint(1, 3))
        conn.sock.recv(rng.randint(1, 100_000))
    finally:
        conn.close(reset=True)
    env.ledger.count("reset mid-response")


def trickle(env: Env, rng: random.Random) -> None:
    """Send a header a byte at a time, give up or finish it."""
    conn = Conn.open(env.addr)
    data = request("index.html", 0)
    try:
        for byte in data[: rng.randint(1, len(data) - 1)]:
            conn.send(bytes([byte]))
            if env.stop.wait(rng.uniform(0.05, 0.4)):
                break
    finally:
        conn.close()
    env.ledger.count("header trickle")


def garbage(env: Env, rng: random.Random) -> None:
    """Random bytes: any answer must be a well-formed 4xx/5xx, then the close."""
    conn = Conn.open(env.addr)
    try:
        conn.send(rng.randbytes(rng.randint(1, 3000)) + b"\r\n\r\n")
        reply = conn.reply()
        if not 400 <= reply.status < 600:
            env.ledger.wrong.append(f"garbage got {reply.status}")
    except Failure:
        pass  # a clean close (or a reset of the unread rest) instead of an answer
    except AssertionError as exc:
        env.ledger.wrong.append(f"garbage got a malformed response: {exc}")
    finally:
        conn.close()
    env.ledger.count("garbage")


EPISODES = {"good": good, "slow": slow, "stall": stall, "reset": reset, "trickle": trickle,
            "garbage": garbage}


def client(env: Env, kind: str, seed: int) -> None:
    rng = random.Random(seed)
    while not env.stop.is_set():
        try:
            EPISODES[kind](env, rng)
            if kind not in ("good", "slow"):
                env.stop.wait(rng.uniform(0.02, 0.2))  # faults are a spice, not the load
        except (Failure, OSError) as exc:
            if kind in ("good", "slow"):  # (they record their own failures)
                env.ledger.wrong.append(f"{kind} client: {exc!r}")
            time.sleep(0.05)  # a misbehaving client's connection failed: try again
        except Exception as exc:  # a bug in the test itself must not pass unseen
            env.ledger.wrong.append(f"{kind} client raised {exc!r}")


def mutator(env: Env) -> None:
    while not env.stop.wait(env.site.rng.uniform(0.05, 0.3)):
        env.ledger.count(f"file {env.site.mutate()}")


def killer(env: Env, server: servers.ServerProcess, rng: random.Random) -> None:
    """SIGKILL a random state-group worker every 3-6 s (the master restarts it)."""
    while not env.stop.wait(rng.uniform(3.0, 6.0)):
        workers = [p for p in server.status()["pids"] if p != server.pid]
        if workers:
            env.ledger.kills.append(time.monotonic())
            os.kill(rng.choice(workers), signal.SIGKILL)
            env.ledger.count("worker killed")


# -- measuring the server ------------------------------------------------------------------------
def footprint(server) -> dict[int, tuple[int, int]]:
    """pid -> (descriptors, resident bytes)."""
    return {pid: (len(os.listdir(f"/proc/{pid}/fd")), psutil.Process(pid).memory_info().rss)
            for pid in server.status()["pids"]}


def start_threads(env: Env, seed: int, kinds: dict[str, int]) -> list[threading.Thread]:
    threads = []
    for kind, n in kinds.items():
        for i in range(n):
            t = threading.Thread(target=client, args=(env, kind, seed * 100 + len(threads) + i),
                                 name=f"{kind}-{i}", daemon=True)
            t.start()
            threads.append(t)
    return threads


@pytest.mark.parametrize("config", SERVER_CONFIGS, ids=[c[0] for c in SERVER_CONFIGS])
def test_random_faults_under_load(config, tmp_path):
    seed = int(os.environ.get("ARCH_SIM_FAULTS_SEED", random.randrange(1 << 30)))
    print(f"{config[0]}: seed {seed} (ARCH_SIM_FAULTS_SEED={seed} repeats it), {SECONDS:.0f} s")
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") else tmp_path
    root = Path(tempfile.mkdtemp(prefix="arch-sim-faults-", dir=base))
    site, ledger = Site(root, seed), Ledger()
    name, arch, args = config
    server = servers.start(arch, root, log_dir=tmp_path, args=[
        *args, "--send-timeout", str(SEND_TIMEOUT), "--drain-timeout", str(DRAIN_TIMEOUT),
        "--header-timeout", "2", "--cache-max-bytes", str(CACHE_CAP)])
    try:
        env = Env(("127.0.0.1", server.port), site, ledger)
        before = footprint(server)
        threads_before = server.status()["threads_alive"]
        workers = start_threads(env, seed, CLIENTS)
        chaos = [threading.Thread(target=mutator, args=(env,), daemon=True)]
        if arch == "state-group":
            chaos.append(threading.Thread(target=killer, args=(env, server, random.Random(seed)),
                                          daemon=True))
        for t in chaos:
            t.start()
        env.stop.wait(SECONDS)
        env.stop.set()
        for t in workers + chaos:
            t.join(30)
            assert not t.is_alive(), f"client {t.name} is stuck"
        print(f"{name}: {ledger.ok} answers, {ledger.errors} error statuses, "
              f"{len(ledger.failures)} connection failures, faults {ledger.faults}")
        assert not ledger.wrong, ledger.wrong[:10]
        assert not ledger.unexplained(), ledger.unexplained()[:10]
        assert ledger.ok > 50 * SECONDS / 20, "hardly anything was served"

        # back to the baseline: connections, descriptors, threads; memory within its bound
        server.check_alive()
        assert wait_for(lambda: server.status()["connections_open"] <= 1, 10)
        total_fds = sum(fds for fds, _ in before.values())
        assert wait_for(lambda: abs(sum(f for f, _ in footprint(server).values()) - total_fds)
                        <= 3 * len(before), 10), (footprint(server), before)
        assert wait_for(lambda: server.status()["threads_alive"] <= threads_before, 10)
        ceiling = max(rss for _, rss in before.values()) + CACHE_CAP + RSS_SLACK
        after = footprint(server)
        assert all(rss < ceiling for _, rss in after.values()), (after, ceiling)
        print(f"{name}: RSS before {[r >> 20 for _, r in before.values()]} MB, after "
              f"{[r >> 20 for _, r in after.values()]} MB (bound {ceiling >> 20} MB a process)")
        log = server.log_path.read_text(errors="replace")
        assert "Traceback" not in log, log[-3000:]

        sigterm_under_load(server, env, seed)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def sigterm_under_load(server, env: Env, seed: int) -> None:
    """SIGTERM while well-behaved clients and non-readers are busy: exit 0 within the drain
    time; each request whole, or refused/reset/closed before its first byte; each response
    in flight whole or reset - never cut short by a clean EOF."""
    env.stop.clear()
    env.ledger.failures.clear()
    stalled = []
    for _ in range(2):
        conn = Conn.open(env.addr, rcvbuf=16384)
        conn.send(request("l0.bin", 0) * 3)
        stalled.append(conn)
    clients = start_threads(env, seed + 1, {"good": 3})
    time.sleep(0.5)
    started = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    code = server.proc.wait(DRAIN_TIMEOUT + 10)
    took = time.monotonic() - started
    env.stop.set()
    for t in clients:
        t.join(30)
    assert code == 0 and took < DRAIN_TIMEOUT + 2, (code, took)
    allowed = {"refused", "reset", "eof"}  # before any byte of a response
    assert all(kind in allowed for _, _, kind in env.ledger.failures), env.ledger.failures
    assert not env.ledger.wrong, env.ledger.wrong[:10]
    for conn in stalled:
        try:
            while True:
                conn.reply()  # whole responses, then...
        except Failure as failure:
            assert failure.kind in ("reset", "eof"), failure.kind  # ...a reset or a clean EOF
        finally:
            conn.close()
