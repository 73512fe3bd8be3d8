"""Gradient aggregation of the shared encoder (PCGrad and others) in the stacked trainer."""

import itertools

import numpy as np
import pytest
import torch

from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.nn.hard_sharing import StackedHardSharingMLP
from negtransfer.train.aggregation import (
    GRADIENT_AGGREGATIONS,
    SharedGradientAggregator,
    check_aggregation,
    make_aggregator,
)
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig


def _pcgrad_by_hand(J: torch.Tensor, orders) -> torch.Tensor:
    """Yu et al. (2020), Algorithm 1, with the given visiting order of the other tasks for each task."""
    total = torch.zeros(J.shape[1], dtype=torch.float64)
    G = J.double()
    for i, order in enumerate(orders):
        g = G[i].clone()
        for j in order:
            dot = g @ G[j]
            if dot < 0:
                g = g - dot / (G[j] @ G[j]) * G[j]
        total += g
    return total


def test_pcgrad_projects_two_conflicting_gradients():
    # g1 . g2 = -1 < 0: g1 -> g1 + g2 / 2 = (0.5, 0.5); g2 -> g2 + g1 = (0, 1); sum (0.5, 1.5)
    J = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    agg = SharedGradientAggregator("pcgrad", [0])
    torch.testing.assert_close(agg.direction(J, 0), torch.tensor([0.5, 1.5]))
    # the plain sum would be (0, 1): the projection removed the conflict
    assert not torch.allclose(agg.direction(J, 0), J.sum(0))
    # each projected gradient is orthogonal to the other task's original gradient
    g1_pc, g2_pc = torch.tensor([0.5, 0.5]), torch.tensor([0.0, 1.0])
    assert float(g1_pc @ J[1]) == 0.0 and float(g2_pc @ J[0]) == 0.0


def test_pcgrad_is_the_plain_sum_without_conflicts():
    J = torch.tensor([[1.0, 0.0, 2.0], [1.0, 1.0, 0.0], [0.5, 0.0, 0.1]])  # every inner product >= 0
    agg = SharedGradientAggregator("pcgrad", [3])
    torch.testing.assert_close(agg.direction(J, 0), J.sum(0))


def test_pcgrad_with_three_tasks_matches_algorithm_1_for_some_order():
    gen = torch.Generator().manual_seed(0)
    J = torch.randn(3, 5, generator=gen)
    J[1] = -J[0] + 0.3 * J[1]  # make tasks 0 and 1 conflict
    got = SharedGradientAggregator("pcgrad", [1]).direction(J, 0).double()
    others = [[j for j in range(3) if j != i] for i in range(3)]
    candidates = [_pcgrad_by_hand(J, orders) for orders in
                  itertools.product(*[list(itertools.permutations(o)) for o in others])]
    assert any(torch.allclose(got, c, atol=1e-5) for c in candidates)


def test_aggregation_is_seeded_per_model_and_leaves_the_global_generator_alone():
    J = torch.randn(6, 40, generator=torch.Generator().manual_seed(1))
    J[3] = -J[0]
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = SharedGradientAggregator("graddrop", [5, 5, 6])
    first = [a.direction(J, k) for k in range(3)]
    assert torch.equal(torch.get_rng_state(), before)
    b = SharedGradientAggregator("graddrop", [5, 5, 6])
    assert all(torch.equal(x, b.direction(J, k)) for k, x in enumerate(first))
    assert torch.equal(first[0], first[1])  # same training seed, same draws
    assert not torch.equal(first[0], first[2])  # another seed, other random masks


def test_single_task_rows_are_returned_unchanged():
    J = torch.tensor([[0.3, -2.0]])
    for name in GRADIENT_AGGREGATIONS[1:]:
        assert torch.equal(SharedGradientAggregator(name, [0]).direction(J, 0), J[0])


