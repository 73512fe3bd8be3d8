import numpy as np
import pytest

from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.jobs.sources import (
    HoldoutPrediction,
    IndependentHoldout,
    NegativeTransferScores,
    RidgeChoice,
    RunPlan,
    SourceOptions,
    SourcesReport,
    StageRuns,
    SubsetSpeedup,
    SurrogateDescription,
    run_sources,
)
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig


@pytest.fixture(scope="module")
def planted_rows():
    return make_synthetic_tasks(n_tasks=10, n_clusters=2, task_kind="binary", layout="per-task-rows",
                                n_samples=400, seed=0)


@pytest.mark.slow  # about 2 min; the job end to end also runs in test_sources_cli_on_a_file_with_a_task_column
def test_surrogate_selects_the_planted_cluster(tmp_path):
    # 1500 rows per task: enough for STL to learn, so that the other cluster can hurt (planted negative transfer)
    ds = make_synthetic_tasks(n_tasks=10, n_clusters=2, task_kind="binary", layout="per-task-rows",
                              n_samples=1500, seed=0)
    clusters = np.array(ds.info["clusters"])
    target = 0
    rep = run_sources(ds, SourceOptions(target=ds.task_names[target], alpha=3, n_subsets=40, holdout=20),
                      TrainConfig(), 0, RunStore(tmp_path / "s.sqlite"))
    mates = {ds.task_names[i] for i in np.flatnonzero(clusters == clusters[target]) if i != target}
    assert set(rep.selected) <= mates and len(rep.selected) >= 2
    # relevance scores: the planted helpers score below every source of the other cluster
    rel = rep.relevance
    assert max(rel[m] for m in mates) < min(v for name, v in rel.items() if name not in mates)
    tl = rep.test_loss
    assert tl["selected"] < tl["stl"] and tl["selected"] < tl["all_sources"]
    scores = rep.holdout.scores
    assert scores is not None and scores.n == 20 and scores.spearman > 0.6 and scores.f1 > 0.6
    # one run per subset (SourceOptions' default): no standard errors, so no noise ceiling
    assert np.isnan(scores.noise_ceiling) and rep.holdout.independent is None
    assert set(rep.methods) >= {"stl", "all_sources", "selected", "pairwise_top_m", "affinity_top_m"}
    assert rep.runs["selected"] >= 61  # STL + 60 subsets + threshold candidates
    # the exhaustive baseline trains all 9 + 36 one- and two-source models and keeps one of them (the best by
    # the target's validation loss; on ~80 validation rows that choice is noisy, so which one is not asserted)
    assert rep.runs["exhaustive_pairs"] == 45 and 1 <= len(rep.methods["exhaustive_pairs"]) <= 2


def test_options_are_checked(planted_rows):
    with pytest.raises(ValueError, match="unknown task"):
        SourceOptions(target="nope").check(planted_rows)
    with pytest.raises(ValueError, match="--alpha"):
        SourceOptions(target="task0", alpha=20).check(planted_rows)
    with pytest.raises(ValueError, match="mse"):
        SourceOptions(target="task0", loss="mse").check(planted_rows)
    with pytest.raises(ValueError, match="--grid"):
        SourceOptions(target="task0", grid="fine").check(planted_rows)
    with pytest.raises(ValueError, match="--exhaustive-pairs"):
        SourceOptions(target="task0", exhaustive_pairs="yes").check(planted_rows)
    assert SourceOptions(target="t").runs_exhaustive_pairs(25)  # 300 pairs: at the limit
    assert not SourceOptions(target="t").runs_exhaustive_pairs(26)
    assert SourceOptions(target="t", exhaustive_pairs="on").runs_exhaustive_pairs(50)
    assert not SourceOptions(target="t", exhaustive_pairs="off").runs_exhaustive_pairs(3)


