"""Hard parameter sharing: a shared MLP encoder and one output head per task.

Two forms of the same model:

* :class:`HardSharingMLP`: one model, a plain ``nn.Module``, for users' own loops.
* :class:`StackedHardSharingMLP`: K independent models whose parameters are
  stacked along a leading dimension, so one batched matrix product trains all of
  them at once (each model on its own group of tasks). Model ``k`` of a stack and
  a :class:`HardSharingMLP` initialised with the same seed are the same function.

Every model has a head for every task of the dataset (outputs concatenated in
task order); a group model simply never receives a loss on the heads of tasks
outside its group. This keeps all models of a stack the same shape.
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
from torch import nn

from negtransfer.nn.initialisation import dense_parameters


def _layer_shapes(n_features: int, hidden: Sequence[int], n_outputs: int) -> list[tuple[int, int]]:
    widths = [n_features, *hidden, n_outputs]
    return list(itertools.pairwise(widths))


def init_parameters(
    seed: int, n_features: int, hidden: Sequence[int], n_outputs: int, scheme: str = "torch"
) -> list[torch.Tensor]:
    """Initial weights and biases of one model, drawn from its own generator.

    ``scheme`` ``"torch"`` (default) is PyTorch's ``nn.Linear`` default,
    U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weights and biases; ``"glorot"`` is
    Keras' (:func:`negtransfer.nn.initialisation.dense_parameters`). The
    initialisation of a model depends only on ``seed`` and never on which
    other models share its vectorised batch.

    Returns
    -------
    list of Tensor
        ``[W1, b1, W2, b2, ...]`` with weights shaped (fan_in, fan_out).
    """
    return dense_parameters(seed, _layer_shapes(n_features, hidden, n_outputs), scheme)


class StackedHardSharingMLP(nn.Module):
    """K hard-sharing MLPs evaluated together with batched matrix products.

    Parameters
    ----------
    n_features : int
        Input width.
    hidden : sequence of int
        Shared encoder widths (ReLU after each).
    n_outputs : int
        Total output width: the sum of the tasks' output dimensions.
    seeds : sequence of int
        One initialisation seed per model; K = len(seeds). The hidden layers
        form the shared encoder; the last layer holds the task heads.
    init : {"torch", "glorot"}
        Initialisation scheme (:func:`init_parameters`).
    """

    def __init__(self, n_features: int, hidden: Sequence[int], n_outputs: int, seeds: Sequence[int],
                 init: str = "torch"):
        super().__init__()
        if len(seeds) == 0:
            raise ValueError("a stack needs at least one model seed")
        self.n_features, self.hidden, self.n_outputs = n_features, tuple(hidden), n_outputs
        per_model = [init_parameters(s, n_features, hidden, n_outputs, init) for s in seeds]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for layer in range(len(self.hidden) + 1):
            self.weights.append(nn.Parameter(torch.stack([p[2 * layer] for p in per_model])))
            self.biases.append(nn.Parameter(torch.stack([p[2 * layer + 1] for p in per_model]).unsqueeze(1)))

    @property
    def n_models(self) -> int:
        return self.weights[0].shape[0]

    def shared_parameters(self) -> list[nn.Parameter]:
        """Encoder parameters (shared by the tasks of a model), heads excluded."""
        out = []
        for w, b in zip(list(self.weights)[:-1], list(self.biases)[:-1], strict=True):
            out += [w, b]
        return out

    def head_parameters(self) -> list[nn.Parameter]:
        return [self.weights[-1], self.biases[-1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of every model, (K, B, n_outputs).

        ``x`` is (B, n_features), shared by all models, or (K, B, n_features),
        one batch per model.
        """
        h = x if x.dim() == 3 else x.unsqueeze(0).expand(self.n_models, *x.shape)
        last = len(self.weights) - 1
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(b, h, w)
            if layer < last:
                h = torch.relu(h)
        return h

    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """One model's shape of each stacked parameter, in ``parameters()`` order (weights, then biases)."""
        return [tuple(p.shape[1:]) for p in self.parameters()]

    def parameter_views(self, flat: torch.Tensor, n_models: int | None = None) -> list[torch.Tensor]:
        """Views of a flat buffer shaped like the stacked parameters, in ``parameters()`` order.

        The buffer holds each stacked parameter (K, ...) contiguously, one after
        another (:meth:`flatten`'s layout), so every view is contiguous.
        ``n_models`` defaults to the stack's K.
        """
        K = self.n_models if n_models is None else n_models
        views, start = [], 0
        for shape in self.parameter_shapes():
            size = K * math.prod(shape)
            views.append(flat[start:start + size].view(K, *shape))
            start += size
        return views

    @torch.no_grad()
    def flatten(self) -> torch.Tensor:
        """Move the parameters into one flat buffer and make them views of it; returns the buffer.

        The buffer holds the stacked parameters one after another (every
        layer's weights, then every layer's biases), so an optimiser updates
        the whole stack with a few vector operations over it, and the
        parameters keep their contiguous layout for the batched products. The
        values are unchanged; a later move (``.to(device)``) copies them out of
        the buffer.
        """
        flat = torch.cat([p.detach().reshape(-1) for p in self.parameters()])
        self._adopt(flat, self.n_models)
        return flat

    def _adopt(self, flat: torch.Tensor, n_models: int) -> None:
        """Make ``flat`` the parameters' storage (:meth:`parameter_views`)."""
        views = self.parameter_views(flat, n_models)
        n = len(self.weights)
        for i in range(n):
            self.weights[i] = nn.Parameter(views[i])
            self.biases[i] = nn.Parameter(views[n + i])
        self.flat = flat

    @property
    def flat_parameters(self) -> torch.Tensor | None:
        """The flat buffer the parameters are views of (:meth:`flatten`), or None."""
        flat = self.__dict__.get("flat")
        if flat is None or flat.data_ptr() != self.weights[0].data_ptr():
            return None  # never flattened, or moved since
        return flat

    @torch.no_grad()
    def keep_models(self, keep: torch.Tensor) -> None:
        """Drop models from the stack, keeping the indices in ``keep`` (in order)."""
        if self.flat_parameters is not None:
            kept = [p.detach().index_select(0, keep).reshape(-1) for p in self.parameters()]
            self._adopt(torch.cat(kept), int(keep.numel()))
            return
        for plist in (self.weights, self.biases):
            for i, p in enumerate(plist):
                plist[i] = nn.Parameter(p.detach().index_select(0, keep))

    def unstack(self, k: int) -> "HardSharingMLP":
        """Model ``k`` as a stand-alone :class:`HardSharingMLP`."""
        single = HardSharingMLP(self.n_features, self.hidden, self.n_outputs, seed=0)
        with torch.no_grad():
            for layer, linear in enumerate(single.layers()):
                linear.weight.copy_(self.weights[layer][k].T)
                linear.bias.copy_(self.biases[layer][k, 0])
        return single


