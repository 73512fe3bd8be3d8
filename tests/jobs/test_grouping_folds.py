"""Cross-validated gains (GroupingOptions.folds / --folds): runs over (repeat, fold), their means, the split noise."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from negtransfer.cli import app
from negtransfer.data.folds import fold_dataset, fold_parts
from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.gains.noise import fold_gains, split_noise
from negtransfer.gains.table import repeat_gains
from negtransfer.jobs.grouping import GroupingOptions, run_grouping
from negtransfer.jobs.grouping_report import GroupingReport
from negtransfer.runs.store import RunStore
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig


@pytest.fixture(scope="module")
def folded_job(tmp_path_factory):
    ds = make_synthetic_tasks(n_tasks=4, n_clusters=2, n_samples=200, seed=3)
    store = RunStore(tmp_path_factory.mktemp("folds") / "s.sqlite")
    cfg = TrainConfig(max_epochs=6)
    opts = GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=2, folds=3)
    return ds, store, cfg, opts, run_grouping(ds, opts, cfg, 0, store)


def test_a_groups_runs_are_its_repeats_on_every_fold_each_the_model_of_that_folds_split(folded_job):
    ds, _, cfg, opts, job = folded_job
    assert all(res.repeats == 2 * 3 for res in job.results.values())
    group = max(job.results, key=len)
    res = job.results[group]
    for r in range(2):
        for f in range(3):
            alone = train_group_models(fold_dataset(ds, 3, f), [group], cfg, 0, repeats=[r])[0]
            run = res.runs[r * 3 + f]  # repeat-major
            assert run.repeat == r
            assert run.val_loss == alone.val_loss and run.test_loss == alone.test_loss  # exactly
    # every mean is over folds and repeats
    t = group[0]
    assert res.val_loss[t] == pytest.approx(np.mean([run.val_loss[t] for run in res.runs]))


def test_gains_pair_each_repeat_and_fold_with_the_stl_run_of_the_same_repeat_and_fold(folded_job):
    ds, _, _, _, job = folded_job
    groups = [g for g in job.results if len(g) > 1]
    U, G = repeat_gains(groups, job.results, ds.n_tasks, split="validation")
    assert G.shape == (len(groups), ds.n_tasks, 6)
    g, t = groups[0], groups[0][0]
    stl, mtl = job.results[(t,)], job.results[g]
    expected = [(stl.runs[i].val_loss[t] - mtl.runs[i].val_loss[t]) / stl.runs[i].val_loss[t] for i in range(6)]
    np.testing.assert_allclose(G[0, t], expected, rtol=1e-12)


def test_the_report_states_folds_rows_runs_and_the_split_noise(folded_job):
    ds, store, cfg, opts, job = folded_job
    rep = job.report.to_dict()
    rows = [int((fold_parts(ds, 3) == f).sum()) for f in range(3)]
    assert rep["runs"]["folds"] == 3 and rep["runs"]["validation_rows_per_fold"] == rows
    assert rep["options"]["folds"] == 3
    ref = rep["refinement"]
    assert ref["one_shot_runs"] == opts.grouping_method().one_shot_runs(ds.n_tasks, opts) * 3
    assert ref["runs_used"] == 6 * len(job.results) and ref["runs_vs_one_shot"] <= 3
    assert rep["runs"]["one_split_one_shot"] * 3 == ref["one_shot_runs"]
    assert rep["runs"]["vs_one_split_one_shot"] == pytest.approx(3 * ref["runs_vs_one_shot"])
    split = rep["noise"]["split_noise"]
    assert split["folds"] == 3 and split["validation_rows_per_fold"] == rows
    assert split["verdict"] and "3 folds validating on" in split["verdict"]
    assert split["verdict"] in job.report.noise.verdict and rep["noise"]["verdict"] in job.report.noise.verdict
    as_json = json.loads(json.dumps(rep))
    assert json.loads(json.dumps(GroupingReport.from_dict(as_json).to_dict())) == as_json
    again = run_grouping(ds, opts, cfg, 0, store).report  # everything stored, per fold
    assert again.runs.trained == 0 and again.selected_groups == job.report.selected_groups


def test_split_noise_compares_folds_and_asks_for_folds_without_them():
    rng = np.random.default_rng(0)
    U = np.ones((12, 4), dtype=bool)
    U[:, 0] = rng.random(12) < 0.5
    U[U.sum(axis=1) < 2, 1:3] = True
    signal = rng.normal(size=(12, 4))
    # gains of 2 repeats x 3 folds: the same signal on every fold, little noise: agreement close to 1
    G = signal[:, :, None] + 0.01 * rng.normal(size=(12, 4, 6))
    G[~U] = np.nan
    held = split_noise(U, G, 3, [10, 10, 9])
    assert held["fold_within_task_pearson"] > 0.95 and held["split_reliability"] > 0.95
    assert held["verdict"].startswith("Gains hold across splits")
    # a signal of its own on every fold: no agreement
    per_fold = rng.normal(size=(12, 4, 1, 3)).repeat(2, axis=2).reshape(12, 4, 6)
    per_fold[~U] = np.nan
    assert fold_gains(per_fold, 3).shape == (12, 4, 2, 3)
    lost = split_noise(U, per_fold, 3)
    assert lost["split_reliability"] < 0.5 and lost["verdict"].startswith("Gains are mostly the split's noise")
    one = split_noise(U, G[:, :, :2], 1)
    assert one["split_reliability"] is None and "--folds 3 or more" in one["verdict"]


def test_one_fold_is_the_job_without_folds(tmp_path):
    ds = make_synthetic_tasks(n_tasks=3, n_clusters=2, n_samples=120, seed=1)
    cfg = TrainConfig(max_epochs=3)
    plain = run_grouping(ds, GroupingOptions(budget=2, n_train_groups=2, repeats=2, rounds=1), cfg, 0,
                         RunStore(tmp_path / "a.sqlite")).report.to_dict()
    folded = run_grouping(ds, GroupingOptions(budget=2, n_train_groups=2, repeats=2, rounds=1, folds=1), cfg, 0,
                          RunStore(tmp_path / "b.sqlite")).report.to_dict()
    timing = {"seconds", "timing", "options"}
    assert {k: v for k, v in folded.items() if k not in timing} == {k: v for k, v in plain.items() if k not in timing}
    assert folded["runs"]["folds"] == 1 and "--folds 3 or more" in folded["noise"]["split_noise"]["verdict"]


def test_group_folds_from_the_command_line(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    frame = pd.DataFrame(X, columns=["age", "dose", "bmi"])
    frame["sick"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame["worse"] = (X[:, 0] - X[:, 2] + 0.3 * rng.normal(size=300) > 0).astype(int)
    frame["stay"] = X[:, 1] * 2 + rng.normal(size=300)
    frame.to_csv(tmp_path / "patients.csv", index=False)
    out = tmp_path / "grp"
    common = ["group", "--data", str(tmp_path / "patients.csv"), "--tasks", "sick,worse,stay", "--features",
              "age,dose,bmi",
              "--budget", "2", "--train-groups", "2", "--epochs", "4", "--repeats", "1", "--rounds", "1", "-q"]
    res = CliRunner().invoke(app, [*common, "--folds", "3", "--out", str(out)])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["runs"]["folds"] == 3 and len(rep["runs"]["validation_rows_per_fold"]) == 3
    assert "3 folds validating on" in (out / "report.md").read_text()
    bad = CliRunner().invoke(app, [*common, "--folds", "100000", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "--folds 100000" in bad.output


def test_gains_over_folds_are_means_of_every_repeat_and_folds_paired_gain(tmp_path):
    from negtransfer.jobs.gains import GainsOptions, run_gains

    ds = make_synthetic_tasks(n_tasks=3, n_clusters=2, n_samples=120, seed=1)
    cfg = TrainConfig(max_epochs=3)
    store = RunStore(tmp_path / "g.sqlite")
    report = run_gains(ds, GainsOptions(groups=[ds.task_names[:2]],
                                        repeats=2, folds=3), cfg, 0, store)
    assert report.to_dict()["folds"] == 3 and all(row["repeats"] == 6 for row in report.rows)
    t, group = 0, (0, 1)
    gains = []
    for r in range(2):
        for f in range(3):
            data = fold_dataset(ds, 3, f)
            stl, mtl = train_group_models(data, [(t,), group], cfg, 0, repeats=[r, r])
            gains.append((stl.test_loss[t] - mtl.test_loss[t]) / stl.test_loss[t])
    row = next(row for row in report.rows if row["task"] == ds.task_names[t])
    assert row["gain"] == pytest.approx(np.mean(gains), rel=1e-9)
    assert row["gain_se"] == pytest.approx(np.std(gains, ddof=1) / np.sqrt(6), rel=1e-9)
    with pytest.raises(ValueError, match="--folds must be a positive integer"):
        run_gains(ds, GainsOptions(folds=0), cfg, 0, store)
