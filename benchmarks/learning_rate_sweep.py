"""How the default learning rate and batch size were chosen (docs/training.md).

Trains the 14 yeast STL models and the all-task model (seed 0) for each
(lr, batch size) and prints the summed *validation* losses: no test data is
used for the choice.

Run: ``python benchmarks/learning_rate_sweep.py`` (``--smoke``: lr 0.01, batch 32, 2 epochs; a check that it
runs).
"""

from __future__ import annotations

import argparse

import numpy as np

from negtransfer.data.builtin import load_builtin
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = parser.parse_args()
    rates, batches, epochs = ((0.01,), (32,), 2) if args.smoke else ((0.001, 0.01, 0.05), (32, 64), 200)
    ds = load_builtin("yeast", seed=0)
    n = ds.n_tasks
    groups = [(t,) for t in range(n)] + [tuple(range(n))]
    print("| lr | batch | STL val-loss sum | all-task val-loss sum | STL epochs (mean) |")
    print("|---|---|---|---|---|")
    for lr in rates:
        for batch in batches:
            cfg = TrainConfig(lr=lr, batch_size=batch, max_epochs=epochs, patience=10)
            res = train_group_models(ds, groups, cfg, seed=0)
            stl = sum(res[t].val_loss[t] for t in range(n))
            everything = sum(res[-1].val_loss.values())
            epochs = np.mean([r.epochs for r in res[:n]])
            print(f"| {lr} | {batch} | {stl:.3f} | {everything:.3f} | {epochs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
