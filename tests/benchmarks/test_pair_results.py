"""``benchmarks/pair_results.py``: two results.csv paired run by run, and refused where their splits differ."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "pair_results.py"


def _write(folder: Path, model: str, values: dict[int, float], **report) -> Path:
    folder.mkdir(parents=True)
    path = folder / "results.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["model", "task", "run", "metric", "value"])
        for run, value in values.items():
            writer.writerow([model, "average", run, "auroc", value])
            writer.writerow([model, "task0", run, "auroc", 0.5])
            writer.writerow([model, "average", run, "val_loss", 1.0 - value])
    if report:
        (folder / "report.json").write_text(json.dumps(report))
    return path


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def test_pairs_the_runs_both_have(tmp_path):
    settings = {"dataset": "pbcseq", "seed": 0, "train_fraction": None}
    first = _write(tmp_path / "a", "tp-amtl", {0: 0.80, 1: 0.70, 2: 0.90, 3: 0.75}, **settings)
    second = _write(tmp_path / "b", "stl", {0: 0.78, 1: 0.71, 2: 0.86}, **settings)  # run 3 missing: left out
    done = _run(f"{first}:tp-amtl", str(second), "--digits", "3")
    assert done.returncode == 0, done.stderr
    # differences +0.02, -0.01, +0.04: mean 0.0167, s.d. 0.02517, s.e. 0.01453; 2 of 3 higher (auroc: higher is
    # better); val_loss is the mirror image, lower is better, so the same 2 of 3 runs are better
    assert "| auroc | 0.800 ± 0.058 | 0.783 ± 0.043 | +0.017 ± 0.015 | 2/3 |" in done.stdout
    assert "| val_loss | 0.200 ± 0.058 | 0.217 ± 0.043 | -0.017 ± 0.015 | 2/3 |" in done.stdout


def test_refuses_results_of_different_splits_and_unknown_models(tmp_path):
    first = _write(tmp_path / "a", "vmtl", {0: 0.8}, dataset="heart-hospitals", seed=0, train_fraction=0.05)
    second = _write(tmp_path / "b", "bmtl", {0: 0.8}, dataset="heart-hospitals", seed=0, train_fraction=0.1)
    done = _run(str(first), str(second))
    assert done.returncode != 0
    assert "error: the two results do not share splits and seeds (train_fraction 0.05 against 0.1)" in done.stderr
    done = _run(f"{first}:bmtl", str(first))
    assert done.returncode != 0 and "has no model 'bmtl'; it holds ['vmtl']" in done.stderr
