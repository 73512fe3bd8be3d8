"""A damaged, foreign or unusable run store is refused at open, and never changed."""

import sqlite3

import pytest

from negtransfer.runs.store import RunStore, StoreError, recover_store
from negtransfer.train.batched import ModelResult


def _result(i):
    return ModelResult(group=(i,), val_loss={i: 0.5}, test_loss={i: 0.4 + i}, test_metric={i: 0.9},
                       best_epoch=3, epochs=5, seconds=0.1)


@pytest.fixture
def healthy(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path).put_many("fp", 0, "cfg", [_result(i) for i in range(600)])
    return path


def test_truncated_store_is_refused_untouched_and_recoverable(healthy, tmp_path):
    data = healthy.read_bytes()
    damaged = tmp_path / "cut.sqlite"
    damaged.write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError) as info:
        RunStore(damaged)
    message = str(info.value)
    for fragment in ("cut.sqlite", "is damaged", "mv ", "negtransfer recover-store", "docs/errors.md"):
        assert fragment in message
    assert "\n" not in message
    assert damaged.read_bytes() == data[: len(data) // 2]  # not a byte changed
    counts = recover_store(damaged, tmp_path / "rec.sqlite")
    assert 0 < counts["runs"] < 600
    store = RunStore(tmp_path / "rec.sqlite")
    assert store.count() == counts["runs"]
    got = store.get_many("fp", [(0,)], 0, "cfg")["0"]
    assert got.test_loss == {0: 0.4}
    with pytest.raises(StoreError, match="already exists"):
        recover_store(damaged, tmp_path / "rec.sqlite")  # never overwrites


def test_not_a_database(tmp_path):
    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n" * 50)
    with pytest.raises(StoreError, match="not a SQLite database"):
        RunStore(path)
    assert path.read_text().startswith("these are my notes")


def test_another_programs_database(tmp_path):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE runs (a, b)")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="not a negtransfer run store"):
        RunStore(path)


def test_folder_and_file_in_the_way(tmp_path):
    with pytest.raises(StoreError, match="is a folder"):
        RunStore(tmp_path)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match="is a file, not a folder"):
        RunStore(tmp_path / "afile" / "runs.sqlite")


def test_stored_rows_are_never_overwritten(healthy):
    store = RunStore(healthy)
    changed = _result(0)
    changed.test_loss[0] = 99.0
    store.put_many("fp", 0, "cfg", [changed])
    assert store.get_many("fp", [(0,)], 0, "cfg")["0"].test_loss == {0: 0.4}
    store.put_artifact("k", 1)
    store.put_artifact("k", 2)
    assert store.get_artifact("k") == 1
