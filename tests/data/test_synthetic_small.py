"""make_small_tasks: issue 25's small tasks, their planted clusters, input scales and split (fast checks)."""

from __future__ import annotations

import numpy as np
import pytest

from negtransfer.data.build import DataError
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION
from negtransfer.data.synthetic import make_small_tasks


@pytest.fixture(scope="module")
def small():
    return make_small_tasks(0)


def _rows(ds, task: int) -> np.ndarray:
    return np.flatnonzero(ds.row_task == task)


def test_ten_binary_tasks_of_1000_rows_with_few_validation_rows(small):
    assert small.n_tasks == 10 and small.row_task is not None and small.X.shape == (10000, 6)
    assert set(small.summary()["labels_per_task"].values()) == {1000}
    assert all(task.kind == "binary" for task in small.tasks)
    for t in range(10):
        split = small.split[_rows(small, t)]
        counts = [int((split == code).sum()) for code in (TRAIN, VALIDATION, TEST)]
        assert abs(counts[0] - 750) <= 5 and abs(counts[1] - 50) <= 5 and abs(counts[2] - 200) <= 5, counts
        labels = small.Y[_rows(small, t), t]
        assert 0.15 < labels.mean() < 0.85  # both classes common


def test_three_planted_clusters_with_inputs_on_different_scales(small):
    clusters = np.array(small.info["clusters"])
    assert sorted(np.bincount(clusters).tolist()) == [3, 3, 4]
    scale = [small.X[np.isin(small.row_task, np.flatnonzero(clusters == c))].std() for c in range(3)]
    assert scale[1] / scale[0] == pytest.approx(2.0, rel=0.1) and scale[2] / scale[1] == pytest.approx(2.0, rel=0.1)
    assert small.info["planted"]["scales"] == pytest.approx([0.5, 1.0, 2.0])


def _nearest_neighbour_accuracy(ds, source: int, target: int, scale: float) -> float:
    """Accuracy of ``target``'s labels predicted by the 5 nearest rows of ``source`` (inputs of ``target`` scaled
    by ``scale`` first, to undo a difference of input scales)."""
    xs, ys = ds.X[_rows(ds, source)], ds.Y[_rows(ds, source), source]
    xt, yt = ds.X[_rows(ds, target)] * scale, ds.Y[_rows(ds, target), target]
    distances = ((xt[:, None, :] - xs[None, :, :]) ** 2).sum(axis=2)
    nearest = np.argsort(distances, axis=1)[:, :5]
    return float(((ys[nearest].mean(axis=1) > 0.5) == (yt > 0.5)).mean())


def test_tasks_of_a_cluster_share_one_function_and_clusters_differ(small):
    clusters = np.array(small.info["clusters"])
    scales = small.info["planted"]["scales"]
    for c in range(3):
        a, b = np.flatnonzero(clusters == c)[:2]
        assert _nearest_neighbour_accuracy(small, a, b, 1.0) > 0.8  # measured 0.87-0.90 (seed 0)
    a, b = np.flatnonzero(clusters == 0)[0], np.flatnonzero(clusters == 2)[0]
    # even with the input scale undone, another cluster's labels are far from its function
    assert _nearest_neighbour_accuracy(small, b, a, scales[2] / scales[0]) < 0.65  # measured 0.53: chance


def test_seeded_and_options():
    a, b = make_small_tasks(3, n_tasks=4, n_samples=200), make_small_tasks(3, n_tasks=4, n_samples=200)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.Y, b.Y, equal_nan=True)
    assert not np.array_equal(a.X, make_small_tasks(4, n_tasks=4, n_samples=200).X)
    one = make_small_tasks(0, n_tasks=4, n_samples=200, n_clusters=2, scale_ratio=1.0, n_features=3)
    assert one.X.shape == (800, 3) and sorted(np.bincount(one.info["clusters"]).tolist()) == [2, 2]
    assert make_small_tasks(0, n_tasks=8, n_samples=100, n_clusters=8, n_features=3).n_tasks == 8


@pytest.mark.parametrize("kwargs, message", [
    ({"scale_ratio": 0.5}, "scale_ratio"),
    ({"n_samples": 0}, "n_samples"),
    ({"n_clusters": 11}, "n_clusters"),
    ({"noise": -1.0}, "noise"),
])
def test_bad_options(kwargs, message):
    with pytest.raises(DataError, match=message):
        make_small_tasks(0, **kwargs)
