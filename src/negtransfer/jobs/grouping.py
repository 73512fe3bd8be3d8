"""The main job: choose task groups with ETAP (``negtransfer group``).

Data flow (DESIGN.md): STL runs -> all-task runs with the affinity tracker ->
MTL runs for a few training groups -> ETAP gain predictor -> predicted gains of
every candidate group -> exact selection of at most B groups -> train the
chosen groups -> (active refinement: refit on what was measured, select again,
train what the new selection or the predictor's uncertainty asks for, until the
selection is made of measured groups and stops changing) -> report. Every run
goes through the run store, so a repeated or interrupted job reuses what it
already trained.

ETAP is the method of Ayman, Mukhopadhyay and Laszka, "Ensemble Prediction of
Task Affinity for Efficient Multi-Task Learning" (ICLR 2026).

Repeats: every run is repeated R times (``repeats``) with common random numbers
(repeat r of every group and of STL trains with the same seed), a measured gain
is the mean of the R paired gains, and the report states the noise floor
(:mod:`negtransfer.gains.noise`).

Folds (``folds``, ``--folds K``): every run is also trained on each of K folds
of the training and validation rows (:mod:`negtransfer.data.folds`; the same
rows for every group and repeat), a group's results are its R x K runs, every
gain and validation loss is a mean over both, and the report adds the split
noise (how well one fold's gains foretell another's) to the seed noise.

The job is a sequence of named stages (:data:`GROUPING_STAGES`) over one
typed state (:class:`GroupingState`); what a grouping method trains first,
measures and predicts with is the method's behaviour
(:mod:`negtransfer.jobs.grouping_methods`), and the job returns a typed
:class:`~negtransfer.jobs.grouping_report.GroupingReport`.

Where test data is touched: every choice (predictor fit, selection, refinement,
the per-task assignment of an overlapping grouping, the comparison with simple
alternatives) uses *validation* losses by default (``gain_split="validation"``);
reported losses, the prediction quality and the test oracle use the test split
(ETAP eq. 1 defines gains on test data; ``gain_split="test"`` follows the paper).
With ``audit`` > 0 a stratified share of the non-test rows is held back as
audit rows (split code 4) that no run trains, stops or measures gains on; the
comparison with STL and the all-task model and the fallback to the better of
them are then decided on those rows (issue 25).

Refit (``refit``, ``--refit``): once the recommendation is decided, the chosen
groups, the STL models and the all-task model are retrained on every non-test
row (train, validation and audit rows) for a fixed number of epochs, each run
for its early-stopped run's stopping epoch (same repeat), and scored on test
(report ``refit``): the audit's held-back rows, and the validation rows, train
the models a user deploys.
"""

from __future__ import annotations

import numbers
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from math import comb
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

from negtransfer.data.dataset import AUDIT, AUDIT_SOURCES, TEST, TRAIN, VALIDATION, MultiTaskDataset
from negtransfer.data.folds import fold_datasets, fold_validation_rows
from negtransfer.data.statistics import standard_error
from negtransfer.data.task_sets import TaskSet
from negtransfer.gains.divergence import DivergedError, describe_diverged, diverged_runs
from negtransfer.gains.noise import fold_gains, noise_floor, split_noise
from negtransfer.gains.paired_rows import PairedDifference, paired_difference, row_contributions, verdict_phrase
from negtransfer.gains.table import mtl_gain, repeat_gains
from negtransfer.jobs.choices import GAIN_SPLITS, OBJECTIVES
from negtransfer.jobs.grouping_methods import GroupingMethod, MeasureContext, get_method, method_names
from negtransfer.jobs.grouping_report import (
    Comparison,
    GroupingReport,
    JobTiming,
    Losses,
    MethodMeasurement,
    NoiseReport,
    Optima,
    Oracle,
    PredictionPoint,
    PredictionQuality,
    Refinement,
    RefitOption,
    RefitReport,
    RoundRecord,
    RunCounts,
    Selection,
)
from negtransfer.runs.executors import Executor
from negtransfer.runs.group_specs import DESIGNS, across_folds, random_groups
from negtransfer.runs.runner import ensure, repeated_results
from negtransfer.runs.specs import GROUP, RunSpec, group_specs
from negtransfer.runs.store import RunStore
from negtransfer.runs.tracked import AffinityRequest, AffinityRuns
from negtransfer.train.config import TrainConfig, check_whole_numbers
from negtransfer.train.results import RepeatedResult

Group = TaskSet
Progress = Callable[[str, int, int], None]
Found = TypeVar("Found")
#: The selection score of each member task of a group whose model diverged (after weighting): far below any
#: measured or predicted score, so the selection never takes the group.
DIVERGED_SCORE = -1e9
#: On audit rows the chosen grouping is kept only when its summed audit loss is below the better alternative's (the
#: lower of STL and the all-task model) by more than this many standard errors of the paired difference (over
#: the audit rows and the runs, :func:`~negtransfer.gains.paired_rows.paired_row_se`); otherwise that alternative
#: is recommended (never knowingly worse, decided on rows no choice used). Also the margin of the three-way verdict.
AUDIT_MARGIN_SE = 1.0
#: How a refit's fixed epochs follow from the stopping epoch (``GroupingOptions.refit_epochs``).
REFIT_EPOCHS = ("passes", "steps")
STL_NAME, ALL_TASKS_NAME = "STL (one model per task)", "all-task model"
#: The comparison's names of the alternatives -> their keys in the report's ``totals``.
ALTERNATIVE_KEYS = {STL_NAME: "stl", ALL_TASKS_NAME: "all_tasks"}



