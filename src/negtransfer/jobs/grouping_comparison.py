"""Several grouping methods on the same data, seeds and runs (``negtransfer compare-grouping``).

Every method named (:func:`negtransfer.jobs.grouping_methods.method_names`) goes through the same
grouping job (:func:`negtransfer.jobs.grouping.run_grouping`) on the same run
store, so the runs one method measures are reused by the others, and its
typed report (:class:`~negtransfer.jobs.grouping_report.GroupingReport`) is read into one row per (method, seed, budget): the chosen groups'
summed test loss (against STL, the all-task model and, with ``exhaustive``, the
test oracle), the prediction quality of the method's first fit (Pearson of
per-task gains, and of per-group total gains as in ETAP's Table 5), the
pairwise affinity correlation for the affinity methods (ETAP's Table 2), the
runs used, and the seconds the job took (a :class:`ComparisonRow`).
:func:`summarise` turns the rows into a :class:`ComparisonSummary`: means ± s.e. over seeds and paired Wilcoxon signed-rank tests against a
reference method over the (seed, budget) cases (ETAP's Tables 11-12).

Beside the groupings, the all-task model trained with a gradient aggregator
(``surgery``; PCGrad by default) is one more row, as in ETAP's Section D.3 and
Table 10: one model of every task, its encoder updated by the aggregated
per-task gradients (:mod:`negtransfer.train.aggregation`), its summed test
loss compared with the groupings'. It needs no budget, so its row (the same
value) stands in every budget's table. Its runs (the all-task group under the
config with ``gradient_aggregation`` set) are trained and scored as each
grouping job trains and scores its own all-task model
(:func:`~negtransfer.jobs.grouping.grouping_state`): the job's repeats on each
of its folds, with its audit rows held back, through the same run store; its
summed test loss is the mean over those runs, and its STL and all-task
references are read from the grouping jobs' own runs
(:func:`surgery_training_rows` says which rows, for the report).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields, replace
from typing import Callable, Mapping, NamedTuple, Sequence

import numpy as np

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.data.statistics import standard_error
from negtransfer.data.task_sets import TaskSet
from negtransfer.jobs.grouping import GroupingOptions, Progress, grouping_state, run_grouping, runs_text
from negtransfer.jobs.grouping_report import GroupingReport
from negtransfer.runs.executors import Executor
from negtransfer.runs.store import RunStore
from negtransfer.train.config import TrainConfig
from negtransfer.train.results import RepeatedResult

__all__ = ["SURGERY_LABELS", "ComparisonRow", "ComparisonSummary", "MeanSE", "WilcoxonTest",
           "compare_grouping_methods", "surgery_label", "surgery_training_rows", "summarise"]

#: Display names of the gradient aggregations (rows "all tasks, one model, NAME").
SURGERY_LABELS = {"sum": "summed gradient", "pcgrad": "PCGrad", "mgda": "MGDA", "imtl-g": "IMTL-G",
                  "aligned-mtl": "Aligned-MTL", "graddrop": "GradDrop"}


@dataclass(frozen=True)
class ComparisonRow:
    """One (method, seed, budget) of a comparison: a row of ``comparison.csv`` (:meth:`to_dict`).

    Attributes
    ----------
    method : str
        The grouping method, or :func:`surgery_label` of an all-task model trained with a gradient aggregator.
    kind : {"grouping", "all-task model"}
    seed, budget : int
    selected : float
        Summed test loss of the chosen groups (of the all-task model for ``kind`` "all-task model").
    stl, all_tasks : float
        Summed test loss of STL and of the all-task model (summed gradient).
    vs_stl, vs_all : float
        ``selected`` relative to them (negative = lower loss).
    gap : float or None
        Gap to the test oracle (``--exhaustive`` only).
    pearson, within_task_pearson, total_gain_pearson : float or None
        Prediction quality of the method's first fit on held-out groups.
    runs : int
        Runs the recommendation used.
    seconds : float
    pairwise_affinity_pearson : float or None
        ETAP Table 2's column (:func:`pairwise_affinity_pearson`; ``--exhaustive`` and an affinity only).
    groups : str
        The chosen groups, "a + b | c".
    """

    method: str
    kind: str
    seed: int
    budget: int
    selected: float
    stl: float
    all_tasks: float
    vs_stl: float
    vs_all: float
    gap: float | None
    pearson: float | None
    within_task_pearson: float | None
    total_gain_pearson: float | None
    runs: int
    seconds: float
    pairwise_affinity_pearson: float | None
    groups: str

    @property
    def is_grouping(self) -> bool:
        return self.kind == "grouping"

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


class MeanSE(NamedTuple):
    """A mean over seeds, its standard error (None with one value) and the number of values."""

    mean: float | None
    se: float | None
    n: int


class WilcoxonTest(NamedTuple):
    """A paired Wilcoxon signed-rank test of the reference method against one method."""

    p: float | None
    reference_lower: int
    cases: int


@dataclass(frozen=True)
class ComparisonSummary:
    """Means ± s.e. over seeds per (method, budget), and Wilcoxon tests against the reference method.

    Attributes
    ----------
    cells : dict
        (method, budget) -> {numeric row field: MeanSE}.
    wilcoxon : dict
        Method -> WilcoxonTest over the (seed, budget) cases both it and the reference ran.
    reference : str
    """

    cells: dict
    wilcoxon: dict
    reference: str


def surgery_label(name: str) -> str:
    """The row label of the all-task model trained with aggregation ``name``."""
    return f"all tasks, one model, {SURGERY_LABELS.get(name, name)}"


def total_gain_pearson(report: GroupingReport) -> float | None:
    """Pearson of predicted vs measured summed gain per held-out group (ETAP Table 5)."""
    by_group: dict[tuple, list] = {}
    for p in report.prediction.points:
        acc = by_group.setdefault(tuple(p.group), [0.0, 0.0])
        acc[0] += p.predicted
        acc[1] += p.actual
    if len(by_group) < 3:
        return None
    pred, act = np.array(list(by_group.values())).T
    if np.std(pred) == 0 or np.std(act) == 0:
        return None
    return float(np.corrcoef(pred, act)[0, 1])


def ordered_pair_values(A, Y, pairs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The n(n-1) ordered pairs' affinity, gain and target (ETAP Table 2's data).

    Parameters
    ----------
    A : array (n, n)
        Affinity, ``A[i, j]`` of source i onto target j.
    Y : array (len(pairs), n)
        The pairs' gain table (:func:`~negtransfer.gains.table.gain_matrix`), row k for ``pairs[k]``.
    pairs : sequence of (i, j)

    Returns
    -------
    z, y, target : ndarray
        ``z`` = A[i, j], ``y`` = the gain of j in {i, j}, ``target`` = j, for
        every ordered pair (i -> j), then (j -> i).
    """
    A = np.asarray(A, dtype=float)
    z = np.array([A[i, j] for i, j in pairs] + [A[j, i] for i, j in pairs])
    y = np.array([Y[k, j] for k, (_, j) in enumerate(pairs)] + [Y[k, i] for k, (i, _) in enumerate(pairs)])
    target = np.array([j for _, j in pairs] + [i for i, _ in pairs])
    return z, y, target


