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


def test_the_split_check_takes_data_without_a_test_split():
    """A dataset with test fraction 0 (legitimate for the data layer) passes the labelled-splits check, as it ran
    before the check existed (review finding)."""
    from negtransfer.data.arrays import dataset_from_arrays
    from negtransfer.jobs.grouping import GroupingOptions, check_labelled_splits

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 0] + X[:, 2] > 0], 1).astype(float)
    check_labelled_splits(dataset_from_arrays(X, Y, task_names=["a", "b", "c"], fractions=(0.8, 0.2, 0.0)),
                          GroupingOptions(budget=2))


def test_whole_floats_are_whole_numbers_for_every_options_class():
    """repeats=1.0 trained on main for group and sources: one rule with TrainConfig's patience=5.0."""
    from negtransfer.jobs.gains import GainsOptions
    from negtransfer.jobs.grouping import GroupingOptions
    from negtransfer.jobs.sources import SourceOptions

    assert type(GroupingOptions(repeats=1.0, n_train_groups=2.0).repeats) is int
    assert type(SourceOptions(target="a", repeats=1.0).repeats) is int
    assert type(GainsOptions(repeats=2.0).repeats) is int
    assert GroupingOptions(kappa=1.0).kappa == 1.0 and type(GroupingOptions(kappa=1.0).kappa) is float
