"""The command line as a user meets it: files it has never seen, bad input, reports."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from negtransfer.cli import app

runner = CliRunner()


@pytest.fixture
def user_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    frame = pd.DataFrame(X, columns=["age", "dose", "bmi", "noise"])
    frame["site"] = "a"  # a non-numeric column the user leaves out with --features
    frame["sick"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame["worse"] = (X[:, 0] - X[:, 2] + 0.3 * rng.normal(size=300) > 0).astype(int)
    frame["stay"] = X[:, 1] * 2 + rng.normal(size=300)
    frame.loc[::7, "worse"] = np.nan  # missing labels
    path = tmp_path / "patients.csv"
    frame.to_csv(path, index=False)
    return path


def test_gains_on_a_new_csv(user_csv, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["gains", "--data", str(user_csv), "--tasks", "sick,worse,stay",
                              "--features", "age,dose,bmi,noise", "--groups", "all", "--epochs", "10",
                              "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    g = pd.read_csv(out / "gains.csv")
    assert set(g.columns) >= {"group", "task", "test_loss", "stl_test_loss", "gain", "metric", "test_metric"}
    assert set(g["group"]) == {"sick+worse", "sick+stay", "worse+stay", "sick+worse+stay"}
    np.testing.assert_allclose(g["gain"], (g["stl_test_loss"] - g["test_loss"]) / g["stl_test_loss"])
    assert dict(zip(g["task"], g["metric"]))["stay"] == "mse"
    payload = json.loads((out / "gains.json").read_text())
    assert len(payload["gains"]) == len(g) and payload["tasks"] == ["sick", "worse", "stay"]


def test_bad_input_gets_a_clear_error(user_csv, tmp_path):
    res = runner.invoke(app, ["gains", "--data", str(user_csv), "--tasks", "sick,nope", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "nope" in res.output
    res = runner.invoke(app, ["gains", "--data", str(user_csv), "--tasks", "sick,worse", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "site" in res.output  # non-numeric feature named
    res = runner.invoke(app, ["gains", "--dataset", "yeast", "--groups", "random:x", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "random:N" in res.output


def test_group_command_writes_reports(user_csv, tmp_path):
    out = tmp_path / "grp"
    res = runner.invoke(app, ["group", "--data", str(user_csv), "--tasks", "sick,worse,stay",
                              "--features", "age,dose,bmi,noise", "--budget", "2", "--train-groups", "2",
                              "--exhaustive", "--epochs", "10", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["tasks"] == ["sick", "worse", "stay"]
    assert len(rep["selected_groups"]) <= 2
    assert "optimal" in rep and (out / "report.md").exists()
    assert "Chosen groups" in (out / "report.md").read_text()


def test_datasets_lists_licenses():
    res = runner.invoke(app, ["datasets"])
    assert res.exit_code == 0 and "yeast (default)" in res.output
    licenses = res.output.split("Licenses")[1]
    for name in ("tv16", "heart-hospitals", "pbcseq"):  # every family of datasets, with its license line
        assert f"  {name}: " in licenses


def test_import_is_light():
    code = "import sys, negtransfer, negtransfer.cli; print(any(m in sys.modules for m in ('torch', 'pandas', 'sklearn', 'matplotlib')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
