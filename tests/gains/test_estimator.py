"""The scikit-learn pieces the ETAP predictor uses, written without it: the same folds, ridge, parameters."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from negtransfer.gains.estimator import Parameters, group_kfold_splits, kfold_splits, ridge_fit
from negtransfer.gains.splines import SplineRidge, bspline_values, spline_knots

sklearn_split = pytest.importorskip("sklearn.model_selection")


def _same_folds(ours, theirs):
    theirs = list(theirs)
    assert len(ours) == len(theirs)
    for (tr, te), (tr_ref, te_ref) in zip(ours, theirs, strict=True):
        assert np.array_equal(tr, tr_ref) and np.array_equal(te, te_ref)


@pytest.mark.parametrize("n_samples,n_splits,seed", [(10, 5, 0), (23, 5, 3), (7, 7, 1), (40, 3, None)])
def test_kfold_splits_are_sklearns(n_samples, n_splits, seed):
    x = np.zeros((n_samples, 1))
    _same_folds(kfold_splits(n_samples, n_splits), sklearn_split.KFold(n_splits).split(x))
    if seed is None:  # the global generator: both draw from the same state
        np.random.seed(5)
        ours = kfold_splits(n_samples, n_splits, shuffle=True, random_state=None)
        np.random.seed(5)
        _same_folds(ours, sklearn_split.KFold(n_splits, shuffle=True, random_state=None).split(x))
    else:
        _same_folds(kfold_splits(n_samples, n_splits, shuffle=True, random_state=seed),
                    sklearn_split.KFold(n_splits, shuffle=True, random_state=seed).split(x))


@pytest.mark.parametrize("seed", range(6))
def test_group_kfold_splits_are_sklearns(seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat(rng.permutation(30), rng.integers(1, 8, size=30))  # unequal sizes, ties among them
    for n_splits in (2, 5, 10):
        _same_folds(group_kfold_splits(groups, n_splits),
                    sklearn_split.GroupKFold(n_splits).split(np.zeros((groups.size, 1)), groups=groups))


def test_splits_refuse_more_folds_than_rows_or_groups():
    with pytest.raises(ValueError, match="n_splits=6"):
        kfold_splits(5, 6)
    with pytest.raises(ValueError, match="number of groups, 2"):
        group_kfold_splits(np.array([0, 0, 1]), 3)


@pytest.mark.parametrize("shape", [(40, 6), (5, 14), (30, 1)])
@pytest.mark.parametrize("alpha", [1e-6, 0.3, 100.0])
def test_ridge_fit_is_sklearns_ridge_to_rounding(shape, alpha):
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(shape[0] + shape[1])
    x = (rng.random(shape) < 0.5).astype(float) if shape[1] > 1 else rng.normal(size=shape)
    y = rng.normal(size=shape[0])
    reference = Ridge(alpha=alpha).fit(x, y)
    coef, intercept = ridge_fit(x, y, alpha)
    np.testing.assert_allclose(x @ coef + intercept, reference.predict(x), rtol=0, atol=1e-10)
    Y = np.stack([y, 2 * y + 1], axis=1)
    coef2, intercept2 = ridge_fit(x, Y, alpha)
    assert coef2.shape == (2, shape[1]) and intercept2.shape == (2,)
    np.testing.assert_allclose(x @ coef2.T + intercept2, Ridge(alpha=alpha).fit(x, Y).predict(x), rtol=0, atol=1e-10)


def test_spline_ridge_is_sklearns_pipeline_to_rounding():
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import SplineTransformer

    rng = np.random.default_rng(4)
    z = rng.normal(size=80) * 0.2
    y = np.sin(3 * z) + 0.05 * rng.normal(size=80)
    z_new = np.concatenate([rng.normal(size=20) * 0.3, [-2.0, 2.0]])  # beyond the range: constant extrapolation
    for degree, n_knots, alpha in [(2, 2, 1.0), (3, 7, 0.01), (6, 12, 0.001)]:
        ours = SplineRidge(degree, n_knots, alpha).fit(z, y)
        pipe = Pipeline([("spline", SplineTransformer(degree=degree, n_knots=n_knots, include_bias=True)),
                         ("ridge", Ridge(alpha=alpha))]).fit(z[:, None], y)
        np.testing.assert_allclose(ours.predict(z_new[:, None]), pipe.predict(z_new[:, None]), rtol=0, atol=1e-10)
        assert np.array_equal(ours.predict(z_new), ours.predict(z_new[:, None]))


@pytest.mark.parametrize("degree", [1, 2, 4, 6])
def test_bspline_values_are_scipys_to_the_last_bit(degree):
    from scipy.interpolate import BSpline

    rng = np.random.default_rng(degree)
    for n_knots in (2, 5, 17):
        knots = spline_knots(-0.3, 0.8, degree, n_knots)
        x = np.concatenate([rng.uniform(-0.3, 0.8, 300), knots[degree:-degree]])  # the base knots themselves too
        reference = BSpline.construct_fast(knots, np.eye(knots.size - degree - 1), degree, extrapolate=False)(x)
        assert np.array_equal(bspline_values(x, knots, degree), reference)
    flat = spline_knots(0.2, 0.2, degree, 4)  # a constant feature: every knot the same
    reference = BSpline.construct_fast(flat, np.eye(flat.size - degree - 1), degree, extrapolate=False)(np.array([0.2]))
    assert np.array_equal(bspline_values(np.array([0.2]), flat, degree), reference)


class _Toy(Parameters):
    def __init__(self, affinity, *, cv=10, name="x"):
        self.affinity = affinity
        self.cv = cv
        self.name = name


def test_parameters_work_with_sklearns_clone():
    from sklearn.base import clone

    toy = _Toy(np.eye(2), cv=3)
    assert set(toy.get_params()) == {"affinity", "cv", "name"}
    twin = clone(toy)
    assert twin is not toy and twin.get_params()["cv"] == 3 and np.array_equal(twin.affinity, np.eye(2))
    assert toy.set_params(name="y") is toy and toy.name == "y"
    with pytest.raises(ValueError, match="no parameter 'depth'"):
        toy.set_params(depth=3)
    assert repr(toy) == "_Toy(affinity=array(2, 2), cv=3, name='y')"


def test_the_etap_predictor_imports_neither_sklearn_nor_scipy():
    code = ("import sys, numpy as np; from negtransfer.gains.etap import ETAPPredictor; "
            "U = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=bool); "
            "Y = np.where(U, 0.1, np.nan); A = np.full((3, 3), 0.1); "
            "ETAPPredictor(A, spline_degrees=(2,), spline_n_knots=(2, 3), cv=2).fit(U, Y).predict(U); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'sklearn', 'scipy', 'pandas'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_not_fitted_says_what_to_call_without_a_cli_prefix():
    from sklearn.exceptions import NotFittedError

    from negtransfer.gains.estimator import check_fitted

    class Predictor:
        pass

    with pytest.raises(NotFittedError) as raised:
        check_fitted(Predictor(), "coef_")
    assert str(raised.value) == "this Predictor is not fitted yet; call fit(U, Y) before predict"
