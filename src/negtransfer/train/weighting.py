"""Loss weightings: how per-task losses become one training loss (LibMTL-style combiners).

Each weighting is a small ``nn.Module`` (its learnable weights, if any, are its
parameters: give them to the optimiser with the model's) that maps a vector of
per-task losses to one scalar. The training loops take a weighting explicitly;
models know nothing of how their task losses are combined.

* :class:`EqualWeighting`: the plain sum, ``sum_t L_t``.
* :class:`KendallWeighting`: Kendall, Gal and Cipolla (CVPR 2018), learned
  homoscedastic uncertainty in the classification form used by the VMTL and
  TP-AMTL papers' baselines: ``sum_t exp(-s_t) L_t + s_t / 2`` with
  ``s_t = log sigma_t^2``.
* :class:`UncertaintyWeighting`: the same idea in the regression form of the
  paper's eq. 7, as LibMTL's ``UW`` writes it: ``sum_t L_t / (2 exp(s_t)) + s_t / 2``.

``present`` (bool per task) drops the tasks without a label in the batch; a
training loop that builds its loss one task at a time uses
:meth:`LossWeighting.task_term`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["EqualWeighting", "KendallWeighting", "LossWeighting", "UncertaintyWeighting", "make_weighting", "WEIGHTINGS"]


class LossWeighting(nn.Module):
    """Base class: ``weighting(losses, present=None) -> scalar``.

    Subclasses implement :meth:`terms` (the weighted term of each task,
    elementwise) and :meth:`task_term` (one task's term).
    """

    def terms(self, losses: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def task_term(self, task: int, loss: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, losses: Tensor, present: Tensor | None = None) -> Tensor:
        """Sum of the weighted terms of ``losses`` (T,), over the ``present`` tasks only (bool (T,))."""
        terms = self.terms(losses)
        if present is None:
            return terms.sum()
        return (terms * present.to(terms.dtype)).sum()


class EqualWeighting(LossWeighting):
    """Every task's loss counts once: ``sum_t L_t``."""

    def terms(self, losses: Tensor) -> Tensor:
        return losses

    def task_term(self, task: int, loss: Tensor) -> Tensor:
        return loss


class _LogVarianceWeighting(LossWeighting):
    """A learned log variance ``s_t`` per task (starting at 0) and a term ``_term(L_t, s_t)`` per task."""

    def __init__(self, n_tasks: int):
        super().__init__()
        if isinstance(n_tasks, bool) or not isinstance(n_tasks, int) or n_tasks < 1:
            raise ValueError(f"n_tasks must be a positive integer, got {n_tasks!r}")
        self.log_variance = nn.Parameter(torch.zeros(n_tasks))

    @staticmethod
    def _term(loss: Tensor, s: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def terms(self, losses: Tensor) -> Tensor:
        return self._term(losses, self.log_variance)

    def task_term(self, task: int, loss: Tensor) -> Tensor:
        return self._term(loss, self.log_variance[task])


class KendallWeighting(_LogVarianceWeighting):
    """Kendall et al. (2018) uncertainty weights, classification form: ``exp(-s_t) L_t + s_t / 2``.

    Parameters
    ----------
    n_tasks : int
        One learned log variance ``s_t`` per task, starting at 0 (weight 1).
    """

    @staticmethod
    def _term(loss: Tensor, s: Tensor) -> Tensor:
        return torch.exp(-s) * loss + s / 2


class UncertaintyWeighting(_LogVarianceWeighting):
    """Uncertainty weights in the regression form of Kendall et al. eq. 7 (LibMTL's ``UW``):
    ``L_t / (2 exp(s_t)) + s_t / 2``.

    Parameters
    ----------
    n_tasks : int
    """

    @staticmethod
    def _term(loss: Tensor, s: Tensor) -> Tensor:
        return loss / (2 * torch.exp(s)) + s / 2


#: Weightings by name (``make_weighting``).
WEIGHTINGS = {"equal": EqualWeighting, "kendall": KendallWeighting, "uncertainty": UncertaintyWeighting}


def make_weighting(name: str, n_tasks: int) -> LossWeighting:
    """The weighting called ``name`` ("equal", "kendall" or "uncertainty") for ``n_tasks`` tasks."""
    if name not in WEIGHTINGS:
        raise ValueError(f"unknown loss weighting {name!r}; the weightings are: {', '.join(WEIGHTINGS)}")
    return EqualWeighting() if name == "equal" else WEIGHTINGS[name](n_tasks)
