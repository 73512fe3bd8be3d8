"""The Python API: one function per question, each taking a table and keyword options and returning a typed report.

>>> import negtransfer
>>> report = negtransfer.gains(frame, tasks=["sick", "worse", "stay"], groups="all")   # doctest: +SKIP
>>> report.to_frame()                                                                  # doctest: +SKIP

Every function takes the data as a pandas DataFrame (built into a
:class:`~negtransfer.data.dataset.MultiTaskDataset` by
:func:`~negtransfer.data.build.dataset_from_frame`, the code path of
``--data FILE``), a built-in dataset's name (``"yeast"``), a path to a
``.csv``/``.parquet`` file, or a ``MultiTaskDataset``. The data options
(``tasks``, ``features``, ``task_column``, ``label``, ``task_kinds``,
``impute``) apply to tables; the job's options are the fields of its options
dataclass (:class:`~negtransfer.jobs.gains.GainsOptions`,
:class:`~negtransfer.jobs.grouping.GroupingOptions`,
:class:`~negtransfer.jobs.sources.SourceOptions`,
:class:`~negtransfer.jobs.compare.CompareOptions` with
:class:`~negtransfer.models.base.FitOptions`), and the training options the
fields of :class:`~negtransfer.train.config.TrainConfig` (``max_epochs``,
``lr``, ...) on top of ``preset``; their defaults are those of the command
line. Runs go to ``store`` (a path, or a :class:`~negtransfer.runs.store.RunStore`);
without one they are kept in memory for the call. An unknown option or a bad
value raises ``TypeError`` or ``ValueError`` naming it before anything is trained.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from negtransfer.jobs.choices import MODEL_KINDS

if TYPE_CHECKING:
    import pandas as pd

    from negtransfer.data.dataset import MultiTaskDataset
    from negtransfer.jobs.compare import CompareReport
    from negtransfer.jobs.gains import GainsReport
    from negtransfer.jobs.sources import SourcesReport
    from negtransfer.runs.store import RunStore

__all__ = ["compare", "gains", "group", "sources"]

Progress = Callable[[str, int, int], None]


# ------------------------------------------------------------------ data, store, executor
def _dataset_loader(data: Any, *, tasks=None, features=None, task_column=None, label=None, task_kinds=None,
                    impute=None, kinds: Sequence[str] | None = MODEL_KINDS, command: str = "this function"):
    """``load(seed) -> MultiTaskDataset`` for ``data``, and the dataset's name; bad data raises before reading."""
    import pandas as pd

    from negtransfer.data.dataset import MultiTaskDataset

    table_options = {"features": features, "task_column": task_column, "label_column": label,
                     "task_kinds": dict(task_kinds) if task_kinds is not None else None, "impute": impute}
    task_list = [tasks] if isinstance(tasks, str) else (list(tasks) if tasks is not None else None)
    if isinstance(data, pd.DataFrame):
        from negtransfer.data.build import dataset_from_frame

        return (lambda seed: dataset_from_frame(data, seed=seed, tasks=task_list, name="data", **table_options)), \
            "data"
    given = sorted(k for k, v in table_options.items() if v is not None)
    if isinstance(data, MultiTaskDataset):
        if given:
            raise TypeError(f"{', '.join(given)} apply to a DataFrame or a table file, not to a MultiTaskDataset")
        chosen = data.subset_tasks(task_list) if task_list is not None else data
        return (lambda seed: chosen), data.name
    if isinstance(data, (str, Path)):
        from negtransfer.data.builtin import REGISTRY, load_builtin

        if isinstance(data, str) and data in REGISTRY:
            if given:
                raise TypeError(f"{', '.join(given)} apply to a DataFrame or a table file; leave them out with the "
                                f"built-in dataset {data!r}")
            return (lambda seed: load_builtin(data, seed=seed, tasks=task_list, kinds=kinds, command=command)), data
        path = Path(data)
        if path.exists():
            from negtransfer.data.files import dataset_from_file

            def load_file(seed: int):
                from negtransfer.data.builtin import check_data_kind

                dataset = dataset_from_file(path, seed=seed, tasks=task_list, **table_options)
                check_data_kind(dataset, kinds, command)
                return dataset

            return load_file, str(path)
        raise ValueError(f"data {str(data)!r} is neither a built-in dataset ({', '.join(REGISTRY)}) nor an existing "
                         f"file; pass a pandas DataFrame, a dataset name, a .csv/.parquet/.npz path, a Task_Splits folder, or a MultiTaskDataset")
    raise TypeError(f"data must be a pandas DataFrame, a built-in dataset name, a .csv/.parquet/.npz path (or a Task_Splits "
                    f"folder) or a MultiTaskDataset, got {type(data).__name__}")


