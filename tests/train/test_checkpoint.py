"""A fit interrupted mid-way and started again inside ``resume_fits`` gives the numbers of an uninterrupted fit
(the temporal family's and the variational family's)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from negtransfer.data.domains import dataset_from_domains
from negtransfer.models.clinical import build_model, model_weighting, train_and_evaluate
from negtransfer.models.vmtl import make_model, make_weighting
from negtransfer.train.checkpoint import FitSlot, resume_fits
from negtransfer.train.temporal import TemporalTrainConfig, evaluate_auroc, fit
from negtransfer.train.variational import VariationalConfig, evaluate_model, fit_variational

#: Tiny networks: one torch thread (several on a loaded machine made one temporal test 18 s instead of 1).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Crash(Exception):
    """Stands for the process dying."""


def _dataset():
    from negtransfer.data.timeseries import timeseries_dataset

    rng = np.random.default_rng(0)
    values = rng.normal(size=(90, 4, 3))
    labels = np.stack([(values[:, :, 0].mean(1) > 0), (values[:, :, 1].mean(1) > 0)], axis=1).astype(float)
    return timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"], seed=0)


CONFIG = TemporalTrainConfig(max_epochs=12, patience=4, mc_samples=3, validation_mc_samples=3)


def _fit(name: str, dataset, on_epoch=None):
    torch.manual_seed(0)
    model = build_model(name, 3, 2)
    return fit(model, dataset, config=CONFIG, seed=3, weighting=model_weighting(name, model, 2), on_epoch=on_epoch)


def _crash_at(epoch: int):
    def on_epoch(done: int, total: int) -> None:
        if done == epoch:
            raise Crash

    return on_epoch


def _same(a, b) -> None:
    assert a.history == b.history and a.best_at == b.best_at and a.rounds_run == b.rounds_run
    assert a.steps_run == b.steps_run
    for x, y in zip(a.best_states, b.best_states, strict=True):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.mark.parametrize("name", ["tp-amtl", "retain-kendall"])  # MC-dropout draws; trained loss weights
def test_an_interrupted_fit_resumes_to_the_same_numbers(name, tmp_path):
    dataset = _dataset()
    reference = _fit(name, dataset)
    with resume_fits(tmp_path, every_seconds=0), pytest.raises(Crash):
        _fit(name, dataset, on_epoch=_crash_at(5))
    assert (tmp_path / "fit-0.pt").is_file()
    epochs = []
    with resume_fits(tmp_path, every_seconds=0):
        resumed = _fit(name, dataset, on_epoch=lambda done, total: epochs.append(done))
    assert epochs[0] == 5  # epochs 1-4 were restored, not trained again
    _same(resumed, reference)
    torch.manual_seed(1)
    first = evaluate_auroc(reference, dataset, mc_samples=3, seed=1)
    assert evaluate_auroc(resumed, dataset, mc_samples=3, seed=1) == first


def test_a_finished_fit_is_read_back_and_a_unit_numbers_its_fits(tmp_path, monkeypatch):
    """STL trains one model per task in one unit: a crash in the second fit keeps the first one's state."""
    dataset = _dataset()
    reference = train_and_evaluate("stl-lstm", dataset, 3, CONFIG)
    saves: list[str] = []
    original = FitSlot.save

    def save_then_crash(self, state):
        original(self, state)
        saves.append(self.path.name)
        if self.path.name == "fit-1.pt" and state["rounds"] == 3:
            raise Crash

    monkeypatch.setattr(FitSlot, "save", save_then_crash)
    with resume_fits(tmp_path, every_seconds=0), pytest.raises(Crash):
        train_and_evaluate("stl-lstm", dataset, 3, CONFIG)
    monkeypatch.setattr(FitSlot, "save", original)
    assert "fit-0.pt" in saves and saves[-1] == "fit-1.pt"
    first = torch.load(tmp_path / "fit-0.pt", weights_only=True)
    assert first["stop"] or first["rounds"] == CONFIG.max_epochs  # fit 0 saved as finished
    load = FitSlot.load
    loaded = []

    def load_and_record(self, signature):
        state = load(self, signature)
        loaded.append((self.path.name, None if state is None else state["rounds"]))
        return state

    monkeypatch.setattr(FitSlot, "load", load_and_record)
    with resume_fits(tmp_path, every_seconds=0):
        assert train_and_evaluate("stl-lstm", dataset, 3, CONFIG) == reference
    assert loaded == [("fit-0.pt", first["rounds"]), ("fit-1.pt", 3)]  # fit 0 read back whole, fit 1 from round 3


