"""Affinity for any model (issue 24): per-task gradients of the shared encoder from one batched backward pass."""

import numpy as np
import pytest
import torch

from negtransfer.affinity.lookahead import stacked_lookahead_affinity
from negtransfer.affinity.training import train_with_affinity
from negtransfer.nn import encoders
from negtransfer.nn.stacked import StackedModel
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig
from negtransfer.train.gradients import per_task_gradients
from negtransfer.train.losses import TaskLossLayout
from negtransfer.train.model_choice import ModelChoice


@pytest.mark.parametrize("encoder", ["cnn", "lstm"])
def test_per_task_encoder_gradients_of_a_stack_equal_a_per_task_loop(encoder, shaped_data, example_shapes):
    data = shaped_data(example_shapes[encoder])
    layout = TaskLossLayout(data.tasks)
    model = StackedModel(encoders.BUILTIN_ENCODERS[encoder], example_shapes[encoder], [1, 3, 1], [7], pair_single=True)
    x, y = torch.from_numpy(data.X[:32]), torch.from_numpy(data.Y[:32])
    losses, _ = layout.task_losses(model(x), y)
    shared = model.shared_parameters()
    batched = per_task_gradients(losses[0], shared, retain_graph=True)
    for t in range(data.n_tasks):
        loop = torch.autograd.grad(losses[0, t], shared, retain_graph=True)
        for b, g in zip(batched, loop, strict=True):
            torch.testing.assert_close(b[t], g, rtol=1e-5, atol=1e-7)
    assert all(float(g.abs().sum()) > 0 for g in batched[0])  # every task moves the encoder
    # the encoder's parameters only: the heads are left out
    assert sum(p.numel() for p in shared) < sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("kind", ["etap", "tag"])
def test_tracked_run_of_a_factory_model_is_its_stacked_all_task_run(kind, shaped_data, example_shapes):
    data = shaped_data(example_shapes["lstm"])
    cfg = TrainConfig(model=ModelChoice("lstm"), max_epochs=3, patience=2, lr=0.05)
    tracker, result, plain = train_with_affinity(data, cfg, seed=4, kind=kind)
    stacked = train_group_models(data, [(0, 1, 2)], cfg, seed=4)[0]
    assert result.test_loss == stacked.test_loss and result.best_epoch == stacked.best_epoch
    A = tracker.affinity_matrix
    assert A.shape == (3, 3) and np.isfinite(A).all()
    assert not np.allclose(A, plain.affinity_matrix)  # the momentum term enters


def test_lookahead_of_a_factory_model_tends_to_the_first_order_affinity(shaped_data, example_shapes):
    data = shaped_data(example_shapes["cnn"])
    layout = TaskLossLayout(data.tasks)
    model = StackedModel(encoders.cnn, example_shapes["cnn"], [1, 3, 1], [3], pair_single=True)
    x, y = torch.from_numpy(data.X[:32]), torch.from_numpy(data.Y[:32])
    losses, _ = layout.task_losses(model(x), y)
    grads = per_task_gradients(losses[0], model.shared_parameters())
    updates = [g.reshape(g.shape[0], *g.shape[2:]) for g in grads]
    lr = 1e-4
    Z = stacked_lookahead_affinity(model, x, y, layout, updates, lr, losses[0].detach())
    G = torch.cat([g.reshape(g.shape[0], -1) for g in grads], dim=1)
    first_order = (G @ G.T) / losses[0].detach().reshape(1, -1)
    torch.testing.assert_close(Z, first_order, rtol=0.05, atol=0.05 * float(first_order.abs().max()))
