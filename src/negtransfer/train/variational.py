"""Training and evaluation of the VMTL family on domains-as-tasks data.

A readable loop for :class:`~negtransfer.nn.vmtl.VariationalMultiTaskNet`:

* one Adam step on the mean of the task losses per iteration
  (``optimiser="joint"``), or, as the official code, one Adam per task,
  stepping the shared encoder in turn with each task's own loss
  (``optimiser="per-task"``; each optimiser moves only the shared parameters
  and its task's own ones);
* batches hold the same number of rows per class per task (supplement B,
  "the number of training samples from each task and category is identical"),
  drawn with replacement so that tiny classes still fill their share;
* Adam with weight decay 5e-4, learning rate halved at fixed intervals;
* the w-KL weight beta is warmed up from 0 by ``kl_w_warmup_step`` every
  ``kl_w_warmup_every`` iterations (the official code adds the step on every
  *per-task* step of those iterations, i.e. T times as fast:
  ``kl_w_warmup_unit="task-step"``) and the z-KL has a fixed small weight
  (REFERENCES.md: 1e-6 per 10 iterations and 1e-7);
* the Gumbel-Softmax temperature is annealed from 1 to a floor of 0.5;
* every ``eval_every`` iterations the validation accuracy of each task is
  measured with posterior means, and each task keeps the parameters of its best
  validation iteration (early stopping per task; test rows are never looked at
  for any choice); with ``patience`` the fit also stops once no task has
  improved for that many evaluations;
* the task losses are combined by a loss weighting
  (:mod:`negtransfer.train.weighting`; equal by default, Kendall for the
  ``kendall`` and ``vib`` baselines).

The loop is :class:`negtransfer.train.loop.FitLoop` (one round = ``eval_every``
iterations) with :class:`~negtransfer.train.loop.KeepBest` per task,
:class:`~negtransfer.train.loop.EarlyStopping` and
:class:`~negtransfer.train.loop.Progress` callbacks; inside
:func:`negtransfer.train.checkpoint.resume_fits` a fit saves its state as it
trains and a later attempt continues from it with the same numbers.

The paper trains 15,000 iterations at learning rate 1e-4 on 4096-d features;
:class:`VariationalConfig`'s defaults are scaled down for seconds-long CPU runs
on the built-in tabular data (see ``docs/methods/vmtl.md``);
``VariationalConfig.preset("vmtl-public")`` is the official code's schedule
(:data:`TRAINING_PRESETS`).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset
from negtransfer.train.config import check_non_negative, check_positive_ints
from negtransfer.train.loop import (
    Callback,
    EarlyStopping,
    Evaluation,
    FitLoop,
    FitResult,
    KeepBest,
    Progress,
    RoundOutput,
)
from negtransfer.train.weighting import EqualWeighting, LossWeighting

__all__ = [
    "FitResult",  # from negtransfer.train.loop: the one result type
    "TRAINING_PRESETS",
    "VariationalConfig",
    "domain_tensors",
    "entropy_ratio",
    "evaluate_model",
    "fgsm_accuracy",
    "fit_variational",
]


@dataclass(frozen=True)
class VariationalConfig:
    """How a VMTL-family model is trained (scaled-down defaults; see the module docstring).

    Parameters
    ----------
    iterations : int
        Optimisation steps (paper: 15,000).
    per_class : int
        Rows per class per task in a batch (paper: 4, i.e. batch 4 * C * T).
    balanced_batches : bool
        True (paper): ``per_class`` rows of every class of every task. False:
        ``per_class * C`` rows per task drawn uniformly from its training rows,
        so batches keep each task's class frequencies (for imbalanced tasks,
        where balanced batches shift the learned class prior).
    lr : float
        Adam learning rate (paper: 1e-4).
    weight_decay : float
        Adam weight decay (paper code: 5e-4).
    lr_halve_every : int or None
        Halve the learning rate every this many iterations (paper: 3,000 of
        15,000); None: ``iterations // 5``.
    kl_z_weight : float
        Weight of the batch-mean z-KL (paper code: 1e-7).
    kl_w_warmup_step, kl_w_warmup_every : float, int
        beta = kl_w_warmup_step * floor(iteration / kl_w_warmup_every) (paper
        code: 1e-6 every 10).
    kl_w_max : float
        Cap on beta.
    temperature_start, temperature_floor : float
        Gumbel-Softmax temperature schedule (1 to 0.5 in the paper code).
    temperature_decay : float
        tau_k = max(floor, start * exp(-decay * k)).
    eval_every : int
        Validation (and best-state bookkeeping) interval in iterations.
    patience : int or None
        Stop once no task's validation accuracy has improved for this many
        evaluations (None: train every iteration).
    hidden, latent, input_dropout : int, int, float
        Network sizes and input dropout passed to the model.
    init_std : float
        Initial posterior standard deviation of the Gaussian weights (official
        code: softplus(-3), about 0.049).
    n_w_samples : int or None
        M, logit samples per z sample (None: the model preset's, 10; official
        code: 1).
    optimiser : {"joint", "per-task"}
        One Adam step on the mean task loss, or one Adam per task stepping
        the shared encoder in turn (official code).
    kl_w_warmup_unit : {"iteration", "task-step"}
        beta grows by ``kl_w_warmup_step`` once per ``kl_w_warmup_every``
        iterations, or once per task (T times) as the official code.
    kl_w_final : float, "1/n" or None
        None (default): the step schedule above. A number: beta grows
        linearly, once per ``kl_w_warmup_every`` iterations, to this value at
        the last iteration (``kl_w_warmup_step`` and ``kl_w_warmup_unit`` are
        not used); 6e-3 is where the official schedule ends for 4 tasks.
        ``"1/n"``: the same ramp to ``1 / N_t`` for task t, N_t its training
        rows: the weight at which the per-task loss is the negative ELBO of
        supplement eq. (4) divided by N_t (mean cross-entropy + KL / N_t).
        ``kl_w_max`` caps beta either way.

    Use :meth:`preset` for a named setup (:data:`TRAINING_PRESETS`).
    """

    iterations: int = 600
    per_class: int = 4
    balanced_batches: bool = True
    lr: float = 1e-3
    weight_decay: float = 5e-4
    lr_halve_every: int | None = None
    kl_z_weight: float = 1e-7
    kl_w_warmup_step: float = 1e-6
    kl_w_warmup_every: int = 10
    kl_w_max: float = 1.0
    temperature_start: float = 1.0
    temperature_floor: float = 0.5
    temperature_decay: float = 3e-3
    eval_every: int = 25
    patience: int | None = None
    hidden: int = 64
    latent: int = 64
    input_dropout: float = 0.2
    init_std: float = 1e-2
    n_w_samples: int | None = None
    optimiser: str = "joint"
    kl_w_warmup_unit: str = "iteration"
    kl_w_final: float | str | None = None

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "VariationalConfig":
        """A named training setup of :data:`TRAINING_PRESETS`, with optional field overrides."""
        if name not in TRAINING_PRESETS:
            raise ValueError(f"unknown VMTL training preset {name!r}; the presets are: {', '.join(TRAINING_PRESETS)}")
        return cls(**{**TRAINING_PRESETS[name], **overrides})

    def __post_init__(self) -> None:
        check_positive_ints(self, ("iterations", "per_class", "eval_every", "kl_w_warmup_every", "hidden", "latent"))
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.lr_halve_every is not None and self.lr_halve_every < 1:
            raise ValueError("lr_halve_every must be positive or None")
        if self.patience is not None:
            check_positive_ints(self, ("patience",))
        if not 0 < self.temperature_floor <= self.temperature_start:
            raise ValueError("need 0 < temperature_floor <= temperature_start")
        check_non_negative(self, ("weight_decay", "kl_z_weight", "kl_w_warmup_step", "kl_w_max", "temperature_decay"))
        if not self.init_std > 0:
            raise ValueError(f"init_std must be positive, got {self.init_std}")
        if self.n_w_samples is not None:
            check_positive_ints(self, ("n_w_samples",))
        if self.optimiser not in OPTIMISERS:
            raise ValueError(f"optimiser must be one of {', '.join(OPTIMISERS)}, got {self.optimiser!r}")
        if self.kl_w_warmup_unit not in WARMUP_UNITS:
            raise ValueError(f"kl_w_warmup_unit must be one of {', '.join(WARMUP_UNITS)}, got {self.kl_w_warmup_unit!r}")
        final = self.kl_w_final
        if final is not None and final != PER_ROW_KL_W and not (
                isinstance(final, (int, float)) and not isinstance(final, bool) and math.isfinite(final) and final >= 0):
            raise ValueError(f"kl_w_final must be a number >= 0, {PER_ROW_KL_W!r} or None, got {final!r}")

    def temperature(self, iteration: int) -> float:
        return max(self.temperature_floor, self.temperature_start * math.exp(-self.temperature_decay * iteration))

    def kl_w_weight(self, iteration: int, n_tasks: int = 1,
                    train_rows: Sequence[int] | None = None) -> float | list[float]:
        """beta at ``iteration``.

        With ``kl_w_warmup_unit="task-step"`` the step schedule grows
        ``n_tasks`` times as fast. With ``kl_w_final`` set, the linear ramp to
        it (see the class docstring); ``kl_w_final="1/n"`` returns one beta per
        task and needs ``train_rows`` (N_t per task).
        """
        if self.kl_w_final is None:
            per_warmup = n_tasks if self.kl_w_warmup_unit == "task-step" else 1
            return min(self.kl_w_max, self.kl_w_warmup_step * per_warmup * (iteration // self.kl_w_warmup_every))
        ramp = min(1.0, (iteration // self.kl_w_warmup_every) / max(1, self.iterations // self.kl_w_warmup_every))
        if self.kl_w_final != PER_ROW_KL_W:
            return min(self.kl_w_max, float(self.kl_w_final) * ramp)
        if train_rows is None or len(train_rows) != n_tasks or min(train_rows) < 1:
            raise ValueError(f"kl_w_final={PER_ROW_KL_W!r} needs every task's number of training rows, got {train_rows}")
        return [min(self.kl_w_max, ramp / n) for n in train_rows]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def hash_fields(self) -> dict[str, Any]:
        """The fields a stored run's key hashes: all of them, less ``kl_w_final`` at its default (None), so that
        the keys of configurations from before the field existed are unchanged."""
        fields = asdict(self)
        if fields["kl_w_final"] is None:
            del fields["kl_w_final"]
        return fields


OPTIMISERS = ("joint", "per-task")
#: ``VariationalConfig(kl_w_final=...)``: the ELBO-consistent w-KL weight 1 / N_t per task.
PER_ROW_KL_W = "1/n"
WARMUP_UNITS = ("iteration", "task-step")

#: Named training setups. ``default``: :class:`VariationalConfig`'s (scaled) defaults.
#: ``vmtl-public``: the official VMTL code's schedule (REFERENCES.md): 15,000 iterations,
#: Adam lr 1e-4 halved every 3,000 (``lr_halve_every=None``: a fifth of the iterations, so
#: a shorter ``iterations`` keeps the shape), one Adam per task stepping the shared encoder
#: in turn, beta += 1e-6 on every per-task step of every tenth iteration (beta reaches
#: 1.5e-3 x T, 6e-3 for 4 tasks), posterior standard deviations initialised to softplus(-3),
#: one logit sample per z sample, the temperature reaching its floor of 0.5 after about
#: 7,000 iterations (the code multiplies it by exp(-3e-5 k) every 1,000 iterations; here
#: the smooth exp(-1e-4 k)). Input dropout and the network sizes stay ours (the official
#: 0.7 is for 4096-d CNN features).
TRAINING_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "vmtl-public": {
        "iterations": 15000,
        "lr": 1e-4,
        "lr_halve_every": None,
        "optimiser": "per-task",
        "kl_w_warmup_step": 1e-6,
        "kl_w_warmup_every": 10,
        "kl_w_warmup_unit": "task-step",
        "init_std": math.log1p(math.exp(-3.0)),
        "n_w_samples": 1,
        "temperature_decay": 1e-4,
        "eval_every": 50,
    },
}


def domain_tensors(ds: MultiTaskDataset, split: str) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per task, the inputs and class indices of its rows in ``split``.

    Raises
    ------
    ValueError
        ``ds`` is not per-task rows with classification tasks sharing one label space.
    """
    check_domains_dataset(ds)
    rows = ds.split == {"train": TRAIN, "validation": VALIDATION, "test": TEST}[split]
    xs, ys = [], []
    for t in range(ds.n_tasks):
        mine = rows & (ds.row_task == t)
        xs.append(torch.from_numpy(ds.X[mine]))
        ys.append(torch.from_numpy(ds.Y[mine, t].astype(np.int64)))
    return xs, ys


