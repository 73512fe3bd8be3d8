"""User files: CSV and Parquet tables, and ``.npz`` arrays, turned into a :class:`MultiTaskDataset`.

The command line's ``--data FILE --tasks a,b,c [--features ...] [--task-column COL
--label COL] [--impute mean]`` lands in :func:`dataset_from_file`. A ``.npz``
file holds arrays of any shape (images, sequences; :mod:`negtransfer.data.arrays`).
"""

from __future__ import annotations

import csv
import gzip
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from negtransfer.data.build import DataError, dataset_from_frame
from negtransfer.data.dataset import MultiTaskDataset

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SUPPORTED_SUFFIXES", "load_table", "dataset_from_file"]

SUPPORTED_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for suffix in SUPPORTED_SUFFIXES:
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


#: First bytes of file formats a user may hand over under the wrong name.
_MAGIC = (
    (b"\x1f\x8b", "gzip-compressed", ".csv.gz"),
    (b"PAR1", "a Parquet file", ".parquet"),
    (b"PK\x03\x04", "a zip archive (an Excel .xlsx workbook?)", None),
    (b"SQLite format 3\x00", "a SQLite database", None),
    (b"\xd0\xcf\x11\xe0", "an old Excel .xls workbook", None),
)
#: Delimiters other than the comma that a one-column header betrays.
_OTHER_DELIMITERS = {";": "semicolons", "\t": "tabs", "|": "vertical bars"}
#: What reading a damaged file can raise (pandas, csv, gzip, zlib, pyarrow).
_READ_ERRORS = (ValueError, csv.Error, OSError, EOFError, zlib.error, UnicodeDecodeError, OverflowError, MemoryError)


def _kind_by_content(path: Path) -> tuple[str, str | None] | None:
    """(description, suffix it should have) when the first bytes show a known non-CSV format."""
    with open(path, "rb") as handle:
        head = handle.read(16)
    for magic, what, suffix in _MAGIC:
        if head.startswith(magic):
            return what, suffix
    return None


def _csv_header(path: Path, compressed: bool) -> list[str]:
    opener = gzip.open if compressed else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
        return next(csv.reader(handle), [])


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _damaged_gzip(shown: str, exc: BaseException) -> DataError:
    return DataError(f"{shown!r} is a damaged or truncated gzip file ({_one_line(exc)}); compress the CSV again "
                     f"(gzip FILE.csv)")


def _check_csv_content(path: Path, suffix: str) -> None:
    """A DataError when the bytes of a CSV-named file are another format or its name lies about gzip."""
    found = _kind_by_content(path)
    shown = str(path)
    if suffix == ".csv.gz":
        if found is None or found[0] != "gzip-compressed":
            what = found[0] if found else "not gzip-compressed (a plain CSV?)"
            fix = "rename it to end in .csv" if found is None else "save the table as a .csv file"
            raise DataError(f"{shown!r} is named .csv.gz but is {what}; {fix}")
        return
    if found is not None:
        what, right = found
        fix = f"rename it to end in {right}" if right else "save the table as a comma-separated .csv file"
        raise DataError(f"{shown!r} is named {suffix} but is {what}; {fix}")


def _check_header(path: Path, header: list[str]) -> None:
    shown = str(path)
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{shown!r} is empty; it needs a header row naming the columns, then data rows")
    if len(header) == 1:
        for delimiter, word in _OTHER_DELIMITERS.items():
            if delimiter in header[0]:
                raise DataError(
                    f"{shown!r} seems to separate its columns with {word} (header {header[0][:60]!r}); "
                    f"negtransfer reads comma-separated files: save it with commas "
                    f"(pandas: pd.read_csv(path, sep={delimiter!r}).to_csv(new_path, index=False))"
                )
    blank = [i + 1 for i, h in enumerate(header) if not h.strip()]
    if blank:
        raise DataError(
            f"column(s) {', '.join(map(str, blank))} of the header of {shown!r} have no name; "
            f"name every column in the first row (or delete the empty columns)"
        )
    dups = sorted({h for h in header if header.count(h) > 1})
    if dups:
        raise DataError(
            f"duplicate column name(s) {', '.join(repr(d) for d in dups)} in the header of {shown!r}; "
            f"every column needs a unique name, rename or drop the copies"
        )


