"""Training loop for the clinical time-series models (TP-AMTL, P-AMTL and baselines).

One readable loop for every model of :mod:`negtransfer.nn.amtl` and
:mod:`negtransfer.nn.clinical_baselines`, on a
:class:`~negtransfer.data.timeseries.TimeSeriesMultiTaskDataset` (inputs
(N, T, F) with lengths) or a non-temporal
:class:`~negtransfer.data.dataset.MultiTaskDataset` (inputs (N, F), e.g.
mnist-variation). The settings follow the TP-AMTL official code
(``REFERENCES.md``):

* Adam, learning rate 1e-3, L2 penalty 2e-4 (``weight_decay``, coupled: added to
  the gradient as the official code's ``l2_coeff * l2_loss`` is) on the
  parameters the model names in ``l2_parameters()`` (TP-AMTL / P-AMTL: the
  base network's weights, as the official code) or on every parameter of a
  model without that method (``l2="all"``: every parameter of every model), batch 128;
* masked binary cross-entropy, eq. (12): a (record, task) pair without a label
  contributes nothing; each task's loss is its mean over the labelled records
  of the batch, and the task losses are combined by a loss weighting
  (:mod:`negtransfer.train.weighting`: their plain sum by default, Kendall
  weights for ``retain-kendall``, a model's own regulariser for the AMTL
  baselines; the model catalogue chooses);
* the weights of the epoch with the lowest summed validation loss are kept
  (early stopping after ``patience`` epochs without a lower one);
* models with ``mc_dropout = True`` stay stochastic at test time and their
  probabilities are averaged over ``mc_samples`` passes (20 in the paper);
  other models are evaluated in ``eval()`` mode;
* metric: AUROC per task on the test split (:func:`negtransfer.train.metrics.auroc`);
  :func:`evaluate_split` gives AUROC and the binary cross-entropy per task on
  any split (the validation metrics of the kept checkpoint, which
  ``negtransfer compare --select-on-validation`` chooses settings by).

STL is the same loop with ``task_indices=[k]``: the model has one output and
only task k's labels train it. The loop is :class:`negtransfer.train.loop.FitLoop`
(one round = one epoch) with :class:`~negtransfer.train.loop.KeepBest` and
:class:`~negtransfer.train.loop.EarlyStopping` on the overall validation loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.train.config import check_positive_ints
from negtransfer.train.loop import EarlyStopping, Evaluation, FitLoop, FitResult, KeepBest, RoundOutput
from negtransfer.train.metrics import auroc
from negtransfer.train.weighting import EqualWeighting, LossWeighting

__all__ = [
    "TemporalTrainConfig",
    "TrainedModel",
    "evaluate_auroc",
    "evaluate_split",
    "fit",
    "masked_bce",
    "predict_proba",
]

#: The result of :func:`fit` (the one result type of :mod:`negtransfer.train.loop`).
TrainedModel = FitResult


@dataclass(frozen=True)
class TemporalTrainConfig:
    """How a clinical model is trained (defaults: the TP-AMTL official code; epoch budget ours).

    Parameters
    ----------
    lr : float
        Adam learning rate.
    weight_decay : float
        L2 penalty (added to the gradient, as ``torch.optim.Adam`` does).
    batch_size : int
    max_epochs : int
    patience : int
        Epochs without a lower validation loss before stopping (best weights restored).
    mc_samples : int
        Monte Carlo passes averaged at test time (stochastic models only; 20
        in the official code).
    validation_mc_samples : int or None
        Passes used for the validation loss each epoch; None (default): as
        many as at test time, ``mc_samples``.
    l2 : {"model", "all"}
        Which parameters ``weight_decay`` applies to: ``"model"`` (the model's
        ``l2_parameters()`` when it has that method, else all), or ``"all"``.

    The official code trains 2000 epochs (``max_epochs=2000``) and keeps the
    best validation epoch; here the default cap is 300 with patience 30.
    """

    lr: float = 1e-3
    weight_decay: float = 2e-4
    batch_size: int = 128
    max_epochs: int = 300
    patience: int = 30
    mc_samples: int = 20
    validation_mc_samples: int | None = None
    l2: str = "model"

    def __post_init__(self) -> None:
        check_positive_ints(self, ("batch_size", "max_epochs", "patience", "mc_samples"))
        if self.validation_mc_samples is not None:
            check_positive_ints(self, ("validation_mc_samples",))
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got lr={self.lr}, weight_decay={self.weight_decay}")
        if self.l2 not in L2_PLACEMENTS:
            raise ValueError(f"l2 must be one of {', '.join(L2_PLACEMENTS)}, got {self.l2!r}")

    @property
    def validation_passes(self) -> int:
        """MC passes for the validation loss (``validation_mc_samples``, or ``mc_samples``)."""
        return self.validation_mc_samples or self.mc_samples


#: Where the L2 penalty applies (:attr:`TemporalTrainConfig.l2`).
L2_PLACEMENTS = ("model", "all")


def parameter_groups(model: nn.Module, extra: Sequence[nn.Parameter], weight_decay: float, l2: str) -> list[dict]:
    """Adam parameter groups: L2 ``weight_decay`` on the penalised parameters, none on the others.

    With ``l2="model"`` and a model that has ``l2_parameters()``, only those are
    penalised (the official TP-AMTL code's "base" network); otherwise every
    parameter of the model (``extra``, a loss weighting's, never is when the
    model names its own).
    """
    chosen = getattr(model, "l2_parameters", None)
    if l2 == "all" or chosen is None:
        return [{"params": list(model.parameters()) + list(extra), "weight_decay": weight_decay}]
    penalised = {id(p) for p in chosen()}
    rest = [p for p in model.parameters() if id(p) not in penalised] + list(extra)
    return [{"params": [p for p in model.parameters() if id(p) in penalised], "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0}]


def _arrays(dataset) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Inputs, step mask (None when non-temporal) and labels of a dataset as tensors."""
    if isinstance(dataset, MultiTaskDataset):
        return torch.from_numpy(dataset.X), None, torch.from_numpy(dataset.Y)
    return torch.from_numpy(dataset.X), torch.from_numpy(dataset.step_mask()), torch.from_numpy(dataset.Y)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task mean binary cross-entropy over the labelled entries (eq. 12).

    Parameters
    ----------
    logits, labels : Tensor (B, D)
        NaN in ``labels`` = no label: that entry contributes no loss and no gradient.

    Returns
    -------
    losses : Tensor (D,)
        Mean loss of each task over its labelled entries (0 where none).
    present : Tensor of bool (D,)
        Whether each task had a label in the batch.
    """
    labelled = ~torch.isnan(labels)
    safe = torch.where(labelled, labels, torch.zeros_like(labels))
    per_entry = F.binary_cross_entropy_with_logits(logits, safe, reduction="none")
    per_entry = torch.where(labelled, per_entry, torch.zeros_like(per_entry))
    counts = labelled.sum(0)
    return per_entry.sum(0) / counts.clamp(min=1), counts > 0


def predict_proba(model: nn.Module, x: torch.Tensor, step_mask: torch.Tensor | None, *,
                  mc_samples: int = 20, batch_size: int = 512) -> np.ndarray:  # fmt: skip
    """Predicted probabilities (N, outputs); MC-averaged for models with ``mc_dropout = True``.

    A model with ``mc_logits(x, step_mask, passes)`` (:class:`~negtransfer.nn.amtl.TPAMTL`)
    computes its passes together, with the numbers of one call per pass. The
    model's train/eval mode is restored afterwards.
    """
    stochastic = bool(getattr(model, "mc_dropout", False))
    was_training = model.training
    model.train(stochastic)
    passes = mc_samples if stochastic else 1
    mc_logits = getattr(model, "mc_logits", None) if stochastic else None
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size]
            mb = None if step_mask is None else step_mask[start : start + batch_size]
            logits = mc_logits(xb, mb, passes) if mc_logits is not None else [model(xb, mb) for _ in range(passes)]
            # one sigmoid per pass: torch's vectorised and scalar sigmoid differ in the last bit
            out.append(torch.stack([torch.sigmoid(pass_logits) for pass_logits in logits]).mean(0))
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def _validation_loss(model, x, m, y, samples: int) -> float:
    probs = torch.from_numpy(predict_proba(model, x, m, mc_samples=samples)).clamp(1e-6, 1 - 1e-6)
    logits = torch.log(probs) - torch.log1p(-probs)
    losses, present = masked_bce(logits, y)
    return float((losses * present).sum())


def fit(model: nn.Module, dataset, *, task_indices: Sequence[int] | None = None,
        config: TemporalTrainConfig = TemporalTrainConfig(), seed: int = 0,
        weighting: LossWeighting | Callable | None = None,
        on_epoch: Callable[[int, int], None] | None = None) -> FitResult:  # fmt: skip
    """Train ``model`` on the training split; keep the epoch with the best summed validation loss.

    Parameters
    ----------
    model : nn.Module
        ``model(x, step_mask) -> logits`` with one output per entry of ``task_indices``.
    dataset : TimeSeriesMultiTaskDataset or MultiTaskDataset
    task_indices : sequence of int, optional
        Tasks whose labels train the model, in output order; default all (MTL).
        One index = an STL model.
    config : TemporalTrainConfig
    seed : int
        Seeds the batch order and every random draw of the model (dropout, sampling).
    weighting : LossWeighting or callable, optional
        ``weighting(losses, present) -> loss``: how the per-task batch losses
        are combined (default :class:`~negtransfer.train.weighting.EqualWeighting`,
        their sum over the tasks labelled in the batch). Its parameters, if it
        has any, are trained with the model's.
    on_epoch : callable, optional
        ``on_epoch(epoch, max_epochs)`` after every epoch (progress).

    Returns
    -------
    FitResult
        The model (best weights loaded), ``best_epoch``, ``epochs_run`` and the
        history (train and validation loss per epoch).
    """
    tasks = tuple(range(dataset.Y.shape[1])) if task_indices is None else tuple(int(k) for k in task_indices)
    if not tasks or any(k < 0 or k >= dataset.Y.shape[1] for k in tasks):
        raise ValueError(f"task_indices must be a non-empty subset of 0..{dataset.Y.shape[1] - 1}, got {task_indices}")
    weighting = weighting if weighting is not None else EqualWeighting()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    x, m, y = _arrays(dataset)
    y = y[:, list(tasks)]
    train = torch.from_numpy(dataset.indices("train"))
    val = torch.from_numpy(dataset.indices("validation"))
    train = train[~torch.isnan(y[train]).all(1)]
    if len(train) == 0:
        raise ValueError(f"no training record carries a label for tasks {list(tasks)}")
    with torch.no_grad():
        probe = model(x[train[:2]], None if m is None else m[train[:2]])
    if probe.shape[-1] != len(tasks):
        raise ValueError(f"the model has {probe.shape[-1]} outputs but {len(tasks)} tasks are trained; match them")
    extra = list(weighting.parameters()) if isinstance(weighting, nn.Module) else []
    optimiser = torch.optim.Adam(parameter_groups(model, extra, config.weight_decay, config.l2), lr=config.lr)

    def train_round(loop: FitLoop, epoch: int) -> RoundOutput:
        model.train()
        order = train[torch.randperm(len(train), generator=gen)]
        total, batches, seconds = 0.0, 0, 0.0
        for start in range(0, len(order), config.batch_size):
            # the steps' wall time, less the loop's step callbacks (progress): FitResult.seconds_per_step, and
            # the training rate `negtransfer store-info` reads from a saved state
            began = time.perf_counter()
            rows = order[start : start + config.batch_size]
            logits = model(x[rows], None if m is None else m[rows])
            losses, present = masked_bce(logits, y[rows])
            loss = weighting(losses, present)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, batches = total + loss.item(), batches + 1
            seconds += time.perf_counter() - began
            loop.step_done()
        return RoundOutput(batches, seconds, {"train_loss": total / max(batches, 1)})

    def evaluate(epoch: int, out: RoundOutput) -> Evaluation:
        if len(val):
            val_loss = _validation_loss(model, x[val], None if m is None else m[val], y[val],
                                        config.validation_passes)
        else:
            val_loss = out.values["train_loss"]
        record = {"epoch": epoch, "train_loss": out.values["train_loss"], "validation_loss": val_loss}
        if on_epoch is not None:
            on_epoch(epoch, config.max_epochs)
        return Evaluation([val_loss] * len(tasks), val_loss, record)

    keep = KeepBest("min", per_task=False, keep_initial=True)
    loop = FitLoop(model, len(tasks), [keep, EarlyStopping(config.patience, "min")], unit="epoch",
                   resumable={"optimiser": optimiser, "batch_order": gen,
                              **({"weighting": weighting} if isinstance(weighting, nn.Module) else {})})
    result = loop.run(train_round, evaluate, config.max_epochs, task_indices=tasks)
    model.load_state_dict(result.best_states[0])
    return result


def evaluate_auroc(trained: TrainedModel, dataset, split: str = "test", *, mc_samples: int = 20,
                   seed: int = 0) -> dict[str, float]:  # fmt: skip
    """AUROC of each trained task on ``split`` (labelled records only); NaN if one class only."""
    torch.manual_seed(seed)
    x, m, y = _arrays(dataset)
    rows = torch.from_numpy(dataset.indices(split))
    probs = predict_proba(trained.model, x[rows], None if m is None else m[rows], mc_samples=mc_samples)
    names = dataset.task_names
    out = {}
    for col, k in enumerate(trained.task_indices):
        labels = y[rows, k].numpy()
        have = ~np.isnan(labels)
        out[names[k]] = auroc(labels[have], probs[have, col]) if have.any() else float("nan")
    return out


def evaluate_split(trained: TrainedModel, dataset, split: str = "validation", *, mc_samples: int = 20,
                   seed: int = 0) -> dict[str, dict[str, float]]:  # fmt: skip
    """AUROC and binary cross-entropy of each trained task on ``split``, from one set of predictions.

    The predictions are those :func:`evaluate_auroc` scores (MC-averaged over
    ``mc_samples`` passes for stochastic models, ``torch.manual_seed(seed)``
    first), so on the test split the AUROC equals :func:`evaluate_auroc`'s. The
    loss of a task is eq. (12)'s mean binary cross-entropy over its labelled
    records of the split, of the averaged probability (clipped to [1e-6, 1 - 1e-6],
    as the validation loss that chooses the kept epoch); NaN for both when the
    split has no labelled record of the task (AUROC also NaN with one class only).

    Returns
    -------
    dict
        ``{"auroc": {task: value}, "loss": {task: value}}``.
    """
    torch.manual_seed(seed)
    x, m, y = _arrays(dataset)
    rows = torch.from_numpy(dataset.indices(split))
    probs = predict_proba(trained.model, x[rows], None if m is None else m[rows], mc_samples=mc_samples)
    names = dataset.task_names
    scores: dict[str, dict[str, float]] = {"auroc": {}, "loss": {}}
    for col, k in enumerate(trained.task_indices):
        labels = y[rows, k].numpy()
        have = ~np.isnan(labels)
        if not have.any():
            scores["auroc"][names[k]] = scores["loss"][names[k]] = float("nan")
            continue
        p = np.clip(probs[have, col].astype(np.float64), 1e-6, 1 - 1e-6)
        t = labels[have].astype(np.float64)
        scores["auroc"][names[k]] = auroc(labels[have], probs[have, col])
        scores["loss"][names[k]] = float(-np.mean(t * np.log(p) + (1 - t) * np.log1p(-p)))
    return scores
