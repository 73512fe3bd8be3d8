"""Per-task update directions: the step an optimizer would take on one task's gradient alone.

Row ``i`` of each result is what the optimizer would subtract (divided by its
learning rate) if this step used task ``i``'s gradient only, given the
optimizer's current state: the hypothetical update of ETAP eq. 4 (SGD with
momentum) or its Adam analogue. The arithmetic is
:mod:`negtransfer.train.update_rules`, the same that the stacked trainer applies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from negtransfer.affinity.gradients import flatten_parameter_vector, flatten_task_gradients, parameter_shapes
from negtransfer.train.update_rules import adam_bias_corrections, adam_direction, adam_moments, sgd_direction

__all__ = ["adam_task_updates", "optimizer_task_updates", "sgd_task_updates"]

OPTIMIZER_KINDS = ("auto", "sgd", "adam")


def _sgd_rule(d: Tensor, buf: Tensor | None, theta: Tensor | None, *, momentum: float, dampening: float,
              nesterov: bool, weight_decay: float, maximize: bool) -> Tensor:
    """torch.optim.SGD's step per unit lr for a batch of gradients ``d`` (T, ...), state broadcast over T."""
    direction, _ = sgd_direction(d, buf, theta, momentum=momentum, dampening=dampening, nesterov=nesterov,
                                 weight_decay=weight_decay, maximize=maximize)
    return direction


def _adam_rule(g: Tensor, m: Tensor | None, v: Tensor | None, vmax: Tensor | None, theta: Tensor | None, *,
               step: float, betas: tuple[float, float], eps: float, weight_decay: float,
               decoupled: bool, amsgrad: bool, maximize: bool) -> Tensor:
    """torch.optim.Adam(W)'s step per unit lr for a batch of gradients ``g`` (T, ...), state broadcast over T."""
    m_i, v_i = adam_moments(g, m, v, theta, betas=betas, weight_decay=weight_decay, decoupled=decoupled,
                            maximize=maximize)
    bc1, bc2 = adam_bias_corrections(float(step) + 1.0, betas)
    return adam_direction(m_i, v_i, bc1, bc2, eps=eps, theta=theta, weight_decay=weight_decay, decoupled=decoupled,
                          max_exp_avg_sq=vmax if amsgrad else None)


def _need_params(params, weight_decay: float):
    if weight_decay and params is None:
        raise ValueError("weight_decay needs the current shared parameters: pass params=")


def sgd_task_updates(
    grads,
    *,
    momentum: float = 0.0,
    velocity=None,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    params=None,
    maximize: bool = False,
) -> Tensor:
    """Per-task update directions of ``torch.optim.SGD`` (per unit learning rate), ``(T, P)``.

    Row ``i`` is what ``torch.optim.SGD`` would subtract (divided by ``lr``) if
    this step used task ``i``'s gradient alone, with the optimizer's current
    momentum buffer ``velocity`` (``None`` before the first step, when the
    buffer becomes the gradient itself):
    ``d_i = g_i + weight_decay * theta``, ``b_i = momentum * buf + (1 - dampening) * d_i``,
    ``u_i = b_i`` (or ``d_i + momentum * b_i`` with Nesterov).
    """
    G = flatten_task_gradients(grads)
    shapes = parameter_shapes(grads)
    _need_params(params, weight_decay)
    return _sgd_rule(
        G, flatten_parameter_vector(velocity, shapes, G, "velocity"), flatten_parameter_vector(params, shapes, G, "params"),
        momentum=momentum, dampening=dampening, nesterov=nesterov, weight_decay=weight_decay, maximize=maximize,
    )


def adam_task_updates(
    grads,
    *,
    exp_avg=None,
    exp_avg_sq=None,
    step: int | float | Tensor = 0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    params=None,
    amsgrad: bool = False,
    max_exp_avg_sq=None,
    maximize: bool = False,
) -> Tensor:
    """Per-task update directions of Adam / AdamW (per unit learning rate), ``(T, P)``.

    Row ``i`` is the step ``torch.optim.Adam`` would take (divided by ``lr``) if
    this step used task ``i``'s gradient alone, given the current state
    (``exp_avg`` m, ``exp_avg_sq`` v, ``step`` = steps taken so far; None and 0
    before the first):

    ``m_i = b1 m + (1 - b1) g_i``, ``v_i = b2 v + (1 - b2) g_i**2``,
    ``u_i = (m_i / (1 - b1**(step+1))) / (sqrt(v_i) / sqrt(1 - b2**(step+1)) + eps)``

    plus ``weight_decay * theta`` for AdamW (decoupled), or ``weight_decay *
    theta`` added to ``g_i`` before the moments for Adam (coupled). With
    ``amsgrad`` the denominator uses ``max(max_exp_avg_sq, v_i)``. Non-linear in
    ``g_i``: the rows are not gradients plus a common drift, and the affinity
    ``<u_i, g_j> / L_j`` weighs each coordinate by Adam's normalisation.
    """
    G = flatten_task_gradients(grads)
    shapes = parameter_shapes(grads)
    _need_params(params, weight_decay)
    return _adam_rule(
        G,
        flatten_parameter_vector(exp_avg, shapes, G, "exp_avg"),
        flatten_parameter_vector(exp_avg_sq, shapes, G, "exp_avg_sq"),
        flatten_parameter_vector(max_exp_avg_sq, shapes, G, "max_exp_avg_sq") if amsgrad else None,
        flatten_parameter_vector(params, shapes, G, "params"),
        step=float(step), betas=betas, eps=eps, weight_decay=weight_decay,
        decoupled=decoupled_weight_decay, amsgrad=amsgrad, maximize=maximize,
    )


