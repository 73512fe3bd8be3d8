"""Clinical model comparisons: the long results table and the paper-layout report."""

import numpy as np
import pandas as pd
import pytest
import torch

from negtransfer.jobs.clinical import comparison_markdown, comparison_table, run_temporal_comparison
from negtransfer.train.temporal import TemporalTrainConfig

torch.set_num_threads(1)


def _dataset(seed):
    from negtransfer.data.timeseries import timeseries_dataset

    rng = np.random.default_rng(seed)
    values = rng.normal(size=(50, 4, 3))
    labels = np.stack([(values[:, :, 0].mean(1) > 0), (values[:, :, 1].mean(1) > 0)], axis=1).astype(float)
    return timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"], seed=seed)


def test_run_temporal_comparison_long_table():
    config = TemporalTrainConfig(max_epochs=2, mc_samples=2, validation_mc_samples=1)
    results = run_temporal_comparison(_dataset, ["stl-lstm", "tp-amtl"], runs=2, seed=3, config=config)
    assert list(results.columns[:5]) == ["model", "task", "run", "metric", "value"]
    assert len(results) == 2 * 2 * 2  # models x tasks x runs
    assert set(results["metric"]) == {"auroc"} and results["value"].between(0, 1).all()
    with pytest.raises(ValueError, match="unknown model"):
        run_temporal_comparison(_dataset, ["gpt"], runs=1)
    with pytest.raises(ValueError, match="rows"):
        run_temporal_comparison(_dataset, ["p-amtl"], runs=1, config=config)


def test_comparison_table_marks_mtl_below_stl():
    rows = []
    for run, (s, m) in enumerate([(0.70, 0.80), (0.72, 0.60)]):  # task a: mtl mean 0.70 < stl 0.71
        rows += [{"model": "stl-lstm", "task": "a", "run": run, "metric": "auroc", "value": s},
                 {"model": "mtl-lstm", "task": "a", "run": run, "metric": "auroc", "value": m - 0.0},
                 {"model": "stl-lstm", "task": "b", "run": run, "metric": "auroc", "value": 0.5},
                 {"model": "mtl-lstm", "task": "b", "run": run, "metric": "auroc", "value": 0.9}]  # fmt: skip
    table = comparison_table(pd.DataFrame(rows))
    assert table.loc["mtl-lstm", "a"] == "0.7000 ± 0.1000 ↓"
    assert table.loc["mtl-lstm", "b"] == "0.9000 ± 0.0000"
    assert table.loc["stl-lstm", "Average"] == "0.6050 ± 0.0050"
    assert not table.loc["mtl-lstm", "Average"].endswith(" ↓")
    assert comparison_markdown(table).splitlines()[0].startswith("| Model | a | b | Average |")


def test_negtransfer_compare_runs_the_clinical_models(tmp_path):
    from negtransfer.jobs.compare import model_names, run_compare, write_outputs

    assert {"tp-amtl", "stl-lstm", "td-amtl"} <= set(model_names("time-series"))
    assert {"stl", "mtl", "p-amtl"} <= set(model_names("multi-task"))
    result = run_compare("tiny", ["stl-lstm", "tp-amtl"], runs=2, seed=0, options={"iterations": 2},
                         dataset_loader=_dataset)  # fmt: skip
    csv_path, md_path = write_outputs(result, tmp_path)
    table = pd.read_csv(csv_path)
    assert list(table.columns) == ["model", "task", "run", "metric", "value"]
    assert set(table["task"]) == {"a", "b", "average"} and len(table) == 2 * 2 * 3
    report = md_path.read_text()
    assert "| tp-amtl |" in report and "tp-amtl vs stl-lstm" in report
    with pytest.raises(ValueError, match="does not accept time-series"):
        run_compare("tiny", ["p-amtl"], runs=1, dataset_loader=_dataset)
