"""Issue 25's small tasks: does validation mislead the grouping job, and does the audit keep the recommendation
at or below STL? (docs/methods/grouping.md, "Small tasks").

Per generator seed of :func:`negtransfer.data.synthetic.make_small_tasks` (job seed = generator seed), at
budget B: the grouping job with its defaults, the same with ``--audit 0.2``, with ``--folds K`` also the job
with cross-validated gains (``GroupingOptions(folds=K, repeats=--folds-repeats)``), and the planted clusters
trained (``--repeats`` repeats) beside them. Prints per seed and as mean ± s.e. over seeds, every summed test loss
relative to STL's: the all-task model, the planted clusters, the test and validation oracles over the groups the
job measured plus the planted ones (upper bounds of the exhaustive oracles: ``grouping_quality.py`` has those),
the job's choice and its noise verdict, and the audited recommendation against its own STL and the default's.
With ``--folds``, also the cross-validated job's choice and recommendation against its own STL and the
default's. Writes every seed's row to ``OUT/small_tasks.json`` (version 2: ``OUT/small_tasks-v2.json``; its run
stores ``OUT/small-tasks-v2-SEED.sqlite``).

Run: ``python benchmarks/small_tasks.py [--seeds 0 1 2] [--heldout] [--version 2] [--budget 3] [--folds 5]
[--out DIR]``; ``--heldout`` uses the generator seeds 1000 + seed (``small-tasks-heldout``); ``--version 2``
the generator with each task's direction tilted from its cluster's (``task_angle`` ``SMALL_TASKS_V2_ANGLE``, 3
degrees; version 1, the default, is today's generator). ``--smoke``: four tasks, two epochs, seed 0 (a
check that it runs; its figures mean nothing). ``--summarize JSON...``: the tables of earlier runs (no training).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import grouping_datasets
import numpy as np
from grouping_datasets import mean_se

from negtransfer.data.synthetic import SMALL_TASKS_V2_ANGLE, make_small_tasks
from negtransfer.jobs.grouping import GroupingOptions, oracle_grouping, run_grouping
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

PCT = "{:+.1%}"


def build(seed: int, version: int, n_tasks: int | None):
    """The generator's dataset of ``version`` (1: today's default, 2: tilted tasks) at generator seed ``seed``."""
    options = {"n_tasks": n_tasks, "n_clusters": 2} if n_tasks else {}
    if version == 2:
        options["task_angle"] = SMALL_TASKS_V2_ANGLE
    return make_small_tasks(seed, **options)


def measure(ds, seed: int, budget: int, repeats: int, config: TrainConfig, store: RunStore,
            folds: tuple[int, int] | None = None) -> dict:
    """One seed's figures (summed test losses; the relative ones are computed when printing); ``folds``: (K,
    repeats) of the cross-validated job, or None."""
    options = GroupingOptions(budget=budget, repeats=repeats)
    plain = run_grouping(ds, options, config, seed, store)
    audited = run_grouping(ds, GroupingOptions(budget=budget, repeats=repeats, audit=0.2), config, seed, store)
    crossed = {}
    if folds:
        f = run_grouping(ds, GroupingOptions(budget=budget, folds=folds[0], repeats=folds[1]), config, seed,
                         store).report.to_dict()
        crossed = {"folds_stl": f["totals"]["stl"], "folds_selected": f["totals"]["selected"],
                   "folds_recommendation": f["comparison"]["recommendation"],
                   "folds_recommended": f["totals"][f["comparison"]["recommendation"]]}
    n, clusters = ds.n_tasks, ds.info["clusters"]
    planted = [tuple(t for t in range(n) if clusters[t] == c) for c in sorted(set(clusters))]
    every = {**plain.results, **ensure_runs(ds, planted, config, seed, store, repeats=repeats)}  # through the store
    mixing, inside = _group_changes(every, clusters, n)
    p, a = plain.report.to_dict(), audited.report.to_dict()
    recommended = a["comparison"]["recommendation"]
    return {
        "seed": seed, "stl": p["totals"]["stl"], "all_tasks": p["totals"]["all_tasks"],
        "stl_val": sum(every[(t,)].val_loss[t] for t in range(n)),
        "planted": sum(every[g].test_loss[t] for g in planted for t in g),
        "planted_val": sum(every[g].val_loss[t] for g in planted for t in g),
        "test_oracle": sum(oracle_grouping(every, n, budget, by="test_loss")[1].values()),
        "val_oracle": sum(oracle_grouping(every, n, budget, by="val_loss")[1].values()),
        "measured_groups": len(every), "selected": p["totals"]["selected"], "selected_groups": p["selected_groups"],
        "recommendation": p["comparison"]["recommendation"], "noise": p["noise"]["verdict"],
        "reliability": p["noise"]["reliability"], "audit_stl": a["totals"]["stl"],
        "audit_recommendation": recommended, "audit_recommended": a["totals"][recommended],
        "mixing_groups": mixing, "inside_groups": inside, **crossed,
    }


def _group_changes(every: dict, clusters, n: int) -> tuple[list[float], list[float]]:
    """Each measured group of several tasks (the all-task model left out): its tasks' summed test loss against
    their STL models' minus 1, split into groups that mix planted clusters and groups inside one."""
    mixing, inside = [], []
    for group, result in every.items():
        if 1 < len(group) < n:
            change = sum(result.test_loss[t] for t in group) / sum(every[(t,)].test_loss[t] for t in group) - 1
            (mixing if len({clusters[t] for t in group}) > 1 else inside).append(float(change))
    return mixing, inside


