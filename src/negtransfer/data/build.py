"""Build a :class:`MultiTaskDataset` from a table: validation, encoding, splits, scaling.

One entry point, :func:`dataset_from_frame`, covers both layouts of the data contract:

* **multi-label**: one row per example, one label column per task (``tasks``);
* **per-task rows**: a ``task_column`` says which task a row belongs to (a state,
  a school, a hospital) and a single ``label_column`` holds every row's label.

Rules (also in ``docs/datasets.md``):

Task kinds (per task, from its non-missing labels; ``task_kinds`` overrides)
    exactly two distinct values -> ``"binary"`` (classes sorted, encoded 0/1, so
    ``classes[1]`` is the positive class); otherwise non-numeric values, or
    integer-valued numbers with at most :data:`MAX_INFERRED_CLASSES` distinct
    values -> ``"multiclass"`` (classes sorted, encoded 0..k-1); otherwise
    ``"regression"`` (standardised with the training split's mean and std).

Missing labels
    NaN (or an empty CSV cell) in a label means "no label"; it stays NaN in ``Y``
    and the trainer masks it out. Rows with no label for any selected task are
    dropped (counted in ``info["dropped_unlabelled_rows"]``).

Splits (seeded, deterministic for a given table and row order)
    Rows are split within *groups* (each task for per-task rows; the whole table
    for multi-label) and, inside a group, within *strata*:

    * per-task rows: stratum = the row's class for classification tasks;
      regression tasks are not stratified;
    * multi-label: stratum = the label (NaN counts as its own value) of the
      *rarest* classification task, the one whose smallest class has the fewest
      labelled rows; no stratification when every task is a regression.

    Each stratum's rows are shuffled with the seed and dealt train / validation /
    test by a fixed proportional sequence (``T V T Te T T V T Te T ...`` for
    0.6/0.2/0.2), so every stratum gets its share up to rounding and its first row
    always goes to train. Fallback: a group whose strata are so small that a
    split with a non-zero fraction came out empty is re-split without strata.
    With ``time_column`` the split is chronological instead (earliest rows train,
    then validation, then test, per group), and the seed does not affect it.

Features
    Numeric (or boolean) columns only. NaN is an error unless ``impute`` is
    ``"mean"`` or ``"median"`` (fitted on training rows). Every feature is then
    standardised with the training rows' mean and std; constant features get
    std 1 (they become 0, no division by zero).

Every bad input raises :class:`DataError` (a ``ValueError``) naming the column,
task or value at fault and what would fix it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset, TaskSpec, suggest_name

if TYPE_CHECKING:  # pandas is imported inside the functions that need it
    import pandas as pd

__all__ = [
    "DataError",
    "MAX_INFERRED_CLASSES",
    "TASK_NAME_SEPARATORS",
    "check_task_names",
    "TASK_KINDS",
    "dataset_from_frame",
    "infer_task_kind",
    "min_rows_for_split",
    "split_counts",
    "split_strata",
    "standardise_features",
]

TASK_KINDS = ("binary", "multiclass", "regression")
IMPUTE_CHOICES = (None, "mean", "median")
#: Integer-valued numeric labels with at most this many distinct values are
#: inferred to be multiclass; more distinct values make a regression task.
MAX_INFERRED_CLASSES = 10
#: Non-numeric labels with more distinct values than this are refused (an ID
#: column picked as a task by mistake) unless ``task_kinds`` says multiclass.
MAX_NONNUMERIC_CLASSES = 100
_SPLIT_WORDS = ("train", "validation", "test")


class DataError(ValueError):
    """Bad input data or options; the message names the culprit and the fix."""


#: Characters a task name cannot contain: group names join task names with "+",
#: and group files (``--groups FILE``) read "+" and "," as separators.
TASK_NAME_SEPARATORS = ("+", ",")


def check_task_names(names: Sequence[str], where: str = "") -> None:
    """Refuse task names that would make group names ambiguous.

    Parameters
    ----------
    names : sequence of str
    where : str
        How the user renames a task (e.g. "rename the column"), added to the message.

    Raises
    ------
    DataError
        A name contains ``+`` or ``,`` or is empty.
    """
    for name in names:
        if not str(name).strip():
            raise DataError(f"a task has an empty name; {where or 'give every task a name'}")
        bad = [c for c in TASK_NAME_SEPARATORS if c in str(name)]
        if bad:
            fixed = str(name)
            for c in bad:
                fixed = fixed.replace(c, "_")
            raise DataError(
                f"task name {str(name)!r} contains {' and '.join(repr(c) for c in bad)}, which negtransfer uses to "
                f"join task names in group names ('a+b') and to separate them in group files; "
                f"{where or 'rename the task'} (e.g. {fixed!r})"
            )


# ---------------------------------------------------------------- small helpers
def quoted_list(items: Iterable[Any], limit: int = 12) -> str:
    """``'a', 'b', 'c'`` with an ellipsis and a count past ``limit`` items."""
    items = [str(i) for i in items]
    text = ", ".join(repr(i) for i in items[:limit])
    if len(items) > limit:
        text += f", ... ({len(items)} in all)"
    return text


def chosen_tasks(tasks: Sequence[str] | None, known: Sequence[str], dataset: str, noun: str = "tasks") -> list[str]:
    """The tasks a built-in loader was asked for (all of ``known`` for None), checked against ``known``.

    Raises
    ------
    DataError
        A requested task is not one of ``known``; the message lists them.
    """
    names = list(tasks) if tasks is not None else list(known)
    unknown = [t for t in names if t not in known]
    if unknown:
        raise DataError(f"unknown {dataset} task(s) {unknown}{suggest_name(unknown[0], known)}; "
                        f"the {noun} are: {', '.join(known)}")
    return names


def python_scalar(value: Any) -> Any:
    """Numpy scalars to Python ones; integer-valued floats to int (0.0 -> 0)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def round_half_up(x: float) -> int:
    """``x`` rounded to the nearest integer, halves upwards (``round`` rounds halves to even)."""
    return int(math.floor(x + 0.5))


