"""Source-task selection for one target task with surrogate task models.

``negtransfer sources`` (paper: papers/surrogate-negative-transfer.txt):

0. The training scheme (``SourceOptions.training``, :func:`source_training_config`):
   ``"parity"`` (default) trains STL, every subset model and every final model
   alike: one objective (the mean loss over the combined training rows), the
   same optimiser-step budget (an "epoch" is one pass over the *target's*
   training rows, whatever the group), early stopping on the target's own
   validation loss, measured on one half of its validation rows; f(S) is read
   from the other half, which did not choose the stopping epoch.
   ``"task-modeling"`` is the public code's setting (a fixed number of epochs
   over the combined data, no early stopping, logit margins); ``"legacy"`` the
   trainer's defaults as given (the figures measured before issue 11).
1. STL for the target, and the target trained with all sources.
2. ``n_subsets + holdout`` random subsets of ``alpha`` sources, each trained
   with the target (vectorised, through the run store; ``repeats`` runs each,
   common random numbers); f(S) = the target's validation loss (cross-entropy
   or MSE by default, or the margin, logit margin or 0-1 loss), the mean over
   the repeats, with its standard error.
3. A linear surrogate g(S) = sum of theta_i (eq. 2-3), or (``surrogate="kernel"``)
   kernel ridge regression on the subset indicators
   (:class:`negtransfer.select.kernel_surrogate.KernelSurrogate`), fitted on the first
   ``n_subsets``; on the ``holdout`` subsets, negative-transfer prediction
   (F1 of the minority class, Spearman of g vs f) and the error curve as n grows;
   with ``independent_holdout`` also on the holdout subsets trained with repeat
   seeds no fitted subset used.
4. Threshold gamma (``threshold_by="validation"``, the paper's procedure):
   every distinct selection {i : theta_i < gamma} is trained with the target
   (one stack) and gamma is the one whose model has the lowest target
   validation loss (mean over the repeats). The grid: one threshold per
   distinct selection (``grid="all"``, default), or the paper's -0.5..0.5 on
   the scale it was meant for, the raw scores of eq. 3 (``grid="paper"``;
   the relative scale under ``training="legacy"``). Or (``threshold_by="surrogate"``) without
   training: the cross-fitted surrogate criterion of
   :func:`negtransfer.select.sources.choose_threshold_by_surrogate_cv`, which
   resists the winner's curse of validating many candidates on a small
   validation split. The test split is only used for the final report.
5. Baselines on the same runs: STL, all sources, the top-m sources by pairwise
   gain (HOA-style, first order; m = the size of the selection), the top-m
   by ETAP affinity onto the target from one all-task run, and (when k is small
   enough, or asked for) the paper's exhaustive search over every combination
   of up to two sources (k + k(k-1)/2 runs; the best by the target's
   validation loss; paper section 4.2, Table 3).

6. Never knowingly worse: the selection, STL and all sources compared on the
   target's validation rows the selection did not use (the stopping half), and
   the one to use recommended with its reason (``check``); the paired
   differences with a standard error over those rows and the repeats (the
   final models' per-row losses, from their runs on a copy of the data that scores those rows) and a
   three-way verdict: lower beyond noise, within noise, higher beyond noise.

The job is a sequence of named stages (:data:`SOURCES_STAGES`: the plan, the
references, the subset models, the pairwise runs, the surrogate, the holdout,
the independent holdout, the threshold, the three baselines, the final models,
the check, fairness) over one typed state (:class:`SourcesState`), and returns
a :class:`SourcesReport`.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset
from negtransfer.data.statistics import standard_error
from negtransfer.gains.paired_rows import (
    PairedDifference,
    differences_from_dict,
    noise_verdict,
    paired_difference,
    verdict_phrase,
)
from negtransfer.jobs.choices import (
    EXHAUSTIVE_PAIRS,
    SOURCE_LOSSES,
    SOURCE_TRAININGS,
    SURROGATES,
    THRESHOLD_BY,
    THRESHOLD_GRIDS,
)
from negtransfer.runs.executors import Executor
from negtransfer.runs.runner import ensure, ensure_runs, stored_count
from negtransfer.runs.specs import ArtifactSlot, RunKind, RunOutput, RunSpec, group_specs
from negtransfer.runs.store import RunStore
from negtransfer.train.batched import ModelResult
from negtransfer.train.config import TrainConfig, check_whole_numbers
from negtransfer.train.results import RepeatedResult

if TYPE_CHECKING:
    from negtransfer.gains.surrogate import LinearSurrogate
    from negtransfer.select.kernel_surrogate import KernelSurrogate

Group = tuple[int, ...]
LOSSES, TRAININGS = SOURCE_LOSSES, SOURCE_TRAININGS  # written once, in jobs/choices.py


@dataclass
class SourceOptions:
    """Choices of one source-selection job.

    Parameters
    ----------
    target : str
        Target task name.
    alpha : int
        Sources per sampled subset (paper: 5 worked best).
    n_subsets : int or None
        Subsets the surrogate is fitted on; None (default): 8k for k sources
        (the paper's largest n, F1 0.82 there), fewer only if ``max_runs``
        says so (:meth:`subsets_for`).
    max_runs : int or None
        Budget of subset runs (fitted and holdout subsets times repeats) for
        the default ``n_subsets``; None: no limit.
    training : {"parity", "task-modeling", "legacy"}
        How STL, subset and final models are trained (module docstring, step 0;
        :func:`source_training_config`).
    holdout : int
        Further subsets for negative-transfer prediction (paper: 100).
    loss : {"cross_entropy", "mse", "margin", "logit_margin", "zero_one"} or None
        f(S). Default: the loss the models are judged by on test, the training
        loss (cross-entropy, or MSE for regression), under ``"parity"``; the
        negative margin on logits (the public code's) under
        ``"task-modeling"``; the negative margin on probabilities (the
        paper's best, section 4.2) under ``"legacy"``.
    ridge : float, "auto" or None
        Ridge penalty of the surrogate: ``0`` is least squares (eq. 3),
        ``"auto"`` the strength with the least leave-one-out error over the
        fitted subsets (``LinearSurrogate(alpha="auto")``; least squares is
        among the candidates). None: ``"auto"`` when fewer than 1.5 k subsets
        are fitted under ``training="parity"``, else ``0``. Measured
        (docs/methods/source-selection.md): at n = k least squares nearly
        interpolates the noise of f(S) (holdout Spearman 0.14, 0.07 and -0.05
        on tv16's five largest states, three small ones and exam; 0.48, 0.30
        and 0.28 with ``"auto"``, F1 unchanged); from 1.5 k on, ``"auto"``
        ranks about as well and its shrunken predictions cross f_STL less
        often, which lowers the holdout F1.
    affinity_baseline : bool
        Also rank sources by ETAP affinity onto the target (one extra run).
    pairwise_baseline : bool
        Also rank sources by their pairwise gain (HOA-style; k extra runs
        per repeat, trained anyway for the exhaustive baseline).
    grid : {"all", "paper"}
        Thresholds tried: one per distinct selection ({i : theta_i < gamma}
        for every cut between sorted scores; default), or the paper's
        -0.5..0.5 step 0.1 applied to the raw scores of eq. 3 (to the relative
        scores under ``training="legacy"``).
    common_init : bool
        Train all subset models (and their STL reference) from one shared
        initialisation (common random numbers), to reduce the noise in f(S).
    threshold_by : {"validation", "surrogate"}
        How gamma is chosen: validate the final model of every distinct
        selection on the target's validation split (the paper), or the
        training-free cross-fitted surrogate criterion (two folds of the
        fitted subsets, so that each fold's own surrogate is as well
        determined as it can be).
    repeats : int
        Runs per model (common random numbers: repeat r of every subset, of
        STL and of each final model trains with the same seed); f(S), f(STL)
        and every reported loss are means over the repeats
        (:func:`negtransfer.runs.runner.ensure_runs`).
    stl_repeats : int
        STL runs (seeds ``seed``, ``seed + 1``, ...) whose mean target
        validation loss is the reference f_STL for the surrogate's anchor and
        for classifying subsets as negative transfer (default 1, the paper's).
    exhaustive_pairs : {"auto", "on", "off"}
        The exhaustive search over all combinations of one or two sources
        (paper Table 3, last row): ``auto`` runs it when the k(k-1)/2 pair
        models number at most ``max_pair_runs``.
    max_pair_runs : int
        The ``auto`` limit (the paper's k = 50 needs 1,225 pair models).
    group_attribute : str, optional
        A row attribute (e.g. ``race`` in tv16) for per-group fairness metrics
        of each method's final model on the target's test rows.
    data_fraction, steps_fraction : float
        The paper's speed-up: each *subset* model (the surrogate's training and
        holdout runs) uses this fraction of the training rows and of the epoch
        budget; STL, the threshold candidates and the final models are trained
        in full.
    surrogate : {"linear", "kernel"}
        The surrogate of f(S): the paper's additive model (eq. 2-3), or kernel
        ridge regression on the subset indicators with the kernel chosen by
        leave-one-out error (:class:`negtransfer.select.kernel_surrogate.KernelSurrogate`;
        ``ridge`` is then its strength, ``"auto"`` unless a number > 0 is given).
    independent_holdout : bool
        Also train the holdout subsets (and STL) with the repeat seeds
        ``repeats .. 2 repeats - 1``, which no fitted subset used, and report
        the negative-transfer prediction on them beside the one on the shared
        seeds (``holdout.independent``; ``holdout x repeats + repeats`` more runs).
    """

    target: str
    alpha: int = 5
    n_subsets: int | None = None
    holdout: int = 100
    loss: str | None = None
    ridge: float | str | None = None
    affinity_baseline: bool = True
    chunk_size: int | None = None
    data_fraction: float = 1.0
    steps_fraction: float = 1.0
    grid: str = "all"
    group_attribute: str | None = None
    common_init: bool = False
    exhaustive_pairs: str = "auto"
    max_pair_runs: int = 300
    threshold_by: str = "validation"
    stl_repeats: int = 1
    repeats: int = 1
    pairwise_baseline: bool = True
    training: str = "parity"
    max_runs: int | None = None
    surrogate: str = "linear"
    independent_holdout: bool = False

    def subsets_for(self, n_sources: int) -> int:
        """Subsets the surrogate is fitted on: ``n_subsets``, or 8k capped by ``max_runs`` (at least k)."""
        if self.n_subsets is not None:
            return self.n_subsets
        n = 8 * n_sources
        if self.max_runs is not None:
            n = min(n, max(n_sources, 2, self.max_runs // self.repeats - self.holdout))
        return max(n, 2)

    def resolved_ridge(self, n_fit: int | None = None, n_sources: int | None = None) -> float | str:
        """The surrogate's ridge penalty for ``n_fit`` fitted subsets of ``n_sources`` (see ``ridge``)."""
        if self.ridge is not None:
            return self.ridge
        if self.surrogate == "kernel":
            return "auto"
        few = n_fit is not None and n_sources is not None and n_fit < 1.5 * n_sources
        return "auto" if self.training == "parity" and few else 0.0

    def default_loss(self, kind: str) -> str:
        """f(S) when ``loss`` is None (see ``loss``)."""
        if self.loss is not None:
            return self.loss
        if kind == "regression":
            return "mse"
        return {"parity": "cross_entropy", "task-modeling": "logit_margin", "legacy": "margin"}[self.training]

    def runs_exhaustive_pairs(self, n_sources: int) -> bool:
        """Whether the exhaustive up-to-two-sources baseline runs for ``n_sources`` sources."""
        if self.exhaustive_pairs == "auto":
            return n_sources >= 2 and n_sources * (n_sources - 1) // 2 <= self.max_pair_runs
        return self.exhaustive_pairs == "on" and n_sources >= 2

    def _check_choices(self) -> None:
        """The options that do not depend on the data."""
        if self.grid not in THRESHOLD_GRIDS:
            raise ValueError(f"--grid must be 'paper' or 'all', got {self.grid!r}")
        if not (0 < self.data_fraction <= 1 and 0 < self.steps_fraction <= 1):
            raise ValueError("--data-fraction and --steps-fraction must be in (0, 1]")
        if self.repeats < 1:
            raise ValueError(f"--repeats must be >= 1, got {self.repeats}")
        if self.stl_repeats < 1:
            raise ValueError(f"--stl-repeats must be >= 1, got {self.stl_repeats}")
        if self.stl_repeats > 1 and self.common_init:
            raise ValueError("--stl-repeats draws new initialisations, which defeats --common-init: use one of them")
        ridge = self.resolved_ridge()
        if ridge != "auto" and (isinstance(ridge, (bool, str)) or not math.isfinite(float(ridge)) or ridge < 0):
            raise ValueError(f"--ridge must be 'auto' or a finite number >= 0, got {ridge!r}")
        if self.threshold_by not in THRESHOLD_BY:
            raise ValueError(f"--threshold-by must be 'validation' or 'surrogate', got {self.threshold_by!r}")
        if self.exhaustive_pairs not in EXHAUSTIVE_PAIRS:
            raise ValueError(f"--exhaustive-pairs must be 'auto', 'on' or 'off', got {self.exhaustive_pairs!r}")
        if (self.n_subsets is not None and self.n_subsets < 2) or self.holdout < 0:
            raise ValueError("--subsets must be >= 2 and --holdout >= 0")
        if self.max_runs is not None and self.max_runs < 1:
            raise ValueError(f"--max-runs must be >= 1, got {self.max_runs}")
        if self.training not in TRAININGS:
            raise ValueError(f"--training must be one of {', '.join(TRAININGS)}, got {self.training!r}")
        if self.loss is not None and self.loss not in LOSSES:
            raise ValueError(f"--loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if self.surrogate not in SURROGATES:
            raise ValueError(f"--surrogate must be one of {', '.join(SURROGATES)}, got {self.surrogate!r}")
        if self.surrogate == "kernel" and ridge == 0:
            raise ValueError("--ridge 0 is least squares, which interpolates with a kernel: give --ridge a number "
                             "> 0 or 'auto' with --surrogate kernel")

    def __post_init__(self) -> None:
        from negtransfer.train.config import plain_scalars

        plain_scalars(self)  # NumPy numbers (from a sweep) as Python's: they save to JSON

    def _check_whole_numbers(self) -> None:
        """The counts are whole numbers (a string or a float fails here, not deep in the job)."""
        check_whole_numbers(self, (("alpha", "--alpha"), ("n_subsets", "--subsets"), ("holdout", "--holdout"),
                                   ("repeats", "--repeats"), ("stl_repeats", "--stl-repeats"),
                                   ("max_runs", "--max-runs"), ("max_pair_runs", "max_pair_runs")))

    def check(self, dataset: MultiTaskDataset) -> None:
        self._check_whole_numbers()
        dataset.task_index([self.target])
        k = dataset.n_tasks - 1
        if k < 1:
            raise ValueError("source selection needs at least one source task besides the target")
        if not 1 <= self.alpha <= k:
            most = (k + 1) // 2  # the subset size with the most distinct subsets, C(k, ceil(k/2))
            default = SourceOptions.__dataclass_fields__["alpha"].default
            raise ValueError(f"--alpha (sources per sampled subset; default {default}) must be between 1 and the {k} "
                             f"source(s), the tasks besides the target {self.target!r}, got {self.alpha}; "
                             f"e.g. --alpha {most}, the size with the most distinct subsets of {k}")
        self._check_choices()
        kind = dataset.tasks[dataset.task_index([self.target])[0]].kind
        if kind == "regression" and self.loss not in (None, "mse"):
            raise ValueError(f"target {self.target!r} is a regression task: use --loss mse")
        if kind != "regression" and self.loss == "mse":
            raise ValueError(f"target {self.target!r} is a classification task: --loss mse does not apply")
        if self.group_attribute is not None:
            if kind != "binary":
                raise ValueError("--group-attribute fairness metrics need a binary target task")
            from negtransfer.data.social import row_attribute

            row_attribute(dataset, self.group_attribute)  # raises, listing the attributes, if unknown
        self._check_target_labels(dataset)

    def _check_target_labels(self, dataset: MultiTaskDataset) -> None:
        """Raise ``ValueError`` unless the target has a labelled row in every part of the data the job reads it on.

        Validation: under ``training="parity"`` the half of the validation rows that stops the models and the half
        that measures f(S) (:func:`~negtransfer.train.batched.validation_halves`), else the validation split;
        without one, f(STL) was 0.0 and the job failed after training on the relative scale's division by it.
        Test: the test losses the report compares; without one, every test loss read 0.0000 and the job
        recommended a choice made on no rows.
        """
        from negtransfer.train.batched import validation_halves

        target = dataset.task_index([self.target])[0]
        labelled = ~np.isnan(np.asarray(dataset.Y[:, target], dtype=float))
        validation = np.flatnonzero((dataset.split == VALIDATION) & labelled)
        test = np.flatnonzero((dataset.split == TEST) & labelled)
        parts = {"the validation split": validation}
        if self.training == "parity":
            stopping, estimate = validation_halves(dataset)
            parts = {"the half of the validation rows that stops the models": stopping[labelled[stopping]],
                     "the half that measures f(S)": estimate[labelled[estimate]]}
        if (dataset.split == TEST).any():  # a dataset without a test split (test fraction 0) reports no test figures
            parts["the test split"] = test
        empty = [where for where, rows in parts.items() if rows.size == 0]
        if empty:
            raise ValueError(
                f"target {self.target!r} has {int((labelled & (dataset.split == TRAIN)).sum())} labelled training, "
                f"{validation.size} validation and {test.size} test row(s), none in {' or '.join(empty)}; source "
                f"selection measures the target's loss there (f(S) of each subset on validation rows, the test "
                f"losses on test rows): add labelled rows for the target or choose another --target")


def estimate_text(seconds: float) -> str:
    """An estimated duration as a person reads it: ``under 1 s``, ``about 40 s`` under a minute, else
    ``about 2.5 min`` (the estimate of the runs left once read ``about 0.0 min`` for a small job's seconds)."""
    if seconds < 1:
        return "under 1 s"
    return f"about {seconds:.0f} s" if seconds < 60 else f"about {seconds / 60:.1f} min"


#: The margin of the check's three-way verdict, in standard errors of the paired difference (as the grouping
#: job's audit verdict, :data:`negtransfer.jobs.grouping.AUDIT_MARGIN_SE`).
CHECK_MARGIN_SE = 1.0
#: The verdict when the difference has no standard error (one repeat and no per-row losses).
UNKNOWN_NOISE = "noise unknown"


@dataclass(frozen=True)
class AlternativesCheck:
    """Never knowingly worse (:func:`check_against_alternatives`): report.json's ``check``.

    Attributes
    ----------
    rows : str
        Which validation rows of the target: ``"stopping half"`` (rows that chose only the stopping epoch) or
        ``"all validation (used by the selection)"`` (a training scheme that leaves none unused).
    n_rows : int
        How many.
    unused_by_selection : bool
        Whether neither f(S) nor the threshold read them.
    loss, se : dict
        ``"selected"``, ``"stl"``, ``"all_sources"`` -> the target's loss there, mean over the repeats, and its
        standard error.
    best_alternative : str
        ``"stl"`` or ``"all_sources"``, whichever has the lower loss.
    difference, difference_se : float
        The selection's loss minus the best alternative's, paired by repeat: mean and standard error.
    recommended : str
        ``"selected"``, or the better alternative where its loss is lower (a key of the report's ``methods``).
    reason : str
        Why, in words.
    noise : str
        What the s.e. of ``paired`` counts: ``"rows and repeats"`` (the rows' sampling noise and the runs'), or
        ``"repeats"`` (the runs' only: no per-row losses, ``noise_note`` says why; also in a report.json
        written before the field existed).
    noise_note : str
        Where the per-row losses came from, or why there are none.
    paired : dict
        ``"selected_minus_best"`` (the selection minus ``best_alternative``), ``"selected_minus_other"`` (minus
        the other alternative) and ``"stl_minus_all_sources"``, each a
        :class:`~negtransfer.gains.paired_rows.PairedDifference` on the check's rows: ``mean`` (``difference`` for the first), ``se`` (over
        rows and repeats, :func:`~negtransfer.gains.paired_rows.paired_row_se`; the over-repeats s.e. when
        ``noise`` is ``"repeats"``), ``se_runs`` (over the repeats only: ``difference_se`` for the first),
        ``se_rows`` (over the rows only, each row's mean over the repeats; NaN without per-row losses) and
        ``verdict``: ``"lower beyond noise"``, ``"within noise"`` or ``"higher beyond noise"`` (more than
        ``margin_se`` s.e. below or above zero; ``"noise unknown"`` without any s.e.). Empty in a report.json
        written before the field existed.
    margin_se : float
        The verdict's margin, in standard errors (:data:`CHECK_MARGIN_SE`).
    verdict : str
        ``paired["selected_minus_best"].verdict``: the selection against the better alternative. It states the
        noise of the comparison; the recommendation (the lower mean) does not depend on it.
    test_paired : dict
        The same differences on the target's test rows, scored only (they decide nothing): what the verdicts
        are checked against (benchmarks/source_selection.py). Empty in a report.json written before the field
        existed.
    row_seconds : float
        Wall time of getting the per-row losses (the final models' runs on the scored copy: trained on a first
        run, read from the run store on a rerun).
    """

    rows: str
    n_rows: int
    unused_by_selection: bool
    loss: dict
    se: dict
    best_alternative: str
    difference: float
    difference_se: float
    recommended: str
    reason: str
    noise: str = "repeats"
    noise_note: str = "a report written before the check recorded per-row losses"
    paired: dict[str, PairedDifference] = field(default_factory=dict)
    margin_se: float = float("nan")
    verdict: str = ""
    test_paired: dict[str, PairedDifference] = field(default_factory=dict)
    row_seconds: float = float("nan")

    def to_json(self) -> dict:
        """report.json's ``check`` (the paired differences' records as :meth:`PairedDifference.to_dict` writes them)."""
        return asdict(self)

    @classmethod
    def from_json(cls, value: dict) -> AlternativesCheck:
        """Read back from report.json's ``check`` (:meth:`to_json`; one written before ``paired`` and
        ``test_paired`` existed reads back with them empty)."""
        return cls(**differences_from_dict(value, ("paired", "test_paired")))


@dataclass(frozen=True)
class SubsetMeasurement:
    """One sampled subset's measured f(S) (:func:`fit_surrogate`): a row of report.json's ``subsets``.

    Attributes
    ----------
    sources : list of str
        The subset's sources (the target trains with them).
    part : str
        ``"fit"`` (the surrogate is fitted on it) or ``"holdout"``.
    f : float
        f(S), the mean over the repeats.
    se : float
        Its standard error over the repeats (NaN with one).
    paired_se : float
        The standard error of f(S) - f(STL), paired by repeat (NaN with one).
    values : list of float
        f(S) of each repeat.
    """

    sources: list[str]
    part: str
    f: float
    se: float
    paired_se: float
    values: list[float]

    def to_json(self) -> dict:
        """A row of report.json's ``subsets``."""
        return asdict(self)


@dataclass(frozen=True)
class NegativeTransferScores:
    """How well the surrogate's predictions separate positive from negative transfer on holdout subsets
    (:func:`negtransfer.select.sources.negative_transfer_metrics`, paper section 4.1) and the noise ceiling of a
    correlation with their measured f(S) (:func:`negtransfer.select.sources.holdout_noise_ceiling`).

    Attributes
    ----------
    f1, precision, recall : float
        Of the minority class (NaN where a denominator is 0; None when read back from report.json).
    accuracy : float
        Fraction of subsets whose class is predicted right.
    spearman : float
        Rank correlation of the predicted vs the measured f(S).
    n : int
        Holdout subsets scored.
    minority : str
        ``"negative"`` or ``"positive"``: the class with fewer measured members.
    n_negative, n_positive : int
        Measured negative and positive transfers.
    noise_ceiling : float
        The most any predictor's correlation could reach against these measured f(S), given their standard
        errors over the repeats (NaN with one repeat).
    f1_ceiling : float
        The F1 a predictor of the true f(S) would expect against measurements as noisy as these
        (:func:`negtransfer.select.sources.holdout_f1_ceiling`; on the independent holdout f(STL)'s own
        noise drawn too; NaN with one repeat, and in reports written before it existed).
    """

    f1: float
    precision: float
    recall: float
    accuracy: float
    spearman: float
    n: int
    minority: str
    n_negative: int
    n_positive: int
    noise_ceiling: float
    f1_ceiling: float = float("nan")

    @classmethod
    def measure(cls, predicted: np.ndarray, per_repeat: np.ndarray, stl_loss: float,
                stl_values: np.ndarray | None = None) -> NegativeTransferScores:
        """The scores of ``predicted`` f(S) against the measured ``per_repeat`` (n, R) and f(STL) ``stl_loss``;
        with ``stl_values`` (f(STL) in each of those repeats, ``stl_loss`` their mean) the F1 ceiling draws
        f(STL)'s own noise too (where the prediction does not share it: the independent holdout)."""
        from negtransfer.select.sources import holdout_f1_ceiling, holdout_noise_ceiling, negative_transfer_metrics

        metrics = _plain(negative_transfer_metrics(predicted, per_repeat.mean(axis=1), stl_loss))
        return cls(**metrics, noise_ceiling=holdout_noise_ceiling(per_repeat),
                   f1_ceiling=holdout_f1_ceiling(per_repeat, stl_loss, stl_values=stl_values))

    @classmethod
    def from_json(cls, value: dict) -> NegativeTransferScores:
        """The scores among the keys of report.json's ``holdout`` (or its ``independent``); ``f1_ceiling`` NaN in
        reports written before it existed."""
        return cls(**{f.name: value[f.name] if f.default is MISSING else value.get(f.name, f.default)
                      for f in fields(cls)})

    def to_json(self) -> dict:
        """The scores' keys of report.json's ``holdout``, in order."""
        return asdict(self)


@dataclass(frozen=True)
class IndependentHoldout:
    """Negative-transfer prediction on the holdout subsets trained with repeat seeds no fitted subset used
    (``independent_holdout``; :func:`predict_independent_holdout`): report.json's ``holdout["independent"]``.

    Attributes
    ----------
    scores : NegativeTransferScores
        Its keys come first in report.json, at the top level of ``independent``.
    stl_val_loss : float
        f(STL) on those seeds (the mean over them), the line between positive and negative transfer there.
    repeats : list of int
        The repeat seeds.
    """

    scores: NegativeTransferScores
    stl_val_loss: float
    repeats: list[int]

    @classmethod
    def from_json(cls, value: dict) -> IndependentHoldout:
        """report.json's ``holdout["independent"]`` read back."""
        return cls(NegativeTransferScores.from_json(value), value["stl_val_loss"], list(value["repeats"]))

    def to_json(self) -> dict:
        """report.json's ``holdout["independent"]``."""
        return {**self.scores.to_json(), "stl_val_loss": self.stl_val_loss, "repeats": self.repeats}


@dataclass(frozen=True)
class HoldoutPoint:
    """One holdout subset's predicted and measured f(S) (:func:`_holdout_prediction`): a row of report.json's
    ``holdout_points``, a point of the predicted-vs-measured plot.

    Attributes
    ----------
    sources : list of str
        The subset's sources.
    predicted : float
        The surrogate's g(S) (loss units).
    actual : float
        The measured f(S), the mean over the repeats.
    se : float
        Its standard error over the repeats (NaN with one).
    """

    sources: list[str]
    predicted: float
    actual: float
    se: float

    def to_json(self) -> dict:
        """A row of report.json's ``holdout_points``."""
        return asdict(self)


@dataclass(frozen=True)
class HoldoutPrediction:
    """Negative-transfer prediction on the holdout subsets (:func:`_holdout_prediction`): report.json's ``holdout``.

    Attributes
    ----------
    n_subsets : int
        Holdout subsets asked for (``SourceOptions.holdout``); with none, nothing else is measured.
    scores : NegativeTransferScores or None
        On the holdout's shared repeat seeds; None without holdout subsets.
    error_curve : dict or None
        The surrogate's holdout error as the number of fitted subsets grows (paper Figure 6): the columns of
        :meth:`negtransfer.select.sources.ErrorCurve.to_frame` (``n_subsets``, ``mse``, ...), each a
        list, as a table is kept; None without holdout subsets.
    independent : IndependentHoldout or None
        On repeat seeds no fitted subset used (``independent_holdout``), else None.
    """

    n_subsets: int
    scores: NegativeTransferScores | None = None
    error_curve: dict[str, list] | None = None
    independent: IndependentHoldout | None = None

    @classmethod
    def from_json(cls, value: dict) -> HoldoutPrediction:
        """report.json's ``holdout`` read back (``n_subsets`` alone where there were no holdout subsets)."""
        measured = "n" in value
        independent = value.get("independent")
        return cls(int(value["n_subsets"]), NegativeTransferScores.from_json(value) if measured else None,
                   value.get("error_curve"), IndependentHoldout.from_json(independent) if independent else None)

    def to_json(self) -> dict:
        """report.json's ``holdout``: ``n_subsets``, the scores' keys, ``error_curve`` and ``independent``, each
        where measured."""
        out: dict = {"n_subsets": self.n_subsets}
        if self.scores is not None:
            out.update(self.scores.to_json())
            out["error_curve"] = self.error_curve
        if self.independent is not None:
            out["independent"] = self.independent.to_json()
        return out


@dataclass(frozen=True)
class SubsetSpeedup:
    """The paper's speed-up of the subset models (``SourceOptions.data_fraction``, ``steps_fraction``):
    report.json's ``speedup``.

    Attributes
    ----------
    data_fraction : float
        The fraction of the training rows each subset model trains on.
    steps_fraction : float
        The fraction of the epoch budget each subset model trains for.
    """

    data_fraction: float
    steps_fraction: float

    def to_json(self) -> dict:
        """report.json's ``speedup``."""
        return asdict(self)


@dataclass(frozen=True)
class StageRuns:
    """One stage's runs in a :class:`RunPlan`: report.json's ``plan["stages"][name]``.

    Attributes
    ----------
    runs : int
        The runs the stage needs (groups x repeats).
    stored : int
        How many of them the run store already held.
    """

    runs: int
    stored: int


@dataclass(frozen=True)
class RunPlan:
    """The cost of a job before it starts (:func:`plan_runs`): report.json's ``plan``.

    Attributes
    ----------
    stages : dict of str to StageRuns
        Per stage whose groups are known before training (in stage order), its runs and those stored.
    runs : int
        Their runs in all.
    to_train : int
        Those the store did not hold.
    later_at_most : int
        The runs whose groups are known only later (threshold candidates, final models, the check's runs, the
        fairness runs), at most.
    estimated_seconds : float or None
        The time the runs to train were estimated to take, from the first stack of subset models; None before
        (or where nothing was trained). Measured: it changes from run to run.
    """

    stages: dict[str, StageRuns]
    runs: int
    to_train: int
    later_at_most: int
    estimated_seconds: float | None = None

    @classmethod
    def from_json(cls, value: dict) -> RunPlan:
        """report.json's ``plan`` read back."""
        return cls({name: StageRuns(**row) for name, row in value["stages"].items()}, value["runs"],
                   value["to_train"], value["later_at_most"], value.get("estimated_seconds"))

    def to_json(self) -> dict:
        """report.json's ``plan`` (each stage a dict of its fields)."""
        return asdict(self)


@dataclass(frozen=True)
class RidgeChoice:
    """The surrogate's ridge penalty (``SourceOptions.ridge``, resolved): report.json's ``ridge``.

    Attributes
    ----------
    option : float or str
        A number, or ``"auto"`` (the strength with the least leave-one-out error over the fitted subsets).
    alpha : float
        The strength the surrogate was fitted with (the one ``"auto"`` chose); 0 is least squares (eq. 3).
    """

    option: float | str
    alpha: float

    def to_json(self) -> dict:
        """report.json's ``ridge``."""
        return asdict(self)


@dataclass(frozen=True)
class SurrogateDescription:
    """Which surrogate of f(S) the job fitted (``SourceOptions.surrogate``): report.json's ``surrogate``.

    Attributes
    ----------
    kind : str
        ``"linear"`` (eq. 2-3) or ``"kernel"`` (kernel ridge regression on the subset indicators).
    kernel, gamma, alpha, loo_mse : optional
        The kernel surrogate's kernel, RBF width (None for the others), strength and leave-one-out error it was
        chosen by (:meth:`~negtransfer.select.kernel_surrogate.KernelSurrogate.describe`); None for the linear one.
    candidates : list of dict or None
        The kernel surrogate's leave-one-out table, a row per kernel tried (``kernel``, ``gamma``, ``alpha``,
        ``loo_mse``), kept as the surrogate gives it: rows of a table, written as they are.
    """

    kind: str
    kernel: str | None = None
    gamma: float | None = None
    alpha: float | None = None
    loo_mse: float | None = None
    candidates: list[dict] | None = None

    def to_json(self) -> dict:
        """report.json's ``surrogate``: ``kind``, and the kernel's fields for the kernel surrogate."""
        if self.kind != "kernel":
            return {"kind": self.kind}
        return asdict(self)


@dataclass
class SourcesReport:
    """What a source-selection job found; :meth:`to_dict` is report.json.

    Attributes
    ----------
    dataset, fingerprint : str
    seed : int
    target : str
    loss : str
        The f(S) loss ("margin", "cross_entropy", "zero_one" or "mse").
    alpha, n_sources : int
    relevance : dict
        Source -> surrogate coefficient theta_i (relative change of the
        target's validation loss vs STL; negative = helps).
    relevance_scale : str
    threshold : float
        The chosen gamma; the selection is ``{i : theta_i < gamma}``.
    grid, threshold_by : str
    threshold_grid : dict
        Gamma -> sources selected and the criterion that judged it.
    selected : list of str
    holdout : HoldoutPrediction
        Negative-transfer prediction on the held-out subsets (F1, Spearman,
        error curve; on independent repeat seeds too where measured; a
        report.json's dict becomes one too).
    holdout_points : list of HoldoutPoint
        Predicted and measured f(S) of each holdout subset (a report.json's
        dicts become records too).
    stl_val_loss : float
        The reference f(STL) (mean of ``stl_val_losses``).
    stl_val_losses : list of float
    speedup : SubsetSpeedup
        ``data_fraction``, ``steps_fraction`` of the subset models.
    test_loss, test_metric : dict
        Method -> the target's test loss and metric.
    test_metric_name : str
    test_accuracy : dict or None
        Classification targets only.
    methods : dict
        Method -> the sources it trains with.
    runs : dict
        Method -> runs it needed.
    pairwise_gain : dict
    affinity_onto_target : dict or None
    fairness : dict or None
        With ``group_attribute``: worst-group accuracy and parity gaps per method.
    config : dict
        The training configuration.
    seconds : float
    task_kinds : dict, optional
        Each task's kind (set by the command line).
    notes : list of str, optional
        The command's ``note:`` lines.
    training : str
        The training scheme (:func:`source_training_config`).
    repeats : int
        Runs per model; figures are means over them.
    f_rows : str
        The validation rows f(S) is read from: ``"estimate half"`` (rows that
        did not choose the stopping epoch) or ``"all"``.
    threshold_scale : str
        The scale gamma applies to: ``"relative"`` (like ``relevance``) or
        ``"raw"`` (eq. 3's unanchored scores, ``raw_relevance``).
    raw_relevance : dict
        Source -> theta_i on the raw scale of eq. 3, ``|f_STL| theta_rel + f_STL / alpha``:
        exactly eq. 3's least-squares fit to the raw f(S) when the ridge is 0.
    ridge : RidgeChoice or None
        The surrogate's ridge penalty: ``option`` (a number or "auto") and the
        ``alpha`` used (the one "auto" chose by leave-one-out error; a
        report.json's dict becomes one too).
    surrogate : SurrogateDescription or None
        ``kind`` ("linear" or "kernel"); for the kernel surrogate also the
        kernel, RBF width, strength and leave-one-out error it was chosen by
        (:meth:`~negtransfer.select.kernel_surrogate.KernelSurrogate.describe`;
        a report.json's dict becomes one too).
    check : AlternativesCheck or None
        Never knowingly worse (:func:`check_against_alternatives`): the target's
        loss of the selection, STL and all sources on validation rows the
        selection did not use, which of them is ``recommended`` and why (a
        report.json's dict becomes one too).
    stl_val_se : float
        Standard error of f(STL) over the repeats (NaN with one).
    subsets : list of SubsetMeasurement or None
        Every sampled subset, fitted ones first: ``sources``, ``part`` ("fit"
        or "holdout"), ``f`` (mean over repeats), ``se`` (its standard error),
        ``paired_se`` (standard error of f(S) - f(STL), paired by repeat) and
        ``values`` (f(S) of each repeat); a report.json's dicts become
        records too.
    subset_se : dict
        Mean and median of ``se`` and ``paired_se`` over the subsets.
    test_loss_se : dict
        Method -> standard error of its test loss over the repeats.
    plan : RunPlan or None
        Runs per stage, how many the store already held, and the estimated
        time (:func:`plan_runs`; a report.json's dict becomes one too).
    """

    dataset: str
    fingerprint: str
    seed: int
    target: str
    loss: str
    alpha: int
    n_sources: int
    relevance: dict
    relevance_scale: str
    threshold: float
    grid: str
    threshold_by: str
    threshold_grid: dict
    selected: list
    holdout: HoldoutPrediction
    holdout_points: list[HoldoutPoint]
    stl_val_loss: float
    stl_val_losses: list
    speedup: SubsetSpeedup
    test_loss: dict
    test_metric_name: str
    test_metric: dict
    test_accuracy: dict | None
    methods: dict
    runs: dict
    pairwise_gain: dict
    affinity_onto_target: dict | None
    fairness: dict | None
    config: dict
    seconds: float
    task_kinds: dict | None = None
    notes: list | None = None
    training: str = "legacy"
    repeats: int = 1
    f_rows: str = "all"
    threshold_scale: str = "relative"
    raw_relevance: dict | None = None
    stl_val_se: float = float("nan")
    subsets: list[SubsetMeasurement] | None = None
    subset_se: dict | None = None
    test_loss_se: dict | None = None
    plan: RunPlan | None = None
    ridge: RidgeChoice | None = None
    surrogate: SurrogateDescription | None = None
    check: AlternativesCheck | None = None

    @classmethod
    def from_dict(cls, value: dict) -> SourcesReport:
        """A report read back from report.json (:meth:`to_dict`): its records rebuilt from their dicts."""
        d = dict(value)
        d["holdout"] = HoldoutPrediction.from_json(d["holdout"])
        d["holdout_points"] = [HoldoutPoint(**p) for p in d["holdout_points"]]
        d["speedup"] = SubsetSpeedup(**d["speedup"])
        readers = {"subsets": lambda rows: [SubsetMeasurement(**row) for row in rows], "plan": RunPlan.from_json,
                   "ridge": lambda v: RidgeChoice(**v), "surrogate": lambda v: SurrogateDescription(**v),
                   "check": AlternativesCheck.from_json}
        for key, read in readers.items():
            if d.get(key) is not None:
                d[key] = read(d[key])
        return cls(**d)

    def __repr__(self) -> str:
        """The selection in one line (:mod:`negtransfer.jobs.summary_repr`); the fields hold the rest."""
        from negtransfer.jobs.summary_repr import summary_repr

        return summary_repr("SourcesReport", dataset=self.dataset, target=self.target, selected=list(self.selected),
                            relevance=dict(self.relevance), threshold=self.threshold,
                            recommended=self.check.recommended if self.check is not None else None)

    def to_frame(self):
        """One row per source task: ``source``, ``relevance`` (theta_i; negative = helps), ``raw_relevance``,
        ``selected``, ``pairwise_gain`` and ``affinity_onto_target`` (NaN where not measured), by relevance."""
        import pandas as pd

        raw, pairwise, affinity = self.raw_relevance or {}, self.pairwise_gain or {}, self.affinity_onto_target or {}
        rows = [{"source": name, "relevance": theta, "raw_relevance": raw.get(name, float("nan")),
                 "selected": name in self.selected, "pairwise_gain": pairwise.get(name, float("nan")),
                 "affinity_onto_target": affinity.get(name, float("nan"))} for name, theta in self.relevance.items()]
        return pd.DataFrame(rows).sort_values("relevance", kind="stable").reset_index(drop=True)

    def to_dict(self) -> dict:
        """report.json (the command line's fields, task kinds and notes, last)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["holdout"], out["speedup"] = self.holdout.to_json(), self.speedup.to_json()
        out["holdout_points"] = [point.to_json() for point in self.holdout_points]
        if self.subsets is not None:
            out["subsets"] = [row.to_json() for row in self.subsets]
        if self.plan is not None:
            out["plan"] = self.plan.to_json()
        if self.ridge is not None:
            out["ridge"] = self.ridge.to_json()
        if self.surrogate is not None:
            out["surrogate"] = self.surrogate.to_json()
        if self.check is not None:
            out["check"] = self.check.to_json()
        for key in ("task_kinds", "notes"):
            if out[key] is None:
                del out[key]
        return out


_EXTRA_NAME = {"cross_entropy": "loss", "mse": "loss", "margin": "margin_loss", "logit_margin": "logit_margin",
               "zero_one": "zero_one"}


def target_values(result: ModelResult | RepeatedResult, task: int, loss: str, split: str = "val") -> np.ndarray:
    """The target's ``loss`` in each repeat of a run (R,), on ``split``.

    ``split``: ``"val"`` (all validation rows), ``"val_est"`` (the half that did
    not choose the stopping epoch; ``TrainConfig.stopping_rows="half"``) or
    ``"test"``. ``loss``: one of :data:`LOSSES`.
    """
    res = result if isinstance(result, RepeatedResult) else RepeatedResult(result.group, [result])
    if split in ("val", "test") and loss in ("cross_entropy", "mse"):
        return res.values(f"{split}_loss", task)
    key = f"{split}_{_EXTRA_NAME[loss]}"
    if task not in res.runs[0].extra.get(key, {}):
        raise ValueError(f"the stored run of group {res.group} has no {key!r}; it was trained before this loss "
                         "was recorded: use a fresh --store or another --loss")
    return res.values(key, task)


def target_loss(result: ModelResult | RepeatedResult, task: int, loss: str, split: str = "val") -> float:
    """The target's ``loss`` on ``split``, the mean over the repeats (:func:`target_values`)."""
    return float(np.mean(target_values(result, task, loss, split)))


def measured_subsets(report) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """The measured subsets of a finished job, to refit or re-score a surrogate without training.

    Parameters
    ----------
    report : SourcesReport or dict
        The job's report (or its report.json).

    Returns
    -------
    names : list of str
        The sources, sorted (the columns of ``S``).
    S : ndarray of bool (n_subsets, k)
        Membership of every sampled subset, fitted ones first, in their sampled order.
    f : ndarray (n_subsets,)
        Measured f(S), means over the repeats.
    fit : ndarray of bool (n_subsets,)
        True for the fitted subsets, False for the holdout.
    """
    if isinstance(report, dict):
        rows, relevance = [SubsetMeasurement(**row) for row in report["subsets"]], report["relevance"]
    else:
        rows, relevance = report.subsets or [], report.relevance
    names = sorted(relevance)
    column = {name: j for j, name in enumerate(names)}
    S = np.zeros((len(rows), len(names)), dtype=bool)
    for i, row in enumerate(rows):
        S[i, [column[name] for name in row.sources]] = True
    return (names, S, np.array([row.f for row in rows], dtype=float), np.array([row.part == "fit" for row in rows]))


def source_training_config(config: TrainConfig, dataset: MultiTaskDataset, target: int, training: str) -> TrainConfig:
    """The configuration every model of a source-selection job trains with.

    ``"parity"``: ``config`` with pooled batches, the mean loss over the
    combined training rows (``loss_weighting="row-mean"``: the surrogate
    paper's MTL objective, one model on the union of the datasets, section
    2.1; for STL the same as before), one "epoch" = as many steps as one pass
    over the target's training rows (``steps_per_epoch``; so STL and every
    subset model get the same step budget and the same checking cadence), early
    stopping on the target's validation loss alone, on one half of its
    validation rows (``stopping_task``, ``stopping_rows="half"``), and one
    shared initialisation per repeat (common random numbers).
    ``"task-modeling"``: the public code's setting (REFERENCES.md): pooled
    data of subset plus target, the mean loss over rows, ``config.max_epochs``
    epochs over the combined rows and no early stopping (the last weights).
    ``"legacy"``: ``config`` unchanged.
    """
    if training == "legacy":
        return config
    if training == "task-modeling":
        return replace(config, batching="pooled", oversample=False, loss_weighting="row-mean", early_stopping=False)
    steps = 0
    if dataset.row_task is not None:
        n_rows = int(((dataset.row_task == target) & (dataset.split == TRAIN)).sum())
        steps = max(1, -(-n_rows // config.batch_size))
    return replace(config, batching="pooled", oversample=False, loss_weighting="row-mean", steps_per_epoch=steps,
                   stopping_task=int(target), stopping_rows="half", shared_init=True)


def plan_runs(stages: dict[str, int], stored: dict[str, int], repeats: int, later: int = 0) -> RunPlan:
    """The cost of a job before it starts: per stage the runs it needs (groups x repeats) and those already
    stored, ``to_train`` in all, and ``later_at_most``: the runs whose groups are known only later (threshold
    candidates, final models, the check's runs, the fairness runs), at most ``later`` groups x repeats."""
    rows = {name: StageRuns(n * repeats, min(stored.get(name, 0), n * repeats)) for name, n in stages.items()}
    return RunPlan(rows, sum(r.runs for r in rows.values()), sum(r.runs - r.stored for r in rows.values()),
                   later * repeats)


Progress = Callable[[str, int, int], None]


@dataclass
class SourcesState:
    """The state the source-selection stages (:data:`SOURCES_STAGES`) read and fill, in stage order.

    The first block is the job's input and what the stages add to (the
    full-data runs, the runs this job trained, the time estimate); the second
    is derived from the input once (the target and its sources, the training
    configurations, the sampled subsets and the groups each stage trains); the
    third is what the stages found.
    """

    dataset: MultiTaskDataset
    options: SourceOptions
    config: TrainConfig
    seed: int
    store: RunStore
    executor: Executor | None = None
    progress: Progress | None = None
    notify: Callable[[str], None] | None = None
    results: dict[Group, RepeatedResult] = field(default_factory=dict)  # full-data runs (not the subset models)
    trained: list[tuple[Group, int]] = field(default_factory=list)  # every (group, repeat) trained, for the estimate
    timing: dict[str, float] = field(default_factory=dict)
    # derived from the input by __post_init__
    target: int = field(init=False)
    names: tuple[str, ...] = field(init=False)
    kind: str = field(init=False)
    loss: str = field(init=False)
    sources: list[int] = field(init=False)
    repeats: int = field(init=False)
    train_config: TrainConfig = field(init=False)  # the job's training scheme (:func:`source_training_config`)
    split: str = field(init=False)  # the validation rows f(S) is read from
    raw_grid: bool = field(init=False)  # gamma applies to the raw scores of eq. 3
    stl: Group = field(init=False)
    everything: Group = field(init=False)
    n_fit: int = field(init=False)
    subsets: np.ndarray = field(init=False)  # membership (n_fit + holdout, k): fitted subsets first
    subset_groups: list[Group] = field(init=False)
    pair_groups: list[Group] = field(init=False)
    combo_groups: list[Group] = field(init=False)
    subset_data: MultiTaskDataset = field(init=False)  # the subset models' training rows (data_fraction)
    subset_config: TrainConfig = field(init=False)  # and their epoch budget (steps_fraction)
    # what the stages found
    plan: RunPlan = field(default_factory=lambda: RunPlan({}, 0, 0, 0))  # :func:`plan_training`
    subset_results: dict[Group, RepeatedResult] = field(default_factory=dict)
    stl_values: np.ndarray = field(default_factory=lambda: np.empty(0))  # f(STL) of each repeat (subset models' STL)
    stl_refs: list[float] = field(default_factory=list)  # f(STL) of each --stl-repeats run
    per_repeat: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))  # f(S) of every subset, each repeat
    ridge: float | str = 0.0  # the surrogate's ridge option, resolved (:meth:`SourceOptions.resolved_ridge`)
    surrogate: LinearSurrogate | KernelSurrogate | None = None
    theta: np.ndarray = field(default_factory=lambda: np.empty(0))
    theta_raw: np.ndarray = field(default_factory=lambda: np.empty(0))
    subset_rows: list[SubsetMeasurement] = field(default_factory=list)
    holdout: HoldoutPrediction = field(default_factory=lambda: HoldoutPrediction(0))
    holdout_points: list[HoldoutPoint] = field(default_factory=list)
    grid: np.ndarray = field(default_factory=lambda: np.empty(0))
    selection_of: dict[float, Group] = field(default_factory=dict)  # gamma -> the target and its selection
    candidates: list[Group] = field(default_factory=list)  # threshold candidates trained
    gamma: float = float("nan")
    grid_scores: dict[float, float] = field(default_factory=dict)
    methods: dict[str, Group] = field(default_factory=dict)  # method -> the group it trains the target with
    runs_used: dict[str, int] = field(default_factory=dict)  # method -> models it needed (one repeat)
    pair_gain: np.ndarray = field(default_factory=lambda: np.empty(0))
    affinity_scores: dict[str, float] | None = None
    fairness: dict | None = None
    check: AlternativesCheck | None = None  # never knowingly worse (:func:`check_against_alternatives`)

    def __post_init__(self) -> None:
        from negtransfer.select.sources import sample_subsets

        options, dataset = self.options, self.dataset
        self.target = t = dataset.task_index([options.target])[0]
        self.names = tuple(dataset.task_names)
        self.kind = dataset.tasks[t].kind
        self.loss = options.default_loss(self.kind)
        self.sources = [i for i in range(dataset.n_tasks) if i != t]
        k = len(self.sources)
        self.n_fit = options.subsets_for(k)
        self.repeats = options.repeats
        self.train_config = cfg = source_training_config(self.config, dataset, t, options.training)
        self.split = "val_est" if cfg.stopping_rows == "half" else "val"
        self.raw_grid = options.grid == "paper" and options.training != "legacy"
        self.stl, self.everything = (t,), tuple(range(dataset.n_tasks))
        self.subsets = sample_subsets(k, options.alpha, self.n_fit + options.holdout, self.seed)
        self.subset_groups = [self.with_target(np.asarray(self.sources)[row]) for row in self.subsets]
        self.combo_groups = ([self.with_target(c) for c in itertools.combinations(self.sources, 2)]
                             if options.runs_exhaustive_pairs(k) else [])
        self.pair_groups = ([self.with_target([s]) for s in self.sources]
                            if options.pairwise_baseline or self.combo_groups else [])
        self.subset_data = dataset.with_train_fraction(options.data_fraction, self.seed)
        self.subset_config = replace(cfg, max_epochs=max(1, int(np.ceil(cfg.max_epochs * options.steps_fraction))),
                                     shared_init=cfg.shared_init or options.common_init)

    @property
    def k(self) -> int:
        """The number of source tasks."""
        return len(self.sources)

    @property
    def fast(self) -> bool:
        """Whether the subset models train on less data or fewer steps (their STL run is then extra)."""
        return self.options.data_fraction < 1 or self.options.steps_fraction < 1

    @property
    def f_all(self) -> np.ndarray:
        """f(S) of every sampled subset, the mean over the repeats (fitted subsets first)."""
        return self.per_repeat.mean(axis=1)

    @property
    def f_stl_subsets(self) -> float:
        """The reference f(STL) of the surrogate (the mean of the ``--stl-repeats`` runs)."""
        return float(np.mean(self.stl_refs))

    def with_target(self, chosen) -> Group:
        """The group of the target and the ``chosen`` sources."""
        return tuple(sorted({self.target, *(int(s) for s in chosen)}))

    def target_loss(self, group: Group) -> float:
        """The target's f on the job's validation rows, the mean over the repeats of a full-data run."""
        return target_loss(self.results[group], self.target, self.loss, self.split)

    def train(self, label: str, groups: list[Group], data: MultiTaskDataset | None = None,
              config: TrainConfig | None = None, seed: int | None = None,
              repeats: int | None = None) -> dict[Group, RepeatedResult]:
        """Every repeat of ``groups`` through the run store (:func:`negtransfer.runs.runner.ensure_runs`);
        the full data, the job's configuration and its repeats unless told otherwise."""
        return ensure_runs(self.dataset if data is None else data, groups,
                           self.train_config if config is None else config, self.seed if seed is None else seed,
                           self.store, repeats=self.repeats if repeats is None else repeats, executor=self.executor,
                           chunk_size=self.options.chunk_size, on_progress=self._progress(label), trained=self.trained)

    def run_specs(self, label: str, specs: list[RunSpec]) -> list[RunOutput]:
        """The outputs of run specifications of any kind (e.g. :data:`TEST_PREDICTIONS`) on the full data through
        the run store (:func:`negtransfer.runs.runner.ensure`): a rerun reads them."""
        trained: list[RunSpec] = []
        outputs = ensure(self.dataset, specs, self.seed, self.store, executor=self.executor,
                         chunk_size=self.options.chunk_size, on_progress=self._progress(label), trained=trained)
        self.trained.extend((spec.group, spec.repeat) for spec in trained)
        return outputs

    def _progress(self, label: str) -> Callable[[int, int], None]:
        """The progress callback of one call of :meth:`train` or :meth:`run_specs`: ``progress(label, done, total)``, and after the
        first stack of subset models the time estimate of the rest, sent to ``notify``."""
        start, before = time.perf_counter(), len(self.trained)

        def on_progress(done: int, total: int) -> None:
            if self.progress:
                self.progress(label, done, total)
            first_estimate = label == "subset models" and "estimated" not in self.timing
            if self.notify and first_estimate and len(self.trained) > before:
                per_run = (time.perf_counter() - start) / (len(self.trained) - before)
                left = max(self.plan.to_train - len(self.trained), 0)
                self.timing["estimated"] = per_run * left
                self.notify(f"about {per_run:.2f} s per run (in stacks of {self.options.chunk_size or 'one per core'}): the other "
                            f"{left} runs to train take {estimate_text(self.timing['estimated'])}")

        return on_progress


# --------------------------------------------------------------------------- stages


def plan_training(state: SourcesState) -> None:
    """Stage 1: the cost, before anything is trained: runs per stage and those the store already holds
    (:func:`plan_runs`), sent to ``notify``."""
    options, dataset, cfg, R = state.options, state.dataset, state.train_config, state.repeats
    stage_groups = {"STL, all sources": (dataset, cfg, [state.stl, state.everything]),
                    # the subset models' own STL run only when they train on less (else it is the STL above)
                    "subset models": (state.subset_data, state.subset_config,
                                      list(dict.fromkeys([state.stl] * state.fast + state.subset_groups))),
                    "pairwise runs": (dataset, cfg, state.pair_groups),
                    "exhaustive pairs": (dataset, cfg, state.combo_groups)}
    stored = {name: _stored_runs(state.store, d, c, gs, state.seed, R) for name, (d, c, gs) in stage_groups.items()}
    if options.independent_holdout and options.holdout:  # repeats R .. 2R - 1 of STL and the holdout subsets
        groups = list(dict.fromkeys([state.stl] + state.subset_groups[state.n_fit:]))
        stage_groups["independent holdout"] = (state.subset_data, state.subset_config, groups)
        unseen = [s for s in group_specs(groups, state.subset_config, 2 * R) if s.repeat >= R]
        stored["independent holdout"] = stored_count(state.subset_data, unseen, state.seed, state.store)
    stages = {name: len(gs) for name, (_, _, gs) in stage_groups.items() if gs}
    # every method's final model once more for its test predictions (--group-attribute): at most one per method
    methods = 3 + options.pairwise_baseline + options.affinity_baseline + bool(state.combo_groups)
    fairness = methods if options.group_attribute else 0
    state.plan = plan = plan_runs(stages, stored, R,
                                  # candidates (when validated), 4 final models, their 3 runs for the check's rows
                                  later=(state.k + 1 if options.threshold_by == "validation" else 0) + 4 + 3 + fairness)
    if state.notify:
        state.notify(f"{plan.runs} runs ({state.n_fit} + {options.holdout} subsets of {options.alpha} of {state.k} "
                     f"sources, {R} repeat{'s' if R > 1 else ''}), {plan.runs - plan.to_train} already stored, "
                     f"{plan.to_train} to train ("
                     + ", ".join(f"{name} {row.runs}" for name, row in plan.stages.items())
                     + f"), then at most {plan.later_at_most} threshold candidates, final models"
                     + (", the check's runs and the fairness runs" if fairness else " and the check's runs"))
        hint = cost_hint(plan, options, R)
        if hint:
            state.notify(hint)


#: Runs to train above which the plan says how to cut them. A run costs about 0.2 s of one core on adult (stacks of
#: 64, the default MLP, the idle 2-core machine) and 0.4-0.9 s when that machine is shared by many jobs, more on
#: larger data (docs/methods/source-selection.md, "The cost, before training"): 600 runs take 2 to 10 minutes of
#: one core, and the threshold candidates and final models come after them.
MANY_RUNS = 600


def cost_hint(plan: RunPlan, options: SourceOptions, repeats: int) -> str | None:
    """A ``note:`` line for a job with more than :data:`MANY_RUNS` runs to train: which options cut how many."""
    if plan.to_train <= MANY_RUNS:
        return None
    stages = plan.stages
    cuts = []
    if "exhaustive pairs" in stages:
        cuts.append(f"--exhaustive-pairs off ({stages['exhaustive pairs'].runs} runs fewer)")
    if options.holdout > 50:
        cuts.append(f"--holdout 50 ({(options.holdout - 50) * repeats} fewer)")
    if options.n_subsets is None and options.max_runs is None:
        cuts.append("--max-runs N (caps the fitted subsets x repeats)")
    if repeats > 2:
        cuts.append(f"--repeats 2 (about {plan.to_train // repeats} fewer)")
    if options.data_fraction == 1 and options.steps_fraction == 1:
        cuts.append("--data-fraction 0.4 --steps-fraction 0.2 (cheaper subset models, the paper's speed-up)")
    return (f"{plan.to_train} runs to train may take more than 15 minutes on 2 CPU cores (the time per run "
            "follows the first stack); to cut it: " + ", ".join(cuts))


def train_references(state: SourcesState) -> None:
    """Stage 2: STL for the target, and the target trained with all sources."""
    state.results.update(state.train("STL, all sources", [state.stl, state.everything]))


def train_subset_models(state: SourcesState) -> None:
    """Stage 3: the sampled subsets (and STL) with the subset models' data and budget, and the reference f(STL).

    The reference every subset is judged against: with ``--stl-repeats``, the mean of several STL runs (seeds
    seed + 1, ...), so that one lucky or unlucky STL run does not shift all of them.
    """
    t, loss, split, stl = state.target, state.loss, state.split, state.stl
    data, config = state.subset_data, state.subset_config
    state.subset_results = state.train("subset models", [stl] + state.subset_groups, data, config)
    state.stl_values = target_values(state.subset_results[stl], t, loss, split)
    state.stl_refs = [float(np.mean(state.stl_values))]
    for r in range(1, state.options.stl_repeats):
        again = state.train("STL repeats", [stl], data, config, state.seed + r)
        state.stl_refs.append(target_loss(again[stl], t, loss, split))


def train_pairwise_runs(state: SourcesState) -> None:
    """Stage 4: the target with each single source (the pairwise baseline; part of the exhaustive one)."""
    state.results.update(state.train("pairwise runs", state.pair_groups))


def make_surrogate(kind: str, ridge: float | str) -> LinearSurrogate | KernelSurrogate:
    """The job's (unfitted) surrogate: the linear one of eq. 2-3 with ridge ``ridge``, or the kernel one with
    strength ``ridge`` and its kernel chosen by leave-one-out error (``SourceOptions.surrogate``)."""
    if kind == "kernel":
        from negtransfer.select.kernel_surrogate import KernelSurrogate

        return KernelSurrogate(alpha=ridge)
    from negtransfer.gains.surrogate import LinearSurrogate

    return LinearSurrogate(alpha=ridge)


def fit_surrogate(state: SourcesState) -> None:
    """Stage 5: the surrogate on the fitted subsets, its scores on both scales, and every subset's row."""
    t, n_fit, names, f_stl = state.target, state.n_fit, state.names, state.f_stl_subsets
    state.per_repeat = np.array([target_values(state.subset_results[g], t, state.loss, state.split)
                                 for g in state.subset_groups])  # (n, R)
    f_all = state.f_all
    state.ridge = state.options.resolved_ridge(n_fit, state.k)
    state.surrogate = make_surrogate(state.options.surrogate, state.ridge).fit(state.subsets[:n_fit], f_all[:n_fit],
                                                                               stl_loss=f_stl)
    state.theta = np.asarray(state.surrogate.theta_, dtype=float)
    # The raw scores of eq. 3: with fixed-size subsets and least squares exactly |f_STL| theta + f_STL / alpha
    # (docs/methods/source-selection.md); under ridge that relation defines them, so both scales give one ranking.
    state.theta_raw = abs(f_stl) * state.theta + f_stl / state.options.alpha
    state.subset_rows = [SubsetMeasurement(
        sources=[names[s] for s in g if s != t], part="fit" if i < n_fit else "holdout", f=float(f_all[i]),
        se=standard_error(state.per_repeat[i]), paired_se=standard_error(state.per_repeat[i] - state.stl_values),
        values=state.per_repeat[i].tolist()) for i, g in enumerate(state.subset_groups)]


def predict_holdout(state: SourcesState) -> None:
    """Stage 6: negative-transfer prediction on the holdout subsets (:func:`_holdout_prediction`)."""
    state.holdout, state.holdout_points = _holdout_prediction(
        state.surrogate, state.subsets, state.per_repeat, state.n_fit, state.f_stl_subsets, state.options,
        state.seed, [state.names[s] for s in state.sources])


def predict_independent_holdout(state: SourcesState) -> None:
    """Stage 6b (``independent_holdout``): the holdout subsets and STL trained again with the repeat seeds
    ``R .. 2R - 1``, which no fitted subset used, and the negative-transfer prediction on them
    (``holdout.independent``, :func:`independent_prediction`)."""
    options, R = state.options, state.repeats
    if not (options.independent_holdout and options.holdout):
        return
    groups = list(dict.fromkeys([state.stl] + state.subset_groups[state.n_fit:]))
    results = state.train("independent holdout", groups, state.subset_data, state.subset_config, repeats=2 * R)
    t, loss, split = state.target, state.loss, state.split

    def unseen(group: Group) -> np.ndarray:
        return target_values(RepeatedResult(group, results[group].runs[R:]), t, loss, split)

    per_repeat = np.array([unseen(g) for g in state.subset_groups[state.n_fit:]])
    state.holdout = replace(state.holdout, independent=independent_prediction(
        state.surrogate, state.subsets[state.n_fit:], per_repeat, unseen(state.stl), R))


def independent_prediction(surrogate, S_hold: np.ndarray, per_repeat: np.ndarray, stl_values: np.ndarray,
                            first_repeat: int) -> IndependentHoldout:
    """F1, Spearman and the noise ceiling on holdout subsets measured with repeat seeds the surrogate never saw.

    The surrogate predicts the change of the target's loss relative to STL (``surrogate_value``), so on the
    new seeds its predicted loss is that change applied to their own f(STL) (the mean over the same
    repeats: common random numbers), and a subset is a negative transfer when its f(S) is at least that f(STL).
    That f(STL) is measured with noise the prediction does not share (its class is the sign of the predicted
    change), so the F1 ceiling draws it too (``holdout_f1_ceiling(..., stl_values=)``).
    """
    f_stl = float(np.mean(stl_values))
    predicted = f_stl + abs(f_stl) * surrogate.surrogate_value(S_hold)
    return IndependentHoldout(NegativeTransferScores.measure(predicted, per_repeat, f_stl, stl_values), f_stl,
                              list(range(first_repeat, first_repeat + per_repeat.shape[1])))


def select_by_threshold(state: SourcesState) -> None:
    """Stage 7: gamma. Every distinct selection over the grid is trained at once (``threshold_by="validation"``)
    and judged on validation, or the training-free surrogate criterion judges them (:func:`_choose_gamma`)."""
    from negtransfer.select.sources import DEFAULT_GAMMA_GRID, select_sources, threshold_candidates

    options = state.options
    state.grid = np.asarray(DEFAULT_GAMMA_GRID if options.grid == "paper" else threshold_candidates(state.theta),
                            dtype=float)
    scores = state.theta_raw if state.raw_grid else state.theta
    state.selection_of = {float(g): state.with_target(np.asarray(state.sources)[select_sources(scores, g)])
                          for g in state.grid}
    state.candidates = (list(dict.fromkeys(state.selection_of.values())) if options.threshold_by == "validation"
                        else [])
    state.results.update(state.train("threshold candidates", state.candidates))
    f_stl = state.f_stl_subsets
    n_fit = state.n_fit
    state.gamma, state.grid_scores = _choose_gamma(
        options, state.grid, state.raw_grid, state.selection_of, state.results, state.target, state.loss,
        state.split, state.subsets[:n_fit], state.f_all[:n_fit], f_stl, state.seed, state.surrogate)
    state.methods = {"stl": state.stl, "all_sources": state.everything, "selected": state.selection_of[state.gamma]}
    state.runs_used = {"stl": 1, "all_sources": 1,
                       "selected": (1 + int(state.fast) + (options.stl_repeats - 1) + len(state.subset_groups)
                                    + max(len(state.candidates), 1))}


def _baseline_size(state: SourcesState) -> int:
    """m: the baselines choose as many sources as the selection (at least one)."""
    return max(1, len(state.methods["selected"]) - 1)


def rank_by_pairwise_gain(state: SourcesState) -> None:
    """Stage 8: each source's pairwise gain (relative to STL) and the top-m baseline (HOA-style, first order)."""
    from negtransfer.select.sources import top_m_by_pairwise_gain

    f_stl = state.target_loss(state.stl)
    state.pair_gain = np.array([(f_stl - state.target_loss(g)) / abs(f_stl) for g in state.pair_groups])
    if state.options.pairwise_baseline:
        top = top_m_by_pairwise_gain(state.pair_gain, _baseline_size(state))
        state.methods["pairwise_top_m"] = state.with_target(np.asarray(state.sources)[top])
        state.runs_used["pairwise_top_m"] = 1 + len(state.pair_groups) + 1


def rank_by_affinity(state: SourcesState) -> None:
    """Stage 9 (``affinity_baseline``): the top-m sources by ETAP affinity onto the target, from one all-task
    run with the ETAP tracker, trained with the configuration as given (the tracker's per-task gradients are
    those of the summed per-task objective)."""
    if not state.options.affinity_baseline:
        return
    from negtransfer.runs.tracked import measure_affinity

    t, sources = state.target, state.sources
    A = measure_affinity(state.dataset, state.config, state.seed, store=state.store, repeats=state.repeats,
                         executor=state.executor)
    state.affinity_scores = {state.names[s]: float(A[s, t]) for s in sources}
    top = np.argsort(-A[sources, t], kind="stable")[:_baseline_size(state)]
    state.methods["affinity_top_m"] = state.with_target(np.asarray(sources)[top])
    state.runs_used["affinity_top_m"] = 1 + 1 + 1


def search_exhaustive_pairs(state: SourcesState) -> None:
    """Stage 10 (when k is small enough, or asked for): every combination of one or two sources, the best by
    the target's validation loss (ties: fewer sources, then the first in order)."""
    if not state.combo_groups:
        return
    state.results.update(state.train("exhaustive pairs", state.combo_groups))
    up_to_two = state.pair_groups + state.combo_groups
    state.methods["exhaustive_pairs"] = min(up_to_two, key=lambda g: (state.target_loss(g), len(g)))
    state.runs_used["exhaustive_pairs"] = len(up_to_two)


def train_final_models(state: SourcesState) -> None:
    """Stage 11: every method's final model (most are trained already)."""
    state.results.update(state.train("final models", list(dict.fromkeys(state.methods.values()))))


def check_against_alternatives(state: SourcesState) -> None:
    """Stage 11b: never knowingly worse. The selection, STL and all sources compared on validation rows the
    selection did not use (:func:`unused_validation_values`); the selection is recommended unless one of the
    two has the lower loss there, which is then recommended instead (``check.recommended``: a key of
    ``methods``, so its test figures are those of that method).

    The noise of the comparison: the paired differences (the selection minus the better alternative and minus
    the other one, STL minus all sources) with a standard error over the check's rows and the repeats
    (:func:`paired_on_rows`, from the per-row losses of :func:`final_row_losses`) and a three-way verdict, and
    the same differences on the test rows (scored only); the recommendation reads none of them."""
    t, names = state.target, ("selected", "stl", "all_sources")
    groups = {name: state.methods[name] for name in names}
    results = {name: state.results[g] for name, g in groups.items()}
    values, rows, unused = unused_validation_values(state.dataset, results, t, state.split)
    mean = {name: float(np.mean(v)) for name, v in values.items()}
    best = min(("stl", "all_sources"), key=mean.__getitem__)
    diff = values["selected"] - values[best]
    keep = mean["selected"] <= mean[best]
    recommended = "selected" if keep else best
    whose = {"stl": "STL's", "all_sources": "all sources'"}[best]
    where = (f"the {rows} validation rows of the target that chose only the stopping epoch (not f(S), not the "
             "threshold)" if unused else f"all {rows} validation rows of the target, which f(S) and the threshold "
             "were also read from (this training scheme leaves none unused), so the check favours the selection")
    figures = f"{mean['selected']:.4f} vs {mean[best]:.4f}, difference {float(np.mean(diff)):+.4f}"
    reason = (f"the selection's target loss on {where} is no higher than {whose}, the better alternative ({figures})"
              if keep else f"the selection's target loss on {where} is higher than {whose} ({figures}), so "
              f"{'STL' if best == 'stl' else 'all sources'} is recommended instead")
    same = [name for name in ("stl", "all_sources") if groups[name] == groups["selected"]]
    if same:
        reason = f"the selection is {'STL (no source)' if same[0] == 'stl' else 'all sources'} itself"
    start = time.perf_counter()
    row_losses, note = final_row_losses(state.train, state.dataset, groups, results, t,
                                        check_rows(state.dataset, t, state.split))
    pairs = check_pairs(best)
    test_values = {name: res.values("test_loss", t) for name, res in results.items()}
    paired = {key: paired_on_rows(values, None if row_losses is None else row_losses["check"], *pair)
              for key, pair in pairs.items()}
    test_paired = {key: paired_on_rows(test_values, None if row_losses is None else row_losses["test"], *pair)
                   for key, pair in pairs.items()}
    state.check = AlternativesCheck(
        rows="stopping half" if unused else "all validation (used by the selection)", n_rows=int(rows),
        unused_by_selection=bool(unused), loss=mean, se={name: standard_error(v) for name, v in values.items()},
        best_alternative=best, difference=float(np.mean(diff)), difference_se=standard_error(diff),
        recommended=recommended, reason=reason, noise="repeats" if row_losses is None else "rows and repeats",
        noise_note=note, paired=paired, margin_se=CHECK_MARGIN_SE, verdict=paired["selected_minus_best"].verdict,
        test_paired=test_paired, row_seconds=time.perf_counter() - start)


def target_validation_halves(dataset: MultiTaskDataset, target: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """The target's labelled validation rows as the check splits them, each in row order: the rows it reads and
    those it leaves to f(S). When f(S) is read from the estimate half (``split="val_est"``,
    :func:`~negtransfer.train.batched.validation_halves`), the stopping half and the estimate half; else every
    validation row and none."""
    from negtransfer.train.batched import validation_halves

    if split == "val_est":
        check, estimate = validation_halves(dataset)
    else:
        check, estimate = np.flatnonzero(dataset.split == VALIDATION), np.empty(0, dtype=np.intp)
    return check[~np.isnan(dataset.Y[check, target])], estimate[~np.isnan(dataset.Y[estimate, target])]


def check_rows(dataset: MultiTaskDataset, target: int, split: str) -> np.ndarray:
    """The target's labelled validation rows the check reads (:func:`unused_validation_values`), in row order:
    the stopping half when f(S) is read from the other half (``split="val_est"``), else every validation row
    (:func:`target_validation_halves`)."""
    return target_validation_halves(dataset, target, split)[0]


def scored_copy(dataset: MultiTaskDataset, target: int, rows: np.ndarray) -> MultiTaskDataset:
    """``dataset`` with ``rows`` appended once more as audit rows (split code 4) labelled for ``target`` only.

    Audit rows are never trained on, never choose a stopping epoch and are only scored
    (:meth:`~negtransfer.data.dataset.MultiTaskDataset.with_audit`), and the training rows keep their indices,
    so a run on the copy is the run on ``dataset`` (same batches, same stopping rows, same numbers: checked by
    :func:`final_row_losses`) that also records each appended row's target loss, the last ``len(rows)`` entries
    of ``ModelResult.audit_row_loss[target]``.
    """
    from negtransfer.data.dataset import AUDIT

    labels = np.full((rows.size, dataset.n_tasks), np.nan, dtype=np.float32)
    labels[:, target] = dataset.Y[rows, target]
    row_task = None if dataset.row_task is None else np.concatenate(
        [dataset.row_task, np.full(rows.size, target, dtype=np.asarray(dataset.row_task).dtype)])
    return MultiTaskDataset(dataset.name, dataset.tasks, np.concatenate([dataset.X, dataset.X[rows]]),
                            np.concatenate([dataset.Y, labels]),
                            np.concatenate([dataset.split, np.full(rows.size, AUDIT, dtype=np.int8)]),
                            dataset.feature_names, row_task=row_task, info=dataset.info)


def final_row_losses(train: Callable[[str, list[Group], MultiTaskDataset], dict[Group, RepeatedResult]],
                     dataset: MultiTaskDataset, groups: dict[str, Group], results: dict[str, RepeatedResult],
                     target: int, rows: np.ndarray) -> tuple[dict[str, dict[str, np.ndarray]] | None, str]:
    """Per model, the target's loss on each of ``rows`` and on each of its test rows in each repeat: from the
    final models' runs on :func:`scored_copy` (the run store keeps no weights and the stored runs no per-row
    validation losses; training is deterministic, so these are the stored models, which is checked). The runs
    go through the run store like every other run of the job, so a rerun reads them.

    Parameters
    ----------
    train : callable(label, groups, data) -> dict
        Every repeat of ``groups`` on ``data`` through the run store (:meth:`SourcesState.train`).
    groups, results : dict
        Name -> the model's group, and its stored runs on ``dataset``.
    rows : ndarray of int
        The target's labelled rows the check reads (:func:`check_rows`).

    Returns
    -------
    (dict, str), or (None, str)
        ``"check"`` and ``"test"`` -> name -> ndarray (R, n) of per-row losses (``rows``; the target's labelled
        test rows, in row order), and how they were obtained; None and why not when there are no rows, or a
        run on the copy differs from the stored one in the target's validation or test loss (a device that does
        not train deterministically).
    """
    if rows.size == 0:
        return None, "no validation rows of the target to score"
    distinct = list(dict.fromkeys(groups.values()))
    scored = train("the check's per-row losses", distinct, scored_copy(dataset, target, rows))
    for name, g in groups.items():
        for r, (again, stored) in enumerate(zip(scored[g].runs, results[name].runs, strict=True)):
            if (again.val_loss[target], again.test_loss[target]) != (stored.val_loss[target], stored.test_loss[target]):
                return None, (f"the {name} model of repeat {r}, trained again for its per-row losses, differs from "
                              f"the stored run (validation loss {again.val_loss[target]!r} vs "
                              f"{stored.val_loss[target]!r}): this device does not train deterministically, so "
                              "the s.e. counts the repeats only")
    losses: dict[str, dict[str, np.ndarray]] = {"check": {}, "test": {}}
    for name, g in groups.items():
        check, test = scored[g].row_values("audit_row_loss", target), scored[g].row_values("test_row_loss", target)
        if check is None or test is None:
            return None, ("a stored run on the scored copy holds no per-row losses, so the s.e. counts the repeats "
                          "only")
        losses["check"][name], losses["test"][name] = check[:, -rows.size:], test
    runs = len(distinct) * len(results["selected"].runs)
    return losses, (f"per-row target losses of the {len(distinct)} final models on the {rows.size} rows, from "
                    f"their {runs} runs on a copy of the data that scores those rows (identical to the stored "
                    "runs: checked)")


def check_pairs(best: str) -> dict[str, tuple[str, str]]:
    """The check's paired differences, key -> (minuend, subtrahend): the selection minus ``best`` (the better
    alternative) and minus the other one, and STL minus all sources."""
    other = "all_sources" if best == "stl" else "stl"
    return {"selected_minus_best": ("selected", best), "selected_minus_other": ("selected", other),
            "stl_minus_all_sources": ("stl", "all_sources")}


def paired_on_rows(values: dict[str, np.ndarray], row_losses: dict[str, np.ndarray] | None, chosen: str,
                   other: str) -> PairedDifference:
    """The paired difference ``chosen`` minus ``other`` on the check's rows: ``mean`` over the repeats of the
    per-repeat losses ``values``, ``se`` over the rows and the repeats (the two-way random-effects s.e. of
    :func:`~negtransfer.gains.paired_rows.paired_row_se` of the per-row differences of one task, never below
    ``se_runs``), ``se_runs`` over the repeats only,
    ``se_rows`` over the rows only, and the three-way ``verdict`` (:func:`check_verdict`, at
    :data:`CHECK_MARGIN_SE` s.e.; :data:`UNKNOWN_NOISE` when ``se`` is NaN). Without ``row_losses``, ``se`` is
    ``se_runs`` and ``se_rows`` NaN."""
    z = None if row_losses is None else row_losses[chosen] - row_losses[other]
    paired = paired_difference(values[chosen] - values[other], z, CHECK_MARGIN_SE)
    return paired.with_verdict(check_verdict(paired.mean, paired.se, CHECK_MARGIN_SE))


def check_verdict(mean: float, se: float, margin: float) -> str:
    """The check's words for :func:`~negtransfer.gains.paired_rows.noise_verdict` of a difference of losses at
    ``margin`` standard errors (:func:`~negtransfer.gains.paired_rows.verdict_phrase`, ``"loss"`` style: "lower
    beyond noise", "within noise", "higher beyond noise"); :data:`UNKNOWN_NOISE` when ``se`` is NaN."""
    return verdict_phrase(noise_verdict(mean, se, margin), "loss") if np.isfinite(se) else UNKNOWN_NOISE


def unused_validation_values(dataset: MultiTaskDataset, results: dict, target: int,
                             split: str) -> tuple[dict[str, np.ndarray], int, bool]:
    """Each repeat's target loss (cross-entropy or MSE) of some runs on validation rows that neither f(S) nor
    the threshold read: the stopping half when f(S) is read from the other half (``split="val_est"``), from
    ``val = (n_stop * stop + n_est * est) / (n_stop + n_est)`` over the target's labelled rows of each half.
    Otherwise every validation row (then ``unused`` is False).

    Returns
    -------
    values : dict name -> ndarray (R,)
    rows : int
        The labelled validation rows of the target the values are read from.
    unused : bool
    """
    check, estimate = target_validation_halves(dataset, target, split)
    if split != "val_est":
        return {name: res.values("val_loss", target) for name, res in results.items()}, int(check.size), False
    n_stop, n_est = int(check.size), int(estimate.size)
    values = {name: ((n_stop + n_est) * res.values("val_loss", target) - n_est * res.values("val_est_loss", target))
              / max(n_stop, 1) for name, res in results.items()}
    return values, n_stop, True


def measure_fairness(state: SourcesState) -> None:
    """Stage 12 (``group_attribute``): per-group fairness of each method's final model (:func:`fairness_by_method`),
    from the test predictions of their runs of kind :data:`TEST_PREDICTIONS` (through the run store)."""
    if not state.options.group_attribute:
        return
    groups = list(dict.fromkeys(state.methods.values()))  # two methods may choose the same group
    specs = [RunSpec(TEST_PREDICTIONS, g, r, state.train_config, {"task": state.target})
             for g in groups for r in range(state.repeats)]
    outputs = state.run_specs("fairness runs", specs)
    predictions = {(spec.group, spec.repeat): output.records["test-predictions"]
                   for spec, output in zip(specs, outputs, strict=True)}
    state.fairness = fairness_by_method(state.dataset, state.target, state.methods, state.options.group_attribute,
                                        state.results, predictions)


#: The source-selection job, stage by stage (each a function of the :class:`SourcesState`).
SOURCES_STAGES: tuple[Callable[[SourcesState], None], ...] = (
    plan_training,
    train_references,
    train_subset_models,
    train_pairwise_runs,
    fit_surrogate,
    predict_holdout,
    predict_independent_holdout,
    select_by_threshold,
    rank_by_pairwise_gain,
    rank_by_affinity,
    search_exhaustive_pairs,
    train_final_models,
    check_against_alternatives,
    measure_fairness,
)


def preset_defaults(preset: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's defaults that depend on the training preset, as the command line and the Python API apply them.

    Returns
    -------
    (dict, dict)
        :class:`SourceOptions` fields (3 repeats, the ``"all"`` grid and the ``"parity"`` training; under
        ``preset="task-modeling"``, the surrogate paper's public setting: 5 repeats, the ``"paper"`` grid and the
        ``"task-modeling"`` training) and :class:`~negtransfer.train.config.TrainConfig` fields (pooled batches
        with the default preset: docs/methods/source-selection.md's figures were measured with them).
    """
    public = preset == "task-modeling"
    job = {"repeats": 5 if public else 3, "grid": "paper" if public else "all",
           "training": "task-modeling" if public else "parity"}
    return job, ({"batching": "pooled"} if preset == "default" else {})


def run_sources(
    dataset: MultiTaskDataset,
    options: SourceOptions,
    config: TrainConfig,
    seed: int,
    store: RunStore,
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    notify: Callable[[str], None] | None = None,
) -> SourcesReport:
    """Run the whole source-selection job (see the module docstring; :data:`SOURCES_STAGES`) and return its
    :class:`SourcesReport`.

    ``notify(message)`` receives the cost before training starts (runs per
    stage, runs already stored) and, after the first stack of subset models,
    the estimated time of the rest.
    """
    options.check(dataset)
    t0 = time.perf_counter()
    state = SourcesState(dataset, options, config, seed, store, executor, progress, notify)
    for stage in SOURCES_STAGES:
        stage(state)
    return _report(state, time.perf_counter() - t0)


def _test_figure(state: SourcesState, group: Group, name: str) -> float:
    """The target's test ``name`` ("loss", "metric" or an extra such as "accuracy") of a full-data run."""
    result, t = state.results[group], state.target
    if name == "loss":
        return result.test_loss[t]
    if name == "metric":
        return result.test_metric[t]
    return result.extra.get(f"test_{name}", {}).get(t, float("nan"))


def _report(state: SourcesState, seconds: float) -> SourcesReport:
    """The report of a finished job."""
    options, names, t, methods = state.options, state.names, state.target, state.methods
    surrogate = state.surrogate
    if surrogate is None:
        raise RuntimeError("the report of a source-selection job needs its surrogate: run every SOURCES_STAGES first")
    criterion = "val_loss" if options.threshold_by == "validation" else "surrogate_criterion"
    ses = [row.se for row in state.subset_rows]
    paired = [row.paired_se for row in state.subset_rows]

    def per_method(name: str) -> dict[str, float]:
        return {key: _test_figure(state, g, name) for key, g in methods.items()}

    return SourcesReport(**_plain({
        "dataset": state.dataset.name,
        "fingerprint": state.dataset.fingerprint(),
        "seed": state.seed,
        "target": names[t],
        "loss": state.loss,
        "alpha": options.alpha,
        "n_sources": state.k,
        "relevance": {names[s]: float(v) for s, v in zip(state.sources, state.theta, strict=True)},
        "relevance_scale": ("relative change of the target's validation loss vs STL per source (negative = helps)"
                            if options.surrogate == "linear" else "the kernel surrogate's mean relative change of "
                            "the target's validation loss when the source is added to a fitted subset holding the "
                            "others (negative = helps)"),
        "threshold": state.gamma,
        "grid": options.grid,
        "threshold_by": options.threshold_by,
        "threshold_grid": {f"{g:.4g}": {"sources": len(state.selection_of[float(g)]) - 1,
                                         criterion: state.grid_scores[float(g)]} for g in state.grid},
        "selected": [names[s] for s in methods["selected"] if s != t],
        "holdout": state.holdout,
        "holdout_points": state.holdout_points,
        "stl_val_loss": state.f_stl_subsets,
        "stl_val_losses": state.stl_refs,
        "speedup": SubsetSpeedup(options.data_fraction, options.steps_fraction),
        "test_loss": per_method("loss"),
        "test_metric_name": state.dataset.tasks[t].metric_name,
        "test_metric": per_method("metric"),
        "test_accuracy": per_method("accuracy") if state.kind != "regression" else None,
        "methods": {key: [names[s] for s in g if s != t] for key, g in methods.items()},
        "runs": {name: count * state.repeats for name, count in state.runs_used.items()},
        # no pairwise runs (no pairwise or exhaustive baseline): no gains, so the shorter pair_gain ends it
        "pairwise_gain": {names[s]: float(g) for s, g in zip(state.sources, state.pair_gain, strict=False)},
        "affinity_onto_target": state.affinity_scores,
        "fairness": state.fairness,
        "config": state.train_config.to_dict(),
        "seconds": seconds,
        "training": options.training,
        "repeats": state.repeats,
        "f_rows": "estimate half" if state.split == "val_est" else "all",
        "threshold_scale": "raw" if state.raw_grid else "relative",
        "raw_relevance": {names[s]: float(v) for s, v in zip(state.sources, state.theta_raw, strict=True)},
        "stl_val_se": standard_error(state.stl_values),
        "subsets": state.subset_rows,
        "subset_se": {"mean": _nanmean(ses), "median": _nanmedian(ses), "paired_mean": _nanmean(paired),
                      "paired_median": _nanmedian(paired)},
        "test_loss_se": {key: standard_error(state.results[g].values("test_loss", t)) for key, g in methods.items()},
        "plan": replace(state.plan, estimated_seconds=state.timing.get("estimated")),
        "ridge": RidgeChoice(_plain(state.ridge), float(surrogate.alpha_)),
        "surrogate": SurrogateDescription(options.surrogate,
                                          **(_plain(surrogate.describe()) if hasattr(surrogate, "describe") else {})),
        "check": state.check,
    }))


def _choose_gamma(options, grid, raw_grid, selection_of, results, t, loss, split, S_fit, f_fit, f_stl, seed,
                  surrogate):
    """gamma and the criterion at every grid value: the candidate models' target validation loss (mean over
    the repeats; the paper's), or the training-free cross-fitted surrogate criterion (its folds fitted with
    the parameters of the job's ``surrogate``)."""
    from sklearn.base import clone

    from negtransfer.select.sources import choose_threshold

    if options.threshold_by == "validation":
        scores = {float(g): target_loss(results[selection_of[float(g)]], t, loss, split) for g in grid}
        return float(choose_threshold(scores.get, grid).gamma), scores
    # On the raw scale, the same selections on the relative scale: gamma_rel = (gamma_raw - f_STL / a) / |f_STL|.
    rel_grid = (grid - f_stl / options.alpha) / abs(f_stl) if raw_grid else grid
    # Two folds: the held-out fold's own surrogate needs as many subsets as it can get (>= k ideally).
    choice = choose_threshold(S_fit, f_fit, f_stl, rel_grid, cv=2, seed=seed, surrogate=clone(surrogate))
    return float(grid[int(np.argmin(np.abs(rel_grid - choice.gamma)))]), {
        float(g): float(v) for g, v in zip(grid, choice.scores, strict=True)}


def _holdout_prediction(surrogate, S_all, per_repeat, n_fit, f_stl, options, seed,
                        source_names) -> tuple[HoldoutPrediction, list[HoldoutPoint]]:
    """Negative-transfer prediction on the holdout subsets (F1 of the minority class, Spearman, the class
    balance, the noise ceiling of a correlation with their measured f), their points, and the error curve
    as the number of fitted subsets grows (paper Figure 6)."""
    from sklearn.base import clone

    from negtransfer.select.sources import surrogate_error_curve

    if not options.holdout:
        return HoldoutPrediction(int(options.holdout)), []
    k = S_all.shape[1]
    f_all = per_repeat.mean(axis=1)
    S_hold, f_hold = S_all[n_fit:], f_all[n_fit:]
    pred_hold = surrogate.predict(S_hold)
    scores = NegativeTransferScores.measure(pred_hold, per_repeat[n_fit:], f_stl)
    points = [HoldoutPoint([source_names[j] for j in np.flatnonzero(row)], float(p), float(a),
                           standard_error(per_repeat[n_fit + i]))
              for i, (row, p, a) in enumerate(zip(S_hold, pred_hold, f_hold, strict=True))]
    sizes = sorted({s for s in (k, 2 * k, 4 * k, 8 * k, n_fit) if options.alpha <= s <= n_fit}
                   | {min(n_fit, max(k, 2))})
    curve = surrogate_error_curve(S_all, f_all, sizes, seed, holdout=np.arange(n_fit, n_fit + options.holdout),
                                  stl_loss=f_stl, surrogate=clone(surrogate).set_params(underdetermined="min_norm"))
    return HoldoutPrediction(int(options.holdout), scores, _plain(curve.to_frame().to_dict(orient="list"))), points


def _stored_runs(store: RunStore, data: MultiTaskDataset, config: TrainConfig, groups: list, seed: int,
                 repeats: int) -> int:
    """How many of the (group, repeat) runs the store already holds (:func:`negtransfer.runs.runner.stored_count`)."""
    return stored_count(data, group_specs(groups, config, repeats), seed, store)


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _nanmedian(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")


def fairness_by_method(dataset: MultiTaskDataset, target: int, methods: dict[str, Group], attribute: str,
                       results: dict[Group, RepeatedResult], predictions: dict[tuple[Group, int], dict]) -> dict:
    """Worst-group accuracy and parity gaps of each method's final model on the target's test rows.

    Parameters
    ----------
    methods : dict
        Method -> the group it trains the target with.
    attribute : str
        The row attribute whose values are the groups (:func:`~negtransfer.data.social.row_attribute`).
    results : dict
        Group -> its stored runs (each model's test loss is checked against them).
    predictions : dict
        (group, repeat) -> the record of its run of kind :data:`TEST_PREDICTIONS` (``test_loss``, ``test_rows``,
        ``test_prediction``).

    Returns
    -------
    dict
        ``attribute``, and per method the fairness summary (:func:`~negtransfer.train.fairness.fairness_summary`);
        with several repeats every figure is the mean over the repeats (the worst group is the one of repeat 0).

    Raises
    ------
    RuntimeError
        A run of the predictions differs from the stored run in the target's test loss.
    """
    from negtransfer.data.social import row_attribute
    from negtransfer.train.fairness import fairness_summary

    groups_of_rows = row_attribute(dataset, attribute)
    out: dict = {"attribute": attribute}
    for key, group in methods.items():
        summaries = []
        for r, stored in enumerate(results[group].runs):
            record = predictions[(group, r)]
            if record["test_loss"] != stored.test_loss[target]:
                raise RuntimeError(f"the {key} model of repeat {r}, trained again for its test predictions, differs "
                                   f"from its stored run (test loss {record['test_loss']!r} vs "
                                   f"{stored.test_loss[target]!r}): the run store may be stale; use a new --store")
            rows = np.asarray(record["test_rows"])
            y_true = dataset.Y[rows, target].astype(int)
            y_pred = (np.asarray(record["test_prediction"]) >= 0.5).astype(int)
            summaries.append(fairness_summary(y_true, y_pred, groups_of_rows[rows]))
        out[key] = {name: (float(np.mean([s[name] for s in summaries])) if isinstance(value, float) else value)
                    for name, value in summaries[0].items()}
    return out


def _train_for_test_predictions(dataset: MultiTaskDataset, spec: RunSpec, seed: int) -> RunOutput:
    """Train one final model again (the stored run exactly: the same group, repeat and configuration; training
    is deterministic) and keep its test predictions of the task ``spec.extra("task")`` (a worker's function)."""
    from negtransfer.train.batched import train_group_models

    task = int(spec.extra("task"))
    result = train_group_models(dataset, [spec.group], spec.config, seed, repeats=[spec.repeat],
                                keep_test_predictions=True)[0]
    return RunOutput(records={"test-predictions": {
        "test_loss": result.test_loss[task], "test_rows": list(result.extra["test_rows"][task]),
        "test_prediction": list(result.extra["test_prediction"][task])}})


#: A final model of the source-selection job trained again for its test predictions of the target (``extras``:
#: ``task``), for the fairness figures (:func:`measure_fairness`): the run store keeps them, so a rerun trains
#: nothing.
TEST_PREDICTIONS = RunKind("test-predictions", stores_model=False, artifacts=(ArtifactSlot(
    "test-predictions", "test-predictions:v1:{fingerprint}:{group}:{seed}:{config}:task={task}"),),
    train=_train_for_test_predictions)


def _plain(value):
    """JSON-friendly copy: numpy scalars to Python, NaN kept as float."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value
