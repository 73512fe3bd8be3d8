"""Train K hard-sharing models at once, each on its own group of tasks.

The K models' parameters are stacked (``StackedHardSharingMLP``), every model sees
the same mini-batches, and one forward/backward pass over the stack trains all
of them. Optimisers are applied per model with a mask, so a model that has
stopped early (or whose tasks have no label in a batch) is left untouched,
exactly as if it were trained alone. Early-stopped models are dropped from the
stack to save work.

Which models share a stack never changes any model's numbers: initialisation
comes from each model's own seed, batch order from the run seed, and every
operation acts on each model's slice independently. Two details keep this true
bit for bit on MKL builds of PyTorch (tests/train/test_batched.py checks it):

* training runs single-threaded inside this function (the previous thread count
  is restored afterwards): with several intra-op threads, a batched matrix
  product splits its work differently depending on the number of models, and
  rounding then depends on the stack. Use the process-pool executor to occupy
  several cores;
* mini-batches are padded with unlabelled zero rows to a multiple of
  ``ROW_BLOCK`` rows, and a final mini-batch of fewer than ``MIN_BATCH_ROWS``
  rows is merged into the previous one: MKL takes other kernel paths for some
  small products, depending on the stack size;
* elementwise losses run on padded per-model blocks (``train/losses.py``).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch

from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset
from negtransfer.nn.hard_sharing import StackedHardSharingMLP
from negtransfer.train.config import TrainConfig
from negtransfer.train.losses import TaskLossLayout
from negtransfer.train.metrics import classification_losses, task_metric

MIN_BATCH_ROWS = 4
ROW_BLOCK = 16


def group_text(group: Sequence[int]) -> str:
    """Canonical text of a group of task indices: sorted, joined by ``+`` (``"0+3+5"``).

    Used for model seeds and as the run store's group key.
    """
    return "+".join(str(int(i)) for i in sorted(group))


def group_key(group: Sequence[int] | np.ndarray, n_tasks: int) -> str:
    """:func:`group_text` of a group given as indices or a boolean mask over ``n_tasks``."""
    return group_text(_as_indices(group, n_tasks))


def _as_indices(group, n_tasks: int) -> np.ndarray:
    arr = np.asarray(group)
    if arr.dtype == bool:
        if arr.shape != (n_tasks,):
            raise ValueError(f"a boolean group mask must have length {n_tasks}, got {arr.shape}")
        return np.flatnonzero(arr)
    return np.unique(arr.astype(int))


def model_seed(seed: int, group: Sequence[int] | np.ndarray, n_tasks: int) -> int:
    """Initialisation seed of the model for ``group`` in a run with ``seed``.

    Derived by hashing, so it depends only on (seed, group), never on which
    other models are trained alongside.
    """
    blob = f"{int(seed)}:{group_key(group, n_tasks)}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


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
    """

    group: tuple[int, ...]
    val_loss: dict[int, float]
    test_loss: dict[int, float]
    test_metric: dict[int, float]
    best_epoch: int
    epochs: int
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


