"""``negtransfer gains``: measure the gain of every task in each requested group against its STL model.

gain = (stl_test_loss - test_loss) / stl_test_loss (ETAP eq. 1): positive means
the task does better in the group than alone, negative is negative transfer.
Every task's STL model and every requested group of two or more tasks are
trained ``repeats`` times through the run store (common random numbers); a gain
is the mean of the per-repeat paired gains, with its standard error
(:func:`negtransfer.gains.table.gains_frame`).

The job returns a :class:`GainsReport`: :meth:`GainsReport.to_dict` is
gains.json, :meth:`GainsReport.to_frame` the table of gains.csv.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.runs.executors import Executor
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["GainsOptions", "GainsReport", "run_gains"]

Group = tuple[int, ...]
Progress = Callable[[str, int, int], None]


#: The groups ``gains`` trains when none are named (see :func:`default_groups`).
DEFAULT_GROUPS = "random:16"


def default_groups(n_tasks: int, sizes: str | int | None, spelling: str = "groups=") -> tuple[str, str | None]:
    """The groups of ``gains`` when none are named, and a note when it is not the default.

    ``random:16``, or ``all`` where fewer groups of the ``sizes`` exist (with 3 tasks the default once failed:
    'asked for 16 random groups but only 4 exist', a request the user never made; ``group`` treats
    ``--train-groups`` the same way). A bad ``sizes`` keeps the default: its error comes when the groups are drawn.
    ``spelling`` names the option in the note: ``"groups="`` (Python) or ``"--groups "`` (the command line).
    """
    from math import comb

    from negtransfer.runs.group_specs import parse_sizes

    try:
        lo, hi = parse_sizes(sizes, n_tasks)
    except ValueError:
        return DEFAULT_GROUPS, None
    available = sum(comb(n_tasks, size) for size in range(lo, hi + 1))
    wanted = int(DEFAULT_GROUPS.partition(":")[2])
    if not 0 < available < wanted:
        return DEFAULT_GROUPS, None
    value, every = (f"'{DEFAULT_GROUPS}'", "'all'") if spelling.endswith("=") else (DEFAULT_GROUPS, "all")
    return "all", (f"{spelling}{value} (the default) is more than the {available} groups of {lo}..{hi} of "
                   f"the {n_tasks} tasks; all {available} are trained ({spelling}{every})")


@dataclass(frozen=True)
class GainsOptions:
    """Choices of one gains job.

    Parameters
    ----------
    groups : str or sequence of sequences of str
        ``"all"``, ``"random:N"``, a file with one group per line (task names
        joined by ``+``), or the groups themselves as task names
        (``[("a", "b"), ("a", "b", "c")]``).
    sizes : str or int, optional
        Group sizes for ``"all"`` and ``"random:N"``, e.g. ``"2-5"``, ``"3"`` or ``3``;
        default 2 to all tasks.
    repeats : int
        Runs per model (common random numbers); gains are means over repeats.
    chunk_size : int or None
        Models trained at once in one vectorised stack (None: one stack per
        worker, :func:`negtransfer.runs.runner.ensure`).
    folds : int
        Train every model on each of K folds of the training and validation
        rows (:mod:`negtransfer.data.folds`; ``--folds K``): a gain is then the
        mean of the R x K paired gains (repeat r on fold f against the STL
        run of the same repeat and fold), its standard error over them. 1: the
        dataset's one split.
    """

    groups: Any = DEFAULT_GROUPS
    sizes: str | int | None = None
    repeats: int = 3
    chunk_size: int | None = None
    folds: int = 1

    def __post_init__(self) -> None:
        from negtransfer.train.config import plain_scalars

        plain_scalars(self)  # NumPy whole numbers (from a sweep) as Python's

    def requested_groups(self, task_names: Sequence[str], seed: int) -> list[Group]:
        """The groups asked for, as sorted task-index tuples (single tasks included).

        Raises
        ------
        ValueError
            A bad ``groups`` or ``sizes``, an unknown task name, too few tasks for the sizes, a bad count.
        """
        from negtransfer.runs.group_specs import parse_group_spec, parse_sizes

        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ValueError(f"--repeats must be a positive integer, got {self.repeats!r}")
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 1:
            raise ValueError(f"--folds must be a positive integer (1: no folds), got {self.folds!r}")
        if self.chunk_size is not None and (isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int)
                                            or self.chunk_size < 1):
            raise ValueError(f"--chunk-size must be a positive integer, got {self.chunk_size!r}")
        if isinstance(self.groups, str):
            return parse_group_spec(self.groups, task_names, parse_sizes(self.sizes, len(task_names)), seed)
        index = {name: i for i, name in enumerate(task_names)}
        groups = []
        for group in self.groups:
            names = [group] if isinstance(group, str) else list(group)
            unknown = [name for name in names if name not in index]
            if unknown or not names:
                raise ValueError(f"groups: {names!r} names no task or unknown tasks {unknown}; the tasks are: "
                                 f"{', '.join(task_names)}")
            groups.append(tuple(sorted({index[name] for name in names})))
        if not groups:
            raise ValueError("groups lists no group; give groups of task names, 'all' or 'random:N'")
        return list(dict.fromkeys(groups))


@dataclass(frozen=True)
class GainsReport:
    """What a gains job measured; :meth:`to_dict` is gains.json, :meth:`to_frame` gains.csv.

    Attributes
    ----------
    dataset, fingerprint : str
    seed, repeats : int
    folds : int
        K of ``--folds`` (1: one split); every gain is a mean over repeats x folds runs.
    config : dict
        The training configuration.
    tasks : tuple of str
    task_kinds : dict
        Task -> kind.
    notes : tuple of str
        The ``note:`` lines (the job's and, from the command line, the command's).
    diverged : tuple of dict
        One ``{"group", "repeats", "reasons"}`` per model with a diverged repeat
        (:mod:`negtransfer.gains.divergence`); its gains are left out.
    stl : dict
        Task -> ``{"test_loss", "test_metric"}`` of its STL model (means over repeats).
    groups : tuple of tuple of str
        The trained groups of two or more tasks, in the order of the table.
    columns : tuple of str
        The columns of the gains table.
    rows : tuple of dict
        One row per (group, member task): see :func:`negtransfer.gains.table.gains_frame`.
    """

    dataset: str
    fingerprint: str
    seed: int
    repeats: int
    config: dict
    tasks: tuple
    task_kinds: dict
    stl: dict
    groups: tuple
    columns: tuple
    rows: tuple = ()
    notes: tuple = field(default_factory=tuple)
    diverged: tuple = ()
    folds: int = 1

    def __repr__(self) -> str:
        """The answer in one line (:mod:`negtransfer.jobs.summary_repr`); the fields hold the rest."""
        from negtransfer.jobs.summary_repr import summary_repr

        gains = [row.get("gain") for row in self.rows]
        measured = [g for g in gains if isinstance(g, (int, float)) and g == g]
        return summary_repr("GainsReport", dataset=self.dataset, tasks=tuple(self.tasks), groups=len(self.groups),
                            repeats=self.repeats, gains=len(measured),
                            negative_transfer=sum(1 for g in measured if g < 0))

    def to_frame(self) -> "pd.DataFrame":
        """The gains table (gains.csv): columns ``group, task, test_loss, stl_test_loss, gain, gain_se, repeats,
        metric, test_metric, stl_test_metric, val_loss, group_size, diverged_repeats``; a negative ``gain`` is
        negative transfer, an empty one rests on diverged runs only."""
        import pandas as pd

        return pd.DataFrame(list(self.rows), columns=list(self.columns))

    def to_dict(self) -> dict:
        """gains.json."""
        import json

        return {
            "dataset": self.dataset,
            "fingerprint": self.fingerprint,
            "seed": self.seed,
            "repeats": self.repeats,
            "folds": self.folds,
            "config": self.config,
            "tasks": list(self.tasks),
            "task_kinds": self.task_kinds,
            "notes": list(self.notes),
            "stl": self.stl,
            "gains": json.loads(self.to_frame().to_json(orient="records")),
            "diverged": list(self.diverged),
        }


def run_gains(
    dataset: MultiTaskDataset,
    options: GainsOptions,
    config: TrainConfig,
    seed: int,
    store: RunStore,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
) -> GainsReport:
    """Train STL for every task and each requested group of two or more tasks; measure the gains.

    Parameters
    ----------
    dataset : MultiTaskDataset
    options : GainsOptions
    config : TrainConfig
    seed : int
        Repeat r of every model trains with the seed of (seed, r).
    store : RunStore
        Runs are read from and written to it.
    executor : Executor, optional
        Default: in this process.
    progress : callable, optional
        ``progress(stage, done, total)``.
    notify : callable, optional
        Called with each note (a requested single task, no group to train); the notes are also in the report.

    Returns
    -------
    GainsReport

    Raises
    ------
    ValueError
        Bad options (before any training).
    """
    from negtransfer.data.folds import fold_datasets
    from negtransfer.gains.divergence import describe_diverged, diverged_runs
    from negtransfer.gains.table import gains_frame
    from negtransfer.runs.group_specs import across_folds
    from negtransfer.runs.runner import ensure_runs

    requested = options.requested_groups(dataset.task_names, seed)
    notes: list[str] = []

    def say(message: str) -> None:
        notes.append(message)
        if notify is not None:
            notify(message)

    n, repeats = dataset.n_tasks, options.repeats
    stl: list[Group] = [(t,) for t in range(n)]
    mtl = [g for g in requested if len(g) > 1]
    if len(mtl) < len(requested):
        say(f"{len(requested) - len(mtl)} requested group(s) of a single task are trained as STL references "
            f"only; a gain needs a group of 2 or more tasks")
    if not mtl:
        shown = options.groups if isinstance(options.groups, str) else "as given"
        say(f"no group of 2 or more tasks to train ({n} task(s), --groups {shown}); gains.csv has its header only")
    stage = f"training {len(stl)} STL + {len(mtl)} group models" + (f" x {repeats} repeats" if repeats > 1 else "")
    folds = fold_datasets(dataset, options.folds)
    per_fold = []
    for f, data in enumerate(folds):
        text = stage if len(folds) == 1 else f"{stage} (fold {f + 1}/{len(folds)})"
        update = (lambda done, total, text=text: progress(text, done, total)) if progress else None
        per_fold.append(ensure_runs(data, stl + mtl, config, seed, store, repeats=repeats, executor=executor,
                                    chunk_size=options.chunk_size, on_progress=update))
    results = across_folds(per_fold)
    found = diverged_runs(results)
    if found:
        say(f"{len(found)} of {len(results)} models diverged and their gains are left out (empty gains): "
            f"{describe_diverged(found, dataset.task_names, repeats * len(folds))}; lower --lr (now {config.lr:g}) or check the "
            f"features' scale")
    metrics = [t.metric_name for t in dataset.tasks]
    frame = gains_frame(mtl, results, dataset.task_names, metrics)  # with no group: the header only
    names = dataset.task_names
    return GainsReport(
        dataset=dataset.name,
        fingerprint=dataset.fingerprint(),
        seed=seed,
        repeats=repeats,
        config=config.to_dict(),
        tasks=tuple(names),
        task_kinds={t.name: t.kind for t in dataset.tasks},
        stl={names[t]: {"test_loss": results[(t,)].test_loss[t], "test_metric": results[(t,)].test_metric[t]}
             for t in range(n)},
        groups=tuple(tuple(names[t] for t in g) for g in mtl),
        columns=tuple(frame.columns),
        rows=tuple(frame.to_dict(orient="records")),
        notes=tuple(notes),
        diverged=tuple({"group": "+".join(names[t] for t in g), "repeats": [r for r, _ in items],
                        "reasons": sorted({reason for _, reason in items})} for g, items in found.items()),
        folds=options.folds,
    )
