"""Batched vs sequential training of 64 random yeast groups, end to end.

Both ways use the same engine and give the same numbers bit for bit: "sequential"
trains the 64 group models one after another (a stack of one), "batched" trains
them in one vectorised stack. End to end means data batches, per-epoch
validation, early stopping and the final evaluation are all included.

For each batch size it also measures the *bare-step limit*: the speed-up of one
training step (forward, backward, update; no data handling, evaluation or early
stopping) of a 64-model stack over 64 single-model steps. That is the ceiling the
end-to-end figure can reach; at large batches the arithmetic itself dominates
and the ceiling drops.

Repeats: the same 64 groups trained with 3 repeats each (192 runs, stacked like
groups, common random numbers) against 1 repeat, end to end at batch size 32;
the two are timed alternately, 5 times each, and the ratio of the medians is
printed as ``repeat_cost_ratio: X`` (the issue's goal: X <= 2.0).

Run: ``python benchmarks/batched_training.py [--groups 64] [--quick]`` (``--smoke``: ``--quick`` with 4
groups, one timing round; a check that it runs).
Batch sizes: the default (32), 256 (arithmetic-bound) and 32. The last two
lines are ``repeat_cost_ratio: X`` and ``batched_vs_sequential_speedup: X``
(batch size 32).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from negtransfer.data.builtin import load_builtin
from negtransfer.nn.hard_sharing import StackedHardSharingMLP
from negtransfer.runs.group_specs import random_groups
from negtransfer.train.batched import model_seed, train_group_models
from negtransfer.train.config import TrainConfig
from negtransfer.train.losses import TaskLossLayout


def bare_step_seconds(dataset, groups, config, repeats: int) -> float:
    """Median wall time of one training step of a stack holding ``groups``."""
    torch.set_num_threads(1)
    layout = TaskLossLayout(dataset.tasks)
    seeds = [model_seed(0, g, dataset.n_tasks) for g in groups]
    model = StackedHardSharingMLP(dataset.n_features, config.hidden, layout.n_outputs, seeds)
    params = list(model.parameters())
    mask = torch.zeros(len(groups), dataset.n_tasks)
    for k, g in enumerate(groups):
        mask[k, list(g)] = 1.0
    x = torch.from_numpy(dataset.X[: config.batch_size])
    y = torch.from_numpy(dataset.Y[: config.batch_size])
    bufs = [torch.zeros_like(p) for p in params]
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        losses, _ = layout.task_losses(model(x), y)
        grads = torch.autograd.grad((losses * mask).sum(), params)
        with torch.no_grad():
            for p, b, g in zip(params, bufs, grads, strict=True):
                b.mul_(config.momentum).add_(g)
                p.sub_(b * config.lr)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure(dataset, groups, config) -> dict:
    train_group_models(dataset, groups[:2], TrainConfig(**{**config.to_dict(), "max_epochs": 1}), seed=0)  # warm-up
    t0 = time.perf_counter()
    batched = train_group_models(dataset, groups, config, seed=0)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    sequential = [train_group_models(dataset, [g], config, seed=0)[0] for g in groups]
    t_seq = time.perf_counter() - t0
    identical = all(a.test_loss == b.test_loss for a, b in zip(batched, sequential, strict=True))
    step_stack = bare_step_seconds(dataset, groups, config, repeats=50)
    step_single = np.mean([bare_step_seconds(dataset, [g], config, repeats=50) for g in groups[:8]])
    return {
        "batch_size": config.batch_size,
        "sequential_s": t_seq,
        "batched_s": t_batched,
        "speedup": t_seq / t_batched,
        "bare_step_limit": len(groups) * step_single / step_stack,
        "epochs_mean": float(np.mean([r.epochs for r in batched])),
        "identical": identical,
    }


def repeat_cost_ratio(dataset, groups, config, rounds: int = 5) -> tuple[float, float, float]:
    """Median seconds of the groups with 3 repeats and with 1 (alternating), and their ratio."""
    three = [g for g in groups for _ in range(3)]
    reps = [r for _ in groups for r in range(3)]
    t1, t3 = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        train_group_models(dataset, groups, config, seed=0)
        t1.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        train_group_models(dataset, three, config, seed=0, repeats=reps)
        t3.append(time.perf_counter() - t0)
    return float(np.median(t1)), float(np.median(t3)), float(np.median(t3) / np.median(t1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="Fewer epochs, for a smoke run.")
    parser.add_argument("--repeats-only", action="store_true", help="Only the repeat_cost_ratio measurement.")
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.groups, args.quick = 4, True
    dataset = load_builtin("yeast", seed=0)
    groups = random_groups(dataset.n_tasks, args.groups, (2, dataset.n_tasks - 1), seed=0)
    default = TrainConfig()
    extra = {"max_epochs": 5} if args.quick else {}
    # the default batch size, a large batch (where arithmetic dominates), then 32 last
    sizes = sorted({default.batch_size, 256} - {32})
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads available; "
          f"torch {torch.__version__}; {len(groups)} random yeast groups (sizes 2..13)")
    print(f"{'batch':>6} {'sequential s':>13} {'batched s':>10} {'speedup':>8} {'bare-step limit':>16} {'of limit':>9} {'epochs':>7} {'identical':>9}")
    rows = {}
    for bs in [] if args.repeats_only else sizes + [32]:
        cfg = TrainConfig(**{**default.to_dict(), "batch_size": bs, **extra})
        r = measure(dataset, groups, cfg)
        rows[bs] = r
        print(f"{bs:>6} {r['sequential_s']:>13.1f} {r['batched_s']:>10.1f} {r['speedup']:>8.1f} {r['bare_step_limit']:>16.1f} "
              f"{r['speedup'] / r['bare_step_limit']:>9.0%} {r['epochs_mean']:>7.1f} {str(r['identical']):>9}")
    one, three, ratio = repeat_cost_ratio(dataset, groups, TrainConfig(**{**default.to_dict(), **extra}),
                                          rounds=1 if args.smoke else 2 if args.quick else 5)
    print(f"{len(groups)} groups x 1 repeat: {one:.1f} s; x 3 repeats ({3 * len(groups)} runs in one stack): {three:.1f} s")
    print(f"repeat_cost_ratio: {ratio:.2f}")
    if rows:
        print(f"batched_vs_sequential_speedup: {rows[32]['speedup']:.2f}")


if __name__ == "__main__":
    main()
