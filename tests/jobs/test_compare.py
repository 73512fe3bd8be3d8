"""``negtransfer compare``: the registry, results.csv, the paper-layout report, clean errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from negtransfer.cli import app
from negtransfer.data.domains import dataset_from_domains
from negtransfer.jobs import compare

runner = CliRunner()


def tiny_domains(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, 4)) * 2
    domains = {}
    for t in range(3):
        y = np.arange(30) % 2
        domains[f"site{t}"] = (centres[y] + rng.normal(size=(30, 4)), y)
    return dataset_from_domains(domains, seed=seed, name="tiny-domains")


@pytest.fixture(autouse=True)
def tiny_dataset():
    compare.register_dataset("tiny-domains", tiny_domains)
    yield
    compare._DATASETS.pop("tiny-domains", None)


def test_compare_writes_results_and_report(tmp_path):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", "--dataset", "tiny-domains", "--models", "stl,bmtl,vmtl", "--runs", "2",
                              "--iterations", "20", "--train-fraction", "0.3", "--fgsm", "0.1", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out / "results.csv")
    assert list(frame.columns) == ["model", "task", "run", "metric", "value"]
    assert set(frame["metric"]) == {"accuracy", "entropy_ratio", "fgsm_accuracy@0.1", "validation_accuracy"}
    assert set(frame["task"]) == {"site0", "site1", "site2", "average"}
    assert len(frame) == 3 * 2 * 4 * 4  # models x runs x (tasks + average) x metrics
    acc = frame[frame.metric == "accuracy"]
    assert acc["value"].between(0, 1).all()
    per_run = acc[acc.task != "average"].groupby(["model", "run"])["value"].mean()
    avg = acc[acc.task == "average"].set_index(["model", "run"])["value"]
    assert np.allclose(per_run.sort_index(), avg.sort_index())
    report = (out / "report.md").read_text()
    assert "| model | site0 | site1 | site2 | Avg. |" in report
    assert "## accuracy" in report and "## entropy_ratio" in report and " ± " in report


def test_report_marks_cells_below_the_stl_counterpart():
    stl = compare.ModelSpec("a-stl", ("domains",), lambda ds, s, o: {"accuracy": {"t1": 0.8, "t2": 0.5}})
    mtl = compare.ModelSpec("a-mtl", ("domains",), lambda ds, s, o: {"accuracy": {"t1": 0.7, "t2": 0.9}},
                            stl_counterpart="a-stl")
    compare.register_model(stl)
    compare.register_model(mtl)
    try:
        result = compare.run_compare("tiny-domains", ["a-stl", "a-mtl"], runs=2)
    finally:
        compare._MODELS.pop("a-stl")
        compare._MODELS.pop("a-mtl")
    text = compare.report_markdown(result)
    row = next(line for line in text.splitlines() if line.startswith("| a-mtl"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1].endswith("↓") and not cells[2].endswith("↓")  # t1 below STL, t2 above
    assert cells[3] == "80.0 ± 0.0"  # average of 0.7 and 0.9, no marker (0.8 > 0.65)


def test_unknown_and_incompatible_models_list_the_valid_ones(tmp_path):
    res = runner.invoke(app, ["compare", "--dataset", "tiny-domains", "--models", "stl,nonsense",
                              "--out", str(tmp_path / "x"), "-q"])
    assert res.exit_code == 2
    assert "nonsense" in res.output and "vmtl" in res.output
    compare.register_model(compare.ModelSpec("ts-only", ("time-series",), lambda ds, s, o: {}))
    try:
        with pytest.raises(ValueError, match="does not accept domains data.*vmtl"):
            compare.resolve_models(["ts-only"], "domains")
    finally:
        compare._MODELS.pop("ts-only")
    # a multi-label dataset is not domains data: the VMTL models refuse it
    with pytest.raises(ValueError, match="multi-task"):
        compare.resolve_models(["vmtl"], compare.data_kind(_multilabel()))


def test_same_name_for_different_data_kinds():
    compare.register_model(compare.ModelSpec("stl", ("time-series",), lambda ds, s, o: {"auroc": {"a": 1.0}}))
    try:
        assert compare.resolve_models(["stl"], "time-series")[0].data_kinds == ("time-series",)
        assert compare.resolve_models(["stl"], "domains")[0].data_kinds == ("domains",)
    finally:
        compare._MODELS["stl"] = [s for s in compare._MODELS["stl"] if s.data_kinds != ("time-series",)]


def _multilabel():
    from negtransfer.data.dataset import MultiTaskDataset, TaskSpec

    X = np.zeros((4, 2))
    Y = np.array([[0, 1], [1, 0], [0, 0], [1, 1]], dtype=float)
    return MultiTaskDataset("ml", (TaskSpec("a", "binary", (0, 1)), TaskSpec("b", "binary", (0, 1))), X, Y,
                            np.zeros(4), ("x0", "x1"))


def test_set_passes_training_settings_and_rejects_unknown_ones(tmp_path):
    base = ["compare", "--dataset", "tiny-domains", "--models", "vmtl", "--runs", "1", "--iterations", "5", "-q"]
    from negtransfer.train import variational

    seen = []
    real_fit = variational.fit_variational

    def spy(model, ds, config, seed=0, **kwargs):
        seen.append(config)
        return real_fit(model, ds, config, seed=seed, **kwargs)

    variational.fit_variational = spy
    try:
        res = runner.invoke(app, base + ["--set", "kl_w_warmup_step=1e-4,eval_every=5,balanced_batches=false",
                                         "--out", str(tmp_path / "a")])
    finally:
        variational.fit_variational = real_fit
    assert res.exit_code == 0, res.output
    assert [(c.kl_w_warmup_step, c.eval_every, c.balanced_batches) for c in seen] == [(1e-4, 5, False)]
    assert '"kl_w_warmup_step": 0.0001' in (tmp_path / "a" / "compare.json").read_text()
    res = runner.invoke(app, base + ["--set", "lr=fast", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "lr" in res.output and "number" in res.output
    res = runner.invoke(app, base + ["--set", "warmup=3", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "warmup" in res.output and "kl_w_warmup_step" in res.output


def test_config_from_options_sets_fields_and_names_unknown_ones():
    from negtransfer.jobs.compare import config_from_options
    from negtransfer.train.temporal import TemporalTrainConfig

    config = config_from_options(TemporalTrainConfig, {"config": {"max_epochs": 7, "lr": 0.01}}, "time-series")
    assert (config.max_epochs, config.lr) == (7, 0.01)
    assert config_from_options(TemporalTrainConfig, None, "time-series") == TemporalTrainConfig()
    with pytest.raises(ValueError, match="unknown time-series training setting.*nonsense.*max_epochs"):
        config_from_options(TemporalTrainConfig, {"config": {"nonsense": 1}}, "time-series")
