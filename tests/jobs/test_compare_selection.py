"""``negtransfer compare --select-on-validation``: the grid, the choice per (model, run), the reports, clean errors;
and the validation metrics of the clinical family that the choice reads."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from negtransfer.cli import app
from negtransfer.data.dataset import MultiTaskDataset, TaskSpec
from negtransfer.jobs.compare import (
    CompareOptions,
    _Unit,
    grid_settings,
    parse_selection_grid,
    run_compare,
    select_on_validation,
    setting_label,
)
from negtransfer.models.base import FitOptions
from negtransfer.report.compare import write_compare_outputs
from negtransfer.runs.store import RunStore

runner = CliRunner()
torch.set_num_threads(1)


def tiny_table(seed=0):
    """Two binary tasks on 6 features, 120 rows (a table the non-temporal clinical models take)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    Y = np.stack([X[:, 0] + 0.5 * rng.normal(size=120) > 0, X[:, 1] - X[:, 2] > 0], axis=1).astype(np.float32)
    split = np.array([0, 0, 0, 1, 2] * 24, dtype=np.int8)
    tasks = (TaskSpec("a", "binary", (0, 1)), TaskSpec("b", "binary", (0, 1)))
    return MultiTaskDataset("tiny-table", tasks, X, Y, split, tuple(f"x{i}" for i in range(6)))


def tiny_domains(seed=0):
    from negtransfer.data.domains import dataset_from_domains

    rng = np.random.default_rng(seed)
    y = np.arange(30) % 2
    return dataset_from_domains({f"site{t}": (rng.normal(size=(30, 4)) + y[:, None], y) for t in range(2)},
                                seed=seed, name="tiny-domains")


def test_the_grid_parses_in_order_and_names_bad_input():
    grid = parse_selection_grid("hidden=16,32;dropout=0.1,0.5; noise=dropconnect")
    assert grid == (("hidden", (16, 32)), ("dropout", (0.1, 0.5)), ("noise", ("dropconnect",)))
    settings = grid_settings(grid)
    assert len(settings) == 4 and settings[0] == (("hidden", 16), ("dropout", 0.1), ("noise", "dropconnect"))
    assert settings[1][1] == ("dropout", 0.5)  # the last option varies fastest
    assert setting_label(settings[3]) == "hidden=32,dropout=0.5,noise=dropconnect"
    assert parse_selection_grid(None) == () and grid_settings(()) == [()]
    for bad, message in (("hidden", "is not NAME=V1"), ("hidden=", "is not NAME=V1"), ("=3", "is not NAME=V1"),
                         ("hidden=8;hidden=16", "more than once"), ("hidden=8,8", "repeats a value")):
        with pytest.raises(ValueError, match=message):
            parse_selection_grid(bad)


def _unit(model, run, setting):
    from negtransfer.models.catalogue import default_catalogue

    spec = next(s for s in default_catalogue().specs() if s.name == model and "table" in s.data_kinds)
    return _Unit(spec, None, run, None, FitOptions(), 1, setting)


def _value(val_auroc, test, seconds=1.0):
    return {"metrics": {"auroc": {"average": test}, "val_auroc": {"average": val_auroc}}, "seconds": seconds}


def test_the_choice_is_the_best_validation_auroc_never_the_test_ties_to_the_first():
    small, large = (("hidden", 8),), (("hidden", 16),)
    units = [_unit("stl", 0, small), _unit("stl", 0, large), _unit("mtl", 0, small), _unit("mtl", 0, large),
             _unit("stl", 1, small), _unit("stl", 1, large)]
    values = [_value(0.6, 0.9), _value(0.7, 0.1),  # stl run 0: the higher validation AUROC, whatever the test
              _value(0.8, 0.5), _value(0.8, 0.6),  # mtl run 0: a tie goes to the first setting of the grid
              _value(float("nan"), 0.9, 2.0), _value(0.55, 0.4, 3.0)]  # NaN is never chosen over a number
    kept, kept_values, selection = select_on_validation(units, values, 0, (("hidden", (8, 16)),))
    assert [(u.spec.name, u.seed, u.model_options) for u in kept] == [("stl", 0, large), ("mtl", 0, small),
                                                                      ("stl", 1, large)]
    assert [v["metrics"]["auroc"]["average"] for v in kept_values] == [0.1, 0.5, 0.4]
    assert [v["seconds"] for v in kept_values] == [2.0, 2.0, 5.0]  # every setting's training time
    assert selection.chosen == {"stl": {"0": "hidden=16", "1": "hidden=16"}, "mtl": {"0": "hidden=8"}}
    assert sum(c.chosen for c in selection.candidates) == 3 and len(selection.candidates) == 6
    assert list(selection.to_json()) == ["metric", "grid", "chosen", "candidates"]
    assert selection.to_json()["candidates"][1] == {
        "model": "stl", "run": 0, "setting": "hidden=16", "options": {"hidden": 16}, "chosen": True,
        "seconds": 1.0, "metrics": {"auroc": {"average": 0.1}, "val_auroc": {"average": 0.7}}}


