"""The one run path: run specifications, the key rule, ``ensure`` (store, executor, covering runs)."""

import json

import numpy as np
import pytest

from negtransfer.runs.executors import InProcessExecutor
from negtransfer.runs.runner import ensure, ensure_runs, repeated_results
from negtransfer.runs.specs import GROUP, RunSpec, group_specs, store_keys
from negtransfer.runs.store import RunStore
from negtransfer.runs.tracked import (
    TRACKED_ETAP,
    AffinityRuns,
    affinity_specs,
    measure_affinity,
)
from negtransfer.train.batched import repeat_seed
from negtransfer.train.config import TrainConfig

CFG = TrainConfig(max_epochs=3, patience=2, lr=0.05)
EVERYTHING = (0, 1, 2, 3)


class Recording(InProcessExecutor):
    """The in-process executor, recording every model it is sent: (kind, group, repeat)."""

    def __init__(self):
        super().__init__()
        self.models = []

    def run(self, dataset, chunks, config, seed, on_chunk):
        self.models += [("group", g, r) for chunk in chunks for g, r in chunk]
        super().run(dataset, chunks, config, seed, on_chunk)

    def map(self, work, items, on_result):
        self.models += [(spec.kind.name, spec.group, spec.repeat) for spec, *_ in items]
        super().map(work, items, on_result)


def _same(a, b):
    return (a.val_loss, a.test_loss, a.test_metric, a.best_epoch, a.epochs) == \
        (b.val_loss, b.test_loss, b.test_metric, b.best_epoch, b.epochs)


def test_a_spec_is_normalised_and_checked():
    spec = RunSpec(GROUP, (3, 1, 1), 2, CFG, {"b": 1, "a": 2})
    assert spec.group == (1, 3) and spec.extras == (("a", 2), ("b", 1)) and spec.extra("a") == 2
    assert spec.extra("missing", "default") == "default"
    with pytest.raises(ValueError, match="repeat must be a whole number >= 0, got -1"):
        RunSpec(GROUP, (0,), -1, CFG)
    with pytest.raises(ValueError, match="task indices >= 0"):
        RunSpec(GROUP, (-1, 2), 0, CFG)
    with pytest.raises(ValueError, match="repeats must be a whole number >= 1"):
        group_specs([(0,)], CFG, 0)


def test_the_key_rule_keeps_the_stored_keys():
    """Group runs keep their rows; GRAD-TAE keeps its v1 artifact; the tracked kinds moved to a new version."""
    seed, fp = 7, "fp"
    group = store_keys(RunSpec(GROUP, (2, 0), 1, CFG), fp, seed)
    assert group.run == (fp, "0+2", repeat_seed(seed, 1), CFG.config_hash()) and group.artifacts == ()

    tracked = store_keys(affinity_specs("etap", 4, CFG, 1, every=3, trace=True)[0], fp, seed)
    s, h = repeat_seed(seed, 0), CFG.config_hash()
    assert tracked.run == (fp, "0+1+2+3", s, h)  # the all-task group's row
    assert dict(tracked.artifacts) == {"affinity": f"affinity:v3:{fp}:{s}:{h}:every=3",
                                       "trace": f"affinity-trace:v1:{fp}:{s}:{h}:every=3"}
    tag = store_keys(affinity_specs("tag", 4, CFG, 2, every=3)[1], fp, seed)
    assert dict(tag.artifacts) == {"affinity": f"affinity-tag:v2:{fp}:{repeat_seed(seed, 1)}:{h}:every=3"}

    grad = store_keys(affinity_specs("grad-tae", 4, CFG, 1)[0], fp, seed)
    # the key measure_grad_tae_affinity wrote before the one run path
    old = (f"grad-tae:v1:{fp}:{s}:{h}:projection_dim=200:C=0.0001:subset_size=None:n_subsets=None:"
           "parameters=all:max_rows_per_task=5000")
    assert dict(grad.artifacts) == {"grad-tae": old} and grad.run == tracked.run


