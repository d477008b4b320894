"""The state-group server (kHTTPd >= 0.1.3): structure, workers, user space, timeouts, limits.

Load behaviour (interrupt-driven when idle, polling when busy) is in test_stategroup_load.py.
"""

from __future__ import annotations

import http.client
import os
import random
import select
import signal
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import (
    Reader,
    connect,
    drain_clients,
    drain_site,
    exchange,
    get,
    kept_alive,
    wait_for,
)

from arch_sim.harness import servers
from real_servers.core.serving import listener
from real_servers.stategroup import states
from real_servers.stategroup.config import Config
from real_servers.stategroup.lifecycle import NAMES, USERSPACE
from real_servers.stategroup.worker import Worker

pytestmark = pytest.mark.real

STATES_DIR = Path(states.__file__).parent


# -- helpers specific to this server -------------------------------------------------------------
def start(root, *args: str, cpus=(0,), tmp=None) -> servers.ServerProcess:
    return servers.start("state-group", root, cpus=cpus, args=list(args), log_dir=tmp)


def workers(server: servers.ServerProcess) -> list[dict]:
    return server.status()["workers"]


def proc_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


def switches(pid: int) -> int:
    return proc_field(pid, "voluntary_ctxt_switches") + proc_field(
        pid, "nonvoluntary_ctxt_switches"
    )


def gone(pid: int) -> bool:
    """True once *pid* has exited and been reaped (so its sockets are closed)."""
    return not Path(f"/proc/{pid}").exists()


def need_cpus(n: int) -> tuple[int, ...]:
    cpus = tuple(sorted(os.sched_getaffinity(0)))
    if len(cpus) < n:
        pytest.skip(f"needs {n} CPUs, this process may use {len(cpus)}")
    return cpus[:n]


