"""Source-task selection pieces of the surrogate paper (Algorithm 1, section 4, appendix A).

Metrics are checked on a small case computed by hand and against sklearn;
sampling for exact balance, distinctness, determinism and uniformity (chi-square);
threshold choice on planted additive models where the right answer is known.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from scipy.stats import chisquare
from sklearn.metrics import f1_score

from negtransfer.gains.surrogate import LinearSurrogate
from negtransfer.select.sources import (
    DEFAULT_GAMMA_GRID,
    ThresholdChoice,
    choose_threshold,
    holdout_f1_ceiling,
    holdout_noise_ceiling,
    negative_transfer_metrics,
    sample_subsets,
    select_sources,
    surrogate_error_curve,
    threshold_candidates,
    top_m_by_pairwise_gain,
)

# ---------------------------------------------------------------------------
# sample_subsets


@pytest.mark.parametrize("k, size, n", [(10, 3, 50), (30, 5, 100), (6, 2, 15), (5, 2, 23), (1, 1, 3)])
def test_sample_subsets_shape_size_distinct_deterministic(k, size, n):
    S = sample_subsets(k, size, n, seed=7)
    assert S.shape == (n, k) and S.dtype == bool
    assert (S.sum(axis=1) == size).all()
    total = math.comb(k, size)
    counts = Counter(map(bytes, np.packbits(S, axis=1)))
    if n <= total:
        assert len(counts) == n  # all distinct
    else:
        assert len(counts) == total and max(counts.values()) - min(counts.values()) <= 1
    np.testing.assert_array_equal(S, sample_subsets(k, size, n, seed=7))
    if total > 1:
        assert not np.array_equal(S, sample_subsets(k, size, n, seed=8))


def test_sample_subsets_is_uniform_over_subsets():
    # Enumeration branch: k=8, size=3 -> 56 subsets; 300 seeds x 10 subsets.
    counts = Counter()
    for seed in range(300):
        for row in sample_subsets(8, 3, 10, seed=seed):
            counts[tuple(np.flatnonzero(row))] += 1
    assert len(counts) == 56
    assert chisquare(list(counts.values())).pvalue > 1e-3


def test_sample_subsets_rejection_branch_marginals_uniform():
    # k=30, size=5: C = 142506 subsets, sampled by rejection.
    S = np.vstack([sample_subsets(30, 5, 100, seed=s) for s in range(40)])
    member = S.sum(axis=0)  # expected 4000 * 5 / 30 = 666.7 each
    assert chisquare(member).pvalue > 1e-3
    pair = (S[:, 0] & S[:, 1]).sum()  # expected 4000 * (5/30) * (4/29) = 92
    assert 60 < pair < 125
    # A biased sampler (always the first sources) would fail the marginal test.
    biased = np.zeros_like(S)
    biased[:, :5] = True
    biased[::2] = S[::2]
    assert chisquare(biased.sum(axis=0)).pvalue < 1e-6


@pytest.mark.parametrize(
    "args, match",
    [((5, 6, 3), "size must be between 1 and 5"), ((5, 0, 3), "size"), ((0, 1, 1), "k must be"), ((5, 2, -1), "n must be"), ((5.0, 2, 3), "k must be an integer")],
)
def test_sample_subsets_errors(args, match):
    with pytest.raises(ValueError, match=match):
        sample_subsets(*args)


# ---------------------------------------------------------------------------
# negative_transfer_metrics


def test_metrics_hand_checked_minority_negative():
    stl = 1.0
    actual = [0.5, 0.8, 0.9, 0.7, 1.2, 1.0]  # negative: 1.2 and 1.0 (a tie counts) -> 2 of 6
    predicted = [0.6, 1.1, 0.95, 0.7, 1.3, 0.99]  # predicted negative: rows 1 and 4
    m = negative_transfer_metrics(predicted, actual, stl)
    assert m["minority"] == "negative" and m["n_negative"] == 2 and m["n_positive"] == 4 and m["n"] == 6
    # minority = negative: TP = row 4, FP = row 1, FN = row 5
    assert m["precision"] == pytest.approx(0.5)
    assert m["recall"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # ranks: actual [1,3,4,2,6,5], predicted [1,5,3,2,6,4]; sum d^2 = 6
    assert m["spearman"] == pytest.approx(1 - 6 * 6 / (6 * 35))
    assert m["f1"] == pytest.approx(f1_score(np.array(actual) >= stl, np.array(predicted) >= stl))


def test_metrics_minority_positive_and_tie_rule():
    stl = 1.0
    actual = np.array([0.8, 1.1, 1.2, 1.3, 1.0])  # one positive transfer (0.8): minority "positive"
    predicted = np.array([0.9, 0.95, 1.2, 1.3, 1.1])  # predicted positive: rows 0, 1
    m = negative_transfer_metrics(predicted, actual, stl)
    assert m["minority"] == "positive"
    # TP = row 0, FP = row 1, FN = 0 -> precision 1/2, recall 1, F1 2/3
    assert (m["precision"], m["recall"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(f1_score(actual < stl, predicted < stl))
    # A predicted loss equal to STL predicts negative transfer, like an actual one.
    tie = negative_transfer_metrics([1.0, 0.5], [1.2, 0.6], 1.0)
    assert tie["accuracy"] == 1.0 and tie["f1"] == 1.0 and tie["n_negative"] == 1
    # Balanced classes: the minority is "negative" by convention.
    assert negative_transfer_metrics([0.5, 1.5], [0.5, 1.5], 1.0)["minority"] == "negative"


def test_metrics_degenerate_one_class():
    stl = 1.0
    actual = [0.5, 0.6, 0.7]  # all positive transfer: minority is the absent "negative"
    m = negative_transfer_metrics([0.4, 0.5, 0.9], actual, stl)
    assert m["minority"] == "negative" and m["n_negative"] == 0
    assert math.isnan(m["f1"]) and math.isnan(m["precision"]) and math.isnan(m["recall"])
    assert m["accuracy"] == 1.0
    m = negative_transfer_metrics([0.4, 1.5, 0.9], actual, stl)  # one false alarm
    assert m["f1"] == 0.0 and m["precision"] == 0.0 and math.isnan(m["recall"])
    assert m["accuracy"] == pytest.approx(2 / 3)
    m = negative_transfer_metrics([0.7], [0.7], stl)
    assert math.isnan(m["spearman"]) and m["n"] == 1
    assert math.isnan(negative_transfer_metrics([0.7, 0.7], [0.5, 0.6], stl)["spearman"])  # constant


@pytest.mark.parametrize(
    "args, match",
    [(([1.0, 2.0], [1.0], 1.0), "actual has 1 values"), (([np.nan], [1.0], 1.0), "predicted must be finite"), (([1.0], [1.0], np.inf), "stl_loss must be finite"), (([], [], 1.0), "empty")],
)
def test_metrics_errors(args, match):
    with pytest.raises(ValueError, match=match):
        negative_transfer_metrics(*args)


# ---------------------------------------------------------------------------
# select_sources, threshold_candidates, top_m_by_pairwise_gain


def test_select_sources_is_strict():
    theta = np.array([-0.2, 0.0, 0.1, -0.05])
    np.testing.assert_array_equal(select_sources(theta, 0.0), [0, 3])
    np.testing.assert_array_equal(select_sources(theta, 0.1), [0, 1, 3])
    assert select_sources(theta, -0.5).size == 0
    assert select_sources({"x": 0.3, "y": -0.3}, 0.0) == ["y"]
    with pytest.raises(ValueError, match="gamma must be finite"):
        select_sources(theta, np.nan)


def test_threshold_candidates_enumerate_every_selection():
    theta = np.array([0.3, -0.1, 0.3, 0.05])
    grid = threshold_candidates(theta)
    selections = [tuple(select_sources(theta, g)) for g in grid]
    assert len(grid) == 4 and np.all(np.diff(grid) > 0)
    assert selections == [(), (1,), (1, 3), (0, 1, 2, 3)]


def test_top_m_by_pairwise_gain():
    gains = [0.1, -0.2, 0.3, 0.1, 0.05]
    np.testing.assert_array_equal(top_m_by_pairwise_gain(gains, 3), [2, 0, 3])  # tie 0/3 by index
    assert top_m_by_pairwise_gain(gains, 0).size == 0
    np.testing.assert_array_equal(top_m_by_pairwise_gain(gains, 5), [2, 0, 3, 4, 1])
    with pytest.raises(ValueError, match="m must be between 0 and 5"):
        top_m_by_pairwise_gain(gains, 6)
    with pytest.raises(ValueError, match=r"entries \[1\] are NaN"):
        top_m_by_pairwise_gain([0.1, np.nan], 1)


# ---------------------------------------------------------------------------
# choose_threshold


def planted(k, theta, n, noise, seed, stl=1.0, size=5):
    rng = np.random.default_rng(seed)
    S = sample_subsets(k, size, n, seed=seed)
    return S, stl * (1 + S @ theta) + rng.normal(0, noise, n)


def test_default_grid_is_exact():
    assert DEFAULT_GAMMA_GRID.tolist() == [-0.5, -0.4, -0.3, -0.2, -0.1, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5]


def test_surrogate_cv_threshold_separates_good_from_bad():
    k = 20
    theta = np.where(np.arange(k) < 8, -0.06, 0.05)
    S, f = planted(k, theta, 8 * k, noise=0.01, seed=0, stl=0.4)
    choice = choose_threshold(S, f, 0.4)
    assert isinstance(choice, ThresholdChoice) and choice.criterion == "surrogate_cv"
    assert choice.gamma == 0.0
    np.testing.assert_array_equal(choice.selected, np.arange(8))
    assert choice.fold_scores.shape == (5, 11)
    np.testing.assert_allclose(choice.scores, choice.fold_scores.mean(axis=0))
    # Selecting nothing scores 0; the good sources score about 8 * -0.06.
    assert choice.scores[0] == 0.0 and choice.scores[5] == pytest.approx(-0.48, abs=0.05)
    np.testing.assert_array_equal(choice.n_selected, [0] * 5 + [8] + [20] * 5)
    # Deterministic.
    again = choose_threshold(S, f, 0.4)
    np.testing.assert_array_equal(again.fold_scores, choice.fold_scores)


def test_surrogate_cv_ties_prefer_fewer_sources():
    k = 10
    theta = np.where(np.arange(k) < 3, -0.3, 0.3)
    S, f = planted(k, theta, 60, noise=0.001, seed=1, size=3)
    choice = choose_threshold(S, f, 1.0)
    # Every gamma in (-0.3, 0.3) selects the same three sources: the smallest wins.
    assert choice.gamma == pytest.approx(-0.2)
    np.testing.assert_array_equal(choice.selected, [0, 1, 2])


def test_surrogate_cv_resists_winners_curse():
    """Null sources (true score +0.01) whose estimate is negative only by noise.

    Thresholding the full-data scores at 0 admits several of them; the
    cross-fitted criterion should usually stop below them.
    """
    k = 20
    theta = np.r_[np.full(4, -0.1), np.full(16, 0.01)]
    grid = np.round(np.linspace(-0.2, 0.2, 41), 10)
    exact, cv_nulls, naive_nulls = 0, 0, 0
    for seed in range(10):
        S, f = planted(k, theta, 160, noise=0.08, seed=seed)
        choice = choose_threshold(S, f, 1.0, grid=grid)
        exact += set(choice.selected.tolist()) == {0, 1, 2, 3}
        cv_nulls += int((choice.selected >= 4).sum())
        naive_nulls += int((select_sources(choice.theta, 0.0) >= 4).sum())
    assert exact >= 6
    assert cv_nulls * 3 < naive_nulls


def test_surrogate_cv_small_folds_and_options():
    k = 12
    theta = np.where(np.arange(k) < 4, -0.1, 0.1)
    S, f = planted(k, theta, 30, noise=0.01, seed=2, size=3)
    # Folds of 6 subsets cannot determine 12 scores: fold fits use min_norm.
    choice = choose_threshold(S, f, 1.0, cv=5)
    assert np.isfinite(choice.scores).all()
    ridge = choose_threshold(S, f, 1.0, surrogate=LinearSurrogate(alpha=0.5))
    assert np.isfinite(ridge.scores).all()
    with pytest.raises(ValueError, match="anchored scale"):
        choose_threshold(S, f, 1.0, surrogate=LinearSurrogate(scale="raw"))
    with pytest.raises(ValueError, match="cv must be between 2 and 30"):
        choose_threshold(S, f, 1.0, cv=1)
    with pytest.raises(ValueError, match="needs either a callable"):
        choose_threshold(S, f)
    with pytest.raises(ValueError, match="only to the callable form"):
        choose_threshold(S, f, 1.0, theta=theta)
    with pytest.raises(ValueError, match="grid is empty"):
        choose_threshold(S, f, 1.0, grid=[])


def test_callable_threshold_choice_and_caching():
    theta = np.array([-0.25, -0.05, 0.15, 0.35])
    calls = []

    def validation_loss(gamma):  # best when exactly sources 0 and 1 are used
        calls.append(gamma)
        chosen = set(select_sources(theta, gamma).tolist())
        return 1.0 - 0.1 * len(chosen & {0, 1}) + 0.2 * len(chosen - {0, 1})

    choice = choose_threshold(validation_loss, DEFAULT_GAMMA_GRID)  # grid positional
    assert choice.criterion == "evaluation" and choice.n_evaluations == 11 and len(calls) == 11
    assert choice.gamma == 0.0  # 0.0 and 0.1 tie (same selection): the smaller wins
    assert choice.selected is None

    calls.clear()
    choice = choose_threshold(validation_loss, theta=theta)
    # Distinct selections over the grid: {}, {0}, {0,1}, {0,1,2}, all -> 5 calls.
    assert len(calls) == 5 and choice.n_evaluations == 5
    np.testing.assert_array_equal(choice.selected, [0, 1])
    np.testing.assert_array_equal(choice.n_selected, [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4])

    accuracy = choose_threshold(lambda g: -validation_loss(g), theta=theta, greater_is_better=True)
    assert accuracy.gamma == 0.0

    with pytest.raises(ValueError, match=r"returned nan"):
        choose_threshold(lambda g: float("nan"))
    with pytest.raises(ValueError, match="stl_loss is not used"):
        choose_threshold(validation_loss, None, 1.0)


# ---------------------------------------------------------------------------
# surrogate_error_curve


def test_error_curve_decreases_with_more_subsets():
    k = 20
    rng = np.random.default_rng(0)
    theta = rng.normal(0, 0.05, k)
    S, f = planted(k, theta, 8 * k + 100, noise=0.02, seed=3)
    sizes = [k, 2 * k, 4 * k, 8 * k]
    curve = surrogate_error_curve(S, f, sizes, seed=0, holdout=100, stl_loss=1.0)
    assert curve.holdout.size == 100 and curve.train_rows.size == 8 * k
    assert np.intersect1d(curve.holdout, curve.train_rows).size == 0
    assert curve.mse[0] > 3 * curve.mse[-1]
    assert np.all(np.diff(curve.mse) < 0)
    assert curve.spearman[-1] > curve.spearman[0] and curve.spearman[-1] > 0.9
    # With n = k least squares interpolates its training subsets.
    assert curve.train_mse[0] < 1e-20
    # Noise variance is 0.02^2 = 4e-4: the held-out MSE converges towards it (Figure 6).
    assert curve.mse[-1] < 2 * 4e-4
    assert np.isfinite(curve.f1).all() and curve.to_frame().shape == (4, 6)
    again = surrogate_error_curve(S, f, sizes, seed=0, holdout=100, stl_loss=1.0)
    np.testing.assert_array_equal(again.mse, curve.mse)


def test_error_curve_holdout_forms_and_errors():
    S, f = planted(6, np.linspace(-0.1, 0.1, 6), 40, noise=0.01, seed=0, size=2)
    rows = np.arange(30, 40)
    by_rows = surrogate_error_curve(S, f, [10, 30], holdout=rows)
    mask = np.zeros(40, bool)
    mask[rows] = True
    by_mask = surrogate_error_curve(S, f, [10, 30], holdout=mask)
    np.testing.assert_array_equal(by_rows.holdout, rows)
    np.testing.assert_allclose(by_rows.mse, by_mask.mse)
    np.testing.assert_array_equal(by_rows.train_rows, np.arange(30))
    assert np.isnan(by_rows.f1).all()  # no stl_loss
    with pytest.raises(ValueError, match="each of sizes must be between 1 and 30"):
        surrogate_error_curve(S, f, [31], holdout=rows)
    with pytest.raises(ValueError, match="first 3 subsets.*alpha > 0"):
        surrogate_error_curve(S, f, [3], holdout=rows)
    with pytest.raises(ValueError, match="holdout must be between 1 and 39"):
        surrogate_error_curve(S, f, [3], holdout=40)
    with pytest.raises(ValueError, match="boolean holdout mask"):
        surrogate_error_curve(S, f, [3], holdout=np.zeros(5, bool))
    ridge = surrogate_error_curve(S, f, [3, 30], holdout=rows, surrogate=LinearSurrogate(alpha=1.0, scale="raw"))
    assert np.isfinite(ridge.mse).all()


def test_holdout_f1_ceiling_matches_the_f1_a_perfect_predictor_reaches():
    """Over many measured holdouts (true f normal, a shift per repeat, noise), the estimated ceiling averages the
    F1 that the true losses themselves score against the measured means; less noise, a higher ceiling."""
    rng = np.random.default_rng(0)
    empirical, estimated = {}, {}
    for sd in (0.003, 0.01):
        scores, ceilings = [], []
        for k in range(60):
            true = rng.normal(0.3, 0.01, 100)
            shift = rng.normal(0, 0.05, 2)
            values = true[:, None] + shift[None, :] + rng.normal(0, sd * np.sqrt(2), (100, 2))
            stl = 0.313 + shift.mean()  # about 10% of the subsets at or above it: negative transfer the minority
            scores.append(negative_transfer_metrics(true + shift.mean(), values.mean(axis=1), stl)["f1"])
            ceilings.append(holdout_f1_ceiling(values, stl, draws=200, seed=k))
        empirical[sd], estimated[sd] = np.nanmean(scores), np.mean(ceilings)
        assert estimated[sd] == pytest.approx(empirical[sd], abs=0.05)
    assert estimated[0.003] > estimated[0.01] + 0.2
    exact = np.repeat(np.linspace(0.2, 0.4, 20)[:, None], 2, axis=1)
    assert holdout_f1_ceiling(exact, 0.35) == 1.0  # no noise: the true classes are the measured ones
    assert holdout_f1_ceiling(values, stl, seed=3) == holdout_f1_ceiling(values, stl, seed=3)
    assert np.isnan(holdout_f1_ceiling(values[:, :1], stl))
    assert np.isnan(holdout_f1_ceiling(np.where(np.arange(100)[:, None] == 3, np.nan, values), stl))
    with pytest.raises(ValueError, match="subsets x repeats"):
        holdout_f1_ceiling(values[:, 0], stl)
    with pytest.raises(ValueError, match="draws"):
        holdout_f1_ceiling(values, stl, draws=0)


def test_holdout_f1_ceiling_with_the_measured_stl_matches_the_f1_a_perfect_predictor_reaches():
    """f(STL) measured like the subsets (its own noise about one subset's): with ``stl_values`` the ceiling averages
    the F1 that the true losses, classed against the true f(STL), score against the measured means classed
    against the measured f(STL); taking f(STL) as exact overestimates it."""
    rng = np.random.default_rng(1)
    for sd in (0.003, 0.006):
        scores, with_line, exact = [], [], []
        for k in range(60):
            true, true_stl = rng.normal(0.3, 0.01, 100), 0.313
            shift = rng.normal(0, 0.05, 2)  # common random numbers: every run of one repeat moves alike
            values = true[:, None] + shift[None, :] + rng.normal(0, sd * np.sqrt(2), (100, 2))
            stl_values = true_stl + shift + rng.normal(0, sd * np.sqrt(2), 2)
            stl = float(stl_values.mean())
            # the perfect predictor: its predicted loss crosses the measured line where the true loss crosses the true one
            scores.append(negative_transfer_metrics(true - true_stl + stl, values.mean(axis=1), stl)["f1"])
            with_line.append(holdout_f1_ceiling(values, stl, stl_values=stl_values, draws=200, seed=k))
            exact.append(holdout_f1_ceiling(values, stl, draws=200, seed=k))
        assert np.mean(with_line) == pytest.approx(np.nanmean(scores), abs=0.03)
        assert np.mean(exact) > np.nanmean(scores) + 0.04
    # f(STL) moving exactly with the repeats' shift: no noise of its own, the same draws as without stl_values
    in_step = stl + values.mean(axis=0) - values.mean()
    assert holdout_f1_ceiling(values, stl, stl_values=in_step, seed=2) == holdout_f1_ceiling(values, stl, seed=2)
    assert np.isnan(holdout_f1_ceiling(values, stl, stl_values=[stl, np.nan]))
    with pytest.raises(ValueError, match="stl_values must hold f\\(STL\\) of each of the 2 repeats"):
        holdout_f1_ceiling(values, stl, stl_values=[stl])


def test_holdout_noise_ceiling_matches_the_correlation_a_perfect_predictor_reaches():
    """Measured f = true f + a shift per repeat (common random numbers) + noise: the ceiling is the true values'
    correlation with the measured means; the shared shift, however large, changes no ranking."""
    rng = np.random.default_rng(0)
    true = rng.normal(0.3, 0.01, 20000)
    repeats = 2  # noise s.d. 0.01 * sqrt(2) per run: s.e. of a mean 0.01, as large as the spread -> sqrt(1/2)
    shift = np.array([0.5, -0.5])
    values = true[:, None] + shift[None, :] + rng.normal(0, 0.01 * np.sqrt(repeats), (true.size, repeats))
    ceiling = holdout_noise_ceiling(values)
    assert ceiling == pytest.approx(np.corrcoef(true, values.mean(axis=1))[0, 1], abs=0.02)
    assert ceiling == pytest.approx(np.sqrt(0.5), abs=0.02)
    # noise far larger than the spread: nothing to predict (clipped at 0)
    assert holdout_noise_ceiling(true[:, None] + rng.normal(0, 1.0, (true.size, 2))) == 0.0
    # one repeat, or no spread: unknown
    assert np.isnan(holdout_noise_ceiling(values[:, :1]))
    assert np.isnan(holdout_noise_ceiling(np.ones((5, 3))))
    assert np.isnan(holdout_noise_ceiling(np.where(np.arange(8)[:, None] == 3, np.nan, values[:8])))  # diverged run
    with pytest.raises(ValueError, match="subsets x repeats"):
        holdout_noise_ceiling(values[:, 0])
