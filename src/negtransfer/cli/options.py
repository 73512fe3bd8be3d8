"""The option groups shared by the commands, each option defined once, and the values they bundle.

Groups: data (what to learn from), training (how every model is trained),
runs (where runs are stored and trained, where results go). Every command
takes its groups' options by these definitions, so names, defaults and help
agree everywhere; :class:`DataOptions`, :class:`TrainingOptions`,
:class:`ModelOptions` and :class:`RunOptions` bundle a command's values of each
group. The options a command takes together come as blocks (:data:`DATA_BLOCK`,
:data:`TRAINING_BLOCK`, :data:`MODEL_BLOCK`, :func:`runs_block`): one parameter
of the command stands for a block's options, and :func:`with_option_blocks`
hands it their bundle.

Choices come from the domain tuples where those are cheap to import
(``negtransfer.train.config``, ``negtransfer.jobs.choices``,
``negtransfer.gains.methods``); the few whose modules import NumPy or PyTorch
(``--executor``, ``--optimizer``, ``--impute``, ``--design``,
``--affinity-epochs``) are Literals that ``tests/test_cli_options.py`` checks
against their domain tuples, as it checks every command's defaults against the
options dataclasses of its job.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Optional, TypeAlias

import typer

from negtransfer.cli.console import command_name, fail, note
from negtransfer.train.config import BATCHING, DEVICES, PRESETS, TrainConfig, check_device_available
from negtransfer.train.model_choice import BUILTIN_ENCODER_NAMES, ModelChoice

TRAIN_DEFAULTS = TrainConfig()  # the training defaults shown in --help

# ------------------------------------------------------------------ choices
#: ``--executor``: the names :func:`negtransfer.runs.executors.make_executor` takes (checked by the tests; the
#: executors module imports PyTorch, which ``--help`` must not).
Executor = Literal["local", "process", "ray"]
#: ``--optimizer``: what :class:`~negtransfer.train.config.TrainConfig` accepts (checked by the tests).
Optimizer = Literal["sgd", "adam"]
#: ``--impute``: :data:`negtransfer.data.build.IMPUTE_CHOICES` but None, and the kinds of ``--task-kinds``:
#: :data:`negtransfer.data.build.TASK_KINDS` (checked by the tests; the data package imports NumPy, which
#: ``--help`` need not wait for).
Impute = Literal["mean", "median"]
TASK_KINDS = ("binary", "multiclass", "regression")
if TYPE_CHECKING:  # a type checker sees plain strings; typer reads the Literals built from the domain tuples
    Device: TypeAlias = str
    Preset: TypeAlias = str
    Batching: TypeAlias = str
    Encoder: TypeAlias = str
else:
    Device = Literal[DEVICES]
    Preset = Literal[tuple(PRESETS)]
    Batching = Literal[BATCHING]
    Encoder = Literal[BUILTIN_ENCODER_NAMES]

# ------------------------------------------------------------------ options
DATA, TRAINING, RUNS = "Data", "Training", "Runs and output"
DatasetOpt = typer.Option(None, "--dataset", help="Built-in dataset (see `negtransfer datasets`).",
                          show_default="yeast", rich_help_panel=DATA)
DataOpt = typer.Option(None, "--data", help="Your own data instead of --dataset: a .csv, .csv.gz or .parquet table, a "
                       ".npz file of arrays, or a folder of Task_Splits arrays or PhysioNet 2012 records "
                       "(docs/datasets.md).",
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
#: The largest ``--seed``: scikit-learn's random_state (the predictors' and the folds') takes 0 .. 2**32 - 1; larger
#: seeds once failed in the run store (SQLite's integers end at 2**63 - 1) after the data was read.
MAX_SEED = 2**32 - 1
SeedOpt = typer.Option(0, "--seed", min=0, max=MAX_SEED, help="Fixes splits, initialisation and batch order.")
QuietOpt = typer.Option(False, "-q", "--quiet", help="No progress bars (notes and the result summary are still "
                                                     "printed).")
OutHelp = "Output folder (created if missing)."
StoreOpt = typer.Option(None, "--store", help="Run store (SQLite file); share one between commands to reuse runs.",
                        show_default="OUT/runs.sqlite", rich_help_panel=RUNS)
ExecutorOpt = typer.Option("local", "--executor", help="'local': vectorised, in this process; 'process': a pool "
                           "of local processes; 'ray': Ray tasks on a local Ray instance or a cluster (--ray-address; "
                           "docs/scaling.md).", rich_help_panel=RUNS)
WorkersOpt = typer.Option(None, "--workers", min=1, help="Threads (one stack each) for --executor local; processes "
                          "for --executor process; CPUs of the local Ray instance for --executor ray.", show_default="CPU cores", rich_help_panel=RUNS)
RayAddressOpt = typer.Option(None, "--ray-address", help="With --executor ray: the Ray cluster to run on ('auto' on "
                             "one of its nodes, or HOST:6379); the run store stays here, on the driver.",
                             show_default="a local Ray instance that starts and stops with the command",
                             rich_help_panel=RUNS)
DeviceOpt = typer.Option(TRAIN_DEFAULTS.device, "--device", help="Train the stacked models (and track affinity) on "
                         "the CPU or on a CUDA GPU.", rich_help_panel=TRAINING)
ChunkSizeOpt = typer.Option(None, "--chunk-size", min=1, help="Models trained at once in one vectorised stack "
                            "(default: one stack per core, split only where memory runs short).",
                            rich_help_panel=RUNS)


def out_option(default: str):
    """``--out`` with the command's default folder."""
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
    *(f"{value}, or the preset's" for value in (TRAIN_DEFAULTS.max_epochs, TRAIN_DEFAULTS.batch_size,
                                                TRAIN_DEFAULTS.lr, TRAIN_DEFAULTS.optimizer, TRAIN_DEFAULTS.patience)))
