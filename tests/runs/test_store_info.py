"""``negtransfer store-info`` and :mod:`negtransfer.runs.store_info`: a run store's finished runs and its fits in
flight, read without changing a byte."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from negtransfer.cli import app
from negtransfer.runs.runner import checkpoint_root
from negtransfer.runs.store import RunStore, StoreError
from negtransfer.runs.store_info import checkpoints_beside, fits_in_flight, store_info, stored_runs
from negtransfer.train.batched import ModelResult
from negtransfer.train.checkpoint import FitSlot

runner = CliRunner()


def _result(i):
    return ModelResult(group=(i,), val_loss={i: 0.5}, test_loss={i: 0.4}, test_metric={i: 0.9}, best_epoch=3,
                       epochs=5, seconds=0.1)


def _fit_state(rounds, max_rounds, unit="epoch", steps=None, stop=False, wall=None, seconds=None):
    """What FitLoop saves, with only the fields store-info reads (FitSlot.save adds the version); without ``wall``
    (``(wall seconds, rounds they cover)``) and ``seconds``, a state as FitLoop saved it before it recorded them."""
    state = {"signature": {"tasks": [0, 1], "max_rounds": max_rounds, "unit": unit, "parameters": [],
                           "callbacks": [], "resumable": []},
             "rounds": rounds, "steps": rounds if steps is None else steps, "stop": stop}
    if seconds is not None:
        state["seconds"] = seconds
    if wall is not None:
        state["wall_seconds"], state["wall_rounds"] = wall
    return state


def _saved(path, state, seconds_ago):
    assert FitSlot(path, 0.0).save(state)
    then = time.time() - seconds_ago
    os.utime(path, (then, then))


def _snapshot(folder):
    """Every file under ``folder``: its bytes and modification time."""
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


def tiny_sequences(seed):
    """Two binary tasks on 50 short sequences (tests/jobs/test_compare.py's data)."""
    from negtransfer.data.timeseries import timeseries_dataset

    rng = np.random.default_rng(seed)
    values = rng.normal(size=(50, 4, 3))
    labels = np.stack([(values[:, :, 0].mean(1) > 0), (values[:, :, 1].mean(1) > 0)], axis=1).astype(float)
    return timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"], seed=seed)


class _Crash(Exception):
    """Stands for the process dying."""


def test_a_job_killed_mid_fit_shows_its_finished_unit_and_the_fit_in_flight(tmp_path, monkeypatch):
    """A compare job of two units killed at epoch 3 of 6 of its second unit: one unit stored, one fit in flight
    at the epoch its last save recorded; the command reads it and leaves every file as it was."""
    from negtransfer.jobs.compare import CompareOptions, run_compare
    from negtransfer.models.base import FitOptions
    from negtransfer.train import checkpoint

    monkeypatch.setattr(checkpoint, "SAVE_EVERY_SECONDS", 0.0)
    save, saves_at_3 = checkpoint.FitSlot.save, []

    def save_then_crash_in_the_second_unit(self, state):
        save(self, state)
        if state["rounds"] == 3:
            saves_at_3.append(self.path)
            if len(saves_at_3) == 2:
                raise _Crash

    monkeypatch.setattr(checkpoint.FitSlot, "save", save_then_crash_in_the_second_unit)
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    options = CompareOptions(("tp-amtl",), runs=2, fit=FitOptions(epochs=6, settings={"mc_samples": 2}))
    with pytest.raises(_Crash):
        run_compare(tiny_sequences, "tiny", options, 0, store)
    assert checkpoints_beside(path) == checkpoint_root(store)

    info = store_info(path)
    assert (info.runs.model_runs, info.runs.artifacts, info.runs.artifact_kinds) == (0, 1, {"compare": 1})
    assert len(info.fits) == 1 and info.units == 1
    fit = info.fits[0]
    assert fit.path == saves_at_3[1] and fit.digest == saves_at_3[1].parent.name and fit.fit == 0
    assert (fit.readable, fit.rounds, fit.max_rounds, fit.unit, fit.stopped, fit.ended) == \
        (True, 3, 6, "epoch", False, False)
    assert fit.fraction == 0.5 and 0 <= info.read_at - fit.saved < 60
    assert fit.label == "tp-amtl@v2 run 1"  # the second unit: its model (as its store key names it) and run
    # its rate: the wall time of its 3 epochs (training, validation, saves), the training steps' part of it
    assert fit.wall_rounds == 3 and 0 < fit.training_seconds < fit.wall_seconds < 60
    assert fit.seconds_per_round == pytest.approx(fit.wall_seconds / 3)
    assert fit.training_seconds_per_round == pytest.approx(fit.training_seconds / 3)
    assert fit.seconds_left == pytest.approx(3 * fit.seconds_per_round)  # epochs 4-6 at that rate

    before = _snapshot(tmp_path)
    res = runner.invoke(app, ["store-info", str(path)])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[:2] == ["runs.sqlite: 0 model runs, 1 artifact (compare 1)",
                         "fits in flight (1 unit, in runs.sqlite.checkpoints/):"] and len(lines) == 3
    assert re.fullmatch(rf"  unit tp-amtl@v2 run 1 \({fit.digest[:8]}…\), fit 0: epoch 3 of 6 \(50%\), "
                        rf"[0-9.e-]+ s an epoch, about \d+ s left, saved \d+ s ago", lines[2]), lines
    assert _snapshot(tmp_path) == before  # read-only: no byte, no modification time, no journal file changed


def test_finished_runs_are_counted_and_artifacts_by_the_kind_their_key_names(tmp_path):
    path = tmp_path / "s.sqlite"
    store = RunStore(path)
    store.put_many("fp", 0, "cfg", [_result(i) for i in range(3)])
    store.put_many("fp", 1, "cfg", [_result(0)])
    for key in ("compare:v5:fp:stl:lstm:c:0:fgsm=():threads=1", "compare:v5:fp:stl:lstm:c:1:fgsm=():threads=1",
                "affinity:v3:fp:0:cfg:every=1", "affinity-trace:v1:fp:0:cfg:every=1", "no-colon"):
        store.put_artifact(key, {"x": 1})
    runs = stored_runs(path)
    assert (runs.model_runs, runs.artifacts) == (4, 5)
    assert list(runs.artifact_kinds.items()) == [("compare", 2), ("affinity", 1), ("affinity-trace", 1),
                                                 ("no-colon", 1)]  # most first, then by name
    info = store_info(path)
    assert info.fits == () and info.checkpoints == tmp_path.absolute() / "s.sqlite.checkpoints"
    assert not info.checkpoints.exists()
    res = runner.invoke(app, ["store-info", str(path)])
    assert res.exit_code == 0, res.output
    assert res.stdout.splitlines() == [
        "s.sqlite: 4 model runs, 5 artifacts (compare 2, affinity 1, affinity-trace 1, no-colon 1)",
        "no fits in flight (s.sqlite.checkpoints/ holds none)"]


def test_fits_are_listed_by_unit_and_number_and_a_damaged_file_as_unreadable(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path).put_many("fp", 0, "cfg", [_result(0)])
    root = checkpoints_beside(path)
    unit_a, unit_b = root / ("a" * 32), root / ("b" * 32)
    _saved(unit_a / "fit-0.pt", _fit_state(549, 2000, wall=(1098.0, 549), seconds=400.0), seconds_ago=190)
    _saved(unit_a / "fit-10.pt", _fit_state(40, 2000, stop=True), seconds_ago=2 * 3600 + 5 * 60 + 3)
    _saved(unit_a / "fit-2.pt", _fit_state(2000, 2000), seconds_ago=3 * 86400)
    _saved(unit_b / "fit-0.pt", _fit_state(12, 150, unit="iteration", steps=1200), seconds_ago=125)
    (unit_b / "fit-1.pt").write_bytes(b"PK\x03\x04 not a whole zip file" * 10)  # a damaged state
    torch.save({"version": 999, "rounds": 1}, unit_b / "fit-2.pt")  # another checkpoint version
    torch.save([1, 2, 3], unit_b / "fit-3.pt")  # not a fit's state at all
    for number in (1, 2, 3):
        then = time.time() - 20 * 60
        os.utime(unit_b / f"fit-{number}.pt", (then, then))
    (unit_b / "fit-4.pt.123-456.partial").write_bytes(b"a save in progress")
    (unit_b / "notes.txt").write_text("not a fit")
    (root / "stray-file").write_text("not a unit")

    fits = fits_in_flight(root)
    assert [(f.digest[0], f.fit) for f in fits] == [("a", 0), ("a", 2), ("a", 10), ("b", 0), ("b", 1), ("b", 2),
                                                    ("b", 3)]
    assert [f.readable for f in fits] == [True] * 4 + [False] * 3
    assert [f.ended for f in fits] == [False, True, True, False, False, False, False]
    assert fits[5].rounds is None and fits[5].fraction is None
    assert fits_in_flight(tmp_path / "absent") == ()

    res = runner.invoke(app, ["store-info", str(path)])
    assert res.exit_code == 0, res.output
    unreadable = "unreadable (a damaged file, or saved by another version of negtransfer)"
    assert res.stdout.splitlines() == [
        "runs.sqlite: 1 model run, 0 artifacts",
        "fits in flight (2 units, in runs.sqlite.checkpoints/):",
        "  unit aaaaaaaa…, fit 0: epoch 549 of 2,000 (27%), 2 s an epoch, about 48 min left, saved 3 min ago",
        "  unit aaaaaaaa…, fit 2: done: epoch 2,000 of 2,000, saved 3 days ago",
        "  unit aaaaaaaa…, fit 10: stopped early at epoch 40 of 2,000, saved 2 h 5 min ago",
        "  unit bbbbbbbb…, fit 0: round 12 of 150 (8%, 1,200 iterations), rate not known, saved 2 min ago",
        f"  unit bbbbbbbb…, fit 1: {unreadable}, saved 20 min ago",
        f"  unit bbbbbbbb…, fit 2: {unreadable}, saved 20 min ago",
        f"  unit bbbbbbbb…, fit 3: {unreadable}, saved 20 min ago",
    ]

    res = runner.invoke(app, ["store-info", "--json", str(path)])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (report["store"], report["model_runs"], report["artifacts"], report["artifact_kinds"]) == \
        (str(path), 1, 0, {})
    assert report["checkpoints"] == str(root) and len(report["fits"]) == 7
    first, early, damaged = report["fits"][0], report["fits"][2], report["fits"][4]
    assert {k: first[k] for k in ("unit", "fit", "readable", "rounds", "max_rounds", "unit_of_rounds", "ended",
                                  "stopped_early")} == \
        {"unit": "a" * 32, "fit": 0, "readable": True, "rounds": 549, "max_rounds": 2000, "unit_of_rounds": "epoch",
         "ended": False, "stopped_early": False}
    assert 189 <= first["seconds_since_saved"] < 250 and first["saved"].endswith("+00:00")
    assert {k: first[k] for k in ("training_seconds", "training_seconds_per_round", "wall_seconds", "wall_rounds",
                                  "seconds_per_round", "seconds_left")} == \
        {"training_seconds": 400.0, "training_seconds_per_round": round(400 / 549, 4), "wall_seconds": 1098.0,
         "wall_rounds": 549, "seconds_per_round": 2.0, "seconds_left": 2902.0}  # (2000 - 549) epochs at 2 s
    unknown = report["fits"][3]
    assert (unknown["unit_of_rounds"], unknown["seconds_per_round"], unknown["seconds_left"]) == \
        ("iteration", None, None)
    assert early["seconds_left"] == 0.0  # ended: nothing left, whatever its rate
    assert (early["fit"], early["ended"], early["stopped_early"]) == (10, True, True)
    assert (damaged["readable"], damaged["rounds"], damaged["ended"]) == (False, None, None)
    assert damaged["path"] == str(unit_b / "fit-1.pt")


def _store_error(path, *fragments):
    with pytest.raises(StoreError) as info:
        store_info(path)
    message = str(info.value)
    assert "\n" not in message and str(path.name) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    res = runner.invoke(app, ["store-info", str(path)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert res.stdout == ""


def test_what_is_not_a_run_store_is_named_and_left_as_it_is(tmp_path):
    _store_error(tmp_path / "missing.sqlite", "does not exist", "OUT/runs.sqlite")
    assert not (tmp_path / "missing.sqlite").exists() and list(tmp_path.iterdir()) == []

    out = tmp_path / "out"
    RunStore(out / "runs.sqlite")
    _store_error(out, "is a folder", f"is {out / 'runs.sqlite'}")

    csv = tmp_path / "data.csv"
    csv.write_text("a,b\n1,2\n")
    _store_error(csv, "a data file (.csv)", "not a run store")
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    _store_error(empty, "empty (0 bytes)", "not a run store")

    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE people (name)")
    con.commit()
    con.close()
    _store_error(other, "not a negtransfer run store", "people")
    named_alike = tmp_path / "alike.sqlite"  # tables named as a store's, with other columns
    con = sqlite3.connect(named_alike)
    con.execute("CREATE TABLE runs (a, b)")
    con.execute("CREATE TABLE artifacts (a)")
    con.commit()
    con.close()
    _store_error(named_alike, "not a negtransfer run store")

    healthy = tmp_path / "healthy.sqlite"
    RunStore(healthy).put_many("fp", 0, "cfg", [_result(i) for i in range(600)])
    data = healthy.read_bytes()
    cut = tmp_path / "cut.sqlite"
    cut.write_bytes(data[: len(data) // 2])
    _store_error(cut, "is damaged", "negtransfer recover-store", "docs/errors.md")
    assert cut.read_bytes() == data[: len(data) // 2]


def test_a_write_left_unfinished_by_a_killed_job_is_named_not_undone(tmp_path):
    """A job killed inside a transaction leaves a hot journal; only a writer may roll it back, so store-info says
    so (a job's next RunStore open undoes it) and changes nothing."""
    live = tmp_path / "live.sqlite"
    RunStore(live).put_artifact("compare:x", 1)
    con = sqlite3.connect(live, isolation_level=None)
    con.execute("PRAGMA cache_size=10")  # spill the transaction's pages into the file before it commits
    con.execute("BEGIN IMMEDIATE")
    con.executemany("INSERT INTO artifacts VALUES (?, ?, 0)", ((f"k{i}", "x" * 500) for i in range(3000)))
    killed = tmp_path / "killed.sqlite"  # the files as a process killed at this moment leaves them
    shutil.copyfile(live, killed)
    shutil.copyfile(tmp_path / "live.sqlite-journal", tmp_path / "killed.sqlite-journal")
    con.execute("ROLLBACK")
    con.close()
    before = _snapshot(tmp_path)
    _store_error(killed, "left unfinished", "killed.sqlite-journal", "run the job's command again")
    assert _snapshot(tmp_path) == before
    RunStore(killed)  # a job's open rolls the write back
    assert stored_runs(killed).artifact_kinds == {"compare": 1}


def _temporal_fit(folder, crash_at):
    """A real TP-AMTL fit of 12 epochs saving after every epoch into ``folder``, dying after epoch ``crash_at``."""
    from negtransfer.models.clinical import build_model, model_weighting
    from negtransfer.train.checkpoint import resume_fits
    from negtransfer.train.temporal import TemporalTrainConfig, fit

    def on_epoch(done, total):
        if done == crash_at:
            raise _Crash

    torch.manual_seed(0)
    model = build_model("tp-amtl", 3, 2)
    config = TemporalTrainConfig(max_epochs=12, patience=12, mc_samples=2, validation_mc_samples=2)
    with resume_fits(folder, every_seconds=0, label="tp-amtl run 0"), pytest.raises(_Crash):
        fit(model, tiny_sequences(0), config=config, seed=3, weighting=model_weighting("tp-amtl", model, 2),
            on_epoch=on_epoch)


def test_a_state_saved_before_timing_says_rate_not_known_and_its_resumed_fit_times_its_new_epochs(tmp_path):
    """A state without wall time (saved by a FitLoop before it recorded one; a TP-AMTL one also had 0 training
    seconds) has no time left; resumed, the fit's rate is measured over the epochs trained since, not spread over
    the epochs it did not time."""
    path = tmp_path / "runs.sqlite"
    RunStore(path)
    unit = checkpoints_beside(path) / ("c" * 32)
    _temporal_fit(unit, crash_at=5)  # the state of epoch 4 (on_epoch ends epoch 5 before it is saved)
    state = torch.load(unit / "fit-0.pt", weights_only=True)
    assert state["rounds"] == 4 and state["wall_rounds"] == 4 and state["seconds"] > 0
    del state["wall_seconds"], state["wall_rounds"]
    state["seconds"] = 0.0  # as the temporal family saved it before it measured its epochs
    torch.save(state, unit / "fit-0.pt")

    (old,) = fits_in_flight(checkpoints_beside(path))
    assert (old.rounds, old.training_seconds, old.wall_rounds) == (4, 0.0, 0)
    assert old.seconds_per_round is None and old.training_seconds_per_round is None and old.seconds_left is None
    line = runner.invoke(app, ["store-info", str(path)]).stdout.splitlines()[2]
    assert re.fullmatch(r"  unit tp-amtl run 0 \(cccccccc…\), fit 0: epoch 4 of 12 \(33%\), rate not known, "
                        r"saved \d+ s ago", line), line

    _temporal_fit(unit, crash_at=8)  # resumes at epoch 5, saves epochs 5-7
    (resumed,) = fits_in_flight(checkpoints_beside(path))
    assert (resumed.rounds, resumed.wall_rounds) == (7, 3)
    assert resumed.seconds_per_round == pytest.approx(resumed.wall_seconds / 3)
    assert resumed.seconds_left == pytest.approx(5 * resumed.wall_seconds / 3)
    assert 0 < resumed.training_seconds < resumed.wall_seconds  # epochs 5-7's steps only
    line = runner.invoke(app, ["store-info", str(path)]).stdout.splitlines()[2]
    assert re.fullmatch(r"  unit tp-amtl run 0 \(cccccccc…\), fit 0: epoch 7 of 12 \(58%\), [0-9.e-]+ s an epoch, "
                        r"about \d+ s left, saved \d+ s ago", line), line


@pytest.mark.parametrize(("seconds", "text"), [
    (0.4, "0 s"), (40.4, "40 s"), (59.6, "1 min"), (89, "1 min"), (91, "2 min"), (3569, "59 min"), (3599, "1 h"),
    (6000, "1 h 40 min"), (47 * 3600 + 59 * 60, "47 h 59 min"), (2 * 86400 + 3 * 3600 + 600, "2 days 3 h"),
    (3 * 86400, "3 days")])
def test_durations_are_rounded_to_the_unit_they_are_given_in(seconds, text):
    from negtransfer.cli.store_info import duration

    assert duration(seconds) == text


def test_the_watcher_shows_fits_still_training_since_the_job_began_and_rereads_only_changed_states(tmp_path,
                                                                                                     monkeypatch):
    from negtransfer.runs.store_info import FitWatcher

    root = tmp_path / "runs.sqlite.checkpoints"
    unit_a, unit_b = root / ("a" * 32), root / ("b" * 32)
    _saved(unit_a / "fit-0.pt", _fit_state(100, 2000, wall=(250.0, 100)), seconds_ago=30)
    _saved(unit_a / "fit-1.pt", _fit_state(2000, 2000, wall=(5000.0, 2000)), seconds_ago=10)  # ended
    _saved(unit_b / "fit-0.pt", _fit_state(40, 2000), seconds_ago=3600)  # left by an earlier job
    (unit_b / "fit-1.pt").write_bytes(b"damaged")
    reads = []
    read = FitSlot.read
    monkeypatch.setattr(FitSlot, "read", lambda self: reads.append(self.path.name) or read(self))

    watcher = FitWatcher(root, since=time.time() - 600)
    assert [(f.digest[0], f.fit, f.rounds) for f in watcher.running()] == [("a", 0, 100)]
    assert len(reads) == 4
    assert [f.rounds for f in watcher.running()] == [100] and len(reads) == 4  # nothing changed: nothing read
    _saved(unit_b / "fit-0.pt", _fit_state(41, 2000), seconds_ago=0)  # the job resumed it and saved
    assert [(f.digest[0], f.rounds) for f in watcher.running()] == [("a", 100), ("b", 41)]
    assert reads[4:] == ["fit-0.pt"]  # only the state written since
    shutil.rmtree(unit_a)  # its unit was stored
    assert [(f.digest[0], f.rounds) for f in watcher.running()] == [("b", 41)] and len(reads) == 5
    assert FitWatcher(tmp_path / "absent", since=0).running() == ()
