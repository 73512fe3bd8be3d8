"""Group affinity scores (ETAP; Ayman, Mukhopadhyay and Laszka, ICLR 2026, eq. 7).

Orientation used everywhere in negtransfer: ``affinity[i, j]`` is the affinity
of SOURCE task ``i`` onto TARGET task ``j``, i.e. how much an update driven by
task ``i`` lowers the loss of task ``j`` (the paper's ``z_{t_i -> t_j}``).
Rows are sources, columns are targets.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["group_affinity_scores", "validate_affinity_matrix", "validate_groups"]


def nan_mean_of_matrices(stack) -> np.ndarray:
    """Entry-wise mean of a stack of affinity matrices, ignoring NaN (an entry NaN everywhere stays NaN).

    Used to average repeats (and epochs) whose matrices have NaN where nothing
    was measured: the diagonal, or a pair never tracked in one repeat.
    """
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "Mean of empty slice" for all-NaN entries
        return np.nanmean(np.asarray(stack, dtype=float), axis=0)


def validate_affinity_matrix(affinity, name: str = "affinity") -> np.ndarray:
    """Check an affinity matrix and return it as a float array.

    Parameters
    ----------
    affinity : array-like of shape (n_tasks, n_tasks)
        ``affinity[i, j]`` = affinity of source task ``i`` onto target task
        ``j``. The diagonal (self-affinity) is never used by eq. 7 and may hold
        anything, NaN included; every off-diagonal entry must be finite.
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray of shape (n_tasks, n_tasks), float64
        A copy of the input.

    Raises
    ------
    ValueError
        If the matrix is not 2-D and square, has fewer than 2 tasks, or has a
        non-finite off-diagonal entry.
    """
    try:
        a = np.array(affinity, dtype=float, copy=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"{name} must be a numeric n_tasks x n_tasks array; got {type(affinity).__name__} "
            f"that cannot be converted to float ({exc})"
        ) from exc
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(
            f"{name} must be a square n_tasks x n_tasks matrix "
            f"({name}[i, j] = affinity of source task i onto target task j); got shape {a.shape}"
        )
    if a.shape[0] < 2:
        raise ValueError(f"{name} must cover at least 2 tasks; got shape {a.shape}")
    off = ~np.eye(a.shape[0], dtype=bool)
    bad = off & ~np.isfinite(a)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{name} has {int(bad.sum())} non-finite off-diagonal entr"
            f"{'y' if bad.sum() == 1 else 'ies'} (first: {name}[{i}, {j}] = {a[i, j]}); "
            "eq. 7 needs every pairwise affinity between distinct tasks"
        )
    return a


def validate_groups(groups, n_tasks: int | None = None, name: str = "groups") -> np.ndarray:
    """Check a multi-hot group matrix U and return it as a boolean array.

    Parameters
    ----------
    groups : array-like of shape (n_groups, n_tasks)
        ``groups[g, t]`` is true when task ``t`` belongs to group ``g``.
        Booleans, or numbers that are all 0 or 1. A single 1-D mask is *not*
        accepted; wrap it as ``mask[None, :]``.
    n_tasks : int, optional
        Required number of columns (the number of tasks of the affinity matrix).
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray of shape (n_groups, n_tasks), bool

    Raises
    ------
    ValueError
        If the shape is wrong, a value is not 0/1, or a group is empty.
    """
    u = np.asarray(groups)
    if u.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D multi-hot matrix of shape (n_groups, n_tasks); got shape "
            f"{u.shape}" + (" (wrap a single group mask as mask[None, :])" if u.ndim == 1 else "")
        )
    if n_tasks is not None and u.shape[1] != n_tasks:
        raise ValueError(
            f"{name} has {u.shape[1]} columns but the affinity matrix covers {n_tasks} tasks; "
            "each column of the group matrix must be one task, in the affinity matrix's order"
        )
    if u.shape[0] == 0:
        raise ValueError(f"{name} has no rows; pass at least one group")
    if u.dtype != bool:
        if not (np.issubdtype(u.dtype, np.number)):
            raise ValueError(f"{name} must be boolean or 0/1 numbers; got dtype {u.dtype}")
        ok = (u == 0) | (u == 1)
        if not ok.all():
            g, t = np.argwhere(~ok)[0]
            raise ValueError(
                f"{name} must be multi-hot (only 0/1 or True/False); {name}[{g}, {t}] = {u[g, t]}"
            )
        u = u.astype(bool)
    empty = ~u.any(axis=1)
    if empty.any():
        raise ValueError(
            f"{name} row {int(np.flatnonzero(empty)[0])} selects no task "
            f"({int(empty.sum())} empty row(s)); every group needs at least one task"
        )
    return u


def group_affinity_scores(affinity, groups) -> np.ndarray:
    r"""Groupwise affinity score of every group onto each of its members (ETAP eq. 7).

    For a group :math:`G` and a member task :math:`t \in G`,

    .. math::

        \bar z_{G \to t} = \frac{1}{|G| - 1} \sum_{j \in G \setminus \{t\}} \bar z_{j \to t},

    the mean affinity of the *other* members (sources) onto ``t`` (target);
    Ayman, Mukhopadhyay and Laszka, "Ensemble Prediction of Task Affinity for Efficient Multi-Task Learning" (ICLR 2026), eq. 7.

    Parameters
    ----------
    affinity : array-like of shape (n_tasks, n_tasks)
        ``affinity[i, j]`` = affinity of SOURCE task ``i`` onto TARGET task
        ``j`` (the paper's :math:`\bar z_{t_i \to t_j}`, eq. 6). The score of a
        group onto ``t`` therefore averages entries of column ``t``. The
        diagonal is ignored (it may be NaN); off-diagonal entries must be finite.
    groups : array-like of shape (n_groups, n_tasks)
        Boolean multi-hot matrix ``U``: ``groups[g, t]`` is true when task ``t``
        is in group ``g``. 0/1 numbers are accepted. Every row needs a task.

    Returns
    -------
    numpy.ndarray of shape (n_groups, n_tasks), float64
        ``Z[g, t]`` = :math:`\bar z_{G_g \to t}` for ``t`` in group ``g``;
        NaN for tasks outside the group and for every task of a group of size 1
        (there is no other member to average over).

    Raises
    ------
    ValueError
        If ``affinity`` is not a square matrix with finite off-diagonal entries,
        or ``groups`` is not a 0/1 matrix with one column per task and no empty row.

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]])
    >>> group_affinity_scores(A, [[True, True, True]])
    array([[4. , 3.5, 3. ]])
    """
    a = validate_affinity_matrix(affinity)
    u = validate_groups(groups, n_tasks=a.shape[0])
    np.fill_diagonal(a, 0.0)  # self-affinity never enters eq. 7
    sums = u.astype(float) @ a  # sums[g, t] = sum_{j in G_g, j != t} a[j, t]
    size = u.sum(axis=1)
    others = (size - 1).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = sums / others[:, None]
    z[~u] = np.nan
    z[size < 2] = np.nan
    return z
