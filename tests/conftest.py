"""Shared fixtures: small datasets built directly from arrays (no loader needed), and run-store probes."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from negtransfer.data.dataset import MultiTaskDataset, TaskSpec

#: Linux's memory file system; the tests' folders go there when it has room (see pytest_configure).
MEMORY_FOLDER = "/dev/shm"
#: Free space /dev/shm must have: a whole run's tmp_path folders take ~25 MB and pytest keeps the last 3 runs
#: (a container's default /dev/shm of 64 MB would fill up).
MEMORY_FOLDER_ROOM = 1 << 30


def pytest_configure(config):
    """Put the tests' ``tmp_path`` folders in memory (/dev/shm) where the machine has one with room.

    Every run store commits with ``PRAGMA synchronous=FULL``, so each of the default suite's ~900 store openings
    and writes waits for fsync: 14-19 s in all on the 2-core machine's disk, 1.8 s in memory (summed over the tests,
    two runs each). What the tests check does not depend on it (a killed process loses nothing either way; fsync
    only guards against power loss).
    ``--basetemp`` or PYTEST_DEBUG_TEMPROOT (pytest's own override of the temporary folder) still choose.
    """
    if config.option.basetemp or os.environ.get("PYTEST_DEBUG_TEMPROOT"):
        return
    try:
        stat = os.statvfs(MEMORY_FOLDER)
    except OSError:
        return
    if stat.f_bavail * stat.f_frsize >= MEMORY_FOLDER_ROOM and os.access(MEMORY_FOLDER, os.W_OK):
        os.environ["PYTEST_DEBUG_TEMPROOT"] = MEMORY_FOLDER


#: The tests that look at the PNG files themselves (pixels, sizes): their figures are rasterised as in a real run.
#: Every test under tests/report/ is one too.
RENDERED_PLOTS = "rendered_plots"


def _laid_out_not_rasterised(fig, path, *args, **kwargs):
    """``Figure.savefig`` for tests that never open the PNG: the figure is drawn without rendering (every artist's
    layout, text and tick code runs, so a plot that cannot be drawn still raises) and a 1 x 1 PNG is written in its
    place; rasterising into pixels (and the second layout pass of ``bbox_inches="tight"``) is left out."""
    from PIL import Image

    fig.draw_without_rendering()
    Image.new("L", (1, 1)).save(path, format="png")


@pytest.fixture(autouse=True)
def plots_not_rasterised(request, monkeypatch):
    """Leave out the pixels of the report plots in tests that do not look at them (all but tests/report/ and those
    marked ``rendered_plots``): the jobs' reports draw ~120 of the default suite's 151 figures, and rasterising
    (with the second layout pass of ``bbox_inches="tight"``) is about two thirds of a figure's CPU time (0.16 s a
    figure, 0.055 s laid out only); building and laying out the figure still runs."""
    if request.node.get_closest_marker(RENDERED_PLOTS) or request.node.path.parent.name == "report":
        return
    from matplotlib.figure import Figure

    monkeypatch.setattr(Figure, "savefig", _laid_out_not_rasterised)


@pytest.fixture
def one_torch_thread():
    """Torch on one thread for the test (as ``compare`` trains by default); the process's setting restored after."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_mixed_dataset(n_rows=300, n_features=6, seed=0, missing=0.2):
    """Binary, multiclass and regression tasks sharing features, with missing labels."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    w = rng.normal(size=(n_features, 4))
    z = X @ w
    Y = np.stack(
        [
            (z[:, 0] > 0).astype(float),
            (z[:, 0] + 0.5 * z[:, 1] > 0).astype(float),
            np.digitize(z[:, 2], [-1.0, 1.0]).astype(float),  # 3 classes
            z[:, 3] + 0.1 * rng.normal(size=n_rows),
        ],
        axis=1,
    )
    Y[rng.random(Y.shape) < missing] = np.nan
    split = rng.choice([0, 0, 0, 1, 2], size=n_rows).astype(np.int8)
    tasks = (
        TaskSpec("a", "binary", (0, 1)),
        TaskSpec("b", "binary", (0, 1)),
        TaskSpec("c", "multiclass", ("lo", "mid", "hi")),
        TaskSpec("d", "regression"),
    )
    return MultiTaskDataset("mixed", tasks, X, Y, split, tuple(f"x{i}" for i in range(n_features)))


@pytest.fixture
def mixed_dataset():
    return make_mixed_dataset()


@pytest.fixture(scope="session")
def make_mixed():
    """``make_mixed_dataset(n_rows=300, n_features=6, seed=0, missing=0.2)``, for module-scoped datasets."""
    return make_mixed_dataset


def write_task_splits_folder(path, tasks=("7", "12", "3"), rows=(60, 100, 40), d=5, seed=0, binary_x=True):
    """A small folder in the ETAP public code's Task_Splits format (four .npy files per task)."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    for task, n in zip(tasks, rows, strict=True):
        for part, m in (("train", n), ("test", n // 2)):
            X = (rng.random((m, d)) < 0.3).astype(float) if binary_x else rng.normal(size=(m, d))
            y = np.tile([0.0, 1.0], m // 2 + 1)[:m]
            np.save(path / f"{task}_X_{part}.npy", X)
            np.save(path / f"{task}_y_{part}.npy", y if part == "train" else y.reshape(-1, 1))
    return path


@pytest.fixture
def write_folder():
    return write_task_splits_folder


def write_binary_tasks_csv(path, n_rows=400, n_tasks=5, seed=0):
    """A CSV of 5 normal features f0..f4 and binary tasks task0.. (noisy linear rules); returns ``path``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, 5))
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    for t in range(n_tasks):
        frame[f"task{t}"] = (X @ rng.normal(size=5) + 0.3 * rng.normal(size=n_rows) > 0).astype(int)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def binary_tasks_csv():
    return write_binary_tasks_csv


def count_stored(db, query="SELECT COUNT(*) FROM runs"):
    """What ``query`` counts in the run store file ``db``; 0 while it is missing or locked by a writer."""
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(db, timeout=1)
        try:
            return con.execute(query).fetchone()[0]
        finally:
            con.close()
    except sqlite3.OperationalError:
        return 0


@pytest.fixture
def stored_count():
    return count_stored


def _killed_midway(arguments, stored, at_least: int) -> int:
    """Starts ``python -m negtransfer ARGUMENTS`` in a subprocess (``PYTHONHASHSEED=0``), kills it with SIGKILL as
    soon as ``stored()`` counts ``at_least`` units (polled; 240 s at the most) and returns what ``stored()`` counts
    then; fails the test when the run ends before it could be killed."""
    proc = subprocess.Popen([sys.executable, "-m", "negtransfer", *arguments], env={**os.environ, "PYTHONHASHSEED": "0"})
    deadline = time.time() + 240
    while stored() < at_least and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.fail("the run finished before it could be killed; make the workload larger")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return stored()


@pytest.fixture
def killed_midway():
    """``killed_midway(arguments, stored, at_least)``: a CLI run in a subprocess, killed with SIGKILL once
    ``stored()`` counts ``at_least`` units; returns the count after the kill (the resume tests)."""
    return _killed_midway


# --- examples of any shape (issue 24: images and sequences for the any-model tests) -----------------------

#: A small example shape per built-in encoder.
EXAMPLE_SHAPES = {"cnn": (1, 6, 6), "lstm": (5, 2), "transformer": (5, 2), "mlp": (2, 3)}


def shaped_dataset(shape, n_rows=96, seed=0):
    """Binary, multiclass and regression tasks on examples of ``shape`` (X of N x shape), some labels missing."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, *shape)).astype(np.float32)
    flat = X.reshape(n_rows, -1)
    z = flat @ rng.normal(size=(flat.shape[1], 3)) / np.sqrt(flat.shape[1])
    Y = np.stack([(z[:, 0] > 0).astype(float), np.digitize(z[:, 1], [-0.5, 0.5]).astype(float), z[:, 2]], axis=1)
    Y[rng.random(Y.shape) < 0.15] = np.nan
    split = rng.choice([0, 0, 0, 1, 2], size=n_rows).astype(np.int8)
    tasks = (TaskSpec("a", "binary", (0, 1)), TaskSpec("b", "multiclass", ("lo", "mid", "hi")),
             TaskSpec("c", "regression"))
    try:
        return MultiTaskDataset("shaped", tasks, X, Y, split, tuple(f"x{i}" for i in range(flat.shape[1])))
    except ValueError:  # a dataset class that holds only tables: build it flat, then give it the examples' shape
        data = MultiTaskDataset("shaped", tasks, flat, Y, split, tuple(f"x{i}" for i in range(flat.shape[1])))
        data.X = X
        return data


@pytest.fixture
def shaped_data():
    """``shaped_dataset(shape, n_rows=96, seed=0)``: a small dataset whose examples have ``shape``."""
    return shaped_dataset


@pytest.fixture
def example_shapes():
    """A small example shape per built-in encoder."""
    return EXAMPLE_SHAPES


@pytest.fixture
def three_task_csv():
    """Writes the grouping CLI tests' data: ``three_task_csv(path, rows)``."""
    return _write_three_task_csv


def _write_three_task_csv(path, rows: int):
    """A CSV file at ``path`` with features a, b, c (standard normal, seed 0) and three binary tasks one, two,
    three planted on them (one and two share feature a; three reads b): the grouping CLI tests' data."""
    X = np.random.default_rng(0).normal(size=(rows, 3))
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    frame["one"] = (X[:, 0] + X[:, 1] > 0).astype(int)
    frame["two"] = (X[:, 0] - X[:, 2] > 0).astype(int)
    frame["three"] = (X[:, 1] > 0).astype(int)
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def task_column_frame():
    """Turns a per-task-rows dataset into the sources CLI tests' table: ``task_column_frame(ds)``."""
    return _task_column_frame


def _task_column_frame(ds) -> pd.DataFrame:
    """The rows of a per-task-rows binary dataset as one table: its features, the task's name in column ``state``
    and the row's label in column ``vote`` (the form ``negtransfer sources --task-column state --label vote``
    reads)."""
    frame = pd.DataFrame(ds.X, columns=list(ds.feature_names))
    frame["state"] = [ds.task_names[i] for i in ds.row_task]
    frame["vote"] = np.nansum(np.nan_to_num(ds.Y), axis=1)
    return frame


@pytest.fixture
def sources_cli(tmp_path):
    """Runs ``negtransfer sources`` on a per-task-rows binary dataset: ``sources_cli(ds, *arguments)`` writes its
    rows as the table of :func:`_task_column_frame` to ``tmp_path / "rows.csv"`` and invokes ``negtransfer sources
    --data rows.csv --task-column state --label vote`` with ``arguments`` after them; returns typer's result."""
    from typer.testing import CliRunner

    from negtransfer.cli import app

    def invoke(ds, *arguments: str):
        path = tmp_path / "rows.csv"
        _task_column_frame(ds).to_csv(path, index=False)
        return CliRunner().invoke(
            app, ["sources", "--data", str(path), "--task-column", "state", "--label", "vote", *arguments]
        )

    return invoke


# --- per-task-rows datasets (the loaders of negtransfer.data.social) ---------------------------------------


def _original_feature(ds, name: str) -> np.ndarray:
    """Feature column ``name`` of ``ds`` in its original units: the standardisation undone with the training
    rows' mean and standard deviation kept in ``ds.info``."""
    f = ds.feature_names.index(name)
    return ds.X[:, f] * ds.info["feature_std"][f] + ds.info["feature_mean"][f]


@pytest.fixture
def original_feature():
    """``original_feature(ds, name)``: feature column ``name`` of ``ds`` in its original units."""
    return _original_feature


def _assert_per_task_rows(ds) -> None:
    """Each row of ``ds`` has exactly one label, in its own task's column; every feature is finite."""
    has = ~np.isnan(ds.Y)
    assert (has.sum(axis=1) == 1).all()
    assert (np.argmax(has, axis=1) == ds.row_task).all()
    assert ds.info["layout"] == "per-task-rows"
    assert np.isfinite(ds.X).all()


@pytest.fixture
def assert_per_task_rows():
    """``assert_per_task_rows(ds)``: each row has exactly one label, in its own task's column; features finite."""
    return _assert_per_task_rows