def pairwise_affinity_pearson(report: GroupingReport, results: Mapping[tuple[int, ...], RepeatedResult]) -> float | None:
    """Pearson of the job's affinity z(i -> j) with the test gain of j in {i, j} (ETAP Table 2).

    Over the n(n-1) ordered pairs; the pairs' gains are the means over the
    repeats of ``results``, which must hold every STL model and pair: the
    results an exhaustive job returns (:class:`~negtransfer.jobs.grouping.GroupingResult`).
    None for a method without an affinity.
    """
    from negtransfer.gains.table import gain_matrix

    if report.affinity is None:
        return None
    n = len(report.affinity)
    pairs = [TaskSet((i, j)) for i in range(n) for j in range(i + 1, n)]
    _, Y = gain_matrix(pairs, results, n, split="test")
    z, y, _ = ordered_pair_values(report.affinity, Y, pairs)
    if np.std(z) == 0 or np.std(y) == 0:
        return None
    return float(np.corrcoef(z, y)[0, 1])


def compare_grouping_methods(
    load: Callable[[int], MultiTaskDataset],
    methods: Sequence[str],
    budgets: Sequence[int],
    seeds: Sequence[int],
    options: GroupingOptions,
    config: TrainConfig,
    store_for: Callable[[int], RunStore],
    *,
    executor: Executor | None = None,
    progress: Progress | None = None,
    surgery: Sequence[str] = (),
) -> list[ComparisonRow]:
    """Run the grouping job once per (seed, method, budget) and collect one row each.

    Parameters
    ----------
    load : callable(seed) -> MultiTaskDataset
        The dataset split with a seed.
    methods : sequence of str
        Method names (``--method`` values).
    budgets : sequence of int
    seeds : sequence of int
    options : GroupingOptions
        Every other choice of the job (its ``method`` and ``budget`` are replaced).
    config : TrainConfig
    store_for : callable(seed) -> RunStore
        The run store of a seed (one store may serve every seed).
    surgery : sequence of str
        Gradient aggregations (``TrainConfig.gradient_aggregation`` values, e.g.
        ``("pcgrad",)``): the all-task model trained with each is a row per
        (seed, budget), labelled by :func:`surgery_label`.

    Returns
    -------
    list of ComparisonRow
        The groupings' rows, then (per seed) the aggregators' rows.
    """
    from negtransfer.train.aggregation import check_aggregation

    for name in surgery:
        check_aggregation(name)
    rows = []
    for seed in seeds:
        dataset = load(seed)
        store = store_for(seed)
        for method in methods:
            for budget in budgets:
                start = time.perf_counter()
                result = run_grouping(dataset, replace(options, method=method, budget=budget), config, seed, store,
                                      executor=executor, progress=progress)
                rows.append(_grouping_row(result.report, time.perf_counter() - start, (
                    pairwise_affinity_pearson(result.report, result.results) if options.exhaustive else None)))
        rows += _surgery_rows(dataset, surgery, budgets, seed, options, config, store, executor, progress)
    return rows


