"""How good are ETAP's chosen groups? The README's quality table.

For each seed: the first ``--tasks`` yeast tasks, every group trained
(``--exhaustive``, through one run store per seed), then the grouping job at
each training-set size |G_train| and budget. Reports, per (|G_train|, B) and
averaged over seeds: the chosen groups' total test loss relative to STL, to the
all-task model and to the exhaustive optimum (same budget, same scoring rule),
and the Pearson correlation and R^2 of predicted vs measured gains over every
non-training group.

Run: ``python benchmarks/grouping_quality.py [--seeds 0 1 2] [--tasks 10] [--out runs/quality]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from negtransfer.data.builtin import load_builtin
from negtransfer.jobs.grouping import GroupingOptions, run_grouping
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--train-groups", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--budgets", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--gain-split", default="validation")
    parser.add_argument("--predicted-only", action="store_true",
                        help="Score training groups by predictions too (the paper's selection).")
    parser.add_argument("--out", type=Path, default=Path("runs/quality"))
    args = parser.parse_args()
    config = TrainConfig()
    rows = []
    for seed in args.seeds:
        full = load_builtin("yeast", seed=seed)
        dataset = full.subset_tasks(list(full.task_names[: args.tasks]))
        store = RunStore(args.out / f"seed{seed}.sqlite")
        for n_train in args.train_groups:
            for budget in args.budgets:
                options = GroupingOptions(budget=budget, n_train_groups=n_train, exhaustive=True,
                                          gain_split=args.gain_split, use_measured=not args.predicted_only)
                rep = run_grouping(dataset, options, config, seed, store).report
                t = rep["totals"]
                rows.append({
                    "seed": seed, "train_groups": n_train, "budget": budget,
                    "vs_stl": t["selected"] / t["stl"] - 1, "vs_all": t["selected"] / t["all_tasks"] - 1,
                    "gap": rep["optimal"]["gap"], "optimal_vs_stl": t["optimal"] / t["stl"] - 1,
                    "pearson": rep["prediction"]["pearson"], "r2": rep["prediction"]["r2"],
                    "n_groups": rep["prediction"]["n_groups"], "selected": rep["selected_groups"],
                    "optimal": rep["optimal"]["groups"],
                })
                r = rows[-1]
                print(f"seed {seed} |G_train|={n_train} B={budget}: vs STL {r['vs_stl']:+.2%}, vs all-task {r['vs_all']:+.2%}, "
                      f"gap to optimum {r['gap']:+.2%} (optimum vs STL {r['optimal_vs_stl']:+.2%}), "
                      f"Pearson {r['pearson']:.3f}, R2 {r['r2']:.3f} on {r['n_groups']} groups", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "quality.json").write_text(json.dumps(rows, indent=2))
    print()
    print(f"Mean over seeds {args.seeds} (yeast, first {args.tasks} tasks, gains fitted on the {args.gain_split} split):")
    print("| |G_train| | B | chosen vs STL | chosen vs all-task | gap to optimum | optimum vs STL | Pearson | R^2 |")
    print("|---|---|---|---|---|---|---|---|")
    for n_train in args.train_groups:
        for budget in args.budgets:
            sel = [r for r in rows if r["train_groups"] == n_train and r["budget"] == budget]
            m = {k: float(np.mean([r[k] for r in sel])) for k in ("vs_stl", "vs_all", "gap", "optimal_vs_stl", "pearson", "r2")}
            print(f"| {n_train} | {budget} | {m['vs_stl']:+.2%} | {m['vs_all']:+.2%} | {m['gap']:+.2%} | "
                  f"{m['optimal_vs_stl']:+.2%} | {m['pearson']:.3f} | {m['r2']:.3f} |")


if __name__ == "__main__":
    main()
