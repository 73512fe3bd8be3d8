"""Grouping methods as plug-ins (``negtransfer group --method NAME``) and their registry.

A grouping method says, through behaviour rather than flags, what the grouping
job (:func:`negtransfer.jobs.grouping.run_grouping`) does for it:

* :meth:`GroupingMethod.training_groups`: which groups to train before the first fit;
* :meth:`GroupingMethod.reference_runs`: what the all-task runs must also
  measure (an affinity tracker, GRAD-TAE's projected gradients, or nothing);
  they are trained with the STL runs in one pass through the run store, so each
  repeat's all-task model is trained once;
* :meth:`GroupingMethod.measure`: what the method takes from those runs before
  the first fit (an affinity matrix, or nothing), given the job's data, store,
  options and the runs' records (a :class:`MeasureContext`);
* :meth:`GroupingMethod.build`: a new, unfitted gain predictor (scikit-learn
  style, ``fit(U, Y)`` / ``predict(U)`` on gain tables);
* :meth:`GroupingMethod.one_shot_runs`: the runs of the paper's one-shot protocol.

The kinds here: :class:`PredictorMethod` (measures nothing; draws training
groups by ``--design``), :class:`TrackedAffinityMethod` (ETAP's or TAG's
affinity from tracked all-task runs), :class:`GradTAEMethod` (GRAD-TAE's
affinity from projected gradients) and :class:`PairsMethod` (every pair
first: HOA, Ayman et al.). The predictors themselves are built by
:mod:`negtransfer.gains.methods`.

The registry is explicit: the built-in methods are the entries of
:data:`BUILTIN_METHODS` (a new method is its module plus one line there), and
:func:`register` adds one at run time, from a script or a test, without
touching negtransfer. Nothing registers itself on import.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb
from typing import Any, Callable

import numpy as np

from negtransfer.data.task_sets import TaskSet
from negtransfer.gains import methods as predictors
from negtransfer.jobs.grouping_report import MethodMeasurement
from negtransfer.runs.tracked import AffinityRequest, AffinityRuns

__all__ = [
    "BUILTIN_METHODS",
    "GradTAEMethod",
    "GroupingMethod",
    "MeasureContext",
    "PairsMethod",
    "PredictorMethod",
    "TrackedAffinityMethod",
    "get_method",
    "method_names",
    "register",
    "unregister",
]

#: build(affinity, seed, fixed) -> an unfitted predictor (see :meth:`GroupingMethod.build`).
PredictorBuilder = Callable[[Any, int, Any], Any]


@dataclass(frozen=True)
class MeasureContext:
    """What a method may use to measure before the first fit: the job's data, runs and options.

    Attributes
    ----------
    dataset : MultiTaskDataset
    config : TrainConfig
    seed : int
    store : RunStore
    executor : Executor or None
    options : GroupingOptions
    progress : callable(stage, done, total) or None
    affinity_runs : AffinityRuns or None
        What the all-task runs measured for :meth:`GroupingMethod.reference_runs` (None when it asked nothing).
    """

    dataset: Any
    config: Any
    seed: int
    store: Any
    executor: Any
    options: Any
    progress: Callable[[str, int, int], None] | None = None
    affinity_runs: AffinityRuns | None = None

    def on_progress(self, stage: str) -> Callable[[int, int], None] | None:
        """A ``(done, total)`` callback reporting under ``stage``, or None without progress."""
        progress = self.progress
        return (lambda done, total: progress(stage, done, total)) if progress else None


@dataclass(frozen=True)
class GroupingMethod:
    """A grouping method: what to train first, what to measure, how to predict gains.

    Subclass it (or use :class:`PredictorMethod`) and :func:`register` an instance.

    Attributes
    ----------
    name : str
        The ``--method`` value.
    reference : str
        Where the method comes from.
    builder : callable(affinity, seed, fixed) -> estimator
        A new, unfitted predictor; ``fixed`` holds hyperparameters found by an
        earlier fit (``best_params_``) for quick refits, or None.
    affinity_momentum : bool
        The method's default for ``--affinity-momentum`` (methods with a tracked affinity only).
    """

    name: str
    reference: str
    builder: PredictorBuilder
    affinity_momentum: bool = False

    #: Whether :meth:`measure` returns an affinity (then the all-task runs must use the summed gradient).
    measures_affinity = False
    #: Whether the per-step affinity of a tracked all-task run can be traced (``--trace``).
    traceable = False
    #: Whether the first groups are drawn by ``--design`` from ``--train-groups`` (else the method chooses them).
    draws_training_groups = True

    def build(self, affinity, seed: int, fixed: dict | None = None):
        """A new, unfitted gain predictor on ``affinity`` (None for a method without one)."""
        return self.builder(affinity, seed, fixed)

    def training_groups(self, n_tasks: int, options, seed: int) -> list[TaskSet]:
        """The groups (2..n-1 tasks) measured before the first fit, besides the all-task group."""
        from negtransfer.runs.group_specs import design_groups

        return [TaskSet(g) for g in design_groups(options.design, n_tasks, options.n_train_groups, seed)]

    def n_training_groups(self, n_tasks: int, n_train_groups: int) -> int:
        """How many groups :meth:`training_groups` gives (the all-task group not counted)."""
        return min(n_train_groups, sum(comb(n_tasks, s) for s in range(2, n_tasks)))

    def one_shot_runs(self, n_tasks: int, options) -> int:
        """Runs of the one-shot protocol: STL, all-task, the training groups, the chosen groups (x repeats)."""
        training = self.n_training_groups(n_tasks, options.n_train_groups)
        return options.repeats * (n_tasks + 1 + training + options.budget)

    def reference_runs(self, options) -> AffinityRequest | None:
        """What the all-task runs of every repeat must also measure; None: nothing (the default).

        The job trains these runs with the STL runs, and the tracked run of a
        repeat stands for that repeat's all-task group run (one training).
        """
        return None

    def measure(self, context: MeasureContext) -> MethodMeasurement | None:
        """What the method measures before the first fit; None: nothing (the default)."""
        return None


@dataclass(frozen=True)
class PredictorMethod(GroupingMethod):
    """A method that measures nothing: a predictor fitted on the measured groups' gains alone."""