# compare's: each model family's defaults
(CompareEpochsOpt, CompareBatchSizeOpt, CompareLrOpt, CompareOptimizerOpt,
 ComparePatienceOpt) = _training_options(*(["the model family's"] * 5))
PresetOpt = typer.Option("default", "--preset",
                         help="Named training setup: 'default', or 'etap-chemical' (the ETAP public code's Chemical "
                              "setup: Glorot-uniform initialisation, lr 0.001, 264 rows per task and step, "
                              "--balance, patience 20, up to 1000 epochs, lr halved every 75 epochs after epoch "
                              "100), or 'task-modeling' (the surrogate "
                              "paper's public code: pooled rows, mean loss over rows, 20 epochs, no early stopping). "
                              "Options given explicitly win.",
                         rich_help_panel=TRAINING)
BatchingOpt = typer.Option(None, "--batching",
                           help="Per-task-rows data: 'per-task' (each step takes --batch-size rows of every task of "
                                "the group) or 'pooled' (--batch-size rows of the group's pooled rows); 'auto' is "
                                "per-task for per-task-rows data, pooled for multi-label data.",
                           show_default=f"{TRAIN_DEFAULTS.batching}, or the preset's", rich_help_panel=TRAINING)
OversampleOpt = typer.Option(None, "--balance/--no-balance", "--oversample/--no-oversample",
                             help="Per-task-rows data with per-task batches: top a group's smaller tasks up to its "
                                  "largest task's training rows (drawn with replacement, half from each class), as "
                                  "the ETAP public code does; STL models are never topped up. --oversample is the "
                                  "same option.",
                             show_default="off, or the preset's", rich_help_panel=TRAINING)
GradientAggregationOpt = typer.Option(
    TRAIN_DEFAULTS.gradient_aggregation, "--gradient-aggregation",
    help="How a group model's per-task gradients of the shared encoder become its update: 'sum' (the ordinary "
         "summed gradient) or a torchjd aggregator: 'pcgrad' (Yu et al. 2020), 'mgda', 'imtl-g', 'aligned-mtl', "
         "'graddrop' (docs/training.md). Task heads keep their own gradient; STL models are unaffected.",
    rich_help_panel=TRAINING)
