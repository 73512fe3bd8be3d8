import numpy as np
import pytest

from negtransfer.data.build import DataError
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION
from negtransfer.data.task_splits import is_task_splits_folder, load_task_splits


def write_folder(path, tasks=("7", "12", "3"), rows=(60, 100, 40), d=5, seed=0, binary_x=True):
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for task, n in zip(tasks, rows):
        for part, m in (("train", n), ("test", n // 2)):
            X = (rng.random((m, d)) < 0.3).astype(float) if binary_x else rng.normal(size=(m, d))
            y = np.tile([0.0, 1.0], m // 2 + 1)[:m]
            np.save(path / f"{task}_X_{part}.npy", X)
            np.save(path / f"{task}_y_{part}.npy", y if part == "train" else y.reshape(-1, 1))
    return path


def test_loads_tasks_in_numeric_order_with_a_stratified_validation_share(tmp_path):
    folder = write_folder(tmp_path / "Task_Splits")
    ds = load_task_splits(folder, seed=1)
    assert ds.task_names == ("3", "7", "12") and ds.name == tmp_path.name
    assert ds.row_task is not None and ds.n_features == 5
    for j, n in zip(range(3), (40, 60, 100)):
        mine = ds.row_task == j
        assert int((mine & (ds.split == TEST)).sum()) == n // 2  # the given test split is kept
        val = mine & (ds.split == VALIDATION)
        assert int(val.sum()) == round(0.1 * n)
        labels = ds.Y[val, j]
        assert abs(int((labels == 1).sum()) - int((labels == 0).sum())) <= 1  # stratified
        assert int((mine & (ds.split == TRAIN)).sum()) == n - int(val.sum())
    assert np.isin(ds.X, (0, 1)).all() and "none" in ds.info["feature_scaling"]  # binary features kept raw
    assert load_task_splits(folder, seed=1).fingerprint() == ds.fingerprint()
    assert load_task_splits(folder, seed=2).fingerprint() != ds.fingerprint()  # the seed draws validation rows
    sub = load_task_splits(folder, tasks=["12", "3"])
    assert sub.task_names == ("12", "3")
    assert is_task_splits_folder(folder) and not is_task_splits_folder(tmp_path / "nope")


def test_real_valued_features_are_standardised(tmp_path):
    ds = load_task_splits(write_folder(tmp_path / "d", binary_x=False))
    train = ds.split == TRAIN
    np.testing.assert_allclose(ds.X[train].mean(axis=0), 0, atol=1e-5)


def test_errors_name_the_file_and_the_fix(tmp_path):
    folder = write_folder(tmp_path / "d")
    with pytest.raises(DataError, match="unknown task"):
        load_task_splits(folder, tasks=["99"])
    (folder / "7_y_test.npy").unlink()
    with pytest.raises(DataError, match="7_y_test.npy"):
        load_task_splits(folder)
    bad = write_folder(tmp_path / "e")
    np.save(bad / "12_X_train.npy", np.zeros((100, 4)))
    with pytest.raises(DataError, match="features"):
        load_task_splits(bad)
    short = write_folder(tmp_path / "f")
    np.save(short / "3_y_train.npy", np.zeros(10))
    with pytest.raises(DataError, match="one value per row"):
        load_task_splits(short)
    with pytest.raises(DataError, match="no <task>_X_train.npy"):
        (tmp_path / "empty").mkdir()
        load_task_splits(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        load_task_splits(tmp_path / "missing")


def test_dataset_from_file_accepts_a_task_splits_folder(tmp_path):
    from negtransfer.data.files import dataset_from_file

    folder = write_folder(tmp_path / "chem")
    ds = dataset_from_file(folder, tasks=["7", "3"], seed=0)
    assert ds.task_names == ("7", "3") and ds.row_task is not None
    with pytest.raises(DataError, match="--features"):
        dataset_from_file(folder, features=["x"])