@dataclass(frozen=True)
class TrackedAffinityMethod(GroupingMethod):
    """ETAP's or TAG's affinity, from the all-task runs with the affinity tracker (one per repeat).

    Attributes
    ----------
    affinity_kind : {"etap", "tag"}
        The tracker's affinity (:func:`negtransfer.affinity.training.measure_affinity`).
    """

    affinity_kind: str = "etap"
    measures_affinity = True
    traceable = True

    def reference_runs(self, options) -> AffinityRequest:
        """The tracked all-task runs (repeat 0 keeps its per-step matrices with ``--trace``)."""
        return AffinityRequest(self.affinity_kind, every=options.affinity_every, trace=bool(options.trace_pairs))

    def measure(self, context: MeasureContext) -> MethodMeasurement:
        options, runs = context.options, _affinity_runs(context, self.name)
        momentum = options.resolved_affinity_momentum()
        affinity = runs.matrix(context.dataset.n_tasks, momentum=momentum, epochs=options.affinity_epochs)
        trace = None
        if options.trace_pairs:  # ETAP's Figure 7: repeat 0's per-step affinity of the strongest pairs
            steps, matrices = runs.trace_steps(momentum)
            trace = trace_of_strongest_pairs(steps, matrices, affinity, context.dataset.task_names,
                                             options.trace_pairs)
        return MethodMeasurement.of(affinity, momentum=momentum, trace=trace)


def _affinity_runs(context: MeasureContext, method: str) -> AffinityRuns:
    if context.affinity_runs is None:
        raise ValueError(f"--method {method} measures on the all-task runs, but the job trained none for it "
                         "(reference_runs was not asked)")
    return context.affinity_runs


def trace_of_strongest_pairs(trace_steps: list[int], trace: list[np.ndarray], affinity: np.ndarray, names,
                             count: int) -> dict:
    """Per-step values (``trace[k]`` at step ``trace_steps[k]``) of the ``count`` off-diagonal pairs with the
    largest |average affinity|."""
    off = np.abs(np.where(np.eye(len(names), dtype=bool), 0.0, np.nan_to_num(affinity)))
    order = np.argsort(-off, axis=None, kind="stable")[:count]
    pairs = [np.unravel_index(i, off.shape) for i in order]
    steps = [np.asarray(m) for m in trace]
    return {
        "steps": [int(s) for s in trace_steps],
        "pairs": [{"source": names[i], "target": names[j],
                   "values": [None if not np.isfinite(m[i, j]) else float(m[i, j]) for m in steps]}
                  for i, j in pairs],
    }


