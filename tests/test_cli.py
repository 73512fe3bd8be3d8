"""The command line as a user meets it: files it has never seen, bad input, reports."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from negtransfer.cli import app

runner = CliRunner()


@pytest.fixture
def user_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    frame = pd.DataFrame(X, columns=["age", "dose", "bmi", "noise"])
    frame["site"] = "a"  # a non-numeric column the user leaves out with --features
    frame["sick"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame["worse"] = (X[:, 0] - X[:, 2] + 0.3 * rng.normal(size=300) > 0).astype(int)
    frame["stay"] = X[:, 1] * 2 + rng.normal(size=300)
    frame.loc[::7, "worse"] = np.nan  # missing labels
    path = tmp_path / "patients.csv"
    frame.to_csv(path, index=False)
    return path


def test_gains_on_a_new_csv(user_csv, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["gains", "--data", str(user_csv), "--tasks", "sick,worse,stay",
                              "--features", "age,dose,bmi,noise", "--groups", "all", "--epochs", "10",
                              "--repeats", "1", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    g = pd.read_csv(out / "gains.csv")
    assert set(g.columns) >= {"group", "task", "test_loss", "stl_test_loss", "gain", "gain_se", "repeats", "metric",
                              "test_metric"}
    assert set(g["group"]) == {"sick+worse", "sick+stay", "worse+stay", "sick+worse+stay"}
    np.testing.assert_allclose(g["gain"], (g["stl_test_loss"] - g["test_loss"]) / g["stl_test_loss"])
    assert g["gain_se"].isna().all() and (g["repeats"] == 1).all()  # one run: no standard error
    # three repeats (the default): the gain is the mean of the paired per-repeat gains, with its s.e.;
    # repeat 0 is the run above (reused from the store)
    res = runner.invoke(app, ["gains", "--data", str(user_csv), "--tasks", "sick,worse,stay",
                              "--features", "age,dose,bmi,noise", "--groups", "all", "--epochs", "10",
                              "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    g3 = pd.read_csv(out / "gains.csv")
    assert (g3["repeats"] == 3).all() and (g3["gain_se"] > 0).all()
    assert not np.allclose(g3["gain"], g["gain"])
    assert dict(zip(g["task"], g["metric"], strict=True))["stay"] == "mse"
    payload = json.loads((out / "gains.json").read_text())
    assert len(payload["gains"]) == len(g) and payload["tasks"] == ["sick", "worse", "stay"]


def test_gradient_aggregation_option_end_to_end(user_csv, tmp_path):
    common = ["--data", str(user_csv), "--tasks", "sick,worse,stay", "--features", "age,dose,bmi,noise",
              "--epochs", "5", "--repeats", "1", "-q"]
    tables = {}
    for name in ("sum", "pcgrad"):
        out = tmp_path / name
        res = runner.invoke(app, ["gains", *common, "--groups", "all", "--gradient-aggregation", name,
                                  "--out", str(out), "--store", str(tmp_path / "runs.sqlite")])
        assert res.exit_code == 0, res.output
        tables[name] = pd.read_csv(out / "gains.csv")
        assert json.loads((out / "gains.json").read_text())["config"]["gradient_aggregation"] == name
    # the group models differ; the STL references (one task: nothing to aggregate) are close
    assert not np.allclose(tables["sum"]["test_loss"], tables["pcgrad"]["test_loss"])
    np.testing.assert_allclose(tables["sum"]["stl_test_loss"], tables["pcgrad"]["stl_test_loss"], rtol=1e-4)
    res = runner.invoke(app, ["gains", *common, "--gradient-aggregation", "cagrad", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "gradient_aggregation must be one of sum, pcgrad, mgda" in res.output
    res = runner.invoke(app, ["group", *common, "--gradient-aggregation", "pcgrad", "--out", str(tmp_path / "g")])
    assert res.exit_code == 2 and "--method etap measures affinity" in res.output and "--surgery pcgrad" in res.output


def test_bad_input_gets_a_clear_error(user_csv, tmp_path):
    res = runner.invoke(app, ["gains", "--data", str(user_csv), "--tasks", "sick,nope", "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert "nope" in res.output
    res = runner.invoke(app, ["gains", "--data", str(user_csv), "--tasks", "sick,worse", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "site" in res.output  # non-numeric feature named
    res = runner.invoke(app, ["gains", "--dataset", "yeast", "--groups", "random:x", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "random:N" in res.output


def test_group_command_writes_reports(user_csv, tmp_path):
    out = tmp_path / "grp"
    res = runner.invoke(app, ["group", "--data", str(user_csv), "--tasks", "sick,worse,stay",
                              "--features", "age,dose,bmi,noise", "--budget", "2", "--train-groups", "2",
                              "--exhaustive", "--epochs", "10", "--repeats", "1", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["tasks"] == ["sick", "worse", "stay"]
    assert len(rep["selected_groups"]) <= 2
    assert "optimal" in rep and (out / "report.md").exists()
    assert "Chosen groups" in (out / "report.md").read_text()


def test_datasets_lists_licenses():
    res = runner.invoke(app, ["datasets"])
    assert res.exit_code == 0 and "yeast (default)" in res.output
    licenses = res.output.split("Licenses")[1]
    for name in ("tv16", "heart-hospitals", "pbcseq"):  # every family of datasets, with its license line
        assert f"  {name}: " in licenses


def test_import_is_light():
    code = "import sys, negtransfer, negtransfer.cli; print(any(m in sys.modules for m in ('torch', 'pandas', 'sklearn', 'matplotlib')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------ robustness (issue 16)
def _one_error_line(res, *fragments):
    """Exit code 2, exactly one ``error:`` line (notes aside), no traceback, every fragment in it."""
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith(("note: ", "warning: "))]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def _gains(user_csv, out, *more):
    return runner.invoke(app, ["gains", "--data", str(user_csv), "--tasks", "sick,worse", "--features",
                               "age,dose,bmi,noise", "--groups", "all", "--epochs", "3", "--out", str(out), "-q",
                               *more])


def test_bad_option_values_are_one_line_errors(user_csv, tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--chunk-size", "0"), "--chunk-size")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--executor", "process", "--workers", "-1"), "--workers")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--epochs", "abc"), "--epochs")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--lr", "inf"), "--lr")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--optimizer", "sgdd"), "--optimizer", "sgd")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--groups", str(tmp_path / "folder")), "is a folder")
    _one_error_line(_gains(user_csv, tmp_path / "file"), "--out", "is a file")
    _one_error_line(_gains(user_csv, tmp_path / "file" / "sub"), "is a file, not a folder")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--store", str(tmp_path / "folder")), "run store", "folder")
    res = runner.invoke(app, ["gains", "--dataset", "yeast", "--impute", "mean", "--out", str(tmp_path / "o")])
    _one_error_line(res, "--impute", "--data FILE")
    _one_error_line(runner.invoke(app, ["gains", "--no-such-option"]), "--no-such-option", "--help")
    assert not (tmp_path / "o" / "runs.sqlite").exists()  # nothing was trained or stored


def test_executor_and_device_options_are_checked_before_training(user_csv, tmp_path, monkeypatch):
    import torch

    _one_error_line(_gains(user_csv, tmp_path / "o", "--ray-address", "auto"), "--ray-address",
                    "--executor ray only")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--executor", "dask"), "--executor", "ray")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--device", "tpu"), "--device", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _one_error_line(_gains(user_csv, tmp_path / "o", "--device", "cuda"), "--device cuda", "--device cpu")
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    _one_error_line(_gains(user_csv, tmp_path / "o", "--executor", "ray"), "needs Ray", "negtransfer[ray]")
    assert not (tmp_path / "o" / "runs.sqlite").exists()


def test_damaged_store_is_refused_before_training(user_csv, tmp_path):
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database\x00\xff" * 100)  # binary without SQLite's header: a store damaged there
    line = _one_error_line(_gains(user_csv, tmp_path / "o", "--store", str(junk)), "junk.sqlite", "mv ",
                           "recover-store")
    assert "not a SQLite database" in line
    assert junk.read_bytes().startswith(b"not a database")  # left as it was
    assert not (tmp_path / "o" / "gains.csv").exists()


def test_data_file_as_store_is_not_called_damaged(user_csv, tmp_path):
    """``--store data.csv`` (issue 28): not a run store, and no advice to move the user's data file aside."""
    before = user_csv.read_bytes()
    line = _one_error_line(_gains(user_csv, tmp_path / "o", "--store", str(user_csv)), "not a run store", "--data")
    assert "mv " not in line and "damaged" not in line
    assert user_csv.read_bytes() == before
    text = tmp_path / "notes"  # any text file, whatever its name
    text.write_text("my notes\n")
    _one_error_line(_gains(user_csv, tmp_path / "o", "--store", str(text)), "a text file", "not a run store")


