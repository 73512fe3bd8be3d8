"""GRAD-TAE's pairwise affinity against the measured pairwise gains (ETAP Table 2), and its cost.

For one dataset of ``grouping_datasets.py`` and one seed: every pair and every
task alone is trained 3 times (or read from the run store), GRAD-TAE's affinity
of the 3 all-task base models is computed (``--fresh``: not read from the
store, so that its seconds are measured), and the Pearson correlation of
affinity z(i -> j) with the gain of j in {i, j} (test and validation) is
printed as one JSON line with the costs.

Run: ``python benchmarks/grad_tae_affinity.py DATASET SEED [--fresh] [--store-dir DIR]``
(the store is DIR/DATASET-seedSEED.sqlite, default runs/grad_tae; ``--smoke``: yeast's first 4 tasks, seed 0,
2 epochs, into DIR/smoke-yeast-seed0.sqlite; a check that it runs).
"""
import argparse
import json
import time
from pathlib import Path

import grouping_datasets
import numpy as np

from negtransfer.gains.table import gain_matrix
from negtransfer.jobs.grouping_comparison import ordered_pair_values
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.runs.tracked import measure_grad_tae_affinity
from negtransfer.train.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", nargs="?", help=f"one of {', '.join(grouping_datasets.NAMES)} (required unless --smoke)")
    parser.add_argument("seed", nargs="?", type=int, default=0)
    parser.add_argument("--fresh", action="store_true", help="Compute the affinity anew (not read from the store).")
    parser.add_argument("--store-dir", type=Path, default=Path("runs/grad_tae"))
    parser.add_argument("--data-dir", default=None, help="ETAP Chemical Task_Splits folder.")
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    name, seed, n_tasks, config, prefix = args.dataset, args.seed, None, TrainConfig(), ""
    if args.smoke:
        name, n_tasks, prefix = name or "yeast", grouping_datasets.SMOKE_TASKS, "smoke-"
        config = TrainConfig(max_epochs=grouping_datasets.SMOKE_EPOCHS)
    if name is None:
        parser.error("give DATASET (and SEED), or --smoke")
    ds = grouping_datasets.load(name, seed, args.data_dir, n_tasks)
    if ds is None:
        return
    folder = args.store_dir
    folder.mkdir(parents=True, exist_ok=True)
    store = RunStore(folder / f"{prefix}{name}-seed{seed}.sqlite")
    n = ds.n_tasks
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    before = store.count()
    t = time.perf_counter()
    results = ensure_runs(ds, [(k,) for k in range(n)] + pairs, config, seed, store, repeats=3)
    print("pairs from store:", store.count() == before, round(time.perf_counter() - t, 1), "s", flush=True)
    _, Y = gain_matrix(pairs, results, n, split="test")
    _, Yv = gain_matrix(pairs, results, n, split="validation")
    t = time.perf_counter()
    A, cost = measure_grad_tae_affinity(ds, config, seed, store=None if args.fresh else store, repeats=3)
    wall = time.perf_counter() - t
    z, y, _ = ordered_pair_values(A, Y, pairs)
    _, yv, _ = ordered_pair_values(A, Yv, pairs)
    print(json.dumps({"dataset": name, "seed": seed, "pearson_test": float(np.corrcoef(z, y)[0, 1]),
                      "pearson_val": float(np.corrcoef(z, yv)[0, 1]), "wall": wall, **cost}))


if __name__ == "__main__":
    main()
