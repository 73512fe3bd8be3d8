"""TP-AMTL / P-AMTL model comparisons (docs/methods/tp-amtl.md): results.csv and a report table.

Usage::

    python benchmarks/clinical_comparison.py --dataset pbcseq --models stl-lstm,mtl-lstm,tp-amtl \
        --runs 5 --seed 0 --out runs/tp-amtl/pbcseq [--max-epochs 300 --patience 30]

The same code path as ``negtransfer compare`` (:func:`negtransfer.jobs.compare.run_compare`,
through a run store at ``OUT/runs.sqlite``, so an interrupted run resumes).
Writes ``OUT/results.csv`` (model, task, run, metric, value), ``OUT/report.json``
(with each model's training seconds per run) and ``OUT/table.md`` (mean ±
standard error over runs; " ↓" marks a multi-task cell below its single-task
counterpart). Single-threaded torch.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", required=True, help="comma-separated model names")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--mc-samples", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)

    from negtransfer.data.builtin import load_builtin
    from negtransfer.jobs.compare import CompareOptions, run_compare
    from negtransfer.models.base import FitOptions
    from negtransfer.report.compare import paper_table_markdown, write_compare_outputs
    from negtransfer.runs.store import RunStore

    fit = FitOptions(epochs=args.max_epochs, patience=args.patience, batch_size=args.batch_size,
                     settings={"mc_samples": args.mc_samples})
    options = CompareOptions(models=tuple(m.strip() for m in args.models.split(",") if m.strip()), runs=args.runs,
                             fit=fit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = run_compare(lambda seed: load_builtin(args.dataset, seed=seed), args.dataset, options, args.seed,
                         RunStore(out / "runs.sqlite"), progress=lambda stage, done, total: print(f"{done}/{total}"))
    write_compare_outputs(report, out)
    table = paper_table_markdown(report, "auroc")
    (out / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
