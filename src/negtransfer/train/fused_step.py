"""One training step of a stack of built-in MLPs in few, large operations.

The stacked trainer (:mod:`negtransfer.train.batched`) trains K hard-sharing
MLPs (:class:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP`) at once.
Through autograd a step of a stack of three layers costs some 300 small ATen
operations, most of them book-keeping; this module computes the same step
with the arithmetic written out:

* the forward pass keeps each layer's input (per layer one product and an
  in-place ``relu``, as the module's own forward pass); on a batch shared by
  the stack (multi-label data) the first layer of all K models is ONE matrix
  product over their joined weight columns
  (:func:`~negtransfer.nn.hard_sharing.joined_columns`), and so is its weight
  gradient; each model's columns come out as in a product of its own;
* the gradient of the loss with respect to the stack's outputs is written
  out when every task is binary (:func:`binary_output_gradient`, the
  arithmetic of autograd's backward pass through the loss); otherwise it
  comes from autograd on the (small) output tensor alone, so every loss of
  :class:`~negtransfer.train.losses.TaskLossLayout` keeps its exact arithmetic;
* the backward pass through the layers is the one autograd runs for
  ``baddbmm`` and ``relu`` (``dW = h^T g``, ``db = sum_rows g``,
  ``g <- threshold_backward(g W^T, h, 0)``), written straight into the views
  of one flat (K, P) gradient buffer
  (:meth:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP.parameter_views`);
* the optimiser then updates the flat parameter buffer in one fused pass
  (SGD; ``_StackOptimizer`` in :mod:`negtransfer.train.batched`).

Every operation is the one the autograd path runs, on the same shapes, so the
gradients are bit for bit those of ``torch.autograd.grad`` of the training
loss (tests/train/test_fused_step.py), and each model's numbers still depend on
its own slice of the stack only. Nothing in a step reads a tensor's value on
the host: which models step is a mask (``has_label``), so the step can run on
a GPU without synchronisation.
"""

from __future__ import annotations

from typing import Sequence

import torch

from negtransfer.nn.hard_sharing import StackedHardSharingMLP, joined_columns, split_columns
from negtransfer.train.losses import VECTOR_BLOCK, TaskLossLayout

__all__ = ["StepWorkspace", "binary_output_gradient", "mlp_gradients", "training_loss"]


class StepWorkspace:
    """The tensors a fused step writes into, kept from one step to the next.

    Each step of a stack needs the same temporaries (every layer's
    activations, the backward pass's input gradients, the padded logits):
    allocated once and reused they cost no allocation per step, and the
    numbers are the same as with fresh tensors (the operations write their
    results with ``out=``, or in place where the result overwrites its input
    with the same kernel). A tensor is made anew when its shape changes (the
    shorter last batch of an epoch; a stack that dropped its stopped models).
    """

    def __init__(self) -> None:
        self._tensors: dict[str, torch.Tensor] = {}

    def tensor(self, name: str, shape: Sequence[int], like: torch.Tensor) -> torch.Tensor:
        """The workspace tensor ``name`` of ``shape`` (uninitialised), on ``like``'s device and of its dtype."""
        found = self._tensors.get(name)
        if found is None or found.shape != tuple(shape) or found.dtype != like.dtype or found.device != like.device:
            found = self._tensors[name] = like.new_empty(tuple(shape))
        return found


def training_loss(sums: torch.Tensor, counts: torch.Tensor, losses: torch.Tensor, mask: torch.Tensor,
                  row_mean: bool) -> torch.Tensor:
    """The stack's training objective on a batch, summed over the models.

    Per model the sum of its tasks' mean losses (ETAP eq. 1's MTL loss), or
    (``row_mean``) the mean loss over its labelled rows (TrainConfig
    ``loss_weighting``).
    """
    if row_mean:
        return ((sums * mask).sum(1) / (counts * mask).sum(1).clamp(min=1.0)).sum()
    return (losses * mask).sum()