class HardSharingMLP(nn.Module):
    """One hard-sharing model: ``encoder`` (MLP with ReLU) then ``heads`` (linear).

    ``forward`` returns the concatenated outputs of all task heads, (B, n_outputs).
    Initialised exactly like model ``k`` of a :class:`StackedHardSharingMLP`
    built with the same seed and ``init`` scheme (``"torch"``, PyTorch's default, or ``"glorot"``, Keras' as
    the ETAP public code uses: :func:`init_parameters`).
    """

    def __init__(self, n_features: int, hidden: Sequence[int], n_outputs: int, seed: int = 0, init: str = "torch"):
        super().__init__()
        params = init_parameters(seed, n_features, hidden, n_outputs, init)
        shapes = _layer_shapes(n_features, hidden, n_outputs)
        linears = []
        for i, (fan_in, fan_out) in enumerate(shapes):
            lin = nn.Linear(fan_in, fan_out)
            with torch.no_grad():
                lin.weight.copy_(params[2 * i].T)
                lin.bias.copy_(params[2 * i + 1])
            linears.append(lin)
        enc = []
        for lin in linears[:-1]:
            enc += [lin, nn.ReLU()]
        self.encoder = nn.Sequential(*enc)
        self.heads = linears[-1]

    def layers(self) -> list[nn.Linear]:
        return [m for m in self.encoder if isinstance(m, nn.Linear)] + [self.heads]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads(self.encoder(x))
