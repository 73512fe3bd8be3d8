"""The typed report of a grouping job (``negtransfer group``): :class:`GroupingReport` and its parts.

:func:`negtransfer.jobs.grouping.run_grouping` returns a :class:`GroupingReport`;
:meth:`GroupingReport.to_dict` is ``report.json`` (its keys and their order as
before the report was typed, plus ``totals_se``), :meth:`GroupingReport.from_dict`
reads such a dictionary back. The report is where task names are attached:
groups are lists of task names in it, as in ``report.json``.

The parts, each a frozen dataclass with ``to_dict()``:

* :class:`MethodMeasurement`: what the grouping method measured before the
  first fit (the affinity matrix, its momentum setting, GRAD-TAE's cost, the
  per-step trace);
* :class:`Selection`: the chosen groups, their predicted objective and the
  group each task's loss is read from;
* :class:`Refinement`: the selection rounds (:class:`RoundRecord`) and why they stopped;
* :class:`Comparison`: the chosen grouping against simple alternatives on validation data;
* :class:`NoiseReport`: the noise floor of the measured gains;
* :class:`PredictionQuality`: the first fit's predictions on held-out groups (:class:`PredictionPoint`);
* :class:`Optima`: the test and validation oracles (:class:`Oracle`; ``--exhaustive`` only);
* :class:`Losses`: per-task test losses of every training option, their totals
  and the totals' standard errors over the repeats;
* :class:`RefitReport`: ``--refit``: the recommendation and the alternatives retrained on every non-test row
  for fixed epochs after the decision (:class:`RefitOption`), scored on test;
* :class:`RunCounts`: runs trained, used and stored;
* :class:`JobTiming`: the shares of the job's wall time spent training runs, in the gain
  predictor and in the selection, and the seconds per trained run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

from negtransfer.gains.paired_rows import PairedDifference, differences_from_dict, differences_to_dict

__all__ = [
    "Comparison",
    "GroupingReport",
    "JobTiming",
    "Losses",
    "MethodMeasurement",
    "NoiseReport",
    "Optima",
    "Oracle",
    "PredictionPoint",
    "PredictionQuality",
    "RefitOption",
    "RefitReport",
    "Refinement",
    "RoundRecord",
    "RunCounts",
    "Selection",
]

Names = tuple[str, ...]


def _names(group: Sequence[str]) -> Names:
    return tuple(str(t) for t in group)


def _groups(groups: Sequence[Sequence[str]]) -> tuple[Names, ...]:
    return tuple(_names(g) for g in groups)


def _lists(groups: Sequence[Sequence[str]]) -> list[list[str]]:
    return [list(g) for g in groups]


@dataclass(frozen=True)
class MethodMeasurement:
    """What the grouping method measured before the first fit of its predictor.

    Attributes
    ----------
    affinity : tuple of tuples of float, or None
        ``affinity[i][j]``: source task i onto target task j (None: the method has no affinity).
    momentum : bool or None
        Whether the tracked affinity includes the optimiser's momentum term (None: no tracked affinity).
    cost : dict or None
        What the method spent beyond training runs (GRAD-TAE: gradients and regressions).
    trace : dict or None
        ``steps`` and ``pairs`` (``source``, ``target``, ``values``): the per-step affinity of the
        strongest pairs (``--trace``).
    """

    affinity: tuple[tuple[float, ...], ...] | None = None
    momentum: bool | None = None
    cost: Mapping[str, Any] | None = None
    trace: Mapping[str, Any] | None = None

    @property
    def affinity_array(self):
        """The affinity as a float ndarray (n, n), or None."""
        import numpy as np

        return None if self.affinity is None else np.array(self.affinity, dtype=float)

    @staticmethod
    def of(affinity=None, momentum: bool | None = None, cost=None, trace=None) -> MethodMeasurement:
        """A measurement from an array-like affinity (converted to nested tuples of floats)."""
        matrix = None if affinity is None else tuple(tuple(float(v) for v in row) for row in affinity)
        return MethodMeasurement(matrix, momentum, cost, trace)


@dataclass(frozen=True)
class Selection:
    """The chosen groups.

    Attributes
    ----------
    groups : tuple of tuples of task names
        At most ``budget`` groups, together covering every task.
    predicted_objective : float
        The objective the selection maximised, as the predictor (and measured gains) scored it.
    task_group : dict
        Task name -> the chosen group whose model gives the task's reported loss
        (its lowest validation loss among the groups holding it).
    """

    groups: tuple[Names, ...]
    predicted_objective: float
    task_group: Mapping[str, Names]


@dataclass(frozen=True)
class RoundRecord:
    """One selection round.

    Attributes
    ----------
    round : int
    selected : tuple of tuples of task names
        The round's selection.
    predicted_objective : float
    unmeasured_selected : int
        Groups of the selection not measured yet.
    runs_before : int
        Runs used before the round.
    final_among_measured : bool
        The extra record of the final selection among measured groups only.
    predictor_cv_rmse : dict or None
        Task -> the predictor's cross-validated error (rounds that ranked acquisitions).
    optimistic_improvement : dict or None
        ``"a+b"`` -> the acquired group's optimistic improvement.
    measured : tuple of dict or None
        The groups measured in the round: ``group, task, predicted, measured`` per member.
    selection_val_loss : float or None
        Summed validation loss of the selection once measured.
    """

    round: int
    selected: tuple[Names, ...]
    predicted_objective: float
    unmeasured_selected: int
    runs_before: int
    final_among_measured: bool = False
    predictor_cv_rmse: Mapping[str, float] | None = None
    optimistic_improvement: Mapping[str, float] | None = None
    measured: tuple[Mapping[str, Any], ...] | None = None
    selection_val_loss: float | None = None

    def to_dict(self) -> dict:
        out: dict = {"round": self.round, "selected": _lists(self.selected),
                     "predicted_objective": self.predicted_objective,
                     "unmeasured_selected": self.unmeasured_selected, "runs_before": self.runs_before}
        if self.final_among_measured:
            out["final_among_measured"] = True
        for key in ("predictor_cv_rmse", "optimistic_improvement"):
            if getattr(self, key) is not None:
                out[key] = dict(getattr(self, key))
        if self.measured is not None:
            out["measured"] = [dict(m) for m in self.measured]
        if self.selection_val_loss is not None:
            out["selection_val_loss"] = self.selection_val_loss
        return out

    @staticmethod
    def from_dict(d: Mapping) -> RoundRecord:
        measured = d.get("measured")
        return RoundRecord(d["round"], _groups(d["selected"]), d["predicted_objective"], d["unmeasured_selected"],
                           d["runs_before"], bool(d.get("final_among_measured", False)), d.get("predictor_cv_rmse"),
                           d.get("optimistic_improvement"), None if measured is None else tuple(measured),
                           d.get("selection_val_loss"))


@dataclass(frozen=True)
class Refinement:
    """The selection rounds and why they stopped.

    Attributes
    ----------
    rounds : tuple of RoundRecord
    stopped : str
        Why the rounds stopped.
    max_runs : int
        The run budget of the recommendation.
    one_shot_runs : int
        Runs of the one-shot protocol.
    runs_used : int
        Runs the recommendation used (repeats included, stored ones too).
    """

    rounds: tuple[RoundRecord, ...]
    stopped: str
    max_runs: int
    one_shot_runs: int
    runs_used: int

    @property
    def rounds_run(self) -> int:
        """Rounds that selected with the predictor (the final selection among measured groups not counted)."""
        return sum(1 for r in self.rounds if not r.final_among_measured)

    @property
    def final_among_measured(self) -> bool:
        """Whether a final selection among the measured groups changed the last round's."""
        return any(r.final_among_measured for r in self.rounds)

    @property
    def runs_vs_one_shot(self) -> float:
        return self.runs_used / self.one_shot_runs

    def to_dict(self) -> dict:
        """report.json's ``refinement`` (the rounds are its ``rounds``)."""
        return {"rounds_run": self.rounds_run, "final_among_measured": self.final_among_measured,
                "stopped": self.stopped, "max_runs": self.max_runs, "one_shot_runs": self.one_shot_runs,
                "runs_used": self.runs_used, "runs_vs_one_shot": self.runs_vs_one_shot}


