"""Datasets from arrays of any shape: tables, sequences, images; and the ``.npz`` file format.

:func:`dataset_from_arrays` turns ``X`` (N, ...) and ``Y`` (N, T) into a
:class:`~negtransfer.data.dataset.MultiTaskDataset` with the same label,
split and scaling rules as tables (``negtransfer.data.build``); :func:`load_npz`
reads the same arrays from one ``.npz`` file (``--data FILE.npz``).

The ``.npz`` format (``numpy.savez(path, X=..., Y=..., ...)``)
    ``X`` (required)
        (N, ...) numbers: (N, d) a table, (N, T, F) sequences, (N, C, H, W)
        images (channels first). No NaN: fill missing inputs before saving.
    ``Y`` (required)
        (N, T) numbers, one column per task, NaN where a task has no label.
        Labels as in tables: two distinct values make a binary task, at most
        10 distinct integers a multiclass one, anything else a regression
        task (``task_kinds`` overrides).
    ``tasks`` (optional)
        (T,) strings, the task names; default ``task0`` .. ``task{T-1}``.
    ``split`` (optional)
        (N,) integers 0 (train), 1 (validation), 2 (test), every code used;
        without it the rows are split with the seed as tables are.
    ``row_task`` (optional): the per-task-rows form
        (N,) the task of each row, as an index into the tasks (0 .. T-1) or as
        a task name. ``Y`` is then either (N,), each row's label for its own
        task, or (N, T) with NaN outside the row's task column. Without
        ``tasks``, names in ``row_task`` become the tasks (sorted).
    ``task_kinds`` (optional)
        (T,) strings ``binary``, ``multiclass`` or ``regression``, or ``""`` to
        infer that task's kind.
    ``feature_names`` (optional)
        Names of the feature axis: the d columns of a table, the F features of
        a sequence, the C channels of an image.

Strings must be NumPy string arrays (``np.array(names, dtype=str)``): object
arrays need pickle, which negtransfer does not load.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from negtransfer.data.build import (
    DataError,
    assign_splits,
    check_fractions,
    check_row_counts,
    check_split_labels,
    check_task_names,
    encode_task,
    quoted_list,
    split_strata,
    standardise_features,
    standardise_targets,
    suggest_name,
)
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset, feature_axis_of

__all__ = ["NPZ_ARRAYS", "SCALE_CHOICES", "arrays_kind", "dataset_from_arrays", "load_npz"]

#: The arrays a ``.npz`` data file may hold (``X`` and ``Y`` required).
NPZ_ARRAYS = ("X", "Y", "tasks", "split", "row_task", "task_kinds", "feature_names")
SCALE_CHOICES = ("standard", "none")


def arrays_kind(ndim: int) -> str | None:
    """The data kind that ``X``'s number of axes implies: "sequences" (3), "images" (4 or more), None for tables."""
    if ndim == 3:
        return "sequences"
    if ndim >= 4:
        return "images"
    return None


# ------------------------------------------------------------------ checks
def _numeric(array: np.ndarray, what: str, fix: str, dtype: type = np.float64) -> np.ndarray:
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise DataError(f"{what} holds {array.dtype} values, not numbers; {fix}")
    return array.astype(dtype, copy=False)


def _check_X(X: Any) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim < 2:
        raise DataError(f"X has shape {X.shape}; it needs a row axis and at least one more: (N, d) features, "
                        f"(N, T, F) sequences or (N, C, H, W) images (one feature per row: X[:, None])")
    if X.shape[0] == 0 or X[0].size == 0:
        raise DataError(f"X has shape {X.shape}: no rows or no values per row; give at least one value per example")
    # images and sequences are held in float32 (as the dataset stores them; half the memory), tables in float64
    # (as tables from a frame are, so that both give the same numbers)
    X = _numeric(X, "X", "encode the inputs as numbers", np.float64 if X.ndim == 2 else np.float32)
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.flatnonzero(bad.reshape(len(X), -1).any(axis=1))
        raise DataError(f"X has {int(bad.sum())} NaN or infinite value(s) in {len(rows)} row(s) (first rows: "
                        f"{quoted_list(rows[:5].tolist())}); fill or drop them before saving")
    return X


def _strings(values: Any) -> list[str]:
    array = np.asarray(values).reshape(-1)
    return [v.decode() if isinstance(v, bytes) else str(v) for v in array.tolist()]


