"""Examples of any shape (images, sequences) and the .npz data file format."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from negtransfer.data import builtin
from negtransfer.data.arrays import NPZ_ARRAYS, dataset_from_arrays, load_npz
from negtransfer.data.build import DataError
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset, TaskSpec
from negtransfer.data.files import dataset_from_file

#: What the command line passes for --data FILE without table options (cli/options.py DataOptions.loader).
CLI_OPTIONS = dict(features=None, task_column=None, label_column=None, impute=None, task_kinds=None)


def _images(n=120, seed=0, channels=2):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, channels, 4, 5)) * np.array([1.0, 10.0][:channels])[None, :, None, None]
    X += np.array([3.0, -50.0][:channels])[None, :, None, None]
    Y = np.column_stack([rng.integers(0, 2, n), rng.normal(5.0, 2.0, n), rng.integers(0, 3, n)]).astype(float)
    Y[::6, 1] = np.nan
    return X, Y


# ------------------------------------------------------------------ tables stay as they were
def test_table_fingerprints_unchanged(tmp_path):
    """The run store keys runs by the fingerprint: a CSV table (and yeast, pinned in test_builtin) must not move."""
    rng = np.random.default_rng(7)
    n = 60
    frame = pd.DataFrame({"x1": np.round(rng.normal(size=n), 3), "x2": np.round(rng.uniform(size=n), 3),
                          "a": (np.arange(n) % 2), "b": np.round(rng.normal(size=n), 2),
                          "c": np.where(np.arange(n) % 5 == 0, np.nan, np.arange(n) % 3)})
    frame.to_csv(tmp_path / "t.csv", index=False)
    ds = dataset_from_file(tmp_path / "t.csv", tasks=["a", "b", "c"], seed=3)
    assert ds.fingerprint() == "213d68115699e8b3"  # measured before X of any shape existed
    assert ds.input_shape == (2,) and ds.n_features == 2 and ds.feature_axis == 1
    assert "input_shape" not in ds.summary()  # a table's summary is as it was


def test_a_table_from_arrays_equals_the_same_table_from_a_frame():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 3))
    Y = np.column_stack([rng.integers(0, 2, 80), rng.normal(size=80)]).astype(float)
    frame = pd.DataFrame({"f0": X[:, 0], "f1": X[:, 1], "f2": X[:, 2], "a": Y[:, 0], "b": Y[:, 1]})
    from negtransfer.data.build import dataset_from_frame

    table = dataset_from_frame(frame, tasks=["a", "b"], seed=4, name="t")
    arrays = dataset_from_arrays(X, Y, task_names=["a", "b"], seed=4, name="t")
    assert arrays.fingerprint() == table.fingerprint()
    assert builtin.data_kind(arrays) == "table"


def test_per_task_rows_from_arrays_equal_the_same_rows_from_a_frame():
    from negtransfer.data.build import dataset_from_frame

    rng = np.random.default_rng(5)
    n = 120
    X = rng.normal(size=(n, 2))
    school = np.array(["b", "a", "c"])[rng.integers(0, 3, n)]
    y = rng.integers(0, 2, n).astype(float)
    frame = pd.DataFrame({"f0": X[:, 0], "f1": X[:, 1], "school": school, "passed": y})
    table = dataset_from_frame(frame, task_column="school", label_column="passed", seed=2, name="t")
    arrays = dataset_from_arrays(X, y, row_task=school, seed=2, name="t")
    assert arrays.task_names == table.task_names == ("a", "b", "c")
    assert arrays.fingerprint() == table.fingerprint()
    np.testing.assert_array_equal(arrays.row_task, table.row_task)
    assert builtin.data_kind(arrays) == builtin.data_kind(table) == "domains"


# ------------------------------------------------------------------ images and sequences
def test_images_from_an_npz_file(tmp_path):
    X, Y = _images()
    np.savez(tmp_path / "faces.npz", X=X, Y=Y, tasks=np.array(["smile", "age", "hair"]))
    ds = dataset_from_file(tmp_path / "faces.npz", seed=1, **CLI_OPTIONS)
    assert ds.name == "faces" and ds.X.shape == (120, 2, 4, 5) and ds.X.dtype == np.float32
    assert ds.input_shape == (2, 4, 5) and ds.n_features == 40 and ds.feature_axis == 1
    assert builtin.data_kind(ds) == "images" and ds.info["data_kind"] == "images"
    assert [t.kind for t in ds.tasks] == ["binary", "regression", "multiclass"]
    assert ds.task_names == ("smile", "age", "hair") and ds.feature_names == ("f0", "f1")
    assert np.isnan(ds.Y[::6, 1]).all() and ds.summary()["labels_per_task"]["age"] == 100
    # each channel standardised with the training images' pixels (pooled over positions)
    train = ds.X[ds.split == TRAIN]
    np.testing.assert_allclose(train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=(0, 2, 3)), 1, atol=1e-4)
    np.testing.assert_allclose(ds.info["feature_mean"], X[ds.split == TRAIN].mean(axis=(0, 2, 3)), rtol=1e-6)
    assert ds.summary()["input_shape"] == [2, 4, 5]
    # regression targets standardised as in tables; the spec undoes it
    spec = ds.tasks[1]
    np.testing.assert_allclose(ds.Y[:, 1] * spec.target_std + spec.target_mean, Y[:, 1], rtol=1e-5)
    # seeded and deterministic; the shape is part of the fingerprint
    assert dataset_from_file(tmp_path / "faces.npz", seed=1).fingerprint() == ds.fingerprint()
    assert dataset_from_file(tmp_path / "faces.npz", seed=2).fingerprint() != ds.fingerprint()
    flat = dataset_from_arrays(X.reshape(120, 2, 20), Y, task_names=["smile", "age", "hair"], seed=1)
    assert flat.fingerprint() != ds.fingerprint()


def test_sequences_scale_each_feature_over_all_steps():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(90, 6, 3)) * np.array([1.0, 5.0, 0.1]) + np.array([0.0, 100.0, -2.0])
    X[:, :, 2] = 7.0  # a constant feature: std 1, becomes 0
    Y = (X[:, -1, :1] > 0).astype(float)
    ds = dataset_from_arrays(X, Y, feature_names=["speed", "load", "flag"], seed=0, name="s")
    assert builtin.data_kind(ds) == "sequences" and ds.feature_axis == 2 and ds.input_shape == (6, 3)
    train = ds.X[ds.split == TRAIN]
    np.testing.assert_allclose(train[..., :2].mean(axis=(0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(train[..., :2].std(axis=(0, 1)), 1, atol=1e-4)
    assert np.all(ds.X[..., 2] == 0) and ds.info["feature_std"][2] == 1.0
    assert "timesteps" in ds.info["feature_scaling"]
    raw = dataset_from_arrays(X, Y, seed=0, scale="none")
    np.testing.assert_allclose(raw.X, X.astype(np.float32))


def test_any_shape_dataset_subsets_and_train_fraction():
    X, Y = _images()
    ds = dataset_from_arrays(X, Y, task_names=["smile", "age", "hair"], seed=0)
    part = ds.subset_tasks(["hair", "age"])
    assert part.X.shape[1:] == (2, 4, 5) and part.task_names == ("hair", "age")
    np.testing.assert_array_equal(part.X, ds.X)  # every row has a hair label: none dropped
    rows = ds.subset_rows(ds.split == TEST)
    assert rows.X.shape == ((ds.split == TEST).sum(), 2, 4, 5) and (rows.split == TEST).all()
    np.testing.assert_array_equal(ds.subset_rows([3, 1]).X, ds.X[[3, 1]])
    assert ds.subset_rows([3, 1]).tasks == ds.tasks
    with pytest.raises(ValueError, match="row indices must be integers in 0 .. 119"):
        ds.subset_rows([120])
    small = ds.with_train_fraction(0.5, seed=1)
    assert small.X.shape == ds.X.shape and (small.split == TRAIN).sum() == round((ds.split == TRAIN).sum() / 2)


def test_the_dataset_refuses_shapes_it_cannot_hold():
    spec = (TaskSpec("a", "regression"),)
    with pytest.raises(ValueError, match="row axis and at least one more"):
        MultiTaskDataset("x", spec, np.zeros(5), np.zeros((5, 1)), np.zeros(5), ())
    with pytest.raises(ValueError, match=r"name every channel \(axis 1\).*\(5, 3, 2, 2\), 2 names"):
        MultiTaskDataset("x", spec, np.zeros((5, 3, 2, 2)), np.zeros((5, 1)), np.zeros(5), ("r", "g"))
    with pytest.raises(ValueError, match=r"name every feature \(last axis\)"):
        MultiTaskDataset("x", spec, np.zeros((5, 4, 2)), np.zeros((5, 1)), np.zeros(5), ("a", "b", "c", "d"))


# ------------------------------------------------------------------ the npz format
def test_a_given_split_is_kept_exactly(tmp_path):
    X, Y = _images(n=60)
    split = np.array([TRAIN, TRAIN, TRAIN, VALIDATION, TEST] * 12)
    np.savez(tmp_path / "d.npz", X=X, Y=Y, split=split)
    ds = load_npz(tmp_path / "d.npz", seed=5)
    np.testing.assert_array_equal(ds.split, split)
    assert load_npz(tmp_path / "d.npz", seed=6).fingerprint() == ds.fingerprint()  # the seed does not touch it
    assert ds.info["split_rule"].startswith("given") and ds.task_names == ("task0", "task1", "task2")
    # training statistics are those of the given training rows
    np.testing.assert_allclose(ds.info["feature_mean"], X[split == TRAIN].mean(axis=(0, 2, 3)), rtol=1e-6)


def test_per_task_rows_with_names_and_one_label_per_row(tmp_path):
    rng = np.random.default_rng(2)
    n = 150
    X = rng.normal(size=(n, 5, 2))
    row_task = np.array(["north", "south", "east"])[np.arange(n) % 3]
    y = rng.integers(0, 2, n).astype(float)
    np.savez(tmp_path / "stations.npz", X=X, Y=y, row_task=row_task)
    ds = load_npz(tmp_path / "stations.npz", seed=0)
    assert ds.task_names == ("east", "north", "south")  # sorted names without a tasks array
    assert ds.info["layout"] == "per-task-rows" and ds.row_task is not None
    for j, name in enumerate(ds.task_names):
        mine = ds.row_task == j
        np.testing.assert_array_equal(ds.Y[mine, j], y[row_task == name])
        assert np.isnan(np.delete(ds.Y[mine], j, axis=1)).all()
        assert {TRAIN, VALIDATION, TEST} <= set(ds.split[mine].tolist())  # split within each task
    part = load_npz(tmp_path / "stations.npz", tasks=["south", "east"], seed=0)
    assert part.task_names == ("south", "east") and part.X.shape[0] == 100
    assert set(part.row_task.tolist()) == {0, 1}


def test_per_task_rows_with_indices_and_a_label_matrix(tmp_path):
    rng = np.random.default_rng(4)
    n = 90
    row_task = np.arange(n) % 2
    Y = np.full((n, 2), np.nan)
    Y[row_task == 0, 0] = rng.normal(size=45)
    Y[row_task == 1, 1] = rng.integers(0, 2, 45)
    np.savez(tmp_path / "p.npz", X=rng.normal(size=(n, 3)), Y=Y, row_task=row_task, tasks=np.array(["r", "b"]),
             task_kinds=np.array(["regression", ""]))
    ds = load_npz(tmp_path / "p.npz")
    assert [t.kind for t in ds.tasks] == ["regression", "binary"] and ds.info["task_kinds"]["b"] == "binary (inferred)"
    assert builtin.data_kind(ds) == "per-task-rows"
    bad = Y.copy()
    bad[0, 1] = 1.0  # row 0 belongs to task r
    np.savez(tmp_path / "bad.npz", X=rng.normal(size=(n, 3)), Y=bad, row_task=row_task)
    with pytest.raises(DataError, match="row 0 belongs to task 'task0'.*NaN outside each row's own task"):
        load_npz(tmp_path / "bad.npz")


def test_task_kinds_from_the_caller_override_the_file(tmp_path):
    rng = np.random.default_rng(0)
    Y = np.column_stack([rng.integers(0, 4, 80), rng.integers(0, 2, 80)]).astype(float)
    np.savez(tmp_path / "k.npz", X=rng.normal(size=(80, 2)), Y=Y, tasks=np.array(["grade", "ok"]))
    assert load_npz(tmp_path / "k.npz").tasks[0].kind == "multiclass"
    ds = dataset_from_file(tmp_path / "k.npz", task_kinds={"grade": "regression"})
    assert [t.kind for t in ds.tasks] == ["regression", "binary"]


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (dict(X=np.zeros((4, 2))), "has no array 'Y'; save it with numpy.savez"),
        (dict(X=np.zeros((4, 2)), y=np.zeros(4)), r"unknown array\(s\) 'y' \(rename 'y' -> 'Y'"),
        (dict(X=np.zeros((4, 2)), Y=np.zeros((4, 1)), tasks=np.array(["a"], dtype=object)),
         "array 'tasks' .* stored as Python objects .* np.array\\(names, dtype=str\\)"),
        (dict(X=np.array([["a", "b"]] * 4), Y=np.zeros((4, 1))), "X holds <U1 values, not numbers"),
        (dict(X=np.where(np.eye(4) > 0, np.nan, 1.0), Y=np.zeros((4, 1))), r"X has 4 NaN or infinite value\(s\)"),
        (dict(X=np.zeros(4), Y=np.zeros((4, 1))), r"X has shape \(4,\); it needs a row axis"),
        (dict(X=np.zeros((4, 2)), Y=np.zeros((5, 1))), "X has 4 rows but Y has shape"),
        (dict(X=np.zeros((4, 2)), Y=np.zeros(4)), r"Y has shape \(4,\); give it as \(N, T\).*Y\[:, None\]"),
        (dict(X=np.zeros((4, 2)), Y=np.zeros((4, 2)), tasks=np.array(["a"])), r"tasks has 1 name\(s\) but Y has 2"),
        (dict(X=np.zeros((4, 2)), Y=np.zeros((4, 1)), tasks=np.array(["a+b"])), "task name 'a\\+b' contains '\\+'"),
        (dict(X=np.zeros((8, 2)), Y=np.zeros((8, 1)), split=np.arange(8) % 4), r"split holds code\(s\) 3"),
        (dict(X=np.zeros((8, 2)), Y=np.zeros((8, 1)), split=np.zeros(8, dtype=int)),
         r"split has no validation \(1\) or test \(2\) rows"),
        (dict(X=np.zeros((8, 3, 2)), Y=np.zeros((8, 1)), feature_names=np.array(["a", "b", "c"])),
         r"feature_names has 3 name\(s\) but X's feature axis \(axis 2\)"),
        (dict(X=np.zeros((8, 2)), Y=np.zeros(8), row_task=np.arange(8) % 3, tasks=np.array(["a", "b"])),
         r"row_task holds task indices 0 .. 2 but there are 2 tasks"),
        (dict(X=np.zeros((8, 2)), Y=np.full(8, 1.0), row_task=np.array(["a", "b"] * 4), tasks=np.array(["a", "c"])),
         r"row_task names task\(s\) 'b' that are not in tasks"),
    ],
)
def test_npz_errors_name_the_array_and_the_fix(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        dataset_from_file(tmp_path / "bad.npz", **CLI_OPTIONS)


def test_npz_file_errors(tmp_path):
    (tmp_path / "text.npz").write_text("X,Y\n1,2\n")
    with pytest.raises(DataError, match="cannot read .* as a NumPy .npz file.*numpy.savez"):
        load_npz(tmp_path / "text.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(DataError, match="single array, not named arrays"):
        load_npz(tmp_path / "one.npz")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_npz(tmp_path / "missing.npz")
    X, Y = _images(n=30)
    np.savez(tmp_path / "ok.npz", X=X, Y=Y)
    with pytest.raises(DataError, match="--features, --impute only apply to tables"):
        dataset_from_file(tmp_path / "ok.npz", features=["a"], impute="mean")
    with pytest.raises(DataError, match=r"unknown task\(s\) 'task7'.*the tasks are: 'task0'"):
        dataset_from_file(tmp_path / "ok.npz", tasks=["task7"])
    assert set(NPZ_ARRAYS) >= {"X", "Y", "tasks", "split", "row_task"}


def test_a_loaded_file_of_another_kind_is_refused_like_a_built_in_one(tmp_path):
    X, Y = _images(n=40)
    np.savez(tmp_path / "faces.npz", X=X, Y=Y)
    ds = dataset_from_file(tmp_path / "faces.npz")
    builtin.check_data_kind(ds, ("images", "table"), "`negtransfer group`")  # accepted
    builtin.check_data_kind(ds, None)
    with pytest.raises(DataError, match="dataset 'faces' is images data .* `negtransfer group` takes table"):
        builtin.check_data_kind(ds, ("table", "per-task-rows", "domains"), "`negtransfer group`")
