"""Where one step of the stacked trainer goes, against the step's arithmetic floor (issue 26).

The stack is that of ``benchmarks/training_floor.py``: yeast, the 14 single-task
models and 64 random groups (78 models of 103 -> 32 -> 32 -> 14), one thread,
the trainer's 32-row batches of training rows. Per step, thread CPU time
(median over rounds; the variants interleaved in every round):

* ``products``: the step's matrix products alone, at the step's shapes (the
  first layer's forward and weight gradient as one product each over the
  models' joined columns, the batched forward, weight and input gradients of
  the layers above): what the step costs if everything else were free;
* ``gradients``: the trainer's gradient step (:func:`negtransfer.train.fused_step.mlp_gradients`:
  forward, the loss's gradient, backward: the 63 top-level ATen operations of docs/scaling.md's third pass);
* ``optimiser``: the trainer's SGD step over the flat buffers (``torch._fused_sgd_``), on a copy of the
  parameters with a fixed gradient, from zero momentum each round;
* ``compiled`` (``--compile``): an experiment, not a shipped path: a functional
  twin of the gradient step written here (no workspace, no ``out=``) under
  ``torch.compile`` (its compile time printed apart, and whether its weight
  gradients equal the trainer's bit for bit and how far its bias gradients,
  sums that the compiled code orders its own way, are from the trainer's).

The *floor* of a step is its matrix FLOPs (forward, weight gradients, input
gradients but the first layer's; 2mkn per product) over the core's peak,
measured in the same run as training_floor.py's peak (a 2048-square ``torch.mm``, thread CPU time).
Printed: ``products_ratio:``, ``gradients_ratio:``, ``step_ratio:``
(gradients and optimiser over the floor) and, with ``--compile``,
``compiled_speedup:`` (gradients over compiled). ``benchmarks/training_floor.py``'s
``floor_ratio`` (issue 26's goal: at most 2.5) is the whole training's, the
per-epoch validation and the final evaluation included; ``products_ratio`` is
what that figure would approach if every other operation cost nothing.

Run: ``python benchmarks/step_anatomy.py [--rounds 7] [--compile]`` (``--smoke``:
one short round).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable

import numpy as np
import torch
from training_floor import peak_flops

from negtransfer.data.builtin import load_builtin
from negtransfer.data.dataset import TRAIN
from negtransfer.jobs.gains import GainsOptions
from negtransfer.nn.hard_sharing import StackedHardSharingMLP, joined_columns, split_columns
from negtransfer.train.batched import _StackOptimizer
from negtransfer.train.config import TrainConfig
from negtransfer.train.fused_step import StepWorkspace, mlp_gradients
from negtransfer.train.losses import TaskLossLayout


def thread_seconds(work: Callable[[], object], calls: int) -> float:
    """Thread CPU seconds per call of ``work`` over ``calls`` calls."""
    start = time.thread_time()
    for _ in range(calls):
        work()
    return (time.thread_time() - start) / calls


def step_flops(widths: list[int], models: int, rows: int) -> float:
    """Matrix FLOPs of one step: forward and weight gradient of every layer, input gradient of all but the first."""
    products = [a * b for a, b in itertools.pairwise(widths)]
    return float(2 * models * rows * (2 * sum(products) + sum(products[1:])))


def functional_gradients(x, y, mask, w0, w1, w2, b0, b1, b2):
    """The gradient step of a 3-layer stack on a shared batch of binary tasks, written as pure functions (the
    ``compiled`` variant's input to ``torch.compile``; the sum of each model's tasks' mean BCE losses)."""
    models, rows = w0.shape[0], x.shape[0]
    a1 = torch.relu(x @ joined_columns(w0) + joined_columns(b0)).view(rows, models, -1).transpose(0, 1)
    a2 = torch.relu(torch.baddbmm(b1, a1, w1))
    out = torch.baddbmm(b2, a2, w2)
    labelled = ~torch.isnan(y)
    weight = labelled.to(out.dtype)
    per_task = mask / weight.sum(0).clamp(min=1.0)
    g3 = (torch.sigmoid(out) - torch.where(labelled, y, 0.0)) * (per_task.unsqueeze(1) * weight)
    g2 = torch.bmm(g3, w2.transpose(1, 2).contiguous()) * (a2 > 0)
    g1 = torch.bmm(g2, w1.transpose(1, 2).contiguous()) * (a1 > 0)
    joined = g1.transpose(0, 1).reshape(rows, -1)
    return (x.t() @ joined, torch.bmm(a1.transpose(1, 2), g2), torch.bmm(a2.transpose(1, 2), g3),
            joined.sum(0), g2.sum(1, keepdim=True), g3.sum(1, keepdim=True))


class StepVariants:
    """The stack, its batches and one callable per variant, each running the step on the next batch."""

    def __init__(self, groups: int, seed: int = 0):
        dataset = load_builtin("yeast", seed=seed)
        self.config = TrainConfig()
        tasks = [(t,) for t in range(dataset.n_tasks)] + [
            g for g in GainsOptions(groups=f"random:{groups}").requested_groups(dataset.task_names, seed) if len(g) > 1]
        self.models, self.rows = len(tasks), self.config.batch_size
        self.widths = [dataset.n_features, *self.config.hidden, dataset.n_tasks]
        self.model = StackedHardSharingMLP(dataset.n_features, self.config.hidden, dataset.n_tasks,
                                           seeds=list(range(self.models)))
        self.flat = self.model.flatten()
        self.grad_flat = torch.zeros_like(self.flat)
        self.views = self.model.parameter_views(self.grad_flat)
        self.workspace = StepWorkspace()
        self.layout = TaskLossLayout(dataset.tasks)
        self.mask = torch.zeros(self.models, dataset.n_tasks)
        for m, group in enumerate(tasks):
            self.mask[m, list(group)] = 1.0
        train = dataset.split == TRAIN
        x = torch.as_tensor(dataset.X[train], dtype=torch.float32)
        y = torch.as_tensor(dataset.Y[train], dtype=torch.float32)
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
        whole = x.shape[0] // self.rows
        self.batches = [(x[order[i * self.rows:(i + 1) * self.rows]], y[order[i * self.rows:(i + 1) * self.rows]])
                        for i in range(whole)]
        # the optimiser steps a copy of the parameters with a fixed gradient, from zero momentum each round: the
        # gradient variants keep the model's initial weights, and no value drifts towards overflow or denormals
        self.fixed_gradient = torch.randn(self.flat.shape, generator=torch.Generator().manual_seed(seed)) * 1e-3
        self.reset_optimiser()
        self.every = torch.ones(self.models, dtype=torch.bool)
        self.compiled: Callable | None = None
        self._next = itertools.cycle(range(whole))

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.batches[next(self._next)]

    def products(self) -> None:
        x, _ = self.batch()
        w = [p.detach() for p in self.model.weights]
        b = [p.detach() for p in self.model.biases]
        first = torch.mm(x, joined_columns(w[0]))
        torch.mm(x.t(), first)  # the first layer's weight gradient: (n_features, K * width)
        h = split_columns(first, self.models)  # (K, B, width), as the trainer reads it
        for layer in (1, 2):
            out = torch.baddbmm(b[layer], h, w[layer])
            torch.bmm(h.transpose(1, 2), out)  # weight gradient
            torch.bmm(out, w[layer].transpose(1, 2).contiguous())  # input gradient
            h = out

    def gradients(self) -> None:
        x, y = self.batch()
        mlp_gradients(self.model, x, y, self.layout, self.mask, False, self.views, self.workspace)

    def reset_optimiser(self) -> None:
        """A fresh optimiser (zero momentum) over a fresh copy of the initial parameters."""
        params = self.flat.clone()
        self.optimiser = _StackOptimizer(self.model.parameter_views(params), self.config,
                                         views=self.model.parameter_views, flat=params)

    def optimise(self) -> None:
        self.optimiser.step(self.model.parameter_views(self.fixed_gradient), self.every, self.fixed_gradient)

    def compile(self) -> float:
        """Compile the functional twin; return the seconds it took (the first call included)."""
        start = time.perf_counter()
        compiled = torch.compile(functional_gradients, dynamic=False)
        self.compiled = compiled
        self.compiled_step()
        return time.perf_counter() - start

    def compiled_step(self) -> None:
        assert self.compiled is not None
        x, y = self.batch()
        self.compiled(x, y, self.mask, *[p.detach() for p in self.model.weights],
                      *[p.detach() for p in self.model.biases])

    def compare_with_trainer(self) -> tuple[bool, float]:
        """On one batch: whether the compiled twin's weight gradients equal the trainer's bit for bit, and the
        largest difference of its bias gradients from the trainer's, relative to their largest magnitude."""
        assert self.compiled is not None
        x, y = self.batches[0]
        mlp_gradients(self.model, x, y, self.layout, self.mask, False, self.views, self.workspace)
        twin = self.compiled(x, y, self.mask, *[p.detach() for p in self.model.weights],
                             *[p.detach() for p in self.model.biases])
        first = twin[0].view(x.shape[1], self.models, -1).permute(1, 0, 2)
        weights = all(torch.equal(a.reshape(v.shape), v) for a, v in zip((first, *twin[1:3]), self.views[:3],
                                                                          strict=True))
        bias = max(float((a.reshape(v.shape) - v).abs().max() / v.abs().max().clamp(min=1e-30))
                   for a, v in zip(twin[3:], self.views[3:], strict=True))
        return weights, bias


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="Rounds; every variant timed once per round.")
    parser.add_argument("--steps", type=int, default=200, help="Steps per variant and round.")
    parser.add_argument("--groups", type=int, default=64)
    parser.add_argument("--compile", action="store_true", help="Also time the torch.compile experiment.")
    parser.add_argument("--smoke", action="store_true", help="One round of 5 steps: checks that it runs.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds, steps = (1, 5) if args.smoke else (args.rounds, args.steps)
    stack = StepVariants(args.groups)
    print(f"load average {os.getloadavg()[0]:.2f}; torch {torch.__version__}, 1 thread; {stack.models} models of "
          f"{' -> '.join(map(str, stack.widths))}, {stack.rows}-row batches")
    variants = {"products": stack.products, "gradients": stack.gradients, "optimiser": stack.optimise}
    if args.compile:
        seconds = stack.compile()
        weights, bias = stack.compare_with_trainer()
        print(f"compile: {seconds:.1f} s (once per shape); weight gradients equal the trainer's bit for bit: "
              f"{weights}; bias gradients' largest relative difference {bias:.1e}")
        variants["compiled"] = stack.compiled_step
    for work in variants.values():  # warm-up
        thread_seconds(work, 3)
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    peaks = []
    for _ in range(rounds):
        peaks.append(peak_flops(repeats=3, clock=time.thread_time))
        stack.reset_optimiser()
        for name, work in variants.items():
            seconds[name].append(thread_seconds(work, steps))
    floor = step_flops(stack.widths, stack.models, stack.rows) / float(np.median(peaks))
    med = {name: float(np.median(v)) for name, v in seconds.items()}
    print(f"peak {np.median(peaks) / 1e9:.1f} GFLOP/s; step floor {floor * 1e6:.0f} us; per step (thread CPU, "
          "median): " + ", ".join(f"{name} {t * 1e6:.0f} us" for name, t in med.items()))
    print(f"products_ratio: {med['products'] / floor:.2f}")
    print(f"gradients_ratio: {med['gradients'] / floor:.2f}")
    print(f"step_ratio: {(med['gradients'] + med['optimiser']) / floor:.2f}")
    if args.compile:
        print(f"compiled_speedup: {med['gradients'] / med['compiled']:.2f}")


if __name__ == "__main__":
    main()
