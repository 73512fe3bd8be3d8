"""Task-affinity tracking (ETAP eq. 4-7) as a PyTorch Lightning callback.

Importing this module imports PyTorch Lightning (``lightning.pytorch``, or the
standalone ``pytorch_lightning``); importing :mod:`negtransfer` does not. Install
it with ``pip install 'negtransfer[lightning]'``.

Contract with the LightningModule
---------------------------------
1. It exposes the shared encoder's parameters through a method
   ``shared_parameters()`` (another method name, or a callable
   ``module -> iterable of parameters``, can be passed as ``shared_parameters=``).
2. In ``training_step`` it stores the per-task losses of the batch, a tensor of
   shape ``(T,)`` still attached to the graph, as ``self.task_losses`` (name:
   ``task_losses_attr=``), and returns the training loss, normally
   ``self.task_losses.sum()`` (a tensor, or a dict with ``"loss"``).
3. One backward pass per training batch (automatic optimization, or manual
   optimization with one ``self.manual_backward(loss)`` per batch), and the
   shared parameters are optimised by one of ``trainer.optimizers``
   (``torch.optim.SGD``, ``Adam`` or ``AdamW`` for ``optimizer_kind="auto"``).

Example::

    class Net(L.LightningModule):
        def shared_parameters(self):
            return self.encoder.parameters()

        def training_step(self, batch, batch_idx):
            x, y = batch
            self.task_losses = per_task_loss(self(x), y)   # tensor (T,)
            return self.task_losses.sum()

    cb = AffinityCallback(n_tasks=T)
    L.Trainer(callbacks=[cb]).fit(Net(), loader)
    cb.affinity_matrix            # (T, T), [i, j] = source i onto target j

How it hooks in
---------------
The work happens in ``on_before_backward``, which Lightning calls with the exact
tensor it is about to back-propagate (already divided for gradient accumulation
and scaled for AMP), before ``optimizer.step()`` changes the optimizer state.

* ``single_backward=True`` (default, single-device training): ONE batched
  backward pass differentiates the T task losses and that loss tensor
  (T + 1 cotangent rows) w.r.t. every trainable parameter of the module. Rows
  1..T give the per-task gradients of the shared parameters; row T + 1 is the
  exact training gradient, which the callback accumulates into ``.grad``. It
  then makes Lightning's own backward call for this batch a no-op (by shadowing
  ``LightningModule.backward`` on the instance for that one call). So a tracked
  step costs one batched backward and no plain one. Do not use it if your
  module overrides ``backward``.
* ``single_backward=False`` (and automatically under multi-process strategies
  such as DDP, whose gradient synchronisation lives in the normal backward):
  the batched pass covers the shared parameters only, keeps the graph, and
  Lightning then runs its normal backward: one batched plus one plain pass.
  Under DDP each rank tracks the batches it sees.

Untracked steps (``every > 1``) cost nothing extra. Either way the affinity is
the one :meth:`negtransfer.affinity.tracker.AffinityTracker.step` records for
the same training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch

try:  # the unified package first, then the standalone one
    import lightning.pytorch as _pl
except ImportError:  # pragma: no cover - depends on the environment
    try:
        import pytorch_lightning as _pl  # type: ignore[no-redef]  # the same API under its older name
    except ImportError as exc:
        raise ImportError(
            "negtransfer.affinity.lightning needs PyTorch Lightning, which is not installed. "
            "Install it with `pip install 'negtransfer[lightning]'` (or `pip install lightning`). "
            "Without Lightning, use negtransfer.affinity.tracker.AffinityTracker.step in your own loop."
        ) from exc

from negtransfer.affinity.gradients import per_task_gradients
from negtransfer.affinity.tracker import AffinityTracker, accumulate_grad, step_affinity_from_updates
from negtransfer.affinity.updates import optimizer_task_updates
from negtransfer.train.gradients import as_loss_tensor, batched_vjp

__all__ = ["AffinityCallback"]


class AffinityCallback(_pl.Callback):
    """Lightning callback recording ETAP task affinities during ``trainer.fit`` (paper eq. 4-7).

    Parameters
    ----------
    n_tasks : int
        Number of tasks T (length of the module's ``task_losses``).
    every, optimizer_kind, keep_trace, task_names, average, momentum :
        As for :class:`~negtransfer.affinity.tracker.AffinityTracker`
        (``every`` counts training batches; epochs end at ``on_train_epoch_end``;
        ``momentum=False``, the grouping job's default for ETAP, leaves SGD's
        momentum term out of eq. 4).
    send_to_loggers : bool
        At the end of every training epoch, send the affinity averaged so far to
        the trainer's loggers (``trainer.loggers``: TensorBoard, CSV, W&B, ...),
        one metric per ordered pair named ``affinity/SOURCE->TARGET`` (task names,
        or indices without ``task_names``), at the trainer's global step.
    shared_parameters : str or callable
        Name of the module method returning the shared parameters, or a callable
        ``module -> iterable of parameters``.
    task_losses_attr : str
        Module attribute holding the per-task losses of the current batch.
    single_backward : bool
        Reuse the batched pass as the training backward (see the module docstring).

    Attributes
    ----------
    tracker : AffinityTracker
        The underlying tracker (its state is saved in Lightning checkpoints).
    """

    def __init__(
        self,
        n_tasks: int,
        *,
        every: int = 1,
        optimizer_kind: str = "auto",
        keep_trace: bool = False,
        task_names=None,
        average: str = "steps",
        momentum: bool = False,
        shared_parameters: str | Callable[[Any], Iterable[torch.Tensor]] = "shared_parameters",
        task_losses_attr: str = "task_losses",
        single_backward: bool = True,
        send_to_loggers: bool = True,
    ):
        super().__init__()
        self.tracker = AffinityTracker(
            n_tasks, every=every, optimizer_kind=optimizer_kind, keep_trace=keep_trace,
            task_names=task_names, average=average, momentum=momentum,
        )
        self.send_to_loggers = bool(send_to_loggers)  # not `log`: Lightning sets a callback's `log` to the module's
        self.shared_parameters = shared_parameters
        self.task_losses_attr = task_losses_attr
        self.single_backward = bool(single_backward)
        self._last_losses = None

    # -- results (delegated) -------------------------------------------------

    @property
    def affinity_matrix(self):
        """Averaged affinity (T, T) numpy array; ``[i, j]`` = source ``i`` onto target ``j``."""
        return self.tracker.affinity_matrix

    @property
    def n_steps_tracked(self) -> int:
        return self.tracker.n_steps_tracked

    @property
    def trace(self):
        return self.tracker.trace

    def group_scores(self, groups):
        """Eq. 7 group scores (see :meth:`AffinityTracker.group_scores`)."""
        return self.tracker.group_scores(groups)

    # -- helpers -------------------------------------------------------------

    def _shared(self, pl_module) -> list[torch.Tensor]:
        spec = self.shared_parameters
        if callable(spec):
            params = spec(pl_module)
        else:
            method = getattr(pl_module, spec, None)
            if method is None:
                raise AttributeError(
                    f"AffinityCallback needs {type(pl_module).__name__}.{spec}() returning the shared encoder's "
                    "parameters (or pass shared_parameters=<callable(module)> to the callback)"
                )
            params = method() if callable(method) else method
        params = list(params)
        if not params:
            raise ValueError("the module's shared parameters are empty; AffinityCallback needs the shared encoder's")
        return params

    def _task_losses(self, pl_module) -> torch.Tensor:
        losses = getattr(pl_module, self.task_losses_attr, None)
        if losses is None:
            raise AttributeError(
                f"AffinityCallback: {type(pl_module).__name__}.training_step must store the per-task losses "
                f"(tensor of shape (T,), with their graph) as self.{self.task_losses_attr}"
            )
        if losses is self._last_losses:
            raise RuntimeError(
                f"AffinityCallback: self.{self.task_losses_attr} was not updated in this training_step "
                "(it still holds the previous batch's losses)"
            )
        losses = as_loss_tensor(losses).reshape(-1)
        if losses.numel() != self.tracker.n_tasks:
            raise ValueError(
                f"self.{self.task_losses_attr} has {losses.numel()} entries but the callback has "
                f"n_tasks={self.tracker.n_tasks}"
            )
        if not losses.requires_grad:
            raise ValueError(
                f"self.{self.task_losses_attr} is detached from the graph; store the losses themselves, "
                "not .detach()/.item() copies"
            )
        return losses

    @staticmethod
    def _optimizer_for(trainer, shared) -> torch.optim.Optimizer:
        first = id(shared[0])
        for opt in trainer.optimizers:
            opt = getattr(opt, "optimizer", opt)  # unwrap a LightningOptimizer
            if any(id(p) == first for g in opt.param_groups for p in g["params"]):
                return opt
        raise ValueError("AffinityCallback: no optimizer of the trainer holds the shared parameters")

    @staticmethod
    def _restore_backward(pl_module) -> None:
        pl_module.__dict__.pop("backward", None)

    # -- hooks ---------------------------------------------------------------

    def on_before_backward(self, trainer, pl_module, loss: torch.Tensor) -> None:
        tracker = self.tracker
        if not tracker.is_due:
            tracker.skip()
            return
        losses = self._task_losses(pl_module)
        self._last_losses = getattr(pl_module, self.task_losses_attr)
        shared = self._shared(pl_module)
        optimizer = self._optimizer_for(trainer, shared)
        T = tracker.n_tasks
        single = self.single_backward and int(getattr(trainer, "world_size", 1)) == 1
        if single:
            ids = {id(p) for p in shared}
            others = [p for p in pl_module.parameters() if p.requires_grad and id(p) not in ids]
            params = shared + others
            outputs = torch.cat([losses, loss.reshape(1).to(losses.dtype)])
            basis = torch.eye(T + 1, dtype=outputs.dtype, device=outputs.device)
            grads = batched_vjp(outputs, basis, params, retain_graph=False)
            per_task = [
                torch.zeros((T,) + tuple(p.shape), dtype=p.dtype, device=p.device) if g is None else g[:T]
                for g, p in zip(grads[: len(shared)], shared, strict=True)
            ]
        else:
            per_task = per_task_gradients(losses, shared, retain_graph=True)
        updates, _ = optimizer_task_updates(optimizer, shared, per_task, kind=tracker.optimizer_kind,
                                            include_momentum=tracker.momentum)
        A = step_affinity_from_updates(per_task, losses.detach(), updates)
        tracker.record(A, task_losses=losses)
        if single:
            for p, g in zip(params, grads, strict=True):
                accumulate_grad(p, None if g is None else g[T])

            def _backward_done(*args, **kwargs) -> None:  # this batch's gradient is already in .grad
                AffinityCallback._restore_backward(pl_module)

            pl_module.backward = _backward_done

    def on_after_backward(self, trainer, pl_module) -> None:
        self._restore_backward(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._restore_backward(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.tracker.end_epoch()
        if self.send_to_loggers:
            self.log_affinity(trainer)

    def affinity_metrics(self) -> dict[str, float]:
        """The affinity averaged so far as ``{"affinity/SOURCE->TARGET": value}`` (off-diagonal, finite entries)."""
        if self.tracker.n_steps_tracked == 0:
            return {}
        A = self.tracker.affinity_matrix
        names = self.tracker.task_names or [str(k) for k in range(self.tracker.n_tasks)]
        return {f"affinity/{names[i]}->{names[j]}": float(A[i, j])
                for i in range(len(names)) for j in range(len(names)) if i != j and math.isfinite(float(A[i, j]))}

    def log_affinity(self, trainer) -> None:
        """Send :meth:`affinity_metrics` to every logger of ``trainer`` (at its global step)."""
        metrics = self.affinity_metrics()
        if not metrics:
            return
        for logger in getattr(trainer, "loggers", None) or []:
            logger.log_metrics(metrics, step=int(getattr(trainer, "global_step", 0)))

    # -- checkpointing -------------------------------------------------------

    def state_dict(self) -> dict:
        return self.tracker.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.tracker.load_state_dict(state_dict)