def test_sources_cli_on_a_file_with_a_task_column(planted_rows, tmp_path, sources_cli):
    out = tmp_path / "out"
    res = sources_cli(planted_rows, "--target", "task0", "--alpha", "3", "--subsets", "30", "--holdout", "10",
                      "--no-affinity", "--epochs", "5", "--repeats", "1", "--out", str(out), "-q")
    assert res.exit_code == 0, res.output
    import json

    rep = json.loads((out / "report.json").read_text())
    for key in ("target", "relevance", "threshold", "selected", "holdout", "test_loss"):
        assert key in rep
    # 9 sources: 36 pair models, under the auto limit, so the exhaustive baseline runs
    assert set(rep["test_loss"]) == {"stl", "all_sources", "selected", "pairwise_top_m", "exhaustive_pairs"}
    assert rep["runs"]["exhaustive_pairs"] == 9 + 36 and 1 <= len(rep["methods"]["exhaustive_pairs"]) <= 2
    assert {"f1", "spearman", "n_subsets"} <= set(rep["holdout"])
    assert (out / "report.md").exists() and (out / "plots" / "relevance.png").exists()
    assert "noise ceiling" not in (out / "report.md").read_text()  # one repeat: no standard errors
    bad = sources_cli(planted_rows, "--target", "task0", "--ridge", "lots", "--out", str(tmp_path / "bad"), "-q")
    assert bad.exit_code == 2 and "--ridge ('auto' or a number) takes numbers >= 0" in bad.output


@pytest.mark.slow  # over 5 s: the default suite stays under 2 minutes
def test_speedup_options_train_subset_models_on_less(planted_rows, tmp_path):
    ds = planted_rows
    part = ds.with_train_fraction(0.4, seed=0)
    n_train = int((ds.split == 0).sum())
    assert int((part.split == 0).sum()) == round(0.4 * n_train)
    assert (part.split == 1).sum() == (ds.split == 1).sum() and part.fingerprint() != ds.fingerprint()
    store = RunStore(tmp_path / "s.sqlite")
    rep = run_sources(ds, SourceOptions(target="task0", alpha=3, n_subsets=30, holdout=0, data_fraction=0.4,
                                        steps_fraction=0.2, affinity_baseline=False, exhaustive_pairs="off"),
                      TrainConfig(batching="pooled", max_epochs=50), 0, store)
    assert rep.speedup == SubsetSpeedup(data_fraction=0.4, steps_fraction=0.2)
    assert rep.to_dict()["speedup"] == {"data_fraction": 0.4, "steps_fraction": 0.2}
    assert SourcesReport.from_dict(rep.to_dict()).speedup == rep.speedup
    # no holdout subsets: report.json's holdout is their number alone, and is read back as such
    assert rep.holdout == HoldoutPrediction(0) and rep.to_dict()["holdout"] == {"n_subsets": 0}
    assert SourcesReport.from_dict(rep.to_dict()).holdout == HoldoutPrediction(0)
    assert rep.selected  # still finds helpful sources
    with pytest.raises(ValueError, match="fraction"):
        SourceOptions(target="task0", data_fraction=0).check(ds)


def test_fairness_metrics_per_method(tmp_path, task_column_frame):
    from negtransfer.data.social import dataset_with_attributes

    ds0 = make_synthetic_tasks(n_tasks=5, n_clusters=2, task_kind="binary", layout="per-task-rows",
                               n_samples=300, seed=3)
    frame = task_column_frame(ds0)
    frame["sex"] = np.where(np.arange(len(frame)) % 3 == 0, "f", "m")
    ds = dataset_with_attributes(frame, ["sex"], task_column="state", label_column="vote",
                                 features=list(ds0.feature_names), seed=0)
    opts = SourceOptions(target="task0", alpha=2, n_subsets=12, holdout=0, affinity_baseline=False,
                         group_attribute="sex")
    rep = run_sources(ds, opts, TrainConfig(max_epochs=15), 0, RunStore(tmp_path / "s.sqlite"))
    fair = rep.fairness
    assert fair["attribute"] == "sex"
    for key in ("stl", "all_sources", "selected", "pairwise_top_m"):
        f = fair[key]
        assert f["worst_group_accuracy"] <= f["accuracy"] + 1e-12
        assert 0 <= f["demographic_parity_gap"] <= 1 and f["groups"] == 2
        assert f["accuracy"] == pytest.approx(rep.test_accuracy[key])
    with pytest.raises(ValueError, match="race"):
        SourceOptions(target="task0", alpha=2, group_attribute="race").check(ds)