def _run_store(store: Any) -> "RunStore":
    """``store`` as a RunStore: None keeps the runs in memory for the call."""
    from negtransfer.runs.store import MEMORY, RunStore

    if store is None:
        return RunStore(MEMORY)
    if isinstance(store, RunStore):
        return store
    if isinstance(store, (str, Path)):
        return RunStore(store)
    raise TypeError(f"store must be a path, a RunStore or None (in memory), got {type(store).__name__}")


def _executor(executor: Any, workers: int | None):
    """``executor`` by name ("local", "process"; "ray" starts a local Ray instance) or as given."""
    from negtransfer.runs.executors import make_executor

    if executor is None or isinstance(executor, str):  # None: the default, as the jobs read it
        return make_executor("local" if executor is None else executor, workers)
    if not callable(getattr(executor, "run", None)):
        raise TypeError(f"executor must be 'local', 'process', 'ray' or an executor object (with a run method, "
                        f"negtransfer.runs.executors.make_executor), got {type(executor).__name__}")
    if workers is not None:
        raise TypeError("workers applies to an executor given by name; an executor object has its own "
                        "(make_executor(name, workers))")
    return executor


def _split_options(options: Mapping[str, Any], job_class: type, job_fields: set[str], what: str,
                   training_class: type | None = None) -> tuple[dict, dict]:
    """Split keyword options into the job's (``job_fields``, fields of ``job_class``) and the training
    configuration's (the fields of ``training_class``: :class:`~negtransfer.train.config.TrainConfig` by default,
    :class:`~negtransfer.models.base.FitOptions` for ``compare``); a TypeError names any other option."""
    if training_class is None:
        from negtransfer.train.config import TrainConfig

        training_class = TrainConfig
    training_fields = {f.name for f in fields(training_class)}
    unknown = sorted(set(options) - job_fields - training_fields)
    if unknown:
        raise TypeError(f"{what}() got unknown option(s) {', '.join(unknown)}; its options are the fields of "
                        f"{job_class.__name__} ({', '.join(sorted(job_fields))}) and of {training_class.__name__} "
                        f"({', '.join(sorted(training_fields))})")
    job = {k: v for k, v in options.items() if k in job_fields}
    training = {k: v for k, v in options.items() if k in training_fields}
    return job, training


def _config(preset: str, training: dict, model_arguments: Mapping[str, Any] | None = None,
            model_version: str | None = None):
    """The training configuration; ``model`` (an encoder name, ``"FILE.py:FUNCTION"``, ``"package.module:FUNCTION"``,
    a module-level function or a ModelChoice) with ``model_arguments`` and ``model_version`` as a ModelChoice."""
    from negtransfer.train.config import TrainConfig, check_device_available

    if model_arguments is not None or model_version is not None:
        training = {**training, "model": _model_choice(training.get("model", "mlp"), model_arguments, model_version)}
    config = TrainConfig.preset(preset, **training)
    check_device_available(config.device)
    return config


def _model_choice(model: Any, arguments: Mapping[str, Any] | None, version: str | None):
    """``model`` with the factory's keyword ``arguments`` and ``version`` (which keys a factory's runs)."""
    from negtransfer.train.model_choice import ModelChoice

    arguments = dict(arguments or {})
    if isinstance(model, ModelChoice):
        raise TypeError("give model_arguments and model_version inside the ModelChoice, not beside it")
    if isinstance(model, str):
        if ":" in model:
            return ModelChoice(factory=model, arguments=tuple(arguments.items()), version=version)
        if version is not None:
            raise ValueError(f"model_version keys the runs of your own factory; the built-in encoder {model!r} "
                             "has its own version")
        return ModelChoice(encoder=model, arguments=tuple(arguments.items()))
    if callable(model):
        return ModelChoice.from_callable(model, version=version, **arguments)
    raise TypeError(f"model must be an encoder name, 'FILE.py:FUNCTION', a function or a ModelChoice, "
                    f"got {type(model).__name__}")


def _check_call(seed: Any, progress: Any) -> int:
    """``seed`` a whole number >= 0 (returned as a Python int: ``np.int64(3)`` and ``3.0`` are 3) and ``progress`` a
    callable or None, before anything is loaded or trained."""
    import numbers

    if isinstance(seed, float) and seed.is_integer():
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable progress(stage, done, total), "
                        f"got {type(progress).__name__}")
    return int(seed)


