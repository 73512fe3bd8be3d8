"""The total-gain predictor of Ayman et al. (2023) on planted gain tables, and `group --method ayman` end to end."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from negtransfer.gains.ayman import TotalGainPredictor
from negtransfer.gains.hoa import PairwiseMeanPredictor
from negtransfer.select.groups import all_groups


def _planted(n=7, crowding=0.03, seed=0):
    """Every group's gains: HOA's pairwise mean, minus a crowding penalty that grows with the group.

    y(G -> t) = mean_{j in G, j != t} a_tj - crowding * (|G| - 2), so the total
    gain of G is sum_t (pairwise mean of t) - crowding * |G| * (|G| - 2):
    pairs are unaffected, and HOA (pairs only) cannot see the penalty.
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(0, 0.05, size=(n, n))
    U = all_groups(n)
    U = U[U.sum(1) >= 2]
    Y = np.full(U.shape, np.nan)
    for r, row in enumerate(U):
        members = np.flatnonzero(row)
        for t in members:
            Y[r, t] = np.mean([a[t, j] for j in members if j != t]) - crowding * (members.size - 2)
    return U, Y


def _split(U, n_train, seed):
    """Every pair plus ``n_train`` random groups of three or more tasks for training; the other groups for testing."""
    pairs = np.flatnonzero(U.sum(1) == 2)
    larger = np.flatnonzero(U.sum(1) >= 3)
    train = np.random.default_rng(seed).choice(larger, n_train, replace=False)
    return np.r_[pairs, train], np.setdiff1d(larger, train)


def test_learns_the_planted_total_gain_rule_that_pairs_alone_miss():
    U, Y = _planted()
    train, test = _split(U, 20, seed=0)
    model = TotalGainPredictor(random_state=0).fit(U[train], Y[train])
    total = np.nansum(Y[test], axis=1)
    predicted = model.predict_total(U[test])
    assert np.corrcoef(predicted, total)[0, 1] > 0.98
    assert spearmanr(predicted, total).statistic > 0.95  # the groups are ranked by their total gain
    # within one group size the crowding penalty is a constant: the order must come from the pairs' gains
    size4 = U[test].sum(1) == 4
    assert spearmanr(predicted[size4], total[size4]).statistic > 0.9
    assert np.sqrt(np.mean((predicted - total) ** 2)) < 0.25 * total.std()
    # HOA from the same pairs misses the penalty: its totals are far off
    hoa = np.nansum(PairwiseMeanPredictor().fit(U[train], Y[train]).predict(U[test]), axis=1)
    assert np.sqrt(np.mean((hoa - total) ** 2)) > 5 * np.sqrt(np.mean((predicted - total) ** 2))


def test_per_task_gains_sum_to_the_predicted_total_and_keep_the_pairs():
    U, Y = _planted(n=6)
    train, test = _split(U, 12, seed=1)
    pairwise = TotalGainPredictor(random_state=0).fit(U[train], Y[train])
    equal = TotalGainPredictor(split="equal", random_state=0).fit(U[train], Y[train])
    for model in (pairwise, equal):
        per_task = model.predict(U)
        np.testing.assert_allclose(np.nansum(per_task, axis=1), model.predict_total(U), atol=1e-12)
        assert np.isnan(per_task[~U]).all() and np.isfinite(per_task[U]).all()
        pairs = U.sum(1) == 2  # pairs are measured: their own gains come back
        np.testing.assert_allclose(per_task[pairs][U[pairs]], Y[pairs][U[pairs]])
    big = U[test][0]
    members = np.flatnonzero(big)
    p = pairwise.predict(big[None, :])[0, members]
    e = equal.predict(big[None, :])[0, members]
    np.testing.assert_allclose(e, e[0])  # "equal": T / |G| each
    hoa = PairwiseMeanPredictor().fit(U[train], Y[train]).predict(big[None, :])[0, members]
    np.testing.assert_allclose(p - p[0], hoa - hoa[0], atol=1e-12)  # "pairwise": HOA's differences kept
    one = np.zeros((1, 6), dtype=bool)
    one[0, 3] = True
    assert pairwise.predict(one)[0, 3] == 0.0 and pairwise.predict_total(one)[0] == 0.0


def test_features_are_the_statistics_of_the_pairs_gains():
    U, Y = _planted(n=5, seed=4)
    distance = np.random.default_rng(0).random((5, 5))
    model = TotalGainPredictor(pair_features=distance, task_features=np.arange(5.0)).fit(U, Y)
    assert model.feature_names_ == ["pairwise_mean", "pairwise_variance", "pairwise_std", "n_tasks",
                                    "task_feature_0", "pair_feature_0"]
    group = np.array([[True, False, True, True, True]])
    members = [0, 2, 3, 4]
    pair_gain = [np.nanmean(Y[(U.sum(1) == 2) & U[:, i] & U[:, j]][0]) for i in members for j in members if i < j]
    x = model._features(group)[0]
    np.testing.assert_allclose(x[:4], [np.mean(pair_gain), np.var(pair_gain), np.std(pair_gain), 4], atol=1e-12)
    np.testing.assert_allclose(x[4], np.mean(members))
    pair = (distance + distance.T) / 2  # a pair's descriptor: the mean of both orientations
    np.testing.assert_allclose(x[5], np.mean([pair[i, j] for i in members for j in members if i < j]))


