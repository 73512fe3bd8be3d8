"""Issue 25's small tasks: where choosing on validation rows misleads, the audit keeps the recommendation at or
below STL on test.

The data are built like the benchmark's ``small-tasks`` (:func:`negtransfer.data.synthetic.make_small_tasks`),
from generator seeds the benchmark's held-out instance (``small-tasks-heldout``, seeds 1000+) never uses.
"""

from __future__ import annotations

import pytest

from negtransfer.data.synthetic import make_small_tasks
from negtransfer.jobs.grouping import GroupingOptions, run_grouping
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig


def _reports(ds, options: GroupingOptions, config: TrainConfig, tmp_path):
    """The job's report without audit rows and with 20% of the non-test rows held back as audit rows."""
    store = RunStore(tmp_path / "runs.sqlite")
    plain = run_grouping(ds, options, config, 0, store).report
    audited = run_grouping(ds, GroupingOptions(**{**options.__dict__, "audit": 0.2}), config, 0, store).report
    return plain, audited


def _recommended_vs_stl(report) -> float:
    totals = report.totals
    return totals[report.comparison.recommendation] / totals["stl"] - 1


def test_small_tasks_look_like_the_issue():
    ds = make_small_tasks(0)
    assert ds.n_tasks == 10 and ds.row_task is not None
    assert set(ds.summary()["labels_per_task"].values()) == {1000}
    assert all(task.kind == "binary" for task in ds.tasks)


def test_fast_variant_audit_falls_back_at_or_below_stl(tmp_path):
    """Four tasks (two planted clusters), a short training: the chosen groups do not beat the all-task model on the
    audit rows, so it is recommended, and it is below STL on test (the fallback path; about 10 s)."""
    ds = make_small_tasks(2, n_tasks=4, n_clusters=2)
    options = GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=1, audit=0.2)
    report = run_grouping(ds, options, TrainConfig(max_epochs=20), 0, RunStore(tmp_path / "runs.sqlite")).report
    comparison = report.comparison
    assert comparison.decided_on == "audit" and comparison.recommendation == "all_tasks"
    assert not comparison.better_than_alternatives and "recommended: the all-task model" in comparison.verdict
    assert _recommended_vs_stl(report) <= 0


@pytest.mark.slow  # about 30-60 s on 2 cores (two grouping jobs of six tasks)
def test_audit_recommends_at_or_below_stl_where_validation_misleads(tmp_path):
    """Six tasks of 1000 rows: the choice on validation rows is 26% above STL on test (measured 2026-12-07); with
    audit rows the recommendation falls back to STL."""
    ds = make_small_tasks(1, n_tasks=6)
    plain, audited = _reports(ds, GroupingOptions(budget=2, n_train_groups=5, repeats=2, rounds=1),
                              TrainConfig(max_epochs=40), tmp_path)
    assert plain.totals["selected"] > 1.1 * plain.totals["stl"]
    assert plain.comparison.recommendation == "selected"  # today's verdict keeps it
    assert audited.comparison.decided_on == "audit" and audited.comparison.rows > 0
    assert _recommended_vs_stl(audited) <= 0
