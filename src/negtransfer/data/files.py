"""User files: CSV and Parquet tables turned into a :class:`MultiTaskDataset`.

The command line's ``--data FILE --tasks a,b,c [--features ...] [--task-column COL
--label COL] [--impute mean]`` lands in :func:`dataset_from_file`.
"""

from __future__ import annotations

import csv
import gzip
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


def _csv_header(path: Path, compressed: bool) -> list[str]:
    opener = gzip.open if compressed else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:  # type: ignore[operator]
        return next(csv.reader(handle), [])


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
        Unsupported suffix, an empty or unreadable file, duplicate column names
        (CSV readers would otherwise rename them silently).
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
    if suffix in (".csv", ".csv.gz"):
        try:
            header = _csv_header(path, compressed=suffix == ".csv.gz")
        except UnicodeDecodeError as exc:
            raise DataError(f"cannot read {str(path)!r} as UTF-8 text ({exc}); save it as UTF-8 CSV") from None
        if not header:
            raise DataError(f"{str(path)!r} is empty; it needs a header row naming the columns, then data rows")
        dups = sorted({h for h in header if header.count(h) > 1})
        if dups:
            raise DataError(
                f"duplicate column name(s) {', '.join(repr(d) for d in dups)} in the header of {str(path)!r}; "
                f"every column needs a unique name, rename or drop the copies"
            )
        try:
            return pd.read_csv(path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot parse {str(path)!r} as CSV: {exc}") from None
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq  # noqa: F401
        except ImportError:
            raise ImportError(
                f"reading {str(path)!r} needs pyarrow: pip install pyarrow (the 'parquet' extra), "
                f"or save the table as .csv"
            ) from None
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several unrelated types for corrupt files
            raise DataError(f"cannot read {str(path)!r} as Parquet: {exc}") from None
    raise DataError(
        f"unsupported file type {suffix or '(no suffix)'!r} for {str(path)!r}; "
        f"save the table as .csv or .parquet"
    )


def dataset_from_file(path: str | Path, *, name: str | None = None, **kwargs: Any) -> MultiTaskDataset:
    """Load a user table and build a :class:`MultiTaskDataset` from it.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.csv.gz`` or ``.parquet`` file, or a folder in the ETAP
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
