"""The ``etap-chemical`` preset against the ETAP paper, and the evidence behind ``--balance``'s default.

Two parts (``--part``):

* ``preset``: on ETAP Chemical (``--data-dir``, default
  ``../shared/data/etap-chemical``), the summed test and validation losses of
  the 10 STL models and of the all-task model trained with
  ``TrainConfig.preset("etap-chemical", init=...)`` for each ``--inits``
  scheme (interleaved per seed), with their epochs. The paper's naive MTL
  (all-task) total is 4.83 ± 0.2 (Table 10); it gives no STL total.
* ``balance``: for each of ``--datasets`` (per-task-rows data) and seed, the
  10 STL models once, then the all-task model and ``--groups`` random groups
  (sizes 2..9) with per-task batches, oversampled (``oversample=True``,
  ``--balance``) and not, default training otherwise. Printed: the summed
  validation and test loss of the all-task model and of the groups, relative
  to their tasks' STL losses (negative = better than STL), and the change
  that oversampling makes to each (mean ± s.e. over seeds). The default is
  chosen on the validation columns.

Run: ``python benchmarks/etap_preset.py --part preset [--seeds 0 1 2] [--inits torch glorot] [--lr-decay-start 0]`` and
``python benchmarks/etap_preset.py --part balance [--datasets chemical tv16] [--seeds 0 1 2] [--jobs 6]``
(``--part both`` runs the two; ``--smoke``: 4 Chemical tasks, seed 0, 2 epochs, 3 groups; a check that it
runs).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import grouping_datasets
import numpy as np
import torch
from grouping_datasets import mean_se

from negtransfer.runs.group_specs import random_groups
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig

PAPER_ALL_TASK = 4.83


def _totals(results, split: str) -> float:
    return float(sum(sum(getattr(r, f"{split}_loss").values()) for r in results))


def preset_part(args, epochs: dict) -> None:
    """STL and all-task totals on Chemical under the preset, one row per init scheme."""
    rows: dict[str, list[dict]] = {init: [] for init in args.inits}
    for seed in args.seeds:
        ds = grouping_datasets.load("chemical", seed, args.data_dir, args.tasks)
        if ds is None:
            return
        n = ds.n_tasks
        for init in args.inits:  # interleaved: every scheme under the same load
            decay = {} if args.lr_decay_start is None else {"lr_decay_start": args.lr_decay_start}
            config = TrainConfig.preset("etap-chemical", init=init, **decay, **epochs)
            start = time.perf_counter()
            stl = train_group_models(ds, [(t,) for t in range(n)], config, seed)
            everything = train_group_models(ds, [tuple(range(n))], config, seed)
            rows[init].append({"stl": _totals(stl, "test"), "all": _totals(everything, "test"),
                               "stl_val": _totals(stl, "val"), "all_val": _totals(everything, "val"),
                               "stl_epochs": float(np.mean([r.epochs for r in stl])),
                               "stl_full": sum(r.epochs == config.max_epochs for r in stl),
                               "all_epochs": everything[0].epochs})
            print(f"seed {seed} init {init}: {rows[init][-1]} ({time.perf_counter() - start:.0f} s)", flush=True)
    decay = "" if args.lr_decay_start is None else f", lr_decay_start {args.lr_decay_start}"
    print(f"\nETAP Chemical, --preset etap-chemical{decay}, seeds {args.seeds}, mean ± s.e. over seeds\n")
    print("| init | STL test | all-task test | all-task vs paper 4.83 | STL val | all-task val | STL epochs (mean) "
          "| STL models at the epoch cap | all-task epochs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for init, r in rows.items():
        col = {k: [x[k] for x in r] for k in r[0]}
        print(f"| {init} | {mean_se(col['stl'], '{:.3f}')} | {mean_se(col['all'], '{:.3f}')} | "
              f"{mean_se([a / PAPER_ALL_TASK - 1 for a in col['all']], '{:+.1%}')} | "
              f"{mean_se(col['stl_val'], '{:.3f}')} | {mean_se(col['all_val'], '{:.3f}')} | "
              f"{mean_se(col['stl_epochs'], '{:.0f}')} | {mean_se(col['stl_full'], '{:.1f}')} of {args.tasks or 10} | "
              f"{mean_se(col['all_epochs'], '{:.0f}')} |")


def _balance_case(case: tuple) -> tuple[str, int, dict[bool, dict[str, float]]]:
    """One (dataset, seed): STL once, then the all-task model and the random groups without and with oversampling,
    each model's summed validation and test loss relative to its tasks' STL losses."""
    name, seed, data_dir, tasks, n_groups, epochs = case
    torch.set_num_threads(1)
    ds = grouping_datasets.load(name, seed, data_dir, tasks)
    if ds is None:
        return name, seed, {}
    n = ds.n_tasks
    stl = train_group_models(ds, [(t,) for t in range(n)], TrainConfig(batching="per-task", **epochs), seed)
    groups = [tuple(range(n))] + random_groups(n, n_groups, (2, n - 1), seed)
    rel: dict[bool, dict[str, float]] = {}
    for oversample in (False, True):  # STL is never oversampled, so one set of STL models serves both
        res = train_group_models(ds, groups, TrainConfig(batching="per-task", oversample=oversample, **epochs), seed)
        rel[oversample] = {}
        for split in ("val", "test"):
            base = np.array([getattr(stl[t], f"{split}_loss")[t] for t in range(n)])
            each = [sum(getattr(r, f"{split}_loss").values()) / base[list(r.group)].sum() - 1 for r in res]
            rel[oversample][f"all_{split}"], rel[oversample][f"groups_{split}"] = each[0], float(np.mean(each[1:]))
    return name, seed, rel


def balance_part(args, epochs: dict) -> None:
    """All-task model and random groups with and without oversampling, relative to STL."""
    cases = [(name, seed, args.data_dir, args.tasks, args.groups, epochs) for name in args.datasets for seed in args.seeds]
    with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
        outcomes = pool.map(_balance_case, cases, chunksize=1)
    print("| dataset | seed | oversample | all-task vs STL (val) | groups vs STL (val, mean) | all-task vs STL (test) "
          "| groups vs STL (test, mean) |")
    print("|---|---|---|---|---|---|---|")
    summary: dict[str, dict[str, list[float]]] = {}
    for name, seed, rel in outcomes:
        for oversample, r in rel.items():
            print(f"| {name} | {seed} | {oversample} | {r['all_val']:+.2%} | {r['groups_val']:+.2%} | "
                  f"{r['all_test']:+.2%} | {r['groups_test']:+.2%} |")
        for key in rel.get(True, {}):
            summary.setdefault(name, {}).setdefault(key, []).append(rel[True][key] - rel[False][key])
    print("\nChange from oversampling (on minus off, points of STL's total; negative = oversampling better), "
          "mean ± s.e. over seeds\n")
    print("| dataset | all-task (val) | groups (val) | all-task (test) | groups (test) |")
    print("|---|---|---|---|---|")
    for name, cols in summary.items():
        print(f"| {name} | " + " | ".join(mean_se(cols[k], "{:+.2%}") for k in
                                            ("all_val", "groups_val", "all_test", "groups_test")) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("preset", "balance", "both"), required=True)
    parser.add_argument("--data-dir", default=None, help="ETAP Chemical Task_Splits folder.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--inits", nargs="+", default=["torch", "glorot"], help="--part preset: init schemes.")
    parser.add_argument("--lr-decay-start", type=int, default=None,
                        help="--part preset: the preset's lr_decay_start instead of 100 (0: a constant rate).")
    parser.add_argument("--datasets", nargs="+", default=["chemical", "tv16"], help="--part balance: datasets.")
    parser.add_argument("--groups", type=int, default=10, help="--part balance: random groups per seed.")
    parser.add_argument("--jobs", type=int, default=1, help="--part balance: (dataset, seed) cases in parallel.")
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    args.tasks, epochs = None, {}
    if args.smoke:
        args.seeds, args.groups, args.tasks, args.datasets = [0], 3, grouping_datasets.SMOKE_TASKS, ["chemical"]
        epochs = {"max_epochs": grouping_datasets.SMOKE_EPOCHS}
    if args.part in ("preset", "both"):
        preset_part(args, epochs)
    if args.part in ("balance", "both"):
        balance_part(args, epochs)


if __name__ == "__main__":
    main()
