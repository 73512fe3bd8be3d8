"""The ``negtransfer`` command line.

Heavy packages (torch, pandas, scikit-learn) are imported inside the commands,
so ``negtransfer --help`` answers at once.

Conventions (docs/errors.md): a bad input ends in one ``error:`` line on
stderr and exit code 2 (:func:`_fail`; typer's usage errors are reformatted the
same way by :class:`_Commands`); paths (``--out``, ``--store``) and option
values are checked before anything is trained; where a command uses less than
was asked for, or infers something, it prints a ``note:`` line and records it
in its JSON output. Options shared by commands are defined once below.
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn, Optional

import typer
from typer.core import TyperCommand, TyperGroup, TyperOption

from negtransfer import __version__
from negtransfer.train.config import TrainConfig, check_device_available  # plain dataclasses: cheap to import

_TRAIN = TrainConfig()  # the training defaults shown in --help


# ---------------------------------------------------------------- command classes
def _flags_without_value_type(params: list) -> list:
    """Show flags as ``--exhaustive``, not ``--exhaustive <bool>``: they take no value."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings as one ``warning:`` line, without the source file and line."""
    typer.echo(f"warning: {_one_line(str(message))}", err=True)


class _Command(TyperCommand):
    """A command whose help shows flags without a value type."""

    def get_params(self, ctx):
        return _flags_without_value_type(super().get_params(ctx))


class _Commands(TyperGroup):
    """The command group: flags without a value type, and usage errors as one ``error:`` line.

    Typer prints a bad option value (``--epochs abc``, an unknown option, a
    missing required option) as a boxed, multi-line panel; here it is one line
    ``error: ... (see `negtransfer CMD --help`)`` with exit code 2, like every
    other input error of negtransfer.
    """

    def get_params(self, ctx):
        return _flags_without_value_type(super().get_params(ctx))

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from typer._click import exceptions as click_errors

        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click_errors.NoArgsIsHelpError as exc:
            help_text = exc.ctx.get_help()  # the rich formatter prints it and returns ""
            if help_text:
                typer.echo(help_text)
            sys.exit(2)
        except click_errors.UsageError as exc:
            ctx = getattr(exc, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            message = _one_line(exc.format_message()).replace("Value error, ", "")
            typer.secho(f"error: {message}{where}", fg=typer.colors.RED, err=True)
            sys.exit(2)
        except click_errors.ClickException as exc:
            typer.secho(f"error: {_one_line(exc.format_message())}", fg=typer.colors.RED, err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",  # reflows help paragraphs instead of breaking lines mid-sentence
    context_settings={"show_default": True},
    pretty_exceptions_show_locals=False,
    help="Find which tasks help or hurt each other, and group them.",
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"negtransfer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", is_eager=True, callback=_show_version,
                                 help="Print the version and exit."),
) -> None:
    """Find which tasks help or hurt each other, and group them.

    Every command answers a bad input with one `error:` line and exit code 2;
    docs/errors.md lists the messages and what to do.
    """


# --------------------------------------------------------------------- options
# Option groups, each defined once: data (what to learn from), training (how every model is trained),
# runs (where runs are stored and trained, where results go). Every command takes its groups' options by
# these definitions, so names, defaults and help agree everywhere; the dataclasses further below
# (DataOptions, TrainingOptions, RunOptions) bundle a command's values of each group.
DATA, TRAINING, RUNS = "Data", "Training", "Runs and output"
DatasetOpt = typer.Option(None, "--dataset", help="Built-in dataset (see `negtransfer datasets`).",
                          show_default="yeast", rich_help_panel=DATA)
DataOpt = typer.Option(None, "--data", help="Your own .csv, .csv.gz or .parquet file (instead of --dataset).",
                       rich_help_panel=DATA)
TasksOpt = typer.Option(None, "--tasks", help="Comma-separated task names (label columns, or task-column values).",
                        show_default="all tasks of --dataset", rich_help_panel=DATA)
FeaturesOpt = typer.Option(None, "--features", help="Comma-separated feature columns.",
                           show_default="every other column", rich_help_panel=DATA)
TaskColumnOpt = typer.Option(None, "--task-column", help="Column saying which task each row belongs to.",
                             rich_help_panel=DATA)
LabelOpt = typer.Option(None, "--label", help="Label column, with --task-column.", rich_help_panel=DATA)
TaskKindsOpt = typer.Option(None, "--task-kinds",
                            help="Comma-separated TASK=KIND (binary, multiclass or regression) overriding the kinds "
                                 "inferred from the labels.", show_default="inferred", rich_help_panel=DATA)
ImputeOpt = typer.Option(None, "--impute", help="Fill NaN features with the training rows' mean or median.",
                         show_default="no filling: NaN is an error", rich_help_panel=DATA)
SeedOpt = typer.Option(0, "--seed", min=0, help="Fixes splits, initialisation and batch order.")
QuietOpt = typer.Option(False, "-q", "--quiet", help="No progress bars.")
OutHelp = "Output folder (created if missing)."
StoreOpt = typer.Option(None, "--store", help="Run store (SQLite file); share one between commands to reuse runs.",
                        show_default="OUT/runs.sqlite", rich_help_panel=RUNS)
ExecutorOpt = typer.Option("local", "--executor", help="'local': vectorised, in this process; 'process': a pool "
                           "of local processes; 'ray': Ray tasks on a local Ray instance or a cluster (--ray-address; "
                           "docs/scaling.md).", rich_help_panel=RUNS)
WorkersOpt = typer.Option(None, "--workers", min=1, help="Processes for --executor process; CPUs of the local Ray "
                          "instance for --executor ray.", show_default="CPU cores", rich_help_panel=RUNS)
RayAddressOpt = typer.Option(None, "--ray-address", help="With --executor ray: the Ray cluster to run on ('auto' on "
                             "one of its nodes, or HOST:6379); the run store stays here, on the driver.",
                             show_default="a local Ray instance that starts and stops with the command",
                             rich_help_panel=RUNS)
DeviceOpt = typer.Option("cpu", "--device", help="Train the stacked models (and track affinity) on the CPU or on a "
                         "CUDA GPU.", rich_help_panel=TRAINING)
ChunkSizeOpt = typer.Option(64, "--chunk-size", min=1, help="Models trained at once in one vectorised stack.",
                            rich_help_panel=RUNS)


def _out_option(default: str):
    return typer.Option(Path(default), "--out", help=OutHelp, rich_help_panel=RUNS)


def _training_options(epochs: str, batch_size: str, lr: str, optimizer: str, patience: str) -> tuple:
    """The training group (--epochs, --batch-size, --lr, --optimizer, --patience) with the defaults a command shows."""
    return (
        typer.Option(None, "--epochs", min=1, help="Maximum epochs per model.", show_default=epochs,
                     rich_help_panel=TRAINING),
        typer.Option(None, "--batch-size", min=1, help="Training rows per step (per task with per-task batches).",
                     show_default=batch_size, rich_help_panel=TRAINING),
        typer.Option(None, "--lr", help="Learning rate (> 0).", show_default=lr, rich_help_panel=TRAINING),
        typer.Option(None, "--optimizer", help="'sgd' (momentum 0.9) or 'adam'.", show_default=optimizer,
                     rich_help_panel=TRAINING),
        typer.Option(None, "--patience", min=1, help="Early stopping: epochs without a better validation loss.",
                     show_default=patience, rich_help_panel=TRAINING),
    )


# the stacked trainer's (gains, group, sources): TrainConfig's defaults, or the preset's
EpochsOpt, BatchSizeOpt, LrOpt, OptimizerOpt, PatienceOpt = _training_options(
    *(f"{value}, or the preset's" for value in (_TRAIN.max_epochs, _TRAIN.batch_size, _TRAIN.lr, _TRAIN.optimizer,
                                                _TRAIN.patience)))
