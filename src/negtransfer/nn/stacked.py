"""K models of one factory trained as one vectorised stack (``torch.func``).

:class:`StackedModel` builds K models from a factory
(:mod:`negtransfer.nn.contract`), each from its own seed, stacks their
parameters along a leading model axis (``torch.func.stack_module_state``'s
layout) and evaluates all K with one ``vmap`` over ``functional_call``: every
operation of the network becomes one batched operation over the stack. It
exposes what the stacked trainer (:mod:`negtransfer.train.batched`) uses of
:class:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP`, the hand-fused
special case of the built-in MLP: ``n_models``, ``shared_parameters()`` (the
encoder's), ``head_parameters()``, ``keep_models(keep)`` and ``forward`` on a
batch shared by the stack ``(B, *input_shape)`` or one batch per model
``(K, B, *input_shape)``, returning ``(K, B, n_outputs)``.

What stacks. A network stacks when ``vmap`` can run it and each model's slice
of the stacked output equals that model run alone; :func:`stacking_plan`
checks this once on a random batch. Three things prevent it:

* buffers (e.g. batch-norm running statistics), which a training step updates
  in place outside the parameters;
* random operations in training mode (dropout): a stacked draw would depend on
  the stack;
* operations ``vmap`` has no batching rule for (e.g. ``nn.LSTM``'s fused
  kernel) or data-dependent control flow (``if x.sum() > 0``).

:func:`stacking_plan` also refuses a network whose numbers would depend on
the stack in the last bits (``nn.Conv2d`` becomes a grouped convolution whose
kernel changes with the number of groups; the built-in ``cnn`` multiplies
unfolded patches instead). Such a model is built with ``stackable=False`` and trained one model at a time
(stacks of one, through ``functional_call`` without ``vmap``); the trainer
warns with :class:`UnstackableModelWarning`. The built-in encoders
(:mod:`negtransfer.nn.encoders`) all stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from negtransfer.nn.contract import MultiHeadModel, build_model
from negtransfer.nn.flat import FlatParameters

__all__ = ["EVALUATION_ROWS", "StackedModel", "StackingPlan", "UnstackableModelWarning", "stacking_plan"]

#: Rows per forward pass when a stack is evaluated without gradients (validation and test rows), to bound
#: the activations' memory; a multiple of the trainer's row block, the same for every stack size.
EVALUATION_ROWS = 256


class UnstackableModelWarning(UserWarning):
    """A model that cannot be stacked is trained one model at a time (same numbers, no vectorisation)."""


class StackedModel(FlatParameters, nn.Module):
    """K models of one factory, parameters stacked along a leading model axis.

    Parameters
    ----------
    make : callable
        The factory ``make(input_shape, outputs) -> (encoder, heads)``.
    input_shape : sequence of int
        One example's shape.
    outputs : sequence of int
        Output width of every task (the heads' outputs are concatenated in task order).
    seeds : sequence of int
        One initialisation seed per model; K = len(seeds). Model ``k`` is
        ``build_model(make, input_shape, outputs, seeds[k])`` whatever its partners.
    stackable : bool
        False for a model that cannot be vectorised (:func:`stacking_plan`):
        then K must be 1 and the forward pass runs the model itself.
    pair_single : bool
        Run a stack of one model as a pair (:attr:`StackingPlan.pair_single`).
    """

    def __init__(self, make: Callable, input_shape: Sequence[int], outputs: Sequence[int], seeds: Sequence[int],
                 *, stackable: bool = True, pair_single: bool = False):
        super().__init__()
        if len(seeds) == 0:
            raise ValueError("a stack needs at least one model seed")
        if not stackable and len(seeds) != 1:
            raise ValueError(f"a model that cannot be stacked trains one at a time; got {len(seeds)} seeds")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.outputs = tuple(int(o) for o in outputs)
        self.n_outputs = sum(self.outputs)
        self.stackable = stackable
        self.pair_single = pair_single
        models = [build_model(make, self.input_shape, self.outputs, s) for s in seeds]
        self._base = (models[0],)  # the architecture that functional_call runs (a tuple: not a registered module)
        self.parameter_names = [name for name, _ in models[0].named_parameters()]
        self.buffer_names = [name for name, _ in models[0].named_buffers()]
        per_model = [dict(m.named_parameters()) for m in models]
        per_buffer = [dict(m.named_buffers()) for m in models]
        self.stack = nn.ParameterList([nn.Parameter(torch.stack([p[name].detach() for p in per_model]))
                                       for name in self.parameter_names])
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"stacked_buffer_{i}", torch.stack([b[name].detach() for b in per_buffer]))
        self.n_shared = sum(1 for name in self.parameter_names if name.startswith("encoder."))

    @property
    def n_models(self) -> int:
        return self.stack[0].shape[0]

    @property
    def base(self) -> MultiHeadModel:
        """One model of the architecture (its own tensors are never used: ``functional_call`` swaps them)."""
        return self._base[0]

    def stacked_buffers(self) -> list[torch.Tensor]:
        return [getattr(self, f"stacked_buffer_{i}") for i in range(len(self.buffer_names))]

    def shared_parameters(self) -> list[nn.Parameter]:
        """The encoder's stacked parameters (shared by the tasks of a model), heads excluded."""
        return list(self.stack)[: self.n_shared]

    def head_parameters(self) -> list[nn.Parameter]:
        return list(self.stack)[self.n_shared:]

    def train(self, mode: bool = True) -> "StackedModel":
        super().train(mode)
        self.base.train(mode)
        return self

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self.base._apply(fn, *args, **kwargs)  # non-parameter tensors of the architecture follow the device
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs of every model, (K, B, n_outputs).

        ``x`` is (B, *input_shape), shared by all models, or (K, B,
        *input_shape), one batch per model. Without gradients, the rows are
        run :data:`EVALUATION_ROWS` at a time.
        """
        return self.forward_with(list(self.stack), x, update_buffers=True)

    def forward_with(self, parameters: Sequence[torch.Tensor], x: torch.Tensor, *,
                     update_buffers: bool = False) -> torch.Tensor:
        """:meth:`forward` with other stacked parameters (one tensor per parameter, in ``parameters()`` order).

        Their leading size is the number of models evaluated (e.g. TAG's
        lookahead: one moved encoder per source task). A model with buffers
        (one that cannot be stacked) runs each of them with model 0's buffers,
        left unchanged unless ``update_buffers``.
        """
        K = parameters[0].shape[0]
        if x.dim() == len(self.input_shape) + 1:
            x = x.unsqueeze(0).expand(K, *x.shape)
        elif x.dim() != len(self.input_shape) + 2 or x.shape[0] != K:
            raise ValueError(f"expected a batch (B, {self.input_shape}) or (K={K}, B, {self.input_shape}), "
                             f"got {tuple(x.shape)}")
        rows = x.shape[1]
        if not torch.is_grad_enabled() and rows > EVALUATION_ROWS:
            return torch.cat([self._run(parameters, x[:, start:start + EVALUATION_ROWS], update_buffers)
                              for start in range(0, rows, EVALUATION_ROWS)], dim=1)
        return self._run(parameters, x, update_buffers)

    def _run(self, parameters: Sequence[torch.Tensor], x: torch.Tensor, update_buffers: bool) -> torch.Tensor:
        params = dict(zip(self.parameter_names, parameters, strict=True))
        buffers = dict(zip(self.buffer_names, self.stacked_buffers(), strict=True))
        if not self.stackable:  # one model after another, through the model's own forward pass
            outs = []
            for k in range(x.shape[0]):
                own = {n: b[0] if update_buffers and x.shape[0] == 1 else b[0].clone() for n, b in buffers.items()}
                outs.append(functional_call(self.base, ({n: p[k] for n, p in params.items()}, own), (x[k],)))
            return torch.stack(outs)
        x = x.contiguous()  # a shared batch is materialised per model: the same kernels for any stack
        single = self.pair_single and x.shape[0] == 1
        if single:  # an unused copy: the stack's kernels, and a zero cotangent for the copy's parameters
            params = {n: p.expand(2, *p.shape[1:]) for n, p in params.items()}
            buffers = {n: b.expand(2, *b.shape[1:]) for n, b in buffers.items()}
            x = x.expand(2, *x.shape[1:])

        def one_model(p, b, xk):
            return functional_call(self.base, (p, b), (xk,))

        out = vmap(one_model, randomness="error")(params, buffers, x)
        return out[:1] if single else out

    def stacked_parameters(self) -> list[torch.Tensor]:
        """The stacked parameters (K, ...), in ``parameters()`` order."""
        return list(self.stack)

    def _set_stacked_parameters(self, parameters) -> None:
        for i, p in enumerate(parameters):
            self.stack[i] = p

    @torch.no_grad()
    def keep_models(self, keep: torch.Tensor) -> None:
        """Drop models from the stack, keeping the indices in ``keep`` (in order); a flat stack stays flat."""
        self._keep_parameters(keep)
        for i, b in enumerate(self.stacked_buffers()):
            setattr(self, f"stacked_buffer_{i}", b.index_select(0, keep))

    def model_state(self, k: int) -> dict[str, torch.Tensor]:
        """Model ``k``'s parameters and buffers by name (CPU copies), as in its ``state_dict``."""
        names = self.parameter_names + self.buffer_names
        return {n: t[k].detach().cpu().clone() for n, t in zip(names, [*self.stack, *self.stacked_buffers()], strict=True)}

    def unstack(self, k: int) -> MultiHeadModel:
        """Model ``k`` as a stand-alone :class:`~negtransfer.nn.contract.MultiHeadModel` (a copy)."""
        import copy

        single = copy.deepcopy(self.base).cpu()
        single.load_state_dict(self.model_state(k))
        return single


@dataclass(frozen=True)
class StackingPlan:
    """How models of one factory train: stacked or one at a time, and why.

    Attributes
    ----------
    stackable : bool
        Models of the factory share one vectorised stack.
    pair_single : bool
        A stack of one model runs as a pair (the model and an unused copy),
        always for a stacked model: for some shapes a batched product over one
        model takes another kernel (and rounding) than over two or more (e.g. a
        head of output width 1, or any shape the probe did not try), so a model
        alone, or the last model of a stack whose partners stopped, would
        differ from the same model in a larger stack.
    note : str or None
        Why the models are trained one at a time (for a ``note:``), else None.
    """

    stackable: bool
    pair_single: bool = False
    note: str | None = None


def stacking_plan(make: Callable, input_shape: Sequence[int], outputs: Sequence[int], *,
                  rows: int = 32) -> StackingPlan:
    """Decide whether models of ``make`` can be stacked without changing any model's numbers.

    Builds three models and runs them on a random batch of ``rows`` examples,
    in training mode, forward and backward: stacked (``vmap``; random
    operations refused), as a stack of two and of one, and each model alone.
    The models stack when ``vmap`` runs them, each slice matches the model run
    alone (to rounding) and a model's slice is bit for bit the same in stacks
    of two and three models and in a stack of one run as a pair (and in a
    forward pass of :data:`EVALUATION_ROWS` rows without gradients); a stack
    of one always runs as a pair (:attr:`StackingPlan.pair_single`).

    Returns
    -------
    StackingPlan
    """
    probe = build_model(make, input_shape, outputs, seed=0)
    buffers = [name for name, _ in probe.named_buffers()]
    if buffers:
        shown = ", ".join(buffers[:3]) + (", ..." if len(buffers) > 3 else "")
        return StackingPlan(False, note=f"the model has buffers ({shown}) that training updates in place (e.g. "
                                        "batch-norm running statistics), so models are trained one at a time")
    gen = torch.Generator().manual_seed(0)
    shape = tuple(int(s) for s in input_shape)
    x = torch.randn((3, rows, *shape), generator=gen)
    x_eval = torch.randn((3, EVALUATION_ROWS, *shape), generator=gen)
    try:
        three = _probe_run(make, shape, outputs, 3, x, x_eval, pair_single=False)
    except Exception as exc:  # vmap refuses: no batching rule, randomness, data-dependent control flow
        text = str(exc).strip()
        reason = text.splitlines()[0] if text else type(exc).__name__
        return StackingPlan(False, note=f"torch.func.vmap cannot run the model ({type(exc).__name__}: {reason}), "
                                        "so models are trained one at a time")
    stack = StackedModel(make, shape, outputs, seeds=[0, 1, 2]).train()
    for k in range(3):
        alone = stack.unstack(k).train()
        with torch.no_grad():
            expected = alone(x[k])
        if not torch.allclose(three[0][k], expected, rtol=1e-4, atol=1e-5):
            return StackingPlan(False, note="the model's stacked outputs differ from its own outputs, so models "
                                            "are trained one at a time")
    two = _probe_run(make, shape, outputs, 2, x, x_eval, pair_single=False)
    if not all(torch.equal(a, b[:2]) for a, b in zip(two, three, strict=True)):
        return StackingPlan(False, note="the model's numbers would depend on its stack partners in the last bits "
                                        "(e.g. nn.Conv2d becomes a grouped convolution whose kernel depends on "
                                        "the stack), so models are trained one at a time")
    paired = _probe_run(make, shape, outputs, 1, x, x_eval, pair_single=True)
    if all(torch.equal(a, b[:1]) for a, b in zip(paired, three, strict=True)):
        return StackingPlan(True, pair_single=True)
    return StackingPlan(False, note="a model alone would differ from the same model in a stack in the last bits, "
                                    "so models are trained one at a time")


def _probe_run(make, shape, outputs, K: int, x: torch.Tensor, x_eval: torch.Tensor,
               pair_single: bool) -> list[torch.Tensor]:
    """Outputs, evaluation outputs and parameter gradients of a stack of the first K probe models."""
    stack = StackedModel(make, shape, outputs, seeds=list(range(K)), pair_single=pair_single).train()
    out = stack(x[:K])
    weights = torch.linspace(-1.0, 1.0, out[0].numel()).reshape(out.shape[1:])
    grads = torch.autograd.grad((out * weights).sum(), list(stack.parameters()))
    with torch.no_grad():
        evaluated = stack(x_eval[:K])
    return [out.detach(), evaluated, *grads]
