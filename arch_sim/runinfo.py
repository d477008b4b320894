"""Run folders: where a run came from (meta.json) and atomic writes, for every command."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def new_run_id(prefix: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}-{uuid.uuid4().hex[:6]}"


def now_iso() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


MAX_CHANGED = 50  # changed files listed in a dirty checkout's run record


def git_commit() -> dict[str, Any]:
    """The checkout's commit and whether it had uncommitted changes (None outside git)."""
    here = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=here, capture_output=True, text=True, timeout=5
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip() or None
    status = git("status", "--porcelain", "--untracked-files=no")
    info: dict[str, Any] = {"commit": commit,
                            "dirty": bool(status.strip()) if status is not None else None}
    if status:  # which files differ from the commit, so a reader can judge what they touch
        info["changed"] = [line[3:] for line in status.splitlines() if line][:MAX_CHANGED]
    return info


def host_info() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "kernel": platform.release(),
        "os": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
    }


def write_atomic(path: str | os.PathLike[str], write: Callable[[Path], None]) -> None:
    """``write(tmp)`` a temp file beside *path*, then rename it over *path*: readers see the
    old file or the whole new one, never half of it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON with :func:`write_atomic` (flushed to disk first), so readers never see half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(tmp: Path) -> None:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())

    write_atomic(path, write)


@contextmanager
def staged_dir(final: str | os.PathLike[str], last: str = "meta.json") -> Iterator[Path]:
    """Yield a hidden temporary folder beside *final* to write a run into; *final* then
    appears complete or not at all.

    On success the temporary folder is renamed to *final* - or, when *final* already exists,
    its files are moved in one by one (*last* at the end, so a finished meta.json marks a
    finished set).  On any failure (an exception, Ctrl-C) it is removed, together with any
    parent folders made for it here, so no run folder is left holding only meta.json.  Only a
    killed process leaves the ``.NAME.partial-*`` folder behind.
    """
    final = Path(final)
    made = [p for p in final.parents if not p.exists()]  # deepest first
    for parent in reversed(made):
        parent.mkdir()
    stage: Path | None = None
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
        os.chmod(stage, 0o755)  # mkdtemp makes it private; a result is for everyone to read
        yield stage
        if not final.exists():
            os.rename(stage, final)
        else:
            for entry in sorted(stage.iterdir(), key=lambda p: (p.name == last, p.name)):
                os.replace(entry, final / entry.name)
            stage.rmdir()
    except BaseException:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
        for parent in made:  # deepest first; only if still empty
            try:
                parent.rmdir()
            except OSError:
                break
        raise
