"""One job of many stacked runs on the three executors: in this process, a process pool, local Ray.

The job: every non-empty group of the first 10 yeast tasks (1023 groups, STL
included), 1 repeat, through :func:`negtransfer.runs.runner.ensure_runs` into a
fresh run store per executor, in chunks of ``--chunk-size`` models. The process
pool and Ray get ``--cpus`` CPUs (2 by default); Ray's wall time includes
starting and stopping its local instance, as a command pays them. The three
stores must hold bit-identical numbers (checked, printed).

Printed per executor: wall time and the *overhead per chunk*: CPU seconds per
chunk not spent training, ``(wall x CPUs - training seconds) / chunks``, where
training seconds are the stacks' own timings (``ModelResult.seconds`` summed
over each chunk's models). It holds scheduling, moving data and results, and
idle CPUs at the end of the job; for Ray it is given with and without the
start-up and shut-down of the local instance.

Run: ``python benchmarks/executors.py [--groups 1023] [--epochs 100] [--chunk-size 64] [--cpus 2]``
(``--smoke``: 20 groups of 2 epochs in chunks of 8; a check that it runs).
The last line is ``ray_vs_inprocess: X`` (Ray's wall time over the in-process
one; below 1 is faster); without Ray installed (``pip install -e ".[ray]"``)
Ray is skipped with a note and the last line is ``process_vs_inprocess: X``. The figures depend heavily on the machine's load:
state it with them (the script prints the load average before and after).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import platform
import tempfile
import time
from pathlib import Path

from negtransfer.data.builtin import load_builtin
from negtransfer.runs.executors import InProcessExecutor, ProcessPoolExecutor, RayExecutor
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig


def all_groups(n_tasks: int, limit: int) -> list[tuple[int, ...]]:
    """The first ``limit`` non-empty groups of ``n_tasks`` tasks, smallest first."""
    groups = [g for size in range(1, n_tasks + 1) for g in itertools.combinations(range(n_tasks), size)]
    return groups[:limit]


def timed_job(dataset, groups, config, executor, chunk_size: int, folder: Path, name: str) -> tuple[float, float, dict]:
    """(wall seconds, training seconds, results) of the job on one executor, into a fresh store."""
    start = time.perf_counter()
    results = ensure_runs(dataset, groups, config, 0, RunStore(folder / f"{name}.sqlite"), executor=executor,
                          chunk_size=chunk_size)
    wall = time.perf_counter() - start
    training = sum(run.seconds for rep in results.values() for run in rep.runs)
    return wall, training, results


def numbers(results: dict) -> dict:
    """Every result field but the wall time."""
    return {g: [{k: v for k, v in vars(run).items() if k != "seconds"} for run in rep.runs]
            for g, rep in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=1023, help="groups of the 10 tasks to train (<= 1023)")
    parser.add_argument("--epochs", type=int, default=100, help="maximum epochs per model (early stopping stays on)")
    parser.add_argument("--chunk-size", type=int, default=64)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the process pool and of the local Ray instance")
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.groups, args.epochs, args.chunk_size = 20, 2, 8

    yeast = load_builtin("yeast", seed=0)
    dataset = yeast.subset_tasks(yeast.task_names[:10])
    groups = all_groups(dataset.n_tasks, args.groups)
    config = TrainConfig(max_epochs=args.epochs)
    chunks = -(-len(groups) // args.chunk_size)
    print(f"{len(groups)} groups of {dataset.n_tasks} yeast tasks, 1 repeat, {chunks} chunks of <= {args.chunk_size} "
          f"models, max {args.epochs} epochs; {args.cpus} CPUs for the pool and Ray; {platform.processor() or '?'}, "
          f"{os.cpu_count()} cores; load average before: {os.getloadavg()[0]:.1f}")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        wall_here, train_here, here = timed_job(dataset, groups, config, InProcessExecutor(), args.chunk_size, folder,
                                                "inprocess")
        print(f"in-process:   {wall_here:8.1f} s  (training {train_here:.1f} s)")
        wall_pool, train_pool, pooled = timed_job(dataset, groups, config, ProcessPoolExecutor(args.cpus),
                                                  args.chunk_size, folder, "pool")
        print(f"process pool: {wall_pool:8.1f} s  overhead per chunk "
              f"{(wall_pool * args.cpus - train_pool) / chunks:.2f} CPU s")

        try:
            import ray
        except ImportError:
            ray = None
            print("ray: not installed (pip install -e \".[ray]\"); skipped")
        executors = [pooled]
        if ray is not None:
            total_ray, remote = time_ray(ray, dataset, groups, config, args, chunks, folder)
            executors.append(remote)
    same = all(numbers(other) == numbers(here) for other in executors)
    print(f"bit-identical results on all {len(executors) + 1}: {same}; load average after: "
          f"{os.getloadavg()[0]:.1f}")
    print(f"process_vs_inprocess: {wall_pool / wall_here:.2f}")
    if ray is not None:
        print(f"ray_vs_inprocess: {total_ray / wall_here:.2f}")


def time_ray(ray, dataset, groups, config, args, chunks: int, folder: Path) -> tuple[float, dict]:
    """(wall seconds with the local instance's start and stop, results) of the job on local Ray."""
    start = time.perf_counter()
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    started = time.perf_counter() - start
    wall_ray, train_ray, remote = timed_job(dataset, groups, config, RayExecutor(), args.chunk_size, folder, "ray")
    start = time.perf_counter()
    ray.shutdown()
    stopped = time.perf_counter() - start
    total_ray = started + wall_ray + stopped
    print(f"ray (local):  {total_ray:8.1f} s  (start {started:.1f} s, job {wall_ray:.1f} s, stop {stopped:.1f} s)"
          f"  overhead per chunk {(wall_ray * args.cpus - train_ray) / chunks:.2f} CPU s, with start and stop "
          f"{(total_ray * args.cpus - train_ray) / chunks:.2f} CPU s")
    return total_ray, remote


if __name__ == "__main__":
    main()
