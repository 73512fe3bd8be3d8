"""Executors: where the expensive work of a command runs (in this process, or a pool of processes).

Two kinds of work, one interface:

* :meth:`Executor.run` takes chunks (lists of runs: (group, repeat) pairs),
  trains each chunk as one vectorised stack of hard-sharing models, and hands
  every finished chunk's results to a callback in the calling process, which
  writes them to the run store (``gains``, ``group``, ``sources``);
* :meth:`Executor.map` calls a function on each of a list of work items (one
  comparison model trained for one run, in ``compare``) and hands each result
  to a callback in the calling process, which stores it.

Callers only see this small interface, so a distributed engine (Ray, Dask) can
be added as another class. Results never depend on the executor: each model's
numbers are fixed by its inputs alone.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Protocol, Sequence

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.train.batched import ModelResult, train_group_models
from negtransfer.train.config import TrainConfig

Group = tuple[int, ...]
Run = tuple[Group, int]  # (group, repeat)
ChunkDone = Callable[[list[ModelResult]], None]
ItemDone = Callable[[int, Any], None]


class Executor(Protocol):
    """Trains chunks of groups and reports each finished chunk."""

    def run(
        self,
        dataset: MultiTaskDataset,
        chunks: Sequence[Sequence[Run]],
        config: TrainConfig,
        seed: int,
        on_chunk: ChunkDone,
    ) -> None: ...

    def map(self, work: Callable[[Any], Any], items: Sequence[Any], on_result: ItemDone) -> None:
        """Call ``work(item)`` for every item; ``on_result(index, result)`` in this process as each finishes."""


class InProcessExecutor:
    """Trains the chunks one after another in this process (vectorised within a chunk).

    Parameters
    ----------
    on_epoch : callable(epoch, models_still_training), optional
        Fine-grained progress from inside a chunk.
    """

    def __init__(self, on_epoch: Callable[[int, int], None] | None = None):
        self.on_epoch = on_epoch

    def run(self, dataset, chunks, config, seed, on_chunk) -> None:
        for chunk in chunks:
            on_chunk(_train_chunk(dataset, chunk, config, seed, on_epoch=self.on_epoch))

    def map(self, work, items, on_result) -> None:
        for index, item in enumerate(items):
            on_result(index, work(item))


def _train_chunk(dataset, chunk, config, seed, on_epoch=None):
    """Train one chunk of (group, repeat) runs as one stack."""
    return train_group_models(dataset, [g for g, _ in chunk], config, seed, repeats=[r for _, r in chunk],
                              on_epoch=on_epoch)


class ProcessPoolExecutor:
    """Trains chunks in parallel in a pool of local worker processes.

    Each worker trains one chunk at a time, single-threaded (as every stack is
    trained), so ``workers`` processes occupy ``workers`` cores. Workers end
    with the calling process, even when it is killed with SIGKILL
    (:func:`negtransfer.runs.lifeline.die_with_parent`), and multiprocessing's
    resource tracker then ends too: no process is left behind.

    Parameters
    ----------
    workers : int, optional
        Number of processes (default: the number of CPU cores).

    Raises
    ------
    ValueError
        ``workers`` below 1.
    """

    def __init__(self, workers: int | None = None):
        if workers is not None and (isinstance(workers, bool) or int(workers) != workers or workers < 1):
            raise ValueError(f"--workers must be a whole number >= 1, got {workers!r}")
        self.workers = int(workers) if workers is not None else (os.cpu_count() or 1)

    def run(self, dataset, chunks, config, seed, on_chunk) -> None:
        self._each([(_train_chunk, (dataset, list(c), config, seed)) for c in chunks],
                   lambda index, results: on_chunk(results))

    def map(self, work, items, on_result) -> None:
        """``work`` and the items must pickle (a module-level function, plain data)."""
        self._each([(work, (item,)) for item in items], on_result)

    def _each(self, calls, on_result) -> None:
        import concurrent.futures as cf
        import multiprocessing as mp

        from negtransfer.runs.lifeline import die_with_parent

        if not calls:
            return
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=die_with_parent,
                                    initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(fn, *args): index for index, (fn, args) in enumerate(calls)}
            try:
                for fut in cf.as_completed(futures):
                    on_result(futures[fut], fut.result())
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


def make_executor(name: str, workers: int | None = None, on_epoch=None) -> Executor:
    """``"local"`` (in-process, vectorised) or ``"process"`` (local process pool)."""
    if name == "local":
        return InProcessExecutor(on_epoch=on_epoch)
    if name == "process":
        return ProcessPoolExecutor(workers)
    raise ValueError(f"unknown executor {name!r}; use 'local' or 'process'")
