"""TP-AMTL / P-AMTL model comparisons (docs/methods/tp-amtl.md): results.csv and a report table.

Usage::

    python benchmarks/clinical_comparison.py --dataset pbcseq \
        --models stl-lstm,mtl-lstm,stl-lstm-public,mtl-lstm-public,amtl-notransfer,tp-amtl \
        --runs 5 --seed 0 --out runs/tp-amtl/pbcseq [--max-epochs 300 --patience 30] \
        [--paired-vs stl-lstm,amtl-notransfer] [--select-on-validation "hidden=32,64;dropout=0.3,0.5"]
    python benchmarks/clinical_comparison.py --smoke --out DIR   # pbcseq, stl-lstm and tp-amtl, 1 run, 2 epochs

The same code path as ``negtransfer compare`` (:func:`negtransfer.jobs.compare.run_compare`,
through a run store at ``OUT/runs.sqlite``, so an interrupted run resumes).
Writes ``OUT/results.csv`` (model, task, run, metric, value), ``OUT/report.json``
(with each model's training seconds per run) and ``OUT/table.md`` (mean ±
standard error over runs; " ↓" marks a multi-task cell below its single-task
counterpart), and, for each ``--paired-vs`` model, the run-by-run differences
of the average AUROC (mean ± s.e., runs better, Wilcoxon and paired t p-values;
runs share splits and seeds), and the mean training seconds per run of each
model (what a table costs). Single-threaded torch. With ``--select-on-validation``
every model is trained once per setting and keeps, per run, the setting with the
best mean validation AUROC (the table says which); the seconds are those of all
settings.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=None, help="required unless --smoke")
    parser.add_argument("--models", default=None, help="comma-separated model names (required unless --smoke)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--mc-samples", type=int, default=20)
    parser.add_argument("--validation-mc-samples", type=int, default=None,
                        help="MC passes for the validation loss (default: --mc-samples)")
    parser.add_argument("--select-on-validation", default=None,
                        help='grid of model options chosen per (model, run) on the mean validation AUROC, e.g. '
                             '"hidden=32,64;dropout=0.3,0.5" (negtransfer compare --select-on-validation)')
    parser.add_argument("--workers", type=int, default=1, help="processes training units at once (default 1)")
    parser.add_argument("--paired-vs", default="", help="comma-separated reference models for paired differences")
    parser.add_argument("--smoke", action="store_true",
                        help="Smallest settings (pbcseq, stl-lstm and tp-amtl, 1 run of 2 epochs, 2 MC samples): "
                             "checks that the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.dataset, args.models = args.dataset or "pbcseq", args.models or "stl-lstm,tp-amtl"
        args.runs, args.max_epochs, args.patience, args.mc_samples = 1, 2, 1, 2
        args.paired_vs = args.paired_vs or "stl-lstm"
    if not args.dataset or not args.models:
        parser.error("--dataset and --models are required (or give --smoke)")
    torch.set_num_threads(1)

    from negtransfer.data.builtin import load_builtin
    from negtransfer.jobs.compare import CompareOptions, parse_selection_grid, run_compare
    from negtransfer.models.base import FitOptions
    from negtransfer.report.compare import (
        paired_markdown,
        paper_table_markdown,
        selection_markdown,
        write_compare_outputs,
    )
    from negtransfer.runs.executors import make_executor
    from negtransfer.runs.store import RunStore

    settings = {"mc_samples": args.mc_samples}
    if args.validation_mc_samples is not None:
        settings["validation_mc_samples"] = args.validation_mc_samples
    fit = FitOptions(epochs=args.max_epochs, patience=args.patience, batch_size=args.batch_size, settings=settings)
    options = CompareOptions(models=tuple(m.strip() for m in args.models.split(",") if m.strip()), runs=args.runs,
                             fit=fit, select_on_validation=parse_selection_grid(args.select_on_validation))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = run_compare(lambda seed: load_builtin(args.dataset, seed=seed), args.dataset, options, args.seed,
                         RunStore(out / "runs.sqlite"), progress=lambda stage, done, total: print(f"{done}/{total}"),
                         executor=make_executor("process", args.workers) if args.workers > 1 else None)
    write_compare_outputs(report, out)
    parts = [paper_table_markdown(report, "auroc")]
    if report.selection:
        parts.append(selection_markdown(report))
        parts += _per_setting(report, [r for r in args.paired_vs.split(",") if r])
    for reference in filter(None, args.paired_vs.split(",")):
        parts.append(paired_markdown(report, "auroc", reference))
    seconds: dict[str, list[float]] = {}
    for key, value in report.seconds.items():
        seconds.setdefault(key.rsplit("/", 1)[0], []).append(float(value))
    parts.append("Mean training seconds per run: " + ", ".join(f"{m} {sum(v) / len(v):.0f}"
                                                               for m, v in seconds.items()))
    table = "\n\n".join(parts)
    (out / "table.md").write_text(table + "\n")
    print(table)


def _per_setting(report, references: list[str]) -> list[str]:
    """With --select-on-validation: the paired differences with every model at one setting of the grid, and each
    model's chosen settings minus that setting (from the same runs)."""
    from dataclasses import replace

    from negtransfer.report.compare import paired_differences, paired_markdown

    parts = []
    for setting in dict.fromkeys(c.setting for c in report.selection.candidates):
        fixed = replace(report, rows=report.setting_rows(setting), selection=None)
        parts.append(f"Every model at {setting} (not chosen; for comparison):")
        parts += [paired_markdown(fixed, "auroc", reference) for reference in references]
        suffix = f" [{setting}]"
        both = replace(report, rows=report.rows + report.setting_rows(setting, suffix),
                       models=report.models + [replace(m, name=m.name + suffix) for m in report.models])
        lines = []
        for model in report.models:
            d = paired_differences(both, "auroc", model.name + suffix)[model.name]
            lines.append(f"{model.name} chosen minus {model.name}{suffix}: {d['mean']:+.4f} ± {d['se']:.4f} "
                         f"({d['better']}/{d['runs']} runs better)")
        parts.append("\n".join(lines))
    return parts


if __name__ == "__main__":
    main()
