"""The fused step of the built-in MLP (train/fused_step.py) and the masked (GPU) form of the stacked trainer.

The fused step must give autograd's gradients bit for bit, the flat optimiser the per-parameter optimiser's
numbers, and a stack that keeps its stopped models (masked, fixed shapes) the numbers of one that drops them.
"""

import itertools

import numpy as np
import pytest
import torch

import negtransfer.train.batched as batched
from negtransfer.nn.flat import FLAT_BLOCK
from negtransfer.nn.hard_sharing import StackedHardSharingMLP
from negtransfer.train.batched import _StackOptimizer, train_group_models
from negtransfer.train.config import TrainConfig
from negtransfer.train.fused_step import StepWorkspace, mlp_gradients, training_loss
from negtransfer.train.losses import TaskLossLayout
from negtransfer.train.model_choice import ModelChoice

GROUPS = [(0,), (1,), (2,), (3,), (0, 1), (0, 2, 3), (1, 2), (0, 1, 2, 3), (2, 3)]


def _mask(groups, n_tasks):
    mask = torch.zeros(len(groups), n_tasks)
    for k, g in enumerate(groups):
        mask[k, list(g)] = 1.0
    return mask


@pytest.mark.parametrize("binary_only", [False, True])  # every task binary: the loss's gradient written out
@pytest.mark.parametrize("row_mean", [False, True])
@pytest.mark.parametrize("per_model_batch", [False, True])
def test_fused_gradients_are_autograds_bit_for_bit(mixed_dataset, row_mean, per_model_batch, binary_only):
    ds = mixed_dataset.subset_tasks(["a", "b"]) if binary_only else mixed_dataset
    layout = TaskLossLayout(ds.tasks)
    groups = [(0,), (1,), (0, 1)] * 3 if binary_only else GROUPS
    seeds = list(range(len(groups)))
    plain = StackedHardSharingMLP(ds.n_features, (8, 5), layout.n_outputs, seeds)
    fused = StackedHardSharingMLP(ds.n_features, (8, 5), layout.n_outputs, seeds)
    flat = fused.flatten()
    mask = _mask(groups, ds.n_tasks)
    x, y = torch.from_numpy(ds.X[:32]), torch.from_numpy(ds.Y[:32])
    if per_model_batch:  # each model its own rows
        index = torch.stack([torch.randperm(ds.X.shape[0], generator=torch.Generator().manual_seed(k))[:32]
                             for k in range(len(groups))])
        x, y = torch.from_numpy(ds.X)[index], torch.from_numpy(ds.Y)[index]
    sums, counts = layout.loss_sums(plain(x), y)
    expected = torch.autograd.grad(training_loss(sums, counts, sums / counts.clamp(min=1.0), mask, row_mean),
                                   list(plain.parameters()))
    grad_flat = torch.full_like(flat, float("nan"))  # every entry must be written
    views = fused.parameter_views(grad_flat)
    has_label = mlp_gradients(fused, x, y, layout, mask, row_mean, views)
    for got, want in zip(views, expected, strict=True):
        assert torch.equal(got, want)
    assert has_label.dtype == torch.bool and has_label.shape == (len(groups),)
    assert torch.equal(has_label, (mask * (counts > 0)).sum(1) > 0)


@pytest.mark.parametrize("binary_only", [False, True])
def test_a_kept_workspace_gives_the_numbers_of_fresh_tensors(mixed_dataset, binary_only):
    """Steps that reuse one StepWorkspace (other batch widths and stack sizes in between) write the gradients of
    steps with new tensors, bit for bit, and leave no tensor of the workspace requiring a gradient."""
    ds = mixed_dataset.subset_tasks(["a", "b"]) if binary_only else mixed_dataset
    layout = TaskLossLayout(ds.tasks)
    groups = [(0,), (1,), (0, 1)] * 2 if binary_only else GROUPS
    model = StackedHardSharingMLP(ds.n_features, (8, 5), layout.n_outputs, list(range(len(groups))))
    flat = model.flatten()
    mask = _mask(groups, ds.n_tasks)
    workspace = StepWorkspace()
    X, Y = torch.from_numpy(ds.X), torch.from_numpy(ds.Y)
    for rows in (slice(0, 32), slice(32, 48), slice(48, 80), slice(0, 32)):  # widths 32, 16, 32, 32
        fresh = torch.full_like(flat, float("nan"))
        kept = torch.full_like(flat, float("nan"))
        a = mlp_gradients(model, X[rows], Y[rows], layout, mask, False, model.parameter_views(fresh))
        b = mlp_gradients(model, X[rows], Y[rows], layout, mask, False, model.parameter_views(kept), workspace)
        assert torch.equal(fresh.nan_to_num(), kept.nan_to_num()) and torch.equal(a, b)  # (padding left NaN)
        with torch.no_grad():
            flat.sub_(0.05 * kept)  # the next step sees other weights
    model.keep_models(torch.tensor([0, 2]))  # a smaller stack: the workspace makes new tensors
    mask = mask[[0, 2]]
    fresh = torch.zeros(model.flat_parameters.numel())
    kept = torch.zeros_like(fresh)
    mlp_gradients(model, X[:32], Y[:32], layout, mask, True, model.parameter_views(fresh))
    mlp_gradients(model, X[:32], Y[:32], layout, mask, True, model.parameter_views(kept), workspace)
    assert torch.equal(fresh, kept)
    assert not any(t.requires_grad for t in workspace._tensors.values())