def relative(row: dict) -> dict:
    """The row's figures relative to STL's test total (the audited recommendation also to its own STL's)."""
    stl = row["stl"]
    figures = {"all-task": row["all_tasks"] / stl - 1, "planted": row["planted"] / stl - 1,
               "test oracle": row["test_oracle"] / stl - 1, "validation oracle": row["val_oracle"] / stl - 1,
               "job's choice": row["selected"] / stl - 1,
               "audit: recommended vs its STL": row["audit_recommended"] / row["audit_stl"] - 1,
               "audit: recommended vs STL": row["audit_recommended"] / stl - 1}
    for key, label in (("mixing_groups", "groups mixing clusters (mean)"),
                       ("inside_groups", "groups inside one cluster (mean)")):
        if row.get(key):
            figures[label] = float(np.mean(row[key]))
    if "folds_stl" in row:
        figures.update({"folds: choice vs its STL": row["folds_selected"] / row["folds_stl"] - 1,
                        "folds: recommended vs its STL": row["folds_recommended"] / row["folds_stl"] - 1,
                        "folds: recommended vs STL": row["folds_recommended"] / stl - 1})
    return figures


def print_rows(rows: list[dict]) -> None:
    for row in rows:
        figures = ", ".join(f"{k} {v:+.1%}" for k, v in relative(row).items())
        print(f"seed {row['seed']}: STL {row['stl']:.3f} (validation {row['stl_val']:.3f}); {figures}; "
              f"planted on validation {row['planted_val'] / row['stl_val'] - 1:+.1%}; reliability "
              f"{row['reliability']:.2f} ({row['noise'].split(':')[0]}); recommendation {row['recommendation']}, audited "
              f"{row['audit_recommendation']}, cross-validated {row.get('folds_recommendation', '-')}", flush=True)
    names = list(relative(rows[0]))
    print()
    print("| seeds | STL per task | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 2) + "|")
    cells = [mean_se([relative(r)[k] for r in rows], PCT) for k in names]
    per_task = mean_se([r["stl"] / r["n_tasks"] for r in rows], "{:.3f}")
    print(f"| {', '.join(str(r['seed']) for r in rows)} | {per_task} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--heldout", action="store_true", help="Generator seeds 1000 + seed (small-tasks-heldout).")
    parser.add_argument("--budget", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--version", type=int, choices=(1, 2), default=1,
                        help="1: today's generator; 2: tasks tilted from their cluster's direction.")
    parser.add_argument("--folds", type=int, default=0, help="Also the job with cross-validated gains (K folds).")
    parser.add_argument("--folds-repeats", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("runs/small_tasks"))
    parser.add_argument("--summarize", type=Path, nargs="+", metavar="JSON",
                        help="Print the tables of earlier runs' small_tasks*.json files (no training).")
    grouping_datasets.add_smoke_option(parser)
    args = parser.parse_args()
    if args.summarize:
        print_rows([row for path in args.summarize for row in json.loads(path.read_text())])
        return
    config, n_tasks = TrainConfig(), None
    if args.smoke:
        args.seeds, args.budget, n_tasks = [0], 2, grouping_datasets.SMOKE_TASKS
        config = TrainConfig(max_epochs=grouping_datasets.SMOKE_EPOCHS)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    version = "" if args.version == 1 else f"-v{args.version}"
    folds = (args.folds, args.folds_repeats) if args.folds else None
    for seed in args.seeds:
        generator_seed = grouping_datasets.HELDOUT_SEED + seed if args.heldout else seed
        ds = build(generator_seed, args.version, n_tasks)
        store = RunStore(args.out / f"small-tasks{version}-{generator_seed}.sqlite")
        rows.append({**measure(ds, generator_seed, args.budget, args.repeats, config, store, folds),
                     "n_tasks": ds.n_tasks, "version": args.version})
        (args.out / f"small_tasks{version}.json").write_text(json.dumps(rows, indent=1))
    print_rows(rows)


if __name__ == "__main__":
    main()
