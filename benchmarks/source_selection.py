"""Source selection on the built-in per-task-rows datasets: the docs' results tables.

For each target task: ``negtransfer sources`` with alpha = 5 (or fewer when there
are fewer sources), ``--subsets`` fitted and ``--holdout`` holdout subsets,
default training, for each threshold grid and seed. Prints one Markdown row per
(target, seed, grid): the holdout F1 (minority class) and Spearman, and the
target's test loss and accuracy (classification) or MSE (regression) under STL,
all sources, the selection and the baselines, with the runs the selection needed.
All runs share one store, so a second invocation only re-fits.

Run:
``python benchmarks/source_selection.py --dataset tv16 --targets Oklahoma Nevada Texas``
``python benchmarks/source_selection.py --dataset adult --group-column occupation --targets Sales Tech-support``
``python benchmarks/source_selection.py --dataset exam --targets 1 17``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from negtransfer.data.builtin import load_builtin
from negtransfer.jobs.sources import SourceOptions, run_sources
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

METHODS = ("stl", "all_sources", "selected", "pairwise_top_m", "affinity_top_m", "exhaustive_pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="tv16", choices=["tv16", "adult", "exam"])
    parser.add_argument("--group-column", default=None, help="adult: the column whose groups are the tasks.")
    parser.add_argument("--targets", nargs="+", default=["Oklahoma", "Nevada", "Texas"])
    parser.add_argument("--store", type=Path, default=None, help="Default runs/<dataset>.sqlite.")
    parser.add_argument("--alpha", type=int, default=5)
    parser.add_argument("--subsets", type=int, default=200)
    parser.add_argument("--holdout", type=int, default=100)
    parser.add_argument("--common-init", action="store_true", help="Subset models share one initialisation.")
    parser.add_argument("--grids", nargs="+", default=["paper", "all"])
    parser.add_argument("--threshold-by", nargs="+", default=["validation"], choices=["validation", "surrogate"])
    parser.add_argument("--stl-repeats", type=int, default=1, help="STL runs averaged for the reference f(STL).")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="Split and training seeds.")
    parser.add_argument("--exhaustive-pairs", default="auto", choices=["auto", "on", "off"],
                        help="The best-of-all-pairs baseline (auto: when k(k-1)/2 <= 300; tv16 needs 1,225).")
    args = parser.parse_args()
    torch.set_num_threads(1)
    kwargs = {"group_column": args.group_column} if args.group_column else {}
    store = RunStore(args.store or Path(f"runs/{args.dataset}{'-' + args.group_column if args.group_column else ''}.sqlite"))
    print("| target (rows) | seed | grid, gamma by | holdout F1 | Spearman | selected | " +
          " | ".join(f"{m} loss / metric" for m in METHODS) + " | runs (selection) |")
    print("|" + "---|" * (6 + len(METHODS) + 1))
    for seed in args.seeds:
        dataset = load_builtin(args.dataset, seed=seed, **kwargs)
        for target in args.targets:
            rows = int((dataset.row_task == dataset.task_index([target])[0]).sum())
            for grid, threshold_by in [(g, b) for g in args.grids for b in args.threshold_by]:
                options = SourceOptions(target=target, alpha=min(args.alpha, dataset.n_tasks - 1),
                                        n_subsets=args.subsets, holdout=args.holdout, grid=grid,
                                        common_init=args.common_init, exhaustive_pairs=args.exhaustive_pairs,
                                        threshold_by=threshold_by, stl_repeats=args.stl_repeats)
                rep = run_sources(dataset, options, TrainConfig(), seed, store)
                h = rep.holdout
                second = rep.test_accuracy or rep.test_metric  # accuracy, or MSE for regression
                cells = [f"{rep.test_loss[m]:.4f} / {second[m]:.3f}" if m in rep.test_loss else "-"
                         for m in METHODS]
                print(f"| {target} ({rows}) | {seed} | {grid}, {threshold_by} | {h['f1']:.3f} | {h['spearman']:.3f} | "
                      f"{len(rep.selected)} | " + " | ".join(cells) + f" | {rep.runs['selected']} |", flush=True)


if __name__ == "__main__":
    main()