def test_flattened_parameters_are_views_and_dropping_keeps_them():
    model = StackedHardSharingMLP(7, (4, 3), 2, seeds=[5, 6, 7])
    before = [p.detach().clone() for p in model.parameters()]
    flat = model.flatten()
    size = sum(p.numel() for p in before)
    assert flat.numel() == -(-size // FLAT_BLOCK) * FLAT_BLOCK and not flat[size:].any()  # zero padding
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b)
    with torch.no_grad():
        flat.add_(1.0)  # the parameters are views of the buffer
    assert torch.equal(model.weights[0], before[0] + 1.0)
    model.keep_models(torch.tensor([0, 2]))
    assert model.flat_parameters is not None and model.n_models == 2
    for p, b in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, b[[0, 2]] + 1.0)


def _flat_of(model, tensors):
    """``tensors`` (shaped like the stack's parameters) written into a flat buffer of the stack's layout."""
    flat = torch.zeros_like(model.flat_parameters)  # (with its padding)
    for view, t in zip(model.parameter_views(flat), tensors, strict=True):
        view.copy_(t)
    return flat


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_flat_optimizer_equals_the_per_parameter_one(optimizer):
    config = TrainConfig(optimizer=optimizer, lr=0.1, weight_decay=0.01)
    a = StackedHardSharingMLP(6, (4,), 3, seeds=[1, 2, 3])
    b = StackedHardSharingMLP(6, (4,), 3, seeds=[1, 2, 3])
    flat = b.flatten()
    plain = _StackOptimizer([p.data for p in a.parameters()], config)
    flat_opt = _StackOptimizer([p.data for p in b.parameters()], config, views=b.parameter_views, flat=flat)
    gen = torch.Generator().manual_seed(0)
    for active in ([True, True, True], [True, False, True], [True, True, True]):
        grads = [torch.randn(p.shape, generator=gen) for p in a.parameters()]
        grad_flat = _flat_of(b, grads)
        mask = torch.tensor(active)
        plain.step(grads, mask)
        flat_opt.step(b.parameter_views(grad_flat), mask, grad_flat)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    keep = torch.tensor([0, 2])
    a.keep_models(keep)
    b.keep_models(keep)
    plain.keep(keep, [p.data for p in a.parameters()])
    flat_opt.keep(keep, [p.data for p in b.parameters()], b.flat_parameters)
    grads = [torch.randn(p.shape, generator=gen) for p in a.parameters()]
    grad_flat = _flat_of(b, grads)
    plain.step(grads, torch.tensor([True, True]))
    flat_opt.step(b.parameter_views(grad_flat), torch.tensor([True, True]), grad_flat)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    grads = [torch.randn(p.shape, generator=gen) for p in a.parameters()]  # a masked step after the drop
    grad_flat = _flat_of(b, grads)
    plain.step(grads, torch.tensor([False, True]))
    flat_opt.step(b.parameter_views(grad_flat), torch.tensor([False, True]), grad_flat)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    for s, t in zip(plain.state, flat_opt.state, strict=True):
        assert torch.equal(s, t)


def small_network(input_shape, outputs):
    """A factory's network (not the built-in MLP), so its stack trains through autograd."""
    encoder = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(int(np.prod(input_shape)), 8), torch.nn.Tanh())
    return encoder, [torch.nn.Linear(8, o) for o in outputs]


def _numbers(results):
    return [(r.val_loss, r.test_loss, r.best_epoch, r.epochs, np.asarray(list(r.test_metric.values())).tolist())
            for r in results]


@pytest.mark.parametrize("config", [
    TrainConfig(max_epochs=12, patience=2, lr=0.05),
    TrainConfig(optimizer="adam", max_epochs=8, patience=1, lr=0.02),
    TrainConfig(max_epochs=15, patience=1, lr=0.2, model=ModelChoice.from_callable(small_network)),
], ids=["fused-sgd", "fused-adam", "autograd"])
def test_masked_stopped_models_give_the_numbers_of_dropped_ones(mixed_dataset, monkeypatch, config):
    """The GPU form (stopped models stay in the stack, masked; no host read in a step), run on the CPU."""
    dropped = train_group_models(mixed_dataset, GROUPS, config, seed=2, repeats=[0, 1, 0, 0, 2, 0, 0, 1, 0])
    assert len({r.epochs for r in dropped}) > 1  # models stopped at different epochs
    monkeypatch.setattr(batched, "MASK_STOPPED_MODELS", True)
    masked = train_group_models(mixed_dataset, GROUPS, config, seed=2, repeats=[0, 1, 0, 0, 2, 0, 0, 1, 0])
    assert _numbers(masked) == _numbers(dropped)


