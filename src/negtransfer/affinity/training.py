"""Affinity from one all-task training run of negtransfer's own trainer.

The all-task model is trained exactly as any group model (same seed, batches,
early stopping); at each tracked step the trainer's backward pass is replaced
by ONE batched backward that yields every task's gradient of the shared encoder
(and the summed head gradients), the affinity of that step is recorded (ETAP
eq. 4-5), and the sum of the per-task gradients is the training gradient.
"""

from __future__ import annotations

import numpy as np

from negtransfer.affinity.tracker import AffinityTracker, per_task_and_summed_gradients
from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig


def affinity_key(dataset: MultiTaskDataset, config: TrainConfig, seed: int, every: int) -> str:
    return f"affinity:{dataset.fingerprint()}:{int(seed)}:{config.config_hash()}:every={int(every)}"


def train_with_affinity(
    dataset: MultiTaskDataset, config: TrainConfig, seed: int, *, every: int = 1, keep_trace: bool = False
) -> tuple[AffinityTracker, object]:
    """Train the all-task model while tracking affinity.

    Parameters
    ----------
    every : int
        Track every k-th step (1 = every step); untracked steps use the plain
        backward pass.
    keep_trace : bool
        Keep each tracked step's matrix (paper Figure 7).

    Returns
    -------
    tracker : AffinityTracker
        ``tracker.affinity_matrix[i, j]`` = affinity of source task i onto target j.
    result : ModelResult
        The all-task model's result.

    Notes
    -----
    With SGD the affinity uses the momentum buffer before the step (eq. 4-5).
    With Adam the SGD formula is applied to the raw gradients, as the public ETAP
    code does for its Adam-trained Ridership models; the
    :class:`~negtransfer.affinity.tracker.AffinityTracker` ``optimizer_kind="adam"``
    option scores Adam's actual steps in a user's own loop.
    """
    n = dataset.n_tasks
    tracker = AffinityTracker(n, every=every, optimizer_kind="sgd", keep_trace=keep_trace,
                              task_names=dataset.task_names)
    momentum = config.momentum if config.optimizer == "sgd" else 0.0

    def hook(losses, model, opt):
        if not tracker.is_due:
            tracker.skip()
            return None
        shared, heads = model.shared_parameters(), model.head_parameters()
        per_task, summed_shared, summed_heads = per_task_and_summed_gradients(losses[0], shared, heads)
        params = list(model.parameters())
        position = {id(p): i for i, p in enumerate(params)}
        velocity = [opt.state[position[id(p)]] for p in shared] if momentum else None
        tracker.update(per_task, losses[0].detach(), config.lr, velocity=velocity, momentum=momentum,
                       weight_decay=config.weight_decay, params=[p.detach() for p in shared])
        summed = {id(p): g for p, g in zip(shared + heads, summed_shared + summed_heads)}
        return [summed[id(p)] if summed[id(p)] is not None else p.new_zeros(p.shape) for p in params]

    result = train_group_models(dataset, [tuple(range(n))], config, seed, step_hook=hook,
                                on_epoch=lambda epoch, alive: tracker.end_epoch())[0]
    return tracker, result


def measure_affinity(
    dataset: MultiTaskDataset, config: TrainConfig, seed: int, *, every: int = 1, store=None
) -> np.ndarray:
    """The averaged affinity matrix (eq. 6) of the all-task run, cached in ``store``.

    Returns
    -------
    ndarray (n, n)
        ``A[i, j]`` = affinity of source task i onto target task j.
    """
    key = affinity_key(dataset, config, seed, every)
    if store is not None:
        cached = store.get_artifact(key)
        if cached is not None:
            return np.asarray(cached["affinity"], dtype=float)
    tracker, _ = train_with_affinity(dataset, config, seed, every=every)
    matrix = np.asarray(tracker.affinity_matrix, dtype=float)
    if store is not None:
        store.put_artifact(key, {"affinity": matrix.tolist(), "steps_tracked": tracker.n_steps_tracked})
    return matrix
