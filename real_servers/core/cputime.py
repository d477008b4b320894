"""``--state-cpu``'s one mechanism: a call timed with the calling thread's own CPU clock.

``time.thread_time_ns`` reads ``CLOCK_THREAD_CPUTIME_ID`` (docs/SOURCES.md
[LX-thread-cputime]): the CPU the thread has run, not the wall time, so a call that blocks is
charged only what it ran.  A server wraps the calls it wants timed once, at start-up, and only
when asked; the plain ones pay nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timed(call: Callable[..., Any], charge: Callable[[int], None]) -> Callable[..., Any]:
    """``call``, with the ns of CPU each call of it takes given to ``charge`` afterwards (the
    clock is read before ``charge`` runs, so ``charge`` is not timed)."""
    clock = time.thread_time_ns

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return call(*args, **kwargs)
        finally:
            charge(clock() - start)

    return wrapper
