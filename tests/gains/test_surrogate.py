"""Linear surrogate of a target's loss over source subsets (surrogate paper, eq. 2-3).

Planted additive models check that least squares recovers the relevance scores
on each scale; a simulation of Theorem 3.1's setting (pooled least squares with
good and bad source groups, not additive) checks that a threshold separates
the groups; sklearn's Ridge / LinearRegression are independent references for
the ridge and intercept solutions.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LinearRegression, Ridge

from negtransfer.gains.surrogate import LinearSurrogate, leave_one_out_alpha, validate_subsets
from negtransfer.select.sources import sample_subsets, select_sources

K = 20
SIZE = 5
N_GOOD = 8


def planted_theta(seed=1):
    """Good sources (0..7) lower the loss by ~6% of STL, bad ones raise it by ~5%."""
    rng = np.random.default_rng(seed)
    return np.where(np.arange(K) < N_GOOD, -0.06, 0.05) + rng.normal(0, 0.01, K)


def additive_losses(S, theta, stl, noise, seed):
    """f(S) = STL + |STL| * sum_{i in S} theta_i + noise: additive on the relative scale."""
    rng = np.random.default_rng(seed)
    return stl + abs(stl) * (S @ theta) + rng.normal(0.0, noise, S.shape[0])


# ---------------------------------------------------------------------------
# recovery of planted scores


@pytest.mark.parametrize("stl", [0.4, -0.3])  # -0.3: a negative-margin loss
def test_exact_recovery_without_noise_on_every_scale(stl):
    theta = planted_theta()
    S = sample_subsets(K, SIZE, 4 * K, seed=0)
    f = additive_losses(S, theta, stl, noise=0.0, seed=0)

    rel = LinearSurrogate().fit(S, f, stl_loss=stl)
    np.testing.assert_allclose(rel.theta_, theta, atol=1e-10)
    assert rel.coef_ is rel.theta_ and rel.intercept_ == 0.0

    diff = LinearSurrogate(scale="difference").fit(S, f, stl_loss=stl)
    np.testing.assert_allclose(diff.theta_, abs(stl) * theta, atol=1e-10)

    # The paper's unanchored eq. 3: the same scores shifted by STL / subset size.
    raw = LinearSurrogate(scale="raw").fit(S, f)
    np.testing.assert_allclose(raw.theta_, abs(stl) * theta + stl / SIZE, atol=1e-10)

    # All three predict the same losses for subsets of the sampled size.
    T = sample_subsets(K, SIZE, 30, seed=9)
    truth = additive_losses(T, theta, stl, noise=0.0, seed=0)
    for model in (rel, diff, raw):
        np.testing.assert_allclose(model.predict(T), truth, atol=1e-10)
    np.testing.assert_allclose(rel.surrogate_value(T), T @ theta, atol=1e-10)


def test_least_squares_recovers_planted_scores_under_noise():
    theta = planted_theta()
    stl = 0.4
    S = sample_subsets(K, SIZE, 8 * K, seed=0)  # the paper's n <= 8k
    f = additive_losses(S, theta, stl, noise=0.01, seed=2)
    model = LinearSurrogate().fit(S, f, stl_loss=stl)
    err = model.theta_ - theta
    # Noise on the relative scale is 0.01 / 0.4 = 0.025 per subset; with ~40
    # appearances per source the score error is ~0.01.
    assert np.max(np.abs(err)) < 0.03
    assert np.sqrt(np.mean(err**2)) < 0.015
    # Good sources help (negative score), bad ones hurt, and zero separates them.
    assert (model.theta_[:N_GOOD] < 0).all() and (model.theta_[N_GOOD:] > 0).all()
    np.testing.assert_array_equal(select_sources(model.theta_, 0.0), np.arange(N_GOOD))
    # A shuffled label (wrong planted truth) would fail: the fit is not trivially close.
    assert np.max(np.abs(model.theta_ - np.roll(theta, 1))) > 0.05


def test_negative_transfer_prediction_follows_stl():
    theta = planted_theta()
    stl = 0.4
    S = sample_subsets(K, SIZE, 8 * K, seed=0)
    model = LinearSurrogate().fit(S, additive_losses(S, theta, stl, 0.0, 0), stl_loss=stl)
    T = np.zeros((3, K), dtype=bool)
    T[0, :SIZE] = True  # five good sources: positive transfer
    T[1, -SIZE:] = True  # five bad sources: negative transfer
    # Row 2 empty: STL itself, loss == STL counts as negative transfer (no gain).
    np.testing.assert_array_equal(model.predict_negative_transfer(T), [False, True, True])
    np.testing.assert_allclose(model.predict(T)[2], stl)


# ---------------------------------------------------------------------------
# Theorem 3.1's setting: pooled least squares, good vs bad source groups


def theorem_setting(seed, k=12, n_good=5, p=8, d=40, d_t=30, a=0.1, b=3.0, sigma=1.0, m=400):
    """Linear tasks y = x^T beta_i + noise; good: |beta_i - beta_t| = a, bad: = b.

    f(S) is the target's validation MSE of one least-squares model fitted on
    the pooled data of S and the target (hard parameter sharing of a linear
    model, proof of Theorem 3.1). Not additive in S.
    """
    rng = np.random.default_rng(seed)
    beta_t = rng.normal(size=p)
    dirs = rng.normal(size=(k, p))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    betas = beta_t + dirs * np.where(np.arange(k) < n_good, a, b)[:, None]
    Xs = [rng.normal(size=(d, p)) for _ in range(k)]
    Ys = [X @ beta + sigma * rng.normal(size=d) for X, beta in zip(Xs, betas, strict=True)]
    Xt = rng.normal(size=(d_t, p))
    Yt = Xt @ beta_t + sigma * rng.normal(size=d_t)
    Xv = rng.normal(size=(m, p))
    Yv = Xv @ beta_t + sigma * rng.normal(size=m)

    def f(mask):
        idx = np.flatnonzero(mask)
        X = np.vstack([Xt] + [Xs[i] for i in idx])
        Y = np.concatenate([Yt] + [Ys[i] for i in idx])
        B = np.linalg.lstsq(X, Y, rcond=None)[0]
        return float(np.mean((Xv @ B - Yv) ** 2))

    return f, f(np.zeros(k, dtype=bool)), n_good


@pytest.mark.parametrize("seed", range(5))
def test_theorem_3_1_a_threshold_separates_good_from_bad(seed):
    f, stl, n_good = theorem_setting(seed)
    S = sample_subsets(12, 3, 96, seed=seed)
    y = np.array([f(row) for row in S])
    theta = LinearSurrogate().fit(S, y, stl_loss=stl).theta_
    assert theta[:n_good].max() < theta[n_good:].min()
    gamma = (theta[:n_good].max() + theta[n_good:].min()) / 2
    np.testing.assert_array_equal(select_sources(theta, gamma), np.arange(n_good))


# ---------------------------------------------------------------------------
# ridge and intercept


def test_ridge_matches_sklearn_and_shrinks():
    theta = planted_theta()
    stl = 0.4
    S = sample_subsets(K, SIZE, 3 * K, seed=3)
    f = additive_losses(S, theta, stl, noise=0.02, seed=4)
    y_rel = (f - stl) / stl
    ls = LinearSurrogate().fit(S, f, stl_loss=stl)
    for alpha in (0.1, 1.0, 10.0):
        ridge = LinearSurrogate(alpha=alpha).fit(S, f, stl_loss=stl)
        ref = Ridge(alpha=alpha, fit_intercept=False).fit(S.astype(float), y_rel)
        np.testing.assert_allclose(ridge.theta_, ref.coef_, atol=1e-10)
        assert np.linalg.norm(ridge.theta_) < np.linalg.norm(ls.theta_)
    tiny = LinearSurrogate(alpha=1e-9).fit(S, f, stl_loss=stl)
    np.testing.assert_allclose(tiny.theta_, ls.theta_, atol=1e-6)


def test_ridge_handles_fewer_subsets_than_sources_and_unsampled_sources():
    stl = 0.4
    S = sample_subsets(K, SIZE, 8, seed=0)
    S[:, 0] = False  # source 0 never sampled
    f = additive_losses(S, planted_theta(), stl, noise=0.0, seed=0)
    with pytest.raises(ValueError, match="alpha > 0"):
        LinearSurrogate().fit(S, f, stl_loss=stl)
    model = LinearSurrogate(alpha=1.0).fit(S, f, stl_loss=stl)
    assert model.theta_[0] == 0.0
    assert np.isfinite(model.theta_).all()
    # min_norm least squares: also 0 for the unsampled source, and interpolates.
    mn = LinearSurrogate(underdetermined="min_norm").fit(S, f, stl_loss=stl)
    assert abs(mn.theta_[0]) < 1e-12
    np.testing.assert_allclose(mn.predict(S), f, atol=1e-10)


def test_intercept_is_refused_for_fixed_size_subsets():
    S = sample_subsets(K, SIZE, 8 * K, seed=0)
    f = additive_losses(S, planted_theta(), 0.4, 0.0, 0)
    with pytest.raises(ValueError, match="every subset has 5 sources"):
        LinearSurrogate(fit_intercept=True).fit(S, f, stl_loss=0.4)
    with pytest.raises(ValueError, match="every subset has 5 sources"):
        LinearSurrogate(alpha=1.0, fit_intercept=True).fit(S, f, stl_loss=0.4)


def test_intercept_with_varied_sizes_matches_sklearn():
    theta = planted_theta()
    stl, b = 0.4, 0.03
    S = np.vstack([sample_subsets(K, s, 40, seed=s) for s in (2, 5, 9)])
    rng = np.random.default_rng(0)
    y_rel = b + S @ theta + rng.normal(0, 0.005, S.shape[0])
    f = stl * (1 + y_rel)
    model = LinearSurrogate(fit_intercept=True).fit(S, f, stl_loss=stl)
    ref = LinearRegression().fit(S.astype(float), y_rel)
    np.testing.assert_allclose(model.theta_, ref.coef_, atol=1e-10)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, atol=1e-10)
    assert abs(model.intercept_ - b) < 0.01
    np.testing.assert_array_equal(model.subset_sizes_, [2, 5, 9])
    ridge = LinearSurrogate(alpha=2.0, fit_intercept=True).fit(S, f, stl_loss=stl)
    ref = Ridge(alpha=2.0).fit(S.astype(float), y_rel)
    np.testing.assert_allclose(ridge.theta_, ref.coef_, atol=1e-10)
    np.testing.assert_allclose(ridge.intercept_, ref.intercept_, atol=1e-10)
    np.testing.assert_allclose(ridge.predict(S[:3]), stl * (1 + ref.predict(S[:3].astype(float))), atol=1e-10)


# ---------------------------------------------------------------------------
# API details


def test_relevance_scores_and_sklearn_protocol():
    S = sample_subsets(4, 2, 6, seed=0)
    f = additive_losses(S, np.array([-0.1, 0.0, 0.1, 0.2]), 1.0, 0.0, 0)
    model = LinearSurrogate().fit(S.astype(int), f, stl_loss=1.0)  # 0/1 ints accepted
    scores = model.relevance_scores()
    assert list(scores) == [0, 1, 2, 3]
    np.testing.assert_allclose(list(scores.values()), [-0.1, 0.0, 0.1, 0.2], atol=1e-12)
    named = model.relevance_scores(names=["a", "b", "c", "d"])
    assert named["a"] == pytest.approx(-0.1)
    assert select_sources(named, 0.05) == ["a", "b"]
    with pytest.raises(ValueError, match="names has 2 entries"):
        model.relevance_scores(names=["a", "b"])
    twin = clone(model)
    assert twin.get_params() == {"alpha": 0.0, "scale": "relative", "fit_intercept": False, "underdetermined": "raise"}
    assert not hasattr(twin, "theta_")
    assert model.score(S, f) == pytest.approx(1.0)  # R^2 in loss units


@pytest.mark.parametrize(
    "S, f, kwargs, params, match",
    [
        (np.ones(4, bool), [1.0], {"stl_loss": 1.0}, {}, "wrap a single subset"),
        (np.zeros((0, 3), bool), [], {"stl_loss": 1.0}, {}, "at least one subset"),
        (np.array([[0, 2], [1, 0]]), [1.0, 1.0], {"stl_loss": 1.0}, {}, r"S\[0, 1\] = 2"),
        (np.array([["a", "b"]]), [1.0], {"stl_loss": 1.0}, {}, "boolean or 0/1"),
        (np.eye(3, dtype=bool), [1.0, np.nan, 1.0], {"stl_loss": 1.0}, {}, r"rows \[1\] are NaN"),
        (np.eye(3, dtype=bool), [1.0, 1.0], {"stl_loss": 1.0}, {}, "f has 2 values but S has 3"),
        (np.eye(3, dtype=bool), [[1.0, 1.0, 1.0]], {"stl_loss": 1.0}, {}, "f must be 1-D"),
        (np.eye(3, dtype=bool), [1.0, 1.0, 1.0], {}, {}, "pass stl_loss="),
        (np.eye(3, dtype=bool), [1.0, 1.0, 1.0], {"stl_loss": 0.0}, {}, "scale='difference'"),
        (np.eye(3, dtype=bool), [1.0, 1.0, 1.0], {"stl_loss": np.nan}, {}, "stl_loss must be finite"),
        (np.eye(3, dtype=bool), [1.0, 1.0, 1.0], {"stl_loss": [1.0, 2.0]}, {}, "one number"),
        (np.eye(3, dtype=bool), [1.0, 1.0, 1.0], {"stl_loss": 1.0}, {"alpha": -1.0}, "alpha must be"),
        (np.eye(3, dtype=bool), [1.0, 1.0, 1.0], {"stl_loss": 1.0}, {"scale": "ratio"}, "scale must be one of"),
        (np.eye(3, dtype=bool), [1.0, 1.0, 1.0], {"stl_loss": 1.0}, {"underdetermined": "x"}, "underdetermined"),
        (np.eye(3, dtype=bool)[:2], [1.0, 1.0], {"stl_loss": 1.0}, {}, "at least 3 subsets for 3 source tasks"),
        (np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 0]]), [1.0] * 4, {"stl_loss": 1.0}, {}, "rank 2 < 3"),
        (np.ones((5, 3), bool), [1.0] * 5, {"stl_loss": 1.0}, {}, "rank 1 < 3"),
        (np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [1, 1, 0]]), [1.0] * 4, {"stl_loss": 1.0}, {}, r"source task\(s\) \[2\] appear in no subset"),
    ],
)
def test_fit_errors_name_the_problem(S, f, kwargs, params, match):
    with pytest.raises(ValueError, match=match):
        LinearSurrogate(**params).fit(S, f, **kwargs)


def test_predict_errors():
    with pytest.raises(NotFittedError):
        LinearSurrogate().predict(np.eye(3, dtype=bool))
    model = LinearSurrogate().fit(np.eye(3, dtype=bool), [0.9, 1.0, 1.1], stl_loss=1.0)
    np.testing.assert_allclose(model.theta_, [-0.1, 0.0, 0.1], atol=1e-12)
    with pytest.raises(ValueError, match="fitted on 3 source tasks"):
        model.predict(np.eye(4, dtype=bool))
    raw = LinearSurrogate(scale="raw").fit(np.eye(3, dtype=bool), [0.9, 1.0, 1.1])
    with pytest.raises(ValueError, match="needs the STL loss"):
        raw.predict_negative_transfer(np.eye(3, dtype=bool))
    # With scale="raw" an STL loss is stored but does not move the scores.
    raw2 = LinearSurrogate(scale="raw").fit(np.eye(3, dtype=bool), [0.9, 1.0, 1.1], stl_loss=1.0)
    np.testing.assert_allclose(raw2.theta_, raw.theta_)
    np.testing.assert_array_equal(raw2.predict_negative_transfer(np.eye(3, dtype=bool)), [False, True, True])


def test_validate_subsets_accepts_empty_rows():
    out = validate_subsets(np.array([[0, 0], [1, 0]]))
    assert out.dtype == bool and out.tolist() == [[False, False], [True, False]]


# ---------------------------------------------------------------------------
# alpha="auto": the ridge strength by leave-one-out error


def test_leave_one_out_alpha_matches_refitting_without_each_subset():
    S = sample_subsets(K, SIZE, 60, seed=3).astype(float)
    t = additive_losses(S, planted_theta(), 0.5, 0.02, seed=4) - 0.5
    alphas = (0.0, 0.5, 5.0)
    _, errors = leave_one_out_alpha(S, t, alphas)
    for alpha, error in zip(alphas, errors, strict=True):
        brute = []
        for i in range(S.shape[0]):
            keep = np.arange(S.shape[0]) != i
            theta = LinearSurrogate(alpha=alpha, scale="raw").fit(S[keep], t[keep]).theta_
            brute.append((t[i] - S[i] @ theta) ** 2)
        assert error == pytest.approx(np.mean(brute), rel=1e-8)


def test_auto_alpha_shrinks_when_subsets_are_few_and_not_when_they_are_many():
    theta = planted_theta()
    stl = 0.5
    # n = k: least squares interpolates the noise (its leave-one-out error is undefined), ridge is chosen
    few = sample_subsets(K, SIZE, K, seed=5)
    auto = LinearSurrogate(alpha="auto").fit(few, additive_losses(few, theta, stl, 0.02, seed=6), stl_loss=stl)
    assert auto.alpha_ > 0
    # many noise-free subsets: nothing to shrink, least squares recovers theta exactly
    many = sample_subsets(K, SIZE, 8 * K, seed=7)
    exact = LinearSurrogate(alpha="auto").fit(many, additive_losses(many, theta, stl, 0.0, seed=8), stl_loss=stl)
    assert exact.alpha_ == 0.0 and np.allclose(exact.theta_, theta)
    # with noise, the chosen ridge ranks held-out subsets at least as well as least squares near n = k
    hold = sample_subsets(K, SIZE, 400, seed=9)
    f_hold = additive_losses(hold, theta, stl, 0.0, seed=10)
    rho = {}
    for alpha in (0.0, "auto"):
        rhos = []
        for seed in range(10):
            S = sample_subsets(K, SIZE, int(1.5 * K), seed=100 + seed)
            fit = LinearSurrogate(alpha=alpha).fit(S, additive_losses(S, theta, stl, 0.05, seed=200 + seed), stl_loss=stl)
            rhos.append(spearmanr(fit.predict(hold), f_hold)[0])
        rho[alpha] = np.mean(rhos)
    assert rho["auto"] > rho[0.0] + 0.05
    with pytest.raises(ValueError, match="'auto'"):
        LinearSurrogate(alpha="Auto").fit(many, np.ones(len(many)), stl_loss=stl)
