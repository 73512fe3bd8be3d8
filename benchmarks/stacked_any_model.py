"""Stacked vs one at a time for the built-in CNN and LSTM encoders (issue 24), end to end.

K group models (default 32) of one encoder on a small synthetic dataset are
trained two ways by the same trainer (``train_group_models``), with the same
numbers bit for bit:

* stacked: one call, the K models in one vectorised stack
  (:class:`~negtransfer.nn.stacked.StackedModel`, ``torch.func.vmap``);
* one at a time: K calls of one group each, each model a stack of one run
  without the pairing a stack of one uses for bit-identity (the network's own
  cost, the fairest baseline); the trainer's own stack of one (paired with an
  unused copy where the encoder needs it) is timed once too and printed as
  ``..._vs_trainer_alone``.

End to end: batches, the training steps, per-epoch validation and the final
evaluation. Every model trains a fixed number of epochs (no early stopping),
so both ways do the same work. Each of ``--rounds`` one-at-a-time timings sits
between two stacked timings and is divided by their mean; the median of these
ratios is printed as ``stacked_speedup_cnn: X`` and ``stacked_speedup_lstm: X``
(the range over rounds follows). Training is single-threaded inside the
trainer (for bit-identity), so with the default ``--threads 1`` these are
one-core figures. ``--threads N`` measures N cores the way negtransfer uses
them (its process-pool executor): N worker processes of one thread each; the
K groups are dealt out to the N workers, which train their share at the same
time, stacked (one stack of about K/N models each) or one at a time; each
timing is the wall time until the last worker is done. The workers are started
and warmed up (the stacking probe, first-call costs) before any timing.

Peak memory of the stack: the rise of a fresh process's peak resident set
(``VmHWM``, reset through ``/proc/self/clear_refs`` on Linux) over its
resident set before one stacked training (after a warm-up of two models).

Run: ``python benchmarks/stacked_any_model.py [--groups 32] [--rounds 5] [--threads 2]``;
``--smoke``: 4 groups, 1 epoch, 1 round (a check that it runs).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from negtransfer.data.dataset import MultiTaskDataset, TaskSpec
from negtransfer.nn.stacked import StackingPlan
from negtransfer.train import batched
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig
from negtransfer.train.model_choice import ModelChoice

#: One example's shape per encoder: 1 x 12 x 12 images; sequences of 14 days of 4 features (a ridership-like window).
SHAPES = {"cnn": (1, 12, 12), "lstm": (14, 4)}
N_TASKS = 6


def synthetic_dataset(shape: tuple[int, ...], n_rows: int, seed: int = 0) -> MultiTaskDataset:
    """Six binary tasks from random projections of the examples (X of N x ``shape``)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_rows, *shape)).astype(np.float32)
    flat = X.reshape(n_rows, -1)
    z = flat @ rng.normal(size=(flat.shape[1], N_TASKS))
    Y = (z > 0).astype(float)
    split = rng.choice([0, 0, 0, 1, 2], size=n_rows).astype(np.int8)
    tasks = tuple(TaskSpec(f"t{i}", "binary", (0, 1)) for i in range(N_TASKS))
    names = tuple(f"x{i}" for i in range(flat.shape[1]))
    try:
        return MultiTaskDataset("synthetic", tasks, X, Y, split, names)
    except ValueError:  # a dataset class that holds tables only: examples of any shape set afterwards
        data = MultiTaskDataset("synthetic", tasks, flat, Y, split, names)
        data.X = X
        return data


def groups_of(k: int) -> list[tuple[int, ...]]:
    """The first ``k`` groups of two or more tasks, smallest first."""
    subsets = [g for size in range(2, N_TASKS + 1) for g in itertools.combinations(range(N_TASKS), size)]
    return subsets[:k]


def _peak_rss_bytes() -> tuple[int, int] | None:
    """(current, peak) resident set of this process, or None where /proc is unavailable."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def stack_peak_memory(data, groups, config) -> float | None:
    """MiB by which one stacked training raises the process's peak resident set."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current resident set
    except OSError:
        return None
    before = _peak_rss_bytes()
    train_group_models(data, groups, config, seed=0)
    after = _peak_rss_bytes()
    if before is None or after is None:
        return None
    return (after[1] - before[0]) / 2**20


