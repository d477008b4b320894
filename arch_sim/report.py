"""REPORT.md of ``arch-sim reproduce``: the seed's numbers beside measured and modelled ones,
the fidelity table, the eras table, the sensitivity table, and where every input came from."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from . import claims, eras
from .compare import reference_times
from .fidelity import fidelity_markdown, headline, shape_label
from .machine_state import calibration_reference_us, speed_note
from .regimes import REGIMES


def fmt(value: Any, digits: int = 3) -> str:
    """A number for a report: 3 significant digits, thousands separated, '-' for none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool | str):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _verdict(v: claims.Verdict) -> str:
    if v.holds is None:
        return "-"
    if v.claim == "old":
        return f"{fmt(v.value)}/s at {fmt(v.at_rps)} req/s ({'yes' if v.holds else 'no'})"
    return f"{fmt(v.value)} per request at {fmt(v.at_rps)} req/s ({'yes' if v.holds else 'no'})"


def _shapes(df: pd.DataFrame) -> list[tuple[str, int | None, pd.DataFrame]]:
    out = []
    for arch in ("thread-per-request", "state-group"):
        sub = df[df["arch"] == arch]
        if arch == "thread-per-request" and "threads" in sub.columns:
            for t in sorted(pd.to_numeric(sub["threads"], errors="coerce").dropna().unique()):
                out.append((arch, int(t), sub[pd.to_numeric(sub["threads"],
                                                            errors="coerce") == t]))
        elif not sub.empty:
            out.append((arch, None, sub))
    return out


def claims_table(measured_seed: pd.DataFrame | None, eras_df: pd.DataFrame) -> list[str]:
    """The seed's two sentences against every data set, both counts."""
    lines = ["| data | shape | count | old: '15000 reschedules per second' (peak, 10,000-20,000?) "
             "| new: 'hardly at all above 2000 requests per second' (<= 0.05 per request?) |",
             "|---|---|---|---|---|"]
    sets = []
    if measured_seed is not None:
        sets.append(("this host, measured (seed regime)", measured_seed))
    for era, _ in eras.ERAS:
        sets.append((f"1999 machine, {era} (model as written)", eras_df[eras_df["era"] == era]))
    for name, df in sets:
        new = df[df["arch"] == "state-group"]
        for arch, threads, old in _shapes(df[df["arch"] == "thread-per-request"]):
            for count in claims.COUNTS:
                lines.append(f"| {name} | {shape_label(arch, threads)} | {count} "
                             f"| {_verdict(claims.judge_old(old, count))} "
                             f"| {_verdict(claims.judge_new(new, count))} |")
    return lines