@dataclass(frozen=True)
class Comparison:
    """The chosen grouping against the simple alternatives, and what the job recommends.

    Decided on the audit rows when the dataset has them (split code 4: rows no
    choice used, not gains, stopping, selection or assignment; issue 25), else
    on the validation rows that also chose the groups.

    Attributes
    ----------
    validation_loss : dict
        ``"selected"``, ``"all-task model"`` and (budget >= tasks) ``"STL (one model per task)"`` -> summed
        validation loss.
    better_than_alternatives : bool
        The chosen grouping beats every alternative compared (on audit rows: beats the better alternative by
        more than :data:`~negtransfer.jobs.grouping.AUDIT_MARGIN_SE` standard errors of the paired difference).
    best_alternative : str
    verdict : str
        The comparison and the recommendation in words: which rows, how many, why.
    recommendation : str
        ``"selected"`` (the chosen groups), ``"stl"`` or ``"all_tasks"``: a key of the report's ``totals``.
    decided_on : str
        ``"audit"`` or ``"validation"``: the rows the verdict was decided on.
    rows : int
        How many such rows (dataset rows; a multi-label row counts once).
    basis : str
        Those rows in words ("Decided on the 484 validation rows that also chose the groups ...").
    audit_loss : dict
        Option -> summed audit loss (mean over repeats), options named like ``validation_loss``; empty without
        audit rows.
    audit_difference : dict
        Alternative -> :class:`~negtransfer.gains.paired_rows.PairedDifference` (report.json:
        ``{"mean", "se", "se_runs", "se_rows", "verdict"}``): the chosen grouping's summed audit
        loss minus the alternative's, paired over runs (run r against run r) and rows; ``se`` its standard error
        over the audit rows and the runs (:func:`~negtransfer.gains.paired_rows.paired_row_se`, the one the
        verdict uses), ``se_runs`` over the runs only (the s.e. printed before; NaN with one run), ``se_rows``
        over the rows only; ``verdict`` three-way: ``"better"``, ``"within noise"`` or ``"worse"``
        (:func:`~negtransfer.gains.paired_rows.noise_verdict`). Results stored without per-row losses: ``se``
        is ``se_runs`` and ``se_rows`` NaN.
    noise_verdict : str
        On audit rows, the three-way verdict against the better alternative (``audit_difference`` of
        ``best_alternative``); empty on validation rows (and absent from :meth:`to_dict`).
    test_difference : dict
        On audit rows, the same paired differences on the test rows (scored only, deciding nothing): what the
        verdict is checked against; empty (absent from :meth:`to_dict`) on validation rows.
    """

    validation_loss: Mapping[str, float]
    better_than_alternatives: bool
    best_alternative: str
    verdict: str
    recommendation: str = "selected"
    decided_on: str = "validation"
    rows: int = 0
    basis: str = ""
    audit_loss: Mapping[str, float] = field(default_factory=dict)
    audit_difference: Mapping[str, PairedDifference] = field(default_factory=dict)
    noise_verdict: str = ""
    test_difference: Mapping[str, PairedDifference] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"validation_loss": dict(self.validation_loss), "better_than_alternatives": self.better_than_alternatives,
               "best_alternative": self.best_alternative, "verdict": self.verdict,
               "recommendation": self.recommendation, "decided_on": self.decided_on, "rows": self.rows,
               "basis": self.basis, "audit_loss": dict(self.audit_loss),
               "audit_difference": differences_to_dict(self.audit_difference)}
        if self.noise_verdict:  # audited jobs only: a job without audit rows writes the keys it wrote before
            out["noise_verdict"] = self.noise_verdict
            out["test_difference"] = differences_to_dict(self.test_difference)
        return out

    @staticmethod
    def from_dict(d: Mapping) -> Comparison:
        """Read back from :meth:`to_dict`'s dictionary; a report.json written before issue 25 (no audit keys)
        reads back decided on validation rows."""
        return Comparison(**differences_from_dict(d, ("audit_difference", "test_difference")))


