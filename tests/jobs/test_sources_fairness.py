"""The source-selection job's fairness figures (``--group-attribute``): the final models' test predictions come from
runs through the run store (kind TEST_PREDICTIONS), so a rerun trains nothing, and the figures are those of the
stored models."""

from __future__ import annotations

import numpy as np
import pytest

from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.jobs.sources import SourceOptions, fairness_by_method, run_sources, source_training_config
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

OPTIONS = dict(target="task0", alpha=2, n_subsets=10, holdout=0, repeats=2, affinity_baseline=False,
               exhaustive_pairs="off", group_attribute="sex")


@pytest.fixture
def with_sex(task_column_frame):
    from negtransfer.data.social import dataset_with_attributes

    planted = make_synthetic_tasks(n_tasks=5, n_clusters=2, task_kind="binary", layout="per-task-rows",
                                   n_samples=240, seed=3)
    frame = task_column_frame(planted)
    frame["sex"] = np.where(np.arange(len(frame)) % 3 == 0, "f", "m")
    return dataset_with_attributes(frame, ["sex"], task_column="state", label_column="vote",
                                   features=list(planted.feature_names), seed=0)


def test_fairness_runs_go_through_the_store_and_a_rerun_trains_nothing(with_sex, tmp_path, monkeypatch):
    import negtransfer.runs.executors as executors
    import negtransfer.train.batched as batched

    store = RunStore(tmp_path / "s.sqlite")
    cfg = TrainConfig(max_epochs=4)
    first = run_sources(with_sex, SourceOptions(**OPTIONS), cfg, 0, store)
    assert set(first.fairness) == {"attribute", *first.methods}
    # the plan counts them among the runs known later: one per method (selected, STL, all sources, pairwise top-m)
    plain = run_sources(with_sex, SourceOptions(**{**OPTIONS, "group_attribute": None}), cfg, 0,
                        RunStore(tmp_path / "t.sqlite"))
    assert first.plan.later_at_most - plain.plan.later_at_most == 4 * 2

    def no_training(*args, **kwargs):
        raise AssertionError("a rerun trained a run")

    monkeypatch.setattr(executors, "train_group_models", no_training)
    monkeypatch.setattr(batched, "train_group_models", no_training)
    again = run_sources(with_sex, SourceOptions(**OPTIONS), cfg, 0, store)
    assert again.fairness == first.fairness


def test_the_figures_are_those_of_the_stored_models_trained_in_one_stack(with_sex, tmp_path):
    """The predictions of the runs one by one equal those of every final model trained again in one stack (what
    the job did before its fairness runs went through the store)."""
    from negtransfer.runs.runner import ensure_runs
    from negtransfer.train.batched import train_group_models

    store = RunStore(tmp_path / "s.sqlite")
    cfg = TrainConfig(max_epochs=4)
    report = run_sources(with_sex, SourceOptions(**OPTIONS), cfg, 0, store)
    t = with_sex.task_names.index("task0")
    methods = {key: tuple(sorted([t] + [with_sex.task_names.index(s) for s in names]))
               for key, names in report.methods.items()}
    train_config = source_training_config(cfg, with_sex, t, "parity")
    groups = list(dict.fromkeys(methods.values()))
    results = {g: ensure_runs(with_sex, [g], train_config, 0, store, repeats=2)[g] for g in groups}
    runs = [(g, r) for g in groups for r in range(2)]
    stacked = train_group_models(with_sex, [g for g, _ in runs], train_config, 0, repeats=[r for _, r in runs],
                                 keep_test_predictions=True)
    predictions = {run: {"test_loss": res.test_loss[t], "test_rows": res.extra["test_rows"][t],
                         "test_prediction": res.extra["test_prediction"][t]}
                   for run, res in zip(runs, stacked, strict=True)}
    assert fairness_by_method(with_sex, t, methods, "sex", results, predictions) == report.fairness
    stale = {**predictions, runs[0]: {**predictions[runs[0]], "test_loss": predictions[runs[0]]["test_loss"] + 1}}
    with pytest.raises(RuntimeError, match="differs from its stored run"):
        fairness_by_method(with_sex, t, methods, "sex", results, stale)
