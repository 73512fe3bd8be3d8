"""ETAP gain predictor: affinity-to-gain map plus residual correction.

Implements the two-stage ensemble of Ayman, Mukhopadhyay and Laszka, "Ensemble
Prediction of Task Affinity for Efficient Multi-Task Learning" (ICLR 2026) (section 3.2, appendices B.2, C, E):

* stage 1 (eq. 8-9): a B-spline basis of the groupwise affinity score
  ``z_{G->t}`` (eq. 7) followed by ridge regression, mapping affinity to MTL gain;
* stage 2 (eq. 10-11): ridge regression on the multi-hot group encoding ``u_G``
  predicting what stage 1 got wrong (the residual);
* final prediction (eq. 12): stage 1 + stage 2.

Conventions (see ``docs/methods/etap-predictor.md``):

* ``affinity[i, j]`` is the affinity of SOURCE task ``i`` onto TARGET task ``j``.
* A gain table is ``(U, Y)``: ``U`` boolean (n_groups x n_tasks), ``Y`` float of
  the same shape with the MTL gain ``y_{G->t} = (L_t(STL) - L_t(MTL on G)) /
  L_t(STL)`` (eq. 1) for members and NaN outside the group.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral

import numpy as np

from negtransfer.affinity.scores import (
    group_affinity_scores,
    validate_affinity_matrix,
    validate_groups,
)
from negtransfer.gains.estimator import (
    Parameters,
    check_fitted,
    group_kfold_splits,
    kfold_splits,
    ridge_fit,
)
from negtransfer.gains.splines import SplineBasisCache, SplineRidge

__all__ = [
    "ETAPPredictor",
    "MemberRidge",
    "DEFAULT_SPLINE_DEGREES",
    "DEFAULT_SPLINE_ALPHAS",
    "DEFAULT_RESIDUAL_ALPHAS",
    "default_spline_n_knots",
]

#: Spline degrees searched in stage 1 (paper appendix B.2: 2 to 6).
DEFAULT_SPLINE_DEGREES: tuple[int, ...] = (2, 3, 4, 5, 6)

#: Ridge strengths searched in stage 1 (public ETAP code; paper: 0.001 to 1.0).
DEFAULT_SPLINE_ALPHAS: tuple[float, ...] = (
    tuple(round(0.001 * i, 3) for i in range(1, 6))
    + tuple(round(0.01 * i, 2) for i in range(1, 11))
    + tuple(round(0.1 * i, 1) for i in range(2, 11))
)

#: Ridge strengths searched in stage 2 (public ETAP code: logspace(-6, 2, 20)).
DEFAULT_RESIDUAL_ALPHAS: tuple[float, ...] = tuple(float(a) for a in np.logspace(-6, 2, 20))

#: Stage-1 spline settings used when only one training group exists (no CV possible):
#: the smoothest basis of the grid with the strongest ridge penalty.
FALLBACK_SPLINE_PARAMS = {"degree": 2, "n_knots": 2, "alpha": 1.0}

_STAGE1_KINDS = ("spline", "affine", "knn", "forest")
_OUTSIDE_LABELS = ("exclude", "zero")


def default_spline_n_knots(n_train_groups: int) -> tuple[int, ...]:
    """Knot counts searched in stage 1: ``2 .. floor(sqrt(n_train_groups)) + 9``.

    This is the range of the public ETAP code (the paper, appendix B.2, says
    "up to sqrt(|G_train|)").

    Parameters
    ----------
    n_train_groups : int
        Number of training groups with at least two tasks.

    Returns
    -------
    tuple of int
    """
    return tuple(range(2, math.isqrt(max(int(n_train_groups), 0)) + 10))


def _grid(values, default, cast):
    """A user grid (any sequence, numpy arrays included) or the default, as a tuple."""
    return tuple(cast(v) for v in (default if values is None else values))


# --------------------------------------------------------------------------- #
# closed-form ridge used inside the cross-validation loops
# --------------------------------------------------------------------------- #
def ridge_path_predict(x_train, y_train, x_test, alphas):
    """Predictions of ``Ridge(alpha, fit_intercept=True)`` for many alphas at once.

    Same estimator as :class:`sklearn.linear_model.Ridge` (unpenalised
    intercept, centred features, penalty ``alpha * ||w||^2``), solved once per
    training set through an SVD of the centred design so that every alpha
    costs one small matrix product.

    Parameters
    ----------
    x_train : ndarray (n_train, n_features)
    y_train : ndarray (n_train, n_outputs)
    x_test : ndarray (n_test, n_features)
    alphas : ndarray (n_alphas,)

    Returns
    -------
    ndarray (n_alphas, n_test, n_outputs)
    """
    x_mean = x_train.mean(axis=0)
    y_mean = y_train.mean(axis=0)
    u, s, vt = np.linalg.svd(x_train - x_mean, full_matrices=False)
    uty = u.T @ (y_train - y_mean)  # (r, k)
    shrink = s[:, None] / (s[:, None] ** 2 + alphas[None, :])  # (r, a)
    coef = np.einsum("rp,ra,rk->apk", vt, shrink, uty)  # (a, p, k)
    return np.einsum("np,apk->ank", x_test - x_mean, coef) + y_mean


def _spline_ridge_cv_search(z, y, folds, degrees, n_knots, alphas):
    """Exhaustive CV search over (alpha, degree, n_knots) for spline + ridge.

    Gives the same scores and the same choice as ``GridSearchCV(Pipeline(
    [("spline", SplineTransformer(include_bias=True)), ("ridge", Ridge())]),
    cv=folds, scoring="neg_mean_squared_error")``: candidates in the same order
    (alpha outermost, n_knots innermost), the score of a candidate is the
    unweighted mean over folds of the held-out negative MSE, and ties go to the
    first candidate. The spline basis of every point is built once per
    (training range, degree, n_knots) and each fold takes its rows of it
    (:class:`~negtransfer.gains.splines.SplineBasisCache`: the same numbers as
    ``SplineTransformer``, to the last bit), and every alpha is solved from one
    SVD per (fold, degree, n_knots).

    Returns
    -------
    dict
        ``params`` (list of dicts), ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, ``split{k}_test_score`` and ``best_index``.
    """
    alphas_arr = np.asarray(alphas, dtype=float)
    bases = SplineBasisCache(z)
    scores = np.empty((len(folds), len(alphas), len(degrees), len(n_knots)))
    for f, (tr, te) in enumerate(folds):
        y_tr, y_te = y[tr, None], y[te]
        z_tr = z[tr]
        low, high = float(np.nanmin(z_tr)), float(np.nanmax(z_tr))  # the range the fold's knots span
        for di, degree in enumerate(degrees):
            for ki, knots in enumerate(n_knots):
                basis = bases.basis_on_range(low, high, degree, knots)
                pred = ridge_path_predict(basis[tr], y_tr, basis[te], alphas_arr)
                scores[f, :, di, ki] = -np.mean((pred[:, :, 0] - y_te) ** 2, axis=1)
    flat = scores.reshape(len(folds), -1)
    mean = flat.mean(axis=0)
    order = np.argsort(-mean, kind="stable")
    rank = np.empty(mean.size, dtype=int)
    # rank with ties sharing the smallest rank, as GridSearchCV does
    sorted_mean = mean[order]
    r = 1
    for pos, idx in enumerate(order):
        if pos > 0 and sorted_mean[pos] != sorted_mean[pos - 1]:
            r = pos + 1
        rank[idx] = r
    params = [
        {"alpha": float(a), "degree": int(d), "n_knots": int(k)}
        for a in alphas
        for d in degrees
        for k in n_knots
    ]
    results = {
        "params": params,
        "mean_test_score": mean,
        "std_test_score": flat.std(axis=0),
        "rank_test_score": rank,
        "best_index": int(np.argmax(mean)),
    }
    for f in range(len(folds)):
        results[f"split{f}_test_score"] = flat[f]
    return results


# --------------------------------------------------------------------------- #
# stage 2 model
# --------------------------------------------------------------------------- #
class MemberRidge(Parameters):
    """One ridge regression per task, fitted only on the groups containing it.

    Stage-2 residual model of :class:`ETAPPredictor` with
    ``outside_label="exclude"``: for task ``t`` the features are the multi-hot
    encodings ``u_G`` of the training groups that contain ``t`` and the labels
    their stage-1 residuals ``e_{G->t}`` (ETAP eq. 11 restricted to the entries
    that exist). The unpenalised intercept is the task's mean residual; the
    coefficients say how the presence of each other task shifts it. A task that
    is in no training group gets a zero model.

    Parameters
    ----------
    alpha : float
        Ridge penalty, shared by all tasks.

    Attributes
    ----------
    coef_ : ndarray (n_tasks, n_tasks)
        ``coef_[t, j]`` = effect of task ``j`` being in the group on the residual of ``t``.
    intercept_ : ndarray (n_tasks,)
    n_groups_per_task_ : ndarray (n_tasks,)
        Training groups that contained each task.
    """

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, U, E, mask):
        """Fit on multi-hot ``U`` (m x n), residuals ``E`` (m x n), member ``mask`` (m x n)."""
        x = np.asarray(U, dtype=float)
        e = np.asarray(E, dtype=float)
        mask = np.asarray(mask, dtype=bool)
        n_tasks = e.shape[1]
        self.coef_ = np.zeros((n_tasks, x.shape[1]))
        self.intercept_ = np.zeros(n_tasks)
        self.n_groups_per_task_ = mask.sum(axis=0)
        for t in range(n_tasks):
            rows = mask[:, t]
            if not rows.any():
                continue
            self.coef_[t], self.intercept_[t] = ridge_fit(x[rows], e[rows, t], self.alpha)
        return self

    def predict(self, U):
        """Residual for every (group, task); meaningful for members only."""
        return np.asarray(U, dtype=float) @ self.coef_.T + self.intercept_


# --------------------------------------------------------------------------- #
# the estimator
# --------------------------------------------------------------------------- #
class ETAPPredictor(Parameters):
    r"""Predict per-task MTL gains of task groups from task affinities (ETAP).

    Two-stage ensemble of Ayman, Mukhopadhyay and Laszka, "Ensemble
    Prediction of Task Affinity for Efficient Multi-Task Learning" (ICLR 2026), section 3.2:

    1. **Affinity-to-gain map** (eq. 8-9). For every training group ``G`` of
       two or more tasks and every member ``t``, the groupwise affinity score
       :math:`\bar z_{G\to t}` (eq. 7, :func:`group_affinity_scores`) is the
       feature and the measured gain :math:`y_{G\to t}` the label. With
       ``stage1="spline"`` the map is a B-spline basis :math:`\phi` (eq. 8)
       followed by a ridge regression (eq. 9), scikit-learn's
       ``SplineTransformer(include_bias=True)`` and ``Ridge`` written out
       (:class:`~negtransfer.gains.splines.SplineRidge`; no scikit-learn import
       on this path); degree, knot count and ridge strength are chosen by
       cross-validation on the training groups (appendix B.2).
    2. **Residual correction** (eq. 10-11). A ridge regression on the multi-hot
       group encoding :math:`u_G` predicts the stage-1 residual
       :math:`e_{G\to t} = y_{G\to t} - \hat y^{aff}_{G\to t}` of every member
       task; its strength is chosen by cross-validation over groups.
    3. **Final prediction** (eq. 12): :math:`\hat y^{final} = \hat y^{aff} +
       f_{residual}(u_G)`.

    Groups of one task are not learned from: their gain is 0 by definition
    (STL against itself) and :meth:`predict` returns 0 for them.

    Parameters
    ----------
    affinity : array-like of shape (n_tasks, n_tasks)
        ``affinity[i, j]`` = affinity of SOURCE task ``i`` onto TARGET task
        ``j`` (eq. 6). Off-diagonal entries must be finite; the diagonal is
        ignored.
    stage1 : {"spline", "affine", "knn", "forest"}, default="spline"
        Stage-1 map from :math:`\bar z_{G\to t}` to gain. ``"spline"``: B-spline
        basis + ridge (eq. 8-9). ``"affine"``: ordinary least squares line, the
        ablation of appendix C.2. ``"knn"``: scaled k-nearest-neighbour
        regression with k chosen by CV (appendix E.1). ``"forest"``: random
        forest with depth and leaf size chosen by CV (appendix E.1).
    residual : bool, default=True
        Add the stage-2 residual correction (eq. 10-12). ``False`` gives the
        stage-1-only predictor of the ablation in appendix C.1.
    cv : int, default=10
        Folds of the stage-1 search. Folds are formed by ``GroupKFold`` over
        training groups (all pairs of a group stay in one fold) and their number
        is ``min(cv, n_train_groups)``; with 5 training groups this is
        leave-one-group-out.
    residual_cv : int, default=5
        Folds of the stage-2 alpha search (``KFold`` over training groups,
        shuffled with ``random_state``), also capped at the number of groups.
    spline_degrees : sequence of int, optional
        Degrees searched by ``stage1="spline"``; default
        :data:`DEFAULT_SPLINE_DEGREES` (2..6).
    spline_n_knots : sequence of int, optional
        Knot counts searched; default :func:`default_spline_n_knots`
        (2..floor(sqrt(n_train_groups)) + 9).
    spline_alphas : sequence of float, optional
        Stage-1 ridge strengths searched; default :data:`DEFAULT_SPLINE_ALPHAS`.
    residual_alphas : sequence of float, optional
        Stage-2 ridge strengths searched; default :data:`DEFAULT_RESIDUAL_ALPHAS`
        (``logspace(-6, 2, 20)``).
    outside_label : {"exclude", "zero"}, default="exclude"
        What stage 2 learns for a task outside a training group, where no gain
        exists. ``"exclude"``: nothing; each task's residual model is fitted on
        the groups that contain it (:class:`MemberRidge`). ``"zero"``: a single
        multi-output ``Ridge`` fitted with residual 0 for non-members, as in the
        public ETAP code. In both cases the alpha search scores member entries
        only.
    random_state : int or None, default=0
        Seeds the stage-2 fold shuffle and the random forest.

    Attributes
    ----------
    affinity_ : ndarray (n_tasks, n_tasks)
        Validated copy of ``affinity``.
    n_tasks_ : int
    n_features_in_ : int
        Same as ``n_tasks_`` (columns of ``U``).
    n_train_groups_ : int
        Training groups with at least two tasks (the ones learned from).
    stage1_ : estimator
        Fitted stage-1 model mapping ``z`` of shape (k, 1) to gains (k,):
        :class:`~negtransfer.gains.splines.SplineRidge` for ``"spline"``, a
        scikit-learn model otherwise.
    stage2_ : MemberRidge, sklearn.linear_model.Ridge or None
        Fitted residual model, ``predict(U) -> (m, n_tasks)``; None when
        ``residual=False``.
    best_params_ : dict
        Chosen hyperparameters, keys prefixed ``stage1__`` / ``stage2__``.
    cv_results_ : dict or None
        Stage-1 search results in ``GridSearchCV.cv_results_`` form (None for
        ``"affine"`` and when no CV was possible).
    stage2_cv_results_ : dict or None
        ``{"alpha": ..., "mean_test_score": ...}`` (negative MSE over member
        entries of held-out groups) for the stage-2 search.
    n_splits_ : dict
        Folds actually used, ``{"stage1": k1, "stage2": k2}`` (0 = no CV).

    Examples
    --------
    >>> import numpy as np
    >>> A = np.array([[0.0, 0.2, -0.1], [0.3, 0.0, 0.1], [-0.2, 0.1, 0.0]])
    >>> U = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=bool)
    >>> Y = np.where(U, [[0.1, 0.2, np.nan], [-0.1, np.nan, 0.0],
    ...                  [np.nan, 0.1, 0.05], [0.05, 0.2, 0.0]], np.nan)
    >>> model = ETAPPredictor(A, spline_degrees=(2,), spline_n_knots=(2,)).fit(U, Y)
    >>> model.predict(U).shape
    (4, 3)
    """

    def __init__(
        self,
        affinity,
        *,
        stage1="spline",
        residual=True,
        cv=10,
        residual_cv=5,
        spline_degrees=None,
        spline_n_knots=None,
        spline_alphas=None,
        residual_alphas=None,
        outside_label="exclude",
        random_state=0,
    ):
        self.affinity = affinity
        self.stage1 = stage1
        self.residual = residual
        self.cv = cv
        self.residual_cv = residual_cv
        self.spline_degrees = spline_degrees
        self.spline_n_knots = spline_n_knots
        self.spline_alphas = spline_alphas
        self.residual_alphas = residual_alphas
        self.outside_label = outside_label
        self.random_state = random_state

    # ------------------------------------------------------------------ fit
    def fit(self, U, Y):
        """Fit both stages on a gain table.

        Parameters
        ----------
        U : array-like of shape (n_groups, n_tasks)
            Multi-hot training groups (bool or 0/1).
        Y : array-like of shape (n_groups, n_tasks)
            Measured MTL gains (eq. 1) of member tasks; entries outside a group
            are ignored (NaN by convention). Rows of one-task groups are ignored
            too. Member gains of larger groups must be finite.

        Returns
        -------
        self
        """
        self._check_params()
        affinity = validate_affinity_matrix(self.affinity, name="affinity")
        n_tasks = affinity.shape[0]
        u = validate_groups(U, n_tasks=n_tasks, name="U")
        y = self._check_gains(Y, u)

        train = u.sum(axis=1) >= 2
        if not train.any():
            raise ValueError(
                "U has no group with two or more tasks; the ETAP predictor learns from "
                "multi-task groups only (one-task groups have gain 0 by definition)"
            )
        u_tr, y_tr = u[train], y[train]
        n_groups = int(u_tr.shape[0])

        self.affinity_ = affinity
        self.n_tasks_ = n_tasks
        self.n_features_in_ = n_tasks
        self.n_train_groups_ = n_groups

        # stage 1: flattened (group, member task) pairs
        z_tr = group_affinity_scores(affinity, u_tr)
        g_idx, t_idx = np.nonzero(u_tr)
        z_pairs = z_tr[g_idx, t_idx]
        y_pairs = y_tr[g_idx, t_idx]
        self.n_splits_ = {"stage1": 0, "stage2": 0}
        self.cv_results_ = None
        stage1_params = self._fit_stage1(z_pairs, y_pairs, g_idx, n_groups)
        self.best_params_ = {f"stage1__{k}": v for k, v in stage1_params.items()}

        # stage 2: residuals of the in-sample stage-1 predictions (eq. 10-11)
        self.stage2_ = None
        self.stage2_cv_results_ = None
        if self.residual:
            resid = np.zeros_like(y_tr)
            resid[g_idx, t_idx] = y_pairs - self.stage1_.predict(z_pairs[:, None])
            self._fit_stage2(u_tr, resid)
        return self

    def _check_params(self):
        if self.stage1 not in _STAGE1_KINDS:
            raise ValueError(f"stage1 must be one of {_STAGE1_KINDS}; got {self.stage1!r}")
        if self.outside_label not in _OUTSIDE_LABELS:
            raise ValueError(
                f"outside_label must be one of {_OUTSIDE_LABELS}; got {self.outside_label!r}"
            )
        for name in ("cv", "residual_cv"):
            value = getattr(self, name)
            if not isinstance(value, Integral) or isinstance(value, bool) or value < 2:
                raise ValueError(f"{name} must be an integer >= 2; got {value!r}")
        for name in ("spline_degrees", "spline_n_knots", "spline_alphas", "residual_alphas"):
            value = getattr(self, name)
            if value is not None and len(value) == 0:
                raise ValueError(f"{name} must be None (paper default) or a non-empty sequence")
        if self.spline_degrees is not None and min(self.spline_degrees) < 1:
            raise ValueError(f"spline_degrees must be >= 1; got {tuple(self.spline_degrees)}")
        if self.spline_n_knots is not None and min(self.spline_n_knots) < 2:
            raise ValueError(f"spline_n_knots must be >= 2; got {tuple(self.spline_n_knots)}")
        for name in ("spline_alphas", "residual_alphas"):
            value = getattr(self, name)
            if value is not None and min(value) <= 0:
                raise ValueError(f"{name} must be > 0; got {tuple(value)}")

    @staticmethod
    def _check_gains(Y, u):
        try:
            y = np.array(Y, dtype=float, copy=True)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Y must be a numeric gain table; could not convert ({exc})") from exc
        if y.shape != u.shape:
            raise ValueError(
                f"Y must have the shape of U, {u.shape} (one gain per group and task, NaN "
                f"outside the group); got {y.shape}"
            )
        need = u & (u.sum(axis=1) >= 2)[:, None]
        bad = need & ~np.isfinite(y)
        if bad.any():
            g, t = np.argwhere(bad)[0]
            raise ValueError(
                f"Y has {int(bad.sum())} missing or non-finite gain(s) of member tasks "
                f"(first: group {g}, task {t}, value {y[g, t]}); drop those groups from the "
                "gain table or re-run them"
            )
        return y

    def _fit_stage1(self, z, y, group_ids, n_groups):
        folds = None
        if n_groups >= 2:
            n_splits = min(int(self.cv), n_groups)
            folds = group_kfold_splits(group_ids, n_splits)
            self.n_splits_["stage1"] = n_splits
        elif self.stage1 != "affine":
            warnings.warn(
                "only one training group has two or more tasks; stage-1 hyperparameters cannot "
                "be cross-validated and fixed defaults are used",
                UserWarning,
                stacklevel=3,
            )
        kind = self.stage1
        if kind == "spline":
            return self._fit_spline(z, y, folds, n_groups)
        if kind == "affine":
            from sklearn.linear_model import LinearRegression

            self.stage1_ = LinearRegression().fit(z[:, None], y)
            return {}
        if kind == "knn":
            from sklearn.neighbors import KNeighborsRegressor
            from sklearn.pipeline import Pipeline
            from sklearn.preprocessing import StandardScaler

            model = Pipeline([("scale", StandardScaler()), ("knn", KNeighborsRegressor())])
            if folds is None:
                grid = {"knn__n_neighbors": [min(5, z.size)]}
            else:
                smallest = min(len(tr) for tr, _ in folds)
                grid = {"knn__n_neighbors": list(range(1, min(30, smallest) + 1))}
            return self._grid_search(model, grid, z, y, folds, prefix="knn__")
        # forest
        from sklearn.ensemble import RandomForestRegressor

        model = RandomForestRegressor(n_estimators=50, random_state=self.random_state, n_jobs=1)
        if folds is None:
            grid = {"max_depth": [None], "min_samples_leaf": [1]}
        else:
            grid = {"max_depth": [3, None], "min_samples_leaf": [1, 5]}
        return self._grid_search(model, grid, z, y, folds, prefix="")

    def _grid_search(self, model, grid, z, y, folds, prefix):
        from sklearn.model_selection import GridSearchCV

        if folds is None:
            params = {k: v[0] for k, v in grid.items()}
            self.stage1_ = model.set_params(**params).fit(z[:, None], y)
        else:
            search = GridSearchCV(
                model, grid, cv=folds, scoring="neg_mean_squared_error", n_jobs=1, refit=True
            ).fit(z[:, None], y)
            self.stage1_ = search.best_estimator_
            self.cv_results_ = search.cv_results_
            params = search.best_params_
        return {k[len(prefix):]: v for k, v in params.items()}

    def _fit_spline(self, z, y, folds, n_groups):
        degrees = _grid(self.spline_degrees, DEFAULT_SPLINE_DEGREES, int)
        n_knots = _grid(self.spline_n_knots, default_spline_n_knots(n_groups), int)
        alphas = _grid(self.spline_alphas, DEFAULT_SPLINE_ALPHAS, float)
        if len(degrees) * len(n_knots) * len(alphas) == 1:
            # a single candidate: nothing to choose, so no cross-validation
            params = {"degree": degrees[0], "n_knots": n_knots[0], "alpha": alphas[0]}
        elif folds is None:
            params = dict(FALLBACK_SPLINE_PARAMS)
        else:
            results = _spline_ridge_cv_search(z, y, folds, degrees, n_knots, alphas)
            self.cv_results_ = results
            params = results["params"][results["best_index"]]
        self.stage1_ = SplineRidge(params["degree"], params["n_knots"], params["alpha"]).fit(z, y)
        return dict(params)

    def _fit_stage2(self, u, resid):
        alphas = np.asarray(_grid(self.residual_alphas, DEFAULT_RESIDUAL_ALPHAS, float))
        x = u.astype(float)
        n_groups = u.shape[0]
        if n_groups >= 2 and alphas.size > 1:
            n_splits = min(int(self.residual_cv), n_groups)
            fold_scores = []
            for tr, te in kfold_splits(n_groups, n_splits, shuffle=True, random_state=self.random_state):
                mse = self._stage2_fold_mse(x, resid, u, tr, te, alphas)
                if mse is not None:
                    fold_scores.append(mse)
            mean = -np.mean(fold_scores, axis=0)
            # best score; among exact ties the strongest penalty
            best = int(alphas.size - 1 - np.argmax(mean[::-1]))
            alpha = float(alphas[best])
            self.n_splits_["stage2"] = n_splits
            self.stage2_cv_results_ = {"alpha": alphas, "mean_test_score": mean}
        else:
            # a single alpha, or a single group: with one group every centred feature is
            # zero, only the intercept (the residual itself) is learned and alpha is moot
            alpha = float(alphas.max())
        self.best_params_["stage2__alpha"] = alpha
        if self.outside_label == "exclude":
            self.stage2_ = MemberRidge(alpha=alpha).fit(x, resid, u)
        else:
            from sklearn.linear_model import Ridge

            self.stage2_ = Ridge(alpha=alpha).fit(x, np.where(u, resid, 0.0))

    def _stage2_fold_mse(self, x, resid, u, tr, te, alphas):
        """Held-out MSE over member entries of the test groups, one value per alpha."""
        members_te = u[te]
        n_entries = int(members_te.sum())
        if n_entries == 0:
            return None
        sse = np.zeros(alphas.size)
        if self.outside_label == "zero":
            pred = ridge_path_predict(x[tr], np.where(u[tr], resid[tr], 0.0), x[te], alphas)
            err = (pred - resid[te][None]) ** 2  # (a, n_te, n_tasks)
            sse = err[:, members_te].sum(axis=1)
        else:
            for t in range(u.shape[1]):
                rows_te = te[u[te, t]]
                if rows_te.size == 0:
                    continue
                rows_tr = tr[u[tr, t]]
                if rows_tr.size == 0:
                    pred = np.zeros((alphas.size, rows_te.size))
                else:
                    pred = ridge_path_predict(
                        x[rows_tr], resid[rows_tr, t, None], x[rows_te], alphas
                    )[:, :, 0]
                sse += ((pred - resid[rows_te, t]) ** 2).sum(axis=1)
        return sse / n_entries

    # -------------------------------------------------------------- predict
    def predict(self, U):
        """Predict the MTL gain of every member task of every group (eq. 12).

        Parameters
        ----------
        U : array-like of shape (n_groups, n_tasks)
            Multi-hot groups to score (bool or 0/1), columns in the affinity
            matrix's task order.

        Returns
        -------
        ndarray of shape (n_groups, n_tasks)
            Stage 1 + stage 2 (or stage 1 alone with ``residual=False``) for
            members of groups of two or more tasks; 0 for the task of a one-task
            group; NaN for tasks outside the group.
        """
        check_fitted(self, "stage1_")
        u = validate_groups(U, n_tasks=self.n_tasks_, name="U")
        out = np.full(u.shape, np.nan)
        out[u & (u.sum(axis=1) == 1)[:, None]] = 0.0
        multi = u.sum(axis=1) >= 2
        if multi.any():
            u_m = u[multi]
            z = group_affinity_scores(self.affinity_, u_m)
            g_idx, t_idx = np.nonzero(u_m)
            pred = np.full(u_m.shape, np.nan)
            pred[g_idx, t_idx] = self.stage1_.predict(z[g_idx, t_idx][:, None])
            if self.stage2_ is not None:
                pred[g_idx, t_idx] += self.stage2_.predict(u_m.astype(float))[g_idx, t_idx]
            out[multi] = pred
        return out