@dataclass(frozen=True)
class RefitOption:
    """One option (the chosen groups, STL or the all-task model) retrained after the decision.

    Attributes
    ----------
    total, se : float
        Summed test loss (mean over repeats) and its standard error over the repeats (NaN with one).
    test_loss : dict
        Task -> test loss (mean over repeats), each task read from the option's model that holds it (the
        chosen groups: the group validation assigned it).
    epochs : dict
        Group label (``"a+b"``) -> the fixed epochs of each repeat's refit (its early-stopped run's stopping
        epoch).
    """

    total: float
    se: float
    test_loss: Mapping[str, float]
    epochs: Mapping[str, tuple[int, ...]]

    def to_dict(self) -> dict:
        return {"total": self.total, "se": self.se, "test_loss": dict(self.test_loss),
                "epochs": {g: list(e) for g, e in self.epochs.items()}}

    @staticmethod
    def from_dict(d: Mapping) -> RefitOption:
        return RefitOption(d["total"], d["se"], dict(d["test_loss"]), {g: tuple(e) for g, e in d["epochs"].items()})


@dataclass(frozen=True)
class RefitReport:
    """``--refit``: after the decision, the recommended models and the alternatives retrained on every non-test
    row (train, validation and audit) for a fixed number of epochs, without early stopping or validation rows.

    The early-stopped runs stay what every other field reports; this block is what a user who deploys the
    recommendation retrained on all their labelled rows gets.

    Attributes
    ----------
    recommendation : str
        The comparison's recommendation (``"selected"``, ``"stl"`` or ``"all_tasks"``).
    options : dict
        ``"selected"``, ``"stl"``, ``"all_tasks"`` -> :class:`RefitOption`.
    difference : dict
        Alternative (``"stl"``, ``"all_tasks"``) -> ``{"mean", "se"}``: the recommendation's refit test total
        minus the alternative's, paired over repeats (empty for the recommendation itself).
    rows : dict
        Training rows of the refits, and the train / validation / audit rows they came from.
    epochs_rule : str
        How the fixed epochs were chosen, in words.
    """

    recommendation: str
    options: Mapping[str, RefitOption]
    difference: Mapping[str, Mapping[str, float]]
    rows: Mapping[str, int]
    epochs_rule: str

    @property
    def recommended(self) -> RefitOption:
        """The refit of the recommendation."""
        return self.options[self.recommendation]

    def to_dict(self) -> dict:
        return {"recommendation": self.recommendation,
                "recommended_total": self.recommended.total, "recommended_se": self.recommended.se,
                "options": {k: v.to_dict() for k, v in self.options.items()},
                "difference": {k: dict(v) for k, v in self.difference.items()},
                "rows": dict(self.rows), "epochs_rule": self.epochs_rule}

    @staticmethod
    def from_dict(d: Mapping) -> RefitReport:
        return RefitReport(d["recommendation"], {k: RefitOption.from_dict(v) for k, v in d["options"].items()},
                           {k: dict(v) for k, v in d["difference"].items()}, dict(d["rows"]), d["epochs_rule"])


