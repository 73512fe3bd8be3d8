"""How reproducible are measured gains? The evidence behind the default number of repeats.

For each dataset (see ``grouping_datasets.py``): the STL runs, the all-task run
and 40 random groups of sizes 2..9, each trained with 6 repeats, once with
independent initialisations per group and once with common random numbers
(``shared_init``: every group of repeat r starts from the same weights). Then,
for R = 1, 2 and 3, the gains measured by repeats 0..R-1 are compared with
those measured by the *disjoint* repeats R..2R-1, an independent measurement
of the same gains:

* ``val~val``: within-task Pearson of the two measurements' validation gains
  (how reproducible the signal the job chooses on is);
* ``test~test``: the same for test gains;
* ``val~test``: within-task Pearson of one measurement's validation gains with
  the other's test gains (does what the job chooses on predict what the user
  gets?);
* ``s.e.``: median standard error of a validation gain over 2R... (the R
  repeats' spread / sqrt(R)), against ``sd``, the spread of gains between groups.

"Within-task": each task's mean gain is removed first, so the figures say how
well *which group is better for a task* reproduces, not the per-task offsets.
All runs go through one run store per dataset (``runs/gain_noise/``), so a
second invocation only re-reads.

Run: ``python benchmarks/gain_noise.py [--datasets yeast chicago chemical tv16] [--seed 0] [--data-dir DIR]``
(``--smoke``: yeast's first 4 tasks, 3 groups, 2 epochs, into ``--out``; a check that it runs).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import grouping_datasets
import numpy as np

from negtransfer.data.statistics import standard_error
from negtransfer.gains.noise import _within_task
from negtransfer.gains.table import repeat_gains
from negtransfer.runs.group_specs import random_groups
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

REPEATS = 6


def _corr(a: np.ndarray, b: np.ndarray, U: np.ndarray) -> float:
    x, y = _within_task(a, U)[U], _within_task(b, U)[U]
    return float(np.corrcoef(x, y)[0, 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(grouping_datasets.NAMES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--data-dir", default=None, help="ETAP Chemical Task_Splits folder.")
    parser.add_argument("--out", type=Path, default=Path("runs/gain_noise"))
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    n_tasks, epochs, prefix = None, {}, ""
    if args.smoke:
        args.datasets, args.groups, prefix = ["yeast"], 3, "smoke-"
        n_tasks, epochs = grouping_datasets.SMOKE_TASKS, {"max_epochs": grouping_datasets.SMOKE_EPOCHS}
    args.out.mkdir(parents=True, exist_ok=True)
    print("| dataset | init | R | val~val | test~test | val~test | s.e. (val) | sd between groups | train s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.datasets:
        ds = grouping_datasets.load(name, args.seed, args.data_dir, n_tasks)
        if ds is None:
            continue
        n = ds.n_tasks
        groups = [(t,) for t in range(n)] + [tuple(range(n))] + random_groups(n, args.groups, (2, n - 1), args.seed)
        store = RunStore(args.out / f"{prefix}{name}.sqlite")
        for init, shared in (("independent", False), ("common", True)):
            config = TrainConfig(shared_init=shared, **epochs)
            start = time.perf_counter()
            results = ensure_runs(ds, groups, config, args.seed, store, repeats=REPEATS, chunk_size=128)
            seconds = sum(results[g].seconds for g in groups)
            multi = [g for g in groups if len(g) > 1]
            U, Gv = repeat_gains(multi, results, n, split="validation")
            _, Gt = repeat_gains(multi, results, n, split="test")
            for R in (1, 2, 3):
                a, b = slice(0, R), slice(R, 2 * R)
                va, vb = Gv[:, :, a].mean(2), Gv[:, :, b].mean(2)
                ta, tb = Gt[:, :, a].mean(2), Gt[:, :, b].mean(2)
                se = np.median(standard_error(Gv[:, :, a], axis=2)[U]) if R > 1 else float("nan")
                sd = float(np.std(_within_task(va, U)[U]))
                cross = 0.5 * (_corr(va, tb, U) + _corr(vb, ta, U))
                print(f"| {name} | {init} | {R} | {_corr(va, vb, U):.2f} | {_corr(ta, tb, U):.2f} | {cross:.2f} | "
                      f"{se:.2%} | {sd:.2%} | {seconds * R / REPEATS:.0f} |", flush=True)
            print(f"<!-- {name} {init}: {time.perf_counter() - start:.0f} s wall (including stored runs) -->",
                  flush=True)


if __name__ == "__main__":
    main()
