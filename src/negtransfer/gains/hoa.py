"""HOA: a group's gains from the pairwise gains (Standley et al., ICML 2020).

"Which Tasks Should Be Learned Together in Multi-task Learning?" (Standley,
Zamir, Chen, Guibas, Malik and Savarese, ICML 2020) trains every pair of tasks
and approximates a larger group's performance from its pairs (their
"higher-order approximation"). As in their public code (tstandley/
taskgrouping, network_selection), a task's score in a group is the mean of its
scores in the pairs it forms with the group's other members:

    y_hat(G -> t) = mean over j in G, j != t of y({t, j} -> t).

Here the scores are measured MTL gains (ETAP eq. 1), so the predictor plugs
into the same selection as every other gain predictor.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator

from negtransfer.affinity.scores import validate_groups
from negtransfer.gains.table import check_gain_table, pair_gains

__all__ = ["PairwiseMeanPredictor"]


class PairwiseMeanPredictor(BaseEstimator):
    """Predict per-task gains of groups as the mean of the pairwise gains (HOA).

    Parameters
    ----------
    missing : {"error", "skip"}
        What :meth:`predict` does when a needed pair was not in the training
        table: raise, or average over the pairs that were (NaN when none was).

    Attributes
    ----------
    pair_gain_ : ndarray (n_tasks, n_tasks)
        ``pair_gain_[t, j]`` = measured gain of task t in the pair {t, j} (mean over repeated rows)
        (NaN where the pair was not measured; the diagonal is NaN).
    n_tasks_ : int
    """

    def __init__(self, missing: str = "skip"):
        self.missing = missing

    def fit(self, U, Y):
        """Keep the gains of every pair (two-task rows) of the gain table (U, Y)."""
        if self.missing not in ("error", "skip"):
            raise ValueError(f"missing must be 'error' or 'skip', got {self.missing!r}")
        u, y = check_gain_table(U, Y)
        n = u.shape[1]
        self.n_tasks_ = n
        self.n_features_in_ = n
        if not (u.sum(axis=1) == 2).any():
            raise ValueError("the gain table has no pair of tasks; HOA needs the pairwise gains (train every pair)")
        self.pair_gain_, _ = pair_gains(u, y)
        return self

    def predict(self, U):
        """Mean pairwise gain of each member with the other members (0 for a one-task group)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "pair_gain_")
        u = validate_groups(U, n_tasks=self.n_tasks_, name="U")
        P = self.pair_gain_
        out = np.full(u.shape, np.nan)
        for row in range(u.shape[0]):
            members = np.flatnonzero(u[row])
            if members.size == 1:
                out[row, members[0]] = 0.0
                continue
            block = P[np.ix_(members, members)]
            if self.missing == "error" and np.isnan(block[~np.eye(members.size, dtype=bool)]).any():
                raise ValueError(f"pairs of group {members.tolist()} were not measured; train every pair first")
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a member with no measured pair: NaN
                out[row, members] = np.nanmean(np.where(np.eye(members.size, dtype=bool), np.nan, block), axis=1)
        return out

