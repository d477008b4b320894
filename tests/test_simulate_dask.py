"""``arch-sim simulate --dask``: a sweep on a Dask cluster writes the rows of the local run."""

from __future__ import annotations

import json
import os
import sys
import time

import pandas as pd
import pytest

from arch_sim import simulate, sweep
from arch_sim.cli import main

SMALL = ["--loads", "800", "3000", "--reps", "2", "--requests", "1500", "--quiet", "--no-figures"]


def _distributed():
    """dask.distributed, or skip - but only off CI as a normal user: as root or in CI it must
    be installed (the dev extra has it), so the test fails there instead of skipping."""
    try:
        import distributed
    except ImportError:
        if os.geteuid() == 0 or os.environ.get("CI"):
            raise
        pytest.skip("dask.distributed is not installed (pip install 'arch-sim[dask]')")
    return distributed


@pytest.fixture(scope="module")
def cluster():
    distributed = _distributed()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", scheduler_port=0,
                                  dashboard_address=None) as local:
        yield local


def test_dask_sweep_writes_the_rows_of_the_local_run(tmp_path, cluster):
    local, dask = tmp_path / "local", tmp_path / "dask"
    assert main(["simulate", *SMALL, "--jobs", "2", "--out", str(local)]) == 0
    assert main(["simulate", *SMALL, "--dask", cluster.scheduler_address,
                 "--out", str(dask)]) == 0
    a = pd.read_csv(local / "simulated.csv")
    b = pd.read_csv(dask / "simulated.csv")
    assert len(a) == 2 * 2 * 2  # archs x loads x reps
    assert not set(sweep.WALL_FIELDS) & set(a.columns)
    pd.testing.assert_frame_equal(a, b)
    assert (local / "simulated.csv").read_bytes() == (dask / "simulated.csv").read_bytes()
    meta_local = json.loads((local / "meta.json").read_text())
    meta_dask = json.loads((dask / "meta.json").read_text())
    assert meta_local["executor"] == "local"
    assert meta_dask["executor"] == f"dask {cluster.scheduler_address}"
    assert meta_dask["run_id"] == meta_local["run_id"]  # how it ran is not what it ran
    assert meta_dask["complete"] is True


def test_run_jobs_on_a_client_keeps_job_order(cluster):
    distributed = _distributed()
    params = simulate.load_preset("linux-2.2-1999")
    args = simulate.argparse.Namespace(
        loads=[500.0, 1500.0, 2500.0], load_range=None, workload="open", connection=None,
        connections=None,
        arch=["state-group"], reps=1, requests=600, warmup=None, seed=3, cpus=None,
        threads=None, file_sizes=None)
    jobs = sweep.plan_options(args, params)
    seen: list[int] = []
    with distributed.Client(cluster.scheduler_address, set_as_default=False) as client:
        rows = sweep.run_jobs(jobs, progress=False, dask=client,
                                 on_row=lambda i, row: seen.append(i))
        assert client.status == "running"  # a client we were given stays open
    assert sorted(seen) == [0, 1, 2]
    local = sweep.run_jobs(jobs, workers=1, progress=False)
    pd.testing.assert_frame_equal(pd.DataFrame(rows).drop(columns=list(sweep.WALL_FIELDS)),
                                  pd.DataFrame(local).drop(columns=list(sweep.WALL_FIELDS)))


def test_unreachable_scheduler_is_a_clear_error_not_a_hang(tmp_path, monkeypatch, capsys):
    _distributed()
    monkeypatch.setattr(sweep, "DASK_CONNECT_TIMEOUT_S", 2.0)
    out = tmp_path / "run"
    started = time.monotonic()
    # port 9 (discard) on loopback: nothing listens, the connection is refused
    assert main(["simulate", *SMALL, "--dask", "tcp://127.0.0.1:9", "--out", str(out)]) == 2
    assert time.monotonic() - started < 20
    err = capsys.readouterr().err
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:9" in err
    assert not out.exists()  # nothing written for a sweep that never started
    with pytest.raises(sweep.DaskError, match="cannot reach"):
        sweep.run_jobs([], progress=False, dask="tcp://127.0.0.1:9")


def test_missing_dask_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert main(["simulate", *SMALL, "--dask", "tcp://127.0.0.1:8786",
                 "--out", str(tmp_path / "run")]) == 2
    assert "pip install 'arch-sim[dask]'" in capsys.readouterr().err
    with pytest.raises(sweep.DaskError, match=r"arch-sim\[dask\]"):
        sweep.connect_dask("tcp://127.0.0.1:8786")


def test_simulate_does_not_import_dask_without_dask(tmp_path):
    import subprocess

    code = ("import sys; from arch_sim.cli import main; "
            f"rc = main(['simulate', *{SMALL!r}, '--arch', 'state-group', '--jobs', '1', "
            f"'--out', {str(tmp_path / 'run')!r}]); "
            "assert rc == 0; assert 'distributed' not in sys.modules, 'dask imported'; "
            "assert 'dask' not in sys.modules, 'dask imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
