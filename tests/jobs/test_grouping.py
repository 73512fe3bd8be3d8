from itertools import pairwise

import numpy as np
import pytest

from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.jobs.grouping import GroupingOptions, best_group_losses, run_grouping
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig


@pytest.fixture(scope="module")
def planted():
    return make_synthetic_tasks(n_tasks=6, n_clusters=2, n_samples=1000, seed=0)


@pytest.mark.slow  # 15-30 s; the pipeline end to end also runs in test_exhaustive_report_and_resume
def test_grouping_recovers_planted_clusters(planted, tmp_path):
    clusters = np.array(planted.info["clusters"])
    # Predictions alone (the paper's selection) recover the planted clusters.
    # the paper's protocol: one run per group, one round, every candidate scored by prediction, sum of gains
    options = GroupingOptions(budget=2, n_train_groups=8, evaluate=10, use_measured=False, repeats=1, rounds=1,
                              objective="mean-gain")
    # independent initialisations: with common random numbers and a single repeat, this planted set is not
    # recovered (one shared starting point favours some tasks in every group; docs/methods/grouping.md)
    config = TrainConfig(shared_init=False)
    rep = run_grouping(planted, options, config, 0, RunStore(tmp_path / "s.sqlite")).report
    A = np.array(rep.affinity)
    same = np.equal.outer(clusters, clusters) & ~np.eye(6, dtype=bool)
    across = ~np.equal.outer(clusters, clusters)
    # planted positive / negative transfer: higher affinity within clusters (without the momentum term the
    # scores are gradient inner products, positive across clusters too; with it, negative across)
    assert A[same].mean() > A[across].mean() + 0.05
    names = planted.task_names
    planted_groups = sorted(sorted(names[t] for t in np.flatnonzero(clusters == c)) for c in set(clusters))
    assert sorted(sorted(g) for g in rep.selected_groups) == planted_groups
    totals = rep.totals
    assert totals["selected"] < totals["stl"] and totals["selected"] < totals["all_tasks"]
    assert rep.prediction.n_groups == 10 and rep.prediction.pearson > 0.3
    # The default also scores the trained groups by their measured gains and never knowingly picks a grouping
    # worse on validation than the simple alternatives the budget allows (here: the all-task model).
    default = run_grouping(planted, GroupingOptions(budget=2, n_train_groups=8, repeats=1, rounds=1), config, 0,
                           RunStore(tmp_path / "s.sqlite")).report
    validation = default.comparison.validation_loss
    assert default.comparison.better_than_alternatives
    assert validation["selected"] < validation["all-task model"]


def test_exhaustive_report_and_resume(tmp_path):
    ds = make_synthetic_tasks(n_tasks=4, n_clusters=2, n_samples=200, seed=1)  # structure only: few rows, epochs
    store = RunStore(tmp_path / "s.sqlite")
    cfg = TrainConfig(max_epochs=8)
    opts = GroupingOptions(budget=2, n_train_groups=3, exhaustive=True, repeats=1, rounds=1)
    report = run_grouping(ds, opts, cfg, 0, store).report
    rep = report.to_dict()
    for key in ("tasks", "affinity", "selected_groups", "test_loss", "prediction", "optimal", "totals"):
        assert key in rep
    assert set(rep["test_loss"]) >= {"stl", "all_tasks", "selected"}
    assert np.array(rep["affinity"]).shape == (4, 4) and rep["affinity_momentum"] is False
    assert report.optima is not None
    # every group of 4 tasks was trained: 15 runs; 4 training groups -> 10 held-out size>=2 groups
    assert store.count() == 15
    assert rep["prediction"]["n_groups"] == 11 - len(rep["train_groups"])
    t = rep["totals"]
    assert rep["optimal"]["gap"] == pytest.approx((t["selected"] - t["optimal"]) / t["optimal"])
    assert t["optimal"] == pytest.approx(sum(rep["optimal"]["test_loss"].values()))
    covered = {t for g in rep["selected_groups"] for t in g}
    assert covered == set(rep["tasks"]) and len(rep["selected_groups"]) <= 2
    again = run_grouping(ds, opts, cfg, 0, store).report
    assert again.runs.trained == 0 and again.totals == rep["totals"]


def test_best_group_losses_uses_validation_loss():
    from negtransfer.train.batched import ModelResult

    def res(g, val, test):
        return ModelResult(group=g, val_loss=dict(zip(g, val, strict=True)), test_loss=dict(zip(g, test, strict=True)),
                           test_metric={t: 0.0 for t in g}, best_epoch=1, epochs=1)

    results = {(0, 1): res((0, 1), [0.5, 0.2], [0.1, 0.9]), (0,): res((0,), [0.4], [0.3]), (1,): res((1,), [0.3], [0.1])}
    losses, where = best_group_losses([(0, 1), (0,), (1,)], results, 2)
    assert losses == {0: 0.3, 1: 0.9} and where == {0: (0,), 1: (0, 1)}


