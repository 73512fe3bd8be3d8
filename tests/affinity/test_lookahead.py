import numpy as np
import torch

from negtransfer.affinity.gradients import flatten_task_gradients, per_task_gradients
from negtransfer.affinity.lookahead import stacked_lookahead_affinity, tag_lookahead_affinity
from negtransfer.nn.hard_sharing import StackedHardSharingMLP
from negtransfer.train.losses import TaskLossLayout


def test_batched_lookahead_equals_the_per_task_loop(mixed_dataset):
    ds = mixed_dataset
    layout = TaskLossLayout(ds.tasks)
    model = StackedHardSharingMLP(ds.n_features, (8, 6), layout.n_outputs, seeds=[3])
    x, y = torch.from_numpy(ds.X[:40]), torch.from_numpy(ds.Y[:40])
    shared = model.shared_parameters()

    def closure():
        return layout.task_losses(model(x), y)[0][0]

    losses = closure()
    grads = per_task_gradients(losses, shared)
    velocity = [torch.randn_like(p) * 0.1 for p in shared]
    updates = [g + 0.9 * v.unsqueeze(0) for g, v in zip(grads, velocity, strict=True)]
    lr = 0.05
    batched = stacked_lookahead_affinity(model, x, y, layout, updates, lr, losses)
    looped = tag_lookahead_affinity(closure, shared, lr, updates=flatten_task_gradients(updates))
    torch.testing.assert_close(batched, looped, rtol=1e-4, atol=1e-5)
    # first order: for a small step the lookahead tends to <u_i, g_j> / L_j (ETAP's score); in double
    # precision, so that 1 - L(theta')/L(theta) is not lost to rounding
    model, x, y = model.double(), x.double(), y.double()
    losses = layout.task_losses(model(x), y)[0][0]
    grads = per_task_gradients(losses, model.shared_parameters())
    updates = [g + 0.9 * v.double().unsqueeze(0) for g, v in zip(grads, velocity, strict=True)]
    first = (flatten_task_gradients(updates) @ flatten_task_gradients(grads).T) / losses.detach()[None, :]
    np.testing.assert_allclose(stacked_lookahead_affinity(model, x, y, layout, updates, 1e-6, losses).numpy(),
                               first.numpy(), rtol=1e-3, atol=1e-5)


def test_tag_kind_in_the_tracked_run(mixed_dataset, tmp_path):
    from negtransfer.runs.store import RunStore
    from negtransfer.runs.tracked import measure_affinity
    from negtransfer.train.config import TrainConfig

    # a small learning rate: the lookahead step is nearly first order, so TAG's matrix is close to ETAP's
    cfg = TrainConfig(max_epochs=2, lr=0.002)
    store = RunStore(tmp_path / "s.sqlite")
    tag = measure_affinity(mixed_dataset, cfg, 0, every=2, kind="tag", store=store)
    etap = measure_affinity(mixed_dataset, cfg, 0, every=2, kind="etap", store=store)
    off = ~np.eye(4, dtype=bool)
    assert np.isfinite(tag[off]).all() and not np.array_equal(tag, etap)
    assert np.corrcoef(tag[off], etap[off])[0, 1] > 0.9
    assert np.abs(tag[off] - etap[off]).max() < 0.1 * np.abs(etap[off]).max() + 0.05
    # each kind is cached on its own
    np.testing.assert_array_equal(measure_affinity(mixed_dataset, cfg, 0, every=2, kind="tag", store=store), tag)