EncoderOpt = typer.Option(None, "--encoder",
                          help="Built-in network: a shared encoder with one head per task. 'mlp' (tables; images "
                               "and sequences flattened), 'cnn' (images N x C x H x W), 'lstm' or 'transformer' "
                               "(sequences N x T x F); docs/your-network.md.",
                          show_default=TRAIN_DEFAULTS.model.encoder, rich_help_panel=TRAINING)
ModelOpt = typer.Option(None, "--model", metavar="FILE.py:FUNCTION",
                        help="Your own network: a factory make(input_shape, outputs) -> (encoder, heads) given as "
                             "FILE.py:FUNCTION or package.module:FUNCTION (instead of --encoder; "
                             "docs/your-network.md).", rich_help_panel=TRAINING)
ModelVersionOpt = typer.Option(None, "--model-version", metavar="TEXT",
                               help="Key the runs of --model by this version instead of its file's hash: keep it to "
                                    "reuse stored runs, change it to train again.",
                               show_default="the file's hash", rich_help_panel=TRAINING)
ModelArgOpt = typer.Option(None, "--model-arg", metavar="NAME=VALUE",
                           help="A keyword argument of the factory of --model or --encoder (repeat it; values are "
                                "read as JSON where they parse, e.g. 32, true, [8, 16], else as text).",
                           rich_help_panel=TRAINING)
RepeatsOpt = typer.Option(3, "--repeats", min=1,
                          help="Runs per model (common random numbers: repeat r of every group and of STL uses the "
                               "same seed); gains are means over repeats with standard errors. 3 was chosen by "
                               "benchmarks/gain_noise.py (docs/methods/grouping.md).",
                          rich_help_panel=RUNS)


# ------------------------------------------------------------------ parsing
def split_list(text: Optional[str]) -> Optional[list[str]]:
    """``"a, b,c"`` as ``["a", "b", "c"]``; None for None or a text without items."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def check_names(text: Optional[str], option: str) -> None:
    """Fail on an empty name in a comma-separated list of names (``--tasks action,,drama``): it was dropped
    without a word before, so a typo chose fewer tasks than meant."""
    if text is None:
        return
    items = [t.strip() for t in text.split(",")]
    if any(not item for item in items):
        named = ",".join(item for item in items if item)
        fail(f"{option} {text!r} has an empty name (two commas in a row, or one at an end); give comma-separated "
             f"names" + (f", e.g. {option} {named}" if named else ""))


def parse_task_kinds(text: Optional[str]) -> Optional[dict[str, str]]:
    """``--task-kinds TASK=KIND,...`` as a dict, or one error line."""
    if text is None:
        return None
    kinds = {}
    for item in split_list(text) or []:
        name, sep, kind = item.partition("=")
        if not sep or not name.strip() or kind.strip() not in TASK_KINDS:
            fail(f"--task-kinds takes TASK=KIND pairs with KIND binary, multiclass or regression, got {item!r}")
        kinds[name.strip()] = kind.strip()
    return kinds


def json_or_text(value: str) -> Any:
    """An option's VALUE parsed as JSON where it parses (numbers, true/false, lists), else the text itself."""
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def parse_settings(text: Optional[str]) -> dict:
    """``--set KEY=VALUE,...`` as a dict (values parsed as JSON where they are: numbers, true/false)."""
    settings: dict = {}
    for item in split_list(text) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            fail(f"--set takes KEY=VALUE pairs, got {item!r}")
        settings[key.strip()] = json_or_text(value)
    return settings


def nonnegative_number(text: str, option: str) -> float:
    """``text`` as a finite number >= 0, or a clear usage error naming ``option``."""
    try:
        value = float(text)
    except ValueError:
        fail(f"{option} takes numbers >= 0, got {text!r}")
    if not (math.isfinite(value) and value >= 0):
        fail(f"{option} takes finite numbers >= 0, got {text!r}")
    return value


