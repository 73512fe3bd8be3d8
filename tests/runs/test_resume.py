"""A `gains` run killed with SIGKILL and started again ends with identical results.

The reference and the resumed run run in this process (CliRunner), only the
killed one in a subprocess.
"""

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from negtransfer.cli import app


def _args(csv, out):
    return ["gains", "--data", str(csv), "--tasks", "task0,task1,task2,task3", "--groups", "all", "--chunk-size", "1",
            "--epochs", "8", "--patience", "8", "--seed", "3", "--repeats", "1", "--out", str(out), "-q"]


def _run_here(csv, out):
    res = CliRunner().invoke(app, _args(csv, out))
    assert res.exit_code == 0, res.output


def test_killed_run_resumes_with_identical_results(tmp_path, binary_tasks_csv, stored_count, killed_midway):
    def _stored(out):
        return stored_count(out / "runs.sqlite")

    csv = binary_tasks_csv(tmp_path / "data.csv")
    reference = tmp_path / "reference"
    _run_here(csv, reference)
    total = _stored(reference)
    assert total == 4 + 11  # 4 STL models and every group of 2..4 tasks

    killed = tmp_path / "killed"
    partial = killed_midway(_args(csv, killed), lambda: _stored(killed), 3)
    assert 3 <= partial < total
    assert not (killed / "gains.csv").exists()

    _run_here(csv, killed)
    assert _stored(killed) == total
    a = pd.read_csv(reference / "gains.csv")
    b = pd.read_csv(killed / "gains.csv")
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    np.testing.assert_allclose(b["gain"], (b["stl_test_loss"] - b["test_loss"]) / b["stl_test_loss"], rtol=1e-12)
