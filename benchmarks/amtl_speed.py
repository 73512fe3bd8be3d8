"""TP-AMTL training speed: MC passes one at a time vs stacked along the batch (same numbers).

An epoch of TP-AMTL (:class:`negtransfer.nn.amtl.TPAMTL`) runs, per training
batch, one forward pass with gradient and 5 variance passes, and for the
validation loss 20 MC passes of 6 sub-passes each (the pass and its 5 variance
passes). ``TPAMTL.stack_passes = False`` runs them one at a time (the code
before the change); ``True`` (the default) stacks the variance passes, and the
LSTM and task features of all validation passes, along the batch, with the
random draws taken first in the sequential order, so the numbers are the same
bit for bit (this script checks the two training histories are equal).

Each round trains the model from the same seed for ``--epochs`` epochs (no
early stopping) with both settings, in alternating order, and records the
thread CPU time per epoch (immune to other processes on a loaded machine);
``epoch_speedup`` is the ratio of the medians over rounds. The same is
reported for the validation loss alone (``validation_speedup``: 20 MC passes
over the validation split).

Measured 2026-12-07 (``python benchmarks/amtl_speed.py``, pbcseq, three runs on a
2-core machine at load 5-6): epoch_speedup 1.40, 1.33, 1.30; validation_speedup
1.48, 1.51, 1.52; identical numbers in all. What is left of an epoch is mostly
the random draws (about half the stacked validation loss: the numbers fix how
they are drawn) and the transfer network run per pass.

Run: ``python benchmarks/amtl_speed.py [--dataset pbcseq|nafld] [--epochs 10] [--rounds 5]``
(``--smoke``: 2 epochs, 1 round; a check that it runs).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from negtransfer.data.timeseries import load_nafld, load_pbcseq
from negtransfer.nn.amtl import TPAMTL
from negtransfer.train.temporal import TemporalTrainConfig, _arrays, _validation_loss, fit

LOADERS = {"pbcseq": load_pbcseq, "nafld": load_nafld}


def build(dataset, stacked: bool, hidden: int) -> TPAMTL:
    """TP-AMTL as the model catalogue builds it (seed 0), passes stacked or not."""
    torch.manual_seed(0)
    model = TPAMTL(dataset.X.shape[-1], dataset.n_tasks, hidden=hidden)
    model.stack_passes = stacked
    return model


def time_epochs(dataset, stacked: bool, epochs: int, hidden: int) -> tuple[float, list]:
    """Thread CPU seconds per epoch of ``fit`` and the history it gives."""
    model = build(dataset, stacked, hidden)
    config = TemporalTrainConfig(max_epochs=epochs, patience=epochs)
    start = time.thread_time()
    result = fit(model, dataset, config=config, seed=0)
    return (time.thread_time() - start) / epochs, result.history


def time_validation(dataset, stacked: bool, hidden: int, repeats: int) -> tuple[float, float]:
    """Thread CPU seconds of one validation loss (20 MC passes) and its value."""
    model = build(dataset, stacked, hidden)
    x, m, y = _arrays(dataset)
    val = torch.from_numpy(dataset.indices("validation"))
    torch.manual_seed(1)
    start = time.thread_time()
    for _ in range(repeats):
        loss = _validation_loss(model, x[val], m[val], y[val], 20)
    return (time.thread_time() - start) / repeats, loss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(LOADERS), default="pbcseq")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--smoke", action="store_true", help="2 epochs, 1 round: a check that it runs")
    args = parser.parse_args(argv)
    epochs, rounds = (2, 1) if args.smoke else (args.epochs, args.rounds)
    torch.set_num_threads(1)
    dataset = LOADERS[args.dataset](seed=0)
    times: dict[str, dict[bool, list[float]]] = {"epoch": {False: [], True: []}, "validation": {False: [], True: []}}
    identical = True
    for r in range(rounds):
        order = (False, True) if r % 2 == 0 else (True, False)
        histories, losses = {}, {}
        for stacked in order:
            seconds, histories[stacked] = time_epochs(dataset, stacked, epochs, args.hidden)
            times["epoch"][stacked].append(seconds)
        for stacked in order:
            seconds, losses[stacked] = time_validation(dataset, stacked, args.hidden, 1 if args.smoke else 5)
            times["validation"][stacked].append(seconds)
        identical &= histories[False] == histories[True] and losses[False] == losses[True]
    print(f"TP-AMTL on {args.dataset} (hidden {args.hidden}), {epochs} epochs x {rounds} rounds, thread CPU time, one thread")
    for part, by in times.items():
        one, stacked = statistics.median(by[False]), statistics.median(by[True])
        print(f"{part}: one pass at a time {one:.4f} s, stacked {stacked:.4f} s (medians)")
        print(f"{part}_speedup: {one / stacked:.2f}")
    print(f"identical_numbers: {identical}")
    if not identical:
        raise SystemExit("error: the stacked passes changed the numbers; run tests/nn/test_amtl_stacked.py")


if __name__ == "__main__":
    main()