@pytest.mark.slow  # over 5 s: the default suite stays under 2 minutes
def test_threshold_by_surrogate_needs_no_candidate_runs(planted_rows, tmp_path):
    ds = planted_rows
    clusters = np.array(ds.info["clusters"])
    mates = {ds.task_names[i] for i in np.flatnonzero(clusters == clusters[0]) if i != 0}
    # legacy training: on these small tasks STL barely learns under the parity scheme, so every source "helps"
    opts = SourceOptions(target="task0", alpha=3, n_subsets=30, holdout=0, affinity_baseline=False,
                         threshold_by="surrogate", exhaustive_pairs="off", training="legacy")
    rep = run_sources(ds, opts, TrainConfig(batching="pooled", max_epochs=30), 0, RunStore(tmp_path / "s.sqlite"))
    assert rep.threshold_by == "surrogate"
    assert rep.runs["selected"] == 1 + 30 + 1  # STL + subsets + the one final model
    assert rep.selected and set(rep.selected) <= mates  # conservative: only planted helpers
    assert all("surrogate_criterion" in v for v in rep.threshold_grid.values())
    assert rep.test_loss["selected"] < rep.test_loss["all_sources"]
    with pytest.raises(ValueError, match="--threshold-by"):
        SourceOptions(target="task0", threshold_by="test").check(ds)


def test_stl_repeats_average_the_reference(planted_rows, tmp_path):
    ds = planted_rows
    store = RunStore(tmp_path / "s.sqlite")
    base = dict(target="task0", alpha=3, n_subsets=30, holdout=10, affinity_baseline=False, exhaustive_pairs="off")
    one = run_sources(ds, SourceOptions(**base), TrainConfig(max_epochs=8), 0, store)
    three = run_sources(ds, SourceOptions(**base, stl_repeats=3), TrainConfig(max_epochs=8), 0, store)
    refs = three.stl_val_losses
    assert len(refs) == 3 and refs[0] == one.stl_val_loss  # the first is the usual STL run
    assert len(set(refs)) == 3  # other seeds, other runs
    assert three.stl_val_loss == pytest.approx(np.mean(refs))
    # the anchor moves the zero and unit of the scores, never their order (same fitted subsets)
    names = sorted(one.relevance)
    assert sorted(names, key=one.relevance.get) == sorted(names, key=three.relevance.get)
    with pytest.raises(ValueError, match="--stl-repeats"):
        SourceOptions(target="task0", stl_repeats=0).check(ds)
    with pytest.raises(ValueError, match="common-init"):
        SourceOptions(target="task0", stl_repeats=2, common_init=True).check(ds)


