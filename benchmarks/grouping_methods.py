"""Which grouping method to trust? ETAP against TAG, HOA, the linear surrogate, MTG-Net, Ayman et al. and GRAD-TAE on
the same runs.

For each dataset (``grouping_datasets.py``: 10 tasks) and seed, every group is
trained ``--repeats`` times once (the run stores of ``grouping_quality.py`` are
reused when they exist), then ``negtransfer group --exhaustive`` runs with each
``--method`` in two protocols:

* ``one-shot``: one repeat, one round, every candidate scored by prediction,
  predictor fitted on test gains: the ETAP paper's protocol (its Tables 2-5);
* ``cli``: the command-line defaults (validation gains, 3 repeats, refinement).

Per (method, protocol, seed, B) it records the chosen groups' summed test loss
against STL and the test oracle, the prediction Pearson of the first fit on the
held-out groups, the Pearson of predicted vs measured *total* gain per group
(ETAP Table 5), the pairwise affinity vs pairwise test gain correlation (ETAP
Table 2; ``etap``, ``tag`` and ``grad-tae``), the runs and the seconds the job took (for ``grad-tae`` also
the seconds of its gradients and regressions, ``method_seconds``). Then,
per dataset and protocol, the means ± s.e. over seeds, and a paired Wilcoxon
signed-rank test of ETAP's summed test loss against each other method's over
the (seed, B) cases (ETAP Tables 11-12).

Beside the groupings, the all-task model trained with each ``--surgery``
gradient aggregator (default PCGrad; ETAP Section D.3, Table 10) is a row
"all tasks, one model, PCGrad": its summed test loss (the protocol's repeats,
averaged), the same at every B, against STL and each B's test oracle, in the
same Wilcoxon test against ETAP.

Run: ``python benchmarks/grouping_methods.py [--datasets chemical yeast chicago] [--seeds 0 1 2]
[--methods etap tag hoa linear-surrogate mtgnet ayman grad-tae] [--surgery pcgrad] [--protocols one-shot cli]
[--data-dir DIR]``. ``--smoke``: yeast's first 4 tasks, seed 0, every method, the one-shot protocol, B = 2, 3 training
groups, 1 repeat of 2 epochs, stores under the first of ``--stores`` named smoke-*, rows to ``--out`` (a check that it runs).
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
from negtransfer.jobs.grouping_comparison import pairwise_affinity_pearson, surgery_label, total_gain_pearson
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

PROTOCOLS = {
    "one-shot": {"rounds": 1, "repeats": 1, "use_measured": False, "gain_split": "test"},
    "cli": {},
}


def print_tables(rows: list[dict], datasets, methods, protocols, budgets) -> None:
    from scipy.stats import wilcoxon

    for name in datasets:
        for protocol in protocols:
            sel = [r for r in rows if r["dataset"] == name and r["protocol"] == protocol]
            if not sel:
                continue
            seeds = sorted({r["seed"] for r in sel})
            print(f"\n### {name}, {protocol} protocol (seeds {', '.join(map(str, seeds))}; mean ± s.e.)\n")
            print("| method | B | chosen vs STL | gap to test oracle | Pearson (gains) | Pearson (total gains) | "
                  "pairwise affinity vs gain | runs | seconds | Wilcoxon p (ETAP vs this) |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for method in methods:
                mine = {(r["seed"], r["budget"]): r for r in sel if r["method"] == method}
                etap = {(r["seed"], r["budget"]): r for r in sel if r["method"] == "etap"}
                common = sorted(set(mine) & set(etap))
                p_value = "n/a"
                if method != "etap" and len(common) >= 6:
                    diff = [etap[k]["selected"] - mine[k]["selected"] for k in common]
                    if any(d != 0 for d in diff):
                        p_value = f"{wilcoxon(diff).pvalue:.3f} ({sum(d < 0 for d in diff)}/{len(diff)} ETAP lower)"
                for budget in budgets:
                    c = [r for r in mine.values() if r["budget"] == budget]
                    if not c:
                        continue
                    print(f"| {method} | {budget} | {mean_se([r['vs_stl'] for r in c], '{:+.2%}')} | "
                          f"{mean_se([r['gap'] for r in c], '{:+.2%}')} | {mean_se([r['pearson'] for r in c])} | "
                          f"{mean_se([r['total_pearson'] for r in c])} | {mean_se([r['pairwise'] for r in c])} | "
                          f"{np.mean([r['runs'] for r in c]):.0f} | {np.mean([r['seconds'] for r in c]):.0f} | "
                          f"{p_value if budget == budgets[0] else ''} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["chemical", "yeast", "chicago"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+",
                        default=["etap", "tag", "hoa", "linear-surrogate", "mtgnet", "ayman", "grad-tae"])
    parser.add_argument("--surgery", nargs="*", default=["pcgrad"],
                        help="Gradient aggregators of the all-task model shown as rows (none: no such row).")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS))
    parser.add_argument("--budgets", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--train-groups", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default=None, help="ETAP Chemical Task_Splits folder.")
    parser.add_argument("--stores", type=Path, nargs="+", default=[Path("runs/grouping_quality"), Path("runs/gq_ct")],
                        help="Folders searched for <dataset>-seed<s>.sqlite run stores (the first is written).")
    parser.add_argument("--out", type=Path, default=Path("runs/grouping_methods.json"))
    grouping_datasets.add_result_format_option(parser)
    parser.add_argument("--summarize", action="store_true", help="Only print the tables of --out.")
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    n_tasks, config, prefix = None, TrainConfig(), ""
    if args.smoke:
        args.datasets, args.seeds, args.budgets, args.train_groups, args.repeats = ["yeast"], [0], [2], 3, 1
        args.protocols = ["one-shot"]
        args.stores, prefix = args.stores[:1], "smoke-"
        n_tasks, config = grouping_datasets.SMOKE_TASKS, TrainConfig(max_epochs=grouping_datasets.SMOKE_EPOCHS)
    shown = args.methods + [surgery_label(name) for name in args.surgery]
    if args.summarize:
        print_tables(json.loads(args.out.read_text()), args.datasets, shown, args.protocols, args.budgets)
        return
    grouping_datasets.use_result_format(args.result_format)
    rows = []
    for name, seed, ds in grouping_datasets.each_loaded(args.datasets, args.seeds, args.data_dir, n_tasks):
        file = f"{prefix}{name}-seed{seed}.sqlite"
        found = [d / file for d in args.stores if (d / file).exists()]
        path = found[0] if found else args.stores[0] / file
        path.parent.mkdir(parents=True, exist_ok=True)
        store = RunStore(path)
        base = GroupingOptions(exhaustive=True, n_train_groups=args.train_groups, repeats=args.repeats)
        run_grouping(ds, replace(base, rounds=1, chunk_size=256), config, seed, store)  # every group, once
        for protocol in args.protocols:
            oracle = {}
            for method in args.methods:
                for budget in args.budgets:
                    opts = replace(base, method=method, budget=budget, **PROTOCOLS[protocol])
                    start = time.perf_counter()
                    result = run_grouping(ds, opts, config, seed, store)
                    report = result.report
                    rep = report.to_dict()
                    t = rep["totals"]
                    oracle[budget] = (t["stl"], rep["optimal"]["test_oracle"]["total"])
                    rows.append({
                        "dataset": name, "seed": seed, "protocol": protocol, "method": method, "budget": budget,
                        "selected": t["selected"], "vs_stl": t["selected"] / t["stl"] - 1,
                        "gap": rep["optimal"]["test_oracle"]["gap"], "pearson": rep["prediction"]["pearson"],
                        "total_pearson": total_gain_pearson(report),
                        "pairwise": pairwise_affinity_pearson(report, result.results) if budget == args.budgets[0]
                        else None,
                        "runs": rep["refinement"]["runs_used"], "seconds": time.perf_counter() - start,
                        "method_seconds": (rep.get("method_cost") or {}).get("seconds_gradients_and_regressions"),
                    })
                    r = rows[-1]
                    print(f"{name} seed {seed} {protocol} {method} B={budget}: vs STL {r['vs_stl']:+.2%}, "
                          f"gap {r['gap']:+.2%}, Pearson {r['pearson']}, {r['seconds']:.0f} s", flush=True)
                args.out.write_text(json.dumps(rows, indent=1))
            rows += surgery_rows(ds, name, seed, protocol, args.surgery, oracle, replace(base, **PROTOCOLS[protocol]),
                                 config, store)
            args.out.write_text(json.dumps(rows, indent=1))
    print_tables(rows, args.datasets, shown, args.protocols, args.budgets)


def surgery_rows(ds, name, seed, protocol, surgery, oracle, options, config, store) -> list[dict]:
    """Rows of the all-task model trained with each gradient aggregator, one per budget (ETAP Table 10)."""
    out = []
    everything = tuple(range(ds.n_tasks))
    for aggregation in surgery:
        start = time.perf_counter()
        result = ensure_runs(ds, [everything], replace(config, gradient_aggregation=aggregation), seed, store,
                             repeats=options.repeats, chunk_size=options.chunk_size)[everything]
        total = float(sum(result.test_loss.values()))
        seconds = time.perf_counter() - start
        for budget, (stl, best) in oracle.items():
            out.append({"dataset": name, "seed": seed, "protocol": protocol, "method": surgery_label(aggregation),
                        "budget": budget, "selected": total, "vs_stl": total / stl - 1, "gap": total / best - 1,
                        "pearson": None, "total_pearson": None, "pairwise": None, "runs": options.repeats,
                        "seconds": seconds})
        print(f"{name} seed {seed} {protocol} {surgery_label(aggregation)}: vs STL {out[-1]['vs_stl']:+.2%}, "
              f"{seconds:.0f} s", flush=True)
    return out


if __name__ == "__main__":
    main()
