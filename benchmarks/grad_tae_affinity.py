"""GRAD-TAE's pairwise affinity against the measured pairwise gains (ETAP Table 2), and its cost.

For one dataset of ``grouping_datasets.py`` and one seed: every pair and every
task alone is trained 3 times (or read from the run store), GRAD-TAE's affinity
of the 3 all-task base models is computed (``--fresh``: not read from the
store, so that its seconds are measured), and the Pearson correlation of
affinity z(i -> j) with the gain of j in {i, j} (test and validation) is
printed as one JSON line with the costs.

Run: ``python benchmarks/grad_tae_affinity.py DATASET SEED [--fresh] [--store-dir DIR]``
(the store is DIR/DATASET-seedSEED.sqlite, default runs/grad_tae).
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

import grouping_datasets
from negtransfer.runs.tracked import measure_grad_tae_affinity
from negtransfer.gains.table import gain_matrix
from negtransfer.jobs.grouping_comparison import ordered_pair_values
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig


def main() -> None:
    name, seed = sys.argv[1], int(sys.argv[2])
    ds = grouping_datasets.load(name, seed)
    folder = Path(sys.argv[sys.argv.index("--store-dir") + 1]) if "--store-dir" in sys.argv else Path("runs/grad_tae")
    folder.mkdir(parents=True, exist_ok=True)
    store = RunStore(folder / f"{name}-seed{seed}.sqlite")
    config = TrainConfig()
    n = ds.n_tasks
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    before = store.count()
    t = time.perf_counter()
    results = ensure_runs(ds, [(k,) for k in range(n)] + pairs, config, seed, store, repeats=3)
    print("pairs from store:", store.count() == before, round(time.perf_counter() - t, 1), "s", flush=True)
    _, Y = gain_matrix(pairs, results, n, split="test")
    _, Yv = gain_matrix(pairs, results, n, split="validation")
    t = time.perf_counter()
    A, cost = measure_grad_tae_affinity(ds, config, seed, store=None if "--fresh" in sys.argv else store, repeats=3)
    wall = time.perf_counter() - t
    z, y, _ = ordered_pair_values(A, Y, pairs)
    _, yv, _ = ordered_pair_values(A, Yv, pairs)
    print(json.dumps({"dataset": name, "seed": seed, "pearson_test": float(np.corrcoef(z, y)[0, 1]),
                      "pearson_val": float(np.corrcoef(z, yv)[0, 1]), "wall": wall, **cost}))


if __name__ == "__main__":
    main()