@dataclass(frozen=True)
class GradTAEMethod(GroupingMethod):
    """GRAD-TAE's affinity from each repeat's all-task model's projected gradients (:mod:`negtransfer.gains.grad_tae`)."""

    measures_affinity = True

    def reference_runs(self, options) -> AffinityRequest:
        """Each repeat's all-task model with its projected gradients and sampled-subset fits."""
        return AffinityRequest("grad-tae")

    def measure(self, context: MeasureContext) -> MethodMeasurement:
        affinity, cost = _affinity_runs(context, self.name).grad_tae()
        return MethodMeasurement.of(affinity, cost=cost)


@dataclass(frozen=True)
class PairsMethod(GroupingMethod):
    """Every pair of tasks is measured first (HOA); with ``with_groups`` also ``--train-groups`` larger groups.

    Attributes
    ----------
    with_groups : bool
        Ayman et al.: the pairs give the features, groups of three or more tasks the labels.
    """

    with_groups: bool = False
    draws_training_groups = False

    def training_groups(self, n_tasks: int, options, seed: int) -> list[TaskSet]:
        from negtransfer.runs.group_specs import design_groups

        pairs = n_tasks * (n_tasks - 1) // 2
        extra = options.n_train_groups if self.with_groups else 0
        return [TaskSet(g) for g in design_groups("pairs", n_tasks, pairs + extra, seed)]

    def n_training_groups(self, n_tasks: int, n_train_groups: int) -> int:
        pairs = n_tasks * (n_tasks - 1) // 2
        if not self.with_groups:
            return pairs
        return pairs + min(n_train_groups, sum(comb(n_tasks, s) for s in range(3, n_tasks)))


#: The built-in methods, one line each (docs/methods/grouping-methods.md).
BUILTIN_METHODS: tuple[GroupingMethod, ...] = (
    TrackedAffinityMethod("etap", "Ayman, Mukhopadhyay and Laszka, ICLR 2026", predictors.etap_predictor),
    TrackedAffinityMethod("tag", "Fifty et al., NeurIPS 2021", predictors.affine_affinity_predictor,
                          affinity_momentum=True, affinity_kind="tag"),
    PairsMethod("hoa", "Standley et al., ICML 2020", predictors.pairwise_mean_predictor),
    PredictorMethod("linear-surrogate", "Li et al., TMLR 2023", predictors.linear_surrogate_predictor),
    PredictorMethod("mtgnet", "Song et al., NeurIPS 2022", predictors.mtgnet_predictor),
    PairsMethod("ayman", "Ayman, Mukhopadhyay and Laszka, arXiv:2310.16241, 2023", predictors.total_gain_predictor,
                with_groups=True),
    GradTAEMethod("grad-tae", "Li et al., KDD 2024", predictors.affine_affinity_predictor),
)

_REGISTRY: dict[str, GroupingMethod] = {m.name: m for m in BUILTIN_METHODS}


def register(method: GroupingMethod, *, replace: bool = False) -> GroupingMethod:
    """Make ``method`` available as ``--method method.name`` (and to :func:`get_method`); returns it.

    Raises
    ------
    TypeError
        If ``method`` is not a :class:`GroupingMethod`.
    ValueError
        If the name is taken (pass ``replace=True`` to replace that method).
    """
    if not isinstance(method, GroupingMethod):
        raise TypeError(f"register() takes a GroupingMethod (e.g. PredictorMethod(name, reference, builder)), "
                        f"got {type(method).__name__}")
    if method.name in _REGISTRY and not replace:
        raise ValueError(f"a grouping method named {method.name!r} is registered already; pass replace=True "
                         "to replace it")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove the method ``name`` (a no-op when it is not registered)."""
    _REGISTRY.pop(name, None)


def method_names() -> tuple[str, ...]:
    """The registered methods' names, built-ins first, in registration order."""
    return tuple(_REGISTRY)


def get_method(name: str) -> GroupingMethod:
    """The registered method ``name``, or a ValueError listing the methods."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown grouping method {name!r}; the methods are: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]
