"""The clinical training loop with TP-AMTL's MC passes stacked: the same validation losses, history and predictions."""

import numpy as np
import pytest
import torch

from negtransfer.data.timeseries import timeseries_dataset
from negtransfer.nn.amtl import TPAMTL
from negtransfer.train.temporal import TemporalTrainConfig, _arrays, _validation_loss, fit, predict_proba

#: TP-AMTL's stacked passes are exact on one thread only (``negtransfer.nn.amtl._stacking_exact``).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def sequences(n=80, t=4, f=3, d=2, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, t, f))
    lengths = rng.integers(2, t + 1, size=n)
    for r, length in enumerate(lengths):
        values[r, length:] = np.nan
    labels = (np.nanmean(values[:, :, :d], axis=1) > 0).astype(float)
    labels[rng.random(labels.shape) < 0.1] = np.nan
    return timeseries_dataset(values, labels, task_names=[f"t{k}" for k in range(d)],
                              feature_names=[f"x{k}" for k in range(f)], lengths=lengths, seed=seed,
                              fractions=(0.6, 0.2, 0.2))  # fmt: skip


def model(dataset, stacked):
    torch.manual_seed(0)
    built = TPAMTL(dataset.X.shape[-1], dataset.n_tasks)
    built.stack_passes = stacked
    return built


def test_validation_loss_of_stacked_passes_equals_sequential_passes_exactly():
    dataset = sequences()
    x, m, y = _arrays(dataset)
    rows = torch.from_numpy(dataset.indices("validation"))
    assert model(dataset, True)._stackable(len(rows), x.shape[1])  # the stacked path runs
    losses = {}
    for stacked in (False, True):
        torch.manual_seed(1)
        losses[stacked] = (_validation_loss(model(dataset, stacked), x[rows], m[rows], y[rows], 20), torch.rand(2))
    assert losses[False][0] == losses[True][0] and torch.equal(losses[False][1], losses[True][1])


def test_fit_and_predictions_are_identical_with_stacked_passes():
    dataset = sequences()
    config = TemporalTrainConfig(max_epochs=3, patience=3, batch_size=16)  # 48 training rows: 3 batches
    assert model(dataset, True)._stackable(16, 4)  # the training batches' variance passes run stacked
    results = {stacked: fit(model(dataset, stacked), dataset, config=config, seed=2) for stacked in (False, True)}
    assert results[False].history == results[True].history
    x, m, _ = _arrays(dataset)
    probs = {}
    for stacked, result in results.items():
        torch.manual_seed(3)
        probs[stacked] = predict_proba(result.model, x, m, mc_samples=5, batch_size=32)  # chunks of 32, 32, 16
    np.testing.assert_array_equal(probs[False], probs[True])
