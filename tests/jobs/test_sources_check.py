"""The source-selection check's noise (issue 27, item 3): paired differences on the stopping half with a standard
error over the rows and the repeats, and a three-way verdict."""

import json

import numpy as np
import pytest

from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.gains.paired_rows import VERDICT_PHRASES
from negtransfer.jobs.sources import (
    CHECK_MARGIN_SE,
    UNKNOWN_NOISE,
    SourceOptions,
    SourcesReport,
    check_rows,
    final_row_losses,
    paired_on_rows,
    run_sources,
    scored_copy,
    source_training_config,
    unused_validation_values,
)
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

COMMON = dict(target="task0", alpha=2, n_subsets=14, holdout=8, repeats=2, affinity_baseline=False,
              exhaustive_pairs="off", pairwise_baseline=False)


@pytest.fixture(scope="module")
def planted():
    return make_synthetic_tasks(n_tasks=10, n_clusters=2, task_kind="binary", layout="per-task-rows",
                                n_samples=400, seed=0)


@pytest.fixture(scope="module")
def finished(planted, tmp_path_factory):
    """A tiny job, its store and its report."""
    store = RunStore(tmp_path_factory.mktemp("check") / "s.sqlite")
    return run_sources(planted, SourceOptions(**COMMON), TrainConfig(max_epochs=4), 0, store), store


def _planted_losses(rng, rows: int, repeats: int, row_sd: float, run_sd: float, mu: float):
    """Per-row losses (R, n) of two models whose per-row difference is mu + a_i + b_r + e_ri: a large row effect
    (which rows the validation split happened to draw) shared by every repeat, little run-to-run noise."""
    base = rng.gamma(2.0, 0.3, rows)[None, :] + rng.normal(0, 0.01, (repeats, rows))
    difference = (mu + rng.normal(0, row_sd, rows)[None, :] + rng.normal(0, run_sd, repeats)[:, None]
                  + rng.normal(0, 0.02, (repeats, rows)))
    losses = {"selected": base + difference, "stl": base}
    return losses, {name: v.mean(axis=1) for name, v in losses.items()}


def test_planted_row_noise_is_covered_by_the_rows_and_repeats_se_and_missed_by_the_over_repeats_one():
    """Over 1000 validation draws with a planted true difference of 0: the difference's s.e. over the repeats
    is far too small (the rows' own sampling noise dominates), so its one-s.e. verdict calls most draws
    "beyond noise"; the s.e. over rows and repeats covers the true difference at the nominal rate
    (mean +- 1.96 s.e. about 95%) and calls about two draws in three "within noise" (a normal mean within
    one s.e.: 68%)."""
    rng = np.random.default_rng(5)
    draws, covered, covered_runs, within, within_runs, ratio = 1000, 0, 0, 0, 0, []
    for _ in range(draws):
        rows, values = _planted_losses(rng, 281, 2, row_sd=0.3, run_sd=0.002, mu=0.0)
        paired = paired_on_rows(values, rows, "selected", "stl")
        assert paired.se >= paired.se_runs - 1e-15 and np.isfinite(paired.se_rows)
        covered += abs(paired.mean) <= 1.96 * paired.se
        covered_runs += abs(paired.mean) <= 1.96 * paired.se_runs
        within += paired.verdict == "within noise"
        within_runs += paired_on_rows(values, None, "selected", "stl").verdict == "within noise"
        ratio.append(paired.se / paired.se_runs)
    assert 0.93 <= covered / draws <= 0.97
    assert covered_runs / draws < 0.3
    assert 0.63 <= within / draws <= 0.73 and within_runs / draws < 0.2
    assert np.median(ratio) > 5


def test_a_planted_difference_beyond_the_rows_noise_is_called_by_its_sign():
    rng = np.random.default_rng(6)
    rows, values = _planted_losses(rng, 281, 3, row_sd=0.05, run_sd=0.002, mu=0.05)
    assert paired_on_rows(values, rows, "selected", "stl").verdict == "higher beyond noise"
    assert paired_on_rows(values, rows, "stl", "selected").verdict == "lower beyond noise"


