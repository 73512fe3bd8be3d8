"""How good are the chosen groups? The grouping job's quality tables (docs/methods/grouping.md).

For each dataset (``grouping_datasets.py``: 10 tasks, 1023 groups) and seed,
every group is trained ``--repeats`` times once (``--exhaustive``, one run store
per dataset and seed); then the grouping job runs in each variant below at each
|G_train| and budget B, reading the store (a variant trains nothing new, so
the variants are compared on the same runs). Per case it records, on the TEST
split (the job itself chooses on validation data):

* the chosen groups' summed test loss relative to STL and to the all-task model;
* the gap to the test oracle (the best budget-B grouping chosen and scored on
  test losses, each task in its best chosen group) and to the validation oracle
  (the best grouping a validation-only chooser could reach with every group
  measured), and the gap to that validation oracle measured on validation
  losses (how close the search came to the best grouping it could see), and
  the validation oracle's own gap to the test oracle (what choosing on
  validation data costs even with every group measured);
* Pearson, within-task Pearson and the per-task-mean baseline's Pearson of the
  one-shot predictor on every group it was not fitted on;
* the runs the recommendation used, relative to the one-shot protocol's.

Variants (``--variants``; ``default`` is the CLI's defaults):

* ``default``: the CLI defaults (see ``negtransfer group --help``);
* ``one-shot``: the default with ``--rounds 1`` (the paper's protocol, repeats kept);
* ``one-shot-r1``: ``--rounds 1 --repeats 1`` (this project's behaviour before repeats);
* ``refine-r1``: the default with ``--repeats 1``;
* ``pairs`` / ``stratified`` / ``random``: the default with that ``--design``;
* ``mean-gain``: the default with ``--objective mean-gain``;
* ``kappa0`` / ``kappa2``: the default with ``--kappa 0`` (no optimism) or 2;
* ``rounds3`` / ``rounds10``: the default with ``--rounds 3`` or 10;
* ``train5`` / ``train20``: the default with 5 or 20 training groups (whatever ``--train-groups`` says);
* ``no-momentum`` / ``until-best`` / ``momentum-all``: affinity variants;
* ``paper``: the paper's protocol exactly: one round, one repeat, every
  candidate scored by prediction, predictor fitted on TEST gains;
* ``folds3`` / ``folds5``: cross-validated gains, ``--folds 3`` or 5 with one repeat (runs per group: 3 or 5,
  against the default's 3 repeats of one split); their runs are not in the exhaustive store (it holds one split),
  so they run without ``--exhaustive`` and their chosen groups (and each task's group) are scored on the
  exhaustive store's test losses (the K = 1 models, mean over ``--repeats``), as the default's are;
* ``A+B``: variants combined (``paper+no-momentum``: the paper's protocol
  with the affinity scored without the momentum term).

Prints one Markdown table of means ± s.e. over seeds per dataset, and writes
every case to ``OUT/quality.json``.

Run: ``python benchmarks/grouping_quality.py [--datasets yeast chicago chemical tv16] [--seeds 0 1 2]
[--train-groups 5 10] [--budgets 2 3 4] [--variants default one-shot ...] [--data-dir DIR] [--repeats 3]``.
``--smoke``: yeast's first 4 tasks, seed 0, B = 2, 3 training groups, the default and paper variants, 2 epochs,
stores named smoke-* in ``--out`` (a check that it runs).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import grouping_datasets
import numpy as np
from grouping_datasets import mean_se

from negtransfer.jobs.grouping import GroupingOptions, run_grouping
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

DEFAULT = GroupingOptions()
VARIANTS = {
    "default": {},
    "one-shot": {"rounds": 1},
    "one-shot-r1": {"rounds": 1, "repeats": 1},
    "refine-r1": {"repeats": 1},
    "random": {"design": "random"},
    "stratified": {"design": "stratified"},
    "pairs": {"design": "pairs"},
    "mean-gain": {"objective": "mean-gain"},
    "total-loss": {"objective": "total-loss"},
    "no-momentum": {"affinity_momentum": False},
    "momentum": {"affinity_momentum": True},
    "until-best": {"affinity_epochs": "until-best"},
    "all-epochs": {"affinity_epochs": "all"},
    "train20": {"n_train_groups": 20},
    "train5": {"n_train_groups": 5},
    "rounds3": {"rounds": 3},
    "rounds10": {"rounds": 10},
    "kappa0": {"kappa": 0.0},
    "kappa2": {"kappa": 2.0},
    "paper": {"rounds": 1, "repeats": 1, "use_measured": False, "gain_split": "test"},
    "folds3": {"folds": 3, "repeats": 1},
    "folds5": {"folds": 5, "repeats": 1},
}
PCT = "{:+.2%}"


def variant_options(name: str) -> dict:
    """The job options of a variant; ``A+B`` merges A's and B's (B's win)."""
    options = {}
    for part in name.split("+"):
        if part not in VARIANTS:
            raise SystemExit(f"unknown variant {part!r}; the variants are: {', '.join(VARIANTS)} (combine with +)")
        options.update(VARIANTS[part])
    return options
KEYS = ("vs_stl", "vs_all", "gap_test", "gap_val", "pearson", "within", "per_task_mean", "runs_ratio",
        "reliability")


def case(report: dict) -> dict:
    t = report["totals"]
    pred = report["prediction"]
    return {
        "vs_stl": t["selected"] / t["stl"] - 1, "vs_all": t["selected"] / t["all_tasks"] - 1,
        "gap_test": report["optimal"]["test_oracle"]["gap"], "gap_val": report["optimal"]["validation_oracle"]["gap"],
        "val_gap_on_val": report["optimal"]["validation_oracle"].get("val_gap"),
        "val_oracle_gap": report["optimal"]["validation_oracle"]["total"] / report["optimal"]["test_oracle"]["total"] - 1,
        "oracle_vs_stl": t["test_oracle"] / t["stl"] - 1,
        "pearson": pred["pearson"], "within": pred["within_task_pearson"],
        "per_task_mean": pred["per_task_mean_pearson"],
        "runs_ratio": report["refinement"]["runs_vs_one_shot"],
        "reliability": report["noise"]["reliability"],
        "never_worse": t["selected"] <= min(t["stl"], t["all_tasks"]),
        "selected": report["selected_groups"], "rounds": report["refinement"]["rounds_run"],
    }


def rescored(report: dict, every: dict, names, budget: int) -> dict:
    """:func:`case` of a job run without ``--exhaustive``: its choice (groups and each task's group) scored on
    the exhaustive store's results ``every`` (group -> repeated result), with that store's oracles."""
    from negtransfer.jobs.grouping import oracle_grouping

    n = len(names)
    index = {name: t for t, name in enumerate(names)}
    where = {index[task]: tuple(sorted(index[m] for m in group)) for task, group in report["task_group"].items()}
    selected = sum(every[where[t]].test_loss[t] for t in range(n))
    stl = sum(every[(t,)].test_loss[t] for t in range(n))
    everything = every[tuple(range(n))]
    all_tasks = sum(everything.test_loss[t] for t in range(n))
    test_oracle = sum(oracle_grouping(every, n, budget, by="test_loss")[1].values())
    val_oracle = sum(oracle_grouping(every, n, budget, by="val_loss")[1].values())
    pred = report["prediction"]
    return {
        "vs_stl": selected / stl - 1, "vs_all": selected / all_tasks - 1,
        "gap_test": selected / test_oracle - 1, "gap_val": selected / val_oracle - 1, "val_gap_on_val": float("nan"),
        "val_oracle_gap": val_oracle / test_oracle - 1, "oracle_vs_stl": test_oracle / stl - 1,
        "pearson": pred["pearson"], "within": pred["within_task_pearson"],
        "per_task_mean": pred["per_task_mean_pearson"], "runs_ratio": report["refinement"]["runs_vs_one_shot"],
        "reliability": report["noise"]["reliability"],
        "split_reliability": (report["noise"].get("split_noise") or {}).get("split_reliability"),
        "never_worse": selected <= min(stl, all_tasks), "selected": report["selected_groups"],
        "rounds": report["refinement"]["rounds_run"],
    }


def print_tables(rows: list[dict], datasets, variants, train_groups, budgets) -> None:
    """One Markdown table per dataset: means ± s.e. over seeds of every (variant, |G_train|, B)."""
    print()
    for name in datasets:
        sel = [r for r in rows if r["dataset"] == name]
        if not sel:
            continue
        seeds = sorted({r["seed"] for r in sel})
        print(f"### {name} (seeds {', '.join(map(str, seeds))}; mean ± s.e. over seeds)")
        print()
        print("| variant | \\|G_train\\| | B | chosen vs STL | chosen vs all-task | gap to test oracle | "
              "gap to val. oracle | same, on validation | val. oracle to test oracle | never worse | Pearson | within-task | per-task mean | runs / one-shot |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for variant in variants:
            for n_train in train_groups:
                for budget in budgets:
                    c = [r for r in sel if r["variant"] == variant and r["train_groups"] == n_train
                         and r["budget"] == budget]
                    if not c:
                        continue
                    print(f"| {variant} | {n_train} | {budget} | {mean_se([r['vs_stl'] for r in c], PCT)} | "
                          f"{mean_se([r['vs_all'] for r in c], PCT)} | {mean_se([r['gap_test'] for r in c], PCT)} | "
                          f"{mean_se([r['gap_val'] for r in c], PCT)} | {mean_se([r.get('val_gap_on_val') for r in c], PCT)} | "
                          f"{mean_se([r.get('val_oracle_gap') for r in c], PCT)} | {sum(r['never_worse'] for r in c)}/{len(c)} | "
                          f"{mean_se([r['pearson'] for r in c])} | {mean_se([r['within'] for r in c])} | "
                          f"{mean_se([r['per_task_mean'] for r in c])} | {np.mean([r['runs_ratio'] for r in c]):.2f} |")
        print()



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(grouping_datasets.NAMES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--train-groups", type=int, nargs="+", default=[10])
    parser.add_argument("--budgets", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--variants", nargs="+", default=["default", "one-shot", "one-shot-r1", "paper"])
    parser.add_argument("--repeats", type=int, default=max(3, DEFAULT.repeats),
                        help="Repeats trained for every group (variants use the first ones they need).")
    parser.add_argument("--data-dir", default=None, help="ETAP Chemical Task_Splits folder.")
    parser.add_argument("--n-tasks", type=int, default=None, help="Keep only the first N tasks of each dataset.")
    parser.add_argument("--out", type=Path, default=Path("runs/grouping_quality"))
    grouping_datasets.add_result_format_option(parser)
    parser.add_argument("--store-only", action="store_true", help="Train the stores; run no variant.")
    parser.add_argument("--summarize", type=Path, nargs="+", default=None,
                        help="Only print the tables of these quality.json files (no training).")
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    n_tasks, config, prefix = args.n_tasks, TrainConfig(), ""
    if args.smoke:
        args.datasets, args.seeds, args.budgets, args.train_groups = ["yeast"], [0], [2], [3]
        args.variants, prefix = ["default", "paper"], "smoke-"
        n_tasks, config = grouping_datasets.SMOKE_TASKS, TrainConfig(max_epochs=grouping_datasets.SMOKE_EPOCHS)
    for variant in args.variants:
        variant_options(variant)
    if args.summarize:
        rows = [r for path in args.summarize for r in json.loads(path.read_text())]
        datasets = list(dict.fromkeys(r["dataset"] for r in rows))
        variants = [v for v in args.variants if any(r["variant"] == v for r in rows)]
        print_tables(rows, datasets, variants, args.train_groups, args.budgets)
        return
    grouping_datasets.use_result_format(args.result_format)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.datasets:
        for seed in args.seeds:
            ds = grouping_datasets.load(name, seed, args.data_dir, n_tasks)
            if ds is None:
                break
            store = RunStore(args.out / f"{prefix}{name}-seed{seed}.sqlite")
            start = time.perf_counter()
            every = run_grouping(ds, replace(DEFAULT, exhaustive=True, repeats=args.repeats, rounds=1, chunk_size=256),
                                 config, seed, store).results
            print(f"{name} seed {seed}: every group trained ({args.repeats} repeats) in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
            for variant in [] if args.store_only else args.variants:
                for n_train in args.train_groups:
                    for budget in args.budgets:
                        opts = replace(replace(DEFAULT, exhaustive=True, n_train_groups=n_train, budget=budget),
                                       **variant_options(variant))
                        if opts.repeats > args.repeats:
                            continue
                        if opts.folds > 1:  # its runs are not in the exhaustive store: scored on it
                            opts = replace(opts, exhaustive=False)
                        rep = run_grouping(ds, opts, config, seed, store).report.to_dict()
                        found = case(rep) if opts.exhaustive else rescored(rep, every, ds.task_names, budget)
                        rows.append({"dataset": name, "seed": seed, "variant": variant, "train_groups": n_train,
                                     "budget": budget, **found})
                        r = rows[-1]
                        print(f"  {variant} |G|={n_train} B={budget}: vs STL {r['vs_stl']:+.2%}, vs all "
                              f"{r['vs_all']:+.2%}, gap test {r['gap_test']:+.2%}, gap val {r['gap_val']:+.2%} "
                              f"(on val. {r['val_gap_on_val']:+.2%}; val. oracle {r['val_oracle_gap']:+.2%}), "
                              f"Pearson {r['pearson'] if r['pearson'] is None else round(r['pearson'], 3)}, "
                              f"runs x{r['runs_ratio']:.2f}", flush=True)
            (args.out / f"{prefix}quality.json").write_text(json.dumps(rows, indent=1))
    print_tables(rows, args.datasets, args.variants, args.train_groups, args.budgets)

if __name__ == "__main__":
    main()
