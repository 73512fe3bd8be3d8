"""Make sure a set of runs exists: reuse stored results, train the rest."""

from __future__ import annotations

from typing import Callable, Sequence

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.runs.executors import Executor, InProcessExecutor
from negtransfer.runs.store import RunStore, group_text
from negtransfer.train.batched import ModelResult
from negtransfer.train.config import TrainConfig

Group = tuple[int, ...]


def ensure_runs(
    dataset: MultiTaskDataset,
    groups: Sequence[Sequence[int]],
    config: TrainConfig,
    seed: int,
    store: RunStore,
    *,
    executor: Executor | None = None,
    chunk_size: int = 64,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[Group, ModelResult]:
    """Results for every group, training only those the store does not hold.

    Finished chunks are written to the store as they arrive, each in one
    transaction, so an interrupted call loses at most the chunks in flight and a
    repeated call resumes where it stopped, with identical numbers.

    Parameters
    ----------
    groups : sequence of task-index sequences
    chunk_size : int
        Models per vectorised stack.
    on_progress : callable(done, total), optional
        Called with the number of models finished so far (stored ones count as done).

    Returns
    -------
    dict
        Sorted task-index tuple -> ModelResult, for every requested group.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    executor = executor or InProcessExecutor()
    fingerprint, config_hash = dataset.fingerprint(), config.config_hash()
    wanted = [tuple(sorted(int(i) for i in g)) for g in groups]
    todo = store.missing(fingerprint, wanted, seed, config_hash)
    total = len(set(wanted))
    done = total - len(todo)
    if on_progress is not None:
        on_progress(done, total)
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]

    def on_chunk(results: list[ModelResult]) -> None:
        nonlocal done
        store.put_many(fingerprint, seed, config_hash, results, config=config.to_dict())
        done += len(results)
        if on_progress is not None:
            on_progress(done, total)

    if chunks:
        executor.run(dataset, chunks, config, seed, on_chunk)
    stored = store.get_many(fingerprint, wanted, seed, config_hash)
    return {g: stored[group_text(g)] for g in dict.fromkeys(wanted)}