@dataclass(frozen=True)
class NoiseReport:
    """The noise floor of the measured gains (:func:`negtransfer.gains.noise.noise_floor`).

    Attributes
    ----------
    floor : dict
        The noise floor on the split the job chose on (``repeats``, ``gain_se_median``, ``reliability``,
        ``verdict``, ...).
    test : dict
        The same on the test split, without its verdict.
    split : str
        The split of ``floor``.
    split_noise : dict, optional
        The split's own noise (:func:`negtransfer.gains.noise.split_noise`): how well gains measured on one
        fold foretell another's (``folds``, ``validation_rows_per_fold``, ``fold_pearson``,
        ``fold_within_task_pearson``, ``split_reliability``, ``verdict``); with one fold its verdict says how
        to measure it.
    """

    floor: Mapping[str, Any]
    test: Mapping[str, Any]
    split: str
    split_noise: Mapping[str, Any] | None = None

    @property
    def verdict(self) -> str | None:
        """The seed noise's verdict, then the split noise's (when measured or asked for)."""
        seed = self.floor.get("verdict")
        split = (self.split_noise or {}).get("verdict")
        if seed and split:
            return f"{seed} {split}"
        return seed or split

    def to_dict(self) -> dict:
        out = {**self.floor, "test": dict(self.test), "split": self.split}
        if self.split_noise is not None:
            out["split_noise"] = dict(self.split_noise)
        return out

    @staticmethod
    def from_dict(d: Mapping) -> NoiseReport:
        return NoiseReport({k: v for k, v in d.items() if k not in ("test", "split", "split_noise")},
                           dict(d.get("test") or {}), d.get("split", "validation"),
                           dict(d["split_noise"]) if d.get("split_noise") is not None else None)


@dataclass(frozen=True)
class PredictionPoint:
    """One (held-out group, task): the predicted and the measured (test) gain."""

    group: Names
    task: str
    predicted: float
    actual: float

    def to_dict(self) -> dict:
        return {"group": list(self.group), "task": self.task, "predicted": self.predicted, "actual": self.actual}


@dataclass(frozen=True)
class PredictionQuality:
    """The first (one-shot) fit's predictions on held-out groups (test-split gains).

    Attributes
    ----------
    pearson, r2 : float or None
        Over every point (None with fewer than 3 or constant values).
    n_groups : int
        Held-out groups.
    within_task_pearson : float or None
        After removing each task's mean from both (which group is better for a task).
    per_task_mean_pearson : float or None
        The baseline predicting each task's mean training gain.
    points : tuple of PredictionPoint
    """

    pearson: float | None
    r2: float | None
    n_groups: int
    within_task_pearson: float | None
    per_task_mean_pearson: float | None
    points: tuple[PredictionPoint, ...]

    def to_dict(self) -> dict:
        return {"pearson": self.pearson, "r2": self.r2, "n_groups": self.n_groups,
                "within_task_pearson": self.within_task_pearson, "per_task_mean_pearson": self.per_task_mean_pearson,
                "points": [p.to_dict() for p in self.points]}

    @staticmethod
    def from_dict(d: Mapping) -> PredictionQuality:
        points = tuple(PredictionPoint(_names(p["group"]), p["task"], p["predicted"], p["actual"])
                       for p in d.get("points") or ())
        return PredictionQuality(d.get("pearson"), d.get("r2"), d.get("n_groups", 0), d.get("within_task_pearson"),
                                 d.get("per_task_mean_pearson"), points)


