"""Any network from the command line and the Python API: --encoder, --model FILE.py:FUNCTION, --model-version,
--model-arg on group, gains and sources; images and sequences; a bad factory as one error line before training."""

import importlib.util
import json

import numpy as np
import pytest
from typer.testing import CliRunner

import negtransfer
from negtransfer.cli import app
from negtransfer.runs.store import RunStore

runner = CliRunner()

# a few models on few rows: every test here stays within a few seconds
FAST = ["--epochs", "2", "--repeats", "1", "--batch-size", "32", "-q"]
GROUP = ["group", "--budget", "2", "--train-groups", "2", "--rounds", "1", *FAST]

USER_MODEL = '''
import math

from torch import nn


def make(input_shape, outputs, width=8):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU())
    return encoder, [nn.Linear(width, out) for out in outputs]
'''

BAD_MODELS = '''
from torch import nn


def no_heads(input_shape, outputs):
    return nn.Flatten()


def one_head(input_shape, outputs):
    return nn.Flatten(), [nn.Linear(15, 1)]


def raises(input_shape, outputs):
    raise RuntimeError("this factory is broken")


class Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("the forward pass is broken")


def forward_raises(input_shape, outputs):
    return Broken(), [nn.Linear(3, out) for out in outputs]


def batch_norm(input_shape, outputs):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(15, 4), nn.BatchNorm1d(4), nn.ReLU())
    return encoder, [nn.Linear(4, out) for out in outputs]
'''


def make_factory(input_shape, outputs, width=6):
    """A module-level factory given to the Python API as a function."""
    import math

    from torch import nn

    encoder = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.Tanh())
    return encoder, [nn.Linear(width, out) for out in outputs]


@pytest.fixture
def images(tmp_path):
    """120 images 1 x 6 x 6 with three binary tasks (a .npz file)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 1, 6, 6)).astype("float32")
    mean = X.mean(axis=(1, 2, 3))
    Y = np.stack([mean > 0, X[:, 0, 0, 0] > 0, mean + X[:, 0, 1, 1] > 0], axis=1).astype(float)
    path = tmp_path / "images.npz"
    np.savez(path, X=X, Y=Y, tasks=np.array(["bright", "corner", "mixed"]))
    return path


@pytest.fixture
def sequences(tmp_path):
    """120 sequences 5 steps x 3 features with three regression tasks (a .npz file)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 5, 3)).astype("float32")
    Y = np.stack([X[:, -1, 0], X[:, :, 1].mean(axis=1), X[:, -1, 0] + X[:, 0, 2]], axis=1)
    path = tmp_path / "sequences.npz"
    np.savez(path, X=X, Y=Y, tasks=np.array(["last", "mean", "sum"]))
    return path


def _ok(args: list) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    # the grouping's verdict may warn (the summary is printed under -q too); nothing else may
    warnings = [line for line in res.output.splitlines()
                if "warning:" in line.lower() and not line.startswith("warning: On validation data")]
    assert not warnings and "Traceback" not in res.output, res.output
    return res.output


def _report(out) -> dict:
    return json.loads((out / "report.json").read_text())


def test_group_with_the_cnn_on_images(images, tmp_path):
    out = tmp_path / "out"
    _ok([*GROUP, "--data", images, "--encoder", "cnn", "--out", out])
    report = _report(out)
    assert report["config"]["model"]["name"] == "cnn"
    assert sorted({t for g in report["selected_groups"] for t in g}) == ["bright", "corner", "mixed"]


def test_group_with_the_cnn_on_digit_images(tmp_path):
    out = tmp_path / "out"
    _ok(["group", "--dataset", "digit-images", "--tasks", "is_0,is_1,even", "--encoder", "cnn", "--epochs", "1",
         "--batch-size", "256", "--repeats", "1", "--budget", "2", "--train-groups", "1", "--rounds", "1", "-q",
         "--out", out])
    assert _report(out)["config"]["model"]["encoder"] == "cnn"


