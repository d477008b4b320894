"""What ``arch-sim bench`` will run: its lists (servers and thread-per-request shapes, loads,
CPUs) parsed from the command line into a :class:`Plan`, before anything is started or written.

The parse_* functions take a list as the command line gives it: one string ('0,64'), or several
('0', '64'), or values already converted by the option's ListAction.  A bad value raises
UsageError, which `arch-sim` prints as one line and exits 2 with.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from real_servers.core.serving import cpu_list

from .. import ARCHS
from ..argtypes import UsageError, split_list
from ..runinfo import new_run_id
from .byo import ByoServer, parse_servers

DEFAULT_LOADS = "100,200,500,1000,2000,5000,10000,max"
QUICK = {"loads": "200,2000,max", "duration": 2.0, "warmup": 1.0, "reps": 1}


@dataclass
class Plan:
    names: list[tuple[str, int | None]]  # (server, thread-per-request shape or None)
    loads: list[float | None]
    reps: int
    duration: float
    warmup: float
    server_cpus: list[int]
    client_cpus: list[int]
    out: Path
    #: how wrk uses connections, one sweep of every server each: keep-alive, close or both
    modes: list[str] = field(default_factory=lambda: ["keep-alive"])
    byo: dict[str, ByoServer] = field(default_factory=dict)  # bring-your-own, by name


def _items(values: str | int | float | None | Iterable[object]) -> list[object]:
    if values is None or isinstance(values, str | int | float):
        values = [values]
    return [v for value in values for v in
            (split_list(value) if isinstance(value, str) else [value])]


def parse_cpus(values: str | int | Iterable[object], flag: str = "CPU list") -> list[int]:
    """``--server-cpus``/``--client-cpus``: the servers' CPU-list grammar ('0,1', '0-3', or a
    list of such) -> sorted CPU numbers, all usable here."""
    usable = sorted(os.sched_getaffinity(0))
    try:
        cpus = sorted({c for item in _items(values) for c in cpu_list(str(item))})
    except ValueError:
        raise UsageError(f"{flag} {values!r}: give CPU numbers like 0 or 0,1 "
                         f"(usable here: {usable})") from None
    bad = [c for c in cpus if c not in usable]
    if bad or not cpus:
        raise UsageError(f"{flag}: CPUs {bad or values} are not available here; "
                         f"choose from {usable}")
    return cpus


def parse_threads(values: str | int | Iterable[object]) -> list[int]:
    """``--threads``: '64', '0' or '0,64' -> [64], [0], [0, 64]."""
    try:
        shapes = [int(str(t)) for t in _items(values)]
    except ValueError:
        raise UsageError(f"--threads {values!r}: give thread counts >= 0 like 64, 0 or "
                         "0,64") from None
    if not shapes or any(t < 0 for t in shapes):
        raise UsageError(f"--threads {values!r}: give thread counts >= 0 like 64, 0 or 0,64")
    return list(dict.fromkeys(shapes))


CONNECTION_MODES = ("keep-alive", "close")


def parse_modes(values: str | Iterable[object]) -> list[str]:
    """``--connection``: 'keep-alive', 'close' or 'keep-alive,close' -> the modes, in order."""
    modes = [str(v).strip().lower() for v in _items(values)]
    bad = [m for m in modes if m not in CONNECTION_MODES]
    if bad or not modes:
        raise UsageError(f"--connection {values!r}: give keep-alive, close or keep-alive,close "
                         "(both workloads, one after the other)")
    return list(dict.fromkeys(modes))


def load_item(text: str) -> float | None:
    """One ``--loads`` value: a positive number of requests/s, or 'max' (unpaced) -> None."""
    item = text.strip().lower()
    if item == "max":
        return None
    try:
        value = float(item)
    except ValueError:
        raise UsageError(f"load {text!r} is not a number or 'max'; give e.g. "
                         "--loads 200,2000,max") from None
    if not value > 0 or value == float("inf"):
        raise UsageError(f"load {text!r} must be positive; give e.g. --loads 200,2000,max")
    return value


def parse_loads(values: str | Iterable[object]) -> list[float | None]:
    """``--loads``: '100,200,max' or ['100', '200 ...'] -> [100.0, 200.0, None]."""
    loads = [v if v is None or isinstance(v, float) else load_item(str(v))
             for v in _items(values)]
    if not loads:
        raise UsageError("--loads: give at least one load, e.g. --loads 200,2000,max")
    return loads


def _pick(args: argparse.Namespace, name: str, default):
    """An option as given, else its --quick value, else its default."""
    value = getattr(args, name)
    if value is not None:
        return value
    return QUICK[name] if args.quick else default


def _ours(args: argparse.Namespace, byo: list) -> list[str]:
    """Our servers in the run: --arch's, else the seed's two, or none with --peers-only."""
    if not getattr(args, "peers_only", False):
        return list(args.arch or ARCHS)
    if args.arch:
        raise UsageError(f"--peers-only runs none of our servers; drop --arch {args.arch[0]} "
                         "or --peers-only")
    if not args.peer and not byo:
        raise UsageError("--peers-only: name the servers to run with --peer NAME or "
                         "--server-cmd CMD --server-name NAME")
    return []


def make_plan(args: argparse.Namespace) -> Plan:
    def pick(name: str, default):
        return _pick(args, name, default)

    out = Path(args.out or f"results/{new_run_id('bench')}")
    byo = parse_servers(getattr(args, "server_cmd", None), getattr(args, "server_name", None),
                        getattr(args, "server_config", None))
    names: list[tuple[str, int | None]] = []
    for name in dict.fromkeys(_ours(args, byo) + list(args.peer) + [s.name for s in byo]):
        if name == "thread-per-request":
            names += [(name, t) for t in parse_threads(args.threads)]
        else:
            names.append((name, None))
    return Plan(
        names=names,
        loads=parse_loads(pick("loads", DEFAULT_LOADS)),  # a list from ListAction, or a str
        reps=max(1, int(pick("reps", 3))),
        duration=max(1.0, float(pick("duration", 5.0))),
        warmup=max(0.0, float(pick("warmup", 2.0))),
        server_cpus=parse_cpus(args.server_cpus, "--server-cpus"),
        client_cpus=parse_cpus(args.client_cpus, "--client-cpus"),
        out=out,
        byo={s.name: s for s in byo},
        modes=parse_modes(getattr(args, "connection", None) or "keep-alive"),
    )
