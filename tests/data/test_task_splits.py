import numpy as np
import pytest

from negtransfer.data.build import DataError
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION
from negtransfer.data.task_splits import is_task_splits_folder, load_task_splits


def test_loads_tasks_in_numeric_order_with_a_stratified_validation_share(tmp_path, write_folder):
    folder = write_folder(tmp_path / "Task_Splits")
    ds = load_task_splits(folder, seed=1)
    assert ds.task_names == ("3", "7", "12") and ds.name == tmp_path.name
    assert ds.row_task is not None and ds.n_features == 5
    for j, n in zip(range(3), (40, 60, 100), strict=True):
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


def test_real_valued_features_are_standardised(tmp_path, write_folder):
    ds = load_task_splits(write_folder(tmp_path / "d", binary_x=False))
    train = ds.split == TRAIN
    np.testing.assert_allclose(ds.X[train].mean(axis=0), 0, atol=1e-5)


def test_errors_name_the_file_and_the_fix(tmp_path, write_folder):
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


def test_dataset_from_file_accepts_a_task_splits_folder(tmp_path, write_folder):
    from negtransfer.data.files import dataset_from_file

    folder = write_folder(tmp_path / "chem")
    ds = dataset_from_file(folder, tasks=["7", "3"], seed=0)
    assert ds.task_names == ("7", "3") and ds.row_task is not None
    with pytest.raises(DataError, match="--features"):
        dataset_from_file(folder, features=["x"])


def test_the_etap_chemical_folder_when_present():
    """The paper's own Chemical tasks (read from ../shared, never copied into the project)."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[3] / "shared" / "data" / "etap-chemical"
    if not (folder / "55_X_train.npy").exists():
        pytest.skip(f"no ETAP Chemical data at {folder} (it is not shipped; see docs/datasets.md)")
    ds = load_task_splits(folder, seed=0)
    assert ds.task_names == ("55", "76", "78", "80", "81", "83", "84", "85", "86", "87")
    assert ds.n_features == 180 and all(t.kind == "binary" for t in ds.tasks)
    # the README's row counts: train (before the validation share) and test
    for name, train, test in (("55", 295, 127), ("83", 1657, 711)):
        mine = ds.row_task == ds.task_names.index(name)
        assert int((mine & (ds.split != TEST)).sum()) == train and int((mine & (ds.split == TEST)).sum()) == test
