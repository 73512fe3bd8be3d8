r"""Per-step task affinity that rides on a training run (ETAP; Ayman, Mukhopadhyay and Laszka, ICLR 2026, section 3.1).

Orientation
-----------
Everywhere in negtransfer ``affinity[i, j]`` is the affinity of SOURCE task ``i``
onto TARGET task ``j`` (the paper's :math:`z_{t_i \to t_j}`): rows are sources,
columns are targets. (The public ETAP code builds the transpose, target by
source; this module does not.)

What one step measures
----------------------
At step ``k`` let :math:`g_t` be the gradient of task ``t``'s loss :math:`L_t`
with respect to the *shared* parameters only (task heads excluded), and let
:math:`\theta' = \theta - \eta\,u_i` be the shared parameters after a step
driven by task ``i``'s loss alone, with learning rate :math:`\eta` and
per-unit-learning-rate update direction :math:`u_i`. To first order

.. math::

    L_j(\theta') \approx L_j(\theta) - \eta \langle g_j, u_i \rangle
    \quad\Rightarrow\quad
    z_{i \to j} = \frac{1 - L_j(\theta')/L_j(\theta)}{\eta}
                 \approx \frac{\langle u_i, g_j \rangle}{L_j}.

So ``affinity[i, j]`` is the first-order relative decrease of target ``j``'s
loss per unit learning rate caused by a step on source ``i``'s loss alone.
Positive: ``i`` helps ``j``; negative: ``i`` interferes with ``j``.

SGD with momentum (paper eq. 4-5), PyTorch convention
-----------------------------------------------------
``torch.optim.SGD`` keeps a buffer in *gradient* units,
:math:`b_k = \mu b_{k-1} + g_k` and :math:`\theta_{k+1} = \theta_k - \eta b_k`
(the first step sets :math:`b_1 = g_1`). A step on task ``i`` alone is therefore
:math:`\theta' = \theta - \eta(\mu b_{k-1} + g_i)`, i.e.
:math:`u_i = g_i + \mu b_{k-1}` and

.. math::

    z^k_{i \to j} = \frac{\langle g_i + \mu b_{k-1},\, g_j \rangle}{L_j}.

The paper (eq. 4) uses the Keras convention, a velocity in *parameter* units,
:math:`v_k = \beta v_{k-1} - \eta g_k`, :math:`\theta_{k+1} = \theta_k + v_k`,
so :math:`\Delta\theta_{s|t_i} = \beta v_{k-1} - \eta g_i`. With a constant
learning rate :math:`v = -\eta b`, and the two describe the same step. Eq. 5 as
printed, :math:`\langle g_j, \eta g_i - \beta v_{k-1} \rangle / L_j`, is the
same quantity multiplied by :math:`\eta`; like the public ETAP code we divide by
the learning rate, so affinities do not change scale with it.

Adam option
-----------
Adam's update is not linear in the gradient: the step task ``i`` alone would
cause is :math:`u_i = \hat m_i / (\sqrt{\hat v_i} + \epsilon)` with
:math:`m_i = \beta_1 m + (1-\beta_1) g_i`, :math:`v_i = \beta_2 v + (1-\beta_2) g_i^2`
and bias corrections for step ``k + 1`` (see :func:`adam_task_updates`). The
affinity then measures the effect of each task's *actual* Adam step; it is no
longer a scaled gradient inner product, the per-coordinate normalisation weighs
coordinates by the shared second-moment estimate, and a task's update is not the
sum of separate "gradient" and "momentum" parts.

Averaging (eq. 6) and schedule
------------------------------
:class:`AffinityTracker` averages the per-step matrices over the tracked steps
(eq. 6). Tracking every ``k``-th step (``every=k``) averages a systematic
subsample of the same steps, an estimate of the same mean at ``1/k`` of the extra
cost. Eq. 7 group scores come from
:func:`negtransfer.affinity.scores.group_affinity_scores`.

Cost
----
All per-task gradients come from ONE batched backward pass
(``torch.autograd.grad(..., is_grads_batched=True)`` over the rows of the
identity), and their sum is the ordinary training gradient, so a tracked step
needs no second backward. See ``benchmarks/affinity_step_cost.py``.

Modules
-------
The pieces live in their own modules and are re-exported here:
:mod:`~negtransfer.affinity.gradients` (per-task gradients),
:mod:`~negtransfer.affinity.updates` (per-task update directions, with the
optimiser arithmetic of :mod:`negtransfer.train.update_rules`),
:mod:`~negtransfer.affinity.lookahead` (TAG's lookahead affinity); this module
holds the per-step affinity (eq. 4-5) and :class:`AffinityTracker`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from negtransfer.affinity.gradients import (
    flatten_parameter_vector,
    flatten_task_gradients,
    parameter_shapes,
    per_task_and_summed_gradients,
    per_task_gradients,
)
from negtransfer.affinity.lookahead import tag_lookahead_affinity
from negtransfer.affinity.updates import (
    OPTIMIZER_KINDS,
    adam_task_updates,
    optimizer_task_updates,
    sgd_task_updates,
)
from negtransfer.train.gradients import as_loss_tensor

__all__ = [
    "AffinityTracker",
    "adam_task_updates",
    "flatten_task_gradients",
    "optimizer_task_updates",
    "per_task_and_summed_gradients",
    "per_task_gradients",
    "sgd_task_updates",
    "step_affinity",
    "step_affinity_from_updates",
    "tag_lookahead_affinity",
]

_AVERAGES = ("steps", "epochs")


# ----------------------------------------------------------------------------
# Per-step affinity (eq. 4-5)
# ----------------------------------------------------------------------------


def step_affinity(
    grads,
    task_losses,
    lr: float | None = None,
    *,
    velocity=None,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    params=None,
    convention: str = "torch",
) -> Tensor:
    """Affinity of one SGD(+momentum) step, paper eq. 4-5 (divided by the learning rate).

    ``A[i, j] = <g_i + c, g_j> / L_j`` with ``c = momentum * velocity + weight_decay * params``
    (PyTorch convention), i.e. the first-order relative decrease of target
    ``j``'s loss per unit learning rate caused by the step
    ``theta' = theta - lr * (g_i + c)`` that SGD would take on source ``i``'s loss
    alone. Rows are sources, columns are targets.

    Parameters
    ----------
    grads : Tensor (T, P) or list of (T, *shape) tensors
        Per-task gradients of the shared parameters (:func:`per_task_gradients`).
    task_losses : Tensor (T,)
        Per-task losses at the current parameters. A zero loss gives a non-finite
        column (the relative decrease is undefined); :class:`AffinityTracker`
        excludes such tasks.
    lr : float, optional
        Learning rate; only needed with ``convention="keras"``, where the velocity
        carries it. In the PyTorch convention it cancels out.
    velocity : Tensor (P,) or list of per-parameter tensors (None = zeros), optional
        The momentum state *before* this step. ``convention="torch"``: the
        ``momentum_buffer`` of ``torch.optim.SGD`` (gradient units,
        ``b_k = momentum * b_{k-1} + g_k``; ``None`` on the first step).
        ``convention="keras"``: the paper's ``v`` (parameter units,
        ``v_k = momentum * v_{k-1} - lr * g_k``).
    momentum : float
        Momentum coefficient (the paper's beta). 0 gives eq. 4 without momentum.
    weight_decay : float
        Coupled L2 weight decay as in ``torch.optim.SGD`` (adds ``weight_decay *
        theta`` to every task's update); needs ``params``.
    params : Tensor (P,) or list of per-parameter tensors, optional
        Current shared parameters (only for ``weight_decay``).
    convention : {"torch", "keras"}

    Returns
    -------
    Tensor (T, T)
        ``A[i, j]`` = affinity of source ``i`` onto target ``j`` at this step.

    Notes
    -----
    This covers SGD without dampening or Nesterov. For those, and for Adam, build
    the per-task updates with :func:`sgd_task_updates` / :func:`adam_task_updates`
    and call :func:`step_affinity_from_updates`.
    """
    G = flatten_task_gradients(grads)
    shapes = parameter_shapes(grads)
    L = as_loss_tensor(task_losses).detach().reshape(-1).to(G.dtype)
    if L.numel() != G.shape[0]:
        raise ValueError(f"{L.numel()} task losses but gradients for {G.shape[0]} tasks")
    common = None
    v = flatten_parameter_vector(velocity, shapes, G, "velocity")
    if v is not None and momentum:
        if convention == "torch":
            common = momentum * v
        elif convention == "keras":
            if lr is None or not lr > 0:
                raise ValueError("convention='keras' needs the learning rate lr > 0 (the velocity is in parameter units)")
            common = (-momentum / lr) * v
        else:
            raise ValueError(f"convention must be 'torch' or 'keras'; got {convention!r}")
    elif convention not in ("torch", "keras"):
        raise ValueError(f"convention must be 'torch' or 'keras'; got {convention!r}")
    if weight_decay:
        th = flatten_parameter_vector(params, shapes, G, "params")
        if th is None:
            raise ValueError("weight_decay needs the current shared parameters: pass params=")
        common = weight_decay * th if common is None else common + weight_decay * th
    inner = G @ G.T  # inner[i, j] = <g_i, g_j>
    if common is not None:
        inner = inner + (G @ common)[None, :]  # + <c, g_j> for every source i
    return inner / L[None, :]


def step_affinity_from_updates(grads, task_losses, updates) -> Tensor:
    """Affinity for arbitrary per-task update directions: ``A[i, j] = <u_i, g_j> / L_j``.

    Parameters
    ----------
    grads : Tensor (T, P) or list of (T, *shape) tensors
        Per-task gradients of the shared parameters.
    task_losses : Tensor (T,)
    updates : Tensor (T, P) or list of (T, *shape) tensors
        Row ``i`` is the step the optimizer would take on source ``i``'s loss
        alone, *per unit learning rate* and with the descent sign:
        ``theta' = theta - lr * updates[i]`` (see :func:`sgd_task_updates`,
        :func:`adam_task_updates`, :func:`optimizer_task_updates`).

    Returns
    -------
    Tensor (T, T)
        ``A[i, j]`` = first-order relative decrease of target ``j``'s loss per unit
        learning rate caused by source ``i``'s update.
    """
    G = flatten_task_gradients(grads)
    U = flatten_task_gradients(updates).to(G.dtype)
    if U.shape != G.shape:
        raise ValueError(f"updates have shape {tuple(U.shape)} but gradients {tuple(G.shape)}; they must match")
    L = as_loss_tensor(task_losses).detach().reshape(-1).to(G.dtype)
    if L.numel() != G.shape[0]:
        raise ValueError(f"{L.numel()} task losses but gradients for {G.shape[0]} tasks")
    return (U @ G.T) / L[None, :]


# ----------------------------------------------------------------------------
# The tracker
# ----------------------------------------------------------------------------


def accumulate_grad(p: Tensor, g: Tensor | None) -> None:
    """Add ``g`` into ``p.grad`` as ``backward`` would (None leaves ``.grad`` alone)."""
    if g is None:
        return
    g = g.detach()
    if p.grad is None:
        p.grad = g
    else:
        p.grad.add_(g)


class AffinityTracker:
    """Records the task affinity of every (scheduled) training step and averages it (ETAP eq. 4-7).

    Orientation: ``affinity_matrix[i, j]`` is the affinity of SOURCE task ``i``
    onto TARGET task ``j``, the first-order relative decrease of ``j``'s loss per
    unit learning rate caused by a step on ``i``'s loss alone (see the module
    docstring for the SGD/momentum formula and the Adam option).

    Three ways to use it:

    * negtransfer's trainer calls the low-level :meth:`update` with per-task
      gradients it computed with :func:`per_task_and_summed_gradients`;
    * in your own loop, call :meth:`step` instead of ``loss.backward()``, then
      ``optimizer.step()``;
    * with PyTorch Lightning, :class:`negtransfer.affinity.lightning.AffinityCallback`.

    Parameters
    ----------
    n_tasks : int
        Number of tasks T.
    every : int
        Track every ``every``-th step (steps 0, every, 2*every, ...), a
        systematic subsample that estimates the same average (eq. 6) at
        ``1/every`` of the extra cost. Untracked steps of :meth:`step` run a plain
        backward of the summed loss.
    optimizer_kind : {"auto", "sgd", "adam"}
        How :meth:`step` turns gradients into each task's hypothetical update.
        ``"auto"``: follow the torch optimizer (exact SGD rule with momentum etc.,
        or Adam/AdamW's actual update direction). ``"sgd"``: paper eq. 4 with the
        optimizer's momentum if it is SGD, plain gradient steps otherwise (what
        the public ETAP code does for Adam-trained models). ``"adam"``: Adam's
        actual per-task update; :meth:`update` then needs ``updates=``
        (from :func:`adam_task_updates`).
    keep_trace : bool
        Keep every tracked step's matrix (paper Figure 7): :attr:`trace`.
    task_names : sequence of str, optional
        Labels of the tasks, in matrix order.
    average : {"steps", "epochs"}
        ``"steps"``: mean over all tracked steps (paper eq. 6). ``"epochs"``: mean
        within each epoch, then over epochs (the public ETAP code); epochs are
        delimited by :meth:`end_epoch`. Both are always recorded;
        this only chooses what :attr:`affinity_matrix` returns.
    momentum : bool
        With an SGD optimizer, :meth:`step` includes the momentum term of eq. 4
        (the momentum buffer before the step) in each task's update. Default
        False, the grouping job's default for ETAP (``negtransfer group
        --no-affinity-momentum``, as the public ETAP code for Chemical and CelebA;
        docs/methods/affinity.md), so a tracker in your own loop measures what the
        job measures; True for TAG's full optimiser step (the job's default for
        ``--method tag``). Adam's rule (``optimizer_kind="adam"`` or ``"auto"``
        with Adam) is not affected.

    Notes
    -----
    A task whose loss at a step is exactly zero or non-finite (in negtransfer's
    trainer: no label in the batch, or not in the model's group) has neither a
    row nor a column that step; pass ``present=`` to :meth:`update` to choose
    explicitly. Averages are therefore per entry, over the steps where both
    tasks were present.
    """

    def __init__(
        self,
        n_tasks: int,
        *,
        every: int = 1,
        optimizer_kind: str = "auto",
        keep_trace: bool = False,
        task_names: Sequence[str] | None = None,
        average: str = "steps",
        momentum: bool = False,
    ):
        if int(n_tasks) < 1:
            raise ValueError(f"n_tasks must be >= 1; got {n_tasks}")
        if int(every) < 1:
            raise ValueError(f"every must be a positive step interval; got {every}")
        if optimizer_kind not in OPTIMIZER_KINDS:
            raise ValueError(f"optimizer_kind must be one of {OPTIMIZER_KINDS}; got {optimizer_kind!r}")
        if average not in _AVERAGES:
            raise ValueError(f"average must be one of {_AVERAGES}; got {average!r}")
        if task_names is not None and len(task_names) != int(n_tasks):
            raise ValueError(f"task_names has {len(task_names)} names for {n_tasks} tasks")
        self.n_tasks = int(n_tasks)
        self.every = int(every)
        self.optimizer_kind = optimizer_kind
        self.keep_trace = bool(keep_trace)
        self.task_names = None if task_names is None else [str(t) for t in task_names]
        self.average = average
        self.momentum = bool(momentum)
        self.reset()

    # -- bookkeeping ---------------------------------------------------------

    def reset(self) -> None:
        """Forget every recorded step."""
        T = self.n_tasks
        self._n_seen = 0
        self._n_tracked = 0
        # Statistics live in small float64 numpy arrays (cheap per-step bookkeeping).
        self._sum = np.zeros((T, T))
        self._count = np.zeros((T, T))
        self._epoch_sum = np.zeros((T, T))
        self._epoch_count = np.zeros((T, T))
        self._epoch_means: list[np.ndarray] = []
        self._epochs_closed = 0
        self._epoch_ids: list[int] = []
        self._trace: list[np.ndarray] = []
        self._trace_steps: list[int] = []

    @property
    def is_due(self) -> bool:
        """Whether the next step is a tracked one under the ``every`` schedule."""
        return self._n_seen % self.every == 0

    @property
    def n_steps_seen(self) -> int:
        """Training steps counted so far (tracked or not)."""
        return self._n_seen

    @property
    def n_steps_tracked(self) -> int:
        """Steps whose affinity was recorded."""
        return self._n_tracked

    def skip(self) -> None:
        """Count an untracked training step (keeps the ``every`` schedule in phase)."""
        self._n_seen += 1

    def end_epoch(self) -> None:
        """Close the current epoch (for ``average="epochs"`` and :attr:`epoch_affinity_matrices`)."""
        self._epochs_closed += 1
        if self._epoch_count.any():
            with np.errstate(invalid="ignore", divide="ignore"):
                self._epoch_means.append(self._epoch_sum / self._epoch_count)  # NaN where never present
            self._epoch_ids.append(self._epochs_closed)
        self._epoch_sum = np.zeros_like(self._epoch_sum)
        self._epoch_count = np.zeros_like(self._epoch_count)

    # -- recording -----------------------------------------------------------

    def record(self, affinity: Tensor, present=None, task_losses=None) -> None:
        """Record one precomputed step matrix (T, T) and count the step.

        Use it for affinities computed elsewhere (e.g. :func:`tag_lookahead_affinity`).
        ``present`` (bool (T,)) drops absent tasks' rows and columns; if omitted
        and ``task_losses`` is given, tasks with a zero or non-finite loss are absent.
        Non-finite entries are never averaged in.
        """
        A = np.array(torch.as_tensor(affinity).detach().to(device="cpu", dtype=torch.float64).numpy())
        T = self.n_tasks
        if A.shape != (T, T):
            raise ValueError(f"step affinity must have shape ({T}, {T}); got {A.shape}")
        if present is None and task_losses is not None:
            L = as_loss_tensor(task_losses).detach().reshape(-1).to("cpu", torch.float64).numpy()
            present = np.isfinite(L) & (L != 0)
        valid = np.isfinite(A)
        if present is not None:
            pres = np.asarray(present.detach().cpu() if isinstance(present, Tensor) else present, dtype=bool).reshape(-1)
            if pres.size != T:
                raise ValueError(f"present must have {T} entries; got {pres.size}")
            valid &= pres[:, None] & pres[None, :]
        A[~valid] = 0.0
        self._sum += A
        self._count += valid
        self._epoch_sum += A
        self._epoch_count += valid
        if self.keep_trace:
            A_nan = A.copy()
            A_nan[~valid] = np.nan
            self._trace.append(A_nan)
            self._trace_steps.append(self._n_seen)
        self._n_tracked += 1
        self._n_seen += 1

    def update(
        self,
        grads,
        task_losses,
        lr: float | None = None,
        *,
        velocity=None,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        params=None,
        updates=None,
        present=None,
    ) -> Tensor | None:
        """Record this step's affinity from per-task gradients (the trainer's entry point).

        Counts one training step. On a step the schedule does not track (see
        :attr:`is_due`) nothing is computed and ``None`` is returned; the caller
        should then check :attr:`is_due` first and call :meth:`skip` instead, to
        avoid computing per-task gradients for nothing.

        Parameters
        ----------
        grads : Tensor (T, P) or list of (T, *shape) tensors
            Per-task gradients of the shared parameters.
        task_losses : Tensor (T,)
        lr, velocity, momentum, weight_decay, params :
            SGD state *before* this step, as in :func:`step_affinity` (PyTorch
            convention: ``velocity`` is the momentum buffer).
        updates : Tensor (T, P) or list, optional
            Per-task update directions per unit learning rate; overrides the SGD
            formula (required for ``optimizer_kind="adam"``: use :func:`adam_task_updates`).
        present : bool (T,), optional
            Tasks present at this step (default: non-zero finite loss).

        Returns
        -------
        Tensor (T, T) or None
            The step's matrix, or None on an untracked step.
        """
        if not self.is_due:
            self.skip()
            return None
        if updates is None and self.optimizer_kind == "adam":
            raise ValueError(
                "optimizer_kind='adam' scores each task's actual Adam step: pass updates= "
                "(per-task update directions from adam_task_updates)"
            )
        if updates is not None:
            A = step_affinity_from_updates(grads, task_losses, updates)
        else:
            A = step_affinity(
                grads, task_losses, lr, velocity=velocity, momentum=momentum,
                weight_decay=weight_decay, params=params,
            )
        self.record(A, present=present, task_losses=task_losses if present is None else None)
        return A

    def step(
        self,
        task_losses,
        shared_params: Sequence[Tensor],
        optimizer: torch.optim.Optimizer,
        other_params: Sequence[Tensor] | None = None,
        *,
        retain_graph: bool = False,
    ) -> Tensor | None:
        """Backward pass for a user's own loop: replaces ``task_losses.sum().backward()``.

        On a tracked step, one batched backward pass gives the per-task gradients
        of the shared parameters; the affinity is computed from them and the
        optimizer's current state (read here, before ``optimizer.step()``); their
        sum is accumulated into ``.grad`` of every parameter, exactly as
        ``task_losses.sum().backward()`` would. On an untracked step it is a plain
        backward of the summed loss. Then call ``optimizer.step()`` as usual::

            tracker = AffinityTracker(n_tasks=3)
            for x, y in loader:
                opt.zero_grad()
                task_losses = model.task_losses(x, y)          # tensor (T,)
                tracker.step(task_losses, model.encoder.parameters(), opt)
                opt.step()

        Parameters
        ----------
        task_losses : Tensor (T,) or sequence of T scalar tensors
            The training loss is their sum (put any task weights into them).
        shared_params : iterable of Tensor
            Shared encoder parameters (affinity is measured on these only).
        optimizer : torch.optim.Optimizer
            Optimizer that will take the step (lr, momentum buffers or Adam
            state are read from it; see ``optimizer_kind``).
        other_params : iterable of Tensor, optional
            Other parameters to receive the summed gradient (task heads).
            Default: every parameter of ``optimizer`` that requires grad and is
            not shared. Parameters outside both get no gradient.
        retain_graph : bool
            Keep the graph after the backward pass.

        Returns
        -------
        Tensor (T, T) or None
            The step's affinity, or None on an untracked step.
        """
        losses = as_loss_tensor(task_losses).reshape(-1)
        if losses.numel() != self.n_tasks:
            raise ValueError(f"got {losses.numel()} task losses but the tracker has n_tasks={self.n_tasks}")
        if not losses.requires_grad:
            raise ValueError("task_losses carry no autograd graph (detached, taken with .item(), or computed under "
                             "torch.no_grad()); pass the per-task losses as computed from the model's outputs")
        shared = list(shared_params)
        if not shared:
            raise ValueError("shared_params is empty: pass the shared encoder's parameters")
        not_tensors = sorted({type(p).__name__ for p in shared if not isinstance(p, Tensor)})
        if not_tensors:
            raise TypeError(f"shared_params must be the shared encoder's parameters (model.encoder.parameters()), "
                            f"got {', '.join(not_tensors)}")
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"optimizer must be the torch.optim.Optimizer that takes the step (its learning rate "
                            f"and momentum or Adam state are read), got {type(optimizer).__name__}")
        if other_params is None:
            ids = {id(p) for p in shared}
            other = [p for g in optimizer.param_groups for p in g["params"] if p.requires_grad and id(p) not in ids]
        else:
            other = [p for p in other_params if p.requires_grad]
        if not self.is_due:
            grads = torch.autograd.grad(losses.sum(), shared + other, retain_graph=retain_graph, allow_unused=True)
            for p, g in zip(shared + other, grads, strict=True):
                accumulate_grad(p, g)
            self.skip()
            return None
        per_task, sum_shared, sum_other = per_task_and_summed_gradients(
            losses, shared, other, retain_graph=retain_graph
        )
        updates, _ = optimizer_task_updates(optimizer, shared, per_task, kind=self.optimizer_kind,
                                            include_momentum=self.momentum)
        A = (updates @ flatten_task_gradients(per_task).T) / losses.detach()[None, :]
        self.record(A, task_losses=losses)
        for p, total in zip(shared + other, [*sum_shared, *sum_other], strict=True):
            accumulate_grad(p, total)
        return A

    # -- results -------------------------------------------------------------

    @property
    def affinity_matrix(self) -> np.ndarray:
        """Averaged affinity (T, T), ``[i, j]`` = source ``i`` onto target ``j`` (eq. 6).

        Mean over tracked steps (``average="steps"``) or mean of per-epoch means
        (``average="epochs"``, the open epoch counted as one). NaN where a pair
        was never present together.
        """
        if self.average == "epochs":
            means = list(self._epoch_means)
            with np.errstate(invalid="ignore", divide="ignore"):
                if self._epoch_count.any():
                    means.append(self._epoch_sum / self._epoch_count)
                if not means:
                    return np.full((self.n_tasks, self.n_tasks), np.nan)
                stacked = np.stack(means)
                ok = np.isfinite(stacked)
                n = ok.sum(0)
                total = np.where(ok, stacked, 0.0).sum(0)
                return np.where(n > 0, total / np.maximum(n, 1), np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._sum / self._count

    @property
    def epoch_affinity_matrices(self) -> np.ndarray:
        """Per-epoch means (n_closed_epochs, T, T), one per :meth:`end_epoch` call with tracked steps."""
        if not self._epoch_means:
            return np.zeros((0, self.n_tasks, self.n_tasks))
        return np.stack(self._epoch_means)

    @property
    def tracked_epochs(self) -> list[int]:
        """The 1-based epoch (count of :meth:`end_epoch` calls) of each of :attr:`epoch_affinity_matrices`."""
        return list(self._epoch_ids)

    @property
    def trace(self) -> list[np.ndarray]:
        """Per-step matrices of the tracked steps (needs ``keep_trace=True``), NaN where absent.

        For the paper's Figure 7 plot ``np.stack(tracker.trace)[:, i, :]`` holds
        source ``i``'s affinity onto every target over time; x-axis: :attr:`trace_steps`.
        """
        if not self.keep_trace:
            raise AttributeError("this tracker keeps no trace; create it with keep_trace=True")
        return [t.copy() for t in self._trace]

    @property
    def trace_steps(self) -> list[int]:
        """Training-step index (0-based, counting untracked steps) of each :attr:`trace` entry."""
        return list(self._trace_steps)

    def group_scores(self, groups) -> np.ndarray:
        """Eq. 7 scores ``Z[g, t]`` = mean affinity of the other members of group ``g`` onto ``t``.

        Thin wrapper of :func:`negtransfer.affinity.scores.group_affinity_scores`
        on :attr:`affinity_matrix`; ``groups`` is a boolean (n_groups, T) matrix.
        """
        from negtransfer.affinity.scores import group_affinity_scores

        return group_affinity_scores(self.affinity_matrix, groups)

    # -- persistence ---------------------------------------------------------

    def state_dict(self) -> dict:
        """Everything needed to resume: counters, sums, epoch means, trace (tensors and plain values,
        loadable with ``torch.load(..., weights_only=True)``)."""
        T = self.n_tasks
        return {
            "version": 1,
            "n_tasks": T,
            "every": self.every,
            "optimizer_kind": self.optimizer_kind,
            "average": self.average,
            "keep_trace": self.keep_trace,
            "task_names": None if self.task_names is None else list(self.task_names),
            "n_steps_seen": self._n_seen,
            "n_steps_tracked": self._n_tracked,
            "sum": torch.tensor(self._sum),
            "count": torch.tensor(self._count),
            "epoch_sum": torch.tensor(self._epoch_sum),
            "epoch_count": torch.tensor(self._epoch_count),
            "epoch_means": torch.tensor(np.stack(self._epoch_means) if self._epoch_means else np.zeros((0, T, T))),
            "trace": torch.tensor(np.stack(self._trace) if self._trace else np.zeros((0, T, T))),
            "trace_steps": torch.tensor(self._trace_steps, dtype=torch.long),
            "epochs_closed": self._epochs_closed,
            "epoch_ids": torch.tensor(self._epoch_ids, dtype=torch.long),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict`. The schedule (``every``) and options of this
        tracker are kept; the recorded statistics and the step counter are restored."""
        if int(state.get("n_tasks", -1)) != self.n_tasks:
            raise ValueError(
                f"state is for {state.get('n_tasks')} tasks but this tracker has n_tasks={self.n_tasks}"
            )
        self._n_seen = int(state["n_steps_seen"])
        self._n_tracked = int(state["n_steps_tracked"])
        def arr(x):
            return np.array(x.detach().cpu().numpy() if isinstance(x, Tensor) else x, dtype=np.float64)

        self._sum = arr(state["sum"])
        self._count = arr(state["count"])
        self._epoch_sum = arr(state["epoch_sum"])
        self._epoch_count = arr(state["epoch_count"])
        self._epoch_means = list(arr(state["epoch_means"]))
        self._trace = list(arr(state["trace"]))
        self._trace_steps = [int(s) for s in state["trace_steps"]]
        self._epochs_closed = int(state.get("epochs_closed", len(self._epoch_means)))
        self._epoch_ids = [int(e) for e in state.get("epoch_ids", range(1, len(self._epoch_means) + 1))]
        if self.task_names is None and state.get("task_names") is not None:
            self.task_names = list(state["task_names"])

    def __repr__(self) -> str:
        return (
            f"AffinityTracker(n_tasks={self.n_tasks}, every={self.every}, optimizer_kind={self.optimizer_kind!r}, "
            f"steps_tracked={self._n_tracked}/{self._n_seen})"
        )