class _StackOptimizer:
    """SGD with momentum or Adam applied per model, with a mask of active models.

    The update rules follow torch.optim.SGD (dampening 0, no Nesterov; the first
    step's buffer is the gradient) and torch.optim.Adam, but a model whose mask
    entry is False keeps its parameters *and* optimiser state unchanged.
    """

    def __init__(self, params: list[torch.Tensor], config: TrainConfig):
        self.params = params
        self.config = config
        self.state = [torch.zeros_like(p) for p in params]
        if config.optimizer == "adam":
            self.state2 = [torch.zeros_like(p) for p in params]
            self.steps = torch.zeros(params[0].shape[0], 1, 1)

    def keep(self, keep: torch.Tensor) -> None:
        self.state = [s.index_select(0, keep) for s in self.state]
        if self.config.optimizer == "adam":
            self.state2 = [s.index_select(0, keep) for s in self.state2]
            self.steps = self.steps.index_select(0, keep)

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], active: torch.Tensor) -> None:
        cfg = self.config
        if cfg.optimizer == "sgd" and bool(active.all()):
            self._sgd_step_all(grads)
            return
        mask = active.view(-1, 1, 1)
        if cfg.optimizer == "adam":
            self.steps = torch.where(mask, self.steps + 1, self.steps)
            b1, b2 = cfg.adam_betas
            bc1 = 1 - b1 ** self.steps.clamp(min=1)
            bc2 = 1 - b2 ** self.steps.clamp(min=1)
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if cfg.weight_decay:
                g = g + p * cfg.weight_decay
            if cfg.optimizer == "sgd":
                buf = self.state[i] * cfg.momentum + g if cfg.momentum else g
                update = buf * cfg.lr
                if cfg.momentum:
                    self.state[i] = torch.where(mask, buf, self.state[i])
            else:
                m = self.state[i] * b1 + g * (1 - b1)
                v = self.state2[i] * b2 + (g * g) * (1 - b2)
                self.state[i] = torch.where(mask, m, self.state[i])
                self.state2[i] = torch.where(mask, v, self.state2[i])
                update = (m / bc1) / ((v / bc2).sqrt() + cfg.adam_eps) * cfg.lr
            p.copy_(torch.where(mask, p - update, p))

    def _sgd_step_all(self, grads: list[torch.Tensor]) -> None:
        """The SGD step when every model is active: the same arithmetic, in place."""
        cfg = self.config
        for i, (p, g) in enumerate(zip(self.params, grads)):
            if cfg.weight_decay:
                g = g + p * cfg.weight_decay
            if cfg.momentum:
                buf = self.state[i].mul_(cfg.momentum).add_(g)
            else:
                buf = g
            p.sub_(buf * cfg.lr)

    def velocity(self, model: int = 0) -> list[torch.Tensor]:
        """SGD momentum buffers of one model (PyTorch convention), per parameter."""
        return [s[model] for s in self.state]


StepHook = Callable[[torch.Tensor, StackedHardSharingMLP, "_StackOptimizer"], "list[torch.Tensor] | None"]


def train_group_models(
    dataset: MultiTaskDataset,
    groups: Sequence[Sequence[int]] | np.ndarray,
    config: TrainConfig,
    seed: int,
    *,
    on_epoch: Callable[[int, int], None] | None = None,
    step_hook: StepHook | None = None,
    keep_test_predictions: bool = False,
) -> list[ModelResult]:
    """Train one hard-sharing model per group, all in one vectorised stack.

    Parameters
    ----------
    dataset : MultiTaskDataset
    groups : sequence of task-index sequences, or bool array (K, n_tasks)
        Group k's model receives the losses of group k's tasks only. A group of
        one task is single-task learning (STL) with the same architecture.
    config : TrainConfig
    seed : int
        Fixes the batch order; each model's initialisation comes from
        :func:`model_seed` (seed, group). For the per-task-rows layout
        (``dataset.row_task`` set) each model trains on its group's rows only,
        in an order drawn from its own seed.
    on_epoch : callable(epoch, models_still_training), optional
        Progress callback, called after each epoch.
    step_hook : callable(task_losses, model, optimizer) -> grads or None, optional
        Called every step with the per-task losses (K, n_tasks) of the batch; may
        return the gradients of all stack parameters (e.g. from one batched
        per-task backward pass) to be used instead of the default backward. Used
        by the affinity tracker.
    keep_test_predictions : bool
        Also put each task's test rows (dataset row indices) and predictions
        (probability of class 1, class probabilities, or standardised values)
        in ``extra["test_rows"]`` and ``extra["test_prediction"]``, e.g. for
        per-group fairness metrics. Not meant for the run store (large).

    Returns
    -------
    list of ModelResult
        In the order of ``groups``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _train(dataset, groups, config, seed, on_epoch, step_hook, keep_test_predictions)
    finally:
        torch.set_num_threads(threads)


def _padded_batch(X: torch.Tensor, Y: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of a mini-batch, padded to a multiple of ROW_BLOCK with unlabelled zero rows.

    Padding rows carry no label, so they add exactly zero to every loss and
    gradient; they only keep MKL on the same kernels for every stack size.
    """
    pad = (-rows.numel()) % ROW_BLOCK
    xb, yb = X[rows], Y[rows]
    if pad:
        xb = torch.cat([xb, xb.new_zeros(pad, xb.shape[1])])
        yb = torch.cat([yb, yb.new_full((pad, yb.shape[1]), float("nan"))])
    return xb, yb