# compare's: each model family's defaults
(CompareEpochsOpt, CompareBatchSizeOpt, CompareLrOpt, CompareOptimizerOpt,
 ComparePatienceOpt) = _training_options(*(["the model family's"] * 5))
PresetOpt = typer.Option("default", "--preset",
                         help="Named training setup: 'default', or 'etap-chemical' (the ETAP public code's Chemical "
                              "setup: lr 0.001, 264 rows per task and step, oversampling, patience 20, up to 1000 "
                              "epochs, lr halved every 75 epochs after epoch 100), or 'task-modeling' (the surrogate "
                              "paper's public code: pooled rows, mean loss over rows, 20 epochs, no early stopping). "
                              "Options given explicitly win.",
                         rich_help_panel=TRAINING)
BatchingOpt = typer.Option(None, "--batching",
                           help="Per-task-rows data: 'per-task' (each step takes --batch-size rows of every task of "
                                "the group) or 'pooled' (--batch-size rows of the group's pooled rows); 'auto' is "
                                "per-task for per-task-rows data, pooled for multi-label data.",
                           show_default=f"{_TRAIN.batching}, or the preset's", rich_help_panel=TRAINING)
OversampleOpt = typer.Option(None, "--oversample/--no-oversample",
                             help="With per-task batches: top a group's smaller tasks up to its largest task's "
                                  "training rows (drawn with replacement, equally per class).",
                             show_default="off, or the preset's", rich_help_panel=TRAINING)
GradientAggregationOpt = typer.Option(
    "sum", "--gradient-aggregation",
    help="How a group model's per-task gradients of the shared encoder become its update: 'sum' (the ordinary "
         "summed gradient) or a torchjd aggregator: 'pcgrad' (Yu et al. 2020), 'mgda', 'imtl-g', 'aligned-mtl', "
         "'graddrop' (docs/training.md). Task heads keep their own gradient; STL models are unaffected.",
    rich_help_panel=TRAINING)
RepeatsOpt = typer.Option(3, "--repeats", min=1,
                          help="Runs per model (common random numbers: repeat r of every group and of STL uses the "
                               "same seed); gains are means over repeats with standard errors. 3 was chosen by "
                               "benchmarks/gain_noise.py (docs/methods/grouping.md).",
                          rich_help_panel=RUNS)

Executor = Literal["local", "process", "ray"]
Device = Literal["cpu", "cuda"]
Optimizer = Literal["sgd", "adam"]
Preset = Literal["default", "etap-chemical", "task-modeling"]
Batching = Literal["auto", "per-task", "pooled"]
Impute = Literal["mean", "median"]


