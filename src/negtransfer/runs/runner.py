"""Make sure a set of runs exists: reuse stored results, train the rest (the one run path of every command).

:func:`ensure` is the only code that reads the run store before training: it
takes run specifications of any kind (:mod:`negtransfer.runs.specs`), finds
which the store holds (:func:`~negtransfer.runs.specs.store_keys`), sends the
rest to the executor (in this process, a pool of processes, or Ray), and writes
each finished piece as it arrives, so a killed job resumes where it stopped with
identical numbers. :func:`ensure_runs` is its form for group runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.runs.executors import Executor, InProcessExecutor
from negtransfer.runs.specs import (
    RunOutput,
    RunSpec,
    StoreKeys,
    config_digest,
    config_record,
    group_specs,
    store_keys,
)
from negtransfer.runs.store import MEMORY, RunStore
from negtransfer.runs.store_info import checkpoints_beside
from negtransfer.train.config import TrainConfig
from negtransfer.train.results import ModelResult, RepeatedResult

__all__ = ["ensure", "ensure_runs", "repeated_results"]

Group = tuple[int, ...]
Run = tuple[Group, int]  # (group, repeat)

#: ``chunk_size`` of :func:`ensure`: one stack per worker of the executor, where memory allows.
AUTO_STACKS = None



class TrainedSink(Protocol):
    """Where :func:`ensure` appends each specification it trained: a list, or anything with ``append``."""

    def append(self, spec: RunSpec, /) -> None: ...


def ensure(
    data: Any,
    specs: Sequence[RunSpec],
    seed: int,
    store: RunStore | None,
    *,
    executor: Executor | None = None,
    chunk_size: int | None = AUTO_STACKS,
    on_progress: Callable[[int, int], None] | None = None,
    trained: TrainedSink | None = None,
) -> list[RunOutput]:
    """The outputs of every run specification, training only those the store does not hold.

    Stacked (group) runs are trained in vectorised stacks by
    ``executor.run``: with ``chunk_size`` None (the default, :data:`AUTO_STACKS`)
    all pending runs of one dataset and configuration form one stack per
    worker of the executor (:func:`stack_count`; configurations that differ
    only in ``max_epochs`` with ``early_stopping`` off count as one, each
    model training its own epoch budget as if alone), split further only where a
    stack would exceed :data:`~negtransfer.train.batched.STACK_MEMORY`; a
    positive ``chunk_size`` gives stacks of that many models (a group's
    repeats side by side). Every other
    kind one run per work item by ``executor.map``. Each finished chunk or item
    is written to the store when it arrives. A specification whose store
    entries are all among those of another missing one (the all-task group run
    and the tracked all-task run of the same repeat) is not trained on its own:
    the larger run writes its entries too.

    Parameters
    ----------
    data : dataset, or sequence of datasets
        The data every run trains on, or one dataset per repeat (``data[r]``
        for the runs of repeat r; ``compare``'s runs each have their own split).
    specs : sequence of RunSpec
    seed : int
        The job's seed (each kind derives its runs' training seeds from it).
    store : RunStore or None
        None: an in-memory store, gone on return (nothing is kept).
    executor : Executor, optional
        Default: in this process.
    chunk_size : int
        Models per vectorised stack; None: automatic (see above).
    on_progress : callable(done, total), optional
        Called with the runs finished so far (stored ones count as done).
    trained : list (or any TrainedSink), optional
        When given, the specifications this call trained are appended (one per
        model trained), each before the progress call that counts it.

    Returns
    -------
    list of RunOutput
        One per specification, in order, as read back from the store (so a
        first call and a later one return the same numbers).

    Raises
    ------
    ValueError
        ``chunk_size`` below 1, or a repeat with no dataset in ``data``.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError("chunk_size must be >= 1 (or None: one stack per worker where memory allows)")
    job = _Ensure(data, list(specs), int(seed), RunStore(MEMORY) if store is None else store, trained, on_progress)
    job.plan()
    executor = executor or InProcessExecutor()
    for dataset, config, digests, chunks in job.stacked_chunks(chunk_size, executor_workers(executor)):
        executor.run(dataset, chunks, config, job.seed, job.chunk_writer(digests))
    singles = job.single_pieces()
    if singles:
        executor.map(train_one, [(job.specs[i], job.dataset_of(job.specs[i]), job.seed, job.checkpoint_folder(i))
                                 for i in singles],
                     lambda position, output: job.on_single(singles[position], output))
    return job.read_outputs()


