"""Per-task gradients of shared parameters from ONE batched backward pass (ETAP eq. 3).

The batched pass itself lives in :mod:`negtransfer.train.gradients` (the
trainer's gradient aggregators use it too) and is re-exported here, with the
helpers that flatten per-task gradients into a ``(T, P)`` matrix.

``torch.autograd.grad(task_losses, params, grad_outputs=I_T, is_grads_batched=True)``
vectorises the backward pass over the T rows of the identity instead of running
T separate passes; the sum of the per-task gradients is the ordinary training
gradient, so a tracked step needs no second backward
(``benchmarks/affinity_step_cost.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from negtransfer.train.gradients import per_task_and_summed_gradients, per_task_gradients

__all__ = ["flatten_task_gradients", "per_task_and_summed_gradients", "per_task_gradients"]


def flatten_task_gradients(grads) -> Tensor:
    """Per-parameter per-task gradients ``[(T, *shape), ...]`` as one ``(T, P)`` matrix."""
    if isinstance(grads, Tensor):
        if grads.ndim != 2:
            raise ValueError(f"task gradients as a tensor must have shape (T, P); got {tuple(grads.shape)}")
        return grads
    grads = list(grads)
    if not grads:
        raise ValueError("task gradients are empty: pass at least one shared parameter's gradients")
    n = grads[0].shape[0]
    for g in grads:
        if g.ndim == 0 or g.shape[0] != n:
            raise ValueError(
                "every per-parameter gradient must have the task axis first with the same length; "
                f"got shapes {[tuple(x.shape) for x in grads]}"
            )
    return torch.cat([g.reshape(n, -1) for g in grads], dim=1)


def flatten_parameter_vector(vec, shapes: Sequence[tuple], like: Tensor, name: str) -> Tensor | None:
    """A per-parameter list (entries may be None = zeros) or a flat tensor, as a flat (P,) tensor."""
    if vec is None:
        return None
    n_total = like.shape[1]
    if isinstance(vec, Tensor):
        flat = vec.reshape(-1)
    else:
        vec = list(vec)
        if len(vec) != len(shapes):
            raise ValueError(f"{name} has {len(vec)} entries but there are {len(shapes)} shared parameters")
        parts = []
        for v, shape in zip(vec, shapes, strict=True):
            size = math.prod(shape)
            parts.append(torch.zeros(size, dtype=like.dtype, device=like.device) if v is None else v.reshape(-1))
        flat = torch.cat(parts) if parts else like.new_zeros(0)
    if flat.numel() != n_total:
        raise ValueError(f"{name} has {flat.numel()} elements but the gradients have {n_total} per task")
    return flat.to(dtype=like.dtype, device=like.device)


def parameter_shapes(grads) -> list[tuple]:
    """The parameter shapes of per-task gradients (a (T, *shape) tensor or a list of them): the task axis dropped."""
    if isinstance(grads, Tensor):
        return [tuple(grads.shape[1:])]
    return [tuple(g.shape[1:]) for g in grads]