def _peak_memory_child(encoder: str, k: int, epochs: int, n_rows: int, queue) -> None:
    data = synthetic_dataset(SHAPES[encoder], n_rows)
    config = TrainConfig(model=ModelChoice(encoder), max_epochs=epochs, early_stopping=False, lr=0.05)
    train_group_models(data, groups_of(2), config, seed=0)  # imports and first-call allocations
    queue.put(stack_peak_memory(data, groups_of(k), config))


def fresh_process_peak_memory(encoder: str, k: int, epochs: int, n_rows: int) -> float | None:
    """:func:`stack_peak_memory` of one stacked training in a fresh process (no memory cached by earlier runs)."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=_peak_memory_child, args=(encoder, k, epochs, n_rows, queue))
    child.start()
    result = queue.get()
    child.join()
    return result


_WORKER: dict = {}  # a worker process's dataset and configuration (set by _start_worker)


def _start_worker(encoder: str, epochs: int, n_rows: int) -> None:
    """A worker's data and configuration, warmed up by one stacked training of two groups (the probe, first calls)."""
    data = synthetic_dataset(SHAPES[encoder], n_rows)
    config = TrainConfig(model=ModelChoice(encoder), max_epochs=epochs, early_stopping=False, lr=0.05)
    train_group_models(data, groups_of(2), config, seed=0)
    _WORKER.update(data=data, config=config, encoder=encoder)


def _train_share(groups: list[tuple[int, ...]], stacked: bool) -> float:
    """In a worker: train ``groups`` as one stack, or one at a time (stacks of one, unpaired); seconds."""
    data, config, encoder = _WORKER["data"], _WORKER["config"], _WORKER["encoder"]
    outputs = [1] * N_TASKS
    width = batched._batch_width(config.batch_size, 1)
    plan = batched.model_stacking_plan(config, SHAPES[encoder], outputs, width)
    key = (config.model, SHAPES[encoder], tuple(outputs), width)
    t0 = time.perf_counter()
    if stacked:
        train_group_models(data, groups, config, seed=0)
        return time.perf_counter() - t0
    batched._PLANS[key] = StackingPlan(True, pair_single=False)
    try:
        for g in groups:
            train_group_models(data, [g], config, seed=0)
        return time.perf_counter() - t0
    finally:
        batched._PLANS[key] = plan