def _check_names(values: Any, what: str, count: int, where: str) -> list[str]:
    names = _strings(values)
    if len(names) != count:
        raise DataError(f"{what} has {len(names)} name(s) but {where} has {count}; give one name each")
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise DataError(f"{what} names {quoted_list(dups)} more than once; names must be unique")
    return names


def _per_task_rows(Y: np.ndarray, row_task: Any, task_names: list[str] | None) -> tuple[np.ndarray, np.ndarray, list]:
    """``(Y (N, T), row_task as indices, task names)`` of the per-task-rows form; see the module docstring."""
    raw = np.asarray(row_task).reshape(-1) if np.ndim(row_task) == 2 and np.shape(row_task)[1] == 1 else np.asarray(row_task)
    if raw.ndim != 1 or raw.shape[0] != Y.shape[0]:
        raise DataError(f"row_task has shape {raw.shape} but Y has {Y.shape[0]} rows; give one task per row")
    if np.issubdtype(raw.dtype, np.integer):
        n_tasks = len(task_names) if task_names is not None else (Y.shape[1] if Y.ndim == 2 else int(raw.max()) + 1)
        if raw.min() < 0 or raw.max() >= n_tasks:
            raise DataError(f"row_task holds task indices {int(raw.min())} .. {int(raw.max())} but there are "
                            f"{n_tasks} tasks; use 0 .. {n_tasks - 1}, or task names")
        index = raw.astype(np.int64)
        names = task_names if task_names is not None else [f"task{j}" for j in range(n_tasks)]
    elif raw.dtype.kind in "US":
        if task_names is None and Y.ndim == 2:
            raise DataError("row_task names the tasks but Y is (N, T) without tasks naming its columns; add tasks "
                            "(the names of Y's columns, in order) or give Y as (N,), each row's own label")
        labels = _strings(raw)
        names = task_names if task_names is not None else sorted(set(labels))
        lookup = {n: j for j, n in enumerate(names)}
        unknown = sorted({v for v in labels if v not in lookup})
        if unknown:
            raise DataError(f"row_task names task(s) {quoted_list(unknown)} that are not in tasks "
                            f"({quoted_list(names)}); add them to tasks or fix row_task")
        index = np.array([lookup[v] for v in labels], dtype=np.int64)
    else:
        raise DataError(f"row_task holds {raw.dtype} values; give task indices (integers) or task names (strings)")
    if Y.ndim == 1:
        full = np.full((len(Y), len(names)), np.nan)
        full[np.arange(len(Y)), index] = Y
        return full, index, names
    if Y.shape[1] != len(names):
        raise DataError(f"Y has {Y.shape[1]} columns but there are {len(names)} tasks; give Y as (N, T) or as "
                        f"(N,) with each row's own label")
    off_task = ~np.isnan(Y)
    off_task[np.arange(len(Y)), index] = False
    if off_task.any():
        row = int(np.flatnonzero(off_task.any(axis=1))[0])
        raise DataError(f"row {row} belongs to task {names[index[row]]!r} (row_task) but Y also labels it for "
                        f"another task; with row_task, Y is NaN outside each row's own task (or give Y as (N,))")
    return Y, index, names


def _check_split(split: Any, n_rows: int) -> np.ndarray:
    codes = np.asarray(split)
    if codes.ndim != 1 or codes.shape[0] != n_rows:
        raise DataError(f"split has shape {codes.shape} but X has {n_rows} rows; give one code per row")
    if not np.issubdtype(codes.dtype, np.integer) and not (
        np.issubdtype(codes.dtype, np.floating) and np.all(np.isfinite(codes)) and np.all(codes == np.round(codes))
    ):
        raise DataError(f"split holds {codes.dtype} values; use the integers 0 (train), 1 (validation), 2 (test)")
    codes = codes.astype(np.int64)
    bad = sorted(set(np.unique(codes).tolist()) - {TRAIN, VALIDATION, TEST})
    if bad:
        raise DataError(f"split holds code(s) {', '.join(map(str, bad))}; use 0 (train), 1 (validation), 2 (test)")
    missing = [word for code, word in ((TRAIN, "train (0)"), (VALIDATION, "validation (1)"), (TEST, "test (2)"))
               if not (codes == code).any()]
    if missing:
        raise DataError(f"split has no {' or '.join(missing)} rows; the trainer fits on train, stops early on "
                        f"validation and reports test: give rows each code, or leave split out for a seeded split")
    return codes.astype(np.int8)