def test_options_validation():
    with pytest.raises(ValueError, match="budget"):
        GroupingOptions(budget=0).check(4)
    with pytest.raises(ValueError, match="--tasks"):
        GroupingOptions().check(30)
    with pytest.raises(ValueError, match="--trace"):  # no tracked run to trace
        GroupingOptions(method="hoa", trace_pairs=2).check(4)
    GroupingOptions(method="tag", trace_pairs=2).check(4)


def test_affinity_momentum_defaults_to_the_methods_own():
    # ETAP without the momentum term (measured: docs/methods/affinity.md), TAG with it (its public lookahead)
    assert GroupingOptions().resolved_affinity_momentum() is False
    assert GroupingOptions(method="tag").resolved_affinity_momentum() is True
    assert GroupingOptions(affinity_momentum=True).resolved_affinity_momentum() is True
    assert GroupingOptions(method="tag", affinity_momentum=False).resolved_affinity_momentum() is False


def test_trace_for_figure_7(tmp_path):
    from negtransfer.report.markdown import write_group_report

    ds = make_synthetic_tasks(n_tasks=4, n_clusters=2, n_samples=300, seed=2)
    opts = GroupingOptions(budget=2, n_train_groups=2, trace_pairs=2, affinity_every=2, repeats=1, rounds=1)
    report = run_grouping(ds, opts, TrainConfig(max_epochs=5), 0, RunStore(tmp_path / "s.sqlite")).report
    rep = report.to_dict()
    trace = rep["affinity_trace"]
    assert len(trace["pairs"]) == 2 and trace["steps"] == sorted(trace["steps"])
    assert all(len(p["values"]) == len(trace["steps"]) for p in trace["pairs"])
    assert trace["steps"][1] - trace["steps"][0] == 2  # every 2nd step tracked
    # the strongest pair's mean over the trace is the reported average affinity
    p = trace["pairs"][0]
    i, j = rep["tasks"].index(p["source"]), rep["tasks"].index(p["target"])
    assert np.nanmean(np.array(p["values"], dtype=float)) == pytest.approx(rep["affinity"][i][j])
    md = write_group_report(report, tmp_path / "out").read_text()
    assert "plots/affinity_trace.png" in md and (tmp_path / "out" / "plots" / "affinity_trace.png").exists()


def _fake_results(n, seed=0):
    """Every group of n tasks with random validation/test losses (no training)."""
    from negtransfer.select.groups import all_groups
    from negtransfer.train.batched import ModelResult

    rng = np.random.default_rng(seed)
    out = {}
    for row in all_groups(n):
        g = tuple(int(i) for i in np.flatnonzero(row))
        out[g] = ModelResult(group=g, val_loss={t: float(rng.random()) for t in g},
                             test_loss={t: float(rng.random()) for t in g},
                             test_metric={t: 0.5 for t in g}, best_epoch=1, epochs=1)
    return out


def test_test_oracle_never_gets_worse_as_the_budget_grows():
    from negtransfer.jobs.grouping import oracle_grouping

    for seed in range(3):
        results = _fake_results(6, seed)
        totals = [sum(oracle_grouping(results, 6, b, by="test_loss")[1].values()) for b in range(1, 7)]
        assert all(a >= b - 1e-12 for a, b in pairwise(totals))
        # chosen and scored by one rule: each task's loss is its lowest test loss among the chosen groups
        groups, losses = oracle_grouping(results, 6, 3, by="test_loss")
        for t, loss in losses.items():
            assert loss == min(results[g].test_loss[t] for g in groups if t in g)
        # the validation oracle is scored on test with the validation assignment: never below the test oracle
        _, val_losses = oracle_grouping(results, 6, 3, by="val_loss")
        assert sum(val_losses.values()) >= sum(losses.values()) - 1e-12


