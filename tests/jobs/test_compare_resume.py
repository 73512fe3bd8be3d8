"""A `compare` run killed with SIGKILL and started again writes a byte-identical results.csv.

The reference and the resumed run run in this process (CliRunner), only the
killed one in a subprocess: the comparison also shows that results do not
depend on the process that computed them.
"""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from negtransfer.cli import app

UNITS = 2 * 3  # models x runs


def _write_domains(path, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(3, 5)) * 1.5
    frames = []
    for t in range(3):
        y = np.arange(60) % 3
        X = centres[y] + rng.normal(size=(60, 5)) + 0.3 * t
        frames.append(pd.DataFrame(X, columns=[f"f{i}" for i in range(5)]).assign(site=f"site{t}", y=y))
    pd.concat(frames).to_csv(path, index=False)


def _args(csv, out):
    return ["compare", "--data", str(csv), "--task-column", "site", "--label", "y", "--models", "stl,vmtl",
            "--runs", "3", "--iterations", "40", "--seed", "2", "--out", str(out), "-q"]


def _run_here(csv, out):
    res = CliRunner().invoke(app, _args(csv, out))
    assert res.exit_code == 0, res.output


@pytest.mark.slow  # over 5 s: the default suite stays under 2 minutes
def test_killed_compare_resumes_with_a_byte_identical_results_csv(tmp_path, stored_count, killed_midway):
    def _stored(out):
        return stored_count(out / "runs.sqlite", "SELECT COUNT(*) FROM artifacts WHERE key LIKE 'compare:%'")

    csv = tmp_path / "domains.csv"
    _write_domains(csv)
    reference = tmp_path / "reference"
    _run_here(csv, reference)
    assert _stored(reference) == UNITS

    killed = tmp_path / "killed"
    partial = killed_midway(_args(csv, killed), lambda: _stored(killed), 2)
    assert 2 <= partial < UNITS
    assert not (killed / "results.csv").exists()

    _run_here(csv, killed)
    assert _stored(killed) == UNITS
    assert (killed / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    assert (killed / "report.md").read_bytes() == (reference / "report.md").read_bytes()
