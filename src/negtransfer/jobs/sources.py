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
3. A linear surrogate g(S) = sum of theta_i (eq. 2-3) fitted on the first
   ``n_subsets``; on the ``holdout`` subsets, negative-transfer prediction
   (F1 of the minority class, Spearman of g vs f) and the error curve as n grows.
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
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, fields, replace
from typing import Callable

import numpy as np

from negtransfer.data.dataset import TRAIN, MultiTaskDataset
from negtransfer.jobs.choices import EXHAUSTIVE_PAIRS, SOURCE_LOSSES, SOURCE_TRAININGS, THRESHOLD_BY, THRESHOLD_GRIDS
from negtransfer.runs.executors import Executor
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.batched import ModelResult, repeat_seed
from negtransfer.train.config import TrainConfig
from negtransfer.train.results import RepeatedResult

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
    """

    target: str
    alpha: int = 5
    n_subsets: int | None = None
    holdout: int = 100
    loss: str | None = None
    ridge: float | str | None = None
    affinity_baseline: bool = True
    chunk_size: int = 64
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

    def check(self, dataset: MultiTaskDataset) -> None:
        dataset.task_index([self.target])
        k = dataset.n_tasks - 1
        if k < 1:
            raise ValueError("source selection needs at least one source task besides the target")
        if not 1 <= self.alpha <= k:
            raise ValueError(f"--alpha must be between 1 and the {k} sources, got {self.alpha}")
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
    holdout : dict
        Negative-transfer prediction on the held-out subsets (F1, Spearman,
        error curve).
    holdout_points : list of dict
    stl_val_loss : float
        The reference f(STL) (mean of ``stl_val_losses``).
    stl_val_losses : list of float
    speedup : dict
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
    ridge : dict
        The surrogate's ridge penalty: ``option`` (a number or "auto") and the
        ``alpha`` used (the one "auto" chose by leave-one-out error).
    stl_val_se : float
        Standard error of f(STL) over the repeats (NaN with one).
    subsets : list of dict
        Every sampled subset: ``sources``, ``part`` ("fit" or "holdout"),
        ``f`` (mean over repeats), ``se`` (its standard error),
        ``paired_se`` (standard error of f(S) - f(STL), paired by repeat) and
        ``values`` (f(S) of each repeat).
    subset_se : dict
        Mean and median of ``se`` and ``paired_se`` over the subsets.
    test_loss_se : dict
        Method -> standard error of its test loss over the repeats.
    plan : dict
        Runs per stage, how many the store already held, and the estimated
        time (:func:`plan_runs`).
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
    holdout: dict
    holdout_points: list
    stl_val_loss: float
    stl_val_losses: list
    speedup: dict
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
    subsets: list | None = None
    subset_se: dict | None = None
    test_loss_se: dict | None = None
    plan: dict | None = None
    ridge: dict | None = None

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
    rows = report["subsets"] if isinstance(report, dict) else report.subsets
    names = sorted(report["relevance"] if isinstance(report, dict) else report.relevance)
    column = {name: j for j, name in enumerate(names)}
    S = np.zeros((len(rows), len(names)), dtype=bool)
    for i, row in enumerate(rows):
        S[i, [column[name] for name in row["sources"]]] = True
    return (names, S, np.array([row["f"] for row in rows], dtype=float),
            np.array([row["part"] == "fit" for row in rows]))


def _se(values: np.ndarray) -> float:
    """Standard error of the mean of ``values``; NaN with fewer than two."""
    values = np.asarray(values, dtype=float)
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else float("nan")


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
    common = {"batching": "pooled", "oversample": False, "loss_weighting": "row-mean"}
    if training == "task-modeling":
        return replace(config, **common, early_stopping=False)
    steps = 0
    if dataset.row_task is not None:
        n_rows = int(((dataset.row_task == target) & (dataset.split == TRAIN)).sum())
        steps = max(1, -(-n_rows // config.batch_size))
    return replace(config, **common, steps_per_epoch=steps, stopping_task=int(target), stopping_rows="half",
                   shared_init=True)


def plan_runs(stages: dict[str, int], stored: dict[str, int], repeats: int, later: int = 0) -> dict:
    """The cost of a job before it starts: per stage the runs it needs (groups x repeats) and those already
    stored, ``to_train`` in all, and ``later_at_most``: the runs whose groups are known only later (threshold
    candidates, final models), at most ``later`` groups x repeats."""
    rows = {name: {"runs": n * repeats, "stored": min(stored.get(name, 0), n * repeats)} for name, n in stages.items()}
    return {"stages": rows, "runs": sum(r["runs"] for r in rows.values()),
            "to_train": sum(r["runs"] - r["stored"] for r in rows.values()), "later_at_most": later * repeats}


def run_sources(
    dataset: MultiTaskDataset,
    options: SourceOptions,
    config: TrainConfig,
    seed: int,
    store: RunStore,
    *,
    executor: Executor | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    notify: Callable[[str], None] | None = None,
) -> "SourcesReport":
    """Run the whole source-selection job (see the module docstring) and return its :class:`SourcesReport`.

    ``notify(message)`` receives the cost before training starts (runs per
    stage, runs already stored) and, after the first stack of subset models,
    the estimated time of the rest.
    """
    from negtransfer.gains.surrogate import LinearSurrogate
    from negtransfer.select.sources import (
        DEFAULT_GAMMA_GRID,
        sample_subsets,
        select_sources,
        threshold_candidates,
        top_m_by_pairwise_gain,
    )

    options.check(dataset)
    t0 = time.perf_counter()
    names = dataset.task_names
    t = dataset.task_index([options.target])[0]
    kind = dataset.tasks[t].kind
    loss = options.default_loss(kind)
    sources = [i for i in range(dataset.n_tasks) if i != t]
    k = len(sources)
    n_fit = options.subsets_for(k)
    R = options.repeats
    cfg = source_training_config(config, dataset, t, options.training)
    split = "val_est" if cfg.stopping_rows == "half" else "val"
    raw_grid = options.grid == "paper" and options.training != "legacy"

    def with_target(chosen) -> Group:
        return tuple(sorted({t, *(int(s) for s in chosen)}))

    timing: dict = {}
    trained: list = []  # every run trained by this call, for the time estimate

    def train(label: str, groups: list[Group], data=dataset, c=None, run_seed=seed) -> dict[Group, RepeatedResult]:
        start = (time.perf_counter(), len(trained))

        def on_progress(done: int, total: int) -> None:
            if progress:
                progress(label, done, total)
            if notify and label == "subset models" and len(trained) > start[1] and "estimated" not in timing:
                per_run = (time.perf_counter() - start[0]) / (len(trained) - start[1])
                left = max(plan["to_train"] - len(trained), 0)
                timing["estimated"] = per_run * left
                notify(f"about {per_run:.2f} s per run (in stacks of {options.chunk_size}): the other {left} runs "
                       f"to train take about {timing['estimated'] / 60:.1f} min")

        return ensure_runs(data, groups, c or cfg, run_seed, store, repeats=R, executor=executor,
                           chunk_size=options.chunk_size, on_progress=on_progress, trained=trained)

    stl, everything = (t,), tuple(range(dataset.n_tasks))
    S_all = sample_subsets(k, options.alpha, n_fit + options.holdout, seed)
    subset_groups = [with_target(np.asarray(sources)[row]) for row in S_all]
    combo_groups = ([with_target(c) for c in itertools.combinations(sources, 2)]
                    if options.runs_exhaustive_pairs(k) else [])
    pair_groups = [with_target([s]) for s in sources] if options.pairwise_baseline or combo_groups else []
    fast = options.data_fraction < 1 or options.steps_fraction < 1
    sub_data = dataset.with_train_fraction(options.data_fraction, seed)
    sub_config = replace(cfg, max_epochs=max(1, int(np.ceil(cfg.max_epochs * options.steps_fraction))),
                         shared_init=cfg.shared_init or options.common_init)

    # The cost, before anything is trained.
    stage_groups = {"STL, all sources": (dataset, cfg, [stl, everything]),
                    "subset models": (sub_data, sub_config, list(dict.fromkeys([stl] + subset_groups))),
                    "pairwise runs": (dataset, cfg, pair_groups), "exhaustive pairs": (dataset, cfg, combo_groups)}
    stored = {name: _stored_runs(store, d, c, gs, seed, R) for name, (d, c, gs) in stage_groups.items()}
    stages = {name: len(gs) for name, (_, _, gs) in stage_groups.items() if gs}
    plan = plan_runs(stages, stored, R, later=(k + 1 if options.threshold_by == "validation" else 0) + 4)
    if notify:
        notify(f"{plan['runs']} runs ({n_fit} + {options.holdout} subsets of {options.alpha} of {k} sources, "
               f"{R} repeat{'s' if R > 1 else ''}), {plan['runs'] - plan['to_train']} already stored, "
               f"{plan['to_train']} to train (" + ", ".join(f"{name} {row['runs']}" for name, row in
                                                           plan["stages"].items())
               + f"), then at most {plan['later_at_most']} threshold candidates and final models")

    results = train("STL, all sources", [stl, everything])
    subset_results = train("subset models", [stl] + subset_groups, sub_data, sub_config)
    # The reference every subset is judged against: with --stl-repeats, the mean of several STL runs
    # (seeds seed + 1, ...), so that one lucky or unlucky STL run does not shift all of them.
    stl_values = target_values(subset_results[stl], t, loss, split)
    stl_refs = [float(np.mean(stl_values))]
    for r in range(1, options.stl_repeats):
        stl_refs.append(target_loss(train("STL repeats", [stl], sub_data, sub_config, seed + r)[stl], t, loss, split))
    results.update(train("pairwise runs", pair_groups))

    f_stl = target_loss(results[stl], t, loss, split)
    f_stl_subsets = float(np.mean(stl_refs))
    per_repeat = np.array([target_values(subset_results[g], t, loss, split) for g in subset_groups])  # (n, R)
    f_all = per_repeat.mean(axis=1)
    S_fit, f_fit = S_all[:n_fit], f_all[:n_fit]
    ridge = options.resolved_ridge(n_fit, k)
    surrogate = LinearSurrogate(alpha=ridge).fit(S_fit, f_fit, stl_loss=f_stl_subsets)
    theta = np.asarray(surrogate.theta_, dtype=float)
    # The raw scores of eq. 3: with fixed-size subsets and least squares exactly |f_STL| theta + f_STL / alpha
    # (docs/methods/source-selection.md); under ridge that relation defines them, so both scales give one ranking.
    theta_raw = abs(f_stl_subsets) * theta + f_stl_subsets / options.alpha
    subset_rows = [{"sources": [names[s] for s in g if s != t], "part": "fit" if i < n_fit else "holdout",
                    "f": float(f_all[i]), "se": _se(per_repeat[i]), "paired_se": _se(per_repeat[i] - stl_values),
                    "values": per_repeat[i].tolist()}
                   for i, g in enumerate(subset_groups)]

    holdout, points = _holdout_prediction(surrogate, S_all, per_repeat, n_fit, f_stl_subsets, options, seed,
                                          [names[s] for s in sources])

    # Threshold: train every distinct selection over the grid at once, judge on validation.
    grid = np.asarray(DEFAULT_GAMMA_GRID if options.grid == "paper" else threshold_candidates(theta), dtype=float)
    selection_of = {float(g): with_target(np.asarray(sources)[select_sources(theta_raw if raw_grid else theta, g)])
                    for g in grid}
    candidates = list(dict.fromkeys(selection_of.values())) if options.threshold_by == "validation" else []
    results.update(train("threshold candidates", candidates))
    gamma, grid_scores = _choose_gamma(options, grid, raw_grid, selection_of, results, t, loss, split,
                                       S_fit, f_fit, f_stl_subsets, seed, surrogate)
    selected_group = selection_of[gamma]
    selected = [s for s in selected_group if s != t]

    # Baselines with as many sources as the selection (at least one).
    m = max(1, len(selected))
    methods: dict[str, Group] = {"stl": stl, "all_sources": everything, "selected": selected_group}
    runs_used = {"stl": 1, "all_sources": 1,
                 "selected": 1 + int(fast) + (options.stl_repeats - 1) + len(subset_groups) + max(len(candidates), 1)}
    pair_gain = np.array([(f_stl - target_loss(results[g], t, loss, split)) / abs(f_stl) for g in pair_groups])
    if options.pairwise_baseline:
        methods["pairwise_top_m"] = with_target(np.asarray(sources)[top_m_by_pairwise_gain(pair_gain, m)])
        runs_used["pairwise_top_m"] = 1 + len(pair_groups) + 1
    affinity_scores = None
    if options.affinity_baseline:
        from negtransfer.runs.tracked import measure_affinity

        # one all-task run with the ETAP tracker, trained with the configuration as given (the tracker's
        # per-task gradients are those of the summed per-task objective)
        A = measure_affinity(dataset, config, seed, store=store, repeats=R, executor=executor)
        affinity_scores = {names[s]: float(A[s, t]) for s in sources}
        top = np.argsort(-A[sources, t], kind="stable")[:m]
        methods["affinity_top_m"] = with_target(np.asarray(sources)[top])
        runs_used["affinity_top_m"] = 1 + 1 + 1
    if combo_groups:
        # Every combination of one or two sources, the best by the target's validation loss
        # (ties: fewer sources, then the first in order).
        results.update(train("exhaustive pairs", combo_groups))
        up_to_two = pair_groups + combo_groups
        methods["exhaustive_pairs"] = min(up_to_two, key=lambda g: (target_loss(results[g], t, loss, split), len(g)))
        runs_used["exhaustive_pairs"] = len(up_to_two)
    runs_used = {name: count * R for name, count in runs_used.items()}
    results.update(train("final models", list(dict.fromkeys(methods.values()))))

    def test_of(group: Group, name: str) -> float:
        if name == "loss":
            return results[group].test_loss[t]
        if name == "metric":
            return results[group].test_metric[t]
        return results[group].extra.get(f"test_{name}", {}).get(t, float("nan"))

    fairness = None
    if options.group_attribute:
        fairness = _fairness_by_method(dataset, t, methods, cfg, seed, options.group_attribute, results, R)
    ses = [row["se"] for row in subset_rows]
    paired = [row["paired_se"] for row in subset_rows]

    return SourcesReport(**_plain({
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "seed": seed,
        "target": names[t],
        "loss": loss,
        "alpha": options.alpha,
        "n_sources": k,
        "relevance": {names[s]: float(v) for s, v in zip(sources, theta)},
        "relevance_scale": "relative change of the target's validation loss vs STL per source (negative = helps)",
        "threshold": gamma,
        "grid": options.grid,
        "threshold_by": options.threshold_by,
        "threshold_grid": {f"{g:.4g}": {"sources": len(selection_of[float(g)]) - 1,
                                         ("val_loss" if options.threshold_by == "validation"
                                          else "surrogate_criterion"): grid_scores[float(g)]} for g in grid},
        "selected": [names[s] for s in selected],
        "holdout": holdout,
        "holdout_points": points,
        "stl_val_loss": f_stl_subsets,
        "stl_val_losses": stl_refs,
        "speedup": {"data_fraction": options.data_fraction, "steps_fraction": options.steps_fraction},
        "test_loss": {key: test_of(g, "loss") for key, g in methods.items()},
        "test_metric_name": dataset.tasks[t].metric_name,
        "test_metric": {key: test_of(g, "metric") for key, g in methods.items()},
        "test_accuracy": {key: test_of(g, "accuracy") for key, g in methods.items()} if kind != "regression" else None,
        "methods": {key: [names[s] for s in g if s != t] for key, g in methods.items()},
        "runs": runs_used,
        "pairwise_gain": {names[s]: float(g) for s, g in zip(sources, pair_gain)},
        "affinity_onto_target": affinity_scores,
        "fairness": fairness,
        "config": cfg.to_dict(),
        "seconds": time.perf_counter() - t0,
        "training": options.training,
        "repeats": R,
        "f_rows": "estimate half" if split == "val_est" else "all",
        "threshold_scale": "raw" if raw_grid else "relative",
        "raw_relevance": {names[s]: float(v) for s, v in zip(sources, theta_raw)},
        "stl_val_se": _se(stl_values),
        "subsets": subset_rows,
        "subset_se": {"mean": _nanmean(ses), "median": _nanmedian(ses), "paired_mean": _nanmean(paired),
                      "paired_median": _nanmedian(paired)},
        "test_loss_se": {key: _se(results[g].values("test_loss", t)) for key, g in methods.items()},
        "plan": {**plan, "estimated_seconds": timing.get("estimated")},
        "ridge": {"option": ridge, "alpha": float(surrogate.alpha_)},
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
        float(g): float(v) for g, v in zip(grid, choice.scores)}


def _holdout_prediction(surrogate, S_all, per_repeat, n_fit, f_stl, options, seed, source_names) -> tuple[dict, list]:
    """Negative-transfer prediction on the holdout subsets (F1 of the minority class, Spearman, the class
    balance, the noise ceiling of a correlation with their measured f), their points, and the error curve
    as the number of fitted subsets grows (paper Figure 6)."""
    from sklearn.base import clone

    from negtransfer.select.sources import holdout_noise_ceiling, negative_transfer_metrics, surrogate_error_curve

    holdout: dict = {"n_subsets": int(options.holdout)}
    if not options.holdout:
        return holdout, []
    k = S_all.shape[1]
    f_all = per_repeat.mean(axis=1)
    S_hold, f_hold = S_all[n_fit:], f_all[n_fit:]
    pred_hold = surrogate.predict(S_hold)
    holdout.update({key: _plain(v) for key, v in negative_transfer_metrics(pred_hold, f_hold, f_stl).items()})
    holdout["noise_ceiling"] = holdout_noise_ceiling(per_repeat[n_fit:])
    points = [{"sources": [source_names[j] for j in np.flatnonzero(row)], "predicted": float(p), "actual": float(a),
               "se": _se(per_repeat[n_fit + i])} for i, (row, p, a) in enumerate(zip(S_hold, pred_hold, f_hold))]
    sizes = sorted({s for s in (k, 2 * k, 4 * k, 8 * k, n_fit) if options.alpha <= s <= n_fit} | {min(n_fit, max(k, 2))})
    curve = surrogate_error_curve(S_all, f_all, sizes, seed, holdout=np.arange(n_fit, n_fit + options.holdout),
                                  stl_loss=f_stl, surrogate=clone(surrogate).set_params(underdetermined="min_norm"))
    holdout["error_curve"] = _plain(curve.to_frame().to_dict(orient="list"))
    return holdout, points


def _stored_runs(store: RunStore, data: MultiTaskDataset, config: TrainConfig, groups: list, seed: int,
                 repeats: int) -> int:
    """How many of the (group, repeat) runs the store already holds."""
    if not groups:
        return 0
    fingerprint, key = data.fingerprint(), config.config_hash()
    wanted = list(dict.fromkeys(groups))
    return sum(len(wanted) - len(store.missing(fingerprint, wanted, repeat_seed(seed, r), key)) for r in range(repeats))


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def _nanmedian(values) -> float:
    values = np.asarray(values, dtype=float)
    return float(np.nanmedian(values)) if np.isfinite(values).any() else float("nan")


def _fairness_by_method(dataset, t, methods, config, seed, attribute, results, repeats: int = 1) -> dict:
    """Worst-group accuracy and parity gaps of each method's final model on the target's test rows.

    The final models are retrained (training is deterministic, so they are the
    stored models exactly; checked) to get their test predictions. With
    several repeats every figure is the mean over the repeats (the worst group
    is the one of repeat 0).
    """
    from negtransfer.data.social import row_attribute
    from negtransfer.train.batched import train_group_models
    from negtransfer.train.fairness import fairness_summary

    groups_of_rows = row_attribute(dataset, attribute)
    keys = list(methods)
    groups = list(dict.fromkeys(methods[k] for k in keys))  # two methods may choose the same group
    runs = [(g, r) for g in groups for r in range(repeats)]
    trained = dict(zip(runs, train_group_models(dataset, [g for g, _ in runs], config, seed,
                                                repeats=[r for _, r in runs], keep_test_predictions=True)))
    out: dict = {"attribute": attribute}
    for key in keys:
        summaries = []
        for r in range(repeats):
            res = trained[(methods[key], r)]
            if res.test_loss[t] != results[methods[key]].runs[r].test_loss[t]:
                raise RuntimeError("a retrained model differs from its stored run; the run store may be stale")
            rows = np.asarray(res.extra["test_rows"][t])
            y_true = dataset.Y[rows, t].astype(int)
            y_pred = (np.asarray(res.extra["test_prediction"][t]) >= 0.5).astype(int)
            summaries.append(fairness_summary(y_true, y_pred, groups_of_rows[rows]))
        out[key] = {name: (float(np.mean([s[name] for s in summaries])) if isinstance(value, float) else value)
                    for name, value in summaries[0].items()}
    return out


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