def test_needs_every_pair():
    U, Y = _planted(n=5)
    train, _ = _split(U, 6, seed=0)
    pairs = np.flatnonzero(U[train].sum(1) == 2)
    without = np.delete(train, pairs[3])  # one pair fewer
    with pytest.raises(ValueError, match=r"1 of the 10 pairs of tasks were not measured \(\{0, 4\}\)"):
        TotalGainPredictor().fit(U[without], Y[without])
    larger = train[U[train].sum(1) >= 3]
    with pytest.raises(ValueError, match="no pair of tasks"):
        TotalGainPredictor().fit(U[larger], Y[larger])
    # "skip" (the grouping job's cross-validation folds): the missing pair is NaN, the rest is predicted
    model = TotalGainPredictor(missing="skip").fit(U[without], Y[without])
    missing_pair = U[train][pairs[3]][None, :]
    assert np.isnan(model.predict(missing_pair)[missing_pair]).all()
    assert np.isfinite(model.predict(U[larger])[U[larger]]).all()
    with pytest.raises(ValueError, match="three or more"):  # pairs only: nothing to learn a total from
        TotalGainPredictor().fit(U[train[pairs]], Y[train[pairs]])


def test_deterministic_given_a_seed():
    U, Y = _planted(n=6, seed=3)
    train, test = _split(U, 10, seed=2)
    a = TotalGainPredictor(random_state=4).fit(U[train], Y[train]).predict(U[test])
    b = TotalGainPredictor(random_state=4).fit(U[train], Y[train]).predict(U[test])
    c = TotalGainPredictor(random_state=5).fit(U[train], Y[train]).predict(U[test])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[U[test]], c[U[test]], rtol=0, atol=1e-12)  # the seed initialises the network


def test_task_features_carry_what_the_pairs_do_not():
    # a group's mean gain follows a per-task descriptor (e.g. dataset size) that the pair gains do not show
    n = 7
    size = np.linspace(-1, 1, n)
    U = all_groups(n)
    U = U[U.sum(1) >= 2]
    Y = np.where(U, 0.0, np.nan)
    big = U.sum(1) >= 3
    Y[big] = np.where(U[big], 0.05 * (U[big] @ size / U[big].sum(1))[:, None], np.nan)
    train, test = _split(U, 20, seed=0)
    total = np.nansum(Y[test], axis=1)
    with_size = TotalGainPredictor(task_features=size, random_state=0).fit(U[train], Y[train])
    without = TotalGainPredictor(random_state=0).fit(U[train], Y[train])
    assert with_size.feature_names_[-1] == "task_feature_0"
    assert np.corrcoef(with_size.predict_total(U[test]), total)[0, 1] > 0.95
    assert abs(np.corrcoef(without.predict_total(U[test]), total)[0, 1]) < 0.5
    with pytest.raises(ValueError, match="task_features"):
        TotalGainPredictor(task_features=size[:3]).fit(U[train], Y[train])


@pytest.fixture
def four_task_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 3))
    frame = pd.DataFrame(X, columns=["age", "dose", "bmi"])
    frame["sick"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame["worse"] = (X[:, 0] - X[:, 2] + 0.3 * rng.normal(size=240) > 0).astype(int)
    frame["stay"] = X[:, 1] * 2 + rng.normal(size=240)
    frame["cost"] = X[:, 2] - X[:, 0] + rng.normal(size=240)
    path = tmp_path / "patients.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow  # about 10 s of training on two cores
def test_group_method_ayman_from_the_cli(four_task_csv, tmp_path):
    from negtransfer.cli import app

    out = tmp_path / "ayman"
    res = CliRunner().invoke(app, ["group", "--data", str(four_task_csv), "--tasks", "sick,worse,stay,cost",
                                   "--features", "age,dose,bmi", "--budget", "2", "--train-groups", "2",
                                   "--method", "ayman", "--epochs", "5", "--repeats", "1", "--rounds", "2",
                                   "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == "ayman" and rep["affinity"] is None and rep["selected_groups"]
    train = sorted(map(sorted, rep["train_groups"]))
    pairs = [g for g in train if len(g) == 2]
    assert len(pairs) == 6  # every pair ...
    assert sum(len(g) == 3 for g in train) == 2  # ... the --train-groups groups of three ...
    assert ["cost", "sick", "stay", "worse"] in train and len(train) == 9  # ... and the all-task group
    assert rep["refinement"]["one_shot_runs"] == 1 * (4 + 1 + 6 + 2 + 2)
    assert len(rep["selected_groups"]) <= 2
    assert {t for g in rep["selected_groups"] for t in g} == set(rep["task_group"]) == {"cost", "sick", "stay", "worse"}
