"""Saturation throughput and CPU per request of every server, side by side in one run.

    .venv/bin/python benchmarks/servers.py [--out results/peers-DATE] [--duration 3] [--reps 3]
                                    [--workloads 1k,specweb99,seed] [--servers ...]

Each server runs unpaced (wrk -c 64) on CPU 0 with wrk on CPU 1: state-group,
thread-per-request as a pool of 64 and as a thread per connection, nginx (one worker) and the
standard library's ThreadingHTTPServer (HTTP/1.1), under each workload: the 1 KB file and the
SPECweb99 mix with keep-alive (today's regime), and ``seed`` - the SPECweb99 mix with a new
connection per request (``Connection: close``: the seed's HTTP/1.0 regime, arch_sim/regimes.py).
CPU per request is the server's user + system time over the wrk window divided by the requests
wrk completed.

The machine is shared and its speed drifts, so the servers are measured in interleaved rounds
(one window each per round, the order rotated every round) and a server's ratio to nginx is
the median of its per-round ratios: drift between rounds cancels in each ratio.  Writes
measurements.csv (after every window, so an interrupted run keeps what it measured), meta.json,
peers.csv (the summary with ratios to nginx) and cpu_per_request.{png,svg}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import pandas as pd

from arch_sim.argtypes import positive_float, positive_int
from arch_sim.harness import bench
from arch_sim.regimes import REGIMES
from arch_sim.runinfo import write_json_atomic

BARE_POOL = Path(__file__).with_name("bare_pool.py")
#: name -> (label, --arch/--peer options, --threads)
SERVERS = {
    "state-group": ("state-group", ["--arch", "state-group"], 64),
    "pool": ("thread-per-request (pool 64)", ["--arch", "thread-per-request"], 64),
    "per-connection": ("thread-per-request (per connection)", ["--arch", "thread-per-request"],
                       0),
    "nginx": ("nginx (1 worker)", ["--arch", "state-group", "--peer", "nginx"], 64),
    "python-http-server": ("python-http-server",
                           ["--arch", "state-group", "--peer", "python-http-server"], 64),
    # a floor, not a server: the pool's dispatcher and hand-off without the HTTP core; it
    # answers every request with the 1 KB file, so it runs in the 1k workload only
    "bare-pool": ("bare pool 64 (no HTTP core)",
                  ["--peers-only", "--server-name", "bare-pool", "--server-cmd",
                   f"{sys.executable} {BARE_POOL} {{port}} {{root}}"], 64),
}
DEFAULT_SERVERS = "state-group,pool,per-connection,nginx,python-http-server"
ONLY_1K = ("bare-pool",)

#: workload -> (file set, wrk's connection mode); ``seed`` is the seed's regime
WORKLOADS: dict[str, tuple[str, str]] = {
    "1k": ("1k", "keep-alive"),
    "specweb99": ("specweb99", "keep-alive"),
    "seed": (REGIMES["seed"].file_set, REGIMES["seed"].connection),
}


def workloads(text: str) -> list[str]:
    """``--workloads``: known names, comma-separated (argparse turns the error into exit 2)."""
    names = [w.strip() for w in text.split(",") if w.strip()]
    unknown = [w for w in names if w not in WORKLOADS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown workload(s) {unknown}; choose from {', '.join(WORKLOADS)}")
    return names


def run_one(label: str, options: list[str], threads: int, workload: str, round_: int,
            args) -> pd.DataFrame:
    """One measured window of one server (after a warm-up), as measurement rows."""
    file_set, connection = WORKLOADS[workload]
    out = args.out / "runs" / f"{workload}-{label.split()[0]}-{threads}-round{round_}"
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    argv = options + ["--loads", "max", "--duration", str(args.duration), "--warmup", "1",
                      "--reps", "1", "--file-set", file_set, "--threads", str(threads),
                      "--connection", connection, "--out", str(out), "--no-plots"]
    bargs = parser.parse_args(argv)
    plan = bench.make_plan(bargs)
    if bargs.peer:  # peers are measured alone
        plan.names = [(peer, None) for peer in bargs.peer]
    if bench.Bench(plan, bargs).run() != 0:
        raise SystemExit(f"benchmark of {label} failed; see {out}")
    df = pd.read_csv(out / "measurements.csv")
    df["workload"] = workload
    df["label"] = label
    df["round"] = round_
    return df


def servers(text: str) -> list[str]:
    """``--servers``: known names, comma-separated, nginx among them (the ratios' base)."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVERS]
    if unknown or "nginx" not in names:
        raise argparse.ArgumentTypeError(
            f"--servers {text!r}: choose from {', '.join(SERVERS)}, nginx included")
    return names


def schedule(names: list[str], reps: int,
             chosen: list[str] | None = None) -> list[tuple[int, str, tuple]]:
    """(round, workload, server) in measuring order: every server once per round, the order
    rotated from round to round so that no server always follows the same one."""
    chosen = chosen or servers(DEFAULT_SERVERS)
    order = []
    for round_ in range(reps):
        shift = round_ % len(chosen)
        rotated = chosen[shift:] + chosen[:shift]
        order += [(round_, workload, SERVERS[name]) for workload in names for name in rotated
                  if workload == "1k" or name not in ONLY_1K]
    return order


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Per workload and server: means over the rounds, and the ratio to nginx as the median
    (and range) of the per-round ratios (nginx measured in the same workload and round)."""
    if "workload" not in df.columns:  # measurements from before workloads: keep-alive ones
        df = df.assign(workload=df["file_set"])
    nginx = (df[df["label"].str.startswith("nginx")]
             .set_index(["workload", "round"])["cpu_us_per_request"])
    ratio = df["cpu_us_per_request"] / [nginx.get((w, r)) for w, r in
                                         zip(df["workload"], df["round"], strict=True)]
    df = df.assign(ratio=pd.to_numeric(ratio, errors="coerce"))
    return (df.groupby(["workload", "file_set", "connection_mode", "label"], sort=False)
              .agg(rps=("rps", "mean"), cpu_us_per_request=("cpu_us_per_request", "mean"),
                   cpu_us_sd=("cpu_us_per_request", "std"),
                   reschedules_per_request=("reschedules_per_request", "mean"),
                   errors=("errors", "sum"), rounds=("round", "nunique"),
                   cpu_vs_nginx=("ratio", "median"), cpu_vs_nginx_min=("ratio", "min"),
                   cpu_vs_nginx_max=("ratio", "max"))
              .reset_index())


def figure(table: pd.DataFrame, out: Path) -> None:
    """One panel per workload, the figure `arch-sim redraw` draws from peers.csv too."""
    from arch_sim.plots import save
    from arch_sim.plots_peers import cpu_per_request

    save(cpu_per_request(table), out, "cpu_per_request")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path,
                        default=Path("results") / f"peers-{dt.date.today().isoformat()}")
    parser.add_argument("--duration", type=positive_float, default=3.0)
    parser.add_argument("--reps", type=positive_int, default=3,
                        help="rounds (one window per server each)")
    parser.add_argument("--workloads", type=workloads, default="1k,specweb99,seed",
                        help="comma-separated: 1k and specweb99 (keep-alive), seed (SPECweb99, "
                        "a connection per request)")
    parser.add_argument("--servers", type=servers, default=DEFAULT_SERVERS,
                        help=f"comma-separated, nginx included: {', '.join(SERVERS)} "
                        f"(default {DEFAULT_SERVERS})")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    frames: list[pd.DataFrame] = []
    order = schedule(args.workloads, args.reps, args.servers)
    for i, (round_, workload, (label, options, threads)) in enumerate(order, 1):
        print(f"[{i}/{len(order)}] round {round_ + 1}: {workload}, {label}", flush=True)
        frames.append(run_one(label, options, threads, workload, round_, args))
        df = pd.concat(frames, ignore_index=True)
        df.to_csv(args.out / "measurements.csv", index=False)
    table = summarise(df)
    table.to_csv(args.out / "peers.csv", index=False)
    figure(table, args.out)
    from arch_sim.harness.peers import nginx_version
    from arch_sim.harness.wrk import wrk_version
    from arch_sim.runinfo import git_commit, host_info, now_iso

    write_json_atomic(args.out / "meta.json", {
        "kind": "peers", **host_info(), "git": git_commit(), "wrk": wrk_version(),
        "nginx": nginx_version(), "args": {k: str(v) for k, v in vars(args).items()},
        "pinning": {"server_cpus": [0], "client_cpus": [1]}, "started": started,
        "ended": now_iso(), "complete": True})
    print(table.to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
