"""Stacked parameters kept in one flat buffer, for stacks of K models.

An optimiser updates every parameter of a stack with a few vector operations
over one flat buffer instead of a few per parameter tensor. The buffer holds
each stacked parameter (K, ...) contiguously, one after another in the
stack's parameter order, so every parameter stays a contiguous view with the
model axis first and its values are unchanged. Used by
:class:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP` and
:class:`~negtransfer.nn.stacked.StackedModel`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class FlatParameters:
    """Mixin for a stack of K models: its stacked parameters as views of one flat buffer.

    The class using it defines :meth:`stacked_parameters` (the
    stacked parameters, in ``parameters()`` order) and
    :meth:`_set_stacked_parameters` (replace them, in that order).
    """

    @property
    def n_models(self) -> int:
        """K, the models in the stack."""
        return self.stacked_parameters()[0].shape[0]

    def stacked_parameters(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def _set_stacked_parameters(self, parameters: Sequence[nn.Parameter]) -> None:
        raise NotImplementedError

    def parameter_shapes(self) -> list[tuple[int, ...]]:
        """One model's shape of each stacked parameter, in ``parameters()`` order."""
        return [tuple(p.shape[1:]) for p in self.stacked_parameters()]

    def parameter_views(self, flat: torch.Tensor, n_models: int | None = None) -> list[torch.Tensor]:
        """Views of a flat buffer shaped like the stacked parameters (K, ...), in ``parameters()`` order.

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
        """Move the stacked parameters into one flat buffer and make them views of it; returns the buffer.

        The values are unchanged; a later move (``.to(device)``) copies them out of the buffer.
        """
        flat = torch.cat([p.detach().reshape(-1) for p in self.stacked_parameters()])
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
        """Keep the models ``keep`` (indices, in order) of every stacked parameter; a flat stack stays flat."""
        kept = [p.detach().index_select(0, keep) for p in self.stacked_parameters()]
        if self.flat_parameters is not None:
            self._adopt(torch.cat([p.reshape(-1) for p in kept]), int(keep.numel()))
        else:
            self._set_stacked_parameters([nn.Parameter(p) for p in kept])
