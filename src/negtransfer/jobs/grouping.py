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

Where test data is touched: every choice (predictor fit, selection, refinement,
the per-task assignment of an overlapping grouping, the comparison with simple
alternatives) uses *validation* losses by default (``gain_split="validation"``);
reported losses, the prediction quality and the test oracle use the test split
(ETAP eq. 1 defines gains on test data; ``gain_split="test"`` follows the paper).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from math import comb
from typing import Callable

import numpy as np

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.gains.noise import noise_floor
from negtransfer.gains.table import repeat_gains
from negtransfer.runs.executors import Executor
from negtransfer.runs.group_specs import DESIGNS, design_groups, random_groups
from negtransfer.runs.runner import ensure, repeated_results
from negtransfer.runs.specs import group_specs
from negtransfer.runs.store import RunStore
from negtransfer.runs.tracked import AffinityRequest, AffinityRuns
from negtransfer.train.config import TrainConfig
from negtransfer.train.results import RepeatedResult

Group = tuple[int, ...]
Progress = Callable[[str, int, int], None]

OBJECTIVES = ("total-loss", "mean-gain", "metric")


@dataclass
class GroupingOptions:
    """Choices of one grouping job (validated by :meth:`check`).

    Parameters
    ----------
    budget : int
        At most this many groups are chosen; together they cover every task.
    method : str
        The gain predictor (:data:`negtransfer.gains.methods.METHODS`): ``etap``
        (default), ``tag``, ``hoa``, ``linear-surrogate``, ``mtgnet``, ``ayman``, ``grad-tae``.
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
    chunk_size: int = 64
    use_measured: bool = True
    trace_pairs: int = 0

    def check(self, n_tasks: int) -> None:
        """Raise ``ValueError`` naming the first bad option (and its command-line flag)."""
        from negtransfer.affinity.training import AFFINITY_EPOCHS
        from negtransfer.gains.methods import METHODS

        problems = [
            (self.method not in METHODS, f"--method must be one of {', '.join(METHODS)}, got {self.method!r}"),
            (n_tasks < 2, "grouping needs at least 2 tasks"),
            (self.budget < 1, f"--budget must be >= 1, got {self.budget}"),
            (self.n_train_groups < 1, f"--train-groups must be >= 1, got {self.n_train_groups}"),
            (self.design not in DESIGNS, f"--design must be one of {', '.join(DESIGNS)}, got {self.design!r}"),
            (self.repeats < 1, f"--repeats must be >= 1, got {self.repeats}"),
            (self.rounds < 1, f"--rounds must be >= 1, got {self.rounds}"),
            (self.per_round is not None and self.per_round < 1, f"--per-round must be >= 1, got {self.per_round}"),
            (not self.kappa >= 0, f"--kappa must be >= 0, got {self.kappa}"),
            (self.max_runs is not None and self.max_runs < 1, f"--max-runs must be >= 1, got {self.max_runs}"),
            (self.objective not in OBJECTIVES,
             f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}"),
            (self.gain_split not in ("validation", "test"), "gain_split must be 'validation' or 'test'"),
            (self.affinity_every < 1, "affinity_every must be >= 1"),
            (self.affinity_epochs not in AFFINITY_EPOCHS, f"affinity_epochs must be one of {AFFINITY_EPOCHS}"),
            (self.chunk_size < 1, f"--chunk-size must be >= 1, got {self.chunk_size}"),
            (self.trace_pairs > 0 and self.method in METHODS and METHODS[self.method].affinity not in ("etap", "tag"),
             f"--trace plots the per-step affinity of a tracked all-task run; --method {self.method} has none "
             "(use etap or tag)"),
            (n_tasks > self.max_candidates_tasks,
             f"{n_tasks} tasks give 2^{n_tasks} - 1 candidate groups; select at most "
             f"{self.max_candidates_tasks} tasks with --tasks"),
        ]
        for bad, message in problems:
            if bad:
                raise ValueError(message)

    def resolved_affinity_momentum(self) -> bool:
        """``affinity_momentum``, or the method's own choice when it is None."""
        from negtransfer.gains.methods import method

        return method(self.method).affinity_momentum if self.affinity_momentum is None else bool(self.affinity_momentum)

    def one_shot_runs(self, n_tasks: int) -> int:
        """Runs of the one-shot protocol: STL, all-task, training groups (every pair for HOA), the chosen groups."""
        from negtransfer.gains.methods import method

        m = method(self.method)
        available = sum(comb(n_tasks, s) for s in range(2, n_tasks))
        training = n_tasks * (n_tasks - 1) // 2 if m.all_pairs else min(self.n_train_groups, available)
        if m.all_pairs and m.groups_with_pairs:  # plus groups of 3..n-1 tasks
            training += min(self.n_train_groups, sum(comb(n_tasks, s) for s in range(3, n_tasks)))
        return self.repeats * (n_tasks + 1 + training + self.budget)


