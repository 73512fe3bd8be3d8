"""Gain tables: measured MTL gains of tasks in groups (ETAP eq. 1), with their repeats.

y(G -> t) = (L_t(STL) - L_t(MTL on G)) / L_t(STL). Positive means task t does
better in group G than alone; negative is negative transfer. With R repeats,
repeat r's gain pairs the group's run r with the STL run r (same training
seed: common random numbers), and the gain is the mean of the R paired gains,
with standard error ``std / sqrt(R)``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from negtransfer.data.statistics import standard_error
from negtransfer.train.results import ModelResult, RepeatedResult

Group = tuple[int, ...]
Result = ModelResult | RepeatedResult

_ATTRS = {("test", "loss"): "test_loss", ("validation", "loss"): "val_loss",
          ("test", "metric"): "test_metric", ("validation", "metric"): "val_metric"}


def check_gain_table(U, Y) -> tuple[np.ndarray, np.ndarray]:
    """Validate a gain table: ``U`` a multi-hot group matrix (G, n), ``Y`` its gains of the same shape.

    Returns
    -------
    u : ndarray of bool (G, n)
    y : ndarray of float (G, n)
        A float copy or view of ``Y`` (NaN outside each group).
    """
    from negtransfer.affinity.scores import validate_groups

    u = validate_groups(U, name="U")
    y = np.asarray(Y, dtype=float)
    if y.shape != u.shape:
        raise ValueError(f"Y must have the shape of U, {u.shape}; got {y.shape}")
    return u, y


def pair_gains(u: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The measured pairs of a gain table as a matrix.

    Parameters
    ----------
    u, y : ndarray (G, n)
        A checked gain table (:func:`check_gain_table`).

    Returns
    -------
    gain : ndarray (n, n)
        ``gain[t, j]`` = task t's gain in the pair {t, j} (mean over the rows
        of that pair when it is repeated); NaN where the pair was not measured
        and on the diagonal.
    count : ndarray (n, n) of int
        Rows of each pair.
    """
    n = u.shape[1]
    total = np.zeros((n, n))
    count = np.zeros((n, n), dtype=int)
    for row in np.flatnonzero(u.sum(axis=1) == 2):
        t, j = np.flatnonzero(u[row])
        total[t, j] += y[row, t]
        total[j, t] += y[row, j]
        count[t, j] += 1
        count[j, t] += 1
    gain = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    np.fill_diagonal(gain, np.nan)
    return gain, count


def mtl_gain(stl_loss, mtl_loss):
    """ETAP eq. 1: relative decrease of the loss from STL to MTL (scalars or arrays)."""
    return (stl_loss - mtl_loss) / stl_loss


def _repeated(result: Result) -> RepeatedResult:
    return result if isinstance(result, RepeatedResult) else RepeatedResult(result.group, [result])


def _attr(split: str, measure: str = "loss") -> str:
    if split not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {split!r}")
    if measure not in ("loss", "metric"):
        raise ValueError(f"measure must be 'loss' or 'metric', got {measure!r}")
    return _ATTRS[(split, measure)]


