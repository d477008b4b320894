"""Counters every process of a multi-process server (state-group, prefork) publishes in one
shared-memory board.

The master maps an anonymous shared ``mmap`` before it forks, so every worker writes its own
slot and any worker can read them all to answer ``/server-status``.  Values are int64;
CPU times are stored in microseconds.  Writers never lock: each field has one writer, and a
reader at worst sees a slot mid-update (a counter one pass old).  Every field is stored on its
own (one aligned 8-byte store), so a reader never sees a field half written.

``/server-status`` asks for fresh counters: the worker answering it bumps ``STATUS_ASKED`` (the
one master field any worker writes; two askers may get the same number, which does no harm) and
waits until every other live worker has published since (``ANSWERED``) or is asleep (``ASLEEP``:
it publishes before it blocks, so its slot is current).

A worker's context switches come from its own ``getrusage(RUSAGE_SELF)``.  When a worker dies,
the master reaps it, moves its published request count to ``RETIRED_REQUESTS`` and clears its
slot; its context switches and CPU time then reach the master's ``RUSAGE_CHILDREN``, which the
master publishes too - so no count is lost or counted twice.  Those three steps are one change
to a reader: between them the dead worker's requests would count twice (in ``RETIRED_REQUESTS``
and in its slot) and its switches not at all (its slot cleared, ``RUSAGE_CHILDREN`` not yet
published).  So :func:`retire` brackets them with a sequence counter (``RETIRE_SEQ``, odd while a
retire is under way; a seqlock with one writer, the master) and :func:`totals` reads again until
it has read between two retires.  The stores and loads are plain ones in program order, which
x86-64's memory model keeps in order between processes (Python has no fences to ask for it).
"""

from __future__ import annotations

import mmap
import resource
import time
from collections.abc import Callable

from .lifecycle import NAMES

# -- the master's fields ---------------------------------------------------------------------
(M_PID, M_NVCSW, M_NIVCSW, M_UTIME, M_STIME, C_NVCSW, C_NIVCSW, C_UTIME, C_STIME,
 RETIRED_REQUESTS, RESTARTS, STATUS_ASKED, RETIRE_SEQ) = range(13)
MASTER_LEN = 13
#: how many times totals() reads again while retires keep coming (then it answers anyway)
READ_TRIES = 100

# -- one worker's fields (PASSES, SLEEPS, BUSY_POLLS, MOVED, QUEUE: the state-group loop's) ----
(PID, CPU, ALIVE, OPEN, REQUESTS, PASSES, SLEEPS, BUSY_POLLS, NVCSW, NIVCSW, UTIME,
 STIME) = range(12)
MOVED = 12  # MOVED + i: requests state i moved, in total
QUEUE = MOVED + len(NAMES)  # QUEUE + i: connections in state i
CACHE_BYTES = QUEUE + len(NAMES)  # the worker's file cache: bytes counted against its cap
CACHE_ENTRIES = CACHE_BYTES + 1  # (published by prefork workers)
ANSWERED = CACHE_ENTRIES + 1  # the STATUS_ASKED its last publication answers (state-group)
ASLEEP = ANSWERED + 1  # 1 while the worker blocks in epoll with its counters published
STATE_CPU = ASLEEP + 1  # STATE_CPU + i: us of CPU state i's batches took (--state-cpu)
SLOT_LEN = STATE_CPU + len(NAMES)


class Board:
    """The shared counters of one master and *workers* worker slots."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._map = mmap.mmap(-1, 8 * (MASTER_LEN + workers * SLOT_LEN))  # MAP_SHARED
        self.values = memoryview(self._map).cast("q")
        self.master = self.values[:MASTER_LEN]

    def slot(self, index: int) -> memoryview:
        start = MASTER_LEN + index * SLOT_LEN
        return self.values[start : start + SLOT_LEN]

    def slots(self) -> list[memoryview]:
        return [self.slot(i) for i in range(self.workers)]

    def writer(self, index: int, first: int, count: int) -> Callable[..., None]:
        """A function writing *count* values from field *first* of slot *index*, in one call.

        Field by field: ``struct.pack_into`` would zero its whole range before packing, and a
        reader in another process could catch a counter at 0 in between."""
        values = self.values
        fields = range(MASTER_LEN + index * SLOT_LEN + first,
                       MASTER_LEN + index * SLOT_LEN + first + count)

        def write(*new: int) -> None:
            for i, value in zip(fields, new, strict=True):
                values[i] = value
        return write

    def open_connections(self) -> int:
        """Open connections over every worker (for --max-connections)."""
        values, total = self.values, 0
        for i in range(self.workers):
            total += values[MASTER_LEN + i * SLOT_LEN + OPEN]
        return total


def publish_rusage(values: memoryview, first: int, who: int = resource.RUSAGE_SELF) -> None:
    """Write getrusage(*who*) as (nvcsw, nivcsw, utime_us, stime_us) from index *first*."""
    ru = resource.getrusage(who)
    values[first] = ru.ru_nvcsw
    values[first + 1] = ru.ru_nivcsw
    values[first + 2] = int(ru.ru_utime * 1e6)
    values[first + 3] = int(ru.ru_stime * 1e6)


def clear(slot: memoryview) -> None:
    for i in range(SLOT_LEN):
        slot[i] = 0


def retire(board: Board, index: int) -> None:
    """(the master, after reaping worker *index*) Keep its requests in ``RETIRED_REQUESTS``,
    clear its slot and publish ``RUSAGE_CHILDREN``, which now holds its switches and CPU time -
    as one change to readers (``RETIRE_SEQ`` odd meanwhile)."""
    master = board.master
    master[RETIRE_SEQ] += 1
    slot = board.slot(index)
    master[RETIRED_REQUESTS] += slot[REQUESTS]
    clear(slot)
    publish_rusage(master, C_NVCSW, resource.RUSAGE_CHILDREN)
    master[RETIRE_SEQ] += 1


def totals(board: Board) -> dict:
    """The ``/server-status`` totals over the master (itself and its reaped workers, from
    ``RUSAGE_CHILDREN``) and every live worker's slot: pids, requests, switches, CPU time.
    Read between two retires (see :func:`retire`): again if one was under way or came
    meanwhile, up to ``READ_TRIES`` times (a master stopped mid-retire cannot hold it up)."""
    master = board.master
    for _ in range(READ_TRIES):
        seq = master[RETIRE_SEQ]
        if seq % 2 == 0:
            counts = _totals(board)
            if master[RETIRE_SEQ] == seq:
                return counts
        time.sleep(0.0001)  # let the master (maybe on this CPU) finish its retire
    return _totals(board)


def _totals(board: Board) -> dict:
    master = board.master
    live = [slot for slot in board.slots() if slot[ALIVE]]
    pids = ([master[M_PID]] if master[M_PID] else []) + [slot[PID] for slot in live]

    def total(mine: int, children: int, field: int) -> int:
        return master[mine] + master[children] + sum(slot[field] for slot in live)

    return {
        "pids": pids,
        "requests": master[RETIRED_REQUESTS] + sum(slot[REQUESTS] for slot in live),
        "voluntary_ctxt_switches": total(M_NVCSW, C_NVCSW, NVCSW),
        "involuntary_ctxt_switches": total(M_NIVCSW, C_NIVCSW, NIVCSW),
        "cpu_user_s": total(M_UTIME, C_UTIME, UTIME) / 1e6,
        "cpu_system_s": total(M_STIME, C_STIME, STIME) / 1e6,
        "threads_alive": len(pids),  # every process is single-threaded
        "connections_open": sum(slot[OPEN] for slot in live),
        "restarts": master[RESTARTS],
    }
