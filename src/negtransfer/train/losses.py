"""Per-task losses with missing labels masked out, for K stacked models at once.

Binary tasks use binary cross-entropy on one logit, multiclass tasks
cross-entropy on ``n_classes`` logits, regression tasks squared error. A task's
loss on a batch is the mean over the rows that carry its label; rows without a
label (NaN) contribute nothing.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from negtransfer.data.dataset import TaskSpec

# Elementwise transcendental kernels (exp, log) round differently in their
# vectorised body and their scalar tail. Padding each model's block to a multiple
# of this many elements keeps every element in the vectorised body, so a model's
# loss does not depend on how many models share its stack.
VECTOR_BLOCK = 64


def _blocked_bce_with_logits(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Elementwise BCE-with-logits of (K, B, m) tensors, computed on padded blocks."""
    K, B, m = logits.shape
    size = B * m
    padded = -(-size // VECTOR_BLOCK) * VECTOR_BLOCK
    flat_logits = F.pad(logits.reshape(K, size), (0, padded - size))
    flat_target = F.pad(target.expand(K, B, m).reshape(K, size), (0, padded - size))
    elem = F.binary_cross_entropy_with_logits(flat_logits, flat_target, reduction="none")
    return elem[:, :size].reshape(K, B, m)


class TaskLossLayout:
    """Where each task's outputs sit in the concatenated head output, and its loss.

    Parameters
    ----------
    tasks : sequence of TaskSpec
        Tasks in dataset order; output columns follow the same order.
    """

    def __init__(self, tasks: Sequence[TaskSpec]):
        self.tasks = tuple(tasks)
        self.n_tasks = len(self.tasks)
        offsets, off = [], 0
        for t in self.tasks:
            offsets.append(off)
            off += t.output_dim
        self.offsets = offsets
        self.n_outputs = off
        self.binary = [i for i, t in enumerate(self.tasks) if t.kind == "binary"]
        self.regression = [i for i, t in enumerate(self.tasks) if t.kind == "regression"]
        self.multiclass = [i for i, t in enumerate(self.tasks) if t.kind == "multiclass"]
        self._bin_out = torch.tensor([offsets[i] for i in self.binary], dtype=torch.long)
        self._reg_out = torch.tensor([offsets[i] for i in self.regression], dtype=torch.long)

    def binary_outputs(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """Output columns of the binary tasks' logits, in task order, on ``device``."""
        return self._bin_out.to(device)

    def output_slice(self, task: int) -> slice:
        return slice(self.offsets[task], self.offsets[task] + self.tasks[task].output_dim)

    def loss_sums(self, outputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss per model and task over labelled rows, and label counts.

        Parameters
        ----------
        outputs : Tensor, shape (K, B, n_outputs)
        labels : Tensor, shape (B, n_tasks) shared by all models, or (K, B, n_tasks)
            one batch per model; NaN where a row has no label.

        Returns
        -------
        sums : Tensor, shape (K, n_tasks)
            Sum over labelled rows of each task's elementwise loss.
        counts : Tensor, shape (n_tasks,) for shared labels, else (K, n_tasks)
            Number of labelled rows per task.
        """
        shared = labels.dim() == 2
        if shared:
            labels = labels.unsqueeze(0)
        labelled = ~torch.isnan(labels)
        counts = labelled.sum(1).to(outputs.dtype)
        safe = torch.where(labelled, labels, torch.zeros_like(labels))
        weight = labelled.to(outputs.dtype)
        K, B = outputs.shape[0], outputs.shape[1]
        sums = outputs.new_zeros(K, self.n_tasks)
        if self.binary:
            logits = outputs.index_select(2, self._bin_out.to(outputs.device))
            elem = _blocked_bce_with_logits(logits, safe[:, :, self.binary])
            sums[:, self.binary] = (elem * weight[:, :, self.binary]).sum(1)
        if self.regression:
            pred = outputs.index_select(2, self._reg_out.to(outputs.device))
            elem = (pred - safe[:, :, self.regression]) ** 2
            sums[:, self.regression] = (elem * weight[:, :, self.regression]).sum(1)
        for i in self.multiclass:
            logits = outputs[:, :, self.output_slice(i)]
            C = logits.shape[2]
            target = safe[:, :, i].long().expand(K, B).reshape(-1)
            elem = F.cross_entropy(logits.reshape(K * B, C), target, reduction="none").reshape(K, B)
            sums[:, i] = (elem * weight[:, :, i]).sum(1)
        return sums, (counts[0] if shared else counts)

    def task_losses(self, outputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss per model and task over labelled rows (0 where a task has none).

        Returns
        -------
        losses : Tensor, shape (K, n_tasks)
        counts : Tensor, shape (n_tasks,) or (K, n_tasks), as in :meth:`loss_sums`
        """
        sums, counts = self.loss_sums(outputs, labels)
        return sums / counts.clamp(min=1.0), counts

    def predictions(self, outputs: torch.Tensor, task: int) -> torch.Tensor:
        """Probabilities (classification) or values (regression) of one task.

        ``outputs`` is (..., n_outputs); returns (...) for binary and regression
        (probability of class 1 or the standardised value) and (..., C) class
        probabilities for multiclass.
        """
        out = outputs[..., self.output_slice(task)]
        kind = self.tasks[task].kind
        if kind == "binary":
            return torch.sigmoid(out[..., 0])
        if kind == "multiclass":
            return torch.softmax(out, dim=-1)
        return out[..., 0]