@pytest.mark.parametrize("content", [b"", b"a,b\n1,2\n"])
def test_recover_store_refuses_a_file_that_is_no_store(tmp_path, content):
    """``recover-store`` on a CSV or a 0-byte file says so instead of "recovered 0 runs" (issue 28)."""
    source = tmp_path / "data.csv"
    source.write_bytes(content)
    res = runner.invoke(app, ["recover-store", str(source), str(tmp_path / "new.sqlite")])
    _one_error_line(res, "not a run store", "nothing to recover")
    assert not (tmp_path / "new.sqlite").exists()


def test_recover_store_refuses_another_programs_database(tmp_path):
    import sqlite3

    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE people (name TEXT)")
    con.commit()
    con.close()
    res = runner.invoke(app, ["recover-store", str(other), str(tmp_path / "new.sqlite")])
    _one_error_line(res, "not a run store", "people")


def test_bad_files_named_in_the_error(user_csv, tmp_path):
    plain = tmp_path / "plain.csv.gz"
    plain.write_bytes(user_csv.read_bytes())
    res = runner.invoke(app, ["gains", "--data", str(plain), "--tasks", "sick", "--out", str(tmp_path / "o")])
    _one_error_line(res, "not gzip-compressed", "rename it")
    semi = tmp_path / "semi.csv"
    semi.write_text(user_csv.read_text().replace(",", ";"))
    res = runner.invoke(app, ["gains", "--data", str(semi), "--tasks", "sick", "--out", str(tmp_path / "o")])
    _one_error_line(res, "semicolons", "comma-separated")


