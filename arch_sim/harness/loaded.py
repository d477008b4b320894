"""One of our servers under wrk, for the measurements that read it around a load (calibrate's
CPU splits and after-send trace, the GIL and wake-up audits).

:func:`serving` generates the file set in a scratch folder and starts the server pinned to its
CPU; :func:`wrk_load` runs wrk on the client's CPU for the warm-up, the measured seconds and a
margin, yields once the warm-up is over and waits for wrk to end on leaving; :func:`under_wrk`
is the two together, for a measurement made while the load runs.  Unpaced unless ``rate`` is
given; keep-alive (wrk's default).
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from . import fileset, servers, wrk

#: seconds wrk runs past the measured ones, so that it is still loading when they end
MARGIN_S = 2.0


@contextlib.contextmanager
def serving(arch: str, args: Sequence[str], *, server_cpu: int = 0,
            file_set: str = "specweb99",
            root: Path | None = None) -> Iterator[tuple[servers.ServerProcess, fileset.FileSet]]:
    """``arch`` started with ``args`` on ``server_cpu``, serving ``file_set``; yields the server
    and the file set.  ``root``: a folder for the file set (default: a scratch folder, removed
    after)."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arch-sim-")))
        fs = fileset.generate(root / "root", file_set)
        yield stack.enter_context(servers.start(arch, fs.root, cpus=[server_cpu],
                                                args=list(args))), fs


@contextlib.contextmanager
def wrk_load(server: servers.ServerProcess, fs: fileset.FileSet, *, seconds: float,
             warmup: float = 1.0, client_cpu: int = 1, connections: int = 64,
             rate: float | None = None, keep_alive: bool = True) -> Iterator[None]:
    """wrk on ``client_cpu`` loading ``server`` with ``fs``; yields after ``warmup`` seconds,
    with ``seconds`` (plus a margin) of load still to come, and waits for wrk on leaving.
    ``keep_alive`` False: a connection per request (HTTP/1.0, as the seed's bench)."""
    load = threading.Thread(target=wrk.run_wrk, daemon=True, kwargs=dict(
        url=server.url, paths=fs.urls, weights=fs.weights, connections=connections,
        duration=warmup + seconds + MARGIN_S, cpus=[client_cpu], rate=rate,
        keep_alive=keep_alive))
    load.start()
    time.sleep(warmup)
    yield
    load.join()


@contextlib.contextmanager
def under_wrk(arch: str, args: Sequence[str], *, seconds: float, warmup: float = 1.0,
              server_cpu: int = 0, client_cpu: int = 1, file_set: str = "specweb99",
              connections: int = 64, rate: float | None = None,
              root: Path | None = None,
              keep_alive: bool = True) -> Iterator[servers.ServerProcess]:
    """:func:`serving` and :func:`wrk_load` together: yields the server after the warm-up,
    with ``seconds`` (plus a margin) of load still to come."""
    with serving(arch, args, server_cpu=server_cpu, file_set=file_set,
                 root=root) as (server, fs), \
            wrk_load(server, fs, seconds=seconds, warmup=warmup, client_cpu=client_cpu,
                     connections=connections, rate=rate, keep_alive=keep_alive):
        yield server
