"""The grouping job trains each repeat's all-task model once, also when it measures affinity on it."""

import numpy as np
import pytest

from negtransfer.jobs.grouping import GroupingOptions, run_grouping
from negtransfer.runs.executors import InProcessExecutor
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig


class Recording(InProcessExecutor):
    """The in-process executor, recording the (group, repeat) of every model it trains."""

    def __init__(self):
        super().__init__()
        self.models = []

    def run(self, dataset, chunks, config, seed, on_chunk):
        self.models += [(g, r) for chunk in chunks for g, r in chunk]
        super().run(dataset, chunks, config, seed, on_chunk)

    def map(self, work, items, on_result):
        self.models += [(spec.group, spec.repeat) for spec, *_ in items]
        super().map(work, items, on_result)


@pytest.mark.parametrize("method, trace", [("etap", 2), ("tag", 0), ("grad-tae", 0), ("hoa", 0)])
def test_the_all_task_model_is_trained_once_per_repeat(mixed_dataset, tmp_path, method, trace):
    options = GroupingOptions(budget=2, method=method, n_train_groups=3, repeats=2, rounds=1, affinity_every=2,
                              trace_pairs=trace)
    executor = Recording()
    store = RunStore(tmp_path / "s.sqlite")
    report = run_grouping(mixed_dataset, options, TrainConfig(max_epochs=3), 0, store, executor=executor).report.to_dict()
    everything = (0, 1, 2, 3)
    assert sorted(r for g, r in executor.models if g == everything) == [0, 1]
    assert len(set(executor.models)) == len(executor.models)  # no model trained twice
    assert report["runs"]["trained"] == len(executor.models) == report["runs"]["recommendation"]
    assert report["runs"]["stored_total"] == len(executor.models)
    assert (report["affinity"] is None) == (method == "hoa")
    assert ("affinity_trace" in report) == bool(trace)
    again = run_grouping(mixed_dataset, options, TrainConfig(max_epochs=3), 0, store, executor=Recording()).report.to_dict()
    assert again["runs"]["trained"] == 0
    np.testing.assert_array_equal(np.array(again["affinity"], dtype=float), np.array(report["affinity"], dtype=float))
