"""The ETAP public code's ``Task_Splits`` folder format, as a per-task-rows dataset.

The public code of Ayman, Mukhopadhyay and Laszka, "Ensemble Prediction of Task
Affinity for Efficient Multi-Task Learning" (ICLR 2026), stores each task of
its Chemical (MHC-I) benchmark as four NumPy files in one folder::

    <task>_X_train.npy   (rows, features)  features of the task's training rows
    <task>_y_train.npy   (rows,) or (rows, 1)  labels
    <task>_X_test.npy    (rows, features)
    <task>_y_test.npy

Every task has its own rows (the per-task-rows layout of
:class:`~negtransfer.data.dataset.MultiTaskDataset`), all tasks share the
feature columns. :func:`load_task_splits` keeps the given test split and, as
that code does, holds out a stratified 10% of each task's training rows for
validation. The public code always draws that validation split with
``random_state=42``; here the ``seed`` draws it, so that, as everywhere in
negtransfer, a seed fixes the splits (pass ``seed=42`` for a split of the same
size and kind; the rows differ, scikit-learn's shuffle is not reproduced).

Features are used as stored when every value is 0 or 1 (the Chemical features
are binary fingerprints, and the public code feeds them raw); otherwise they
are standardised with the training rows' mean and std (``scale="auto"``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from negtransfer.data.build import DataError, assign_splits, encode_task, quoted_list, standardise_by_training_rows
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset, TaskSpec

__all__ = ["is_task_splits_folder", "load_task_splits", "task_splits_tasks"]

_PARTS = ("X_train", "y_train", "X_test", "y_test")
_FILE = re.compile(r"^(?P<task>.+)_(?P<part>X_train|y_train|X_test|y_test)\.npy$")
SCALE_CHOICES = ("auto", "standard", "none")


def _task_sort_key(name: str):
    return (0, int(name), "") if name.isdigit() else (1, 0, name)


def task_splits_tasks(folder: str | Path) -> list[str]:
    """Task names found in a ``Task_Splits`` folder (numeric names in numeric order).

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    list of str
        Every ``<task>`` with at least one ``<task>_<part>.npy`` file.
    """
    names = set()
    for path in Path(folder).iterdir():
        match = _FILE.match(path.name)
        if match:
            names.add(match.group("task"))
    return sorted(names, key=_task_sort_key)


def is_task_splits_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding at least one ``<task>_X_train.npy``."""
    path = Path(path)
    return path.is_dir() and any(path.glob("*_X_train.npy"))