def _kinds(task_kinds: Mapping[str, str] | Sequence[str] | None, names: list[str]) -> dict[str, str]:
    if task_kinds is None:
        return {}
    if isinstance(task_kinds, Mapping):
        kinds = {str(k): str(v) for k, v in task_kinds.items()}
    else:
        values = _strings(task_kinds)
        if len(values) != len(names):
            raise DataError(f"task_kinds has {len(values)} entries but there are {len(names)} tasks; give one kind "
                            f"per task ('' to infer it)")
        kinds = {n: v for n, v in zip(names, values, strict=True) if v}
    unknown = [t for t in kinds if t not in names]
    if unknown:
        raise DataError(f"task_kinds names unknown task(s) {quoted_list(unknown)}; the tasks are: {quoted_list(names, 30)}")
    return kinds


def _select(Y: np.ndarray, names: list[str], row_task: np.ndarray | None, wanted: Sequence[str] | None):
    """Keep the ``wanted`` tasks (in that order): columns of Y, remapped row_task; and the kept rows (or None)."""
    if wanted is None:
        return Y, names, row_task, None
    wanted = [str(t) for t in ([wanted] if isinstance(wanted, str) else wanted)]
    unknown = [t for t in wanted if t not in names]
    if unknown:
        raise DataError(f"unknown task(s) {quoted_list(unknown)}{suggest_name(unknown[0], names)}; the tasks are: "
                        f"{quoted_list(names, 60)}")
    if not wanted:
        raise DataError("the tasks list is empty; name at least one task")
    if len(set(wanted)) != len(wanted):
        raise DataError(f"tasks names a task twice: {quoted_list(wanted)}")
    idx = [names.index(t) for t in wanted]
    if row_task is None:
        return Y[:, idx], wanted, None, None
    remap = np.full(len(names), -1, dtype=np.int64)
    remap[idx] = np.arange(len(idx))
    keep = remap[row_task] >= 0
    return Y[keep][:, idx], wanted, remap[row_task[keep]], keep


def _layout(Y: np.ndarray, row_task: Any, task_names: Sequence[str] | np.ndarray | None):
    """``(Y (N, T), row task indices or None, task names, layout)`` from the given labels and per-row tasks."""
    names = None if task_names is None else _check_names(
        task_names, "tasks", Y.shape[1] if Y.ndim == 2 else len(task_names), "Y")
    if row_task is not None:
        Y, row_index, names = _per_task_rows(Y, row_task, names)
        return Y, row_index, names, "per-task-rows"
    if Y.ndim != 2:
        raise DataError(f"Y has shape {Y.shape}; give it as (N, T), one column per task (one task: Y[:, None]), "
                        f"or add row_task for the per-task-rows form")
    return Y, None, names if names is not None else [f"task{j}" for j in range(Y.shape[1])], "multi-label"


def _encode(Y: np.ndarray, names: list[str], kinds: Mapping[str, str]):
    """Task specs, encoded labels (NaN = no label) and how each kind was decided, column by column."""
    import pandas as pd

    specs, kinds_how = [], {}
    encoded = np.full(Y.shape, np.nan)
    for j, task in enumerate(names):
        spec, encoded[:, j], how = encode_task(task, pd.Series(Y[:, j]), kinds.get(task))
        specs.append(spec)
        kinds_how[task] = f"{spec.kind} ({how})"
    return specs, encoded, kinds_how


def _scale(X: np.ndarray, train: np.ndarray, axis: int, scale: str, record: dict) -> np.ndarray:
    """X standardised per feature with training statistics (``scale="standard"``) or as given; notes it in ``record``."""
    if scale != "standard":
        record["feature_scaling"] = "none (X used as given)"
        return X
    X, mean, std = standardise_features(X, train, axis)
    what = {2: "column", 3: "feature, pooled over all timesteps"}.get(X.ndim, "channel, pooled over all pixels")
    record.update(feature_scaling=f"standardised per {what} with training-split mean and std (std 1 if constant)",
                  feature_mean=mean.tolist(), feature_std=std.tolist())
    return X