def check_domains_dataset(ds: MultiTaskDataset) -> None:
    """Raise ValueError unless ``ds`` is domains-as-tasks data (per-task rows, one label space)."""
    if ds.row_task is None:
        raise ValueError(f"dataset {ds.name!r} is multi-label; the VMTL models need per-task rows (domains as tasks)")
    kinds = {t.kind for t in ds.tasks}
    if kinds - {"multiclass", "binary"}:
        raise ValueError(f"dataset {ds.name!r} has {sorted(kinds)} tasks; the VMTL models need classification tasks")
    if len({t.classes for t in ds.tasks}) != 1:
        raise ValueError(f"dataset {ds.name!r}: tasks have different class lists; the VMTL models need one label space")


def _balanced_batch(xs, ys, per_class: int, generator: torch.Generator):
    bx, by = [], []
    for x, y in zip(xs, ys, strict=True):
        picked = []
        for c in torch.unique(y):
            pool = torch.nonzero(y == c).reshape(-1)
            picked.append(pool[torch.randint(len(pool), (per_class,), generator=generator)])
        rows = torch.cat(picked)
        bx.append(x[rows])
        by.append(y[rows])
    return bx, by


def _uniform_batch(xs, ys, per_task: int, generator: torch.Generator):
    bx, by = [], []
    for x, y in zip(xs, ys, strict=True):
        idx = torch.randint(len(y), (per_task,), generator=generator)
        bx.append(x[idx])
        by.append(y[idx])
    return bx, by