def _load_array(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {str(path)!r} ({what}) as a NumPy .npy array: {exc}") from None


def _task_names(folder: Path, tasks, found: list) -> list:
    """The tasks to load: ``tasks`` (checked against the folder's) or every task found."""
    if tasks is None:
        return found
    names = [str(t) for t in tasks]
    unknown = [t for t in names if t not in found]
    if unknown:
        raise DataError(f"unknown task(s) {quoted_list(unknown)} in {str(folder)!r}; its tasks are: {quoted_list(found, 60)}")
    if len(set(names)) != len(names):
        raise DataError(f"tasks names a task twice: {quoted_list(names)}")
    return names


def _task_arrays(folder: Path, task: str) -> list:
    """``[("train", X, y), ("test", X, y)]`` of one task, read and checked (shapes, rows, finite numbers)."""
    arrays = {}
    for part in _PARTS:
        path = folder / f"{task}_{part}.npy"
        if not path.exists():
            raise DataError(f"task {task!r} has no {path.name} in {str(folder)!r}; every task needs all four files")
        arrays[part] = _load_array(path, f"task {task!r} {part}")
    out = []
    for which in ("train", "test"):
        X, y = arrays[f"X_{which}"], arrays[f"y_{which}"]
        if X.ndim != 2:
            raise DataError(f"{task}_X_{which}.npy must be 2-D (rows x features), got shape {X.shape}")
        y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise DataError(
                f"{task}_y_{which}.npy has shape {arrays[f'y_{which}'].shape} but {task}_X_{which}.npy has "
                f"{X.shape[0]} rows; labels must be one value per row"
            )
        if X.shape[0] == 0:
            raise DataError(f"{task}_X_{which}.npy has no rows")
        if not np.issubdtype(X.dtype, np.number) or not np.isfinite(X.astype(np.float64)).all():
            raise DataError(f"{task}_X_{which}.npy must hold finite numbers")
        out.append((which, X, y))
    return out


def _labels(names, labels, row_task, split, seed, validation_fraction):
    """Encoded labels Y and task specs; draws the validation rows into ``split`` (in place) and standardises
    regression targets with the training rows' statistics."""
    import pandas as pd

    Y = np.full((len(row_task), len(names)), np.nan)
    specs: list[TaskSpec] = []
    for j, task in enumerate(names):
        mine = row_task == j
        try:
            values = pd.Series(pd.to_numeric(pd.Series(labels[mine]), errors="raise"))
        except (TypeError, ValueError):
            values = pd.Series(labels[mine])
        spec, encoded, _ = encode_task(task, values, None)
        Y[mine, j] = encoded
        specs.append(spec)

    # validation: a stratified share of each task's training rows
    train_rows = np.flatnonzero(split == TRAIN)
    own_label = Y[train_rows, row_task[train_rows]]
    classified = np.array([specs[t].kind != "regression" for t in row_task[train_rows]], dtype=bool)
    strata = np.where(classified, np.nan_to_num(own_label), -1).astype(np.int64)
    codes, _ = assign_splits(row_task[train_rows], strata,
                              (1 - validation_fraction, validation_fraction, 0.0), int(seed), None)
    split[train_rows] = np.where(codes == VALIDATION, VALIDATION, TRAIN)
    train = split == TRAIN
    for j, spec in enumerate(specs):
        if spec.kind == "regression":
            col = Y[:, j]
            tr = col[train & ~np.isnan(col)]
            mean, std = float(tr.mean()), float(tr.std()) or 1.0
            Y[:, j] = (col - mean) / std
            specs[j] = TaskSpec(spec.name, "regression", (), mean, std)
        elif len(np.unique(Y[train & (row_task == j), j])) < 2:
            raise DataError(f"task {spec.name!r} has a single class in its training rows; it cannot be learned")

    return Y, specs


def load_task_splits(
    folder: str | Path,
    *,
    tasks: Sequence[str] | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    scale: str = "auto",
    name: str | None = None,
) -> MultiTaskDataset:
    """Load a ``Task_Splits`` folder (see the module docstring) as a per-task-rows dataset.

    Parameters
    ----------
    folder : str or Path
        The folder with ``<task>_X_train.npy``, ``_y_train``, ``_X_test``,
        ``_y_test`` for every task.
    tasks : sequence of str, optional
        Tasks to keep, in this order. Default: every task in the folder, numeric
        names in numeric order.
    seed : int
        Draws the validation rows (stratified by class within each task).
    validation_fraction : float
        Share of each task's training rows held out for validation (public code: 0.1).
    scale : {"auto", "standard", "none"}
        ``"auto"``: raw features when every value is 0 or 1, else standardised
        with the training rows' statistics; ``"standard"``: always; ``"none"``: never.
    name : str, optional
        Dataset name; default the folder's name (its parent's for a folder named
        ``Task_Splits``).

    Returns
    -------
    MultiTaskDataset
        Per-task-rows layout; ``info`` records the files, the split rule and the scaling.

    Raises
    ------
    DataError
        Missing files, unreadable arrays, mismatched shapes, unknown tasks, a
        task whose labels have a single class, bad options.
    FileNotFoundError
        The folder does not exist.
    """
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"data folder {str(folder)!r} not found")
    if not folder.is_dir():
        raise DataError(f"{str(folder)!r} is not a folder of <task>_X_train.npy files")
    if not 0 < validation_fraction < 1:
        raise DataError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    if scale not in SCALE_CHOICES:
        raise DataError(f"scale must be one of {', '.join(SCALE_CHOICES)}, got {scale!r}")
    found = task_splits_tasks(folder)
    if not found:
        raise DataError(
            f"{str(folder)!r} holds no <task>_X_train.npy files; a Task_Splits folder has four files per task: "
            f"<task>_X_train.npy, <task>_y_train.npy, <task>_X_test.npy, <task>_y_test.npy"
        )
    names = _task_names(folder, tasks, found)

    X_parts, y_parts, split_parts, task_parts = [], [], [], []
    dim = None
    for j, task in enumerate(names):
        for which, X, y in _task_arrays(folder, task):
            if dim is None:
                dim = X.shape[1]
            elif X.shape[1] != dim:
                raise DataError(
                    f"{task}_X_{which}.npy has {X.shape[1]} features but the first task has {dim}; "
                    f"all tasks must share the feature columns"
                )
            X_parts.append(X.astype(np.float64))
            y_parts.append(y)
            split_parts.append(np.full(X.shape[0], TRAIN if which == "train" else TEST, dtype=np.int8))
            task_parts.append(np.full(X.shape[0], j, dtype=np.int64))

    X = np.concatenate(X_parts)
    row_task = np.concatenate(task_parts)
    split = np.concatenate(split_parts)
    labels = np.concatenate([np.asarray(y, dtype=object) for y in y_parts])

    Y, specs = _labels(names, labels, row_task, split, seed, validation_fraction)
    train = split == TRAIN

    binary_features = bool(np.isin(X, (0.0, 1.0)).all())
    standardise = scale == "standard" or (scale == "auto" and not binary_features)
    if standardise:
        X, _, _ = standardise_by_training_rows(X, train)
    if name is None:
        name = folder.resolve().parent.name if folder.name.lower() == "task_splits" else folder.resolve().name
    info = {
        "source": str(folder.resolve()),
        "format": "ETAP Task_Splits (<task>_X_train.npy, _y_train, _X_test, _y_test)",
        "license": "as stated by the data's owner (the ETAP repository states none)",
        "layout": "per-task-rows",
        "seed": int(seed),
        "split_rule": f"given test split; validation = stratified {validation_fraction:.0%} of each task's training rows",
        "feature_scaling": "standardised with training-split mean and std" if standardise else "none (features used as stored)",
        "task_kinds": {s.name: s.kind for s in specs},
        "warnings": [],
    }
    return MultiTaskDataset(
        name=name,
        tasks=tuple(specs),
        X=X,
        Y=Y,
        split=split,
        feature_names=tuple(f"f{i}" for i in range(X.shape[1])),
        row_task=row_task,
        info=info,
    )
