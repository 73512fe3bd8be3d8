"""Pair one model's runs in one ``results.csv`` with another's in a second one, run by run.

``negtransfer compare`` (and ``clinical_comparison.py``, ``vmtl_tables.py``) pairs the models of one
invocation (``--paired-vs``). This pairs across two invocations that share splits and seeds (the same
dataset, ``--seed``, ``--runs`` and train fraction), e.g. one model under two schedules, or VMTL and BMTL
trained in two runs with the official schedule:

    python benchmarks/pair_results.py runs/vmtl-public-full-vmtl/heart-hospitals/f0.05/results.csv:vmtl \\
        runs/vmtl-public-full-bmtl/heart-hospitals/f0.05/results.csv:bmtl --scale 100
    python benchmarks/pair_results.py runs/tp-amtl/nafld-official-budget/results.csv:tp-amtl \\
        runs/tp-amtl/nafld-issue29-rerun/results.csv:tp-amtl --metrics auroc,val_auroc

Each side is ``PATH[:MODEL]`` (the model may be left out where the file holds one). Where a
``report.json`` lies beside a ``results.csv`` (as ``compare`` writes it), the two reports must agree on
the dataset, the seed and the train fraction, else the runs do not share splits and the script stops.
Prints, per metric of the task (``--task``, default ``average``), both means ± s.e. and the paired
difference (mean ± s.e., runs better, Wilcoxon and paired t p-values; ``negtransfer.report.compare``).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import tempfile
from pathlib import Path

from negtransfer.data.statistics import standard_error
from negtransfer.report.compare import lower_is_better, p_value_text, paired_runs
from negtransfer.report.markdown import render_table

#: report.json keys two results must share for their runs to share splits and seeds.
SAME_SPLITS_KEYS = ("dataset", "seed", "train_fraction")


def parse_side(text: str) -> tuple[Path, str | None]:
    """``PATH[:MODEL]`` -> (path, model or None)."""
    path, sep, model = text.rpartition(":")
    if not sep or not path.endswith(".csv"):
        return Path(text), None
    return Path(path), model or None


def read_runs(path: Path, model: str | None, task: str) -> tuple[str, dict[str, dict[int, float]]]:
    """``(model, {metric: {run: value}})`` of one model and task in a results.csv (NaN values left out)."""
    if not path.is_file():
        raise SystemExit(f"error: {path} is not a file; give a results.csv written by negtransfer compare")
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    missing = {"model", "task", "run", "metric", "value"} - set(rows[0] if rows else {})
    if missing:
        raise SystemExit(f"error: {path} has no column(s) {sorted(missing)}; give a results.csv of negtransfer compare")
    models = list(dict.fromkeys(r["model"] for r in rows))
    if model is None:
        if len(models) != 1:
            raise SystemExit(f"error: {path} holds the models {models}; name one as {path}:MODEL")
        model = models[0]
    if model not in models:
        raise SystemExit(f"error: {path} has no model {model!r}; it holds {models}")
    values: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["model"] == model and r["task"] == task and not math.isnan(float(r["value"])):
            values.setdefault(r["metric"], {})[int(r["run"])] = float(r["value"])
    if not values:
        raise SystemExit(f"error: {path} has no rows of model {model!r} for task {task!r}")
    return model, values


def check_same_splits(first: Path, second: Path) -> None:
    """Stop where the report.json beside each results.csv says their runs used different splits."""
    reports = [p.parent / "report.json" for p in (first, second)]
    if not all(r.is_file() for r in reports):
        return
    settings = [json.loads(r.read_text()) for r in reports]
    differ = {k: (settings[0].get(k), settings[1].get(k)) for k in SAME_SPLITS_KEYS
              if settings[0].get(k) != settings[1].get(k)}
    if differ:
        text = ", ".join(f"{k} {a!r} against {b!r}" for k, (a, b) in differ.items())
        raise SystemExit(f"error: the two results do not share splits and seeds ({text}); pair runs of the same "
                         "dataset, --seed and --train-fraction")


def pair_table(values: dict[str, dict[int, float]], reference: dict[str, dict[int, float]], metrics: list[str],
               scale: float, digits: int) -> str:
    """One markdown row per metric: both sides' means ± s.e. and their paired difference."""
    rows = []
    for metric in metrics:
        if metric not in values or metric not in reference:
            raise SystemExit(f"error: metric {metric!r} is not in both results; they share "
                             f"{sorted(set(values) & set(reference))}")
        d = paired_runs(values[metric], reference[metric], lower_is_better=lower_is_better(metric))
        runs = sorted(set(values[metric]) & set(reference[metric]))
        sides = []
        for side in (values[metric], reference[metric]):
            xs = [side[r] * scale for r in runs]
            sides.append(f"{sum(xs) / len(xs):.{digits}f} ± {standard_error(xs):.{digits}f}" if xs else "")
        rows.append([metric, *sides, f"{d['mean'] * scale:+.{digits}f} ± {d['se'] * scale:.{digits}f}",
                     f"{d['better']}/{d['runs']}", p_value_text(d["wilcoxon_p"]), p_value_text(d["t_p"])])
    return render_table(rows, ["metric", "first", "second", "first minus second", "runs better", "Wilcoxon p",
                               "paired t p"])


def write_smoke_results(folder: Path) -> tuple[str, str]:
    """Two tiny results.csv (5 runs, one model each, the first 0.01 higher in 4 runs) for ``--smoke``."""
    sides = []
    for name, shift in (("first", 0.01), ("second", 0.0)):
        path = folder / name / "results.csv"
        path.parent.mkdir(parents=True)
        with path.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["model", "task", "run", "metric", "value"])
            for run in range(5):
                writer.writerow([name, "average", run, "accuracy", 0.8 + 0.01 * run + (shift if run else 0.0)])
        sides.append(f"{path}:{name}")
    return sides[0], sides[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("first", nargs="?", help="PATH[:MODEL] of the model whose runs come first in the difference")
    parser.add_argument("second", nargs="?", help="PATH[:MODEL] of the model subtracted")
    parser.add_argument("--metrics", default="", help="Comma-separated metrics (default: every metric both have).")
    parser.add_argument("--task", default="average", help="The task whose rows are paired (default average).")
    parser.add_argument("--scale", type=float, default=1.0, help="Multiply every figure (100: accuracy in points).")
    parser.add_argument("--digits", type=int, default=4)
    parser.add_argument("--smoke", action="store_true", help="Pair two tiny results.csv this script writes.")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            args.first, args.second = write_smoke_results(Path(tmp))
        if not (args.first and args.second):
            parser.error("give two results.csv (PATH[:MODEL] each), or --smoke")
        (first, first_model), (second, second_model) = parse_side(args.first), parse_side(args.second)
        check_same_splits(first, second)
        first_model, values = read_runs(first, first_model, args.task)
        second_model, reference = read_runs(second, second_model, args.task)
        metrics = [m for m in args.metrics.split(",") if m] or [m for m in values if m in reference]
        print(f"first: {first_model} ({first}); second: {second_model} ({second}); task {args.task}; "
              "paired run by run over the runs both have\n")
        print(pair_table(values, reference, metrics, args.scale, args.digits))


if __name__ == "__main__":
    main(sys.argv[1:])