def _checked(dataset, config) -> None:
    """Check the configuration's model on the dataset before any training (a bad factory raises ValueError); a
    model that trains one at a time is said once, as an UnstackableModelWarning."""
    import warnings

    from negtransfer.train.batched import UnstackableModelWarning, check_model

    plan = check_model(dataset, config)
    if plan.note:
        warnings.warn(f"{config.model.name}: {plan.note}", UnstackableModelWarning, stacklevel=3)


@contextmanager
def _said_once():
    """Training without repeating the UnstackableModelWarning that :func:`_checked` gave."""
    import warnings

    from negtransfer.train.batched import UnstackableModelWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UnstackableModelWarning)
        yield


# ------------------------------------------------------------------ the questions
def gains(data: "pd.DataFrame | str | Path | MultiTaskDataset", *, tasks: Sequence[str] | None = None, features: Sequence[str] | None = None,
          task_column: str | None = None, label: str | None = None, task_kinds: Mapping[str, str] | None = None,
          impute: str | None = None, seed: int = 0, store: Any = None, executor: Any = "local",
          workers: int | None = None, preset: str = "default", progress: Progress | None = None,
          model_arguments: Mapping[str, Any] | None = None, model_version: str | None = None, **options: Any) -> "GainsReport":
    """Which tasks help or hurt each other: the gain of every task in each group against its STL model.

    Parameters
    ----------
    data : DataFrame, str, Path or MultiTaskDataset
        The tasks (module docstring); ``tasks``, ``features``, ``task_column``, ``label``, ``task_kinds`` and
        ``impute`` describe a table.
    seed : int
        Fixes the split, initialisation and batch order.
    store : path, RunStore or None
        Where runs are kept; None: in memory, for this call.
    executor : {"local", "process", "ray"} or Executor
        Where the models train; ``"process"`` starts ``workers`` Python processes (in a script, call under
        ``if __name__ == "__main__":``).
    workers : int, optional
        Threads of ``"local"``, processes of ``"process"`` or CPUs of a local Ray instance (default: every CPU
        core).
    preset : str
        The named training setup (:data:`negtransfer.train.config.PRESETS`).
    model_arguments : mapping, optional
        Keyword arguments of the factory of ``model=``. (``model=`` is a TrainConfig field, given among
        ``**options``: an encoder name ``"mlp"`` (default), ``"cnn"``, ``"lstm"``, ``"transformer"``;
        ``"FILE.py:FUNCTION"`` or ``"package.module:FUNCTION"``; a module-level function; or a
        :class:`~negtransfer.train.model_choice.ModelChoice`; docs/your-network.md. The model is checked on the
        data before any training: a bad factory raises ValueError.)
    model_version : str, optional
        Keys the runs of a factory instead of its source's hash (keep it to reuse stored runs, change it to rerun).
    progress : callable, optional
        ``progress(stage, done, total)``.
    **options
        Fields of :class:`~negtransfer.jobs.gains.GainsOptions` (``groups``: ``"all"``, ``"random:N"``, or groups
        of task names; ``sizes``, ``repeats``, ``chunk_size``) and of :class:`~negtransfer.train.config.TrainConfig`.

    Returns
    -------
    GainsReport
        ``to_frame()``: one row per (group, task) with ``gain`` (negative = negative transfer); ``to_dict()``:
        what ``negtransfer gains`` writes as gains.json.
    """
    seed = _check_call(seed, progress)
    from negtransfer.jobs.gains import GainsOptions, default_groups, run_gains

    job, training = _split_options(options, GainsOptions, {f.name for f in fields(GainsOptions)}, "gains")
    gains_options = GainsOptions(**job)
    config = _config(preset, training, model_arguments, model_version)
    load, _ = _dataset_loader(data, tasks=tasks, features=features, task_column=task_column, label=label,
                              task_kinds=task_kinds, impute=impute, command="negtransfer.gains()")
    dataset = load(seed)
    if job.get("groups") is None:  # the default, or every group where fewer exist (as the command line)
        import warnings

        groups, fewer = default_groups(dataset.n_tasks, gains_options.sizes)
        if fewer:
            warnings.warn(fewer, UserWarning, stacklevel=3)  # the caller of negtransfer.gains (a wrapper)
        gains_options = replace(gains_options, groups=groups)
    gains_options.requested_groups(dataset.task_names, seed)
    _checked(dataset, config)
    with _said_once():
        return run_gains(dataset, gains_options, config, seed, _run_store(store),
                         executor=_executor(executor, workers), progress=progress)


