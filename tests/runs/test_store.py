import math
import sys

import pytest

from negtransfer.runs.executors import InProcessExecutor, ProcessPoolExecutor, make_executor
from negtransfer.runs.group_specs import parse_group_spec, parse_sizes, random_groups, read_group_file
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.batched import ModelResult
from negtransfer.train.config import TrainConfig

CFG = TrainConfig(max_epochs=4, patience=2, lr=0.05)


def test_store_round_trip_and_missing(tmp_path):
    store = RunStore(tmp_path / "s.sqlite")
    r = ModelResult(group=(0, 2), val_loss={0: 0.5, 2: float("nan")}, test_loss={0: 0.4, 2: 0.3},
                    test_metric={0: 0.9, 2: float("nan")}, best_epoch=3, epochs=5, seconds=0.1)
    store.put_many("fp", 0, "cfg", [r])
    got = store.get_many("fp", [(2, 0)], 0, "cfg")["0+2"]
    assert got.test_loss == r.test_loss and got.group == (0, 2)
    assert math.isnan(got.val_loss[2])
    assert store.missing("fp", [(0, 2), (1,), (1,)], 0, "cfg") == [(1,)]
    assert store.missing("fp", [(0, 2)], 1, "cfg") == [(0, 2)]  # other seed
    assert store.missing("other", [(0, 2)], 0, "cfg") == [(0, 2)]  # other dataset


def test_ensure_runs_reuses_stored_runs(tmp_path, mixed_dataset):
    store = RunStore(tmp_path / "s.sqlite")
    groups = [(0,), (1,), (0, 1), (1, 2, 3)]
    calls = []

    class Counting(InProcessExecutor):
        def run(self, dataset, chunks, config, seed, on_chunk):
            calls.append([list(c) for c in chunks])
            super().run(dataset, chunks, config, seed, on_chunk)

    first = ensure_runs(mixed_dataset, groups, CFG, 0, store, executor=Counting(), chunk_size=3)
    assert calls == [[[((0,), 0), ((1,), 0), ((0, 1), 0)], [((1, 2, 3), 0)]]]
    second = ensure_runs(mixed_dataset, groups + [(2,)], CFG, 0, store, executor=Counting(), chunk_size=3)
    assert calls[-1] == [[((2,), 0)]]  # only the new group was trained
    assert all(first[g].test_loss == second[g].test_loss for g in groups)
    assert store.count() == 5


def test_more_repeats_reuse_the_repeats_already_run(tmp_path, mixed_dataset):
    store = RunStore(tmp_path / "s.sqlite")
    groups = [(0,), (0, 1)]
    one = ensure_runs(mixed_dataset, groups, CFG, 0, store, repeats=1)
    trained = []
    three = ensure_runs(mixed_dataset, groups, CFG, 0, store, repeats=3, chunk_size=16, trained=trained)
    assert sorted(trained) == [((0,), 1), ((0,), 2), ((0, 1), 1), ((0, 1), 2)]  # repeat 0 reused
    assert three[(0, 1)].runs[0].test_loss == one[(0, 1)].test_loss
    assert [run.repeat for run in three[(0, 1)].runs] == [0, 1, 2]
    losses = three[(0, 1)].values("test_loss", 1)
    assert len(set(losses.tolist())) == 3  # the repeats are different runs
    assert three[(0, 1)].test_loss[1] == pytest.approx(losses.mean())
    assert store.count() == 6


@pytest.mark.slow  # over 5 s: the default suite stays under 2 minutes
def test_process_pool_gives_identical_numbers(tmp_path, mixed_dataset):
    groups = [(0,), (1, 2), (0, 1, 2, 3)]
    local = ensure_runs(mixed_dataset, groups, CFG, 0, RunStore(tmp_path / "a.sqlite"), chunk_size=2)
    pooled = ensure_runs(mixed_dataset, groups, CFG, 0, RunStore(tmp_path / "b.sqlite"),
                         executor=ProcessPoolExecutor(workers=2), chunk_size=1)
    for g in groups:
        assert local[g].test_loss == pooled[g].test_loss


def test_make_executor_rejects_unknown():
    assert isinstance(make_executor("local"), InProcessExecutor)
    with pytest.raises(ValueError, match="unknown executor 'dask'; use 'local', 'process' or 'ray'"):
        make_executor("dask")


def test_an_unreachable_ray_address_is_one_clear_error_at_once():
    import socket

    from negtransfer.runs.executors import _check_reachable

    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    with pytest.raises(ValueError, match=f"--ray-address 127.0.0.1:{port}: no Ray cluster answers there"):
        _check_reachable(f"127.0.0.1:{port}")
    with pytest.raises(ValueError, match="give the head node's HOST:PORT"):
        _check_reachable("head-node")
    _check_reachable("auto")  # found by Ray itself


def test_ray_executor_without_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where Ray is not installed
    with pytest.raises(ImportError, match=r"pip install 'negtransfer\[ray\]'") as raised:
        make_executor("ray")
    assert "\n" not in str(raised.value)


def test_group_specs(tmp_path):
    names = ["a", "b", "c", "d"]
    assert parse_sizes("2-3", 4) == (2, 3) and parse_sizes(None, 4) == (2, 4)
    with pytest.raises(ValueError, match="--sizes"):
        parse_sizes("x", 4)
    assert len(parse_group_spec("all", names, (2, 4), 0)) == 11
    rg = random_groups(4, 5, (2, 3), seed=1)
    assert len(set(rg)) == 5 and all(2 <= len(g) <= 3 for g in rg)
    assert rg == random_groups(4, 5, (2, 3), seed=1)
    with pytest.raises(ValueError, match="only 6 exist"):
        random_groups(4, 7, (2, 2), seed=0)
    f = tmp_path / "groups.txt"
    f.write_text("a+b\n# comment\nc, d\n")
    assert read_group_file(f, names) == [(0, 1), (2, 3)]
    f.write_text("a+zz\n")
    with pytest.raises(ValueError, match="zz"):
        read_group_file(f, names)
    with pytest.raises(ValueError, match="random:N|existing file"):
        parse_group_spec("nope", names, (2, 4), 0)


def test_workers_and_group_file_errors(tmp_path):
    with pytest.raises(ValueError, match="--workers"):
        ProcessPoolExecutor(workers=0)
    with pytest.raises(ValueError, match="is a folder"):
        parse_group_spec(str(tmp_path), ["a", "b"], (2, 2), 0)
    with pytest.raises(ValueError, match="--groups random:6"):
        parse_group_spec("random:7", ["a", "b", "c", "d"], (2, 2), 0)
    with pytest.raises(ValueError, match="name more tasks"):
        parse_group_spec("random:3", ["a"], parse_sizes(None, 1), 0)


def test_a_store_shows_its_path(tmp_path):
    from negtransfer.runs.store import MEMORY

    assert repr(RunStore(tmp_path / "runs.sqlite")) == f"RunStore({str(tmp_path / 'runs.sqlite')!r})"
    assert repr(RunStore(MEMORY)) == "RunStore(':memory:')"
