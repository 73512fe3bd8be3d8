"""Executors: where the expensive work of a command runs (in this process, or a pool of processes).

Two kinds of work, one interface:

* :meth:`Executor.run` takes chunks (lists of runs: (group, repeat) pairs),
  trains each chunk as one vectorised stack of hard-sharing models, and hands
  every finished chunk's results to a callback in the calling process, which
  writes them to the run store (``gains``, ``group``, ``sources``);
* :meth:`Executor.map` calls a function on each of a list of work items (one
  comparison model trained for one run, in ``compare``) and hands each result
  to a callback in the calling process, which stores it.

Callers only see this small interface: :class:`RayExecutor` runs the same
chunks and items as Ray tasks on one machine or a cluster (docs/scaling.md).
Results never depend on the executor: each model's numbers are fixed by its
inputs alone. An executor that holds resources (Ray) frees them in ``close()``;
the others have a ``close()`` that does nothing, so a caller can always call it.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Protocol, Sequence

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.train.batched import ModelResult, train_group_models
from negtransfer.train.config import TrainConfig

Group = tuple[int, ...]
Run = tuple  # (group, repeat), or (group, repeat, epochs) in a fixed-budget stack
ChunkDone = Callable[[list[ModelResult]], None]
ItemDone = Callable[[int, Any], None]


def _checked_workers(workers: int | None) -> int:
    """``workers`` checked (a whole number >= 1), or every CPU core for None."""
    if workers is None:
        return os.cpu_count() or 1
    if isinstance(workers, bool) or int(workers) != workers or workers < 1:
        raise ValueError(f"--workers must be a whole number >= 1, got {workers!r}")
    return int(workers)


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

    def close(self) -> None:
        """Free what the executor holds (a Ray instance it started); it may be used again afterwards."""


class _HoldsNothing:
    """An executor with nothing to free after a command."""

    def close(self) -> None:
        """Nothing to free."""


class InProcessExecutor(_HoldsNothing):
    """Trains the chunks in this process: vectorised within a chunk, one thread per core across chunks.

    Each chunk (a stack) is trained single-threaded, as always; with
    ``workers`` > 1 up to that many chunks train at once, each in a thread of
    its own (PyTorch's operations release the interpreter lock, so the threads
    occupy as many cores). A model's numbers depend on its own inputs only, so
    they are bit for bit those of one thread (tests/runs/test_ensure.py). Chunks of a
    network other than the built-in MLP, and chunks on a GPU, are trained one
    after another (such a network may draw from torch's global generator, and
    one GPU already runs a stack's operations in parallel). Finished chunks are
    reported (``on_chunk``) in this thread, in the order they finish.

    Parameters
    ----------
    on_epoch : callable(epoch, models_still_training), optional
        Fine-grained progress from inside a chunk (one thread only).
    workers : int, optional
        Chunks trained at once (default: the number of CPU cores). The runner
        (:func:`negtransfer.runs.runner.ensure`) makes one stack per worker.
    """

    def __init__(self, on_epoch: Callable[[int, int], None] | None = None, workers: int | None = None):
        self.on_epoch = on_epoch
        self.workers = _checked_workers(workers)

    def __repr__(self) -> str:
        return f"InProcessExecutor(workers={self.workers})"

    def run(self, dataset, chunks, config, seed, on_chunk) -> None:
        threads = min(self.workers, len(chunks))
        if threads <= 1 or not config.model.is_default or config.device != "cpu":
            for chunk in chunks:
                on_chunk(train_chunk(dataset, chunk, config, seed, on_epoch=self.on_epoch))
            return
        _in_threads(threads, [(dataset, list(c), config, seed) for c in chunks], on_chunk)

    def map(self, work, items, on_result) -> None:
        for index, item in enumerate(items):
            on_result(index, work(item))


def _in_threads(threads: int, calls: list[tuple], on_chunk: ChunkDone) -> None:
    """:func:`train_chunk` of every argument tuple in ``threads`` threads; ``on_chunk`` here as each finishes.

    PyTorch's intra-op thread count is set to 1 here and in every thread of the
    pool (OpenMP keeps it per thread, MKL per process), so every stack trains
    single-threaded and no thread restores another count while the others
    train; this thread's count is restored afterwards.
    """
    import concurrent.futures as cf

    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with cf.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="negtransfer-stack",
                                   initializer=torch.set_num_threads, initargs=(1,)) as pool:
            futures = [pool.submit(train_chunk, *args) for args in calls]
            try:
                for fut in cf.as_completed(futures):
                    on_chunk(fut.result())
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise
    finally:
        torch.set_num_threads(previous)


def train_chunk(dataset: MultiTaskDataset, chunk: Sequence[Run], config: TrainConfig, seed: int,
                on_epoch: Callable[[int, int], None] | None = None) -> list[ModelResult]:
    """Train one chunk of runs as one vectorised stack.

    Parameters
    ----------
    dataset : MultiTaskDataset
    chunk : sequence of (group, repeat), or of (group, repeat, epochs)
        With a third element every run trains exactly that many epochs (``config.early_stopping`` False;
        the runner's fixed-budget stacks, :func:`negtransfer.runs.runner.ensure`).
    config : TrainConfig
    seed : int
        The job's seed (repeat r trains with ``repeat_seed(seed, r)``).
    on_epoch : callable(epoch, models_still_training), optional

    Returns
    -------
    list of ModelResult
        In the order of ``chunk``.
    """
    budgets = [run[2] for run in chunk] if chunk and len(chunk[0]) > 2 else None
    return train_group_models(dataset, [run[0] for run in chunk], config, seed, repeats=[run[1] for run in chunk],
                              on_epoch=on_epoch, epochs=budgets)


def _start_worker(parent: int) -> None:
    """A process-pool worker: it ends with ``parent``; a model that cannot stack is not warned about again in every
    worker (the job's process said so once: a ``note:`` line, or the Python API's warning)."""
    import warnings

    from negtransfer.runs.lifeline import die_with_parent
    from negtransfer.train.batched import UnstackableModelWarning

    die_with_parent(parent)
    warnings.filterwarnings("ignore", category=UnstackableModelWarning)


class WorkerPoolBroken(RuntimeError):
    """A worker process of executor ``"process"`` ended abruptly (the command line shows it as one error line)."""


#: What a dead worker of the process pool most often means, and what to do (the pool's own BrokenProcessPool says
#: neither).
_BROKEN_POOL = (
    "a worker process of executor 'process' ended abruptly. Its workers start fresh Python processes (spawn) that "
    "import your main script: in a script, put the calls to negtransfer under `if __name__ == \"__main__\":` (else "
    "every worker runs the script again and fails). Otherwise a worker was killed, e.g. out of memory: use fewer "
    "workers or executor='local'")


def _check_importable_in_workers(factory: str | None) -> None:
    """Raise ValueError when a model factory lives in a ``__main__`` that worker processes cannot import.

    A function defined in a notebook (or read from standard input) is keyed as ``__main__:make``; a spawned worker
    has no such module to import it from, and would fail only once training starts.
    """
    import sys

    if factory is None or not factory.startswith("__main__:"):
        return
    main = sys.modules.get("__main__")
    if getattr(main, "__file__", None) is None:
        name = factory.partition(":")[2]
        raise ValueError(f"the model factory {name} is defined in an interactive session (a notebook), which worker "
                         f"processes cannot import; put it in a file and pass model='mynet.py:{name}', or use "
                         f"executor='local'")


class ProcessPoolExecutor(_HoldsNothing):
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
        self.workers = _checked_workers(workers)

    def __repr__(self) -> str:
        return f"ProcessPoolExecutor(workers={self.workers})"

    def run(self, dataset, chunks, config, seed, on_chunk) -> None:
        _check_importable_in_workers(getattr(getattr(config, "model", None), "factory", None))
        self._each([(train_chunk, (dataset, list(c), config, seed)) for c in chunks],
                   lambda index, results: on_chunk(results))

    def map(self, work, items, on_result) -> None:
        """``work`` and the items must pickle (a module-level function, plain data)."""
        self._each([(work, (item,)) for item in items], on_result)

    def _each(self, calls, on_result) -> None:
        import concurrent.futures as cf
        import multiprocessing as mp

        if not calls:
            return
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_start_worker,
                                    initargs=(os.getpid(),)) as pool:
            futures = {pool.submit(fn, *args): index for index, (fn, args) in enumerate(calls)}
            try:
                for fut in cf.as_completed(futures):
                    on_result(futures[fut], fut.result())
            except cf.process.BrokenProcessPool as exc:
                for fut in futures:
                    fut.cancel()
                raise WorkerPoolBroken(_BROKEN_POOL) from exc
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


class RayExecutor:
    """Trains chunks as Ray tasks on a local Ray instance or a Ray cluster.

    Each chunk (or work item of :meth:`map`) is one Ray task that declares the
    resources it holds (``cpus_per_task`` CPUs, ``gpus_per_task`` GPUs). A
    worker only computes and returns its results: this process (the driver)
    is the only writer of the run store, and commits each finished chunk in one
    transaction, as with the other executors. A task whose worker dies (killed,
    out of memory, a lost node) is run again by Ray, up to ``max_retries``
    times; its results are stored once, when an attempt finishes. Training is
    single-threaded inside a chunk and each model's numbers depend on its inputs
    alone, so results are bit-identical to :class:`InProcessExecutor`'s.

    Ray is started on first use and stopped by :meth:`close`: without
    ``address`` a local instance with ``num_cpus`` CPUs starts and stops with
    the command; with ``address`` (``"auto"``, ``"HOST:6379"``) the executor
    connects to a running cluster and leaves it running. When Ray is already initialised in this process (a
    notebook, a test fixture), that instance is used and left running.

    Parameters
    ----------
    address : str, optional
        The Ray cluster to connect to; default: start a local instance.
    num_cpus : int, optional
        CPUs of a local instance (default: the number of CPU cores); not used
        with ``address``.
    cpus_per_task : float
        CPUs each task declares (1: training is single-threaded; ``compare
        --threads N`` declares N).
    gpus_per_task : float
        GPUs each task declares (0 on CPU; e.g. 1 or 0.25 with ``--device cuda``).
    max_retries : int
        Times Ray runs a task again after its worker died.
    quiet : bool
        Silence Ray's own log lines and its workers' output (``-q``).
    chunk_trainer : callable, optional
        ``chunk_trainer(dataset, chunk, config, seed) -> list[ModelResult]``,
        run in the workers for :meth:`run`; default :func:`train_chunk`
        (the stacked trainer). It must be importable or picklable by Ray.

    Raises
    ------
    ValueError
        A resource count below its minimum.
    """

    def __init__(self, address: str | None = None, num_cpus: int | None = None, cpus_per_task: float = 1,
                 gpus_per_task: float = 0, max_retries: int = 3, quiet: bool = False,
                 chunk_trainer: Callable | None = None):
        if num_cpus is not None:
            _checked_workers(num_cpus)
        if not cpus_per_task > 0 or not gpus_per_task >= 0 or max_retries < 0:
            raise ValueError(f"a Ray task needs cpus_per_task > 0, gpus_per_task >= 0 and max_retries >= 0, got "
                             f"{cpus_per_task}, {gpus_per_task} and {max_retries}")
        self.address, self.num_cpus = address, num_cpus
        self.cpus_per_task, self.gpus_per_task = cpus_per_task, gpus_per_task
        self.max_retries, self.quiet = int(max_retries), quiet
        self.chunk_trainer = chunk_trainer or train_chunk
        self._started = False  # whether this executor called ray.init (and so calls ray.shutdown)

    @property
    def workers(self) -> int:
        """Tasks that run at once: the instance's CPUs over ``cpus_per_task`` (the cluster's, once connected)."""
        cpus: float = self.num_cpus or os.cpu_count() or 1
        if self.address is not None and self._started:
            cpus = self._ray().cluster_resources().get("CPU", cpus)
        return max(1, int(cpus // self.cpus_per_task))

    def run(self, dataset, chunks, config, seed, on_chunk) -> None:
        if not chunks:
            return
        ray = self._ray()
        shared = ray.put(dataset)  # sent to the object store once, not with every task
        self._each(self.chunk_trainer, [(shared, list(c), config, seed) for c in chunks],
                   lambda index, results: on_chunk(results))

    def map(self, work, items, on_result) -> None:
        """``work`` and the items must pickle (a module-level function, plain data)."""
        if items:
            self._each(work, [(item,) for item in items], on_result)

    def _each(self, fn, calls, on_result) -> None:
        ray = self._ray()
        task = ray.remote(_call_with_writable_arrays).options(
            num_cpus=self.cpus_per_task, num_gpus=self.gpus_per_task, max_retries=self.max_retries,
            retry_exceptions=False)  # a worker that died is retried; an exception in the code is an error
        index_of = {task.remote(fn, *args): index for index, args in enumerate(calls)}
        pending = list(index_of)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                result = ray.get(ready[0])
                on_result(index_of[ready[0]], result)
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise

    def start(self) -> None:
        """Start the local Ray instance or connect to the cluster now, rather than at the first chunk.

        Raises
        ------
        ValueError
            The cluster at ``address`` cannot be reached, or it has fewer GPUs than a task declares.
        """
        ray = self._ray()
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus < self.gpus_per_task:
            where = f"the Ray cluster at {self.address}" if self.address else "the local Ray instance"
            raise ValueError(f"--device cuda: {where} has {gpus:g} GPUs, and each Ray task asks for "
                             f"{self.gpus_per_task:g}; add GPU nodes (ray start --num-gpus N) or use --device cpu")

    def _ray(self):
        """The ``ray`` module, initialised (started here on first use unless it already was)."""
        ray = import_ray()
        if not ray.is_initialized():
            import logging

            options = dict(include_dashboard=False, log_to_driver=not self.quiet,
                           logging_level=logging.ERROR if self.quiet else logging.WARNING)
            if self.address is None:
                options["num_cpus"] = self.num_cpus or os.cpu_count() or 1
            else:
                _check_reachable(self.address)
            try:
                ray.init(address=self.address, **options)
            except ConnectionError as exc:
                raise ValueError(f"--ray-address {self.address}: cannot connect to a Ray cluster "
                                 f"({' '.join(str(exc).split())[:200]}); start one with `ray start --head` and give "
                                 f"the address it prints") from None
            self._started = True
        return ray

    def close(self) -> None:
        """Stop the local Ray instance (or disconnect from the cluster) if this executor started it."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Raise ValueError unless something listens at a ``HOST:PORT`` Ray address (``"auto"`` is left to Ray).

    Ray itself retries an unreachable address for minutes before it gives up.
    """
    if address == "auto":
        return
    import socket

    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except ValueError:
        raise ValueError(f"--ray-address {address!r}: give the head node's HOST:PORT (e.g. 10.0.0.5:6379), or "
                         f"'auto' on a node of the cluster") from None
    except OSError as exc:
        raise ValueError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc}); start one "
                         f"with `ray start --head` and give the address it prints") from None


def _call_with_writable_arrays(fn: Callable, *args):
    """``fn(*args)`` in a Ray worker, on copies of the arguments.

    Ray hands NumPy arrays over from its object store read-only (zero-copy);
    the trainers expect their own arrays, as in the other executors.
    """
    import copy

    return fn(*copy.deepcopy(args))


def import_ray():
    """The ``ray`` module, or an ImportError whose one-line message says how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError("--executor ray needs Ray, which is not installed: pip install 'negtransfer[ray]' "
                          "(or pip install ray==2.60.0)") from None
    return ray


def make_executor(name: str, workers: int | None = None, on_epoch=None, **ray_options) -> Executor:
    """An executor by name.

    Parameters
    ----------
    name : {"local", "process", "ray"}
        In this process (vectorised), a pool of local processes, or Ray tasks.
    workers : int, optional
        Threads of the in-process executor, processes of the pool, or CPUs of a local Ray instance
        (default: the number of CPU cores).
    on_epoch : callable, optional
        Progress from inside a chunk (``"local"`` only).
    **ray_options
        Passed to :class:`RayExecutor` (``address``, ``cpus_per_task``, ``gpus_per_task``, ``quiet``).

    Returns
    -------
    Executor

    Raises
    ------
    ValueError
        An unknown name or a bad count.
    ImportError
        ``"ray"`` without Ray installed (one-line message saying how to install it).
    """
    if name == "local":
        return InProcessExecutor(on_epoch=on_epoch, workers=workers)
    if name == "process":
        return ProcessPoolExecutor(workers)
    if name == "ray":
        import_ray()
        return RayExecutor(num_cpus=workers, **ray_options)
    raise ValueError(f"unknown executor {name!r}; use 'local', 'process' or 'ray'")
