"""Runs of the all-task model that also measure affinity: the tracked run (ETAP, TAG) and GRAD-TAE's base model.

Each is one run of the all-task group for one repeat, and the run store keeps
its model result as the all-task group's row (the same row a group run of that
repeat and configuration has: the results are bit-identical) together with what
it measured:

* :data:`TRACKED_ETAP`, :data:`TRACKED_TAG`: the all-task model trained with
  the affinity trackers (:func:`negtransfer.affinity.training.train_with_affinity`);
  stores the per-epoch affinity record, and with the extra ``trace`` the
  per-step matrices of the paper's Figure 7;
* :data:`GRAD_TAE`: the all-task model as GRAD-TAE's base model, and the
  affinity GRAD-TAE estimates from its projected gradients
  (:func:`negtransfer.gains.grad_tae.grad_tae_run`).

So a job that needs the all-task runs and the affinity of the same repeats
trains each repeat's all-task model once (:func:`~negtransfer.runs.runner.ensure`
lets the tracked run stand for the group run), through the job's executor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from negtransfer.runs.specs import ArtifactSlot, RunKind, RunOutput, RunSpec

__all__ = [
    "AFFINITY_METHODS",
    "GRAD_TAE",
    "TRACKED_ETAP",
    "TRACKED_TAG",
    "AffinityRequest",
    "AffinityRuns",
    "affinity_specs",
    "measure_affinity",
    "measure_grad_tae_affinity",
]

#: The affinities the all-task runs can measure.
AFFINITY_METHODS = ("etap", "tag", "grad-tae")


def train_tracked(dataset, spec: RunSpec, seed: int) -> RunOutput:
    """Train one tracked all-task run (a worker's function: module-level, so it pickles)."""
    from negtransfer.affinity.training import affinity_record, trace_record, train_with_affinity

    kind = {TRACKED_ETAP.name: "etap", TRACKED_TAG.name: "tag"}[spec.kind.name]
    keep_trace = bool(spec.extra("trace", False))
    tracker, result, plain = train_with_affinity(dataset, spec.config, seed, repeat=spec.repeat,
                                                 every=int(spec.extra("every")), keep_trace=keep_trace, kind=kind)
    records = {"affinity": affinity_record(tracker, result, plain)}
    if keep_trace:
        records["trace"] = trace_record(tracker, plain)
    return RunOutput(result, records)


def train_grad_tae(dataset, spec: RunSpec, seed: int) -> RunOutput:
    """Train one GRAD-TAE base model and estimate its affinity (a worker's function)."""
    from negtransfer.gains.grad_tae import GradTAE, grad_tae_run

    result, record = grad_tae_run(dataset, spec.config, seed, spec.repeat, GradTAE(**dict(spec.extras)))
    return RunOutput(result, {"grad-tae": record})


def _tracked_slots(prefix: str, version: int) -> tuple[ArtifactSlot, ...]:
    return (ArtifactSlot("affinity", f"{prefix}:v{version}:{{fingerprint}}:{{seed}}:{{config}}:every={{every}}"),
            ArtifactSlot("trace", f"{prefix}-trace:v1:{{fingerprint}}:{{seed}}:{{config}}:every={{every}}",
                         when="trace"))


#: The all-task run with ETAP's tracker (first-order affinity, eq. 4-5). Key version 3: since the tracked step
#: trains with the trainer's own backward pass (the result equals the group run's), its affinity can differ from
#: version 2's in the last bits, and a store's version-2 records are not mixed with new ones.
TRACKED_ETAP = RunKind("tracked-etap", stores_model=True, artifacts=_tracked_slots("affinity", 3),
                       train=train_tracked)

#: The all-task run with TAG's lookahead affinity (key version 2, as for :data:`TRACKED_ETAP`).
TRACKED_TAG = RunKind("tracked-tag", stores_model=True, artifacts=_tracked_slots("affinity-tag", 2),
                      train=train_tracked)

#: GRAD-TAE's base model (the all-task run) with the affinity estimated from it (key unchanged since version 1:
#: the base model and the estimate are what they were).
GRAD_TAE = RunKind("grad-tae", stores_model=True, artifacts=(ArtifactSlot(
    "grad-tae", "grad-tae:v1:{fingerprint}:{seed}:{config}:projection_dim={projection_dim}:C={C}:"
                "subset_size={subset_size}:n_subsets={n_subsets}:parameters={parameters}:"
                "max_rows_per_task={max_rows_per_task}"),), train=train_grad_tae)


def affinity_specs(method: str, n_tasks: int, config, repeats: int, *, every: int = 1, trace: bool = False,
                   estimator=None) -> list[RunSpec]:
    """The all-task runs of repeats 0 .. repeats - 1 that measure ``method``'s affinity.

    Parameters
    ----------
    method : {"etap", "tag", "grad-tae"}
    n_tasks : int
    config : TrainConfig
    repeats : int
    every : int
        Track every k-th step (``etap``, ``tag``).
    trace : bool
        Also keep repeat 0's per-step matrices (``etap``, ``tag``; for the paper's Figure 7).
    estimator : GradTAE, optional
        GRAD-TAE's choices (default ``GradTAE()``); its ``random_state`` is replaced by each repeat's seed.

    Returns
    -------
    list of RunSpec
        One per repeat, in repeat order.

    Raises
    ------
    ValueError
        An unknown method, or ``every`` or ``repeats`` below 1.
    """
    if method not in AFFINITY_METHODS:
        raise ValueError(f"the all-task runs measure one of {', '.join(AFFINITY_METHODS)}; got {method!r}")
    if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a whole number >= 1, got {repeats!r}")
    everything = tuple(range(n_tasks))
    if method == "grad-tae":
        from negtransfer.gains.grad_tae import GradTAE

        params = (estimator if estimator is not None else GradTAE()).get_params()
        extras = {k: v for k, v in params.items() if k != "random_state"}
        return [RunSpec(GRAD_TAE, everything, r, config, extras) for r in range(int(repeats))]
    if isinstance(every, bool) or int(every) != every or every < 1:
        raise ValueError(f"affinity is tracked every k-th step with k >= 1, got {every!r}")
    kind = TRACKED_ETAP if method == "etap" else TRACKED_TAG
    return [RunSpec(kind, everything, r, config, {"every": int(every), **({"trace": True} if trace and r == 0 else {})})
            for r in range(int(repeats))]


@dataclass(frozen=True)
class AffinityRequest:
    """Which affinity a job's all-task runs measure (:func:`affinity_specs`'s choices, without the data).

    Parameters
    ----------
    method : {"etap", "tag", "grad-tae"}
    every : int
    trace : bool
    estimator : GradTAE, optional
    """

    method: str
    every: int = 1
    trace: bool = False
    estimator: Any = None

    def specs(self, n_tasks: int, config, repeats: int) -> list[RunSpec]:
        """The all-task runs of repeats 0 .. repeats - 1 (:func:`affinity_specs`)."""
        return affinity_specs(self.method, n_tasks, config, repeats, every=self.every, trace=self.trace,
                              estimator=self.estimator)


@dataclass
class AffinityRuns:
    """What the all-task runs of a job measured, one record per repeat (:func:`affinity_specs`, then ``ensure``).

    Attributes
    ----------
    method : str
    records : list of dict
        Per repeat: the tracked run's affinity record
        (:func:`negtransfer.affinity.training.affinity_record`), or GRAD-TAE's
        (:func:`negtransfer.gains.grad_tae.grad_tae_run`).
    trace : dict or None
        Repeat 0's per-step matrices when asked for
        (:func:`negtransfer.affinity.training.trace_record`).
    reused : int
        Repeats read from the store rather than trained by this job.
    C : float or None
        GRAD-TAE's ``C``.
    """

    method: str
    records: list[dict]
    trace: dict | None = None
    reused: int = 0
    C: float | None = field(default=None)

    @classmethod
    def from_outputs(cls, specs: Sequence[RunSpec], outputs: Sequence[RunOutput],
                     trained: Sequence[RunSpec] = ()) -> "AffinityRuns":
        """Collect the outputs of :func:`affinity_specs`' runs (``trained``: the specs ``ensure`` trained)."""
        if not specs:
            raise ValueError("no affinity runs given")
        name = specs[0].kind.name
        method = {TRACKED_ETAP.name: "etap", TRACKED_TAG.name: "tag", GRAD_TAE.name: "grad-tae"}[name]
        slot = "grad-tae" if method == "grad-tae" else "affinity"
        records = [out.records[slot] for out in outputs]
        trace = next((out.records["trace"] for out in outputs if "trace" in out.records), None)
        fresh = sum(1 for s in trained if s.kind.name == name)
        C = float(specs[0].extra("C")) if method == "grad-tae" else None
        return cls(method, records, trace, max(len(specs) - fresh, 0), C)

    def matrix(self, n_tasks: int, *, momentum: bool = False, epochs: str = "all") -> np.ndarray:
        """The averaged affinity (eq. 6) of a tracked method (:func:`~negtransfer.affinity.training.combine_affinity`).

        ``A[i, j]`` = affinity of source task i onto target task j.
        """
        if self.method == "grad-tae":
            return self.grad_tae()[0]
        from negtransfer.affinity.training import combine_affinity

        return combine_affinity(self.records, n_tasks, momentum=momentum, epochs=epochs)

    def grad_tae(self) -> tuple[np.ndarray, dict]:
        """GRAD-TAE's affinity and costs (:func:`~negtransfer.gains.grad_tae.combine_grad_tae`)."""
        if self.method != "grad-tae":
            raise ValueError(f"these are {self.method} runs, not GRAD-TAE's")
        if self.C is None:
            raise ValueError("GRAD-TAE runs need the estimator's C: collect them with AffinityRuns.from_outputs")
        from negtransfer.gains.grad_tae import combine_grad_tae

        return combine_grad_tae(self.records, self.C, self.reused)

    def trace_steps(self, momentum: bool) -> tuple[list[int], list[np.ndarray]]:
        """Repeat 0's tracked steps and their matrices (with or without the momentum term).

        Raises
        ------
        ValueError
            No trace was asked for.
        """
        if self.trace is None:
            raise ValueError("no trace: ask for it with affinity_specs(..., trace=True)")
        mats = self.trace["momentum" if momentum else "plain"]
        return list(self.trace["steps"]), [np.asarray(m, dtype=float) for m in mats]


def _measure(dataset, specs: list[RunSpec], seed: int, store, executor, on_progress) -> AffinityRuns:
    from negtransfer.runs.runner import ensure

    trained: list[RunSpec] = []
    outputs = ensure(dataset, specs, seed, store, executor=executor, on_progress=on_progress, trained=trained)
    return AffinityRuns.from_outputs(specs, outputs, trained)


def measure_affinity(dataset, config, seed: int, *, every: int = 1, store=None, repeats: int = 1,
                     momentum: bool = False, epochs: str = "all", kind: str = "etap", executor=None,
                     on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The averaged affinity matrix (eq. 6) of the tracked all-task runs of ``repeats`` repeats.

    Each repeat's tracked run is one run in ``store`` (its model result and its
    per-epoch matrices with and without momentum), so a later call with more
    repeats, or another ``momentum``/``epochs`` choice, trains only what is
    new; the runs go to ``executor``.

    Parameters
    ----------
    every : int
        Track every k-th step.
    store : RunStore, optional
        None: nothing is kept.
    repeats : int
    momentum, epochs :
        See :func:`~negtransfer.affinity.training.combine_affinity`. ``momentum``
        defaults to False (plain gradient steps, ``<g_i, g_j> / L_j``): what the
        public ETAP code fed its Chemical and CelebA predictors, and measured to
        track pairwise gains (docs/methods/affinity.md) where the momentum term does not.
    kind : {"etap", "tag"}
        See :func:`~negtransfer.affinity.training.train_with_affinity`.
    executor : Executor, optional
    on_progress : callable(done, total), optional

    Returns
    -------
    ndarray (n, n)
        ``A[i, j]`` = affinity of source task i onto target task j.
    """
    if kind not in ("etap", "tag"):
        raise ValueError(f"kind must be 'etap' or 'tag', got {kind!r}")
    specs = affinity_specs(kind, dataset.n_tasks, config, repeats, every=every)
    return _measure(dataset, specs, seed, store, executor, on_progress).matrix(dataset.n_tasks, momentum=momentum,
                                                                               epochs=epochs)


def measure_grad_tae_affinity(dataset, config, seed: int, *, store=None, repeats: int = 1, estimator=None,
                              executor=None, on_progress: Callable[[int, int], None] | None = None
                              ) -> tuple[np.ndarray, dict]:
    """GRAD-TAE's pairwise affinity of each repeat's all-task base model, averaged over repeats.

    Each repeat is one run in ``store`` (the base model's result, which is the
    all-task run of that repeat, and the estimated matrix with its costs), so a
    rerun trains and regresses nothing again.

    Returns
    -------
    affinity : ndarray (n, n)
        ``A[i, j]`` = affinity of source i onto target j (NaN-aware mean over repeats).
    cost : dict
        See :func:`~negtransfer.gains.grad_tae.combine_grad_tae`.
    """
    specs = affinity_specs("grad-tae", dataset.n_tasks, config, repeats, estimator=estimator)
    return _measure(dataset, specs, seed, store, executor, on_progress).grad_tae()

