"""How close the stacked trainer runs to its arithmetic floor on one core.

The workload is the training of ``negtransfer gains --dataset yeast --groups
random:64 --repeats 1``: the 14 single-task (STL) runs and the 64 random group
runs, through :func:`negtransfer.runs.runner.ensure_runs` (the runner's stacks,
an in-memory run store), one thread (``torch.set_num_threads(1)``).

Its *matrix work* is counted from what was trained: per model and epoch, the
training steps' forward and backward products (the weight gradients of every
layer, the input gradients of every layer but the first) and the epoch's
validation forward pass, plus the final evaluation of the validation and test
rows; each (m x k) @ (k x n) product counts 2mkn FLOPs, on the padded rows the
trainer multiplies. The *floor* is that work divided by the same core's peak,
measured in the same run as the speed of a 2048-square ``torch.mm`` (MKL
sgemm). Each round times the peak (median of 3 products) just before and just
after the training and divides the training time by the floor at the mean of
the two: the peak and the training it is paired with see the same state of
the core (clock, load), which keeps the ratio steadier than either time. The
script prints each round and ``floor_ratio: X``, the median over the rounds
of training seconds / (FLOPs / peak FLOP/s) (issue 26's goal: X <= 2.5), in
wall time. On a machine shared
with other work, wall time also counts the time the process waits for a core:
``floor_ratio_cpu: X`` is the same ratio in the process's CPU seconds (training
and peak both), which that waiting leaves out (contention for caches and
memory stays in).

Run: ``python benchmarks/training_floor.py [--rounds 5]`` (``--smoke``: 4
groups, 3 epochs, one round; a check that it runs). The machine may be
shared: the load average before and after is printed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import time

import numpy as np
import torch

from negtransfer.data.builtin import load_builtin
from negtransfer.data.dataset import TEST, TRAIN, VALIDATION
from negtransfer.jobs.gains import GainsOptions
from negtransfer.runs.executors import InProcessExecutor
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import MEMORY, RunStore
from negtransfer.train.batched import ROW_BLOCK, batch_slices, stopping_rows
from negtransfer.train.config import TrainConfig
from negtransfer.train.losses import TaskLossLayout

PEAK_SIZE = 2048


def peak_flops(repeats: int = 3, clock=time.perf_counter) -> float:
    """Median FLOP/s of a ``PEAK_SIZE``-square single-precision matrix product on one thread (by ``clock``)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(PEAK_SIZE, PEAK_SIZE, generator=gen)
    b = torch.randn(PEAK_SIZE, PEAK_SIZE, generator=gen)
    torch.mm(a, b)  # warm-up
    times = []
    for _ in range(repeats):
        t0 = clock()
        torch.mm(a, b)
        times.append(clock() - t0)
    return 2.0 * PEAK_SIZE**3 / float(np.median(times))


