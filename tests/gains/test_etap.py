"""Tests for negtransfer.gains.etap.ETAPPredictor (ETAP eq. 7-12).

Synthetic gain tables with planted structure: gains are a known non-linear
function of the groupwise affinity score z_{G->t} (eq. 7), optionally plus a
per-task offset that depends on the task, not on z (only stage 2 can learn it).
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from negtransfer.affinity.scores import group_affinity_scores
from negtransfer.gains.etap import (
    DEFAULT_RESIDUAL_ALPHAS,
    DEFAULT_SPLINE_ALPHAS,
    ETAPPredictor,
    MemberRidge,
    _spline_ridge_cv_search,
    default_spline_n_knots,
    ridge_path_predict,
)

N_TASKS = 8
SMALL_GRID = dict(spline_degrees=(2, 3), spline_n_knots=(2, 4), spline_alphas=(0.01, 0.1))


def true_map(z):
    """Planted non-monotone affinity-to-gain map (an affine map cannot fit it)."""
    return 2.0 * z**2 - 0.3


def make_problem(
    m_train, m_test=100, seed=0, offset_scale=0.0, noise=0.02, n=N_TASKS, gain_map=true_map
):
    """Affinity matrix and train/test gain tables with planted structure.

    Gains: ``gain_map(z_{G->t}) + offsets[t] + noise``; NaN outside the group.
    """
    rng = np.random.default_rng(seed)
    affinity = rng.normal(scale=0.6, size=(n, n))
    offsets = rng.normal(scale=offset_scale, size=n) if offset_scale else np.zeros(n)

    def sample_groups(m, with_all_tasks):
        U = np.zeros((m, n), dtype=bool)
        for g, size in enumerate(rng.integers(2, n + 1, size=m)):
            U[g, rng.choice(n, size, replace=False)] = True
        if with_all_tasks:  # the all-task group is always a training group (ETAP)
            U[0] = True
        return U

    def gains(U):
        Z = group_affinity_scores(affinity, U)  # NaN outside the group
        return gain_map(Z) + offsets + noise * rng.normal(size=U.shape)

    U_train = sample_groups(m_train, True)
    U_test = sample_groups(m_test, False)
    return affinity, offsets, U_train, gains(U_train), U_test, gains(U_test)


def pearson(P, Y, U):
    return float(np.corrcoef(P[U], Y[U])[0, 1])


def mse(P, Y, U):
    return float(np.mean((P[U] - Y[U]) ** 2))


# ----------------------------------------------------------------- stage 1


def test_stage1_spline_recovers_planted_nonlinear_map():
    A, _, U, Y, Ut, Yt = make_problem(m_train=40, seed=0)
    spline = ETAPPredictor(A, residual=False).fit(U, Y)
    affine = ETAPPredictor(A, residual=False, stage1="affine").fit(U, Y)

    # the fitted map itself is close to the planted one inside the training range
    z_train = group_affinity_scores(A, U)[U]
    grid = np.linspace(np.quantile(z_train, 0.05), np.quantile(z_train, 0.95), 50)
    assert np.max(np.abs(spline.stage1_.predict(grid[:, None]) - true_map(grid))) < 0.03

    # held-out groups: high correlation, far better than the affine ablation
    P = spline.predict(Ut)
    assert pearson(P, Yt, Ut) > 0.8
    assert pearson(affine.predict(Ut), Yt, Ut) < 0.4
    z_test = group_affinity_scores(A, Ut)
    inside = Ut & (z_test >= z_train.min()) & (z_test <= z_train.max())
    assert pearson(P, Yt, inside) > 0.95


def test_fast_search_matches_gridsearchcv():
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import SplineTransformer

    A, _, U, Y, _, _ = make_problem(m_train=12, seed=1, noise=0.1)
    g, t = np.nonzero(U)
    z = group_affinity_scores(A, U)[g, t]
    y = Y[g, t]
    folds = list(GroupKFold(n_splits=4).split(z[:, None], y, groups=g))
    degrees, knots, alphas = (2, 3, 5), (2, 3, 6), (0.001, 0.05, 1.0)
    ours = _spline_ridge_cv_search(z, y, folds, degrees, knots, alphas)
    pipe = Pipeline([("spline", SplineTransformer(include_bias=True)), ("ridge", Ridge())])
    grid = {"spline__degree": degrees, "spline__n_knots": knots, "ridge__alpha": alphas}
    ref = GridSearchCV(pipe, grid, cv=folds, scoring="neg_mean_squared_error").fit(z[:, None], y)
    np.testing.assert_allclose(ours["mean_test_score"], ref.cv_results_["mean_test_score"], rtol=1e-7)
    np.testing.assert_array_equal(ours["rank_test_score"], ref.cv_results_["rank_test_score"])
    best = ours["params"][ours["best_index"]]
    assert {f"spline__{k}": best[k] for k in ("degree", "n_knots")} | {
        "ridge__alpha": best["alpha"]
    } == ref.best_params_


def test_ridge_path_matches_sklearn_ridge():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(2)
    X = (rng.random((30, 6)) < 0.5).astype(float)
    Yk = rng.normal(size=(30, 3))
    Xt = (rng.random((7, 6)) < 0.5).astype(float)
    alphas = np.array([1e-4, 0.3, 10.0])
    path = ridge_path_predict(X, Yk, Xt, alphas)
    for a, alpha in enumerate(alphas):
        np.testing.assert_allclose(path[a], Ridge(alpha=alpha).fit(X, Yk).predict(Xt), atol=1e-10)


def test_default_grids_follow_references():
    assert default_spline_n_knots(100) == tuple(range(2, 20))
    assert default_spline_n_knots(5) == tuple(range(2, 12))
    assert len(DEFAULT_SPLINE_ALPHAS) == 24
    assert DEFAULT_SPLINE_ALPHAS[0] == 0.001 and DEFAULT_SPLINE_ALPHAS[-1] == 1.0
    assert 0.05 in DEFAULT_SPLINE_ALPHAS and 0.6 in DEFAULT_SPLINE_ALPHAS
    np.testing.assert_allclose(DEFAULT_RESIDUAL_ALPHAS, np.logspace(-6, 2, 20))


# ----------------------------------------------------------------- stage 2


@pytest.mark.parametrize("outside_label", ["exclude", pytest.param("zero", marks=pytest.mark.slow)])  # zero: test-all
def test_residual_stage_learns_planted_task_offsets(outside_label):
    A, offsets, U, Y, Ut, Yt = make_problem(m_train=40, seed=0, offset_scale=0.3)
    stage1_only = ETAPPredictor(A, residual=False).fit(U, Y)
    full = ETAPPredictor(A, outside_label=outside_label).fit(U, Y)
    err1 = mse(stage1_only.predict(Ut), Yt, Ut)
    err2 = mse(full.predict(Ut), Yt, Ut)
    assert err2 < 0.5 * err1
    # stage 1 is the same fit with and without stage 2
    assert stage1_only.best_params_.items() <= full.best_params_.items()
    if outside_label == "exclude":
        # per-task intercepts recover the planted offsets (up to a shared shift)
        assert np.corrcoef(full.stage2_.intercept_, offsets)[0, 1] > 0.9


def test_member_ridge_ignores_non_member_labels():
    rng = np.random.default_rng(4)
    U = rng.random((20, 5)) < 0.6
    E = rng.normal(size=U.shape)
    E2 = np.where(U, E, 1e6)  # garbage outside the groups must not matter
    a = MemberRidge(alpha=0.5).fit(U, E, U)
    b = MemberRidge(alpha=0.5).fit(U, E2, U)
    np.testing.assert_allclose(a.coef_, b.coef_)
    np.testing.assert_allclose(a.intercept_, b.intercept_)
    # a task in no group gets a zero model
    U[:, 4] = False
    c = MemberRidge(alpha=0.5).fit(U, E, U)
    assert c.n_groups_per_task_[4] == 0
    assert np.all(c.coef_[4] == 0) and c.intercept_[4] == 0


# ------------------------------------------------------------ few groups


def test_works_with_five_training_groups():
    A, _, U, Y, Ut, Yt = make_problem(m_train=5, seed=0)
    model = ETAPPredictor(A).fit(U, Y)
    assert model.n_train_groups_ == 5
    assert model.n_splits_ == {"stage1": 5, "stage2": 5}  # leave-one-group-out
    assert model.cv_results_["params"][-1]["n_knots"] == 11  # floor(sqrt(5)) + 9
    P = model.predict(Ut)
    assert np.isfinite(P[Ut]).all()
    affine = ETAPPredictor(A, stage1="affine").fit(U, Y)
    assert pearson(P, Yt, Ut) > 0.6
    assert pearson(P, Yt, Ut) > pearson(affine.predict(Ut), Yt, Ut)


def test_two_groups_and_single_group():
    A, _, U, Y, Ut, _ = make_problem(m_train=2, seed=3)
    model = ETAPPredictor(A, **SMALL_GRID).fit(U, Y)
    assert model.n_splits_ == {"stage1": 2, "stage2": 2}
    assert np.isfinite(model.predict(Ut)[Ut]).all()
    with pytest.warns(UserWarning, match="cannot be cross-validated"):
        single = ETAPPredictor(A).fit(U[:1], Y[:1])
    assert single.n_splits_ == {"stage1": 0, "stage2": 0}
    assert np.isfinite(single.predict(Ut)[Ut]).all()


# ------------------------------------------------------- output contract


def test_nan_outside_groups_and_zero_for_singletons():
    A, _, U, Y, _, _ = make_problem(m_train=20, seed=5)
    model = ETAPPredictor(A, **SMALL_GRID).fit(U, Y)
    Uq = np.zeros((4, N_TASKS), dtype=bool)
    Uq[0, 3] = True  # singleton
    Uq[1, [0, 5]] = True
    Uq[2] = True
    Uq[3, [1, 2, 7]] = True
    P = model.predict(Uq)
    assert P.shape == Uq.shape
    assert np.isnan(P[~Uq]).all()
    assert P[0, 3] == 0.0
    assert np.isfinite(P[1:][Uq[1:]]).all()
    assert np.all(P[1:][Uq[1:]] != 0.0)
    # 0/1 integers are accepted the same way as booleans
    np.testing.assert_array_equal(model.predict(Uq.astype(int)), P)


def test_singleton_training_rows_are_ignored():
    A, _, U, Y, Ut, _ = make_problem(m_train=15, seed=6, offset_scale=0.2)
    single = np.zeros((2, N_TASKS), dtype=bool)
    single[0, 2] = single[1, 6] = True
    Y_single = np.full(single.shape, np.nan)
    Y_single[0, 2], Y_single[1, 6] = 5.0, -5.0  # nonsense: a singleton's gain is 0 by definition
    base = ETAPPredictor(A, **SMALL_GRID).fit(U, Y)
    more = ETAPPredictor(A, **SMALL_GRID).fit(np.vstack([U, single]), np.vstack([Y, Y_single]))
    np.testing.assert_allclose(more.predict(Ut), base.predict(Ut), equal_nan=True)


def test_values_outside_groups_in_Y_are_ignored():
    A, _, U, Y, Ut, _ = make_problem(m_train=15, seed=7)
    filled = np.where(U, Y, 123.0)
    a = ETAPPredictor(A, **SMALL_GRID).fit(U, Y).predict(Ut)
    b = ETAPPredictor(A, **SMALL_GRID).fit(U, filled).predict(Ut)
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------- variants, determinism

VARIANTS = [
    dict(stage1=s, residual=r, outside_label=o)
    for s in ("spline", "affine", "knn", "forest")
    for r in (True, False)
    for o in (("exclude", "zero") if r else ("exclude",))
]


@pytest.mark.parametrize("params", VARIANTS, ids=lambda p: "-".join(str(v) for v in p.values()))
def test_every_variant_fits_and_predicts(params):
    # a monotone planted map, so that the affine ablation can follow it too
    A, _, U, Y, Ut, Yt = make_problem(
        m_train=15, m_test=30, seed=8, offset_scale=0.1, gain_map=lambda z: np.tanh(2 * z)
    )
    model = ETAPPredictor(A, cv=3, **params, **SMALL_GRID).fit(U, Y)
    P = model.predict(Ut)
    assert P.shape == Ut.shape
    assert np.isfinite(P[Ut]).all() and np.isnan(P[~Ut]).all()
    assert (model.stage2_ is None) == (not params["residual"])
    assert pearson(P, Yt, Ut) > 0.85  # every variant picks up the planted map


@pytest.mark.parametrize("stage1", ["spline", pytest.param("forest", marks=pytest.mark.slow)])  # forest: test-all
def test_deterministic(stage1):
    A, _, U, Y, Ut, _ = make_problem(m_train=15, m_test=30, seed=9, offset_scale=0.1)
    a = ETAPPredictor(A, stage1=stage1, random_state=3, **SMALL_GRID).fit(U, Y)
    b = clone(a).fit(U, Y)
    np.testing.assert_array_equal(a.predict(Ut), b.predict(Ut))
    assert a.best_params_ == b.best_params_


def test_sklearn_estimator_api():
    A, _, U, Y, _, _ = make_problem(m_train=10, seed=10)
    model = ETAPPredictor(A, stage1="knn", cv=4)
    params = model.get_params()
    assert params["stage1"] == "knn" and params["cv"] == 4 and params["affinity"] is A
    assert clone(model).get_params()["cv"] == 4
    # no work in __init__: a bad affinity is only reported by fit
    lazy = ETAPPredictor(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="square"):
        lazy.fit(U, Y)
    assert model.fit(U, Y) is model
    assert model.n_features_in_ == N_TASKS and model.n_tasks_ == N_TASKS


# ------------------------------------------------------------------ errors


def test_bad_shapes_and_values_raise_clear_errors():
    A, _, U, Y, _, _ = make_problem(m_train=10, seed=11)
    model = ETAPPredictor(A, **SMALL_GRID)
    with pytest.raises(NotFittedError):
        model.predict(U)
    with pytest.raises(ValueError, match="U has 7 columns but the affinity matrix covers 8"):
        model.fit(U[:, :7], Y[:, :7])
    with pytest.raises(ValueError, match=r"Y must have the shape of U, \(10, 8\)"):
        model.fit(U, Y[:9])
    with pytest.raises(ValueError, match="multi-hot"):
        model.fit(U * 2, Y)
    with pytest.raises(ValueError, match="2-D"):
        model.fit(U[0], Y[0])
    bad = Y.copy()
    g, t = np.argwhere(U)[3]
    bad[g, t] = np.nan
    with pytest.raises(ValueError, match=f"group {g}, task {t}"):
        model.fit(U, bad)
    singles = np.eye(N_TASKS, dtype=bool)
    with pytest.raises(ValueError, match="no group with two or more tasks"):
        model.fit(singles, np.zeros(singles.shape))
    with pytest.raises(ValueError, match="stage1 must be one of"):
        ETAPPredictor(A, stage1="xgboost").fit(U, Y)
    with pytest.raises(ValueError, match="outside_label must be one of"):
        ETAPPredictor(A, outside_label="nan").fit(U, Y)
    with pytest.raises(ValueError, match="cv must be an integer >= 2"):
        ETAPPredictor(A, cv=1).fit(U, Y)
    model.fit(U, Y)
    with pytest.raises(ValueError, match="U has 9 columns"):
        model.predict(np.ones((2, 9), dtype=bool))
    with pytest.raises(ValueError, match="row 1 selects no task"):
        model.predict(np.vstack([U[:1], np.zeros((1, N_TASKS), dtype=bool)]))


def test_no_warnings_on_normal_fit():
    A, _, U, Y, Ut, _ = make_problem(m_train=12, seed=12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ETAPPredictor(A).fit(U, Y).predict(Ut)