def repeat_gains(
    groups: Sequence[Group], results: Mapping[Group, Result], n_tasks: int, *, split: str = "test",
    measure: str = "loss", higher_better: Sequence[bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-repeat gains of every (group, member task).

    Parameters
    ----------
    groups : sequence of sorted task-index tuples
    results : mapping group -> ModelResult or RepeatedResult
        Must hold every group and every single-task group (the STL runs), all
        with the same number of repeats R.
    split : {"test", "validation"}
    measure : {"loss", "metric"}
        Gains of the loss (eq. 1), or of the task metric: the relative change
        ``(M_G - M_STL) / |M_STL|`` for metrics where higher is better (AUROC,
        accuracy), ``(M_STL - M_G) / |M_STL|`` for the others (MSE), so a
        positive gain is always an improvement.
    higher_better : sequence of bool, optional
        Per task, whether its metric is better when higher (required for ``measure="metric"``).

    Returns
    -------
    U : bool ndarray (m, n_tasks)
        Multi-hot group membership.
    G : float ndarray (m, n_tasks, R)
        Repeat r's gain, NaN for tasks outside the group.
    """
    attr = _attr(split, measure)
    if measure == "metric" and higher_better is None:
        raise ValueError("measure='metric' needs higher_better (one flag per task)")
    higher = list(higher_better) if higher_better is not None else []
    R = _repeated(results[groups[0]]).repeats if groups else 1
    U = np.zeros((len(groups), n_tasks), dtype=bool)
    G = np.full((len(groups), n_tasks, R), np.nan)
    for row, g in enumerate(groups):
        res = _repeated(results[g])
        if res.repeats != R:
            raise ValueError(f"group {g} has {res.repeats} repeats, the first group {R}; use one repeat count")
        for t in g:
            stl = _repeated(results[(t,)])
            if stl.repeats != R:
                raise ValueError(f"the STL run of task {t} has {stl.repeats} repeats, the groups {R}")
            U[row, t] = True
            base, value = stl.values(attr, t), res.values(attr, t)
            if measure == "metric":
                sign = 1.0 if higher[t] else -1.0
                with np.errstate(divide="ignore", invalid="ignore"):
                    G[row, t] = sign * (value - base) / np.abs(base)
            else:
                G[row, t] = mtl_gain(base, value)
    return U, G


def gain_matrix(
    groups: Sequence[Group], results: Mapping[Group, Result], n_tasks: int, *, split: str = "test"
) -> tuple[np.ndarray, np.ndarray]:
    """The gain table (U, Y) of DESIGN.md for the given groups (Y = mean over repeats).

    Parameters
    ----------
    groups : sequence of sorted task-index tuples
    results : mapping group -> ModelResult or RepeatedResult
        Must hold every group and every single-task group (the STL runs).
    split : {"test", "validation"}

    Returns
    -------
    U : bool ndarray (m, n_tasks)
        Multi-hot group membership.
    Y : float ndarray (m, n_tasks)
        Gains (mean of the paired per-repeat gains), NaN for tasks outside the group.
    """
    U, G = repeat_gains(groups, results, n_tasks, split=split)
    with np.errstate(invalid="ignore"):
        Y = G.mean(axis=2)
    return U, Y


def standard_errors(G: np.ndarray) -> np.ndarray:
    """Standard error of the mean over the last (repeat) axis; NaN with one repeat."""
    return standard_error(G, axis=-1)


def gains_frame(groups: Sequence[Group], results: Mapping[Group, Result], task_names: Sequence[str], metric_names: Sequence[str]):
    """Long-form gains table, one row per (group, member task).

    Columns: ``group`` (task names joined by ``+``), ``task``, ``test_loss``,
    ``stl_test_loss``, ``gain``, ``gain_se`` (standard error over repeats,
    empty with one repeat), ``repeats``, ``metric`` (its name),
    ``test_metric``, ``stl_test_metric``, ``val_loss``, ``group_size``,
    ``diverged_repeats``. Losses and metrics are means over the repeats;
    ``gain`` is the mean of the per-repeat paired gains (not the gain of the
    mean losses) over the repeats whose group and STL runs both trained
    (:mod:`negtransfer.gains.divergence`): ``diverged_repeats`` counts those
    left out, and the gain is empty when none is left.
    """
    import pandas as pd

    from negtransfer.gains.divergence import diverged_mask, repeat_mean_se

    columns = ["group", "task", "test_loss", "stl_test_loss", "gain", "gain_se", "repeats", "metric",
               "test_metric", "stl_test_metric", "val_loss", "group_size", "diverged_repeats"]
    rows = []
    if groups:
        U, G = repeat_gains(groups, results, len(task_names), split="test")
        diverged = diverged_mask(groups, results, len(task_names))
        Y, SE = repeat_mean_se(G, diverged)
    for row, g in enumerate(groups):
        res, name = results[g], "+".join(task_names[t] for t in g)
        for t in g:
            stl = results[(t,)]
            rows.append(
                {
                    "group": name,
                    "task": task_names[t],
                    "test_loss": res.test_loss[t],
                    "stl_test_loss": stl.test_loss[t],
                    "gain": float(Y[row, t]),
                    "gain_se": float(SE[row, t]),
                    "repeats": int(G.shape[2]),
                    "metric": metric_names[t],
                    "test_metric": res.test_metric[t],
                    "stl_test_metric": stl.test_metric[t],
                    "val_loss": res.val_loss[t],
                    "group_size": len(g),
                    "diverged_repeats": int(diverged[row, t].sum()),
                }
            )
    return pd.DataFrame(rows, columns=columns)