@dataclass(frozen=True)
class Oracle:
    """The best grouping over every measured group by one rule (:func:`negtransfer.jobs.grouping.oracle_grouping`).

    Attributes
    ----------
    groups : tuple of tuples of task names
    test_loss : dict
        Task -> test loss under the oracle's assignment.
    total : float
    gap : float
        (chosen total - oracle total) / oracle total, on test losses.
    val_total, val_gap : float or None
        The validation oracle only: its summed validation loss, and the chosen grouping's gap to it on validation.
    """

    groups: tuple[Names, ...]
    test_loss: Mapping[str, float]
    total: float
    gap: float
    val_total: float | None = None
    val_gap: float | None = None

    def to_dict(self) -> dict:
        out = {"groups": _lists(self.groups), "test_loss": dict(self.test_loss), "total": self.total, "gap": self.gap}
        if self.val_total is not None:
            out.update(val_total=self.val_total, val_gap=self.val_gap)
        return out

    @staticmethod
    def from_dict(d: Mapping) -> Oracle:
        return Oracle(_groups(d["groups"]), dict(d["test_loss"]), d["total"], d["gap"], d.get("val_total"),
                      d.get("val_gap"))


@dataclass(frozen=True)
class Optima:
    """The test oracle and the validation oracle (``--exhaustive``)."""

    test_oracle: Oracle
    validation_oracle: Oracle

    @property
    def groups(self) -> tuple[Names, ...]:
        """The test oracle's groups."""
        return self.test_oracle.groups

    @property
    def gap(self) -> float:
        """The chosen grouping's gap to the test oracle."""
        return self.test_oracle.gap

    def to_dict(self) -> dict:
        return {"groups": _lists(self.test_oracle.groups), "test_loss": dict(self.test_oracle.test_loss),
                "gap": self.test_oracle.gap, "test_oracle": self.test_oracle.to_dict(),
                "validation_oracle": self.validation_oracle.to_dict()}

    @staticmethod
    def from_dict(d: Mapping) -> Optima:
        return Optima(Oracle.from_dict(d["test_oracle"]), Oracle.from_dict(d["validation_oracle"]))


@dataclass(frozen=True)
class Losses:
    """Per-task test losses of every training option, their totals and the totals' standard errors.

    Attributes
    ----------
    test_loss : dict
        Option -> task -> test loss (mean over repeats); options ``stl``, ``all_tasks``,
        ``selected`` and, with ``--exhaustive``, ``optimal``.
    totals : dict
        Option -> summed test loss: the options of ``test_loss`` and, with ``--exhaustive``,
        ``test_oracle`` and ``validation_oracle``.
    totals_se : dict
        Option -> standard error over the repeats of the summed test loss (``stl``, ``all_tasks``,
        ``selected``; NaN with one repeat). New in report.json with the typed report.
    gain_se : dict
        Option (``all_tasks``, ``selected``) -> task -> standard error over the repeats of the task's paired gain
        against STL (ETAP eq. 1, repeat r against STL run r; NaN with one repeat).
    total_gain_se : dict
        Option (``all_tasks``, ``selected``) -> standard error over the repeats of the paired gain of the summed
        test loss against STL's (positive gain: a lower total loss); ``selected_vs_all_tasks``: of the chosen
        groups' gain against the all-task model.
    """

    test_loss: Mapping[str, Mapping[str, float]]
    totals: Mapping[str, float]
    totals_se: Mapping[str, float] = field(default_factory=dict)
    gain_se: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    total_gain_se: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RunCounts:
    """Runs (groups x repeats x folds): trained by this job, used by the recommendation, in the run store.

    ``folds`` is K of ``--folds`` (1: one split) and ``validation_rows_per_fold`` how many rows each fold
    validates on. :class:`Refinement` states the recommendation's runs relative to the one-shot protocol's
    with the same repeats and folds; ``one_split_one_shot`` is the one-shot protocol's runs on one split (the
    same repeats, no folds) and ``vs_one_split_one_shot`` the recommendation's runs relative to them.
    """

    trained: int
    recommendation: int
    stored_total: int
    folds: int = 1
    validation_rows_per_fold: tuple[int, ...] = ()
    one_split_one_shot: int | None = None

    @property
    def vs_one_split_one_shot(self) -> float | None:
        return self.recommendation / self.one_split_one_shot if self.one_split_one_shot else None

    def to_dict(self) -> dict:
        return {"trained": self.trained, "recommendation": self.recommendation, "stored_total": self.stored_total,
                "folds": self.folds, "validation_rows_per_fold": list(self.validation_rows_per_fold),
                "one_split_one_shot": self.one_split_one_shot, "vs_one_split_one_shot": self.vs_one_split_one_shot}

    @staticmethod
    def from_dict(d: Mapping) -> RunCounts:
        return RunCounts(d["trained"], d["recommendation"], d["stored_total"], int(d.get("folds", 1)),
                         tuple(d.get("validation_rows_per_fold", ())), d.get("one_split_one_shot"))


