"""The gradient-surgery rows of ``compare-grouping`` train and score as the grouping jobs do (issue 25):
the same audit rows held back, the same folds, the references read from the grouping jobs' own runs."""

from dataclasses import replace

import numpy as np
import pytest

from negtransfer.data.dataset import AUDIT
from negtransfer.data.folds import fold_dataset
from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.data.task_sets import TaskSet
from negtransfer.jobs.grouping import GroupingOptions
from negtransfer.jobs.grouping_comparison import compare_grouping_methods, surgery_training_rows
from negtransfer.runs.store import RunStore
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig

CONFIG = TrainConfig(max_epochs=3)
PCGRAD = replace(CONFIG, gradient_aggregation="pcgrad")


def _data():
    return make_synthetic_tasks(n_tasks=3, n_clusters=2, n_samples=120, seed=1)


def _compare(data, options, store, methods, surgery=("pcgrad",)):
    return compare_grouping_methods(lambda seed: data, methods, [2], [0], options, CONFIG, lambda seed: store,
                                    surgery=surgery)


def _summed_test_loss(data, repeat: int) -> float:
    """The summed test loss of the PCGrad all-task model trained alone on ``data`` (no run store)."""
    model = train_group_models(data, [TaskSet.all_tasks(data.n_tasks)], PCGRAD, 0, repeats=[repeat])[0]
    return float(sum(model.test_loss.values()))


def test_with_an_audit_the_surgery_row_reads_the_grouping_jobs_references_and_never_trains_the_audit_rows(tmp_path):
    data = _data()
    options = GroupingOptions(budget=2, n_train_groups=2, repeats=2, rounds=1, audit=0.25)
    store = RunStore(tmp_path / "s.sqlite")
    (alone,) = _compare(data, options, store, ["etap"], surgery=())
    before = store.count()
    grouping, surgery = _compare(data, options, store, ["etap"])
    assert grouping.selected == alone.selected  # the grouping job itself is unchanged by the surgery row
    # its STL and all-task references are the grouping job's own runs (audit rows held back), read, not trained:
    # the store gained the PCGrad runs only
    assert (surgery.stl, surgery.all_tasks) == (grouping.stl, grouping.all_tasks)
    assert store.count() == before + options.repeats and surgery.runs == options.repeats
    audited = data.with_audit(0.25)
    assert (audited.split == AUDIT).sum() > 0
    expected = np.mean([_summed_test_loss(audited, r) for r in range(2)])
    assert surgery.selected == pytest.approx(expected, rel=1e-12)
    # the plain split (every non-test row trains) gives another model: the row is not that one
    assert surgery.selected != pytest.approx(np.mean([_summed_test_loss(data, r) for r in range(2)]), rel=1e-9)
    assert surgery.vs_all == pytest.approx(surgery.selected / grouping.all_tasks - 1)


def test_with_two_folds_the_surgery_row_is_the_mean_of_the_folds_test_totals(tmp_path):
    data = _data()
    options = GroupingOptions(budget=2, n_train_groups=2, repeats=1, rounds=1, folds=2)
    grouping, surgery = _compare(data, options, RunStore(tmp_path / "f.sqlite"), ["hoa"])
    per_fold = [_summed_test_loss(fold_dataset(data, 2, f), 0) for f in range(2)]
    assert per_fold[0] != per_fold[1]  # two models: each fold's own training rows
    assert surgery.selected == pytest.approx(np.mean(per_fold), rel=1e-12)
    assert surgery.selected != pytest.approx(_summed_test_loss(data, 0), rel=1e-9)  # not the one split's model
    assert (surgery.stl, surgery.all_tasks) == (grouping.stl, grouping.all_tasks) and surgery.runs == 2


def test_the_report_text_counts_the_rows_the_surgery_rows_trained_on():
    data = _data()
    text = surgery_training_rows(data, GroupingOptions(folds=2, audit=0.25, repeats=3), seed=0)
    audited = data.with_audit(0.25)
    held = int((audited.split == AUDIT).sum())
    assert f"the {held:,} audit rows (--audit 0.25) are held back from every run" in text
    assert "each of 2 folds" in text and "6 runs (3 repeat(s) x 2 folds)" in text and "seed 0's split" in text
    one = surgery_training_rows(data, GroupingOptions(repeats=2, audit=0.25), seed=4)
    assert "they train on the split's" in one and "mean over 2 repeat(s)" in one and "audit rows" in one
