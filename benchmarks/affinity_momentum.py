"""Does ETAP's pairwise affinity track pairwise gains, with and without the momentum term of eq. 4?

For each dataset and seed (``grouping_datasets.py``; the run stores of
``grouping_quality.py``, every pair trained ``--repeats`` times, are reused),
the affinity averaged over the repeats' tracked all-task runs is read twice,
with and without the momentum term, and correlated with the pairs' measured
test gains (the ETAP paper's Table 2: 0.40 ± 0.03 on Chemical):

* ``in``: z(i -> j) against the gain of j in {i, j}, over the n(n-1) ordered pairs;
* ``within``: the same after removing each target's mean (how well a target's
  sources are ranked);
* ``sym``: z(i -> j) + z(j -> i) against the pair's summed gain.

Run: ``python benchmarks/affinity_momentum.py [--datasets chemical tv16 yeast] [--seeds 0 1 2]
[--stores runs/gq_ct runs/gq_tv16 runs/grouping_quality] [--result-format 3] [--kind etap|tag]``.
``--smoke``: yeast's first 4 tasks, seed 0, 1 repeat of 2 epochs, trained into a fresh store in the first of
``--stores`` (a check that the script runs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import grouping_datasets
import numpy as np
from grouping_datasets import mean_se

from negtransfer.gains.table import gain_matrix
from negtransfer.jobs.grouping import GroupingOptions
from negtransfer.jobs.grouping_comparison import ordered_pair_values
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.runs.tracked import measure_affinity
from negtransfer.train.config import TrainConfig


def correlations(A: np.ndarray, Y: np.ndarray, pairs) -> dict:
    """``in``, ``within`` and ``sym`` correlations of affinity ``A`` with the pair gains ``Y`` (rows: ``pairs``)."""
    z, y, target = ordered_pair_values(A, Y, pairs)

    def demeaned(v):
        return v - np.array([v[target == t].mean() for t in target])

    half = len(pairs)  # (i -> j) entries first, then (j -> i): a pair's two entries are k and k + half
    return {"in": float(np.corrcoef(z, y)[0, 1]), "within": float(np.corrcoef(demeaned(z), demeaned(y))[0, 1]),
            "sym": float(np.corrcoef(z[:half] + z[half:], y[:half] + y[half:])[0, 1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["chemical", "tv16", "yeast"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--stores", type=Path, nargs="+",
                        default=[Path("runs/gq_ct"), Path("runs/gq_tv16"), Path("runs/grouping_quality")],
                        help="Folders searched for <dataset>-seed<s>.sqlite run stores; a missing store is skipped.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kind", choices=["etap", "tag"], default="etap",
                        help="ETAP's first-order score or TAG's lookahead (tracked runs of that kind must be in "
                             "the store or are trained).")
    parser.add_argument("--data-dir", default=None, help="ETAP Chemical Task_Splits folder.")
    grouping_datasets.add_result_format_option(parser)
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    grouping_datasets.use_result_format(args.result_format)
    config, every = TrainConfig(), GroupingOptions().affinity_every
    n_tasks = None
    if args.smoke:
        args.datasets, args.seeds, args.repeats = ["yeast"], [0], 1
        config, n_tasks = TrainConfig(max_epochs=grouping_datasets.SMOKE_EPOCHS), grouping_datasets.SMOKE_TASKS
        args.stores[0].mkdir(parents=True, exist_ok=True)
    table: dict = {}
    for name in args.datasets:
        for seed in args.seeds:
            found = [d / f"{name}-seed{seed}.sqlite" for d in args.stores if (d / f"{name}-seed{seed}.sqlite").exists()]
            if args.smoke:
                found = [args.stores[0] / f"smoke-{name}-seed{seed}.sqlite"]
            ds = grouping_datasets.load(name, seed, args.data_dir, n_tasks) if found else None
            if ds is None:
                print(f"{name} seed {seed}: no run store (or no data); skipped")
                continue
            store = RunStore(found[0])
            n = ds.n_tasks
            pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
            results = ensure_runs(ds, [(t,) for t in range(n)] + pairs, config, seed, store, repeats=args.repeats)
            _, Y = gain_matrix(pairs, results, n, split="test")
            for momentum in (True, False):
                A = measure_affinity(ds, config, seed, every=every, store=store, repeats=args.repeats, momentum=momentum,
                                     kind=args.kind)
                c = correlations(A, Y, pairs)
                table.setdefault((name, momentum), []).append(c)
                print(f"{name} seed {seed} {'with' if momentum else 'without'} momentum: "
                      + ", ".join(f"{k} {v:+.2f}" for k, v in c.items()), flush=True)
    print("\n| dataset | momentum term | seeds | z(i->j) vs gain of j | within target | symmetric vs pair total |")
    print("|---|---|---|---|---|---|")
    for (name, momentum), cs in table.items():
        print(f"| {name} | {'with' if momentum else 'without'} | {len(cs)} | "
              + " | ".join(mean_se([c[k] for c in cs], "{:+.2f}") for k in ("in", "within", "sym")) + " |")


if __name__ == "__main__":
    main()
