"""Counters every real server reports at ``/server-status``.

Reschedules are the context switches of the server's own threads: ``getrusage(RUSAGE_SELF)``
sums them over all threads of the process *including those that have exited*, which
``/proc/PID/task/*/status`` cannot (an exited thread takes its counts with it).
"""

from __future__ import annotations

import resource


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
    """True for a peer address on 127.0.0.0/8 or ::1 (``/server-status`` is loopback-only)."""
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return False
    return host.startswith("127.") or host in ("::1", "::ffff:127.0.0.1")