def test_the_tracked_run_is_the_all_task_run(tmp_path, mixed_dataset):
    """STL + the all-task group + ETAP's affinity for 2 repeats: the all-task model trains once per repeat."""
    store = RunStore(tmp_path / "s.sqlite")
    groups = group_specs([(t,) for t in range(4)] + [EVERYTHING], CFG, 2)
    tracked = affinity_specs("etap", 4, CFG, 2, every=2)
    executor, trained = Recording(), []
    outputs = ensure(mixed_dataset, groups + tracked, 0, store, executor=executor, trained=trained)
    assert sorted(executor.models) == sorted([("group", (t,), r) for t in range(4) for r in range(2)]
                                             + [("tracked-etap", EVERYTHING, r) for r in range(2)])
    assert len(trained) == len(executor.models) == 10 and store.count() == 10
    results = repeated_results(groups, outputs[: len(groups)])
    for r in range(2):  # the group spec reads the tracked run's row; the tracked output carries it too
        assert _same(results[EVERYTHING].runs[r], outputs[len(groups) + r].result)
    # bit-identical to the stacked trainer's all-task runs, in a store of their own
    stacked = ensure_runs(mixed_dataset, [EVERYTHING], CFG, 0, RunStore(tmp_path / "t.sqlite"), repeats=2)
    for r in range(2):
        assert _same(stacked[EVERYTHING].runs[r], results[EVERYTHING].runs[r])
    affinity = AffinityRuns.from_outputs(tracked, outputs[len(groups):], trained)
    assert affinity.reused == 0 and len(affinity.records) == 2 and affinity.trace is None
    A = affinity.matrix(4)
    assert A.shape == (4, 4) and np.isfinite(A[~np.eye(4, dtype=bool)]).all()

    # a second call trains nothing and reads the same numbers
    executor, trained = Recording(), []
    again = ensure(mixed_dataset, groups + tracked, 0, store, executor=executor, trained=trained)
    assert executor.models == [] and trained == []
    assert all(_same(a.result, b.result) for a, b in zip(outputs, again, strict=True))
    assert AffinityRuns.from_outputs(tracked, again[len(groups):], trained).reused == 2
    np.testing.assert_array_equal(AffinityRuns.from_outputs(tracked, again[len(groups):]).matrix(4), A)


def test_a_stored_all_task_run_without_its_affinity_trains_the_tracked_run_alone(tmp_path, mixed_dataset):
    store = RunStore(tmp_path / "s.sqlite")
    first = ensure_runs(mixed_dataset, [EVERYTHING], CFG, 0, store, repeats=2)
    executor, progress = Recording(), []
    A = measure_affinity(mixed_dataset, CFG, 0, every=2, store=store, repeats=2, executor=executor,
                         on_progress=lambda done, total: progress.append((done, total)))
    assert executor.models == [("tracked-etap", EVERYTHING, 0), ("tracked-etap", EVERYTHING, 1)]
    assert progress == [(0, 2), (1, 2), (2, 2)]
    assert store.count() == 2  # the rows the group runs wrote are kept (the tracked runs computed the same)
    again = ensure_runs(mixed_dataset, [EVERYTHING], CFG, 0, store, repeats=2)
    assert all(_same(a, b) for a, b in zip(first[EVERYTHING].runs, again[EVERYTHING].runs, strict=True))
    # without a store nothing is kept, and the numbers are the same
    np.testing.assert_array_equal(measure_affinity(mixed_dataset, CFG, 0, every=2, repeats=2), A)


def test_a_trace_is_kept_for_repeat_0_and_its_run_covers_the_others(tmp_path, mixed_dataset):
    store = RunStore(tmp_path / "s.sqlite")
    plain = affinity_specs("tag", 4, CFG, 2, every=2)
    traced = affinity_specs("tag", 4, CFG, 2, every=2, trace=True)
    assert [s.extra("trace") for s in traced] == [True, None]
    executor, trained = Recording(), []
    outputs = ensure(mixed_dataset, plain + traced, 0, store, executor=executor, trained=trained)
    # repeat 0 without a trace is covered by repeat 0 with one: two runs in all
    assert executor.models == [("tracked-tag", EVERYTHING, 0), ("tracked-tag", EVERYTHING, 1)]
    assert [s.extra("trace") for s in trained] == [True, None]
    runs = AffinityRuns.from_outputs(traced, outputs[2:])
    steps, matrices = runs.trace_steps(momentum=False)
    assert len(steps) == len(matrices) > 0 and matrices[0].shape == (4, 4)
    assert json.dumps(outputs[0].records["affinity"]) == json.dumps(outputs[2].records["affinity"])
    assert "trace" not in outputs[0].records
    with pytest.raises(ValueError, match="no trace"):
        AffinityRuns.from_outputs(plain, outputs[:2]).trace_steps(momentum=False)