@dataclass
class GroupingOptions:
    """Choices of one grouping job (validated by :meth:`check`).

    Parameters
    ----------
    budget : int
        At most this many groups are chosen; together they cover every task.
    method : str
        The grouping method, a name in the registry (:func:`negtransfer.jobs.grouping_methods.method_names`):
        ``etap`` (default), ``tag``, ``hoa``, ``linear-surrogate``, ``mtgnet``, ``ayman``, ``grad-tae``, or
        one added with :func:`~negtransfer.jobs.grouping_methods.register`.
    n_train_groups : int
        Training groups (sizes 2..n-1) whose gains are measured before the
        first fit; the all-task group is always added.
    design : {"random", "stratified", "pairs"}
        How the training groups are drawn (:func:`negtransfer.runs.group_specs.design_groups`).
    repeats : int
        Runs per group (common random numbers across groups); gains are means
        over repeats with standard errors.
    rounds : int
        Selection rounds: 1 is the paper's one-shot protocol (fit, select,
        train the chosen groups); more rounds refine actively (module doc).
    per_round : int or None
        Groups acquired per refinement round (default ``2 * budget``, at least 4).
    max_runs : int or None
        Budget of runs (groups x repeats, STL and all-task runs included) for
        the recommendation; default 3x the one-shot protocol's runs.
    kappa : float
        Optimism of the acquisition rule: an unmeasured group's predicted gain
        plus ``kappa`` times the predictor's cross-validated error
        (:mod:`negtransfer.select.acquisition`).
    objective : {"total-loss", "mean-gain", "metric"}
        What the selection maximises: the predicted decrease of the summed
        validation loss (each task's gain weighted by its STL loss; the paper's
        Table 4 criterion), the sum of gains (the paper's eq. 1 objective), or
        the summed relative change of the task metric (AUROC, accuracy, MSE).
    evaluate : int
        Extra random held-out groups measured to report prediction quality.
    exhaustive : bool
        Train every group; report the optimal groupings and the gaps.
    gain_split : {"validation", "test"}
        Split whose losses define the gains the predictor is fitted on (and
        that every choice uses).
    affinity_every : int
        Track affinity every k-th step of the all-task runs (1 = every step).
    affinity_momentum : bool or None
        Include the momentum term of ETAP eq. 4 in the affinity. None (the
        default): the method's own choice (``GroupingMethod.affinity_momentum``:
        without it for ETAP, as the public code fed its Chemical and CelebA
        predictors and as measured in docs/methods/affinity.md; with it for TAG,
        whose public lookahead takes the optimiser's full step).
    affinity_epochs : {"all", "until-best"}
        Average the affinity over every epoch of the all-task run, or only up
        to its best (early-stopping) epoch.
    max_candidates_tasks : int
        All 2^n - 1 groups are candidates up to this many tasks.
    trace_pairs : int
        Keep the per-step affinity of this many strongest pairs (by |average|)
        of repeat 0 for the report's Figure 7 plot; 0 = no trace.
    use_measured : bool
        Score measured groups by their measured gains instead of the
        predictor's output; every other candidate is predicted.
    audit : float
        Share of the non-test rows held back as audit rows
        (:meth:`~negtransfer.data.dataset.MultiTaskDataset.with_audit`; stratified, drawn by the dataset's
        split seed): no run trains, stops or measures gains on them; the comparison with STL and the all-task
        model and the fallback to the better of them are decided on them (issue 25). 0 (default): no audit
        rows, the comparison is on the validation rows that also chose the groups.
    refit : bool
        After the decision, retrain the chosen groups, the STL models and the all-task model on every non-test
        row (train, validation and audit) for a fixed number of epochs (each run its early-stopped run's
        stopping epoch), without early stopping, and report their test losses (report.json ``refit``).
        Default False: the report holds the early-stopped runs only.
    refit_epochs : {"passes", "steps"}
        How a refit's fixed epochs follow from its early-stopped run's stopping epoch E: ``"steps"`` (default)
        E times the run's training rows over the refit's (rounded, at least 1), about the same number of
        optimiser steps on more rows; ``"passes"`` E epochs, the same passes over the (larger) training rows
        (Goodfellow, Bengio and Courville, *Deep Learning*, 2016, section 7.8, name both and no rule between
        them; measured in docs/methods/grouping.md: ``"steps"`` better on Chemical with
        ``--audit 0.2``, within the noise elsewhere).
    audit_source : {"train+validation", "validation"}
        Which splits give up the audit rows.
    folds : int
        Cross-validated gains (``--folds K``): every run is trained on each of
        K folds of the training and validation rows (:mod:`negtransfer.data.folds`;
        fold f validates on part f and trains on the others, the same rows for
        every group and repeat), so a group's results are its R x K runs and
        every gain, validation loss and choice is a mean over folds and
        repeats. 1 (the default): one split, the dataset's own.
    """

    budget: int = 3
    method: str = "etap"
    n_train_groups: int = 20
    design: str = "random"
    repeats: int = 3
    rounds: int = 5
    per_round: int | None = None
    max_runs: int | None = None
    kappa: float = 1.0
    objective: str = "total-loss"
    evaluate: int = 0
    exhaustive: bool = False
    gain_split: str = "validation"
    affinity_every: int = 8
    affinity_momentum: bool | None = None
    affinity_epochs: str = "all"
    max_candidates_tasks: int = 16
    chunk_size: int | None = None
    use_measured: bool = True
    trace_pairs: int = 0
    audit: float = 0.0
    audit_source: str = "train+validation"
    folds: int = 1
    refit: bool = False
    refit_epochs: str = "steps"

    def __post_init__(self) -> None:
        from negtransfer.train.config import plain_scalars

        plain_scalars(self)  # NumPy numbers (from a sweep) as Python's: they save to JSON

    def check(self, n_tasks: int) -> None:
        """Raise ``ValueError`` naming the first bad option (and its command-line flag)."""
        from negtransfer.affinity.training import AFFINITY_EPOCHS

        names = method_names()
        traceable = [m for m in names if get_method(m).traceable]
        check_whole_numbers(self, (("budget", "--budget"), ("n_train_groups", "--train-groups"),
                                   ("repeats", "--repeats"), ("rounds", "--rounds"), ("per_round", "--per-round"),
                                   ("max_runs", "--max-runs"), ("chunk_size", "--chunk-size"),
                                   ("affinity_every", "affinity_every")))
        for name, flag in (("kappa", "--kappa"), ("audit", "--audit")):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"{flag} ({name}) must be a number, got {value!r}")
        problems = [
            (self.method not in names, f"--method must be one of {', '.join(names)}, got {self.method!r}"),
            (n_tasks < 2, "grouping needs at least 2 tasks"),
            (self.budget < 1, f"--budget must be >= 1, got {self.budget}"),
            (self.n_train_groups < 1, f"--train-groups must be >= 1, got {self.n_train_groups}"),
            (self.design not in DESIGNS, f"--design must be one of {', '.join(DESIGNS)}, got {self.design!r}"),
            (self.repeats < 1, f"--repeats must be >= 1, got {self.repeats}"),
            (isinstance(self.folds, bool) or int(self.folds) != self.folds or self.folds < 1,
             f"--folds must be a whole number >= 1 (1: no folds), got {self.folds!r}"),
            (self.rounds < 1, f"--rounds must be >= 1, got {self.rounds}"),
            (self.per_round is not None and self.per_round < 1, f"--per-round must be >= 1, got {self.per_round}"),
            (not self.kappa >= 0, f"--kappa must be >= 0, got {self.kappa}"),
            (self.max_runs is not None and self.max_runs < 1, f"--max-runs must be >= 1, got {self.max_runs}"),
            (self.objective not in OBJECTIVES,
             f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}"),
            (self.gain_split not in GAIN_SPLITS, "gain_split must be 'validation' or 'test'"),
            (self.affinity_every < 1, "affinity_every must be >= 1"),
            (self.affinity_epochs not in AFFINITY_EPOCHS, f"affinity_epochs must be one of {AFFINITY_EPOCHS}"),
            (self.chunk_size is not None and self.chunk_size < 1, f"--chunk-size must be >= 1, got {self.chunk_size}"),
            (not 0 <= self.audit < 1, f"--audit must be a fraction in [0, 1), e.g. 0.2, got {self.audit}"),
            (self.refit_epochs not in REFIT_EPOCHS,
             f"--refit-epochs must be one of {', '.join(REFIT_EPOCHS)}, got {self.refit_epochs!r}"),
            (self.audit_source not in AUDIT_SOURCES,
             f"audit_source must be one of {', '.join(AUDIT_SOURCES)}, got {self.audit_source!r}"),
            (self.trace_pairs > 0 and self.method in names and self.method not in traceable,
             f"--trace plots the per-step affinity of a tracked all-task run; --method {self.method} has none "
             f"(use {' or '.join(traceable)})"),
            (n_tasks > self.max_candidates_tasks,
             f"{n_tasks} tasks give 2^{n_tasks} - 1 candidate groups; select at most "
             f"{self.max_candidates_tasks} tasks with --tasks"),
        ]
        for bad, message in problems:
            if bad:
                raise ValueError(message)

    def grouping_method(self) -> GroupingMethod:
        """The registered method named by ``method``."""
        return get_method(self.method)

    def resolved_affinity_momentum(self) -> bool:
        """``affinity_momentum``, or the method's own choice when it is None."""
        if self.affinity_momentum is None:
            return self.grouping_method().affinity_momentum
        return bool(self.affinity_momentum)

    def one_shot_runs(self, n_tasks: int) -> int:
        """Runs of the one-shot protocol: STL, all-task, training groups (every pair for HOA), the chosen groups;
        each group's repeats on each of the folds."""
        return self.grouping_method().one_shot_runs(n_tasks, self) * self.folds

    @property
    def runs_per_group(self) -> int:
        """Runs that measure one group: repeats x folds."""
        return self.repeats * self.folds


@dataclass
class GroupingResult:
    """The job's typed report and every result it read or trained (group -> repeats)."""

    report: GroupingReport
    results: dict[tuple[int, ...], RepeatedResult] = field(default_factory=dict)  # keyed like the run store


def _pearson_r2(predicted: np.ndarray, actual: np.ndarray) -> tuple[float | None, float | None]:
    if predicted.size < 3 or np.std(predicted) == 0 or np.std(actual) == 0:
        return None, None
    pearson = float(np.corrcoef(predicted, actual)[0, 1])
    r2 = float(1 - np.sum((actual - predicted) ** 2) / np.sum((actual - actual.mean()) ** 2))
    return pearson, r2


def _within_task_pearson(predicted: np.ndarray, actual: np.ndarray, tasks: np.ndarray) -> float | None:
    """Pearson of predicted vs actual after removing each task's mean from both."""
    p, a = predicted.astype(float).copy(), actual.astype(float).copy()
    for t in np.unique(tasks):
        m = tasks == t
        p[m] -= p[m].mean()
        a[m] -= a[m].mean()
    return _pearson_r2(p, a)[0]


def assign_tasks(groups, results, n_tasks: int, by: str = "val_loss") -> dict[int, Group]:
    """Per task, the chosen group whose ``by`` loss (mean over repeats) for it is lowest.

    This is how TAG and HOA evaluate a grouping with overlaps; ties keep the
    first group in ``groups`` order.
    """
    where = {}
    for t in range(n_tasks):
        best = None
        for g in groups:
            if t in g and (best is None or getattr(results[g], by)[t] < getattr(results[best], by)[t]):
                best = g
        if best is not None:
            where[t] = best
    return where


def best_group_losses(groups, results, n_tasks, by: str = "val_loss") -> tuple[dict[int, float], dict[int, Group]]:
    """Per task, the test loss in the chosen group picked by :func:`assign_tasks` (validation by default)."""
    where = assign_tasks(groups, results, n_tasks, by)
    return {t: results[g].test_loss[t] for t, g in where.items()}, where


