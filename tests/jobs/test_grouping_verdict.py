"""The grouping report's verdict sentence against the alternatives it names."""

import warnings

import numpy as np
import pandas as pd

import negtransfer


def test_the_all_task_verdict_is_not_given_where_stl_is_the_better_alternative():
    """With a budget of every task, STL is an alternative too: where it beats the chosen all-task grouping the
    verdict says so, not that 'the chosen grouping is the all-task model itself' (review finding)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    frame = pd.DataFrame(X, columns=["x1", "x2", "x3"])
    frame["a"] = (X[:, 0] + rng.normal(0, 1, 120) > 0).astype(int)
    frame["b"] = (X[:, 1] + rng.normal(0, 1, 120) > 0).astype(int)
    frame["c"] = X[:, 2] * 2 + rng.normal(0, 1, 120)  # not a task here: a feature
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = negtransfer.group(frame, tasks=["a", "b"], budget=2, seed=1, repeats=1, max_epochs=3,
                                   objective="metric")
    assert [tuple(g) for g in report.selected_groups] == [("a", "b")]  # the all-task grouping was chosen
    assert report.comparison.recommendation == "stl"
    assert "itself" not in report.comparison.verdict and "STL" in report.comparison.verdict