def load_table(path: str | Path) -> "pd.DataFrame":
    """Read a ``.csv`` (optionally ``.csv.gz``) or ``.parquet`` file into a DataFrame.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    pandas.DataFrame
        Columns as in the file; empty CSV cells (and ``NA``, ``NaN``) are missing values.

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    DataError
        Unsupported suffix; a file whose content is another format than its
        name says (a plain CSV named ``.csv.gz``, a gzip, zip, Excel, SQLite or
        Parquet file named ``.csv``); an empty, unreadable or malformed file;
        columns separated by semicolons, tabs or bars; unnamed or duplicate
        column names (CSV readers would otherwise rename them silently).
    ImportError
        A Parquet file without pyarrow installed.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {str(path)!r} not found")
    if path.is_dir():
        raise DataError(f"{str(path)!r} is a folder; give a .csv or .parquet file")
    suffix = _suffix(path)
    try:
        return _read(path, suffix, pd)
    except PermissionError:
        raise DataError(f"cannot read {str(path)!r}: permission denied; check the file's permissions") from None


def _read(path: Path, suffix: str, pd) -> "pd.DataFrame":
    shown = str(path)
    if suffix in (".csv", ".csv.gz"):
        _check_csv_content(path, suffix)
        try:
            header = _csv_header(path, compressed=suffix == ".csv.gz")
        except UnicodeDecodeError as exc:
            raise DataError(f"cannot read {shown!r} as UTF-8 text ({_one_line(exc)}); save it as UTF-8 CSV") from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _damaged_gzip(shown, exc) from None
        except _READ_ERRORS as exc:
            raise DataError(f"cannot read {shown!r} as CSV ({_one_line(exc)}); check the file, or save it again as CSV") from None
        _check_header(path, header)
        try:
            return pd.read_csv(path, encoding="utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DataError(f"cannot read {shown!r} as UTF-8 text ({_one_line(exc)}); save it as UTF-8 CSV") from None
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _damaged_gzip(shown, exc) from None
        except (pd.errors.ParserError, pd.errors.EmptyDataError, *_READ_ERRORS) as exc:
            raise DataError(
                f"cannot parse {shown!r} as CSV: {_one_line(exc)}; every row needs as many comma-separated "
                f"fields as the header (quote fields that contain commas)"
            ) from None
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq  # noqa: F401
        except ImportError:
            raise ImportError(
                f"reading {shown!r} needs pyarrow: pip install pyarrow (the 'parquet' extra), "
                f"or save the table as .csv"
            ) from None
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
            found = _kind_by_content(path)
            hint = f"it is {found[0]}" if found else "is it a CSV file? then rename it to end in .csv"
            raise DataError(f"cannot read {shown!r} as Parquet ({_one_line(exc)[:200]}); {hint}") from None
    raise DataError(
        f"unsupported file type {suffix or '(no suffix)'!r} for {shown!r}; "
        f"save the table as .csv or .parquet"
    )


def dataset_from_file(path: str | Path, *, name: str | None = None, **kwargs: Any) -> MultiTaskDataset:
    """Load a user table and build a :class:`MultiTaskDataset` from it.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file; a ``.npz`` file of arrays
        (:func:`negtransfer.data.arrays.load_npz`; then ``tasks``, ``task_kinds``,
        ``seed``, ``fractions`` and ``info`` apply); or a folder in the ETAP
        public code's ``Task_Splits`` format (:mod:`negtransfer.data.task_splits`;
        then only ``tasks`` and ``seed`` apply).
    name : str, optional
        Dataset name; default the file name without its suffix.
    **kwargs
        Passed to :func:`negtransfer.data.build.dataset_from_frame`: ``tasks``,
        ``features``, ``task_column``, ``label_column``, ``task_kinds``, ``impute``,
        ``seed``, ``fractions``, ``time_column``, ``info``.

    Returns
    -------
    MultiTaskDataset
        ``info["source"]`` is the resolved file path.
    """
    path = Path(path)
    if path.name.lower().endswith(".npz") and not path.is_dir():
        return _dataset_from_npz(path, name, kwargs)
    if path.is_dir():
        from negtransfer.data.task_splits import is_task_splits_folder, load_task_splits

        if is_task_splits_folder(path):
            table_only = sorted(k for k, v in kwargs.items() if k not in ("tasks", "seed") and v is not None)
            if table_only:
                option = {"task_column": "--task-column", "label_column": "--label"}
                flags = ", ".join(option.get(k, "--" + k.replace("_", "-")) for k in table_only)
                raise DataError(f"{str(path)!r} is a Task_Splits folder (one set of .npy files per task); "
                                f"{flags} only apply to tables: leave them out")
            return load_task_splits(path, tasks=kwargs.get("tasks"), seed=kwargs.get("seed", 0), name=name)
    frame = load_table(path)
    suffix = _suffix(path)
    stem = path.name[: -len(suffix)] if suffix and path.name.lower().endswith(suffix) else path.stem
    info = {"source": str(path.resolve()), "license": "user data (your own terms)", **dict(kwargs.pop("info", None) or {})}
    return dataset_from_frame(frame, name=name or stem, info=info, **kwargs)


#: Options of :func:`dataset_from_file` that a ``.npz`` file of arrays takes.
_NPZ_OPTIONS = ("tasks", "task_kinds", "seed", "fractions", "info")
_TABLE_FLAGS = {"features": "--features", "task_column": "--task-column", "label_column": "--label",
                "impute": "--impute", "time_column": "time_column"}


def _dataset_from_npz(path: Path, name: str | None, kwargs: dict) -> MultiTaskDataset:
    from negtransfer.data.arrays import load_npz

    table_only = sorted(k for k, v in kwargs.items() if k not in _NPZ_OPTIONS and v is not None)
    if table_only:
        flags = ", ".join(_TABLE_FLAGS.get(k, k) for k in table_only)
        raise DataError(f"{str(path)!r} is a .npz file of arrays (X, Y, ...); {flags} only apply to tables: leave "
                        f"them out (the file's own arrays say the tasks' rows: row_task, split)")
    return load_npz(path, name=name, **{k: v for k, v in kwargs.items() if v is not None})
