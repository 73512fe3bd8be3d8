"""The spline bases built once and reused: the same numbers as scikit-learn's SplineTransformer, to the last bit."""

from __future__ import annotations

import numpy as np
import pytest

from negtransfer.gains.etap import _spline_ridge_cv_search, ridge_path_predict
from negtransfer.gains.splines import SplineBasisCache, spline_basis, spline_knots

SplineTransformer = pytest.importorskip("sklearn.preprocessing").SplineTransformer


@pytest.mark.parametrize("degree", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("n_knots", [2, 3, 7, 12])
def test_basis_is_spline_transformers_to_the_last_bit(degree, n_knots):
    rng = np.random.default_rng(10 * degree + n_knots)
    x_train = rng.normal(size=40) * 0.3
    # held-out points inside, at the ends of and beyond the training range (constant extrapolation there)
    x_held = np.concatenate([rng.normal(size=30) * 0.5, [x_train.min(), x_train.max(), -5.0, 5.0]])
    fitted = SplineTransformer(degree=degree, n_knots=n_knots, include_bias=True).fit(x_train[:, None])
    knots = spline_knots(x_train.min(), x_train.max(), degree, n_knots)
    assert np.array_equal(knots, fitted.bsplines_[0].t)
    both = spline_basis(np.concatenate([x_train, x_held]), knots, degree)
    assert np.array_equal(both[:40], fitted.transform(x_train[:, None]))
    assert np.array_equal(both[40:], fitted.transform(x_held[:, None]))
    outside = np.abs(x_held) == 5.0
    assert np.all(both[40:][outside].sum(axis=1) > 0)  # the boundary values, not zeros


def test_cache_builds_one_basis_per_training_range():
    x = np.array([0.0, 0.5, 1.0, 0.25, 0.75, 0.1])
    cache = SplineBasisCache(x)
    whole = cache.basis(np.array([0, 1, 2, 3]), 3, 4)  # range [0, 1]
    same_range = cache.basis(np.array([0, 2, 4]), 3, 4)
    assert same_range is whole and len(cache) == 1
    narrower = cache.basis(np.array([1, 2]), 3, 4)  # range [0.5, 1]
    assert narrower is not whole and len(cache) == 2
    assert not np.array_equal(narrower, whole)
    cache.basis(np.array([0, 2]), 2, 4)
    cache.basis(np.array([0, 2]), 3, 5)
    assert len(cache) == 4  # degree and knot count are part of the key
    with pytest.raises(ValueError):
        whole[0, 0] = 1.0  # shared between folds: read-only


def _search_with_a_transformer_per_fold(z, y, folds, degrees, n_knots, alphas):
    """The search as it was: a SplineTransformer fitted per (fold, degree, knot count)."""
    alphas = np.asarray(alphas, dtype=float)
    scores = np.empty((len(folds), len(alphas), len(degrees), len(n_knots)))
    for f, (tr, te) in enumerate(folds):
        for di, degree in enumerate(degrees):
            for ki, knots in enumerate(n_knots):
                basis = SplineTransformer(degree=degree, n_knots=knots, include_bias=True)
                x_tr = basis.fit_transform(z[tr, None])
                pred = ridge_path_predict(x_tr, y[tr, None], basis.transform(z[te, None]), alphas)
                scores[f, :, di, ki] = -np.mean((pred[:, :, 0] - y[te]) ** 2, axis=1)
    return scores.reshape(len(folds), -1)


def test_cached_search_gives_the_same_scores_as_a_transformer_per_fold():
    from sklearn.model_selection import GroupKFold

    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(15), 3)
    z = rng.normal(size=groups.size)
    z[[0, 1]] = [-3.0, 3.0]  # extremes in one group: the fold holding it out has a narrower training range
    y = np.sin(z) + 0.1 * rng.normal(size=z.size)
    folds = list(GroupKFold(n_splits=5).split(z[:, None], y, groups=groups))
    degrees, n_knots, alphas = (2, 3, 6), (2, 4, 9), (0.001, 0.1, 1.0)
    ours = _spline_ridge_cv_search(z, y, folds, degrees, n_knots, alphas)
    reference = _search_with_a_transformer_per_fold(z, y, folds, degrees, n_knots, alphas)
    for f in range(len(folds)):
        assert np.array_equal(ours[f"split{f}_test_score"], reference[f])
    assert np.array_equal(ours["mean_test_score"], reference.mean(axis=0))
