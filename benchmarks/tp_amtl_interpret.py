"""Train TP-AMTL on several seeds; transfer vs uncertainty within each task and step (paper Figs. 3-4).

Usage::

    python benchmarks/tp_amtl_interpret.py --dataset pbcseq --seeds 5 --task death --out runs/tp-amtl/interpret \
        [--max-epochs 300 --patience 30 --noise dropout --validation-mc-samples 3]
    python benchmarks/tp_amtl_interpret.py --smoke --out DIR   # 2 seeds of 2 epochs, 1 MC sample

Seed s splits the data and trains the model with seed s (as run s of
``negtransfer compare --seed 0``). For the first seed it picks the first test
record with a positive label for ``--task`` (or ``--record``) and writes
``OUT/transfer.csv`` and ``OUT/transfer.png`` (negtransfer.report.transfer).
For every seed it computes, over the test records, the Spearman correlation
between a task's uncertainty and its outgoing (incoming) transfer *within each
(task, step)* (:func:`negtransfer.report.transfer.within_cell_correlations`),
writes ``OUT/cells.csv`` (every seed's cells) and ``OUT/summary.csv``, and
prints the mean over seeds of each seed's mean cell correlation with a 95% t
interval, overall and per task, next to the pooled correlation (all tasks and
steps in one, the earlier, misleading figure). The paper expects the outgoing
correlation below 0 (reliable sources send more) and the incoming one above 0.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="pbcseq")
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 (at least 2 for an interval)")
    parser.add_argument("--task", default="death")
    parser.add_argument("--record", type=int, default=None, help="row index into the first seed's dataset")
    parser.add_argument("--max-epochs", type=int, default=300)
    parser.add_argument("--patience", type=int, default=30)
    parser.add_argument("--noise", default="dropout", choices=("dropout", "dropconnect"))
    parser.add_argument("--mc-samples", type=int, default=5, help="MC passes per test record for the correlations")
    parser.add_argument("--validation-mc-samples", type=int, default=None,
                        help="MC passes for the validation loss while training (default: 20, as at test time)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.max_epochs, args.patience, args.mc_samples, args.validation_mc_samples = 2, 2, 1, 1, 1
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    torch.set_num_threads(1)

    import pandas as pd
    from scipy.stats import spearmanr

    from negtransfer.data.builtin import load_builtin
    from negtransfer.nn.amtl import TPAMTL
    from negtransfer.report.transfer import (
        correlation_summary,
        plot_transfer_uncertainty,
        transfer_uncertainty_table,
        within_cell_correlations,
    )
    from negtransfer.train.temporal import TemporalTrainConfig, evaluate_auroc, fit

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    config = TemporalTrainConfig(max_epochs=args.max_epochs, patience=args.patience,
                                 validation_mc_samples=args.validation_mc_samples)
    per_seed, pooled = {}, []
    for seed in range(args.seeds):
        ds = load_builtin(args.dataset, seed=seed)
        torch.manual_seed(seed)
        trained = fit(TPAMTL(ds.n_features, ds.n_tasks, noise=args.noise), ds, config=config, seed=seed)
        auroc = evaluate_auroc(trained, ds, seed=seed, mc_samples=config.mc_samples)
        print(f"seed {seed}: test AUROC", {k: round(v, 4) for k, v in auroc.items()}, flush=True)
        if seed == 0:
            record = args.record
            if record is None:
                k = ds.task_names.index(args.task)
                test = ds.indices("test")
                candidates = test[(ds.Y[test, k] == 1) & (ds.lengths[test] == ds.lengths.max())]
                record = int(candidates[0]) if len(candidates) else int(test[0])
            table = transfer_uncertainty_table(trained.model, ds, record, mc_samples=20, seed=seed)
            table.to_csv(out / "transfer.csv", index=False)
            plot_transfer_uncertainty(table, out / "transfer.png")
            labels = {t: (None if np.isnan(v) else int(v)) for t, v in zip(ds.task_names, ds.Y[record], strict=True)}
            print(f"record {record} (id {ds.info['record_ids'][record]}), labels {labels}")
        tables = pd.concat([transfer_uncertainty_table(trained.model, ds, int(r), mc_samples=args.mc_samples,
                                                       seed=seed) for r in ds.indices("test")])  # fmt: skip
        per_seed[seed] = within_cell_correlations(tables)
        other = tables[tables["source"] != tables["target"]]
        sent = other.groupby(["record", "step", "source"]).agg(t=("outgoing", "sum"), u=("source_uncertainty", "first"))
        got = other.groupby(["record", "step", "target"]).agg(t=("incoming", "sum"), u=("target_uncertainty", "first"))
        pooled.append((spearmanr(sent["u"], sent["t"])[0], spearmanr(got["u"], got["t"])[0]))
    cells = pd.concat([df.assign(seed=s) for s, df in per_seed.items()])
    cells.to_csv(out / "cells.csv", index=False)
    if args.seeds < 2:
        print("one seed: no interval; mean cell correlations", cells.groupby("kind")["rho"].mean().to_dict())
        return
    summary = correlation_summary(per_seed)
    summary.to_csv(out / "summary.csv", index=False)
    print(f"\nWithin (task, step) Spearman correlations over test records; mean over {args.seeds} seeds "
          f"of each seed's mean cell, 95% t interval:\n")
    print("| kind | task | mean | s.e. | 95% CI | seeds > 0 |\n|---|---|---:|---:|---|---:|")
    for row in summary.itertuples():
        print(f"| {row.kind} | {row.task} | {row.mean:+.3f} | {row.se:.3f} | [{row.low:+.3f}, {row.high:+.3f}] | "
              f"{row.positive_seeds}/{row.seeds} |")
    pooled = np.asarray(pooled)
    print(f"\nPooled over tasks and steps (per seed, for comparison): outgoing {np.round(pooled[:, 0], 3).tolist()}, "
          f"incoming {np.round(pooled[:, 1], 3).tolist()}")
    print(f"wrote {out}/cells.csv, summary.csv, transfer.csv, transfer.png")


if __name__ == "__main__":
    main()
