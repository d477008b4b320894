"""Model parameters: one frozen dataclass per concern, loaded from a TOML preset.

A preset names a machine, a kernel and a server: how much a reschedule costs (scheduler), how
much each lifecycle state costs per request (server), and how the clients' network behaves
(network).  Every number lives in a TOML file under ``presets/`` with a comment saying where it
comes from; this module only gives the numbers names and units.

>>> p = load_preset("linux-2.2-1999")
>>> p.scheduler.per_runnable_us > 0       # 2.2's goodness() loop over the run queue
True
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arch_sim import ALL_ARCHS
from real_servers.core.lifecycle import ACCEPT, LOGGING, NAMES, SEND_DATA, WAIT_HEADERS

PRESET_DIR = Path(__file__).with_name("presets")
#: the architectures a preset may give their own server costs
ARCH_NAMES = ALL_ARCHS
#: staged: the real server's threads per state's pool (real_servers.staged --stage-threads)
STAGE_THREADS = {ACCEPT: 1, WAIT_HEADERS: 1, SEND_DATA: 4, LOGGING: 1}
DEFAULT_STAGE_THREADS = ",".join(f"{NAMES[s]}={n}" for s, n in STAGE_THREADS.items())
#: scheduler policies the model implements (arch_sim.models.policies)
POLICIES = ("fifo", "linux-2.2", "linux-2.4", "eevdf")


@dataclass(frozen=True)
class SchedulerParams:
    """What one reschedule costs, and when the kernel preempts a running task."""

    switch_us: float = 0.0
    """Direct cost of one context switch (save/restore, address-space switch)."""
    per_runnable_us: float = 0.0
    """Cost of examining one runnable task while picking the next (2.2's goodness())."""
    refill_us_per_kb: float = 0.0
    """Cache refill cost per KB of the incoming task's working set, when it is cold."""
    working_set_kb: float = 0.0
    """Working set a server task must bring back into the cache after someone else ran."""
    timeslice_ms: float = math.inf
    """CPU time a task may use before a timer tick preempts it (only if others wait)."""
    hz: float = 100.0
    """Timer ticks per second (kHTTPd sleeps "at most one jiffy")."""
    wakeup_preempt: bool = False
    """A task woken while every CPU is busy sets need_resched on one of them."""
    wakeup_latency_us: float = 0.0
    """Delay (not CPU time) before a task woken onto an idle CPU starts running."""
    wake_us: float = 0.0
    """CPU a thread spends in a system call that wakes another thread of its process (a futex
    wake: try_to_wake_up, enqueue, the wake-up preemption check), before the woken thread is
    runnable and the call returns [PY-lock-sem].  Charged where the model's Python servers
    release a lock someone sleeps on (Scheduler.wake_from); 0: waking costs nothing."""
    cpu_time_cv: float = 0.0
    """Run-to-run variation of CPU time: each burst of work takes its nominal time times a
    lognormal factor with mean 1 and this coefficient of variation (caches, interrupts)."""
    cold_decay_ms: float = 5.0
    """How fast an idle CPU's caches go cold: after ``t`` ms of idle a task pays its code's
    cache refill (``ServerParams.cold_refill_us``) times ``1 - exp(-t / cold_decay_ms)`` on its
    first burst of work."""
    cold_slowdown: float = 0.0
    """How the refill is paid.  0: as a lump, on the first burst of work after the idle.  K >
    0: as a slowdown - the refill becomes the CPU's debt, and every burst of a task with a
    refill runs K + 1 times slower until it is paid (the caches fill as they are used, and
    all code on the CPU shares them).  Measured as calibrate's cold reference work's refill
    over its warm time (hostbench.cold_cache)."""
    policy: str = "fifo"
    """How the next task is picked and when a wake-up preempts (arch_sim.models.policies).

    ``fifo``: one FIFO run queue; a woken task preempts (if ``wakeup_preempt``) at the victim's
    next checkpoint; a task is preempted when it has used ``timeslice_ms`` and others wait
    (the O(1) scheduler, equal priorities).
    ``linux-2.2`` / ``linux-2.4``: goodness(), counters of ``priority_ticks`` timer ticks,
    that version's reschedule_idle() on a wake-up.
    ``eevdf``: Linux >= 6.6 (EEVDF): virtual runtime, lag kept across sleeps, virtual
    deadlines ``timeslice_ms`` apart; a woken task preempts only when the running one is no
    longer eligible and the woken one has the earliest eligible deadline.
    """
    eevdf_wakeup_preemption: bool = True
    """``eevdf``: the kernel's WAKEUP_PREEMPTION scheduler feature (on by default).  Off, a woken
    task never preempts: it waits until the running task blocks or its slice ends
    [EEVDF-wakeup-preempt]."""
    eevdf_run_to_parity: bool = True
    """``eevdf``: the kernel's RUN_TO_PARITY scheduler feature (on by default): an eligible
    running task is not preempted by a wake-up before its deadline.  Off, a wake-up preempts it
    whenever the woken task is the eligible one with the earliest deadline
    [EEVDF-wakeup-preempt]."""
    priority_ticks: int = 20
    """Linux 2.2/2.4: a task's priority and the counter it is refilled to, in timer ticks
    (DEF_PRIORITY)."""
    accept_wakes_all: bool = False
    """A connection arriving on a listening socket wakes every thread asleep in accept() on
    it (Linux 2.2's wait queues), not just one (exclusive wait, Linux >= 2.3)."""
    mm_switch_us: float = 0.0
    """Extra CPU of a switch into a task of another address space (another process) than the
    one the CPU last ran - ``switch_mm()`` loading the page tables, the TLB refilled after -
    beyond ``switch_us`` [LX-switch-mm].  Only tasks that have an address space of their own
    (the prefork model's worker processes) pay it; threads of one process share theirs.
    0 where ``switch_us`` was itself measured between two processes (lmbench ``lat_ctx``,
    ``arch-sim calibrate``'s pipe ping-pong), so it already holds that cost."""

    @property
    def cache_refill_us(self) -> float:
        return self.refill_us_per_kb * self.working_set_kb


@dataclass(frozen=True)
class ServerParams:
    """CPU cost of each lifecycle state, plus the knobs of both server designs."""

    accept_us: float = 0.0
    """accept: take a connection off the listen queue, set it up."""
    parse_us: float = 0.0
    """wait_headers: read and parse the request, security check, MIME lookup, reply header."""
    send_us: float = 0.0
    """send_data: fixed cost of one send call."""
    send_us_per_kb: float = 0.0
    """send_data: cost per KB sent (copy/checksum/segmenting)."""
    log_us: float = 0.0
    """logging: write the log line, free the request."""
    close_us: float = 0.0
    """logging: close and tear down the connection (new connections only; keep-alive stays)."""
    thread_create_us: float = 0.0
    """Thread-per-request with one thread per connection: creating that thread."""
    threads: int = 0
    """Thread-per-request: pool size, or 0 for one thread per connection."""
    max_connections: int = 1000
    """Connections in the server at once; arrivals beyond are refused (errors)."""
    pass_us: float = 0.0
    """State-group: fixed cost of one pass over the five state groups (polling)."""
    poll_item_us: float = 0.0
    """State-group: cost of looking at a request that cannot move yet."""
    readiness_events: bool = False
    """State-group: the worker waits in epoll - it is told which sockets became ready and
    looks at a waiting connection again only then, and an event that came while it finished an
    empty pass makes its wait return at once.  False: kHTTPd - it peeks at every waiting request
    on every pass [KH-waitheaders], and sleeps with interruptible_sleep_on_timeout(), which
    loses a wake-up that comes before the sleep [KH-sleep]."""
    cohort_factor: float = 1.0
    """State-group: cost of the 2nd, 3rd... item of a batch relative to the first (warm cache)."""
    max_send_kb_per_pass: float = math.inf
    """State-group: bytes sent per connection per pass (kHTTPd: 16 KB)."""
    sleep_timeout_jiffies: float = 0.0
    """State-group: an idle worker sleeps at most this many timer ticks (0: until woken)."""
    userspace_frac: float = 0.0
    """Share of requests handed to the user-space server (unknown MIME type, CGI...)."""
    userspace_handoff_us: float = 0.0
    """userspace: cost of handing a connection to the user-space server."""
    userspace_service_us: float = 0.0
    """CPU the user-space server (a separate, uncounted task) spends on such a request."""
    kernel_threads: bool = False
    """The server's threads run in the kernel (kHTTPd): Linux 2.2/2.4 never preempted kernel
    code, so they keep their CPU until they block."""
    dispatcher: bool = False
    """Thread-per-request pool: a dispatcher thread waits in epoll over the idle keep-alive
    connections and hands each request to the most recently idle pool thread, waking exactly
    that thread (``real_servers.threaded`` with ``--threads N``).  False: idle pool threads
    take new work themselves, first come first served (an Apache-like pool)."""
    dispatch_us: float = 0.0
    """Dispatcher: CPU per request handed off (epoll return, lookup, the hand-off itself)."""
    gil: bool = False
    """The server's threads share one interpreter lock (CPython's GIL): only the holder runs
    Python code; it is dropped around system calls and taken back after them."""
    gil_interval_ms: float = 5.0
    """GIL: a waiter that waited this long without the GIL changing hands asks the holder to
    drop it (``sys.getswitchinterval()``)."""
    workers: int = 64
    """Prefork: worker processes, each blocked in accept() on the shared listener and serving
    one connection at a time (``real_servers.prefork --workers``, default 64)."""
    stage_threads: str = DEFAULT_STAGE_THREADS
    """Staged: threads per lifecycle state's pool, as ``real_servers.staged --stage-threads``
    takes them (these are its defaults)."""
    queue_wait_us: float = 0.0
    """Staged: the Python of a ``queue.Queue.get()`` that sleeps (``Condition.wait``'s set-up
    before, re-locking the queue and taking the item after), the GIL held; half before the
    sleep, half after."""
    futex_wait_us: float = 0.0
    """Staged: the CPU of a blocking wait beyond ``SchedulerParams.switch_us`` (the futex's
    system call and its return, dropping and taking back the GIL), a thread's own, the GIL
    dropped; half before the sleep, half after."""
    wake_extra_us: float = 0.0
    """Staged: the rest of a ``put()`` that woke a thread (beyond ``SchedulerParams.wake_us``:
    returning through the condition and the queue's lock), the GIL held."""
    poll_wait_us: float = 0.0
    """Staged: the CPU of an ``epoll.poll()`` that sleeps beyond ``switch_us`` (wait_headers),
    the GIL dropped; half before the sleep, half after."""
    cold_refill_us: float = 0.0
    """Cache refill after idle: extra CPU a server thread pays on its first burst of work after
    its CPU has been idle, because its code and data went cold in the caches meanwhile (on a VM
    the host runs other work on an idle vCPU's core).  Threads running the same code (all pool
    threads, say) share those lines: only the first of them after the idle pays.  Scaled by
    ``1 - exp(-idle / SchedulerParams.cold_decay_ms)``."""


@dataclass(frozen=True)
class NetworkParams:
    """The clients and the wire between them and the server."""

    sndbuf_kb: float = math.inf
    """Socket send buffer per connection."""
    wake_free_frac: float = 0.5
    """A writer blocked on a full buffer is woken when this share of it is free again."""
    client_mbit_s: float = math.inf
    """Bandwidth at which one client drains its connection."""
    server_mbit_s: float = math.inf
    """The server's network link, shared by every connection (its replies queue for it)."""
    request_lag_us: float = 0.0
    """New connection: time from the connection being accepted to its request arriving."""
    one_way_us: float = 0.0
    """One-way network latency between client and server."""


@dataclass(frozen=True)
class WorkloadParams:
    """Default workload of a preset (the CLI can override these)."""

    file_sizes: str = "specweb99"
    """``specweb99`` (class mix), ``fixed:KB`` or ``exp:KB`` (exponential, mean KB)."""
    connections: int = 64
    """Closed workload: wrk-like connections."""
    think_tick_ms: float = 0.0
    """Closed workload: think times are whole ticks and fire on tick boundaries of the
    client's clock (wrk: ``delay()`` is whole milliseconds and its ae timers have millisecond
    resolution, so connections whose delays end in the same millisecond send together).
    0: continuous think times."""
    client_us: float = 0.0
    """Closed workload: CPU the load generator's one thread spends per request (reading the
    reply, sending the next request).  It does one thing at a time, so requests leave it at
    least this far apart (wrk -t1).  0: an infinitely fast client."""
    client_close_us: float = 0.0
    """Closed workload with a connection per request: the client's extra CPU per request for
    opening and closing the connection (connect, close)."""
    kind: str = "open"
    """The preset's default workload: ``open`` (Poisson arrivals of new connections, one
    request each) or ``closed`` (``connections`` clients with think times)."""
    connection: str = "keep-alive"
    """Closed workload default: ``keep-alive`` (HTTP/1.1) or ``close`` (a new connection per
    request, HTTP/1.0)."""


@dataclass(frozen=True)
class ModelParams:
    """A whole preset: machine, kernel scheduler, server costs, network, workload."""

    name: str
    description: str = ""
    placeholder: bool = False
    cpus: int = 1
    reference_us: float = 0.0
    """The reference work's warm time when the preset was calibrated (``[machine]``; 0: not
    measured): :mod:`arch_sim.machine_state`."""
    scheduler: SchedulerParams = field(default_factory=SchedulerParams)
    server: ServerParams = field(default_factory=ServerParams)
    network: NetworkParams = field(default_factory=NetworkParams)
    workload: WorkloadParams = field(default_factory=WorkloadParams)
    source: str = ""
    server_by_arch: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-architecture changes to ``server`` (TOML: ``[server.state-group]``...): the two
    real servers share the HTTP core but not their loops, so their costs differ."""

    def for_arch(self, arch: str) -> ModelParams:
        """This preset as ``arch`` sees it: ``server`` with that arch's overrides applied."""
        changes = self.server_by_arch.get(arch)
        if not changes:
            return self
        return dataclasses.replace(self, server=dataclasses.replace(self.server, **changes))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-ready; infinities become the string "inf")."""
        return _jsonable(dataclasses.asdict(self))

    def replace(self, **sections: dict[str, Any] | Any) -> ModelParams:
        """A copy with some fields changed, e.g. ``p.replace(scheduler={"switch_us": 0})``."""
        changes: dict[str, Any] = {}
        for key, value in sections.items():
            current = getattr(self, key)
            if dataclasses.is_dataclass(current) and isinstance(value, dict):
                changes[key] = dataclasses.replace(current, **value)
            else:
                changes[key] = value
        return dataclasses.replace(self, **changes)


SECTIONS = {
    "scheduler": SchedulerParams,
    "server": ServerParams,
    "network": NetworkParams,
    "workload": WorkloadParams,
}


def preset_names() -> list[str]:
    """Names of the presets shipped in ``arch_sim/models/presets``."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def preset_path(name_or_path: str | Path) -> Path:
    """A preset name (``linux-2.2-1999``) or a path to a TOML file -> the file's path."""
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"preset file not found: {path}")
        return path
    candidate = PRESET_DIR / f"{name_or_path}.toml"
    if not candidate.is_file():
        raise ValueError(
            f"unknown preset {name_or_path!r}: choose one of {', '.join(preset_names())} "
            "or give a path to a TOML file"
        )
    return candidate


