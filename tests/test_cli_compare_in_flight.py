"""``negtransfer compare``'s progress: the fits in flight below the bar (cli/compare.py), read from the states they
save beside the run store, as ``negtransfer store-info`` reads them."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from negtransfer.cli.compare import InFlightProgress, fit_in_flight_text, in_flight, in_flight_text
from negtransfer.runs.store_info import FitProgress
from negtransfer.train.checkpoint import FitSlot


def _fit(rounds=109, max_rounds=2000, unit="epoch", wall=(218.0, 109), label="tp-amtl@v2 run 2", fit=0, stop=False):
    return FitProgress("d" * 32, fit, Path("fit.pt"), 0.0, True, rounds=rounds, max_rounds=max_rounds, unit=unit,
                       steps=rounds, stopped=stop, label=label, training_seconds=1.0, wall_seconds=wall[0],
                       wall_rounds=wall[1])


def test_each_fit_in_flight_reads_as_its_unit_its_round_and_the_time_left():
    assert fit_in_flight_text(_fit()) == "tp-amtl@v2 run 2 epoch 109/2,000 (about 1 h 3 min left)"  # 1891 x 2 s
    assert fit_in_flight_text(_fit(wall=(0.0, 0))) == "tp-amtl@v2 run 2 epoch 109/2,000 (rate not known)"
    assert fit_in_flight_text(_fit(12, 150, "iteration", (30.0, 12), "vmtl run 0")) == \
        "vmtl run 0 round 12/150 (about 6 min left)"  # 138 rounds x 2.5 s: 5.75 min
    assert fit_in_flight_text(_fit(label=None, fit=3, wall=(10.9, 109))) == \
        "dddddddd… fit 3 epoch 109/2,000 (about 3 min left)"  # 1891 x 0.1 s
    three = in_flight_text((_fit(5, 10, wall=(10.0, 5), label="tp-amtl@v2 run 10"), _fit(),
                            _fit(5, 10, wall=(10.0, 5), label="tp-amtl@v2 run 3")))  # as their folders sort
    assert three.splitlines() == ["in flight: tp-amtl@v2 run 2 epoch 109/2,000 (about 1 h 3 min left)",
                                  "in flight: tp-amtl@v2 run 3 epoch 5/10 (about 10 s left)",
                                  "in flight: tp-amtl@v2 run 10 epoch 5/10 (about 10 s left)"]  # by run number
    assert in_flight_text(()) == ""


def _state(rounds, max_rounds=2000, wall=(218.0, 109), label="tp-amtl@v2 run 2"):
    return {"label": label, "signature": {"tasks": [0], "max_rounds": max_rounds, "unit": "epoch"},
            "rounds": rounds, "steps": rounds, "stop": False, "seconds": 1.0, "wall_seconds": wall[0],
            "wall_rounds": wall[1]}


def _save(path: Path, state: dict, seconds_ago: float = 0.0) -> None:
    label = state.pop("label")
    assert FitSlot(path, 0.0, label).save(state)
    then = time.time() - seconds_ago
    os.utime(path, (then, then))


class _Console:
    """Stands for the console's ``progress(stage, done, total, detail="")``: records every call."""

    def __init__(self):
        self.calls: list[tuple] = []

    def __call__(self, stage, done, total, detail=""):
        self.calls.append((stage, done, total, detail))


def test_the_bar_carries_the_fits_in_flight_while_units_are_pending(tmp_path):
    root = tmp_path / "runs.sqlite.checkpoints"
    console = _Console()
    shown = InFlightProgress(console, root, since=time.time() - 60)
    shown.redraw()
    assert console.calls == []  # nothing reported yet: no bar to draw
    shown("models x runs", 17, 20)
    assert console.calls[-1] == ("models x runs", 17, 20, "")  # no fit in flight yet
    _save(root / ("a" * 32) / "fit-0.pt", _state(109))
    _save(root / ("b" * 32) / "fit-0.pt", _state(40, label="tp-amtl@v2 run 4"), seconds_ago=3600)  # an older job's
    shown.redraw()
    assert console.calls[-1] == ("models x runs", 17, 20,
                                 "in flight: tp-amtl@v2 run 2 epoch 109/2,000 (about 1 h 3 min left)")
    _save(root / ("a" * 32) / "fit-0.pt", _state(139, wall=(278.0, 139)))
    shown.redraw()
    assert console.calls[-1][3] == "in flight: tp-amtl@v2 run 2 epoch 139/2,000 (about 1 h 2 min left)"
    shown("models x runs", 20, 20)
    assert console.calls[-1] == ("models x runs", 20, 20, "")  # every unit stored