@torch.no_grad()
def binary_output_gradient(layout: TaskLossLayout, out: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
                           row_mean: bool, workspace: StepWorkspace | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the training loss with respect to the stack's outputs when every task is binary; label counts.

    The arithmetic of autograd's backward pass through
    :meth:`~negtransfer.train.losses.TaskLossLayout.loss_sums` and
    :func:`training_loss`, operation for operation: per model and task the
    weight ``g = mask / max(count, 1)`` (task-mean; row-mean: ``mask / max(sum
    of the model's counts, 1)``), then ``(sigmoid(z) - y) * g`` on labelled
    rows (BCE with logits; the sigmoid on the same padded blocks as the loss,
    ``train/losses.py``), 0 elsewhere.

    Returns
    -------
    gradient : Tensor
        (K, B, n_outputs).
    counts : Tensor
        Labelled rows per task, (n_tasks,) for shared labels else (K, n_tasks).
    """
    shared = y.dim() == 2
    labels = y.unsqueeze(0) if shared else y
    labelled = ~torch.isnan(labels)
    weight = labelled.to(out.dtype)
    counts = weight.sum(1)  # sums of ones and zeros: exactly the label counts
    safe = torch.where(labelled, labels, 0.0)
    K, B = out.shape[0], out.shape[1]
    if row_mean:
        per_task = (1.0 / (counts * mask).sum(1).clamp(min=1.0)).unsqueeze(1) * mask
    else:
        per_task = mask / counts.clamp(min=1.0)
    binary = layout.binary
    every_output = len(binary) == out.shape[2]  # the outputs are the binary tasks' logits, in order
    logits = out if every_output else out.index_select(2, layout.binary_outputs(out.device))
    m = logits.shape[2]
    size = B * m
    padded = -(-size // VECTOR_BLOCK) * VECTOR_BLOCK
    # the sigmoid over rows padded to whole blocks (each value from the kernel's vector path, as in the loss);
    # what the padding holds does not matter, each value depends on its own logit only
    blocks = torch.empty(K, padded, dtype=out.dtype, device=out.device) if workspace is None else \
        workspace.tensor("logit blocks", (K, padded), out)
    blocks[:, :size].copy_(logits.reshape(K, size))
    probability = blocks.sigmoid_()[:, :size].view(K, B, m)
    if not every_output:
        safe, per_task, weight = safe[:, :, binary], per_task[:, binary], weight[:, :, binary]
    elem = torch.sub(probability, safe).mul_(per_task.unsqueeze(1) * weight)
    if every_output:  # 0 + elem, as autograd's index_select backward adds into zeros (a -0 becomes +0)
        return elem.add_(0.0), (counts[0] if shared else counts)
    gradient = out.new_zeros(K, B, out.shape[2]).index_add_(2, layout.binary_outputs(out.device), elem)
    return gradient, (counts[0] if shared else counts)


@torch.no_grad()
def _forward(weights: list[torch.Tensor], biases: list[torch.Tensor], x: torch.Tensor, work: StepWorkspace
             ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The stack's forward pass on a batch: each layer's input, and the outputs (K, B, n_outputs).

    A batch shared by the stack, (B, n_features), enters the first layer as one matrix product over the
    models' joined weight columns, ``x @ W + b`` (:func:`~negtransfer.nn.hard_sharing.joined_columns`),
    into a (B, K * width) tensor read as (K, B, width) by the next layer; a batch per model (K, B, n_features)
    as a batched product. Then per layer ``baddbmm`` and an in-place ReLU, as the module's forward pass.
    """
    K = weights[0].shape[0]
    inputs, h = [], x
    for layer, (w, b) in enumerate(zip(weights, biases, strict=True)):
        inputs.append(h)
        if h.dim() == 2:
            joined = work.tensor(f"layer {layer} output", (h.shape[0], K * w.shape[2]), w)
            h = split_columns(torch.mm(h, joined_columns(w), out=joined).add_(joined_columns(b)), K)
        else:
            h = torch.baddbmm(b, h, w, out=work.tensor(f"layer {layer} output", (K, h.shape[1], w.shape[2]), w))
        if layer < len(weights) - 1:
            h.relu_()
    return inputs, h


@torch.no_grad()
def _backward(weights: list[torch.Tensor], inputs: list[torch.Tensor], g: torch.Tensor,
              grads: Sequence[torch.Tensor], work: StepWorkspace) -> None:
    """The backward pass through the layers from the outputs' gradient ``g``, into ``grads``.

    Per layer ``dW = h^T g``, ``db = sum_rows g`` and, below the top, ``g <- threshold_backward(g W^T, h, 0)``
    (autograd's arithmetic for ``baddbmm``, ``mm`` with a broadcast bias, and ``relu``). A shared batch's first layer takes one
    matrix product, ``dW = x^T G`` with G the (B, K * width) gradient the layer above writes its input
    gradient into (:func:`_forward`'s layout).
    """
    n_layers = len(weights)
    K = weights[0].shape[0]
    for layer in range(n_layers - 1, -1, -1):
        h = inputs[layer]
        if h.dim() == 2:  # g is the (K, B, width) view of a (B, K * width) tensor
            joined = joined_columns(g)
            weight, bias = joined_columns(grads[layer]), joined_columns(grads[n_layers + layer])
            if weight.data_ptr() != grads[layer].data_ptr() or bias.data_ptr() != grads[n_layers + layer].data_ptr():
                raise ValueError("error: the gradient views must be laid out as the stack's parameters "
                                 "(model.parameter_views of a flat buffer)")
            torch.mm(h.t(), joined, out=weight)
            torch.sum(joined, 0, keepdim=True, out=bias)
            continue
        torch.bmm(h.transpose(1, 2), g, out=grads[layer])
        torch.sum(g, 1, keepdim=True, out=grads[n_layers + layer])
        if layer:
            # the transposed VIEW, as autograd multiplies: a contiguous copy of the transpose ran MKL's batched
            # product about twice as fast on an Intel CPU, but on an AMD EPYC (AVX-512) it rounded differently
            # from autograd in the last bit (docs/scaling.md)
            w = weights[layer]
            g_in = torch.bmm(g, w.transpose(1, 2), out=work.tensor(f"layer {layer} input gradient", h.shape, g))
            if inputs[layer - 1].dim() == 2:  # the first layer multiplies (B, K * width) matrices
                below = work.tensor("layer 0 gradient", (h.shape[1], K * h.shape[2]), g)
                g_out = split_columns(below, K)
            else:
                g_out = g_in
            # zero where the ReLU was off: threshold_backward(g W^T, h, 0), as autograd
            g = torch.ops.aten.threshold_backward.grad_input(g_in, h, 0, grad_input=g_out)


def mlp_gradients(model: StackedHardSharingMLP, x: torch.Tensor, y: torch.Tensor, layout: TaskLossLayout,
                  mask: torch.Tensor, row_mean: bool, grads: Sequence[torch.Tensor],
                  workspace: StepWorkspace | None = None) -> torch.Tensor:
    """Write the gradient of the training loss on one batch into ``grads``; return which models step.

    Parameters
    ----------
    model : StackedHardSharingMLP
        K models.
    x : Tensor
        The batch, (B, n_features) shared by the stack or (K, B, n_features).
    y : Tensor
        Labels, (B, n_tasks) or (K, B, n_tasks); NaN where a row has no label.
    layout : TaskLossLayout
    mask : Tensor
        (K, n_tasks) 0/1: each model's tasks.
    row_mean : bool
        The objective (:func:`training_loss`).
    grads : sequence of Tensor
        Views shaped like ``model.parameters()`` (weights, then biases), overwritten.
    workspace : StepWorkspace, optional
        Where the activations and temporaries are written, kept between steps
        (the trainer passes one per stack); a fresh one (new tensors) if None.

    Returns
    -------
    Tensor
        (K,) bool: the models with a labelled row of one of their tasks in the
        batch (the others' gradients are zero and must not step).
    """
    weights, biases = list(model.weights), list(model.biases)
    work = workspace if workspace is not None else StepWorkspace()
    inputs, h = _forward(weights, biases, x, work)
    if layout.binary and not layout.regression and not layout.multiclass:
        g, counts = binary_output_gradient(layout, h, y, mask, row_mean, work)
    else:
        out = h.detach().requires_grad_()  # (the workspace's tensor itself does not require a gradient)
        with torch.enable_grad():
            sums, counts = layout.loss_sums(out, y)
            losses = sums / counts.clamp(min=1.0)
            (g,) = torch.autograd.grad(training_loss(sums, counts, losses, mask, row_mean), out)
    _backward(weights, inputs, g, grads, work)
    with torch.no_grad():
        return (mask * (counts > 0)).sum(1) > 0