def test_repeats_refinement_noise_and_comparison(tmp_path):
    ds = make_synthetic_tasks(n_tasks=4, n_clusters=2, n_samples=200, seed=3)
    store = RunStore(tmp_path / "s.sqlite")
    cfg = TrainConfig(max_epochs=6)
    opts = GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=4, exhaustive=True)
    rep = run_grouping(ds, opts, cfg, 0, store).report.to_dict()
    assert rep["repeats"] == 2 and store.count() == 2 * 15  # every group, two repeats
    noise = rep["noise"]
    assert noise["repeats"] == 2 and noise["split"] == "validation" and noise["verdict"]
    for key in ("split_half_pearson", "gain_se_median", "reliability"):
        assert key in noise
    ref = rep["refinement"]
    assert 1 <= ref["rounds_run"] <= 5 and ref["runs_used"] <= ref["max_runs"]
    assert ref["stopped"]
    assert rep["rounds"][0]["round"] == 1 and all("selection_val_loss" in r for r in rep["rounds"])
    # the recommendation is made of measured groups only and never worse, on validation, than the all-task model
    cmp = rep["comparison"]
    assert cmp["validation_loss"]["selected"] <= cmp["validation_loss"]["all-task model"] + 1e-12
    assert cmp["better_than_alternatives"] == (cmp["validation_loss"]["selected"] < cmp["validation_loss"]["all-task model"])
    assert rep["optimal"]["test_oracle"]["total"] <= rep["optimal"]["validation_oracle"]["total"] + 1e-12
    # on validation losses nothing beats the validation oracle
    assert rep["optimal"]["validation_oracle"]["val_gap"] >= -1e-12
    assert rep["optimal"]["validation_oracle"]["val_total"] <= cmp["validation_loss"]["selected"] + 1e-12
    assert rep["totals"]["selected"] >= rep["optimal"]["test_oracle"]["total"] - 1e-12
    pred = rep["prediction"]
    assert {"within_task_pearson", "per_task_mean_pearson"} <= set(pred)
    # one more job with the same store trains nothing
    again = run_grouping(ds, opts, cfg, 0, store).report
    assert again.runs.trained == 0 and [list(g) for g in again.selected_groups] == rep["selected_groups"]


@pytest.mark.slow  # about 30-60 s; refinement also runs in test_repeats_refinement_noise_and_comparison
def test_refinement_improves_on_the_one_shot_protocol(planted, tmp_path):
    store = RunStore(tmp_path / "r.sqlite")
    one_shot = run_grouping(planted, GroupingOptions(budget=2, n_train_groups=4, rounds=1), TrainConfig(), 0,
                            store).report.to_dict()
    refined = run_grouping(planted, GroupingOptions(budget=2, n_train_groups=4, rounds=5), TrainConfig(), 0,
                           store).report.to_dict()
    t = refined["totals"]
    assert t["selected"] < t["stl"] and t["selected"] < t["all_tasks"]
    assert t["selected"] < one_shot["totals"]["selected"]  # measured what the first selection could not see
    ref = refined["refinement"]
    assert ref["runs_used"] <= ref["max_runs"] and ref["rounds_run"] >= 2
    assert "predictor_cv_rmse" in refined["rounds"][0]
    assert one_shot["refinement"]["rounds_run"] == 1


def test_a_task_without_validation_or_test_labels_is_refused_before_training(tmp_path):
    """Its gains were NaN and the gain predictor raised after every model had trained (validation), or its test
    losses read 0.0 (test); now the job names the task and stores nothing. The audit rows are held back first, as
    the job does, and with folds each fold validates on its own rows (checked there)."""
    from negtransfer.data.arrays import dataset_from_arrays
    from negtransfer.jobs.grouping import check_labelled_splits

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 0], 1).astype(float)
    split = np.array([0, 0, 0, 1, 2] * 20)
    no_validation = Y.copy()
    no_validation[split == 1, 1] = np.nan
    ds = dataset_from_arrays(X, no_validation, task_names=["a", "b", "c"], split=split)
    store = RunStore(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match=r"task 'b' has no labelled rows in the validation split \('b': 80 "
                                         r"labelled row\(s\), 60 train, 0 validation, 20 test\).*--folds 3"):
        run_grouping(ds, GroupingOptions(budget=2, n_train_groups=2, repeats=1), TrainConfig(max_epochs=2), 0, store)
    assert store.count() == 0
    check_labelled_splits(ds, GroupingOptions(folds=2))
    no_test = Y.copy()
    no_test[split == 2, 0] = no_test[split == 2, 2] = np.nan
    with pytest.raises(ValueError, match=r"^tasks 'a', 'c' have no labelled rows in the test split .*"
                                         r"leave them out with --tasks$"):
        check_labelled_splits(dataset_from_arrays(X, no_test, split=split, task_names=["a", "b", "c"]),
                              GroupingOptions(folds=2))  # folds or not: the test split keeps its rows
    check_labelled_splits(dataset_from_arrays(X, Y, split=split), GroupingOptions(audit=0.2))
