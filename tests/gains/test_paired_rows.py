"""The paired difference's standard error over rows and runs (issue 25: the audit's own sampling noise)."""

from __future__ import annotations

import numpy as np
import pytest

from negtransfer.gains.paired_rows import noise_verdict, paired_row_se, row_contributions


def _draw(rng, runs: int, rows: int, row_sd: float, run_sd: float, noise_sd: float, strata_shift: float = 0.0):
    """Planted paired differences: mu + a_i + b_r + e_{r,i}, rows in 4 strata whose means differ by
    ``strata_shift`` (drawn within strata, the stratum shares fixed), true mean ``mu`` = 0.3."""
    strata = np.repeat(np.arange(4), rows // 4)
    shift = strata_shift * (strata - 1.5)
    z = (0.3 + shift[None, :] + rng.normal(0, row_sd, rows)[None, :] + rng.normal(0, run_sd, runs)[:, None]
         + rng.normal(0, noise_sd, (runs, rows)))
    return z, strata


@pytest.mark.parametrize("runs, row_sd, run_sd, noise_sd", [(3, 1.0, 0.02, 0.3), (9, 0.5, 0.1, 0.5),
                                                          (3, 0.05, 0.2, 0.2), (5, 0.0, 0.0, 1.0)])
def test_the_variance_matches_the_planted_variance(runs, row_sd, run_sd, noise_sd):
    """Over 2000 draws of rows and runs, the mean of se^2 is the true variance of the mean, row_sd^2 / N +
    run_sd^2 / R + noise_sd^2 / (N R), whichever component dominates (strata with different means included),
    and the estimate is never below the over-runs one. Where both components are zero, clamping makes it
    conservative."""
    rng = np.random.default_rng(7)
    rows, draws = 200, 2000
    means, variances = [], []
    for _ in range(draws):
        z, strata = _draw(rng, runs, rows, row_sd, run_sd, noise_sd, strata_shift=2.0)
        paired = paired_row_se(z, strata)
        assert paired.se >= paired.se_runs - 1e-15
        means.append(z.mean())
        variances.append(paired.se ** 2)
    truth = row_sd ** 2 / rows + run_sd ** 2 / runs + noise_sd ** 2 / (rows * runs)
    if row_sd or run_sd:
        assert np.mean(variances) == pytest.approx(truth, rel=0.08)
    else:  # no row and no run effect: clamping two estimates of zero at 0 errs on the safe side, by at most 40%
        assert truth <= np.mean(variances) <= 1.4 * truth
    assert np.var(means) == pytest.approx(truth, rel=0.1)  # the planted variance is the estimator's


@pytest.mark.parametrize("runs, row_sd, noise_sd", [(3, 1.0, 0.3), (9, 0.5, 0.5), (5, 0.0, 1.0)])
def test_the_interval_covers_the_planted_mean_at_the_nominal_rate(runs, row_sd, noise_sd):
    """Where the rows' noise dominates (many rows: the normal quantile applies), mean +- 1.96 s.e. covers the true
    mean about 95% of the time; the over-runs s.e. alone covers far too rarely once the rows' own noise is
    large."""
    rng = np.random.default_rng(11)
    covered, covered_runs, draws = 0, 0, 2000
    for _ in range(draws):
        z, strata = _draw(rng, runs, 200, row_sd, 0.0, noise_sd, strata_shift=2.0)
        paired = paired_row_se(z, strata)
        covered += abs(z.mean() - 0.3) <= 1.96 * paired.se
        covered_runs += abs(z.mean() - 0.3) <= 1.96 * paired.se_runs
    assert 0.93 <= covered / draws <= 0.97
    if row_sd >= 0.5:
        assert covered_runs / draws < 0.7


def test_strata_remove_the_differences_between_strata():
    rng = np.random.default_rng(1)
    z, strata = _draw(rng, 3, 200, 0.1, 0.0, 0.1, strata_shift=5.0)
    assert paired_row_se(z, strata).se < 0.2 * paired_row_se(z).se


def test_one_run_and_one_row():
    z = np.array([[1.0, 2.0, 3.0, 4.0]])
    one_run = paired_row_se(z)
    assert one_run.se == pytest.approx(np.std([1, 2, 3, 4], ddof=1) / 2) == one_run.se_rows
    assert np.isnan(one_run.se_runs)
    one_row = paired_row_se(np.array([[1.0], [2.0], [4.0]]))
    assert one_row.se == one_row.se_runs == pytest.approx(np.std([1, 2, 4], ddof=1) / np.sqrt(3))


def test_row_contributions_sum_to_the_summed_mean_losses():
    """The mean over rows of run r is sum_t (mean loss of task t's rows in run r); rows shared by tasks add."""
    rng = np.random.default_rng(3)
    losses = {0: rng.random((2, 3)), 1: rng.random((2, 2))}
    positions = {0: np.array([0, 1, 3]), 1: np.array([1, 2])}
    z = row_contributions(losses, positions, 4)
    assert np.allclose(z.mean(axis=1), losses[0].mean(axis=1) + losses[1].mean(axis=1))
    assert np.allclose(z[:, 1], 4 * (losses[0][:, 1] / 3 + losses[1][:, 0] / 2))


def test_noise_verdict_is_three_way():
    assert noise_verdict(-0.5, 0.2, 1.0) == "better"
    assert noise_verdict(0.5, 0.2, 1.0) == "worse"
    assert noise_verdict(-0.1, 0.2, 1.0) == noise_verdict(0.1, 0.2, 1.0) == "within noise"
    assert noise_verdict(-0.1, float("nan"), 1.0) == "better"  # no s.e.: the sign decides, as before
