"""TP-AMTL / P-AMTL model comparisons (docs/methods/tp-amtl.md): results.csv and a report table.

Usage::

    python benchmarks/clinical_comparison.py --dataset pbcseq --models stl-lstm,mtl-lstm,tp-amtl \
        --runs 5 --seed 0 --out runs/tp-amtl/pbcseq [--max-epochs 300 --patience 30]

Writes ``OUT/results.csv`` (model, task, run, metric, value, seconds) and
``OUT/table.md`` (mean ± standard error over runs; " ↓" marks a multi-task
cell below its single-task counterpart). Single-threaded torch.
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

    from negtransfer.jobs.clinical import comparison_markdown, comparison_table, run_temporal_comparison
    from negtransfer.train.temporal import TemporalTrainConfig

    config = TemporalTrainConfig(max_epochs=args.max_epochs, patience=args.patience, batch_size=args.batch_size,
                                 mc_samples=args.mc_samples)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = run_temporal_comparison(args.dataset, [m.strip() for m in args.models.split(",") if m.strip()],
                                      runs=args.runs, seed=args.seed, config=config, progress=print)
    results.to_csv(out / "results.csv", index=False)
    table = comparison_table(results)
    (out / "table.md").write_text(comparison_markdown(table) + "\n")
    print(table.to_string())


if __name__ == "__main__":
    main()
