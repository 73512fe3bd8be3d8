"""The multi-task dataset: examples of any shape, one label column per task.

``X`` holds one example per row of its first axis: a feature vector (N x d, a
table), a sequence (N x T x F) or an image (N x C x H x W, channels first; more
spatial axes are allowed). The *feature axis* (:attr:`MultiTaskDataset.feature_axis`)
is the one whose entries ``feature_names`` name and that scaling treats as
separate features: the columns of a table, the last axis (F) of a sequence, the
channel axis (C) of an image.

Everything downstream (training, gains, grouping) sees a :class:`MultiTaskDataset`
whose arrays are already split, scaled and encoded; constructors and loaders in
this package do the validation and preprocessing (see ``build.py``).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np

TaskKind = Literal["binary", "multiclass", "regression"]

TRAIN, VALIDATION, TEST = 0, 1, 2
UNUSED = 3  # rows left out of every split (e.g. by with_train_fraction)
AUDIT = 4  # rows held back from every choice, only scored (with_audit): no run trains, stops or measures gains on them
AUDIT_SOURCES = ("train+validation", "validation")
SPLIT_NAMES = {"train": TRAIN, "validation": VALIDATION, "test": TEST}


def feature_axis_of(ndim: int) -> int:
    """The feature axis of an ``ndim``-dimensional ``X`` (see the module docstring).

    Parameters
    ----------
    ndim : int
        ``X.ndim``, at least 2.

    Returns
    -------
    int
        1 for a table (N x d) and for images (N x C x H x W, ...); 2 for
        sequences (N x T x F).
    """
    return 2 if ndim == 3 else 1


def suggest_name(name: str, known: Sequence[str]) -> str:
    """`` (did you mean 'north'?)`` for the closest of ``known`` to a misspelt ``name``, or ``""`` if none is close
    (difflib's ratio at least 0.5); for the errors that name an unknown task or column."""
    close = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class TaskSpec:
    """One prediction task.

    Parameters
    ----------
    name : str
        Task name as the user knows it (a label column, a state, a school).
    kind : {"binary", "multiclass", "regression"}
        Decides the loss: binary cross-entropy, cross-entropy or mean squared error.
    classes : tuple
        Original label values for classification tasks; encoded label ``i`` in
        :attr:`MultiTaskDataset.Y` stands for ``classes[i]``. Empty for regression.
    target_mean, target_std : float
        Regression targets are standardised with training-split statistics;
        ``y_original = y * target_std + target_mean``. Unused for classification.
    """

    name: str
    kind: TaskKind
    classes: tuple = ()
    target_mean: float = 0.0
    target_std: float = 1.0

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def output_dim(self) -> int:
        """Number of model outputs (logits) this task needs."""
        return self.n_classes if self.kind == "multiclass" else 1

    @property
    def metric_name(self) -> str:
        """The task metric reported beside the loss."""
        return {"binary": "auroc", "multiclass": "accuracy", "regression": "mse"}[self.kind]


@dataclass
class MultiTaskDataset:
    """Split, scaled and encoded arrays for n tasks over N rows.

    Two layouts share this representation:

    * multi-label: every row may carry a label for every task;
    * per-task rows: each row belongs to one task (``row_task``), and its label
      sits in that task's column while the other columns are NaN.

    Parameters
    ----------
    name : str
        Dataset name (built-in name or file stem).
    tasks : tuple of TaskSpec
        One spec per label column of ``Y``.
    X : ndarray of float32, shape (N, *input_shape)
        Examples: (N, d) features of a table, (N, T, F) sequences or
        (N, C, H, W) images; scaled with training-split statistics only, per
        entry of the feature axis (see the module docstring).
    Y : ndarray of float32, shape (N, n)
        Labels: 0/1 for binary, class index for multiclass, standardised value for
        regression. NaN means "no label" and is masked out of every loss.
    split : ndarray of int8, shape (N,)
        0 = train, 1 = validation, 2 = test (3 = unused, 4 = audit: see :meth:`with_audit`). Fixed by the seed
        at construction.
    feature_names : tuple of str
        One name per entry of the feature axis: the columns of a table, the F
        features of a sequence, the C channels of an image.
    row_task : ndarray of int, shape (N,), optional
        Task index of each row for the per-task-rows layout; None for multi-label.
    info : dict
        Provenance: source, license, seed, preprocessing choices.
    """

    name: str
    tasks: tuple[TaskSpec, ...]
    X: np.ndarray
    Y: np.ndarray
    split: np.ndarray
    feature_names: tuple[str, ...]
    row_task: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.X = np.ascontiguousarray(self.X, dtype=np.float32)
        self.Y = np.ascontiguousarray(self.Y, dtype=np.float32)
        self.split = np.asarray(self.split, dtype=np.int8)
        self.tasks = tuple(self.tasks)
        self.feature_names = tuple(self.feature_names)
        n_rows = self.X.shape[0]
        if self.X.ndim < 2 or self.Y.ndim != 2:
            raise ValueError(
                f"X must have a row axis and at least one more (rows x features, rows x steps x features, rows x "
                f"channels x height x width) and Y must be 2-D (rows x tasks); got X {self.X.shape}, Y {self.Y.shape}"
            )
        if self.Y.shape[0] != n_rows or self.split.shape != (n_rows,):
            raise ValueError(
                f"X has {n_rows} rows but Y has {self.Y.shape[0]} and split {self.split.shape[0]}"
            )
        if self.Y.shape[1] != len(self.tasks):
            raise ValueError(f"Y has {self.Y.shape[1]} columns but {len(self.tasks)} tasks are declared")
        if len(self.feature_names) != self.X.shape[self.feature_axis]:
            what = {1: "column", 2: "feature (last axis)"}[self.feature_axis] if self.X.ndim <= 3 else "channel (axis 1)"
            raise ValueError(
                f"feature_names must name every {what} of X: X has shape {self.X.shape}, "
                f"{len(self.feature_names)} names given"
            )
        for task in self.tasks:  # group names join task names with "+"; group files also split on ","
            if "+" in task.name or "," in task.name:
                raise ValueError(f"task name {task.name!r} contains '+' or ',', which separate task names in "
                                 f"group names and group files; rename the task")

    def __repr__(self) -> str:
        """One line: the name, how many examples of what shape, the tasks with their kinds, the layout and the split.

        The dataclass's own repr printed every array in full (thousands of lines for a few hundred images); the
        arrays stay in :attr:`X`, :attr:`Y` and :attr:`split`, and :meth:`summary` has the counts as a dict.
        """
        shown = 8
        tasks = ", ".join(f"{t.name} ({t.kind})" for t in self.tasks[:shown])
        if self.n_tasks > shown:
            tasks += f", ... ({self.n_tasks - shown} more)"
        kind = {2: "table rows", 3: "sequences"}.get(self.X.ndim, "images")
        layout = "per-task rows" if self.row_task is not None else "multi-label"
        counts = [f"{int((self.split == code).sum())} {name}" for name, code in SPLIT_NAMES.items()]
        if (self.split == AUDIT).any():
            counts.append(f"{int((self.split == AUDIT).sum())} audit")
        return (f"MultiTaskDataset({self.name!r}: {self.X.shape[0]} {kind} of shape {self.input_shape}, "
                f"{self.n_tasks} task(s): {tasks}; {layout}; split {' / '.join(counts)})")

    # ------------------------------------------------------------------ basics
    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one example: ``(d,)``, ``(T, F)`` or ``(C, H, W)``."""
        return tuple(int(k) for k in self.X.shape[1:])

    @property
    def output_dims(self) -> list[int]:
        """The output width of each task's head, in task order (what a model factory's ``outputs`` is)."""
        return [task.output_dim for task in self.tasks]

    @property
    def feature_axis(self) -> int:
        """The axis of ``X`` that ``feature_names`` names (1 for tables and images, 2 for sequences)."""
        return feature_axis_of(self.X.ndim)

    @property
    def n_features(self) -> int:
        """Input values per example: the columns of a table; ``prod(input_shape)`` for sequences and images."""
        if self.X.ndim == 2:
            return self.X.shape[1]
        return math.prod(self.input_shape)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    def indices(self, split: str) -> np.ndarray:
        """Row indices of ``"train"``, ``"validation"`` or ``"test"``."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; use one of {sorted(SPLIT_NAMES)}")
        return np.flatnonzero(self.split == SPLIT_NAMES[split])

    def task_index(self, names: Sequence[str]) -> list[int]:
        """Indices of the named tasks, with an error that lists the known names."""
        lookup = {name: i for i, name in enumerate(self.task_names)}
        not_names = [name for name in names if not isinstance(name, str)]
        if not_names:  # e.g. sources(target=["a"]): a list is no task's name (it failed as "unhashable type")
            raise TypeError(f"a task is named by one string, got {type(not_names[0]).__name__} {not_names[0]!r}; "
                            f"this dataset's tasks are: {', '.join(self.task_names)}")
        unknown = [name for name in names if name not in lookup]
        if unknown:
            # "(did you mean 'north'?)" for --target nort, as --tasks says it
            raise ValueError(f"unknown task name(s) {unknown}{suggest_name(unknown[0], self.task_names)}; this "
                             f"dataset's tasks are: {', '.join(self.task_names)}")
        return [lookup[name] for name in names]

    def subset_tasks(self, names: Sequence[str]) -> "MultiTaskDataset":
        """The same rows and splits restricted to the named tasks (in the given order).

        Rows that carry no label for any kept task are dropped.
        """
        idx = self.task_index(names)
        Y = self.Y[:, idx]
        keep = ~np.all(np.isnan(Y), axis=1)
        row_task = None
        if self.row_task is not None:
            remap = {old: new for new, old in enumerate(idx)}
            row_task = np.array([remap.get(int(t), -1) for t in self.row_task[keep]])
        return MultiTaskDataset(
            name=self.name,
            tasks=tuple(self.tasks[i] for i in idx),
            X=self.X[keep],
            Y=Y[keep],
            split=self.split[keep],
            feature_names=self.feature_names,
            row_task=row_task,
            info={**self.info, "task_subset": list(names)},
        )

    def subset_rows(self, rows: np.ndarray | Sequence[int]) -> "MultiTaskDataset":
        """The given rows (indices or a boolean mask over the rows), with every task, split and spec unchanged.

        Works for examples of any shape: only the row axis is indexed. Task
        specs (and so regression scaling) stay those of the full dataset.
        """
        index = np.asarray(rows)
        if index.dtype == bool:
            if index.shape != (self.X.shape[0],):
                raise ValueError(f"a row mask needs one value per row ({self.X.shape[0]}), got shape {index.shape}")
            index = np.flatnonzero(index)
        elif index.size and (not np.issubdtype(index.dtype, np.integer) or index.min() < -self.X.shape[0]
                             or index.max() >= self.X.shape[0]):
            raise ValueError(f"row indices must be integers in 0 .. {self.X.shape[0] - 1}")
        return MultiTaskDataset(self.name, self.tasks, self.X[index], self.Y[index], self.split[index],
                                self.feature_names, row_task=None if self.row_task is None else self.row_task[index],
                                info={**self.info, "row_subset": int(index.size)})

    def with_train_fraction(self, fraction: float, seed: int = 0) -> "MultiTaskDataset":
        """A copy training on a seeded random ``fraction`` of the training rows.

        The other training rows are marked unused (split code 3); validation and
        test rows are unchanged. Used for the surrogate paper's speed-up of
        training each subset model on part of the data.
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"the training fraction must be in (0, 1], got {fraction}")
        if fraction == 1:
            return self
        train = np.flatnonzero(self.split == TRAIN)
        rng = np.random.default_rng(seed)
        drop = rng.permutation(train)[: int(round(len(train) * (1 - fraction)))]
        split = self.split.copy()
        split[drop] = UNUSED
        return MultiTaskDataset(self.name, self.tasks, self.X, self.Y, split, self.feature_names,
                                row_task=self.row_task, info={**self.info, "train_fraction": fraction})

    def with_audit(self, fraction: float, seed: int | None = None,
                   source: str = "train+validation") -> "MultiTaskDataset":
        """A copy with a stratified ``fraction`` of the non-test rows moved to the audit split (code 4).

        Audit rows are never trained on, never choose a stopping epoch and
        never enter a gain; every model is only scored on them
        (``ModelResult.audit_loss``), so a comparison decided on them is
        decided on rows no choice saw (issue 25, item 2).

        The rows are drawn without replacement within every cell of (source
        split, task for per-task-rows data, class for classification tasks),
        ``round(fraction * cell size)`` rows per cell, so the audit part keeps
        the train/validation mix, every task's share and its class balance.
        On multi-label data the cells are (source split, label of the first
        classification task), rows with no such label forming their own cell.
        Features stay scaled with the statistics of the original training
        rows (the audit rows took part in that scaling only: no label of theirs
        entered any model).

        Parameters
        ----------
        fraction : float
            Share of each cell moved to the audit split, in [0, 1); 0 returns
            the dataset itself.
        seed : int, optional
            Seed of the draw; default the dataset's split seed (``info["seed"]``, else 0).
        source : {"train+validation", "validation"}
            Which splits give up rows.

        Returns
        -------
        MultiTaskDataset
            The same rows with ``split`` changed (so a different :meth:`fingerprint`);
            ``info["audit"]`` records the fraction, seed, source and row count.
        """
        if not 0 <= fraction < 1:
            raise ValueError(f"the audit fraction must be in [0, 1), got {fraction}; e.g. --audit 0.2")
        if source not in AUDIT_SOURCES:
            raise ValueError(f"the audit source must be one of {', '.join(AUDIT_SOURCES)}, got {source!r}")
        if fraction == 0:
            return self
        seed = int(self.info.get("seed", 0)) if seed is None else int(seed)
        codes = (TRAIN, VALIDATION) if source == "train+validation" else (VALIDATION,)
        rng = np.random.default_rng([seed, 25])  # a stream of its own: the split seed's other draws are unchanged
        split = self.split.copy()
        cells = self._audit_cells()
        for code in codes:
            for cell in np.unique(cells[self.split == code]):
                members = np.flatnonzero((self.split == code) & (cells == cell))
                take = int(round(fraction * members.size))
                split[rng.permutation(members)[:take]] = AUDIT
        audit = {"fraction": fraction, "seed": seed, "source": source, "rows": int((split == AUDIT).sum())}
        return MultiTaskDataset(self.name, self.tasks, self.X, self.Y, split, self.feature_names,
                                row_task=self.row_task, info={**self.info, "audit": audit})

    def _audit_cells(self) -> np.ndarray:
        """Per row, the stratum :meth:`with_audit` draws within: (task, class) for per-task rows; the first
        classification task's label (or -1 without one) for multi-label data."""
        n_rows = self.X.shape[0]
        if self.row_task is not None:
            task = self.row_task.astype(np.int64)
            label = np.full(n_rows, -1, dtype=np.int64)
            for t, spec in enumerate(self.tasks):
                rows = task == t
                if spec.kind != "regression":
                    label[rows] = np.nan_to_num(self.Y[rows, t], nan=-1).astype(np.int64)
            return task * 1_000_003 + label + 1
        classified = [t for t, spec in enumerate(self.tasks) if spec.kind != "regression"]
        if not classified:
            return np.zeros(n_rows, dtype=np.int64)
        return np.nan_to_num(self.Y[:, classified[0]], nan=-1).astype(np.int64)

    def fingerprint(self) -> str:
        """A content hash of the arrays, splits and task specs (hex, 16 chars).

        Two datasets with equal fingerprints give equal training runs, so the run
        store keys stored results by it. The hash covers each array's shape, so
        images and the same values flattened into a table differ.
        """
        h = hashlib.sha256()
        for arr in (self.X, self.Y, self.split):
            h.update(str(arr.shape).encode())
            h.update(np.ascontiguousarray(arr).tobytes())
        spec = [(t.name, t.kind, [str(c) for c in t.classes], t.target_mean, t.target_std) for t in self.tasks]
        h.update(json.dumps(spec).encode())
        return h.hexdigest()[:16]

    def summary(self) -> dict:
        """Sizes and label counts, for listings and reports."""
        out = {
            "name": self.name,
            "rows": int(self.X.shape[0]),
            "features": self.n_features,
            "tasks": self.n_tasks,
            "train": int((self.split == TRAIN).sum()),
            "validation": int((self.split == VALIDATION).sum()),
            "test": int((self.split == TEST).sum()),
        }
        if (self.split == AUDIT).any():  # only then: summaries without audit rows stay as they were
            out["audit"] = int((self.split == AUDIT).sum())
        if self.X.ndim > 2:  # tables keep their summary as it was
            out["input_shape"] = list(self.input_shape)
        out["labels_per_task"] = {
            t.name: int((~np.isnan(self.Y[:, i])).sum()) for i, t in enumerate(self.tasks)
        }
        return out
