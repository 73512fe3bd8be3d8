"""The kernel surrogate (kernel ridge on subset indicators): a planted interaction, the linear case, the
closed-form leave-one-out error, and how relevance is read from it."""

from __future__ import annotations

import numpy as np
import pytest

from negtransfer.gains.surrogate import LinearSurrogate
from negtransfer.select.kernel_surrogate import KernelSurrogate, kernel_loo_errors, kernel_matrix
from negtransfer.select.sources import choose_threshold, negative_transfer_metrics, sample_subsets

STL = 1.0


def planted_pair(n: int = 120, k: int = 10, noise: float = 0.01, seed: int = 0):
    """Subsets of 3 of 10 sources; each source alone changes the loss a little (sources 0 and 1 mildly help
    or are neutral), and sources 0 and 1 together raise it by 40% of STL: they hurt only together."""
    S = sample_subsets(k, 3, n, seed=seed)
    effect = np.linspace(-0.06, 0.02, k)
    rng = np.random.default_rng(seed)
    f = STL * (1 + S @ effect + 0.4 * (S[:, 0] & S[:, 1])) + rng.normal(0.0, noise, n)
    return S, f


def test_kernel_recovers_a_planted_interaction_the_linear_surrogate_cannot():
    S, f = planted_pair(n=160)
    fit, hold = slice(0, 100), slice(100, None)
    kernel = KernelSurrogate().fit(S[fit], f[fit], stl_loss=STL)
    linear = LinearSurrogate(alpha="auto").fit(S[fit], f[fit], stl_loss=STL)
    assert kernel.kernel_ != "linear"  # leave-one-out prefers a kernel that can represent the pair
    with_pair = S[hold, 0] & S[hold, 1]
    assert with_pair.sum() >= 2 and (~with_pair).sum() >= 20
    # the kernel predicts negative transfer for every held-out subset that holds both sources; the linear
    # surrogate spreads the pair's harm over each of them alone, so it also flags subsets that hold one
    assert kernel.predict_negative_transfer(S[hold])[with_pair].all()
    one = (S[hold, 0] ^ S[hold, 1])
    assert linear.predict_negative_transfer(S[hold])[one].sum() > kernel.predict_negative_transfer(S[hold])[one].sum()
    k_metrics = negative_transfer_metrics(kernel.predict(S[hold]), f[hold], STL)
    l_metrics = negative_transfer_metrics(linear.predict(S[hold]), f[hold], STL)
    assert k_metrics["f1"] >= 0.8 and k_metrics["accuracy"] >= 0.95 and k_metrics["spearman"] > 0.85
    assert l_metrics["f1"] < 0.6 and l_metrics["spearman"] < 0.6
    assert k_metrics["spearman"] - l_metrics["spearman"] > 0.3
    # the interaction itself: g(B + 0 + 1) - g(B + 0) - g(B + 1) + g(B) for a base subset B of another source
    base = np.zeros((4, 10), dtype=bool)
    base[:, 5] = True
    base[0, [0, 1]] = True
    base[1, 0] = True
    base[2, 1] = True
    g = kernel.surrogate_value(base)
    assert g[0] - g[1] - g[2] + g[3] == pytest.approx(0.4, abs=0.12)
    lin = linear.surrogate_value(base)
    assert lin[0] - lin[1] - lin[2] + lin[3] == pytest.approx(0.0, abs=1e-12)  # additive: none by construction


def test_linear_kernel_is_the_ridge_linear_surrogate():
    S, f = planted_pair(n=60, seed=3)
    kernel = KernelSurrogate(kernel="linear", alpha=0.5).fit(S, f, stl_loss=STL)
    linear = LinearSurrogate(alpha=0.5).fit(S, f, stl_loss=STL)
    np.testing.assert_allclose(kernel.predict(S), linear.predict(S), rtol=1e-9, atol=1e-12)
    # relevance read from the kernel model (mean of g(S) - g(S minus i)) is theta for an additive model
    np.testing.assert_allclose(kernel.theta_, linear.theta_, rtol=1e-9, atol=1e-12)


def test_closed_form_leave_one_out_matches_refitting():
    S, f = planted_pair(n=30, seed=5)
    X, y = S.astype(float), (f - STL) / STL
    K = kernel_matrix(X, X, "rbf", 0.3)
    alpha = 0.2
    closed = kernel_loo_errors(K, y, (alpha,))[0]
    residuals = []
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        c = np.linalg.solve(K[np.ix_(keep, keep)] + alpha * np.eye(keep.sum()), y[keep])
        residuals.append(y[i] - K[i, keep] @ c)
    assert closed == pytest.approx(float(np.mean(np.square(residuals))), rel=1e-8)


def test_unsampled_source_gets_no_relevance():
    S, f = planted_pair(n=60, seed=1)
    S[:, 9] = False  # source 9 never sampled
    model = KernelSurrogate(kernel="rbf").fit(S, f, stl_loss=STL)
    assert model.theta_[9] == 0.0 and np.all(model.theta_[:9] != 0.0)


def test_surrogate_criterion_accepts_the_kernel_surrogate():
    S, f = planted_pair(n=80, seed=2)
    choice = choose_threshold(S, f, STL, np.array([-0.02, 0.0, 0.5]), cv=2, seed=0, surrogate=KernelSurrogate())
    assert choice.gamma in (-0.02, 0.0, 0.5)
    # the selection is read from the kernel surrogate fitted on every subset (its relevance scores)
    np.testing.assert_allclose(choice.theta, KernelSurrogate().fit(S, f, stl_loss=STL).theta_)


@pytest.mark.parametrize("params, match", [({"kernel": "cubic"}, "kernel must be"), ({"alpha": 0}, "alpha must be"),
                                           ({"gamma": -1.0}, "gamma must be"), ({"scale": "raw"}, "scale must be")])
def test_bad_parameters_are_named(params, match):
    S, f = planted_pair(n=20)
    with pytest.raises(ValueError, match=match):
        KernelSurrogate(**params).fit(S, f, stl_loss=STL)


def test_needs_the_stl_loss():
    S, f = planted_pair(n=20)
    with pytest.raises(ValueError, match="stl_loss"):
        KernelSurrogate().fit(S, f)