def fgsm_levels(text: Optional[str]) -> list[float]:
    """``--fgsm 0.05,0.1`` as numbers >= 0."""
    return [nonnegative_number(item, "--fgsm") for item in split_list(text) or []]


def parse_model_arguments(items: Optional[list[str]]) -> dict[str, Any]:
    """``--model-arg NAME=VALUE`` (repeated) as keyword arguments; values parsed as JSON where they parse."""
    arguments: dict[str, Any] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip().isidentifier():
            fail(f"--model-arg takes NAME=VALUE with NAME a keyword argument of the factory, got {item!r}")
        arguments[name.strip()] = json_or_text(value)
    return arguments


# ------------------------------------------------------------------ option groups
#: The data kinds of the commands that train tables only (the default of :meth:`DataOptions.load`).
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
            fail("give either --dataset or --data, not both")
        check_names(self.tasks, "--tasks")
        check_names(self.features, "--features")
        parse_task_kinds(self.task_kinds)
        if self.data is None:
            for option, value in (("--features", self.features), ("--task-column", self.task_column),
                                  ("--label", self.label), ("--impute", self.impute),
                                  ("--task-kinds", self.task_kinds)):
                if value is not None:
                    fail(f"{option} applies to your own file (--data FILE) only; leave it out with --dataset")

    def load(self, seed: int, kinds: Optional[tuple] = TABULAR_KINDS, command: Optional[str] = None):
        """The dataset split with ``seed``, or a clean error (also for a kind of data the command does not take)."""
        import warnings

        try:
            with warnings.catch_warnings():  # a value beyond float32 is one error line below, not a warning too
                warnings.filterwarnings("ignore", message="overflow encountered in cast", category=RuntimeWarning)
                dataset = self.loader(kinds, command)(seed)
            if self.data is not None:  # a file's kind is known once it is read (a .npz file of images)
                from negtransfer.data.builtin import check_data_kind

                check_data_kind(dataset, kinds, command or command_name())
        except (ValueError, FileNotFoundError, ImportError, KeyError) as exc:
            fail(str(exc))
        check_features_finite(dataset, self.name)
        return dataset

    def loader(self, kinds: Optional[tuple] = TABULAR_KINDS, command: Optional[str] = None):
        """``load(seed) -> dataset`` (raising DataError etc.).

        ``--data`` is a table file, a Task_Splits folder (:func:`~negtransfer.data.files.dataset_from_file`), or a
        PhysioNet 2012 challenge folder (one with an ``Outcomes*.txt`` file in it or, as the challenge ships
        them, ``Outcomes-a.txt`` beside ``set-a/``; time series).
        """
        self.check()
        command = command or command_name()
        task_list = split_list(self.tasks)
        if self.data is None:
            from negtransfer.data.builtin import load_builtin

            name = self.dataset or "yeast"
            return lambda seed: load_builtin(name, seed=seed, tasks=task_list, kinds=kinds, command=command)
        from negtransfer.data.timeseries.physionet import is_physionet_folder

        if is_physionet_folder(self.data):
            from negtransfer.data.builtin import PHYSIONET_PREFIX, load_builtin

            name = f"{PHYSIONET_PREFIX}{self.data}"
            return lambda seed: load_builtin(name, seed=seed, tasks=task_list, kinds=kinds, command=command)
        from negtransfer.data.files import dataset_from_file

        options: dict[str, Any] = dict(tasks=task_list, features=split_list(self.features), task_column=self.task_column,
                       label_column=self.label, impute=self.impute, task_kinds=parse_task_kinds(self.task_kinds))
        return lambda seed: dataset_from_file(self.data, seed=seed, **options)