def _regime_table(df: pd.DataFrame) -> list[str]:
    lines = ["| server | offered | achieved req/s | server's switches/s | per request "
             "| every switch on its CPU, per request | CPU us/request |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for arch, threads, sub in _shapes(df):
        pts = sub.groupby(sub["target_rps"].fillna(-1.0))[
            ["rps", "reschedules_per_s", "reschedules_per_request", "cpu_switches_per_request",
             "cpu_us_per_request"]].mean().sort_values("rps")
        for target, p in pts.iterrows():
            lines.append(f"| {shape_label(arch, threads)} | {'max' if target < 0 else fmt(target)} "
                         f"| {fmt(p['rps'])} | {fmt(p['reschedules_per_s'])} "
                         f"| {fmt(p['reschedules_per_request'])} "
                         f"| {fmt(p['cpu_switches_per_request'])} "
                         f"| {fmt(p['cpu_us_per_request'])} |")
    return lines


def _misses(table: pd.DataFrame, measured: pd.DataFrame, simulated: pd.DataFrame) -> list[str]:
    """Each point outside the tolerance, with what the model gets wrong there: the share of
    voluntary vs involuntary switches (server count) or the idle background (CPU count)."""
    def point(frame: pd.DataFrame, r: pd.Series) -> pd.DataFrame:
        """The rows of *frame* at the table row's regime, server shape and load."""
        pick = (frame["arch"] == r["arch"]) & (frame["regime"] == r["regime"])
        if not pd.isna(r["threads"]):
            pick &= pd.to_numeric(frame["threads"], errors="coerce") == r["threads"]
        pick &= frame["target_rps"].isna() if r["load"] == "max" else \
            frame["target_rps"] == float(r["load"])
        return frame[pick]

    out = []
    for _, r in table[~table["within"]].iterrows():
        m, s = point(measured, r), point(simulated, r)
        direction = "high" if r["diff"] > 0 else "low"
        why = ""
        if r["count"] == "server" and len(m) and len(s):
            mv = (m["voluntary_per_s"] / m["rps"]).mean()
            mi = (m["involuntary_per_s"] / m["rps"]).mean()
            sv = (s["voluntary_per_s"] / s["rps"]).mean()
            si = (s["involuntary_per_s"] / s["rps"]).mean()
            why = (f"voluntary {fmt(sv)} modelled vs {fmt(mv)} measured, involuntary "
                   f"(preemptions) {fmt(si)} vs {fmt(mi)} per request")
        elif r["count"] == "cpu" and len(m):
            idle = m["cpu_switches_idle_per_s"].mean()
            why = (f"the idle background taken off was {fmt(idle)}/s = "
                   f"{fmt(idle / max(r['measured_rps'], 1e-9))} per request; the model has none")
        out.append(f"- {r['regime']}, {r['count']}, {shape_label(r['arch'], r['threads'])}, "
                   f"{r['load']}: model {direction} by {abs(r['rel_diff']):.0%} "
                   f"({fmt(r['simulated'])} vs {fmt(r['measured'])}); {why}.")
    return out


def _era_lines(table: pd.DataFrame) -> list[str]:
    lines = ["| era | old design | old resched/request | new resched/request (at 1,000 req/s) "
             "| old CPU us/request | new CPU us/request (at saturation) "
             "| old req/s | new req/s (at saturation) | old / new |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in table.iterrows():
        lines.append(f"| {r['era']} | {r['old_shape']} | {fmt(r['old_resched_per_request'])} "
                     f"| {fmt(r['new_resched_per_request'])} | {fmt(r['old_cpu_us_per_request'])} "
                     f"| {fmt(r['new_cpu_us_per_request'])} | {fmt(r['old_saturation_rps'])} "
                     f"| {fmt(r['new_saturation_rps'])} | {fmt(r['old_over_new_throughput'])} |")
    return lines


def answer_prediction(table: pd.DataFrame) -> str:
    """One sentence, with numbers: does the old design 'perform again' on later kernels?

    The old design (the pool in accept()) performs again where it makes no more reschedules per
    request than the new design at the reference load and reaches at least 90% of its
    throughput at saturation.
    """
    def row(era: str) -> pd.Series | None:
        sub = table[(table["era"] == era) & (table["old_shape"].str.startswith("pool"))]
        return sub.iloc[0] if len(sub) else None

    def performs(r: pd.Series) -> bool:
        return bool(r["old_resched_per_request"] <= r["new_resched_per_request"]
                    and r["old_over_new_throughput"] >= 0.9)

    def numbers(r: pd.Series) -> str:
        return (f"{fmt(r['old_resched_per_request'])} vs {fmt(r['new_resched_per_request'])} "
                f"reschedules per request, {fmt(100 * r['old_over_new_throughput'])}% of the new "
                "design's throughput")

    old, later = row("Linux 2.2"), [(e, row(e)) for e in ("Linux 2.4", "Linux 2.6 O(1)")]
    later = [(e, r) for e, r in later if r is not None]
    host = row("this host (measured)")
    if old is None or not later:
        return "Not answered: the eras were not simulated."
    again = [e for e, r in later if performs(r)]
    verdict = (f"Yes on the 1999 machine from {again[0]} on" if again else
               "No, not on the 1999 machine")
    parts = [f"{verdict}: the old design (an Apache-like pool in accept()) goes from "
             f"{numbers(old)} on Linux 2.2 to "
             + "; ".join(f"{numbers(r)} on {e}" for e, r in later)]
    if host is not None:
        parts.append(f"on this host, measured with a connection per request, it makes "
                     f"{numbers(host)}, so here it does "
                     f"{'' if performs(host) else 'not '}perform again")
    return "; ".join(parts) + "."


def sensitivity_summary(table: pd.DataFrame) -> str:
    """Which single assumptions land each claim (server count), and whether one lands both."""
    server = table[table["count"] == "server"]
    old = [str(v) for v in server.loc[server["old_holds"] == True, "variant"]]  # noqa: E712
    new = [str(v) for v in server.loc[server["new_holds"] == True, "variant"]]  # noqa: E712
    both = [v for v in old if v in new]
    return (f"Counting the server's own switches, the old design's claim holds with: "
            f"{', '.join(old) or 'none'}; the new design's with: {', '.join(new) or 'none'}; "
            + (f"both with: {', '.join(both)}." if both else
               "no single change lands both."))


def _sensitivity_lines(table: pd.DataFrame) -> list[str]:
    lines = ["| assumption changed | count | old: peak reschedules/s | holds? "
             "| new: worst per request above 2,000 req/s | holds? |",
             "|---|---|---:|:---:|---:|:---:|"]
    for _, r in table.iterrows():
        yn = {True: "yes", False: "no", None: "-"}
        lines.append(f"| {r['variant']} ({r['change']}) | {r['count']} "
                     f"| {fmt(r['old_peak_per_s'])} | {yn.get(r['old_holds'], '-')} "
                     f"| {fmt(r['new_worst_per_request'])} | {yn.get(r['new_holds'], '-')} |")
    return lines


def _calibration_lines(cal: dict) -> list[str]:
    tag = "input from"
    lines = [
        f"- Switch cost (pipe ping-pong, two processes on CPU {cal['server_cpus'][0]}): "
        f"{fmt(cal['switch']['switch_us'])} us; wake-up latency across CPUs: median "
        f"{fmt(cal['wakeup']['median_us'])} us, p99 {fmt(cal['wakeup']['p99_us'])} us "
        f"({tag} hostbench's microbenchmarks).",
    ]
    for arch, s in cal.get("servers", {}).items():
        line = (f"- {arch}, keep-alive, unpaced: {fmt(s['cpu_us_per_request'])} us of CPU per "
                f"request at {fmt(s['rps'])} requests/s -> its per-state costs")
        if s.get("paced"):
            p = s["paced"]
            line += (f"; paced at {fmt(p['target_rps'])} requests/s: "
                     f"{fmt(p['cpu_us_per_request'])} us per request -> its cold-cache refill")
        lines.append(line + ".")
    close = cal.get("close") or {}
    for name in ("state-group", "thread-per-request", "thread-per-connection"):
        if name in close:
            what = {"state-group": "the state-group's accept/close costs",
                    "thread-per-request": "the pool's accept/close costs",
                    "thread-per-connection": "the thread start cost"}[name]
            lines.append(f"- {name}, a connection per request, unpaced: "
                         f"{fmt(close[name]['cpu_us_per_request'])} us per request -> {what}.")
    if close.get("client_close_us") is not None:
        lines.append(f"- wrk's extra CPU per request with a connection per request: "
                     f"{fmt(close['client_close_us'])} us -> the model client's connect cost.")
    if cal.get("cold_cache"):
        c = cal["cold_cache"]
        lines.append(f"- Cold caches after an idle CPU decay with {fmt(c['decay_ms'])} ms "
                     "(cold_cache microbenchmark).")
    if cal.get("process_switch"):
        r = cal["process_switch"]
        lines.append(f"- A switch into another of {r['members']} processes costs "
                     f"{fmt(r['extra_us'])} us more than one between threads (a ring of "
                     "processes against one of threads) -> prefork's mm_switch_us.")
    if cal.get("cpu_jitter"):
        lines.append(f"- CPU time of the same work varies with a coefficient of variation of "
                     f"{fmt(cal['cpu_jitter']['cv'])} (cpu_time_cv microbenchmark).")
    lines.append("- Only CPU time per request is matched to measurements; every reschedule "
                 "count in this report is predicted, never fitted.")
    if cal.get("servers_skipped"):
        lines.append(f"- Server costs not measured: {cal['servers_skipped']}.")
    return lines


FIGURES = [
    ("seed_regime", "the seed's regime measured here, both counts, with the seed's sentences"),
    ("overlay_seed", "seed regime: measured points against the host model"),
    ("overlay_today", "today's regime (keep-alive): measured points against the host model"),
    ("states", "the state-group server's work by lifecycle state, measured and modelled"),
    ("eras", "old vs new across kernel eras and on this host"),
    ("sensitivity", "the 1999 model with one assumption changed at a time"),
]


def _machine_lines(cal: dict, measured: pd.DataFrame) -> list[str]:
    """The machine's speed at calibration and over the bench (arch_sim/machine_state.py), with
    a warning when they differ enough that the model is not expected to agree."""
    warm = calibration_reference_us(cal)
    times = reference_times(measured)
    if not warm or times.empty:
        return []
    bench = float(times.median())
    lines = [f"The machine ran the reference work (`arch_sim/machine_state.py`) in "
             f"{fmt(warm)} us when calibrated and in {fmt(bench)} us over the bench's load "
             f"points ({fmt(times.min())}-{fmt(times.max())}).", ""]
    note = speed_note(bench, warm, "this run")
    return lines + ([f"**Warning:** {note}.", ""] if note else [])


def render(out: Path, meta: dict, calibration: dict, measured: dict[str, pd.DataFrame],
           table: pd.DataFrame | None, era_rows: pd.DataFrame, era_table: pd.DataFrame,
           sens_table: pd.DataFrame, skipped: list[str]) -> str:
    """The whole REPORT.md text."""
    git = meta.get("git") or {}
    seed = measured.get("seed")
    parts = [
        f"# arch-sim reproduce ({meta['mode']})",
        "",
        f"Run `{meta['run_id']}` on {meta['host']} ({meta['cpu_model']}, kernel "
        f"{meta['kernel']}, Python {meta['python']}), commit `{git.get('commit')}`"
        f"{' (dirty)' if git.get('dirty') else ''}, started {meta['started']}.  Real servers "
        "pinned to CPU 0, wrk to CPU 1, 64 connections with exponential think times.  Two "
        "workloads: " + "; ".join(f"**{r.name}** - {r.description}" for r in REGIMES.values())
        + ".  Two counts: **server** - the server's own context switches (its getrusage); "
        "**cpu** - every switch on its CPU, to and from idle included, as `vmstat` showed the "
        "seed's author (perf, with the idle CPU's background measured just before each load "
        "point taken off).",
        "",
        "## The seed's sentences beside the numbers",
        "",
        f"> \"{claims.OLD_QUOTE}\" - kHTTPd <= 0.1.2 (thread per request)",
        ">",
        f"> \"{claims.NEW_QUOTE}\" - kHTTPd >= 0.1.3 (a thread per CPU, requests grouped by "
        "state)",
        "",
        "A claim holds when the old design's peak falls in 10,000-20,000 reschedules/s, and "
        "when the new design makes at most 0.05 reschedules per request at every load above "
        "2,000 achieved requests/s (`arch_sim/claims.py`).  The 1999 model runs the "
        "linux-2.2-1999 preset as written: 4 CPUs, HTTP/1.0 connections arriving at random, a "
        "shared 376 Mbit/s link (docs/SOURCES.md for every number).  kHTTPd 0.1.2's code did "
        "not survive; the seed calls it \"Apache-like\", which implies a pool of threads each "
        "blocked in accept() (docs/SOURCES.md [KH-old-design]), so the 1999 model's old design "
        "is that pool (10 threads, Apache 1.3's MaxSpareServers), and a thread forked per "
        "connection is shown beside it; on this host both the pool and a thread per "
        "connection are measured.",
        "",
    ] + claims_table(seed, era_rows)
    parts += ["", "![The seed's regime measured](seed_regime.png)", ""]
    if seed is not None:
        parts += ["### The seed's regime, measured on this host", ""] + _regime_table(seed)
    parts += ["", "## Fidelity: the host model against measurement", ""]
    if table is not None and not table.empty:
        allm = pd.concat(measured.values(), ignore_index=True)
        from .regimes import add_regime

        sim = add_regime(pd.read_csv(out / "simulated-host" / "simulated.csv"))
        parts += [f"**{headline(table)}**, both workloads, both counts "
                  "(|ln(simulated / measured)| <= ln 1.10, or within 0.01 per request).", ""]
        parts += _machine_lines(calibration, allm)
        for regime in REGIMES:
            for count in claims.COUNTS:
                sub = table[(table["regime"] == regime) & (table["count"] == count)]
                if len(sub):
                    parts.append(f"- {regime}, {count}: {headline(sub)}")
        parts += ["", fidelity_markdown(table), "", "### Points outside the tolerance", ""]
        misses = _misses(table, add_regime(allm), sim)
        parts += misses or ["None."]
    else:
        parts.append("Not computed: no measurement (see below).")
    parts += ["", "## \"It might just be that this architecture will perform again\"", "",
              answer_prediction(era_table), ""] + _era_lines(era_table)
    parts += ["", "![Eras](eras.png)", "",
              "## What it would take to land the seed's numbers", "",
              "The linux-2.2-1999 preset with one assumption changed at a time (none of these "
              "is fitted; each bar says how far one assumption moves the answer).  "
              + sensitivity_summary(sens_table), ""]
    parts += _sensitivity_lines(sens_table) + ["", "![Sensitivity](sensitivity.png)", ""]
    parts += ["## Inputs: where each came from", ""] + _calibration_lines(calibration)
    parts += ["", "## Figures", ""] + [
        f"- [{name}.png]({name}.png) - {what}" for name, what in FIGURES
        if (out / f"{name}.png").exists()]
    if skipped:
        parts += ["", "## Skipped", ""] + [f"- {s}" for s in skipped]
    return "\n".join(parts) + "\n"
