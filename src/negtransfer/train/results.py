"""Results of training runs: one run (:class:`ModelResult`) and the repeats of one group (:class:`RepeatedResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

__all__ = ["ModelResult", "RepeatedResult", "group_text"]


def group_text(group: Iterable[int]) -> str:
    """Canonical text of a group of task indices: sorted, joined by ``+`` (``"0+3+5"``).

    Used for model seeds and as the run store's group key (here, beside :class:`ModelResult`, so that the run
    store and ``negtransfer store-info`` read runs without importing PyTorch).
    """
    return "+".join(str(int(i)) for i in sorted(group))


@dataclass
class ModelResult:
    """Outcome of training one model on one group of tasks.

    Attributes
    ----------
    group : tuple of int
        Task indices the model was trained on.
    val_loss, test_loss, test_metric : dict[int, float]
        Per task of the group: mean loss over labelled validation/test rows
        (best-epoch weights) and the task metric on the test rows.
    best_epoch, epochs : int
        Epoch (1-based) whose weights were kept, and epochs actually run.
    seconds : float
        Wall time of the stack this model was trained in, divided by its size.
    extra : dict
        For classification tasks, ``{split}_{name}`` -> {task: value} for the
        validation and test splits, with the names of
        :func:`~negtransfer.train.metrics.classification_losses` (``margin_loss``,
        ``zero_one``, ``accuracy``).
    val_metric : dict[int, float]
        The task metric on the validation rows.
    repeat : int
        Repeat number of the run (its training seed is
        :func:`repeat_seed` (job seed, repeat)).
    audit_loss : dict[int, float]
        Per task of the group: mean loss over its labelled audit rows (split
        code 4, :meth:`~negtransfer.data.dataset.MultiTaskDataset.with_audit`),
        rows no choice used; empty when the dataset has none.
    audit_row_loss, test_row_loss : dict[int, ndarray]
        Per task of the group: the loss of every labelled audit (test) row, float32, in dataset row order
        (their mean is ``audit_loss`` (``test_loss``) up to float32 rounding); recorded only when the dataset
        has audit rows, for the paired per-row standard error of the audit's verdict
        (:func:`~negtransfer.gains.paired_rows.paired_row_se`); empty otherwise and in results stored before
        the fields existed.
    """

    group: tuple[int, ...]
    val_loss: dict[int, float]
    test_loss: dict[int, float]
    test_metric: dict[int, float]
    best_epoch: int
    epochs: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    val_metric: dict[int, float] = field(default_factory=dict)
    repeat: int = 0
    audit_loss: dict[int, float] = field(default_factory=dict)
    audit_row_loss: dict[int, np.ndarray] = field(default_factory=dict)
    test_row_loss: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class RepeatedResult:
    """The R repeats of one group's run, read like one run whose numbers are means.

    ``val_loss``, ``test_loss``, ``test_metric`` and ``extra`` hold, per task,
    the mean over the repeats (NaN-aware for the metric), so code written for
    a :class:`ModelResult` reads the repeat-averaged figures. :meth:`values`
    gives the per-repeat numbers, e.g. for paired gains and standard errors.

    Parameters
    ----------
    group : tuple of int
    runs : list of ModelResult
        One per repeat, in repeat order (``runs[r].repeat == r``).
    """

    group: tuple[int, ...]
    runs: list[ModelResult]

    def __post_init__(self) -> None:
        if not self.runs:
            raise ValueError(f"group {self.group} has no runs")
        self._means: dict[str, dict[int, float]] = {}

    @property
    def repeats(self) -> int:
        return len(self.runs)

    def values(self, attr: str, task: int) -> np.ndarray:
        """Per-repeat values (R,) of ``attr`` ("val_loss", "test_loss", "test_metric", "val_metric",
        "audit_loss", or an ``extra`` name such as "val_margin_loss") for one task of the group."""
        if attr in ("val_loss", "test_loss", "test_metric", "val_metric", "audit_loss"):
            return np.array([getattr(run, attr)[task] for run in self.runs], dtype=float)
        return np.array([run.extra[attr][task] for run in self.runs], dtype=float)

    def row_values(self, attr: str, task: int) -> np.ndarray | None:
        """Per run and row (R, n_rows), ``attr`` ("audit_row_loss" or "test_row_loss") of one task of the group;
        None when a run did not record it (no audit rows, or a result stored before the field existed)."""
        if not all(task in getattr(run, attr) for run in self.runs):
            return None
        return np.stack([np.asarray(getattr(run, attr)[task], dtype=float) for run in self.runs])

    def _mean(self, attr: str) -> dict[int, float]:
        """Per-task mean over the repeats (computed once: the runs of a result do not change)."""
        if attr in self._means:
            return self._means[attr]
        out = {}
        for t in self.group:
            vals = self.values(attr, t)
            out[t] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        self._means[attr] = out
        return out

    @property
    def val_loss(self) -> dict[int, float]:
        return self._mean("val_loss")

    @property
    def test_loss(self) -> dict[int, float]:
        return self._mean("test_loss")

    @property
    def test_metric(self) -> dict[int, float]:
        return self._mean("test_metric")

    @property
    def audit_loss(self) -> dict[int, float]:
        """Per-task mean audit loss over the repeats; empty when the runs have no audit rows."""
        if not all(run.audit_loss for run in self.runs):
            return {}
        return self._mean("audit_loss")

    @property
    def val_metric(self) -> dict[int, float]:
        return self._mean("val_metric")

    @property
    def extra(self) -> dict[str, dict[int, float]]:
        names = [name for name, per_task in self.runs[0].extra.items()
                 if all(isinstance(v, (int, float)) for v in per_task.values())]
        return {name: {t: float(np.mean(self.values(name, t))) for t in self.group if t in self.runs[0].extra[name]}
                for name in names}

    @property
    def best_epoch(self) -> float:
        return float(np.mean([run.best_epoch for run in self.runs]))

    @property
    def epochs(self) -> float:
        return float(np.mean([run.epochs for run in self.runs]))

    @property
    def seconds(self) -> float:
        return float(sum(run.seconds for run in self.runs))
