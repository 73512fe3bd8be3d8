"""``--executor ray``: the same numbers as in this process, and nothing lost or doubled when a worker or the driver dies.

One local Ray instance (2 CPUs) serves the whole module; starting it takes
5-20 s, so the module is marked slow (``make test-ray`` installs Ray and runs
it). Without Ray installed the module is skipped.
"""

import contextlib
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from negtransfer.cli import app
from negtransfer.runs.executors import RayExecutor, train_chunk
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow

CFG = TrainConfig(max_epochs=4, patience=2, lr=0.05)
GROUPS = [(0,), (1,), (2,), (3,), (0, 1), (1, 2, 3), (0, 1, 2, 3)]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs for the module; executors use it and leave it running."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


def _numbers(results):
    """Every field of every run except its wall time."""
    return {g: [{k: v for k, v in vars(run).items() if k != "seconds"} for run in rep.runs]
            for g, rep in results.items()}


def _stored_rows(path):
    con = sqlite3.connect(path)
    try:
        rows = con.execute("SELECT dataset, grp, seed, config, result FROM runs ORDER BY grp, seed").fetchall()
    finally:
        con.close()
    return [(*row[:4], {k: v for k, v in json.loads(row[4]).items() if k != "seconds"}) for row in rows]


def test_ray_gives_bit_identical_runs_and_store(tmp_path, mixed_dataset, local_ray):
    here = ensure_runs(mixed_dataset, GROUPS, CFG, 0, RunStore(tmp_path / "a.sqlite"), repeats=2, chunk_size=3)
    executor = RayExecutor()
    done = []
    remote = ensure_runs(mixed_dataset, GROUPS, CFG, 0, RunStore(tmp_path / "b.sqlite"), repeats=2, chunk_size=2,
                         executor=executor, on_progress=lambda d, total: done.append(d))
    executor.close()
    assert local_ray.is_initialized()  # an instance the executor did not start is left running
    assert _numbers(here) == _numbers(remote)
    assert _stored_rows(tmp_path / "a.sqlite") == _stored_rows(tmp_path / "b.sqlite")
    assert done == [0, 2, 4, 6, 8, 10, 12, 14]  # progress after every chunk of 2 runs


def test_gains_command_with_ray_writes_the_same_table(tmp_path, local_ray, binary_tasks_csv):
    csv = binary_tasks_csv(tmp_path / "data.csv", n_rows=300, n_tasks=4)
    runner = CliRunner()
    for name, extra in (("local", []), ("ray", ["--executor", "ray", "--chunk-size", "2"])):
        res = runner.invoke(app, _gains_args(csv, tmp_path / name) + extra)
        assert res.exit_code == 0, res.output
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "local" / "gains.csv"),
                                  pd.read_csv(tmp_path / "ray" / "gains.csv"), check_exact=True)


def test_a_gpu_task_on_a_cluster_without_gpus_is_refused_before_training(local_ray):
    with pytest.raises(ValueError, match="the local Ray instance has 0 GPUs, and each Ray task asks for 1"):
        RayExecutor(gpus_per_task=1).start()


def test_compare_units_on_ray_give_the_same_results(tmp_path, local_ray):
    from negtransfer.data.domains import dataset_from_domains
    from negtransfer.jobs.compare import CompareOptions, run_compare
    from negtransfer.models.base import FitOptions

    def load(seed):
        rng = np.random.default_rng(seed)
        centres = rng.normal(size=(2, 4)) * 2
        y = np.arange(30) % 2
        return dataset_from_domains({f"site{t}": (centres[y] + rng.normal(size=(30, 4)), y) for t in range(3)},
                                    seed=seed, name="tiny-domains")

    options = CompareOptions(("stl", "bmtl"), runs=2, fit=FitOptions(iterations=3))
    here = run_compare(load, "tiny", options, 0, RunStore(tmp_path / "a.sqlite"))
    remote = run_compare(load, "tiny", options, 0, RunStore(tmp_path / "b.sqlite"), executor=RayExecutor())
    assert here.rows == remote.rows


def test_a_worker_killed_mid_chunk_is_retried_and_nothing_is_lost_or_doubled(tmp_path, mixed_dataset, local_ray):
    marker = tmp_path / "killed-once"

    def dies_on_first_attempt(dataset, chunk, config, seed):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))  # only the first attempt of all creates it
        except FileExistsError:
            return train_chunk(dataset, chunk, config, seed)
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-chunk
        raise RuntimeError("SIGKILL did not end the worker")  # not reached

    reference = ensure_runs(mixed_dataset, GROUPS, CFG, 0, RunStore(tmp_path / "a.sqlite"))
    store = RunStore(tmp_path / "b.sqlite")
    trained = []
    survived = ensure_runs(mixed_dataset, GROUPS, CFG, 0, store, chunk_size=2, trained=trained,
                           executor=RayExecutor(chunk_trainer=dies_on_first_attempt, max_retries=2))
    assert marker.exists()  # a worker was killed
    assert sorted(trained) == sorted((g, 0) for g in GROUPS)  # each run committed once
    assert store.count() == len(GROUPS)
    assert _numbers(reference) == _numbers(survived)
    assert _stored_rows(tmp_path / "a.sqlite") == _stored_rows(tmp_path / "b.sqlite")


def test_a_driver_killed_with_sigkill_resumes_from_the_store(tmp_path, local_ray, binary_tasks_csv, stored_count):
    csv = binary_tasks_csv(tmp_path / "data.csv", n_rows=300, n_tasks=4)
    reference = tmp_path / "reference"
    res = CliRunner().invoke(app, _gains_args(csv, reference, epochs=30))  # in this process
    assert res.exit_code == 0, res.output
    total = stored_count(reference / "runs.sqlite")

    killed = tmp_path / "killed"
    args = _gains_args(csv, killed, epochs=30) + ["--executor", "ray", "--workers", "1", "--chunk-size", "1"]
    # its own process group: Ray's agent processes can outlive a driver killed with SIGKILL (docs/scaling.md)
    proc = subprocess.Popen([sys.executable, "-m", "negtransfer", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.time() + 300
        while stored_count(killed / "runs.sqlite") < 2 and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # what is left of its local Ray instance
    lines = proc.stderr.read().decode().splitlines()
    assert [ln for ln in lines if not ln.startswith("note: ")] == []  # -q: not a line from Ray either
    partial = stored_count(killed / "runs.sqlite")
    assert 2 <= partial < total
    assert not (killed / "gains.csv").exists()

    resumed = CliRunner().invoke(app, args)  # on the module's Ray instance
    assert resumed.exit_code == 0, resumed.output
    assert stored_count(killed / "runs.sqlite") == total
    pd.testing.assert_frame_equal(pd.read_csv(reference / "gains.csv"), pd.read_csv(killed / "gains.csv"),
                                  check_exact=True)


def _gains_args(csv, out, epochs=4):
    return ["gains", "--data", str(csv), "--tasks", "task0,task1,task2,task3", "--groups", "all", "--epochs",
            str(epochs), "--patience", str(epochs), "--seed", "3", "--repeats", "1", "--out", str(out), "-q"]