def test_every_kind_honours_the_executor(tmp_path, mixed_dataset):
    """Group chunks go to ``executor.run``, every other kind to ``executor.map`` (here: GRAD-TAE's base model)."""
    from negtransfer.gains.grad_tae import GradTAE

    store = RunStore(tmp_path / "s.sqlite")
    specs = group_specs([(0,), (1, 2)], CFG, 1) + affinity_specs("grad-tae", 4, CFG, 1, estimator=GradTAE(
        projection_dim=8, n_subsets=4))
    executor = Recording()
    outputs = ensure(mixed_dataset, specs, 0, store, executor=executor)
    assert executor.models == [("group", (0,), 0), ("group", (1, 2), 0), ("grad-tae", EVERYTHING, 0)]
    stacked = ensure_runs(mixed_dataset, [EVERYTHING], CFG, 0, RunStore(tmp_path / "t.sqlite"))
    assert _same(outputs[2].result, stacked[EVERYTHING].runs[0])  # the base model is the all-task run
    A, cost = AffinityRuns.from_outputs(specs[2:], outputs[2:]).grad_tae()
    assert A.shape == (4, 4) and cost["projection_dim"] == 8 and cost["subsets"] == 4


def test_ensure_checks_its_inputs(tmp_path, mixed_dataset):
    store = RunStore(tmp_path / "s.sqlite")
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        ensure(mixed_dataset, [], 0, store, chunk_size=0)
    with pytest.raises(ValueError, match="a run of repeat 1 has no dataset: 1 given, one per repeat"):
        ensure([mixed_dataset], group_specs([(0,)], CFG, 2), 0, store)
    with pytest.raises(ValueError, match="needs the extra 'every'"):
        ensure(mixed_dataset, [RunSpec(TRACKED_ETAP, EVERYTHING, 0, CFG)], 0, store)
    with pytest.raises(ValueError, match="measure one of etap, tag, grad-tae; got 'hoa'"):
        affinity_specs("hoa", 4, CFG, 1)
    with pytest.raises(ValueError, match="every k-th step with k >= 1"):
        affinity_specs("etap", 4, CFG, 1, every=0)


@pytest.mark.slow  # a spawned process pool: over 5 s
def test_the_tracked_run_in_a_process_pool_gives_identical_numbers(tmp_path, mixed_dataset):
    from negtransfer.runs.executors import ProcessPoolExecutor

    specs = group_specs([(0,), EVERYTHING], CFG, 1) + affinity_specs("etap", 4, CFG, 2, every=2)
    here = ensure(mixed_dataset, specs, 0, RunStore(tmp_path / "a.sqlite"))
    pooled = ensure(mixed_dataset, specs, 0, RunStore(tmp_path / "b.sqlite"), executor=ProcessPoolExecutor(2))
    assert all(_same(a.result, b.result) and json.dumps(a.records) == json.dumps(b.records)
               for a, b in zip(here, pooled, strict=True))


def test_all_cores_give_the_numbers_of_one(tmp_path, mixed_dataset):
    """The default in-process executor trains one stack per core, in threads: the numbers of one thread."""
    import itertools

    import torch

    from negtransfer.runs.executors import InProcessExecutor
    from negtransfer.runs.runner import stack_count

    groups = [g for size in (1, 2, 3) for g in itertools.combinations(range(4), size)]  # 14 groups
    specs = group_specs(groups, CFG, 2)  # 28 runs
    threads = torch.get_num_threads()
    one = ensure(mixed_dataset, specs, 0, RunStore(tmp_path / "a.sqlite"), executor=InProcessExecutor(workers=1))
    trained: list = []
    three = ensure(mixed_dataset, specs, 0, RunStore(tmp_path / "b.sqlite"), executor=InProcessExecutor(workers=3),
                   trained=trained)
    assert torch.get_num_threads() == threads  # restored after the threads
    assert len(trained) == len(specs)
    assert all(_same(a.result, b.result) for a, b in zip(one, three, strict=True))
    assert stack_count(mixed_dataset, CFG, groups * 2, 3) == 3
    assert stack_count(mixed_dataset, CFG, groups[:10], 3) == 1  # under 8 runs per worker: fewer stacks
    assert stack_count(mixed_dataset, CFG, groups, 1) == 1  # one stack for the whole job


def test_stacks_split_where_memory_runs_out(mixed_dataset, monkeypatch):
    import negtransfer.train.batched as batched
    from negtransfer.runs.runner import stack_count

    groups = [(0,), (1,), (2,), (0, 1), (1, 2, 3)]
    one_model = batched.stack_bytes(mixed_dataset, CFG, (0,))
    assert one_model > 0 and batched.stack_bytes(mixed_dataset, CFG, (1, 2, 3)) >= one_model
    monkeypatch.setattr(batched, "STACK_MEMORY", 2 * one_model)
    assert stack_count(mixed_dataset, CFG, groups, 1) == 3