def padded(rows: int) -> int:
    return -(-rows // ROW_BLOCK) * ROW_BLOCK


def matrix_flops(dataset, config: TrainConfig, epochs: list[int]) -> float:
    """Matrix FLOPs of training models that ran ``epochs`` epochs each (multi-label data: every model steps over
    the same batches), their per-epoch validation and the final evaluation."""
    layout = TaskLossLayout(dataset.tasks)
    widths = [dataset.n_features, *config.hidden, layout.n_outputs]
    products = [a * b for a, b in itertools.pairwise(widths)]
    per_row_forward = 2 * sum(products)
    per_row_step = per_row_forward + 2 * sum(products) + 2 * sum(products[1:])  # forward, dW, dX (not layer 1)
    n_train = int((dataset.split == TRAIN).sum())
    step_rows = sum(padded(s.stop - s.start) for s in batch_slices(n_train, config.batch_size))
    val_rows = padded(stopping_rows(dataset, config).size)
    final_rows = padded(int((dataset.split == VALIDATION).sum())) + padded(int((dataset.split == TEST).sum()))
    total_epochs = sum(epochs)
    return float(total_epochs * (step_rows * per_row_step + val_rows * per_row_forward)
                 + len(epochs) * final_rows * per_row_forward)


def one_core_executor():
    """The in-process executor on one core (an older checkout's executor, which always used one, as it is)."""
    try:
        return InProcessExecutor(workers=1)
    except TypeError:
        return InProcessExecutor()


def train_workload(dataset, runs, config: TrainConfig, chunk_size: int | None) -> tuple[float, float, list[int]]:
    """Wall and CPU seconds to train ``runs`` through the runner (one thread; its default stacks unless
    ``chunk_size``), and each run's epochs."""
    chunk = {} if chunk_size is None else {"chunk_size": chunk_size}
    t0, c0 = time.perf_counter(), time.process_time()
    results = ensure_runs(dataset, runs, config, 0, RunStore(MEMORY), executor=one_core_executor(), **chunk)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, [res.runs[0].epochs for res in results.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="Alternating timings of training and peak.")
    parser.add_argument("--groups", type=int, default=64)
    parser.add_argument("--chunk-size", type=int, default=None, help="Models per stack (default: the runner's).")
    parser.add_argument("--smoke", action="store_true", help="4 groups, 3 epochs, one round: checks that it runs.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = load_builtin("yeast", seed=0)
    config = TrainConfig(max_epochs=3) if args.smoke else TrainConfig()
    groups = GainsOptions(groups=f"random:{4 if args.smoke else args.groups}").requested_groups(dataset.task_names, 0)
    runs = [(t,) for t in range(dataset.n_tasks)] + [g for g in groups if len(g) > 1]
    rounds = 1 if args.smoke else args.rounds
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.2f}; torch {torch.__version__}, 1 thread")
    print(f"workload: yeast, {len(runs)} runs ({dataset.n_tasks} STL + {len(runs) - dataset.n_tasks} groups), "
          f"1 repeat, batch {config.batch_size}, up to {config.max_epochs} epochs")
    ensure_runs(dataset, runs[:2], TrainConfig(max_epochs=1), 0, RunStore(MEMORY), executor=one_core_executor())
    ratios, cpu_ratios, wall, cpu, peaks, cpu_peaks = [], [], [], [], [], []
    for r in range(rounds):
        # the peak on each side of the training, paired with it: a slower or faster spell of the core (load,
        # clock) moves both, and the round's ratio less
        before = [peak_flops(repeats=3), peak_flops(repeats=3, clock=time.process_time)]
        seconds, cpu_seconds, epochs = train_workload(dataset, runs, config, args.chunk_size)
        after = [peak_flops(repeats=3), peak_flops(repeats=3, clock=time.process_time)]
        work = matrix_flops(dataset, config, epochs)
        peak, cpu_peak = float(np.mean([before[0], after[0]])), float(np.mean([before[1], after[1]]))
        wall.append(seconds)
        cpu.append(cpu_seconds)
        peaks.append(peak)
        cpu_peaks.append(cpu_peak)
        ratios.append(seconds / (work / peak))
        cpu_ratios.append(cpu_seconds / (work / cpu_peak))
        print(f"round {r + 1}: training {seconds:.2f} s wall, {cpu_seconds:.2f} s CPU, {work / 1e9:.1f} GFLOP; "
              f"peak {peak / 1e9:.1f} GFLOP/s wall, {cpu_peak / 1e9:.1f} per CPU second; ratio {ratios[-1]:.2f} "
              f"wall, {cpu_ratios[-1]:.2f} CPU")
    print(f"median training {np.median(wall):.2f} s wall ({np.median(cpu):.2f} s CPU); matrix work {work / 1e9:.1f} "
          f"GFLOP; peak {np.median(peaks) / 1e9:.1f} GFLOP/s ({np.median(cpu_peaks) / 1e9:.1f} per CPU second); "
          f"floor {work / np.median(peaks):.2f} s; load average now {os.getloadavg()[0]:.2f}")
    print(f"floor_ratio_cpu: {np.median(cpu_ratios):.2f}")
    print(f"floor_ratio: {np.median(ratios):.2f}")


if __name__ == "__main__":
    main()
