"""Refit after the decision (``--refit``): per-model epoch budgets in the stacked trainer, fixed-budget runs of
several lengths in one stack, and the grouping job's refit block."""

from __future__ import annotations

import json

import numpy as np
import pytest

from negtransfer.data.dataset import AUDIT, TEST, TRAIN, VALIDATION
from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.jobs.grouping import GroupingOptions, refit_dataset, run_grouping
from negtransfer.jobs.grouping_report import GroupingReport
from negtransfer.report.markdown import refit_line
from negtransfer.runs.executors import InProcessExecutor
from negtransfer.runs.runner import ensure
from negtransfer.runs.specs import GROUP, RunSpec
from negtransfer.runs.store import MEMORY, RunStore
from negtransfer.train import batched
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig

CFG = TrainConfig(max_epochs=30, patience=2)


@pytest.fixture(scope="module")
def per_task():
    return make_synthetic_tasks(n_tasks=4, n_clusters=2, n_samples=100, task_kind="binary", layout="per-task-rows",
                                seed=5)


@pytest.mark.parametrize("masked", [False, True])
def test_per_model_epoch_budgets_give_the_numbers_of_models_trained_alone(per_task, monkeypatch, masked):
    """A model with budget e in a stack of other budgets gets the numbers of training alone for e epochs (dropped
    from the stack on the CPU, or kept masked as on a GPU)."""
    monkeypatch.setattr(batched, "MASK_STOPPED_MODELS", masked)
    fixed = TrainConfig(max_epochs=7, early_stopping=False)
    groups, repeats, budgets = [(0,), (1,), (0, 1, 2, 3), (0, 1), (0,)], [0, 1, 0, 1, 1], [3, 7, 5, 1, 2]
    stacked = train_group_models(per_task, groups, fixed, 3, repeats=repeats, epochs=budgets)
    for g, r, e, res in zip(groups, repeats, budgets, stacked, strict=True):
        alone = train_group_models(per_task, [g], TrainConfig(max_epochs=e, early_stopping=False), 3, repeats=[r])[0]
        assert res.epochs == res.best_epoch == e
        assert res.test_loss == alone.test_loss and res.val_loss == alone.val_loss
    assert len({tuple(res.test_loss.values()) for res in stacked[:1] + stacked[4:]}) == 2  # budgets matter


def test_epoch_budgets_are_checked(per_task):
    fixed = TrainConfig(max_epochs=5, early_stopping=False)
    with pytest.raises(ValueError, match="one per"):
        train_group_models(per_task, [(0,), (1,)], fixed, 0, epochs=[2])
    with pytest.raises(ValueError, match="early_stopping=False"):
        train_group_models(per_task, [(0,)], TrainConfig(max_epochs=5), 0, epochs=[2])
    with pytest.raises(ValueError, match="1..max_epochs"):
        train_group_models(per_task, [(0,)], fixed, 0, epochs=[6])


class CountingExecutor(InProcessExecutor):
    """The in-process executor, counting the stacks it trains."""

    def __init__(self):
        super().__init__()
        self.stacks: list[list] = []

    def run(self, dataset, chunks, config, seed, on_chunk) -> None:
        self.stacks += [list(c) for c in chunks]
        super().run(dataset, chunks, config, seed, on_chunk)


def test_fixed_budgets_of_several_lengths_share_a_stack_and_keep_their_own_keys(per_task):
    configs = {e: TrainConfig(max_epochs=e, early_stopping=False) for e in (2, 4, 6)}
    specs = [RunSpec(GROUP, (0,), 0, configs[2]), RunSpec(GROUP, (1,), 0, configs[4]),
             RunSpec(GROUP, (0, 1), 1, configs[6]), RunSpec(GROUP, (0,), 1, configs[4])]
    store, executor = RunStore(MEMORY), CountingExecutor()
    outputs = ensure(per_task, specs, 0, store, executor=executor, chunk_size=8)
    assert len(executor.stacks) == 1 and sorted(run[2] for run in executor.stacks[0]) == [2, 4, 4, 6]
    for spec, out in zip(specs, outputs, strict=True):
        alone = ensure(per_task, [spec], 0, RunStore(MEMORY))[0].result
        assert out.result.epochs == spec.config.max_epochs and out.result.test_loss == alone.test_loss
    again = CountingExecutor()
    reread = ensure(per_task, specs, 0, store, executor=again)
    assert again.stacks == [] and [o.result.test_loss for o in reread] == [o.result.test_loss for o in outputs]
    plain = CountingExecutor()  # one configuration: the stack's runs are (group, repeat) pairs, as always
    ensure(per_task, [RunSpec(GROUP, (0,), 0, configs[2]), RunSpec(GROUP, (1,), 0, configs[2])], 0,
           RunStore(MEMORY), executor=plain)
    assert [len(run) for run in plain.stacks[0]] == [2, 2]


def test_refit_dataset_trains_on_every_non_test_row(per_task):
    audited = per_task.with_audit(0.25)
    refit = refit_dataset(audited)
    assert np.array_equal(refit.split == TEST, per_task.split == TEST)
    assert set(np.unique(refit.split)) == {TRAIN, TEST}
    assert refit.fingerprint() == refit_dataset(per_task).fingerprint()  # the same rows, audit or not


