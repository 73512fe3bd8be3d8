"""Source-task selection for one target task with surrogate task models.

``negtransfer sources`` (paper: papers/surrogate-negative-transfer.txt):

1. STL for the target, and the target trained with all sources.
2. ``n_subsets + holdout`` random subsets of ``alpha`` sources, each trained
   with the target (vectorised, through the run store); f(S) = the target's
   *validation* loss (margin, cross-entropy, 0-1 or MSE).
3. A linear surrogate g(S) = sum of theta_i (eq. 2-3) fitted on the first
   ``n_subsets``; on the ``holdout`` subsets, negative-transfer prediction
   (F1 of the minority class, Spearman of g vs f) and the error curve as n grows.
4. Threshold gamma over the paper's grid (``threshold_by="validation"``, the
   paper's procedure): every distinct selection {i : theta_i < gamma} is
   trained with the target (one stack) and gamma is the one whose model has the
   lowest target validation loss. Or (``threshold_by="surrogate"``) without
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
import time
from dataclasses import dataclass, fields, replace
from typing import Callable

import numpy as np

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.runs.executors import Executor
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.batched import ModelResult
from negtransfer.train.config import TrainConfig

Group = tuple[int, ...]
LOSSES = ("margin", "cross_entropy", "zero_one", "mse")


@dataclass
class SourceOptions:
    """Choices of one source-selection job.

    Parameters
    ----------
    target : str
        Target task name.
    alpha : int
        Sources per sampled subset (paper: 5 worked best).
    n_subsets : int
        Subsets the surrogate is fitted on (paper: n <= 8k suffices).
    holdout : int
        Further subsets for negative-transfer prediction (paper: 100).
    loss : {"margin", "cross_entropy", "zero_one", "mse"} or None
        f(S); default: the negative classification margin for classification
        (the paper's best) and MSE for regression.
    ridge : float
        Ridge penalty of the surrogate (0 = least squares, eq. 3).
    affinity_baseline : bool
        Also rank sources by ETAP affinity onto the target (one extra run).
    grid : {"paper", "all"}
        Thresholds tried: the paper's -0.5..0.5 step 0.1, or one per distinct
        selection ({i : theta_i < gamma} for every cut between sorted scores).
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
    n_subsets: int = 200
    holdout: int = 100
    loss: str | None = None
    ridge: float = 0.0
    affinity_baseline: bool = True
    chunk_size: int = 64
    data_fraction: float = 1.0
    steps_fraction: float = 1.0
    grid: str = "paper"
    group_attribute: str | None = None
    common_init: bool = False
    exhaustive_pairs: str = "auto"
    max_pair_runs: int = 300
    threshold_by: str = "validation"
    stl_repeats: int = 1
    repeats: int = 1

    def runs_exhaustive_pairs(self, n_sources: int) -> bool:
        """Whether the exhaustive up-to-two-sources baseline runs for ``n_sources`` sources."""
        if self.exhaustive_pairs == "auto":
            return n_sources >= 2 and n_sources * (n_sources - 1) // 2 <= self.max_pair_runs
        return self.exhaustive_pairs == "on" and n_sources >= 2

    def _check_choices(self) -> None:
        """The options that do not depend on the data."""
        if self.grid not in ("paper", "all"):
            raise ValueError(f"--grid must be 'paper' or 'all', got {self.grid!r}")
        if not (0 < self.data_fraction <= 1 and 0 < self.steps_fraction <= 1):
            raise ValueError("--data-fraction and --steps-fraction must be in (0, 1]")
        if self.repeats < 1:
            raise ValueError(f"--repeats must be >= 1, got {self.repeats}")
        if self.stl_repeats < 1:
            raise ValueError(f"--stl-repeats must be >= 1, got {self.stl_repeats}")
        if self.stl_repeats > 1 and self.common_init:
            raise ValueError("--stl-repeats draws new initialisations, which defeats --common-init: use one of them")
        if self.threshold_by not in ("validation", "surrogate"):
            raise ValueError(f"--threshold-by must be 'validation' or 'surrogate', got {self.threshold_by!r}")
        if self.exhaustive_pairs not in ("auto", "on", "off"):
            raise ValueError(f"--exhaustive-pairs must be 'auto', 'on' or 'off', got {self.exhaustive_pairs!r}")
        if self.n_subsets < 2 or self.holdout < 0:
            raise ValueError("--subsets must be >= 2 and --holdout >= 0")
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

    def to_dict(self) -> dict:
        """report.json (the command line's fields, task kinds and notes, last)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for key in ("task_kinds", "notes"):
            if out[key] is None:
                del out[key]
        return out


def target_loss(result: ModelResult, task: int, loss: str, split: str = "val") -> float:
    """The target's loss of one run: ``margin``, ``zero_one``, or the training loss."""
    if loss in ("cross_entropy", "mse"):
        return (result.val_loss if split == "val" else result.test_loss)[task]
    name = {"margin": "margin_loss", "zero_one": "zero_one"}[loss]
    return result.extra[f"{split}_{name}"][task]


def run_sources(
    dataset: MultiTaskDataset,
    options: SourceOptions,
    config: TrainConfig,
    seed: int,
    store: RunStore,
    *,
    executor: Executor | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> "SourcesReport":
    """Run the whole source-selection job (see the module docstring) and return its :class:`SourcesReport`."""
    from negtransfer.gains.surrogate import LinearSurrogate
    from negtransfer.select.sources import (
        DEFAULT_GAMMA_GRID,
        choose_threshold,
        negative_transfer_metrics,
        sample_subsets,
        select_sources,
        surrogate_error_curve,
        threshold_candidates,
        top_m_by_pairwise_gain,
    )

    options.check(dataset)
    t0 = time.perf_counter()
    names = dataset.task_names
    t = dataset.task_index([options.target])[0]
    kind = dataset.tasks[t].kind
    loss = options.loss or ("mse" if kind == "regression" else "margin")
    sources = [i for i in range(dataset.n_tasks) if i != t]
    k = len(sources)

    def with_target(chosen) -> Group:
        return tuple(sorted({t, *(int(s) for s in chosen)}))

    def train(label: str, groups: list[Group], data=dataset, cfg=config, run_seed=seed) -> dict[Group, ModelResult]:
        cb = (lambda done, total: progress(label, done, total)) if progress else None
        return ensure_runs(data, groups, cfg, run_seed, store, repeats=options.repeats, executor=executor,
                           chunk_size=options.chunk_size, on_progress=cb)

    stl, everything = (t,), tuple(range(dataset.n_tasks))
    S_all = sample_subsets(k, options.alpha, options.n_subsets + options.holdout, seed)
    subset_groups = [with_target(np.asarray(sources)[row]) for row in S_all]
    pair_groups = [with_target([s]) for s in sources]
    results = train("STL, all sources", [stl, everything])
    # Subset models, possibly on part of the data and of the epochs (paper's speed-up).
    fast = options.data_fraction < 1 or options.steps_fraction < 1
    sub_data = dataset.with_train_fraction(options.data_fraction, seed)
    sub_config = replace(config, max_epochs=max(1, int(np.ceil(config.max_epochs * options.steps_fraction))),
                         shared_init=config.shared_init or options.common_init)
    subset_results = train("subset models", [stl] + subset_groups, sub_data, sub_config)
    # The reference every subset is judged against: the mean of several STL runs, if asked
    # (seeds seed + 1, ...), so that one lucky or unlucky STL run does not shift all of them.
    stl_refs = [target_loss(subset_results[stl], t, loss)]
    for r in range(1, options.stl_repeats):
        stl_refs.append(target_loss(train("STL repeats", [stl], sub_data, sub_config, seed + r)[stl], t, loss))
    results.update(train("pairwise runs", pair_groups))

    f_stl = target_loss(results[stl], t, loss)
    f_stl_subsets = float(np.mean(stl_refs))
    f_all = np.array([target_loss(subset_results[g], t, loss) for g in subset_groups])
    n_fit = options.n_subsets
    S_fit, f_fit = S_all[:n_fit], f_all[:n_fit]
    surrogate = LinearSurrogate(alpha=options.ridge).fit(S_fit, f_fit, stl_loss=f_stl_subsets)
    theta = np.asarray(surrogate.theta_, dtype=float)

    holdout: dict = {"n_subsets": int(options.holdout)}
    points = []
    if options.holdout:
        S_hold, f_hold = S_all[n_fit:], f_all[n_fit:]
        pred_hold = surrogate.predict(S_hold)
        holdout.update({key: _plain(v) for key, v in negative_transfer_metrics(pred_hold, f_hold, f_stl_subsets).items()})
        points = [{"sources": [names[sources[j]] for j in np.flatnonzero(row)], "predicted": float(p), "actual": float(a)}
                  for row, p, a in zip(S_hold, pred_hold, f_hold)]
        sizes = sorted({s for s in (k, 2 * k, 4 * k, 8 * k, n_fit) if options.alpha <= s <= n_fit} | {min(n_fit, max(k, 2))})
        curve = surrogate_error_curve(S_all, f_all, sizes, seed, holdout=np.arange(n_fit, n_fit + options.holdout),
                                      stl_loss=f_stl_subsets,
                                      surrogate=LinearSurrogate(alpha=options.ridge, underdetermined="min_norm"))
        holdout["error_curve"] = _plain(curve.to_frame().to_dict(orient="list"))

    # Threshold: train every distinct selection over the grid at once, judge on validation.
    if options.grid == "paper":
        grid = np.asarray(DEFAULT_GAMMA_GRID, dtype=float)
    else:  # one threshold per distinct selection (nested sets of the best-scored sources)
        grid = np.asarray(threshold_candidates(theta), dtype=float)
    selection_of = {float(g): with_target(np.asarray(sources)[select_sources(theta, g)]) for g in grid}
    if options.threshold_by == "validation":
        candidates = list(dict.fromkeys(selection_of.values()))
        results.update(train("threshold candidates", candidates))
        val_loss = lambda gamma: target_loss(results[selection_of[float(gamma)]], t, loss)  # noqa: E731
        choice = choose_threshold(val_loss, grid, theta=theta)
        grid_scores = {float(g): val_loss(g) for g in grid}
    else:
        candidates = []  # nothing trained to choose: the criterion is the surrogate's
        # Two folds: the held-out fold's own surrogate needs as many subsets as it can get (>= k ideally).
        choice = choose_threshold(S_fit, f_fit, f_stl_subsets, grid, cv=2, seed=seed,
                                  surrogate=LinearSurrogate(alpha=options.ridge))
        grid_scores = {float(g): float(v) for g, v in zip(choice.grid, choice.scores)}
    selected_group = selection_of[float(choice.gamma)]
    selected = [s for s in selected_group if s != t]

    # Baselines with as many sources as the selection (at least one).
    m = max(1, len(selected))
    pair_gain = np.array([(f_stl - target_loss(results[with_target([s])], t, loss)) / abs(f_stl) for s in sources])
    pairwise_group = with_target(np.asarray(sources)[top_m_by_pairwise_gain(pair_gain, m)])
    methods: dict[str, Group] = {"stl": stl, "all_sources": everything, "selected": selected_group,
                                 "pairwise_top_m": pairwise_group}
    runs_used = {"stl": 1, "all_sources": 1,
                 "selected": 1 + int(fast) + (options.stl_repeats - 1) + len(subset_groups) + max(len(candidates), 1),
                 "pairwise_top_m": 1 + len(pair_groups) + 1}
    affinity_scores = None
    if options.affinity_baseline:
        from negtransfer.affinity.training import measure_affinity

        A = measure_affinity(dataset, config, seed, store=store, repeats=options.repeats)
        affinity_scores = {names[s]: float(A[s, t]) for s in sources}
        top = np.argsort(-A[sources, t], kind="stable")[:m]
        methods["affinity_top_m"] = with_target(np.asarray(sources)[top])
        runs_used["affinity_top_m"] = 1 + 1 + 1
    if options.runs_exhaustive_pairs(k):
        # Every combination of one or two sources, the best by the target's validation loss
        # (ties: fewer sources, then the first in order).
        combo_groups = [with_target(c) for c in itertools.combinations(sources, 2)]
        results.update(train("exhaustive pairs", combo_groups))
        up_to_two = pair_groups + combo_groups
        methods["exhaustive_pairs"] = min(up_to_two, key=lambda g: (target_loss(results[g], t, loss), len(g)))
        runs_used["exhaustive_pairs"] = len(up_to_two)
    runs_used = {name: count * options.repeats for name, count in runs_used.items()}
    results.update(train("final models", list(dict.fromkeys(methods.values()))))

    def test_of(group: Group, name: str) -> float:
        if name == "loss":
            return results[group].test_loss[t]
        if name == "metric":
            return results[group].test_metric[t]
        return results[group].extra.get(f"test_{name}", {}).get(t, float("nan"))

    fairness = None
    if options.group_attribute:
        fairness = _fairness_by_method(dataset, t, methods, config, seed, options.group_attribute, results)

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
        "threshold": float(choice.gamma),
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
        "config": config.to_dict(),
        "seconds": time.perf_counter() - t0,
    }))


def _fairness_by_method(dataset, t, methods, config, seed, attribute, results) -> dict:
    """Worst-group accuracy and parity gaps of each method's final model on the target's test rows.

    The final models are retrained (training is deterministic, so they are the
    stored models exactly; checked) to get their test predictions.
    """
    from negtransfer.data.social import row_attribute
    from negtransfer.train.batched import train_group_models
    from negtransfer.train.fairness import fairness_summary

    groups_of_rows = row_attribute(dataset, attribute)
    keys = list(methods)
    groups = list(dict.fromkeys(methods[k] for k in keys))  # two methods may choose the same group
    trained = dict(zip(groups, train_group_models(dataset, groups, config, seed, keep_test_predictions=True)))
    out: dict = {"attribute": attribute}
    for key in keys:
        res = trained[methods[key]]
        if res.test_loss[t] != results[methods[key]].test_loss[t]:
            raise RuntimeError("a retrained model differs from its stored run; the run store may be stale")
        rows = np.asarray(res.extra["test_rows"][t])
        y_true = dataset.Y[rows, t].astype(int)
        y_pred = (np.asarray(res.extra["test_prediction"][t]) >= 0.5).astype(int)
        out[key] = fairness_summary(y_true, y_pred, groups_of_rows[rows])
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