def test_group_with_the_lstm_on_sequences(sequences, tmp_path):
    out = tmp_path / "out"
    _ok([*GROUP, "--data", sequences, "--encoder", "lstm", "--model-arg", "hidden=8", "--out", out])
    model = _report(out)["config"]["model"]
    assert model["encoder"] == "lstm" and model["arguments"] == [["hidden", 8]]


@pytest.mark.slow  # about 6 s: 5684 windows of 14 days
def test_group_with_the_lstm_on_ridership(tmp_path):
    out = tmp_path / "out"
    _ok(["group", "--dataset", "chicago-next-day", "--tasks", "Austin,Quincy_Wells,Belmont", "--encoder", "lstm",
         "--epochs", "1", "--batch-size", "256", "--repeats", "1", "--budget", "2", "--train-groups", "1",
         "--rounds", "1", "-q", "--out", out])
    assert len(_report(out)["selected_groups"]) <= 2


def test_group_with_the_users_file_and_its_arguments(sequences, tmp_path):
    model = tmp_path / "net.py"
    model.write_text(USER_MODEL)
    out = tmp_path / "out"
    _ok([*GROUP, "--data", sequences, "--model", f"{model}:make", "--model-arg", "width=4", "--out", out])
    chosen = _report(out)["config"]["model"]
    assert chosen["factory"] == f"{model}:make" and chosen["arguments"] == [["width", 4]]
    assert chosen["version"] is None and len(chosen["source"]) == 16


def test_encoder_mlp_is_the_default_with_its_numbers_and_run_keys(images, tmp_path):
    """The mlp (which flattens images) given or not: the same runs, reused from the store, the same gains."""
    import pandas as pd

    store = tmp_path / "runs.sqlite"
    common = ["gains", "--data", images, "--groups", "all", *FAST, "--store", store]
    _ok([*common, "--out", tmp_path / "default"])
    trained = RunStore(store).count()
    _ok([*common, "--encoder", "mlp", "--out", tmp_path / "mlp"])
    assert RunStore(store).count() == trained  # same run keys: nothing trained again
    default, mlp = (pd.read_csv(tmp_path / name / "gains.csv") for name in ("default", "mlp"))
    pd.testing.assert_frame_equal(default, mlp)
    payload = json.loads((tmp_path / "mlp" / "gains.json").read_text())
    assert "model" not in json.dumps(payload.get("config", {}))  # the default network is not named in the config


def test_gains_and_sources_take_the_encoder(images, tmp_path):
    _ok(["gains", "--data", images, "--groups", "all", "--encoder", "cnn", *FAST, "--out", tmp_path / "gains"])
    payload = json.loads((tmp_path / "gains" / "gains.json").read_text())
    assert len(payload["gains"]) == 3 * 2 + 3  # three pairs and the all-task group
    out = tmp_path / "sources"
    _ok(["sources", "--data", images, "--target", "mixed", "--alpha", "1", "--subsets", "2", "--holdout", "1",
         "--no-affinity", "--encoder", "cnn", *FAST, "--out", out])
    report = _report(out)
    assert report["target"] == "mixed" and report["config"]["model"]["name"] == "cnn"


@pytest.mark.parametrize("reference, message", [
    ("missing.py:make", "does not exist"),
    ("bad.py:nowhere", "has no function 'nowhere'"),
    ("bad.py:no_heads", "must return (encoder, heads)"),
    ("bad.py:one_head", "returned 1 head(s) for 3 tasks"),
    ("bad.py:raises", "raised RuntimeError: this factory is broken"),
    ("bad.py:forward_raises", "raised RuntimeError on a batch"),
])
def test_a_bad_factory_is_one_error_line_before_training(sequences, tmp_path, reference, message):
    (tmp_path / "bad.py").write_text(BAD_MODELS)
    out = tmp_path / "out"
    res = runner.invoke(app, [*GROUP, "--data", str(sequences), "--model", str(tmp_path / reference),
                              "--out", str(out)])
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert res.exit_code == 2 and len(errors) == 1 and message in errors[0], res.output
    assert "negtransfer_user_model" not in errors[0]  # named by the user's reference
    assert "Traceback" not in res.output and not (out / "runs.sqlite").exists()  # nothing trained