def _grouping_row(report: GroupingReport, seconds: float, pairwise: float | None) -> ComparisonRow:
    """The comparison row of one grouping job's report."""
    t = report.totals
    return ComparisonRow(
        method=report.method, kind="grouping", seed=report.seed, budget=report.budget,
        selected=t["selected"], stl=t["stl"], all_tasks=t["all_tasks"],
        vs_stl=t["selected"] / t["stl"] - 1, vs_all=t["selected"] / t["all_tasks"] - 1,
        gap=None if report.optima is None else report.optima.gap,
        pearson=report.prediction.pearson, within_task_pearson=report.prediction.within_task_pearson,
        total_gain_pearson=total_gain_pearson(report), runs=report.refinement.runs_used, seconds=seconds,
        pairwise_affinity_pearson=pairwise,
        groups=" | ".join(" + ".join(g) for g in report.selected_groups),
    )


def _surgery_rows(dataset, surgery, budgets, seed, options, config, store, executor, progress) -> list[ComparisonRow]:
    """One row per (aggregation, budget): the all-task model trained with the aggregation (ETAP Section D.3).

    Trained and scored as the grouping job trains and scores its all-task model under ``options``
    (:func:`~negtransfer.jobs.grouping.grouping_state`: the same audit rows held back, the same folds and
    repeats, the summed test loss the mean over the repeats x folds runs, as the job's ``totals``); the STL and
    all-task references are the grouping jobs' own runs, read from the store.
    """
    if not surgery:
        return []
    references = grouping_state(dataset, options, config, seed, store, executor=executor)
    everything, n = references.everything, references.n
    plain = references.runs("STL + all-task runs", references.stl + [everything])  # the grouping jobs': read
    stl_total = float(sum(plain[(t,)].test_loss[t] for t in range(n)))
    all_total = float(sum(plain[everything].test_loss.values()))
    rows = []
    for name in surgery:
        label = surgery_label(name)
        start = time.perf_counter()
        job = grouping_state(dataset, options, replace(config, gradient_aggregation=name), seed, store,
                             executor=executor, progress=progress)
        result = job.runs(label, [everything])[everything]
        total = float(sum(result.test_loss.values()))
        seconds = time.perf_counter() - start
        for budget in budgets:
            rows.append(ComparisonRow(
                method=label, kind="all-task model", seed=seed, budget=budget, selected=total,
                stl=stl_total, all_tasks=all_total, vs_stl=total / stl_total - 1,
                vs_all=total / all_total - 1, gap=None, pearson=None, within_task_pearson=None,
                total_gain_pearson=None, pairwise_affinity_pearson=None, runs=options.runs_per_group,
                seconds=seconds, groups=" + ".join(dataset.task_names),
            ))
    return rows


