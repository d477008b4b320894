"""Counters every real server reports at ``/server-status``, and who may read them.

Reschedules are the context switches of the server's own threads: ``getrusage(RUSAGE_SELF)``
sums them over all threads of the process *including those that have exited*, which
``/proc/PID/task/*/status`` cannot (an exited thread takes its counts with it).

Exposure is an explicit option (``--status``), off unless asked: a peer address alone proves
little, since a reverse proxy on the same host connects from loopback for any client.

- ``off`` (default): ``/server-status`` is an ordinary path of the document root (404).
- ``loopback``: served to peers on 127.0.0.0/8 or ::1 (what the harness asks for, since it
  measures on one host with no proxy in front), 403 to others.
- ``token``: served to any peer that sends ``Authorization: Bearer <token>``, 403 to others; the
  token is read from the environment variable ``ARCH_SIM_STATUS_TOKEN`` (not the command line,
  which every local user can read in ``ps``), at least ``MIN_TOKEN`` characters.
"""

from __future__ import annotations

import hmac
import os
import resource
import sys
from dataclasses import dataclass

STATUS_MODES = ("off", "loopback", "token")
TOKEN_ENV = "ARCH_SIM_STATUS_TOKEN"
MIN_TOKEN = 16


def rusage_counters() -> dict[str, float]:
    """Voluntary/involuntary context switches and CPU seconds of this process, all threads."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "voluntary_ctxt_switches": ru.ru_nvcsw,
        "involuntary_ctxt_switches": ru.ru_nivcsw,
        "cpu_user_s": ru.ru_utime,
        "cpu_system_s": ru.ru_stime,
    }


def is_loopback(address: object) -> bool:
    """True for a peer address on 127.0.0.0/8 or ::1."""
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return False
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1")


@dataclass(frozen=True)
class StatusAccess:
    """Who may read ``/server-status`` (see the module docstring)."""

    mode: str = "off"
    token: str = ""

    @property
    def exposed(self) -> bool:
        return self.mode != "off"

    def allows(self, loopback: bool, headers: dict[str, str]) -> bool:
        if self.mode == "loopback":
            return loopback
        if self.mode == "token":
            given = headers.get("authorization", "")
            return hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode())
        return False


def status_access(mode: str) -> StatusAccess:
    """The access for ``--status MODE``; exits with a message if ``token`` has no good token."""
    if mode != "token":
        return StatusAccess(mode)
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN or not token.isprintable() or " " in token:
        sys.exit(f"error: --status token needs a token of at least {MIN_TOKEN} printable "
                 f"characters, no spaces, in the environment variable {TOKEN_ENV}")
    return StatusAccess(mode, token)
