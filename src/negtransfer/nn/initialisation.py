"""Initial weights and biases of dense layers: PyTorch's scheme or Keras' (Glorot-uniform).

The built-in MLP (:mod:`negtransfer.nn.hard_sharing`) draws every layer's
parameters from one generator per model, so a model's initialisation depends
only on its seed. Two schemes (``TrainConfig.init``):

* ``"torch"`` (the default): PyTorch's ``nn.Linear`` default, weights and
  biases both U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
* ``"glorot"``: Keras' ``Dense`` default, Glorot-uniform weights
  U(-sqrt(6 / (fan_in + fan_out)), sqrt(6 / (fan_in + fan_out))) (Glorot and
  Bengio, AISTATS 2010, eq. 16) and zero biases, as in the ETAP public code's
  Chemical models (chemical_scripts; REFERENCES.md).

On the Chemical fingerprints (9 of 180 binary features set per row) with the
ETAP code's learning rate 0.001 the difference matters: PyTorch's weights are
2 to 2.4 times smaller than Glorot's in every layer, so the initial logits are
about 10 times smaller and every layer's gradient about 5 times smaller; the
models then barely leave chance within the epoch budget (docs/training.md, the
``etap-chemical`` preset, has the measurements).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["INIT_SCHEMES", "dense_parameters"]

#: The schemes by name (``TrainConfig.init``; ``negtransfer.train.config.INITS`` lists the same names).
INIT_SCHEMES = ("torch", "glorot")


def dense_parameters(seed: int, shapes: Sequence[tuple[int, int]], scheme: str = "torch") -> list[torch.Tensor]:
    """Initial parameters of a stack of dense layers, drawn from one generator seeded by ``seed``.

    Parameters
    ----------
    seed : int
        The model's initialisation seed (taken modulo 2**63).
    shapes : sequence of (fan_in, fan_out)
        The layers, input to output.
    scheme : {"torch", "glorot"}
        ``"torch"``: weights and biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
        each layer's weights drawn before its biases. ``"glorot"``: weights
        U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), biases zero (no draw).

    Returns
    -------
    list of Tensor
        ``[W1, b1, W2, b2, ...]``, float32, weights shaped (fan_in, fan_out).

    Raises
    ------
    ValueError
        An unknown ``scheme``.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init must be one of {', '.join(INIT_SCHEMES)}, got {scheme!r}")
    gen = torch.Generator().manual_seed(int(seed) % (2**63))
    params: list[torch.Tensor] = []
    for fan_in, fan_out in shapes:
        if scheme == "torch":
            bound = 1.0 / math.sqrt(fan_in)
            weight = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
            bias = (torch.rand(fan_out, generator=gen) * 2 - 1) * bound
        else:
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            weight = (torch.rand(fan_in, fan_out, generator=gen) * 2 - 1) * bound
            bias = torch.zeros(fan_out)
        params += [weight, bias]
    return params
