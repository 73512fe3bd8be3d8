"""The ETAP paper's Chemical results (Tables 2-5), side by side with negtransfer's.

Data: the paper's 10 MHC-I tasks in the public code's Task_Splits format, read
from ``--data-dir`` (default ``../shared/data/etap-chemical``; the script exits
with a message when it is absent; the data's license is unstated, so it is
never copied into the project). For each seed every one of the 1023 groups is
trained ``--repeats`` times (one run store per seed, shared with
``grouping_quality.py``), then:

* **Table 2**: Pearson correlation, over the 90 (pair, target) entries, of the
  pairwise affinity ``z_{i->j}`` with the measured test gain of j in {i, j}
  (paper: ETAP 0.40, TAG 0.33, GRAD-TAE 0.28);
* **Table 3**: Pearson of predicted vs measured gains on every held-out group,
  for |G_train| = 5 and 10, under the paper's protocol (one repeat, predictor
  fitted on test gains) and under negtransfer's (validation gains, the CLI's
  repeats) (paper: 0.40 / 0.50);
* **Table 4**: summed test loss of the chosen groups at B = 2, 3, 4 (|G_train|
  = 10): the paper's one-shot protocol and the CLI defaults, against STL,
  the all-task model and the test oracle over all 1023 groups (paper: ETAP
  4.67 / 4.74 / 4.83, optimum 4.56 / 4.52 / 4.67);
* **Table 5**: Pearson of the predicted vs measured *total* gain of a group
  (sum over its tasks) on held-out groups, |G_train| = 5, 10, 20 (paper 0.74 /
  0.75 / 0.77);
* **training setups**: STL and all-task totals with negtransfer's default
  training and with the public code's (``--preset etap-chemical``).

All figures are means ± s.e. over ``--seeds``.

Run: ``python benchmarks/etap_chemical.py [--data-dir DIR] [--seeds 0 1 2] [--repeats 3]`` (``--smoke``: the
first 4 tasks, seed 0, 1 repeat of 2 epochs, into ``--out``; a check that it runs).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import grouping_datasets
import numpy as np
from grouping_datasets import mean_se

from negtransfer.gains.table import gain_matrix
from negtransfer.jobs.grouping import GroupingOptions, run_grouping
from negtransfer.jobs.grouping_comparison import total_gain_pearson
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

PAPER = {
    "table2": 0.40, "table3": {5: 0.40, 10: 0.50}, "table4": {2: 4.67, 3: 4.74, 4: 4.83},
    "optimum": {2: 4.56, 3: 4.52, 4: 4.67}, "table5": {5: 0.74, 10: 0.75, 20: 0.77},
}



def _ms(values, fmt: str = "{:.3f}") -> str:
    """Unsigned ``mean ± s.e.`` (:func:`grouping_datasets.mean_se`)."""
    return mean_se(values, fmt)

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="ETAP Chemical Task_Splits folder.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/grouping_quality"))
    parser.add_argument("--skip-preset", action="store_true", help="Leave out the public-code training setup.")
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    if grouping_datasets.chemical_dir(args.data_dir) is None:
        sys.exit(0)
    args.out.mkdir(parents=True, exist_ok=True)
    config = TrainConfig()
    default = GroupingOptions()
    n_tasks, epochs = None, {}
    if args.smoke:
        args.seeds, args.repeats = [0], 1
        n_tasks, epochs = grouping_datasets.SMOKE_TASKS, {"max_epochs": grouping_datasets.SMOKE_EPOCHS}
        config, default = TrainConfig(**epochs), replace(default, repeats=1)
    paper = replace(default, rounds=1, repeats=1, use_measured=False, gain_split="test", exhaustive=True)
    ours_one_shot = replace(default, rounds=1, exhaustive=True)
    ours = replace(default, exhaustive=True)
    t2, t3, t4, t5, setups = [], [], [], [], []
    for seed in args.seeds:
        ds = grouping_datasets.load("chemical", seed, args.data_dir, n_tasks)
        store = RunStore(args.out / f"chemical-seed{seed}{'-smoke' if args.smoke else ''}.sqlite")
        run_grouping(ds, replace(default, exhaustive=True, repeats=args.repeats, rounds=1), config, seed, store)
        n = ds.n_tasks
        # Table 2: pairwise affinity vs pairwise test gain (repeat 0, the paper's single run)
        base = run_grouping(ds, replace(paper, n_train_groups=10), config, seed, store).report.to_dict()
        A = np.array(base["affinity"])
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        results = ensure_runs(ds, [(t,) for t in range(n)] + pairs, config, seed, store, repeats=1)
        _, Y = gain_matrix(pairs, results, n, split="test")
        z = [A[i, j] for i, j in pairs] + [A[j, i] for i, j in pairs]
        y = [Y[k, j] for k, (i, j) in enumerate(pairs)] + [Y[k, i] for k, (i, j) in enumerate(pairs)]
        t2.append(float(np.corrcoef(z, y)[0, 1]))
        # Table 3 and 5: prediction quality
        for n_train in (5, 10, 20):
            rp = run_grouping(ds, replace(paper, n_train_groups=n_train), config, seed, store).report
            ro = run_grouping(ds, replace(ours_one_shot, n_train_groups=n_train), config, seed, store).report
            t3.append({"seed": seed, "n": n_train, "paper": rp.prediction.pearson,
                       "paper_within": rp.prediction.within_task_pearson,
                       "paper_per_task_mean": rp.prediction.per_task_mean_pearson,
                       "ours": ro.prediction.pearson, "ours_within": ro.prediction.within_task_pearson})
            t5.append({"seed": seed, "n": n_train, "paper": total_gain_pearson(rp), "ours": total_gain_pearson(ro)})
        # Table 4: chosen groups
        for budget in (2, 3, 4):
            for name, opts in (("paper protocol", paper), ("one-shot, our defaults", ours_one_shot),
                               ("CLI defaults", ours)):
                rep = run_grouping(ds, replace(opts, n_train_groups=10, budget=budget), config, seed, store).report.to_dict()
                t = rep["totals"]
                t4.append({"seed": seed, "budget": budget, "method": name, "selected": t["selected"], "stl": t["stl"],
                           "all": t["all_tasks"], "oracle": t["test_oracle"], "val_oracle": t["validation_oracle"]})
        # training setups: STL and all-task totals
        if not args.skip_preset:
            for name, cfg in (("default", config), ("etap-chemical preset", TrainConfig.preset("etap-chemical", **epochs))):
                res = ensure_runs(ds, [(t,) for t in range(n)] + [tuple(range(n))], cfg, seed,
                                  RunStore(args.out / f"chemical-setups-seed{seed}{'-smoke' if args.smoke else ''}.sqlite"),
                                  repeats=1)
                setups.append({"seed": seed, "setup": name,
                               "stl": sum(res[(t,)].test_loss[t] for t in range(n)),
                               "all": sum(res[tuple(range(n))].test_loss.values()),
                               "stl_epochs": float(np.mean([res[(t,)].epochs for t in range(n)])),
                               "all_epochs": res[tuple(range(n))].epochs})
        print(f"seed {seed} done", flush=True)

    print(f"\nETAP Chemical, seeds {args.seeds}, mean ± s.e. over seeds\n")
    print(f"Table 2, pairwise affinity vs pairwise test gain (Pearson): {_ms(t2)} (paper: ETAP {PAPER['table2']})\n")
    print("Table 3, gain prediction on held-out groups (Pearson)\n")
    print("| \\|G_train\\| | paper protocol | within-task | per-task-mean baseline | our default (validation gains) "
          "| within-task | paper's ETAP |")
    print("|---|---|---|---|---|---|---|")
    for n_train in (5, 10, 20):
        c = [r for r in t3 if r["n"] == n_train]
        print(f"| {n_train} | {_ms([r['paper'] for r in c])} | {_ms([r['paper_within'] for r in c])} | "
              f"{_ms([r['paper_per_task_mean'] for r in c])} | {_ms([r['ours'] for r in c])} | "
              f"{_ms([r['ours_within'] for r in c])} | {PAPER['table3'].get(n_train, 'n/a')} |")
    print("\nTable 4, summed test cross-entropy of the chosen groups, |G_train| = 10\n")
    print("| B | method | chosen | STL | all-task | test oracle | validation oracle | paper ETAP | paper optimum |")
    print("|---|---|---|---|---|---|---|---|---|")
    for budget in (2, 3, 4):
        for name in ("paper protocol", "one-shot, our defaults", "CLI defaults"):
            c = [r for r in t4 if r["budget"] == budget and r["method"] == name]
            print(f"| {budget} | {name} | {_ms([r['selected'] for r in c])} | {_ms([r['stl'] for r in c])} | "
                  f"{_ms([r['all'] for r in c])} | {_ms([r['oracle'] for r in c])} | {_ms([r['val_oracle'] for r in c])} | "
                  f"{PAPER['table4'][budget]} | {PAPER['optimum'][budget]} |")
    print("\nTable 5, predicted vs measured total gain of held-out groups (Pearson)\n")
    print("| \\|G_train\\| | paper protocol | our default | paper's ETAP |")
    print("|---|---|---|---|")
    for n_train in (5, 10, 20):
        c = [r for r in t5 if r["n"] == n_train]
        print(f"| {n_train} | {_ms([r['paper'] for r in c])} | {_ms([r['ours'] for r in c])} | {PAPER['table5'][n_train]} |")
    if setups:
        print("\nTraining setups: summed test loss of STL and of the all-task model\n")
        print("| setup | STL | all-task | mean STL epochs | all-task epochs |")
        print("|---|---|---|---|---|")
        for name in ("default", "etap-chemical preset"):
            c = [r for r in setups if r["setup"] == name]
            print(f"| {name} | {_ms([r['stl'] for r in c])} | {_ms([r['all'] for r in c])} | "
                  f"{_ms([r['stl_epochs'] for r in c], '{:.0f}')} | {_ms([r['all_epochs'] for r in c], '{:.0f}')} |")


if __name__ == "__main__":
    main()