def check_features_finite(dataset, source: str) -> None:
    """Fail on a feature value that training would see as infinite: a number such as 1e39 is finite in the file
    (float64) but beyond float32's range (about 3.4e38), which the models compute in; it once trained every model on
    inf and left every gain 0.0 or NaN."""
    import numpy as np

    axis = dataset.feature_axis
    other_axes = tuple(a for a in range(dataset.X.ndim) if a != axis)
    beyond = ~np.isfinite(dataset.X)
    mean, std = dataset.info.get("feature_mean"), dataset.info.get("feature_std")
    if dataset.X.ndim == 2 and mean is not None and std is not None and len(mean) == dataset.X.shape[1]:
        # a huge value among the training rows is scaled down with them: the file's values are mean + std * x
        with np.errstate(over="ignore", invalid="ignore"):
            raw = dataset.X.astype(np.float64) * np.asarray(std, dtype=np.float64) + np.asarray(mean, dtype=np.float64)
        beyond |= np.abs(raw) > np.finfo(np.float32).max
    if not beyond.any():
        return
    bad = np.flatnonzero(beyond.any(axis=other_axes))
    names = [dataset.feature_names[i] for i in bad]
    shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    fail(f"{source}: feature {shown} has {int(beyond.sum())} value(s) beyond float32's range (about 3.4e38), "
         f"which the models compute in; rescale the column (e.g. divide it by 1e30 or take its logarithm) or leave "
         f"it out with --features")


@dataclass(frozen=True)
class TrainingOptions:
    """The training group: ``--epochs``, ``--batch-size``, ``--lr``, ``--optimizer``, ``--patience``, with
    ``--preset``, ``--batching``, ``--balance`` (``oversample``); None means the preset's value."""

    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    lr: Optional[float] = None
    optimizer: Optional[str] = None
    patience: Optional[int] = None
    preset: str = "default"
    batching: Optional[str] = None
    oversample: Optional[bool] = None

    def check(self) -> None:
        """Fail on a learning rate that is not a positive number."""
        if self.lr is not None and not (math.isfinite(self.lr) and self.lr > 0):
            fail(f"--lr must be a positive number, e.g. {TRAIN_DEFAULTS.lr}, got {self.lr}")

    def config(self, **fixed) -> TrainConfig:
        """The training configuration: the preset, with every option given (and ``fixed``) on top; checked, also
        that ``--device`` is available here."""
        self.check()
        given = {"max_epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                 "optimizer": self.optimizer, "patience": self.patience, "batching": self.batching,
                 "oversample": self.oversample, **fixed}
        try:
            config = TrainConfig.preset(self.preset, **{k: v for k, v in given.items() if v is not None})
            check_device_available(config.device)
        except ValueError as exc:
            fail(str(exc))
        return config


@dataclass(frozen=True)
class ModelOptions:
    """The network: ``--encoder`` or ``--model`` with ``--model-version`` and ``--model-arg``; all None means the
    built-in mlp (``TrainConfig``'s default, with its numbers and run keys)."""

    encoder: Optional[str] = None
    model: Optional[str] = None
    model_version: Optional[str] = None
    model_args: Optional[list[str]] = None

    def choice(self) -> ModelChoice:
        """The :class:`~negtransfer.train.model_choice.ModelChoice`, or one error line."""
        if self.encoder is not None and self.model is not None:
            fail("give either --encoder or --model, not both")
        if self.model_version is not None and self.model is None:
            fail("--model-version keys the runs of your own --model FILE.py:FUNCTION; leave it out with --encoder")
        arguments = parse_model_arguments(self.model_args)
        try:
            if self.model is not None:
                return ModelChoice(factory=self.model, arguments=tuple(arguments.items()), version=self.model_version)
            return ModelChoice(encoder=self.encoder or TRAIN_DEFAULTS.model.encoder, arguments=tuple(arguments.items()))
        except (ValueError, OSError) as exc:
            fail(str(exc))

    @property
    def given(self) -> bool:
        """Whether any model option was given."""
        return any(v is not None for v in (self.encoder, self.model, self.model_version, self.model_args))


