"""Bring your own server: any command a user gives, run through the same sweep as ours.

``arch-sim bench --server-cmd "CMD ... {port} ... {root}" --server-name NAME`` (repeatable,
commands and names matched in order), or ``--server-config FILE`` with TOML tables::

    [[server]]
    name = "my-nginx"
    cmd = "./run-nginx.sh {port} {root} {tmp}"

The command is split as a shell would split words (quotes, no expansion), then ``{port}`` (a
free port on 127.0.0.1, required), ``{root}`` (the run's document root) and ``{tmp}`` (a
scratch folder under the run's logs, e.g. for a config file) are replaced in each word.  It is
launched pinned to the server CPUs in its own session, ready once 127.0.0.1:PORT accepts,
stopped with SIGTERM then SIGKILL, and counted over its process tree
(:func:`arch_sim.harness.peers.tree_target`): perf follows every process and thread it starts,
exited ones included.  Everything wrong with a command is a :class:`UsageError` before anything
starts.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import ALL_ARCHS
from ..argtypes import UsageError
from .measure import Target
from .peers import PEERS, free_port, tree_target
from .servers import ServerProcess, launch

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*\Z")


@dataclass(frozen=True)
class ByoServer:
    """One user's server: its name (the rows' arch) and its command, as written and split."""

    name: str
    cmd: str
    argv: tuple[str, ...]

    def record(self) -> dict:
        """What meta.json keeps of it."""
        return {"name": self.name, "cmd": self.cmd, "argv": list(self.argv)}


def parse_one(name: object, cmd: object, where: str = "--server-cmd") -> ByoServer:
    """Check one name/command pair; a :class:`UsageError` names what to fix."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise UsageError(f"{where}: server name {name!r} must be letters, digits and . _ + - "
                         "(e.g. --server-name my-nginx)")
    taken = set(ALL_ARCHS) | set(PEERS)
    if name.lower() in taken:
        raise UsageError(f"{where}: server name {name!r} is taken by one of ours or a peer "
                         f"({', '.join(sorted(taken))}); choose another")
    if not isinstance(cmd, str) or not cmd.strip():
        raise UsageError(f"{where} for {name}: give a command, e.g. "
                         "\"python3 -m http.server {port} --bind 127.0.0.1 --directory {root}\"")
    try:
        argv = tuple(shlex.split(cmd))
    except ValueError as exc:  # an unbalanced quote
        raise UsageError(f"{where} for {name}: cannot split {cmd!r} into words ({exc})") from None
    if not any("{port}" in word for word in argv):
        raise UsageError(f"{where} for {name}: the command must contain {{port}} (the harness "
                         "picks a free port and binds the server to 127.0.0.1 there)")
    program = argv[0]
    if "{" not in program and shutil.which(program) is None:
        raise UsageError(f"{where} for {name}: program {program!r} not found (not on PATH, "
                         "or not executable)")
    return ByoServer(name, cmd, argv)


def parse_servers(cmds: Sequence[str] | None, names: Sequence[str] | None,
                  config: str | os.PathLike[str] | None) -> list[ByoServer]:
    """``--server-cmd``/``--server-name`` pairs, then ``--server-config``'s tables."""
    cmds, names = list(cmds or []), list(names or [])
    if len(cmds) != len(names):
        raise UsageError(f"--server-cmd and --server-name go in pairs: got {len(cmds)} "
                         f"command(s) and {len(names)} name(s)")
    found = [parse_one(n, c) for n, c in zip(names, cmds, strict=True)]
    if config is not None:
        found += _from_file(Path(config))
    seen: set[str] = set()
    for server in found:
        if server.name.lower() in seen:
            raise UsageError(f"server name {server.name!r} is given twice; names label the "
                             "rows, so each must be unique")
        seen.add(server.name.lower())
    return found


def _from_file(path: Path) -> list[ByoServer]:
    where = f"--server-config {path}"
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"{where}: cannot read it ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: not valid TOML ({exc})") from None
    tables = data.get("server")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict)
                                                             for t in tables):
        raise UsageError(f"{where}: give one or more [[server]] tables with name and cmd")
    return [parse_one(t.get("name"), t.get("cmd"), where) for t in tables]


def substitute(argv: Iterable[str], port: int, root: str | Path, tmp: str | Path) -> list[str]:
    """The command with its placeholders filled in, word by word (other braces are kept)."""
    values = {"{port}": str(port), "{root}": str(root), "{tmp}": str(tmp)}
    out = []
    for word in argv:
        for key, value in values.items():
            word = word.replace(key, value)
        out.append(word)
    return out


def start(server: ByoServer, root: str | Path, cpus: Iterable[int] | None,
          log_dir: str | Path, ready_timeout: float = 20.0) -> ServerProcess:
    """Launch *server* on a free port serving *root*; returns once the port accepts."""
    Path(log_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"arch-sim-{server.name}-", dir=log_dir)).resolve()
    os.chmod(tmp, 0o755)  # a server that drops root may still read its config there
    port = free_port()
    argv = substitute(server.argv, port, Path(root).resolve(), tmp)
    return launch(server.name, argv, cpus=cpus, log_dir=log_dir,
                  ready=f"127.0.0.1:{port}", ready_timeout=ready_timeout)


def target(server: ByoServer, proc: ServerProcess) -> Target:
    """The harness's view of a running bring-your-own server: counted from its pid tree."""
    return tree_target(server.name, f"{server.name}: {server.cmd}", proc)