def test_selection_trains_every_setting_and_reports_the_chosen_ones(tmp_path):
    fit = FitOptions(epochs=3, patience=2, settings={"mc_samples": 2})
    options = CompareOptions(("stl", "mtl", "p-amtl"), runs=2, fit=fit,
                             select_on_validation=parse_selection_grid("hidden=4,8;dropout=0.1"))
    store = RunStore(tmp_path / "s.sqlite")
    report = run_compare(tiny_table, "tiny-table", options, 0, store)
    assert (report.trained, report.reused) == (12, 0)  # 3 models x 2 runs x 2 settings
    csv_path, md_path, json_path = write_compare_outputs(report, tmp_path / "out")
    candidates = pd.read_csv(tmp_path / "out" / "selection.csv")
    assert set(candidates["setting"]) == {"hidden=4,dropout=0.1", "hidden=8,dropout=0.1"}
    val = candidates[(candidates.metric == "val_auroc") & (candidates.task == "average")]
    results = pd.read_csv(csv_path)
    for (model, run), rows in val.groupby(["model", "run"]):
        best = rows.loc[rows["value"].idxmax()]
        assert bool(best["chosen"]) and report.selection.chosen[model][str(run)] == best["setting"]
        # the model's rows of results.csv are the chosen setting's, test and validation
        chosen = candidates[(candidates.model == model) & (candidates.run == run) & candidates.chosen]
        for metric in ("auroc", "val_auroc", "val_loss"):
            kept = results[(results.model == model) & (results.run == run) & (results.metric == metric)]
            expected = chosen[chosen.metric == metric].set_index("task")["value"]
            assert np.allclose(kept.set_index("task")["value"].loc[expected.index], expected, equal_nan=True)
    fixed = report.setting_rows("hidden=4,dropout=0.1", " [4]")
    assert len(fixed) == 3 * 2 * 3 * 3 and {r["model"] for r in fixed} == {"stl [4]", "mtl [4]", "p-amtl [4]"}
    text = md_path.read_text()
    assert "## Settings chosen on validation" in text and "| p-amtl |" in text and "hidden = 4, 8" in text
    assert '"selection"' in json_path.read_text()
    again = run_compare(tiny_table, "tiny-table", options, 0, store)
    assert (again.trained, again.reused) == (0, 12) and again.rows == report.rows


def test_selection_refuses_options_a_model_cannot_take_and_families_without_validation(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="'stl' does not take the option.*n_heads"):
        run_compare(tiny_table, "t", CompareOptions(("stl",), runs=1, select_on_validation=(("n_heads", (2,)),)),
                    0, store)
    with pytest.raises(ValueError, match="'p-amtl' with options .*hidden"):
        run_compare(tiny_table, "t", CompareOptions(("p-amtl",), runs=1, select_on_validation=(("hidden", (0,)),)),
                    0, store)
    with pytest.raises(ValueError, match="'bmtl' \\(vmtl family\\) cannot have options chosen on validation"):
        run_compare(tiny_domains, "d", CompareOptions(("bmtl",), runs=1, select_on_validation=(("hidden", (8,)),)),
                    0, store)
    assert store.count() == 0  # refused before any training


def test_cli_select_on_validation_errors_in_one_line(tmp_path):
    res = runner.invoke(app, ["compare", "--dataset", "mnist-variation", "--models", "stl", "--runs", "1",
                              "--select-on-validation", "hidden", "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code != 0 and "error: --select-on-validation: 'hidden' is not NAME=V1,V2" in res.output


def test_validation_metrics_are_the_kept_checkpoints_and_leave_the_test_auroc_unchanged():
    from negtransfer.models.clinical import train_and_evaluate, train_and_score
    from negtransfer.train.temporal import TemporalTrainConfig, evaluate_auroc, evaluate_split, fit

    data = tiny_table()
    config = TemporalTrainConfig(max_epochs=3, patience=2, mc_samples=3)
    metrics = train_and_evaluate("p-amtl", data, 1, config, {"hidden": 8})
    assert set(metrics) == {"auroc", "val_auroc", "val_loss"} and set(metrics["val_loss"]) == {"a", "b"}
    assert metrics["auroc"] == train_and_score("p-amtl", data, 1, config, {"hidden": 8})
    # the same numbers as the model trained and scored by hand (test first, then validation)
    from negtransfer.models.clinical import build_model

    torch.manual_seed(1)
    trained = fit(build_model("p-amtl", 6, 2, hidden=8), data, config=config, seed=1)
    assert metrics["auroc"] == evaluate_auroc(trained, data, "test", mc_samples=3, seed=1)
    validation = evaluate_split(trained, data, "validation", mc_samples=3, seed=1)
    assert metrics["val_auroc"] == validation["auroc"] and metrics["val_loss"] == validation["loss"]
    # on the test split evaluate_split's AUROC is evaluate_auroc's, and its loss the mean BCE of those predictions
    test = evaluate_split(trained, data, "test", mc_samples=3, seed=1)
    assert test["auroc"] == metrics["auroc"]
    for loss in test["loss"].values():
        assert 0 < loss < 5 and not math.isnan(loss)


def test_cli_selects_on_validation_and_says_what_each_run_chose(tmp_path, monkeypatch):
    import negtransfer.data.builtin as builtin

    monkeypatch.setattr(builtin, "load_builtin", lambda name, seed=0, **kw: tiny_table(seed))
    out = tmp_path / "o"
    res = runner.invoke(app, ["compare", "--dataset", "mnist-variation", "--models", "stl,p-amtl", "--runs", "1",
                              "--epochs", "2", "--set", "mc_samples=2", "--select-on-validation",
                              "hidden=4,8", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "p-amtl: chosen on validation, per run: hidden=" in res.output
    assert (out / "selection.csv").exists() and "## Settings chosen on validation" in (out / "report.md").read_text()
