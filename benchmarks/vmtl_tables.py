"""The VMTL comparison tables of docs/methods/vmtl.md (supplement Tables C.4-C.6, C.10, C.16 analogues).

For each dataset and train fraction it runs ``negtransfer compare`` (through
:func:`negtransfer.jobs.compare.run_compare`, the same code path) and writes
``OUT/<dataset>/f<fraction>/results.csv`` and ``report.md``, then prints:

* average test accuracy (%) vs train fraction, rows = models (Tables C.4-C.6);
* the prior ablation per task at each fraction (Table C.10) with ``--ablation``;
* the average entropy ratio vs train fraction (Table C.16).

Every cell is mean ± standard error over ``--runs`` runs (run r: seed + r for
the split, the training subsample and the model). With ``--paired-vs`` each
fraction also gets the run-by-run differences of the average accuracy from
those models (mean ± s.e., runs better, Wilcoxon and paired t p-values), and
every fraction prints its wall time (what a table costs).

Run::

    python benchmarks/vmtl_tables.py --datasets heart-hospitals,digit-domains \\
        --fractions 0.05,0.1,0.2,0.4 --runs 3 --models stl,vstl,bmtl,vbmtl,vmtl,vmtl-ac \\
        [--ablation] [--iterations 600] [--set kl_w_warmup_step=1e-4] [--set preset=vmtl-public] \
        [--paired-vs bmtl,vstl] --out runs/vmtl-tables
    python benchmarks/vmtl_tables.py --smoke --out DIR   # heart-hospitals, 10%, stl and vmtl, 2 runs of 5 iterations
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from negtransfer.data.builtin import load_builtin
from negtransfer.jobs.compare import CompareOptions, run_compare
from negtransfer.models.base import FitOptions
from negtransfer.report.compare import paired_markdown, write_compare_outputs
from negtransfer.runs.store import RunStore

ABLATION = ("vmtl-mean-prior", "vmtl-learnable-prior", "vmtl", "vmtl-same-weights")


def cell(mean_se, scale=100.0, digits=1) -> str:
    mean, se = mean_se
    if math.isnan(mean):
        return ""
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {se * scale:.{digits}f}" if not math.isnan(se) else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="heart-hospitals,digit-domains")
    parser.add_argument("--fractions", default="0.05,0.1,0.2,0.4")
    parser.add_argument("--models", default="stl,vstl,bmtl,vbmtl,vmtl,vmtl-ac")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--ablation", action="store_true", help="Also run the prior ablation models.")
    parser.add_argument("--set", default="", help="Comma-separated KEY=VALUE VariationalConfig settings.")
    parser.add_argument("--paired-vs", default="", help="comma-separated reference models for paired differences")
    parser.add_argument("--out", type=Path, default=Path("runs/vmtl-tables"))
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.datasets, args.fractions, args.models, args.runs, args.iterations = "heart-hospitals", "0.1", "stl,vmtl", 2, 5
        args.paired_vs = args.paired_vs or "stl"
    torch.set_num_threads(1)
    models = args.models.split(",")
    if args.ablation:
        models += [m for m in ABLATION if m not in models]
    fractions = [float(f) for f in args.fractions.split(",")]
    settings = {}
    for item in filter(None, args.set.split(",")):
        key, _, value = item.partition("=")
        try:
            settings[key] = json.loads(value)  # numbers, true / false
        except json.JSONDecodeError:
            settings[key] = value  # names (preset=vmtl-public)
    for dataset in args.datasets.split(","):
        results = {}
        for f in fractions:
            start = time.time()
            options = CompareOptions(models=tuple(models), runs=args.runs, train_fraction=f,
                                     fit=FitOptions(iterations=args.iterations, settings=settings))
            where = args.out / dataset / f"f{f:g}"
            where.mkdir(parents=True, exist_ok=True)
            res = run_compare(lambda seed, name=dataset: load_builtin(name, seed=seed), dataset, options, args.seed,
                              RunStore(where / "runs.sqlite"))
            write_compare_outputs(res, where)
            results[f] = res
            print(f"# {dataset} fraction {f:g}: {time.time() - start:.0f} s", flush=True)
        print(f"\n### {dataset}: average test accuracy (%) vs train fraction\n")
        print("| model | " + " | ".join(f"{f:.0%}" for f in fractions) + " |")
        print("|---|" + "---:|" * len(fractions))
        tables = {f: results[f].summary("accuracy") for f in fractions}
        for m in models:
            print(f"| {m} | " + " | ".join(cell(tables[f][m]["average"]) for f in fractions) + " |")
        print(f"\n### {dataset}: average entropy ratio vs train fraction\n")
        print("| model | " + " | ".join(f"{f:.0%}" for f in fractions) + " |")
        print("|---|" + "---:|" * len(fractions))
        ent = {f: results[f].summary("entropy_ratio") for f in fractions}
        for m in models:
            print(f"| {m} | " + " | ".join(cell(ent[f][m]["average"], 1.0, 2) for f in fractions) + " |")
        if args.ablation:
            tasks = results[fractions[0]].tasks
            for f in fractions:
                print(f"\n### {dataset}: priors at {f:.0%} (accuracy %)\n")
                print("| prior | " + " | ".join("Avg." if t == "average" else t for t in tasks) + " |")
                print("|---|" + "---:|" * len(tasks))
                for m in ABLATION:
                    print(f"| {m} | " + " | ".join(cell(tables[f][m][t]) for t in tasks) + " |")
        for reference in filter(None, args.paired_vs.split(",")):
            for f in fractions:
                print(f"\n### {dataset}: paired differences at {f:.0%} (accuracy points)\n")
                print(paired_markdown(results[f], "accuracy", reference, scale=100.0, digits=1))
        print(flush=True)


if __name__ == "__main__":
    main()
