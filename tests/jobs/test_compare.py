"""``negtransfer compare``: the model catalogue, the run store, results.csv, the report, clean errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from negtransfer.cli import app
from negtransfer.data.builtin import data_kind
from negtransfer.data.domains import dataset_from_domains
from negtransfer.jobs.compare import CompareOptions, run_compare
from negtransfer.models.base import FitOptions, ModelCatalogue, ModelSpec, config_from_options
from negtransfer.models.catalogue import default_catalogue
from negtransfer.report.compare import report_markdown, write_compare_outputs
from negtransfer.runs.store import RunStore

runner = CliRunner()
torch.set_num_threads(1)


def tiny_domains(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(2, 4)) * 2
    domains = {}
    for t in range(3):
        y = np.arange(30) % 2
        domains[f"site{t}"] = (centres[y] + rng.normal(size=(30, 4)), y)
    return dataset_from_domains(domains, seed=seed, name="tiny-domains")


def tiny_sequences(seed):
    from negtransfer.data.timeseries import timeseries_dataset

    rng = np.random.default_rng(seed)
    values = rng.normal(size=(50, 4, 3))
    labels = np.stack([(values[:, :, 0].mean(1) > 0), (values[:, :, 1].mean(1) > 0)], axis=1).astype(float)
    return timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"], seed=seed)


def domains_csv(path):
    """tiny_domains' raw rows as a per-task-rows CSV (task column ``site``, label ``y``)."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 4)) * 2
    frames = []
    for t in range(3):
        y = np.arange(30) % 2
        X = centres[y] + rng.normal(size=(30, 4))
        frames.append(pd.DataFrame(X, columns=[f"x{i}" for i in range(4)]).assign(site=f"site{t}", y=y))
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_compare_on_a_users_file_writes_results_and_report(tmp_path):
    out = tmp_path / "cmp"
    res = runner.invoke(app, ["compare", "--data", str(domains_csv(tmp_path / "d.csv")), "--task-column", "site",
                              "--label", "y", "--models", "stl,bmtl,vmtl", "--runs", "2", "--iterations", "20",
                              "--train-fraction", "0.3", "--fgsm", "0.1", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    frame = pd.read_csv(out / "results.csv")
    assert list(frame.columns) == ["model", "task", "run", "metric", "value"]
    assert set(frame["metric"]) == {"accuracy", "entropy_ratio", "fgsm_accuracy@0.1", "validation_accuracy"}
    assert set(frame["task"]) == {"site0", "site1", "site2", "average"}
    assert len(frame) == 3 * 2 * 4 * 4  # models x runs x (tasks + average) x metrics
    acc = frame[frame.metric == "accuracy"]
    assert acc["value"].between(0, 1).all()
    per_run = acc[acc.task != "average"].groupby(["model", "run"])["value"].mean()
    avg = acc[acc.task == "average"].set_index(["model", "run"])["value"]
    assert np.allclose(per_run.sort_index(), avg.sort_index())
    report = (out / "report.md").read_text()
    assert "| model | site0 | site1 | site2 | Avg. |" in report
    assert "## accuracy" in report and "## entropy_ratio" in report and " ± " in report
    assert '"data_kind": "domains"' in (out / "report.json").read_text()


def _catalogue(*specs):
    catalogue = default_catalogue()
    for spec in specs:
        catalogue.add(spec)
    return catalogue


def _fixed(scores):
    def fit_evaluate(name, dataset, seed, config, options):
        return {"accuracy": dict(scores)}

    return fit_evaluate


def _no_config(options):
    from negtransfer.train.config import TrainConfig

    return TrainConfig()


def test_report_marks_cells_below_the_stl_counterpart(tmp_path):
    stl = ModelSpec("a-stl", "test", ("domains",), _fixed({"t1": 0.8, "t2": 0.5}), _no_config)
    mtl = ModelSpec("a-mtl", "test", ("domains",), _fixed({"t1": 0.7, "t2": 0.9}), _no_config,
                    stl_counterpart="a-stl")
    report = run_compare(tiny_domains, "tiny", CompareOptions(("a-stl", "a-mtl"), runs=2), 0,
                         RunStore(tmp_path / "s.sqlite"), catalogue=_catalogue(stl, mtl))
    text = report_markdown(report)
    row = next(line for line in text.splitlines() if line.startswith("| a-mtl"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1].endswith("↓") and not cells[2].endswith("↓")  # t1 below STL, t2 above
    assert cells[3] == "80.0 ± 0.0"  # average of 0.7 and 0.9, no marker (0.8 > 0.65)


def test_unknown_and_incompatible_models_list_the_valid_ones(tmp_path):
    res = runner.invoke(app, ["compare", "--data", str(domains_csv(tmp_path / "d.csv")), "--task-column", "site",
                              "--label", "y", "--models", "stl,nonsense", "--out", str(tmp_path / "x"), "-q"])
    assert res.exit_code == 2
    assert "nonsense" in res.output and "vmtl" in res.output
    catalogue = _catalogue(ModelSpec("ts-only", "test", ("time-series",), _fixed({}), _no_config))
    with pytest.raises(ValueError, match="does not accept domains data.*vmtl"):
        catalogue.resolve(["ts-only"], "domains")
    # a multi-label dataset is table data, not domains data: the VMTL models refuse it
    with pytest.raises(ValueError, match="table data"):
        catalogue.resolve(["vmtl"], data_kind(_multilabel()))


def test_same_name_for_different_data_kinds():
    catalogue = _catalogue(ModelSpec("stl", "test", ("time-series",), _fixed({"a": 1.0}), _no_config))
    assert catalogue.resolve(["stl"], "time-series")[0].data_kinds == ("time-series",)
    assert catalogue.resolve(["stl"], "domains")[0].data_kinds == ("domains",)
    assert catalogue.resolve(["stl"], "table")[0].family == "clinical"
    assert ModelCatalogue().names() == []  # a new catalogue is empty: nothing registers itself


def _multilabel():
    from negtransfer.data.dataset import MultiTaskDataset, TaskSpec

    X = np.zeros((4, 2))
    Y = np.array([[0, 1], [1, 0], [0, 0], [1, 1]], dtype=float)
    return MultiTaskDataset("ml", (TaskSpec("a", "binary", (0, 1)), TaskSpec("b", "binary", (0, 1))), X, Y,
                            np.zeros(4), ("x0", "x1"))


def test_set_passes_training_settings_and_rejects_unknown_ones(tmp_path, monkeypatch):
    base = ["compare", "--data", str(domains_csv(tmp_path / "d.csv")), "--task-column", "site", "--label", "y",
            "--models", "vmtl", "--runs", "1", "--iterations", "5", "-q"]
    from negtransfer.train import variational

    seen = []
    real_fit = variational.fit_variational

    def spy(model, ds, config, seed=0, **kwargs):
        seen.append(config)
        return real_fit(model, ds, config, seed=seed, **kwargs)

    monkeypatch.setattr(variational, "fit_variational", spy)
    res = runner.invoke(app, base + ["--set", "kl_w_warmup_step=1e-4,eval_every=5,balanced_batches=false",
                                     "--out", str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert [(c.kl_w_warmup_step, c.eval_every, c.balanced_batches) for c in seen] == [(1e-4, 5, False)]
    assert '"kl_w_warmup_step": 0.0001' in (tmp_path / "a" / "report.json").read_text()
    res = runner.invoke(app, base + ["--set", "lr=fast", "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "lr" in res.output and "number" in res.output
    res = runner.invoke(app, base + ["--set", "warmup=3", "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "warmup" in res.output and "kl_w_warmup_step" in res.output


def test_shared_training_options_reach_the_family_or_name_the_fix(tmp_path):
    from negtransfer.models import clinical, vmtl

    config = clinical.make_config(FitOptions(epochs=7, batch_size=16, lr=0.01, patience=3))
    assert (config.max_epochs, config.batch_size, config.lr, config.patience) == (7, 16, 0.01, 3)
    assert clinical.make_config(FitOptions(iterations=5)).max_epochs == 5  # --iterations: epochs for this family
    config = vmtl.make_config(FitOptions(iterations=40, lr=0.002, patience=4))
    assert (config.iterations, config.lr, config.patience) == (40, 0.002, 4)
    with pytest.raises(ValueError, match="--iterations"):
        vmtl.make_config(FitOptions(epochs=3))
    with pytest.raises(ValueError, match="per_class"):
        vmtl.make_config(FitOptions(batch_size=8))
    with pytest.raises(ValueError, match="Adam"):
        clinical.make_config(FitOptions(optimizer="sgd"))


def test_config_from_options_sets_fields_and_names_unknown_ones():
    from negtransfer.train.temporal import TemporalTrainConfig

    config = config_from_options(TemporalTrainConfig, {"max_epochs": 7, "lr": 0.01}, "time-series")
    assert (config.max_epochs, config.lr) == (7, 0.01)
    assert config_from_options(TemporalTrainConfig, None, "time-series") == TemporalTrainConfig()
    with pytest.raises(ValueError, match="unknown time-series training setting.*nonsense.*max_epochs"):
        config_from_options(TemporalTrainConfig, {"nonsense": 1}, "time-series")


def test_clinical_models_through_the_store_resume_with_identical_results(tmp_path):
    catalogue = default_catalogue()
    assert {"tp-amtl", "stl-lstm", "td-amtl"} <= set(catalogue.names("time-series"))
    assert {"stl", "mtl", "p-amtl"} <= set(catalogue.names("table"))
    options = CompareOptions(("stl-lstm", "tp-amtl"), runs=2, fit=FitOptions(epochs=2, settings={"mc_samples": 2}))
    store = RunStore(tmp_path / "s.sqlite")
    first = run_compare(tiny_sequences, "tiny", options, 0, store)
    assert (first.trained, first.reused) == (4, 0)
    csv_path, md_path, _ = write_compare_outputs(first, tmp_path / "a")
    table = pd.read_csv(csv_path)
    assert list(table.columns) == ["model", "task", "run", "metric", "value"]
    assert set(table["task"]) == {"a", "b", "average"} and len(table) == 2 * 2 * 3 * 3
    # the test rows first (as before validation metrics existed), then the kept checkpoint's validation metrics
    assert list(table["metric"]) == ["auroc"] * 12 + ["val_auroc"] * 3 + ["val_loss"] * 3 + ["val_auroc"] * 3 + \
        ["val_loss"] * 3 + ["val_auroc"] * 3 + ["val_loss"] * 3 + ["val_auroc"] * 3 + ["val_loss"] * 3
    assert (table[table.metric == "val_loss"]["value"] > 0).all()
    assert "val_auroc" not in md_path.read_text()  # report.md tabulates test metrics only
    report = md_path.read_text()
    assert "| tp-amtl |" in report and "tp-amtl vs stl-lstm" in report
    again = run_compare(tiny_sequences, "tiny", options, 0, store)
    assert (again.trained, again.reused) == (0, 4)
    write_compare_outputs(again, tmp_path / "b")
    assert (tmp_path / "a" / "results.csv").read_bytes() == (tmp_path / "b" / "results.csv").read_bytes()
    more = run_compare(tiny_sequences, "tiny", CompareOptions(("stl-lstm", "tp-amtl"), runs=3, fit=options.fit), 0,
                       store)
    assert (more.trained, more.reused) == (2, 4)  # only the new run
    with pytest.raises(ValueError, match="does not accept time-series"):
        run_compare(tiny_sequences, "tiny", CompareOptions(("p-amtl",), runs=1), 0, store)


@pytest.mark.slow  # about 15-30 s (worker start-up); the process pool itself: tests/runs/test_store.py
def test_the_process_executor_gives_the_same_results(tmp_path):
    from negtransfer.runs.executors import ProcessPoolExecutor

    options = CompareOptions(("stl-lstm",), runs=2, fit=FitOptions(epochs=1, settings={"mc_samples": 1}))
    here = run_compare(tiny_sequences, "tiny", options, 0, RunStore(tmp_path / "a.sqlite"))
    pooled = run_compare(tiny_sequences, "tiny", options, 0, RunStore(tmp_path / "b.sqlite"),
                         executor=ProcessPoolExecutor(2))
    assert here.rows == pooled.rows


def test_out_and_bad_options_are_checked_before_any_training(tmp_path, monkeypatch):
    from negtransfer.jobs import compare

    def fail(unit):
        raise AssertionError("trained before the inputs were checked")

    monkeypatch.setattr(compare, "_fit_unit", fail)
    (tmp_path / "file").write_text("x")
    csv = str(domains_csv(tmp_path / "d.csv"))
    base = ["compare", "--data", csv, "--task-column", "site", "--label", "y", "--models", "vmtl"]
    for extra, fragment in ((["--out", str(tmp_path / "file")], "is a file"),
                            (["--epochs", "3", "--out", str(tmp_path / "o")], "--iterations"),
                            (["--train-fraction", "2", "--out", str(tmp_path / "o")], "--train-fraction"),
                            (["--models", "tp-amtl", "--out", str(tmp_path / "o")], "time-series")):
        res = runner.invoke(app, base + extra)
        assert res.exit_code == 2 and fragment in res.output, (extra, res.output)


def _physionet_folder(folder, n=40):
    """A small PhysioNet 2012 challenge folder: record files and Outcomes-a.txt."""
    folder.mkdir()
    outcomes = ["RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death"]
    for r in range(n):
        rid = 140000 + r
        lines = ["Time,Parameter,Value", f"00:00,RecordID,{rid}", f"00:00,Age,{40 + r}", f"00:00,ICUType,{r % 4 + 1}",
                 f"00:30,HR,{80 + r % 7}", f"02:10,HR,{90 + r % 5}", f"03:00,Temp,{36 + (r % 3) / 2}"]
        (folder / f"{rid}.txt").write_text("\n".join(lines) + "\n")
        outcomes.append(f"{rid},10,5,{2 if r % 3 == 0 else 8},-1,{int(r % 5 == 0)}")
    (folder / "Outcomes-a.txt").write_text("\n".join(outcomes) + "\n")
    return folder


def test_data_folders_route_by_what_they_hold(tmp_path):
    folder = _physionet_folder(tmp_path / "set-a")
    out = tmp_path / "o"
    res = runner.invoke(app, ["compare", "--data", str(folder), "--tasks", "cardiac,recovery", "--models", "stl-lstm",
                              "--runs", "1", "--epochs", "1", "--set", "mc_samples=1", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert '"data_kind": "time-series"' in (out / "report.json").read_text()
    res = runner.invoke(app, ["gains", "--data", str(folder), "--out", str(tmp_path / "g"), "-q"])
    assert res.exit_code == 2 and "time-series data" in res.output and "negtransfer compare" in res.output
    from negtransfer.cli import DataOptions

    inside = DataOptions(data=folder).loader(kinds=None, command="compare")(0)
    (folder / "Outcomes-a.txt").rename(tmp_path / "Outcomes-a.txt")  # the challenge's layout: beside set-a/
    beside = DataOptions(data=folder).loader(kinds=None, command="compare")(0)
    assert data_kind(beside) == "time-series" and np.array_equal(inside.Y, beside.Y, equal_nan=True)
    # a Task_Splits folder is still a table of per-task rows for every command

    splits = tmp_path / "Task_Splits"
    splits.mkdir()
    rng = np.random.default_rng(0)
    for task in ("1", "2"):
        for part, m in (("train", 40), ("test", 20)):
            np.save(splits / f"{task}_X_{part}.npy", rng.normal(size=(m, 3)))
            np.save(splits / f"{task}_y_{part}.npy", np.tile([0.0, 1.0], m // 2))
    ds = DataOptions(data=splits).load(0)
    assert ds.task_names == ("1", "2") and data_kind(ds) == "domains"


def test_a_models_code_version_keys_its_stored_results():
    from negtransfer.jobs.compare import compare_key

    specs = {s.name: s for s in default_catalogue().specs()}
    assert specs["tp-amtl"].version == 2 and specs["amtl-notransfer"].version == 2 and specs["p-amtl"].version == 2
    assert specs["stl-lstm"].version == 1 and specs["vmtl"].version == 1 and specs["vmtl-ac"].version == 2
    fit = FitOptions()
    new = compare_key("fp", specs["tp-amtl"], "cfg", 0, fit)
    assert ":tp-amtl@v2:" in new
    old = compare_key("fp", ModelSpec("tp-amtl", "clinical", ("time-series",), specs["tp-amtl"].fit_evaluate,
                                      specs["tp-amtl"].make_config), "cfg", 0, fit)  # fmt: skip
    assert new != old and ":tp-amtl:" in old  # results of the version-1 code are not found under the new key
    assert ":stl-lstm:" in compare_key("fp", specs["stl-lstm"], "cfg", 0, fit)  # unchanged models keep their keys


def test_paired_differences_pair_runs_and_test_them():
    from types import SimpleNamespace

    from negtransfer.report.compare import paired_differences, paired_markdown

    rows = []
    for run, (a, b) in enumerate([(0.70, 0.72), (0.60, 0.65), (0.80, 0.79), (0.75, 0.80), (0.65, 0.70)]):
        rows += [{"model": "base", "task": "average", "run": run, "metric": "auroc", "value": a},
                 {"model": "new", "task": "average", "run": run, "metric": "auroc", "value": b}]  # fmt: skip
    report = SimpleNamespace(rows=rows, models=[SimpleNamespace(name="base"), SimpleNamespace(name="new")])
    d = paired_differences(report, "auroc", "base")["new"]
    diffs = np.array([0.02, 0.05, -0.01, 0.05, 0.05])
    assert d["mean"] == pytest.approx(diffs.mean()) and d["se"] == pytest.approx(diffs.std(ddof=1) / np.sqrt(5))
    assert (d["better"], d["runs"]) == (4, 5)
    from scipy.stats import ttest_rel, wilcoxon

    assert d["wilcoxon_p"] == pytest.approx(wilcoxon(diffs).pvalue)
    assert d["t_p"] == pytest.approx(ttest_rel([r["value"] for r in rows[1::2]], [r["value"] for r in rows[::2]]).pvalue)
    assert "| new | +0.0320 ± 0.0120 | 4/5 | 0.125 |" in paired_markdown(report, "auroc", "base")
    with pytest.raises(ValueError, match="reference model 'mtl'"):
        paired_differences(report, "auroc", "mtl")


def test_baselines_option_prints_and_writes_paired_differences(tmp_path):
    csv = str(domains_csv(tmp_path / "d.csv"))
    base = ["compare", "--data", csv, "--task-column", "site", "--label", "y", "--models", "stl,bmtl", "--runs", "2",
            "--iterations", "10"]
    res = runner.invoke(app, base + ["--out", str(tmp_path / "ours")])
    assert res.exit_code == 0, res.output
    assert "minus" not in res.output and "Paired differences" not in (tmp_path / "ours" / "report.md").read_text()
    res = runner.invoke(app, base + ["--baselines", "both", "--out", str(tmp_path / "both")])
    assert res.exit_code == 0, res.output
    assert "bmtl: minus stl (ours)" in res.output and "runs" in res.output
    text = (tmp_path / "both" / "report.md").read_text()
    assert "| bmtl | stl | ours |" in text  # VMTL's paper baseline is ours: listed once
    assert '"baselines": "both"' in (tmp_path / "both" / "report.json").read_text()
    # the same units: a reporting choice is not part of any run's key
    assert (tmp_path / "ours" / "results.csv").read_text() == (tmp_path / "both" / "results.csv").read_text()
    res = runner.invoke(app, base + ["--baselines", "public", "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "--baselines must be one of ours, paper, both" in res.output


def test_tp_amtl_models_carry_the_public_codes_baseline():
    specs = {s.name: s for s in default_catalogue().specs() if "time-series" in s.data_kinds}
    for name in ("tp-amtl", "amtl-notransfer", "td-amtl", "tp-amtl-dropconnect", "amtl-lstm"):
        assert (specs[name].stl_counterpart, specs[name].paper_counterpart) == ("stl-lstm", "stl-lstm-public"), name
    assert specs["mtl-lstm-public"].stl_counterpart == "stl-lstm-public"
    assert specs["mtl-lstm-public"].paper_counterpart is None and specs["stl-lstm"].paper_counterpart is None


class _Crash(Exception):
    """Stands for the process dying."""


def test_a_unit_killed_mid_fit_resumes_from_the_state_its_fit_saved(tmp_path, monkeypatch):
    """A compare unit's fit saves its state beside the run store; the next attempt continues from it, gives the
    numbers of an uninterrupted run and removes the state once the unit is stored (train/test_checkpoint.py)."""
    from negtransfer.train import checkpoint

    monkeypatch.setattr(checkpoint, "SAVE_EVERY_SECONDS", 0.0)
    options = CompareOptions(("tp-amtl",), runs=1, fit=FitOptions(epochs=6, settings={"mc_samples": 2}))
    reference = run_compare(tiny_sequences, "tiny", options, 0, RunStore(tmp_path / "a.sqlite"))
    assert not (tmp_path / "a.sqlite.checkpoints").exists()

    save, load = checkpoint.FitSlot.save, checkpoint.FitSlot.load
    resumed_at = []

    def save_then_crash(self, state):
        save(self, state)
        if state["rounds"] == 3:
            raise _Crash

    def load_and_count(self, signature):
        state = load(self, signature)
        resumed_at.append(None if state is None else state["rounds"])
        return state

    monkeypatch.setattr(checkpoint.FitSlot, "save", save_then_crash)
    with pytest.raises(_Crash):
        run_compare(tiny_sequences, "tiny", options, 0, RunStore(tmp_path / "b.sqlite"))
    assert len(list((tmp_path / "b.sqlite.checkpoints").glob("*/fit-0.pt"))) == 1
    monkeypatch.setattr(checkpoint.FitSlot, "save", save)
    monkeypatch.setattr(checkpoint.FitSlot, "load", load_and_count)
    again = run_compare(tiny_sequences, "tiny", options, 0, RunStore(tmp_path / "b.sqlite"))
    assert resumed_at == [3] and again.rows == reference.rows
    assert not (tmp_path / "b.sqlite.checkpoints").exists()
