"""Which unmeasured groups to train next: acquisition for the active refinement of a grouping.

The grouping job (``negtransfer group``) fits a gain predictor on the groups it
has measured, scores every candidate group (measured groups by their measured
gains, the others by prediction) and selects at most B groups. A prediction is
only a guess, and a predictor fitted on a few groups can be wrong in a
systematic way (e.g. fitted on large groups, it extrapolates badly to small
ones). The refinement trains some unmeasured groups, adds their measured gains,
refits and selects again.

Rule ("optimistic improvement", in the spirit of upper-confidence-bound
search):

1. the predictor's typical error for each task, ``s_t``, is its out-of-fold
   root-mean-square error on the measured groups (K-fold over groups,
   :func:`cross_validated_error`); it measures bias as well as variance;
2. every unmeasured candidate is scored optimistically: predicted score
   ``+ kappa * s_t`` per member task (in the objective's units);
3. the incumbent of task t is its score in the current selection; a
   candidate's *optimistic improvement* is ``sum_t max(0, optimistic score -
   incumbent_t)`` over its members;
4. acquired first: the current selection's unmeasured groups (a selection is
   only trusted once measured); then the candidates with the largest
   optimistic improvement.

The job stops when the selection is made of measured groups, did not change,
and no unmeasured candidate can improve on it even optimistically; or when its
rounds or run budget are spent. ``docs/methods/grouping.md`` has the
measurements that chose the rule and ``kappa``.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["cross_validated_error", "optimistic_improvement", "rank_acquisitions"]


def cross_validated_error(
    fit_predict: Callable[[np.ndarray, np.ndarray], np.ndarray],
    U: np.ndarray,
    Y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Per-task out-of-fold RMSE of a gain predictor on the measured groups.

    Parameters
    ----------
    fit_predict : callable(train_rows, test_rows) -> predictions (len(test_rows), n)
        Fits the predictor on the measured groups ``train_rows`` and predicts
        the groups ``test_rows``.
    U : bool ndarray (m, n)
        Measured multi-task groups.
    Y : float ndarray (m, n)
        Their measured gains (NaN outside the group).
    folds : int
        Folds over groups (capped at m).
    seed : int

    Returns
    -------
    ndarray (n,)
        RMSE per task; tasks with fewer than 3 out-of-fold points get the
        pooled RMSE of all tasks. NaN everywhere when m < 3.
    """
    m, n = U.shape
    if m < 3:
        return np.full(n, np.nan)
    k = min(folds, m)
    order = np.random.default_rng(seed).permutation(m)
    errors = np.full((m, n), np.nan)
    for fold in range(k):
        test = np.sort(order[fold::k])
        train = np.setdiff1d(np.arange(m), test)
        try:
            pred = fit_predict(train, test)
        except ValueError:  # a fold the predictor cannot learn from
            continue
        errors[test] = np.where(U[test], pred - Y[test], np.nan)
    sq = errors**2
    counts = np.sum(np.isfinite(sq), axis=0)
    pooled = np.sqrt(np.nanmean(sq)) if np.isfinite(sq).any() else np.nan
    with np.errstate(invalid="ignore"):
        per_task = np.sqrt(np.nanmean(np.where(np.isfinite(sq), sq, np.nan), axis=0))
    return np.where(counts >= 3, per_task, pooled)


def optimistic_improvement(
    candidates: np.ndarray,
    optimistic: np.ndarray,
    incumbent: np.ndarray,
) -> np.ndarray:
    """``sum_t max(0, optimistic[g, t] - incumbent[t])`` over each candidate's members.

    Parameters
    ----------
    candidates : bool ndarray (m, n)
    optimistic : float ndarray (m, n)
        Optimistic scores (NaN outside the group).
    incumbent : float ndarray (n,)
        Each task's score in the current selection.

    Returns
    -------
    ndarray (m,)
    """
    gain = np.where(candidates, optimistic - incumbent[None, :], 0.0)
    return np.nansum(np.clip(gain, 0.0, None), axis=1)


def rank_acquisitions(
    selected_rows,
    improvement: np.ndarray,
    measured: np.ndarray,
    limit: int,
) -> list[int]:
    """The unmeasured candidate rows to train next, best first (see the module docstring).

    Parameters
    ----------
    selected_rows : iterable of int
        Rows of the current selection; its unmeasured ones come first (all of
        them, even beyond ``limit``: a selection must be measured to be trusted).
    improvement : ndarray (m,)
        Optimistic improvement of each candidate (:func:`optimistic_improvement`).
    measured : bool ndarray (m,)
        Rows already measured (never acquired again).
    limit : int
        Rows wanted in total.

    Returns
    -------
    list of int
    """
    chosen = [int(r) for r in selected_rows if not measured[r]]
    for r in np.argsort(-improvement, kind="stable"):
        if len(chosen) >= limit or improvement[r] <= 0:
            break
        if not measured[r] and int(r) not in chosen:
            chosen.append(int(r))
    return chosen
