"""A newcomer's pass over the command line with their own files: each case a console line or check that read
wrongly or failed late, run through the CLI."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from negtransfer.cli import app

runner = CliRunner()


def _table(path: Path, n: int = 60, seed: int = 0) -> Path:
    """A multi-label table: features x1..x3, binary tasks a and b, regression task c."""
    rng = random.Random(seed)
    lines = ["x1,x2,x3,a,b,c"]
    for _ in range(n):
        x = [rng.gauss(0, 1) for _ in range(3)]
        lines.append(",".join(f"{v:.3f}" for v in x) + f",{int(x[0] > 0)},{int(x[1] > 0)},{x[2] * 2:.3f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    return _table(tmp_path_factory.mktemp("newcomer") / "data.csv")


def test_compare_summary_of_one_run_prints_no_nan_standard_error(capsys):
    """``compare --runs 1`` printed ``average auroc 0.6287 ± nan`` for every model."""
    from negtransfer.cli.compare import _echo_summary

    nan = float("nan")
    report = SimpleNamespace(runs=1, selection=None, baselines="ours", metrics=lambda: ["auroc"],
                             summary=lambda metric: {"stl": {"average": (0.6287, nan)},
                                                     "mtl": {"average": (0.5561, 0.0123)}})
    _echo_summary(report)
    stl, mtl = capsys.readouterr().out.splitlines()
    assert stl.endswith("stl: average auroc 0.6287 (no s.e.: one run; --runs 2 or more gives one)"), stl
    assert mtl.endswith("mtl: average auroc 0.5561 ± 0.0123"), mtl


def test_ctrl_c_during_training_says_where_the_runs_are_and_how_to_resume(tmp_path, capsys, monkeypatch):
    """Ctrl-C in ``group`` once ended the command without a word (exit code 130 only)."""
    from negtransfer.cli.job import Job
    from negtransfer.cli.options import RunOptions

    job = Job(RunOptions(out=tmp_path / "out", quiet=True), [])
    with pytest.raises(KeyboardInterrupt), job.training():
        raise KeyboardInterrupt
    err = capsys.readouterr().err
    store = str(tmp_path / "out" / "runs.sqlite")
    assert err.startswith("interrupted: the runs that finished are kept in the run store"), err
    assert store in err and "run the same command again to resume" in err and f"store-info {store}" in err, err



def test_a_dead_process_worker_is_one_error_line_for_the_command_line(tmp_path, capsys):
    """The pool's error is written for Python scripts (the __main__ guard, executor='local'); a command shows one
    error line naming its own options instead of a traceback (review finding)."""
    import typer

    from negtransfer.cli.job import Job
    from negtransfer.cli.options import RunOptions
    from negtransfer.runs.executors import WorkerPoolBroken

    job = Job(RunOptions(out=tmp_path / "out", quiet=True), [])
    with pytest.raises(typer.Exit) as exit_info, job.training():
        raise WorkerPoolBroken("a worker process of executor 'process' ended abruptly")
    err = capsys.readouterr().err
    assert exit_info.value.exit_code == 2 and err.startswith("error: a worker process of --executor process"), err
    assert "--executor local" in err and "__main__" not in err and str(tmp_path / "out" / "runs.sqlite") in err

def _error_line(res) -> str:
    """The one ``error:`` line of an exit-2 result (notes aside), with no traceback."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("note: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    return lines[0]


def test_sources_default_alpha_above_the_sources_names_the_option_and_a_value_that_works(table, tmp_path):
    """With 3 tasks (2 sources) the default --alpha 5 failed with '--alpha must be between 1 and the 2 sources':
    a newcomer who never gave --alpha was not told it has a default, nor what to give."""
    res = runner.invoke(app, ["sources", "--data", str(table), "--tasks", "a,b,c", "--target", "a",
                              "--out", str(tmp_path / "o")])
    line = _error_line(res)
    assert "--alpha (sources per sampled subset; default 5) must be between 1 and the 2 source(s)" in line, line
    assert "target 'a', got 5; e.g. --alpha 1" in line, line
    assert not (tmp_path / "o" / "runs.sqlite").exists()