def group(data: "pd.DataFrame | str | Path | MultiTaskDataset", *, tasks: Sequence[str] | None = None, features: Sequence[str] | None = None,
          task_column: str | None = None, label: str | None = None, task_kinds: Mapping[str, str] | None = None,
          impute: str | None = None, seed: int = 0, store: Any = None, executor: Any = "local",
          workers: int | None = None, preset: str = "default", progress: Progress | None = None,
          model_arguments: Mapping[str, Any] | None = None, model_version: str | None = None, **options: Any):
    """How to group the tasks: at most ``budget`` groups that together cover every task (``negtransfer group``).

    Parameters
    ----------
    data, tasks, features, task_column, label, task_kinds, impute, seed, store, executor, workers, preset, progress
        As for :func:`gains`.
    model_arguments, model_version
        As for :func:`gains`: the keyword arguments and the version of your network, ``model=`` (an encoder name,
        ``"FILE.py:FUNCTION"`` or a module-level function ``make(input_shape, outputs) -> (encoder, heads)``,
        given among ``**options``; docs/your-network.md).
    **options
        Fields of :class:`~negtransfer.jobs.grouping.GroupingOptions` (``budget``, ``method``,
        ``n_train_groups``, ``repeats``, ``rounds``, ``audit``, ``refit``, ...) and of
        :class:`~negtransfer.train.config.TrainConfig`. ``refit=True``: after the decision the chosen groups, STL
        and the all-task model are retrained on every non-test row for fixed epochs (the report's ``refit``).

    Returns
    -------
    GroupingReport
        The grouping job's typed report (:class:`negtransfer.jobs.grouping_report.GroupingReport`):
        ``to_dict()`` is what ``negtransfer group`` writes as report.json, ``to_frame()`` one row per task,
        ``affinity_frame()`` the affinity matrix labelled by task.
    """
    seed = _check_call(seed, progress)
    from negtransfer.jobs.grouping import GroupingOptions, run_grouping

    job, training = _split_options(options, GroupingOptions, {f.name for f in fields(GroupingOptions)}, "group")
    grouping_options = GroupingOptions(**job)
    config = _config(preset, training, model_arguments, model_version)
    load, _ = _dataset_loader(data, tasks=tasks, features=features, task_column=task_column, label=label,
                              task_kinds=task_kinds, impute=impute, command="negtransfer.group()")
    dataset = load(seed)
    grouping_options.check(dataset.n_tasks)
    _checked(dataset, config)
    with _said_once():
        result = run_grouping(dataset, grouping_options, config, seed, _run_store(store),
                              executor=_executor(executor, workers), progress=progress)
    return result.report


def sources(data: "pd.DataFrame | str | Path | MultiTaskDataset", target: str, *, tasks: Sequence[str] | None = None, features: Sequence[str] | None = None,
            task_column: str | None = None, label: str | None = None, task_kinds: Mapping[str, str] | None = None,
            impute: str | None = None, seed: int = 0, store: Any = None, executor: Any = "local",
            workers: int | None = None, preset: str = "default", progress: Progress | None = None,
            model_arguments: Mapping[str, Any] | None = None, model_version: str | None = None,
            **options: Any) -> "SourcesReport":
    """Which source tasks to train ``target`` with: a surrogate of its loss over source subsets
    (``negtransfer sources``).

    Parameters
    ----------
    data, tasks, features, task_column, label, task_kinds, impute, seed, store, executor, workers, preset, progress
        As for :func:`gains`.
    model_arguments, model_version
        As for :func:`gains`: the keyword arguments and the version of your network, ``model=`` (an encoder name,
        ``"FILE.py:FUNCTION"`` or a module-level function ``make(input_shape, outputs) -> (encoder, heads)``,
        given among ``**options``; docs/your-network.md).
    target : str
        The target task.
    **options
        Fields of :class:`~negtransfer.jobs.sources.SourceOptions` (``alpha``, ``n_subsets``, ``holdout``,
        ``repeats``, ...) and of :class:`~negtransfer.train.config.TrainConfig`. The defaults are the command
        line's: pooled batches with the default preset, 3 repeats (5, the ``"paper"`` grid and the
        ``"task-modeling"`` training with ``preset="task-modeling"``). ``surrogate="kernel"`` fits kernel
        ridge regression on the subset indicators instead of the linear surrogate (default ``"linear"``);
        ``independent_holdout=True`` also measures the holdout with repeat seeds no fitted subset used.

    Returns
    -------
    SourcesReport
        ``selected``: the chosen sources; ``to_frame()``: one row per source with its relevance;
        ``holdout.scores``: how well the surrogate told negative from positive transfer on the holdout subsets
        (``f1``, ``spearman``, ...); ``check.recommended``: the selection, STL or all sources, whichever had the
        lowest target loss on validation rows the selection did not use (``check.reason`` says why).
    """
    seed = _check_call(seed, progress)
    from negtransfer.jobs.sources import SourceOptions, preset_defaults, run_sources

    names = {f.name for f in fields(SourceOptions)} - {"target"}
    job, training = _split_options(options, SourceOptions, names, "sources")
    job_defaults, training_defaults = preset_defaults(preset)  # the command line's
    job = {**job_defaults, **job}
    training = {**training_defaults, **training}
    training.setdefault("shared_init", bool(job.get("common_init", False)))
    source_options = SourceOptions(target=target, **job)
    config = _config(preset, training, model_arguments, model_version)
    load, _ = _dataset_loader(data, tasks=tasks, features=features, task_column=task_column, label=label,
                              task_kinds=task_kinds, impute=impute, command="negtransfer.sources()")
    dataset = load(seed)
    source_options.check(dataset)
    _checked(dataset, config)
    with _said_once():
        return run_sources(dataset, source_options, config, seed, _run_store(store),
                           executor=_executor(executor, workers), progress=progress)


