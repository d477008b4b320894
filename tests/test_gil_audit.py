"""benchmarks/gil_audit.py: a trace's switches sorted by the futex word each thread waited on."""

from __future__ import annotations

import pytest
from helpers import benchmark

audit = benchmark("gil_audit")

OWN, OWN2, MUTEX, COND0, COND1, SWITCH_COND = (
    "0x55aa00000100", "0x55aa00000200", "0x7f0000000af8", "0x7f0000000af0", "0x7f0000000af4",
    "0x7f0000000ad8")
T = [0.0]


def line(tid: int, event: str, trace: str) -> str:
    T[0] += 1e-6
    return f"{tid:>7d} {1000 + T[0]:.6f}: {event}: {trace}"


def sleep(tid: int, word: str, op: str, val: int) -> list[str]:
    """A futex wait that blocks: enter, switch out, (later) exit."""
    return [line(tid, "syscalls:sys_enter_futex",
                 f"uaddr: {word}, op: {op}, val: 0x{val:08x}, utime: 0x00000000, "
                 "uaddr2: 0x00000000, val3: 0xffffffff"),
            switch(tid, "S"),
            line(tid, "syscalls:sys_exit_futex", "0x0")]


def switch(tid: int, state: str) -> str:
    return line(tid, "sched:sched_switch", f"prev_comm=python prev_pid={tid} prev_prio=120 "
                f"prev_state={state} ==> next_comm=python next_pid=1 next_prio=120")


def trace() -> list[str]:
    T[0] = 0.0
    lines = []
    lines += sleep(2, OWN, "0x00000189", 0) * 3  # pool thread 2 on its own lock
    lines += sleep(3, OWN2, "0x00000189", 0)  # pool thread 3 on its own lock
    for tid in (2, 3, 4):
        lines += sleep(tid, MUTEX, "0x00000080", 2)  # the GIL's mutex, contended
    lines += sleep(2, COND0, "0x00000089", 0) + sleep(3, COND1, "0x00000089", 0)
    lines += sleep(4, COND0, "0x00000089", 0) + sleep(4, COND1, "0x00000089", 0)
    lines += sleep(2, SWITCH_COND, "0x00000089", 0) + sleep(3, SWITCH_COND, "0x00000089", 0)
    lines += [switch(3, "R"), switch(4, "R+")]  # preempted
    lines += [line(1, "syscalls:sys_exit_futex", "0x0"), switch(1, "S")]  # epoll_wait
    lines += [switch(99, "S")]  # not a server thread
    lines += ["garbage", ""]
    return lines


def test_words_are_named_by_who_waits_on_them():
    events, span = audit.parse(trace())
    names = audit.name_words(events)
    assert names[OWN] == names[OWN2] == "own lock"
    assert names[MUTEX] == "gil mutex"
    assert names[COND0] == names[COND1] == "gil cond"
    assert names[SWITCH_COND] == "other lock"  # shared, but not next to the GIL's condvar
    assert span == pytest.approx(T[0] - 1e-6, rel=0.05)


def test_switches_are_tallied_by_cause():
    events, _ = audit.parse(trace())
    counts = audit.tally(events, {1, 2, 3, 4})
    assert dict(counts) == {"own lock": 4, "gil mutex": 3, "gil cond": 4, "other lock": 2,
                            "preempted": 2, "other": 1}


def test_switches_are_also_tallied_per_thread_group():
    """Given tid -> group (the staged server's stages), each switch counts for its group too,
    and the per-cause totals are the same as without groups."""
    events, _ = audit.parse(trace())
    counts = audit.tally(events, {1: "wait_headers", 2: "send_data", 3: "send_data",
                                  4: "logging"})
    assert {c: counts[c] for c in audit.CAUSES} == {
        "own lock": 4, "gil mutex": 3, "gil cond": 4, "other lock": 2, "preempted": 2,
        "other": 1}
    assert counts[("send_data", "own lock")] == 4
    assert counts[("logging", "preempted")] == 1 and counts[("send_data", "preempted")] == 1
    assert counts[("wait_headers", "other")] == 1
    assert counts[("logging", "gil cond")] == 2


def test_staged_threads_are_grouped_by_stage_in_start_order():
    """The staged server starts accept, wait_headers, send_data x4, logging in that order;
    thread ids grow in start order, the main thread's id is the pid."""
    groups = audit.thread_groups("staged", 100, [107, 101, 102, 100, 103, 104, 105, 106])
    assert groups == {100: "main", 101: "accept", 102: "wait_headers", 103: "send_data",
                      104: "send_data", 105: "send_data", 106: "send_data", 107: "logging"}
    pool = audit.thread_groups("thread-per-request", 10, [10, 11, 12])
    assert pool == {10: "main", 11: "pool", 12: "pool"}


def test_staged_threads_are_grouped_by_their_kernel_names_whatever_the_stage_threads(tmp_path):
    """With --stage-threads other than the default, start order says nothing: the threads'
    kernel names (set by the server itself) do."""
    import time

    from arch_sim.harness import servers

    root = tmp_path / "www"
    root.mkdir()
    (root / "a").write_text("x")
    proc = servers.start("staged", root, args=["--stage-threads",
                                               "accept=2,wait_headers=1,send_data=1,logging=3"])
    try:
        names: dict = {}
        for _ in range(50):  # the threads name themselves as they start
            names = audit.task_names(proc.pid)
            if sum(n.startswith(("accept-", "logging-")) for n in names.values()) == 5:
                break
            time.sleep(0.1)
        groups = audit.thread_groups("staged", proc.pid, names, names)
    finally:
        proc.stop()
    assert sorted(g for t, g in groups.items() if t != proc.pid) == sorted(
        ["accept"] * 2 + ["wait_headers"] + ["send_data"] + ["logging"] * 3)
