"""Built-in model factories (:mod:`negtransfer.nn.contract`): ``mlp``, ``cnn``, ``lstm``, ``transformer``.

Each is a factory ``make(input_shape, outputs, **arguments) -> (encoder, heads)``
with small defaults sized for a laptop's CPU cores. None has buffers, dropout
or data-dependent control flow, so K models of one of them train as one
vectorised stack (:class:`~negtransfer.nn.stacked.StackedModel`).

* ``mlp``: the flattened example through ReLU layers, linear heads. (The
  stacked trainer's default network is the hand-fused
  :class:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP` with widths
  ``TrainConfig.hidden``; this factory is the same architecture in the
  contract's form, with PyTorch's default initialisation.)
* ``cnn``: images ``(C, H, W)``: 3 x 3 convolutions of stride 2 with ReLU,
  then one ReLU layer; linear heads.
* ``lstm``: sequences ``(T, F)``: a one-layer LSTM (written out, so it
  vectorises over stacked models), its last hidden state; feed-forward heads
  (one ReLU layer), the ETAP Ridership setting.
* ``transformer``: sequences ``(T, F)``: a linear embedding with learned
  positions, pre-norm self-attention blocks, the mean over time; linear heads.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

__all__ = ["BUILTIN_ENCODERS", "cnn", "lstm", "mlp", "transformer"]


def _linear_heads(features: int, outputs: Sequence[int]) -> nn.ModuleList:
    return nn.ModuleList([nn.Linear(features, int(o)) for o in outputs])


def _check_shape(name: str, input_shape: Sequence[int], dims: int, form: str) -> tuple[int, ...]:
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != dims:
        raise ValueError(f"the {name} encoder needs examples shaped {form}, got input shape {shape}")
    return shape


def mlp(input_shape: Sequence[int], outputs: Sequence[int], *, hidden: Sequence[int] = (32, 16)):
    """A ReLU MLP on the flattened example, linear heads.

    Parameters
    ----------
    hidden : sequence of int
        Widths of the encoder's ReLU layers.
    """
    width = math.prod(int(s) for s in input_shape)
    layers: list[nn.Module] = [nn.Flatten()]
    for h in hidden:
        layers += [nn.Linear(width, int(h)), nn.ReLU()]
        width = int(h)
    return nn.Sequential(*layers), _linear_heads(width, outputs)


class MatmulConv2d(nn.Module):
    """A 2-D convolution (zero padding) as one matrix product over gathered patches; ``nn.Conv2d``'s initialisation.

    ``torch.func.vmap`` turns ``nn.Conv2d`` over stacked weights into one grouped
    convolution, whose kernels (and rounding) change with the number of groups,
    i.e. with the stack; gathering the patches of the whole batch into one matrix
    and multiplying it by the weight matrix (one product per model) keeps every
    model's arithmetic the same in a stack of any size.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1, stride: int = 1):
        super().__init__()
        self.kernel_size, self.padding, self.stride = int(kernel_size), int(padding), int(stride)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        k, pad, s = self.kernel_size, self.padding, self.stride
        padded = torch.nn.functional.pad(x, (pad, pad, pad, pad)) if pad else x
        h, w = (H + 2 * pad - k) // s + 1, (W + 2 * pad - k) // s + 1
        # every patch of every example as one column: (C k k, B h w), so one matrix product serves the batch
        shifted = torch.stack([padded[:, :, i:i + s * (h - 1) + 1:s, j:j + s * (w - 1) + 1:s]
                               for i in range(k) for j in range(k)])
        columns = shifted.permute(2, 0, 1, 3, 4).reshape(C * k * k, B * h * w)
        out = (self.weight.flatten(1) @ columns).reshape(-1, B, h, w).transpose(0, 1)
        return out + self.bias[:, None, None]


def cnn(input_shape: Sequence[int], outputs: Sequence[int], *, channels: Sequence[int] = (8, 16),
        hidden: int = 32):
    """A small convolutional encoder for images ``(C, H, W)``, linear heads.

    The convolutions are :class:`MatmulConv2d` (unfold and matrix product), so a
    model's numbers do not depend on its stack partners.

    Parameters
    ----------
    channels : sequence of int
        Output channels of each block: a 3 x 3 convolution (padding 1) with
        stride 2 while the image is at least 2 x 2 (it halves the image, in
        place of pooling: the all-convolutional form, cheaper than a
        convolution and a max pooling), then ReLU.
    hidden : int
        Width of the ReLU layer on the flattened feature maps (the features).
    """
    c, h, w = _check_shape("cnn", input_shape, 3, "(channels, height, width)")
    layers: list[nn.Module] = []
    for out in channels:
        stride = 2 if h >= 2 and w >= 2 else 1
        layers += [MatmulConv2d(c, int(out), stride=stride), nn.ReLU()]
        c = int(out)
        h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
    layers += [nn.Flatten(), nn.Linear(c * h * w, int(hidden)), nn.ReLU()]
    return nn.Sequential(*layers), _linear_heads(int(hidden), outputs)


