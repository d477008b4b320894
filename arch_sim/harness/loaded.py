"""One of our servers under wrk, for the measurements that read it while the load runs
(calibrate's CPU splits, the GIL and wake-up audits).

:func:`under_wrk` generates the file set in a scratch folder, starts the server pinned to its
CPU, starts wrk on the client's CPU for the warm-up, the measured seconds and a margin, and
yields the server once the warm-up is over; on leaving it waits for wrk to end and stops the
server.  Unpaced unless ``rate`` is given; keep-alive (wrk's default).
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
def under_wrk(arch: str, args: Sequence[str], *, seconds: float, warmup: float = 1.0,
              server_cpu: int = 0, client_cpu: int = 1, file_set: str = "specweb99",
              connections: int = 64, rate: float | None = None,
              root: Path | None = None) -> Iterator[servers.ServerProcess]:
    """``arch`` started with ``args`` on ``server_cpu`` and loaded by wrk from ``client_cpu``;
    yields it after ``warmup`` seconds, with ``seconds`` (plus a margin) of load still to come.
    ``root``: a folder for the file set (default: a scratch folder, removed after)."""
    with contextlib.ExitStack() as stack:
        if root is None:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="arch-sim-")))
        fs = fileset.generate(root / "root", file_set)
        server = stack.enter_context(servers.start(arch, fs.root, cpus=[server_cpu],
                                                   args=list(args)))
        load = threading.Thread(target=wrk.run_wrk, daemon=True, kwargs=dict(
            url=server.url, paths=fs.urls, weights=fs.weights, connections=connections,
            duration=warmup + seconds + MARGIN_S, cpus=[client_cpu], rate=rate))
        load.start()
        time.sleep(warmup)
        yield server
        load.join()