@torch.no_grad()
def _accuracies(model, xs, ys) -> list[float]:
    out = []
    for t, (x, y) in enumerate(zip(xs, ys, strict=True)):
        if len(y) == 0:
            out.append(float("nan"))
            continue
        out.append(float((model(x, t).argmax(1) == y).float().mean()))
    return out


def fit_variational(
    model,
    ds: MultiTaskDataset,
    config: VariationalConfig | None = None,
    *,
    seed: int = 0,
    weighting: LossWeighting | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Train ``model`` on ``ds``'s training rows; choose each task's state by validation accuracy.

    Parameters
    ----------
    model : VariationalMultiTaskNet
        Freshly constructed (its initial parameters should come from ``seed``).
    ds : MultiTaskDataset
        Domains-as-tasks data (see :func:`check_domains_dataset`).
    config : VariationalConfig, optional
    seed : int
        Seeds batch draws, Monte Carlo noise and Gumbel noise.
    weighting : LossWeighting, optional
        How the task losses are combined (default: equal); its parameters are
        trained with the model's.
    on_step : callable, optional
        ``on_step(done, total)`` after every iteration (progress bars).

    Returns
    -------
    FitResult
        ``model`` holds the last iteration's parameters (in eval mode);
        ``best_states[t]`` the parameters of task t's best validation
        iteration ``best_at[t]`` (accuracy ``best_scores[t]``); ``history`` one
        record per evaluation (``iteration, loss, nll, kl_z, kl_w, temperature,
        kl_w_weight, val_accuracy``).
    """
    config = config or VariationalConfig()
    weighting = weighting or EqualWeighting()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    train_x, train_y = domain_tensors(ds, "train")
    val_x, val_y = domain_tensors(ds, "validation")
    if any(len(y) == 0 for y in train_y):
        raise ValueError("every task needs training rows")
    params = list(model.parameters()) + list(weighting.parameters())
    n_optimisers = ds.n_tasks if config.optimiser == "per-task" else 1
    optimisers = [torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay) for _ in range(n_optimisers)]
    halve = config.lr_halve_every or max(1, config.iterations // 5)
    schedulers = [torch.optim.lr_scheduler.StepLR(o, step_size=halve, gamma=0.5) for o in optimisers]
    per_task_rows = config.per_class * ds.tasks[0].n_classes
    train_rows = [len(y) for y in train_y]
    steps = [None] if config.optimiser == "joint" else [[t] for t in range(ds.n_tasks)]

    def train_round(loop: FitLoop, r: int) -> RoundOutput:
        last = min(r * config.eval_every, config.iterations)
        seconds = 0.0
        loss = parts = None
        for it in range((r - 1) * config.eval_every + 1, last + 1):
            start = time.perf_counter()
            model.train()
            if config.balanced_batches:
                bx, by = _balanced_batch(train_x, train_y, config.per_class, gen)
            else:
                bx, by = _uniform_batch(train_x, train_y, per_task_rows, gen)
            tau, beta = config.temperature(it), config.kl_w_weight(it, ds.n_tasks, train_rows)
            for optimiser, tasks in zip(optimisers, steps, strict=True):
                loss, parts = model.loss(bx, by, temperature=tau, kl_z_weight=config.kl_z_weight, kl_w_weight=beta,
                                         weighting=weighting, tasks=tasks)
                optimiser.zero_grad()
                loss.backward()
                if tasks is None:
                    optimiser.step()
                else:
                    _step_own_parameters(optimiser, model, weighting, tasks[0])
            for scheduler in schedulers:
                scheduler.step()
            seconds += time.perf_counter() - start
            loop.step_done()
        return RoundOutput(last - (r - 1) * config.eval_every, seconds,
                           {"iteration": last, "loss": loss, "parts": parts, "temperature": tau, "beta": beta})

    def evaluate(r: int, out: RoundOutput) -> Evaluation:
        model.eval()
        accs = _accuracies(model, val_x, val_y)
        v = out.values
        record = {"iteration": v["iteration"], "loss": float(v["loss"].detach()), **v["parts"],
                  "temperature": v["temperature"], "kl_w_weight": v["beta"], "val_accuracy": accs}
        finite = [a for a in accs if not math.isnan(a)]
        return Evaluation(accs, float(np.mean(finite)) if finite else float("nan"), record)

    callbacks: list[Callback] = [KeepBest("max", per_task=True)]
    if config.patience is not None:
        callbacks.append(EarlyStopping(config.patience, "max", per_task=True))
    if on_step is not None:
        callbacks.append(Progress(on_step, config.iterations))
    loop = FitLoop(model, ds.n_tasks, callbacks, unit="iteration",
                   resumable=_resumable_state(gen, optimisers, schedulers, weighting))
    result = loop.run(train_round, evaluate, -(-config.iterations // config.eval_every))
    model.eval()
    return result


def _resumable_state(batch_order: torch.Generator, optimisers: Sequence[torch.optim.Optimizer],
                     schedulers: Sequence[Any], weighting: LossWeighting) -> dict[str, Any]:
    """A variational fit's training state besides the model, for :class:`~negtransfer.train.loop.FitLoop`'s
    ``resumable`` (:mod:`negtransfer.train.checkpoint`).

    The batch-draw generator, every Adam (one, or one per task) with its learning-rate halving, and the
    loss weighting (Kendall's trained log variances; an empty state for equal weights). The temperature
    and the KL weights are functions of the iteration, VMTL-AC's running class centres are buffers of the
    model, and Monte Carlo, dropout and Gumbel noise come from torch's global generator, which the loop
    saves itself.
    """
    state: dict[str, Any] = {"batch_order": batch_order, "weighting": weighting}
    for i, (optimiser, scheduler) in enumerate(zip(optimisers, schedulers, strict=True)):
        state[f"optimiser-{i}"], state[f"lr_schedule-{i}"] = optimiser, scheduler
    return state


def _step_own_parameters(optimiser, model, weighting, task: int) -> None:
    """``optimiser.step()`` that moves only the shared parameters and task ``task``'s own ones.

    The official code gives each task an Adam over the shared encoder and its
    own classifier and prior logits. Here every task's optimiser holds all
    parameters (task-owned ones are rows of shared tensors), so the rows and
    modules of the other tasks are put back after the step (their weight decay
    and momentum in this optimiser never take effect).
    """
    rows = list(model.task_rows()) + [p for p in weighting.parameters() if p.ndim and p.shape[0] == model.n_tasks]
    others = [p for t in range(model.n_tasks) if t != task for m in model.task_modules(t) for p in m.parameters()]
    keep_rows = [(p, p.detach().clone()) for p in rows]
    keep_whole = [(p, p.detach().clone()) for p in others]
    optimiser.step()
    with torch.no_grad():
        for p, old in keep_rows:
            mine = p[task].clone()
            p.copy_(old)
            p[task] = mine
        for p, old in keep_whole:
            p.copy_(old)


# ====================================================================== metrics
def predictive_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each row of a (B, C) probability matrix."""
    return -(probs * torch.log(probs.clamp_min(1e-12))).sum(dim=1)


def entropy_ratio(probs: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Mean predictive entropy of misclassified rows over that of correctly classified rows.

    Supplement C.7 (Table C.16): higher means failures are predicted with more
    uncertainty and successes with more confidence. NaN when either group is
    empty or the correct rows have zero entropy.

    Parameters
    ----------
    probs : array (B, C)
    y : array (B,)
    """
    probs = torch.as_tensor(probs, dtype=torch.float64)
    y = torch.as_tensor(y)
    ent = predictive_entropy(probs)
    wrong = probs.argmax(1) != y
    if wrong.all() or not wrong.any():
        return float("nan")
    right = float(ent[~wrong].mean())
    return float(ent[wrong].mean()) / right if right > 0 else float("nan")


def fgsm_accuracy(model, x: torch.Tensor, y: torch.Tensor, task: int, epsilons: Sequence[float]) -> dict[float, float]:
    """Accuracy under the fast gradient sign method at each noise level (supplement C.6).

    ``x_adv = x + eps * sign(grad_x CE(model(x), y))`` with the test-time
    (posterior-mean) predictor, in standardised feature units.
    """
    model.eval()
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(x, task), y)
    (grad,) = torch.autograd.grad(loss, x)
    out = {}
    with torch.no_grad():
        for eps in epsilons:
            pred = model(x + eps * grad.sign(), task).argmax(1)
            out[float(eps)] = float((pred == y).float().mean())
    return out


def evaluate_model(
    fit: FitResult, ds: MultiTaskDataset, split: str = "test", *, fgsm_epsilons: Sequence[float] = ()
) -> dict[str, dict[str, float]]:
    """Per-task metrics of a fitted model, each task with its best-validation state.

    Returns
    -------
    dict
        ``{"accuracy": {task: value}, "entropy_ratio": {...}, "fgsm_accuracy@eps": {...}}``;
        accuracy and entropy ratio use the posterior-mean predictor, and each
        also has an ``"average"`` entry (mean over tasks).
    """
    xs, ys = domain_tensors(ds, split)
    model = fit.model
    metrics: dict[str, dict[str, float]] = {"accuracy": {}, "entropy_ratio": {}}
    for eps in fgsm_epsilons:
        metrics[f"fgsm_accuracy@{eps:g}"] = {}
    live = copy.deepcopy(model.state_dict())
    for t, name in enumerate(ds.task_names):
        if fit.best_states[t] is not None:
            model.load_state_dict(fit.best_states[t])
        model.eval()
        x, y = xs[t], ys[t]
        if len(y) == 0:
            continue
        with torch.no_grad():
            probs = torch.softmax(model(x, t), dim=1)
        metrics["accuracy"][name] = float((probs.argmax(1) == y).float().mean())
        metrics["entropy_ratio"][name] = entropy_ratio(probs, y)
        if fgsm_epsilons:
            for eps, acc in fgsm_accuracy(model, x, y, t, fgsm_epsilons).items():
                metrics[f"fgsm_accuracy@{eps:g}"][name] = acc
    model.load_state_dict(live)
    for values in metrics.values():
        finite = [v for v in values.values() if not math.isnan(v)]
        if values:
            values["average"] = float(np.mean(finite)) if finite else float("nan")
    return metrics