def test_the_job_refits_the_decision_on_every_non_test_row(per_task, tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    options = GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=1, audit=0.25, refit=True,
                              refit_epochs="passes")
    result = run_grouping(per_task, options, CFG, 0, store)
    report = result.report
    refit = report.refit
    assert refit is not None and refit.recommendation == report.comparison.recommendation
    assert set(refit.options) == {"selected", "stl", "all_tasks"}
    audited = per_task.with_audit(0.25)
    assert refit.rows == {"training": int((per_task.split != TEST).sum()),
                          "from_train": int((audited.split == TRAIN).sum()),
                          "from_validation": int((audited.split == VALIDATION).sum()),
                          "from_audit": int((audited.split == AUDIT).sum())}
    names = report.tasks
    for t, name in enumerate(names):  # each STL refit trains its early-stopped run's stopping epoch, per repeat
        assert refit.options["stl"].epochs[name] == tuple(run.best_epoch for run in result.results[(t,)].runs)
    everything = "+".join(names)
    assert refit.options["all_tasks"].epochs[everything] == tuple(
        run.best_epoch for run in result.results[tuple(range(len(names)))].runs)
    stl = refit.options["stl"]
    assert stl.total == pytest.approx(sum(stl.test_loss.values()))
    for key, d in refit.difference.items():
        assert d["mean"] == pytest.approx(refit.recommended.total - refit.options[key].total)
    assert refit.recommendation not in refit.difference
    data = report.to_dict()
    assert data["refit"]["recommended_total"] == refit.recommended.total
    assert GroupingReport.from_dict(json.loads(json.dumps(data))).refit == refit
    assert "refit on every non-test row" in (refit_line(report) or "")
    # a repeated job trains nothing; without --refit the report has no refit block and the same numbers
    again = run_grouping(per_task, options, CFG, 0, store).report
    assert again.runs.trained == 0 and again.refit == refit
    plain = run_grouping(per_task, GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=1, audit=0.25), CFG,
                         0, store).report
    assert plain.refit is None and "refit" not in plain.to_dict() and refit_line(plain) is None
    assert plain.totals == report.totals and plain.comparison == report.comparison


def test_refit_without_audit_uses_train_and_validation_rows(per_task, tmp_path):
    options = GroupingOptions(budget=2, n_train_groups=3, repeats=1, rounds=1, refit=True)
    refit = run_grouping(per_task, options, CFG, 1, RunStore(tmp_path / "s.sqlite")).report.refit
    assert refit is not None and refit.rows["from_audit"] == 0
    assert refit.rows["training"] == refit.rows["from_train"] + refit.rows["from_validation"]
    assert np.isnan(refit.recommended.se)  # one repeat: no standard error


def test_group_command_refit_option(tmp_path, three_task_csv):
    """``negtransfer group --refit``: report.json's ``refit`` block, and the refit line in report.md and the
    console."""
    from typer.testing import CliRunner

    from negtransfer.cli import app

    three_task_csv(tmp_path / "data.csv", 300)
    res = CliRunner().invoke(app, ["group", "--data", str(tmp_path / "data.csv"), "--tasks", "one,two,three",
                                   "--features", "a,b,c", "--budget", "2", "--train-groups", "2", "--epochs", "4",
                                   "--repeats", "2", "--rounds", "1", "--refit", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    refit = json.loads((tmp_path / "out" / "report.json").read_text())["refit"]
    assert refit["rows"]["training"] == refit["rows"]["from_train"] + refit["rows"]["from_validation"] > 0
    assert set(refit["options"]) == {"selected", "stl", "all_tasks"}
    assert refit["recommended_total"] == refit["options"][refit["recommendation"]]["total"]
    assert "refit on every non-test row" in " ".join(res.output.split())
    assert "refit on every non-test row" in (tmp_path / "out" / "report.md").read_text()


def test_refit_epochs_steps_scales_the_stopping_epoch_by_the_row_ratio(per_task, tmp_path):
    options = GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=1, audit=0.25, refit=True,
                              refit_epochs="steps")
    result = run_grouping(per_task, options, CFG, 0, RunStore(tmp_path / "s.sqlite"))
    refit, audited = result.report.refit, per_task.with_audit(0.25)
    assert refit is not None and "optimiser steps" in refit.epochs_rule
    for t, name in enumerate(result.report.tasks):
        mine = per_task.row_task == t
        ratio = (mine & (audited.split == TRAIN)).sum() / (mine & (per_task.split != TEST)).sum()
        expected = tuple(max(1, round(ratio * run.best_epoch)) for run in result.results[(t,)].runs)
        assert refit.options["stl"].epochs[name] == expected
    with pytest.raises(ValueError, match="--refit-epochs"):
        GroupingOptions(refit_epochs="rows").check(4)


def test_refit_epochs_steps_reads_each_folds_row_ratio(per_task, tmp_path):
    """With --folds, each fold's stopping epoch is scaled by that fold's own training rows over the refit's (folds
    need not train equally many rows), then averaged over the folds."""
    from negtransfer.data.folds import fold_datasets
    from negtransfer.jobs.grouping import refit_epochs

    options = GroupingOptions(budget=2, n_train_groups=3, repeats=2, rounds=1, folds=3, refit=True,
                              refit_epochs="steps")
    result = run_grouping(per_task, options, CFG, 0, RunStore(tmp_path / "s.sqlite"))
    refit, folds = result.report.refit, fold_datasets(per_task, 3)
    trained = [[int(((f.row_task == t) & (f.split == TRAIN)).sum()) for f in folds] for t in range(per_task.n_tasks)]
    assert any(len(set(counts)) > 1 for counts in trained)  # the folds do differ here: fold 0 alone is not exact
    for t, name in enumerate(result.report.tasks):
        every = int(((per_task.row_task == t) & (per_task.split != TEST)).sum())
        runs = result.results[(t,)].runs
        expected = tuple(max(1, round(np.mean([trained[t][f] / every * runs[r * 3 + f].best_epoch for f in range(3)])))
                         for r in range(2))
        assert refit.options["stl"].epochs[name] == expected
    with pytest.raises(ValueError, match="one per fold"):
        refit_epochs(result.results[(0,)], 2, 3, [1.0, 1.0])