def test_parity_training_config_follows_the_target():
    from negtransfer.jobs.sources import source_training_config

    ds = make_synthetic_tasks(n_tasks=4, n_clusters=2, task_kind="binary", layout="per-task-rows",
                              n_samples=100, seed=0)
    base = TrainConfig(batch_size=16, shared_init=False)
    cfg = source_training_config(base, ds, 2, "parity")
    n_train = int(((ds.row_task == 2) & (ds.split == 0)).sum())
    assert cfg.steps_per_epoch == -(-n_train // 16)  # one pass over the target's rows, for every group
    assert (cfg.stopping_task, cfg.stopping_rows, cfg.loss_weighting, cfg.batching) == (2, "half", "row-mean", "pooled")
    assert cfg.shared_init and cfg.early_stopping
    assert source_training_config(base, ds, 2, "legacy") is base
    public = source_training_config(base, ds, 2, "task-modeling")
    assert not public.early_stopping and public.stopping_task is None and public.loss_weighting == "row-mean"


def test_default_subsets_follow_the_paper_within_the_budget(planted_rows):
    assert SourceOptions(target="t").subsets_for(50) == 400  # n = 8k
    assert SourceOptions(target="t", n_subsets=30).subsets_for(50) == 30
    # 600 runs for 3 repeats: 200 subsets, 100 of them the holdout
    assert SourceOptions(target="t", max_runs=600, repeats=3).subsets_for(50) == 100
    assert SourceOptions(target="t", max_runs=10, repeats=3).subsets_for(50) == 50  # never fewer than k
    for bad, match in (({"training": "fast"}, "--training"), ({"max_runs": 0}, "--max-runs")):
        with pytest.raises(ValueError, match=match):
            SourceOptions(target="task0", **bad).check(planted_rows)


def test_repeats_give_means_standard_errors_and_a_resumable_plan(planted_rows, tmp_path):
    from negtransfer.jobs.sources import source_training_config, target_values
    from negtransfer.runs.runner import ensure_runs

    ds = planted_rows
    store = RunStore(tmp_path / "s.sqlite")
    opts = SourceOptions(target="task0", alpha=2, n_subsets=12, holdout=6, repeats=2, affinity_baseline=False,
                         exhaustive_pairs="off")
    messages: list[str] = []
    rep = run_sources(ds, opts, TrainConfig(max_epochs=6), 0, store, notify=messages.append)
    assert rep.plan is not None and messages[0].startswith(f"{rep.plan.runs} runs") and "to train" in messages[0]
    assert rep.plan.to_train == rep.plan.runs - sum(r.stored for r in rep.plan.stages.values())
    # report.json's plan: its keys in order (each stage's too), read back into the record
    plan_json = rep.to_dict()["plan"]
    assert list(plan_json) == ["stages", "runs", "to_train", "later_at_most", "estimated_seconds"]
    assert plan_json["stages"]["subset models"] == {"runs": rep.plan.stages["subset models"].runs, "stored": 0}
    assert SourcesReport.from_dict(rep.to_dict()).plan == rep.plan
    assert rep.repeats == 2 and rep.f_rows == "estimate half" and rep.loss == "cross_entropy"
    # f(S) is the mean of the two repeats' target loss on the estimate half; its s.e. is |a - b| / 2
    cfg = source_training_config(TrainConfig(max_epochs=6), ds, 0, "parity")
    row = rep.subsets[0]
    group = tuple(sorted([0] + [ds.task_names.index(n) for n in row.sources]))
    values = target_values(ensure_runs(ds, [group], cfg, 0, store, repeats=2)[group], 0, "cross_entropy", "val_est")
    assert row.f == pytest.approx(values.mean()) and row.se == pytest.approx(abs(values[0] - values[1]) / 2)
    assert len(rep.subsets) == 18 and all(r.se >= 0 and np.isfinite(r.paired_se) for r in rep.subsets)
    assert np.isfinite(rep.stl_val_se) and set(rep.test_loss_se) == set(rep.test_loss)
    # a second call finds every run in the store and gives the same figures
    again = run_sources(ds, opts, TrainConfig(max_epochs=6), 0, store)
    assert again.plan is not None and again.plan.to_train == 0
    assert again.relevance == rep.relevance and again.test_loss == rep.test_loss


def test_paper_grid_thresholds_the_raw_scores(planted_rows, tmp_path):
    ds = planted_rows
    opts = SourceOptions(target="task0", alpha=2, n_subsets=12, holdout=0, grid="paper", affinity_baseline=False,
                         exhaustive_pairs="off", training="task-modeling")
    rep = run_sources(ds, opts, TrainConfig(max_epochs=4), 0, RunStore(tmp_path / "s.sqlite"))
    assert rep.threshold_scale == "raw" and rep.loss == "logit_margin" and rep.f_rows == "all"
    assert rep.ridge == RidgeChoice(option=0.0, alpha=0.0)  # the paper's least squares under the public scheme
    assert rep.to_dict()["ridge"] == {"option": 0.0, "alpha": 0.0}
    assert rep.selected == [name for name, v in rep.raw_relevance.items() if v < rep.threshold]
    # raw = |f_STL| * relative + f_STL / alpha (least squares, fixed-size subsets)
    for name, v in rep.relevance.items():
        assert rep.raw_relevance[name] == pytest.approx(abs(rep.stl_val_loss) * v + rep.stl_val_loss / 2, abs=1e-6)


def test_report_shows_the_holdout_class_balance(planted_rows, tmp_path):
    from negtransfer.report.sources import write_sources_report

    opts = SourceOptions(target="task0", alpha=2, n_subsets=12, holdout=8, affinity_baseline=False,
                         exhaustive_pairs="off", repeats=2, pairwise_baseline=False)
    rep = run_sources(planted_rows, opts, TrainConfig(max_epochs=4), 0, RunStore(tmp_path / "s.sqlite"))
    assert set(rep.methods) == {"stl", "all_sources", "selected"} and "pairwise runs" not in rep.plan.stages
    text = write_sources_report(rep, tmp_path / "out").read_text()
    h = rep.holdout.scores
    assert f"class balance: {h.n_negative} negative, {h.n_positive} positive" in text
    # the noise ceiling of the holdout Spearman, from the holdout subsets' measured f and their s.e.
    from negtransfer.select.sources import holdout_noise_ceiling

    hold = [row.values for row in rep.subsets if row.part == "holdout"]
    assert np.shape(hold) == (8, 2) and h.noise_ceiling == pytest.approx(holdout_noise_ceiling(hold))
    # the measured subsets as a matrix, to refit without training (the benchmarks' use)
    from negtransfer.jobs.sources import measured_subsets

    assert list(rep.to_dict()["subsets"][0]) == ["sources", "part", "f", "se", "paired_se", "values"]
    assert SourcesReport.from_dict(rep.to_dict()).subsets == rep.subsets
    # each holdout point: the holdout subset's measured f and its surrogate prediction, read back as a record
    assert [p.actual for p in rep.holdout_points] == [row.f for row in rep.subsets if row.part == "holdout"]
    assert list(rep.to_dict()["holdout_points"][0]) == ["sources", "predicted", "actual", "se"]
    assert SourcesReport.from_dict(rep.to_dict()).holdout_points == rep.holdout_points
    assert measured_subsets(rep)[0] == sorted(rep.relevance)
    names, S, f, fit = measured_subsets(rep.to_dict())
    assert names == sorted(rep.relevance) and S.shape == (20, 9) and (S.sum(axis=1) == 2).all()
    assert fit.sum() == 12 and np.allclose(f, [row.f for row in rep.subsets])
    assert [names[j] for j in np.flatnonzero(S[0])] == sorted(rep.subsets[0].sources)
    assert 0 <= h.noise_ceiling <= 1 and f"noise ceiling {h.noise_ceiling:.4f}" in text
    # the F1 a predictor of the true f(S) would expect against these noisy measurements; NaN in older reports
    from negtransfer.select.sources import holdout_f1_ceiling

    assert h.f1_ceiling == holdout_f1_ceiling(hold, rep.stl_val_loss)
    assert f"F1 ceiling {h.f1_ceiling:.4f}" in text
    older = {k: v for k, v in rep.to_dict()["holdout"].items() if k != "f1_ceiling"}
    assert np.isnan(NegativeTransferScores.from_json(older).f1_ceiling)
    # 12 fitted subsets of 9 sources (< 1.5k): the ridge strength by leave-one-out error, named in the report
    assert rep.ridge is not None and rep.ridge.option == "auto" and rep.ridge.alpha >= 0 and "leave-one-out" in text
    assert SourcesReport.from_dict(rep.to_dict()).ridge == rep.ridge
    opts = SourceOptions(target="task0")
    assert opts.resolved_ridge(74, 50) == "auto" and opts.resolved_ridge(75, 50) == 0.0  # least squares from 1.5k
    assert SourceOptions(target="task0", training="task-modeling").resolved_ridge(50, 50) == 0.0
    assert SourceOptions(target="task0", ridge=3.0).resolved_ridge(400, 50) == 3.0
    for bad in ("Auto", -1.0, float("nan")):
        with pytest.raises(ValueError, match="--ridge"):
            SourceOptions(target="task0", ridge=bad).check(planted_rows)
    assert "± " in text and "training scheme `parity`" in text


def test_kernel_surrogate_independent_holdout_and_the_check(planted_rows, tmp_path):
    from negtransfer.jobs.sources import source_training_config, target_values, unused_validation_values
    from negtransfer.report.sources import write_sources_report
    from negtransfer.runs.runner import ensure_runs
    ds, store = planted_rows, RunStore(tmp_path / "s.sqlite")
    common = dict(target="task0", alpha=2, n_subsets=14, holdout=8, repeats=2, affinity_baseline=False,
                  exhaustive_pairs="off", pairwise_baseline=False)
    config = TrainConfig(max_epochs=4)
    linear = run_sources(ds, SourceOptions(**common), config, 0, store)
    messages: list[str] = []
    kernel = run_sources(ds, SourceOptions(**common, surrogate="kernel", independent_holdout=True), config, 0, store,
                         notify=messages.append)
    # paired on the same runs: the kernel job trains only the independent holdout and its own candidates
    assert kernel.subsets == linear.subsets and kernel.stl_val_loss == linear.stl_val_loss
    assert kernel.plan.stages["independent holdout"] == StageRuns(runs=18, stored=0)  # (8 + STL) x repeats 2, 3
    assert "independent holdout 18" in messages[0]
    assert kernel.surrogate is not None and kernel.surrogate.kind == "kernel"
    assert kernel.surrogate.kernel in ("linear", "quadratic", "rbf") and kernel.surrogate.candidates
    assert linear.surrogate == SurrogateDescription("linear") and linear.to_dict()["surrogate"] == {"kind": "linear"}
    assert list(kernel.to_dict()["surrogate"]) == ["kind", "kernel", "gamma", "alpha", "loo_mse", "candidates"]
    assert SourcesReport.from_dict(kernel.to_dict()).surrogate == kernel.surrogate
    # the independent holdout: repeats 2 and 3 of the holdout subsets, judged against STL of the same repeats
    cfg = source_training_config(config, ds, 0, "parity")
    hold = [tuple(sorted([0] + [ds.task_names.index(n) for n in row.sources]))
            for row in kernel.subsets if row.part == "holdout"]
    runs = ensure_runs(ds, [(0,)] + hold, cfg, 0, store, repeats=4)
    from negtransfer.train.results import RepeatedResult

    def unseen(g):
        return target_values(RepeatedResult(g, runs[g].runs[2:]), 0, "cross_entropy", "val_est").mean()

    independent = kernel.holdout.independent
    assert independent.repeats == [2, 3] and independent.stl_val_loss == pytest.approx(unseen((0,)))
    f_unseen = np.array([unseen(g) for g in hold])
    assert independent.scores.n_negative == int((f_unseen >= unseen((0,))).sum())
    # its F1 ceiling draws the noise of f(STL) on those repeats too (the prediction does not share it)
    from negtransfer.select.sources import holdout_f1_ceiling

    def unseen_values(g):
        return target_values(RepeatedResult(g, runs[g].runs[2:]), 0, "cross_entropy", "val_est")

    assert independent.scores.f1_ceiling == holdout_f1_ceiling(
        np.array([unseen_values(g) for g in hold]), independent.stl_val_loss, stl_values=unseen_values((0,)))
    # report.json's holdout: the scores' keys at its top level and in its independent, read back into the records
    holdout_json = kernel.to_dict()["holdout"]
    scores = ["f1", "precision", "recall", "accuracy", "spearman", "n", "minority", "n_negative", "n_positive",
              "noise_ceiling", "f1_ceiling"]
    assert list(holdout_json) == ["n_subsets", *scores, "error_curve", "independent"]
    assert list(holdout_json["independent"]) == [*scores, "stl_val_loss", "repeats"]
    assert SourcesReport.from_dict(kernel.to_dict()).holdout == kernel.holdout
    assert "independent" not in linear.to_dict()["holdout"]
    # the check: on the stopping half the three losses rebuild the full validation loss with the estimate half
    results = {name: ensure_runs(ds, [tuple(sorted(g))], cfg, 0, store, repeats=2)[tuple(sorted(g))]
               for name, g in ((n, [0] + [ds.task_names.index(s) for s in kernel.methods[n]])
                               for n in ("selected", "stl", "all_sources"))}
    values, n_stop, unused = unused_validation_values(ds, results, 0, "val_est")
    assert unused and n_stop == kernel.check.n_rows and kernel.check.rows == "stopping half"
    est = results["stl"].values("val_est_loss", 0)
    full = results["stl"].values("val_loss", 0)
    n_est = int((~np.isnan(ds.Y[ds.split == 1, 0])).sum()) - n_stop
    np.testing.assert_allclose((n_stop * values["stl"] + n_est * est) / (n_stop + n_est), full, rtol=1e-6)
    best = min(("stl", "all_sources"), key=kernel.check.loss.__getitem__)
    expected = "selected" if kernel.check.loss["selected"] <= kernel.check.loss[best] else best
    assert kernel.check.recommended == expected and kernel.check.best_alternative == best
    # report.json's check: the same keys in the same order (the noise keys after them:
    # tests/jobs/test_sources_check.py), and read back into the record
    assert list(kernel.to_dict()["check"])[:10] == ["rows", "n_rows", "unused_by_selection", "loss", "se",
                                                    "best_alternative", "difference", "difference_se", "recommended",
                                                    "reason"]
    assert SourcesReport.from_dict(kernel.to_dict()).check == kernel.check
    text = write_sources_report(kernel, tmp_path / "out").read_text()
    assert "## Recommendation" in text and "kernel ridge regression" in text and "repeat seeds [2, 3]" in text
    with pytest.raises(ValueError, match="--surrogate"):
        SourceOptions(target="task0", surrogate="forest").check(ds)
    with pytest.raises(ValueError, match="--ridge 0"):
        SourceOptions(target="task0", surrogate="kernel", ridge=0.0).check(ds)


def test_a_large_plan_says_how_to_cut_it():
    from negtransfer.jobs.sources import MANY_RUNS, cost_hint, plan_runs

    options = SourceOptions(target="t")  # the defaults: 8k + 100 subsets, 3 repeats, exhaustive pairs when few
    k = 20
    stages = {"STL, all sources": 2, "subset models": 1 + 8 * k + 100, "pairwise runs": k,
              "exhaustive pairs": k * (k - 1) // 2}
    plan = plan_runs(stages, {}, 3)
    hint = cost_hint(plan, options, 3)
    assert plan.to_train == 3 * (2 + 261 + 20 + 190) > MANY_RUNS
    assert hint is not None and f"{plan.to_train} runs to train" in hint
    assert "--exhaustive-pairs off (570 runs fewer)" in hint and "--holdout 50 (150 fewer)" in hint
    assert "--repeats 2" in hint and "--max-runs" in hint
    small = plan_runs({"subset models": 40}, {}, 2)
    assert cost_hint(small, options, 2) is None


def test_sources_cli_with_the_kernel_surrogate(planted_rows, tmp_path, sources_cli):
    import json

    out = tmp_path / "out"
    res = sources_cli(planted_rows, "--target", "task0", "--alpha", "2", "--subsets", "12", "--holdout", "6",
                      "--no-affinity", "--exhaustive-pairs", "off", "--epochs", "3", "--repeats", "2",
                      "--surrogate", "kernel", "--independent-holdout", "--out", str(out))
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["surrogate"]["kind"] == "kernel" and rep["holdout"]["independent"]["repeats"] == [2, 3]
    assert rep["check"]["recommended"] in ("selected", "stl", "all_sources")
    assert "recommended:" in res.output and "unseen repeat seeds" in res.output
    # report.json read back: every record typed again, written out as the same JSON and the same report.md
    from negtransfer.report.jsonio import strict
    from negtransfer.report.sources import write_sources_report

    again = SourcesReport.from_dict(rep)
    assert isinstance(again.holdout.independent, IndependentHoldout) and isinstance(again.plan, RunPlan)
    assert json.dumps(strict(again.to_dict())) == json.dumps(rep)  # the same keys in the same order
    written = (out / "report.md").read_text()
    assert write_sources_report(rep, tmp_path / "again").read_text() == written
    bad = sources_cli(planted_rows, "--target", "task0", "--surrogate", "forest", "--out", str(tmp_path / "b"), "-q")
    assert bad.exit_code == 2 and "forest" in bad.output


class _StoppedBeforeTraining(Exception):
    """Raised in place of the first training stage: what the job said before it is all it said."""


def test_the_default_run_on_20_sources_states_its_cost_before_training(tmp_path, monkeypatch, sources_cli):
    # issue 27 item 5: `negtransfer sources` with every default on a 20-source problem prints its runs per stage
    # and how to cut them before anything trains (the first training stage is replaced by an exception)
    from negtransfer.jobs.sources import SourcesState

    ds = make_synthetic_tasks(n_tasks=21, n_clusters=2, task_kind="binary", layout="per-task-rows",
                              n_samples=40, seed=0)

    def stop(self, label, groups, *args, **kwargs):
        raise _StoppedBeforeTraining(label)

    monkeypatch.setattr(SourcesState, "train", stop)
    store = tmp_path / "runs.sqlite"
    res = sources_cli(ds, "--target", ds.task_names[0], "--store", str(store), "--out", str(tmp_path / "out"), "-q")
    assert isinstance(res.exception, _StoppedBeforeTraining), res.output
    assert res.exception.args[0] == "STL, all sources"  # the first stage that trains
    output = " ".join(res.output.split())
    # the defaults: 8k = 160 fitted + 100 holdout subsets of 5, 3 repeats, 20 pairwise and 190 exhaustive-pair
    # models, STL and all sources (the subset models' STL is the STL run: counted once)
    runs = 3 * (2 + 160 + 100 + 20 + 190)
    assert f"note: {runs} runs (160 + 100 subsets of 5 of 20 sources, 3 repeats), 0 already stored, {runs} to " \
           "train (STL, all sources 6, subset models 780, pairwise runs 60, exhaustive pairs 570)" in output
    assert f"note: {runs} runs to train may take more than 15 minutes on 2 CPU cores" in output
    assert "--exhaustive-pairs off (570 runs fewer)" in output and "--holdout 50 (150 fewer)" in output
    assert "--repeats 2" in output and "--data-fraction 0.4 --steps-fraction 0.2" in output


def test_a_target_without_labelled_validation_or_test_rows_is_refused_before_training():
    """f(STL) was 0.0 on no rows and the job failed after training (the relative scale divides by it); without test
    rows every test loss read 0.0000."""
    from negtransfer.data.arrays import dataset_from_arrays
    from negtransfer.jobs.sources import SourceOptions

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 3))
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 2] > 0], 1).astype(float)
    split = np.array([0, 0, 0, 1, 2] * 20)
    Y[split == 1, 2] = np.nan
    ds = dataset_from_arrays(X, Y, task_names=["a", "b", "c"], split=split)
    with pytest.raises(ValueError, match="target 'c' has 60 labelled training, 0 validation and 20 test row.*"
                                         "none in the half .* or the half that measures f"):
        SourceOptions(target="c", alpha=1).check(ds)
    with pytest.raises(ValueError, match="none in the validation split;"):
        SourceOptions(target="c", alpha=1, training="legacy").check(ds)
    one = Y.copy()
    one[np.flatnonzero(split == 1)[0], 2] = 1.0  # a single labelled row: the stopping half only
    with pytest.raises(ValueError, match="1 validation and 20 test row.*none in the half that measures f"):
        SourceOptions(target="c", alpha=1).check(dataset_from_arrays(X, one, task_names=["a", "b", "c"], split=split))
    no_test = Y.copy()
    no_test[:, 2] = Y[:, 0]
    no_test[split == 2, 2] = np.nan
    with pytest.raises(ValueError, match="60 labelled training, 20 validation and 0 test row.*none in the test split;"):
        SourceOptions(target="c", alpha=1).check(dataset_from_arrays(X, no_test, task_names=["a", "b", "c"],
                                                                     split=split))
    SourceOptions(target="a", alpha=1).check(ds)


@pytest.mark.parametrize("seconds, text", [(0.004, "under 1 s"), (40.2, "about 40 s"), (150.0, "about 2.5 min")])
def test_the_estimate_of_the_runs_left_reads_in_seconds_under_a_minute(seconds, text):
    """A small job's estimate read 'take about 0.0 min'."""
    from negtransfer.jobs.sources import estimate_text

    assert estimate_text(seconds) == text
