"""TAG's lookahead affinity (Fifty et al. 2021): one extra forward pass per source task."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from negtransfer.affinity.gradients import flatten_task_gradients, per_task_gradients
from negtransfer.affinity.updates import optimizer_task_updates, sgd_task_updates
from negtransfer.train.gradients import as_loss_tensor

__all__ = ["stacked_lookahead_affinity", "tag_lookahead_affinity"]


def tag_lookahead_affinity(
    closure: Callable[[], Tensor],
    shared_params: Sequence[Tensor],
    lr: float | None = None,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    updates=None,
    velocity=None,
    momentum: float = 0.0,
) -> Tensor:
    """Lookahead inter-task affinity of TAG (Fifty et al.): one extra forward pass per source task.

    For every source ``i`` the shared parameters are moved by the step task
    ``i`` alone would cause, ``theta' = theta - lr * u_i``, the forward pass is
    re-run on the same batch, and

    ``Z[i, j] = (1 - L_j(theta') / L_j(theta)) / lr``.

    The parameters are restored exactly afterwards. For a small ``lr`` this
    tends to the first-order (ETAP) affinity ``<u_i, g_j> / L_j`` of
    :func:`step_affinity_from_updates`; same orientation (rows are sources).

    Parameters
    ----------
    closure : callable () -> Tensor (T,)
        Recomputes the per-task losses on the current batch at the current
        parameters, with its graph. Must be deterministic (no dropout noise).
    shared_params : sequence of Tensor
        Parameters moved by the lookahead step (the shared encoder).
    lr : float, optional
        Lookahead learning rate. Defaults to the optimizer's (reference) ``lr``.
    optimizer : torch.optim.Optimizer, optional
        If given (and ``updates`` is not), per-task updates follow its rule and
        state (:func:`optimizer_task_updates`).
    updates : Tensor (T, P), optional
        Explicit per-task update directions per unit learning rate.
    velocity, momentum :
        SGD momentum buffer (PyTorch convention) and coefficient, used when
        neither ``optimizer`` nor ``updates`` is given.

    Returns
    -------
    Tensor (T, T)
    """
    params = list(shared_params)
    if updates is None:
        with torch.enable_grad():
            losses = as_loss_tensor(closure()).reshape(-1)
            grads = per_task_gradients(losses, params)
        if optimizer is not None:
            updates, lr_opt = optimizer_task_updates(optimizer, params, grads)
            lr = lr_opt if lr is None else lr
        else:
            updates = sgd_task_updates(grads, momentum=momentum, velocity=velocity)
    else:
        with torch.no_grad():
            losses = as_loss_tensor(closure()).reshape(-1)
    U = flatten_task_gradients(updates)
    if lr is None or not lr > 0:
        raise ValueError("tag_lookahead_affinity needs a learning rate lr > 0 (or an optimizer to read it from)")
    L0 = losses.detach()
    sizes = [p.numel() for p in params]
    saved = [p.detach().clone() for p in params]
    rows = []
    try:
        with torch.no_grad():
            for i in range(U.shape[0]):
                for p, step in zip(params, torch.split(U[i], sizes), strict=True):
                    p.sub_(lr * step.reshape(p.shape).to(p.dtype))
                rows.append(as_loss_tensor(closure()).detach().reshape(-1))
                for p, s in zip(params, saved, strict=True):
                    p.copy_(s)
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)
    L1 = torch.stack(rows)
    return (1.0 - L1 / L0[None, :]) / lr


def stacked_lookahead_affinity(
    model,
    x: Tensor,
    y: Tensor,
    layout,
    updates: Sequence[Tensor],
    lr: float,
    losses: Tensor,
) -> Tensor:
    """TAG's lookahead affinity of a one-model stack, with the T lookahead passes as ONE batched pass.

    The T hypothetical encoders ``theta - lr * u_i`` (one per source task i; the
    heads unchanged) are stacked along the model axis of a
    :class:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP` forward, so the T
    extra forward passes of TAG (Fifty et al., 2021) cost one batched matrix
    product per layer; ``Z[i, j] = (1 - L_j(theta - lr u_i) / L_j(theta)) / lr``
    as in :func:`tag_lookahead_affinity` (rows are sources).

    Parameters
    ----------
    model : StackedHardSharingMLP or StackedModel
        A stack of one model (the all-task model), at its current parameters;
        the built-in MLP's or any factory's (:class:`~negtransfer.nn.stacked.StackedModel`).
    x, y : Tensor
        The step's batch: rows x example shape (or 1 x rows x example shape) and the labels.
    layout : TaskLossLayout
        Per-task losses of the model's outputs.
    updates : sequence of Tensor
        Per shared parameter, the per-task update directions per unit learning
        rate, shape (T, *p.shape[1:]) (the stack axis of size 1 dropped), in the
        order of ``model.shared_parameters()``.
    lr : float
    losses : Tensor (T,)
        The per-task losses at the current parameters (the denominators).

    Returns
    -------
    Tensor (T, T)
    """
    if model.n_models != 1:
        raise ValueError(f"stacked_lookahead_affinity needs a stack of one model, got {model.n_models}")
    T = losses.numel()
    with torch.no_grad():
        shared = [p.detach() for p in model.shared_parameters()]
        moved = [p - lr * u.reshape((T,) + tuple(p.shape[1:])) for p, u in zip(shared, updates, strict=True)]
        if hasattr(model, "forward_with"):  # any factory's StackedModel: the T moved encoders as a stack of T
            heads = [h.detach().expand(T, *h.shape[1:]) for h in model.head_parameters()]
            single = x if x.dim() == len(model.input_shape) + 1 else x[0]
            after, _ = layout.task_losses(model.forward_with(moved + heads, single), y if y.dim() == 2 else y[0])
            return (1.0 - after / losses.detach().reshape(1, -1)) / lr
        weights = moved[0::2] + [model.weights[-1].detach().expand(T, -1, -1)]
        biases = moved[1::2] + [model.biases[-1].detach().expand(T, -1, -1)]
        h = (x if x.dim() == 2 else x[0]).unsqueeze(0).expand(T, -1, -1)
        last = len(weights) - 1
        for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if layer < last:
                h = torch.relu(h)
        after, _ = layout.task_losses(h, y if y.dim() == 2 else y[0])
        return (1.0 - after / losses.detach().reshape(1, -1)) / lr
