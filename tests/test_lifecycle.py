"""The request lifecycle is one contract: one definition of its states and moves, one place a
connection changes state, and states that can be tested with no sockets (as h11 tests its
state machine without I/O)."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from arch_sim import STATES
from real_servers.core import DocumentRoot, RequestParser, Responder
from real_servers.core import lifecycle as lc
from real_servers.stategroup import lifecycle as sg
from real_servers.stategroup.states import logging as logging_state
from real_servers.stategroup.states import send_data, wait_headers
from real_servers.stategroup.worker import LifecycleError, Worker

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("arch_sim", "real_servers")
DEFINITION = ROOT / "real_servers" / "core" / "lifecycle.py"


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)):
            out.add(id(body[0].value))
    return out


def _slots(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
            out.update(id(n) for n in ast.walk(node.value))
    return out


def test_no_package_spells_a_state_name_of_its_own():
    """Every state name (and the per-state column names built from them) comes from
    real_servers/core/lifecycle.py: a string literal equal to one anywhere else is a copy."""
    names = set(lc.NAMES) | {f"{p}{n}" for n in lc.NAMES for p in ("moved_", "batch_")}
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == DEFINITION:
                continue
            tree = ast.parse(path.read_text())
            skip = _docstrings(tree) | _slots(tree)
            for node in ast.walk(tree):
                if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                        and node.value in names and id(node) not in skip):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not found, found


def test_one_definition_everywhere():
    assert STATES is lc.NAMES
    from arch_sim.models.state_group import Worker as ModelWorker  # noqa: F401
    from real_servers.stategroup import lifecycle as worker_lifecycle

    assert worker_lifecycle.NAMES is lc.NAMES and worker_lifecycle.TRANSITIONS is lc.TRANSITIONS


def test_the_transition_table_is_the_lifecycle_the_seed_draws():
    assert lc.NAMES[lc.ACCEPT] == "accept" and len(lc.NAMES) == 5
    assert lc.may_move(lc.ACCEPT, lc.WAIT_HEADERS)
    assert lc.may_move(lc.WAIT_HEADERS, lc.SEND_DATA) and lc.may_move(lc.WAIT_HEADERS, lc.USERSPACE)
    assert lc.may_move(lc.SEND_DATA, lc.LOGGING)
    assert lc.may_move(lc.LOGGING, lc.WAIT_HEADERS) and lc.may_move(lc.LOGGING, lc.CLOSED)
    assert not lc.may_move(lc.SEND_DATA, lc.WAIT_HEADERS)  # a response always ends in logging
    assert not lc.may_move(lc.LOGGING, lc.SEND_DATA)
    # every state can reach the end, and every state is reachable from accept
    reach, todo = {lc.ACCEPT}, [lc.ACCEPT]
    while todo:
        for nxt in lc.TRANSITIONS.get(todo.pop(), ()):
            if nxt not in reach:
                reach.add(nxt)
                todo.append(nxt)
    assert reach == set(range(len(lc.NAMES))) | {lc.CLOSED}
    assert lc.moved_column(lc.SEND_DATA) == "moved_send_data_per_request"


# -- the worker's one way to move a request, with no sockets ------------------------------------

def _worker(tmp_path) -> SimpleNamespace:
    """The parts of a Worker the state code uses, without its epoll, listener or board."""
    (tmp_path / "index.html").write_text("<h1>hi</h1>\n")
    worker = SimpleNamespace(queues=[[] for _ in lc.NAMES], draining=False, now=0.0,
                             min_deadline=float("inf"), userspace_addr=None,
                             responder=Responder(DocumentRoot(str(tmp_path))),
                             config=SimpleNamespace(keepalive_timeout=5.0))
    for name in ("move", "answer", "end"):
        setattr(worker, name, getattr(Worker, name).__get__(worker))
    return worker


def _conn(state: int, data: bytes = b"") -> SimpleNamespace:
    parser = RequestParser()
    parser.feed(data)
    return SimpleNamespace(state=state, parser=parser, wait=0, readable=False, peer_shut=False,
                           loopback=True, in_header=True, request=None, response=None,
                           ending=0, deadline=0.0)


def test_move_follows_the_table_and_queues(tmp_path):
    worker = _worker(tmp_path)
    conn = _conn(lc.ACCEPT)
    worker.move(conn, lc.WAIT_HEADERS)
    assert conn.state == lc.WAIT_HEADERS and worker.queues[lc.WAIT_HEADERS] == [conn]
    worker.move(conn, lc.WAIT_HEADERS, queue=False)  # kept, not moved: allowed
    with pytest.raises(LifecycleError, match="wait_headers -> accept"):
        worker.move(conn, lc.ACCEPT)
    assert conn.state == lc.WAIT_HEADERS


def test_wait_headers_answers_a_complete_request_without_a_socket(tmp_path):
    worker = _worker(tmp_path)
    conn = _conn(lc.WAIT_HEADERS, b"GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n")
    assert wait_headers._decode(worker, conn) == 1
    assert conn.state == lc.SEND_DATA and worker.queues[lc.SEND_DATA] == [conn]
    assert conn.response.status == 200


def test_wait_headers_answers_bad_bytes_with_a_4xx(tmp_path):
    worker = _worker(tmp_path)
    conn = _conn(lc.WAIT_HEADERS, b"BLAH\r\n\r\n")
    assert wait_headers._decode(worker, conn) == 1
    assert conn.state == lc.SEND_DATA and 400 <= conn.response.status < 500


def test_logging_keeps_a_connection_alive_by_moving_it_back(tmp_path):
    worker = _worker(tmp_path)
    conn = _conn(lc.LOGGING)
    logging_state._keep_alive(worker, conn)
    assert conn.state == lc.WAIT_HEADERS and conn.wait  # parked until the next request
    assert worker.queues[lc.WAIT_HEADERS] == []
    conn2 = _conn(lc.LOGGING, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # pipelined
    logging_state._keep_alive(worker, conn2)
    assert worker.queues[lc.WAIT_HEADERS] == [conn2]


def test_a_deadline_is_the_state_s_to_handle_not_the_worker_s(tmp_path):
    worker = _worker(tmp_path)
    trickled = _conn(lc.WAIT_HEADERS, b"GET /index.html HT")  # a header that stopped coming
    wait_headers.expire(worker, trickled)
    assert trickled.state == lc.SEND_DATA and trickled.response.status == 408
    idle = _conn(lc.WAIT_HEADERS)  # a keep-alive connection nobody used
    wait_headers.expire(worker, idle)
    assert idle.state == lc.LOGGING and idle.ending == sg.ABORT
    stalled = _conn(lc.SEND_DATA)  # a client that stopped reading its response
    send_data.expire(worker, stalled)
    assert stalled.state == lc.LOGGING and stalled.ending == sg.CUT
    # a state without the hook: the worker ends the connection
    bare = SimpleNamespace(_expire_hooks=[None] * len(lc.NAMES), end=worker.end)
    gone = _conn(lc.LOGGING)
    Worker._expire(bare, gone)
    assert gone.ending == sg.ABORT