def compare(data: "pd.DataFrame | str | Path | MultiTaskDataset", models: Sequence[str] | str, *, tasks: Sequence[str] | None = None,
            features: Sequence[str] | None = None, task_column: str | None = None, label: str | None = None,
            task_kinds: Mapping[str, str] | None = None, impute: str | None = None, seed: int = 0,
            store: Any = None, executor: Any = "local", workers: int | None = None,
            progress: Progress | None = None, baselines: str = "ours", **options: Any) -> "CompareReport":
    """How named models do on the tasks, run ``runs`` times (``negtransfer compare``).

    Parameters
    ----------
    data, tasks, features, task_column, label, task_kinds, impute, seed, store, executor, workers, progress
        As for :func:`gains`; run r splits a table with seed ``seed + r`` (a MultiTaskDataset keeps its split).
    models : sequence of str or str
        Model names, e.g. ``["stl", "bmtl", "vmtl"]`` (or ``"stl,bmtl,vmtl"``).
    baselines : {"ours", "paper", "both"}
        Which single-task baselines the report marks and pairs each model against (``--baselines``): ours,
        the papers' public code's, or both (:meth:`~negtransfer.jobs.compare.ModelEntry.counterparts`).
    **options
        Fields of :class:`~negtransfer.jobs.compare.CompareOptions` (``runs``, ``train_fraction``, ``threads``)
        and of :class:`~negtransfer.models.base.FitOptions` (``epochs``, ``iterations``, ``batch_size``, ``lr``,
        ``optimizer``, ``patience``, ``settings``, ``fgsm_epsilons``).

    Returns
    -------
    CompareReport
        ``to_frame()``: the long table of results.csv (``model, task, run, metric, value``); ``summary(metric)``.
    """
    seed = _check_call(seed, progress)
    from negtransfer.jobs.compare import BASELINE_CHOICES, CompareOptions, run_compare
    from negtransfer.models.base import FitOptions

    if baselines not in BASELINE_CHOICES:
        raise ValueError(f"baselines must be one of {', '.join(BASELINE_CHOICES)}, got {baselines!r}")
    compare_fields = {f.name for f in fields(CompareOptions)} - {"models", "fit"}
    job, fit = _split_options(options, CompareOptions, compare_fields, "compare", FitOptions)
    fit = {k: (tuple(v) if k == "fgsm_epsilons" else v) for k, v in fit.items()}
    names = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    compare_options = CompareOptions(models=tuple(m for m in names if m), fit=FitOptions(**fit), **job)
    compare_options.check()
    load, name = _dataset_loader(data, tasks=tasks, features=features, task_column=task_column, label=label,
                                 task_kinds=task_kinds, impute=impute, kinds=None, command="negtransfer.compare()")
    report = run_compare(load, name, compare_options, seed, _run_store(store), executor=_executor(executor, workers),
                         progress=progress)
    report.baselines = baselines
    return report
