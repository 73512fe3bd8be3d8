"""Grouping methods as plug-ins: the registry, the built-ins' behaviour, and a toy method run end to end."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from negtransfer.cli import app
from negtransfer.data.task_sets import TaskSet
from negtransfer.jobs.grouping import GroupingOptions
from negtransfer.jobs.grouping_methods import (
    BUILTIN_METHODS,
    GroupingMethod,
    PairsMethod,
    PredictorMethod,
    get_method,
    method_names,
    register,
    unregister,
)
from negtransfer.jobs.grouping_report import MethodMeasurement


class TaskMeanGain:
    """A toy gain predictor: each task's mean measured gain, for every group holding it (0 alone)."""

    def fit(self, U, Y):
        U = np.asarray(U, dtype=bool)
        with np.errstate(invalid="ignore"):
            self.mean_ = np.nanmean(np.where(U, Y, np.nan), axis=0)
        self.mean_ = np.nan_to_num(self.mean_)
        return self

    def predict(self, U):
        U = np.asarray(U, dtype=bool)
        out = np.where(U, self.mean_[None, :], np.nan)
        out[U.sum(axis=1) == 1] = np.where(U[U.sum(axis=1) == 1], 0.0, np.nan)
        return out


@dataclass(frozen=True)
class AnchorMethod(GroupingMethod):
    """A toy method: trains the pairs holding task 0 first and 'measures' how many tasks there are."""

    def training_groups(self, n_tasks, options, seed):
        return [TaskSet((0, t)) for t in range(1, n_tasks)]

    def n_training_groups(self, n_tasks, n_train_groups):
        return n_tasks - 1

    def measure(self, context):
        return MethodMeasurement.of(cost={"tasks_seen": context.dataset.n_tasks})


def _toy_builder(affinity, seed, fixed):
    assert affinity is None  # the toy measures no affinity
    return TaskMeanGain()


@pytest.fixture
def toy_method():
    method = register(AnchorMethod("toy-anchor", "this test", _toy_builder))
    yield method
    unregister(method.name)


@pytest.fixture
def tiny_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(240, 3))
    frame = pd.DataFrame(X, columns=["x1", "x2", "x3"])
    frame["a"] = (X[:, 0] > 0).astype(int)
    frame["b"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame["c"] = X[:, 2] + rng.normal(size=240)
    path = tmp_path / "tiny.csv"
    frame.to_csv(path, index=False)
    return path


def test_a_toy_method_registered_here_runs_through_the_cli(toy_method, tiny_csv, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["group", "--data", str(tiny_csv), "--tasks", "a,b,c", "--features", "x1,x2,x3",
                                   "--method", "toy-anchor", "--budget", "2", "--epochs", "2", "--repeats", "1",
                                   "--rounds", "2", "--out", str(out), "-q"])
    assert res.exit_code == 0, res.output
    rep = json.loads((out / "report.json").read_text())
    assert rep["method"] == "toy-anchor" and rep["affinity"] is None and rep["affinity_momentum"] is None
    # its own first groups (the pairs holding task a) and the all-task group, and what it measured
    assert rep["train_groups"] == [["a", "b"], ["a", "c"], ["a", "b", "c"]]
    assert rep["method_cost"] == {"tasks_seen": 3}
    assert {t for g in rep["selected_groups"] for t in g} == {"a", "b", "c"}
    assert rep["refinement"]["one_shot_runs"] == 1 * (3 + 1 + 2 + 2)  # STL, all-task, 2 pairs, budget
    assert "Cost of the toy-anchor method" in (out / "report.md").read_text()


def test_the_cli_reads_the_method_choices_when_it_runs(toy_method, tiny_csv, tmp_path):
    args = ["group", "--data", str(tiny_csv), "--tasks", "a,b,c", "--features", "x1,x2,x3", "--out",
            str(tmp_path / "o"), "-q", "--method"]
    unregister(toy_method.name)
    res = CliRunner().invoke(app, args + ["toy-anchor"])
    assert res.exit_code == 2 and "toy-anchor" in res.output and "grad-tae" in res.output  # lists the methods
    register(toy_method)  # the fixture removes it again


def test_registry():
    assert method_names()[: len(BUILTIN_METHODS)] == ("etap", "tag", "hoa", "linear-surrogate", "mtgnet", "ayman",
                                                       "grad-tae")
    with pytest.raises(ValueError, match="registered already"):
        register(get_method("etap"))
    with pytest.raises(TypeError, match="GroupingMethod"):
        register("etap")
    with pytest.raises(ValueError, match="unknown grouping method 'nope'.*etap, tag"):
        get_method("nope")
    toy = register(PredictorMethod("toy-plain", "here", _toy_builder))
    try:
        assert get_method("toy-plain") is toy and GroupingOptions(method="toy-plain").check(3) is None
        with pytest.raises(ValueError, match="--trace.*use etap or tag"):  # no tracked all-task run to trace
            GroupingOptions(method="toy-plain", trace_pairs=2).check(3)
    finally:
        unregister("toy-plain")
    with pytest.raises(ValueError, match="--method must be one of"):
        GroupingOptions(method="toy-plain").check(3)


def test_builtin_methods_behaviour():
    options = GroupingOptions(n_train_groups=3, repeats=2, budget=2)
    hoa, ayman, etap = get_method("hoa"), get_method("ayman"), get_method("etap")
    assert isinstance(hoa, PairsMethod) and not hoa.draws_training_groups and etap.draws_training_groups
    assert hoa.training_groups(4, options, 0) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert len(ayman.training_groups(4, options, 0)) == 6 + 3 and all(len(g) == 3 for g in
                                                                     ayman.training_groups(4, options, 0)[6:])
    assert [len(g) for g in etap.training_groups(4, options, 0)] and len(etap.training_groups(4, options, 0)) == 3
    # one-shot runs: repeats x (STL + all-task + training groups + budget)
    assert hoa.one_shot_runs(4, options) == 2 * (4 + 1 + 6 + 2)
    assert ayman.one_shot_runs(4, options) == 2 * (4 + 1 + 6 + 3 + 2)
    assert etap.one_shot_runs(4, options) == 2 * (4 + 1 + 3 + 2)
    assert etap.measures_affinity and etap.traceable and get_method("grad-tae").measures_affinity
    assert not get_method("grad-tae").traceable and not hoa.measures_affinity
    assert get_method("tag").affinity_momentum and not etap.affinity_momentum