class Upstream:
    """A small stdlib user-space server: echoes POST bodies (after X-Delay s), GET paths."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(float(self.headers.get("X-Delay", "0")))
            self._reply(body)

        def do_GET(self) -> None:
            self._reply(self.path.encode())

        def _reply(self, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    def __enter__(self) -> Upstream:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- one module per state, replaceable ----------------------------------------------------------
def test_one_module_per_state_loaded_through_one_list():
    modules = {p.stem for p in STATES_DIR.glob("*.py")} - {"__init__"}
    assert modules == set(NAMES) == {"accept", "wait_headers", "send_data", "userspace", "logging"}
    loaded = states.load()
    assert [m.__name__.rsplit(".", 1)[1] for m in loaded] == list(NAMES)
    assert all(callable(m.run) for m in loaded)


STUB_WAIT_HEADERS = '''
"""A stand-in for wait_headers: answers every connection with 'stub' without parsing."""
from real_servers.core import Response
from real_servers.stategroup.lifecycle import READ, SEND_DATA, WAIT_HEADERS

REPLY = b"HTTP/1.1 200 OK\\r\\nContent-Length: 4\\r\\nConnection: close\\r\\n\\r\\n"

def run(worker):
    batch, worker.queues[WAIT_HEADERS] = worker.queues[WAIT_HEADERS], []
    for conn in batch:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            conn.wait = READ
            continue
        conn.response = Response(200, REPLY, b"stub", None, 4, False)
        conn.state = SEND_DATA
        worker.queues[SEND_DATA].append(conn)
    return len(batch)
'''


def test_a_state_is_swapped_for_a_stub_from_the_command_line(site, tmp_path):
    stub = tmp_path / "stub_wait_headers.py"
    stub.write_text(STUB_WAIT_HEADERS)
    with start(site, "--state", f"wait_headers={stub}", tmp=tmp_path) as server:
        reply, reader = exchange(server.url, get("/page.html"))
        assert reply.status == 200 and reply.body == b"stub"
        assert reader.closed()  # send_data and logging, unchanged, honoured Connection: close
        reply, _ = exchange(server.url, get("/no/such/file"))
        assert reply.body == b"stub"


def test_a_state_is_swapped_in_process_and_a_failing_state_costs_one_connection(site):
    class Exploding:
        """A userspace state with a bug: it raises on every connection it gets."""

        calls = 0

        @classmethod
        def run(cls, worker) -> int:
            batch, worker.queues[USERSPACE] = worker.queues[USERSPACE], []
            for conn in batch:
                cls.calls += 1
                worker.fault(conn, RuntimeError("stub failure"))
            return len(batch)

    sock = listener("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = Config(root=str(site), userspace_port=1)  # everything non-static -> the stub
    worker = Worker(config, sock, states={"userspace": Exploding})
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    try:
        reply, reader = exchange(url, b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        assert reply is None and Exploding.calls == 1  # that connection was closed...
        reply, _ = exchange(url, get("/page.html"))
        assert reply.status == 200  # ...and the worker carried on
        assert worker.access_log.count >= 1
    finally:
        worker.request_stop()
        thread.join(10)
    assert not thread.is_alive()


# -- workers: one per CPU, pinned, replaced when they die ---------------------------------------
def test_one_single_threaded_worker_pinned_to_each_cpu(site, tmp_path):
    cpus = need_cpus(2)
    with start(site, "--cpus", ",".join(map(str, cpus)), cpus=cpus, tmp=tmp_path) as server:
        status = server.status()
        assert sorted(w["cpu"] for w in status["workers"]) == list(cpus)
        for w in status["workers"]:
            assert os.sched_getaffinity(w["pid"]) == {w["cpu"]}
            assert proc_field(w["pid"], "Threads") == 1
        assert status["pids"][0] == server.pid and len(status["pids"]) == 1 + len(cpus)
        assert status["threads_alive"] == 1 + len(cpus)


def test_default_is_one_worker_per_allowed_cpu(site, tmp_path):
    with start(site, cpus=(0,), tmp=tmp_path) as server:
        assert [w["cpu"] for w in workers(server)] == [0]


def test_a_killed_worker_is_replaced_within_2s_and_requests_keep_succeeding(site, tmp_path):
    cpus = need_cpus(2)
    with start(site, "--cpus", ",".join(map(str, cpus)), cpus=cpus, tmp=tmp_path) as server:
        for _ in range(20):
            assert exchange(server.url, get("/page.html"))[0].status == 200
        before = server.status()
        victim = before["workers"][0]
        killed_at = time.monotonic()
        os.kill(victim["pid"], signal.SIGKILL)
        assert wait_for(lambda: gone(victim["pid"]), 2.0), "the master did not reap the worker"
        for _ in range(50):  # the survivor serves while the replacement starts
            assert exchange(server.url, get("/page.html"))[0].status == 200

        def replaced() -> dict | None:
            for w in workers(server):
                if w["cpu"] == victim["cpu"] and w["pid"] != victim["pid"]:
                    return w
            return None

        assert wait_for(lambda: replaced() is not None, 2.0, interval=0.01)
        elapsed = time.monotonic() - killed_at
        new = replaced()
        assert elapsed < 2.0, f"replaced after {elapsed:.2f} s"
        assert os.sched_getaffinity(new["pid"]) == {victim["cpu"]}
        for _ in range(50):
            assert exchange(server.url, get("/page.html"))[0].status == 200
        after = server.status()
        assert after["restarts"] == 1
        # the dead worker's counts were kept (its requests, and its switches via RUSAGE_CHILDREN)
        assert after["requests"] >= before["requests"] + 100
        assert after["voluntary_ctxt_switches"] >= before["voluntary_ctxt_switches"]
        assert after["cpu_user_s"] >= before["cpu_user_s"]
        print(f"worker on CPU {victim['cpu']} replaced {elapsed * 1000:.0f} ms after SIGKILL")


# -- user space -------------------------------------------------------------------------------
def test_post_is_relayed_to_user_space_intact_while_static_requests_flow(site, tmp_path):
    with Upstream() as up, start(site, "--userspace-port", str(up.port), tmp=tmp_path) as server:
        body = random.Random(3).randbytes(300_000)
        result: dict = {}

        def post() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.request("POST", "/echo", body=body, headers={"X-Delay": "1.0"})
            reply = conn.getresponse()
            result["status"], result["body"] = reply.status, reply.read()
            result["done"] = time.monotonic()

        thread = threading.Thread(target=post)
        thread.start()
        time.sleep(0.2)  # the POST is now with user space, which answers after 1 s
        page = (site / "page.html").read_bytes()
        started = time.monotonic()
        for _ in range(30):
            reply, _ = exchange(server.url, get("/page.html"))
            assert reply.status == 200 and reply.body == page
        static_done = time.monotonic()
        thread.join(10)
        assert result["status"] == 200 and result["body"] == body
        assert static_done - started < 0.8 and static_done < result["done"], (
            "static requests waited for the user-space request: the worker blocked"
        )


def test_query_string_and_other_methods_go_to_user_space(site, tmp_path):
    with Upstream() as up, start(site, "--userspace-port", str(up.port), tmp=tmp_path) as server:
        reply, _ = exchange(server.url, get("/page.html?q=1&r=2"))
        assert reply.status == 200 and reply.body == b"/page.html?q=1&r=2"
        reply, _ = exchange(server.url, get("/page.html"))
        assert reply.body == (site / "page.html").read_bytes()  # static stays static
        per_state = workers(server)[0]["per_state"]
        assert per_state["userspace"]["moved"] >= 1


def test_a_client_half_close_is_passed_on_and_the_answer_still_arrives(site, tmp_path):
    with Upstream() as up, start(site, "--userspace-port", str(up.port), tmp=tmp_path) as server:
        body = b"half-closed " * 1000
        sock = connect(server.url)
        sock.sendall(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
        sock.sendall(body)
        sock.shutdown(socket.SHUT_WR)  # like `nc -q0`: we are done sending
        reader = Reader(sock)
        reply = reader.response()
        assert reply.status == 200 and reply.body == body
        assert reader.closed()


def test_unreachable_user_space_is_a_502(site, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]  # bound, never listening: connections are refused
        with start(site, "--userspace-port", str(dead_port), tmp=tmp_path) as server:
            reply, reader = exchange(server.url, get("/x?y=1"))
            assert reply.status == 502 and reader.closed()
            assert exchange(server.url, get("/page.html"))[0].status == 200


# -- sending: partial sends resumed, bounded per pass ------------------------------------------
def test_a_big_file_is_sent_at_most_one_chunk_per_pass(site, tmp_path):
    big = site / "class3" / "class3_9.bin"  # 900 KB: sendfile, not the memory cache
    chunk = 16384  # kHTTPd's bound
    with start(site, "--send-chunk", str(chunk), tmp=tmp_path) as server:
        moved_before = workers(server)[0]["per_state"]["send_data"]["moved"]
        reply, _ = exchange(server.url, get("/class3/class3_9.bin"))
        assert reply.status == 200 and reply.body == big.read_bytes()
        moved = workers(server)[0]["per_state"]["send_data"]["moved"] - moved_before
        assert moved >= big.stat().st_size // chunk, moved


def test_a_stalled_reader_parks_and_starves_no_one(site, tmp_path):
    big = (site / "class3" / "class3_9.bin").read_bytes()
    copies = 8  # 7.2 MB: more than the socket buffers on both sides can hold
    with start(site, tmp=tmp_path) as server:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        stalled.settimeout(10)
        stalled.connect(("127.0.0.1", server.port))
        stalled.sendall(get("/class3/class3_9.bin") * copies)
        time.sleep(0.3)  # the buffers fill: the connection parks in send_data
        assert workers(server)[0]["per_state"]["send_data"]["queue"] == 1
        page = (site / "page.html").read_bytes()
        started = time.monotonic()
        for _ in range(20):
            reply, _ = exchange(server.url, get("/page.html"), timeout=2)
            assert reply.body == page
        assert time.monotonic() - started < 2.0
        reader = Reader(stalled)
        for _ in range(copies):  # now read: the parked response resumes where it stopped
            reply = reader.response()
            assert reply.status == 200 and reply.body == big


# -- timeouts ---------------------------------------------------------------------------------
def test_a_trickling_header_gets_408_and_is_closed(site, tmp_path):
    with start(site, "--header-timeout", "0.6", tmp=tmp_path) as server:
        sock = connect(server.url, timeout=5)
        started = time.monotonic()
        data = b"GET /page.html HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 100
        for byte in data:  # one byte every 50 ms: never a whole header within 0.6 s
            if select.select([sock], [], [], 0.05)[0]:
                break  # the server has answered
            sock.sendall(bytes([byte]))
        reader = Reader(sock)
        reply = reader.response()
        elapsed = time.monotonic() - started
        assert reply.status == 408 and reader.closed()
        assert 0.5 < elapsed < 0.6 + 1.0, f"answered after {elapsed:.2f} s"


def test_silent_and_idle_connections_are_closed_after_their_timeouts(site, tmp_path):
    args = ("--header-timeout", "0.5", "--keepalive-timeout", "0.8")
    with start(site, *args, tmp=tmp_path) as server:
        silent = Reader(connect(server.url))
        idle = Reader(connect(server.url))
        idle.sock.sendall(get("/page.html"))
        assert idle.response().status == 200
        started = time.monotonic()
        assert silent.closed(timeout=3) and idle.closed(timeout=3)
        assert time.monotonic() - started < 2.5
        assert wait_for(lambda: server.status()["connections_open"] <= 1, 2)  # itself


def test_a_busy_keep_alive_connection_outlives_the_timeout(site, tmp_path):
    with start(site, "--keepalive-timeout", "0.5", tmp=tmp_path) as server:
        sock = connect(server.url)
        reader = Reader(sock)
        for _ in range(8):  # 1.6 s in all, never idle for 0.5 s
            sock.sendall(get("/page.html"))
            assert reader.response().status == 200
            time.sleep(0.2)


def test_an_idle_worker_sleeps_without_timer_wakeups(site, tmp_path):
    with start(site, tmp=tmp_path) as server:
        pid = workers(server)[0]["pid"]
        time.sleep(0.2)
        before = switches(pid)
        time.sleep(1.5)
        assert switches(pid) - before <= 1, "an idle worker with no connections woke up"
        keep = Reader(connect(server.url))  # an idle keep-alive connection, 75 s deadline
        keep.sock.sendall(get("/page.html"))
        assert keep.response().status == 200
        time.sleep(0.2)
        before = switches(pid)
        time.sleep(1.5)
        assert switches(pid) - before <= 1, "an idle keep-alive connection caused wake-ups"


# -- limits, malformed input, draining ----------------------------------------------------------
def test_max_connections_over_all_workers_gets_503_and_a_clean_close(site, tmp_path):
    cpus = need_cpus(2)
    args = ("--max-connections", "3", "--cpus", ",".join(map(str, cpus)))
    with start(site, *args, cpus=cpus, tmp=tmp_path) as server:
        held = kept_alive(server.url, 2)  # with the status request below: 3 open connections
        status_conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        status_conn.request("GET", "/server-status")
        assert status_conn.getresponse().read()
        for _ in range(3):  # whichever worker accepts it, the limit is the server's
            extra = connect(server.url)
            extra.sendall(get("/page.html"))
            reply = Reader(extra).response()
            assert reply.status == 503 and reply.header("connection") == "close"
            assert extra.recv(1) == b"", "expected a clean EOF, not a reset"
            extra.close()
        held[0].sock.close()
        assert wait_for(lambda: exchange(server.url, get("/page.html"))[0].status == 200, 3)


FUZZ_CASES = [
    b"\x00\x01\x02\xff" * 20 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\n Folded: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n",
    b"GET /\xc3\x28 HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /%C3%28 HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
    b"\r\n" * 5000,
    b"G" * 20000,
]


def test_malformed_http_gets_an_error_and_a_close_never_a_crash(site, tmp_path):
    rng = random.Random(1999)
    cases = FUZZ_CASES + [rng.randbytes(rng.randint(1, 3000)) + b"\r\n\r\n" for _ in range(60)]
    with start(site, "--header-timeout", "1", tmp=tmp_path) as server:
        pid = workers(server)[0]["pid"]
        for raw in cases:
            sock = connect(server.url, timeout=5)
            try:
                sock.sendall(raw)
            except OSError:
                pass  # the server answered and closed before all of it was sent
            reader = Reader(sock)
            try:
                reply = reader.response()
            except ConnectionResetError:
                reply = None
            if reply is not None:
                assert 400 <= reply.status < 600, (raw[:60], reply.status)
                assert reader.closed(timeout=3), raw[:60]
            sock.close()
        for raw in cases[:10]:  # clients that vanish mid-request
            sock = connect(server.url)
            sock.sendall(raw[: len(raw) // 2])
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # linger 0: a reset
        assert exchange(server.url, get("/page.html"))[0].status == 200
        status = server.status()
        assert status["restarts"] == 0 and status["workers"][0]["pid"] == pid


def test_sigterm_drains_in_flight_responses_and_everyone_exits_0(tmp_path):
    big = drain_site(tmp_path / "www", seed=5)
    server = start(tmp_path / "www", tmp=tmp_path)
    try:
        slow, idle = drain_clients(server.url)
        worker_pid = workers(server)[0]["pid"]
        time.sleep(0.3)  # the big response is parked mid-way in send_data
        os.kill(server.pid, signal.SIGTERM)  # the master only: it tells the workers
        assert idle.closed(timeout=2), "an idle keep-alive connection was not closed"
        with pytest.raises(ConnectionRefusedError):
            connect(server.url, timeout=1)  # no longer accepting...
        assert not gone(worker_pid)  # ...but still sending
        reader = Reader(slow)
        reply = reader.response()
        assert reply.status == 200 and reply.body == big
        assert reader.closed(timeout=2)
        assert server.proc.wait(10) == 0
        assert gone(worker_pid)
    finally:
        server.stop()


# -- status ------------------------------------------------------------------------------------
def test_status_counts_are_per_worker_and_agree_with_proc(site, tmp_path):
    with start(site, tmp=tmp_path) as server:
        before = server.status()
        sock = connect(server.url)
        reader = Reader(sock)
        for i in range(50):
            if i % 5 == 0:
                time.sleep(0.01)  # nothing to do for 10 ms: the worker must sleep
            sock.sendall(get("/page.html"))
            assert reader.response().status == 200
        after = server.status()
        (w0,), (w1,) = before["workers"], after["workers"]
        assert after["requests"] - before["requests"] == 51  # 50 + the first status request
        assert w1["requests"] - w0["requests"] == 51
        for state in ("wait_headers", "send_data", "logging"):
            assert w1["per_state"][state]["moved"] - w0["per_state"][state]["moved"] >= 51
        assert w1["per_state"]["wait_headers"]["queue"] >= 1  # our open keep-alive connection
        assert w1["sleeps"] - w0["sleeps"] >= 10
        assert w1["passes"] == w1["sleeps"] + w1["busy_polls"]  # every pass ends in one poll
        assert w1["connections_open"] >= 2
        proc = switches(w1["pid"])
        reported = w1["voluntary_ctxt_switches"] + w1["involuntary_ctxt_switches"]
        assert 0 <= proc - reported <= 5  # getrusage, published before each sleep
        assert after["voluntary_ctxt_switches"] >= w1["voluntary_ctxt_switches"]
        log = after["access_log"]
        assert log["pid"] == w1["pid"] and log["logged"] == w1["requests"]
        size = (site / "page.html").stat().st_size
        assert [e[1:] for e in log["tail"][-3:]] == [[200, size, "GET", "/page.html"]] * 3