def _count_range(counts: Sequence[int]) -> str:
    """``1,200`` or ``1,199-1,201``: the counts' range."""
    low, high = min(counts), max(counts)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def surgery_training_rows(dataset: MultiTaskDataset, options: GroupingOptions, seed: int) -> str:
    """Which rows the surgery rows' all-task models trained, stopped and were scored on, for the report.

    The rows of :func:`~negtransfer.jobs.grouping.grouping_state` (those of every grouping job under
    ``options``) for ``dataset`` (the split of ``seed``), counted: each fold's training and validation rows, the
    audit rows held back, the test rows; and the runs the test loss is a mean over.
    """
    from negtransfer.data.dataset import AUDIT, TEST, TRAIN, VALIDATION
    from negtransfer.data.folds import fold_datasets

    audited = dataset.with_audit(options.audit, source=options.audit_source)
    folds = fold_datasets(audited, options.folds)
    train = _count_range([int((f.split == TRAIN).sum()) for f in folds])
    validation = _count_range([int((f.split == VALIDATION).sum()) for f in folds])
    if options.folds == 1:
        where = f"they train on the split's {train} training rows and stop on its {validation} validation rows"
    else:
        where = (f"each of {options.folds} folds of the training and validation rows trains on {train} of them and "
                 f"stops on the other {validation}")
    held = int((audited.split == AUDIT).sum())
    audit = (f"; the {held:,} audit rows (--audit {options.audit:g}) are held back from every run"
             if options.audit > 0 else "")
    return (f"The gradient-surgery rows (--surgery) train and score their all-task model as every grouping job "
            f"trains and scores its own (--folds {options.folds}, --audit {options.audit:g}; rows of seed {seed}'s "
            f"split): {where}{audit}. Their summed test loss ({int((audited.split == TEST).sum()):,} test "
            f"rows) is the mean over {runs_text(options)}, and 'vs STL' and 'vs all-task' use the grouping jobs' own STL and "
            f"all-task runs.")


#: The numeric fields of a row that :func:`summarise` averages.
SUMMARY_FIELDS = ("selected", "vs_stl", "vs_all", "gap", "pearson", "within_task_pearson", "total_gain_pearson",
                  "pairwise_affinity_pearson", "runs", "seconds")


def _mean_se(values) -> MeanSE:
    v = np.array([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    se = standard_error(v) if v.size > 1 else None  # None: no spread to measure (JSON null)
    return MeanSE(float(v.mean()) if v.size else None, se, int(v.size))


def summarise(rows: Sequence[ComparisonRow], reference: str = "etap") -> ComparisonSummary:
    """Means ± s.e. over seeds per (method, budget), and Wilcoxon tests of ``reference`` against each method.

    Returns
    -------
    ComparisonSummary
        ``cells``: {(method, budget): {field: MeanSE}} for :data:`SUMMARY_FIELDS`;
        ``wilcoxon``: {method: WilcoxonTest} over the (seed, budget) cases both methods ran (p None when
        fewer than 6 cases or all equal).
    """
    from scipy.stats import wilcoxon

    cells: dict = {}
    for method in dict.fromkeys(r.method for r in rows):
        for budget in sorted({r.budget for r in rows}):
            sel = [r for r in rows if r.method == method and r.budget == budget]
            if sel:
                cells[(method, budget)] = {key: _mean_se(getattr(r, key) for r in sel) for key in SUMMARY_FIELDS}
    tests = {}
    ref = {(r.seed, r.budget): r.selected for r in rows if r.method == reference}
    for method in dict.fromkeys(r.method for r in rows if r.method != reference):
        mine = {(r.seed, r.budget): r.selected for r in rows if r.method == method}
        common = sorted(set(mine) & set(ref))
        diff = [ref[k] - mine[k] for k in common]
        p = None
        if len(diff) >= 6 and any(d != 0 for d in diff):
            p = float(wilcoxon(diff).pvalue)
        tests[method] = WilcoxonTest(p, int(sum(d < 0 for d in diff)), len(diff))
    return ComparisonSummary(cells, tests, reference)