def stored_count(data: Any, specs: Sequence[RunSpec], seed: int, store: RunStore) -> int:
    """How many of the (distinct) runs of ``specs`` the store already holds: :func:`ensure`'s planning, no training."""
    if not specs:
        return 0
    job = _Ensure(data, list(specs), int(seed), store, None, None)
    job.plan()
    return job.done


#: Fewest runs per stack worth a worker of its own (fewer runs go to fewer workers).
MIN_RUNS_PER_WORKER = 8


def stack_count(dataset: Any, config: TrainConfig, groups: Sequence[Group], workers: int) -> int:
    """Into how many stacks :func:`ensure` splits ``groups``' pending runs by default.

    One per worker of the executor (each worker trains one stack, one core
    each), fewer when there are under :data:`MIN_RUNS_PER_WORKER` runs per
    worker, more when a stack would exceed
    :data:`~negtransfer.train.batched.STACK_MEMORY` (:func:`~negtransfer.train.batched.stack_bytes`).
    Which runs share a stack never changes their numbers.
    """
    from negtransfer.train.batched import STACK_MEMORY, stack_bytes

    n = len(groups)
    if n == 0:
        return 1
    total = sum(stack_bytes(dataset, config, g) for g in groups)
    by_memory = -(-total // STACK_MEMORY)
    by_workers = max(1, min(workers, n // MIN_RUNS_PER_WORKER))
    return int(min(n, max(by_memory, by_workers)))


def executor_workers(executor: Any) -> int:
    """How many stacks ``executor`` trains at once (its ``workers``; 1 for an executor without that attribute)."""
    workers = getattr(executor, "workers", 1)
    return max(1, int(workers)) if isinstance(workers, int) else 1


def train_one(item: tuple[RunSpec, Any, int, Path | None]) -> RunOutput:
    """Train one non-stacked run in a worker: ``item = (spec, dataset, seed, checkpoint folder or None)``
    (module-level, so it pickles). Its fits save their state to the folder as they train and resume from it
    (:func:`negtransfer.train.checkpoint.resume_fits`)."""
    from negtransfer.train.checkpoint import resume_fits

    spec, dataset, seed, folder = item
    if spec.kind.train is None:
        raise ValueError(f"{spec.kind.name!r} runs are trained in vectorised chunks (Executor.run), not one by one")
    with resume_fits(folder, label=f"{spec.extra('model', spec.kind.name)} run {spec.repeat}"):
        return spec.kind.train(dataset, spec, seed)


def checkpoint_root(store: RunStore) -> Path | None:
    """The folder beside a file-backed run store where running fits keep their state (None in memory)."""
    return None if store.in_memory else checkpoints_beside(store.path)


@dataclass
class _Ensure:
    """The bookkeeping of one :func:`ensure` call: keys, what is missing, which run covers which, progress."""

    data: Any
    specs: list[RunSpec]
    seed: int
    store: RunStore
    trained: TrainedSink | None
    on_progress: Callable[[int, int], None] | None
    keys: list[StoreKeys] = field(default_factory=list)
    pieces: dict[int, list[int]] = field(default_factory=dict)  # trained spec -> the missing specs it also makes
    done: int = 0
    total: int = 0
    _fingerprints: dict[int, str] = field(default_factory=dict)

    def dataset_of(self, spec: RunSpec) -> Any:
        if isinstance(self.data, (list, tuple)):
            if spec.repeat >= len(self.data):
                raise ValueError(f"a run of repeat {spec.repeat} has no dataset: {len(self.data)} given, one per repeat")
            return self.data[spec.repeat]
        return self.data

    def fingerprint(self, spec: RunSpec) -> str:
        dataset = self.dataset_of(spec)
        if id(dataset) not in self._fingerprints:
            self._fingerprints[id(dataset)] = dataset.fingerprint()
        return self._fingerprints[id(dataset)]

    # ---------------------------------------------------------------- planning
    def plan(self) -> None:
        """Keys of every spec; the missing ones grouped into pieces (a run and the runs it covers)."""
        digests: dict[int, str] = {}  # a configuration's hash, once per configuration object
        for s in self.specs:
            if id(s.config) not in digests:
                digests[id(s.config)] = config_digest(s.config)
        self.keys = [store_keys(s, self.fingerprint(s), self.seed, digests[id(s.config)]) for s in self.specs]
        have = _Stored.read(self.store, self.keys)
        entries = [k.entries() for k in self.keys]
        first_of: dict[frozenset, int] = {}
        for i, e in enumerate(entries):
            first_of.setdefault(e, i)
        distinct = list(first_of.values())
        missing = [i for i in distinct if not have.holds(self.keys[i])]
        self.total, self.done = len(distinct), len(distinct) - len(missing)
        owner = _coverers(missing, entries)
        pieces: dict[int, list[int]] = {i: [] for i in missing if owner[i] == i}
        for i in missing:
            if owner[i] != i:
                pieces[owner[i]].append(i)
        # in the order of the first spec each piece makes
        self.pieces = dict(sorted(pieces.items(), key=lambda item: min([item[0], *item[1]])))
        self._progress()

    def stacked_chunks(self, chunk_size: int | None, workers: int = 1
                       ) -> list[tuple[Any, Any, frozenset[str], list[list[Run]]]]:
        """Per (dataset, configuration): the missing stacked runs in chunks, a group's repeats side by side
        (``chunk_size`` None: :func:`stack_count` stacks, every one a share of every part of the run list),
        with the configuration's hash. Fixed-budget configurations that differ only in ``max_epochs``
        (:func:`_stack_digest`) form one part: its configuration trains the largest budget, each run a
        ``(group, repeat, epochs)`` entry with its own budget, and it carries every member's hash."""
        position: dict[Group, int] = {}
        for s in self.specs:
            if s.kind.stacked:
                position.setdefault(s.group, len(position))
        parts: dict[tuple[int, str], list[int]] = {}
        for i in self.pieces:
            if self.specs[i].kind.stacked:
                parts.setdefault((id(self.dataset_of(self.specs[i])), self._stack_digest(i)), []).append(i)
        out = []
        for members in parts.values():
            members.sort(key=lambda i: (position[self.specs[i].group], self.specs[i].repeat))
            first = self.specs[members[0]]
            digests = frozenset(self.keys[i].model_row()[3] for i in members)
            config = first.config
            runs: list = [(self.specs[i].group, self.specs[i].repeat) for i in members]
            if len(digests) > 1:  # fixed budgets of several lengths in one stack
                budgets = [self.specs[i].config.max_epochs for i in members]
                config = replace(config, max_epochs=max(budgets))
                runs = [(g, r, e) for (g, r), e in zip(runs, budgets, strict=True)]
            dataset = self.dataset_of(first)
            if chunk_size:
                chunks = [runs[a: a + chunk_size] for a in range(0, len(runs), chunk_size)]
            else:  # every stack takes every n-th run: alike in size and cost
                n = stack_count(dataset, config, [run[0] for run in runs], workers)
                chunks = [runs[start::n] for start in range(n)]
            out.append((dataset, config, digests, chunks))
        return out

    def _stack_digest(self, i: int) -> str:
        """What must match for spec ``i`` to share a stack: its configuration's hash, or for a fixed budget
        (a :class:`TrainConfig` with ``early_stopping`` off) that of the configuration with ``max_epochs`` set
        to 1, so runs of different budgets stack together."""
        config = self.specs[i].config
        if isinstance(config, TrainConfig) and not config.early_stopping:
            return "fixed-budget:" + config_digest(replace(config, max_epochs=1))
        return self.keys[i].model_row()[3]

    def single_pieces(self) -> list[int]:
        return [i for i in self.pieces if not self.specs[i].kind.stacked]

    # ---------------------------------------------------------------- writing
    def chunk_writer(self, digests: frozenset[str]) -> Callable[[list[ModelResult]], None]:
        """The callback that stores each finished chunk of the stacked runs of one configuration (of several
        fixed-budget configurations: ``digests``, each result then found by its epochs too)."""
        budgets = len(digests) > 1

        def run_key(group, repeat, epochs) -> tuple:
            return (tuple(group), repeat, epochs) if budgets else (tuple(group), repeat)

        index = {run_key(self.specs[i].group, self.specs[i].repeat, getattr(self.specs[i].config, "max_epochs", None)): i
                 for i in self.pieces if self.specs[i].kind.stacked and self.keys[i].model_row()[3] in digests}

        def on_chunk(results: list[ModelResult]) -> None:
            done = [index[run_key(res.group, res.repeat, res.epochs)] for res in results]
            rows: dict[tuple[str, int, str], list[int]] = {}
            for i in done:
                fp, _, seed, digest = self.keys[i].model_row()
                rows.setdefault((fp, seed, digest), []).append(i)
            position = dict(zip(done, results, strict=True))
            for (fp, seed, digest), members in rows.items():  # one transaction per repeat and configuration
                self.store.put_many(fp, seed, digest, [position[i] for i in members],
                                    config=config_record(self.specs[members[0]].config))
            self._finished(done)

        return on_chunk

    def checkpoint_folder(self, i: int) -> Path | None:
        """Where spec ``i``'s fits keep their state while it trains: one folder per run, named by its keys'
        digest, under :func:`checkpoint_root` (None for an in-memory store)."""
        root = checkpoint_root(self.store)
        if root is None:
            return None
        digest = hashlib.sha256(repr(sorted(self.keys[i].entries())).encode()).hexdigest()[:32]
        return root / digest

    def on_single(self, i: int, output: RunOutput) -> None:
        """Store one finished non-stacked run: its model row, then its artifacts; then remove the state its
        fits saved while it trained (:meth:`checkpoint_folder`)."""
        spec, keys = self.specs[i], self.keys[i]
        if keys.run is not None:
            if output.result is None:
                raise ValueError(f"a {spec.kind.name!r} run returned no model result")
            fp, _, seed, digest = keys.run
            self.store.put_many(fp, seed, digest, [output.result], config=config_record(spec.config))
        for name, key in keys.artifacts:
            if name not in output.records:
                raise ValueError(f"a {spec.kind.name!r} run returned no {name!r} (it returned "
                                 f"{', '.join(output.records) or 'nothing'})")
            self.store.put_artifact(key, output.records[name])
        folder = self.checkpoint_folder(i)
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                folder.parent.rmdir()  # only when no other run's state is left in it
        self._finished([i])

    def _finished(self, pieces: list[int]) -> None:
        """Count finished pieces (each with the runs it covers) and report progress once."""
        for i in pieces:
            if self.trained is not None:
                self.trained.append(self.specs[i])
            self.done += 1 + len(self.pieces.get(i, ()))
        self._progress()

    def _progress(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.done, self.total)

    # ---------------------------------------------------------------- reading
    def read_outputs(self) -> list[RunOutput]:
        have = _Stored.read(self.store, self.keys)
        out = []
        for spec, keys in zip(self.specs, self.keys, strict=True):
            result = None
            if keys.run is not None:
                result = have.rows.get(keys.run)
                if result is None:
                    raise RuntimeError(f"the {spec.kind.name!r} run of group {spec.group}, repeat {spec.repeat} is "
                                       "not in the run store after training; was the store changed meanwhile?")
                result.repeat = spec.repeat
            records = {name: have.artifacts[key] for name, key in keys.artifacts}
            out.append(RunOutput(result, records))
        return out


def _coverers(missing: list[int], entries: list[frozenset]) -> dict[int, int]:
    """Per missing spec, the missing spec that trains it: itself, or one whose store entries include all of its own.

    Among several such runs the one with the most entries is taken (ties: the first).
    """
    holders: dict[Any, list[int]] = {}
    for i in missing:
        if len(entries[i]) > 1:
            for e in entries[i]:
                holders.setdefault(e, []).append(i)
    owner = {}
    for i in missing:
        some = next(iter(entries[i]))
        larger = [j for j in holders.get(some, ()) if j != i and entries[i] < entries[j]]
        owner[i] = max(larger, key=lambda j: (len(entries[j]), -j)) if larger else i
    for i in missing:  # follow the chain to a run covered by none
        while owner[owner[i]] != owner[i]:
            owner[i] = owner[owner[i]]
    return owner


@dataclass
class _Stored:
    """What the store holds of a list of keys."""

    rows: dict[tuple, ModelResult]
    artifacts: dict[str, Any]

    @classmethod
    def read(cls, store: RunStore, keys: Sequence[StoreKeys]) -> "_Stored":
        wanted: dict[tuple[str, int, str], set[str]] = {}
        for k in keys:
            if k.run is not None:
                fp, grp, seed, digest = k.run
                wanted.setdefault((fp, seed, digest), set()).add(grp)
        rows = {}
        for (fp, seed, digest), groups in wanted.items():
            found = store.get_many(fp, [tuple(int(t) for t in g.split("+")) for g in groups], seed, digest)
            rows.update({(fp, grp, seed, digest): res for grp, res in found.items()})
        artifacts = {}
        for key in dict.fromkeys(key for k in keys for _, key in k.artifacts):
            value = store.get_artifact(key)
            if value is not None:
                artifacts[key] = value
        return cls(rows, artifacts)

    def holds(self, keys: StoreKeys) -> bool:
        return (keys.run is None or keys.run in self.rows) and all(key in self.artifacts for _, key in keys.artifacts)


def repeated_results(specs: Sequence[RunSpec], outputs: Sequence[RunOutput]) -> dict[Group, RepeatedResult]:
    """Group runs' outputs as group -> :class:`RepeatedResult` (its repeats in repeat order)."""
    runs: dict[Group, dict[int, ModelResult]] = {}
    for spec, output in zip(specs, outputs, strict=True):
        if output.result is None:
            raise ValueError(f"the {spec.kind.name!r} run of group {spec.group} has no model result: not a group run")
        runs.setdefault(spec.group, {})[spec.repeat] = output.result
    return {g: RepeatedResult(g, [by_repeat[r] for r in sorted(by_repeat)]) for g, by_repeat in runs.items()}


def ensure_runs(
    dataset: MultiTaskDataset,
    groups: Sequence[Sequence[int]],
    config: TrainConfig,
    seed: int,
    store: RunStore,
    *,
    repeats: int = 1,
    executor: Executor | None = None,
    chunk_size: int | None = AUTO_STACKS,
    on_progress: Callable[[int, int], None] | None = None,
    trained: list[Run] | None = None,
) -> dict[Group, RepeatedResult]:
    """Results of ``repeats`` runs of every group, training only those the store does not hold (:func:`ensure`).

    Repeat ``r`` of a group is keyed in the store by the training seed
    :func:`~negtransfer.train.batched.repeat_seed` (seed, r), so raising
    ``repeats`` later trains only the new repeats, and repeat 0 is the run of a
    job without repeats. Runs are trained in vectorised stacks of
    ``chunk_size`` models (None: one per worker of the executor, :func:`ensure`); repeats of a group are stacked like other groups.
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
    if chunk_size is not None and chunk_size < 1:
        raise ValueError("chunk_size must be >= 1 (or None: one stack per worker where memory allows)")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    specs = group_specs(groups, config, repeats)
    outputs = ensure(dataset, specs, seed, store, executor=executor, chunk_size=chunk_size,
                     on_progress=on_progress, trained=None if trained is None else _AsRuns(trained))
    return repeated_results(specs, outputs)


@dataclass
class _AsRuns:
    """Appends a trained specification to a list of (group, repeat) as it finishes (before progress is reported)."""

    runs: list

    def append(self, spec: RunSpec) -> None:
        self.runs.append((spec.group, spec.repeat))