def test_compare_checks_out_and_seed_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    res = runner.invoke(app, ["compare", "--dataset", "heart-hospitals", "--models", "stl", "--out",
                              str(tmp_path / "file")])
    _one_error_line(res, "--out", "is a file")
    res = runner.invoke(app, ["compare", "--dataset", "heart-hospitals", "--models", "stl", "--seed", "-1"])
    _one_error_line(res, "--seed")


def test_set_on_a_table_dataset_names_the_model(tmp_path):
    res = runner.invoke(app, ["compare", "--dataset", "yeast", "--models", "mtl", "--runs", "1", "--set", "foo=1",
                              "--out", str(tmp_path / "o"), "-q"])
    line = _one_error_line(res, "foo", "'mtl'")
    assert "time-series" not in line


def test_one_task_gains_keeps_the_header_and_says_why(user_csv, tmp_path):
    res = runner.invoke(app, ["gains", "--data", str(user_csv), "--tasks", "sick", "--features", "age,dose",
                              "--groups", "all", "--epochs", "2", "--out", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    assert "note: no group of 2 or more tasks" in res.stderr
    header = (tmp_path / "o" / "gains.csv").read_text().splitlines()
    assert len(header) == 1 and header[0].startswith("group,task,test_loss")
    two = _gains(user_csv, tmp_path / "two")
    assert two.exit_code == 0, two.output
    assert (tmp_path / "two" / "gains.csv").read_text().splitlines()[0] == header[0]


def test_task_names_with_separators_are_refused(user_csv, tmp_path):
    frame = pd.read_csv(user_csv).rename(columns={"sick": "sick+worse"})
    path = tmp_path / "plus.csv"
    frame.to_csv(path, index=False)
    res = runner.invoke(app, ["gains", "--data", str(path), "--tasks", "sick+worse,stay", "--features", "age,dose",
                              "--out", str(tmp_path / "o")])
    _one_error_line(res, "'sick+worse'", "'+'", "rename")


def test_inferred_kinds_and_clamps_are_printed_and_recorded(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    frame = pd.DataFrame(X, columns=["x1", "x2", "x3"])
    frame["three_five"] = np.where(X[:, 0] + 0.3 * rng.normal(size=200) > 0, 3, 5)
    frame["level"] = X[:, 1] * 0.7 + 0.1 * rng.normal(size=200)
    frame["rare"] = 0
    frame.loc[[3, 50], "rare"] = 1  # two positives: no positive in the test split, AUROC undefined (NaN)
    path = tmp_path / "odd.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "g"
    res = runner.invoke(app, ["group", "--data", str(path), "--tasks", "three_five,level,rare",
                              "--features", "x1,x2,x3", "--train-groups", "1000", "--budget", "100",
                              "--epochs", "2", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "three_five: binary 3/5 (positive class 5)" in res.stderr and "level: regression" in res.stderr
    assert "--train-groups 1000" in res.stderr and "--budget 100" in res.stderr

    def refuse(token):
        raise AssertionError(f"bare {token} in report.json")

    report = json.loads((out / "report.json").read_text(), parse_constant=refuse)
    assert report["task_kinds"] == {"three_five": "binary", "level": "regression", "rare": "binary"}
    assert any("--train-groups 1000" in n for n in report["notes"])
    res = runner.invoke(app, ["gains", "--data", str(path), "--tasks", "three_five,rare", "--features", "x1,x2",
                              "--groups", "all", "--epochs", "2", "--out", str(tmp_path / "n"), "-q"])
    assert res.exit_code == 0, res.output
    payload = json.loads((tmp_path / "n" / "gains.json").read_text(), parse_constant=refuse)
    assert payload["stl"]["rare"]["test_metric"] is None


def test_help_shows_defaults_flags_and_version():
    wide = {"COLUMNS": "200"}
    from negtransfer.train.config import TrainConfig

    cfg = TrainConfig()
    for command in ("gains", "group", "sources"):
        text = runner.invoke(app, [command, "--help"], env=wide).output
        for option, default in (("--epochs", cfg.max_epochs), ("--batch-size", cfg.batch_size), ("--lr", cfg.lr),
                                ("--optimizer", cfg.optimizer), ("--patience", cfg.patience)):
            line = text[text.index(option + " "):].split("\n")[0] + text[text.index(option + " "):].split("\n")[1]
            assert f"{default}, or the preset's" in line, (command, option, line)
        for option in ("--data", "--dataset", "--tasks", "--features", "--task-column", "--label", "--task-kinds",
                       "--impute", "--seed", "--out", "--store", "--executor", "--workers", "--chunk-size", "--quiet",
                       "--repeats", "--preset", "--batching"):
            assert option in text, (command, option)
        assert "<bool>" not in text
    text = runner.invoke(app, ["compare", "--help"], env=wide).output
    for option in ("--epochs", "--batch-size", "--lr", "--optimizer", "--patience"):
        line = text[text.index(option + " "):].split("\n")[0] + text[text.index(option + " "):].split("\n")[1]
        assert "the model family's" in line, (option, line)
    for option in ("--data", "--dataset", "--tasks", "--store", "--executor", "--workers", "--iterations", "--set"):
        assert option in text, option
    assert "<bool>" not in runner.invoke(app, ["--help"], env=wide).output
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip().startswith("negtransfer ")


def test_recover_store_command(tmp_path):
    from negtransfer.runs.store import RunStore
    from negtransfer.train.batched import ModelResult

    good = tmp_path / "runs.sqlite"
    RunStore(good).put_many("fp", 0, "cfg", [
        ModelResult(group=(i,), val_loss={i: 0.5}, test_loss={i: 0.4}, test_metric={i: 0.9}, best_epoch=1,
                    epochs=1, seconds=0.1) for i in range(300)])
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    res = runner.invoke(app, ["recover-store", str(cut), str(tmp_path / "new.sqlite")])
    assert res.exit_code == 0 and "recovered" in res.output, res.output
    assert 0 < RunStore(tmp_path / "new.sqlite").count() < 300
    _one_error_line(runner.invoke(app, ["recover-store", str(cut), str(tmp_path / "new.sqlite")]), "already exists")


def test_a_full_disk_mid_run_is_one_error_line(tmp_path, capsys):
    import sqlite3

    import typer

    from negtransfer.cli import writes_guarded

    for exc in (sqlite3.OperationalError("database or disk is full"), OSError(28, "No space left on device", "x.csv")):
        with pytest.raises(typer.Exit) as info, writes_guarded(tmp_path / "runs.sqlite", tmp_path):
            raise exc
        assert info.value.exit_code == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "run the same command again" in err


def test_task_splits_folder_and_preset_from_the_cli(tmp_path, write_folder):
    """`--data DIR` reads a Task_Splits folder; `--preset` sets the training, explicit options win."""
    folder = write_folder(tmp_path / "chem", rows=(40, 60, 30))
    out = tmp_path / "out"
    res = runner.invoke(app, ["gains", "--data", str(folder), "--groups", "all", "--preset", "etap-chemical",
                              "--epochs", "2", "--repeats", "2", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    payload = json.loads((out / "gains.json").read_text())
    cfg = payload["config"]
    assert (cfg["lr"], cfg["batch_size"], cfg["batching"], cfg["oversample"], cfg["max_epochs"], cfg["init"]) == (
        0.001, 264, "per-task", True, 2, "glorot")
    assert payload["tasks"] == ["3", "7", "12"] and payload["repeats"] == 2
    g = pd.read_csv(out / "gains.csv")
    assert (g["repeats"] == 2).all() and len(g) == 3 * 2 + 3
    res = runner.invoke(app, ["gains", "--data", str(folder), "--features", "f0", "--out", str(out), "-q"])
    assert res.exit_code == 2 and "Task_Splits" in res.output


def test_balance_option_and_its_alias(tmp_path, write_folder):
    """`--balance` (alias `--oversample`) sets oversampling; `--no-balance` overrides the preset's."""
    folder = write_folder(tmp_path / "chem", rows=(40, 60, 30))
    for flags, expected in ((["--balance"], True), (["--oversample"], True), ([], False),
                            (["--preset", "etap-chemical", "--no-balance"], False)):
        out = tmp_path / f"out{len(flags)}{expected}"
        res = runner.invoke(app, ["gains", "--data", str(folder), "--groups", "all", "--epochs", "1",
                                  "--repeats", "1", "--out", str(out), "-q", *flags])
        assert res.exit_code == 0, res.output
        assert json.loads((out / "gains.json").read_text())["config"]["oversample"] is expected, flags


def test_balance_on_multi_label_data_says_it_has_no_effect(tmp_path):
    """Multi-label rows carry every task, so --balance has nothing to top up: a note, not silence."""
    res = runner.invoke(app, ["gains", "--dataset", "yeast", "--tasks", "Class1,Class2", "--groups", "all",
                              "--epochs", "1", "--repeats", "1", "--out", str(tmp_path / "ml"), "-q", "--balance"])
    assert res.exit_code == 0, res.output
    assert sum(line.startswith("note: --balance") and "no effect" in line for line in res.output.splitlines()) == 1
    res = runner.invoke(app, ["gains", "--dataset", "yeast", "--tasks", "Class1,Class2", "--groups", "all",
                              "--epochs", "1", "--repeats", "1", "--out", str(tmp_path / "plain"), "-q"])
    assert res.exit_code == 0 and "--balance" not in res.output, res.output


def test_every_command_uses_the_one_dataset_registry(tmp_path):
    res = runner.invoke(app, ["datasets"], env={"COLUMNS": "80"})
    assert res.exit_code == 0
    listing = res.output.split("Licenses")[0]
    assert all(len(line) <= 80 for line in listing.splitlines())
    assert "pbcseq" in listing and "time-series" in listing and "domains" in listing
    # gains knows pbcseq (no "unknown built-in dataset"), and says which command takes it
    res = runner.invoke(app, ["gains", "--dataset", "pbcseq", "--out", str(tmp_path / "g"), "-q"])
    line = _one_error_line(res, "'pbcseq' is time-series data", "negtransfer compare")
    assert "unknown" not in line


@pytest.mark.slow  # over 5 s: the default suite stays under 2 minutes
def test_group_methods_from_the_cli(user_csv, tmp_path):
    """Every registered method runs end to end on a user's CSV, in the same pipeline and report format."""
    from negtransfer.jobs.grouping_methods import BUILTIN_METHODS, get_method

    for name in (m.name for m in BUILTIN_METHODS):
        if name == "mtgnet":
            continue  # its transformer training takes a minute here; tests/gains/test_baselines.py covers it
        out = tmp_path / name
        res = runner.invoke(app, ["group", "--data", str(user_csv), "--tasks", "sick,worse,stay",
                                  "--features", "age,dose,bmi,noise", "--budget", "2", "--train-groups", "2",
                                  "--method", name, "--epochs", "5", "--repeats", "1", "--rounds", "2",
                                  "--out", str(out), "-q"])
        assert res.exit_code == 0, (name, res.output)
        rep = json.loads((out / "report.json").read_text())
        assert rep["method"] == name and rep["selected_groups"]
        assert (rep["affinity"] is None) == (not get_method(name).measures_affinity)
        if not get_method(name).draws_training_groups:  # every pair (HOA, Ayman et al.), and the all-task group
            assert sorted(map(sorted, rep["train_groups"])) == [["sick", "stay"], ["sick", "stay", "worse"],
                                                                ["sick", "worse"], ["stay", "worse"]]


def test_group_with_grad_tae_from_the_cli(user_csv, tmp_path):
    """GRAD-TAE end to end on a user's CSV (binary and regression tasks, missing labels): its affinity, name and cost."""
    out = tmp_path / "gt"
    args = ["group", "--data", str(user_csv), "--tasks", "sick,worse,stay", "--features", "age,dose,bmi,noise",
            "--budget", "2", "--train-groups", "1", "--method", "grad-tae", "--epochs", "2", "--repeats", "1",
            "--rounds", "1", "--out", str(out), "-q"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == "grad-tae" and rep["selected_groups"]
    A = np.array(rep["affinity"], dtype=float)
    assert A.shape == (3, 3) and np.isnan(np.diag(A)).all() and np.isfinite(A[~np.eye(3, dtype=bool)]).all()
    cost = rep["method_cost"]
    assert cost["seconds_gradients_and_regressions"] > 0 and cost["projection_dim"] == 200
    assert cost["train_examples"] > 0 and cost["reused_repeats"] == 0 and rep["seconds"]["affinity runs"] > 0
    text = (out / "report.md").read_text()
    assert "Cost of the grad-tae method" in text and "| projection_dim | 200 |" in text.replace("  ", " ")
    res = runner.invoke(app, args[:-3] + ["--method", "grad-tag", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "grad-tae" in res.output


def test_compare_grouping_writes_one_table(user_csv, tmp_path):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare-grouping", "--data", str(user_csv), "--tasks", "sick,worse,stay",
                              "--features", "age,dose,bmi,noise", "--methods", "etap,hoa,linear-surrogate",
                              "--budgets", "1,2", "--seeds", "0,1", "--train-groups", "2", "--repeats", "1",
                              "--rounds", "1", "--exhaustive", "--epochs", "5", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    table = pd.read_csv(out / "comparison.csv")
    pcgrad = "all tasks, one model, PCGrad"  # the default --surgery row (ETAP Section D.3)
    assert len(table) == 4 * 2 * 2 and set(table["method"]) == {"etap", "hoa", "linear-surrogate", pcgrad}
    groupings = table[table["kind"] == "grouping"]
    assert (groupings["gap"] >= -1e-12).all()  # nothing beats the test oracle
    # ETAP Table 2's pairwise column: for the methods with an affinity (with --exhaustive), in [-1, 1]
    pairwise = groupings.set_index("method")["pairwise_affinity_pearson"]
    assert pairwise.loc["etap"].between(-1, 1).all() and pairwise.loc[["hoa", "linear-surrogate"]].isna().all()
    row = table[table["method"] == pcgrad]
    assert set(row["kind"]) == {"all-task model"} and (row["runs"] == 1).all()
    for _, per_seed in row.groupby("seed"):  # one value per seed, the same at every budget
        assert per_seed["selected"].nunique() == 1
        assert per_seed["selected"].iloc[0] != per_seed["all_tasks"].iloc[0]  # not the summed-gradient model
        np.testing.assert_allclose(per_seed["vs_all"], per_seed["selected"] / per_seed["all_tasks"] - 1)
    md = (out / "report.md").read_text()
    assert "## Budget 2" in md and "Wilcoxon" in md and (out / "plots" / "loss_by_budget.png").exists()
    assert "pairwise affinity vs gain" in md
    assert md.count(f"| {pcgrad} |") == 3  # a row in both budgets' tables and in the Wilcoxon table
    # the rows are reused from the store: asking for MGDA beside it trains only MGDA's all-task runs
    res = runner.invoke(app, ["compare-grouping", "--data", str(user_csv), "--tasks", "sick,worse,stay",
                              "--features", "age,dose,bmi,noise", "--methods", "etap", "--surgery", "pcgrad,mgda",
                              "--budgets", "2", "--seeds", "0", "--train-groups", "2", "--repeats", "1",
                              "--rounds", "1", "--exhaustive", "--epochs", "5", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    again = pd.read_csv(out / "comparison.csv")
    assert set(again["method"]) == {"etap", pcgrad, "all tasks, one model, MGDA"}
    first = row[(row["seed"] == 0) & (row["budget"] == 2)]["selected"].iloc[0]
    assert again[again["method"] == pcgrad]["selected"].iloc[0] == first
    for bad in ("nope", "pcgrad,cagrad", ""):
        res = runner.invoke(app, ["compare-grouping", "--data", str(user_csv), "--surgery", bad,
                                  "--tasks", "sick,worse", "--out", str(tmp_path / "y")])
        assert res.exit_code == 2 and "--surgery takes comma-separated gradient aggregators from sum, pcgrad" in res.output
    res = runner.invoke(app, ["compare-grouping", "--data", str(user_csv), "--methods", "etap,nope",
                              "--tasks", "sick,worse", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "--methods" in res.output