def _optimizer_kind(optimizer: torch.optim.Optimizer, requested: str) -> str:
    if requested not in OPTIMIZER_KINDS:
        raise ValueError(f"optimizer_kind must be one of {OPTIMIZER_KINDS}; got {requested!r}")
    is_sgd = isinstance(optimizer, torch.optim.SGD)
    is_adam = isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW))
    if requested == "auto":
        if is_sgd:
            return "sgd"
        if is_adam:
            return "adam"
        raise ValueError(
            f"cannot derive per-task updates for {type(optimizer).__name__}: optimizer_kind='auto' supports "
            "torch.optim.SGD, Adam and AdamW. Use optimizer_kind='sgd' to score plain gradient steps "
            "(eq. 4 without momentum) with this optimizer's learning rate."
        )
    if requested == "adam" and not is_adam:
        raise ValueError(
            f"optimizer_kind='adam' needs torch.optim.Adam or AdamW; got {type(optimizer).__name__}"
        )
    return requested


def _lr(group: dict) -> float:
    lr = group["lr"]
    return float(lr.item()) if isinstance(lr, Tensor) else float(lr)


def optimizer_task_updates(
    optimizer: torch.optim.Optimizer,
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    *,
    kind: str = "auto",
    include_momentum: bool = True,
) -> tuple[Tensor, float]:
    """Per-task updates of ``params`` under a torch optimizer's current state.

    Reads each parameter's group (``lr``, momentum, betas, ...) and state
    (``momentum_buffer``; ``exp_avg``, ``exp_avg_sq``, ``step``) *before*
    ``optimizer.step()`` and builds, for every task, the update the optimizer
    would apply on that task's gradient alone.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Must optimise every tensor in ``params``.
    params : sequence of Tensor
        The shared parameters.
    grads : sequence of Tensor
        ``(T, *p.shape)`` per parameter (:func:`per_task_gradients`).
    kind : {"auto", "sgd", "adam"}
        ``"auto"``: exact rule of ``torch.optim.SGD`` (momentum, dampening,
        Nesterov, weight decay) or ``Adam``/``AdamW``. ``"sgd"`` with a non-SGD
        optimizer: plain gradient steps (eq. 4 without momentum) at the group's
        learning rate.
    include_momentum : bool
        With SGD: include the momentum term of ETAP eq. 4 (the momentum buffer
        before the step); False scores each task's plain gradient step (with
        weight decay), as the grouping job does for ETAP (its
        ``--no-affinity-momentum`` default). Adam's rule is not affected.

    Returns
    -------
    updates : Tensor (T, P)
        Per-task update directions per unit of the reference learning rate.
    lr : float
        Reference learning rate: the ``lr`` of the group of ``params[0]``. A
        parameter in a group with another ``lr`` has its update scaled by
        ``lr_group / lr``, so ``theta' = theta - lr * updates[i]`` is the real step.
    """
    kind = _optimizer_kind(optimizer, kind)
    params, grads = list(params), list(grads)
    group_of = {}
    for group in optimizer.param_groups:
        for p in group["params"]:
            group_of[id(p)] = group
    missing = [k for k, p in enumerate(params) if id(p) not in group_of]
    if missing:
        k = missing[0]
        raise ValueError(
            f"shared parameter #{k} (shape {tuple(params[k].shape)}) is not optimised by the given "
            f"{type(optimizer).__name__}; pass only parameters the optimizer updates"
        )
    lr_ref = _lr(group_of[id(params[0])])
    exact_sgd = kind == "sgd" and isinstance(optimizer, torch.optim.SGD)
    rows = []
    for p, g in zip(params, grads, strict=True):
        group = group_of[id(p)]
        state = optimizer.state.get(p, {})
        theta = p.detach()
        if kind == "adam":
            u = _adam_rule(
                g, state.get("exp_avg"), state.get("exp_avg_sq"), state.get("max_exp_avg_sq"), theta,
                step=float(state["step"]) if "step" in state else 0.0,
                betas=(float(group["betas"][0]), float(group["betas"][1])),
                eps=float(group["eps"]),
                weight_decay=float(group.get("weight_decay", 0.0)),
                decoupled=bool(group.get("decoupled_weight_decay", isinstance(optimizer, torch.optim.AdamW))),
                amsgrad=bool(group.get("amsgrad", False)),
                maximize=bool(group.get("maximize", False)),
            )
        elif exact_sgd:
            u = _sgd_rule(
                g, state.get("momentum_buffer") if include_momentum else None, theta,
                momentum=float(group.get("momentum", 0.0)) if include_momentum else 0.0,
                dampening=float(group.get("dampening", 0.0)),
                nesterov=bool(group.get("nesterov", False)),
                weight_decay=float(group.get("weight_decay", 0.0)),
                maximize=bool(group.get("maximize", False)),
            )
        else:
            u = g
        u = u.reshape(u.shape[0], -1)
        scale = _lr(group) / lr_ref
        rows.append(u if scale == 1.0 else u * scale)
    return torch.cat(rows, dim=1), lr_ref