def test_a_state_of_another_fit_is_ignored_and_nothing_is_saved_outside_resume_fits(tmp_path):
    dataset = _dataset()
    reference = _fit("stl-lstm-h8", dataset)
    assert not any(tmp_path.iterdir())  # outside resume_fits: nothing written
    with resume_fits(tmp_path, every_seconds=0), pytest.raises(Crash):
        _fit("tp-amtl", dataset, on_epoch=_crash_at(3))  # another model's parameters in fit-0.pt
    with resume_fits(tmp_path, every_seconds=0):
        _same(_fit("stl-lstm-h8", dataset), reference)  # starts from scratch, then overwrites the file
    (tmp_path / "fit-0.pt").write_bytes(b"not a checkpoint")
    with resume_fits(tmp_path, every_seconds=0):
        _same(_fit("stl-lstm-h8", dataset), reference)
    with pytest.raises(ValueError, match="every_seconds"), resume_fits(tmp_path, every_seconds=-1):
        pass


def test_a_state_that_cannot_be_written_never_fails_the_fit(tmp_path):
    dataset = _dataset()
    reference = _fit("stl-lstm-h8", dataset)
    (tmp_path / "blocked").write_text("a file where the folder should be")
    with resume_fits(tmp_path / "blocked" / "unit", every_seconds=0):
        _same(_fit("stl-lstm-h8", dataset), reference)
    with resume_fits(tmp_path / "outer", every_seconds=0), resume_fits(None):
        _fit("stl-lstm-h8", dataset)
    assert not (tmp_path / "outer").exists()  # None inside an enclosing folder: nothing saved


# ---------------------------------------------------------------------- the variational family (VMTL)
def _domains():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 5)) * 2
    domains = {}
    for t in range(3):
        y = np.arange(30) % 2
        domains[f"d{t}"] = (centres[y] + rng.normal(size=(30, 5)) + 0.3 * t, y)
    return dataset_from_domains(domains, seed=0)


#: 24 iterations, a save every 4 (every_seconds=0), the learning rate halved every 6 (a period that does not
#: divide the step a fit resumes from, so a halving schedule started afresh would halve at other iterations).
SMALL = VariationalConfig(iterations=24, eval_every=4, hidden=6, latent=4, per_class=2, lr_halve_every=6,
                          patience=5)  # fmt: skip
#: The official schedule shortened: one Adam per task, halving every 6 (a fifth of 30 iterations), the w-KL
#: warm-up every 10 iterations; the last round is 2 iterations long.
PUBLIC = VariationalConfig.preset("vmtl-public", iterations=30, eval_every=4, hidden=6, latent=4, per_class=2)


def _fit_variational(name: str, dataset, config: VariationalConfig, on_step=None):
    torch.manual_seed(2)
    model = make_model(name, dataset.n_features, 2, dataset.n_tasks, hidden=config.hidden, latent=config.latent,
                       init_std=config.init_std, n_w_samples=config.n_w_samples)
    return fit_variational(model, dataset, config, seed=2, weighting=make_weighting(name, dataset.n_tasks),
                           on_step=on_step)


def _crash_at_step(step: int):
    def on_step(done: int, total: int) -> None:
        if done == step:
            raise Crash

    return on_step


@pytest.mark.parametrize(("name", "config"), [
    ("stl", SMALL), ("bmtl", SMALL), ("kendall", SMALL),  # per-task encoders; shared; trained loss weights
    ("vmtl", SMALL), ("vmtl-ac", SMALL),  # Gumbel noise and MC samples; running class centres
    ("vmtl", PUBLIC), ("vmtl-ac", PUBLIC),  # per-task optimisers, LR halving, the warm-up per task step
], ids=["stl", "bmtl", "kendall", "vmtl", "vmtl-ac", "vmtl-public", "vmtl-ac-public"])
def test_an_interrupted_variational_fit_resumes_to_the_same_numbers(name, config, tmp_path, monkeypatch):
    dataset = _domains()
    reference = _fit_variational(name, dataset, config)
    assert reference.steps_run > 11
    with resume_fits(tmp_path, every_seconds=0), pytest.raises(Crash):
        _fit_variational(name, dataset, config, on_step=_crash_at_step(11))  # saved after steps 4 and 8
    load = FitSlot.load
    loaded, steps = [], []

    def load_and_record(self, signature):
        state = load(self, signature)
        loaded.append(None if state is None else state["steps"])
        return state

    monkeypatch.setattr(FitSlot, "load", load_and_record)
    with resume_fits(tmp_path, every_seconds=0):
        resumed = _fit_variational(name, dataset, config, on_step=lambda done, total: steps.append(done))
    assert loaded == [8] and steps[0] == 9  # iterations 1-8 were restored, not trained again
    _same(resumed, reference)
    assert resumed.best_scores == reference.best_scores
    assert evaluate_model(resumed, dataset) == evaluate_model(reference, dataset)
