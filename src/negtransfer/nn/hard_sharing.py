"""Hard parameter sharing: a shared MLP encoder and one output head per task.

Two forms of the same model:

* :class:`HardSharingMLP`: one model, a plain ``nn.Module``, for users' own loops.
* :class:`StackedHardSharingMLP`: K independent models whose parameters are
  stacked along a leading dimension, so one batched matrix product trains all of
  them at once (each model on its own group of tasks). Model ``k`` of a stack and
  a :class:`HardSharingMLP` initialised with the same seed are the same function.
  The first layer's weights of the K models are stored side by side, one
  (n_features, K * width) matrix, so that when every model reads the same rows
  (multi-label data) the first layer of the whole stack is one matrix product
  (:func:`joined_columns`); the other layers are batched products.

Every model has a head for every task of the dataset (outputs concatenated in
task order); a group model simply never receives a loss on the heads of tasks
outside its group. This keeps all models of a stack the same shape.
"""

from __future__ import annotations

import itertools
from typing import Sequence

import torch
from torch import nn

from negtransfer.nn.flat import FlatParameters, laid_out
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


def joined_columns(stacked: torch.Tensor) -> torch.Tensor:
    """The K models' (K, rows, columns) matrices side by side: (rows, K * columns), model k in columns
    ``[k * columns, (k + 1) * columns)``; a view when ``stacked`` is stored that way (the first layer's weights
    of :class:`StackedHardSharingMLP`, a first layer's output of a stack), else a copy."""
    K, rows, columns = stacked.shape
    return stacked.transpose(0, 1).reshape(rows, K * columns)


def split_columns(joined: torch.Tensor, n_models: int) -> torch.Tensor:
    """The (rows, K * columns) matrix of :func:`joined_columns` as its K (rows, columns) blocks, (K, rows,
    columns): a view."""
    rows, width = joined.shape
    return joined.view(rows, n_models, width // n_models).transpose(0, 1)  # (explicit: a batch may have 0 rows)


class StackedHardSharingMLP(FlatParameters, nn.Module):
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

    Notes
    -----
    ``weights[0]`` (K, n_features, width) is a view of storage laid out
    (n_features, K, width) (:meth:`model_axes`): on a batch shared by the stack
    the first layer is ``x @ joined_columns(weights[0])``, one matrix product
    for all K models. Each model's columns of that product are computed as in
    a product of its own (tests/train/test_fused_step.py checks a model alone
    and in stacks of other sizes bit for bit).
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
        for layer, axis in enumerate(self.model_axes()[: len(self.hidden) + 1]):
            self.weights.append(nn.Parameter(laid_out(torch.stack([p[2 * layer] for p in per_model]), axis)))
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

        ``x`` is (B, n_features), shared by all models (the first layer one
        matrix product, :func:`joined_columns`), or (K, B, n_features), one
        batch per model.
        """
        last = len(self.weights) - 1
        h = x
        for layer, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            if h.dim() == 2:
                h = split_columns(torch.mm(h, joined_columns(w)) + joined_columns(b), self.n_models)
            else:
                h = torch.baddbmm(b, h, w)
            if layer < last:  # in place: the product's backward does not read its output; relu's reads its own
                h = torch.relu_(h)
        return h

    def model_axes(self) -> list[int]:
        """The first layer's weights are stored (n_features, K, width) (:func:`joined_columns`); every other
        parameter model-first."""
        n_layers = len(self.hidden) + 1
        return [1] + [0] * (2 * n_layers - 1)

    def stacked_parameters(self) -> list[torch.Tensor]:
        """The stacked parameters in ``parameters()`` order: every layer's weights, then every layer's biases."""
        return [*self.weights, *self.biases]

    def _set_stacked_parameters(self, parameters) -> None:
        n = len(self.weights)
        for i in range(n):
            self.weights[i] = parameters[i]
            self.biases[i] = parameters[n + i]

    def keep_models(self, keep: torch.Tensor) -> None:
        """Drop models from the stack, keeping the indices in ``keep`` (in order); a flat stack stays flat."""
        self._keep_parameters(keep)

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