def check_model_on(dataset, config: TrainConfig, notes: list) -> None:
    """Check ``config.model`` on ``dataset`` before any training: one error line for a bad factory, a note for a
    model that trains one at a time; later warnings that it cannot stack stay off the console (the note says it)."""
    import warnings

    from negtransfer.train.batched import UnstackableModelWarning, check_model

    try:
        plan = check_model(dataset, config)
    except Exception as exc:  # a user's model may raise anything; check_model names it
        fail(str(exc) if isinstance(exc, ValueError) else f"the model {config.model.name} raised "
             f"{type(exc).__name__}: {exc}")
    if plan.note:
        note(f"{config.model.name}: {plan.note}", notes)
    warnings.filterwarnings("ignore", category=UnstackableModelWarning)


def fit_batch_size(dataset, config: TrainConfig, given: Optional[int], notes: list) -> TrainConfig:
    """``config`` with a ``--batch-size`` larger than the training rows cut down to them, with a note.

    A batch holds at most every training row (per-task batches: the largest task's training rows), so a larger
    ``--batch-size`` trains the same full batch, except that per-task batches drew rows again and the stacked
    trainer allocated tensors of the size asked for: ``--batch-size 1000000000`` once failed after 55 s on an
    allocation error. Only a value given on the command line is cut (a preset's is left as it is, with its run keys).
    """
    import numpy as np

    if given is None:
        return config
    train = dataset.indices("train")
    per_task = dataset.row_task is not None and config.per_task_batches(True)
    if per_task:
        rows = int(np.bincount(dataset.row_task[train], minlength=dataset.n_tasks).max()) if train.size else 0
        what = "training rows of the largest task"
    else:
        rows, what = int(train.size), "training rows"
    if rows < 1 or given <= rows:
        return config
    note(f"--batch-size {given} is more than the {rows} {what}; using --batch-size {rows} (one batch is the whole "
         f"training split)", notes)
    from dataclasses import replace

    return replace(config, batch_size=rows)


def note_unused_balance(dataset, config: TrainConfig, notes: list) -> None:
    """A note when ``--balance`` (``oversample``) is on for multi-label data, where it changes nothing.

    Oversampling tops up the small tasks' rows of per-task-rows data (each row labelled for one task); in
    multi-label data every model already draws the same rows for all its tasks, so there is nothing to top up.
    """
    if config.oversample and dataset.row_task is None:
        note("--balance tops up small tasks of per-task-rows data (each row labelled for one task); this data is "
             "multi-label (every row can carry every task), so it has no effect here", notes)


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


def note_split_warnings(ds, data: Optional[Path], notes: list) -> None:
    """For a user file (``--data``), each of the dataset's warnings (``info["warnings"]``: a task without a
    labelled row in a split, a class missing from a task's training rows) as a ``note:`` line that says what it
    means for the results and what to do; they were recorded in the dataset and never shown, while the results
    they touch read 0.0 or n/a."""
    if data is None:
        return
    for warning in ds.info.get("warnings", []):
        if "no labelled rows" in warning:
            means = "its losses, metrics and gains on that split are not measured (they show as 0.0 or n/a)"
        else:
            means = "no model learns those classes"
        note(f"{data}: {warning}: {means}; add labelled rows for it or leave it out with --tasks", notes)


def kinds_summary(ds, data: Optional[Path], notes: list) -> dict:
    """Each task's kind; for a user file, print those inferred from the labels, with their classes, and the data's
    warnings (:func:`note_split_warnings`)."""
    kinds = {t.name: t.kind for t in ds.tasks}
    how = ds.info.get("task_kinds", {})
    if data is None:
        return kinds
    note_split_warnings(ds, data, notes)
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
        note("task kinds inferred from the labels: " + "; ".join(parts)
             + " (override with --task-kinds TASK=KIND)", notes)
    return kinds


# ------------------------------------------------------------------ option blocks
@dataclass(frozen=True)
class OptionBlock:
    """Options that several commands take together, in this order, and the value they make.

    A command declares one parameter with a block as its default (``data: DataOptions = DATA_BLOCK``);
    :func:`with_option_blocks` puts the block's options in that parameter's place, so ``--help`` lists them
    where the parameter stands, and calls the command with ``make(**their values)`` for it.
    """

    options: tuple[tuple[str, Any, Any], ...]  # (parameter name, annotation, typer.Option)
    make: Callable[..., Any]