def standardise_by_training_rows(X: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X - mean) / std`` with the mean and std of the ``train`` rows only (std 1 for constant columns).

    Returns the scaled array and the per-column mean and std used.
    """
    mean = X[train].mean(axis=0)
    std = X[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (X - mean) / std, mean, std


def standardise_features(X: np.ndarray, train: np.ndarray, feature_axis: int = 1
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardise each entry of ``X``'s feature axis with statistics of the ``train`` rows only.

    For a table (2-D ``X``) this is :func:`standardise_by_training_rows`, column
    by column. For sequences (N x T x F, ``feature_axis=2``) each feature is
    pooled over the training rows and all timesteps; for images (N x C x H x W,
    ``feature_axis=1``) each channel over the training rows and all pixels.
    Constant features get std 1.

    Parameters
    ----------
    X : ndarray, shape (N, ...)
    train : ndarray of bool or int
        The training rows (a mask or indices).
    feature_axis : int
        The axis whose entries are scaled separately (:func:`~negtransfer.data.dataset.feature_axis_of`).

    Returns
    -------
    tuple of ndarray
        The scaled array (float64 for a table, ``X``'s float type otherwise), and
        the mean and std per feature (float64, computed in float64).
    """
    if X.ndim == 2:
        return standardise_by_training_rows(X, train)
    moved = np.moveaxis(X[train], feature_axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    mean = flat.mean(axis=0, dtype=np.float64)
    std = flat.std(axis=0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    shape = [1] * X.ndim
    shape[feature_axis] = -1
    scaled = (X - mean.reshape(shape).astype(X.dtype)) / std.reshape(shape).astype(X.dtype)
    return scaled, mean, std


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """The (train, validation, test) fractions as floats; a :class:`DataError` unless they are three finite
    non-negative numbers summing to 1 with a positive training fraction."""
    try:
        fr = tuple(float(f) for f in fractions)
    except (TypeError, ValueError):
        raise DataError(f"fractions must be three numbers (train, validation, test), got {fractions!r}") from None
    if len(fr) != 3 or any(not math.isfinite(f) or f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise DataError(
            f"fractions must be three non-negative numbers (train, validation, test) summing to 1, "
            f"got {tuple(fractions)!r}; e.g. (0.6, 0.2, 0.2)"
        )
    if fr[0] == 0:
        raise DataError("the training fraction must be positive, e.g. fractions=(0.6, 0.2, 0.2)")
    return fr


_PATTERN_CACHE: dict[tuple[float, float, float], np.ndarray] = {}


def _split_pattern(fractions: tuple[float, float, float], length: int) -> np.ndarray:
    """The proportional deal sequence: step k gives the split furthest behind its share.

    Any prefix of length m holds ``fractions * m`` of each split up to about one
    row; the first code is always train (so every stratum reaches training) and
    ties go to the earlier split.
    """
    cached = _PATTERN_CACHE.get(fractions)
    if cached is not None and len(cached) >= length:
        return cached[:length]
    size = max(length, 1024, 2 * len(cached) if cached is not None else 0)
    fr = np.asarray(fractions)
    counts = np.zeros(3)
    out = np.empty(size, dtype=np.int8)
    for k in range(size):
        s = TRAIN if k == 0 else int(np.argmax(fr * (k + 1) - counts))
        counts[s] += 1
        out[k] = s
    _PATTERN_CACHE[fractions] = out
    return out[:length]


def split_counts(n_rows: int, fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> tuple[int, int, int]:
    """Train, validation and test sizes that ``n_rows`` rows (one stratum) get.

    Parameters
    ----------
    n_rows : int
    fractions : sequence of 3 floats

    Returns
    -------
    tuple of int
        ``(n_train, n_validation, n_test)``, summing to ``n_rows``.
    """
    codes = _split_pattern(check_fractions(fractions), n_rows)
    counts = np.bincount(codes, minlength=3)
    return int(counts[TRAIN]), int(counts[VALIDATION]), int(counts[TEST])


def min_rows_for_split(fractions: Sequence[float] = (0.6, 0.2, 0.2)) -> int:
    """Fewest labelled rows a task needs: 2 for training, 1 for each other non-empty split.

    Parameters
    ----------
    fractions : sequence of 3 floats
        Train, validation and test fractions.

    Returns
    -------
    int
        4 for the default (0.6, 0.2, 0.2).
    """
    fr = check_fractions(fractions)
    need = np.array([2, 1 if fr[1] > 0 else 0, 1 if fr[2] > 0 else 0])
    n = 1
    while True:
        counts = np.bincount(_split_pattern(fr, n), minlength=3)
        if np.all(counts >= need):
            return n
        n += 1


def _split_word_counts(fractions: tuple[float, float, float], n: int) -> str:
    n_tr, n_va, n_te = split_counts(n, fractions)
    parts = [f"{n_tr} train"]
    if fractions[1] > 0:
        parts.append(f"{n_va} validation")
    if fractions[2] > 0:
        parts.append(f"{n_te} test")
    return ", ".join(parts)


# ---------------------------------------------------------------- task kinds
def infer_task_kind(labels: "pd.Series") -> str:
    """The task kind that a task's labelled values suggest.

    Parameters
    ----------
    labels : pandas.Series
        The task's labels; missing values are ignored.

    Returns
    -------
    {"binary", "multiclass", "regression"}
        Exactly two distinct values -> binary; non-numeric values, or at most
        :data:`MAX_INFERRED_CLASSES` distinct integer values -> multiclass;
        otherwise regression. Fewer than two distinct values is the caller's
        error to report.
    """
    import pandas as pd

    values = labels.dropna()
    n_unique = values.nunique()
    if n_unique == 2:
        return "binary"
    if not _is_numeric(values):
        return "multiclass"
    numeric = pd.to_numeric(values).to_numpy(dtype=np.float64)
    if n_unique <= MAX_INFERRED_CLASSES and np.all(np.isfinite(numeric)) and np.all(numeric == np.round(numeric)):
        return "multiclass"
    return "regression"


def _is_numeric(series: "pd.Series") -> bool:
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype))


def _sorted_classes(values: "pd.Series") -> list:
    uniques = [python_scalar(v) for v in values.dropna().unique()]
    if _is_numeric(values):
        return sorted(uniques, key=float)
    try:
        return sorted(uniques)
    except TypeError:  # mixed types in an object column
        return sorted(uniques, key=str)


def encode_task(name: str, labels: "pd.Series", kind: str | None) -> tuple[TaskSpec, np.ndarray, str]:
    """Spec and encoded float array (NaN = no label) for one task's label column.

    Regression standardisation happens later, once the split is known.
    """
    import pandas as pd

    present = labels.notna().to_numpy()
    if not present.any():
        raise DataError(
            f"task {name!r} has no labels (every value is missing); drop it from the tasks or fill in its labels"
        )
    values = labels[present]
    n_unique = values.nunique()
    if kind is None:
        if n_unique < 2:
            only = python_scalar(values.iloc[0])
            raise DataError(
                f"task {name!r} has a single label value ({only!r}) in all {int(present.sum())} labelled rows; "
                f"a task needs two classes or a varying target; drop the task or add rows with other labels"
            )
        kind = infer_task_kind(values)
        if kind == "multiclass" and not _is_numeric(values) and n_unique > MAX_NONNUMERIC_CLASSES:
            raise DataError(
                f"task {name!r} has {n_unique} distinct non-numeric labels (e.g. {quoted_list(values.unique()[:5])}); "
                f"is it an identifier column? Pick another label column, or pass task_kinds={{{name!r}: 'multiclass'}} "
                f"(--task-kinds {name}=multiclass) if you really mean {n_unique} classes"
            )
        how = "inferred"
    else:
        how = "given"
    out = np.full(len(labels), np.nan, dtype=np.float64)
    if kind == "regression":
        if not _is_numeric(values):
            bad = [v for v in values.unique() if pd.isna(pd.to_numeric(pd.Series([v]), errors="coerce")).all()]
            raise DataError(
                f"task {name!r} is a regression task but has non-numeric labels ({quoted_list(bad[:5])}); "
                f"clean the column, or use task_kinds={{{name!r}: 'multiclass'}}"
            )
        if n_unique < 2:
            raise DataError(
                f"regression task {name!r} has the same value ({python_scalar(values.iloc[0])!r}) in every "
                f"labelled row; there is nothing to predict; drop the task"
            )
        out[present] = pd.to_numeric(values).to_numpy(dtype=np.float64)
        return TaskSpec(name, "regression"), out, how
    classes = _sorted_classes(values)
    if kind == "binary" and len(classes) != 2:
        raise DataError(
            f"task {name!r} is declared binary but has {len(classes)} distinct labels ({quoted_list(classes)}); "
            f"binary needs exactly two; use task_kinds={{{name!r}: 'multiclass'}} or recode the labels"
        )
    if len(classes) < 2:
        raise DataError(
            f"task {name!r} has a single label value ({classes[0]!r}) in all {int(present.sum())} labelled rows; "
            f"a classification task needs at least two classes; drop the task or add rows with other labels"
        )
    lookup = {c: i for i, c in enumerate(classes)}
    out[present] = [lookup[python_scalar(v)] for v in values]
    return TaskSpec(name, kind, tuple(classes)), out, how  # type: ignore[arg-type]


# ---------------------------------------------------------------- splitting
def assign_splits(
    group_ids: np.ndarray,
    strata: np.ndarray,
    fractions: tuple[float, float, float],
    seed: int,
    order: np.ndarray | None,
) -> tuple[np.ndarray, list]:
    """Split codes per row; see the module docstring for the rule.

    ``group_ids`` and ``strata`` are integer codes per row (strata = -1: none).
    ``order`` (chronological split) ranks rows by time; None for a seeded shuffle.
    Returns the codes and the groups that fell back to an unstratified split.
    """
    n = len(group_ids)
    split = np.empty(n, dtype=np.int8)
    if order is not None:
        rank = np.empty(n, dtype=np.int64)
        rank[order] = np.arange(n)
    else:
        rank = np.empty(n, dtype=np.int64)
        rank[np.random.default_rng(seed).permutation(n)] = np.arange(n)
    fallback = []
    for g in np.unique(group_ids):
        rows = np.flatnonzero(group_ids == g)
        if order is not None:  # chronological: contiguous blocks, earliest rows train
            rows = rows[np.argsort(rank[rows], kind="stable")]
            codes = np.sort(_split_pattern(fractions, len(rows)), kind="stable")
            split[rows] = codes
            continue
        for s in np.unique(strata[rows]):
            in_s = rows[strata[rows] == s]
            in_s = in_s[np.argsort(rank[in_s], kind="stable")]
            split[in_s] = _split_pattern(fractions, len(in_s))
        got = np.bincount(split[rows], minlength=3)
        if len(np.unique(strata[rows])) > 1 and any(f > 0 and c == 0 for f, c in zip(fractions, got, strict=True)):
            rows = rows[np.argsort(rank[rows], kind="stable")]
            split[rows] = _split_pattern(fractions, len(rows))
            fallback.append(int(g))
    return split, fallback


# ---------------------------------------------------------------- columns
def _check_columns(frame: "pd.DataFrame") -> None:
    names = [str(c) for c in frame.columns]
    seen: dict[str, int] = {}
    for c in names:
        seen[c] = seen.get(c, 0) + 1
    dups = [c for c, k in seen.items() if k > 1]
    if dups:
        raise DataError(
            f"duplicate column name(s) {quoted_list(dups)}; every column needs a unique name, rename or drop the copies"
        )


def _require_columns(frame: "pd.DataFrame", wanted: Sequence[str], what: str) -> None:
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        hint = suggest_name(missing[0], list(frame.columns))
        raise DataError(
            f"{what} {quoted_list(missing)} not found in the data{hint}; the columns are: {quoted_list(frame.columns, 30)}"
        )


def _check_name_list(values: Sequence[str] | None, option: str) -> list[str] | None:
    if values is None:
        return None
    if isinstance(values, str):
        values = [values]
    values = [str(v) for v in values]
    dups = sorted({v for v in values if values.count(v) > 1})
    if dups:
        raise DataError(f"{option} lists {quoted_list(dups)} more than once; give each name once")
    return values


# ---------------------------------------------------------------- main entry
def dataset_from_frame(
    frame: "pd.DataFrame",
    *,
    tasks: Sequence[str] | None = None,
    features: Sequence[str] | None = None,
    task_column: str | None = None,
    label_column: str | None = None,
    task_kinds: Mapping[str, str] | None = None,
    impute: str | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    name: str = "data",
    info: Mapping[str, Any] | None = None,
    time_column: str | None = None,
) -> MultiTaskDataset:
    """Validate, encode, split and scale a table into a :class:`MultiTaskDataset`.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table. Row order matters for determinism (same table, same seed ->
        same split).
    tasks : sequence of str, optional
        Multi-label layout (no ``task_column``): the label columns, required.
        Per-task-rows layout: the values of ``task_column`` to keep (default: all,
        sorted); unknown values raise an error listing the known ones.
    features : sequence of str, optional
        Feature columns. Default: every column that is not a task, the task
        column, the label column or the time column.
    task_column : str, optional
        Column naming the task each row belongs to (per-task-rows layout).
    label_column : str, optional
        The label column of the per-task-rows layout (required with ``task_column``).
    task_kinds : mapping of str to {"binary", "multiclass", "regression"}, optional
        Overrides of the inferred kinds (see module docstring), by task name.
    impute : {None, "mean", "median"}
        Fill missing feature values with the training rows' mean or median.
        Without it, a missing feature value is an error.
    seed : int
        Fixes the split.
    fractions : (float, float, float)
        Train, validation and test fractions, summing to 1.
    name : str
        Dataset name.
    info : mapping, optional
        Provenance to record (source, license, ...); merged into ``dataset.info``.
    time_column : str, optional
        Split chronologically by this column instead of at random (per task for
        per-task rows); it is not a feature unless listed in ``features``.

    Returns
    -------
    MultiTaskDataset
        ``info`` records the layout, split rule, kinds (given or inferred),
        imputation and the training-split feature means and stds.

    Raises
    ------
    DataError
        For missing or duplicate columns, unknown tasks, overlapping roles,
        non-numeric or missing feature values, tasks without labels or with a
        single class in training, too few rows for the split, bad options.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"expected a pandas DataFrame, got {type(frame).__name__}")
    _check_columns(frame)
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    fr = check_fractions(fractions)
    if impute not in IMPUTE_CHOICES:
        raise DataError(f"impute must be 'mean', 'median' or None, got {impute!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    tasks = _check_name_list(tasks, "tasks")
    features = _check_name_list(features, "features")
    if frame.shape[0] == 0:
        raise DataError("the table has no rows below its header; add data rows")

    # the stages, in the order their errors are reported
    rows = _task_rows(frame, tasks, task_column, label_column, time_column)
    features = _feature_columns(rows, features, tasks, task_column, label_column)
    specs, Y, kinds_how = _encode_labels(rows, label_column, task_kinds)
    rows, Y, dropped = _drop_unlabelled(rows, Y)
    check_row_counts(Y, rows.task_names, fr)
    X, nan_cols = _feature_matrix(rows.frame, features, impute)
    split, stratified_by, fallback = _split_rows(rows, Y, specs, fr, seed, time_column)
    train = split == TRAIN
    warnings = check_split_labels(Y, specs, split, fr)
    specs = standardise_targets(Y, specs, train)
    X, mean, std, imputed = _impute_and_scale(X, nan_cols, features, impute, train)

    record = {
        "layout": rows.layout,
        "seed": seed,
        "fractions": list(fr),
        "split_rule": stratified_by,
        "split_fallback_unstratified": fallback,
        "task_kinds": kinds_how,
        "impute": impute,
        "imputed_values": imputed,
        "dropped_unlabelled_rows": dropped,
        "feature_scaling": "standardised with training-split mean and std (std 1 for constant features)",
        "feature_mean": mean.tolist(),
        "feature_std": std.tolist(),
        "warnings": warnings,
    }
    if rows.layout == "per-task-rows":
        record.update(task_column=task_column, label_column=label_column)
    if time_column is not None:
        record["time_column"] = time_column
    return MultiTaskDataset(
        name=name,
        tasks=tuple(specs),
        X=X,
        Y=Y,
        split=split,
        feature_names=tuple(features),
        row_task=rows.row_task,
        info={**dict(info or {}), **record},
    )


# ---------------------------------------------------------------- stages of dataset_from_frame
@dataclass
class _TaskRows:
    """The rows kept and the task of each: the layout stage's result."""

    layout: str  # "multi-label" or "per-task-rows"
    frame: "pd.DataFrame"
    task_names: list
    row_task: np.ndarray | None
    reserved: set


def _task_rows(frame, tasks, task_column, label_column, time_column) -> _TaskRows:
    """Layout, task names and (per-task rows) each row's task; rows of other tasks are dropped."""
    if time_column is not None:
        _require_columns(frame, [time_column], "time column")
    extra = {time_column} if time_column else set()
    if task_column is None:
        if label_column is not None:
            raise DataError(
                f"label_column={label_column!r} (label= in negtransfer.gains/group/sources/compare) needs "
                f"task_column (per-task rows); for one table with several label columns, name the label columns "
                f"in tasks instead"
            )
        if tasks is None:
            raise DataError("name the label columns: tasks=['a', 'b', ...] (on the command line: --tasks a,b)")
        if not tasks:
            raise DataError("the tasks list is empty; name at least one label column")
        _require_columns(frame, tasks, "task label column(s)" if len(tasks) > 1 else "task label column")
        check_task_names(tasks, "rename the label column (pandas: df.rename(columns={...}))")
        return _TaskRows("multi-label", frame, list(tasks), None, set(tasks) | extra)
    if label_column is None:
        raise DataError(
            f"task_column={task_column!r} needs label_column, the column that holds each row's label "
            f"(label='COL' in negtransfer.gains/group/sources/compare; on the command line: --label COL)"
        )
    _require_columns(frame, [task_column], "task column")
    _require_columns(frame, [label_column], "label column")
    if task_column == label_column:
        raise DataError(f"task_column and label_column are both {task_column!r}; they must be different columns")
    raw_tasks = frame[task_column]
    if raw_tasks.isna().any():
        bad_rows = np.flatnonzero(raw_tasks.isna().to_numpy())
        raise DataError(
            f"task column {task_column!r} is empty in {len(bad_rows)} row(s) (first rows: "
            f"{quoted_list(bad_rows[:5].tolist())}); every row needs a task: fill them in or drop those rows"
        )
    task_names = _per_task_names(raw_tasks, tasks, task_column)
    check_task_names(task_names, f"replace that value in column {task_column!r}")
    row_names = raw_tasks.map(lambda v: str(python_scalar(v)))
    keep = row_names.isin(task_names).to_numpy()
    lookup = {t: i for i, t in enumerate(task_names)}
    row_task = row_names[keep].map(lookup).to_numpy(dtype=np.int64)
    return _TaskRows("per-task-rows", frame.loc[keep], task_names, row_task, {task_column, label_column} | extra)


def _per_task_names(raw_tasks, tasks, task_column: str) -> list:
    """The task names of the per-task-rows layout: ``tasks``, checked, or every value of the task column, sorted."""
    try:
        known = sorted(raw_tasks.unique().tolist())
    except TypeError:
        known = sorted(raw_tasks.unique().tolist(), key=str)
    known_names = [str(python_scalar(v)) for v in known]
    if tasks is None:
        return known_names
    if not tasks:
        raise DataError(f"the tasks list is empty; name at least one value of {task_column!r}")
    unknown = [t for t in tasks if t not in known_names]
    if unknown:
        raise DataError(
            f"unknown task(s) {quoted_list(unknown)}{suggest_name(unknown[0], known_names)}: not values of "
            f"column {task_column!r}, whose tasks are: {quoted_list(known_names, 60)}"
        )
    return list(tasks)


def _feature_columns(rows: _TaskRows, features, tasks, task_column, label_column) -> list:
    """The feature columns: given (checked against the label and task columns) or every unreserved column."""
    if features is None:
        features = [c for c in rows.frame.columns if c not in rows.reserved]
        if not features:
            raise DataError("no feature columns are left once the task and label columns are set aside")
        return features
    if not features:
        raise DataError("the features list is empty; name at least one feature column or leave it out")
    _require_columns(rows.frame, features, "feature column(s)" if len(features) > 1 else "feature column")
    for role, cols in (
        ("task column", [task_column] if task_column else []),
        ("label column", [label_column] if label_column else []),
        ("task (label column)", tasks if rows.layout == "multi-label" else []),
    ):
        clash = [c for c in features if c in cols]
        if clash:
            raise DataError(
                f"{quoted_list(clash)} is both a {role} and a feature; drop it from the features "
                f"(a model must not see its own label or task id as input)"
            )
    return features


def _encode_labels(rows: _TaskRows, label_column, task_kinds):
    """Task specs, the encoded label matrix Y (NaN = no label) and how each kind was decided."""
    task_names = rows.task_names
    task_kinds = dict(task_kinds or {})
    unknown_kinds = [t for t in task_kinds if t not in task_names]
    if unknown_kinds:
        raise DataError(f"task_kinds (--task-kinds) names unknown task(s) {quoted_list(unknown_kinds)}; the tasks are: {quoted_list(task_names, 30)}")
    for t, k in task_kinds.items():
        if k not in TASK_KINDS:
            raise DataError(f"task_kinds[{t!r}] = {k!r}; use one of {', '.join(TASK_KINDS)}")
    frame = rows.frame
    Y = np.full((len(frame), len(task_names)), np.nan, dtype=np.float64)
    specs: list[TaskSpec] = []
    kinds_how: dict[str, str] = {}
    for j, t in enumerate(task_names):
        if rows.row_task is None:  # the multi-label layout
            spec, encoded, how = encode_task(t, frame[t], task_kinds.get(t))
            Y[:, j] = encoded
        else:
            mine = rows.row_task == j
            labels = frame[label_column][mine]
            if labels.notna().sum() == 0:
                raise DataError(
                    f"task {t!r} has no labels: all {int(mine.sum())} of its rows have no value in "
                    f"{label_column!r}; drop the task or fill in its labels"
                )
            spec, encoded, how = encode_task(t, labels, task_kinds.get(t))
            Y[mine, j] = encoded
        specs.append(spec)
        kinds_how[t] = f"{spec.kind} ({how})"
    return specs, Y, kinds_how


def _drop_unlabelled(rows: _TaskRows, Y: np.ndarray):
    """Rows without any label carry nothing to learn from: drop them (and count them)."""
    labelled = ~np.all(np.isnan(Y), axis=1)
    dropped = int((~labelled).sum())
    if not dropped:
        return rows, Y, 0
    row_task = rows.row_task[labelled] if rows.row_task is not None else None
    return replace(rows, frame=rows.frame.loc[labelled], row_task=row_task), Y[labelled], dropped


def check_row_counts(Y: np.ndarray, task_names: Sequence[str], fr: tuple[float, float, float]) -> None:
    """Enough labelled rows overall and per task for the split."""
    n_rows = Y.shape[0]
    need = min_rows_for_split(fr)
    label_counts = (~np.isnan(Y)).sum(axis=0)
    short = [(t, int(c)) for t, c in zip(task_names, label_counts, strict=True) if c < need]
    if n_rows < need:
        raise DataError(
            f"the data has {n_rows} labelled row(s); splitting with fractions {fr} needs at least {need} "
            f"({_split_word_counts(fr, need)}); add rows or change the fractions"
        )
    if short:
        t, c = short[0]
        more = f" (also {quoted_list([s for s, _ in short[1:]])})" if len(short) > 1 else ""
        raise DataError(
            f"task {t!r} has only {c} labelled row(s){more}; splitting with fractions {fr} needs at least "
            f"{need} labelled rows per task ({_split_word_counts(fr, need)}); add rows, drop the task, "
            f"or change the fractions"
        )


def _feature_matrix(frame, features: list, impute):
    """The features as a float64 matrix: numeric, finite, NaN only with imputation; and its NaN columns."""
    import pandas as pd

    non_numeric = [c for c in features if not _is_numeric(frame[c])]
    if non_numeric:
        examples = frame[non_numeric[0]].dropna()
        not_numbers = examples[pd.to_numeric(examples, errors="coerce").isna()]
        examples = not_numbers if len(not_numbers) else examples
        example = f" (e.g. {examples.iloc[0]!r} in {non_numeric[0]!r})" if len(examples) else ""
        raise DataError(
            f"non-numeric feature column(s) {quoted_list(non_numeric)}{example}; features must be numbers: "
            f"encode them (e.g. one-hot with pandas.get_dummies) or leave them out with features=[...] "
            f"(--features)"
        )
    # a copy: under pandas copy-on-write, to_numpy may hand back a read-only view
    X = np.array(frame[features].to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64, copy=True)
    nan_cols = np.isnan(X).any(axis=0)
    if nan_cols.any() and impute is None:
        counts = np.isnan(X).sum(axis=0)
        bad = [f"{features[i]} ({counts[i]} missing)" for i in np.flatnonzero(nan_cols)]
        raise DataError(
            f"missing values in feature column(s) {quoted_list(bad)}; fill them, drop those rows or columns, "
            f"or impute from the training rows with impute='mean' or 'median' (--impute mean)"
        )
    inf_cols = np.isinf(X).any(axis=0)
    if inf_cols.any():
        raise DataError(
            f"infinite values in feature column(s) {quoted_list([features[i] for i in np.flatnonzero(inf_cols)])}; "
            f"replace them with finite numbers or NaN (and impute)"
        )
    return X, nan_cols


def split_strata(row_task: np.ndarray | None, task_names: Sequence[str], Y: np.ndarray,
                 specs: Sequence[TaskSpec]) -> tuple[np.ndarray, np.ndarray, str]:
    """Split groups and strata per row, and the rule in words (see the module docstring).

    Parameters
    ----------
    row_task : ndarray of int, shape (N,), or None
        Each row's task (per-task rows); None for the multi-label layout.
    task_names : sequence of str
    Y : ndarray, shape (N, n)
        Encoded labels (NaN = no label).
    specs : sequence of TaskSpec

    Returns
    -------
    tuple
        ``(group_ids, strata, rule)`` for :func:`assign_splits`.
    """
    n_rows = Y.shape[0]
    strata = np.full(n_rows, -1, dtype=np.int64)
    if row_task is not None:  # the per-task-rows layout
        for j, spec in enumerate(specs):
            if spec.kind != "regression":
                mine = row_task == j
                strata[mine] = Y[mine, j].astype(np.int64)
        return row_task, strata, "task, and class within classification tasks"
    rarest = None
    for j, spec in enumerate(specs):
        if spec.kind == "regression":
            continue
        col = Y[:, j]
        counts = np.bincount(col[~np.isnan(col)].astype(np.int64), minlength=spec.n_classes)
        smallest = int(counts.min())
        if rarest is None or smallest < rarest[1]:
            rarest = (j, smallest)
    group_ids = np.zeros(n_rows, dtype=np.int64)
    if rarest is None:
        return group_ids, strata, "nothing (regression tasks only)"
    col = Y[:, rarest[0]]
    strata = np.where(np.isnan(col), -2, np.nan_to_num(col, nan=0)).astype(np.int64)
    return group_ids, strata, f"label of the rarest classification task {task_names[rarest[0]]!r}"


def _split_rows(rows: _TaskRows, Y, specs, fr, seed: int, time_column):
    """Split codes per row, the rule in words, and the tasks (groups) that fell back to an unstratified split."""
    group_ids, strata, stratified_by = split_strata(rows.row_task, rows.task_names, Y, specs)
    order = None
    if time_column is not None:
        times = rows.frame[time_column]
        if times.isna().any():
            raise DataError(f"time column {time_column!r} has missing values; fill them or drop those rows")
        order = np.argsort(times.to_numpy(), kind="stable")
        stratified_by = f"chronological by {time_column!r} (per task)" if rows.layout == "per-task-rows" else (
            f"chronological by {time_column!r}"
        )
    split, fallback = assign_splits(group_ids, strata, fr, seed, order)
    if fallback:
        fallback = [rows.task_names[g] for g in fallback] if rows.layout == "per-task-rows" else ["all rows"]
    return split, stratified_by, fallback


def check_split_labels(Y: np.ndarray, specs: list, split: np.ndarray, fr) -> list[str]:
    """Every task has labelled training rows with two classes (errors); gaps elsewhere are warnings."""
    train = split == TRAIN
    warnings: list[str] = []
    for j, spec in enumerate(specs):
        col = Y[:, j]
        has = ~np.isnan(col)
        if not (has & train).any():
            raise DataError(
                f"task {spec.name!r} has no labelled rows in its training split; add labelled rows for it"
            )
        for code, word in ((VALIDATION, "validation"), (TEST, "test")):
            if fr[code] > 0 and not (has & (split == code)).any():
                warnings.append(f"task {spec.name!r} has no labelled rows in the {word} split")
        if spec.kind == "regression":
            continue
        present = np.unique(col[has & train]).astype(np.int64)
        if len(present) < 2:
            cls = spec.classes[present[0]]
            n_lab = int(has.sum())
            raise DataError(
                f"task {spec.name!r} has only class {cls!r} in its training split ({int((has & train).sum())} "
                f"training labels of {n_lab}); a classification task needs two classes to train: add rows "
                f"with other labels, try another seed or fractions, or drop the task"
            )
        if len(present) < spec.n_classes:
            missing = [spec.classes[i] for i in range(spec.n_classes) if i not in set(present.tolist())]
            warnings.append(f"task {spec.name!r}: class(es) {quoted_list(missing)} never occur in the training split")
    return warnings


def standardise_targets(Y: np.ndarray, specs: list, train: np.ndarray) -> list:
    """Regression targets standardised in place with training statistics; the specs record them."""
    specs = list(specs)
    for j, spec in enumerate(specs):
        if spec.kind != "regression":
            continue
        col = Y[:, j]
        tr = col[train & ~np.isnan(col)]
        mean = float(tr.mean())
        std = float(tr.std())
        if not std > 0:
            std = 1.0
        Y[:, j] = (col - mean) / std
        specs[j] = TaskSpec(spec.name, "regression", (), mean, std)
    return specs


def _impute_and_scale(X: np.ndarray, nan_cols: np.ndarray, features: list, impute, train: np.ndarray):
    """Fill missing features with the training rows' mean or median, then standardise with training statistics."""
    imputed: dict[str, int] = {}
    if impute is not None and nan_cols.any():
        Xtr = X[train]
        for i in np.flatnonzero(nan_cols):
            col_tr = Xtr[:, i]
            if np.isnan(col_tr).all():
                raise DataError(
                    f"feature {features[i]!r} has no values in the training split, so it cannot be imputed; "
                    f"leave it out with features=[...] (--features)"
                )
            fill = float(np.nanmean(col_tr) if impute == "mean" else np.nanmedian(col_tr))
            miss = np.isnan(X[:, i])
            imputed[features[i]] = int(miss.sum())
            X[miss, i] = fill
    X, mean, std = standardise_by_training_rows(X, train)
    return X, mean, std, imputed