@pytest.fixture(scope="module")
def sparse_task(tmp_path_factory) -> Path:
    """The table plus task 'r', labelled on its first 5 rows only: none of them falls in the test split."""
    path = _table(tmp_path_factory.mktemp("sparse") / "sparse.csv")
    lines = path.read_text().splitlines()
    lines = [lines[0] + ",r"] + [line + ("," + str(i % 2) if i < 5 else ",") for i, line in enumerate(lines[1:])]
    path.write_text("\n".join(lines) + "\n")
    from negtransfer.data.files import dataset_from_file

    assert "task 'r' has no labelled rows in the test split" in dataset_from_file(path, tasks=["a", "b", "r"]).info[
        "warnings"]
    return path


def test_group_refuses_a_task_without_test_labels_before_training(sparse_task, tmp_path):
    """It trained, then failed with a traceback ('affinity has 4 non-finite off-diagonal entries')."""
    res = runner.invoke(app, ["group", "--data", str(sparse_task), "--tasks", "a,b,r", "--epochs", "1",
                              "--repeats", "1", "--out", str(tmp_path / "o")])
    line = _error_line(res)
    assert line.startswith("error: task 'r' has no labelled rows in the test split ("), line
    assert "leave it out with --tasks" in line, line
    assert "note: sparse.csv: task 'r' has no labelled rows in the test split" in res.stderr.replace(
        str(sparse_task.parent) + "/", ""), res.stderr
    assert not (tmp_path / "o" / "runs.sqlite").exists()


def test_sources_refuses_a_target_without_test_labels(sparse_task, tmp_path):
    """It reported every test loss as 0.0000 and recommended a choice made on no rows."""
    res = runner.invoke(app, ["sources", "--data", str(sparse_task), "--tasks", "a,b,c,r", "--target", "r",
                              "--alpha", "2", "--out", str(tmp_path / "o")])
    line = _error_line(res)
    assert line.startswith("error: target 'r' has "), line
    assert "none in the test split;" in line and "choose another --target" in line, line


def test_gains_default_groups_with_three_tasks_trains_all_four_with_a_note(table, tmp_path):
    """Without --groups, 3 tasks failed: 'asked for 16 random groups but only 4 exist' (a request never made)."""
    res = runner.invoke(app, ["gains", "--data", str(table), "--tasks", "a,b,c", "--epochs", "1", "--repeats", "1",
                              "-q", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert ("note: --groups random:16 (the default) is more than the 4 groups of 2..3 of the 3 tasks; all 4 are "
            "trained (--groups all)") in res.stderr, res.stderr
    assert "4 groups" in res.stdout, res.stdout


def test_gains_explicit_random_groups_above_those_that_exist_is_still_an_error(table, tmp_path):
    res = runner.invoke(app, ["gains", "--data", str(table), "--tasks", "a,b,c", "--groups", "random:16",
                              "--out", str(tmp_path / "o")])
    assert "asked for 16 random groups but only 4 exist" in _error_line(res)


@pytest.mark.parametrize("command", ["gains", "group", "sources", "compare"])
def test_data_help_names_every_kind_of_input_it_reads(command):
    """--help said '.csv, .csv.gz or .parquet file' while --data also reads .npz files and folders (README)."""
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "400"}, terminal_width=400)
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.stdout.splitlines() if ln.lstrip("│ ").startswith("--data "))
    for kind in (".csv.gz", ".parquet", ".npz", "Task_Splits", "PhysioNet"):
        assert kind in line, (kind, line)


