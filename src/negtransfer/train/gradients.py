"""Per-task gradients from ONE batched backward pass (ETAP eq. 3), for the trainer and the affinity trackers.

``torch.autograd.grad(task_losses, params, grad_outputs=I_T, is_grads_batched=True)``
vectorises the backward pass over the T rows of the identity instead of running
T separate passes; the sum of the per-task gradients is the ordinary training
gradient, so a tracked step needs no second backward
(``benchmarks/affinity_step_cost.py``). Used by the affinity trackers
(:mod:`negtransfer.affinity.gradients` re-exports these functions) and by the
gradient aggregators of :mod:`negtransfer.train.aggregation`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["per_task_and_summed_gradients", "per_task_gradients"]


def as_loss_tensor(task_losses) -> Tensor:
    """Per-task losses as one tensor whose last axis indexes the tasks."""
    if isinstance(task_losses, Tensor):
        losses = task_losses
    else:
        items = list(task_losses)
        if not items or not all(isinstance(t, Tensor) for t in items):
            raise TypeError(
                "task_losses must be a tensor of shape (..., n_tasks) or a non-empty sequence of "
                f"scalar tensors; got {type(task_losses).__name__}"
            )
        losses = torch.stack([t.reshape(()) for t in items])
    if losses.ndim == 0:
        raise ValueError(
            "task_losses must have a task axis (shape (n_tasks,) or (..., n_tasks)); got a scalar. "
            "Pass the per-task losses, not their sum."
        )
    return losses


def batched_vjp(outputs: Tensor, basis: Tensor, inputs: Sequence[Tensor], retain_graph: bool) -> list:
    """``autograd.grad`` with a batch of output cotangents, in one backward pass."""
    return list(
        torch.autograd.grad(
            outputs,
            list(inputs),
            grad_outputs=basis,
            is_grads_batched=True,
            retain_graph=retain_graph,
            allow_unused=True,
        )
    )


def task_basis(losses: Tensor) -> Tensor:
    """Cotangents (T, *losses.shape): row t selects task t (last axis) in every leading slot."""
    n = losses.shape[-1]
    eye = torch.eye(n, dtype=losses.dtype, device=losses.device)
    view = (n,) + (1,) * (losses.ndim - 1) + (n,)
    return eye.reshape(view).expand((n,) + tuple(losses.shape)).contiguous()


def per_task_gradients(task_losses, params: Sequence[Tensor], *, retain_graph: bool = False) -> list[Tensor]:
    """Gradient of every task's loss w.r.t. ``params``, in ONE batched backward pass.

    Uses ``torch.autograd.grad(task_losses, params, grad_outputs=I_T,
    is_grads_batched=True)``: autograd vectorises the backward pass over the T
    rows of the identity instead of running T separate passes (paper eq. 3).

    Parameters
    ----------
    task_losses : Tensor of shape (T,) or (..., T), or sequence of T scalar tensors
        Per-task losses with their graph. Leading axes (e.g. K models trained in
        one stack, shape (K, T)) are allowed: row ``t`` of the result is then the
        gradient of ``task_losses[..., t].sum()``, which for independent models
        holds each model's own per-task gradient in its slice.
    params : sequence of Tensor
        Leaf tensors to differentiate (normally the shared encoder's parameters).
    retain_graph : bool
        Keep the graph for a later backward pass (e.g. for head parameters).

    Returns
    -------
    list of Tensor
        One tensor of shape ``(T, *p.shape)`` per parameter ``p``; zeros for a
        parameter that no task's loss depends on.
    """
    losses = as_loss_tensor(task_losses)
    params = list(params)
    grads = batched_vjp(losses, task_basis(losses), params, retain_graph)
    n = losses.shape[-1]
    return [torch.zeros((n,) + tuple(p.shape), dtype=p.dtype, device=p.device) if g is None else g
            for g, p in zip(grads, params, strict=True)]


def per_task_and_summed_gradients(
    task_losses,
    shared_params: Sequence[Tensor],
    other_params: Sequence[Tensor] = (),
    *,
    retain_graph: bool = False,
) -> tuple[list[Tensor], list[Tensor | None], list[Tensor | None]]:
    """Everything a tracked training step needs, from ONE batched backward pass.

    The batched pass differentiates the T task losses w.r.t. the shared *and*
    the other (task-head) parameters at once; the per-task head gradients are
    summed over tasks and discarded. Summing the per-task gradients gives the
    gradient of ``task_losses.sum()``, the ordinary training gradient, so no
    second backward pass is needed. (Computing the head gradients per task
    costs little: ``benchmarks/affinity_step_cost.py`` compares it with a second,
    head-only backward pass.)

    Parameters
    ----------
    task_losses : Tensor of shape (T,) or (..., T), or sequence of T scalar tensors
    shared_params : sequence of Tensor
        Parameters shared by the tasks (the encoder); their per-task gradients are returned.
    other_params : sequence of Tensor
        Every other trained parameter (task heads); only their summed gradient is returned.
    retain_graph : bool
        Keep the graph after the pass.

    Returns
    -------
    per_task : list of Tensor
        ``(T, *p.shape)`` per shared parameter (zeros where unused).
    summed_shared, summed_other : list of Tensor or None
        Gradient of ``task_losses.sum()`` per parameter; ``None`` for a parameter
        the losses do not depend on (as ``backward`` would leave its ``.grad`` alone).
    """
    losses = as_loss_tensor(task_losses)
    shared, other = list(shared_params), list(other_params)
    grads = batched_vjp(losses, task_basis(losses), shared + other, retain_graph)
    n = losses.shape[-1]
    per_task = [torch.zeros((n,) + tuple(p.shape), dtype=p.dtype, device=p.device) if g is None else g
                for g, p in zip(grads[: len(shared)], shared, strict=True)]
    summed_shared = [None if g is None else g.sum(0) for g in grads[: len(shared)]]
    summed_other = [None if g is None else g.sum(0) for g in grads[len(shared):]]
    return per_task, summed_shared, summed_other
