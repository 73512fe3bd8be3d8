"""Affinity from all-task training runs of negtransfer's own trainer.

The all-task model is trained exactly as any group model (same seed, batches,
early stopping, and the trainer's own backward pass at every step, so its
result is bit-identical to the stacked trainer's all-task run); at each tracked
step ONE extra batched backward pass yields every task's gradient of the shared
encoder, and the affinity of that step is recorded (ETAP eq. 4-5). The run store
keeps the model result and the affinity record of a repeat as one run
(:mod:`negtransfer.runs.tracked`), so the all-task model of a repeat is trained
once for both.

Each tracked step is scored twice: with the momentum term of eq. 4 (the update
a step on task i alone would make, momentum included) and without it (plain
gradient steps, as the ETAP public code feeds its predictor for Chemical and
CelebA). Without momentum, ``affinity[i, j] = <g_i, g_j> / L_j``; the momentum
term adds ``mu <b, g_j> / L_j``, the same for every source i, i.e. a per-target
offset. Per-epoch means of both are kept, so the job can average all epochs or
only those up to the all-task model's best epoch (the ETAP CelebA script drops
the epochs after it), and average over repeats, without training again.
"""

from __future__ import annotations

import numpy as np

from negtransfer.affinity.lookahead import stacked_lookahead_affinity
from negtransfer.affinity.scores import nan_mean_of_matrices
from negtransfer.affinity.tracker import AffinityTracker
from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig
from negtransfer.train.gradients import per_task_gradients
from negtransfer.train.losses import TaskLossLayout
from negtransfer.train.results import ModelResult

#: How the per-epoch matrices of a run are averaged: every epoch, or epochs up to the best one.
AFFINITY_EPOCHS = ("all", "until-best")


#: The affinities a tracked all-task run can measure: ETAP's first-order score (eq. 4-5) or TAG's
#: lookahead (Fifty et al., 2021: one extra forward pass per task, here as one batched pass).
AFFINITY_KINDS = ("etap", "tag")


def train_with_affinity(
    dataset: MultiTaskDataset,
    config: TrainConfig,
    seed: int,
    *,
    repeat: int = 0,
    every: int = 1,
    keep_trace: bool = False,
    kind: str = "etap",
) -> tuple[AffinityTracker, ModelResult, AffinityTracker]:
    """Train the all-task model of one repeat while tracking affinity.

    Parameters
    ----------
    repeat : int
        Repeat number: the run is the all-task run of that repeat (training
        seed :func:`~negtransfer.train.batched.repeat_seed` (seed, repeat)).
    every : int
        Track every k-th step (1 = every step). Every step, tracked or not,
        trains with the trainer's own backward pass; a tracked step adds one
        batched backward pass for the per-task gradients of the shared encoder.
    keep_trace : bool
        Keep each tracked step's matrix (paper Figure 7), in both trackers.
    kind : {"etap", "tag"}
        ``"etap"``: the first-order score ``<u_i, g_j> / L_j`` (ETAP eq. 4-5);
        ``"tag"``: TAG's lookahead ``(1 - L_j(theta - lr u_i) / L_j(theta)) / lr``,
        the T lookahead forward passes run as one batched pass
        (:func:`~negtransfer.affinity.lookahead.stacked_lookahead_affinity`).

    Returns
    -------
    tracker : AffinityTracker
        With the momentum term (eq. 4-5); ``tracker.affinity_matrix[i, j]`` =
        affinity of source task i onto target j.
    result : ModelResult
        The all-task model's result: bit-identical to the stacked trainer's
        all-task run of that repeat (``train_group_models``).
    plain : AffinityTracker
        The same steps scored without the momentum term.

    Notes
    -----
    With SGD the affinity uses the momentum buffer before the step (eq. 4-5).
    With Adam the SGD formula is applied to the raw gradients, as the public ETAP
    code does for its Adam-trained Ridership models; the
    :class:`~negtransfer.affinity.tracker.AffinityTracker` ``optimizer_kind="adam"``
    option scores Adam's actual steps in a user's own loop.
    """
    if kind not in AFFINITY_KINDS:
        raise ValueError(f"kind must be one of {AFFINITY_KINDS}, got {kind!r}")
    n = dataset.n_tasks
    layout = TaskLossLayout(dataset.tasks)
    tracker = AffinityTracker(n, every=every, optimizer_kind="sgd", keep_trace=keep_trace,
                              task_names=dataset.task_names, average="epochs")
    plain = AffinityTracker(n, every=every, optimizer_kind="sgd", keep_trace=keep_trace,
                            task_names=dataset.task_names, average="epochs")
    momentum = config.momentum if config.optimizer == "sgd" else 0.0

    def hook(losses, model, opt, batch):
        if not tracker.is_due:
            tracker.skip()
            plain.skip()
            return
        shared = model.shared_parameters()
        # the per-task gradients are for the affinity only: the step itself uses the trainer's own backward
        # pass (the hook returns None), so the run is the stacked trainer's all-task run, bit for bit
        per_task = per_task_gradients(losses[0], shared, retain_graph=True)
        params = list(model.parameters())
        position = {id(p): i for i, p in enumerate(params)}
        velocity = [opt.state[position[id(p)]] for p in shared] if momentum else None
        detached = [p.detach() for p in shared]
        if kind == "etap":
            tracker.update(per_task, losses[0].detach(), opt.lr, velocity=velocity, momentum=momentum,
                           weight_decay=config.weight_decay, params=detached)
            plain.update(per_task, losses[0].detach(), opt.lr, weight_decay=config.weight_decay, params=detached)
        else:
            steps = [g + config.weight_decay * p.unsqueeze(0) if config.weight_decay else g
                     for g, p in zip(per_task, detached, strict=True)]
            with_momentum = ([d + momentum * v.unsqueeze(0) for d, v in zip(steps, velocity, strict=True)]
                             if velocity is not None else steps)
            x, y = batch  # the step's (features, labels)
            for track, directions in ((tracker, with_momentum), (plain, steps)):
                Z = stacked_lookahead_affinity(model, x, y, layout, directions, opt.lr, losses[0])
                track.record(Z, task_losses=losses[0].detach())

    def end_epoch(epoch, alive):
        tracker.end_epoch()
        plain.end_epoch()

    result = train_group_models(dataset, [tuple(range(n))], config, seed, repeats=[repeat], step_hook=hook,
                                on_epoch=end_epoch)[0]
    return tracker, result, plain


