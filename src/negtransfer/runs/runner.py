"""Make sure a set of runs exists: reuse stored results, train the rest."""

from __future__ import annotations

from typing import Callable, Sequence

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.runs.executors import Executor, InProcessExecutor
from negtransfer.runs.store import RunStore, group_text
from negtransfer.train.batched import repeat_seed
from negtransfer.train.config import TrainConfig
from negtransfer.train.results import ModelResult, RepeatedResult

Group = tuple[int, ...]
Run = tuple[Group, int]  # (group, repeat)


def ensure_runs(
    dataset: MultiTaskDataset,
    groups: Sequence[Sequence[int]],
    config: TrainConfig,
    seed: int,
    store: RunStore,
    *,
    repeats: int = 1,
    executor: Executor | None = None,
    chunk_size: int = 64,
    on_progress: Callable[[int, int], None] | None = None,
    trained: list[Run] | None = None,
) -> dict[Group, RepeatedResult]:
    """Results of ``repeats`` runs of every group, training only those the store does not hold.

    Repeat ``r`` of a group is keyed in the store by the training seed
    :func:`~negtransfer.train.batched.repeat_seed` (seed, r), so raising
    ``repeats`` later trains only the new repeats, and repeat 0 is the run of a
    job without repeats. Runs are trained in vectorised stacks of
    ``chunk_size`` models; repeats of a group are stacked like other groups.
    Finished chunks are written to the store as they arrive, each in one
    transaction, so an interrupted call loses at most the chunks in flight and a
    repeated call resumes where it stopped, with identical numbers.

    Parameters
    ----------
    groups : sequence of task-index sequences
    repeats : int
        Runs per group (repeat numbers 0 .. repeats - 1).
    chunk_size : int
        Models per vectorised stack.
    on_progress : callable(done, total), optional
        Called with the number of runs finished so far (stored ones count as done).
    trained : list, optional
        When given, the (group, repeat) runs this call trained are appended.

    Returns
    -------
    dict
        Sorted task-index tuple -> :class:`RepeatedResult` (``repeats`` runs), for every requested group.
    """
    if chunk_size < 1:
        raise ValueError("chunk_size must be >= 1")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    executor = executor or InProcessExecutor()
    fingerprint, config_hash = dataset.fingerprint(), config.config_hash()
    wanted = list(dict.fromkeys(tuple(sorted(int(i) for i in g)) for g in groups))
    seeds = [repeat_seed(seed, r) for r in range(repeats)]
    todo: list[Run] = []
    for r, s in enumerate(seeds):
        todo += [(g, r) for g in store.missing(fingerprint, wanted, s, config_hash)]
    position = {g: i for i, g in enumerate(wanted)}
    todo.sort(key=lambda run: (position[run[0]], run[1]))  # a group's repeats side by side
    total = len(wanted) * repeats
    done = total - len(todo)
    if on_progress is not None:
        on_progress(done, total)
    chunks = [todo[i : i + chunk_size] for i in range(0, len(todo), chunk_size)]

    def on_chunk(results: list[ModelResult]) -> None:
        nonlocal done
        for r in sorted({res.repeat for res in results}):
            store.put_many(fingerprint, seeds[r], config_hash, [res for res in results if res.repeat == r],
                           config=config.to_dict())
        if trained is not None:
            trained.extend((res.group, res.repeat) for res in results)
        done += len(results)
        if on_progress is not None:
            on_progress(done, total)

    if chunks:
        executor.run(dataset, chunks, config, seed, on_chunk)
    per_repeat = []
    for r, s in enumerate(seeds):
        stored = store.get_many(fingerprint, wanted, s, config_hash)
        for res in stored.values():
            res.repeat = r
        per_repeat.append(stored)
    return {g: RepeatedResult(g, [stored[group_text(g)] for stored in per_repeat]) for g in wanted}
