"""Train K hard-sharing models at once, each on its own group of tasks.

The K models' parameters are stacked (``StackedHardSharingMLP``), each model gets
its own mini-batch of the same width, and one forward/backward pass over the
stack trains all of them. Optimisers are applied per model with a mask, so a
model that has stopped early (or whose tasks have no label in a batch) is left
untouched, exactly as if it were trained alone. Early-stopped models are dropped
from the stack to save work (on a GPU they stay, masked, so that every step has
the same shapes: :func:`masks_stopped_models`). The built-in MLP trains with a
fused step (:mod:`negtransfer.train.fused_step`: flat parameter, gradient and
optimiser buffers, the backward pass written out) whenever nothing needs
autograd's graph of the stack (no step hook, summed gradients).

Repeats. A model is a *run*: a group of tasks and a repeat number ``r``. Repeat
``r`` of a job with seed ``s`` trains with the seed :func:`repeat_seed` (s, r)
(``s`` itself for ``r = 0``), which fixes its batch order and, with
``TrainConfig.shared_init``, its initial weights, the same for every group of
that repeat (common random numbers: the difference between two groups' losses
in one repeat then reflects their tasks more than their random starts). Repeats
of one group are stacked like different groups.

Which models share a stack never changes any model's numbers: initialisation
comes from each model's own seed, batch order from its training seed, and every
operation acts on each model's slice independently. Models whose batches have
different widths (per-task batches of groups of different sizes) are trained in
separate sub-stacks. These details keep this true bit for bit on MKL builds of
PyTorch (tests/train/test_batched.py checks it):

* training runs single-threaded inside this function (the previous thread count
  is restored afterwards): with several intra-op threads, a batched matrix
  product splits its work differently depending on the number of models, and
  rounding then depends on the stack. Several cores train several stacks at
  once (the in-process executor's threads, :mod:`negtransfer.runs.executors`,
  or its process pool);
* every model's mini-batch is gathered into its own slice of a (K, rows,
  features) tensor, padded with unlabelled zero rows to a multiple of
  ``ROW_BLOCK`` rows, and a final mini-batch of fewer than ``MIN_BATCH_ROWS``
  rows is merged into the previous one: MKL takes other kernel paths for some
  small products, depending on the stack size;
* validation and test rows are padded the same way before every evaluation;
* elementwise losses run on padded per-model blocks (``train/losses.py``).
"""

from __future__ import annotations

import copy
import hashlib
import re
import time
import warnings
from typing import Callable, Sequence, Union

import numpy as np
import torch

from negtransfer.data.dataset import AUDIT, TEST, TRAIN, VALIDATION, MultiTaskDataset
from negtransfer.nn.contract import check_factory
from negtransfer.nn.flat import FLAT_BLOCK
from negtransfer.nn.hard_sharing import StackedHardSharingMLP
from negtransfer.nn.stacked import StackedModel, StackingPlan, UnstackableModelWarning, stacking_plan
from negtransfer.train.aggregation import SharedGradientAggregator, task_terms
from negtransfer.train.config import TrainConfig
from negtransfer.train.fused_step import StepWorkspace, mlp_gradients, training_loss
from negtransfer.train.losses import TaskLossLayout
from negtransfer.train.metrics import classification_losses_rows, task_metric_rows
from negtransfer.train.results import ModelResult, group_text
from negtransfer.train.update_rules import adam_bias_corrections, adam_direction, adam_moments

MIN_BATCH_ROWS = 4
ROW_BLOCK = 16


def group_key(group: Sequence[int] | np.ndarray, n_tasks: int) -> str:
    """:func:`group_text` of a group given as indices or a boolean mask over ``n_tasks``."""
    return group_text(_as_indices(group, n_tasks))


def _as_indices(group, n_tasks: int) -> np.ndarray:
    arr = np.asarray(group)
    if arr.dtype == bool:
        if arr.shape != (n_tasks,):
            raise ValueError(f"a boolean group mask must have length {n_tasks}, got {arr.shape}")
        return np.flatnonzero(arr)
    return np.unique(arr.astype(int))


def model_seed(seed: int, group: Sequence[int] | np.ndarray, n_tasks: int) -> int:
    """Initialisation seed of the model for ``group`` in a run with ``seed``.

    Derived by hashing, so it depends only on (seed, group), never on which
    other models are trained alongside.
    """
    blob = f"{int(seed)}:{group_key(group, n_tasks)}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


def repeat_seed(seed: int, repeat: int) -> int:
    """Training seed of repeat ``repeat`` of a job with ``seed``.

    Repeat 0 trains with ``seed`` itself (so a job with one repeat is the job
    without repeats); later repeats get a hash of (seed, repeat), so the
    repeats of two job seeds never share a training seed.
    """
    if repeat < 0:
        raise ValueError(f"repeat must be >= 0, got {repeat}")
    if repeat == 0:
        return int(seed)
    blob = f"{int(seed)}:repeat:{int(repeat)}".encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "little") >> 1


def _padded_vector(t: torch.Tensor) -> torch.Tensor:
    """``t``'s entries (in index order) in a new 1-D tensor, then zeros to a multiple of FLAT_BLOCK entries."""
    return torch.cat([t.reshape(-1), t.new_zeros(-t.numel() % FLAT_BLOCK)])