def test_without_row_losses_the_se_is_the_over_repeats_one():
    values = {"a": np.array([1.0, 1.2, 1.1]), "b": np.array([1.0, 1.0, 1.0])}
    paired = paired_on_rows(values, None, "a", "b")
    assert paired.se == paired.se_runs == pytest.approx(np.std([0, 0.2, 0.1], ddof=1) / np.sqrt(3))
    assert np.isnan(paired.se_rows) and paired.verdict == "higher beyond noise"
    one = paired_on_rows({"a": np.array([1.0]), "b": np.array([0.5])}, None, "a", "b")
    assert np.isnan(one.se) and one.verdict == UNKNOWN_NOISE


def test_the_scored_copy_trains_the_same_models_and_its_rows_rebuild_the_check_losses(planted, finished):
    """Training on the copy with the check's rows appended as audit rows gives the stored runs exactly, and the
    mean of each repeat's per-row losses is the check's stopping-half loss of that repeat."""
    report, store = finished
    ds, t = planted, 0
    cfg = source_training_config(TrainConfig(max_epochs=4), ds, t, "parity")
    from negtransfer.runs.runner import ensure_runs

    groups = {name: tuple(sorted([t] + [ds.task_names.index(s) for s in report.methods[name]]))
              for name in ("selected", "stl", "all_sources")}
    results = {name: ensure_runs(ds, [g], cfg, 0, store, repeats=2)[g] for name, g in groups.items()}
    rows = check_rows(ds, t, "val_est")
    copy = scored_copy(ds, t, rows)
    assert copy.X.shape[0] == ds.X.shape[0] + rows.size and (copy.split[-rows.size:] == 4).all()
    assert np.isnan(copy.Y[-rows.size:, 1:]).all() and (copy.row_task[-rows.size:] == t).all()
    losses, note = final_row_losses(lambda label, gs, data: ensure_runs(data, gs, cfg, 0, store, repeats=2), ds,
                                    groups, results, t, rows)
    assert losses is not None and "identical to the stored runs" in note
    values, n_stop, _ = unused_validation_values(ds, results, t, "val_est")
    assert n_stop == rows.size == report.check.n_rows
    for name in groups:
        assert losses["check"][name].shape == (2, rows.size)
        np.testing.assert_allclose(losses["check"][name].mean(axis=1), values[name], rtol=1e-5)
        np.testing.assert_allclose(losses["test"][name].mean(axis=1), results[name].values("test_loss", t),
                                   rtol=1e-5)


def test_the_check_of_a_tiny_run_records_the_paired_differences_and_the_verdict(finished):
    report, _ = finished
    check = report.check
    assert check.noise == "rows and repeats" and "a copy of the data that scores those rows" in check.noise_note
    assert list(check.paired) == ["selected_minus_best", "selected_minus_other", "stl_minus_all_sources"]
    closest = check.paired["selected_minus_best"]
    for pair in check.paired.values():
        assert pair.se >= pair.se_runs - 1e-15 and np.isfinite(pair.se_rows)
        expected = ("lower beyond noise" if pair.mean < -CHECK_MARGIN_SE * pair.se else
                    "higher beyond noise" if pair.mean > CHECK_MARGIN_SE * pair.se else "within noise")
        assert pair.verdict == expected
    assert check.verdict == closest.verdict in VERDICT_PHRASES["loss"].values() and check.margin_se == CHECK_MARGIN_SE
    stl_all = check.paired["stl_minus_all_sources"]
    assert stl_all.mean == pytest.approx(check.loss["stl"] - check.loss["all_sources"])
    test = check.test_paired["stl_minus_all_sources"]
    assert test.mean == pytest.approx(report.test_loss["stl"] - report.test_loss["all_sources"])
    # the recommendation does not read the verdict: the lower mean
    best = check.best_alternative
    assert check.recommended == ("selected" if check.loss["selected"] <= check.loss[best] else best)
    # report.json: the existing keys first, in their order, then the new ones; read back into the record
    keys = list(report.to_dict()["check"])
    assert keys[:10] == ["rows", "n_rows", "unused_by_selection", "loss", "se", "best_alternative", "difference",
                         "difference_se", "recommended", "reason"]
    assert keys[10:] == ["noise", "noise_note", "paired", "margin_se", "verdict", "test_paired", "row_seconds"]
    assert SourcesReport.from_dict(report.to_dict()).check == check
    text = json.dumps(report.to_dict())  # report.json read back and written again: the same bytes
    assert json.dumps(SourcesReport.from_dict(json.loads(text)).to_dict()) == text


