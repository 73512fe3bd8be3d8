"""What affinity tracking costs in a real all-task yeast run, end to end.

Trains the 14-task yeast model (default config, seed 0) four ways, with data
batches, validation, early stopping and evaluation included:

* plain (no tracking);
* tracking every step with ONE batched backward pass for the per-task gradients
  of the shared encoder, beside the trainer's own backward pass that takes the
  step (negtransfer's method, :func:`~negtransfer.affinity.training.train_with_affinity`);
* tracking every step with a loop of per-task backward passes whose sum takes
  the step (the public ETAP and TAG implementations' method);
* tracking on negtransfer's default schedule (``--affinity-every`` default).

Prints the every-step overheads of both methods, the Pearson correlation between
the default-schedule matrix and the every-step matrix, and, as the last line,
``affinity_run_overhead: X`` = wall time with default tracking / without.
Each timing is the median of ``--repeats`` runs (the machine is shared).

Run: ``python benchmarks/affinity_overhead.py [--repeats 3] [--epochs N]`` (``--smoke``: one repeat of
2 epochs, only every 2 in the schedule sweep; a check that it runs).
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch

from negtransfer.affinity.tracker import AffinityTracker
from negtransfer.affinity.training import train_with_affinity
from negtransfer.data.builtin import load_builtin
from negtransfer.jobs.grouping import GroupingOptions
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig


def loop_tracked_run(dataset, config, seed):
    """Every-step tracking with one backward pass per task (the public codes' way)."""
    n = dataset.n_tasks
    tracker = AffinityTracker(n, optimizer_kind="sgd")

    def hook(losses, model, opt, batch):
        shared, params = model.shared_parameters(), list(model.parameters())
        position = {id(p): i for i, p in enumerate(params)}
        task_losses = losses[0]
        per_task = [[] for _ in shared]
        summed = [torch.zeros_like(p) for p in params]
        for t in range(n):
            grads = torch.autograd.grad(task_losses[t], params, retain_graph=True, allow_unused=True)
            for i, g in enumerate(grads):
                if g is not None:
                    summed[i] += g
            for i, p in enumerate(shared):
                g = grads[position[id(p)]]
                per_task[i].append(torch.zeros_like(p) if g is None else g)
        per_task = [torch.stack(g) for g in per_task]
        velocity = [opt.state[position[id(p)]] for p in shared]
        tracker.update(per_task, task_losses.detach(), config.lr, velocity=velocity, momentum=config.momentum)
        return summed

    result = train_group_models(dataset, [tuple(range(n))], config, seed, step_hook=hook)[0]
    return tracker, result


def tracked_run(dataset, config, every: int):
    """(tracker, result) of the all-task run of seed 0 tracked every ``every`` steps, as the grouping job does."""
    tracker, result, _without_momentum = train_with_affinity(dataset, config, 0, every=every)
    return tracker, result


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=None, help="Maximum epochs (default TrainConfig's).")
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.epochs = 1, args.epochs or 2
    dataset = load_builtin("yeast", seed=0)
    config = TrainConfig(**({"max_epochs": args.epochs} if args.epochs else {}))
    every_default = GroupingOptions().affinity_every
    n = dataset.n_tasks
    train_group_models(dataset, [tuple(range(n))], TrainConfig(max_epochs=1), seed=0)  # warm-up

    t_plain, plain = timed(lambda: train_group_models(dataset, [tuple(range(n))], config, 0)[0], args.repeats)
    t_batched, (tr_all, res_all) = timed(lambda: tracked_run(dataset, config, every=1), args.repeats)
    t_loop, (tr_loop, _) = timed(lambda: loop_tracked_run(dataset, config, 0), args.repeats)
    if every_default == 1:
        t_default, tr_default = t_batched, tr_all
    else:
        t_default, (tr_default, _) = timed(lambda: tracked_run(dataset, config, every=every_default), args.repeats)

    A_all, A_def, A_loop = tr_all.affinity_matrix, tr_default.affinity_matrix, tr_loop.affinity_matrix
    corr = float(np.corrcoef(A_def.ravel(), A_all.ravel())[0, 1])
    corr_loop = float(np.corrcoef(A_loop.ravel(), A_all.ravel())[0, 1])
    print(f"yeast all-task run: {res_all.epochs} epochs, {tr_all.n_steps_tracked} steps tracked (plain run: {plain.epochs} epochs)")
    print(f"plain run                         {t_plain:7.2f} s")
    print(f"every step, one batched backward  {t_batched:7.2f} s  overhead {t_batched / t_plain:5.2f}x")
    print(f"every step, per-task backward loop{t_loop:7.2f} s  overhead {t_loop / t_plain:5.2f}x  (matrix Pearson vs batched {corr_loop:.4f})")
    print(f"batched method vs loop: {t_loop / t_batched:.2f}x faster")
    print(f"default schedule (every {every_default}) {t_default:7.2f} s; Pearson with every-step matrix {corr:.4f}")
    for k in (2,) if args.smoke else (2, 4, 8, 16):
        t_k, (tr_k, _) = timed(partial(tracked_run, dataset, config, every=k), 1)
        c_k = float(np.corrcoef(tr_k.affinity_matrix.ravel(), A_all.ravel())[0, 1])
        print(f"  every {k}: overhead {t_k / t_plain:5.2f}x, Pearson with every-step matrix {c_k:.4f}")
    print(f"affinity_run_overhead: {t_default / t_plain:.2f}")


if __name__ == "__main__":
    main()
