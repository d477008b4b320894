"""What the ``host`` preset is written from: calibrate's raw measurements and the values read
off them (:class:`Inputs`), with the fallbacks for what a calibration did not measure.
:mod:`~arch_sim.models.preset_text` writes the text from them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from arch_sim import ALL_ARCHS, specweb99
from arch_sim.hostbench import INTERRUPTED_X, decay_fitted
from arch_sim.models.connection_costs import accept_share, split_why
from arch_sim.models.request_costs import DISPATCHER_SHARE, state_shares

#: SPECweb99 class mix mean reply (KB), as the harness's file set and the model's draw it
MEAN_REPLY_KB = {"specweb99": specweb99.mean_bytes() / 1024, "1k": 1.0}

#: Fallbacks for measurements calibrate may not provide, measured once on the development host
#: (2-vCPU Firecracker VM, Linux 6.18, Python 3.11) with the tools in this module / hostbench.
FALLBACK_CLIENT_US = 12.0  # wrk -t1 CPU per request at saturation: 9.9 (state-group), 14.4 (pool)
FALLBACK_CPU_CV = 0.27  # cpu_time_cv(): same Python work, 1 ms apart
FALLBACK_WAKE_US = 1.8  # futex_wake_us(): 1.79-1.84 us over three runs on the development host
FALLBACK_COLD_DECAY_MS = 5.0  # cold_cache(): 4-8 ms over repeated runs on the development host
#: cold_cache()'s refill over warm time on the development host (2026-12-01 07:38: 39.9 / 13.1 us)
FALLBACK_COLD_SLOWDOWN = 3.06

#: per design, calibrate's record of how its CPU divides over a request's states and the key
#: of the parse / send / log shares in it (threadcpu.py, statecpu.py)
SPLITS = {"staged": ("threads_cpu", "shares"),
          "thread-per-request": ("threads_cpu", "pool_shares"),
          "state-group": ("states_cpu", "shares")}


@dataclass
class Inputs:
    """What the text is written from: the raw measurements and the values read off them."""

    m: dict[str, Any]
    name: str = "host"
    placeholder: bool = False
    host: dict[str, Any] = field(init=False)
    servers: dict[str, Any] = field(init=False)
    close: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        m = self.m
        self.host = m.get("host", {}) or {}
        self.hostname = self.host.get("host") or "this host"
        self.tag = f"measured by arch-sim calibrate on {self.hostname}"
        self.kernel = str(self.host.get("kernel", ""))
        self.ncpu_host = int(self.host.get("cpu_count") or 1)
        self.server_cpus = list(m.get("server_cpus") or [0])
        self.cpus = len(self.server_cpus)
        self.switch = m["switch"]
        self.wake = m["wakeup"]
        self.servers = m.get("servers") or {}
        self.measured_archs = [a for a in ALL_ARCHS if a in self.servers]
        self.tpr = self.servers.get("thread-per-request", {})
        self.sg = self.servers.get("state-group", {})
        self.file_set = str(m.get("file_set", "specweb99"))
        self.connections = int(m.get("connections", 64))
        self.threads = int(self.tpr.get("threads", m.get("threads", 64)))
        self.switch_us = float(self.switch["switch_us"])
        self.hz = int(self.host.get("config_hz") or 250)
        self.base = 0.70 if _kernel_version(self.kernel) >= (6, 12) else 0.75
        self.slice_ms = self.base * (1 + int(math.log2(min(max(self.ncpu_host, 1), 8))))
        self.client = (m.get("client") or {}).get("cpu_us_per_request")
        self.cv = (m.get("cpu_jitter") or {}).get("cv")
        left_out = (m.get("cpu_jitter") or {}).get("left_out")  # not in older measurements
        self.cv_left_out = ("" if left_out is None else
                            f", {left_out} interrupted run(s) left out (over "
                            f"{INTERRUPTED_X:g}x the median)")
        cold = m.get("cold_cache") or {}
        self.decay = cold.get("decay_ms")
        self.decay_by_hand = bool(cold.get("set_by_hand"))
        # a fit at the bound of its grid found no decay: neither the decay nor the refill over
        # warm is used
        self.decay_unfit = (self.decay is not None and not self.decay_by_hand
                            and not decay_fitted(float(self.decay)))
        self.cold_curve = cold
        # the refill paid as a slowdown: the reference work's refill per second of its warm time
        self.cold_refill = cold.get("refill_us")
        self.cold_warm = cold.get("warm_us")
        self.futex = m.get("futex") or {}
        self.wake_us = self.futex.get("wake_us")
        self.decay_ms = (FALLBACK_COLD_DECAY_MS if self.decay is None or self.decay_unfit
                         else float(self.decay))
        self.paced_all = {a: self.servers[a]["paced"] for a in self.measured_archs
                          if self.servers[a].get("paced")}
        self.mean_kb = MEAN_REPLY_KB.get(self.file_set, MEAN_REPLY_KB["specweb99"])
        self.close = m.get("close") or {}
        self.client_close = self.close.get("client_close_us")

    def why(self, arch: str, what: str) -> str:
        """The comment of a per-arch cost: measured now, or kept from before."""
        if arch not in self.measured_archs:
            return ("not measured by this calibrate run (no saturation bench): kept from the "
                    f"previous host preset ({what})")
        return f"{self.tag}: {what}"

    def measured(self, arch: str, key: str) -> dict[str, Any] | None:
        """What calibrate measured of ``arch`` beside its saturation bench, under ``key``
        (``after_send``: aftersend.py; ``threads_cpu``: threadcpu.py; ``states_cpu``:
        statecpu.py), or None."""
        found = self.servers.get(arch)
        return (found.get(key) or None) if isinstance(found, dict) else None

    def log_share(self, arch: str) -> float | None:
        """``arch``'s logging share as calibrate measured it (the work after the last send),
        or None: the estimate."""
        found = self.measured(arch, "after_send")
        return None if found is None else float(found["share"])

    def shares(self, arch: str) -> dict[str, float]:
        """How ``arch``'s own CPU per request divides over parse, send and log: as calibrate
        measured it (:data:`SPLITS`), the measured logging share with parse and send
        splitting the rest (prefork), or the estimate."""
        record, key = SPLITS.get(arch, ("", ""))
        found = self.measured(arch, record) if record else None
        if found and found.get(key):
            return {k: float(found[key][k]) for k in ("parse", "send", "log")}
        return state_shares(self.log_share(arch))

    def dispatch_share(self) -> float:
        """The pool dispatcher's share of the pool server's CPU: measured by calibrate
        (its main thread's runtime), or :data:`DISPATCHER_SHARE`."""
        found = self.measured("thread-per-request", "threads_cpu")
        return DISPATCHER_SHARE if not found else float(found["shares"]["dispatch"])

    def solved_why(self, row: dict[str, Any] | None, missing: str,
                   how: Callable[[str], str]) -> str:
        """The comment of a value solved from a bench ``row``: ``how`` it was solved, given
        the row's CPU per request; without a row (``missing``), kept from before."""
        if row is None:
            return (f"not measured by this calibrate run (no {missing}): kept from the "
                    "previous host preset")
        cpu = f"{float(row['cpu_us_per_request']):.0f}"
        return f"{self.tag}: {how(cpu)}"

    def cold_why(self, arch: str) -> str:
        """The comment of a per-arch cache refill: solved now, or kept from before."""
        row = self.paced_all.get(arch)
        return self.solved_why(
            row, "paced server bench",
            lambda cpu: f"solved so that the model spends the {cpu} us per request the server "
                        f"took paced at {float(row['target_rps']):g} req/s (the CPU idles "
                        "between requests; the first burst of each thread's code after an "
                        "idle pays its share, by the CPU that code takes a request)")

    def accept_shares(self) -> dict[str, float]:
        """Each design's measured share of its connection cost spent accepting
        (connection_costs.accept_share), where calibrate measured it."""
        found = {a: accept_share(a, self.servers.get(a) or {}) for a in ALL_ARCHS}
        return {a: share for a, share in found.items() if share is not None}

    def conn_whys(self, arch: str, accepting: str, closing: str) -> tuple[str, str]:
        """The comments of ``arch``'s ``accept_us`` and ``close_us``."""
        what = split_why(arch, self.accept_shares().get(arch), accepting, closing)
        return self.conn_why(arch, what[0]), self.conn_why(arch, what[1])

    def conn_why(self, shape: str, what: str) -> str:
        """The comment of a connection cost: solved now, or kept from before."""
        return self.solved_why(
            self.close.get(shape), "connection-per-request bench",
            lambda cpu: f"{what}; solved so that the model spends the {cpu} us per request the "
                        "server took unpaced with a connection per request (connection_costs.py)")


def _kernel_version(release: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", release or "")
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