@dataclass
class GroupingResult:
    report: dict
    results: dict[Group, RepeatedResult] = field(default_factory=dict)


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


def _trace_of_strongest_pairs(trace_steps: list[int], trace: list[np.ndarray], affinity: np.ndarray, names,
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


def _rows_to_groups(candidates: np.ndarray, rows) -> list[Group]:
    return [tuple(int(i) for i in np.flatnonzero(candidates[r])) for r in rows]


class _Grouping:
    """State of one grouping job: what is measured, the predictor, the scores."""

    def __init__(self, dataset, options, config, seed, store, executor, progress):
        from negtransfer.select.groups import all_groups

        self.dataset, self.options, self.config, self.seed = dataset, options, config, seed
        self.store, self.executor, self.progress = store, executor, progress
        self.n = dataset.n_tasks
        self.names = dataset.task_names
        self.results: dict[Group, RepeatedResult] = {}
        self.trained: list = []  # the run specifications this job trained (one per model)
        self.affinity_runs: AffinityRuns | None = None
        self.seconds: dict[str, float] = {}
        self.candidates = all_groups(self.n)
        self.row_of = {g: r for r, g in enumerate(_rows_to_groups(self.candidates, range(len(self.candidates))))}
        self.measured: list[Group] = []  # multi-task groups measured for the recommendation, in order
        self.higher_better = [t.metric_name != "mse" for t in dataset.tasks]
        self.one_shot = options.one_shot_runs(self.n)
        self.max_runs = options.max_runs if options.max_runs is not None else 3 * self.one_shot
        self.per_round = max(options.per_round if options.per_round is not None else max(2 * options.budget, 4),
                             options.budget)

    # ---------------------------------------------------------------- runs
    def runs(self, label: str, groups: list[Group], affinity: AffinityRequest | None = None
             ) -> dict[Group, RepeatedResult]:
        """Every repeat of ``groups`` through the run store (:func:`negtransfer.runs.runner.ensure`).

        ``affinity``: also the all-task runs that measure it, in the same call, so each repeat's all-task
        model is trained once (the tracked run stands for the group run); kept in ``self.affinity_runs``.
        """
        start = time.perf_counter()
        cb = (lambda done, total: self.progress(label, done, total)) if self.progress else None
        specs = group_specs(groups, self.config, self.options.repeats)
        extra = [] if affinity is None else affinity.specs(self.n, self.config, self.options.repeats)
        trained: list = []
        outputs = ensure(self.dataset, specs + extra, self.seed, self.store, executor=self.executor,
                         chunk_size=self.options.chunk_size, on_progress=cb, trained=trained)
        self.trained += trained
        if extra:
            self.affinity_runs = AffinityRuns.from_outputs(extra, outputs[len(specs):], trained)
        out = repeated_results(specs, outputs[: len(specs)])
        self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - start
        self.results.update(out)
        return out

    def measure(self, label: str, groups: list[Group], affinity: AffinityRequest | None = None) -> None:
        new = [g for g in groups if g not in self.measured and len(g) > 1]
        self.runs(label, groups, affinity)
        self.measured += new

    # ---------------------------------------------------------------- gains
    def gains(self, groups: list[Group], split: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(U, G): per-repeat gains (m, n, R) on ``split`` under the objective's measure."""
        split = split or self.options.gain_split
        if self.options.objective != "metric":
            return repeat_gains(groups, self.results, self.n, split=split)
        U, G = repeat_gains(groups, self.results, self.n, split=split, measure="metric",
                            higher_better=self.higher_better)
        return U, G

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
        from negtransfer.gains.methods import method

        groups = self.measured if rows is None else [self.measured[i] for i in rows]
        U, G = self.gains(groups)
        with np.errstate(invalid="ignore"):
            Y = G.mean(axis=2)
        return method(self.options.method).build(self.affinity, self.seed, fixed).fit(U, Y)

    def scores(self, predicted: np.ndarray) -> np.ndarray:
        """Selection scores of every candidate: measured groups by measured gains (if use_measured)."""
        S = predicted.copy()
        if self.options.use_measured and self.measured:
            U, G = self.gains(self.measured)
            with np.errstate(invalid="ignore"):
                Y = G.mean(axis=2)
            for g, gains in zip(self.measured, Y):
                S[self.row_of[g]] = gains
        return S * self.weights()[None, :]

    def select(self, scores: np.ndarray, measured_only: bool = False) -> tuple[list[Group], float]:
        """At most B groups maximising the summed score (only measured groups and singletons if asked)."""
        from negtransfer.select.groups import select_groups

        rows = None
        if measured_only:
            rows = [r for g, r in self.row_of.items() if g in self.results]
        selection = select_groups(self.candidates, scores, self.options.budget, candidates=rows)
        return _rows_to_groups(self.candidates, selection.groups), float(selection.objective)

    def acquire(self, chosen: list[Group], predictor, limit: int, seed: int, record: dict) -> list[Group]:
        """Unmeasured groups to train next (:mod:`negtransfer.select.acquisition`)."""
        from negtransfer.select.acquisition import cross_validated_error, optimistic_improvement, rank_acquisitions

        fixed = dict(getattr(predictor, "best_params_", {}))
        U_m, G_m = self.gains(self.measured)
        with np.errstate(invalid="ignore"):
            Y_m = G_m.mean(axis=2)

        def fit_predict(train_rows, test_rows):
            return self.fit_predictor(train_rows, fixed=fixed).predict(U_m[test_rows])

        error = cross_validated_error(fit_predict, U_m, Y_m, seed=seed)
        error = np.where(np.isfinite(error), error, 0.0)
        predicted = predictor.predict(self.candidates)
        scores = self.scores(predicted)
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
        record["predictor_cv_rmse"] = {self.names[t]: float(error[t]) for t in range(self.n)}
        record["optimistic_improvement"] = {"+".join(self.names[t] for t in g): float(improvement[self.row_of[g]])
                                            for g in groups}
        return groups

    def runs_used(self) -> int:
        """Runs the recommendation has used so far (repeats included, stored ones too)."""
        return self.options.repeats * len(self.results)

    def group_names(self, groups: list[Group]) -> list[list[str]]:
        return [[self.names[t] for t in g] for g in groups]

    # ------------------------------------------------------------- totals
    def val_total(self, groups: list[Group]) -> float:
        """Summed validation loss of a grouping (each task in its best group by validation)."""
        where = assign_tasks(groups, self.results, self.n, "val_loss")
        return float(sum(self.results[g].val_loss[t] for t, g in where.items()))


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
    """Run the whole grouping job and return its report (see module doc and docs/methods/grouping.md)."""
    from negtransfer.gains.methods import METHODS, method

    n = dataset.n_tasks
    options.check(n)
    kind = method(options.method).affinity
    if kind is not None and config.gradient_aggregation != "sum":
        raise ValueError(f"--method {options.method} measures affinity on all-task runs trained with the summed "
                         f"gradient; gradient_aggregation {config.gradient_aggregation!r} works with the methods "
                         f"that need no affinity ({', '.join(m for m, g in METHODS.items() if g.affinity is None)}), "
                         "or compare it as a row with `negtransfer compare-grouping --surgery`")
    job = _Grouping(dataset, options, config, seed, store, executor, progress)
    names = job.names
    R = options.repeats
    t0 = time.perf_counter()
    everything: Group = tuple(range(n))
    stl = [(t,) for t in range(n)]

    # 1.-2. STL and the all-task group (always a training group), with the affinity (ETAP's or TAG's tracker, or
    #    GRAD-TAE's projected gradients) measured on each repeat's all-task run, averaged over the repeats. One
    #    pass through the run store: the all-task model of a repeat is trained once, as the tracked run.
    request = (AffinityRequest(kind, every=options.affinity_every, trace=bool(options.trace_pairs))
               if kind is not None else None)
    job.measure("STL + all-task runs", stl + [everything], affinity=request)
    start = time.perf_counter()
    trace = None
    job.affinity = None
    method_cost = None
    if kind == "grad-tae":
        job.affinity, method_cost = job.affinity_runs.grad_tae()
    elif kind is not None:
        momentum = options.resolved_affinity_momentum()
        job.affinity = job.affinity_runs.matrix(n, momentum=momentum, epochs=options.affinity_epochs)
        if options.trace_pairs:
            steps, matrices = job.affinity_runs.trace_steps(momentum)
            trace = _trace_of_strongest_pairs(steps, matrices, job.affinity, names, options.trace_pairs)
    if kind is not None:
        job.seconds["affinity runs"] = time.perf_counter() - start

    # 3. Training groups (sizes 2..n-1, by the design; every pair for HOA; every pair and
    #    --train-groups larger groups for Ayman et al.), plus the all-task group.
    if method(options.method).all_pairs:
        extra = options.n_train_groups if method(options.method).groups_with_pairs else 0
        train = design_groups("pairs", n, n * (n - 1) // 2 + extra, seed) + [everything]
    else:
        train = design_groups(options.design, n, options.n_train_groups, seed) + [everything]
    train = list(dict.fromkeys(train))
    job.measure("training groups", train)

    # 4.-6. Fit, select, train the chosen groups; refine for more rounds.
    initial_predictor = job.fit_predictor()
    chosen, objective, rounds, stop_reason = _refine(job, initial_predictor)

    # Make sure every chosen group is trained (the one-shot protocol trains them after selecting).
    missing = [g for g in chosen if g not in job.results]
    if missing:
        job.measure("chosen groups", missing)
    selected_loss, task_group = best_group_losses(chosen, job.results, n)
    results = job.results

    report: dict = {
        "method": options.method,
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "seed": seed,
        "budget": options.budget,
        "repeats": R,
        "objective": options.objective,
        "n_train_groups": len(train),
        "design": options.design,
        "gain_split": options.gain_split,
        "options": asdict(options),
        "config": config.to_dict(),
        "tasks": list(names),
        "affinity": None if job.affinity is None else job.affinity.tolist(),
        "affinity_momentum": options.resolved_affinity_momentum() if kind in ("etap", "tag") else None,
        **({"method_cost": method_cost} if method_cost else {}),
        **({"affinity_trace": trace} if trace else {}),
        "train_groups": [[names[t] for t in g] for g in train],
        "selected_groups": job.group_names(chosen),
        "selected_predicted_objective": float(objective),
        "task_group": {names[t]: [names[i] for i in g] for t, g in task_group.items()},
        "rounds": rounds,
        "refinement": {"rounds_run": sum(1 for r in rounds if not r.get("final_among_measured")),
                       "final_among_measured": any(r.get("final_among_measured") for r in rounds),
                       "stopped": stop_reason, "max_runs": job.max_runs,
                       "one_shot_runs": job.one_shot, "runs_used": job.runs_used(),
                       "runs_vs_one_shot": job.runs_used() / job.one_shot},
    }
    test_loss = {
        "stl": {names[t]: results[(t,)].test_loss[t] for t in range(n)},
        "all_tasks": {names[t]: results[everything].test_loss[t] for t in range(n)},
        "selected": {names[t]: selected_loss[t] for t in range(n)},
    }

    # Never knowingly worse: the recommendation against simple alternatives, on validation data.
    report["comparison"] = _compare_with_alternatives(job, chosen, everything)

    # Noise floor of the measured gains (the choice split, and test).
    U_m, G_m = job.gains(job.measured)
    noise = noise_floor(U_m, G_m)
    U_t, G_t = repeat_gains(job.measured, results, n, split="test")
    noise["test"] = {k: v for k, v in noise_floor(U_t, G_t).items() if k != "verdict"}
    noise["split"] = options.gain_split
    report["noise"] = noise

    # Prediction quality of the initial (one-shot) predictor on held-out groups.
    report["prediction"] = _prediction_quality(job, train, initial_predictor)

    # With --exhaustive: the optimal groupings on measured losses, each scored by its own rule.
    totals = {k: float(sum(v.values())) for k, v in test_loss.items()}
    if options.exhaustive:
        report["optimal"] = _optima(job, totals, test_loss, chosen)
    report["test_loss"] = test_loss
    report["totals"] = totals
    used = R * len(set(job.measured) | set(stl) | {everything})
    report["runs"] = {"trained": len(job.trained), "recommendation": used, "stored_total": store.count()}
    job.seconds["total"] = time.perf_counter() - t0
    report["seconds"] = job.seconds
    return GroupingResult(report=report, results=results)


def _refine(job: _Grouping, predictor) -> tuple[list[Group], float, list[dict], str]:
    """Select, train what the selection (and, with more rounds, the acquisition rule) asks for, refit, repeat.

    Returns the final selection, its predicted objective, one record per round and why it stopped.
    """
    options, R, names = job.options, job.options.repeats, job.names
    chosen, objective = job.select(job.scores(predictor.predict(job.candidates)))
    rounds: list[dict] = []
    previous: list[Group] | None = None
    stop_reason = "one round: the paper's one-shot protocol (fit, select, train the chosen groups)"
    for k in range(1, options.rounds + 1):
        unmeasured = [g for g in chosen if g not in job.results]
        record = {"round": k, "selected": job.group_names(chosen), "predicted_objective": objective,
                  "unmeasured_selected": len(unmeasured), "runs_before": job.runs_used()}
        rounds.append(record)
        last = k == options.rounds
        budget_left = (job.max_runs - job.runs_used()) // R
        acquire = unmeasured
        if not last and budget_left > len(unmeasured):
            acquire = job.acquire(chosen, predictor, min(job.per_round, budget_left), job.seed + k, record)
        if acquire:
            predicted = predictor.predict(job.candidates[[job.row_of[g] for g in acquire]])
            job.measure("chosen groups" if k == 1 else "refinement", acquire)
            _, G_new = job.gains(acquire)
            with np.errstate(invalid="ignore"):
                measured = G_new.mean(axis=2)
            record["measured"] = [{"group": [names[t] for t in g], "task": names[t],
                                   "predicted": float(predicted[i, t]), "measured": float(measured[i, t])}
                                  for i, g in enumerate(acquire) for t in g]
        record["selection_val_loss"] = job.val_total(chosen)
        previous = chosen
        if last:
            if options.rounds > 1:
                stop_reason = f"all {options.rounds} rounds used"
            break
        if not acquire:
            stop_reason = (f"converged in round {k}: the selection is measured and no unmeasured group could "
                           "improve it even optimistically")
            break
        predictor = job.fit_predictor()
        chosen, objective = job.select(job.scores(predictor.predict(job.candidates)))
        if job.runs_used() + R * options.budget > job.max_runs and any(g not in job.results for g in chosen):
            stop_reason = f"run budget ({job.max_runs} runs) spent after round {k}"
            chosen = previous
            break
    if options.rounds > 1 and not stop_reason.startswith("converged"):
        # the recommendation is made of measured groups only: select once more among them
        final, objective = job.select(job.scores(job.fit_predictor().predict(job.candidates)), measured_only=True)
        if final != chosen:
            rounds.append({"round": len(rounds) + 1, "selected": job.group_names(final),
                           "predicted_objective": objective, "unmeasured_selected": 0,
                           "runs_before": job.runs_used(), "final_among_measured": True,
                           "selection_val_loss": job.val_total(final)})
        chosen = final
    return chosen, objective, rounds, stop_reason


def _prediction_quality(job: _Grouping, train: list[Group], predictor) -> dict:
    """Pearson, R^2, within-task Pearson and the per-task-mean baseline of ``predictor`` on held-out groups.

    Held-out: every group it was not fitted on (``--exhaustive``) or ``--evaluate M`` random ones; their
    gains are measured on the test split (ETAP eq. 1), whatever split the job chose on.
    """
    options, n, names = job.options, job.n, job.names
    fitted_on = set(train)
    held_out: list[Group] = []
    available = sum(comb(n, s) for s in range(2, n))
    if options.exhaustive:
        held_out = [g for g in job.row_of if len(g) > 1 and g not in fitted_on]
    elif options.evaluate > 0 and available:
        pool = [g for g in random_groups(n, min(options.evaluate + len(train), available), (2, n - 1), job.seed + 1)
                if g not in fitted_on]
        held_out = pool[: options.evaluate]
    points = []
    if held_out:
        job.runs("held-out groups", held_out)
        U_h, G_h = job.gains(held_out, split="test")
        with np.errstate(invalid="ignore"):
            Y_h = G_h.mean(axis=2)
        P_h = predictor.predict(U_h)
        points = [{"group": [names[i] for i in g], "task": names[t], "predicted": float(P_h[row, t]),
                   "actual": float(Y_h[row, t])} for row, g in enumerate(held_out) for t in g]
    predicted = np.array([p["predicted"] for p in points])
    actual = np.array([p["actual"] for p in points])
    tasks = np.array([p["task"] for p in points])
    pearson, r2 = _pearson_r2(predicted, actual)
    U_tr, G_tr = job.gains([g for g in train if len(g) > 1])
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a task in no training group: NaN
        task_mean = np.nanmean(np.where(U_tr, G_tr.mean(axis=2), np.nan), axis=0)
    baseline = np.array([task_mean[names.index(p["task"])] for p in points])
    return {
        "pearson": pearson, "r2": r2, "n_groups": len(held_out),
        "within_task_pearson": _within_task_pearson(predicted, actual, tasks) if points else None,
        "per_task_mean_pearson": _pearson_r2(baseline, actual)[0] if points else None,
        "points": points,
    }


def _compare_with_alternatives(job: _Grouping, chosen: list[Group], everything: Group) -> dict:
    """The chosen grouping's validation total against STL (if the budget allows it) and the all-task model."""
    n = job.n
    chosen_val = job.val_total(chosen)
    alternatives = {"all-task model": job.val_total([everything])}
    if job.options.budget >= n:
        alternatives["STL (one model per task)"] = job.val_total([(t,) for t in range(n)])
    best_name = min(alternatives, key=alternatives.get)
    best = alternatives[best_name]
    better = chosen_val < best
    if better:
        verdict = (f"On validation data the chosen grouping (summed loss {chosen_val:.4f}) beats every simple "
                   f"alternative the budget allows; the closest is the {best_name} ({best:.4f}).")
    else:
        verdict = (f"On validation data the chosen grouping (summed loss {chosen_val:.4f}) is NOT better than the "
                   f"{best_name} ({best:.4f}); prefer the {best_name} unless the test figures below say otherwise.")
    if job.options.budget < n:
        verdict += f" STL needs {n} groups, more than the budget of {job.options.budget}."
    return {"validation_loss": {"selected": chosen_val, **alternatives}, "better_than_alternatives": bool(better),
            "best_alternative": best_name, "verdict": verdict}


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
    groups : list of tuple
    test_losses : dict task -> test loss under that assignment
    """
    from negtransfer.select.groups import select_groups

    groups = list(results)
    U = np.zeros((len(groups), n_tasks), dtype=bool)
    S = np.full((len(groups), n_tasks), np.nan)
    for row, g in enumerate(groups):
        U[row, list(g)] = True
        for t in g:
            S[row, t] = -getattr(results[g], by)[t]
    best = [groups[r] for r in select_groups(U, S, budget).groups]
    losses, _ = best_group_losses(best, results, n_tasks, by=by)
    return best, losses


def _optima(job: _Grouping, totals: dict, test_loss: dict, chosen: list[Group]) -> dict:
    """The test oracle and the validation oracle over every group (:func:`oracle_grouping`).

    The validation oracle also gets its summed validation loss and the chosen
    grouping's gap to it *on validation data* (``val_gap``): how close the
    search came to the best grouping it could see, apart from how well
    validation losses foretell test losses.
    """
    n, names = job.n, job.names
    every = {g: job.results[g] for g in _rows_to_groups(job.candidates, range(len(job.candidates)))}
    out, best_of = {}, {}
    for key, attr in (("test_oracle", "test_loss"), ("validation_oracle", "val_loss")):
        best, losses = oracle_grouping(every, n, job.options.budget, by=attr)
        best_of[key] = best
        total = float(sum(losses.values()))
        out[key] = {"groups": [[names[t] for t in g] for g in best], "test_loss": {names[t]: losses[t] for t in range(n)},
                    "total": total, "gap": (totals["selected"] - total) / total}
        totals[key] = total
    val_best, val_chosen = job.val_total(best_of["validation_oracle"]), job.val_total(chosen)
    out["validation_oracle"].update(val_total=val_best, val_gap=(val_chosen - val_best) / val_best)
    test_loss["optimal"] = out["test_oracle"]["test_loss"]
    totals["optimal"] = out["test_oracle"]["total"]
    return {"groups": out["test_oracle"]["groups"], "test_loss": out["test_oracle"]["test_loss"],
            "gap": out["test_oracle"]["gap"], **out}
