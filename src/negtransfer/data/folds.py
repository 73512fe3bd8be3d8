"""Cross-validation folds of a dataset's non-test rows (``negtransfer group --folds K``).

The rows whose split code is TRAIN or VALIDATION are dealt into K parts; fold
``f`` trains on the other parts and validates (early stopping, gains, every
choice) on part ``f``. TEST rows and UNUSED rows (and any other code, such as
an audit part held back from every choice) keep their code in every fold.

Stratification: the rows are ordered by a stratum key, randomly within a
stratum, and dealt round-robin into the K parts (part = position mod K), so
every stratum's rows are spread over the parts as evenly as possible (counts
differ by at most one per stratum) and the parts' sizes differ by at most one.
The key is

* per-task-rows data (``row_task`` set): the row's task, then its class
  (classification) or its value (regression: the deal then spreads each
  task's value range over the parts, as quantile strata would);
* multi-label data: the row's labels of the classification tasks in task
  order (a missing label sorts as its own class): the first classification
  task is stratified exactly, each next one within the classes of those
  before it, so the parts' class counts of every task differ by a few rows at
  most. Regression columns of multi-label data are not stratified on.

The deal is drawn from the dataset's split seed (``info["seed"]``, 0 if
absent) and K alone, so fold ``f`` is the same rows for every group, every
repeat and every run of the job (common random numbers across folds as across
repeats), and it never depends on the training seed. A fold's dataset
(:func:`fold_dataset`) differs from the original only in its split codes,
so its fingerprint (and so every run-store key of its runs) names the fold.
The features keep the original scaling (training-split statistics of the
original split).
"""

from __future__ import annotations

import copy

import numpy as np

from negtransfer.data.dataset import TRAIN, VALIDATION, MultiTaskDataset

__all__ = ["fold_dataset", "fold_datasets", "fold_parts", "fold_validation_rows"]

#: Salt of the folds' random generator (kept apart from every other use of the split seed).
_FOLD_SALT = 25


def _split_seed(dataset: MultiTaskDataset) -> int:
    seed = dataset.info.get("seed", 0) if isinstance(dataset.info, dict) else 0
    try:
        return int(seed)
    except (TypeError, ValueError):
        return 0


def _stratum_keys(dataset: MultiTaskDataset, rows: np.ndarray) -> list[np.ndarray]:
    """The sort keys of ``rows``, most significant first (see the module doc)."""
    Y = dataset.Y[rows]
    if dataset.row_task is not None:
        tasks = dataset.row_task[rows].astype(int)
        label = np.nan_to_num(Y[np.arange(rows.size), tasks].astype(float), nan=-np.inf)
        return [tasks, label]
    keys = []
    for t, task in enumerate(dataset.tasks):
        if task.kind != "regression":
            keys.append(np.nan_to_num(Y[:, t].astype(float), nan=-1.0))
    return keys


def fold_parts(dataset: MultiTaskDataset, k: int) -> np.ndarray:
    """The part (0..k-1) of every row in TRAIN or VALIDATION, -1 for every other row.

    Parameters
    ----------
    dataset : MultiTaskDataset
    k : int
        Number of folds, at least 2.

    Returns
    -------
    ndarray of int (N,)

    Raises
    ------
    ValueError
        ``k`` below 2, or a task with fewer than ``k`` labelled non-test rows
        (some part would not validate it).
    """
    if isinstance(k, bool) or int(k) != k or k < 2:
        raise ValueError(f"--folds must be a whole number >= 2 to make folds, got {k!r}")
    k = int(k)
    rows = np.flatnonzero(np.isin(dataset.split, (TRAIN, VALIDATION)))
    labelled = ~np.isnan(dataset.Y[rows])
    for t, name in enumerate(dataset.task_names):
        if int(labelled[:, t].sum()) < k:
            raise ValueError(f"--folds {k}: task {name!r} has {int(labelled[:, t].sum())} labelled "
                             f"training and validation rows, fewer than the folds; use --folds "
                             f"{max(2, int(labelled[:, t].sum()))} or fewer, or leave the task out with --tasks")
    rng = np.random.default_rng([_split_seed(dataset), k, _FOLD_SALT])
    tiebreak = rng.permutation(rows.size)
    keys = _stratum_keys(dataset, rows)
    order = np.lexsort([tiebreak, *reversed(keys)])  # lexsort sorts by its last key first
    parts = np.full(dataset.split.shape[0], -1, dtype=int)
    parts[rows[order]] = (np.arange(rows.size) + int(rng.integers(k))) % k
    return parts


def fold_dataset(dataset: MultiTaskDataset, k: int, fold: int, parts: np.ndarray | None = None) -> MultiTaskDataset:
    """The dataset of fold ``fold`` of ``k``: part ``fold`` validates, the other parts train.

    ``k = 1`` returns ``dataset`` itself (no folds). ``parts``: :func:`fold_parts`
    when the caller has it already. Every other split code (TEST, UNUSED, ...)
    is kept; the arrays other than ``split`` are shared with ``dataset``.
    """
    if k == 1 and fold == 0:
        return dataset
    if not 0 <= fold < k:
        raise ValueError(f"fold {fold} is not one of 0..{k - 1}")
    parts = fold_parts(dataset, k) if parts is None else parts
    split = dataset.split.copy()
    split[parts >= 0] = TRAIN
    split[parts == fold] = VALIDATION
    out = copy.copy(dataset)
    out.split = split
    out.info = {**dataset.info, "fold": int(fold), "folds": int(k)} if isinstance(dataset.info, dict) else dataset.info
    return out


def fold_datasets(dataset: MultiTaskDataset, k: int) -> list[MultiTaskDataset]:
    """The ``k`` fold datasets (:func:`fold_dataset`); ``[dataset]`` for ``k = 1``."""
    if k == 1:
        return [dataset]
    parts = fold_parts(dataset, k)
    return [fold_dataset(dataset, k, f, parts) for f in range(k)]


def fold_validation_rows(dataset: MultiTaskDataset, k: int) -> list[int]:
    """How many rows each fold validates on (``k = 1``: the dataset's validation rows)."""
    if k == 1:
        return [int((dataset.split == VALIDATION).sum())]
    parts = fold_parts(dataset, k)
    return [int((parts == f).sum()) for f in range(k)]
