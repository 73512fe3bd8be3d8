"""TAG's lookahead per tracked step: the T extra forward passes as one batched pass vs a per-task loop.

TAG (Fifty et al., 2021) scores a training step by moving the shared encoder by
each task's update in turn and re-running the forward pass: T extra forward
passes per tracked step (its public code loops over the tasks). negtransfer
stacks the T hypothetical encoders and runs them as one batched pass
(``negtransfer.affinity.lookahead.stacked_lookahead_affinity``). Both compute
the same matrix (``tests/affinity/test_lookahead.py``).

Measured on the all-task model of the first ``--tasks`` yeast tasks, batch 32,
at its initial parameters, given the per-task gradients and the losses of the
training step (common to both; the loop variant is the public code's: move the
encoder, run the forward pass, restore, per task): the two are timed alternately, ``--repeats`` blocks of 200 steps
each, and the medians compared. Prints the per-step times and, last,
``tag_lookahead_speedup: X`` (loop time / batched time; the issue's goal: X >= 2
at n = 10).

Run: ``python benchmarks/tag_step_cost.py [--tasks 10] [--repeats 7]`` (``--smoke``: 4 tasks, 1 block of 5
steps; a check that it runs).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from negtransfer.affinity.gradients import flatten_task_gradients, per_task_gradients
from negtransfer.affinity.lookahead import stacked_lookahead_affinity, tag_lookahead_affinity
from negtransfer.data.builtin import load_builtin
from negtransfer.nn.hard_sharing import StackedHardSharingMLP
from negtransfer.train.losses import TaskLossLayout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.tasks, args.repeats, args.steps = 4, 1, 5
    torch.set_num_threads(1)
    full = load_builtin("yeast", seed=0)
    ds = full.subset_tasks(list(full.task_names[: args.tasks]))
    layout = TaskLossLayout(ds.tasks)
    model = StackedHardSharingMLP(ds.n_features, (32, 16), layout.n_outputs, seeds=[0])
    x, y = torch.from_numpy(ds.X[:32]), torch.from_numpy(ds.Y[:32])
    shared = model.shared_parameters()

    def closure():
        return layout.task_losses(model(x), y)[0][0]

    losses = closure()
    updates = per_task_gradients(losses, shared)
    flat = flatten_task_gradients(updates)
    lr = 0.01
    batched = stacked_lookahead_affinity(model, x, y, layout, updates, lr, losses)
    looped = tag_lookahead_affinity(closure, shared, lr, updates=flat)
    assert torch.allclose(batched, looped, rtol=1e-3, atol=1e-4), "the two variants disagree"

    sizes = [p.numel() for p in shared]

    def loop():
        """The public code's way: move the encoder by each task's step, re-run the forward pass, restore."""
        saved = [p.detach().clone() for p in shared]
        rows = []
        with torch.no_grad():
            for i in range(flat.shape[0]):
                for p, step in zip(shared, torch.split(flat[i], sizes), strict=True):
                    p.sub_(lr * step.reshape(p.shape))
                rows.append(closure())
                for p, s in zip(shared, saved, strict=True):
                    p.copy_(s)
        return (1.0 - torch.stack(rows) / losses.detach()[None, :]) / lr

    assert torch.allclose(loop(), batched, rtol=1e-3, atol=1e-4)

    def block(fn):
        start = time.perf_counter()
        for _ in range(args.steps):
            fn()
        return (time.perf_counter() - start) / args.steps

    t_batched, t_loop = [], []
    for _ in range(args.repeats):
        t_batched.append(block(lambda: stacked_lookahead_affinity(model, x, y, layout, updates, lr, losses)))
        t_loop.append(block(loop))
    b, lo = float(np.median(t_batched)), float(np.median(t_loop))
    print(f"n = {ds.n_tasks} tasks, batch 32, 1 thread, torch {torch.__version__}")
    print(f"lookahead per tracked step: batched {b * 1e3:.3f} ms, per-task loop {lo * 1e3:.3f} ms "
          f"(medians of {args.repeats} blocks of {args.steps} steps)")
    print(f"tag_lookahead_speedup: {lo / b:.2f}")


if __name__ == "__main__":
    main()
