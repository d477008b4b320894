"""REPORT.md of ``arch-sim reproduce``: the headline numbers, the fidelity table, the figures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

SEED_OLD_RESCHED_S = 15_000  # "15000 reschedules per second was no exception"
SEED_HARDLY_RPS = 2_000  # "over 2000 requests per second ... schedules hardly at all"


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a report: 3 significant digits, thousands separated, '-' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool | str):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def by_load(df: pd.DataFrame, arch: str) -> pd.DataFrame:
    """Mean of each load point of one arch, ordered by achieved requests/s."""
    sub = df[df["arch"] == arch]
    cols = ["rps", "reschedules_per_s", "reschedules_per_request"]
    if "sleeps_per_request" in sub.columns:
        cols.append("sleeps_per_request")
    means = sub.groupby(sub["target_rps"].fillna(-1))[cols].mean()
    return means.sort_values("rps")


def _measured_lines(measured: pd.DataFrame) -> list[str]:
    old, new = by_load(measured, "thread-per-request"), by_load(measured, "state-group")
    busy = new[new["rps"] >= SEED_HARDLY_RPS]
    lines = [
        f"- **Old design (thread-per-request, real):** {fmt(old['reschedules_per_s'].max())} "
        f"reschedules/s at its peak ({fmt(old['rps'].iloc[-1])} requests/s at the top load); "
        f"{fmt(old['reschedules_per_request'].min())}-{fmt(old['reschedules_per_request'].max())}"
        " reschedules per request at every load - each request is a thread hand-off.",
        f"- **New design (state-group, real):** {fmt(new['reschedules_per_request'].iloc[0])} "
        f"reschedules per request at {fmt(new['rps'].iloc[0])} requests/s (interrupt-driven: it "
        f"sleeps between requests), {fmt(new['reschedules_per_request'].iloc[-1])} at "
        f"{fmt(new['rps'].iloc[-1])} requests/s (polling: it schedules hardly at all).",
    ]
    if len(busy):
        lines.append(f"- Above {SEED_HARDLY_RPS:,} requests/s the new design made "
                     f"{fmt(busy['reschedules_per_s'].max())} reschedules/s at most.")
    return lines


def _model_lines(sweeps: dict[str, pd.DataFrame]) -> list[str]:
    lines = []
    for name, label in (("1999", "Linux 2.2 on 1999 hardware (model)"),
                        ("host", "this host (model)")):
        df = sweeps.get(name)
        if df is None or df.empty:
            continue
        old, new = by_load(df, "thread-per-request"), by_load(df, "state-group")
        near = new.iloc[(new["rps"] - SEED_HARDLY_RPS).abs().argsort()[:1]]
        lines.append(
            f"- **{label}:** old design peaks at {fmt(old['reschedules_per_s'].max())} "
            f"reschedules/s (seed: about {SEED_OLD_RESCHED_S:,}); new design "
            f"{fmt(near['reschedules_per_s'].iloc[0])} reschedules/s at "
            f"{fmt(near['rps'].iloc[0])} requests/s (seed: 'hardly at all' above "
            f"{SEED_HARDLY_RPS:,})."
        )
    return lines


def _calibration_lines(cal: dict) -> list[str]:
    lines = [
        f"- Context switch (pipe ping-pong, two processes on CPU {cal['server_cpus'][0]}): "
        f"{fmt(cal['switch']['switch_us'])} us; wake-up latency across CPUs: median "
        f"{fmt(cal['wakeup']['median_us'])} us, p99 {fmt(cal['wakeup']['p99_us'])} us."
    ]
    for arch, s in cal.get("servers", {}).items():
        line = (f"- {arch} at saturation: {fmt(s['cpu_us_per_request'])} us of CPU per "
                f"request, {fmt(s['rps'])} requests/s")
        if s.get("paced"):
            p = s["paced"]
            line += (f"; paced at {fmt(p['target_rps'])} requests/s: "
                     f"{fmt(p['cpu_us_per_request'])} us per request")
        lines.append(line + ".")
    if cal.get("cold_cache"):
        c = cal["cold_cache"]
        lines.append(f"- Cold caches after an idle CPU: a short burst of work costs up to "
                     f"{fmt(c['refill_us'])} us extra, decaying with {fmt(c['decay_ms'])} ms "
                     f"of idle time (warm: {fmt(c['warm_us'])} us).")
    if cal.get("cpu_jitter"):
        lines.append(f"- The same work varies in CPU time with a coefficient of variation of "
                     f"{fmt(cal['cpu_jitter']['cv'])}.")
    if cal.get("servers_skipped"):
        lines.append(f"- Server costs not measured: {cal['servers_skipped']}.")
    return lines


def _figure_lines(out: Path) -> list[str]:
    names = [("overlay_host", "measured points (95% CI) against the host-calibrated model"),
             ("then_and_now", "the same model on Linux 2.2 / 1999 hardware and on this host"),
             ("measured/reschedules_vs_load", "the seed's graph, measured"),
             ("measured/reschedules_per_request", "reschedules per request, measured"),
             ("measured/throughput_and_latency", "throughput and latency, measured"),
             ("simulated-1999/reschedules_vs_load", "the 1999 model with the seed's claims")]
    return [f"- [{name}.png]({name}.png) - {what}" for name, what in names
            if (out / f"{name}.png").exists()]


def render(out: Path, meta: dict, calibration: dict, measured: pd.DataFrame | None,
           sweeps: dict[str, pd.DataFrame], table: pd.DataFrame | None,
           skipped: list[str]) -> str:
    """The whole REPORT.md text."""
    git = meta.get("git") or {}
    parts = [
        f"# arch-sim reproduce ({meta['mode']})",
        "",
        f"Run `{meta['run_id']}` on {meta['host']} ({meta['cpu_model']}, kernel "
        f"{meta['kernel']}, Python {meta['python']}), commit `{git.get('commit')}`"
        f"{' (dirty)' if git.get('dirty') else ''}, started {meta['started']}. Server pinned "
        "to CPU 0, wrk to CPU 1, 64 keep-alive connections with exponential think times.",
        "",
        "## Headline numbers",
        "",
    ]
    if measured is not None:
        parts += _measured_lines(measured)
    parts += _model_lines(sweeps)
    parts += ["", "## Calibration of this host", ""] + _calibration_lines(calibration)
    parts += ["", "## Fidelity: host model vs measurement (reschedules per request)", ""]
    if table is not None:
        ok = bool(table["within"].all()) if "within" in table.columns else None
        from .fidelity import fidelity_markdown

        parts += [fidelity_markdown(table), "",
                  f"Every point within 25% or 0.1 absolute: **{'yes' if ok else 'no'}**."]
    else:
        parts.append("Not computed: no measurement (see below).")
    parts += ["", "## Figures", ""] + _figure_lines(out)
    if skipped:
        parts += ["", "## Skipped", ""] + [f"- {s}" for s in skipped]
    return "\n".join(parts) + "\n"