@dataclass(frozen=True)
class JobTiming:
    """Where the job's wall time went (report.json ``timing``; every figure is a wall-clock measurement).

    Attributes
    ----------
    job_seconds : float
        The job from its first stage to its last (start-up, data loading and report writing not included).
    trainer_seconds : float
        Training runs through the run store (stored runs read back included), every stage together.
    predictor_seconds : float
        The gain predictor: building it (the first build imports its libraries: scikit-learn, and through it
        scipy.stats and pandas, for ETAP), its fits (hyperparameter searches and the acquisition rule's
        cross-validation refits included) and its predictions.
    selection_seconds : float
        The exact selection of at most B groups, every time it ran.
    trained_runs : int
        Runs (groups x repeats) this job trained.
    predictor_fits : int
        Gain-predictor fits.
    predictor_setup_seconds : float
        Of ``predictor_seconds``, building the predictors: in effect the imports of the first (a fixed cost of
        the process; a second job in the same Python process does not pay it).
    """

    job_seconds: float
    trainer_seconds: float
    predictor_seconds: float
    selection_seconds: float
    trained_runs: int
    predictor_fits: int
    predictor_setup_seconds: float = 0.0

    def share(self, seconds: float) -> float:
        """``seconds`` as a fraction of the job's wall time (NaN for a job of no measurable time)."""
        return seconds / self.job_seconds if self.job_seconds > 0 else math.nan

    @property
    def trainer_share(self) -> float:
        return self.share(self.trainer_seconds)

    @property
    def predictor_share(self) -> float:
        return self.share(self.predictor_seconds)

    @property
    def selection_share(self) -> float:
        return self.share(self.selection_seconds)

    @property
    def seconds_per_trained_run(self) -> float | None:
        """Training seconds per trained run; None when the job trained nothing (every run was stored)."""
        return self.trainer_seconds / self.trained_runs if self.trained_runs else None

    def summary(self) -> str:
        """One line: the shares of the job's time and the seconds per trained run (console and report.md)."""
        per_run = self.seconds_per_trained_run
        runs = (f"{per_run:.3f} s per trained run, {self.trained_runs} runs" if per_run is not None
                else "no run trained: every run was in the run store")
        return (f"training {self.trainer_share:.0%} of the job's {self.job_seconds:.1f} s ({runs}), "
                f"gain predictor {self.predictor_share:.0%} ({self.predictor_fits} fits; "
                f"{self.share(self.predictor_setup_seconds):.0%} its imports), selection {self.selection_share:.0%}")

    def to_dict(self) -> dict:
        return {"job_seconds": self.job_seconds, "trainer_seconds": self.trainer_seconds,
                "predictor_seconds": self.predictor_seconds, "selection_seconds": self.selection_seconds,
                "trainer_share": self.trainer_share, "predictor_share": self.predictor_share,
                "selection_share": self.selection_share, "trained_runs": self.trained_runs,
                "seconds_per_trained_run": self.seconds_per_trained_run, "predictor_fits": self.predictor_fits,
                "predictor_setup_seconds": self.predictor_setup_seconds}

    @staticmethod
    def from_dict(d: Mapping) -> JobTiming:
        return JobTiming(d["job_seconds"], d["trainer_seconds"], d["predictor_seconds"], d["selection_seconds"],
                         d["trained_runs"], d["predictor_fits"], d.get("predictor_setup_seconds", 0.0))


