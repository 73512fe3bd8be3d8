"""Issue 25's small tasks: where choosing on validation rows misleads, the audit keeps the recommendation at or
below STL on test.

The data are built like the benchmark's ``small-tasks`` (:func:`negtransfer.data.synthetic.make_small_tasks`),
from generator seeds the benchmark's held-out instance (``small-tasks-heldout``, seeds 1000+) never uses.
"""

from __future__ import annotations

import pytest

from negtransfer.data.synthetic import SMALL_TASKS_V2_ANGLE, make_small_tasks
from negtransfer.jobs.grouping import GroupingOptions, run_grouping
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig


def _reports(ds, options: GroupingOptions, config: TrainConfig, seed: int, tmp_path):
    """The job's report (job seed ``seed``) without audit rows and with 20% of the non-test rows held back as
    audit rows."""
    store = RunStore(tmp_path / "runs.sqlite")
    plain = run_grouping(ds, options, config, seed, store).report
    audited = run_grouping(ds, GroupingOptions(**{**options.__dict__, "audit": 0.2}), config, seed, store).report
    return plain, audited


def _recommended_vs_stl(report) -> float:
    totals = report.totals
    return totals[report.comparison.recommendation] / totals["stl"] - 1


def test_small_tasks_look_like_the_issue():
    ds = make_small_tasks(0)
    assert ds.n_tasks == 10 and ds.row_task is not None
    assert set(ds.summary()["labels_per_task"].values()) == {1000}
    assert all(task.kind == "binary" for task in ds.tasks)


def test_fast_variant_audit_keeps_the_recommendation_at_or_below_stl(tmp_path):
    """Four tasks (two planted clusters), a short training: the recommendation is decided on the audit rows, and
    its test total is at or below STL's (measured: the all-task model, 28% below, at 10 epochs; at 20 epochs the
    chosen groups, 37% below, in twice the time)."""
    ds = make_small_tasks(2, n_tasks=4, n_clusters=2)
    options = GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=1, audit=0.2)
    report = run_grouping(ds, options, TrainConfig(max_epochs=10), 0, RunStore(tmp_path / "runs.sqlite")).report
    comparison = report.comparison
    assert comparison.decided_on == "audit" and comparison.rows > 0
    assert _recommended_vs_stl(report) <= 0


@pytest.mark.slow  # about 5 min on the shared, loaded 2-core machine (measured): two default grouping jobs
def test_audit_recommends_at_or_below_stl_where_validation_misleads(tmp_path):
    """Generator and job seed 1, the job's defaults at B = 3: the choice on validation rows is 7.4% above STL on test
    (measured 2026-12-07); with 20% audit rows the recommendation falls back to STL."""
    ds = make_small_tasks(1)
    plain, audited = _reports(ds, GroupingOptions(budget=3), TrainConfig(), 1, tmp_path)
    assert plain.totals["selected"] > 1.05 * plain.totals["stl"]
    assert plain.comparison.recommendation == "selected"  # today's verdict keeps it
    assert audited.comparison.decided_on == "audit" and audited.comparison.rows > 0
    assert _recommended_vs_stl(audited) <= 0


@pytest.mark.slow  # two grouping jobs (3 repeats; 5 folds x 1 repeat): 10-14 min on the loaded 2-core machine
def test_cross_validated_gains_recommend_at_or_below_stl_where_validation_misleads_version_2(tmp_path):
    """Version 2 of the generator (``task_angle=3``: each task tilted from its cluster's direction), generator and
    job seed 1, B = 3. The default job is misled: its choice is 10.0% above STL on test (measured 2026-12-07; the
    best grouping by validation losses over the groups it measured too, while one 14% below STL is among them).
    With cross-validated gains (5 folds, 1 repeat; the remedy that measured best on the dev seeds 0-2: below its
    STL at all three, where ``--audit 0.2`` was not at seed 1) the recommendation is 10.9% below STL on test."""
    ds = make_small_tasks(1, task_angle=SMALL_TASKS_V2_ANGLE)
    store = RunStore(tmp_path / "runs.sqlite")
    plain = run_grouping(ds, GroupingOptions(budget=3), TrainConfig(), 1, store).report
    assert plain.totals["selected"] > 1.05 * plain.totals["stl"]
    assert plain.comparison.recommendation == "selected"  # the verdict on validation rows keeps it
    crossed = run_grouping(ds, GroupingOptions(budget=3, folds=5, repeats=1), TrainConfig(), 1, store).report
    assert _recommended_vs_stl(crossed) <= 0