def load_preset(name_or_path: str | Path | ModelParams) -> ModelParams:
    """Read a preset by name or path (a :class:`ModelParams` is returned unchanged)."""
    if isinstance(name_or_path, ModelParams):
        return name_or_path
    path = preset_path(name_or_path)
    with path.open("rb") as f:
        data = tomllib.load(f)
    return from_dict(data, source=str(path))


def from_dict(data: dict[str, Any], source: str = "") -> ModelParams:
    """Build :class:`ModelParams` from the TOML layout; unknown keys are an error."""
    top = {k: v for k, v in data.items() if k not in SECTIONS and k != "machine"}
    machine = data.get("machine", {})
    known_top = {"name", "description", "placeholder"}
    unknown = set(top) - known_top
    if unknown:
        raise ValueError(f"{source or 'preset'}: unknown top-level keys {sorted(unknown)}")
    sections = {}
    by_arch: dict[str, dict[str, Any]] = {}
    for key, cls in SECTIONS.items():
        values = dict(data.get(key, {}))
        names = {f.name for f in dataclasses.fields(cls)}
        if key == "server":  # [server.ARCH] sub-tables: per-architecture overrides
            for arch in [k for k, v in values.items() if isinstance(v, dict)]:
                if arch not in ARCH_NAMES:
                    raise ValueError(f"{source or 'preset'}: unknown architecture "
                                     f"[server.{arch}]: choose from {', '.join(ARCH_NAMES)}")
                sub = values.pop(arch)
                bad = set(sub) - names
                if bad:
                    raise ValueError(f"{source or 'preset'}: unknown keys in "
                                     f"[server.{arch}]: {sorted(bad)}")
                by_arch[arch] = sub
        bad = set(values) - names
        if bad:
            raise ValueError(f"{source or 'preset'}: unknown keys in [{key}]: {sorted(bad)}")
        sections[key] = cls(**values)
    policy = sections["scheduler"].policy
    if policy not in POLICIES:
        raise ValueError(f"{source or 'preset'}: scheduler policy {policy!r}: choose from "
                         f"{', '.join(POLICIES)}")
    # The timer frequency is a property of the kernel; TOML keeps it with the machine.
    if "hz" in machine:
        sections["scheduler"] = dataclasses.replace(sections["scheduler"], hz=machine["hz"])
    return ModelParams(
        name=str(top.get("name", Path(source).stem if source else "custom")),
        description=str(top.get("description", "")),
        placeholder=bool(top.get("placeholder", False)),
        cpus=int(machine.get("cpus", 1)),
        reference_us=float(machine.get("reference_us", 0.0)),
        source=source,
        server_by_arch=by_arch,
        **sections,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    return value
