"""Tests of the PyTorch Lightning callback (skipped where Lightning is not installed)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch

from negtransfer.affinity.tracker import AffinityTracker

DT = torch.float64
N_TASKS = 3


def test_importing_negtransfer_does_not_import_lightning():
    code = (
        "import sys, negtransfer, negtransfer.affinity.tracker, negtransfer.affinity.scores; "
        "bad = [m for m in ('lightning', 'pytorch_lightning') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_clear_import_error_without_lightning(monkeypatch):
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    monkeypatch.delitem(sys.modules, "negtransfer.affinity.lightning", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'negtransfer\[lightning\]'"):
        importlib.import_module("negtransfer.affinity.lightning")
    monkeypatch.delitem(sys.modules, "negtransfer.affinity.lightning", raising=False)


# ----------------------------------------------------------------------------
# With Lightning
# ----------------------------------------------------------------------------


def _data(n=32, n_in=5):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, n_in, generator=g, dtype=DT)
    y = (torch.randn(n, N_TASKS, generator=g, dtype=DT) + x[:, :N_TASKS] > 0).to(DT)
    return x, y


def _init(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.7)


def _make_classes(pl):
    class Net(pl.LightningModule):
        def __init__(self, make_opt):
            super().__init__()
            self.encoder = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 4), torch.nn.Tanh())
            self.heads = torch.nn.Linear(4, N_TASKS)
            self.double()
            _init(self)
            self.make_opt = make_opt

        def shared_parameters(self):
            return self.encoder.parameters()

        def per_task_losses(self, x, y):
            out = self.heads(self.encoder(x))
            return torch.nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none").mean(0)

        def training_step(self, batch, batch_idx):
            x, y = batch
            self.task_losses = self.per_task_losses(x, y)
            return self.task_losses.sum()

        def configure_optimizers(self):
            return self.make_opt(self.parameters())

    return Net


def _fit(pl, module, callback, epochs=2, logger=False):
    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=False)
    trainer = pl.Trainer(
        max_epochs=epochs, accelerator="cpu", devices=1, logger=logger, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback] if callback else [],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice about workers etc.
        trainer.fit(module, loader)
    return trainer


def _user_loop(net, make_opt, tracker, epochs=2):
    x, y = _data()
    opt = make_opt(net.parameters())
    for _ in range(epochs):
        for i in range(0, len(x), 8):
            opt.zero_grad()
            L = net.per_task_losses(x[i : i + 8], y[i : i + 8])
            tracker.step(L, net.shared_parameters(), opt)
            opt.step()
        tracker.end_epoch()
    return [p.detach().clone() for p in net.parameters()]


OPTIMIZERS = {
    "sgd-momentum": lambda ps: torch.optim.SGD(ps, lr=0.2, momentum=0.9),
    "adam": lambda ps: torch.optim.Adam(ps, lr=0.02),
}


@pytest.mark.parametrize("single_backward", [True, False], ids=["single-backward", "two-pass"])
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_callback_matches_user_loop(opt_name, single_backward):
    pl = pytest.importorskip("lightning.pytorch")
    from negtransfer.affinity.lightning import AffinityCallback

    Net = _make_classes(pl)
    make_opt = OPTIMIZERS[opt_name]
    cb = AffinityCallback(N_TASKS, every=2, keep_trace=True, single_backward=single_backward)
    net_pl = Net(make_opt)
    _fit(pl, net_pl, cb)

    net_loop = Net(make_opt)
    tracker = AffinityTracker(N_TASKS, every=2, keep_trace=True)
    p_loop = _user_loop(net_loop, make_opt, tracker)

    assert cb.n_steps_tracked == tracker.n_steps_tracked == 4
    assert cb.tracker.n_steps_seen == 8 and cb.tracker.trace_steps == [0, 2, 4, 6]
    np.testing.assert_allclose(np.stack(cb.trace), np.stack(tracker.trace), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(cb.affinity_matrix, tracker.affinity_matrix, rtol=1e-9, atol=1e-12)
    assert cb.tracker.epoch_affinity_matrices.shape == (2, N_TASKS, N_TASKS)
    for a, b in zip(net_pl.parameters(), p_loop, strict=True):
        torch.testing.assert_close(a.detach(), b, rtol=1e-9, atol=1e-12)
    assert "backward" not in net_pl.__dict__  # the one-call override never outlives its batch


def test_callback_training_equals_plain_lightning_training():
    pl = pytest.importorskip("lightning.pytorch")
    from negtransfer.affinity.lightning import AffinityCallback

    Net = _make_classes(pl)
    make_opt = OPTIMIZERS["sgd-momentum"]
    plain, tracked = Net(make_opt), Net(make_opt)
    _fit(pl, plain, None)
    cb = AffinityCallback(N_TASKS)
    _fit(pl, tracked, cb)
    for a, b in zip(plain.parameters(), tracked.parameters(), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-9, atol=1e-12)
    # Callback state goes into Lightning checkpoints and comes back.
    restored = AffinityCallback(N_TASKS)
    restored.load_state_dict(cb.state_dict())
    np.testing.assert_array_equal(restored.affinity_matrix, cb.affinity_matrix)
    Z = cb.group_scores(np.array([[True, True, True]]))
    assert Z.shape == (1, N_TASKS) and np.isfinite(Z).all()


def test_callback_contract_errors():
    pl = pytest.importorskip("lightning.pytorch")
    from negtransfer.affinity.lightning import AffinityCallback

    Net = _make_classes(pl)

    class Forgetful(Net):
        def training_step(self, batch, batch_idx):
            x, y = batch
            return self.per_task_losses(x, y).sum()

    with pytest.raises(AttributeError, match="self.task_losses"):
        _fit(pl, Forgetful(OPTIMIZERS["sgd-momentum"]), AffinityCallback(N_TASKS), epochs=1)


@pytest.mark.parametrize("momentum", [False, True])
def test_callback_momentum_switch_matches_user_loop(momentum):
    """Issue 28: the callback takes the tracker's momentum switch (default off, the grouping job's ETAP default)."""
    pl = pytest.importorskip("lightning.pytorch")
    from negtransfer.affinity.lightning import AffinityCallback

    Net = _make_classes(pl)
    make_opt = OPTIMIZERS["sgd-momentum"]
    cb = AffinityCallback(N_TASKS, momentum=momentum)
    _fit(pl, Net(make_opt), cb)
    tracker = AffinityTracker(N_TASKS, momentum=momentum)
    _user_loop(Net(make_opt), make_opt, tracker)
    assert cb.tracker.momentum is momentum
    np.testing.assert_allclose(cb.affinity_matrix, tracker.affinity_matrix, rtol=1e-9, atol=1e-12)


def test_callback_logs_the_affinity_to_lightnings_loggers():
    """Issue 28: at every epoch end the affinity so far goes to each of the trainer's loggers (a real Lightning
    Logger subclass here), one metric per ordered task pair."""
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.loggers import Logger

    from negtransfer.affinity.lightning import AffinityCallback

    class Recording(Logger):
        def __init__(self):
            super().__init__()
            self.logged: list[tuple[int, dict]] = []

        @property
        def name(self):
            return "recording"

        @property
        def version(self):
            return 0

        def log_hyperparams(self, params, *args, **kwargs):
            pass

        def log_metrics(self, metrics, step=None):
            self.logged.append((step, dict(metrics)))

    Net = _make_classes(pl)
    names = ["a", "b", "c"]
    cb = AffinityCallback(N_TASKS, task_names=names)
    logger = Recording()
    _fit(pl, Net(OPTIMIZERS["sgd-momentum"]), cb, epochs=2, logger=logger)
    logged = [(step, m) for step, m in logger.logged if any(k.startswith("affinity/") for k in m)]
    assert [step for step, _ in logged] == [4, 8]  # 4 batches per epoch, after each epoch
    last = logged[-1][1]
    expected = {f"affinity/{names[i]}->{names[j]}" for i in range(3) for j in range(3) if i != j}
    assert set(last) == expected
    A = cb.affinity_matrix
    assert last["affinity/a->b"] == pytest.approx(A[0, 1]) and last["affinity/c->a"] == pytest.approx(A[2, 0])
    quiet = AffinityCallback(N_TASKS, send_to_loggers=False)
    logger = Recording()
    _fit(pl, Net(OPTIMIZERS["sgd-momentum"]), quiet, epochs=1, logger=logger)
    assert not any(k.startswith("affinity/") for _, m in logger.logged for k in m), logger.logged