def test_sources_console_prints_no_nan_where_the_holdout_f1_is_not_defined(table, tmp_path):
    """With no harmful subset among the holdout the console printed 'F1 (minority class) nan' (report.md: n/a
    with the class balance)."""
    res = runner.invoke(app, ["sources", "--data", str(table), "--tasks", "a,b,c", "--target", "a", "--alpha", "1",
                              "--subsets", "2", "--holdout", "2", "--epochs", "1", "--repeats", "1", "--no-affinity",
                              "--exhaustive-pairs", "off", "-q", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "nan" not in res.stdout, res.stdout
    holdout = next(ln for ln in res.stdout.splitlines() if ln.startswith("holdout: "))
    assert holdout.startswith("holdout: F1 (minority class) "), holdout


def test_group_console_says_whose_gain_follows_each_reference(table, tmp_path):
    """'all-task 2.6518 (gain +1.0%)' read as the all-task model's gain over STL (report.md's table: +0.5%); it
    is the chosen groups' gain over the all-task model."""
    res = runner.invoke(app, ["group", "--data", str(table), "--tasks", "a,b,c", "--epochs", "1", "--repeats", "1",
                              "-q", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("total test loss"))
    assert " (chosen's gain " in line.split("| STL ")[1].split("|")[0], line
    assert " (chosen's gain " in line.split("| all-task ")[1], line
    assert "(gain " not in line, line


def test_compare_grouping_says_which_sign_of_its_changes_is_better(table, tmp_path):
    """'-0.61% vs STL' is a lower loss (better) here, while `group` prints gains, where negative is worse; neither
    the console nor report.md said which."""
    res = runner.invoke(app, ["compare-grouping", "--data", str(table), "--tasks", "a,b,c", "--methods", "etap",
                              "--budgets", "2", "--seeds", "0", "--epochs", "1", "--repeats", "1", "-q",
                              "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "relative change against STL's (negative = lower loss = better):" in res.stdout, res.stdout
    report = (tmp_path / "o" / "report.md").read_text()
    assert "negative is a lower loss, better than the reference" in report


def test_group_budget_one_says_it_can_only_be_the_all_task_model(table, tmp_path):
    """--budget 1 warned that the chosen grouping 'is NOT better than the all-task model', which it was."""
    res = runner.invoke(app, ["group", "--data", str(table), "--tasks", "a,b", "--budget", "1", "--epochs", "1",
                              "--repeats", "1", "-q", "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "note: --budget 1: the only single group that covers every task is the all-task group" in res.stderr
    assert "NOT better" not in res.output, res.output
    assert "The chosen grouping is the all-task model itself" in (tmp_path / "o" / "report.md").read_text()


def test_store_info_imports_no_pytorch(tmp_path):
    """It imported PyTorch through the run store (2-6 s on the 2-core machine) to count rows in a SQLite file."""
    from negtransfer.runs.store import RunStore
    from negtransfer.train.results import ModelResult

    store = tmp_path / "runs.sqlite"
    RunStore(store).put_many("fp", 0, "cfg", [ModelResult(group=(0, 1), val_loss={0: 1.0, 1: 1.0},
                                                          test_loss={0: 1.0, 1: 1.0}, test_metric={0: 0.5, 1: 0.5},
                                                          best_epoch=1, epochs=1, seconds=0.0)])
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "negtransfer", "store-info", str(store)],
                         capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in out.stderr.splitlines() if line.startswith("import time:")}
    assert "runs.sqlite: 1 model run" in out.stdout
    assert "torch" not in imported


# ------------------------------------------------------------------ a task without validation labels (from h-cli)
FAST = ["--epochs", "2", "--patience", "1", "--repeats", "1"]


def _arrays(path: Path, *, unlabelled_split: int | None = None) -> Path:
    """Three binary tasks over 150 rows with a fixed split (0 train, 1 validation, 2 test); task 'c' has no label
    in ``unlabelled_split``."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4)).astype(np.float32)
    Y = np.stack([X[:, 0] > 0, X[:, 1] > 0, X[:, 0] + X[:, 2] > 0], 1).astype(float)
    split = np.array([0, 0, 0, 1, 2] * 30)
    if unlabelled_split is not None:
        Y[split == unlabelled_split, 2] = np.nan
    np.savez(path, X=X, Y=Y, tasks=np.array(["a", "b", "c"]), split=split)
    return path


@pytest.mark.parametrize("command", [["group", "--budget", "2", "--train-groups", "2"],
                                     ["compare-grouping", "--methods", "etap", "--budgets", "2", "--seeds", "0"]])
def test_grouping_a_task_without_validation_labels_is_one_error_before_training(tmp_path, command):
    """It trained every model, then failed in the gain predictor with a traceback (NaN gains of task 'c');
    compare-grouping had no check at all."""
    data = _arrays(tmp_path / "noval.npz", unlabelled_split=1)
    res = runner.invoke(app, [*command, "--data", str(data), "--out", str(tmp_path / "o"), "-q", *FAST])
    line = _error_line(res)
    assert line.startswith("error: task 'c' has no labelled rows in the validation split ("), line
    assert "120 labelled row(s), 90 train, 0 validation, 30 test" in line and "--tasks" in line, line
    assert "--folds 3" in line, line
    assert "noval.npz: task 'c' has no labelled rows in the validation split: its losses" in res.stderr, res.stderr
    assert not (tmp_path / "o").exists()  # nothing created, nothing trained


def test_grouping_a_task_without_validation_labels_runs_with_folds(tmp_path):
    """The way out the error names: each fold validates on its own part of the training rows."""
    data = _arrays(tmp_path / "noval.npz", unlabelled_split=1)
    res = runner.invoke(app, ["group", "--budget", "2", "--train-groups", "2", "--folds", "2", "--data", str(data),
                              "--out", str(tmp_path / "o"), "-q", *FAST])
    assert res.exit_code == 0, res.output


def test_a_task_without_test_labels_is_a_note_in_gains_and_its_json(tmp_path):
    """The dataset recorded the gap in info["warnings"] only; gains.csv showed its test loss as 0.0 without a word.
    The note says what that means and is kept in gains.json."""
    import json

    data = _arrays(tmp_path / "notest.npz", unlabelled_split=2)
    res = runner.invoke(app, ["gains", "--groups", "all", "--data", str(data), "--out", str(tmp_path / "o"), "-q",
                              *FAST])
    assert res.exit_code == 0, res.output
    notes = [ln for ln in res.stderr.splitlines() if "no labelled rows in the test split" in ln]
    assert len(notes) == 1 and notes[0].startswith(f"note: {data}: task 'c' "), res.stderr
    assert "not measured" in notes[0] and "--tasks" in notes[0], notes[0]
    recorded = json.loads((tmp_path / "o" / "gains.json").read_text())["notes"]
    assert any("no labelled rows in the test split" in n for n in recorded), recorded


def test_sources_target_without_validation_labels_is_one_error_before_training(tmp_path):
    """f(STL) was 0.0 on no rows, and the job failed after training with a traceback from the relative scale."""
    data = _arrays(tmp_path / "noval.npz", unlabelled_split=1)
    res = runner.invoke(app, ["sources", "--data", str(data), "--target", "c", "--alpha", "1",
                              "--out", str(tmp_path / "o"), "-q", *FAST])
    line = _error_line(res)
    assert line.startswith("error: target 'c' has 90 labelled training, 0 validation and 30 test row(s), none in "
                           "the half of the validation rows that stops the models or the half that measures f(S);"), line
    assert "--target" in line, line
    assert not (tmp_path / "o").exists()


def test_group_warning_comes_before_the_test_figures_it_points_to(table, tmp_path, capsys):
    """'prefer the STL models unless the test figures below say otherwise' was printed below those figures."""
    from dataclasses import replace

    from negtransfer.api import group
    from negtransfer.cli.group import print_group_summary

    report = group(table, tasks=["a", "b", "c"], budget=2, max_epochs=1, repeats=1, store=tmp_path / "runs.sqlite")
    not_better = replace(report, comparison=replace(
        report.comparison, better_than_alternatives=False, decided_on="validation",
        verdict="On validation data the chosen grouping (summed loss 2.0000) is NOT better than the STL models "
                "(1.9000); prefer the STL models unless the test figures below say otherwise."))
    capsys.readouterr()
    print_group_summary(not_better, tmp_path / "report.json", tmp_path / "report.md")
    lines = capsys.readouterr().out.splitlines()
    warning = next(i for i, ln in enumerate(lines) if ln.startswith("warning: ") and "figures below" in ln)
    totals = next(i for i, ln in enumerate(lines) if ln.startswith("total test loss"))
    assert warning < totals, lines


@pytest.mark.parametrize("extra, noted", [([], False), (["--train-groups", "30"], True),
                                          (["--train-groups", "30", "--exhaustive"], False)])
def test_train_groups_note_only_for_a_value_given(tmp_path, extra, noted):
    """'--train-groups 20 is more than the 10 groups ...' was printed for the default on every run of 4 tasks, and
    beside --exhaustive, which trains every group anyway."""
    data = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4)).astype(np.float32)
    np.savez(data, X=X, Y=(X > 0).astype(float), tasks=np.array(["a", "b", "c", "d"]))
    res = runner.invoke(app, ["group", "--data", str(data), "--budget", "2", "--out", str(tmp_path / "o"), "-q",
                              *FAST, *extra])
    assert res.exit_code == 0, res.output
    assert ("--train-groups 30 is more than the 10 groups" in res.stderr) is noted, res.stderr
    assert "--train-groups 20" not in res.stderr, res.stderr


def _per_task_rows(path: Path) -> Path:
    """Four stores (tasks) of 60 rows each, a binary label per row."""
    rng = np.random.default_rng(1)
    lines = ["store,x1,x2,bought"]
    for store in ("north", "south", "east", "west"):
        for _ in range(60):
            x1, x2 = rng.normal(size=2)
            lines.append(f"{store},{x1:.4f},{x2:.4f},{int(x1 + 0.3 * rng.normal() > 0)}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_misspelt_target_gets_a_suggestion(tmp_path):
    """--tasks suggested the close name; --target listed the tasks only."""
    data = _per_task_rows(tmp_path / "stores.csv")
    res = runner.invoke(app, ["sources", "--data", str(data), "--task-column", "store", "--label", "bought",
                              "--target", "nort", "--alpha", "1", "--out", str(tmp_path / "o"), "-q", *FAST])
    line = _error_line(res)
    assert "unknown task name(s) ['nort'] (did you mean 'north'?); this dataset's tasks are" in line, line


def test_an_identifier_label_names_the_command_line_override(tmp_path):
    """The error said task_kinds={'id': 'multiclass'} (Python) only, on the command line too."""
    rows = ["x,ok,id"] + [f"{i / 10:.2f},{i % 2},p{i}" for i in range(150)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    res = runner.invoke(app, ["gains", "--data", str(tmp_path / "t.csv"), "--tasks", "ok,id", "--features", "x",
                              "--out", str(tmp_path / "o"), "-q", *FAST])
    line = _error_line(res)
    assert "task_kinds={'id': 'multiclass'} (--task-kinds id=multiclass) if you really mean 150 classes" in line, line


def test_compare_grouping_checks_the_split_of_every_seed_before_training(tmp_path, monkeypatch):
    """Each seed draws its own split: with only the first seed's checked, a later seed's split without validation
    labels of a task failed inside the job with a traceback (run_grouping's check)."""
    from negtransfer.cli.options import DataOptions
    from negtransfer.data.files import dataset_from_file

    good, bad = _arrays(tmp_path / "good.npz"), _arrays(tmp_path / "bad.npz", unlabelled_split=1)
    monkeypatch.setattr(DataOptions, "load", lambda self, seed, *args, **kwargs: dataset_from_file(
        good if seed == 0 else bad, seed=seed))
    res = runner.invoke(app, ["compare-grouping", "--methods", "etap", "--budgets", "2", "--seeds", "0,1",
                              "--data", str(good), "--out", str(tmp_path / "o"), "-q", *FAST])
    assert _error_line(res).startswith("error: task 'c' has no labelled rows in the validation split ("), res.output
    assert not (tmp_path / "o").exists()
