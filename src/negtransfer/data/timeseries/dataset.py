"""The time-series dataset and its preprocessing (splits, scaling, imputation), shared by every source.

See :mod:`negtransfer.data.timeseries` for the preprocessing rule.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from negtransfer.data.build import DataError, assign_splits, check_fractions
from negtransfer.data.dataset import SPLIT_NAMES, TEST, TRAIN, UNUSED, VALIDATION, TaskSpec

__all__ = ["IMPUTE_CHOICES", "TimeSeriesMultiTaskDataset", "select_tasks", "timeseries_dataset"]

IMPUTE_CHOICES = ("zero", "forward")


# ====================================================================== dataset
@dataclass
class TimeSeriesMultiTaskDataset:
    """Split, scaled and imputed sequences for D binary tasks over N records.

    Parameters
    ----------
    name : str
    tasks : tuple of TaskSpec
        One binary spec per column of ``Y``.
    X : ndarray of float32, shape (N, T, F)
        Standardised (training statistics) and imputed values; 0 at steps >= length.
    mask : ndarray of bool, shape (N, T, F)
        True where the value was observed (before imputation).
    lengths : ndarray of int64, shape (N,)
        Number of valid steps of each record (1 .. T); steps ``lengths[n]`` and
        later are padding.
    Y : ndarray of float32, shape (N, D)
        0/1 labels; NaN = no label for that task (masked out of every loss).
    split : ndarray of int8, shape (N,)
        0 = train, 1 = validation, 2 = test.
    feature_names : tuple of str
    info : dict
        Provenance, task definitions, windows, scaling statistics.
    """

    name: str
    tasks: tuple[TaskSpec, ...]
    X: np.ndarray
    mask: np.ndarray
    lengths: np.ndarray
    Y: np.ndarray
    split: np.ndarray
    feature_names: tuple[str, ...]
    info: dict = field(default_factory=dict)

    #: The data kind (:data:`negtransfer.data.builtin.DATA_KINDS`).
    data_kind = "time-series"

    def __post_init__(self) -> None:
        self.X = np.ascontiguousarray(self.X, dtype=np.float32)
        self.mask = np.ascontiguousarray(self.mask, dtype=bool)
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        self.Y = np.ascontiguousarray(self.Y, dtype=np.float32)
        self.split = np.asarray(self.split, dtype=np.int8)
        self.tasks = tuple(self.tasks)
        self.feature_names = tuple(self.feature_names)
        if self.X.ndim != 3:
            raise ValueError(f"X must be 3-D (records x timesteps x features), got shape {self.X.shape}")
        n, t, f = self.X.shape
        if self.mask.shape != self.X.shape:
            raise ValueError(f"mask has shape {self.mask.shape} but X has {self.X.shape}; they must match")
        if self.lengths.shape != (n,) or self.split.shape != (n,) or self.Y.shape[0] != n:
            raise ValueError(f"X has {n} records but lengths, split or Y has another number of rows")
        if np.any(self.lengths < 1) or np.any(self.lengths > t):
            raise ValueError(f"lengths must be in 1..{t} (the number of timesteps)")
        if self.Y.shape[1] != len(self.tasks):
            raise ValueError(f"Y has {self.Y.shape[1]} columns but {len(self.tasks)} tasks are declared")
        if len(self.feature_names) != f:
            raise ValueError("feature_names must name every feature of X (its last axis)")

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def n_features(self) -> int:
        return self.X.shape[2]

    @property
    def n_steps(self) -> int:
        return self.X.shape[1]

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def step_mask(self) -> np.ndarray:
        """(N, T) bool: True for the valid (non-padding) steps of each record."""
        return np.arange(self.n_steps)[None, :] < self.lengths[:, None]

    def indices(self, split: str) -> np.ndarray:
        """Record indices of ``"train"``, ``"validation"`` or ``"test"``."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLIT_NAMES)}")
        return np.flatnonzero(self.split == SPLIT_NAMES[split])

    def with_train_fraction(self, fraction: float, seed: int = 0) -> "TimeSeriesMultiTaskDataset":
        """A copy training on a seeded random ``fraction`` of the training records (others: split code 3).

        The scaling statistics stay those of the full training split.
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"the training fraction must be in (0, 1], got {fraction}")
        if fraction == 1:
            return self
        train = np.flatnonzero(self.split == TRAIN)
        drop = np.random.default_rng(seed).permutation(train)[: int(round(len(train) * (1 - fraction)))]
        split = self.split.copy()
        split[drop] = UNUSED
        return TimeSeriesMultiTaskDataset(self.name, self.tasks, self.X, self.mask, self.lengths, self.Y, split,
                                          self.feature_names, {**self.info, "train_fraction": fraction})

    def fingerprint(self) -> str:
        """A content hash of the arrays, splits and task names (hex, 16 chars)."""
        h = hashlib.sha256()
        for arr in (self.X, self.mask, self.lengths, self.Y, self.split):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        h.update(json.dumps([t.name for t in self.tasks]).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """Sizes, observed-value rate, and labels and positives per task."""
        valid = self.step_mask()
        return {
            "name": self.name,
            "records": int(self.X.shape[0]),
            "timesteps": self.n_steps,
            "features": self.n_features,
            "tasks": self.n_tasks,
            "train": int((self.split == TRAIN).sum()),
            "validation": int((self.split == VALIDATION).sum()),
            "test": int((self.split == TEST).sum()),
            "mean_length": float(self.lengths.mean()),
            "observed_rate": float(self.mask[valid].mean()) if valid.any() else 0.0,
            "labels_per_task": {t.name: int((~np.isnan(self.Y[:, i])).sum()) for i, t in enumerate(self.tasks)},
            "positives_per_task": {t.name: int(np.nansum(self.Y[:, i])) for i, t in enumerate(self.tasks)},
        }


# ====================================================================== builder
def _rarest_task_strata(Y: np.ndarray) -> np.ndarray:
    """Stratum per record: the label of the task with the fewest minority labels (NaN = -2)."""
    best, best_count = None, None
    for j in range(Y.shape[1]):
        col = Y[:, j]
        labelled = col[~np.isnan(col)]
        smallest = min(int((labelled == 0).sum()), int((labelled == 1).sum()))
        if best_count is None or smallest < best_count:
            best, best_count = j, smallest
    col = Y[:, best]
    return np.where(np.isnan(col), -2, np.nan_to_num(col, nan=0)).astype(np.int64)


def select_tasks(labels: np.ndarray, names: Sequence[str], tasks: Sequence[str] | None, dataset: str):
    """The label columns of ``tasks`` (all when None), in that order, with an error naming unknown ones."""
    if tasks is None:
        return labels, list(names)
    unknown = [t for t in tasks if t not in names]
    if unknown:
        raise DataError(f"unknown {dataset} task(s) {unknown}; the tasks are: {', '.join(names)}")
    return labels[:, [list(names).index(t) for t in tasks]], list(tasks)


def timeseries_dataset(
    values: np.ndarray,
    labels: np.ndarray,
    *,
    task_names: Sequence[str],
    feature_names: Sequence[str],
    lengths: np.ndarray | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    impute: str = "zero",
    name: str = "timeseries",
    info: Mapping[str, Any] | None = None,
) -> TimeSeriesMultiTaskDataset:
    """Split, scale and impute raw sequences into a :class:`TimeSeriesMultiTaskDataset`.

    Parameters
    ----------
    values : array (N, T, F)
        Raw values, NaN where unobserved.
    labels : array (N, D)
        0/1 labels, NaN = no label. Records without any label are dropped.
    task_names, feature_names : sequence of str
    lengths : array (N,), optional
        Valid steps per record; default: up to the last step with any observed value.
    seed : int
        Fixes the split.
    fractions : (float, float, float)
        Train, validation, test; default 0.7/0.1/0.2 as in the paper (2800/400/800).
    impute : {"zero", "forward"}
        See the module docstring.
    name : str
    info : mapping, optional
        Merged into ``dataset.info``.

    Raises
    ------
    DataError
        Wrong shapes, non-binary labels, a task with a single class in training,
        bad options.
    """
    values, labels, fr = _checked_arrays(values, labels, task_names, feature_names, impute, seed, fractions)
    t = values.shape[1]
    observed = ~np.isnan(values)
    if lengths is None:
        any_obs = observed.any(axis=2)
        lengths = np.where(any_obs.any(axis=1), t - np.argmax(any_obs[:, ::-1], axis=1), 1)
    lengths = np.clip(np.asarray(lengths, dtype=np.int64), 1, t)

    keep = ~np.all(np.isnan(labels), axis=1)
    dropped = int((~keep).sum())
    values, labels, observed, lengths = values[keep], labels[keep], observed[keep], lengths[keep]
    n = values.shape[0]
    if n < 10:
        raise DataError(f"only {n} records carry a label; at least 10 are needed for a split")
    valid = np.arange(t)[None, :] < lengths[:, None]
    observed &= valid[:, :, None]

    split, _ = assign_splits(np.zeros(n, dtype=np.int64), _rarest_task_strata(labels), fr, int(seed), None)
    _check_training_classes(labels, split, task_names)
    scaled, means, stds = _scale_and_impute(values, observed, valid, split == TRAIN, impute)

    tasks = tuple(TaskSpec(str(name_), "binary", (0, 1)) for name_ in task_names)
    meta = {
        "impute": impute,
        "fractions": list(fr),
        "seed": int(seed),
        "dropped_unlabelled_records": dropped,
        "feature_means": means.tolist(),
        "feature_stds": stds.tolist(),
        **dict(info or {}),
    }
    ids = meta.get("record_ids")
    if ids is not None:  # one ID per input record: keep those of the labelled records, in row order
        if len(ids) != len(keep):
            raise ValueError(f"info['record_ids'] has {len(ids)} IDs for {len(keep)} records")
        meta["record_ids"] = [i for i, k in zip(ids, keep, strict=True) if k]
    return TimeSeriesMultiTaskDataset(
        name=name,
        tasks=tasks,
        X=scaled.astype(np.float32),
        mask=observed,
        lengths=lengths,
        Y=labels.astype(np.float32),
        split=split,
        feature_names=tuple(str(c) for c in feature_names),
        info=meta,
    )


def _checked_arrays(values, labels, task_names, feature_names, impute, seed, fractions):
    """Validated float arrays and fractions (the checks of :func:`timeseries_dataset`)."""
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if values.ndim != 3:
        raise DataError(f"values must be a (records, timesteps, features) array, got shape {values.shape}")
    n, _, f = values.shape
    if labels.ndim != 2 or labels.shape[0] != n:
        raise DataError(f"labels must be a ({n}, n_tasks) array, got shape {labels.shape}")
    if labels.shape[1] != len(task_names) or len(feature_names) != f:
        raise DataError(
            f"{labels.shape[1]} label columns and {f} features, but {len(task_names)} task names and "
            f"{len(feature_names)} feature names were given; they must match"
        )
    if impute not in IMPUTE_CHOICES:
        raise DataError(f"impute must be one of {IMPUTE_CHOICES}, got {impute!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise DataError(f"seed must be a non-negative integer, got {seed!r}")
    fr = check_fractions(fractions)
    bad = ~np.isnan(labels) & (labels != 0) & (labels != 1)
    if bad.any():
        j = int(np.argwhere(bad)[0][1])
        raise DataError(f"task {task_names[j]!r} has labels other than 0, 1 and NaN; recode it as binary")
    return values, labels, fr


def _check_training_classes(labels: np.ndarray, split: np.ndarray, task_names: Sequence[str]) -> None:
    for j, task in enumerate(task_names):
        train_labels = labels[split == TRAIN, j]
        train_labels = train_labels[~np.isnan(train_labels)]
        if len(np.unique(train_labels)) < 2:
            raise DataError(
                f"task {task!r} has a single class (or no label) in the training split; drop the task, "
                f"use more records or another seed"
            )


def _scale_and_impute(values, observed, valid, train, impute):
    """Standardise with the training records' observed values, then impute (see the module docstring)."""
    t, f = values.shape[1], values.shape[2]
    train_obs = observed[train]
    train_vals = values[train]
    means = np.zeros(f)
    stds = np.ones(f)
    for k in range(f):
        seen = train_vals[:, :, k][train_obs[:, :, k]]
        if seen.size:
            means[k] = seen.mean()
            sd = seen.std()
            stds[k] = sd if sd > 0 else 1.0
    scaled = (values - means) / stds
    scaled[~observed] = np.nan
    if impute == "forward":
        for step in range(1, t):
            gap = np.isnan(scaled[:, step]) & valid[:, step, None]
            scaled[:, step][gap] = scaled[:, step - 1][gap]
    scaled = np.nan_to_num(scaled, nan=0.0)
    scaled[~valid] = 0.0
    return scaled, means, stds