@pytest.mark.parametrize("config", [
    TrainConfig(max_epochs=10, patience=1, lr=0.2, model=ModelChoice.from_callable(small_network)),
    TrainConfig(optimizer="adam", max_epochs=8, patience=1, lr=0.02, model=ModelChoice.from_callable(small_network)),
    TrainConfig(max_epochs=15, patience=1, lr=0.2, gradient_aggregation="pcgrad"),
], ids=["factory-sgd", "factory-adam", "mlp-aggregated"])
def test_flat_buffers_of_the_autograd_step_give_the_numbers_of_one_tensor_per_parameter(mixed_dataset, monkeypatch,
                                                                                       config):
    """Any network (and the built-in MLP where autograd's step is needed): the optimiser over one flat buffer
    gives the numbers of the optimiser over each parameter tensor, through early stopping's drops."""
    repeats = [0, 1, 0, 0, 2, 0, 0, 1, 0]
    flat = train_group_models(mixed_dataset, GROUPS, config, seed=3, repeats=repeats)
    assert len({r.epochs for r in flat}) > 1  # models stopped at different epochs: the stack shrank
    monkeypatch.setattr(batched._AutogradStep, "FLAT", False)
    per_tensor = train_group_models(mixed_dataset, GROUPS, config, seed=3, repeats=repeats)
    assert _numbers(flat) == _numbers(per_tensor)


def test_a_factory_stack_flattens_and_keeps_its_layout_when_models_drop():
    from negtransfer.nn.stacked import StackedModel

    stack = StackedModel(small_network, (5,), (1, 2), seeds=[3, 4, 5])
    before = [p.detach().clone() for p in stack.parameters()]
    assert stack.flat_parameters is None
    flat = stack.flatten()
    size = sum(b.numel() for b in before)
    assert stack.flat_parameters is flat and flat.numel() == -(-size // FLAT_BLOCK) * FLAT_BLOCK
    for p, b, v in zip(stack.parameters(), before, stack.parameter_views(flat), strict=True):
        assert torch.equal(p, b) and p.data_ptr() == v.data_ptr()
    x = torch.randn(4, 5)
    out = stack(x)
    with torch.no_grad():
        flat.mul_(2.0)  # the parameters are views of the buffer
    assert not torch.equal(stack(x), out)
    stack.keep_models(torch.tensor([0, 2]))
    assert stack.n_models == 2 and stack.flat_parameters is not None
    for p, b in zip(stack.parameters(), before, strict=True):
        assert torch.equal(p, 2.0 * b[[0, 2]])


def _binary_tasks_dataset(n_tasks, n_rows=240, n_features=103, missing=0.3, seed=0):
    """Multi-label binary data the size of yeast's features, with missing labels."""
    from negtransfer.data.dataset import MultiTaskDataset, TaskSpec

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, n_features)).astype(np.float32)
    Y = (X @ rng.normal(size=(n_features, n_tasks)) > 0).astype(float)
    Y[rng.random(Y.shape) < missing] = np.nan
    split = rng.choice([0, 0, 0, 1, 2], size=n_rows).astype(np.int8)
    tasks = tuple(TaskSpec(f"t{t}", "binary", (0, 1)) for t in range(n_tasks))
    return MultiTaskDataset("wide", tasks, X, Y, split, tuple(f"x{i}" for i in range(n_features)))


@pytest.mark.parametrize("batch_size", [32, 3])  # 3: steps where some models have no label (masked updates)
def test_a_model_has_the_same_numbers_alone_and_in_stacks_of_any_size(batch_size):
    """Issue 26: the first layer of a stack is one matrix product over the models' joined columns and the
    optimiser one fused pass over the flat buffer; a model's parameters, losses and epochs must still be those
    of the model trained alone, bit for bit, in stacks of 5 and 40 (some models stopping and being dropped)."""
    ds = _binary_tasks_dataset(n_tasks=11)  # 4043 parameters a model: unpadded, a partial last vector
    target = (3, 10)
    groups = [target] + [g for size in (2, 3, 1) for g in itertools.combinations(range(ds.n_tasks), size)
                         if g != target][:39]
    config = TrainConfig(max_epochs=6, patience=1, lr=0.05, batch_size=batch_size)
    alone = train_group_models(ds, [target], config, seed=1, keep_parameters=True)[0]
    for stack in (groups[:5], groups):
        results = train_group_models(ds, stack, config, seed=1, keep_parameters=True)
        res = results[stack.index(target)]
        assert len({r.epochs for r in results}) > 1  # models stopped at different epochs: the stack shrank
        assert _numbers([res]) == _numbers([alone])
        for got, want in zip(res.extra["parameters"], alone.extra["parameters"], strict=True):
            assert torch.equal(got, want)