@pytest.mark.parametrize("args, message", [
    (["--encoder", "cnn", "--model", "net.py:make"], "give either --encoder or --model, not both"),
    (["--encoder", "cnn", "--model-version", "2"], "--model-version keys the runs of your own --model"),
    (["--encoder", "cnn", "--model-arg", "width"], "--model-arg takes NAME=VALUE"),
    (["--model-arg", "width=3"], "the mlp encoder takes no arguments"),
    (["--encoder", "resnet"], "resnet"),
    (["--encoder", "cnn"], "the cnn encoder needs examples shaped (channels, height, width)"),
])
def test_model_options_that_do_not_go_together(sequences, tmp_path, args, message):
    res = runner.invoke(app, [*GROUP, "--data", str(sequences), *args, "--out", str(tmp_path / "out")])
    assert res.exit_code == 2 and message in res.output and res.output.count("error:") == 1, res.output


def test_a_model_that_cannot_stack_is_a_note_not_a_warning(sequences, tmp_path):
    (tmp_path / "bad.py").write_text(BAD_MODELS)
    out = tmp_path / "out"
    output = _ok(["gains", "--data", sequences, "--groups", "all", "--model", f"{tmp_path / 'bad.py'}:batch_norm",
                  *FAST, "--out", out])
    notes = [line for line in output.splitlines() if line.startswith("note:") and "batch_norm" in line]
    assert len(notes) == 1 and "one at a time" in notes[0], output
    assert any("batch_norm" in n for n in json.loads((out / "gains.json").read_text())["notes"])


def test_editing_the_file_trains_again_and_a_version_keeps_the_runs(sequences, tmp_path):
    model = tmp_path / "net.py"
    model.write_text(USER_MODEL)
    store = tmp_path / "runs.sqlite"
    args = ["gains", "--data", sequences, "--groups", "all", "--model", f"{model}:make", *FAST, "--store", store,
            "--out", tmp_path / "out"]

    def runs() -> int:
        return RunStore(store).count()

    _ok(args)
    first = runs()
    _ok(args)
    assert runs() == first  # unchanged file: the stored runs are reused
    model.write_text(USER_MODEL + "\n# an edit\n")
    _ok(args)
    assert runs() == 2 * first  # an edited file is another model: trained again
    _ok([*args, "--model-version", "1"])
    assert runs() == 3 * first
    model.write_text(USER_MODEL + "\n# another edit\n")
    _ok([*args, "--model-version", "1"])
    assert runs() == 3 * first  # the version keys the runs: reused despite the edit


def test_the_python_api_takes_any_model(images, sequences, tmp_path):
    common = dict(max_epochs=2, repeats=1, batch_size=32, budget=2, n_train_groups=2, rounds=1)
    report = negtransfer.group(str(images), model="cnn", **common)
    assert report.to_dict()["config"]["model"]["name"] == "cnn"
    model = tmp_path / "net.py"
    model.write_text(USER_MODEL)
    report = negtransfer.group(str(sequences), model=f"{model}:make", model_arguments={"width": 3},
                               model_version="a", **common)
    assert report.to_dict()["config"]["model"] == {"name": f"{model}:make", "factory": f"{model}:make",
                                                   "version": "a", "source": None, "arguments": [["width", 3]]}
    gains = negtransfer.gains(str(sequences), model=make_factory, model_arguments={"width": 4}, groups="all",
                              max_epochs=2, repeats=1, batch_size=32)
    assert len(gains.to_frame()) == 9
    with pytest.raises(ValueError, match="returned 1 head"):
        (tmp_path / "bad.py").write_text(BAD_MODELS)
        negtransfer.sources(str(sequences), "sum", model=f"{tmp_path / 'bad.py'}:one_head", alpha=1, max_epochs=1)


def test_the_api_warns_once_for_a_model_that_cannot_stack(sequences, tmp_path):
    import warnings

    from negtransfer.train.batched import UnstackableModelWarning

    (tmp_path / "bad.py").write_text(BAD_MODELS)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        negtransfer.gains(str(sequences), model=f"{tmp_path / 'bad.py'}:batch_norm", groups="all", max_epochs=1,
                          repeats=1)
    said = [w for w in caught if issubclass(w.category, UnstackableModelWarning)]
    assert len(said) == 1 and "buffers" in str(said[0].message)