def _stage_progress(progress: Progress, label: str) -> Callable[[int, int], None]:
    """``progress`` of one stage's runs as the run store's callback (done, total)."""
    def report(done: int, total: int) -> None:
        progress(label, done, total)

    return report


def _rows_to_groups(candidates: np.ndarray, rows) -> list[TaskSet]:
    return [TaskSet.from_mask(candidates[r]) for r in rows]


def _total_se(results, where: dict[int, Group]) -> float:
    """Standard error over the repeats of the summed test loss, each task read from ``where[task]``."""
    return standard_error(sum(results[g].values("test_loss", t) for t, g in where.items()))


def _paired_gain_se(results, where: dict[int, Group], stl: list[Group]) -> tuple[dict[int, float], float]:
    """Standard errors over the repeats of the paired gains (ETAP eq. 1) against STL: per task (each read from
    ``where[task]``), and of the summed test loss.

    Repeat r pairs the option's run r with the STL run r (common random numbers), as the gains of the gain table.
    """
    per_task = {t: mtl_gain(results[stl[t]].values("test_loss", t), results[g].values("test_loss", t))
                for t, g in where.items()}
    total_stl = sum(results[stl[t]].values("test_loss", t) for t in where)
    total = sum(results[g].values("test_loss", t) for t, g in where.items())
    return {t: standard_error(v) for t, v in per_task.items()}, standard_error(mtl_gain(total_stl, total))


