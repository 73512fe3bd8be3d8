"""Chosen groups vs STL and the all-task model on the three any-network datasets (issue 24).

For each dataset, seed and budget B, ``negtransfer.group(...)`` chooses at most
B groups of the dataset's first ``--tasks`` tasks, and the report's summed
test losses of three options are compared:

* ``selected``: the chosen groups (each task's loss from the group it is
  served by);
* ``stl``: one model per task;
* ``all_tasks``: one model of every task.

The datasets and their networks (the ETAP paper's image, sequence and
molecule settings on shipped analogues):

* ``digit-images`` with ``--encoder cnn`` (binary tasks, 1 x 8 x 8 images);
* ``chicago-next-day`` with ``--encoder lstm`` (next-day ridership of
  stations, regression, 14-day windows);
* ``qm9`` with Morgan fingerprints and the default ``mlp`` (regression of
  molecular properties; needs the ``molecules`` extra, skipped with a message
  without it).

One run store per dataset and seed, so B = 2, 3, 4 reuse the STL, all-task and
training-group runs and train only their chosen groups. Each budget's
difference to STL and to the all-task model is paired by seed; its mean ±
s.e. over the seeds is "within noise" when its magnitude is below twice its
standard error.

Run: ``python benchmarks/any_network_grouping.py [--seeds 0 1 2] [--out DIR]``;
``--smoke``: 4 tasks, 2 epochs, 3 training groups, one seed, B = 2 (a check
that it runs end to end, not a measurement). Prints a Markdown table and
writes ``any_network_grouping-DATASET-seedSEED.json`` in ``--out`` (the
records of that dataset and seed, and the settings); ``--report`` prints the
table of every such file in ``--out`` without training (datasets or seeds
measured by separate commands, e.g. with different ``--epochs`` or side by
side).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import statistics
import time
from pathlib import Path

import torch

import negtransfer
from negtransfer.data.builtin import load_builtin
from negtransfer.data.statistics import standard_error

#: Dataset -> the network it is grouped with (``model=`` of the Python API).
NETWORKS = {"digit-images": "cnn", "chicago-next-day": "lstm", "qm9": "mlp"}
OPTIONS = ("selected", "stl", "all_tasks")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--budgets", nargs="+", type=int, default=[2, 3, 4])
    parser.add_argument("--tasks", type=int, default=8, help="the first this many tasks of each dataset")
    parser.add_argument("--train-groups", type=int, default=12, help="training groups measured before the fit")
    parser.add_argument("--repeats", type=int, default=1, help="runs per group")
    parser.add_argument("--epochs", type=int, default=30, help="most epochs per run (early stopping as usual)")
    parser.add_argument("--patience", type=int, default=5, help="early-stopping patience in epochs")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("runs/any_network_grouping"))
    parser.add_argument("--report", action="store_true", help="print the table of the JSON files in --out, no training")
    parser.add_argument("--smoke", action="store_true", help="4 tasks, 2 epochs, 3 training groups, 1 seed, B = 2")
    return parser


def _available(name: str) -> bool:
    if name != "qm9":
        return True
    missing = [package for package in ("qm9pack", "rdkit") if importlib.util.find_spec(package) is None]
    if missing:
        print("note: qm9 skipped: it needs qm9pack and rdkit (pip install 'negtransfer[molecules]')")
        return False
    return True


def measure(name: str, seed: int, args: argparse.Namespace) -> list[dict]:
    """One record per budget: the three options' summed test losses, the chosen groups and the seconds."""
    tasks = list(load_builtin(name).task_names)[: args.tasks]
    store = args.out / f"{name}-seed{seed}.sqlite"
    records = []
    for budget in args.budgets:
        started = time.perf_counter()
        report = negtransfer.group(
            name, tasks=tasks, model=NETWORKS[name], seed=seed, store=store, budget=budget, rounds=1,
            n_train_groups=args.train_groups, repeats=args.repeats, max_epochs=args.epochs, patience=args.patience)
        seconds = time.perf_counter() - started
        totals = report.losses.totals
        records.append({"dataset": name, "network": NETWORKS[name], "seed": seed, "budget": budget,
                        **{option: float(totals[option]) for option in OPTIONS},
                        "groups": [list(g) for g in report.selection.groups],
                        "runs_trained": report.runs.trained, "seconds": round(seconds, 1)})
        print(f"{name} seed {seed} B={budget}: selected {totals['selected']:.4f}  stl {totals['stl']:.4f}  "
              f"all-task {totals['all_tasks']:.4f}  ({report.runs.trained} runs, {seconds:.0f} s)", flush=True)
    return records


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (NaN for one value)."""
    mean = statistics.fmean(values)
    return mean, standard_error(values)


def _cell(values: list[float], signed: bool = False) -> str:
    mean, se = mean_se(values)
    text = f"{mean:+.3f}" if signed else f"{mean:.3f}"
    return text if math.isnan(se) else f"{text} ± {se:.3f}"


def _verdict(differences: list[float]) -> str:
    mean, se = mean_se(differences)
    if not math.isnan(se) and abs(mean) < 2 * se:
        return "within noise"
    return "lower" if mean < 0 else "higher"


def table(records: list[dict]) -> str:
    """The Markdown table: per dataset and budget, each option's mean ± s.e. over seeds and the paired differences."""
    lines = ["| dataset (network) | B | seeds | chosen groups | STL | all-task | chosen - STL | chosen - all-task |",
             "|---|---|---|---|---|---|---|---|"]
    keys = sorted({(r["dataset"], r["budget"]) for r in records}, key=lambda k: (list(NETWORKS).index(k[0]), k[1]))
    for name, budget in keys:
        rows = [r for r in records if r["dataset"] == name and r["budget"] == budget]
        chosen, stl, every = ([r[o] for r in rows] for o in OPTIONS)
        to_stl = [c - s for c, s in zip(chosen, stl, strict=True)]
        to_all = [c - a for c, a in zip(chosen, every, strict=True)]
        lines.append(f"| {name} ({rows[0]['network']}) | {budget} | {len(rows)} | {_cell(chosen)} | {_cell(stl)} | "
                     f"{_cell(every)} | {_cell(to_stl, True)} ({_verdict(to_stl)}) | "
                     f"{_cell(to_all, True)} ({_verdict(to_all)}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.report:
        report(args.out)
        return
    if args.smoke:
        args.tasks, args.epochs, args.train_groups, args.seeds, args.budgets = 4, 2, 3, args.seeds[:1], [2]
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    print(f"settings: {settings}", flush=True)
    records: list[dict] = []
    for name in args.datasets:
        if not _available(name):
            continue
        for seed in args.seeds:
            done = measure(name, seed, args)
            records.extend(done)
            (args.out / f"any_network_grouping-{name}-seed{seed}.json").write_text(
                json.dumps({"settings": settings, "records": done}, indent=1))
    print(table(records) if records else "no dataset measured")


def report(out: Path) -> None:
    """Print the table of every dataset and seed measured into ``out`` (each file's settings first); a (dataset,
    seed, budget) measured twice counts once."""
    records: dict[tuple, dict] = {}
    for path in sorted(out.glob("any_network_grouping-*.json")):
        saved = json.loads(path.read_text())
        print(f"{path.name}: {saved['settings']}")
        records.update({(r["dataset"], r["seed"], r["budget"]): r for r in saved["records"]})
    print(table(list(records.values())) if records else f"no any_network_grouping-*.json in {out}")


if __name__ == "__main__":
    main()
