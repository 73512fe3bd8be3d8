"""Per-task or pooled mini-batches for per-task-rows data? The evidence behind ``batching="auto"``.

For four per-task-rows datasets (10 tasks each: ETAP Chemical, the 8th-17th
largest tv16 states, the 4th-13th largest adult occupations, the 10 largest
exam schools) and two seeds: the 10 STL models, the all-task model and 30 random
groups (sizes 2..9), trained with

* ``pooled``: each step takes ``--batch-size`` rows of the group's pooled, shuffled rows;
* ``per-task``: each step takes ``--batch-size`` rows of every task of the group
  (the ETAP public code's scheme);
* ``per-task+oversample``: the same, with a group's smaller tasks topped up to
  its largest task's row count (drawn with replacement, equally per class).

Printed per (dataset, scheme, seed): the summed test loss of STL and of the
all-task model, the mean gain over the groups' (group, task) entries, the mean
and best relative change of a group's summed test loss against its tasks' STL
losses. STL models are the same under every scheme (one task).

Run: ``python benchmarks/batching.py [--data-dir DIR] [--seeds 0 1] [--datasets chemical tv16 ...]``
(``--smoke``: exam's first 4 tasks, seed 0, 3 groups, 2 epochs; a check that it runs).
"""

from __future__ import annotations

import argparse
import time

import grouping_datasets
import numpy as np

from negtransfer.data.builtin import load_builtin
from negtransfer.runs.group_specs import random_groups
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig


def _largest(ds, count, skip=0):
    sizes = ds.summary()["labels_per_task"]
    return ds.subset_tasks(sorted(sizes, key=lambda t: -sizes[t])[skip: skip + count])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="ETAP Chemical Task_Splits folder.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--datasets", nargs="+", default=["chemical", "tv16", "adult-occupation", "exam"])
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    n_groups, epochs = 30, {}
    if args.smoke:
        args.datasets, args.seeds, n_groups = ["exam"], [0], 3
        epochs = {"max_epochs": grouping_datasets.SMOKE_EPOCHS}
    loaders = {
        "chemical": lambda seed: grouping_datasets.load("chemical", seed, args.data_dir),
        "tv16": lambda seed: grouping_datasets.load("tv16", seed),
        "adult-occupation": lambda seed: _largest(load_builtin("adult", group_column="occupation", seed=seed), 10, 3),
        "exam": lambda seed: _largest(load_builtin("exam", seed=seed), 10),
    }
    unknown = set(args.datasets) - set(loaders)
    if unknown:
        parser.error(f"unknown --datasets {sorted(unknown)}; use some of {', '.join(loaders)}")
    # measured with an initialisation per model (shared_init=False), as docs/training.md states
    schemes = {"pooled": TrainConfig(batching="pooled", shared_init=False, **epochs),
               "per-task": TrainConfig(batching="per-task", shared_init=False, **epochs),
               "per-task+oversample": TrainConfig(batching="per-task", oversample=True, shared_init=False, **epochs)}
    print("| dataset | scheme | seed | STL | all-task | all-task vs STL | mean gain | groups vs STL (mean) | best group | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets:
        for seed in args.seeds:
            ds = loaders[name](seed)
            if ds is None:
                break
            if args.smoke:
                ds = ds.subset_tasks(list(ds.task_names[: grouping_datasets.SMOKE_TASKS]))
            n = ds.n_tasks
            groups = [(t,) for t in range(n)] + [tuple(range(n))] + random_groups(n, n_groups, (2, n - 1), seed)
            for scheme, config in schemes.items():
                start = time.perf_counter()
                res = train_group_models(ds, groups, config, seed)
                stl = np.array([res[t].test_loss[t] for t in range(n)])
                all_task = sum(res[n].test_loss.values())
                gains = [(stl[t] - r.test_loss[t]) / stl[t] for r in res[n + 1:] for t in r.group]
                rel = [sum(r.test_loss.values()) / stl[list(r.group)].sum() - 1 for r in res[n + 1:]]
                print(f"| {name} | {scheme} | {seed} | {stl.sum():.4f} | {all_task:.4f} | {all_task / stl.sum() - 1:+.1%} | "
                      f"{np.mean(gains):+.2%} | {np.mean(rel):+.2%} | {min(rel):+.2%} | {time.perf_counter() - start:.0f} |",
                      flush=True)


if __name__ == "__main__":
    main()