class _StackOptimizer:
    """SGD with momentum or Adam applied per model, with a mask of active models.

    The arithmetic is that of :mod:`negtransfer.train.update_rules` (torch.optim.SGD
    with dampening 0 and no Nesterov, the first step's buffer being the gradient;
    torch.optim.Adam), but a model whose mask entry is False keeps its parameters
    *and* optimiser state unchanged. ``lr`` is the current learning rate (the
    trainer lowers it on the config's schedule). An SGD step is
    ``torch._fused_sgd_``'s arithmetic (torch.optim.SGD's ``fused=True``: one
    pass, ``p - lr * b`` in one rounding), always over whole vectors (flat
    buffers padded to :data:`~negtransfer.nn.flat.FLAT_BLOCK` entries, other
    tensors copied into padded ones), so an entry's rounding never depends on
    where it sits (:meth:`_sgd`).

    With ``views`` the parameters are views of one flat buffer ``flat``
    (:meth:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP.flatten`) and
    ``views(buffer)`` gives the same views of any buffer of its layout: the
    optimiser state is kept in flat buffers too, and an SGD step of the whole
    stack is one fused pass over them. With ``host_checks`` False
    (a GPU) no step reads a tensor on the host: every step takes the masked form.
    """

    def __init__(self, params: list[torch.Tensor], config: TrainConfig, *, host_checks: bool = True,
                 views: Callable[[torch.Tensor], list[torch.Tensor]] | None = None,
                 flat: torch.Tensor | None = None):
        self.params = params
        self.config = config
        self.lr = config.lr
        self.host_checks = host_checks
        self.views, self.flat = views, flat
        self._owner: torch.Tensor | None = None  # the stack position of each flat entry (_owners)
        self.state, self.state_flat = self._zeros()
        if config.optimizer == "adam":
            self.state2, self.state2_flat = self._zeros()
            self.steps = torch.zeros(params[0].shape[0], device=params[0].device)

    def _zeros(self) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        if self.views is None or self.flat is None:
            return [torch.zeros_like(p) for p in self.params], None
        buffer = torch.zeros_like(self.flat)
        return self.views(buffer), buffer

    def keep(self, keep: torch.Tensor, params: list[torch.Tensor], flat: torch.Tensor | None = None) -> None:
        """Keep the state of the models in ``keep``; ``params`` (and ``flat``) are the kept models' parameters."""
        self.params, self.flat = params, flat
        self.state, self.state_flat = self._kept(self.state, keep)
        if self.config.optimizer == "adam":
            self.state2, self.state2_flat = self._kept(self.state2, keep)
            self.steps = self.steps.index_select(0, keep)

    def _kept(self, state: list[torch.Tensor], keep: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        kept = [s.index_select(0, keep) for s in state]
        if self.views is None or self.flat is None:
            return kept, None
        buffer = torch.zeros_like(self.flat)
        views = self.views(buffer)  # the stack's layout (its parameters already kept)
        for view, s in zip(views, kept, strict=True):
            view.copy_(s)
        return views, buffer

    @torch.no_grad()
    def step(self, grads: list[torch.Tensor], active: torch.Tensor, flat_grad: torch.Tensor | None = None) -> None:
        cfg = self.config
        every = self.host_checks and bool(active.all())  # (a host read: the CPU only)
        flat = flat_grad is not None and self.flat is not None
        if cfg.optimizer == "sgd":
            if flat:
                assert self.flat is not None and self.state_flat is not None and flat_grad is not None
                self._sgd([self.flat], [flat_grad], [self.state_flat],
                          [None if every else active.index_select(0, self._owners())])
            else:
                self._sgd(self.params, grads, self.state,
                          [None if every else active.view((-1,) + (1,) * (p.dim() - 1)) for p in self.params])
            return
        if flat_grad is not None and self.flat is not None:
            self._masked_flat_step(flat_grad, active)
            return
        self.steps = torch.where(active, self.steps + 1, self.steps)
        corrections = adam_bias_corrections(self.steps.clamp(min=1), cfg.adam_betas)
        for i, (p, g) in enumerate(zip(self.params, grads, strict=True)):
            shape = (-1,) + (1,) * (p.dim() - 1)  # one entry per model, broadcast over the parameter's own axes
            mask = active.view(shape)
            m, v = adam_moments(g, self.state[i], self.state2[i], p, betas=cfg.adam_betas,
                                weight_decay=cfg.weight_decay)
            self.state[i].copy_(torch.where(mask, m, self.state[i]))
            self.state2[i].copy_(torch.where(mask, v, self.state2[i]))
            direction = adam_direction(m, v, corrections[0].view(shape), corrections[1].view(shape),
                                       eps=cfg.adam_eps)
            p.copy_(torch.where(mask, p - direction * self.lr, p))

    def _owners(self) -> torch.Tensor:
        """The stack position of every entry of the flat buffers (each parameter's (K, ...) block in turn)."""
        assert self.flat is not None and self.views is not None
        if self._owner is None or self._owner.numel() != self.flat.numel():
            owner = torch.zeros(self.flat.numel(), dtype=torch.long, device=self.flat.device)  # padding: model 0
            models = torch.arange(self.params[0].shape[0], device=self.flat.device)
            for view in self.views(owner):  # each parameter's block in its own storage order
                view.copy_(models.view((-1,) + (1,) * (view.dim() - 1)).expand_as(view))
            self._owner = owner
        return self._owner

    def _masked_flat_step(self, flat_grad: torch.Tensor, active: torch.Tensor) -> None:
        """Adam's masked step over the flat buffers: the per-parameter arithmetic of :meth:`step`, element for
        element, with the mask gathered per entry (a few operations for the whole stack instead of a few per
        parameter tensor)."""
        cfg = self.config
        assert self.flat is not None and self.state_flat is not None and self.state2_flat is not None
        owner = self._owners()
        mask = active.index_select(0, owner)
        p, state = self.flat, self.state_flat
        self.steps = torch.where(active, self.steps + 1, self.steps)
        corrections = adam_bias_corrections(self.steps.clamp(min=1), cfg.adam_betas)
        m, v = adam_moments(flat_grad, state, self.state2_flat, p, betas=cfg.adam_betas, weight_decay=cfg.weight_decay)
        state.copy_(torch.where(mask, m, state))
        self.state2_flat.copy_(torch.where(mask, v, self.state2_flat))
        direction = adam_direction(m, v, corrections[0].index_select(0, owner), corrections[1].index_select(0, owner),
                                   eps=cfg.adam_eps)
        p.copy_(torch.where(mask, p - direction * self.lr, p))

    def _sgd(self, params: list[torch.Tensor], grads: list[torch.Tensor], state: list[torch.Tensor],
             masks: list[torch.Tensor | None]) -> None:
        """SGD (torch.optim.SGD with dampening 0, no Nesterov; the buffer starts at zero, so the first step's
        buffer is the gradient) of each parameter, in place, where its mask (broadcast over it; None: all) is True.

        One ``torch._fused_sgd_`` pass over whole vectors: a flat buffer (its length a multiple of
        :data:`~negtransfer.nn.flat.FLAT_BLOCK`) directly, any other tensor through a zero-padded copy; a masked
        step computes every entry, then keeps the new values where the mask is True."""
        cfg = self.config
        for p, g, buf, mask in zip(params, grads, state, masks, strict=True):
            whole = mask is None and p.dim() == 1 and p.numel() % FLAT_BLOCK == 0
            new_p, new_buf = (p, buf) if whole else (_padded_vector(p), _padded_vector(buf))
            torch._fused_sgd_([new_p], [g if whole else _padded_vector(g)], [new_buf] if cfg.momentum else [],
                              weight_decay=cfg.weight_decay, momentum=cfg.momentum, lr=self.lr, dampening=0.0,
                              nesterov=False, maximize=False, is_first_step=False)
            if whole:
                continue
            new_p, new_buf = new_p[: p.numel()].view(p.shape), new_buf[: p.numel()].view(p.shape)
            if mask is not None:
                new_p, new_buf = torch.where(mask, new_p, p), torch.where(mask, new_buf, buf)
            buf.copy_(new_buf)
            p.copy_(new_p)

    def velocity(self, model: int = 0) -> list[torch.Tensor]:
        """SGD momentum buffers of one model (PyTorch convention), per parameter."""
        return [s[model] for s in self.state]


#: A stack of models: the hand-fused built-in MLP or any factory's :class:`~negtransfer.nn.stacked.StackedModel`.
Stack = Union[StackedHardSharingMLP, StackedModel]
StepHook = Callable[[torch.Tensor, Stack, "_StackOptimizer", tuple], "list[torch.Tensor] | None"]

_PLANS: dict[tuple, StackingPlan] = {}


def model_stacking_plan(config: TrainConfig, input_shape: Sequence[int], outputs: Sequence[int],
                        rows: int) -> StackingPlan:
    """How ``config.model`` trains on examples of ``input_shape`` (:func:`~negtransfer.nn.stacked.stacking_plan`).

    The built-in MLP always stacks (its hand-fused form); another model is
    probed once per process for each shape, output layout and batch width.
    """
    if config.model.is_default:
        return StackingPlan(True)
    key = (config.model, tuple(input_shape), tuple(outputs), int(rows))
    if key not in _PLANS:
        make = config.model.factory_function()
        check_factory(make, input_shape, outputs)
        _PLANS[key] = stacking_plan(make, input_shape, outputs, rows=rows)
    return _PLANS[key]


def check_model(dataset: MultiTaskDataset, config: TrainConfig) -> StackingPlan:
    """Check ``config.model`` on ``dataset`` before any training; how its models will train.

    Resolves the factory, builds one model and runs it on a dummy batch
    (:func:`~negtransfer.nn.contract.check_factory`), then decides whether its
    models stack (:func:`~negtransfer.nn.stacked.stacking_plan`). A job calls
    this at its boundary: a bad factory (missing file or function, wrong
    return, head count or output width, a model that raises) ends in one
    ValueError, and ``plan.note`` (not None) is the ``note:`` line of a model
    trained one at a time.

    Raises
    ------
    ValueError
        Naming the problem and its fix.
    """
    if config.model.is_default:
        return StackingPlan(True)
    try:
        return model_stacking_plan(config, dataset.input_shape, dataset.output_dims, _batch_width(config.batch_size, 1))
    except ValueError as exc:  # name a file's factory by its reference, not by the module it was imported as
        message = re.sub(r"negtransfer_user_model_[0-9a-f]+:[\w.]+", config.model.name, str(exc))
        raise ValueError(message) from exc.__cause__



def train_group_models(
    dataset: MultiTaskDataset,
    groups: Sequence[Sequence[int]] | np.ndarray,
    config: TrainConfig,
    seed: int,
    *,
    repeats: Sequence[int] | None = None,
    on_epoch: Callable[[int, int], None] | None = None,
    step_hook: StepHook | None = None,
    keep_test_predictions: bool = False,
    keep_parameters: bool = False,
    epochs: Sequence[int] | None = None,
) -> list[ModelResult]:
    """Train one hard-sharing model per (group, repeat), all in one vectorised stack.

    Parameters
    ----------
    dataset : MultiTaskDataset
    groups : sequence of task-index sequences, or bool array (K, n_tasks)
        Model k receives the losses of group k's tasks only. A group of one
        task is single-task learning (STL) with the same architecture.
    config : TrainConfig
    seed : int
        The job's seed. Model k trains with :func:`repeat_seed` (seed,
        repeats[k]), which fixes its batch order; its initialisation comes from
        :func:`model_seed` (training seed, group), or (training seed, all
        tasks) with ``config.shared_init``. For the per-task-rows layout
        (``dataset.row_task`` set) each model trains on its group's rows only.
    repeats : sequence of int, optional
        Repeat number of each model (default 0 for all). The same group may
        appear once per repeat.
    on_epoch : callable(epoch, models_still_training), optional
        Progress callback, called after each epoch (of each sub-stack).
    step_hook : callable(task_losses, model, optimizer, batch) -> grads or None, optional
        Called every step with the per-task losses (K, n_tasks) of the batch, the
        stacked model, the optimiser (``optimizer.lr``, ``optimizer.state``: the
        momentum buffers) and the batch ``(x, y)`` itself; may return the
        gradients of all stack parameters (e.g. from one batched per-task
        backward pass) to be used instead of the default backward. Used by the
        affinity trackers (ETAP's, and TAG's lookahead, which re-runs the batch).
        Needs ``config.gradient_aggregation == "sum"``; with another
        aggregation every step's encoder gradient is the aggregate of the
        per-task gradients (:mod:`negtransfer.train.aggregation`), computed in
        one batched backward pass over the stack.
    keep_test_predictions : bool
        Also put each task's test rows (dataset row indices) and predictions
        (probability of class 1, class probabilities, or standardised values)
        in ``extra["test_rows"]`` and ``extra["test_prediction"]``, e.g. for
        per-group fairness metrics. Not meant for the run store (large).
    keep_parameters : bool
        Also put each model's best-epoch weights in ``extra["parameters"]``: a
        list ``[W1, b1, W2, b2, ...]`` of CPU tensors, weights shaped
        (fan_in, fan_out) and biases (fan_out,) as in
        :func:`~negtransfer.nn.hard_sharing.init_parameters` (e.g. for GRAD-TAE's
        gradients at the trained point); for a model of another factory its
        state dict (name to CPU tensor). Not meant for the run store.
    epochs : sequence of int, optional
        A fixed epoch budget per model (refits after a decision, issue 25): model k trains exactly
        ``epochs[k]`` epochs and keeps its last weights, as if trained alone with ``max_epochs = epochs[k]``
        (it stops like an early-stopped model: dropped from the stack, or masked). Needs
        ``config.early_stopping`` False and every budget in 1 .. ``config.max_epochs``.

    Returns
    -------
    list of ModelResult
        In the order of ``groups``.

    Notes
    -----
    ``config.model`` chooses the network. The default, the built-in MLP, runs
    as the hand-fused :class:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP`;
    any other model as a :class:`~negtransfer.nn.stacked.StackedModel` of its
    factory (``vmap`` over stacked parameters), when
    :func:`~negtransfer.nn.stacked.stacking_plan` finds that it stacks without
    changing any model's numbers. Otherwise every model is trained alone (a
    stack of one, the model's own forward pass, torch's global generator
    seeded by its training seed for dropout), with an
    :class:`~negtransfer.nn.stacked.UnstackableModelWarning` saying why.
    """
    n_tasks = dataset.n_tasks
    group_idx, reps = _checked_runs(groups, repeats, n_tasks)
    per_task = config.per_task_batches(dataset.row_task is not None)
    if config.stopping_task is not None:
        if config.stopping_task >= n_tasks:
            raise ValueError(f"stopping_task {config.stopping_task} is not a task index 0..{n_tasks - 1}")
        for g in group_idx:
            if config.stopping_task not in g:
                raise ValueError(f"group {g} lacks the stopping task {config.stopping_task}; "
                                 "early stopping on one task needs it in every group")
    if step_hook is not None and config.gradient_aggregation != "sum":
        raise ValueError(f"gradient_aggregation {config.gradient_aggregation!r} cannot be combined with a step hook "
                         "(the affinity trackers train the all-task model with the summed gradient); use 'sum'")
    budgets = _checked_budgets(epochs, len(group_idx), config)
    if not group_idx:
        return []
    if config.model.is_default and dataset.X.ndim > 2:  # the built-in MLP reads every example flattened
        dataset = copy.copy(dataset)
        dataset.X = dataset.X.reshape(dataset.X.shape[0], -1)
    outputs = dataset.output_dims
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        # models whose batches differ in width train in separate stacks (see module doc)
        by_width: dict[int, list[int]] = {}
        for k, g in enumerate(group_idx):
            by_width.setdefault(_batch_width(config.batch_size, len(g) if per_task else 1), []).append(k)
        out: list[ModelResult | None] = [None] * len(group_idx)
        for width, members in by_width.items():
            plan = model_stacking_plan(config, dataset.input_shape, outputs, width)
            if not plan.stackable:
                warnings.warn(f"{config.model.name}: {plan.note}", UnstackableModelWarning, stacklevel=2)
            for stack in ([members] if plan.stackable else [[k] for k in members]):
                results = _train_stack(dataset, [group_idx[k] for k in stack], [reps[k] for k in stack], config,
                                       seed, plan, on_epoch, step_hook, keep_test_predictions, keep_parameters,
                                       None if budgets is None else [budgets[k] for k in stack])
                for k, res in zip(stack, results, strict=True):
                    out[k] = res
        return out  # type: ignore[return-value]
    finally:
        torch.set_num_threads(threads)


def _checked_budgets(epochs: Sequence[int] | None, n_models: int, config: TrainConfig) -> list[int] | None:
    """``epochs`` as a list of ints, checked against the models and ``config`` (see :func:`train_group_models`)."""
    if epochs is None:
        return None
    budgets = [int(e) for e in epochs]
    if len(budgets) != n_models:
        raise ValueError(f"epochs gives {len(budgets)} budgets for {n_models} models: one per (group, repeat)")
    if config.early_stopping:
        raise ValueError("per-model epoch budgets train a fixed number of epochs: set early_stopping=False")
    if any(not 1 <= e <= config.max_epochs for e in budgets):
        raise ValueError(f"every epoch budget must be in 1..max_epochs ({config.max_epochs}), got {budgets}")
    return budgets


def _train_stack(dataset, group_idx, reps, config, seed, plan: StackingPlan, *args) -> list[ModelResult]:
    """:func:`_train` one stack; a model that cannot be stacked (one at a time) draws any random operation
    (dropout) from torch's global generator seeded by its training seed."""
    if plan.stackable:
        return _train(dataset, group_idx, reps, config, seed, plan, *args)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(repeat_seed(seed, reps[0]) % (2**63))
        return _train(dataset, group_idx, reps, config, seed, plan, *args)


def build_stack(dataset: MultiTaskDataset, config: TrainConfig, seeds: Sequence[int],
                plan: StackingPlan | None = None) -> Stack:
    """The stack of ``len(seeds)`` models of ``config.model`` for ``dataset`` (on the CPU), model k from seeds[k].

    The built-in MLP is the hand-fused :class:`StackedHardSharingMLP`; any
    other model a :class:`StackedModel` of its factory, run as ``plan`` says
    (default: stacked, a stack of one run as a pair).
    """
    layout = TaskLossLayout(dataset.tasks)
    if config.model.is_default:
        return StackedHardSharingMLP(dataset.n_features, config.hidden, layout.n_outputs, seeds,
                                     config.init)
    plan = plan or StackingPlan(True, pair_single=True)
    return StackedModel(config.model.factory_function(), dataset.input_shape,
                        dataset.output_dims, seeds, stackable=plan.stackable,
                        pair_single=plan.pair_single)


def stack_state(model: Stack) -> list[torch.Tensor]:
    """Everything that makes up a stack's models: its parameters, then its buffers (if any)."""
    return list(model.parameters()) + list(model.buffers())


#: Memory one stack may use for its parameters, optimiser state, batches and activations (bytes; an estimate,
#: :func:`stack_bytes`): the runner splits a job's runs into more stacks beyond it.
STACK_MEMORY = 2**30


def stack_bytes(dataset: MultiTaskDataset, config: TrainConfig, group: Sequence[int]) -> int:
    """Estimated bytes one model of ``group`` adds to a stack of the built-in MLP (float32).

    Its parameters five times (weights, gradient, two optimiser buffers, best
    weights), its mini-batch (the rows it multiplies and the activations and
    gradients of every layer) and the activations of the evaluation rows. For
    a factory's network the same figure stands as a rough guide.
    """
    widths = [dataset.n_features, *config.hidden, sum(dataset.output_dims)]
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    per_task = config.per_task_batches(dataset.row_task is not None)
    rows = _batch_width(config.batch_size, len(group) if per_task else 1)
    evaluation = int((dataset.split != TRAIN).sum()) + ROW_BLOCK
    return 4 * (5 * params + rows * (widths[0] + 3 * sum(widths[1:])) + evaluation * sum(widths[1:]))


def _checked_runs(groups, repeats, n_tasks: int) -> tuple[list[tuple[int, ...]], list[int]]:
    """The groups as sorted index tuples and each run's repeat; ValueError for a bad group or a run named twice."""
    group_idx = [tuple(int(i) for i in _as_indices(g, n_tasks)) for g in groups]
    for g in group_idx:
        if not g or min(g) < 0 or max(g) >= n_tasks:
            raise ValueError(f"group {g} is empty or names a task outside 0..{n_tasks - 1}")
    reps = [0] * len(group_idx) if repeats is None else [int(r) for r in repeats]
    if len(reps) != len(group_idx):
        raise ValueError(f"repeats has {len(reps)} entries for {len(group_idx)} groups")
    if len(set(zip(group_idx, reps, strict=True))) != len(group_idx):
        raise ValueError("a (group, repeat) pair appears twice; each run is trained once")
    return group_idx, reps


def _padded_width(rows: int) -> int:
    return -(-rows // ROW_BLOCK) * ROW_BLOCK


def _batch_width(batch_size: int, tasks_per_step: int) -> int:
    """Rows of every mini-batch tensor of a model (labelled rows plus padding)."""
    return _padded_width(batch_size * tasks_per_step)


class _Batches:
    """Mini-batches of every model of a stack, as (K, width, d) and (K, width, n_tasks) tensors.

    Each model draws its batch order from a generator seeded by its training
    seed, so models of one repeat see the same order where their rows are the
    same, and a model's batches never depend on its stack partners. Row index
    ``pad`` is an all-zero, unlabelled row used for padding: it adds exactly
    nothing to any loss or gradient.

    Three schemes:

    * multi-label data: every model passes over all training rows in its order;
    * per-task rows: each model passes over the training rows of its group's
      tasks, shuffled together;
    * per-task batches (``config.batching``): each step takes the next
      ``batch_size`` rows of every task of the group (the ETAP public code's
      scheme); with ``config.oversample`` a group's smaller tasks are first
      topped up to its largest task's row count by rows drawn with replacement,
      equally from each class (for regression tasks uniformly).
    """

    def __init__(self, dataset: MultiTaskDataset, groups: list[tuple[int, ...]], seeds: list[int],
                 config: TrainConfig, unpadded: bool = False):
        self.config = config
        self.task_batches = config.per_task_batches(dataset.row_task is not None)
        self.width = _batch_width(config.batch_size, len(groups[0]) if self.task_batches else 1)
        train = dataset.split == TRAIN
        n = dataset.X.shape[0]
        # the rows live on the training device; batch orders are drawn on the CPU (the same on every device)
        device = torch.device(config.device)
        self.X = torch.cat([torch.from_numpy(dataset.X), torch.zeros(1, *dataset.X.shape[1:])]).to(device)
        self.Y = torch.cat([torch.from_numpy(dataset.Y), torch.full((1, dataset.Y.shape[1]), float("nan"))]).to(device)
        self.pad = n
        self.unpadded = unpadded  # a model trained alone gets its real rows only (no zero rows in batch norms)
        self.seeds = [int(s) for s in seeds]
        self._streams: dict[int, list] = {}  # model -> [its current permutation, position] (steps_per_epoch)
        self.lockstep = dataset.row_task is not None
        if dataset.row_task is None:
            if config.steps_per_epoch:
                raise ValueError("steps_per_epoch needs per-task-rows data (on multi-label data every group "
                                 "already passes over the same rows); leave it at 0")
            # multi-label: one generator per training seed (its models share the rows)
            self.shared_rows = torch.from_numpy(np.flatnonzero(train))
            self.seed_gens = {s: torch.Generator().manual_seed(s % (2**63)) for s in set(self.seeds)}
            return
        self.gens = [torch.Generator().manual_seed(s % (2**63)) for s in self.seeds]
        self.steps = config.steps_per_epoch
        if self.steps and self.task_batches:
            raise ValueError("steps_per_epoch needs pooled batches; use batching='pooled'")
        if not self.task_batches:
            self.rows = [[torch.from_numpy(np.flatnonzero(train & np.isin(dataset.row_task, g)))] for g in groups]
        else:
            self.rows = [[torch.from_numpy(np.flatnonzero(train & (dataset.row_task == t))) for t in g] for g in groups]
            if config.oversample:  # (per-task batches only)
                self.rows = [self._oversampled(dataset, g, parts, gen) if len(g) > 1 else parts
                             for g, parts, gen in zip(groups, self.rows, self.gens, strict=True)]

    def _draw(self, k: int, n: int) -> torch.Tensor:
        """The next ``n`` rows (at most the group's row count) of model ``k``'s endless reshuffled stream."""
        rows = self.rows[k][0]
        stream = self._streams.setdefault(k, [rows[:0], 0])
        need, parts = min(n, rows.numel()), []
        while need > 0:
            if stream[1] >= stream[0].numel():
                stream[0], stream[1] = rows[torch.randperm(rows.numel(), generator=self.gens[k])], 0
            take = stream[0][stream[1]: stream[1] + need]
            stream[1] += take.numel()
            need -= take.numel()
            parts.append(take)
        return torch.cat(parts) if parts else rows[:0]

    def _gather(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``index`` (K, width) of X and Y as (K, width, *example shape) and (K, width, n_tasks)."""
        if self.unpadded:  # (a stack of one)
            index = index[:, index[0] != self.pad]
        flat = index.reshape(-1).to(self.X.device)
        K, width = index.shape
        return (self.X.index_select(0, flat).view(K, width, *self.X.shape[1:]),
                self.Y.index_select(0, flat).view(K, width, -1))

    @staticmethod
    def _oversampled(dataset, group, parts: list[torch.Tensor], gen: torch.Generator) -> list[torch.Tensor]:
        """Each task's rows topped up to the group's largest count, equally per class."""
        target = max(p.numel() for p in parts)
        out = []
        for task, rows in zip(group, parts, strict=True):
            need = target - rows.numel()
            if need <= 0:
                out.append(rows)
                continue
            if dataset.tasks[task].kind == "regression":
                pools = [rows]
            else:
                y = torch.from_numpy(dataset.Y[rows.numpy(), task])
                pools = [rows[y == c] for c in torch.unique(y)]
            share = [need // len(pools) + (1 if i < need % len(pools) else 0) for i in range(len(pools))]
            extra = [p[torch.randint(p.numel(), (m,), generator=gen)] for p, m in zip(pools, share, strict=True) if m]
            out.append(torch.cat([rows, *extra]))
        return out

    def epoch(self, models: list[int]):
        """Yield (x, y) for every step of one epoch of the listed (alive) models.

        Multi-label data whose alive models all share one training seed get
        the batch as (width, d) and (width, n_tasks), shared by the stack (the
        model expands it); this gives bit-for-bit the numbers of the per-model
        (K, width, d) form and saves the copies.
        """
        bs = self.config.batch_size
        if not self.lockstep:
            # every model passes over the same rows, so one set of slices serves all
            # (a tail shorter than MIN_BATCH_ROWS joins the batch before it)
            n_rows = self.shared_rows.numel()
            perms = {s: self.shared_rows[torch.randperm(n_rows, generator=self.seed_gens[s])]
                     for s in dict.fromkeys(self.seeds[k] for k in models)}
            single = len(perms) == 1
            order = next(iter(perms.values())).unsqueeze(0) if single else torch.stack(
                [perms[self.seeds[k]] for k in models])
            order = order.to(self.X.device)  # once per epoch: no copy to the device inside the epoch
            for batch in batch_slices(n_rows, bs):
                index = order[:, batch]
                pad = _padded_width(index.shape[1]) - index.shape[1]
                if pad:
                    index = torch.cat([index, index.new_full((index.shape[0], pad), self.pad)], dim=1)
                x, y = self._gather(index)
                yield (x[0], y[0]) if single else (x, y)
            return
        if self.steps:
            # a fixed number of steps per epoch (config.steps_per_epoch), rows from each model's stream
            for _ in range(self.steps):
                index = torch.full((len(models), self.width), self.pad, dtype=torch.long)
                for pos, k in enumerate(models):
                    take = self._draw(k, bs)
                    index[pos, : take.numel()] = take
                yield self._gather(index)
            return
        orders = [[rows[torch.randperm(rows.numel(), generator=self.gens[k])] for rows in self.rows[k]]
                  for k in models]
        # per-task batches: each step takes the next batch_size rows of every task of the group; per-task rows
        # (pooled): the next batch_size rows of the group's rows. Lockstep: a model whose (shorter) epoch is over
        # gets empty, unlabelled batches until the longest one ends.
        n_steps = max(-(-max(p.numel() for p in parts) // bs) for parts in orders)
        index = torch.stack([_step_rows(parts, bs, n_steps, self.width, self.pad) for parts in orders])
        index = index.to(self.X.device)  # every step's rows of the epoch, sent once
        for step in range(n_steps):
            yield self._gather(index[:, step])


def _step_rows(parts: list[torch.Tensor], batch_size: int, n_steps: int, width: int, pad: int) -> torch.Tensor:
    """One model's rows of every step of an epoch, (n_steps, width): at step s the rows
    ``[s * batch_size, (s + 1) * batch_size)`` of each part (a task's rows in their epoch order), the parts' rows
    one after another, then ``pad`` (the unlabelled zero row) to the width."""
    blocks = []
    for rows in parts:
        block = torch.full((n_steps * batch_size,), pad, dtype=torch.long)
        block[: rows.numel()] = rows
        blocks.append(block.view(n_steps, batch_size))
    steps = torch.cat(blocks, dim=1)
    if len(parts) > 1:  # a part that ran out leaves no gap: the next part's rows follow, in order
        steps = steps.gather(1, torch.sort((steps == pad).to(torch.int8), dim=1, stable=True).indices)
    filler = torch.full((n_steps, width - steps.shape[1]), pad, dtype=torch.long)
    return torch.cat([steps, filler], dim=1)


def _padded_rows(X: torch.Tensor, Y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Evaluation rows padded with unlabelled zero rows to a multiple of ROW_BLOCK.

    Validation and test sets have any number of rows; without the padding a
    batched product over them takes another MKL kernel path for other stack
    sizes (e.g. 301 rows into 5 outputs), and a model's losses would depend on
    its stack partners in the last bits.
    """
    pad = _padded_width(X.shape[0]) - X.shape[0]
    if not pad:
        return X, Y
    return (torch.cat([X, X.new_zeros(pad, *X.shape[1:])]),
            torch.cat([Y, Y.new_full((pad, Y.shape[1]), float("nan"))]))


def batch_slices(n_rows: int, batch_size: int) -> list[slice]:
    """Consecutive mini-batch slices; a tail under MIN_BATCH_ROWS joins the batch before it."""
    starts = list(range(0, n_rows, batch_size))
    if len(starts) > 1 and n_rows - starts[-1] < MIN_BATCH_ROWS:
        starts.pop()
    ends = starts[1:] + [n_rows]
    return [slice(a, b) for a, b in zip(starts, ends, strict=True)]


def validation_halves(dataset: MultiTaskDataset) -> tuple[np.ndarray, np.ndarray]:
    """Validation row indices split in two: (rows that choose the stopping epoch, rows that estimate the loss).

    Every other validation row of each task, in row order (per-task-rows data:
    within each task's rows; multi-label data: over all validation rows). The
    split itself is random (drawn by the dataset's seed), so alternation gives
    two random halves of (almost) equal size that do not depend on the
    training seed (``TrainConfig.stopping_rows = "half"``).
    """
    val = np.flatnonzero(dataset.split == VALIDATION)
    if dataset.row_task is None:
        position = np.arange(val.size)
    else:
        position = np.zeros(val.size, dtype=int)
        tasks = dataset.row_task[val]
        for t in np.unique(tasks):
            members = tasks == t
            position[members] = np.arange(int(members.sum()))
    return val[position % 2 == 0], val[position % 2 == 1]


def stopping_rows(dataset: MultiTaskDataset, config: TrainConfig) -> np.ndarray:
    """Validation rows whose loss chooses the stopping epoch (all, or the first of :func:`validation_halves`)."""
    if config.stopping_rows == "half":
        return validation_halves(dataset)[0]
    return np.flatnonzero(dataset.split == VALIDATION)


def _stopping_loss(sums: torch.Tensor, counts: torch.Tensor, mask: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Per model, the validation loss early stopping watches (see TrainConfig ``stopping_task``, ``loss_weighting``)."""
    if config.stopping_task is not None:
        t = config.stopping_task
        return sums[:, t] / counts[..., t].clamp(min=1.0)
    if config.loss_weighting == "row-mean":
        return (sums * mask).sum(1) / (counts * mask).sum(1).clamp(min=1.0)
    return (sums / counts.clamp(min=1.0) * mask).sum(1)


def _step_gradients(step_hook, surgery, model, opt, params, batch, batch_losses, mask, alive,
                    row_mean: bool) -> list[torch.Tensor]:
    """Gradients of the stack's parameters for one step: the step hook's, the aggregated per-task gradients
    (``config.gradient_aggregation``; :mod:`negtransfer.train.aggregation`), or the training loss's."""
    sums, counts, losses = batch_losses
    grads = step_hook(losses * mask, model, opt, batch) if step_hook is not None else None
    if grads is None and surgery is not None:
        present = (mask * (counts > 0)) > 0
        grads = surgery.gradients(task_terms(sums, counts, losses, mask, row_mean), model, present, alive.tolist())
    if grads is None:
        grads = torch.autograd.grad(training_loss(sums, counts, losses, mask, row_mean), params)
    return list(grads)


@torch.no_grad()
def _validate(model: Stack, layout: TaskLossLayout, validation: tuple[torch.Tensor, torch.Tensor],
              state: "_EarlyStopping", epoch: int, config: TrainConfig) -> torch.Tensor:
    """The epoch's validation: early stopping's record updated; per stack position, whether its model trains on.

    Without any validation row (a refit, which trains on every non-test row) the stack is not run: every model's
    validation loss is 0, what the empty sums give, and the record advances as it would with them.
    """
    model.eval()
    if validation[1].shape[0] == 0:
        val_total = state.best_val.new_zeros(state.alive.numel())
    else:
        val_sums, val_counts = layout.loss_sums(model(validation[0]), validation[1])
        val_total = _stopping_loss(val_sums, val_counts, state.mask, config)
    return state.update(epoch, val_total, stack_state(model), config)


class _AutogradStep:
    """A training step through autograd's graph of the stack: any network, step hooks, aggregated gradients.

    With ``FLAT`` the stack's parameters become views of one flat buffer (``model.flatten()``, the built-in
    MLP's and :class:`~negtransfer.nn.stacked.StackedModel`'s): each step's gradients are copied into one flat
    gradient buffer and the optimiser updates the whole stack with a few vector operations, the same
    arithmetic element for element as one parameter tensor at a time (tests/train/test_fused_step.py)."""

    #: Flat parameter, gradient and optimiser buffers (False: one tensor per parameter, as before; tests).
    FLAT = True

    def __init__(self, model: Stack, step_hook, surgery):
        self.model, self.step_hook, self.surgery = model, step_hook, surgery
        self.flat: torch.Tensor | None = model.flatten() if self.FLAT else None
        self._buffers()

    @property
    def view_layout(self) -> Callable[[torch.Tensor], list[torch.Tensor]] | None:
        """Views of a flat buffer shaped like the stack's parameters (None without flat buffers)."""
        return self.model.parameter_views if self.flat is not None else None

    def _buffers(self) -> None:
        self.grad_flat = None if self.flat is None else torch.zeros_like(self.flat)  # (its padding stays zero)
        self.grad_views = None if self.grad_flat is None else self.model.parameter_views(self.grad_flat)

    def keep(self) -> torch.Tensor | None:
        """After the model dropped models: the new flat parameter buffer (None without flat buffers)."""
        if self.flat is None:
            return None
        flat = self.model.flat_parameters
        assert flat is not None, "keep_models keeps the flat storage"
        self.flat = flat
        self._buffers()
        return flat

    def bind(self, opt: _StackOptimizer, layout: TaskLossLayout, state: "_EarlyStopping",
             config: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], None]:
        """The step on a batch (x, y) with this optimiser, loss layout and early-stopping state."""
        row_mean = config.loss_weighting == "row-mean"

        def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
            sums, counts = layout.loss_sums(self.model(xb), yb)
            losses = sums / counts.clamp(min=1.0)
            has_label = ((state.mask * (counts > 0)).sum(1) > 0) & state.running
            if not bool(has_label.any()):
                return
            grads = _step_gradients(self.step_hook, self.surgery, self.model, opt, list(self.model.parameters()),
                                    (xb, yb), (sums, counts, losses), state.mask, state.alive, row_mean)
            if self.grad_flat is None or self.grad_views is None:
                opt.step(grads, has_label)
                return
            torch._foreach_copy_(self.grad_views, grads)  # into the flat buffer, in the stack's layout
            opt.step(self.grad_views, has_label, self.grad_flat)

        return step


def _group_mask(group_idx: Sequence[Sequence[int]], n_tasks: int, device: torch.device) -> torch.Tensor:
    """A (K, n_tasks) 0/1 mask of each model's tasks, on ``device``."""
    mask = torch.zeros(len(group_idx), n_tasks)
    for k, g in enumerate(group_idx):
        mask[k, list(g)] = 1.0
    return mask.to(device)


class _EarlyStopping:
    """Early-stopping book-keeping of one stack of K models.

    ``alive`` maps each stack position to its model's original index; ``mask`` is the task mask of the models
    in the stack; ``running`` says which of them still train (all of them where stopped models are dropped; on
    a GPU stopped models stay in the stack, masked, so that every step has the same shapes); ``best_params``
    holds, per original model, the weights of its best epoch so far. ``budget`` (per original model, optional):
    the epoch after which each model stops whatever its validation loss (a fixed per-model epoch budget).
    """

    def __init__(self, params: Sequence[torch.Tensor], group_mask: torch.Tensor, device: torch.device,
                 budget: Sequence[int] | None = None):
        K = group_mask.shape[0]
        self.budget = None if budget is None else torch.tensor(list(budget), dtype=torch.long, device=device)
        self.alive = torch.arange(K, device=device)  # original index of each stack position
        self.running = torch.ones(K, dtype=torch.bool, device=device)
        self.best_val = torch.full((K,), float("inf"), device=device)
        self.best_epoch = torch.zeros(K, dtype=torch.long, device=device)
        self.wait = torch.zeros(K, dtype=torch.long, device=device)
        self.epochs_run = torch.zeros(K, dtype=torch.long, device=device)
        self.best_params = [p.detach().clone() for p in params]  # indexed by original model
        self.mask = group_mask

    def ran(self, epoch: int) -> None:
        """The models still running finished ``epoch``."""
        self.epochs_run[self.alive] = torch.where(self.running, epoch, self.epochs_run[self.alive])

    def update(self, epoch: int, val_total: torch.Tensor, params: Sequence[torch.Tensor],
               config: TrainConfig) -> torch.Tensor:
        """Record the epoch's validation losses (one per model in the stack) and keep the weights of the models
        that improved. Returns a boolean per stack position: whether that model keeps training."""
        alive = self.alive
        improved = val_total < self.best_val[alive] - config.min_delta
        if not config.early_stopping:  # a fixed budget: the last epoch's weights are kept
            improved = torch.ones_like(improved)
        improved &= self.running
        positions = torch.nonzero(improved).flatten()
        for bp, p in zip(self.best_params, params, strict=True):
            bp.index_copy_(0, alive[positions], p.detach().index_select(0, positions))
        self.best_val[alive] = torch.where(improved, val_total, self.best_val[alive])
        self.best_epoch[alive] = torch.where(improved, torch.full_like(self.best_epoch[alive], epoch),
                                             self.best_epoch[alive])
        waited = torch.where(self.running, self.wait[alive] + 1, self.wait[alive])
        self.wait[alive] = torch.where(improved, torch.zeros_like(self.wait[alive]), waited)
        still = (self.wait[alive] < config.patience) & self.running
        return still if self.budget is None else still & (self.budget[alive] > epoch)

    def keep(self, keep: torch.Tensor) -> None:
        """Drop every stack position not in ``keep`` (the models that stopped)."""
        self.alive = self.alive[keep]
        self.mask = self.mask[keep]
        self.running = self.running[keep]


class _FusedStep:
    """The fused step of the built-in MLP (:mod:`negtransfer.train.fused_step`): parameters and gradients in
    flat (K, P) buffers. Used when nothing needs autograd's graph of the stack (no step hook, summed gradients)."""

    def __init__(self, model: StackedHardSharingMLP):
        self.model = model
        self.flat = model.flatten()
        self._buffers()

    @property
    def view_layout(self) -> Callable[[torch.Tensor], list[torch.Tensor]]:
        """Views of a flat buffer shaped like the stack's parameters."""
        return self.model.parameter_views

    @classmethod
    def applies(cls, model: Stack, step_hook, surgery) -> "_FusedStep | None":
        """The fused step of ``model``, or None where the autograd step is needed."""
        if isinstance(model, StackedHardSharingMLP) and step_hook is None and surgery is None:
            return cls(model)
        return None

    def _buffers(self) -> None:
        self.grad_flat = torch.zeros_like(self.flat)
        self.views = self.model.parameter_views(self.grad_flat)
        self.workspace = StepWorkspace()

    def bind(self, opt: _StackOptimizer, layout: TaskLossLayout, state: _EarlyStopping,
             config: TrainConfig) -> Callable[[torch.Tensor, torch.Tensor], None]:
        """The step on a batch (x, y): the gradients (:func:`mlp_gradients`), then the masked optimiser step."""
        row_mean = config.loss_weighting == "row-mean"

        def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
            has_label = mlp_gradients(self.model, xb, yb, layout, state.mask, row_mean, self.views, self.workspace)
            opt.step(self.views, has_label & state.running, self.grad_flat)

        return step

    def keep(self) -> torch.Tensor:
        """After the model dropped models: the new parameter buffer."""
        flat = self.model.flat_parameters
        assert flat is not None, "keep_models keeps the flat storage"
        self.flat = flat
        self._buffers()
        return flat


def masks_stopped_models(device: torch.device) -> bool:
    """Whether stopped models stay in their stack, masked (fixed shapes: a GPU), rather than being dropped.

    Either way every model's numbers are the same (tests/train/test_fused_step.py);
    :data:`MASK_STOPPED_MODELS` forces the masked form on the CPU too.
    """
    return MASK_STOPPED_MODELS or device.type != "cpu"


#: Keep stopped models in the stack (masked) on the CPU too; the default on a GPU.
MASK_STOPPED_MODELS = False


def _train(dataset, group_idx, reps, config, seed, plan, on_epoch, step_hook, keep_test_predictions=False,
           keep_parameters=False, budgets: list[int] | None = None) -> list[ModelResult]:
    K = len(group_idx)
    t_start = time.perf_counter()
    layout = TaskLossLayout(dataset.tasks)
    train_seeds = [repeat_seed(seed, r) for r in reps]
    everything = tuple(range(dataset.n_tasks))
    init_seeds = [model_seed(s, everything if config.shared_init else g, dataset.n_tasks)
                  for s, g in zip(train_seeds, group_idx, strict=True)]
    device = torch.device(config.device)  # weights are drawn on the CPU, then moved
    model = build_stack(dataset, config, init_seeds, plan).to(device)
    surgery = (SharedGradientAggregator(config.gradient_aggregation, train_seeds)
               if config.gradient_aggregation != "sum" else None)
    stepper = _FusedStep.applies(model, step_hook, surgery) or _AutogradStep(model, step_hook, surgery)
    masked = masks_stopped_models(device)  # the GPU form: fixed shapes, no host read of a tensor
    opt = _StackOptimizer([p.data for p in model.parameters()], config, host_checks=not masked,
                          views=stepper.view_layout, flat=stepper.flat)
    X, Y = torch.from_numpy(dataset.X), torch.from_numpy(dataset.Y)
    val_rows = torch.from_numpy(stopping_rows(dataset, config))
    X_val, Y_val = _padded_rows(X[val_rows], Y[val_rows])
    validation = (X_val.to(device), Y_val.to(device))
    batches = _Batches(dataset, group_idx, train_seeds, config,
                       unpadded=isinstance(model, StackedModel) and not model.stackable and bool(model.buffer_names))
    state = _EarlyStopping(stack_state(model), _group_mask(group_idx, dataset.n_tasks, device), device, budgets)
    step = stepper.bind(opt, layout, state, config)
    for epoch in range(1, config.max_epochs + 1):
        opt.lr = config.learning_rate_at(epoch)
        model.train()
        for xb, yb in batches.epoch(state.alive.tolist()):
            if batches.unpadded and yb.shape[-2] < 2:  # a batch norm cannot train on fewer than two rows
                continue
            step(xb, yb)
        state.ran(epoch)
        still = _validate(model, layout, validation, state, epoch, config)
        if on_epoch is not None:
            on_epoch(epoch, int(still.sum()))
        if not bool(still.any()):
            break
        if masked:
            state.running = still
        elif not bool(still.all()):
            keep = torch.nonzero(still).flatten()
            model.keep_models(keep)
            opt.keep(keep, [p.data for p in model.parameters()], stepper.keep())
            state.keep(keep)
    seconds = (time.perf_counter() - t_start) / K
    # Evaluate the best-epoch weights of every model in one stack.
    final = build_stack(dataset, config, init_seeds, plan).to(device).eval()
    with torch.no_grad():
        for fp, bp in zip(stack_state(final), state.best_params, strict=True):
            fp.copy_(bp)
    results = _evaluate(final, dataset, layout, group_idx, state.best_epoch, state.epochs_run, seconds,
                        keep_test_predictions)
    if config.stopping_rows == "half":
        _add_estimate_half(final, dataset, layout, group_idx, results)
    for res, r in zip(results, reps, strict=True):
        res.repeat = r
    if isinstance(final, StackedModel):
        if keep_parameters:
            for k, res in enumerate(results):
                res.extra["parameters"] = final.model_state(k)
    else:
        _keep_parameters(results, state.best_params, len(final.weights), keep_parameters)
    return results


def _keep_parameters(results: list[ModelResult], stacked: list[torch.Tensor], n_layers: int, keep: bool) -> None:
    """With ``keep``: each model's weights ``[W1, b1, W2, b2, ...]`` (CPU) in ``extra["parameters"]``, taken from
    a stack's parameters (every layer's weights, then every layer's biases) of the built-in MLP. (A factory's
    model keeps its state dict, name to tensor: :meth:`StackedModel.model_state`.)"""
    if not keep:
        return
    weights, biases = stacked[:n_layers], stacked[n_layers:]
    for k, res in enumerate(results):
        res.extra["parameters"] = [t for w, b in zip(weights, biases, strict=True)
                                   for t in (w[k].detach().cpu().clone(), b[k, 0].detach().cpu().clone())]


def logit_margin_rows(layout: TaskLossLayout, outputs: torch.Tensor, labels: torch.Tensor, task: int) -> torch.Tensor:
    """Per model, the mean negative classification margin of ``task`` on the logits (K,).

    Surrogate paper section 4.2's margin loss as the authors' public code
    computes it: the highest other class's logit minus the correct class's
    (a binary task's classes have logits 0 and z, so it is ``(1 - 2y) z``),
    averaged over the labelled rows; lower is better, unbounded.
    """
    y = labels[:, task] if labels.dim() == 2 else labels
    labelled = ~torch.isnan(y)
    out = outputs[:, labelled][..., layout.output_slice(task)]
    y = y[labelled].long()
    if out.shape[1] == 0:
        return torch.full((outputs.shape[0],), float("nan"))
    if layout.tasks[task].kind == "binary":
        elem = (1 - 2 * y).to(out.dtype) * out[..., 0]
    else:
        rows = torch.arange(y.numel())
        correct = out[:, rows, y]
        others = out.clone()
        others[:, rows, y] = -torch.inf
        elem = others.max(dim=2).values - correct
    return torch.stack([row.mean() for row in elem])  # one model at a time: the same result in any stack


@torch.no_grad()
def _add_estimate_half(model, dataset, layout, group_idx, results: list[ModelResult]) -> None:
    """``val_est_*`` figures (``loss``, ``margin_loss``, ``logit_margin``, ``zero_one``, ``accuracy``) on the
    validation rows that did not choose the stopping epoch (:func:`validation_halves`)."""
    rows = torch.from_numpy(validation_halves(dataset)[1])
    X = torch.from_numpy(dataset.X)[rows]
    Y = torch.from_numpy(dataset.Y)[rows]
    device = next(model.parameters()).device
    out = model(_padded_rows(X, Y)[0].to(device))[:, : rows.numel()].cpu()
    losses, _ = layout.task_losses(out, Y)
    for t, task in enumerate(dataset.tasks):
        holders = [k for k, g in enumerate(group_idx) if t in g]
        if not holders:
            continue
        index = torch.tensor(holders)
        figures = {"loss": losses[index, t].tolist()}
        if task.kind != "regression":
            figures["logit_margin"] = logit_margin_rows(layout, out.index_select(0, index), Y, t).tolist()
            labelled = ~np.isnan(Y[:, t].numpy())
            pred = layout.predictions(out.index_select(0, index), t).numpy()[:, labelled]
            for name, values in classification_losses_rows(task, Y[:, t].numpy()[labelled], pred).items():
                figures[name] = list(values)
        for name, values in figures.items():
            for k, value in zip(holders, values, strict=True):
                results[k].extra.setdefault(f"val_est_{name}", {})[t] = float(value)


@torch.no_grad()
def _evaluate(model, dataset, layout, group_idx, best_epoch, epochs_run, seconds, keep_predictions=False) -> list[ModelResult]:
    """Losses and metrics of every model on validation and test rows (metrics computed per task for all
    models that hold the task at once)."""
    X = torch.from_numpy(dataset.X)
    Y = torch.from_numpy(dataset.Y)
    split = torch.from_numpy(dataset.split.astype(np.int64))
    val = torch.nonzero(split == VALIDATION).flatten()
    test = torch.nonzero(split == TEST).flatten()
    device = next(model.parameters()).device  # outputs come back to the CPU for losses and metrics
    val_out = model(_padded_rows(X[val], Y[val])[0].to(device))[:, : val.numel()].cpu()
    test_out = model(_padded_rows(X[test], Y[test])[0].to(device))[:, : test.numel()].cpu()
    val_losses, _ = layout.task_losses(val_out, Y[val])
    test_losses, _ = layout.task_losses(test_out, Y[test])
    audit = _audit_outputs(model, X, Y, split, device)
    audit_losses = None if audit is None else layout.task_losses(audit[1], Y[audit[0]])[0]
    row_losses = {} if audit is None else {
        "audit_row_loss": _labelled_row_losses(model, X, Y, audit[0], layout, device, audit[1]),
        "test_row_loss": _labelled_row_losses(model, X, Y, test, layout, device, test_out)}
    labels = {"val": dataset.Y[val.numpy()], "test": dataset.Y[test.numpy()]}
    outputs = {"val": val_out, "test": test_out}
    metrics: list[dict] = [{} for _ in group_idx]
    extra: list[dict] = [{} for _ in group_idx]
    for t, task in enumerate(dataset.tasks):
        holders = [k for k, g in enumerate(group_idx) if t in g]
        if not holders:
            continue
        index = torch.tensor(holders)
        for part in ("val", "test"):
            labelled = ~np.isnan(labels[part][:, t])
            y = labels[part][labelled, t]
            pred = layout.predictions(outputs[part].index_select(0, index), t).numpy()[:, labelled]
            for k, value in zip(holders, task_metric_rows(task, y, pred), strict=True):
                metrics[k][(part, t)] = float(value)
            if part == "test" and keep_predictions:
                    for pos, k in enumerate(holders):
                        extra[k].setdefault("test_rows", {})[t] = test.numpy()[labelled].tolist()
                        extra[k].setdefault("test_prediction", {})[t] = pred[pos].tolist()
            figures = classification_losses_rows(task, y, pred)
            if task.kind != "regression":
                rows = val if part == "val" else test
                figures["logit_margin"] = logit_margin_rows(layout, outputs[part].index_select(0, index),
                                                            Y[rows], t).numpy()
            for name, values in figures.items():
                for k, value in zip(holders, values, strict=True):
                    extra[k].setdefault(f"{part}_{name}", {})[t] = float(value)
    return [
        ModelResult(
            group=g,
            val_loss={t: float(val_losses[k, t]) for t in g},
            test_loss={t: float(test_losses[k, t]) for t in g},
            test_metric={t: metrics[k][("test", t)] for t in g},
            val_metric={t: metrics[k][("val", t)] for t in g},
            best_epoch=int(best_epoch[k]),
            epochs=int(epochs_run[k]),
            seconds=seconds,
            extra={name: {t: per_task[t] for t in g if t in per_task} for name, per_task in extra[k].items()},
            audit_loss={} if audit_losses is None else {t: float(audit_losses[k, t]) for t in g},
            audit_row_loss={t: row_losses["audit_row_loss"][k][t] for t in g} if row_losses else {},
            test_row_loss={t: row_losses["test_row_loss"][k][t] for t in g} if row_losses else {},
        )
        for k, g in enumerate(group_idx)
    ]


def _audit_outputs(model, X: torch.Tensor, Y: torch.Tensor, split: torch.Tensor, device
                   ) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The audit rows (split code 4) and the models' outputs on them, (K, rows, ...); None when there are none."""
    audit = torch.nonzero(split == AUDIT).flatten()
    if audit.numel() == 0:
        return None
    return audit, model(_padded_rows(X[audit], Y[audit])[0].to(device))[:, : audit.numel()].cpu()


def _labelled_row_losses(model, X: torch.Tensor, Y: torch.Tensor, rows: torch.Tensor, layout, device,
                         out: torch.Tensor | None = None, chunk: int = 2048) -> list[dict[int, np.ndarray]]:
    """Per model, task -> the loss of each of ``rows`` labelled for the task (float32, in ``rows`` order).

    Each row is scored as a one-row batch of its own (:meth:`TaskLossLayout.loss_sums` with per-model labels
    of shape (K * rows, 1, n_tasks)), so a row's loss is the element its task's mean loss sums.
    ``out`` : the models' outputs on ``rows`` when already computed.
    """
    if out is None:
        out = model(_padded_rows(X[rows], Y[rows])[0].to(device))[:, : rows.numel()].cpu()
    labels = Y[rows]
    K, B = out.shape[0], out.shape[1]
    per_row = torch.empty(K, B, labels.shape[1], dtype=out.dtype)
    for start in range(0, B, chunk):
        part = out[:, start:start + chunk]
        b = part.shape[1]
        batch = labels[start:start + chunk].unsqueeze(0).expand(K, b, -1).reshape(K * b, 1, -1)
        per_row[:, start:start + b] = layout.loss_sums(part.reshape(K * b, 1, -1), batch)[0].reshape(K, b, -1)
    labelled = ~torch.isnan(labels)
    return [{t: per_row[k, labelled[:, t], t].numpy().astype(np.float32) for t in range(labels.shape[1])}
            for k in range(K)]