#: ``--dataset`` ... ``--impute``: a :class:`DataOptions`.
DATA_BLOCK: Any = OptionBlock((
    ("dataset", Optional[str], DatasetOpt), ("data", Optional[Path], DataOpt), ("tasks", Optional[str], TasksOpt),
    ("features", Optional[str], FeaturesOpt), ("task_column", Optional[str], TaskColumnOpt),
    ("label", Optional[str], LabelOpt), ("task_kinds", Optional[str], TaskKindsOpt),
    ("impute", Optional[Impute], ImputeOpt)), DataOptions)
#: ``--epochs`` ... ``--balance``: a :class:`TrainingOptions`.
TRAINING_BLOCK: Any = OptionBlock((
    ("epochs", Optional[int], EpochsOpt), ("batch_size", Optional[int], BatchSizeOpt),
    ("lr", Optional[float], LrOpt), ("optimizer", Optional[Optimizer], OptimizerOpt),
    ("patience", Optional[int], PatienceOpt), ("preset", Preset, PresetOpt),
    ("batching", Optional[Batching], BatchingOpt), ("oversample", Optional[bool], OversampleOpt)), TrainingOptions)
#: ``compare``'s ``--epochs`` ... ``--patience`` (defaults: the model family's): a :class:`TrainingOptions`.
COMPARE_TRAINING_BLOCK: Any = OptionBlock((
    ("epochs", Optional[int], CompareEpochsOpt), ("batch_size", Optional[int], CompareBatchSizeOpt),
    ("lr", Optional[float], CompareLrOpt), ("optimizer", Optional[Optimizer], CompareOptimizerOpt),
    ("patience", Optional[int], ComparePatienceOpt)), TrainingOptions)
#: ``--encoder``, ``--model``, ``--model-version``, ``--model-arg``: a :class:`ModelOptions`.
MODEL_BLOCK: Any = OptionBlock((
    ("encoder", Optional[Encoder], EncoderOpt), ("model", Optional[str], ModelOpt),
    ("model_version", Optional[str], ModelVersionOpt), ("model_args", Optional[list[str]], ModelArgOpt)),
    ModelOptions)


def runs_block(out_default: str) -> Any:
    """``--out`` (default ``out_default``), ``--store``, ``--executor``, ``--workers``, ``--ray-address``: a
    :class:`RunOptions` with those (its ``seed``, ``quiet``, ``threads`` and ``device`` the command's to set)."""
    return OptionBlock((
        ("out", Path, out_option(out_default)), ("store", Optional[Path], StoreOpt),
        ("executor", Executor, ExecutorOpt), ("workers", Optional[int], WorkersOpt),
        ("ray_address", Optional[str], RayAddressOpt)), RunOptions)


def with_option_blocks(command: Callable[..., None]) -> Callable[..., None]:
    """``command`` with each parameter whose default is an :class:`OptionBlock` replaced by the block's options.

    typer reads the returned function's signature (``__signature__``: the block's options in the parameter's
    place) and calls it with every option's value; the function bundles each block's values (``make``) and
    calls ``command`` with the bundle for the parameter.
    """
    signature = inspect.signature(command)
    hints = typing.get_type_hints(command)
    parameters: list[inspect.Parameter] = []
    blocks: dict[str, OptionBlock] = {}
    for name, parameter in signature.parameters.items():
        if not isinstance(parameter.default, OptionBlock):
            parameters.append(parameter.replace(annotation=hints[name]))
            continue
        blocks[name] = parameter.default
        parameters += [inspect.Parameter(option, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default,
                                         annotation=annotation)
                       for option, annotation, default in parameter.default.options]

    @functools.wraps(command)
    def run(**values: Any) -> None:
        for name, block in blocks.items():
            values[name] = block.make(**{option: values.pop(option) for option, _, _ in block.options})
        command(**values)

    run.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": None}
    return run

