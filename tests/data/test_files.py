"""User files: CSV and Parquet written to tmp_path, read back into datasets."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from negtransfer.data.build import DataError, dataset_from_frame
from negtransfer.data.files import dataset_from_file, load_table


def table(n=80, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, size=n),
            "income": rng.normal(50, 5, size=n),
            "smoker": rng.choice(["no", "yes"], size=n),
            "risk": rng.normal(size=n),
            "hospital": rng.choice(["Cleveland", "Hungary", "VA"], size=n),
            "disease": rng.integers(0, 2, size=n),
        }
    )


def test_csv_multi_label_matches_frame(tmp_path):
    data = table()
    data.loc[[2, 7], "risk"] = np.nan  # missing labels survive the file round trip
    path = tmp_path / "patients.csv"
    data.to_csv(path, index=False)
    ds = dataset_from_file(path, tasks=["smoker", "risk"], features=["age", "income"], seed=1)
    ref = dataset_from_frame(data, tasks=["smoker", "risk"], features=["age", "income"], seed=1, name="patients")
    assert ds.name == "patients"
    assert ds.fingerprint() == ref.fingerprint()
    assert np.isnan(ds.Y[[2, 7], 1]).all()
    assert ds.info["source"].endswith("patients.csv")


def test_csv_gz(tmp_path):
    data = table()
    path = tmp_path / "patients.csv.gz"
    data.to_csv(path, index=False, compression="gzip")
    ds = dataset_from_file(path, tasks=["disease"], features=["age"])
    assert ds.name == "patients" and ds.n_tasks == 1


def test_parquet_per_task_rows(tmp_path):
    pytest.importorskip("pyarrow")
    data = table()
    path = tmp_path / "heart.parquet"
    data.to_parquet(path, index=False)
    ds = dataset_from_file(path, task_column="hospital", label_column="disease", features=["age", "income"])
    ref = dataset_from_frame(data, task_column="hospital", label_column="disease", features=["age", "income"], name="heart")
    assert ds.task_names == ("Cleveland", "Hungary", "VA")
    assert ds.fingerprint() == ref.fingerprint()
    assert ds.row_task is not None


def test_csv_with_impute_option(tmp_path):
    data = table()
    data.loc[[1, 4], "age"] = np.nan
    path = tmp_path / "gaps.csv"
    data.to_csv(path, index=False)
    with pytest.raises(DataError, match="age"):
        dataset_from_file(path, tasks=["disease"], features=["age", "income"])
    ds = dataset_from_file(path, tasks=["disease"], features=["age", "income"], impute="median")
    assert np.isfinite(ds.X).all() and ds.info["impute"] == "median"


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        load_table("nowhere.csv")


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"not really")
    with pytest.raises(DataError, match=r"unsupported file type '\.xlsx'.*\.csv or \.parquet"):
        load_table(path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="folder"):
        load_table(tmp_path)


def test_empty_csv(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match="empty"):
        load_table(path)


def test_duplicate_csv_header_named(tmp_path):
    path = tmp_path / "dups.csv"
    path.write_text("a,b,a\n1,2,3\n4,5,6\n")
    with pytest.raises(DataError, match=r"duplicate column name\(s\) 'a'"):
        load_table(path)
    gz = tmp_path / "dups.csv.gz"
    with gzip.open(gz, "wt") as handle:
        handle.write("a,b,b\n1,2,3\n")
    with pytest.raises(DataError, match="'b'"):
        load_table(gz)


def test_non_numeric_feature_from_csv_named(tmp_path):
    path = tmp_path / "mixed.csv"
    table().to_csv(path, index=False)
    with pytest.raises(DataError, match="'hospital'") as info:
        dataset_from_file(path, tasks=["disease"])  # default features include the text column
    assert "--features" in str(info.value)


def test_name_option_and_info_merge(tmp_path):
    path = tmp_path / "x.csv"
    table().to_csv(path, index=False)
    ds = dataset_from_file(path, name="mine", tasks=["disease"], features=["age"], info={"license": "CC-BY-4.0"})
    assert ds.name == "mine" and ds.info["license"] == "CC-BY-4.0"


def test_content_that_does_not_match_the_name(tmp_path):
    data = table()
    plain = tmp_path / "plain.csv.gz"
    data.to_csv(plain, index=False, compression=None)
    with pytest.raises(DataError, match="not gzip-compressed.*rename it to end in .csv"):
        load_table(plain)
    zipped = tmp_path / "zipped.csv"
    zipped.write_bytes(gzip.compress(data.to_csv(index=False).encode()))
    with pytest.raises(DataError, match="gzip-compressed; rename it to end in .csv.gz"):
        load_table(zipped)
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(data.to_csv(index=False).encode())[:200])
    with pytest.raises(DataError, match="damaged or truncated gzip"):
        load_table(cut)
    xlsx = tmp_path / "sheet.csv"
    xlsx.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(DataError, match="zip archive"):
        load_table(xlsx)


@pytest.mark.parametrize("sep, word", [(";", "semicolons"), ("\t", "tabs"), ("|", "vertical bars")])
def test_other_delimiters_named(tmp_path, sep, word):
    path = tmp_path / "t.csv"
    table().to_csv(path, index=False, sep=sep)
    with pytest.raises(DataError, match=f"{word}.*comma-separated"):
        load_table(path)


def test_unnamed_header_column_and_ragged_rows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,,c\n1,2,3\n")
    with pytest.raises(DataError, match="column\\(s\\) 2 .* have no name"):
        load_table(path)
    path.write_text("a,b,c\n1,2,3\n1,2,3,4\n")
    with pytest.raises(DataError, match="as many comma-separated fields as the header") as info:
        load_table(path)
    assert "\n" not in str(info.value)
