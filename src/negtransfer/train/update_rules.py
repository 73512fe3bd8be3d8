"""Optimiser update rules: SGD (momentum, dampening, Nesterov) and Adam / AdamW, as plain tensor arithmetic.

One copy of the arithmetic, used by

* the stacked trainer (:mod:`negtransfer.train.batched`), which applies its
  Adam arithmetic to the stacked parameters of K models with a mask of the
  models that step (its SGD is ``torch._fused_sgd_``'s one-pass arithmetic
  since result format 5, issue 26);
* the affinity code (:mod:`negtransfer.affinity.updates`), which applies it to a
  batch of per-task gradients (T, ...) to get the step each task alone would
  cause (ETAP eq. 4; its Adam option).

Every function returns the step *per unit learning rate* with the descent sign
(``theta_new = theta - lr * direction``) and leaves its inputs untouched unless
told otherwise (``inplace=True``). State tensors broadcast against the
gradients, so one optimiser state serves a batch of T per-task gradients.

The arithmetic follows ``torch.optim.SGD`` and ``torch.optim.Adam`` (PyTorch
convention: the SGD momentum buffer is in gradient units and the first step's
buffer is the gradient itself). Adam's bias-corrected denominator is written
``sqrt(v / (1 - b2^t)) + eps``, which is mathematically PyTorch's
``sqrt(v) / sqrt(1 - b2^t) + eps`` and differs from it only in rounding; the
stacked trainer's Adam numbers (and its bit-for-bit guarantee) are defined by
this form.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

__all__ = ["adam_bias_corrections", "adam_direction", "adam_moments", "sgd_direction"]

Number = Union[int, float]


def sgd_direction(
    grad: Tensor,
    buf: Tensor | None = None,
    theta: Tensor | None = None,
    *,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
    inplace: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """``torch.optim.SGD``'s step per unit learning rate, and its new momentum buffer.

    ``d = g + weight_decay * theta``; with momentum ``b = momentum * buf + (1 - dampening) * d``
    (``b = d`` when ``buf`` is None, the first step), and the direction is ``b``
    (``d + momentum * b`` with Nesterov); without momentum it is ``d``.

    Parameters
    ----------
    grad : Tensor
        Gradient, or a batch of gradients (T, ...) sharing one state.
    buf : Tensor, optional
        Momentum buffer before this step (None before the first step).
    theta : Tensor, optional
        Current parameters; needed with ``weight_decay``.
    momentum, dampening, nesterov, weight_decay, maximize :
        As in ``torch.optim.SGD``.
    inplace : bool
        Update ``buf`` in place (dampening 0 only) instead of allocating the new buffer.

    Returns
    -------
    direction : Tensor
    buffer : Tensor or None
        The new momentum buffer (None without momentum).
    """
    d = -grad if maximize else grad
    if weight_decay:
        if theta is None:
            raise ValueError("weight_decay needs the current parameters: pass theta")
        d = d + theta * weight_decay
    if not momentum:
        return d, None
    if buf is None:
        b = d
    elif dampening:
        b = buf * momentum + d * (1.0 - dampening)
    elif inplace:
        b = buf.mul_(momentum).add_(d)
    else:
        b = buf * momentum + d
    return (d + b * momentum if nesterov else b), b


def adam_moments(
    grad: Tensor,
    exp_avg: Tensor | None,
    exp_avg_sq: Tensor | None,
    theta: Tensor | None = None,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    decoupled: bool = False,
    maximize: bool = False,
) -> tuple[Tensor, Tensor]:
    """Adam's first and second moments after one step: ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``.

    ``g`` includes the coupled weight decay ``weight_decay * theta`` (Adam), not
    the decoupled one (AdamW, ``decoupled=True``: see :func:`adam_direction`).
    None moments (before the first step) count as zeros.
    """
    b1, b2 = float(betas[0]), float(betas[1])
    g = -grad if maximize else grad
    if weight_decay and not decoupled:
        if theta is None:
            raise ValueError("weight_decay needs the current parameters: pass theta")
        g = g + theta * weight_decay
    m = g * (1 - b1) if exp_avg is None else exp_avg * b1 + g * (1 - b1)
    v = (g * g) * (1 - b2) if exp_avg_sq is None else exp_avg_sq * b2 + (g * g) * (1 - b2)
    return m, v


def adam_bias_corrections(step: Number | Tensor, betas: tuple[float, float] = (0.9, 0.999)):
    """``(1 - b1^t, 1 - b2^t)`` for step number ``t`` (1 for the first step; a tensor of steps is fine)."""
    b1, b2 = float(betas[0]), float(betas[1])
    return 1 - b1**step, 1 - b2**step


def adam_direction(
    m: Tensor,
    v: Tensor,
    bias_correction1: Number | Tensor,
    bias_correction2: Number | Tensor,
    *,
    eps: float = 1e-8,
    theta: Tensor | None = None,
    weight_decay: float = 0.0,
    decoupled: bool = False,
    max_exp_avg_sq: Tensor | None = None,
) -> Tensor:
    """Adam's step per unit learning rate from the moments: ``(m / bc1) / (sqrt(v / bc2) + eps)``.

    Parameters
    ----------
    m, v : Tensor
        Moments after this step (:func:`adam_moments`).
    bias_correction1, bias_correction2 : number or Tensor
        From :func:`adam_bias_corrections`.
    eps : float
    theta, weight_decay, decoupled :
        AdamW's decoupled weight decay adds ``weight_decay * theta``.
    max_exp_avg_sq : Tensor, optional
        AMSGrad: the denominator uses ``max(max_exp_avg_sq, v)``.
    """
    if max_exp_avg_sq is not None:
        v = torch.maximum(v, max_exp_avg_sq)
    u = (m / bias_correction1) / ((v / bias_correction2).sqrt() + eps)
    if weight_decay and decoupled:
        if theta is None:
            raise ValueError("weight_decay needs the current parameters: pass theta")
        u = u + theta * weight_decay
    return u