def test_a_device_that_trains_differently_falls_back_to_the_over_repeats_se(planted, tmp_path, monkeypatch):
    """Where the final models' runs on the scored copy differ from the stored runs, no per-row loss is used: the
    s.e. is the over-repeats one, and the check says why."""
    import negtransfer.runs.executors as executors
    from negtransfer.data.dataset import AUDIT

    train = executors.train_group_models

    def drifting(dataset, *args, **kwargs):  # only the check's runs (the scored copy has audit rows) drift
        results = train(dataset, *args, **kwargs)
        if (dataset.split == AUDIT).any():
            for res in results:
                res.val_loss = {t: v + 1e-6 for t, v in res.val_loss.items()}
        return results

    monkeypatch.setattr(executors, "train_group_models", drifting)
    store = RunStore(tmp_path / "s.sqlite")
    check = run_sources(planted, SourceOptions(**COMMON), TrainConfig(max_epochs=4), 0, store).check
    assert check.noise == "repeats" and "does not train deterministically" in check.noise_note
    for pair in check.paired.values():
        assert pair.se == pair.se_runs and np.isnan(pair.se_rows)
    assert check.paired["selected_minus_best"].se_runs == check.difference_se
    assert check.test_paired["stl_minus_all_sources"].se == check.test_paired["stl_minus_all_sources"].se_runs


def test_a_rerun_reads_the_checks_runs_from_the_store(planted, tmp_path, monkeypatch):
    """The check's runs on the scored copy go through the run store: a second job trains nothing and gives the
    same check."""
    import negtransfer.runs.executors as executors

    store = RunStore(tmp_path / "s.sqlite")
    first = run_sources(planted, SourceOptions(**COMMON), TrainConfig(max_epochs=4), 0, store).check

    def no_training(*args, **kwargs):
        raise AssertionError("a rerun trained a run")

    monkeypatch.setattr(executors, "train_group_models", no_training)
    again = run_sources(planted, SourceOptions(**COMMON), TrainConfig(max_epochs=4), 0, store).check
    assert again.noise == "rows and repeats" and again.paired == first.paired


def test_a_report_written_before_the_verdict_reads_back_and_says_so(finished, tmp_path):
    """report.json of an earlier version (the check without the new keys) reads back; report.md gives the
    over-repeats s.e. it holds and says that no verdict was recorded."""
    from negtransfer.report.sources import write_sources_report

    report, _ = finished
    old = report.to_dict()
    old["check"] = {key: value for key, value in old["check"].items() if key in (
        "rows", "n_rows", "unused_by_selection", "loss", "se", "best_alternative", "difference", "difference_se",
        "recommended", "reason")}
    again = SourcesReport.from_dict(old)
    assert again.check.noise == "repeats" and again.check.paired == {} and again.check.verdict == ""
    text = write_sources_report(again, tmp_path / "old").read_text()
    assert "over the repeats only (a report written before the check recorded per-row losses)" in text
    assert "no verdict recorded" in text and "**Verdict" not in text
    new = write_sources_report(report, tmp_path / "new").read_text()
    assert f"**Verdict: {report.check.verdict}**" in new and "s.e. over rows and repeats" in new


def test_the_console_prints_the_verdict(planted, tmp_path, sources_cli):
    out = tmp_path / "out"
    res = sources_cli(planted, "--target", "task0", "--alpha", "2", "--subsets", "12", "--holdout", "6",
                      "--no-affinity", "--exhaustive-pairs", "off", "--epochs", "3", "--repeats", "2", "--out", str(out))
    assert res.exit_code == 0, res.output
    check = json.loads((out / "report.json").read_text())["check"]
    line = next(ln for ln in res.output.splitlines() if ln.startswith("check: "))
    assert line.endswith(f"(over rows and repeats): {check['verdict']}")
    assert f"{check['paired']['selected_minus_best']['mean']:+.4f}" in line