def time_encoder_on_cores(encoder: str, k: int, rounds: int, epochs: int, n_rows: int, cores: int) -> dict:
    """:func:`time_encoder` with ``cores`` worker processes of one thread each (module doc)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    groups = groups_of(k)
    shares = [groups[w::cores] for w in range(cores)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(cores, mp_context=context, initializer=_start_worker,
                             initargs=(encoder, epochs, n_rows)) as pool:
        def run(stacked: bool) -> float:
            t0 = time.perf_counter()
            list(pool.map(_train_share, shares, [stacked] * cores))
            return time.perf_counter() - t0

        run(True)  # starts every worker (its warm-up) and the first stacked calls
        together, one_by_one, ratios = [run(True)], [], []
        for _ in range(rounds):
            one_by_one.append(run(False))
            together.append(run(True))
            ratios.append(one_by_one[-1] / ((together[-2] + together[-1]) / 2))
    return {"stacked": statistics.median(together), "alone": statistics.median(one_by_one),
            "ratio": statistics.median(ratios), "ratio_spread": (min(ratios), max(ratios)),
            "spread": (min(together), max(together), min(one_by_one), max(one_by_one))}


def time_encoder(encoder: str, k: int, rounds: int, epochs: int, n_rows: int) -> dict:
    data = synthetic_dataset(SHAPES[encoder], n_rows)
    groups = groups_of(k)
    config = TrainConfig(model=ModelChoice(encoder), max_epochs=epochs, early_stopping=False, lr=0.05)
    outputs = [1] * N_TASKS
    width = batched._batch_width(config.batch_size, 1)
    plan = batched.model_stacking_plan(config, SHAPES[encoder], outputs, width)
    key = (config.model, SHAPES[encoder], tuple(outputs), width)

    def stacked() -> float:
        t0 = time.perf_counter()
        train_group_models(data, groups, config, seed=0)
        return time.perf_counter() - t0

    def alone(paired: bool) -> float:
        batched._PLANS[key] = StackingPlan(True, pair_single=paired and plan.pair_single)
        try:
            t0 = time.perf_counter()
            for g in groups:
                train_group_models(data, [g], config, seed=0)
            return time.perf_counter() - t0
        finally:
            batched._PLANS[key] = plan

    stacked()  # warm-up: the stacking probe, first-call costs
    together, one_by_one, ratios = [stacked()], [], []
    for _ in range(rounds):
        # each one-at-a-time timing sits between two stacked ones: its ratio is taken against their mean, so
        # load that drifts during a round hits both ways alike
        one_by_one.append(alone(paired=False))
        together.append(stacked())
        ratios.append(one_by_one[-1] / ((together[-2] + together[-1]) / 2))
    trainer_alone = alone(paired=True)
    return {"stacked": statistics.median(together), "alone": statistics.median(one_by_one),
            "ratio": statistics.median(ratios), "ratio_spread": (min(ratios), max(ratios)),
            "trainer_alone": trainer_alone, "spread": (min(together), max(together), min(one_by_one),
                                                       max(one_by_one)),
            "memory": fresh_process_peak_memory(encoder, k, epochs, n_rows), "pair_single": plan.pair_single}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=32, help="K: models per stack")
    parser.add_argument("--rounds", type=int, default=5, help="timings of each way, alternated")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rows", type=int, default=640, help="examples (60%% training rows)")
    parser.add_argument("--threads", type=int, default=1,
                        help="cores: this many worker processes of one thread each (the process executor's way)")
    parser.add_argument("--smoke", action="store_true", help="4 groups, 1 epoch, 1 round: a check that it runs")
    args = parser.parse_args()
    if args.smoke:
        args.groups, args.rounds, args.epochs, args.rows = 4, 1, 1, 160
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads available; training runs on one thread per process")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"K = {args.groups} models, {args.epochs} epochs, {args.rows} examples, 6 binary tasks, "
          f"{args.rounds} alternated rounds (medians), {args.threads} core(s)")
    if args.threads > 1:
        for encoder in ("cnn", "lstm"):
            res = time_encoder_on_cores(encoder, args.groups, args.rounds, args.epochs, args.rows, args.threads)
            lo_s, hi_s, lo_a, hi_a = res["spread"]
            lo, hi = res["ratio_spread"]
            print(f"{encoder} {SHAPES[encoder]} on {args.threads} workers: stacked {res['stacked']:.2f} s "
                  f"[{lo_s:.2f}-{hi_s:.2f}], one at a time {res['alone']:.2f} s [{lo_a:.2f}-{hi_a:.2f}]")
            print(f"stacked_speedup_{encoder}: {res['ratio']:.2f} (rounds {lo:.2f}-{hi:.2f})")
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        return
    for encoder in ("cnn", "lstm"):
        res = time_encoder(encoder, args.groups, args.rounds, args.epochs, args.rows)
        lo_s, hi_s, lo_a, hi_a = res["spread"]
        memory = "n/a" if res["memory"] is None else f"{res['memory']:.0f} MiB"
        print(f"{encoder} {SHAPES[encoder]}: stacked {res['stacked']:.2f} s [{lo_s:.2f}-{hi_s:.2f}], one at a time "
              f"{res['alone']:.2f} s [{lo_a:.2f}-{hi_a:.2f}], trainer's stacks of one {res['trainer_alone']:.2f} s "
              f"(paired: {res['pair_single']}); peak memory of the stack {memory}")
        lo, hi = res["ratio_spread"]
        print(f"{encoder}_stacked_speedup_vs_trainer_alone: {res['trainer_alone'] / res['stacked']:.2f}")
        print(f"stacked_speedup_{encoder}: {res['ratio']:.2f} (rounds {lo:.2f}-{hi:.2f})")
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
