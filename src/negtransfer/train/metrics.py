"""Task metrics reported beside the loss: AUROC, accuracy or MSE."""

from __future__ import annotations

import numpy as np

from negtransfer.data.dataset import TaskSpec


def average_ranks(values, axis: int = -1) -> np.ndarray:
    """Ranks 1..n along ``axis``, tied values sharing the mean of their ranks.

    The ``"average"`` ranks of ``scipy.stats.rankdata`` (the same float64
    numbers: every rank is an integer or a half-integer, exact in floating
    point), computed with numpy so that training processes need not import
    scipy.stats. A slice holding a NaN gets NaN ranks throughout, as
    ``rankdata``'s default ``nan_policy="propagate"``.

    Parameters
    ----------
    values : array-like
    axis : int
        The axis ranked along (each slice along it is ranked on its own).

    Returns
    -------
    ndarray of float64, the shape of ``values``
    """
    a = np.moveaxis(np.asarray(values), axis, -1)
    n = a.shape[-1]
    order = np.argsort(a, axis=-1, kind="stable")
    ordered = np.take_along_axis(a, order, axis=-1)
    positions = np.broadcast_to(np.arange(n), a.shape)
    starts_run = np.ones(a.shape, dtype=bool)  # the first of a run of equal values (in sorted order)
    starts_run[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    ends_run = np.ones(a.shape, dtype=bool)
    ends_run[..., :-1] = starts_run[..., 1:]
    first = np.maximum.accumulate(np.where(starts_run, positions, 0), axis=-1)
    last = np.flip(np.minimum.accumulate(np.flip(np.where(ends_run, positions, n - 1), axis=-1), axis=-1), axis=-1)
    ranks = np.empty(a.shape, dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2 + 1, axis=-1)
    if a.dtype.kind in "fc":
        ranks[np.isnan(a).any(axis=-1)] = np.nan
    return np.moveaxis(ranks, -1, axis)


def auroc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties get half).

    Returns NaN when ``y_true`` holds a single class (AUROC is undefined).
    """
    y_true = np.asarray(y_true).astype(bool)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = average_ranks(score)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auroc_rows(y_true: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """:func:`auroc` of each row of ``scores`` (M, R) against the same labels (R,)."""
    y_true = np.asarray(y_true).astype(bool)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return np.full(scores.shape[0], np.nan)
    ranks = average_ranks(scores, axis=1)
    return (ranks[:, y_true].sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _row_means(a: np.ndarray) -> np.ndarray:
    """Mean of each row, one row at a time: the same float result whatever the number of rows."""
    return np.array([float(np.mean(row)) for row in a])


def task_metric_rows(task: TaskSpec, y_true: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """:func:`task_metric` of M models at once: ``predictions`` has a leading model axis.

    Returns
    -------
    ndarray (M,)
    """
    M = predictions.shape[0]
    if y_true.size == 0:
        return np.full(M, np.nan)
    if task.kind == "binary":
        return auroc_rows(y_true, predictions)
    if task.kind == "multiclass":
        return _row_means(np.argmax(predictions, axis=-1) == y_true.astype(int)[None, :])
    return _row_means((predictions - y_true[None, :]) ** 2) * task.target_std**2


def classification_losses_rows(task: TaskSpec, y_true: np.ndarray, predictions: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`classification_losses` of M models at once (leading model axis); values are (M,) arrays."""
    if task.kind == "regression" or y_true.size == 0:
        return {}
    y = y_true.astype(int)
    probs = np.stack([1 - predictions, predictions], axis=-1) if task.kind == "binary" else predictions
    rows = np.arange(y.size)
    correct = probs[:, rows, y]
    others = probs.copy()
    others[:, rows, y] = -np.inf
    margin = _row_means(others.max(axis=2) - correct)
    accuracy = _row_means(np.argmax(probs, axis=2) == y[None, :])
    return {"margin_loss": margin, "zero_one": 1.0 - accuracy, "accuracy": accuracy}


def task_metric(task: TaskSpec, y_true: np.ndarray, prediction: np.ndarray) -> float:
    """The task's metric (``task.metric_name``) on labelled rows.

    Parameters
    ----------
    task : TaskSpec
    y_true : ndarray (R,)
        Encoded labels (standardised values for regression), no NaN.
    prediction : ndarray
        Probability of class 1 (binary, (R,)), class probabilities (multiclass,
        (R, C)) or standardised predicted values (regression, (R,)).

    Returns
    -------
    float
        AUROC, accuracy, or MSE in the task's original units.
    """
    if y_true.size == 0:
        return float("nan")
    if task.kind == "binary":
        return auroc(y_true, prediction)
    if task.kind == "multiclass":
        return float(np.mean(np.argmax(prediction, axis=-1) == y_true.astype(int)))
    scale = task.target_std**2
    return float(np.mean((prediction - y_true) ** 2) * scale)


def classification_losses(task: TaskSpec, y_true: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """Margin, 0-1 loss and accuracy of a classification task; {} for regression.

    ``margin_loss`` is the negative classification margin of the surrogate
    paper (the highest other class probability minus the correct class's),
    averaged over rows: in [-1, 1], lower is better. ``zero_one`` is the error
    rate and ``accuracy`` its complement (threshold 0.5 / arg-max).
    """
    if task.kind == "regression" or y_true.size == 0:
        return {}
    y = y_true.astype(int)
    probs = np.stack([1 - prediction, prediction], axis=-1) if task.kind == "binary" else prediction
    rows = np.arange(y.size)
    correct = probs[rows, y]
    others = probs.copy()
    others[rows, y] = -np.inf
    margin = float(np.mean(others.max(axis=1) - correct))
    accuracy = float(np.mean(np.argmax(probs, axis=1) == y))
    return {"margin_loss": margin, "zero_one": 1.0 - accuracy, "accuracy": accuracy}
