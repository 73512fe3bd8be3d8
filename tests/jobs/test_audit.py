"""Audit rows (issue 25, item 2): held back from every choice, only scored, and the verdict decided on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from negtransfer.data.dataset import AUDIT, TEST, TRAIN, VALIDATION
from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.jobs.grouping import GroupingOptions, run_grouping
from negtransfer.jobs.grouping_report import GroupingReport
from negtransfer.runs.store import RunStore, _decode, _encode
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig
from negtransfer.train.results import ModelResult, RepeatedResult

CFG = TrainConfig(max_epochs=6)


@pytest.fixture(scope="module")
def per_task():
    return make_synthetic_tasks(n_tasks=4, n_clusters=2, n_samples=200, task_kind="binary", layout="per-task-rows",
                                seed=5)


def test_with_audit_is_a_stratified_share_of_the_non_test_rows(per_task):
    audited = per_task.with_audit(0.2)
    moved = audited.split == AUDIT
    assert not (per_task.split == AUDIT).any() and moved.any()
    assert set(np.unique(per_task.split[moved])) == {TRAIN, VALIDATION}  # never a test row
    assert np.array_equal(audited.split == TEST, per_task.split == TEST)
    for t in range(per_task.n_tasks):
        for label in (0.0, 1.0):
            for code in (TRAIN, VALIDATION):
                cell = (per_task.row_task == t) & (per_task.Y[:, t] == label) & (per_task.split == code)
                assert (moved & cell).sum() == round(0.2 * cell.sum())  # every task, class and split keeps its share
    assert audited.summary()["audit"] == int(moved.sum()) == audited.info["audit"]["rows"]
    assert "audit" not in per_task.summary()
    assert np.array_equal(per_task.with_audit(0.2).split, audited.split)  # drawn from the split seed
    assert not np.array_equal(per_task.with_audit(0.2, seed=9).split, audited.split)
    assert audited.fingerprint() != per_task.fingerprint()  # the run store keys differ with the training rows
    assert per_task.with_audit(0.0) is per_task


def test_with_audit_from_validation_only_and_bad_inputs(per_task):
    audited = per_task.with_audit(0.3, source="validation")
    assert set(np.unique(per_task.split[audited.split == AUDIT])) == {VALIDATION}
    assert (audited.split == TRAIN).sum() == (per_task.split == TRAIN).sum()
    with pytest.raises(ValueError, match="audit fraction"):
        per_task.with_audit(1.0)
    with pytest.raises(ValueError, match="audit source"):
        per_task.with_audit(0.2, source="test")
    multi_label = make_synthetic_tasks(n_tasks=3, n_clusters=1, n_samples=300, seed=1)
    assert (multi_label.with_audit(0.25).split == AUDIT).sum() == pytest.approx(0.25 * 0.8 * 300, abs=3)


def test_audit_rows_are_only_scored(per_task):
    """Other labels on the audit rows change the audit losses and nothing else: no run trains, stops or measures
    a gain on them."""
    audited = per_task.with_audit(0.2)
    flipped = audited.subset_rows(np.arange(audited.X.shape[0]))
    rows = audited.split == AUDIT
    flipped.Y[rows] = np.where(np.isnan(flipped.Y[rows]), np.nan, 1.0 - flipped.Y[rows])
    groups = [(0,), (0, 1), (0, 1, 2, 3)]
    first, second = (train_group_models(ds, groups, CFG, 0) for ds in (audited, flipped))
    for a, b in zip(first, second, strict=True):
        assert (a.val_loss, a.test_loss, a.best_epoch, a.epochs) == (b.val_loss, b.test_loss, b.best_epoch, b.epochs)
        assert set(a.audit_loss) == set(a.group) and a.audit_loss != b.audit_loss
    assert train_group_models(per_task, groups[:1], CFG, 0)[0].audit_loss == {}


def test_store_keeps_audit_losses_and_reads_results_without_them():
    plain = ModelResult(group=(1,), val_loss={1: 0.5}, test_loss={1: 0.4}, test_metric={1: 0.9}, best_epoch=2,
                        epochs=3)
    assert "audit_loss" not in json.loads(_encode(plain))  # stored as before the field existed
    assert _decode(_encode(plain)) == plain
    audited = ModelResult(group=(1,), val_loss={1: 0.5}, test_loss={1: 0.4}, test_metric={1: 0.9}, best_epoch=2,
                          epochs=3, audit_loss={1: 0.45})
    assert _decode(_encode(audited)).audit_loss == {1: 0.45}
    both = RepeatedResult((1,), [audited, ModelResult(**{**audited.__dict__, "audit_loss": {1: 0.55}, "repeat": 1})])
    assert both.audit_loss == {1: pytest.approx(0.5)} and list(both.values("audit_loss", 1)) == [0.45, 0.55]
    assert RepeatedResult((1,), [plain]).audit_loss == {}


def test_the_verdict_and_the_recommendation_are_decided_on_audit_rows(per_task, tmp_path):
    options = GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=1, audit=0.25)
    report = run_grouping(per_task, options, CFG, 0, RunStore(tmp_path / "s.sqlite")).report
    c = report.comparison
    audited = per_task.with_audit(0.25)
    assert c.decided_on == "audit" and c.rows == int((audited.split == AUDIT).sum())
    assert report.fingerprint == audited.fingerprint()
    assert set(c.audit_loss) == {"selected", "STL (one model per task)", "all-task model"}
    for name, d in c.audit_difference.items():
        assert d.mean == pytest.approx(c.audit_loss["selected"] - c.audit_loss[name])
    best = min(("STL (one model per task)", "all-task model"), key=c.audit_loss.__getitem__)
    kept = c.audit_difference[best].mean < -c.audit_difference[best].se
    assert c.better_than_alternatives == kept and c.best_alternative == best
    expected = "selected" if kept else {"STL (one model per task)": "stl", "all-task model": "all_tasks"}[best]
    assert c.recommendation == expected and c.recommendation in report.totals
    assert f"Decided on {c.rows} audit rows no choice used" in c.verdict and c.verdict.startswith(c.basis[:-1])
    assert GroupingReport.from_dict(report.to_dict()).comparison == c
    text = json.dumps(report.to_dict()["comparison"])  # read back from report.json and written again: the same bytes
    assert json.dumps(GroupingReport.from_dict(json.loads(json.dumps(report.to_dict()))).comparison.to_dict()) == text
    before = report.to_dict()  # a report.json written before issue 25 reads back with a validation verdict
    for key in ("recommendation", "decided_on", "rows", "basis", "audit_loss", "audit_difference"):
        before["comparison"].pop(key)
    assert GroupingReport.from_dict(before).comparison.decided_on == "validation"
    plain = run_grouping(per_task, GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=1), CFG, 0,
                         RunStore(tmp_path / "t.sqlite")).report.comparison
    assert plain.decided_on == "validation" and plain.audit_loss == {}
    assert plain.basis.startswith(f"Decided on the {plain.rows} validation rows that also chose the groups")
    with pytest.raises(ValueError, match="--audit"):
        GroupingOptions(audit=1.5).check(4)


def test_group_command_audit_option(tmp_path, three_task_csv):
    """``negtransfer group --audit``: report.json, report.md and the console name the recommendation and its rows;
    a bad fraction is a one-line error."""
    from typer.testing import CliRunner

    from negtransfer.cli import app

    three_task_csv(tmp_path / "data.csv", 400)
    common = ["group", "--data", str(tmp_path / "data.csv"), "--tasks", "one,two,three", "--features", "a,b,c",
              "--budget", "2", "--train-groups", "2", "--epochs", "4", "--repeats", "2", "--rounds", "1"]
    runner = CliRunner()
    res = runner.invoke(app, [*common, "--audit", "0.25", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    comparison = json.loads((tmp_path / "out" / "report.json").read_text())["comparison"]
    assert comparison["decided_on"] == "audit" and comparison["rows"] == round(0.25 * 0.8 * 400)
    assert "Recommended" in res.output and f"Decided on {comparison['rows']} audit rows" in res.output
    assert "**Recommended**" in (tmp_path / "out" / "report.md").read_text()
    words = {"better": "better beyond noise", "within noise": "within noise",
             "worse": "worse beyond noise"}[comparison["noise_verdict"]]
    line = f"are {words} against the {comparison['best_alternative']}"
    assert f"**Audit verdict**: the chosen groups {line}" in (tmp_path / "out" / "report.md").read_text()
    assert "Audit verdict" in res.output and line in " ".join(res.output.split())
    bad = runner.invoke(app, [*common, "--audit", "1.5", "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "--audit" in bad.output


def test_per_row_losses_are_recorded_for_audited_runs_only_and_stored(per_task):
    """Audited runs record every labelled audit and test row's loss (float32; their means are the audit and test
    losses); runs without audit rows record none and store exactly what they stored before."""
    audited = per_task.with_audit(0.2)
    groups = [(0,), (0, 1, 2, 3)]
    results = train_group_models(audited, groups, CFG, 0)
    for r in results:
        for attr, code, means in (("audit_row_loss", AUDIT, r.audit_loss), ("test_row_loss", TEST, r.test_loss)):
            rows = getattr(r, attr)
            assert set(rows) == set(r.group)
            for t in r.group:
                labelled = int(((audited.split == code) & ~np.isnan(audited.Y[:, t])).sum())
                assert rows[t].dtype == np.float32 and rows[t].shape == (labelled,)
                assert float(rows[t].mean()) == pytest.approx(means[t], rel=1e-5)
        back = _decode(_encode(r))
        for t in r.group:
            assert np.array_equal(back.audit_row_loss[t], r.audit_row_loss[t])
            assert np.array_equal(back.test_row_loss[t], r.test_row_loss[t])
    plain = train_group_models(per_task, groups[:1], CFG, 0)[0]
    assert plain.audit_row_loss == {} == plain.test_row_loss
    encoded = json.loads(_encode(plain))
    assert "audit_row_loss" not in encoded and "test_row_loss" not in encoded
    assert RepeatedResult((0,), [plain]).row_values("audit_row_loss", 0) is None


def test_the_audit_verdict_counts_the_rows_noise_and_keeps_the_old_se(per_task, tmp_path):
    """report.json: per alternative the s.e. over rows and runs (the verdict's), the old over-runs s.e., and the
    three-way verdict; the test rows' paired differences beside them."""
    from negtransfer.gains.paired_rows import noise_verdict
    from negtransfer.jobs.grouping import AUDIT_MARGIN_SE

    options = GroupingOptions(budget=2, n_train_groups=3, repeats=3, rounds=1, audit=0.25)
    c = run_grouping(per_task, options, CFG, 0, RunStore(tmp_path / "s.sqlite")).report.to_dict()["comparison"]
    for differences in (c["audit_difference"], c["test_difference"]):
        assert set(differences) == {"STL (one model per task)", "all-task model"}
        for d in differences.values():
            assert d["se"] >= d["se_runs"] and np.isfinite(d["se_rows"])
            assert d["verdict"] == noise_verdict(d["mean"], d["se"], AUDIT_MARGIN_SE)
    assert c["noise_verdict"] == c["audit_difference"][c["best_alternative"]]["verdict"]
    assert c["better_than_alternatives"] == (c["noise_verdict"] == "better")
    words = {"better": "better beyond noise than", "within noise": "within noise of",
             "worse": "worse beyond noise than"}[c["noise_verdict"]]
    assert f"Verdict: the chosen groups are {words} the {c['best_alternative']}" in c["verdict"]
    plain = run_grouping(per_task, GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=1), CFG, 0,
                         RunStore(tmp_path / "t.sqlite")).report.to_dict()["comparison"]
    assert "noise_verdict" not in plain and "test_difference" not in plain  # unaudited: the keys of before


def test_results_stored_without_per_row_losses_fall_back_to_the_over_runs_se(per_task, tmp_path, monkeypatch):
    monkeypatch.setattr(RepeatedResult, "row_values", lambda self, attr, task: None)
    options = GroupingOptions(budget=2, n_train_groups=3, repeats=3, rounds=1, audit=0.25)
    c = run_grouping(per_task, options, CFG, 0, RunStore(tmp_path / "s.sqlite")).report.comparison
    for d in c.audit_difference.values():
        assert d.se == d.se_runs and np.isnan(d.se_rows)
    assert "the audit rows' sampling noise" not in c.verdict and "(the runs' noise only)" in c.verdict
