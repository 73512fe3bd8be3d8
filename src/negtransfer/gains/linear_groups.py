"""Linear surrogate of group gains (Li, Zhang, Nguyen and Wang, "Identification of Negative Transfers in
Multitask Learning Using Surrogate Models", TMLR 2023), as the ETAP paper uses it for groups.

For each target task t a linear model over the multi-hot encoding of the group's
*other* members, fitted by (ridge) least squares on the training groups that
contain t:

    y_hat(G -> t) = b_t + sum over j in G, j != t of theta_{t, j}.

This is the paper's eq. 2-3 with the group's members as the "sources" of
target t; one model per task, so every task of a group is a target. The ridge
strength is chosen by K-fold cross-validation over training groups.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator

from negtransfer.affinity.scores import validate_groups
from negtransfer.gains.etap import DEFAULT_RESIDUAL_ALPHAS, MemberRidge, ridge_path_predict

__all__ = ["LinearGroupSurrogate"]


class LinearGroupSurrogate(BaseEstimator):
    """Per-task linear surrogate of MTL gains over group membership (Li et al., 2023).

    Parameters
    ----------
    alphas : sequence of float, optional
        Ridge strengths tried (default ``logspace(-6, 2, 20)``, as ETAP's stage 2).
    cv : int
        Folds over training groups for the choice of alpha (capped at the number of groups).
    random_state : int

    Attributes
    ----------
    model_ : MemberRidge
        The fitted per-task ridge models.
    alpha_ : float
    """

    def __init__(self, alphas=None, cv: int = 5, random_state: int = 0):
        self.alphas = alphas
        self.cv = cv
        self.random_state = random_state

    def fit(self, U, Y):
        """Fit on the gain table (U, Y); one-task rows are ignored."""
        from sklearn.model_selection import KFold

        u = validate_groups(U, name="U")
        y = np.asarray(Y, dtype=float)
        keep = u.sum(axis=1) >= 2
        u, y = u[keep], y[keep]
        if u.shape[0] == 0:
            raise ValueError("the gain table has no group of two or more tasks to learn from")
        x = u.astype(float)
        alphas = np.asarray(DEFAULT_RESIDUAL_ALPHAS if self.alphas is None else self.alphas, dtype=float)
        self.n_tasks_ = self.n_features_in_ = u.shape[1]
        if u.shape[0] >= 2 and alphas.size > 1:
            folds = KFold(n_splits=min(self.cv, u.shape[0]), shuffle=True, random_state=self.random_state)
            errors = np.zeros(alphas.size)
            for tr, te in folds.split(x):
                for t in range(u.shape[1]):
                    rows_tr, rows_te = tr[u[tr, t]], te[u[te, t]]
                    if rows_te.size == 0:
                        continue
                    if rows_tr.size == 0:
                        errors += np.sum(y[rows_te, t] ** 2)
                        continue
                    pred = ridge_path_predict(x[rows_tr], y[rows_tr, t, None], x[rows_te], alphas)[:, :, 0]
                    errors += ((pred - y[rows_te, t]) ** 2).sum(axis=1)
            self.alpha_ = float(alphas[int(np.argmin(errors))])
        else:
            self.alpha_ = float(alphas.max())
        self.model_ = MemberRidge(alpha=self.alpha_).fit(x, np.nan_to_num(y), u)
        return self

    def predict(self, U):
        """Predicted gain of every member task (0 for a one-task group, NaN outside the group)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "model_")
        u = validate_groups(U, n_tasks=self.n_tasks_, name="U")
        pred = np.where(u, self.model_.predict(u.astype(float)), np.nan)
        pred[u & (u.sum(axis=1) == 1)[:, None]] = 0.0
        return pred