@dataclass(frozen=True)
class GroupingReport:
    """What a grouping job found; :meth:`to_dict` is report.json.

    Attributes
    ----------
    method, dataset, fingerprint : str
    seed, budget, repeats : int
    objective, design, gain_split : str
    options, config : dict
        The job's options (:class:`~negtransfer.jobs.grouping.GroupingOptions`) and training configuration.
    tasks : tuple of str
        Task names, in dataset order (the order of the affinity's rows and columns).
    measurement : MethodMeasurement
    train_groups : tuple of tuples of task names
        The groups measured before the first fit (the all-task group included).
    selection : Selection
    refinement : Refinement
    comparison : Comparison
    noise : NoiseReport
    prediction : PredictionQuality
    optima : Optima or None
        With ``--exhaustive`` only.
    losses : Losses
    runs : RunCounts
    seconds : dict
        Stage -> seconds, and ``total``.
    task_kinds : dict or None
        Each task's kind (set by the command line with :func:`dataclasses.replace`).
    notes : tuple of str or None
        The command's ``note:`` lines (set by the command line).
    diverged : str
        The groups whose models diverged and were kept out of the gains and the selection
        (:func:`~negtransfer.gains.divergence.describe_diverged`); empty when every model trained.
    timing : JobTiming or None
        The shares of the job's wall time (report.json ``timing``; None in a report written before it existed).
    refit : RefitReport or None
        ``--refit`` only: the decision's options retrained on every non-test row (report.json ``refit``).
    """

    method: str
    dataset: str
    fingerprint: str
    seed: int
    budget: int
    repeats: int
    objective: str
    design: str
    gain_split: str
    options: Mapping[str, Any]
    config: Mapping[str, Any]
    tasks: Names
    measurement: MethodMeasurement
    train_groups: tuple[Names, ...]
    selection: Selection
    refinement: Refinement
    comparison: Comparison
    noise: NoiseReport
    prediction: PredictionQuality
    optima: Optima | None
    losses: Losses
    runs: RunCounts
    seconds: Mapping[str, float]
    task_kinds: Mapping[str, str] | None = None
    notes: tuple[str, ...] | None = None
    diverged: str = ""
    timing: JobTiming | None = None
    refit: RefitReport | None = None

    # ------------------------------------------------------------- shortcuts
    @property
    def affinity(self) -> tuple[tuple[float, ...], ...] | None:
        """The method's affinity matrix (source rows, target columns), or None."""
        return self.measurement.affinity

    @property
    def selected_groups(self) -> tuple[Names, ...]:
        return self.selection.groups

    @property
    def totals(self) -> Mapping[str, float]:
        return self.losses.totals

    @property
    def test_loss(self) -> Mapping[str, Mapping[str, float]]:
        return self.losses.test_loss

    def __repr__(self) -> str:
        """The answer in one line (:mod:`negtransfer.jobs.summary_repr`); the fields hold the rest."""
        from negtransfer.jobs.summary_repr import summary_repr

        return summary_repr("GroupingReport", method=self.method, dataset=self.dataset, tasks=self.tasks,
                            budget=self.budget, selected_groups=self.selected_groups, test_loss_totals=dict(self.totals),
                            recommendation=self.comparison.recommendation, trained_runs=self.runs.trained)

    def with_command_line(self, task_kinds: Mapping[str, str] | None, notes: Sequence[str]) -> GroupingReport:
        """A copy carrying the command line's task kinds and notes."""
        return replace(self, task_kinds=None if task_kinds is None else dict(task_kinds), notes=tuple(notes))

    # ------------------------------------------------------------- tables
    def to_frame(self):
        """One row per task (index ``task``): ``group`` (the chosen group its loss is read from, "a + b"),
        and its test loss under ``stl``, ``all_tasks``, ``selected`` (and ``optimal`` with ``--exhaustive``).

        Returns
        -------
        pandas.DataFrame
        """
        import pandas as pd

        rows = []
        for task in self.tasks:
            group = self.selection.task_group.get(task)
            row: dict[str, str | float | None] = {"task": task,
                                                  "group": None if group is None else " + ".join(group)}
            row.update({option: losses.get(task, math.nan) for option, losses in self.losses.test_loss.items()})
            rows.append(row)
        return pd.DataFrame(rows).set_index("task")

    def affinity_frame(self):
        """The affinity as a DataFrame, source tasks as rows and target tasks as columns; None without one.

        Returns
        -------
        pandas.DataFrame or None
        """
        if self.measurement.affinity is None:
            return None
        import pandas as pd

        return pd.DataFrame(self.measurement.affinity, index=pd.Index(self.tasks, name="source"),
                            columns=pd.Index(self.tasks, name="target"), dtype=float)

    # ------------------------------------------------------------- report.json
    def to_dict(self) -> dict:
        """report.json: the keys (and their order) of the report before it was typed, plus ``totals_se`` and
        ``timing``."""
        m = self.measurement
        out: dict = {
            "method": self.method, "dataset": self.dataset, "fingerprint": self.fingerprint, "seed": self.seed,
            "budget": self.budget, "repeats": self.repeats, "objective": self.objective,
            "n_train_groups": len(self.train_groups), "design": self.design, "gain_split": self.gain_split,
            "options": dict(self.options), "config": dict(self.config), "tasks": list(self.tasks),
            "affinity": None if m.affinity is None else [list(row) for row in m.affinity],
            "affinity_momentum": m.momentum,
        }
        if m.cost:
            out["method_cost"] = dict(m.cost)
        if m.trace:
            out["affinity_trace"] = dict(m.trace)
        out.update({
            "train_groups": _lists(self.train_groups),
            "selected_groups": _lists(self.selection.groups),
            "selected_predicted_objective": self.selection.predicted_objective,
            "task_group": {t: list(g) for t, g in self.selection.task_group.items()},
            "rounds": [r.to_dict() for r in self.refinement.rounds],
            "refinement": self.refinement.to_dict(),
            "comparison": self.comparison.to_dict(),
            "noise": self.noise.to_dict(),
            "prediction": self.prediction.to_dict(),
        })
        if self.optima is not None:
            out["optimal"] = self.optima.to_dict()
        if self.refit is not None:
            out["refit"] = self.refit.to_dict()
        out.update({
            "test_loss": {k: dict(v) for k, v in self.losses.test_loss.items()},
            "totals": dict(self.losses.totals),
            "totals_se": dict(self.losses.totals_se),
        })
        if self.losses.gain_se or self.losses.total_gain_se:  # reports of jobs before issue 28 have neither
            out["gain_se"] = {k: dict(v) for k, v in self.losses.gain_se.items()}
            out["total_gain_se"] = dict(self.losses.total_gain_se)
        out.update({
            "runs": self.runs.to_dict(),
            "seconds": dict(self.seconds),
        })
        if self.timing is not None:
            out["timing"] = self.timing.to_dict()
        if self.task_kinds is not None:
            out["task_kinds"] = dict(self.task_kinds)
        if self.notes is not None:
            out["notes"] = list(self.notes)
        if self.diverged:
            out["diverged"] = self.diverged
        return out

    @staticmethod
    def from_dict(d: Mapping) -> GroupingReport:
        """Read a report back from :meth:`to_dict`'s dictionary (a loaded report.json)."""
        refinement = d["refinement"]
        return GroupingReport(
            method=d["method"], dataset=d["dataset"], fingerprint=d["fingerprint"], seed=d["seed"],
            budget=d["budget"], repeats=d["repeats"], objective=d["objective"], design=d["design"],
            gain_split=d["gain_split"], options=dict(d["options"]), config=dict(d["config"]), tasks=_names(d["tasks"]),
            measurement=MethodMeasurement.of(d.get("affinity"), d.get("affinity_momentum"), d.get("method_cost"),
                                             d.get("affinity_trace")),
            train_groups=_groups(d["train_groups"]),
            selection=Selection(_groups(d["selected_groups"]), d["selected_predicted_objective"],
                                {t: _names(g) for t, g in d["task_group"].items()}),
            refinement=Refinement(tuple(RoundRecord.from_dict(r) for r in d["rounds"]), refinement["stopped"],
                                  refinement["max_runs"], refinement["one_shot_runs"], refinement["runs_used"]),
            comparison=Comparison.from_dict(d["comparison"]),
            noise=NoiseReport.from_dict(d["noise"]),
            prediction=PredictionQuality.from_dict(d["prediction"]),
            optima=Optima.from_dict(d["optimal"]) if "optimal" in d else None,
            losses=Losses({k: dict(v) for k, v in d["test_loss"].items()}, dict(d["totals"]),
                          dict(d.get("totals_se") or {}),
                          {k: dict(v) for k, v in (d.get("gain_se") or {}).items()},
                          dict(d.get("total_gain_se") or {})),
            runs=RunCounts.from_dict(d["runs"]),
            seconds=dict(d["seconds"]),
            task_kinds=d.get("task_kinds"),
            notes=None if d.get("notes") is None else tuple(d["notes"]),
            diverged=d.get("diverged", ""),
            timing=JobTiming.from_dict(d["timing"]) if d.get("timing") else None,
            refit=RefitReport.from_dict(d["refit"]) if d.get("refit") else None,
        )

