"""A `gains` run killed with SIGKILL and started again ends with identical results.

The reference and the resumed run run in this process (CliRunner), only the
killed one in a subprocess.
"""

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


def _write_csv(path, n_rows=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 5))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    for t in range(5):
        frame[f"task{t}"] = (X @ rng.normal(size=5) + 0.3 * rng.normal(size=n_rows) > 0).astype(int)
    frame.to_csv(path, index=False)


def _args(csv, out):
    return ["gains", "--data", str(csv), "--tasks", "task0,task1,task2,task3", "--groups", "all", "--chunk-size", "1",
            "--epochs", "8", "--patience", "8", "--seed", "3", "--repeats", "1", "--out", str(out), "-q"]


def _run_here(csv, out):
    res = CliRunner().invoke(app, _args(csv, out))
    assert res.exit_code == 0, res.output


def _stored(out):
    db = out / "runs.sqlite"
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


def test_killed_run_resumes_with_identical_results(tmp_path):
    csv = tmp_path / "data.csv"
    _write_csv(csv)
    reference = tmp_path / "reference"
    _run_here(csv, reference)
    total = _stored(reference)
    assert total == 4 + 11  # 4 STL models and every group of 2..4 tasks

    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "negtransfer", *_args(csv, killed)],
                            env={**os.environ, "PYTHONHASHSEED": "0"})
    deadline = time.time() + 240
    while _stored(killed) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail("the run finished before it could be killed; make the workload larger")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _stored(killed)
    assert 3 <= partial < total
    assert not (killed / "gains.csv").exists()

    _run_here(csv, killed)
    assert _stored(killed) == total
    a = pd.read_csv(reference / "gains.csv")
    b = pd.read_csv(killed / "gains.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    np.testing.assert_allclose(b["gain"], (b["stl_test_loss"] - b["test_loss"]) / b["stl_test_loss"], rtol=1e-12)
