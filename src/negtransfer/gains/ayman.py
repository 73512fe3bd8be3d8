"""A group's total MTL gain from its pairwise gains (Ayman, Mukhopadhyay and Laszka, 2023).

"Task Grouping for Automated Multi-Task Machine Learning via Task Affinity
Prediction" (Ayman, Mukhopadhyay and Laszka, arXiv:2310.16241, 2023) predicts
whether a *group* benefits from MTL with a regressor over group-level features,
the strongest of which are statistics of the MTL gains of the group's pairs;
every pair of tasks is trained first. The ETAP paper (Ayman, Mukhopadhyay and
Laszka, ICLR 2026, Section 4.3 and Table 5) uses it as the baseline that
predicts a group's *total* gain, and notes its cost: all n(n-1)/2 pair models
plus the training groups G_train.

What this module computes, for a group G of three or more tasks (pairs are
measured, one-task groups gain 0):

* the pair gain of {i, j}: the mean of the two measured per-task gains
  (ETAP eq. 1), ``q_ij = (y({i,j} -> i) + y({i,j} -> j)) / 2``;
* the features (the public code's group features that a gain table holds): the
  mean, variance and standard deviation of ``q_ij`` over the pairs of G, and
  |G|; optionally the member means of per-task features and the pair means of
  pairwise features the user supplies (the public code's dataset size, target
  variance, task distance, ...);
* the label: the mean gain of the members, ``m(G) = sum_t y(G -> t) / |G|``;
* a feed-forward network (squared error, linear output) regresses ``m(G)`` on
  the standardised features of the training groups of three or more tasks;
* the predicted total gain is ``T(G) = |G| * m_hat(G)``.

:class:`TotalGainPredictor` must still return per-task gains (the job's
selection scores tasks); the total is split among the members, by default as
the per-task vector nearest (in Euclidean distance) to HOA's pairwise means
``h_t`` that sums to the predicted total: ``y_hat(G -> t) = h_t + (T(G) -
sum_s h_s) / |G|``. See docs/methods/grouping-methods.md for where each fact
came from and what was chosen here.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator

from negtransfer.affinity.scores import validate_groups
from negtransfer.gains.table import check_gain_table, pair_gains

__all__ = ["TotalGainPredictor", "FEATURES"]

FEATURES = ("pairwise_mean", "pairwise_variance", "pairwise_std", "n_tasks")


class TotalGainPredictor(BaseEstimator):
    """Predict a group's total MTL gain from its pairwise gains (Ayman et al., 2023).

    Parameters
    ----------
    hidden_layer_sizes : tuple of int
        Hidden layers of the regressor. Default (50, 25): the starting
        architecture of the public code's architecture search.
    activation : {"logistic", "tanh", "relu"}
        Hidden activation (the public starting architecture: sigmoid = "logistic").
    alpha : float
        L2 penalty of the network's weights.
    solver : {"lbfgs", "adam"}
        "lbfgs" fits to convergence (default; the few training groups of the
        ETAP setting); "adam" with ``learning_rate_init`` and ``max_iter``
        epochs of mini-batches of 16 is the public code's optimiser.
    learning_rate_init : float
        Adam's step size (the public starting architecture: about 0.0014).
    max_iter : int
        Iterations (L-BFGS) or epochs (Adam).
    ensemble : int
        Networks with different seeds whose predictions are averaged
        (1 = the public code's single network).
    split : {"pairwise", "equal"}
        How a predicted total is shared among the members of a group of three
        or more: ``"pairwise"`` adds an equal share of the difference between
        the total and the sum of the members' pairwise means to each member's
        pairwise mean (HOA's per-task estimate); ``"equal"`` gives every
        member ``T / |G|``. Both sum to ``T``.
    missing : {"error", "skip"}
        ``"error"``: :meth:`fit` raises unless every pair of tasks is in the
        table. ``"skip"``: features use the pairs that are there (a group
        whose pairs are all missing is dropped from training and predicted as
        NaN); the grouping job's cross-validation folds need this.
    task_features : array-like (n_tasks, k), optional
        Per-task descriptors (dataset size, target variance, ...); a group's
        feature is the mean over its members.
    pair_features : array-like (n_tasks, n_tasks) or (n_tasks, n_tasks, k), optional
        Pairwise descriptors (task distance, weight similarity, ...); a
        pair's value is the mean of ``[i, j]`` and ``[j, i]``, a group's
        feature the mean over its pairs.
    random_state : int

    Attributes
    ----------
    pair_gain_ : ndarray (n_tasks, n_tasks)
        ``pair_gain_[t, j]``: measured gain of t in {t, j} (NaN if not measured; diagonal NaN).
    regressor_ : list of sklearn.neural_network.MLPRegressor, or None
        None when the table has no group of three or more tasks.
    feature_names_ : list of str
    n_train_groups_ : int
        Groups of three or more tasks the network was fitted on.
    n_tasks_ : int
    """

    def __init__(self, hidden_layer_sizes=(50, 25), activation: str = "logistic", alpha: float = 1e-2,
                 solver: str = "lbfgs", learning_rate_init: float = 0.0014, max_iter: int = 2000,
                 ensemble: int = 1, split: str = "pairwise", missing: str = "error", task_features=None,
                 pair_features=None, random_state: int = 0):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.solver = solver
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.ensemble = ensemble
        self.split = split
        self.missing = missing
        self.task_features = task_features
        self.pair_features = pair_features
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(self, U, Y):
        """Keep the pairs' gains and fit the network on the groups of three or more tasks.

        Parameters
        ----------
        U : bool array (m, n_tasks)
            Measured groups; must include every pair of tasks (``missing="error"``).
        Y : float array (m, n_tasks)
            Their per-task gains (ETAP eq. 1), NaN outside the group.

        Returns
        -------
        self
        """
        from sklearn.neural_network import MLPRegressor
        from threadpoolctl import threadpool_limits

        if self.split not in ("pairwise", "equal"):
            raise ValueError(f"split must be 'pairwise' or 'equal', got {self.split!r}")
        if self.missing not in ("error", "skip"):
            raise ValueError(f"missing must be 'error' or 'skip', got {self.missing!r}")
        u, y = check_gain_table(U, Y)
        n = u.shape[1]
        self.n_tasks_ = self.n_features_in_ = n
        self._check_descriptors(n)
        sizes = u.sum(axis=1)
        if not np.isfinite(y[u & (sizes >= 2)[:, None]]).all():
            raise ValueError("Y has missing or non-finite gains of member tasks")

        self.pair_gain_, count = pair_gains(u, y)  # a pair measured twice (repeated rows) counts once, averaged
        missing = [(i, j) for i in range(n) for j in range(i + 1, n) if count[i, j] == 0]
        if len(missing) == n * (n - 1) // 2 and n >= 2:
            raise ValueError("the gain table has no pair of tasks; the total-gain predictor of Ayman et al. needs "
                             "the gain of every pair (train every pair: negtransfer group --method ayman does)")
        if missing and self.missing == "error":
            shown = ", ".join(f"{{{i}, {j}}}" for i, j in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ValueError(f"{len(missing)} of the {n * (n - 1) // 2} pairs of tasks were not measured ({shown}); "
                             "the total-gain predictor of Ayman et al. needs every pair (train them all, or pass "
                             "missing='skip' to use the pairs there are)")

        rows = np.flatnonzero(sizes >= 3)
        X = self._features(u[rows])
        target = np.array([y[r, u[r]].mean() for r in rows])
        keep = np.isfinite(X).all(axis=1)
        X, target = X[keep], target[keep]
        self.n_train_groups_ = int(X.shape[0])
        self.regressor_ = None
        if X.shape[0] == 0:
            if n >= 3:
                raise ValueError("the gain table has no group of three or more tasks whose pairs were measured; "
                                 "the total-gain predictor learns from such groups (measure training groups)")
            return self
        self.x_mean_ = X.mean(axis=0)
        self.x_scale_ = _scale(X.std(axis=0))
        self.y_mean_ = float(target.mean())
        self.y_scale_ = float(_scale(np.array([target.std()]))[0])
        Xs = (X - self.x_mean_) / self.x_scale_
        ys = (target - self.y_mean_) / self.y_scale_
        self.regressor_ = []
        for k in range(max(int(self.ensemble), 1)):  # one BLAS thread: 5x faster on these tiny problems
            net = MLPRegressor(hidden_layer_sizes=tuple(self.hidden_layer_sizes), activation=self.activation,
                               solver=self.solver, alpha=self.alpha, learning_rate_init=self.learning_rate_init,
                               batch_size=min(16, Xs.shape[0]), max_iter=self.max_iter, shuffle=True,
                               random_state=int(self.random_state) * 1009 + k)
            with warnings.catch_warnings(), threadpool_limits(1):
                warnings.simplefilter("ignore")  # ConvergenceWarning: max_iter is the budget, not an error
                net.fit(Xs, ys)
            self.regressor_.append(net)
        return self

    def _check_descriptors(self, n: int) -> None:
        names = list(FEATURES)
        if self.task_features is not None:
            tf = np.asarray(self.task_features, dtype=float)
            tf = tf[:, None] if tf.ndim == 1 else tf
            if tf.ndim != 2 or tf.shape[0] != n or not np.isfinite(tf).all():
                raise ValueError(f"task_features must be finite with one row per task, ({n}, k); got {tf.shape}")
            names += [f"task_feature_{k}" for k in range(tf.shape[1])]
        if self.pair_features is not None:
            pf = np.asarray(self.pair_features, dtype=float)
            pf = pf[:, :, None] if pf.ndim == 2 else pf
            if pf.ndim != 3 or pf.shape[:2] != (n, n):
                raise ValueError(f"pair_features must have shape ({n}, {n}) or ({n}, {n}, k); got {pf.shape}")
            names += [f"pair_feature_{k}" for k in range(pf.shape[2])]
        self.feature_names_ = names

    def _features(self, u: np.ndarray) -> np.ndarray:
        """Group features (rows of ``u`` with two or more members): see the module doc."""
        q = (self.pair_gain_ + self.pair_gain_.T) / 2  # the pair's mean gain; NaN where not measured
        measured = np.isfinite(q).astype(float)
        q = np.nan_to_num(q)
        x = u.astype(float)
        size = x.sum(axis=1)
        pairs = np.einsum("gi,ij,gj->g", x, measured, x) / 2  # measured pairs of each group
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.einsum("gi,ij,gj->g", x, q, x) / 2 / pairs
            square = np.einsum("gi,ij,gj->g", x, q**2, x) / 2 / pairs
        variance = np.maximum(square - mean**2, 0.0)
        columns = [mean, variance, np.sqrt(variance), size]
        if self.task_features is not None:
            tf = np.asarray(self.task_features, dtype=float)
            tf = tf[:, None] if tf.ndim == 1 else tf
            columns += list((x @ tf / size[:, None]).T)
        if self.pair_features is not None:
            pf = np.asarray(self.pair_features, dtype=float)
            pf = pf[:, :, None] if pf.ndim == 2 else pf
            off = 1.0 - np.eye(u.shape[1])
            n_pairs = size * (size - 1) / 2
            columns += [np.einsum("gi,ij,gj->g", x, pf[:, :, k] * off, x) / 2 / n_pairs for k in range(pf.shape[2])]
        return np.column_stack(columns)

    # -------------------------------------------------------------- predict
    def predict_total(self, U) -> np.ndarray:
        """Predicted total gain of each group (the sum over members), shape (m,).

        One-task groups: 0. Pairs: the sum of the two measured gains (NaN if
        the pair was not measured, ``missing="skip"``). Three or more tasks:
        ``|G| * m_hat(G)`` from the network.
        """
        from sklearn.utils.validation import check_is_fitted
        from threadpoolctl import threadpool_limits

        check_is_fitted(self, "pair_gain_")
        u = validate_groups(U, n_tasks=self.n_tasks_, name="U")
        sizes = u.sum(axis=1)
        out = np.zeros(u.shape[0])
        for r in np.flatnonzero(sizes == 2):
            t, j = np.flatnonzero(u[r])
            out[r] = self.pair_gain_[t, j] + self.pair_gain_[j, t]
        big = np.flatnonzero(sizes >= 3)
        if big.size:
            if self.regressor_ is None:
                raise ValueError("the predictor saw no group of three or more tasks and cannot predict one")
            X = self._features(u[big])
            mean = np.full(big.size, np.nan)
            ok = np.isfinite(X).all(axis=1)
            if ok.any():
                Xs = (X[ok] - self.x_mean_) / self.x_scale_
                with threadpool_limits(1):
                    pred = np.mean([net.predict(Xs) for net in self.regressor_], axis=0)
                mean[ok] = pred * self.y_scale_ + self.y_mean_
            out[big] = sizes[big] * mean
        return out

    def predict(self, U) -> np.ndarray:
        """Per-task gains whose sum over each group's members is :meth:`predict_total`.

        One-task groups: 0; pairs: their measured gains; larger groups: the
        predicted total shared by ``split``. NaN outside the group.
        """
        u = validate_groups(U, n_tasks=getattr(self, "n_tasks_", None), name="U")
        totals = self.predict_total(u)
        x = u.astype(float)
        size = x.sum(axis=1)
        if self.split == "equal":
            out = np.where(u, (totals / size)[:, None], np.nan)
        else:
            out = _share(x, self.pair_gain_, totals)
        pairs = np.flatnonzero(size == 2)  # measured: their own gains
        for r in pairs:
            t, j = np.flatnonzero(u[r])
            out[r, t], out[r, j] = self.pair_gain_[t, j], self.pair_gain_[j, t]
        out[u & (size == 1)[:, None]] = 0.0
        return out


def _scale(std: np.ndarray) -> np.ndarray:
    """Standard deviations to divide by (1 where a column is constant)."""
    return np.where(std > 1e-12, std, 1.0)


def _share(x: np.ndarray, pair_gain: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """Split each group's total among its members: pairwise means shifted equally to sum to the total.

    ``x``: groups (m, n) as 0/1; ``pair_gain``: (n, n), NaN where not
    measured. Member t's pairwise mean ``h_t`` is HOA's estimate; the result
    ``h_t + (T - sum_s h_s) / |G|`` is the Euclidean projection of the vector
    h onto the vectors summing to T. A member with no measured pair in the
    group takes the mean of the other members' h (0 when none has one).
    """
    measured = np.isfinite(pair_gain).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        h = (x @ np.nan_to_num(pair_gain).T) / (x @ measured.T)
    member = x > 0
    known = member & np.isfinite(h)
    with np.errstate(invalid="ignore", divide="ignore"):
        fill = np.where(known, h, 0.0).sum(axis=1) / known.sum(axis=1)
    fill = np.where(np.isfinite(fill), fill, 0.0)
    h = np.where(known, h, fill[:, None])
    size = x.sum(axis=1)
    shift = (totals - np.where(member, h, 0.0).sum(axis=1)) / size
    return np.where(member, h + shift[:, None], np.nan)