# ------------------------------------------------------------------ entry points
def dataset_from_arrays(
    X: Any,
    Y: Any,
    *,
    task_names: Sequence[str] | np.ndarray | None = None,
    tasks: Sequence[str] | None = None,
    split: Any = None,
    row_task: Any = None,
    task_kinds: Mapping[str, str] | Sequence[str] | None = None,
    feature_names: Sequence[str] | np.ndarray | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    scale: str = "standard",
    name: str = "arrays",
    info: Mapping[str, Any] | None = None,
) -> MultiTaskDataset:
    """Validate, encode, split and scale arrays of any shape into a :class:`MultiTaskDataset`.

    Parameters
    ----------
    X : array, shape (N, ...)
        (N, d) a table, (N, T, F) sequences, (N, C, H, W) images; finite numbers.
    Y : array, shape (N, T), or (N,) with ``row_task``
        Labels, NaN = no label (see the module docstring for the kinds).
    task_names : sequence of str, optional
        Names of Y's columns; default ``task0`` .. (or the names in ``row_task``).
    tasks : sequence of str, optional
        Keep only these tasks, in this order (``--tasks``); rows left without a
        label are dropped.
    split : array of int, shape (N,), optional
        0 train, 1 validation, 2 test (each used); default a seeded split with
        the table rules (stratified by the rarest classification task, or by
        task and class for per-task rows).
    row_task : array, shape (N,), optional
        The per-task-rows form: each row's task (index or name).
    task_kinds : mapping or sequence of str, optional
        Kinds by task name, or one per task ("" infers it).
    feature_names : sequence of str, optional
        Names of the feature axis (columns, sequence features or image
        channels); default ``f0``, ``f1``, ...
    seed : int
        Fixes the split when ``split`` is not given.
    fractions : (float, float, float)
        Train, validation and test fractions of the seeded split.
    scale : {"standard", "none"}
        "standard": each feature (column; sequence feature over all steps;
        image channel over all pixels) standardised with the training rows'
        mean and std; "none": X as given.
    name : str
    info : mapping, optional
        Provenance merged into ``dataset.info``.

    Returns
    -------
    MultiTaskDataset
        ``info`` records the layout, the data kind (``sequences`` or ``images``
        for X with more than 2 axes), split rule, kinds, dropped rows and the
        scaling statistics.

    Raises
    ------
    DataError
        Every bad array or option, named with its fix.
    """
    if scale not in SCALE_CHOICES:
        raise DataError(f"scale must be one of {', '.join(SCALE_CHOICES)}, got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    X = _check_X(X)
    axis = feature_axis_of(X.ndim)
    features = _check_names([f"f{i}" for i in range(X.shape[axis])] if feature_names is None else feature_names,
                            "feature_names", X.shape[axis], f"X's feature axis (axis {axis}) of shape {X.shape}")
    Y = _numeric(np.asarray(Y), "Y", "encode class labels as numbers 0 .. k-1 (NaN = no label)")
    if Y.shape[:1] != X.shape[:1]:
        raise DataError(f"X has {X.shape[0]} rows but Y has shape {Y.shape}; give one label row per example")
    if np.isinf(Y).any():
        raise DataError("Y holds infinite values; use finite labels, NaN where a task has no label")
    Y, row_index, names, layout = _layout(Y, row_task, task_names)
    check_task_names(names, "rename the task in tasks")
    kinds = _kinds(task_kinds, names)
    given_split = None if split is None else _check_split(split, X.shape[0])
    Y, names, row_index, kept = _select(Y, names, row_index, tasks)
    if kept is not None:
        X = X[kept]
        given_split = given_split[kept] if given_split is not None else None

    specs, encoded, kinds_how = _encode(Y, names, kinds)
    labelled = ~np.all(np.isnan(encoded), axis=1)
    dropped = int((~labelled).sum())
    if dropped:
        X, encoded = X[labelled], encoded[labelled]
        row_index = row_index[labelled] if row_index is not None else None
        given_split = given_split[labelled] if given_split is not None else None
    if given_split is None:
        fr = check_fractions(fractions)
        check_row_counts(encoded, names, fr)
        group_ids, strata, rule = split_strata(row_index, names, encoded, specs)
        split_codes, fallback = assign_splits(group_ids, strata, fr, int(seed), None)
        split_rule: Any = rule
    else:
        split_codes, fallback = given_split, []
        fr = (1.0, 1.0, 1.0)  # _check_split guarantees rows of every code
        split_rule = "given (the file's split array)"
    warnings = check_split_labels(encoded, specs, split_codes, fr)
    train = split_codes == TRAIN
    specs = standardise_targets(encoded, specs, train)
    record: dict[str, Any] = {
        "layout": layout,
        "input_shape": list(X.shape[1:]),
        "seed": int(seed),
        "split_rule": split_rule,
        "split_fallback_unstratified": ["all rows"] if fallback and row_index is None else
        [names[g] for g in fallback],
        "task_kinds": kinds_how,
        "dropped_unlabelled_rows": dropped,
        "warnings": warnings,
    }
    if given_split is None:
        record["fractions"] = list(fr)
    kind = arrays_kind(X.ndim)
    if kind is not None:
        record["data_kind"] = kind
    X = _scale(X, train, axis, scale, record)
    return MultiTaskDataset(name=name, tasks=tuple(specs), X=X, Y=encoded, split=split_codes,
                            feature_names=tuple(features), row_task=row_index, info={**dict(info or {}), **record})


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, with errors that name the array and the fix."""
    shown = str(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read {shown!r} as a NumPy .npz file ({' '.join(str(exc).split())[:160]}); save the "
                        f"arrays with numpy.savez(path, X=X, Y=Y)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{shown!r} holds a single array, not named arrays; save with numpy.savez(path, X=X, Y=Y)")
    with archive:
        unknown = [k for k in archive.files if k not in NPZ_ARRAYS]
        if unknown:
            lower = {a.lower(): a for a in NPZ_ARRAYS}
            hints = [f"{k!r} -> {lower[k.lower()]!r}" for k in unknown if k.lower() in lower]
            hint = f" (rename {', '.join(hints)}: names are case-sensitive)" if hints else ""
            raise DataError(f"{shown!r} holds unknown array(s) {quoted_list(unknown)}{hint}; a data file holds "
                            f"{', '.join(NPZ_ARRAYS)} (X and Y required)")
        missing = [k for k in ("X", "Y") if k not in archive.files]
        if missing:
            raise DataError(f"{shown!r} has no array {' and no '.join(repr(k) for k in missing)}; save it with "
                            f"numpy.savez(path, X=X, Y=Y) (X: (N, ...) inputs, Y: (N, T) labels, NaN = no label)")
        arrays = {}
        for key in archive.files:
            try:
                arrays[key] = archive[key]
            except ValueError:
                raise DataError(f"array {key!r} of {shown!r} is stored as Python objects (pickled), which negtransfer "
                                f"does not load; save it as a NumPy array of numbers or strings, e.g. "
                                f"np.array(names, dtype=str)") from None
            except (OSError, zipfile.BadZipFile, EOFError) as exc:
                raise DataError(f"array {key!r} of {shown!r} is damaged ({exc}); save the file again") from None
    return arrays


def load_npz(
    path: str | Path,
    *,
    tasks: Sequence[str] | None = None,
    task_kinds: Mapping[str, str] | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    scale: str = "standard",
    name: str | None = None,
    info: Mapping[str, Any] | None = None,
) -> MultiTaskDataset:
    """Load a ``.npz`` data file (the format in the module docstring).

    Parameters
    ----------
    path : str or Path
    tasks : sequence of str, optional
        Keep only these tasks (``--tasks``).
    task_kinds : mapping of str to str, optional
        Overrides the file's ``task_kinds`` and the inferred kinds (``--task-kinds``).
    seed, fractions, scale
        As in :func:`dataset_from_arrays` (the seed and fractions apply when the
        file has no ``split``).
    name : str, optional
        Default: the file name without ``.npz``.
    info : mapping, optional

    Returns
    -------
    MultiTaskDataset

    Raises
    ------
    FileNotFoundError
        No such file.
    DataError
        An unreadable file, unknown, missing, pickled or malformed arrays.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {str(path)!r} not found")
    arrays = _read_npz(path)
    file_kinds = arrays.get("task_kinds")
    kinds: Any = file_kinds
    if task_kinds:
        names = arrays.get("tasks")
        base = {} if file_kinds is None or names is None else {
            n: k for n, k in zip(_strings(names), _strings(file_kinds), strict=False) if k}
        kinds = {**base, **dict(task_kinds)}
    stem = path.name[: -len(".npz")] if path.name.lower().endswith(".npz") else path.stem
    return dataset_from_arrays(
        arrays["X"], arrays["Y"], task_names=arrays.get("tasks"), tasks=tasks, split=arrays.get("split"),
        row_task=arrays.get("row_task"), task_kinds=kinds, feature_names=arrays.get("feature_names"), seed=seed,
        fractions=fractions, scale=scale, name=name or stem,
        info={"source": str(path.resolve()), "format": "npz (X, Y, tasks, split, row_task)",
              "license": "user data (your own terms)", **dict(info or {})},
    )
