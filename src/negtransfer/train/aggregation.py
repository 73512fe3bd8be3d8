"""Gradient aggregation of the shared encoder: PCGrad and other multi-task aggregators.

A hard-sharing model's training objective is a sum of per-task terms
``L = sum_t L_t`` (``TrainConfig.loss_weighting`` decides the terms). Its
ordinary update follows the summed gradient. A *gradient aggregator* instead
looks at the Jacobian ``J`` of the per-task terms with respect to the shared
encoder, one row ``g_t = d L_t / d theta_shared`` per task, and combines the
rows into one update direction (e.g. PCGrad removes the conflicting components
first). This module builds ``J`` from ONE batched backward pass
(:func:`negtransfer.train.gradients.per_task_and_summed_gradients`, the pass
the affinity tracker uses) and aggregates it with an aggregator of the
`torchjd <https://github.com/TorchJD/torchjd>`_ package (MIT license); the
result becomes the shared parameters' gradient, which the optimiser (SGD with
momentum or Adam) then uses as usual. Each task head gets its own task's
gradient, as with the summed objective: a head's parameters are touched by one
task's loss only.

Why this is PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning",
NeurIPS 2020, Algorithm 1) on the shared parameters. Algorithm 1 takes the
task gradients ``g_1 .. g_T``; for every task ``i`` it starts from
``g_i^PC = g_i`` and, for every other task ``j`` in a random order, replaces
``g_i^PC`` by ``g_i^PC - (g_i^PC . g_j) / ||g_j||^2 g_j`` whenever
``g_i^PC . g_j < 0`` (projection onto the normal plane of the *original*
``g_j``); the update is ``sum_i g_i^PC``. torchjd's ``PCGrad`` runs exactly
these steps on the Gramian ``J J^T`` (each ``g_i^PC`` kept as weights over the
rows of ``J``; inner products read off the Gramian), with a fresh random order
for every ``i``, and returns ``w^T J``: the same vector. The rows of ``J`` here
are the task gradients of the shared encoder, so the result is Algorithm 1
applied to the shared parameters. (Inner products over the full parameter
vector would be the same, since different tasks' heads are disjoint; the
public PCGrad code also projects the head coordinates, which rescales head j's
gradient by ``1 - sum_i c_ij`` for the projection coefficients ``c_ij`` onto
``g_j``; here the heads keep their own gradient.)

Randomness. PCGrad's order (and GradDrop's masks) come from torch's global
generator inside torchjd. Each model gets its own generator, seeded from the
model's training seed, whose state is swapped into the global generator for
the aggregation only (:func:`torch.random.fork_rng`): a run is deterministic
given its seed, independent of its stack partners, and leaves the global
generator as it was. The aggregation runs on the CPU (the Jacobian is small).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch import Tensor

from negtransfer.train.config import GRADIENT_AGGREGATIONS
from negtransfer.train.gradients import per_task_and_summed_gradients

__all__ = ["GRADIENT_AGGREGATIONS", "SharedGradientAggregator", "check_aggregation", "make_aggregator"]

#: Where each aggregation is defined (for docs and reports).
REFERENCES = {
    "sum": "the summed gradient (ordinary training)",
    "pcgrad": "Yu et al., NeurIPS 2020 (Algorithm 1)",
    "mgda": "Desideri 2012; Sener and Koltun, NeurIPS 2018 (MGDA-UB on the shared encoder's gradients)",
    "imtl-g": "Liu et al., ICLR 2021 (IMTL-G)",
    "aligned-mtl": "Senushkin et al., CVPR 2023",
    "graddrop": "Chen et al., NeurIPS 2020",
}


def check_aggregation(name: str) -> str:
    """Return ``name`` if it is a known aggregation, else raise ValueError listing the choices."""
    if name not in GRADIENT_AGGREGATIONS:
        raise ValueError(f"unknown gradient aggregation {name!r}; the choices are: {', '.join(GRADIENT_AGGREGATIONS)}")
    return name


def make_aggregator(name: str):
    """A fresh torchjd aggregator for ``name`` (not ``"sum"``, which needs none).

    Parameters
    ----------
    name : str
        One of :data:`GRADIENT_AGGREGATIONS` other than ``"sum"``.

    Returns
    -------
    torchjd.aggregation.Aggregator
        Called on a Jacobian ``(T, P)``, returns the update direction ``(P,)``.
    """
    check_aggregation(name)
    if name == "sum":
        raise ValueError("'sum' is the ordinary summed gradient; it has no aggregator object")
    try:
        from torchjd import aggregation as agg
    except ImportError as exc:  # a core dependency; only a broken install lacks it
        raise ImportError(f"gradient aggregation {name!r} needs the torchjd package: pip install 'torchjd>=0.18'") from exc
    return {"pcgrad": agg.PCGrad, "mgda": agg.MGDA, "imtl-g": agg.IMTLG, "aligned-mtl": agg.AlignedMTL,
            "graddrop": agg.GradDrop}[name]()


def _generator_seed(train_seed: int, name: str) -> int:
    blob = f"{int(train_seed)}:aggregation:{name}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


class SharedGradientAggregator:
    """Per-model aggregators and random generators for one stack of models.

    Parameters
    ----------
    name : str
        The aggregation (:data:`GRADIENT_AGGREGATIONS`, not ``"sum"``).
    train_seeds : sequence of int
        Training seed of every model of the stack (original order); model ``k``'s
        random draws (PCGrad's projection order, GradDrop's masks) come from a
        generator seeded by a hash of ``train_seeds[k]``.
    """

    def __init__(self, name: str, train_seeds: Sequence[int]):
        self.name = check_aggregation(name)
        self.aggregators = [make_aggregator(name) for _ in train_seeds]
        self.generators = [torch.Generator().manual_seed(_generator_seed(s, name)) for s in train_seeds]

    def direction(self, jacobian: Tensor, model: int) -> Tensor:
        """The update direction ``(P,)`` of ``model`` from its Jacobian ``(T, P)`` (rows: its tasks' gradients).

        One row is returned as it is (a single task has nothing to aggregate);
        the aggregation runs on the CPU with the model's own generator.
        """
        if jacobian.shape[0] == 1:
            return jacobian[0]
        gen = self.generators[model]
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(gen.get_state())
            out = self.aggregators[model](jacobian.detach().cpu())
            gen.set_state(torch.get_rng_state())
        return out.to(device=jacobian.device, dtype=jacobian.dtype)

    def gradients(self, task_terms: Tensor, model, present: Tensor, models: Sequence[int]) -> list[Tensor]:
        """Gradients of every parameter of a stacked model, the shared encoder's aggregated per model.

        Parameters
        ----------
        task_terms : Tensor (K, n_tasks)
            Per model, the per-task terms of its training objective on the batch
            (zero for tasks outside its group), with their graph.
        model : StackedHardSharingMLP
            The stack (``shared_parameters()``: the encoder; ``head_parameters()``: the heads).
        present : Tensor of bool (K, n_tasks)
            Rows that enter model k's Jacobian: its group's tasks with labelled rows in the batch.
        models : sequence of int
            Original index (in ``train_seeds``) of each stack position.

        Returns
        -------
        list of Tensor
            In ``model.parameters()`` order: the aggregated direction for the
            encoder's parameters, the summed (= each head's own) gradient for the heads.
        """
        shared, heads = model.shared_parameters(), model.head_parameters()
        per_task, _, summed_heads = per_task_and_summed_gradients(task_terms, shared, heads)
        T, K = task_terms.shape[1], task_terms.shape[0]
        jac = torch.cat([g.reshape(T, K, -1) for g in per_task], dim=2)  # (T, K, P)
        direction = jac.new_zeros(K, jac.shape[2])
        for pos in range(K):
            rows = torch.nonzero(present[pos]).flatten()
            if rows.numel():
                direction[pos] = self.direction(jac[rows, pos], int(models[pos]))
        grads, start = {}, 0
        for p in shared:
            size = p[0].numel()
            grads[id(p)] = direction[:, start:start + size].reshape(p.shape)
            start += size
        for p, g in zip(heads, summed_heads, strict=True):
            grads[id(p)] = p.new_zeros(p.shape) if g is None else g
        return [grads[id(p)] for p in model.parameters()]


def task_terms(sums: Tensor, counts: Tensor, losses: Tensor, mask: Tensor, row_mean: bool) -> Tensor:
    """Per model and task, the task's term of the training objective (their sum is the objective).

    ``row_mean`` False: each task's mean loss (``losses``) on its labelled rows;
    True: its summed loss over the model's labelled rows of all its tasks
    (``TrainConfig.loss_weighting``). Tasks outside a model's group get 0.
    """
    if row_mean:
        return sums * mask / (counts * mask).sum(1, keepdim=True).clamp(min=1.0)
    return losses * mask
