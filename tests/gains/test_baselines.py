"""The grouping baselines' gain predictors on planted gain tables with known answers."""

import numpy as np
import pytest

from negtransfer.gains.hoa import PairwiseMeanPredictor
from negtransfer.gains.linear_groups import LinearGroupSurrogate
from negtransfer.select.groups import all_groups


def _planted(n=6, noise=0.0, seed=0):
    """Gains of every group: a task gains +0.1 per same-cluster partner, -0.1 per other, averaged (HOA's model)."""
    rng = np.random.default_rng(seed)
    clusters = np.arange(n) % 2
    pair = np.where(clusters[:, None] == clusters[None, :], 0.1, -0.1)
    U = all_groups(n)
    U = U[U.sum(1) >= 2]
    Y = np.full(U.shape, np.nan)
    for r, row in enumerate(U):
        members = np.flatnonzero(row)
        for t in members:
            Y[r, t] = np.mean([pair[t, j] for j in members if j != t]) + rng.normal(0, noise)
    return U, Y


def test_hoa_is_exact_when_groups_follow_the_pairwise_mean():
    U, Y = _planted()
    pairs = U.sum(1) == 2
    model = PairwiseMeanPredictor().fit(U[pairs], Y[pairs])
    np.testing.assert_allclose(model.predict(U)[U], Y[U])
    one = np.zeros((1, 6), dtype=bool)
    one[0, 2] = True
    assert model.predict(one)[0, 2] == 0.0  # a task alone gains nothing
    with pytest.raises(ValueError, match="pair"):
        PairwiseMeanPredictor().fit(U[~pairs], Y[~pairs])
    strict = PairwiseMeanPredictor(missing="error").fit(U[pairs][:3], Y[pairs][:3])
    with pytest.raises(ValueError, match="not measured"):
        strict.predict(U[-1:])


def test_linear_surrogate_recovers_additive_gains():
    # additive in the other members: y(G -> t) = sum of pair effects (a linear surrogate's model)
    n = 6
    rng = np.random.default_rng(1)
    theta = rng.normal(0, 0.05, size=(n, n))
    U = all_groups(n)
    U = U[U.sum(1) >= 2]
    Y = np.where(U, (U.astype(float) @ theta.T) - np.diag(theta)[None, :] * U, np.nan)
    train = rng.permutation(len(U))[:30]
    test = np.setdiff1d(np.arange(len(U)), train)
    model = LinearGroupSurrogate().fit(U[train], Y[train])
    pred = model.predict(U[test])
    assert np.corrcoef(pred[U[test]], Y[test][U[test]])[0, 1] > 0.99
    assert model.alpha_ <= 1e-2  # noise-free data: the weakest penalties win


@pytest.mark.slow  # a few seconds of transformer training
def test_mtgnet_learns_the_planted_gains():
    from negtransfer.gains.mtgnet import MTGNetPredictor

    U, Y = _planted(noise=0.01)
    rng = np.random.default_rng(0)
    train = rng.permutation(len(U))[:25]
    test = np.setdiff1d(np.arange(len(U)), train)
    model = MTGNetPredictor(epochs=200, random_state=0).fit(U[train], Y[train])
    pred = model.predict(U[test])
    assert np.corrcoef(pred[U[test]], Y[test][U[test]])[0, 1] > 0.6
    again = MTGNetPredictor(epochs=200, random_state=0).fit(U[train], Y[train]).predict(U[test])
    np.testing.assert_array_equal(pred, again)  # seeded