def _split_list(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _fail(message: str) -> NoReturn:
    """Print ``error: message`` as one line and exit with code 2."""
    typer.secho(f"error: {_one_line(message)}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _note(message: str, notes: Optional[list] = None) -> None:
    """Print ``note: message`` on stderr (also with -q) and keep it for the report."""
    typer.echo(f"note: {_one_line(message)}", err=True)
    if notes is not None:
        notes.append(_one_line(message))


def _check_out(out: Path) -> None:
    """Fail unless ``out`` is, or can be created as, a writable folder; creates nothing."""
    if out.exists() and not out.is_dir():
        _fail(f"--out {str(out)!r} is a file; give a folder (it is created if missing), e.g. --out {out}-results")
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                _fail(f"--out {str(out)!r} cannot be created: {str(parent)!r} is a file, not a folder")
            import os

            if not os.access(parent, os.W_OK | os.X_OK):
                _fail(f"--out {str(out)!r}: no write permission in {str(parent)!r}; choose another folder")
            return


def _make_out(out: Path) -> None:
    _check_out(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"cannot create --out folder {str(out)!r}: {exc.strerror or exc}; choose another folder")


def _store_path(store: Optional[Path], out: Path) -> Path:
    """The run store's path, checked (folder, permissions) before anything is trained."""
    from negtransfer.runs.store import StoreError, check_store_path

    path = store if store is not None else out / "runs.sqlite"
    try:
        return check_store_path(path)
    except StoreError as exc:
        _fail(str(exc))


def _open_store(path: Path):
    """Open (or create) the run store, refusing a damaged one with the way out."""
    from negtransfer.runs.store import RunStore, StoreError

    try:
        return RunStore(path)
    except StoreError as exc:
        _fail(str(exc))


@contextmanager
def _writes_guarded(store_path: Optional[Path], out: Path):
    """A full disk or a file made read-only mid-run ends in one error line; stored runs stay for a resume."""
    import sqlite3

    try:
        yield
    except sqlite3.OperationalError as exc:
        _fail(f"cannot write run store {str(store_path)!r} ({exc}); the runs finished so far are kept in it: "
              f"free disk space or fix its permissions, then run the same command again to resume")
    except OSError as exc:
        where = exc.filename or out
        kept = "finished runs are kept in the run store" if store_path is not None else "the results are lost"
        _fail(f"cannot write {str(where)!r} ({exc.strerror or exc}); {kept}: free disk space or fix the "
              f"permissions, then run the same command again")


def _task_kinds(text: Optional[str]) -> Optional[dict[str, str]]:
    if text is None:
        return None
    kinds = {}
    for item in _split_list(text) or []:
        name, sep, kind = item.partition("=")
        if not sep or not name.strip() or kind.strip() not in ("binary", "multiclass", "regression"):
            _fail(f"--task-kinds takes TASK=KIND pairs with KIND binary, multiclass or regression, got {item!r}")
        kinds[name.strip()] = kind.strip()
    return kinds


#: The data kinds of the commands that train hard-sharing models (gains, group, sources).
TABULAR_KINDS = ("table", "per-task-rows", "domains")


@dataclass(frozen=True)
class DataOptions:
    """The data group: ``--dataset`` or ``--data FILE`` with ``--tasks``, ``--features``, ``--task-column``,
    ``--label``, ``--task-kinds``, ``--impute``."""

    dataset: Optional[str] = None
    data: Optional[Path] = None
    tasks: Optional[str] = None
    features: Optional[str] = None
    task_column: Optional[str] = None
    label: Optional[str] = None
    impute: Optional[str] = None
    task_kinds: Optional[str] = None

    @property
    def name(self) -> str:
        """The dataset's name in reports: the built-in name or the file's path."""
        return str(self.data) if self.data is not None else (self.dataset or "yeast")

    def check(self) -> None:
        """Fail on options that do not go together (before anything is read)."""
        if self.dataset and self.data:
            _fail("give either --dataset or --data, not both")
        _task_kinds(self.task_kinds)
        if self.data is None:
            for option, value in (("--features", self.features), ("--task-column", self.task_column),
                                  ("--label", self.label), ("--impute", self.impute),
                                  ("--task-kinds", self.task_kinds)):
                if value is not None:
                    _fail(f"{option} applies to your own file (--data FILE) only; leave it out with --dataset")

    def load(self, seed: int, kinds: Optional[tuple] = TABULAR_KINDS, command: Optional[str] = None):
        """The dataset split with ``seed``, or a clean error (also for a kind of data the command does not take)."""
        try:
            return self.loader(kinds, command)(seed)
        except (ValueError, FileNotFoundError, ImportError, KeyError) as exc:
            _fail(str(exc))

    def loader(self, kinds: Optional[tuple] = TABULAR_KINDS, command: Optional[str] = None):
        """``load(seed) -> dataset`` (raising DataError etc.).

        ``--data`` is a table file, a Task_Splits folder (:func:`~negtransfer.data.files.dataset_from_file`), or a
        PhysioNet 2012 challenge folder (one with an ``Outcomes*.txt`` file; time series).
        """
        self.check()
        command = command or _command_name()
        task_list = _split_list(self.tasks)
        if self.data is None:
            from negtransfer.data.builtin import load_builtin

            name = self.dataset or "yeast"
            return lambda seed: load_builtin(name, seed=seed, tasks=task_list, kinds=kinds, command=command)
        if self.data.is_dir() and any(self.data.glob("Outcomes*.txt")):
            from negtransfer.data.builtin import PHYSIONET_PREFIX, load_builtin

            name = f"{PHYSIONET_PREFIX}{self.data}"
            return lambda seed: load_builtin(name, seed=seed, tasks=task_list, kinds=kinds, command=command)
        from negtransfer.data.files import dataset_from_file

        options = dict(tasks=task_list, features=_split_list(self.features), task_column=self.task_column,
                       label_column=self.label, impute=self.impute, task_kinds=_task_kinds(self.task_kinds))
        return lambda seed: dataset_from_file(self.data, seed=seed, **options)


@dataclass(frozen=True)
class TrainingOptions:
    """The training group: ``--epochs``, ``--batch-size``, ``--lr``, ``--optimizer``, ``--patience``."""

    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    optimizer: Optional[str] = None
    patience: Optional[int] = None

    def check(self) -> None:
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            _fail(f"--lr must be a positive number, e.g. {_TRAIN.lr}, got {self.lr}")


@dataclass(frozen=True)
class RunOptions:
    """The runs group: ``--out``, ``--store``, ``--executor``, ``--workers``, ``--ray-address``, and ``--seed``,
    ``-q``; ``threads`` (torch threads per model) and ``device`` decide the resources a Ray task declares."""

    out: Path
    store: Optional[Path] = None
    executor: str = "local"
    workers: Optional[int] = None
    seed: int = 0
    quiet: bool = False
    ray_address: Optional[str] = None
    threads: int = 1
    device: str = "cpu"


class _Job:
    """The steps every command that trains through the run store takes, in order.

    Creating it checks ``--out`` and ``--store`` (before any data is read or
    model trained); :meth:`start` makes the executor, the output folder and the
    run store; :meth:`training` shows the progress bars and turns a failing
    write into one error line; :meth:`writing` guards the writing of outputs.
    """

    def __init__(self, run: RunOptions, notes: list):
        self.run, self.notes = run, notes
        _check_out(run.out)
        self.store_path = _store_path(run.store, run.out)
        self.executor = self.store = None

    def start(self) -> "_Job":
        run = self.run
        self.executor = _executor(run.executor, run.workers, self.notes, ray_address=run.ray_address, quiet=run.quiet,
                                  device=run.device, cpus_per_task=run.threads)
        _make_out(self.run.out)
        self.store = _open_store(self.store_path)
        return self

    @contextmanager
    def training(self):
        with _writes_guarded(self.store_path, self.run.out), _stage_progress(self.run.quiet) as progress:
            yield progress

    @contextmanager
    def writing(self):
        with _writes_guarded(self.store_path, self.run.out):
            yield


def _command_name() -> str:
    """``negtransfer CMD`` of the running command (for messages)."""
    from typer._click.globals import get_current_context

    ctx = get_current_context(silent=True)
    return f"`negtransfer {ctx.info_name}`" if ctx is not None and ctx.info_name else "this command"


def load_dataset_from_options(
    dataset: Optional[str],
    data: Optional[Path],
    tasks: Optional[str],
    features: Optional[str],
    task_column: Optional[str],
    label: Optional[str],
    impute: Optional[str],
    seed: int,
    task_kinds: Optional[str] = None,
    *,
    kinds: Optional[tuple] = TABULAR_KINDS,
):
    """The dataset named by the data group's options, or a clean error (:meth:`DataOptions.load`)."""
    return DataOptions(dataset, data, tasks, features, task_column, label, impute, task_kinds).load(seed, kinds)


def _train_config(epochs, batch_size, lr, optimizer, patience, preset="default", batching=None, oversample=None,
                  **fixed):
    """The training configuration: the preset, with every option given on the command line (and ``fixed``) on top."""
    if lr is not None and not (math.isfinite(lr) and lr > 0):
        _fail(f"--lr must be a positive number, e.g. {_TRAIN.lr}, got {lr}")
    given = {"max_epochs": epochs, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
             "patience": patience, "batching": batching, "oversample": oversample, **fixed}
    try:
        config = TrainConfig.preset(preset, **{k: v for k, v in given.items() if v is not None})
        check_device_available(config.device)
    except ValueError as exc:
        _fail(str(exc))
    return config


def _kinds_summary(ds, data: Optional[Path], notes: list) -> dict:
    """Each task's kind; for a user file, print those inferred from the labels, with their classes."""
    kinds = {t.name: t.kind for t in ds.tasks}
    how = ds.info.get("task_kinds", {})
    if data is None:
        return kinds
    described: dict[str, list[str]] = {}
    for t in ds.tasks:
        if "inferred" not in str(how.get(t.name, "")):
            continue
        if t.kind == "binary":
            text = f"binary {t.classes[0]}/{t.classes[1]}"
            if [str(c) for c in t.classes] not in (["0", "1"], ["False", "True"]):
                text += f" (positive class {t.classes[1]!r})"
        elif t.kind == "multiclass":
            shown = ", ".join(str(c) for c in t.classes[:6]) + (", ..." if len(t.classes) > 6 else "")
            text = f"multiclass with {len(t.classes)} classes ({shown})"
        else:
            text = "regression"
        described.setdefault(text, []).append(t.name)
    if described:
        parts = [f"{', '.join(names)}: {text}" for text, names in described.items()]
        _note("task kinds inferred from the labels: " + "; ".join(parts)
              + " (override with --task-kinds TASK=KIND)", notes)
    return kinds


def _executor(executor: str, workers: Optional[int], notes: list, *, ray_address: Optional[str] = None,
              quiet: bool = False, device: str = "cpu", cpus_per_task: int = 1):
    """The command's executor, stopped (a local Ray instance) when the command ends; bad options fail here.

    With ``--executor ray`` Ray starts (or connects to ``--ray-address``) now, so
    a missing Ray, an unreachable cluster or a cluster without the GPUs that
    ``--device cuda`` needs is one error line before anything is trained. Each
    Ray task declares ``cpus_per_task`` CPUs and, on a GPU, one GPU.
    """
    from negtransfer.runs.executors import make_executor

    if ray_address is not None and executor != "ray":
        _fail(f"--ray-address applies to --executor ray only; add --executor ray or leave out --ray-address "
              f"(got --executor {executor})")
    if workers is not None and executor not in ("process", "ray"):
        _note(f"--workers {workers} is ignored: it applies to --executor process or ray only", notes)
    elif workers is not None and ray_address is not None:
        _note(f"--workers {workers} is ignored with --ray-address: Ray tasks use the cluster's CPUs", notes)
        workers = None
    try:
        if executor != "ray":
            return make_executor(executor, workers)
        runner = make_executor("ray", workers, address=ray_address, quiet=quiet, cpus_per_task=cpus_per_task,
                               gpus_per_task=0 if device == "cpu" else 1)
        from typer._click.globals import get_current_context

        ctx = get_current_context(silent=True)
        if ctx is not None:
            ctx.call_on_close(runner.close)
        runner.start()
        return runner
    except (ValueError, ImportError) as exc:
        _fail(str(exc))


# -------------------------------------------------------------------- commands
@app.command(cls=_Command)
def datasets() -> None:
    """List the built-in datasets with their kinds, sizes and licenses.

    Kinds: table (one row per example, a label column per task), per-task-rows
    (each row belongs to one task), domains (per-task rows over one label
    space), time-series (records x timesteps; `negtransfer compare` only).
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from negtransfer.data.builtin import list_builtin

    rows = list_builtin()
    table = Table(title="Built-in datasets", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)  # fits 80 columns
    for header in ("name", "kind", "tasks", "rows", "feat.", "source", "installed"):
        table.add_column(header, no_wrap=True)
    short = {"binary": "bin", "regression": "reg", "multiclass": "cls"}
    for row in rows:
        name = f"{row['name']} (default)" if row["default"] else row["name"]
        installed = "yes" if row["available"] == "yes" else "no"
        tasks = f"{row['tasks']} {short.get(row['task_kind'], row['task_kind'])}"
        table.add_row(name, row["kind"], tasks, str(row["rows"]), str(row["features"]), row["source"], installed)
    console = Console()
    console.print(table)
    missing = [row for row in rows if row["available"] != "yes"]
    if missing:
        console.print("To install:")
        for row in missing:
            console.print(f"  {row['name']}: {row['available'][len('no: '):]}", soft_wrap=True)
    console.print("Licenses (details: docs/datasets.md):")
    for row in rows:
        console.print(f"  {row['name']}: {row['license']}", soft_wrap=True)


@app.command(cls=_Command)
def gains(
    groups: str = typer.Option("random:16", "--groups", help="'all', 'random:N', or a file with one group per line (task names joined by '+')."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Group sizes for 'all' and 'random:N', e.g. 2-5 or 3.", show_default="2 to all tasks"),
    out: Path = typer.Option(Path("runs/gains"), "--out", help=OutHelp, rich_help_panel=RUNS),
    store: Optional[Path] = StoreOpt,
    executor: Executor = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    ray_address: Optional[str] = RayAddressOpt,
    chunk_size: int = ChunkSizeOpt,
    repeats: int = RepeatsOpt,
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    lr: Optional[float] = LrOpt,
    optimizer: Optional[Optimizer] = OptimizerOpt,
    patience: Optional[int] = PatienceOpt,
    preset: Preset = PresetOpt,
    batching: Optional[Batching] = BatchingOpt,
    oversample: Optional[bool] = OversampleOpt,
    gradient_aggregation: str = GradientAggregationOpt,
    device: Device = DeviceOpt,
    dataset: Optional[str] = DatasetOpt,
    data: Optional[Path] = DataOpt,
    tasks: Optional[str] = TasksOpt,
    features: Optional[str] = FeaturesOpt,
    task_column: Optional[str] = TaskColumnOpt,
    label: Optional[str] = LabelOpt,
    task_kinds: Optional[str] = TaskKindsOpt,
    impute: Optional[Impute] = ImputeOpt,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train STL for every task and MTL for each requested group; write gains.csv and gains.json.

    gain = (stl_test_loss - test_loss) / stl_test_loss (ETAP eq. 1): positive means
    the task does better in the group than alone, negative is negative transfer.
    """
    from negtransfer.gains.table import gains_frame
    from negtransfer.report.jsonio import write_json
    from negtransfer.runs.group_specs import parse_group_spec, parse_sizes
    from negtransfer.runs.runner import ensure_runs

    notes: list[str] = []
    config = _train_config(epochs, batch_size, lr, optimizer, patience, preset, batching, oversample, device=device,
                           gradient_aggregation=gradient_aggregation)
    _check_out(out)
    store_path = _store_path(store, out)
    ds = load_dataset_from_options(dataset, data, tasks, features, task_column, label, impute, seed, task_kinds)
    kinds = _kinds_summary(ds, data, notes)
    try:
        size_range = parse_sizes(sizes, ds.n_tasks)
        requested = parse_group_spec(groups, ds.task_names, size_range, seed)
    except ValueError as exc:
        _fail(str(exc))
    runner = _executor(executor, workers, notes, ray_address=ray_address, quiet=quiet, device=device)
    stl = [(t,) for t in range(ds.n_tasks)]
    mtl = [g for g in requested if len(g) > 1]
    if len(mtl) < len(requested):
        _note(f"{len(requested) - len(mtl)} requested group(s) of a single task are trained as STL references "
              f"only; a gain needs a group of 2 or more tasks", notes)
    if not mtl:
        _note(f"no group of 2 or more tasks to train ({ds.n_tasks} task(s), --groups {groups}); "
              f"gains.csv has its header only", notes)
    _make_out(out)
    run_store = _open_store(store_path)
    stage = f"training {len(stl)} STL + {len(mtl)} group models" + (f" x {repeats} repeats" if repeats > 1 else "")
    with _writes_guarded(store_path, out), _stage_progress(quiet) as progress:
        update = (lambda done, total: progress(stage, done, total)) if progress else None
        results = ensure_runs(ds, stl + mtl, config, seed, run_store, repeats=repeats, executor=runner,
                              chunk_size=chunk_size, on_progress=update)
    frame = gains_frame(mtl, results, ds.task_names, [t.metric_name for t in ds.tasks])
    if frame.empty:  # keep the header: the columns of a one-row table
        frame = gains_frame(stl[:1], results, ds.task_names, [t.metric_name for t in ds.tasks]).iloc[0:0]
    payload = {
        "dataset": ds.name,
        "fingerprint": ds.fingerprint(),
        "seed": seed,
        "repeats": repeats,
        "config": config.to_dict(),
        "tasks": list(ds.task_names),
        "task_kinds": kinds,
        "notes": notes,
        "stl": {
            ds.task_names[t]: {"test_loss": results[(t,)].test_loss[t], "test_metric": results[(t,)].test_metric[t]}
            for t in range(ds.n_tasks)
        },
        "gains": json.loads(frame.to_json(orient="records")),
    }
    with _writes_guarded(store_path, out):
        frame.to_csv(out / "gains.csv", index=False)
        write_json(out / "gains.json", payload)
    if not quiet:
        neg = int((frame["gain"] < 0).sum()) if len(frame) else 0
        typer.echo(
            f"wrote {out / 'gains.csv'} ({len(frame)} rows: {len(mtl)} groups; "
            f"{neg} task-in-group gains negative = negative transfer)"
        )


def _grouping_method_name(text: str) -> str:
    """``--method``: a registered grouping method's name (the registry is read when the command runs)."""
    from negtransfer.jobs.grouping_methods import method_names

    if text not in method_names():
        raise typer.BadParameter(f"{text!r} is not a grouping method; the methods are: {', '.join(method_names())}")
    return text


@app.command(cls=_Command)
def group(
    budget: int = typer.Option(3, "--budget", min=1, help="At most B groups, together covering every task."),
    method: str = typer.Option("etap", "--method", parser=_grouping_method_name, metavar="METHOD", help="Grouping method (the registered ones: negtransfer.jobs.grouping_methods.register adds more): 'etap' (ETAP's affinity + spline map + residual), 'tag' (TAG's lookahead affinity), 'hoa' (every pair trained, group gains = pairs' means), 'linear-surrogate' (Li et al. 2023), 'mtgnet' (Song et al. 2022), 'ayman' (every pair + training groups trained, a network predicts a group's total gain; Ayman et al. 2023), 'grad-tae' (Li et al. 2024: affinity from the all-task model's projected gradients); docs/methods/grouping-methods.md."),
    train_groups: int = typer.Option(20, "--train-groups", min=1, help="Training groups (sizes 2..n-1) whose gains are measured before the first fit of the predictor."),
    design: Literal["random", "stratified", "pairs"] = typer.Option("random", "--design", help="How the training groups are drawn: 'random' (a uniform size, then members; the paper's), 'stratified' (sizes spread evenly), 'pairs' (every pair, then larger groups)."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Selection rounds: 1 is the paper's one-shot protocol; more refine actively (train what the selection or the predictor's uncertainty asks for, refit, select again) until the selection is made of measured groups and stops changing."),
    no_refine: bool = typer.Option(False, "--no-refine", help="The paper's one-shot protocol: the same as --rounds 1."),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", min=1, help="Budget of runs (groups x repeats, STL and all-task included) for the recommendation.", show_default="3x the one-shot protocol's runs"),
    per_round: Optional[int] = typer.Option(None, "--per-round", min=1, help="Groups measured per refinement round.", show_default="2 x budget, at least 4"),
    kappa: float = typer.Option(1.0, "--kappa", min=0.0, help="Optimism of the refinement: an unmeasured group counts with its predicted gain plus kappa x the predictor's cross-validated error."),
    objective: Literal["total-loss", "mean-gain", "metric"] = typer.Option("total-loss", "--objective", help="What the selection maximises: the decrease of the summed validation loss (ETAP Table 4's criterion), the sum of gains (ETAP eq. 1), or the summed relative change of the task metric."),
    affinity_momentum: Optional[bool] = typer.Option(None, "--affinity-momentum/--no-affinity-momentum", help="Include the momentum term of ETAP eq. 4 in the affinity.", show_default="the method's own: without for etap (as the public code for Chemical and CelebA; measured better), with for tag (its lookahead takes the full optimiser step)"),
    affinity_epochs: Literal["all", "until-best"] = typer.Option("all", "--affinity-epochs", help="Average the affinity over every epoch of the all-task runs, or only up to their best epoch."),
    evaluate: int = typer.Option(0, "--evaluate", min=0, help="Also measure M random held-out groups and report Pearson and R^2."),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="Train every group; report the optimal grouping and the gap."),
    gain_split: Literal["validation", "test"] = typer.Option("validation", "--gain-split", help="Split whose gains fit the predictor: 'validation' (no test data used for choices) or 'test' (the paper's eq. 1)."),
    predicted_only: bool = typer.Option(False, "--predicted-only", help="Score the training groups by predictions too (the paper's selection); default: by their measured gains."),
    trace: int = typer.Option(0, "--trace", min=0, help="Plot the per-step affinity of this many strongest task pairs (ETAP Figure 7)."),
    affinity_every: int = typer.Option(8, "--affinity-every", min=1, help="Track affinity every k-th step of the all-task run (1 = every step; 8 was chosen by benchmarks/affinity_overhead.py)."),
    out: Path = typer.Option(Path("runs/group"), "--out", help=OutHelp, rich_help_panel=RUNS),
    store: Optional[Path] = StoreOpt,
    executor: Executor = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    ray_address: Optional[str] = RayAddressOpt,
    chunk_size: int = ChunkSizeOpt,
    repeats: int = RepeatsOpt,
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    lr: Optional[float] = LrOpt,
    optimizer: Optional[Optimizer] = OptimizerOpt,
    patience: Optional[int] = PatienceOpt,
    preset: Preset = PresetOpt,
    batching: Optional[Batching] = BatchingOpt,
    oversample: Optional[bool] = OversampleOpt,
    gradient_aggregation: str = GradientAggregationOpt,
    device: Device = DeviceOpt,
    dataset: Optional[str] = DatasetOpt,
    data: Optional[Path] = DataOpt,
    tasks: Optional[str] = TasksOpt,
    features: Optional[str] = FeaturesOpt,
    task_column: Optional[str] = TaskColumnOpt,
    label: Optional[str] = LabelOpt,
    task_kinds: Optional[str] = TaskKindsOpt,
    impute: Optional[Impute] = ImputeOpt,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Find the best task groups with ETAP and write report.json and report.md.

    STL runs, one all-task run with affinity tracking, N sampled training groups,
    the ETAP gain predictor, exact selection of at most B groups, training of the
    chosen groups, and a report.
    """
    from negtransfer.jobs.grouping import GroupingOptions, run_grouping
    from negtransfer.report.jsonio import write_json

    notes: list[str] = []
    config = _train_config(epochs, batch_size, lr, optimizer, patience, preset, batching, oversample, device=device,
                           gradient_aggregation=gradient_aggregation)
    _check_out(out)
    store_path = _store_path(store, out)
    ds = load_dataset_from_options(dataset, data, tasks, features, task_column, label, impute, seed, task_kinds)
    kinds = _kinds_summary(ds, data, notes)
    if ds.n_tasks < 2:
        _fail(f"group needs at least 2 tasks, got {ds.n_tasks} ({', '.join(ds.task_names)}); name more with --tasks")
    options = GroupingOptions(budget=budget, method=method, n_train_groups=train_groups, design=design, repeats=repeats,
                              rounds=1 if no_refine else rounds, per_round=per_round, max_runs=max_runs, kappa=kappa,
                              objective=objective, evaluate=evaluate, exhaustive=exhaustive,
                              gain_split=gain_split, affinity_every=affinity_every,
                              affinity_momentum=affinity_momentum, affinity_epochs=affinity_epochs,
                              chunk_size=chunk_size, use_measured=not predicted_only, trace_pairs=trace)
    try:
        options.check(ds.n_tasks)
    except ValueError as exc:
        _fail(str(exc))
    from negtransfer.jobs.grouping_methods import get_method

    if config.gradient_aggregation != "sum" and get_method(method).measures_affinity:
        _fail(f"--method {method} measures affinity on all-task runs trained with the summed gradient; "
              f"--gradient-aggregation {config.gradient_aggregation} works with the methods that need no affinity "
              f"(e.g. hoa, linear-surrogate, mtgnet), or compare it as a row: "
              f"negtransfer compare-grouping --surgery {config.gradient_aggregation}")
    _grouping_notes(ds.n_tasks, budget, train_groups, evaluate, exhaustive, notes, method=method)
    runner = _executor(executor, workers, notes, ray_address=ray_address, quiet=quiet, device=device)
    _make_out(out)
    run_store = _open_store(store_path)
    with _writes_guarded(store_path, out), _stage_progress(quiet) as progress:
        result = run_grouping(ds, options, config, seed, run_store, executor=runner, progress=progress)
    report = result.report.with_command_line(kinds, notes)
    from negtransfer.report.markdown import write_group_report

    with _writes_guarded(store_path, out):
        write_json(out / "report.json", report.to_dict())
        md = write_group_report(report, out)
    if not quiet:
        _print_group_summary(report, out / "report.json", md)


def _grouping_notes(n: int, budget: int, train_groups: int, evaluate: int, exhaustive: bool, notes: list,
                    method: str = "etap") -> None:
    """Say so when the job will use less than was asked for (it never fails for it)."""
    from math import comb

    from negtransfer.jobs.grouping_methods import get_method

    available = sum(comb(n, s) for s in range(2, n))  # groups of sizes 2..n-1
    spec = get_method(method)
    trained = min(spec.n_training_groups(n, train_groups), available)  # HOA: every pair; Ayman et al.: and more
    if available == 0:
        _note(f"with {n} tasks no group lies between one task and all of them: only the all-task group is "
              f"trained and --train-groups {train_groups} is not used", notes)
    elif train_groups > available and spec.draws_training_groups:
        _note(f"--train-groups {train_groups} is more than the {available} groups of 2..{n - 1} of the {n} tasks; "
              f"all {available} are trained (with the all-task group)", notes)
    if budget > n:
        _note(f"--budget {budget} is more than the {n} tasks; a grouping never needs more groups than tasks, "
              f"so at most {n} are chosen", notes)
    if exhaustive and evaluate:
        _note(f"--evaluate {evaluate} is ignored with --exhaustive, which measures every group", notes)
    elif evaluate > available - trained and available:
        left = available - trained
        _note(f"--evaluate {evaluate}: only {left} held-out group(s) of 2..{n - 1} tasks are left besides the "
              f"{trained} training groups; " + ("all of them are measured" if left else
                                                "the prediction quality is not reported"), notes)


@app.command("compare-grouping", cls=_Command)
def compare_grouping(
    methods: str = typer.Option("etap,tag,hoa,linear-surrogate,mtgnet,ayman,grad-tae", "--methods", help="Comma-separated grouping methods (see `negtransfer group --help`)."),
    budgets: str = typer.Option("2,3,4", "--budgets", help="Comma-separated budgets B."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated seeds (each one splits the data and seeds the runs)."),
    train_groups: int = typer.Option(10, "--train-groups", min=1, help="Training groups before each method's first fit (HOA trains every pair instead; ayman every pair and these)."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Selection rounds of each job (1 = the one-shot protocol)."),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="Train every group: gaps to the test oracle and prediction quality on every group."),
    evaluate: int = typer.Option(30, "--evaluate", min=0, help="Without --exhaustive: random held-out groups for the prediction quality."),
    surgery: str = typer.Option("pcgrad", "--surgery", help="Comma-separated gradient aggregators: the all-task model trained with each is a row beside the groupings (ETAP Section D.3): 'pcgrad', 'mgda', 'imtl-g', 'aligned-mtl', 'graddrop', 'sum'; 'none' for no such row."),
    out: Path = _out_option("runs/compare-grouping"),
    store: Optional[Path] = StoreOpt,
    executor: Executor = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    ray_address: Optional[str] = RayAddressOpt,
    chunk_size: int = ChunkSizeOpt,
    repeats: int = RepeatsOpt,
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    lr: Optional[float] = LrOpt,
    optimizer: Optional[Optimizer] = OptimizerOpt,
    patience: Optional[int] = PatienceOpt,
    preset: Preset = PresetOpt,
    batching: Optional[Batching] = BatchingOpt,
    oversample: Optional[bool] = OversampleOpt,
    device: Device = DeviceOpt,
    dataset: Optional[str] = DatasetOpt,
    data: Optional[Path] = DataOpt,
    tasks: Optional[str] = TasksOpt,
    features: Optional[str] = FeaturesOpt,
    task_column: Optional[str] = TaskColumnOpt,
    label: Optional[str] = LabelOpt,
    task_kinds: Optional[str] = TaskKindsOpt,
    impute: Optional[Impute] = ImputeOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Compare grouping methods on the same data, seeds and runs; write comparison.csv and report.md.

    Every method runs the grouping job at every budget and seed on one run store
    (runs are shared between methods); the report has, per budget, each method's
    summed test loss (mean ± s.e. over seeds) against STL, the all-task model
    and the test oracle (with --exhaustive), its prediction quality, runs and
    time, paired Wilcoxon tests of ETAP against each method, and a plot of the
    loss by budget.
    """
    from negtransfer.jobs.grouping import GroupingOptions
    from negtransfer.jobs.grouping_comparison import compare_grouping_methods, summarise
    from negtransfer.jobs.grouping_methods import method_names
    from negtransfer.report.grouping_comparison import write_comparison_report

    names = _split_list(methods) or []
    unknown = [m for m in names if m not in method_names()]
    if not names or unknown:
        _fail(f"--methods takes comma-separated methods from {', '.join(method_names())}; got {methods!r}")
    try:
        budget_list = [int(b) for b in _split_list(budgets) or []]
        seed_list = [int(x) for x in _split_list(seeds) or []]
    except ValueError:
        _fail(f"--budgets and --seeds take comma-separated whole numbers, got {budgets!r} and {seeds!r}")
    if not budget_list or min(budget_list) < 1 or not seed_list or min(seed_list) < 0:
        _fail("--budgets needs numbers >= 1 and --seeds numbers >= 0, at least one of each")
    surgery_list = _surgery_list(surgery)
    notes: list[str] = []
    config = _train_config(epochs, batch_size, lr, optimizer, patience, preset, batching, oversample, device=device)
    _check_out(out)
    store_path = _store_path(store, out)
    first = load_dataset_from_options(dataset, data, tasks, features, task_column, label, impute, seed_list[0],
                                      task_kinds)
    options = GroupingOptions(n_train_groups=train_groups, repeats=repeats, rounds=rounds, exhaustive=exhaustive,
                              evaluate=0 if exhaustive else evaluate, chunk_size=chunk_size)
    try:
        options.check(first.n_tasks)
    except ValueError as exc:
        _fail(str(exc))
    runner = _executor(executor, workers, notes, ray_address=ray_address, quiet=quiet, device=device)
    _make_out(out)
    run_store = _open_store(store_path)
    cache = {seed_list[0]: first}

    def load(seed):
        if seed not in cache:
            cache[seed] = load_dataset_from_options(dataset, data, tasks, features, task_column, label, impute, seed,
                                                    task_kinds)
        return cache[seed]

    with _writes_guarded(store_path, out), _stage_progress(quiet) as progress:
        rows = compare_grouping_methods(load, names, budget_list, seed_list, options, config, lambda s: run_store,
                                        executor=runner, progress=progress, surgery=surgery_list)
        summary = summarise(rows, reference=names[0])
        md = write_comparison_report(rows, summary, out, reference=names[0], dataset=first.name)
    if not quiet:
        for (method, budget), cell in summary.cells.items():
            mean, se, _ = cell["vs_stl"]
            typer.echo(f"{method:>17} B={budget}: summed test loss {cell['selected'].mean:.4f} ({mean:+.2%} vs STL"
                       + (f" ± {se:.2%})" if se is not None else ")"))
        typer.echo(f"wrote {out / 'comparison.csv'} and {md}")


def _surgery_list(text: str) -> list[str]:
    """The aggregations named by ``--surgery`` ('none': no row), or one error line listing the choices."""
    from negtransfer.train.config import GRADIENT_AGGREGATIONS

    names = _split_list(text) or []
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in GRADIENT_AGGREGATIONS]
    if not names or unknown:
        _fail(f"--surgery takes comma-separated gradient aggregators from {', '.join(GRADIENT_AGGREGATIONS)}, "
              f"or 'none'; got {text!r}")
    return list(dict.fromkeys(names))


@app.command(cls=_Command)
def sources(
    target: str = typer.Option(..., "--target", help="The target task (a label column or a task-column value)."),
    alpha: int = typer.Option(5, "--alpha", min=1, help="Sources per sampled subset."),
    subsets: Optional[int] = typer.Option(None, "--subsets", min=2, help="Subsets the surrogate is fitted on.", show_default="8k for k sources (the paper's), capped by --max-runs"),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", min=1, help="Budget of subset runs (subsets x repeats) for the default --subsets."),
    holdout: int = typer.Option(100, "--holdout", min=0, help="Further subsets for negative-transfer prediction."),
    training_scheme: Optional[Literal["parity", "task-modeling", "legacy"]] = typer.Option(None, "--training", help="'parity': STL, subset and final models share one objective (mean loss over rows), one step budget and early stopping on half the target's validation rows, f(S) on the other half; 'task-modeling': the public code's fixed epochs; 'legacy': the trainer's defaults (figures before issue 11).", show_default="parity; task-modeling with --preset task-modeling"),
    loss: Optional[Literal["cross_entropy", "mse", "margin", "logit_margin", "zero_one"]] = typer.Option(None, "--loss", help="f(S): cross_entropy, margin (probabilities), logit_margin or zero_one (classification), mse (regression).", show_default="the training loss (cross_entropy; mse for regression); logit_margin for task-modeling, margin for legacy"),
    ridge: Optional[str] = typer.Option(None, "--ridge", help="Ridge penalty of the surrogate: a number (0 = least squares, eq. 3) or 'auto' (the strength with the least leave-one-out error over the fitted subsets; least squares is a candidate).", show_default="0; auto when fewer than 1.5k subsets are fitted under --training parity"),
    no_affinity: bool = typer.Option(False, "--no-affinity", help="Skip the affinity-ranked baseline."),
    group_attribute: Optional[str] = typer.Option(None, "--group-attribute", help="Row attribute (e.g. race in tv16) for worst-group accuracy and parity gaps."),
    common_init: bool = typer.Option(False, "--common-init", help="Subset models share one initialisation (common random numbers: less noise in f(S))."),
    grid: Optional[Literal["paper", "all"]] = typer.Option(None, "--grid", help="Thresholds tried: 'all' (one per distinct selection) or 'paper' (-0.5..0.5 step 0.1 on the raw scores of eq. 3; on relative scores with --training legacy).", show_default="all; paper with --preset task-modeling"),
    data_fraction: float = typer.Option(1.0, "--data-fraction", help="Subset models train on this fraction of the training rows (paper's speed-up: 0.4)."),
    steps_fraction: float = typer.Option(1.0, "--steps-fraction", help="Subset models get this fraction of the epoch budget (paper's speed-up: 0.2)."),
    threshold_by: Literal["validation", "surrogate"] = typer.Option("validation", "--threshold-by", help="Choose gamma by the final models' target 'validation' loss (paper) or the training-free cross-fitted 'surrogate' criterion."),
    stl_repeats: int = typer.Option(1, "--stl-repeats", min=1, help="Mean of this many STL runs is the reference f(STL) that subsets are judged against."),
    exhaustive_pairs: Literal["auto", "on", "off"] = typer.Option("auto", "--exhaustive-pairs", help="Baseline: best of all 1-2 source combinations; 'auto' (when k(k-1)/2 <= --max-pair-runs), 'on' or 'off'."),
    max_pair_runs: int = typer.Option(300, "--max-pair-runs", min=0, help="Pair models allowed for --exhaustive-pairs auto."),
    out: Path = _out_option("runs/sources"),
    store: Optional[Path] = StoreOpt,
    executor: Executor = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    ray_address: Optional[str] = RayAddressOpt,
    chunk_size: int = ChunkSizeOpt,
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Runs per model (common random numbers); f(S), f(STL) and every loss are means over the repeats, with standard errors in report.json.", show_default="3; 5 with --preset task-modeling (the authors average 3-5)", rich_help_panel=RUNS),
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    lr: Optional[float] = LrOpt,
    optimizer: Optional[Optimizer] = OptimizerOpt,
    patience: Optional[int] = PatienceOpt,
    preset: Preset = PresetOpt,
    batching: Optional[Batching] = BatchingOpt,
    oversample: Optional[bool] = OversampleOpt,
    device: Device = DeviceOpt,
    dataset: Optional[str] = DatasetOpt,
    data: Optional[Path] = DataOpt,
    tasks: Optional[str] = TasksOpt,
    features: Optional[str] = FeaturesOpt,
    task_column: Optional[str] = TaskColumnOpt,
    label: Optional[str] = LabelOpt,
    task_kinds: Optional[str] = TaskKindsOpt,
    impute: Optional[Impute] = ImputeOpt,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Choose source tasks for a target with a surrogate model of its loss over source subsets.

    Writes report.json (relevance scores, threshold, selection, holdout F1 and
    Spearman, the target's test loss and metric under STL, all sources, the
    selection and the baselines) and report.md with plots.
    """
    from negtransfer.jobs.sources import SourceOptions, run_sources
    from negtransfer.report.jsonio import write_json
    from negtransfer.report.sources import write_sources_report

    notes: list[str] = []
    training = TrainingOptions(epochs, batch_size, lr, optimizer, patience)
    training.check()
    # the source-selection figures in docs/methods/source-selection.md were measured with pooled batches and
    # an initialisation per subset model (--common-init shares one)
    config = _train_config(epochs, batch_size, lr, optimizer, patience, preset,
                           batching or ("pooled" if preset == "default" else None), oversample,
                           shared_init=common_init, device=device)
    if not (math.isfinite(data_fraction) and 0 < data_fraction <= 1 and math.isfinite(steps_fraction) and 0 < steps_fraction <= 1):
        _fail(f"--data-fraction and --steps-fraction must be in (0, 1], got {data_fraction} and {steps_fraction}")
    if ridge is not None and ridge != "auto":
        ridge = _nonnegative_number(ridge, "--ridge ('auto' or a number)")
    job = _Job(RunOptions(out, store, executor, workers, seed, quiet, ray_address, device=device), notes)
    ds = DataOptions(dataset, data, tasks, features, task_column, label, impute, task_kinds).load(seed)
    kinds = _kinds_summary(ds, data, notes)
    public = preset == "task-modeling"  # the public code's setting: its scheme, 5 runs, the paper grid
    options = SourceOptions(target=target, alpha=alpha, n_subsets=subsets, holdout=holdout, loss=loss,
                            ridge=ridge, affinity_baseline=not no_affinity, chunk_size=chunk_size,
                            data_fraction=data_fraction, steps_fraction=steps_fraction,
                            grid=grid or ("paper" if public else "all"),
                            group_attribute=group_attribute, common_init=common_init,
                            exhaustive_pairs=exhaustive_pairs, max_pair_runs=max_pair_runs,
                            threshold_by=threshold_by, stl_repeats=stl_repeats,
                            repeats=repeats or (5 if public else 3),
                            training=training_scheme or ("task-modeling" if public else "parity"),
                            max_runs=max_runs)
    try:
        options.check(ds)
    except ValueError as exc:
        _fail(str(exc))
    from math import comb

    distinct = comb(ds.n_tasks - 1, alpha)
    n_fit = options.subsets_for(ds.n_tasks - 1)
    if n_fit + holdout > distinct:
        _note(f"{n_fit} fitted + {holdout} holdout subsets are more than the {distinct} distinct subsets of {alpha} "
              f"of the {ds.n_tasks - 1} sources; subsets repeat", notes)
    job.start()
    with job.training() as progress:
        report = run_sources(ds, options, config, seed, job.store, executor=job.executor, progress=progress,
                             notify=lambda message: _note(message, notes))
    report.task_kinds, report.notes = kinds, notes
    with job.writing():
        write_json(out / "report.json", report.to_dict())
        md = write_sources_report(report, out)
    if not quiet:
        typer.echo(f"target {report.target}: selected {len(report.selected)} of {report.n_sources} sources "
                   f"(threshold {report.threshold:.3g}): {', '.join(report.selected) or 'none'}")
        typer.echo("test loss: " + " | ".join(f"{k} {v:.4f}" for k, v in report.test_loss.items()))
        h = report.holdout
        if h.get("n"):
            typer.echo(f"holdout: F1 (minority class) {h['f1']:.3f}, Spearman {h['spearman']:.3f}")
        typer.echo(f"report: {md}")


@app.command(cls=_Command)
def compare(
    models: str = typer.Option(..., "--models", help="Comma-separated model names, e.g. stl,bmtl,vmtl (the models "
                               "for the dataset's kind are listed when a name is wrong)."),
    runs: int = typer.Option(3, "--runs", min=1, help="Runs; run r uses seed + r for split, subsample and model."),
    train_fraction: Optional[float] = typer.Option(None, "--train-fraction", help="Share of each task's rows used for training (domains data: the VMTL paper's 0.05..0.6).", show_default="all training rows"),
    fgsm: Optional[str] = typer.Option(None, "--fgsm", help="Comma-separated FGSM noise levels, e.g. 0.05,0.1 (adds fgsm_accuracy@eps; VMTL family)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Training iterations per model (VMTL family; for the TP-AMTL family the same as --epochs).", show_default="the model family's", rich_help_panel=TRAINING),
    epochs: Optional[int] = CompareEpochsOpt,
    batch_size: Optional[int] = CompareBatchSizeOpt,
    lr: Optional[float] = CompareLrOpt,
    optimizer: Optional[Optimizer] = CompareOptimizerOpt,
    patience: Optional[int] = ComparePatienceOpt,
    settings: Optional[str] = typer.Option(None, "--set", help="Comma-separated KEY=VALUE training settings for the model family (VMTL: VariationalConfig fields, e.g. kl_w_warmup_step=1e-4; TP-AMTL: TemporalTrainConfig fields, e.g. mc_samples=5).", rich_help_panel=TRAINING),
    out: Path = _out_option("runs/compare"),
    store: Optional[Path] = StoreOpt,
    executor: Executor = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    ray_address: Optional[str] = RayAddressOpt,
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads per model (small models run fastest on one).", rich_help_panel=RUNS),
    dataset: Optional[str] = DatasetOpt,
    data: Optional[Path] = DataOpt,
    tasks: Optional[str] = TasksOpt,
    features: Optional[str] = FeaturesOpt,
    task_column: Optional[str] = TaskColumnOpt,
    label: Optional[str] = LabelOpt,
    task_kinds: Optional[str] = TaskKindsOpt,
    impute: Optional[Impute] = ImputeOpt,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train each named model for R runs and write results.csv, report.md and report.json.

    Data: domains (per-task rows over one label space: heart-hospitals,
    digit-domains, or --data FILE --task-column --label) for the VMTL family;
    time series (pbcseq, nafld, or --data with a PhysioNet 2012 folder) and
    binary tables (mnist-variation) for the TP-AMTL family. Runs go through the
    run store like every command: a rerun (also after a kill) trains only what
    is missing and writes the same results.csv.
    results.csv has columns model, task, run, metric, value; report.md has one
    table per metric in the paper's layout (mean ± s.e. per task), with cells
    below the model's single-task counterpart marked.
    """
    from negtransfer.jobs.compare import CompareOptions, run_compare
    from negtransfer.models.base import FitOptions
    from negtransfer.report.compare import write_compare_outputs

    notes: list[str] = []
    training = TrainingOptions(epochs, batch_size, lr, optimizer, patience)
    training.check()
    fit = FitOptions(epochs=epochs, iterations=iterations, batch_size=batch_size, lr=lr, optimizer=optimizer,
                     patience=patience, settings=_settings(settings), fgsm_epsilons=tuple(_fgsm_levels(fgsm)))
    options = CompareOptions(models=tuple(_split_list(models) or ()), runs=runs, train_fraction=train_fraction,
                             fit=fit, threads=threads)
    try:
        options.check()
    except ValueError as exc:
        _fail(str(exc))
    job = _Job(RunOptions(out, store, executor, workers, seed, quiet, ray_address, threads=threads), notes)
    data_options = DataOptions(dataset, data, tasks, features, task_column, label, impute, task_kinds)
    load = data_options.loader(kinds=None)
    import torch

    torch.set_num_threads(threads)
    job.start()
    try:
        with job.training() as progress:
            report = run_compare(load, data_options.name, options, seed, job.store, executor=job.executor,
                                 progress=progress)
    except (ValueError, ImportError, KeyError, FileNotFoundError) as exc:
        _fail(str(exc))
    report.notes = notes
    with job.writing():
        csv_path, md_path, json_path = write_compare_outputs(report, out)
    if not quiet:
        metrics = report.metrics()
        metric = "accuracy" if "accuracy" in metrics else metrics[0]
        for name, cells in report.summary(metric).items():
            mean, se = cells.get("average", (float("nan"), float("nan")))
            typer.echo(f"{name:>22}: average {metric} {mean:.4f} ± {se:.4f}")
        if report.reused:
            typer.echo(f"{report.reused} of {report.reused + report.trained} model runs were in the run store")
        typer.echo(f"wrote {csv_path}, {md_path} and {json_path}")


def _settings(text: Optional[str]) -> dict:
    """``--set KEY=VALUE,...`` as a dict (values parsed as JSON where they are: numbers, true/false)."""
    settings: dict = {}
    for item in _split_list(text) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--set takes KEY=VALUE pairs, got {item!r}")
        try:
            settings[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            settings[key.strip()] = value
    return settings


def _nonnegative_number(text: str, option: str) -> float:
    """``text`` as a finite number >= 0, or a clear usage error naming ``option``."""
    try:
        value = float(text)
    except ValueError:
        _fail(f"{option} takes numbers >= 0, got {text!r}")
    if not (math.isfinite(value) and value >= 0):
        _fail(f"{option} takes finite numbers >= 0, got {text!r}")
    return value


def _fgsm_levels(text: Optional[str]) -> list[float]:
    return [_nonnegative_number(item, "--fgsm") for item in _split_list(text) or []]


@app.command("recover-store", cls=_Command)
def recover_store_command(
    damaged: Path = typer.Argument(..., help="The damaged run store (only read)."),
    recovered: Path = typer.Argument(..., help="A new file for the recovered store (must not exist)."),
) -> None:
    """Copy the readable runs of a damaged run store into a new store.

    Use the new file with --store; runs that could not be read are trained again.
    """
    from negtransfer.runs.store import StoreError, recover_store

    try:
        counts = recover_store(damaged, recovered)
    except StoreError as exc:
        _fail(str(exc))
    typer.echo(f"recovered {counts['runs']} runs and {counts['artifacts']} cached artifacts into {recovered} "
               f"({counts['skipped']} unreadable rows skipped); use it with --store {recovered}")


@contextmanager
def _stage_progress(quiet: bool):
    """One progress bar per stage of a job: ``progress(stage, done, total)``."""
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn()) as bar:
        stages: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in stages:
                stages[stage] = bar.add_task(stage, total=total)
            bar.update(stages[stage], completed=done, total=total)

        yield progress


def _print_group_summary(report, json_path: Path, md_path: Path) -> None:
    """The console summary of a grouping job from its typed report (:class:`~negtransfer.jobs.grouping_report.GroupingReport`)."""
    from rich.console import Console

    console = Console()
    totals = report.totals
    if report.noise.verdict:
        console.print(f"[bold]Noise[/bold]: {report.noise.verdict}", soft_wrap=True)
    console.print("[bold]Chosen groups[/bold] (budget %d):" % report.budget)
    for g in report.selected_groups:
        console.print("  " + " + ".join(g))
    line = (f"total test loss: chosen {totals['selected']:.4f} | STL {totals['stl']:.4f} "
            f"({(totals['selected'] / totals['stl'] - 1):+.1%}) | all-task {totals['all_tasks']:.4f} "
            f"({(totals['selected'] / totals['all_tasks'] - 1):+.1%})")
    if report.optima is not None:
        line += f" | test oracle {totals['optimal']:.4f} (gap {report.optima.gap:+.1%})"
    console.print(line)
    ref = report.refinement
    final = "; then a final selection among the measured groups" if ref.final_among_measured else ""
    console.print(f"rounds: {ref.rounds_run} ({ref.stopped}{final}); {ref.runs_used} runs, "
                  f"{ref.runs_vs_one_shot:.2f}x the one-shot protocol", soft_wrap=True)
    if not report.comparison.better_than_alternatives:
        console.print(f"[bold red]warning[/bold red]: {report.comparison.verdict}", soft_wrap=True)
    pred = report.prediction
    if pred.pearson is not None:
        console.print(f"gain prediction on {pred.n_groups} held-out groups: Pearson {pred.pearson:.3f}, R^2 {pred.r2:.3f}")
    console.print(f"report: {md_path}  data: {json_path}")


def main() -> None:  # pragma: no cover - entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
