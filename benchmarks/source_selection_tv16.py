"""Source selection on tv16 (51 states as tasks): the docs' results table.

For each target state: ``negtransfer sources`` with alpha = 5, 200 fitted and 100
holdout subsets (seed 0, default training), both threshold grids. Prints, per
target, the holdout F1 (minority class) and Spearman, and the target's test
cross-entropy and accuracy under STL, all sources, the selection and the
baselines, with the runs the selection needed.
All runs share one store, so a second invocation only re-fits.

Run: ``python benchmarks/source_selection_tv16.py [--targets Oklahoma Texas Nevada] [--store runs/tv16.sqlite]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from negtransfer.data.builtin import load_builtin
from negtransfer.jobs.sources import SourceOptions, run_sources
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

METHODS = ("stl", "all_sources", "selected", "pairwise_top_m", "affinity_top_m")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["Oklahoma", "Nevada", "Texas"])
    parser.add_argument("--store", type=Path, default=Path("runs/tv16.sqlite"))
    parser.add_argument("--subsets", type=int, default=200)
    parser.add_argument("--holdout", type=int, default=100)
    parser.add_argument("--common-init", action="store_true", help="Subset models share one initialisation.")
    parser.add_argument("--grids", nargs="+", default=["paper", "all"])
    args = parser.parse_args()
    dataset = load_builtin("tv16", seed=0)
    store = RunStore(args.store)
    print("| target (rows) | grid | holdout F1 | Spearman | selected | " +
          " | ".join(f"{m} loss / acc" for m in METHODS) + " | runs (selection) |")
    print("|" + "---|" * (5 + len(METHODS) + 1))
    for target in args.targets:
        rows = int((dataset.row_task == dataset.task_index([target])[0]).sum())
        for grid in args.grids:
            options = SourceOptions(target=target, alpha=5, n_subsets=args.subsets, holdout=args.holdout, grid=grid,
                                    common_init=args.common_init)
            rep = run_sources(dataset, options, TrainConfig(), 0, store)
            h = rep["holdout"]
            cells = [f"{rep['test_loss'][m]:.4f} / {rep['test_accuracy'][m]:.3f}" for m in METHODS]
            print(f"| {target} ({rows}) | {grid} | {h['f1']:.3f} | {h['spearman']:.3f} | {len(rep['selected'])} | "
                  + " | ".join(cells) + f" | {rep['runs']['selected']} |", flush=True)


if __name__ == "__main__":
    main()