def _epoch_record(tracker: AffinityTracker) -> list:
    return [m.tolist() for m in tracker.epoch_affinity_matrices] if tracker.epoch_affinity_matrices.size else []


def affinity_record(tracker: AffinityTracker, result, plain: AffinityTracker) -> dict:
    """The JSON record of one tracked run (:func:`train_with_affinity`'s output) that :func:`combine_affinity` reads.

    Returns
    -------
    dict
        ``momentum`` and ``plain``: per-epoch matrices (epochs x n x n, nested
        lists) with and without the momentum term; ``epochs``: the epoch of each;
        ``best_epoch``: the run's early-stopping epoch; ``steps_tracked``.
    """
    return {"momentum": _epoch_record(tracker), "plain": _epoch_record(plain),
            "epochs": tracker.tracked_epochs, "best_epoch": int(result.best_epoch),
            "steps_tracked": tracker.n_steps_tracked}


def trace_record(tracker: AffinityTracker, plain: AffinityTracker) -> dict:
    """The per-step matrices of a run tracked with ``keep_trace=True`` (paper Figure 7), JSON-ready.

    Returns
    -------
    dict
        ``steps``: the tracked steps; ``momentum`` and ``plain``: one n x n
        matrix (nested lists, NaN where undefined) per tracked step.
    """
    return {"steps": [int(s) for s in tracker.trace_steps],
            "momentum": [np.asarray(m).tolist() for m in tracker.trace],
            "plain": [np.asarray(m).tolist() for m in plain.trace]}


def combine_affinity(records: list[dict], n_tasks: int, *, momentum: bool = True, epochs: str = "all") -> np.ndarray:
    """One affinity matrix from the tracked runs of several repeats.

    Parameters
    ----------
    records : list of dict
        One per repeat, as made by :func:`affinity_record` (per-epoch
        matrices with and without momentum, and the best epoch).
    n_tasks : int
    momentum : bool
        Use the matrices with the momentum term (eq. 4) or without.
    epochs : {"all", "until-best"}
        Average every epoch's matrix, or only the epochs up to the run's best
        (early-stopping) epoch.

    Returns
    -------
    ndarray (n, n)
        Mean over repeats of each repeat's mean over its epochs (NaN-aware;
        NaN where no step was tracked); ``A[i, j]`` = affinity of source i onto target j.
    """
    if epochs not in AFFINITY_EPOCHS:
        raise ValueError(f"epochs must be one of {AFFINITY_EPOCHS}, got {epochs!r}")
    per_repeat = []
    for rec in records:
        mats = np.asarray(rec["momentum" if momentum else "plain"], dtype=float).reshape(-1, n_tasks, n_tasks)
        if mats.shape[0] == 0:  # no tracked step (e.g. a run that stopped in its first epoch without one)
            per_repeat.append(np.full((n_tasks, n_tasks), np.nan))
            continue
        epoch_of = np.asarray(rec["epochs"], dtype=int)
        if epochs == "until-best":
            keep = epoch_of <= int(rec["best_epoch"])
            mats = mats[keep] if keep.any() else mats[:1]
        per_repeat.append(nan_mean_of_matrices(mats))
    return nan_mean_of_matrices(np.stack(per_repeat))