class LSTMEncoder(nn.Module):
    """A one-layer LSTM over ``(B, T, F)`` sequences; the features are the last hidden state ``(B, hidden)``.

    The gates follow ``torch.nn.LSTM`` (input, forget, cell, output; the same
    U(-1/sqrt(hidden), 1/sqrt(hidden)) initialisation), written with linear
    layers and a loop over time so that ``torch.func.vmap`` stacks it (it has
    no batching rule for the fused LSTM kernel).
    """

    def __init__(self, n_inputs: int, hidden: int):
        super().__init__()
        self.hidden = int(hidden)
        self.input = nn.Linear(n_inputs, 4 * self.hidden)
        self.recurrent = nn.Linear(self.hidden, 4 * self.hidden, bias=False)
        bound = 1.0 / math.sqrt(self.hidden)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        projected = self.input(x)  # (B, T, 4 hidden): the input's share of every gate, all steps at once
        h = projected.new_zeros(projected.shape[0], self.hidden)
        c = torch.zeros_like(h)
        for step_input in projected.unbind(1):  # (unbind's backward is one stack, not a zero-filled copy per step)
            gates = step_input + self.recurrent(h)
            i, f, g, o = gates.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        return h


def lstm(input_shape: Sequence[int], outputs: Sequence[int], *, hidden: int = 32, head_hidden: int = 16):
    """An LSTM encoder for sequences ``(T, F)`` (last hidden state), feed-forward heads.

    Parameters
    ----------
    hidden : int
        LSTM state width (the features).
    head_hidden : int
        Width of each head's ReLU layer (0: linear heads).
    """
    _, f = _check_shape("lstm", input_shape, 2, "(time steps, features)")
    encoder = LSTMEncoder(f, int(hidden))
    if not head_hidden:
        return encoder, _linear_heads(int(hidden), outputs)
    heads = nn.ModuleList([nn.Sequential(nn.Linear(int(hidden), int(head_hidden)), nn.ReLU(),
                                         nn.Linear(int(head_hidden), int(o))) for o in outputs])
    return encoder, heads


class _AttentionBlock(nn.Module):
    """Pre-norm self-attention and feed-forward block (no dropout)."""

    def __init__(self, width: int, n_heads: int, ff: int):
        super().__init__()
        if width % n_heads:
            raise ValueError(f"the transformer's width {width} must be a multiple of its heads {n_heads}")
        self.n_heads = n_heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)
        self.ff = nn.Sequential(nn.Linear(width, ff), nn.ReLU(), nn.Linear(ff, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, W = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(B, T, 3, self.n_heads, W // self.n_heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, heads, T, W / heads)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(W // self.n_heads), dim=-1)
        x = x + self.out((weights @ v).transpose(1, 2).reshape(B, T, W))
        return x + self.ff(self.norm2(x))


class TransformerEncoder(nn.Module):
    """Embedding with learned positions, attention blocks, mean over time: ``(B, T, F) -> (B, width)``."""

    def __init__(self, steps: int, n_inputs: int, width: int, n_heads: int, layers: int, ff: int):
        super().__init__()
        self.embed = nn.Linear(n_inputs, width)
        self.position = nn.Parameter(torch.randn(steps, width) * 0.02)
        self.blocks = nn.Sequential(*[_AttentionBlock(width, n_heads, ff) for _ in range(layers)])
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.blocks(self.embed(x) + self.position)).mean(dim=1)


def transformer(input_shape: Sequence[int], outputs: Sequence[int], *, width: int = 32, heads: int = 2,
                layers: int = 1, ff: int = 64):
    """A small transformer encoder for sequences ``(T, F)``, linear heads.

    Parameters
    ----------
    width : int
        Embedding width (the features).
    heads : int
        Attention heads (``width`` must be a multiple).
    layers : int
        Attention blocks.
    ff : int
        Width of each block's feed-forward layer.
    """
    t, f = _check_shape("transformer", input_shape, 2, "(time steps, features)")
    encoder = TransformerEncoder(t, f, int(width), int(heads), int(layers), int(ff))
    return encoder, _linear_heads(int(width), outputs)


#: The built-in factories by name (``--encoder``).
BUILTIN_ENCODERS: dict[str, Callable[..., Any]] = {"mlp": mlp, "cnn": cnn, "lstm": lstm, "transformer": transformer}