def test_a_thread_redraws_the_fits_in_flight_until_the_job_ends(tmp_path):
    root = tmp_path / "checkpoints"
    console = _Console()
    with InFlightProgress(console, root, since=time.time() - 60, every=0.01) as shown:
        shown("models x runs", 0, 2)
        _save(root / ("a" * 32) / "fit-0.pt", _state(3, max_rounds=6, wall=(3.0, 3)))
        deadline = time.time() + 10
        while not any(call[3] for call in console.calls) and time.time() < deadline:
            time.sleep(0.01)
        assert console.calls[-1][3] == "in flight: tp-amtl@v2 run 2 epoch 3/6 (about 3 s left)"
        thread = shown._thread
    assert thread is not None and not thread.is_alive()
    assert not [t for t in threading.enumerate() if t.name == "negtransfer-fits-in-flight"]


def tiny_sequences(seed):
    """Two binary tasks on 50 short sequences (tests/jobs/test_compare.py's data)."""
    from negtransfer.data.timeseries import timeseries_dataset

    rng = np.random.default_rng(seed)
    values = rng.normal(size=(50, 4, 3))
    labels = np.stack([(values[:, :, 0].mean(1) > 0), (values[:, :, 1].mean(1) > 0)], axis=1).astype(float)
    return timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"], seed=seed)


@pytest.mark.usefixtures("one_torch_thread")
def test_a_compare_job_shows_its_running_fit_from_the_state_it_saves(tmp_path, monkeypatch):
    """A real compare job of two TP-AMTL units: after each save the progress shows the unit in flight at the
    epoch it saved, with a time left; the numbers are those of a job without it."""
    from negtransfer.jobs.compare import CompareOptions, run_compare
    from negtransfer.models.base import FitOptions
    from negtransfer.runs.store import RunStore
    from negtransfer.train import checkpoint

    monkeypatch.setattr(checkpoint, "SAVE_EVERY_SECONDS", 0.0)
    options = CompareOptions(("tp-amtl",), runs=2, fit=FitOptions(epochs=4, settings={"mc_samples": 2}))
    plain = run_compare(tiny_sequences, "tiny", options, 0, RunStore(tmp_path / "plain.sqlite"))

    console = _Console()
    store = RunStore(tmp_path / "runs.sqlite")
    with in_flight(console, store) as shown:
        assert isinstance(shown, InFlightProgress)
        save = checkpoint.FitSlot.save

        def save_then_redraw(self, state):
            saved = save(self, state)
            shown.redraw()
            return saved

        monkeypatch.setattr(checkpoint.FitSlot, "save", save_then_redraw)
        report = run_compare(tiny_sequences, "tiny", options, 0, store, progress=shown)
    drawn = [call[3] for call in console.calls if call[3]]
    # the 5-second redraw thread may draw a state again on a slow machine: consecutive repeats count once
    details = [d for i, d in enumerate(drawn) if i == 0 or d != drawn[i - 1]]
    assert [d.split(" (")[0] for d in details] == [f"in flight: tp-amtl@v2 run {r} epoch {e}/4"
                                                   for r in (0, 1) for e in (1, 2, 3)]  # epoch 4 ended the fit
    assert all(d.endswith(" left)") and "about" in d for d in details)
    assert console.calls[-1] == ("models x runs", 2, 2, "")
    assert report.rows == plain.rows

    with in_flight(console, RunStore(":memory:")) as unchanged:  # an in-memory store: no states, no thread
        assert unchanged is console
    with in_flight(None, store) as quiet:  # -q: no progress at all
        assert quiet is None


def test_the_console_shows_a_stages_detail_lines_below_the_bars_as_plain_text(capsys, monkeypatch):
    from negtransfer.cli.console import stage_progress

    monkeypatch.setenv("COLUMNS", "100")
    with stage_progress(False) as progress:
        progress("models x runs", 1, 3, detail="in flight: model[x] run 0 epoch 3/6 (about 3 s left)\n"
                                               "in flight: model run 1 epoch 2/6 (rate not known)")
        progress("models x runs", 1, 3, detail="in flight: model[x] run 0 epoch 4/6 (about 2 s left)")
        progress("other", 0, 2)
    lines = [line.rstrip() for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert lines[0].startswith("models x runs") and "1/3" in lines[0]
    assert lines[1].startswith("other") and "0/2" in lines[1]
    assert lines[2:] == ["  in flight: model[x] run 0 epoch 4/6 (about 2 s left)"]  # the latest detail, no markup