@dataclass
class GroupingState:
    """The state the grouping stages (:data:`GROUPING_STAGES`) read and fill, in stage order.

    The first block is the job's input and what every stage adds to (the
    runs, their seconds, the measured groups); the second what the stages
    found; the third is derived from the input once (the method, the
    candidate groups as boolean rows, the run budget).
    """

    dataset: MultiTaskDataset
    options: GroupingOptions
    config: TrainConfig
    seed: int
    store: RunStore
    executor: Executor | None = None
    progress: Progress | None = None
    results: dict[tuple[int, ...], RepeatedResult] = field(default_factory=dict)  # keyed like the run store
    trained: list = field(default_factory=list)  # the run specifications this job trained (one per model)
    seconds: dict[str, float] = field(default_factory=dict)
    clock: dict[str, float] = field(default_factory=dict)  # seconds: trainer, predictor (set-up), selection
    predictor_fits: int = 0
    # (predictor, its predictions of every candidate): the last predictor's, see predict()
    _candidate_predictions: tuple[Any, np.ndarray] | None = field(default=None, init=False, repr=False)
    measured: list[Group] = field(default_factory=list)  # multi-task groups measured for the recommendation
    diverged: dict[tuple[int, ...], list] = field(default_factory=dict)  # models with a diverged repeat
    # what the stages found
    affinity_runs: AffinityRuns | None = None  # what the all-task runs measured for the method
    measurement: MethodMeasurement | None = None
    train: list[Group] = field(default_factory=list)
    initial_predictor: Any = None
    chosen: list[Group] = field(default_factory=list)
    objective: float = float("nan")
    rounds: list[RoundRecord] = field(default_factory=list)
    stop_reason: str = ""
    runs_used_by_recommendation: int = 0
    comparison: Comparison | None = None
    refit: RefitReport | None = None
    noise: NoiseReport | None = None
    prediction: PredictionQuality | None = None
    optima: Optima | None = None
    # derived from the input by __post_init__
    method: GroupingMethod = field(init=False)
    n: int = field(init=False)
    names: tuple[str, ...] = field(init=False)
    everything: Group = field(init=False)
    stl: list[Group] = field(init=False)
    candidates: np.ndarray = field(init=False)
    row_of: dict[Group, int] = field(init=False)
    higher_better: list[bool] = field(init=False)
    one_shot: int = field(init=False)
    max_runs: int = field(init=False)
    per_round: int = field(init=False)
    fold_data: list = field(init=False)  # the dataset of each fold ([dataset] with one fold)

    def __post_init__(self) -> None:
        from negtransfer.select.groups import all_groups

        self.method = self.options.grouping_method()
        self.n = self.dataset.n_tasks
        self.names = self.dataset.task_names
        self.everything = TaskSet.all_tasks(self.n)
        self.stl = TaskSet.singletons(self.n)
        self.candidates = all_groups(self.n)
        self.row_of = {g: r for r, g in enumerate(_rows_to_groups(self.candidates, range(len(self.candidates))))}
        self.higher_better = [t.metric_name != "mse" for t in self.dataset.tasks]
        self.one_shot = self.options.one_shot_runs(self.n)
        self.max_runs = self.options.max_runs if self.options.max_runs is not None else 3 * self.one_shot
        per_round = self.options.per_round
        self.per_round = max(per_round if per_round is not None else max(2 * self.options.budget, 4),
                             self.options.budget)
        self.fold_data = fold_datasets(self.dataset, self.options.folds)

    @property
    def affinity(self):
        """The method's affinity (None without one)."""
        return None if self.measurement is None else self.measurement.affinity_array

    # ---------------------------------------------------------------- runs
    def runs(self, label: str, groups: list[Group], affinity: AffinityRequest | None = None
             ) -> dict[tuple[int, ...], RepeatedResult]:
        """Every repeat (on every fold) of ``groups`` through the run store (:func:`negtransfer.runs.runner.ensure`).

        ``affinity``: also the all-task runs that measure it, in the same call, so each repeat's all-task
        model is trained once (the tracked run stands for the group run); kept in ``self.affinity_runs``.
        With folds the affinity is measured on the first fold's all-task runs. A fold's runs are those of its
        dataset (:func:`~negtransfer.data.folds.fold_dataset`), keyed in the store by its fingerprint.
        """
        start = time.perf_counter()
        progress = self.progress
        folds = len(self.fold_data)
        specs = group_specs(groups, self.config, self.options.repeats)
        per_fold = []
        for f, data in enumerate(self.fold_data):
            cb = None if progress is None else _stage_progress(progress, label if folds == 1 else
                                                                f"{label} (fold {f + 1}/{folds})")
            extra = [] if affinity is None or f else affinity.specs(self.n, self.config, self.options.repeats)
            trained: list = []
            outputs = ensure(data, specs + extra, self.seed, self.store, executor=self.executor,
                             chunk_size=self.options.chunk_size, on_progress=cb, trained=trained)
            self.trained += trained
            if extra:
                self.affinity_runs = AffinityRuns.from_outputs(extra, outputs[len(specs):], trained)
            per_fold.append(repeated_results(specs, outputs[: len(specs)]))
        out = across_folds(per_fold)
        self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start
        self._clocked("trainer", start)
        self.results.update(out)
        return out

    def measure(self, label: str, groups: list[Group], affinity: AffinityRequest | None = None) -> None:
        new = [g for g in groups if g not in self.measured and len(g) > 1]
        self.diverged.update(diverged_runs(self.runs(label, groups, affinity)))
        self.measured += [g for g in new if g not in self.diverged]  # a diverged group's gains say nothing

    # ---------------------------------------------------------------- gains
    def gains(self, groups: list[Group], split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(U, G): per-repeat gains (m, n, R) on ``split`` under the objective's measure."""
        split = split or self.options.gain_split
        if self.options.objective != "metric":
            return repeat_gains(groups, self.results, self.n, split=split)
        return repeat_gains(groups, self.results, self.n, split=split, measure="metric",
                            higher_better=self.higher_better)

    def mean_gains(self, groups: list[Group], split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(U, Y): membership and mean gains over the repeats (NaN outside a group)."""
        U, G = self.gains(groups, split)
        with np.errstate(invalid="ignore"):
            return U, G.mean(axis=2)

    def weights(self) -> np.ndarray:
        """Per-task weight turning a gain into a selection score (STL validation loss for total-loss)."""
        if self.options.objective != "total-loss":
            return np.ones(self.n)
        attr = "val_loss" if self.options.gain_split == "validation" else "test_loss"
        return np.array([getattr(self.results[(t,)], attr)[t] for t in range(self.n)])

    def fit_predictor(self, rows=None, fixed: dict | None = None):
        """The method's gain predictor fitted on the measured groups (or the listed rows of them, repeats allowed).

        ``fixed``: hyperparameters to use instead of searching them (quick refits).
        """
        groups = self.measured if rows is None else [self.measured[i] for i in rows]
        U, Y = self.mean_gains(groups)
        start = time.perf_counter()
        unfitted = self.method.build(self.affinity, self.seed, fixed)  # the first build imports its libraries
        self._clocked("predictor set-up", start)
        start = time.perf_counter()
        predictor = unfitted.fit(U, Y)
        self._clocked("predictor", start)
        self.predictor_fits += 1
        return predictor

    def predict(self, predictor, U: np.ndarray) -> np.ndarray:
        """``predictor.predict(U)``, its time counted as the predictor's.

        The predictions of every candidate (``U`` is ``self.candidates``) are kept for the last predictor
        asked: a round selects from them and then ranks the acquisitions by them, one computation.
        """
        start = time.perf_counter()
        if U is not self.candidates:
            predicted = predictor.predict(U)
        else:
            kept = self._candidate_predictions
            if kept is None or kept[0] is not predictor:
                kept = self._candidate_predictions = (predictor, predictor.predict(U))
            predicted = kept[1].copy()
        self._clocked("predictor", start)
        return predicted

    def _clocked(self, what: str, start: float) -> None:
        """Add the wall time since ``start`` to ``what`` (trainer, predictor, selection) for :class:`JobTiming`."""
        self.clock[what] = self.clock.get(what, 0.0) + time.perf_counter() - start

    def timing(self, job_seconds: float) -> JobTiming:
        """The shares of the job's ``job_seconds`` spent training, in the predictor and in the selection."""
        clock = self.clock
        set_up = clock.get("predictor set-up", 0.0)
        return JobTiming(job_seconds, clock.get("trainer", 0.0), clock.get("predictor", 0.0) + set_up,
                         clock.get("selection", 0.0), len(self.trained), self.predictor_fits, set_up)

    def scores(self, predicted: np.ndarray) -> np.ndarray:
        """Selection scores of every candidate: measured groups by measured gains (if use_measured)."""
        S = predicted.copy()
        if self.options.use_measured and self.measured:
            _, Y = self.mean_gains(self.measured)
            for g, gains in zip(self.measured, Y, strict=True):
                S[self.row_of[g]] = gains
        S = S * self.weights()[None, :]
        for members in self.diverged:  # never choose a group whose model diverged (gains.divergence)
            if len(members) > 1:
                S[self.row_of[TaskSet(members)], list(members)] = DIVERGED_SCORE
        return S

    def select(self, scores: np.ndarray, measured_only: bool = False) -> tuple[list[Group], float]:
        """At most B groups maximising the summed score (only measured groups and singletons if asked)."""
        from negtransfer.select.groups import select_groups

        start = time.perf_counter()
        rows = None
        if measured_only:
            rows = [r for g, r in self.row_of.items() if g in self.results]
        selection = select_groups(self.candidates, scores, self.options.budget, candidates=rows)
        self._clocked("selection", start)
        return _rows_to_groups(self.candidates, selection.groups), float(selection.objective)

    def acquire(self, chosen: list[Group], predictor, limit: int, seed: int
                ) -> tuple[list[Group], dict[str, float], dict[str, float]]:
        """Unmeasured groups to train next (:mod:`negtransfer.select.acquisition`).

        Returns the groups, the predictor's cross-validated error per task and each group's optimistic
        improvement (keyed ``"a+b"``).
        """
        from negtransfer.select.acquisition import cross_validated_error, optimistic_improvement, rank_acquisitions

        fixed = dict(getattr(predictor, "best_params_", {}))
        U_m, Y_m = self.mean_gains(self.measured)

        def fit_predict(train_rows, test_rows):
            return self.predict(self.fit_predictor(train_rows, fixed=fixed), U_m[test_rows])

        error = cross_validated_error(fit_predict, U_m, Y_m, seed=seed)
        error = np.where(np.isfinite(error), error, 0.0)
        scores = self.scores(self.predict(predictor, self.candidates))
        weights = self.weights()
        measured = np.array([g in self.results for g in self.row_of])
        optimistic = np.where(measured[:, None], scores, scores + self.options.kappa * error[None, :] * weights[None, :])
        incumbent = np.full(self.n, -np.inf)
        for g in chosen:
            for t in g:
                incumbent[t] = max(incumbent[t], scores[self.row_of[g], t])
        improvement = optimistic_improvement(self.candidates, optimistic, incumbent)
        rows = rank_acquisitions([self.row_of[g] for g in chosen], improvement, measured, limit)
        groups = _rows_to_groups(self.candidates, rows)
        cv_rmse = {self.names[t]: float(error[t]) for t in range(self.n)}
        gains = {g.label(self.names, sep="+"): float(improvement[self.row_of[g]]) for g in groups}
        return groups, cv_rmse, gains

    def runs_used(self) -> int:
        """Runs the recommendation has used so far (repeats and folds included, stored ones too)."""
        return self.options.runs_per_group * len(self.results)

    def group_names(self, groups: list[Group]) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(g.names(self.names)) for g in groups)

    # ------------------------------------------------------------- totals
    def val_total(self, groups: list[Group]) -> float:
        """Summed validation loss of a grouping (each task in its best group by validation)."""
        where = assign_tasks(groups, self.results, self.n, "val_loss")
        return float(sum(self.results[g].val_loss[t] for t, g in where.items()))


# --------------------------------------------------------------------------- stages


def train_references(state: GroupingState) -> None:
    """Stage 1: STL runs and the all-task group (always a training group), with what the method measures on
    the all-task runs (:meth:`~negtransfer.jobs.grouping_methods.GroupingMethod.reference_runs`), in one pass
    through the run store: each repeat's all-task model is trained once."""
    state.measure("STL + all-task runs", state.stl + [state.everything],
                  affinity=state.method.reference_runs(state.options))


def check_references(state: GroupingState) -> None:
    """Stage 1b: stop when an STL or all-task model diverged (:mod:`negtransfer.gains.divergence`): every gain and
    total rests on them (the runs stay in the store)."""
    found: dict[tuple[int, ...], list] = {g: items for g, items in state.diverged.items()
                                          if len(g) == 1 or g == state.everything}
    if found:
        raise DivergedError(
            f"{len(found)} of {state.n + 1} reference models diverged, so no gain can be measured: "
            f"{describe_diverged(found, state.names, state.options.runs_per_group)}; lower --lr (now {state.config.lr:g}) "
            f"or check the features' scale (the runs are kept in the run store)")


def measure_method(state: GroupingState) -> None:
    """Stage 2: what the method measures before its first fit (ETAP's or TAG's affinity from the tracked
    all-task runs, GRAD-TAE's from projected gradients; nothing for the others): one call to the method."""
    start = time.perf_counter()
    context = MeasureContext(state.fold_data[0], state.config, state.seed, state.store, state.executor, state.options,
                             state.progress, state.affinity_runs)
    state.measurement = state.method.measure(context)
    if state.measurement is not None:
        state.seconds["affinity runs"] = time.perf_counter() - start


def train_training_groups(state: GroupingState) -> None:
    """Stage 3: the method's first groups (by ``--design``; every pair for HOA and Ayman et al.) and the all-task group."""
    options = state.options
    train = state.method.training_groups(state.n, options, state.seed) + [state.everything]
    state.train = list(dict.fromkeys(train))
    state.measure("training groups", state.train)


def select_and_refine(state: GroupingState) -> None:
    """Stage 4: fit, select, train the chosen groups; refine for more rounds (:func:`_refine`)."""
    state.initial_predictor = state.fit_predictor()
    state.chosen, state.objective, state.rounds, state.stop_reason = _refine(state, state.initial_predictor)


def train_chosen_groups(state: GroupingState) -> None:
    """Stage 5: make sure every chosen group is trained (the one-shot protocol trains them after selecting)."""
    missing = [g for g in state.chosen if g not in state.results]
    if missing:
        state.measure("chosen groups", missing)
    state.runs_used_by_recommendation = state.runs_used()


def compare_with_alternatives(state: GroupingState) -> None:
    """Stage 6: never knowingly worse: the recommendation against simple alternatives, on the audit rows when the
    dataset has them (the fallback to the better alternative decided there), else on validation data."""
    state.comparison = _compare_with_alternatives(state, state.chosen, state.everything)


def refit_after_decision(state: GroupingState) -> None:
    """Stage 6b (``--refit``): the chosen groups, STL and the all-task model retrained on every non-test row for
    fixed epochs and scored on test (:func:`_refit`); nothing without ``refit``."""
    if state.options.refit:
        state.refit = _refit(state, _found(state.comparison, "compare_with_alternatives").recommendation)


def measure_noise(state: GroupingState) -> None:
    """Stage 7: the noise floor of the measured gains (the choice split, and test): the seed noise (repeats
    compared on the same folds; :func:`~negtransfer.gains.noise.noise_floor` of the gains averaged over the
    folds) and the split noise (folds compared; :func:`~negtransfer.gains.noise.split_noise`)."""
    K = state.options.folds
    U_m, G_m = state.gains(state.measured)
    U_t, G_t = repeat_gains(state.measured, state.results, state.n, split="test")
    if K > 1:
        with np.errstate(invalid="ignore"):
            floor = noise_floor(U_m, fold_gains(G_m, K).mean(axis=3))
            test = noise_floor(U_t, fold_gains(G_t, K).mean(axis=3))
        if state.options.repeats < 2:
            floor["verdict"] = (f"Seed noise not measured: one repeat on each of the {K} folds, so seed noise and "
                                "real differences between groups cannot be told apart; --repeats 2 or more measures "
                                "it.")
    else:
        floor, test = noise_floor(U_m, G_m), noise_floor(U_t, G_t)
    split = split_noise(U_m, G_m, K, fold_validation_rows(state.dataset, K) if K > 1 else None)
    test = {k: v for k, v in test.items() if k != "verdict"}
    state.noise = NoiseReport(floor, test, state.options.gain_split, split)


def assess_prediction(state: GroupingState) -> None:
    """Stage 8: prediction quality of the initial (one-shot) predictor on held-out groups."""
    state.prediction = _prediction_quality(state, state.train, state.initial_predictor)


def find_optima(state: GroupingState) -> None:
    """Stage 9 (``--exhaustive``): the optimal groupings on measured losses, each scored by its own rule."""
    if state.options.exhaustive:
        state.optima = _optima(state)


#: The grouping job, stage by stage (each a function of the :class:`GroupingState`).
GROUPING_STAGES: tuple[Callable[[GroupingState], None], ...] = (
    train_references,
    check_references,
    measure_method,
    train_training_groups,
    select_and_refine,
    train_chosen_groups,
    compare_with_alternatives,
    refit_after_decision,
    measure_noise,
    assess_prediction,
    find_optima,
)


def check_labelled_splits(dataset: MultiTaskDataset, options: GroupingOptions) -> None:
    """Raise ``ValueError`` naming every task without a labelled row in a split the grouping job reads.

    The validation split: the job stops every model, measures each task's gains (ETAP eq. 1, on validation losses
    by default) and chooses its groups there; a task without a validation label had NaN gains, and the job failed
    after training in the gain predictor or on a non-finite affinity. With ``options.folds > 1`` every fold
    validates on its own part of the non-test rows, which
    :func:`~negtransfer.data.folds.fold_validation_rows` checks instead. The test split: every model's test loss,
    the report's totals and its comparison with STL and the all-task model; a task without a test label showed
    0.0 there. The audit rows (``options.audit``) are held back first, as :func:`grouping_state` does.

    Parameters
    ----------
    dataset : MultiTaskDataset
        The job's dataset, before the audit rows are held back.
    options : GroupingOptions
        Its ``folds``, ``audit`` and ``audit_source`` say which rows validate.
    """
    held = dataset.with_audit(options.audit, source=options.audit_source)  # itself when audit = 0
    labelled = ~np.isnan(np.asarray(held.Y, dtype=float))
    in_split = {code: labelled & (held.split == code)[:, None] for code in (TRAIN, VALIDATION, TEST)}
    needed = ((VALIDATION, "validation"),) if options.folds <= 1 else ()
    if (held.split == TEST).any():  # a dataset without a test split (test fraction 0) reports no test figures
        needed = (*needed, (TEST, "test"))
    gaps = [(word, [j for j in range(held.n_tasks) if not in_split[code][:, j].any()]) for code, word in needed]
    gaps = [(word, missing) for word, missing in gaps if missing]
    if not gaps:
        return

    def counts(j: int) -> str:
        audit = int((labelled[:, j] & (held.split == AUDIT)).sum())
        return (f"{held.task_names[j]!r}: {int(labelled[:, j].sum())} labelled row(s), "
                f"{int(in_split[TRAIN][:, j].sum())} train, {int(in_split[VALIDATION][:, j].sum())} validation, "
                f"{int(in_split[TEST][:, j].sum())} test" + (f", {audit} audit (--audit)" if audit else ""))

    clauses = []
    for word, missing in gaps:
        names = ", ".join(repr(held.task_names[j]) for j in missing)
        subject = f"task {names} has" if len(missing) == 1 else f"tasks {names} have"
        clauses.append(f"{subject} no labelled rows in the {word} split ({'; '.join(counts(j) for j in missing)})")
    why = {"validation": "the grouping measures every task's gains and chooses its groups on validation losses",
           "test": "the report's test losses and its comparison with STL and the all-task model are measured "
                   "on test rows"}
    them = "it" if len({j for _, missing in gaps for j in missing}) == 1 else "them"
    fix = f"add labelled rows for {them} or leave {them} out with --tasks"
    if any(word == "validation" for word, _ in gaps):
        fix += ", or, for the validation split, cross-validate with --folds 3 (each fold validates on its own rows)"
    raise ValueError(f"{'; '.join(clauses)}; {' and '.join(why[word] for word, _ in gaps)}: {fix}")


def grouping_state(dataset: MultiTaskDataset, options: GroupingOptions, config: TrainConfig, seed: int,
                   store: RunStore, *, executor: Executor | None = None, progress: Progress | None = None
                   ) -> GroupingState:
    """The state a grouping job starts from: ``dataset`` with ``options.audit`` of its non-test rows held back as
    audit rows (:meth:`~negtransfer.data.dataset.MultiTaskDataset.with_audit`; itself when the share is 0), cut
    into ``options.folds`` folds, so :meth:`GroupingState.runs` trains and scores a group on the job's rows
    (``compare-grouping --surgery`` trains its all-task rows through it)."""
    dataset = dataset.with_audit(options.audit, source=options.audit_source)  # itself when audit = 0
    return GroupingState(dataset, options, config, seed, store, executor, progress)


def run_grouping(
    dataset: MultiTaskDataset,
    options: GroupingOptions,
    config: TrainConfig,
    seed: int,
    store: RunStore,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
) -> GroupingResult:
    """Run the whole grouping job (:data:`GROUPING_STAGES`) and return its typed report.

    See the module doc and docs/methods/grouping.md.

    Returns
    -------
    GroupingResult
        ``report`` (:class:`~negtransfer.jobs.grouping_report.GroupingReport`; ``report.to_dict()`` is
        report.json) and ``results`` (every group's repeated result the job read or trained).

    Raises
    ------
    ValueError
        Before any training: bad options, or a task without labelled validation or test rows
        (:func:`check_labelled_splits`).
    """
    options.check(dataset.n_tasks)
    check_labelled_splits(dataset, options)
    method = options.grouping_method()
    if method.measures_affinity and config.gradient_aggregation != "sum":
        plain = ", ".join(m for m in method_names() if not get_method(m).measures_affinity)
        raise ValueError(f"--method {options.method} measures affinity on all-task runs trained with the summed "
                         f"gradient; gradient_aggregation {config.gradient_aggregation!r} works with the methods "
                         f"that need no affinity ({plain}), "
                         "or compare it as a row with `negtransfer compare-grouping --surgery`")
    state = grouping_state(dataset, options, config, seed, store, executor=executor, progress=progress)
    t0 = time.perf_counter()
    for stage in GROUPING_STAGES:
        stage(state)
    return GroupingResult(report=_report(state, time.perf_counter() - t0), results=state.results)


def _losses(state: GroupingState) -> Losses:
    """Per-task test losses of STL, the all-task model, the chosen groups (and the test oracle), with totals."""
    n, names, results = state.n, state.names, state.results
    selected_loss, where = best_group_losses(state.chosen, results, n)
    test_loss = {
        "stl": {names[t]: results[(t,)].test_loss[t] for t in range(n)},
        "all_tasks": {names[t]: results[state.everything].test_loss[t] for t in range(n)},
        "selected": {names[t]: selected_loss[t] for t in range(n)},
    }
    totals = {k: float(sum(v.values())) for k, v in test_loss.items()}
    totals_se = {"stl": _total_se(results, {t: g for t, g in enumerate(state.stl)}),
                 "all_tasks": _total_se(results, {t: state.everything for t in range(n)}),
                 "selected": _total_se(results, where)}
    gain_se, total_gain_se = {}, {}
    for option, source in (("all_tasks", {t: state.everything for t in range(n)}), ("selected", where)):
        per_task, total_gain_se[option] = _paired_gain_se(results, source, state.stl)
        gain_se[option] = {names[t]: v for t, v in per_task.items()}
    _, total_gain_se["selected_vs_all_tasks"] = _paired_gain_se(results, where, [state.everything] * n)
    if state.optima is not None:
        totals["test_oracle"] = state.optima.test_oracle.total
        totals["validation_oracle"] = state.optima.validation_oracle.total
        test_loss["optimal"] = dict(state.optima.test_oracle.test_loss)
        totals["optimal"] = state.optima.test_oracle.total
    return Losses(test_loss, totals, totals_se, gain_se, total_gain_se)


def _found(value: Found | None, stage: str) -> Found:
    """What ``stage`` found, for the report (it runs before the report is made)."""
    if value is None:
        raise RuntimeError(f"the grouping report needs what stage {stage} found: run every GROUPING_STAGES first")
    return value


def _report(state: GroupingState, seconds: float) -> GroupingReport:
    """The typed report of a finished job."""
    options, names = state.options, state.names
    _, task_group = best_group_losses(state.chosen, state.results, state.n)
    measurement = state.measurement or MethodMeasurement()
    used = options.runs_per_group * len(set(state.measured) | set(state.stl) | {state.everything})
    state.seconds["total"] = seconds
    return GroupingReport(
        method=options.method, dataset=state.dataset.name, fingerprint=state.dataset.fingerprint(), seed=state.seed,
        budget=options.budget, repeats=options.repeats, objective=options.objective, design=options.design,
        gain_split=options.gain_split, options=asdict(options), config=state.config.to_dict(), tasks=tuple(names),
        measurement=measurement, train_groups=state.group_names(state.train),
        selection=Selection(state.group_names(state.chosen), float(state.objective),
                            {names[t]: tuple(g.names(names)) for t, g in task_group.items()}),
        refinement=Refinement(tuple(state.rounds), state.stop_reason, state.max_runs, state.one_shot,
                              state.runs_used_by_recommendation),
        comparison=_found(state.comparison, "compare_with_alternatives"), noise=_found(state.noise, "measure_noise"),
        prediction=_found(state.prediction, "assess_prediction"), optima=state.optima,
        losses=_losses(state),
        runs=RunCounts(len(state.trained), used, state.store.count(), options.folds,
                       tuple(fold_validation_rows(state.dataset, options.folds)), state.one_shot // options.folds),
        seconds=state.seconds, timing=state.timing(seconds),
        diverged=describe_diverged(state.diverged, names, options.runs_per_group, limit=len(state.diverged)),
        refit=state.refit,
    )


# --------------------------------------------------------------------------- refinement

_ONE_SHOT = "one round: the paper's one-shot protocol (fit, select, train the chosen groups)"


def _refine(job: GroupingState, predictor) -> tuple[list[Group], float, list[RoundRecord], str]:
    """Select, train what the selection (and, with more rounds, the acquisition rule) asks for, refit, repeat.

    Returns the final selection, its predicted objective, one record per round and why it stopped.
    """
    options, R = job.options, job.options.runs_per_group
    chosen, objective = job.select(job.scores(job.predict(predictor, job.candidates)))
    rounds: list[RoundRecord] = []
    stop_reason = _ONE_SHOT
    fitted_on = len(job.measured)  # the measured groups the predictor was fitted on (a refit on them is the same)
    for k in range(1, options.rounds + 1):
        record, acquired = _play_round(job, k, chosen, objective, predictor)
        rounds.append(record)
        previous = chosen
        if k == options.rounds:
            if options.rounds > 1:
                stop_reason = f"all {options.rounds} rounds used"
            break
        if not acquired:
            stop_reason = (f"converged in round {k}: the selection is measured and no unmeasured group could "
                           "improve it even optimistically")
            break
        predictor, fitted_on = job.fit_predictor(), len(job.measured)
        chosen, objective = job.select(job.scores(job.predict(predictor, job.candidates)))
        if job.runs_used() + R * options.budget > job.max_runs and any(g not in job.results for g in chosen):
            stop_reason = f"run budget ({job.max_runs} runs) spent after round {k}"
            chosen = previous
            break
    if options.rounds > 1 and not stop_reason.startswith("converged"):
        # the recommendation is made of measured groups only: select once more among them
        if len(job.measured) != fitted_on:
            predictor = job.fit_predictor()
        final, objective = job.select(job.scores(job.predict(predictor, job.candidates)), measured_only=True)
        if final != chosen:
            rounds.append(RoundRecord(len(rounds) + 1, job.group_names(final), objective, 0, job.runs_used(),
                                      final_among_measured=True, selection_val_loss=job.val_total(final)))
        chosen = final
    return chosen, objective, rounds, stop_reason


def _play_round(job: GroupingState, k: int, chosen: list[Group], objective: float, predictor
                ) -> tuple[RoundRecord, list[Group]]:
    """Round ``k``: train the selection's unmeasured groups (and, before the last round, what the acquisition
    rule ranks best within the run budget); returns the round's record and the groups it trained."""
    options, R, names = job.options, job.options.runs_per_group, job.names
    unmeasured = [g for g in chosen if g not in job.results]
    runs_before = job.runs_used()
    budget_left = (job.max_runs - job.runs_used()) // R
    acquire, cv_rmse, improvement, measured = unmeasured, None, None, None
    if k != options.rounds and budget_left > len(unmeasured):
        acquire, cv_rmse, improvement = job.acquire(chosen, predictor, min(job.per_round, budget_left), job.seed + k)
    if acquire:
        predicted = job.predict(predictor, job.candidates[[job.row_of[g] for g in acquire]])
        job.measure("chosen groups" if k == 1 else "refinement", acquire)
        _, values = job.mean_gains(acquire)
        measured = tuple({"group": g.names(names), "task": names[t], "predicted": float(predicted[i, t]),
                          "measured": float(values[i, t])} for i, g in enumerate(acquire) for t in g)
    record = RoundRecord(k, job.group_names(chosen), objective, len(unmeasured), runs_before,
                         predictor_cv_rmse=cv_rmse, optimistic_improvement=improvement, measured=measured,
                         selection_val_loss=job.val_total(chosen))
    return record, acquire


# --------------------------------------------------------------------------- assessment


def _held_out_groups(job: GroupingState, train: list[Group]) -> list[Group]:
    """Every group the first predictor was not fitted on (``--exhaustive``) or ``--evaluate M`` random ones."""
    options, n = job.options, job.n
    fitted_on = set(train)
    available = sum(comb(n, s) for s in range(2, n))
    if options.exhaustive:
        return [g for g in job.row_of if len(g) > 1 and g not in fitted_on]
    if options.evaluate > 0 and available:
        pool = [TaskSet(g) for g in random_groups(n, min(options.evaluate + len(train), available), (2, n - 1),
                                                  job.seed + 1)]
        return [g for g in pool if g not in fitted_on][: options.evaluate]
    return []


def _prediction_quality(job: GroupingState, train: list[Group], predictor) -> PredictionQuality:
    """Pearson, R^2, within-task Pearson and the per-task-mean baseline of ``predictor`` on held-out groups.

    Held-out: every group it was not fitted on (``--exhaustive``) or ``--evaluate M`` random ones; their
    gains are measured on the test split (ETAP eq. 1), whatever split the job chose on.
    """
    names = job.names
    held_out = _held_out_groups(job, train)
    points: list[PredictionPoint] = []
    if held_out:
        job.runs("held-out groups", held_out)
        U_h, Y_h = job.mean_gains(held_out, split="test")
        P_h = job.predict(predictor, U_h)
        points = [PredictionPoint(tuple(g.names(names)), names[t], float(P_h[row, t]), float(Y_h[row, t]))
                  for row, g in enumerate(held_out) for t in g]
    predicted = np.array([p.predicted for p in points])
    actual = np.array([p.actual for p in points])
    tasks = np.array([p.task for p in points])
    pearson, r2 = _pearson_r2(predicted, actual)
    U_tr, Y_tr = job.mean_gains([g for g in train if len(g) > 1])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a task in no training group: NaN
        task_mean = np.nanmean(np.where(U_tr, Y_tr, np.nan), axis=0)
    baseline = np.array([task_mean[names.index(p.task)] for p in points])
    return PredictionQuality(pearson, r2, len(held_out),
                             _within_task_pearson(predicted, actual, tasks) if points else None,
                             _pearson_r2(baseline, actual)[0] if points else None, tuple(points))


def _compare_with_alternatives(job: GroupingState, chosen: list[Group], everything: Group) -> Comparison:
    """The chosen grouping against STL and the all-task model, and the recommendation.

    On the audit rows when the dataset has them (:func:`_compare_on_audit`); else the chosen grouping's
    validation total against STL (if the budget allows it) and the all-task model, on the validation rows that
    also chose the groups.
    """
    n = job.n
    chosen_val = job.val_total(chosen)
    alternatives = {ALL_TASKS_NAME: job.val_total([everything])}
    if job.options.budget >= n:
        alternatives[STL_NAME] = job.val_total(job.stl)
    validation = {"selected": chosen_val, **alternatives}
    if (job.dataset.split == AUDIT).any():
        return _compare_on_audit(job, chosen, validation)
    best_name = min(alternatives, key=alternatives.__getitem__)
    best = alternatives[best_name]
    better = chosen_val < best
    if better:
        verdict = (f"On validation data the chosen grouping (summed loss {chosen_val:.4f}) beats every simple "
                   f"alternative the budget allows; the closest is the {best_name} ({best:.4f}).")
    elif list(chosen) == [everything] and best_name == ALL_TASKS_NAME:  # (not "is NOT better than" itself)
        verdict = (f"The chosen grouping is the {ALL_TASKS_NAME} itself (summed validation loss {chosen_val:.4f}): "
                   f"no grouping the budget allows beat it on validation data.")
    else:
        verdict = (f"On validation data the chosen grouping (summed loss {chosen_val:.4f}) is NOT better than the "
                   f"{best_name} ({best:.4f}); prefer the {best_name} unless the test figures below say otherwise.")
    if job.options.budget < n:
        verdict += f" STL needs {n} groups, more than the budget of {job.options.budget}."
    rows = int((job.dataset.split == VALIDATION).sum())
    basis = (f"Decided on the {rows} validation rows that also chose the groups (no rows were held back; "
             f"--audit FRACTION decides on rows no choice used).")
    return Comparison(validation, bool(better), best_name, verdict,
                      recommendation="selected" if better else ALTERNATIVE_KEYS[best_name], decided_on="validation",
                      rows=rows, basis=basis)


def _audit_totals(job: GroupingState, where: dict[int, Group]) -> np.ndarray:
    """Per repeat (R,), the summed audit loss of a grouping, each task read from ``where[task]``."""
    return np.asarray(sum(job.results[g].values("audit_loss", t) for t, g in where.items()), dtype=float)


def runs_text(options: GroupingOptions) -> str:
    """What a paired difference is over: ``3 repeat(s)``, or ``9 runs (3 repeat(s) x 3 folds)``."""
    if options.folds == 1:
        return f"{options.repeats} repeat(s)"
    return f"{options.runs_per_group} runs ({options.repeats} repeat(s) x {options.folds} folds)"


def _scored_rows(dataset: MultiTaskDataset, code: int) -> tuple[dict[int, np.ndarray], np.ndarray, int]:
    """The rows of split ``code`` labelled for any task, as :func:`~negtransfer.gains.paired_rows.row_contributions`
    reads them: per task, the positions of its labelled rows among them; per row, its stratum (its task on
    per-task-rows data, else one stratum); and their count."""
    rows = np.flatnonzero(dataset.split == code)
    labelled = ~np.isnan(dataset.Y[rows])
    scored = labelled.any(axis=1)
    position = np.cumsum(scored) - 1
    positions = {t: position[labelled[:, t]] for t in range(dataset.Y.shape[1])}
    strata = (np.zeros(int(scored.sum()), dtype=np.int64) if dataset.row_task is None
              else np.asarray(dataset.row_task)[rows[scored]])
    return positions, strata, int(scored.sum())


def _row_losses(job: GroupingState, where: dict[int, Group], attr: str) -> dict[int, np.ndarray] | None:
    """Per task, (R, n_t) the per-row ``attr`` ("audit_row_loss", "test_row_loss") read from ``where[task]``;
    None when a run did not record them (e.g. a result stored before per-row losses existed)."""
    out = {}
    for t, g in where.items():
        values = job.results[g].row_values(attr, t)
        if values is None:
            return None
        out[t] = values
    return out


def _paired_differences(job: GroupingState, sources: dict[str, dict[int, Group]], code: int, attr: str,
                        per_run: dict[str, np.ndarray]) -> dict[str, PairedDifference]:
    """Per alternative (STL, the all-task model), the chosen grouping's paired difference on the rows of split
    ``code``: ``mean`` (over runs, of the per-run summed losses ``per_run``), ``se`` over rows and runs
    (:func:`~negtransfer.gains.paired_rows.paired_row_se`; the over-runs s.e. when per-row losses are missing),
    ``se_runs`` (over runs only, what the audit printed before) and ``verdict`` (three-way,
    :func:`~negtransfer.gains.paired_rows.noise_verdict` at :data:`AUDIT_MARGIN_SE`)."""
    positions, strata, n_rows = _scored_rows(job.dataset, code)
    chosen = _row_losses(job, sources["selected"], attr)
    out: dict[str, PairedDifference] = {}
    for name in (STL_NAME, ALL_TASKS_NAME):
        other = None if chosen is None else _row_losses(job, sources[name], attr)
        z = (None if chosen is None or other is None
             else row_contributions({t: chosen[t] - other[t] for t in chosen}, positions, n_rows))
        out[name] = paired_difference(per_run["selected"] - per_run[name], z, AUDIT_MARGIN_SE, strata)
    return out


def _test_difference(job: GroupingState, sources: dict[str, dict[int, Group]]) -> dict[str, PairedDifference]:
    """The same paired differences on the test rows (scored only, deciding nothing): what the audit's verdict
    is checked against (benchmarks/grouping_quality.py)."""
    per_run = {name: np.asarray(sum(job.results[g].values("test_loss", t) for t, g in where.items()), dtype=float)
               for name, where in sources.items()}
    return _paired_differences(job, sources, TEST, "test_row_loss", per_run)


def _compare_on_audit(job: GroupingState, chosen: list[Group], validation: dict[str, float]) -> Comparison:
    """The comparison and the never-knowingly-worse fallback decided on the audit rows (issue 25, item 2).

    Each task's loss is read from the chosen group that validation assigned it (:func:`assign_tasks`): the
    audit rows choose nothing. The chosen grouping is recommended only when its summed audit loss is below the
    better alternative's (the lower audit loss of STL and the all-task model) by more than
    :data:`AUDIT_MARGIN_SE` standard errors of the paired difference; otherwise that better alternative is.
    The difference is paired run r against run r (the same repeat and fold, common random numbers) and row
    against row; its standard error counts both the runs' noise and the audit rows' own sampling noise
    (which rows happened to be held back): (*) of :mod:`negtransfer.gains.paired_rows`,

        Var = max(0, V_rows - E) + max(0, V_runs - E) + E,

    V_rows the stratified variance of the per-row differences (each a mean over the runs), V_runs the
    over-runs variance (``se_runs``, the s.e. printed before), E the row-by-run interaction's share.
    The verdict is three-way (better beyond noise, within noise, worse beyond noise, against that better
    alternative); the test rows' paired differences are computed the same way for scoring only.
    STL is compared whatever the budget: it is what training without grouping gives.
    """
    n, budget = job.n, job.options.budget
    sources = {"selected": assign_tasks(chosen, job.results, n, "val_loss"),
               STL_NAME: dict(enumerate(job.stl)), ALL_TASKS_NAME: {t: job.everything for t in range(n)}}
    per_repeat = {name: _audit_totals(job, where) for name, where in sources.items()}
    totals = {name: float(np.mean(v)) for name, v in per_repeat.items()}
    difference = _paired_differences(job, sources, AUDIT, "audit_row_loss", per_repeat)
    best_name = min((STL_NAME, ALL_TASKS_NAME), key=totals.__getitem__)
    closest = difference[best_name]
    better = closest.verdict == "better"
    rows = int((job.dataset.split == AUDIT).sum())

    def against(name: str) -> str:
        v = difference[name]
        se = f" \u00b1 {v.se:.4f}" if np.isfinite(v.se) else ""
        return f"the {name} {totals[name]:.4f} (difference {v.mean:+.4f}{se})"

    basis = f"Decided on {rows} audit rows no choice used (not gains, stopping, selection or assignment)."
    by_row = bool(np.isfinite(closest.se_rows))  # False: results stored without per-row losses
    verdict = (f"{basis[:-1]}: the "
               f"chosen grouping's summed audit loss is {totals['selected']:.4f}, against {against(STL_NAME)} and "
               f"{against(ALL_TASKS_NAME)}; differences paired over {runs_text(job.options)}"
               + (" and the audit rows, \u00b1 one standard error (the audit rows' sampling noise and the runs' "
                  "noise). " if by_row else ", \u00b1 one standard error (the runs' noise only). "))
    verdict += (f"Verdict: the chosen groups are {verdict_phrase(closest.verdict, 'than')} the {best_name} "
                "(the better of the two). ")
    if better:
        verdict += (f"It beats the {best_name} by more than {AUDIT_MARGIN_SE:g} standard "
                    "error(s): recommended: the chosen groups.")
    else:
        verdict += (f"It does NOT beat the {best_name} by more than {AUDIT_MARGIN_SE:g} "
                    f"standard error(s): recommended: the {best_name}.")
        if best_name == STL_NAME and budget < n:
            verdict += f" (STL trains {n} models, more than the budget of {budget} groups.)"
    return Comparison(validation, bool(better), best_name, verdict,
                      recommendation="selected" if better else ALTERNATIVE_KEYS[best_name], decided_on="audit",
                      rows=rows, basis=basis, audit_loss=totals, audit_difference=difference,
                      noise_verdict=closest.verdict, test_difference=_test_difference(job, sources))


# --------------------------------------------------------------------------- refit after the decision

#: How the refits' fixed epochs are chosen, in words (report.json ``refit.epochs_rule``; docs/methods/grouping.md).
REFIT_EPOCHS_RULES = {
    "passes": ("each refit trains as many epochs (passes over its training rows) as its early-stopped run of the same "
               "group and repeat ran to its best epoch (the mean over folds, rounded, with --folds), not scaled by "
               "the larger row count"),
    "steps": ("each refit trains its early-stopped run's best epoch (same group and repeat; the mean over folds, "
              "rounded, with --folds) times that run's training rows over the refit's (rounded, at least 1): about "
              "the same number of optimiser steps on more rows"),
}


def refit_dataset(dataset: MultiTaskDataset) -> MultiTaskDataset:
    """A copy of ``dataset`` whose every non-test row (train, validation, audit) is a training row.

    The same rows whatever share was held back as audit rows, so a job with and without ``--audit`` refits on
    the same data (the same fingerprint). Features keep the original scaling.
    """
    split = np.where(dataset.split == TEST, TEST, TRAIN).astype(dataset.split.dtype)
    info = {key: value for key, value in dataset.info.items() if key != "audit"}
    return MultiTaskDataset(dataset.name, dataset.tasks, dataset.X, dataset.Y, split, dataset.feature_names,
                            row_task=dataset.row_task, info={**info, "refit": "every non-test row trains"})


def refit_epochs(result: RepeatedResult, repeats: int, folds: int, scale: float | Sequence[float] = 1.0) -> list[int]:
    """Per repeat, the fixed epochs of a refit: the stopping epoch of that repeat's early-stopped run (runs are
    repeat-major over folds, :func:`~negtransfer.runs.group_specs.across_folds`) times ``scale``, with folds the
    mean over folds of each fold's stopping epoch times that fold's scale (rounded, at least 1).

    ``scale`` : one factor for every fold, or one per fold (:func:`_row_ratio` of each fold's training rows:
    the folds of a group need not train equally many rows).
    """
    per_fold = [float(scale)] * folds if isinstance(scale, (int, float)) else [float(v) for v in scale]
    if len(per_fold) != folds:
        raise ValueError(f"refit_epochs: {len(per_fold)} scale factors for {folds} folds; give one per fold")
    if folds == 1:  # one fold: the product itself (bit-identical to the single-factor rule)
        return [max(1, int(round(per_fold[0] * result.runs[r].best_epoch))) for r in range(repeats)]
    return [max(1, int(round(np.mean([per_fold[f] * result.runs[r * folds + f].best_epoch for f in range(folds)]))))
            for r in range(repeats)]


def _row_ratio(trained_on: MultiTaskDataset, refit: MultiTaskDataset, group: Group, config: TrainConfig) -> float:
    """The training rows of ``group`` (rows labelled for any of its tasks) in ``trained_on`` over those in
    ``refit``: the factor that keeps a refit's optimiser steps (1 where an epoch is a fixed step count)."""
    if config.steps_per_epoch:
        return 1.0
    labelled = ~np.isnan(trained_on.Y[:, list(group)]).all(axis=1)
    before = int((labelled & (trained_on.split == TRAIN)).sum())
    after = int((labelled & (refit.split == TRAIN)).sum())
    return before / after if after else 1.0


def _refit(job: GroupingState, recommendation: str) -> RefitReport:
    """Retrain the chosen groups, STL and the all-task model on :func:`refit_dataset` for fixed epochs
    (:func:`refit_epochs`) through the run store, and score them on test.

    Repeat r of a group trains with the training seed of its early-stopped repeat r (common random numbers),
    for that run's stopping epoch; its store key carries the refit rows (the dataset's fingerprint) and the
    epochs (``max_epochs`` with ``early_stopping`` off). Runs of different epochs share stacks
    (:func:`negtransfer.runs.runner.ensure`).
    """
    n, names, options = job.n, job.names, job.options
    sources = {"selected": assign_tasks(job.chosen, job.results, n, "val_loss"),
               "stl": dict(enumerate(job.stl)), "all_tasks": {t: job.everything for t in range(n)}}
    groups = list(dict.fromkeys(g for where in sources.values() for g in where.values()))
    data = refit_dataset(job.dataset)
    configs: dict[int, TrainConfig] = {}
    specs, epochs = [], {}
    for g in groups:
        scale = ([_row_ratio(fold, data, g, job.config) for fold in job.fold_data]
                 if options.refit_epochs == "steps" else 1.0)
        epochs[g] = refit_epochs(job.results[g], options.repeats, options.folds, scale)
        for r, e in enumerate(epochs[g]):
            config = configs.setdefault(e, replace(job.config, max_epochs=e, early_stopping=False))
            specs.append(RunSpec(GROUP, g, r, config))
    start = time.perf_counter()
    progress = None if job.progress is None else _stage_progress(job.progress, "refit on every non-test row")
    trained: list = []
    outputs = ensure(data, specs, job.seed, job.store, executor=job.executor, chunk_size=options.chunk_size,
                     on_progress=progress, trained=trained)
    job.trained += trained
    job.seconds["refit"] = time.perf_counter() - start
    job._clocked("trainer", start)
    refits = repeated_results(specs, outputs)
    per_repeat = {key: np.asarray(sum(refits[g].values("test_loss", t) for t, g in where.items()), dtype=float)
                  for key, where in sources.items()}
    built = {key: RefitOption(float(np.mean(per_repeat[key])), standard_error(per_repeat[key]),
                              {names[t]: refits[g].test_loss[t] for t, g in sorted(where.items())},
                              {g.label(names, sep="+"): tuple(epochs[g]) for g in dict.fromkeys(where.values())})
             for key, where in sources.items()}
    difference = {key: {"mean": float(np.mean(per_repeat[recommendation] - per_repeat[key])),
                        "se": standard_error(per_repeat[recommendation] - per_repeat[key])}
                  for key in ("stl", "all_tasks") if key != recommendation}
    split = job.dataset.split
    rows = {"training": int((data.split == TRAIN).sum()), "from_train": int((split == TRAIN).sum()),
            "from_validation": int((split == VALIDATION).sum()), "from_audit": int((split == AUDIT).sum())}
    return RefitReport(recommendation, built, difference, rows, REFIT_EPOCHS_RULES[options.refit_epochs])


def oracle_grouping(results, n_tasks: int, budget: int, by: str = "test_loss") -> tuple[list[Group], dict[int, float]]:
    """The at most ``budget`` groups minimising the summed ``by`` loss, each task in its best chosen group.

    Chosen and scored by one rule: every task takes its lowest ``by`` loss
    among the chosen groups, and the returned test losses follow that same
    assignment. With ``by="test_loss"`` this is the test oracle (its total
    never grows with the budget, since "at most B" allows every smaller
    grouping); with ``by="val_loss"`` it is the best a chooser that sees only
    validation data could do with every group measured (scored on test).

    Parameters
    ----------
    results : mapping group -> ModelResult or RepeatedResult
        Every candidate group (at least every single-task group).
    n_tasks : int
    budget : int
    by : {"test_loss", "val_loss"}

    Returns
    -------
    groups : list of TaskSet
    test_losses : dict task -> test loss under that assignment
    """
    from negtransfer.select.groups import select_groups

    groups = [TaskSet(g) for g in results]
    U = np.zeros((len(groups), n_tasks), dtype=bool)
    S = np.full((len(groups), n_tasks), np.nan)
    for row, g in enumerate(groups):
        U[row, list(g)] = True
        for t in g:
            S[row, t] = -getattr(results[g], by)[t]
    best = [groups[r] for r in select_groups(U, S, budget).groups]
    losses, _ = best_group_losses(best, results, n_tasks, by=by)
    return best, losses


def _optima(job: GroupingState) -> Optima:
    """The test oracle and the validation oracle over every group (:func:`oracle_grouping`).

    The validation oracle also gets its summed validation loss and the chosen
    grouping's gap to it *on validation data* (``val_gap``): how close the
    search came to the best grouping it could see, apart from how well
    validation losses foretell test losses.
    """
    n, names, chosen = job.n, job.names, job.chosen
    every = {g: job.results[g] for g in _rows_to_groups(job.candidates, range(len(job.candidates)))}
    selected_loss, _ = best_group_losses(chosen, job.results, n)
    selected_total = float(sum(selected_loss[t] for t in range(n)))
    oracles = {}
    for key, attr in (("test_oracle", "test_loss"), ("validation_oracle", "val_loss")):
        best, losses = oracle_grouping(every, n, job.options.budget, by=attr)
        total = float(sum(losses.values()))
        oracles[key] = (best, Oracle(job.group_names(best), {names[t]: losses[t] for t in range(n)}, total,
                                     (selected_total - total) / total))
    best, validation = oracles["validation_oracle"]
    val_best, val_chosen = job.val_total(best), job.val_total(chosen)
    validation = Oracle(validation.groups, validation.test_loss, validation.total, validation.gap,
                        val_total=val_best, val_gap=(val_chosen - val_best) / val_best)
    return Optima(oracles["test_oracle"][1], validation)