class _PerGroupBatches:
    """Mini-batches for the per-task-rows layout: each model sees only its group's rows.

    Each model has its own row list (the training rows of its group's tasks) and
    its own batch order (a generator seeded from the model's seed), so its
    training is the same alone or in a stack. Within a stack the models step in
    lockstep; a model that has finished its (shorter) epoch gets empty,
    unlabelled batches, which leave it untouched, until the longest one is done.
    Every batch is padded to the same width whatever the stack holds.
    """

    def __init__(self, dataset: MultiTaskDataset, groups: list[tuple[int, ...]], seeds: list[int], batch_size: int):
        train = dataset.split == TRAIN
        self.rows = [torch.from_numpy(np.flatnonzero(train & np.isin(dataset.row_task, g))) for g in groups]
        self.gens = [torch.Generator().manual_seed((s + 1) % (2**63)) for s in seeds]
        self.batch_size = batch_size
        self.width = -(-batch_size // ROW_BLOCK) * ROW_BLOCK
        n, d = dataset.X.shape
        self.X = torch.cat([torch.from_numpy(dataset.X), torch.zeros(1, d)])
        self.Y = torch.cat([torch.from_numpy(dataset.Y), torch.full((1, dataset.Y.shape[1]), float("nan"))])
        self.pad = n  # index of the zero, unlabelled row

    def epoch(self, models: list[int]):
        """Yield (x, y) of shapes (len(models), width, d) and (len(models), width, n_tasks)."""
        bs = self.batch_size
        n_steps = max(-(-self.rows[k].numel() // bs) for k in models)
        index = torch.full((len(models), n_steps * bs), self.pad, dtype=torch.long)
        for pos, k in enumerate(models):
            rows = self.rows[k]
            index[pos, : rows.numel()] = rows[torch.randperm(rows.numel(), generator=self.gens[k])]
        index = index.view(len(models), n_steps, bs)
        if self.width > bs:
            index = torch.cat([index, index.new_full((len(models), n_steps, self.width - bs), self.pad)], dim=2)
        for step in range(n_steps):
            idx = index[:, step]
            yield self.X[idx], self.Y[idx]


def batch_slices(n_rows: int, batch_size: int) -> list[slice]:
    """Consecutive mini-batch slices; a tail under MIN_BATCH_ROWS joins the batch before it."""
    starts = list(range(0, n_rows, batch_size))
    if len(starts) > 1 and n_rows - starts[-1] < MIN_BATCH_ROWS:
        starts.pop()
    ends = starts[1:] + [n_rows]
    return [slice(a, b) for a, b in zip(starts, ends)]


def _train(dataset, groups, config, seed, on_epoch, step_hook, keep_test_predictions=False) -> list[ModelResult]:
    n_tasks = dataset.n_tasks
    group_idx = [tuple(int(i) for i in _as_indices(g, n_tasks)) for g in groups]
    if not group_idx:
        return []
    for g in group_idx:
        if not g or min(g) < 0 or max(g) >= n_tasks:
            raise ValueError(f"group {g} is empty or names a task outside 0..{n_tasks - 1}")
    K = len(group_idx)
    t_start = time.perf_counter()
    layout = TaskLossLayout(dataset.tasks)
    if config.shared_init:
        seeds = [model_seed(seed, tuple(range(n_tasks)), n_tasks)] * K
    else:
        seeds = [model_seed(seed, g, n_tasks) for g in group_idx]
    model = StackedHardSharingMLP(dataset.n_features, config.hidden, layout.n_outputs, seeds)
    params = list(model.parameters())
    opt = _StackOptimizer([p.data for p in params], config)

    group_mask = torch.zeros(K, n_tasks)
    for k, g in enumerate(group_idx):
        group_mask[k, list(g)] = 1.0

    X = torch.from_numpy(dataset.X)
    Y = torch.from_numpy(dataset.Y)
    train_rows = torch.from_numpy(np.flatnonzero(dataset.split == TRAIN))
    val_rows = torch.from_numpy(np.flatnonzero(dataset.split == VALIDATION))
    X_val, Y_val = X[val_rows], Y[val_rows]
    per_group = _PerGroupBatches(dataset, group_idx, seeds, config.batch_size) if dataset.row_task is not None else None
    batch_gen = torch.Generator().manual_seed(int(seed) % (2**63))
    slices = batch_slices(train_rows.numel(), config.batch_size)

    alive = torch.arange(K)  # original index of each stack position
    best_val = torch.full((K,), float("inf"))
    best_epoch = torch.zeros(K, dtype=torch.long)
    wait = torch.zeros(K, dtype=torch.long)
    epochs_run = torch.zeros(K, dtype=torch.long)
    best_params = [p.detach().clone() for p in params]  # indexed by original model
    cur_mask = group_mask

    for epoch in range(1, config.max_epochs + 1):
        if per_group is None:
            order = train_rows[torch.randperm(train_rows.numel(), generator=batch_gen)]
            batches = (_padded_batch(X, Y, order[batch]) for batch in slices)
        else:
            batches = per_group.epoch(alive.tolist())
        for xb, yb in batches:
            outputs = model(xb)
            losses, counts = layout.task_losses(outputs, yb)
            has_label = (cur_mask * (counts > 0)).sum(1) > 0
            if not bool(has_label.any()):
                continue
            grads = step_hook(losses * cur_mask, model, opt) if step_hook is not None else None
            if grads is None:
                total = (losses * cur_mask).sum()
                grads = torch.autograd.grad(total, params)
            opt.step(list(grads), has_label)
        epochs_run[alive] = epoch

        with torch.no_grad():
            val_losses, _ = layout.task_losses(model(X_val), Y_val)
            val_total = (val_losses * cur_mask).sum(1)
        improved = val_total < best_val[alive] - config.min_delta
        for pos in torch.nonzero(improved).flatten().tolist():
            k = int(alive[pos])
            for bp, p in zip(best_params, params):
                bp[k] = p.detach()[pos]
        best_val[alive] = torch.where(improved, val_total, best_val[alive])
        best_epoch[alive] = torch.where(improved, torch.tensor(epoch), best_epoch[alive])
        wait[alive] = torch.where(improved, torch.zeros_like(wait[alive]), wait[alive] + 1)
        still = wait[alive] < config.patience
        if on_epoch is not None:
            on_epoch(epoch, int(still.sum()))
        if not bool(still.any()):
            break
        if not bool(still.all()):
            keep = torch.nonzero(still).flatten()
            model.keep_models(keep)
            params = list(model.parameters())
            opt.params = [p.data for p in params]
            opt.keep(keep)
            alive = alive[keep]
            cur_mask = cur_mask[keep]

    seconds = (time.perf_counter() - t_start) / K
    # Evaluate the best-epoch weights of every model in one stack.
    final = StackedHardSharingMLP(dataset.n_features, config.hidden, layout.n_outputs, seeds)
    with torch.no_grad():
        for fp, bp in zip(final.parameters(), best_params):
            fp.copy_(bp)
    return _evaluate(final, dataset, layout, group_idx, best_epoch, epochs_run, seconds, keep_test_predictions)


@torch.no_grad()
def _evaluate(model, dataset, layout, group_idx, best_epoch, epochs_run, seconds, keep_predictions=False) -> list[ModelResult]:
    X = torch.from_numpy(dataset.X)
    Y = torch.from_numpy(dataset.Y)
    split = torch.from_numpy(dataset.split.astype(np.int64))
    val = torch.nonzero(split == VALIDATION).flatten()
    test = torch.nonzero(split == TEST).flatten()
    val_out, test_out = model(X[val]), model(X[test])
    val_losses, _ = layout.task_losses(val_out, Y[val])
    test_losses, _ = layout.task_losses(test_out, Y[test])
    labels = {"val": dataset.Y[val.numpy()], "test": dataset.Y[test.numpy()]}
    outputs = {"val": val_out, "test": test_out}
    results = []
    for k, g in enumerate(group_idx):
        metrics, extra = {}, {}
        for t in g:
            task = dataset.tasks[t]
            for part in ("val", "test"):
                labelled = ~np.isnan(labels[part][:, t])
                y = labels[part][labelled, t]
                pred = layout.predictions(outputs[part][k], t).numpy()[labelled]
                if part == "test":
                    metrics[t] = task_metric(task, y, pred)
                    if keep_predictions:
                        extra.setdefault("test_rows", {})[t] = test.numpy()[labelled].tolist()
                        extra.setdefault("test_prediction", {})[t] = pred.tolist()
                for name, value in classification_losses(task, y, pred).items():
                    extra.setdefault(f"{part}_{name}", {})[t] = value
        results.append(
            ModelResult(
                group=g,
                val_loss={t: float(val_losses[k, t]) for t in g},
                test_loss={t: float(test_losses[k, t]) for t in g},
                test_metric=metrics,
                best_epoch=int(best_epoch[k]),
                epochs=int(epochs_run[k]),
                seconds=seconds,
                extra=extra,
            )
        )
    return results