@pytest.mark.slow  # a process pool starts PyTorch in every worker
def test_process_workers_do_not_repeat_the_note(sequences, tmp_path):
    import subprocess
    import sys

    (tmp_path / "bad.py").write_text(BAD_MODELS)
    # a subprocess: the workers' stderr is the command's stderr, which CliRunner would not see
    res = subprocess.run([sys.executable, "-m", "negtransfer", "gains", "--data", str(sequences), "--groups", "all",
                          "--model", f"{tmp_path / 'bad.py'}:batch_norm", *FAST, "--executor", "process",
                          "--workers", "2", "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("one at a time") == 1 and "Warning" not in res.stderr, res.stderr


def test_compare_grouping_takes_the_encoder(images, tmp_path):
    out = tmp_path / "out"
    _ok(["compare-grouping", "--data", images, "--methods", "etap", "--budgets", "2", "--seeds", "0",
         "--surgery", "none", "--train-groups", "2", "--rounds", "1", "--encoder", "cnn", *FAST, "--out", out])
    assert (out / "comparison.csv").exists() and "## Notes" not in (out / "report.md").read_text()
    bad = runner.invoke(app, ["compare-grouping", "--data", str(images), "--methods", "etap", "--encoder", "lstm",
                              "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and bad.output.count("error:") == 1 and "lstm" in bad.output, bad.output


HAS_MOLECULES = all(importlib.util.find_spec(p) is not None for p in ("qm9pack", "rdkit"))


@pytest.mark.skipif(not HAS_MOLECULES, reason="the molecules extra (qm9pack, rdkit) is not installed")
def test_group_on_qm9_fingerprints_end_to_end(tmp_path):
    out = tmp_path / "out"
    _ok(["group", "--dataset", "qm9", "--tasks", "mu,gap,cv", "--epochs", "1", "--batch-size", "256", "--repeats", "1",
         "--budget", "2", "--train-groups", "1", "--rounds", "1", "-q", "--out", out])
    report = _report(out)
    assert report["dataset"] == "qm9" and "model" not in report["config"]  # the default mlp on the fingerprint bits
    assert sorted({t for g in report["selected_groups"] for t in g}) == ["cv", "gap", "mu"]
    assert all(np.isfinite(report["totals"][option]) for option in ("stl", "all_tasks", "selected"))


@pytest.mark.parametrize("data, model", [("images", ["--encoder", "cnn"]), ("sequences", ["--encoder", "lstm"]),
                                         ("sequences", "user file")])
def test_grad_tae_groups_with_any_network(data, model, request, tmp_path):
    if model == "user file":
        (tmp_path / "net.py").write_text(USER_MODEL)
        model = ["--model", f"{tmp_path / 'net.py'}:make"]
    out = tmp_path / "out"
    _ok([*GROUP, "--method", "grad-tae", "--data", request.getfixturevalue(data), *model, "--out", out])
    report = _report(out)
    affinity = np.array(report["affinity"], dtype=float)
    assert report["method"] == "grad-tae" and affinity.shape == (3, 3)
    assert np.isfinite(affinity[~np.eye(3, dtype=bool)]).all()


def test_compare_grouping_records_a_model_trained_one_at_a_time(sequences, tmp_path):
    (tmp_path / "bad.py").write_text(BAD_MODELS)
    out = tmp_path / "out"
    output = _ok(["compare-grouping", "--data", sequences, "--methods", "etap", "--budgets", "2", "--seeds", "0",
                  "--surgery", "none", "--train-groups", "2", "--rounds", "1", "--model",
                  f"{tmp_path / 'bad.py'}:batch_norm", *FAST, "--out", out])
    assert sum("one at a time" in line for line in output.splitlines() if line.startswith("note:")) == 1, output
    notes = (out / "report.md").read_text().split("## Notes")[1]
    assert "batch_norm" in notes and "one at a time" in notes
