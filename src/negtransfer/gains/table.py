"""Gain tables: measured MTL gains of tasks in groups (ETAP eq. 1).

y(G -> t) = (L_t(STL) - L_t(MTL on G)) / L_t(STL), on the test split. Positive
means task t does better in group G than alone; negative is negative transfer.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from negtransfer.train.batched import ModelResult

Group = tuple[int, ...]


def mtl_gain(stl_loss: float, mtl_loss: float) -> float:
    """ETAP eq. 1: relative decrease of the loss from STL to MTL."""
    return (stl_loss - mtl_loss) / stl_loss


def gain_matrix(
    groups: Sequence[Group], results: Mapping[Group, ModelResult], n_tasks: int, *, split: str = "test"
) -> tuple[np.ndarray, np.ndarray]:
    """The gain table (U, Y) of DESIGN.md for the given groups.

    Parameters
    ----------
    groups : sequence of sorted task-index tuples
    results : mapping group -> ModelResult
        Must hold every group and every single-task group (the STL runs).
    split : {"test", "validation"}

    Returns
    -------
    U : bool ndarray (m, n_tasks)
        Multi-hot group membership.
    Y : float ndarray (m, n_tasks)
        Gains, NaN for tasks outside the group.
    """
    attr = "test_loss" if split == "test" else "val_loss"
    U = np.zeros((len(groups), n_tasks), dtype=bool)
    Y = np.full((len(groups), n_tasks), np.nan)
    for row, g in enumerate(groups):
        for t in g:
            stl = getattr(results[(t,)], attr)[t]
            U[row, t] = True
            Y[row, t] = mtl_gain(stl, getattr(results[g], attr)[t])
    return U, Y


def gains_frame(groups: Sequence[Group], results: Mapping[Group, ModelResult], task_names: Sequence[str], metric_names: Sequence[str]):
    """Long-form gains table, one row per (group, member task).

    Columns: ``group`` (task names joined by ``+``), ``task``, ``test_loss``,
    ``stl_test_loss``, ``gain``, ``metric`` (its name), ``test_metric``,
    ``stl_test_metric``, ``val_loss``, ``group_size``.
    """
    import pandas as pd

    rows = []
    for g in groups:
        res, name = results[g], "+".join(task_names[t] for t in g)
        for t in g:
            stl = results[(t,)]
            rows.append(
                {
                    "group": name,
                    "task": task_names[t],
                    "test_loss": res.test_loss[t],
                    "stl_test_loss": stl.test_loss[t],
                    "gain": mtl_gain(stl.test_loss[t], res.test_loss[t]),
                    "metric": metric_names[t],
                    "test_metric": res.test_metric[t],
                    "stl_test_metric": stl.test_metric[t],
                    "val_loss": res.val_loss[t],
                    "group_size": len(g),
                }
            )
    return pd.DataFrame(rows)
