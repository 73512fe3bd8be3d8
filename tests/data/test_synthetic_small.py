"""make_small_tasks: issue 25's small tasks, their planted clusters, input scales and split (fast checks)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from negtransfer.data.build import DataError
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION
from negtransfer.data.synthetic import SMALL_TASKS_V2_ANGLE, make_small_tasks


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


# ---- version 2 (``task_angle``): each task's direction tilted from its cluster's ----------------------------------

def _projection_nearest_neighbour_accuracy(ds, task: int, direction) -> float:
    """Leave-one-out accuracy of ``task``'s labels predicted by the label of the row nearest along ``direction``
    (the labels are a function of one projection: along the task's own direction this is near 1)."""
    rows = _rows(ds, task)
    order = np.argsort(ds.X[rows] @ np.asarray(direction))
    projected, labels = (ds.X[rows] @ np.asarray(direction))[order], ds.Y[rows, task][order]
    gaps = np.diff(projected)
    left_nearer = np.r_[np.inf, gaps] < np.r_[gaps, np.inf]
    predicted = np.where(left_nearer, np.r_[labels[1], labels[:-1]], np.r_[labels[1:], labels[-2]])
    return float((predicted == labels).mean())


@pytest.fixture(scope="module")
def tilted():
    return make_small_tasks(0, task_angle=SMALL_TASKS_V2_ANGLE)


def test_task_angle_zero_is_todays_generator(small):
    same = make_small_tasks(0, task_angle=0.0)
    assert np.array_equal(same.X, small.X) and np.array_equal(same.Y, small.Y, equal_nan=True)
    assert np.array_equal(same.split, small.split) and same.info == small.info
    assert "task_directions" not in small.info["planted"]
    # version 1's data as they were before task_angle existed (commit 422ca0d): labels and split bit for bit
    digest = hashlib.sha256(np.nan_to_num(small.Y, nan=-1).tobytes() + small.split.tobytes()).hexdigest()
    assert digest[:16] == "ff44a9b931622396"
    np.testing.assert_allclose(small.X[0, :3], [1.5446504354476929, 1.4517645835876465, 1.0452772378921509])


def test_tilted_tasks_keep_todays_clusters_and_input_scales(small, tilted):
    # the inputs are drawn as today's; the split (stratified by label) and so the standardised X differ a little
    assert tilted.info["clusters"] == small.info["clusters"]
    assert tilted.info["planted"]["scales"] == small.info["planted"]["scales"]
    assert np.allclose(tilted.X, small.X, atol=0.1)
    assert not np.array_equal(tilted.Y, small.Y, equal_nan=True)  # the labels follow the tilted directions
    assert tilted.info["planted"]["task_angle"] == SMALL_TASKS_V2_ANGLE


def test_tilted_tasks_of_a_cluster_disagree_on_a_few_rows(tilted):
    """Weaker positive transfer: two tasks of a cluster are 2-6 degrees apart (each 3 from the cluster's
    direction), and a task's labels read along its cluster-mate's direction are 2-5% less predictable than along
    its own (measured at seed 0: 0.99-1.00 against 0.95-0.97); another cluster's direction predicts them at
    chance."""
    clusters, names = np.array(tilted.info["clusters"]), tilted.task_names
    directions = {name: np.array(w) for name, w in tilted.info["planted"]["task_directions"].items()}
    for c in range(3):
        a, b = np.flatnonzero(clusters == c)[:2]
        wa, wb = directions[names[a]], directions[names[b]]
        assert np.linalg.norm(wa) == pytest.approx(1.0) and 0.5 < np.degrees(np.arccos(wa @ wb)) < 6.01
        own, mate = (_projection_nearest_neighbour_accuracy(tilted, a, w) for w in (wa, wb))
        assert own > 0.98 and 0.9 < mate < own - 0.01, (c, own, mate)
    a, other = np.flatnonzero(clusters == 0)[0], np.flatnonzero(clusters == 1)[0]
    assert _projection_nearest_neighbour_accuracy(tilted, a, directions[names[other]]) < 0.65


def test_bad_task_angle():
    with pytest.raises(DataError, match="task_angle"):
        make_small_tasks(0, n_tasks=4, n_samples=100, task_angle=-1.0)
    with pytest.raises(DataError, match="task_angle"):
        make_small_tasks(0, n_tasks=4, n_samples=100, n_features=1, n_clusters=1, task_angle=SMALL_TASKS_V2_ANGLE)
