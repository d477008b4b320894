"""Shared fixtures: a generated document root with traps, and real server processes."""

from __future__ import annotations

import fnmatch
import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from arch_sim.harness import fileset, servers

SECRET = b"TOP-SECRET-do-not-serve-0xC0FFEE\n"

#: (fixture id, arch, extra server args); the conformance suite runs against each
SERVER_CONFIGS = [
    ("threaded-pool", "thread-per-request", ["--threads", "16"]),
    ("threaded-per-connection", "thread-per-request", ["--threads", "0"]),
    ("state-group", "state-group", []),
    # a prefork worker holds one connection until the client closes it: 16 workers outnumber
    # the connections any one test keeps open at once (the thread pool's 16 threads, by
    # contrast, are held only while a request is being served)
    ("prefork", "prefork", ["--workers", "16"]),
    ("staged", "staged", []),
]


#: test files that start no server, load generator or tracer: the model, plots, notebooks.
#: Their tests are marked ``parallel`` (unless a test is marked ``real`` or ``wrk``), and `make
#: test` runs them two at a time before the rest, which need the CPUs to themselves.
PARALLEL_FILES = ("test_models_*.py", "test_plots*.py", "test_notebooks.py", "test_lessons.py",
                  "test_simulate*.py", "test_repeatability.py", "test_fidelity.py",
                  "test_timeline.py", "test_bench_repeat.py")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if (any(fnmatch.fnmatch(item.path.name, pattern) for pattern in PARALLEL_FILES)
                and item.get_closest_marker("real") is None
                and item.get_closest_marker("wrk") is None):
            item.add_marker(pytest.mark.parallel)


def have_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def need_wrk() -> None:
    """Skip without wrk - except as root (CI), where `make test` installs it: then fail."""
    if shutil.which("wrk") is None:
        if os.geteuid() == 0:
            pytest.fail("wrk is missing although we are root: `make test` should have installed it")
        pytest.skip("wrk not installed (apt-get install wrk)")


def need_binary(name: str, find: Callable[[], str]) -> str:
    """The path of a peer server's binary (*find*: the harness's own lookup); skip without it -
    except as root (CI), where `make test` installs it: then fail."""
    try:
        return find()
    except servers.ServerError as exc:
        if os.geteuid() == 0:
            pytest.fail(f"{name} is missing although we are root (`make test` installs it): "
                        f"{exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    """A SPECweb99-like document root plus the traps the security tests need.

    Layout: <base>/secret.txt (outside the root) and <base>/www (the root) with class0..3,
    index.html, dir_with_index/, dir_without_index/, caf\u00e9-dir/, link_out -> ../secret.txt,
    link_dir_out -> .., dir_index_out/index.html -> ../../secret.txt, a FIFO, style.css,
    page.html.
    """
    base = tmp_path_factory.mktemp("site")
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "www"
    fileset.generate(root, "specweb99")
    (root / "dir_with_index").mkdir()
    (root / "dir_with_index" / "index.html").write_text("<h1>inner index</h1>\n")
    (root / "dir_without_index").mkdir()
    (root / "dir_without_index" / "file.txt").write_text("inside\n")
    (root / "style.css").write_text("body { color: black; }\n")
    (root / "page.html").write_text("<html><body>page</body></html>\n")
    (root / "with space.txt").write_text("spaced\n")
    (root / "caf\u00e9.txt").write_text("utf-8 name\n")
    (root / "caf\u00e9-dir").mkdir()
    os.symlink(base / "secret.txt", root / "link_out")
    os.symlink(base, root / "link_dir_out")
    os.symlink(root / "page.html", root / "link_in.html")
    (root / "dir_index_out").mkdir()
    os.symlink(base / "secret.txt", root / "dir_index_out" / "index.html")
    os.mkfifo(root / "fifo")
    (root / "mutable").mkdir()
    return root


@pytest.fixture(scope="module", params=SERVER_CONFIGS, ids=[c[0] for c in SERVER_CONFIGS])
def server(request, site, tmp_path_factory):
    """A real server process serving the test site, one per configuration."""
    name, arch, args = request.param
    module = servers.SERVER_MODULES[arch]
    if not have_module(module):
        pytest.skip(f"{module} is not built yet")
    proc = servers.start(arch, site, args=args, log_dir=tmp_path_factory.mktemp(name))
    yield proc
    code = proc.stop()
    assert code == 0, f"{name} did not exit cleanly on SIGTERM (code {code}); log {proc.log_path}"
