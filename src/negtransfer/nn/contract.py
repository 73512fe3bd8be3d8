"""The model contract: any network enters as a factory ``make(input_shape, outputs) -> (encoder, heads)``.

A *model factory* builds one hard-sharing multi-task network in LibMTL's
shape: a shared encoder and one head per task.

* ``input_shape``: the shape of one example, e.g. ``(d,)`` for a row of
  features, ``(C, H, W)`` for an image, ``(T, F)`` for a sequence;
* ``outputs``: the output width of every task, in task order (1 for a binary
  or regression task, the class count for a multiclass task);
* ``encoder``: an ``nn.Module`` mapping a batch ``(B, *input_shape)`` to
  features ``(B, F)`` (or any ``(B, ...)`` that the heads accept);
* ``heads``: one ``nn.Module`` per task (a list, a tuple, an ``nn.ModuleList``
  or a generator, in task order; a dict is refused), head ``t`` mapping the
  features to ``(B, outputs[t])`` logits (the losses apply the sigmoid or
  softmax).

The factory draws its initial weights from torch's global generator (as
``nn.Linear`` and friends do); :func:`build_model` seeds that generator per
model (in a forked random state), so a model's initialisation depends only on
its own seed. Affinity is taken on the encoder's parameters; the trainer owns
the losses.

:func:`check_factory` builds one model and runs it on a tiny dummy batch, so a
bad factory fails with one ValueError naming the problem before any training.
"""

from __future__ import annotations

import functools
from typing import Callable, Protocol, Sequence

import torch
from torch import nn

__all__ = ["ModelFactory", "MultiHeadModel", "build_model", "check_factory"]


class ModelFactory(Protocol):
    """``make(input_shape, outputs) -> (encoder, heads)``: see the module docstring."""

    def __call__(self, input_shape: tuple[int, ...], outputs: list[int]) -> tuple[nn.Module, Sequence[nn.Module]]:
        ...


class MultiHeadModel(nn.Module):
    """One model of the contract: ``encoder`` then every task's head, outputs concatenated in task order.

    ``forward(x)`` maps ``(B, *input_shape)`` to ``(B, sum(outputs))``; task
    ``t``'s columns follow the columns of tasks ``0..t-1``, the layout of
    :class:`~negtransfer.train.losses.TaskLossLayout`.
    """

    def __init__(self, encoder: nn.Module, heads: Sequence[nn.Module]):
        super().__init__()
        self.encoder = encoder
        self.heads = heads if isinstance(heads, nn.ModuleList) else nn.ModuleList(list(heads))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        return torch.cat([head(features) for head in self.heads], dim=-1)


def build_model(make: Callable, input_shape: Sequence[int], outputs: Sequence[int], seed: int) -> MultiHeadModel:
    """One model from ``make``, its initial weights drawn from a generator seeded by ``seed``.

    The global random state is forked for the call, so building a model neither
    depends on nor disturbs any other draw.

    Raises
    ------
    ValueError
        ``make`` does not return ``(encoder, heads)`` of modules, one head per task.
    """
    shape, widths = tuple(int(s) for s in input_shape), [int(o) for o in outputs]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed) % (2**63))
        try:
            built = make(shape, widths)
        except Exception as exc:  # a user's factory: any failure becomes one error naming it
            raise ValueError(f"the model factory {_name(make)} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(built, tuple | list) or len(built) != 2:
        raise ValueError(f"the model factory {_name(make)} must return (encoder, heads), got {type(built).__name__}")
    encoder, heads = built
    if not isinstance(encoder, nn.Module):
        raise ValueError(f"the model factory {_name(make)} returned an encoder of type {type(encoder).__name__}; "
                         "it must be a torch.nn.Module")
    if isinstance(heads, dict | nn.ModuleDict):  # counted as one head, it read "returned 1 head(s) for 3 tasks"
        raise ValueError(f"the model factory {_name(make)} returned its heads as a {type(heads).__name__}; return "
                         "them as a list (or nn.ModuleList) in task order, one head per entry of outputs")
    from collections.abc import Iterator

    if not isinstance(heads, nn.Module) and isinstance(heads, Iterator):  # e.g. a generator expression
        heads = list(heads)
    heads = list(heads) if isinstance(heads, list | tuple | nn.ModuleList) else [heads]
    if len(heads) != len(widths):
        raise ValueError(f"the model factory {_name(make)} returned {len(heads)} head(s) for {len(widths)} tasks; "
                         "it must return one head per task (outputs has one width per task)")
    for t, head in enumerate(heads):
        if not isinstance(head, nn.Module):
            raise ValueError(f"head {t} of the model factory {_name(make)} is a {type(head).__name__}, "
                             "not a torch.nn.Module")
    return MultiHeadModel(encoder, heads)


def check_factory(make: Callable, input_shape: Sequence[int], outputs: Sequence[int], *, rows: int = 2) -> None:
    """Build one model from ``make`` and run it on a dummy batch; raise ValueError naming any problem.

    Checks, in order: the factory runs and returns ``(encoder, heads)`` of
    modules with one head per task; the model runs forward on ``rows`` zero
    examples of ``input_shape``; every head returns ``(rows, outputs[t])``;
    the encoder has trainable parameters (affinity is taken on them).

    Parameters
    ----------
    make : callable
        The factory (:class:`ModelFactory`).
    input_shape : sequence of int
        One example's shape.
    outputs : sequence of int
        Output width of every task.
    rows : int
        Rows of the dummy batch.
    """
    shape = tuple(int(s) for s in input_shape)
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"input_shape must be positive sizes, got {tuple(input_shape)}")
    if not outputs or any(int(o) < 1 for o in outputs):
        raise ValueError(f"outputs must be one positive width per task, got {list(outputs)}")
    model = build_model(make, shape, outputs, seed=0)
    x = torch.zeros((rows, *shape))
    features = None
    try:
        with torch.no_grad():
            features = model.encoder(x)
            heads = [head(features) for head in model.heads]
    except Exception as exc:
        hint = ""
        if features is not None and not isinstance(features, torch.Tensor):
            hint = (f" (the encoder returned a {type(features).__name__}, not a tensor of features: an nn.GRU or "
                    "nn.LSTM returns (output, state); wrap it in a module whose forward returns a tensor, e.g. "
                    "output[:, -1])")
        raise ValueError(f"the model of {_name(make)} raised {type(exc).__name__} on a batch of shape "
                         f"{tuple(x.shape)}: {exc}{hint}") from exc
    for t, (out, width) in enumerate(zip(heads, outputs, strict=True)):
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (rows, int(width)):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValueError(f"head {t} of {_name(make)} returned {got} for a batch of {rows} examples; "
                             f"it must return ({rows}, {int(width)}) (the task's output width)")
    if not any(p.requires_grad for p in model.encoder.parameters()):
        raise ValueError(f"the encoder of {_name(make)} has no trainable parameters; affinity is taken on them")


def _name(make: Callable) -> str:
    """``module:qualname`` of a factory; a :func:`functools.partial` (a factory with its arguments) by its function,
    with the arguments it binds."""
    if isinstance(make, functools.partial):
        bound = ", ".join(f"{key}={value!r}" for key, value in make.keywords.items())
        return f"{_name(make.func)} (with {bound})" if bound else _name(make.func)
    module = getattr(make, "__module__", None)
    name = getattr(make, "__qualname__", None) or type(make).__name__
    return f"{module}:{name}" if module else str(name)
