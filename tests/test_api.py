"""The Python API: negtransfer.gains/group/sources/compare on a DataFrame, the docs' scripts, an in-memory store."""

import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import negtransfer
from negtransfer.cli import app

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "docs" / "examples").glob("*.py"))


@pytest.fixture
def patients(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    frame = pd.DataFrame(X, columns=["age", "dose", "bmi", "noise"])
    frame["sick"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame["worse"] = (X[:, 0] - X[:, 2] + 0.3 * rng.normal(size=300) > 0).astype(int)
    frame["stay"] = X[:, 1] * 2 + rng.normal(size=300)
    frame.loc[::7, "worse"] = np.nan
    path = tmp_path / "patients.csv"
    frame.to_csv(path, index=False)
    return path


def test_the_docs_show_every_script_as_it_is():
    """docs/api.md shows each docs/examples/*.py verbatim (the test below runs those files)."""
    text = (ROOT / "docs" / "api.md").read_text()
    shown = re.findall(r"<!-- docs/examples/(\w+\.py) -->\n```python\n(.*?)```", text, flags=re.S)
    assert sorted(name for name, _ in shown) == sorted(p.name for p in EXAMPLES) == [
        "compare.py", "gains.py", "group.py", "sources.py"]
    for name, code in shown:
        assert code == (ROOT / "docs" / "examples" / name).read_text(), name
    readme = re.findall(r"<!-- docs/examples/(\w+\.py) -->\n```python\n(.*?)```", (ROOT / "README.md").read_text(),
                        flags=re.S)
    assert readme and all(code == (ROOT / "docs" / "examples" / name).read_text() for name, code in readme)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_docs_examples_run(script, capsys):
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    first = {"gains.py": "negative transfer:", "group.py": "chosen groups:", "sources.py": "selected sources:",
             "compare.py": "accuracy"}[script.name]
    assert first in out


def test_gains_from_python_equals_the_command_line(patients, tmp_path):
    """The same table, seed and options give the same numbers from Python as from `negtransfer gains`."""
    common = dict(tasks=["sick", "worse", "stay"], groups="all", repeats=2, max_epochs=3)
    report = negtransfer.gains(pd.read_csv(patients), features=["age", "dose", "bmi", "noise"], **common)
    res = CliRunner().invoke(app, ["gains", "--data", str(patients), "--tasks", "sick,worse,stay", "--features",
                                   "age,dose,bmi,noise", "--groups", "all", "--repeats", "2", "--epochs", "3",
                                   "--out", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    cli = pd.read_csv(tmp_path / "out" / "gains.csv")
    mine = report.to_frame()
    assert list(mine.columns) == list(cli.columns) and len(mine) == len(cli) == 9
    np.testing.assert_array_equal(mine["gain"].to_numpy(), cli["gain"].to_numpy())
    payload = json.loads((tmp_path / "out" / "gains.json").read_text())
    assert report.to_dict().keys() == payload.keys()
    assert report.to_dict()["stl"] == payload["stl"] and report.groups[-1] == ("sick", "worse", "stay")


def test_a_store_keeps_runs_between_calls(patients, tmp_path):
    from negtransfer.runs.store import RunStore

    store = RunStore(":memory:")
    options = dict(tasks=["sick", "worse"], groups=[("sick", "worse")], repeats=1, max_epochs=2, store=store)
    first = negtransfer.gains(patients, **options)
    assert store.in_memory and store.count() == 3  # two STL models and one group
    again = negtransfer.gains(patients, **options)
    assert store.count() == 3 and first.to_frame().equals(again.to_frame())
    assert not list(tmp_path.glob(":memory:*")) and not Path(":memory:").exists()


def test_bad_input_is_named_before_training(patients):
    frame = pd.read_csv(patients)
    with pytest.raises(ValueError, match="'nope' not found in the data"):
        negtransfer.gains(frame, tasks=["sick", "nope"])
    with pytest.raises(TypeError, match="unknown option.*budgett.*GroupingOptions"):
        negtransfer.group(frame, tasks=["sick", "worse"], budgett=2)
    with pytest.raises(TypeError, match="data must be a pandas DataFrame"):
        negtransfer.gains(frame.to_numpy())
    with pytest.raises(ValueError, match="neither a built-in dataset"):
        negtransfer.gains("no-such-dataset")
    with pytest.raises(TypeError, match="leave them out with the built-in dataset"):
        negtransfer.gains("yeast", features=["a"])
    with pytest.raises(ValueError, match="unknown tasks"):
        negtransfer.gains(frame, tasks=["sick", "worse"], groups=[("sick", "stay")])
    with pytest.raises(TypeError, match="unknown option.*max_epoch; .* of CompareOptions .* and of FitOptions .*epochs"):
        negtransfer.compare(frame, ["stl"], max_epoch=3)
    with pytest.raises(ValueError, match="baselines must be one of ours, paper, both"):
        negtransfer.compare(frame, ["stl"], baselines="theirs")


def test_import_stays_light_and_gains_is_both_package_and_function():
    code = ("import sys, negtransfer; names = dir(negtransfer); "
            "print(any(m in sys.modules for m in ('torch', 'pandas', 'sklearn', 'matplotlib')), "
            "all(n in names for n in ('gains', 'group', 'sources', 'compare')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
    import negtransfer.gains.table  # the subpackage of gain tables and predictors stays importable

    assert callable(negtransfer.gains) and negtransfer.gains.table.gains_frame is not None
    assert negtransfer.group.__module__ == "negtransfer.api"


def test_the_package_ships_its_type_hints():
    assert (ROOT / "src" / "negtransfer" / "py.typed").exists()
    assert 'negtransfer = ["py.typed"]' in (ROOT / "pyproject.toml").read_text()


def test_an_in_memory_run_store_keeps_what_it_is_given():
    """RunStore(":memory:") used to accept the path and fail on first use with `no such table: runs`."""
    from negtransfer.runs.store import RunStore
    from negtransfer.train.batched import ModelResult

    store = RunStore(":memory:")
    store.put_many("fp", 0, "cfg", [ModelResult(group=(i,), val_loss={i: 0.5}, test_loss={i: 0.4},
                                                test_metric={i: 0.9}, best_epoch=1, epochs=1, seconds=0.1)
                                    for i in range(3)])
    store.put_artifact("key", {"a": [1, 2]})
    assert store.count() == 3 and store.missing("fp", [(0,), (7,)], 0, "cfg") == [(7,)]
    assert store.get_many("fp", [(1,)], 0, "cfg")["1"].test_loss == {1: 0.4}
    assert store.get_artifact("key") == {"a": [1, 2]} and store.in_memory
    assert RunStore(":memory:").count() == 0  # each in-memory store is its own


@pytest.mark.parametrize("preset", ["default", "task-modeling"])
def test_sources_defaults_from_python_equal_the_command_line(patients, tmp_path, preset):
    """The preset-dependent defaults (repeats, grid, training, batching) are the same from Python and the CLI."""
    report = negtransfer.sources(pd.read_csv(patients), target="stay", tasks=["sick", "worse", "stay"],
                                 features=["age", "dose", "bmi", "noise"], preset=preset, alpha=1, n_subsets=3, holdout=0,
                                 max_epochs=1, exhaustive_pairs="off", affinity_baseline=False)
    res = CliRunner().invoke(app, ["sources", "--data", str(patients), "--target", "stay", "--tasks",
                                   "sick,worse,stay", "--features", "age,dose,bmi,noise", "--preset", preset,
                                   "--alpha", "1", "--subsets", "3", "--holdout", "0", "--epochs", "1", "--exhaustive-pairs", "off",
                                   "--no-affinity", "--out", str(tmp_path / "out"), "-q"])
    assert res.exit_code == 0, res.output
    cli = json.loads((tmp_path / "out" / "report.json").read_text())
    mine = report.to_dict()
    for key in ("repeats", "grid", "training"):
        assert mine[key] == cli[key], key
    assert mine["config"]["batching"] == cli["config"]["batching"]
    assert (mine["repeats"], mine["training"]) == (
        (5, "task-modeling") if preset == "task-modeling" else (3, "parity"))


def test_options_of_the_wrong_type_are_named_before_training(patients):
    # each of these once failed deep inside the job with a bare TypeError ('<' not supported between 'str' and
    # 'int'), or inside numpy or training
    frame = pd.read_csv(patients)
    tasks = ["sick", "worse", "stay"]
    with pytest.raises(ValueError, match=r"--budget \(budget\) must be a whole number, got '2'"):
        negtransfer.group(frame, tasks=tasks, budget="2")
    with pytest.raises(ValueError, match=r"--kappa \(kappa\) must be a number, got 'x'"):
        negtransfer.group(frame, tasks=tasks, kappa="x")
    with pytest.raises(ValueError, match=r"--subsets \(n_subsets\) must be a whole number, got '4'"):
        negtransfer.sources(frame, target="sick", tasks=tasks, n_subsets="4")
    with pytest.raises(ValueError, match=r"--alpha \(alpha\) must be a whole number, got 1.5"):
        negtransfer.sources(frame, target="sick", tasks=tasks, alpha=1.5)
    with pytest.raises(ValueError, match="max_epochs must be a whole number >= 1, got 2.5"):
        negtransfer.group(frame, tasks=tasks, max_epochs=2.5)
    for function, arguments in [(negtransfer.gains, {}), (negtransfer.group, {}),
                                (negtransfer.sources, {"target": "sick"}), (negtransfer.compare, {"models": ["stl"]})]:
        with pytest.raises(ValueError, match="seed must be a whole number >= 0, got None"):
            function(frame, tasks=tasks, seed=None, **arguments)
        with pytest.raises(TypeError, match="progress must be None or a callable progress.*got int"):
            function(frame, tasks=tasks, progress=3, **arguments)


def test_a_torch_device_is_accepted(patients):
    torch = pytest.importorskip("torch")
    frame = pd.read_csv(patients)
    report = negtransfer.gains(frame, tasks=["sick", "worse"], groups="all", repeats=1, max_epochs=1,
                               device=torch.device("cpu"))
    assert report.config["device"] == "cpu"


def test_every_report_prints_its_answer_in_one_short_line(patients):
    # the dataclass reprs ran to 2,000-5,000 characters of nested records
    frame = pd.read_csv(patients)
    tasks, small = ["sick", "worse", "stay"], {"repeats": 1, "max_epochs": 2}
    grouping = negtransfer.group(frame, tasks=tasks, budget=2, rounds=1, n_train_groups=2, **small)
    gains = negtransfer.gains(frame, tasks=tasks, groups="all", **small)
    sources = negtransfer.sources(frame, target="sick", tasks=tasks, alpha=1, n_subsets=3, holdout=0, **small)
    table = frame.assign(site=np.where(frame.age > 0, "north", "south"))
    comparison = negtransfer.compare(table, ["stl"], task_column="site", label="sick",
                                     features=["age", "dose", "bmi", "noise"], runs=1, iterations=3)
    for report in (grouping, gains, sources, comparison):
        assert len(repr(report)) < 400 and "\n" not in repr(report) and str(report) == repr(report)
    assert repr(grouping).startswith("GroupingReport(method='etap', dataset='data', tasks=('sick', 'worse', 'stay')")
    assert f"selected_groups={grouping.selected_groups!r}" in repr(grouping)
    assert f"negative_transfer={int((gains.to_frame().gain < 0).sum())})" in repr(gains)
    assert f"target='sick', selected={list(sources.selected)!r}" in repr(sources)
    assert "models=['stl'], tasks=['north', 'south'], runs=1" in repr(comparison)
    with pytest.raises(ValueError, match="no model reported the metric 'acuracy'; the metrics are: accuracy"):
        comparison.summary("acuracy")


def test_each_function_documents_every_parameter_and_the_network():
    import inspect

    from negtransfer import api

    for function in (api.gains, api.group, api.sources, api.compare):
        doc = inspect.getdoc(function)
        assert "Parameters\n----------" in doc and "Returns\n-------" in doc
        names = [name for name in inspect.signature(function).parameters if name != "options"]
        assert [name for name in names if not re.search(rf"\b{name}\b", doc)] == [], function.__name__
        if function.__name__ != "compare":  # compare trains named models, not your network
            assert "model=" in doc, function.__name__
    # help(negtransfer.gains) shows the package (the function's namesake): it says where the parameters are
    assert "help(negtransfer.api.gains)" in negtransfer.gains.__doc__


def test_an_executor_object_is_checked_and_takes_no_workers(patients):
    from negtransfer.runs.executors import make_executor

    frame = pd.read_csv(patients)
    with pytest.raises(TypeError, match="executor must be 'local', 'process', 'ray' or an executor object .*got int"):
        negtransfer.gains(frame, tasks=["sick", "worse"], groups="all", executor=3)
    with pytest.raises(TypeError, match="workers applies to an executor given by name"):
        negtransfer.gains(frame, tasks=["sick", "worse"], groups="all", executor=make_executor("local"), workers=4)


def test_executor_none_is_the_local_default():
    """A wrapper forwarding executor=None gets the default local executor (as the jobs read None), not a TypeError."""
    from negtransfer.api import _executor
    from negtransfer.runs.executors import InProcessExecutor

    assert isinstance(_executor(None, None), InProcessExecutor)
    assert _executor(None, 2).workers == 2


def test_gains_on_few_tasks_trains_every_group_as_the_command_line_does():
    """negtransfer.gains on 3 tasks without groups= trains all 4 groups with a warning (the default random:16 failed:
    'asked for 16 random groups but only 4 exist'), as `negtransfer gains` does; an explicit random:16 stays an
    error."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(90, 2)), columns=["x", "y"])
    frame["a"], frame["b"], frame["c"] = (frame.x > 0).astype(int), (frame.y > 0).astype(int), (frame.x > frame.y)
    frame["c"] = frame["c"].astype(int)
    with pytest.warns(UserWarning, match="all 4 are trained"):
        report = negtransfer.gains(frame, tasks=["a", "b", "c"], repeats=1, max_epochs=1)
    assert len({tuple(g) for g in report.to_frame()["group"]}) == 4
    with pytest.raises(ValueError, match="only 4 exist"):
        negtransfer.gains(frame, tasks=["a", "b", "c"], groups="random:16", repeats=1, max_epochs=1)
