"""dataset_from_frame: layouts, task kinds, missing labels, splits, scaling, imputation."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from negtransfer.data.build import (
    MAX_INFERRED_CLASSES,
    dataset_from_frame,
    infer_task_kind,
    min_rows_for_split,
    split_counts,
)
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION


def multi_label_frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame(
        {
            "f1": x[:, 0],
            "f2": x[:, 1] * 10 + 5,
            "f3": x[:, 2],
            "bin": np.where(x[:, 0] > 0, "yes", "no"),
            "multi": rng.choice(["red", "green", "blue"], size=n),
            "reg": 3.0 * x[:, 1] + 100 + rng.normal(size=n),
        }
    )


def per_task_frame(sizes=(40, 60, 80), seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for state, n in zip(("TX", "CA", "NY"), sizes, strict=True):
        x = rng.normal(size=(n, 2))
        for i in range(n):
            rows.append({"state": state, "a": x[i, 0], "b": x[i, 1], "vote": int(x[i, 0] + 0.3 * rng.normal() > 0)})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ layouts
def test_multi_label_layout_shapes_defaults_and_kinds():
    frame = multi_label_frame()
    ds = dataset_from_frame(frame, tasks=["bin", "multi", "reg"], name="toy")
    assert ds.name == "toy"
    assert ds.task_names == ("bin", "multi", "reg")
    assert ds.feature_names == ("f1", "f2", "f3")  # every other column, in table order
    assert ds.X.shape == (200, 3) and ds.Y.shape == (200, 3)
    assert ds.row_task is None
    kinds = [t.kind for t in ds.tasks]
    assert kinds == ["binary", "multiclass", "regression"]
    assert ds.tasks[0].classes == ("no", "yes")
    assert ds.tasks[1].classes == ("blue", "green", "red")
    # encodings: yes -> 1, colours -> sorted index
    np.testing.assert_array_equal(ds.Y[:, 0], (frame["bin"] == "yes").to_numpy(dtype=np.float32))
    expected = frame["multi"].map({"blue": 0, "green": 1, "red": 2}).to_numpy(dtype=np.float32)
    np.testing.assert_array_equal(ds.Y[:, 1], expected)
    assert ds.info["layout"] == "multi-label"
    assert ds.info["task_kinds"]["reg"] == "regression (inferred)"


def test_per_task_rows_layout():
    frame = per_task_frame()
    ds = dataset_from_frame(frame, task_column="state", label_column="vote")
    assert ds.task_names == ("CA", "NY", "TX")  # sorted values of the task column
    assert ds.feature_names == ("a", "b")
    assert ds.row_task is not None and ds.row_task.shape == (180,)
    for j, name in enumerate(ds.task_names):
        mine = ds.row_task == j
        assert mine.sum() == (frame["state"] == name).sum()
        # the row's own column holds the label, every other column is NaN
        assert not np.isnan(ds.Y[mine, j]).any()
        others = np.delete(ds.Y[mine], j, axis=1)
        assert np.isnan(others).all()
        np.testing.assert_array_equal(ds.Y[mine, j], frame.loc[frame["state"] == name, "vote"].to_numpy())
    assert all(t.kind == "binary" and t.classes == (0, 1) for t in ds.tasks)
    assert ds.info["layout"] == "per-task-rows"


def test_per_task_rows_select_tasks_in_given_order():
    frame = per_task_frame()
    ds = dataset_from_frame(frame, task_column="state", label_column="vote", tasks=["TX", "CA"])
    assert ds.task_names == ("TX", "CA")
    assert len(ds.X) == 40 + 60
    assert set(ds.row_task.tolist()) == {0, 1}
    assert (ds.row_task == 0).sum() == 40


def test_per_task_rows_numeric_task_ids_become_names():
    frame = per_task_frame()
    frame["school"] = frame["state"].map({"TX": 10, "CA": 2, "NY": 1})
    ds = dataset_from_frame(frame.drop(columns="state"), task_column="school", label_column="vote", tasks=["2", "10"])
    assert ds.task_names == ("2", "10")
    full = dataset_from_frame(frame.drop(columns="state"), task_column="school", label_column="vote")
    assert full.task_names == ("1", "2", "10")  # numeric order, not string order


# ------------------------------------------------------------------ kinds
@pytest.mark.parametrize(
    "values, kind",
    [
        ([0, 1, 1, 0], "binary"),
        ([True, False, True, True], "binary"),
        (["a", "b", "a", "b"], "binary"),
        ([1.5, 2.5, 1.5, 2.5], "binary"),
        (["a", "b", "c", "a"], "multiclass"),
        ([1, 2, 3, 4, 5, 1], "multiclass"),
        (list(range(MAX_INFERRED_CLASSES)), "multiclass"),
        (list(range(MAX_INFERRED_CLASSES + 1)), "regression"),
        ([0.1, 0.2, 0.3], "regression"),
        ([1.0, 2.0, 3.0, np.nan], "multiclass"),
    ],
)
def test_infer_task_kind(values, kind):
    assert infer_task_kind(pd.Series(values)) == kind


def test_binary_with_missing_labels_keeps_integer_classes_and_nan():
    frame = multi_label_frame(n=100)
    lab = (frame["f1"] > 0).astype(float)
    lab[::7] = np.nan  # float column 0.0/1.0 with NaN
    frame["lab"] = lab
    ds = dataset_from_frame(frame, tasks=["lab", "reg"], features=["f1", "f2"])  # "reg" keeps every row labelled
    assert ds.tasks[0].classes == (0, 1)
    assert all(type(c) is int for c in ds.tasks[0].classes)
    # NaN labels stay NaN in exactly the same rows; the others are 0/1
    np.testing.assert_array_equal(np.isnan(ds.Y[:, 0]), lab.isna().to_numpy())
    np.testing.assert_array_equal(ds.Y[~np.isnan(ds.Y[:, 0]), 0], lab.dropna().to_numpy())


def test_task_kinds_override_and_regression_standardised_with_train_stats():
    frame = multi_label_frame()
    frame["grade"] = np.random.default_rng(1).integers(1, 5, size=len(frame))  # would be multiclass
    ds = dataset_from_frame(frame, tasks=["grade", "reg"], features=["f1", "f2", "f3"], task_kinds={"grade": "regression"})
    assert [t.kind for t in ds.tasks] == ["regression", "regression"]
    assert ds.info["task_kinds"]["grade"] == "regression (given)"
    train = ds.split == TRAIN
    for j, col in enumerate(["grade", "reg"]):
        spec = ds.tasks[j]
        raw = frame[col].to_numpy(dtype=float)
        assert spec.target_mean == pytest.approx(raw[train].mean())
        assert spec.target_std == pytest.approx(raw[train].std())
        assert ds.Y[train, j].mean() == pytest.approx(0.0, abs=1e-5)
        assert ds.Y[train, j].std() == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(ds.Y[:, j] * spec.target_std + spec.target_mean, raw, rtol=1e-5)
        # other splits are transformed with the training statistics, not their own
        assert abs(ds.Y[~train, j].mean()) > 1e-4


def test_multiclass_override_on_two_values():
    frame = multi_label_frame()
    ds = dataset_from_frame(frame, tasks=["bin"], features=["f1"], task_kinds={"bin": "multiclass"})
    assert ds.tasks[0].kind == "multiclass" and ds.tasks[0].output_dim == 2


def test_rows_without_any_label_are_dropped_and_counted():
    frame = multi_label_frame(n=120)
    frame["t1"] = (frame["f1"] > 0).astype(float)
    frame["t2"] = (frame["f3"] > 0).astype(float)
    frame.loc[:9, ["t1", "t2"]] = np.nan  # ten rows with no label at all
    frame.loc[10:19, "t1"] = np.nan  # ten rows with one label missing
    ds = dataset_from_frame(frame, tasks=["t1", "t2"], features=["f1", "f2", "f3"])
    assert len(ds.X) == 110
    assert ds.info["dropped_unlabelled_rows"] == 10
    assert np.isnan(ds.Y[:10, 0]).all() and not np.isnan(ds.Y[:10, 1]).any()


# ------------------------------------------------------------------ splits
def test_split_sizes_follow_fractions():
    ds = dataset_from_frame(multi_label_frame(n=1000), tasks=["reg"], features=["f1"])
    counts = np.bincount(ds.split, minlength=3)
    assert counts.tolist() == [600, 200, 200]
    ds = dataset_from_frame(multi_label_frame(n=1000), tasks=["reg"], features=["f1"], fractions=(0.8, 0.0, 0.2))
    assert np.bincount(ds.split, minlength=3).tolist() == [800, 0, 200]


def test_split_helpers():
    assert min_rows_for_split((0.6, 0.2, 0.2)) == 4
    assert min_rows_for_split((1.0, 0.0, 0.0)) == 2
    assert split_counts(4) == (2, 1, 1)
    assert split_counts(5) == (3, 1, 1)
    assert split_counts(10) == (6, 2, 2)
    assert sum(split_counts(997)) == 997
    assert split_counts(1, (0.2, 0.5, 0.3)) == (1, 0, 0)  # a stratum's first row always trains
    assert split_counts(100, (0.2, 0.5, 0.3)) == (20, 50, 30)


def test_splits_deterministic_for_a_seed_and_differ_across_seeds():
    frame = multi_label_frame()
    a = dataset_from_frame(frame, tasks=["bin", "multi", "reg"], seed=3)
    b = dataset_from_frame(frame.copy(), tasks=["bin", "multi", "reg"], seed=3)
    c = dataset_from_frame(frame, tasks=["bin", "multi", "reg"], seed=4)
    np.testing.assert_array_equal(a.split, b.split)
    assert a.fingerprint() == b.fingerprint()
    assert not np.array_equal(a.split, c.split)
    assert a.fingerprint() != c.fingerprint()


def test_multi_label_stratified_by_rarest_task():
    rng = np.random.default_rng(0)
    n = 500
    frame = pd.DataFrame({"x": rng.normal(size=n), "common": rng.integers(0, 2, size=n), "rare": 0})
    frame.loc[rng.choice(n, size=10, replace=False), "rare"] = 1
    for seed in range(20):
        ds = dataset_from_frame(frame, tasks=["common", "rare"], seed=seed)
        assert "'rare'" in ds.info["split_rule"]
        positives = [int(ds.Y[ds.split == s, 1].sum()) for s in (TRAIN, VALIDATION, TEST)]
        assert positives == [6, 2, 2], (seed, positives)  # exactly proportional, every seed


def test_stratification_beats_plain_shuffling_on_a_rare_class():
    """The same rare class, dealt without strata (regression-only tables), drifts."""
    rng = np.random.default_rng(0)
    n = 500
    frame = pd.DataFrame({"x": rng.normal(size=n), "rare": 0})
    frame.loc[rng.choice(n, size=10, replace=False), "rare"] = 1
    strat, plain = set(), set()
    for seed in range(20):
        ds = dataset_from_frame(frame, tasks=["rare"], seed=seed)
        strat.add(tuple(int(ds.Y[ds.split == s, 0].sum()) for s in (TRAIN, VALIDATION, TEST)))
        ds = dataset_from_frame(frame, tasks=["rare"], seed=seed, task_kinds={"rare": "regression"})
        raw = frame["rare"].to_numpy()
        plain.add(tuple(int(raw[ds.split == s].sum()) for s in (TRAIN, VALIDATION, TEST)))
    assert strat == {(6, 2, 2)}
    assert len(plain) > 3  # unstratified counts vary from seed to seed


def test_per_task_rows_split_per_task_and_class():
    frame = per_task_frame(sizes=(40, 60, 80))
    ds = dataset_from_frame(frame, task_column="state", label_column="vote", seed=5)
    for j in range(3):
        mine = ds.row_task == j
        n = int(mine.sum())
        counts = np.bincount(ds.split[mine], minlength=3)
        assert abs(counts[TRAIN] - 0.6 * n) <= 2 and abs(counts[TEST] - 0.2 * n) <= 2
        for cls in (0, 1):
            in_cls = mine & (ds.Y[:, j] == cls)
            m = int(in_cls.sum())
            got = np.bincount(ds.split[in_cls], minlength=3)
            assert got.tolist() == list(split_counts(m))


def test_fallback_to_unstratified_when_strata_are_tiny():
    # one task of 4 rows and two classes of 2: strata alone would leave test empty
    frame = pd.DataFrame({"t": ["a"] * 4 + ["b"] * 20, "x": np.arange(24.0), "y": [0, 0, 1, 1] + [0, 1] * 10})
    ds = dataset_from_frame(frame, task_column="t", label_column="y", seed=0)
    a_rows = ds.row_task == 0
    assert np.bincount(ds.split[a_rows], minlength=3).tolist() == [2, 1, 1]
    assert ds.info["split_fallback_unstratified"] == ["a"]


def test_chronological_split_with_time_column():
    n = 100
    frame = pd.DataFrame(
        {"day": pd.date_range("2020-01-01", periods=n)[::-1], "x": np.arange(n, dtype=float), "y": np.linspace(0, 1, n) ** 2}
    )
    a = dataset_from_frame(frame, tasks=["y"], time_column="day", seed=0)
    b = dataset_from_frame(frame, tasks=["y"], time_column="day", seed=1)
    np.testing.assert_array_equal(a.split, b.split)  # the seed does not move a chronological split
    assert a.feature_names == ("x",)  # the time column is not a feature by default
    days = frame["day"].to_numpy()
    assert days[a.split == TRAIN].max() < days[a.split == VALIDATION].min()
    assert days[a.split == VALIDATION].max() < days[a.split == TEST].min()


# ------------------------------------------------------------------ features
def test_scaling_fitted_on_train_only():
    n = 300
    frame = pd.DataFrame({"t": np.arange(n), "trend": np.arange(n, dtype=float), "const": 7.0, "y": np.sin(np.arange(n))})
    ds = dataset_from_frame(frame, tasks=["y"], features=["trend", "const"], time_column="t")
    train, test = ds.split == TRAIN, ds.split == TEST
    assert ds.X[train, 0].mean() == pytest.approx(0.0, abs=1e-5)
    assert ds.X[train, 0].std() == pytest.approx(1.0, abs=1e-4)
    assert ds.X[test, 0].mean() > 1.5  # later rows lie beyond the training range: not re-centred
    assert np.all(ds.X[:, 1] == 0.0) and np.isfinite(ds.X).all()  # constant feature: no division by zero
    raw = frame["trend"].to_numpy()
    assert ds.info["feature_mean"][0] == pytest.approx(raw[train].mean())
    assert ds.info["feature_std"][0] == pytest.approx(raw[train].std())
    assert ds.info["feature_std"][1] == 1.0


def test_random_split_scaling_uses_train_rows():
    frame = multi_label_frame(n=400)
    ds = dataset_from_frame(frame, tasks=["reg"], features=["f2"], seed=1)
    train = ds.split == TRAIN
    raw = frame["f2"].to_numpy()
    np.testing.assert_allclose(ds.X[:, 0], (raw - raw[train].mean()) / raw[train].std(), rtol=1e-5, atol=1e-5)
    assert abs(ds.X[~train, 0].mean()) > 1e-4


@pytest.mark.parametrize("how", ["mean", "median"])
def test_imputation_fitted_on_train_rows(how, original_feature):
    frame = multi_label_frame(n=300)
    raw = frame["f2"].to_numpy().copy()
    missing = np.zeros(len(frame), bool)
    missing[::10] = True
    frame.loc[missing, "f2"] = np.nan
    ds = dataset_from_frame(frame, tasks=["reg"], features=["f1", "f2"], impute=how, seed=2)
    train = ds.split == TRAIN
    kept = frame["f2"].to_numpy()[train & ~missing]
    fill = kept.mean() if how == "mean" else np.median(kept)
    restored = original_feature(ds, "f2")
    np.testing.assert_allclose(restored[missing], fill, rtol=1e-5)
    np.testing.assert_allclose(restored[~missing], raw[~missing], rtol=1e-5)
    assert ds.info["imputed_values"] == {"f2": int(missing.sum())}
    # the fill ignores validation and test rows: shifting them changes nothing
    shifted = frame.copy()
    shifted.loc[~train & ~missing, "f2"] += 1000.0
    ds2 = dataset_from_frame(shifted, tasks=["reg"], features=["f1", "f2"], impute=how, seed=2)
    restored2 = original_feature(ds2, "f2")
    np.testing.assert_allclose(restored2[missing], fill, rtol=1e-5)


def test_boolean_and_nullable_integer_features():
    frame = multi_label_frame(n=50)
    frame["flag"] = frame["f1"] > 0
    frame["count"] = pd.array(np.arange(50), dtype="Int64")
    ds = dataset_from_frame(frame, tasks=["reg"], features=["flag", "count"])
    assert ds.X.dtype == np.float32 and np.isfinite(ds.X).all()


def test_user_info_kept_and_builder_provenance_recorded():
    ds = dataset_from_frame(multi_label_frame(), tasks=["reg"], features=["f1"], info={"license": "CC0", "seed": "fake"})
    assert ds.info["license"] == "CC0"
    assert ds.info["seed"] == 0  # the builder's record wins
    assert ds.info["fractions"] == [0.6, 0.2, 0.2]


def test_importing_the_data_package_stays_light():
    code = "import sys, negtransfer.data; print('torch' in sys.modules, 'pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
