"""The states of a request, one module each (kHTTPd: accept.c, waitheaders.c, datasending.c,
userspace.c, logging.c).

Every state module has the same interface to the worker loop (:class:`State`, in the spirit of
kHTTPd's prototypes.h: one function per state):

- ``run(worker) -> int``: service this state's queue, ``worker.queues[<state>]``, as one batch
  and return how many requests changed state (or made progress, so the loop polls again);
- optionally ``setup(worker)``: create the state's own data on the worker once;
- optionally ``stop(worker)``: the worker begins to drain (SIGTERM): the state's part of it;
- optionally ``expire(worker, conn)``: a connection parked in this state passed its deadline
  (without it the connection is ended, ``ABORT``).

A state hands a connection to another only through ``worker.move(conn, state)`` - which checks
the lifecycle's transition table (real_servers/core/lifecycle.py) - or its shorthands
``worker.answer(conn, response)`` (to send_data) and ``worker.end(conn, ending)`` (to logging);
or it parks it (``conn.wait = <epoll events>``) until epoll wakes it.
``worker.service(state, handle)`` runs a handler over the state's batch.  A state never calls
another state, so any one can be replaced (``--state NAME=MODULE``) without touching the
others.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

from ..lifecycle import NAMES


@runtime_checkable
class State(Protocol):
    """What the worker loop calls on a state (``setup``, ``stop`` and ``expire`` are
    optional)."""

    def run(self, worker: Any) -> int:
        """Service the state's batch; the number of requests that moved."""
        ...


def load(overrides: Mapping[str, object] | None = None) -> list:
    """The state modules in pass order; *overrides* maps a state name to a replacement.

    A replacement is a module (or any object with ``run``), a dotted module name, or the path
    of a ``.py`` file.
    """
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(NAMES)
    if unknown:
        raise ValueError(f"unknown state(s) {sorted(unknown)}; the states are {', '.join(NAMES)}")
    modules = []
    for name in NAMES:
        spec = overrides.get(name, f"{__name__}.{name}")
        module = _import(spec) if isinstance(spec, str) else spec
        if not callable(getattr(module, "run", None)):
            raise TypeError(f"state {name!r}: {spec!r} has no run(worker) function")
        modules.append(module)
    return modules


def _import(spec: str) -> ModuleType:
    if not spec.endswith(".py"):
        return importlib.import_module(spec)
    name = "stategroup_state_" + os.path.splitext(os.path.basename(spec))[0]
    loader_spec = importlib.util.spec_from_file_location(name, spec)
    if loader_spec is None or loader_spec.loader is None:
        raise ImportError(f"cannot load a state from {spec}")
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    return module
