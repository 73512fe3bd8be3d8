"""Stacked parameters kept in one flat buffer, for stacks of K models.

An optimiser updates every parameter of a stack with a few vector operations
over one flat buffer instead of a few per parameter tensor. The buffer holds
each stacked parameter (K, ...) contiguously, one after another in the
stack's parameter order, and every parameter is a view of its block with the
model axis first; its values are unchanged. Within its block a parameter is
stored with the model axis where :meth:`FlatParameters.model_axes` says: first
(each model's values contiguous), or further in, e.g. the built-in MLP's first
layer stored (n_features, K, width), so that the K models' weights form one
(n_features, K * width) matrix and one matrix product serves the whole stack.
The buffer is padded with zeros to a multiple of :data:`FLAT_BLOCK` entries:
a vectorised elementwise kernel (the optimiser's fused step) computes the
entries of a partial last vector on another path, whose rounding may differ
(fused multiply-add or not); with no partial vector every entry is computed
the same way wherever its model sits in the buffer. Used by
:class:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP` and
:class:`~negtransfer.nn.stacked.StackedModel`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

#: The flat buffers' length is a multiple of this many entries (whole vectors of any SIMD width torch uses).
FLAT_BLOCK = 64


class FlatParameters:
    """Mixin for a stack of K models: its stacked parameters as views of one flat buffer.

    The class using it defines :meth:`stacked_parameters` (the
    stacked parameters, in ``parameters()`` order) and
    :meth:`_set_stacked_parameters` (replace them, in that order); it may
    override :meth:`model_axes`.
    """

    @property
    def n_models(self) -> int:
        """K, the models in the stack."""
        return self.stacked_parameters()[0].shape[0]

    def stacked_parameters(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def _set_stacked_parameters(self, parameters: Sequence[nn.Parameter]) -> None:
        raise NotImplementedError

    def model_axes(self) -> list[int]:
        """Where each stacked parameter's storage puts the model axis (0: first, each model's values contiguous)."""
        return [0] * len(self.stacked_parameters())

    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """One model's shape of each stacked parameter, in ``parameters()`` order."""
        return [tuple(p.shape[1:]) for p in self.stacked_parameters()]

    def parameter_views(self, flat: torch.Tensor, n_models: int | None = None) -> list[torch.Tensor]:
        """Views of a flat buffer shaped like the stacked parameters (K, ...), in ``parameters()`` order.

        ``n_models`` defaults to the stack's K.
        """
        K = self.n_models if n_models is None else n_models
        views, start = [], 0
        for shape, axis in zip(self.parameter_shapes(), self.model_axes(), strict=True):
            size = K * math.prod(shape)
            stored = (*shape[:axis], K, *shape[axis:])
            views.append(flat[start:start + size].view(stored).movedim(axis, 0))
            start += size
        return views

    def _stored(self, parameters: Sequence[torch.Tensor]) -> torch.Tensor:
        """Stacked parameters (K, ...) written into one new flat buffer, each in its storage order, then zeros
        to a multiple of :data:`FLAT_BLOCK` entries."""
        parts = [p.detach().movedim(0, axis).reshape(-1) for p, axis in zip(parameters, self.model_axes(), strict=True)]
        size = sum(part.numel() for part in parts)
        return torch.cat([*parts, parts[0].new_zeros(-size % FLAT_BLOCK)])

    @torch.no_grad()
    def flatten(self) -> torch.Tensor:
        """Move the stacked parameters into one flat buffer and make them views of it; returns the buffer
        (its last entries, beyond the views, are zero padding).

        The values are unchanged; a later move (``.to(device)``) copies them out of the buffer.
        """
        flat = self._stored(self.stacked_parameters())
        self._adopt(flat, self.n_models)
        return flat

    def _adopt(self, flat: torch.Tensor, n_models: int) -> None:
        """Make ``flat`` the stacked parameters' storage (:meth:`parameter_views`)."""
        self._set_stacked_parameters([nn.Parameter(v) for v in self.parameter_views(flat, n_models)])
        self.flat = flat

    @property
    def flat_parameters(self) -> torch.Tensor | None:
        """The flat buffer the stacked parameters are views of (:meth:`flatten`), or None."""
        flat = self.__dict__.get("flat")
        if flat is None or flat.data_ptr() != self.stacked_parameters()[0].data_ptr():
            return None  # never flattened, or moved since
        return flat

    @torch.no_grad()
    def _keep_parameters(self, keep: torch.Tensor) -> None:
        """Keep the models ``keep`` (indices, in order) of every stacked parameter; a flat stack stays flat, and
        every parameter keeps its storage order (:meth:`model_axes`)."""
        kept = [p.detach().index_select(0, keep) for p in self.stacked_parameters()]
        if self.flat_parameters is not None:
            self._adopt(self._stored(kept), int(keep.numel()))
        else:
            self._set_stacked_parameters([nn.Parameter(laid_out(p, axis))
                                          for p, axis in zip(kept, self.model_axes(), strict=True)])


def laid_out(stacked: torch.Tensor, axis: int) -> torch.Tensor:
    """``stacked`` (K, ...) as a view of a new tensor whose storage puts the model axis at ``axis``."""
    return stacked.movedim(0, axis).contiguous().movedim(axis, 0)