def test_stacked_gradients_project_the_encoder_only():
    """On a 2-task model: encoder gradient = PCGrad of the two task gradients, heads = their own task's gradient."""
    gen = torch.Generator().manual_seed(0)
    model = StackedHardSharingMLP(3, (4,), 2, seeds=[7])
    with torch.no_grad():  # head 1 = -head 0 and both tasks want the same large targets: the tasks pull the
        model.weights[-1][..., 1] = -model.weights[-1][..., 0]  # encoder in opposite directions
        model.biases[-1][..., 1] = -model.biases[-1][..., 0]
    x = torch.randn(10, 3, generator=gen)
    target = 10 * torch.randn(10, 1, generator=gen).expand(10, 2)

    def task_losses():
        return ((model(x)[0] - target) ** 2).mean(0).unsqueeze(0)  # (1, 2)

    shared, heads = model.shared_parameters(), model.head_parameters()
    per_task = [torch.autograd.grad(task_losses()[0, t], shared + heads) for t in range(2)]
    g = [torch.cat([p.reshape(-1) for p in grads[: len(shared)]]) for grads in per_task]
    assert float(g[0] @ g[1]) < 0
    expected = _pcgrad_by_hand(torch.stack(g), [[1], [0]]).float()
    agg = SharedGradientAggregator("pcgrad", [0])
    grads = agg.gradients(task_losses(), model, torch.ones(1, 2, dtype=torch.bool), [0])
    by_id = {id(p): gr for p, gr in zip(model.parameters(), grads, strict=True)}
    got = torch.cat([by_id[id(p)].reshape(-1) for p in shared])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    for h, p in enumerate(heads):  # the heads: the summed gradient, each output column its own task's
        torch.testing.assert_close(by_id[id(p)], per_task[0][len(shared) + h] + per_task[1][len(shared) + h])


@pytest.fixture(scope="module")
def conflicting():
    # two planted clusters reading orthogonal directions: hard sharing across them is negative transfer
    return make_synthetic_tasks(n_tasks=4, n_clusters=2, n_samples=300, seed=0)


def test_pcgrad_training_is_deterministic_and_differs_from_sum(conflicting, monkeypatch):
    conflicts = []
    original = SharedGradientAggregator.direction

    def spy(self, jacobian, model):
        gram = jacobian @ jacobian.T
        conflicts.append(bool((gram < 0).any()))
        return original(self, jacobian, model)

    monkeypatch.setattr(SharedGradientAggregator, "direction", spy)
    everything = [(0, 1, 2, 3)]
    pc = TrainConfig(max_epochs=4, lr=0.05, gradient_aggregation="pcgrad")
    a = train_group_models(conflicting, everything, pc, seed=0)[0]
    assert sum(conflicts) > 0  # the planted tasks do conflict on some steps
    b = train_group_models(conflicting, everything, pc, seed=0)[0]
    plain = train_group_models(conflicting, everything, TrainConfig(max_epochs=4, lr=0.05), seed=0)[0]
    other_seed = train_group_models(conflicting, everything, pc, seed=1)[0]
    assert a.test_loss == b.test_loss and a.val_loss == b.val_loss
    assert a.test_loss != plain.test_loss
    assert a.test_loss != other_seed.test_loss
    assert all(np.isfinite(v) for v in a.test_loss.values())


def test_aggregated_models_do_not_depend_on_their_stack_partners(conflicting):
    cfg = TrainConfig(max_epochs=3, lr=0.05, gradient_aggregation="pcgrad")
    together = train_group_models(conflicting, [(0, 1, 2, 3), (0, 2), (1,)], cfg, seed=2, repeats=[0, 0, 1])
    for k, (g, r) in enumerate([((0, 1, 2, 3), 0), ((0, 2), 0), ((1,), 1)]):
        alone = train_group_models(conflicting, [g], cfg, seed=2, repeats=[r])[0]
        assert together[k].test_loss == alone.test_loss


def test_bad_names_and_step_hooks_are_refused(conflicting):
    with pytest.raises(ValueError, match="gradient_aggregation must be one of sum, pcgrad, mgda"):
        TrainConfig(gradient_aggregation="PCGrad")
    with pytest.raises(ValueError, match="the choices are: sum, pcgrad"):
        check_aggregation("cagrad")
    with pytest.raises(ValueError, match="no aggregator"):
        make_aggregator("sum")
    cfg = TrainConfig(max_epochs=1, gradient_aggregation="mgda")
    with pytest.raises(ValueError, match="step hook"):
        train_group_models(conflicting, [(0, 1)], cfg, 0, step_hook=lambda *a: None)


def test_default_config_hash_is_unchanged_and_aggregation_changes_it():
    assert TrainConfig().config_hash() == "fedb84d1373d9bcd"  # the hash before the field existed
    assert TrainConfig(gradient_aggregation="sum").config_hash() == "fedb84d1373d9bcd"
    hashes = {TrainConfig(gradient_aggregation=n).config_hash() for n in GRADIENT_AGGREGATIONS}
    assert len(hashes) == len(GRADIENT_AGGREGATIONS)
