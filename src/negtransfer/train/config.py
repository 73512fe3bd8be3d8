"""Training configuration: explicit, validated, hashable dataclasses.

:class:`TrainConfig` configures the stacked trainer; the families trained by
:mod:`negtransfer.train.loop` have their own dataclasses
(:class:`~negtransfer.train.variational.VariationalConfig`,
:class:`~negtransfer.train.temporal.TemporalTrainConfig`). All three validate
their fields with the checks below and hash with :func:`config_hash`.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import sys
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable

from negtransfer.train.model_choice import ModelChoice


def plain_scalars(config: Any) -> None:
    """Replace every NumPy scalar field of the dataclass ``config`` (frozen or not) by the Python number it holds
    (``np.int64(3)`` -> 3, ``np.float32(0.05)`` -> its float, ``np.bool_`` -> bool): a value from a sweep then
    compares, keys runs and saves to JSON as the Python number does (it failed after training: "int64 is not JSON
    serializable"). A whole float in a field whose default is a whole number becomes that number
    (``patience=5.0`` -> 5, ``repeats=1.0`` -> 1): one rule for every options class."""
    np = sys.modules.get("numpy")  # not imported: no value is a NumPy scalar (and --help stays light)
    for item in fields(config):
        value = getattr(config, item.name)
        if np is not None and isinstance(value, np.generic):
            value = value.item()
            object.__setattr__(config, item.name, value)
        default = item.default
        if isinstance(value, float) and value.is_integer() and isinstance(default, int) \
                and not isinstance(default, bool):
            object.__setattr__(config, item.name, int(value))


def check_whole_numbers(config: Any, flags: Iterable[tuple[str, str]]) -> None:
    """Raise ValueError naming the first field of ``flags`` (``(field, command-line flag)`` pairs) that is neither
    None nor a whole number (bools refused): a string or a float fails here, not deep in the job."""
    for name, flag in flags:
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
            raise ValueError(f"{flag} ({name}) must be a whole number, got {value!r}")


def check_positive_ints(config: Any, names: Iterable[str]) -> None:
    """Raise ValueError naming the first of ``names`` that is not a positive integer (bools refused)."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def check_non_negative(config: Any, names: Iterable[str]) -> None:
    """Raise ValueError naming the first of ``names`` that is negative (or NaN)."""
    for name in names:
        value = getattr(config, name)
        if not value >= 0:
            raise ValueError(f"{name} must be non-negative, got {value!r}")


def config_hash(config: Any, **extra: Any) -> str:
    """Stable 16-hex-digit hash of a config dataclass's fields (and ``extra``).

    A config with a ``hash_fields()`` method hashes what that returns (see
    :meth:`TrainConfig.hash_fields`).
    """
    data = config.hash_fields() if hasattr(config, "hash_fields") else asdict(config)
    blob = json.dumps({**data, **extra}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


#: Devices the stacked trainer runs on (``--device``); ``cuda:N`` names one GPU of several.
DEVICES = ("cpu", "cuda")


def check_device_available(device: str) -> None:
    """Raise ValueError unless PyTorch can train on ``device`` in this process.

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises
    ------
    ValueError
        A CUDA device asked for where PyTorch sees none (no GPU, or a CPU-only build), or a GPU index out of range.
    """
    if device == "cpu":
        return
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build of PyTorch" if torch.version.cuda is None else "no visible GPU"
        raise ValueError(f"--device {device}: PyTorch sees no CUDA GPU here ({build}); use --device cpu, or run "
                         f"on a machine with a GPU and a CUDA build of PyTorch")
    index = device.partition(":")[2]
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: only {torch.cuda.device_count()} GPU(s) are visible (cuda:0.."
                         f"cuda:{torch.cuda.device_count() - 1})")


BATCHING = ("auto", "per-task", "pooled")
LOSS_WEIGHTINGS = ("task-mean", "row-mean")
STOPPING_ROWS = ("all", "half")
#: How the per-task gradients of the shared encoder become one update (``TrainConfig.gradient_aggregation``;
#: :mod:`negtransfer.train.aggregation` has the definitions).
GRADIENT_AGGREGATIONS = ("sum", "pcgrad", "mgda", "imtl-g", "aligned-mtl", "graddrop")
#: Initialisation schemes of the built-in MLP (``TrainConfig.init``; :mod:`negtransfer.nn.initialisation`).
INITS = ("torch", "glorot")

# Bumped when stored run results gain or change fields, or training changes its
# arithmetic, so old stores are not reused. 3: per-model batch tensors and repeats;
# 4: evaluation rows padded (results no longer depend on the stack in the last bits);
# 5: SGD's update in one fused pass (``p - lr * b`` rounded once; issue 26), the last bits of every run change.
RESULT_FORMAT = 5


@dataclass(frozen=True)
class TrainConfig:
    """How every model of a run is trained.

    Defaults follow the ETAP paper's Chemical setup (appendix B.1: shared encoder
    Dense 32 -> Dense 16 with ReLU, one output per task, SGD with momentum 0.9)
    and its public code (early stopping on validation loss). The learning rate
    and epoch budget were chosen on the yeast validation split (docs/training.md).

    Parameters
    ----------
    hidden : tuple of int
        Widths of the shared encoder's ReLU layers.
    optimizer : {"sgd", "adam"}
        SGD with (heavy-ball, PyTorch-convention) momentum, or Adam.
    lr : float
        Learning rate.
    momentum : float
        SGD momentum (ignored by Adam).
    weight_decay : float
        L2 penalty added to the gradient (coupled, as in torch.optim).
    batch_size : int
        Rows per step; every model of a vectorised batch sees the same rows.
    max_epochs : int
        Upper bound on passes over the training rows.
    patience : int
        Epochs without improvement of the validation loss before a model stops.
        The weights of its best epoch are restored.
    min_delta : float
        Smallest decrease of the validation loss that counts as improvement.
    shared_init : bool
        Start every model of one repeat from the same initialisation instead of
        one drawn from its group: common random numbers, so that differences
        between group models reflect their tasks rather than their random
        starts. (Models of one repeat always share their batch-order seed.)
        Default True: measured gains reproduce better with it
        (``benchmarks/gain_noise.py``, docs/methods/grouping.md).
    batching : {"auto", "per-task", "pooled"}
        How a model of a group draws its mini-batches from per-task-rows data
        (each row belongs to one task). ``"per-task"``: each step takes
        ``batch_size`` rows of *every* task of the group (``batch_size x group
        size`` rows), as the ETAP public code does; ``"pooled"``: ``batch_size``
        rows of the group's pooled, shuffled rows. ``"auto"``: per-task for
        per-task-rows data, pooled for multi-label data (where every row can
        carry every task's label, so the two coincide). ``"per-task"`` on
        multi-label data is an error.
    oversample : bool
        With per-task batches: a group's smaller tasks are topped up to its
        largest task's training-row count by rows drawn with replacement, in
        equal numbers from each class (ETAP public code). STL models are not
        oversampled. ``--balance`` on the command line. Default False: on
        Chemical and tv16 it raised the validation losses of the all-task model
        and of random groups (docs/training.md).
    lr_decay_start, lr_decay_every, lr_decay_factor : int, int, float
        Learning-rate schedule: at every epoch ``e`` (1-based) with
        ``e > lr_decay_start`` and ``e % lr_decay_every == 0`` the rate is
        multiplied by ``lr_decay_factor``. ``lr_decay_start = 0`` (default)
        means a constant rate. The ETAP public code halves the rate every 75
        epochs after epoch 100 (``100, 75, 0.5``).
    device : str
        Where the stacked trainer (and the affinity tracker riding on it)
        runs: ``"cpu"`` (default) or ``"cuda"`` / ``"cuda:N"``. Initial weights
        and batch orders are drawn on the CPU either way; a GPU's arithmetic
        differs from the CPU's in the last bits, so the device is part of a
        run's key (a CPU run keeps the key it had before this field existed).
    loss_weighting : {"task-mean", "row-mean"}
        The training objective of a group model on a batch. ``"task-mean"``
        (default): the sum over the group's tasks of each task's mean loss on
        its labelled rows of the batch (ETAP eq. 1's MTL loss, as in the ETAP
        public code). ``"row-mean"``: the mean loss over all labelled rows of the
        batch, i.e. an unbiased estimate of the average loss over the combined
        training rows of the group (the surrogate paper's MTL objective, section
        2.1: one model on the union of the datasets). For a single task the two
        coincide, so STL and group models then share one objective.
    steps_per_epoch : int
        Optimiser steps between two validation checks (one "epoch"). 0
        (default): one pass over the group's training rows, so a larger group
        takes more steps per epoch. A positive value gives every model the same
        step budget (``max_epochs * steps_per_epoch``) and the same checking
        cadence: each model draws ``batch_size`` rows per step from an endless
        reshuffled stream of its group's rows. Needs pooled batches of
        per-task-rows data.
    stopping_task : int or None
        Early stopping on this task's validation loss only (the source-selection
        target), instead of the summed validation loss of the group's tasks
        (default None). Every trained group must contain the task.
    stopping_rows : {"all", "half"}
        Validation rows that choose the stopping epoch. ``"half"``: every other
        validation row of each task (in row order; the split is already random)
        chooses the epoch, and the other half is reported separately in
        ``extra`` as ``val_est_*`` (loss, margins, 0-1): an estimate of the
        model's loss that the stopping rule did not see. ``val_loss`` stays
        the loss on all validation rows.
    early_stopping : bool
        False: train ``max_epochs`` epochs and keep the last weights (a fixed
        training budget, as the surrogate paper's public code trains each
        subset model); ``patience`` is then unused.
    gradient_aggregation : {"sum", "pcgrad", "mgda", "imtl-g", "aligned-mtl", "graddrop"}
        How a multi-task model's per-task gradients of the shared encoder are
        combined into its update. ``"sum"`` (default): the gradient of the
        training objective, i.e. the sum of the per-task gradients. The others
        aggregate the Jacobian of the per-task terms of the objective (one row
        per task) with the torchjd aggregator of that name: ``"pcgrad"``
        (Yu et al., NeurIPS 2020, Algorithm 1: conflicting gradients projected
        onto each other's normal planes, in a random order per step),
        ``"mgda"`` (Desideri 2012; Sener and Koltun 2018), ``"imtl-g"`` (Liu et
        al., ICLR 2021), ``"aligned-mtl"`` (Senushkin et al., CVPR 2023),
        ``"graddrop"`` (Chen et al., NeurIPS 2020). Task heads always get their
        own task's gradient; an STL model is unaffected.
        See :mod:`negtransfer.train.aggregation`.
    model : ModelChoice
        The network (:mod:`negtransfer.train.model_choice`): the built-in
        ``mlp`` with widths ``hidden`` (default; the hand-fused stacked MLP),
        another built-in encoder (``cnn``, ``lstm``, ``transformer``) or a
        user factory. A string is read as a built-in encoder's name or a
        factory reference ``"FILE.py:FUNCTION"`` / ``"package.module:FUNCTION"``;
        a function as :meth:`ModelChoice.from_callable`.
        Part of the run key unless it is the default.
    init : {"torch", "glorot"}
        Initial weights of the built-in MLP (:mod:`negtransfer.nn.initialisation`):
        ``"torch"`` (default), PyTorch's ``nn.Linear`` default, weights and
        biases U(-1/sqrt(fan_in), 1/sqrt(fan_in)); ``"glorot"``, Keras'
        ``Dense`` default (Glorot-uniform weights, zero biases), as in the ETAP
        public code. Other networks initialise themselves; ``"glorot"`` with
        another ``model`` is an error.
    """

    hidden: tuple[int, ...] = (32, 16)
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 32
    max_epochs: int = 100
    patience: int = 10
    min_delta: float = 0.0
    adam_betas: tuple[float, float] = field(default=(0.9, 0.999))
    adam_eps: float = 1e-8
    shared_init: bool = True
    batching: str = "auto"
    oversample: bool = False
    lr_decay_start: int = 0
    lr_decay_every: int = 75
    lr_decay_factor: float = 0.5
    device: str = "cpu"
    loss_weighting: str = "task-mean"
    steps_per_epoch: int = 0
    stopping_task: int | None = None
    stopping_rows: str = "all"
    early_stopping: bool = True
    gradient_aggregation: str = "sum"
    model: ModelChoice = ModelChoice()
    init: str = "torch"

    def __post_init__(self) -> None:
        plain_scalars(self)
        if isinstance(self.model, str):
            choice = ModelChoice(factory=self.model) if ":" in self.model else ModelChoice(encoder=self.model)
            object.__setattr__(self, "model", choice)
        elif callable(self.model):  # the API path: a factory function given directly
            object.__setattr__(self, "model", ModelChoice.from_callable(self.model))
        if not isinstance(self.model, ModelChoice):
            raise ValueError(f"model must be a ModelChoice or an encoder name, got {type(self.model).__name__}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "adam_betas", tuple(float(b) for b in self.adam_betas))
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be positive layer widths, got {self.hidden}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        self._check_number_types()
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.batching not in BATCHING:
            raise ValueError(f"batching must be one of {', '.join(BATCHING)}, got {self.batching!r}")
        if self.oversample and self.batching == "pooled":
            raise ValueError("oversample needs per-task batches (batching 'per-task' or 'auto')")
        if self.lr_decay_start < 0 or self.lr_decay_every < 1 or not 0 < self.lr_decay_factor <= 1:
            raise ValueError("lr_decay_start must be >= 0, lr_decay_every >= 1 and lr_decay_factor in (0, 1]")
        kind, _, index = str(self.device).partition(":")
        if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        self._check_objective_and_stopping()

    def _check_number_types(self) -> None:
        """The rates are numbers and the counts whole numbers >= 1, each error naming the option; a torch.device
        becomes its name (``torch.device("cpu")`` -> ``"cpu"``)."""
        for name in ("lr", "momentum", "weight_decay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{name} must be a number, got {value!r}")
        for name in ("batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if not isinstance(self.device, str) and type(self.device).__name__ == "device":  # a torch.device
            object.__setattr__(self, "device", str(self.device))

    def _check_objective_and_stopping(self) -> None:
        """Validate ``loss_weighting``, ``steps_per_epoch``, ``stopping_task`` and ``stopping_rows``."""
        if self.loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"loss_weighting must be one of {', '.join(LOSS_WEIGHTINGS)}, got {self.loss_weighting!r}")
        if isinstance(self.steps_per_epoch, bool) or not isinstance(self.steps_per_epoch, int) \
                or self.steps_per_epoch < 0:
            raise ValueError(f"steps_per_epoch must be an integer >= 0 (0 = one pass over the rows), "
                             f"got {self.steps_per_epoch!r}")
        if self.steps_per_epoch and self.batching == "per-task":
            raise ValueError("steps_per_epoch needs pooled batches (batching 'pooled' or 'auto' on multi-label data)")
        if self.stopping_task is not None and (isinstance(self.stopping_task, bool)
                                               or not isinstance(self.stopping_task, int) or self.stopping_task < 0):
            raise ValueError(f"stopping_task must be a task index >= 0 or None, got {self.stopping_task!r}")
        if self.stopping_rows not in STOPPING_ROWS:
            raise ValueError(f"stopping_rows must be one of {', '.join(STOPPING_ROWS)}, got {self.stopping_rows!r}")
        if self.gradient_aggregation not in GRADIENT_AGGREGATIONS:
            raise ValueError(f"gradient_aggregation must be one of {', '.join(GRADIENT_AGGREGATIONS)}, "
                             f"got {self.gradient_aggregation!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.init != "torch" and not self.model.is_default:
            raise ValueError(f"init {self.init!r} sets the built-in MLP's initial weights; a model of "
                             f"--encoder or --model initialises itself: leave init at 'torch'")

    def per_task_batches(self, per_task_rows: bool) -> bool:
        """Whether models draw per-task batches from a dataset of this layout (see ``batching``)."""
        if self.batching == "per-task" and not per_task_rows:
            raise ValueError("batching='per-task' needs per-task-rows data (each row belongs to one task); "
                             "use 'auto' or 'pooled' for multi-label data")
        return self.batching == "per-task" or (self.batching == "auto" and per_task_rows)

    def learning_rate_at(self, epoch: int) -> float:
        """The learning rate of 1-based ``epoch`` under the decay schedule."""
        if not self.lr_decay_start or epoch <= self.lr_decay_start:
            return self.lr
        halvings = sum(1 for e in range(self.lr_decay_start + 1, epoch + 1) if e % self.lr_decay_every == 0)
        return self.lr * self.lr_decay_factor**halvings

    @classmethod
    def preset(cls, name: str, **overrides) -> "TrainConfig":
        """A named training setup (see :data:`PRESETS`), with optional field overrides.

        A preset's ``init`` describes the built-in MLP: with another ``model``
        among the overrides (and no ``init``), the model initialises itself.
        """
        if name not in PRESETS:
            raise ValueError(f"unknown training preset {name!r}; the presets are: {', '.join(PRESETS)}")
        # (NumPy scalars from a sweep become Python numbers in __post_init__: plain_scalars)
        settings = {**PRESETS[name], **overrides}
        if "init" in PRESETS[name] and "init" not in overrides and "model" in overrides:
            own_init = cls(**{**settings, "init": "torch"})
            if not own_init.model.is_default:
                return own_init
        return cls(**settings)

    def to_dict(self) -> dict:
        """The fields as plain data; the model as :meth:`ModelChoice.to_dict`, left out when it is the default, and
        ``init`` left out at its default (so reports of default runs read as before the field existed)."""
        data = {k: v for k, v in asdict(self).items() if k != "model" and not (k == "init" and v == "torch")}
        return data if self.model.is_default else {**data, "model": self.model.to_dict()}

    def hash_fields(self) -> dict:
        """The fields that key stored runs.

        Fields added after result format 4 enter only when they differ from
        their defaults, so runs stored with the defaults keep their keys (and
        the grouping job its stored runs); any other value gives new keys. The
        model enters as :meth:`ModelChoice.key_fields` (name, version or source
        hash, arguments) unless it is the default MLP.
        """
        fields = {k: v for k, v in asdict(self).items() if k != "model"}
        data = {k: v for k, v in fields.items() if k not in _LATER_DEFAULTS or v != _LATER_DEFAULTS[k]}
        if not self.model.is_default:
            data["model"] = self.model.key_fields()
        return data

    def config_hash(self) -> str:
        """Stable hash of the fields (:meth:`hash_fields`) and of the result format: part of each stored run's key."""
        return config_hash(self, result_format=RESULT_FORMAT)


#: Fields added after result format 4, with their defaults (left out of the hash when at them).
_LATER_DEFAULTS: dict[str, Any] = {"device": "cpu", "loss_weighting": "task-mean", "steps_per_epoch": 0,
                                   "stopping_task": None, "stopping_rows": "all", "early_stopping": True,
                                   "gradient_aggregation": "sum", "init": "torch"}


#: Named training setups. ``default`` is :class:`TrainConfig`'s defaults;
#: ``etap-chemical`` is the ETAP public code's Chemical setup (chemical_scripts;
#: REFERENCES.md): Dense 32 -> 16 ReLU initialised as Keras does (Glorot-uniform
#: weights, zero biases), SGD lr 0.001 momentum 0.9, batches of 264 rows per
#: task, small tasks oversampled to the largest (half per class), early stopping
#: with patience 20 on the summed validation loss, up to 1000 epochs, the
#: learning rate halved every 75 epochs after epoch 100.
#: ``task-modeling`` is the surrogate paper's public code's training of each
#: subset model (VirtuosoResearch/Task-Modeling; REFERENCES.md): one model on
#: the pooled rows of the subset and the target, the mean loss over rows, a
#: fixed short budget with no early stopping (20 epochs here: the public
#: scripts set the count per dataset; our choice, not theirs).
PRESETS: dict[str, dict] = {
    "default": {},
    "etap-chemical": {
        "hidden": (32, 16),
        "optimizer": "sgd",
        "lr": 0.001,
        "momentum": 0.9,
        "batch_size": 264,
        "max_epochs": 1000,
        "patience": 20,
        "batching": "per-task",
        "oversample": True,
        "lr_decay_start": 100,
        "lr_decay_every": 75,
        "lr_decay_factor": 0.5,
        "init": "glorot",
    },
    "task-modeling": {
        "batching": "pooled",
        "loss_weighting": "row-mean",
        "early_stopping": False,
        "max_epochs": 20,
    },
}
