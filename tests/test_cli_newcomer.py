"""A newcomer's pass over the command line with their own files: each case a console line or check that read
wrongly or failed late, run through the CLI."""

from __future__ import annotations

import random
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from negtransfer.cli import app

runner = CliRunner()


def _table(path: Path, n: int = 60, seed: int = 0) -> Path:
    """A multi-label table: features x1..x3, binary tasks a and b, regression task c."""
    rng = random.Random(seed)
    lines = ["x1,x2,x3,a,b,c"]
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in range(3)]
        lines.append(",".join(f"{v:.3f}" for v in x) + f",{int(x[0] > 0)},{int(x[1] > 0)},{x[2] * 2:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return _table(tmp_path_factory.mktemp("newcomer") / "data.csv")


def test_compare_summary_of_one_run_prints_no_nan_standard_error(capsys):
    """``compare --runs 1`` printed ``average auroc 0.6287 ± nan`` for every model."""
    from negtransfer.cli.compare import _echo_summary

    nan = float("nan")
    report = SimpleNamespace(runs=1, selection=None, baselines="ours", metrics=lambda: ["auroc"],
                             summary=lambda metric: {"stl": {"average": (0.6287, nan)},
                                                     "mtl": {"average": (0.5561, 0.0123)}})
    _echo_summary(report)
    stl, mtl = capsys.readouterr().out.splitlines()
    assert stl.endswith("stl: average auroc 0.6287 (no s.e.: one run; --runs 2 or more gives one)"), stl
    assert mtl.endswith("mtl: average auroc 0.5561 ± 0.0123"), mtl
