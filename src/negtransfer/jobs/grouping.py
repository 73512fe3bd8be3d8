"""The main job: choose task groups with ETAP (``negtransfer group``).

Data flow (DESIGN.md): STL runs -> one all-task run with the affinity tracker
-> MTL runs for a few sampled training groups -> ETAP gain predictor -> predicted
gains of every candidate group -> exact selection of at most B groups -> train
the chosen groups -> report. Every run goes through the run store, so a repeated
or interrupted job reuses what it already trained.

Where test data is touched: the predictor is fitted on *validation* gains of the
training groups by default (``gain_split="validation"``), so no choice the job
makes looks at the test split; reported losses and the prediction quality use
the test split (ETAP eq. 1 defines gains on test data; ``gain_split="test"``
follows the paper exactly).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.gains.table import gain_matrix
from negtransfer.runs.executors import Executor
from negtransfer.runs.group_specs import random_groups
from negtransfer.runs.runner import ensure_runs
from negtransfer.runs.store import RunStore
from negtransfer.train.batched import ModelResult
from negtransfer.train.config import TrainConfig

Group = tuple[int, ...]
Progress = Callable[[str, int, int], None]


@dataclass
class GroupingOptions:
    """Choices of one grouping job (validated by :meth:`check`).

    Parameters
    ----------
    budget : int
        At most this many groups are chosen; together they cover every task.
    n_train_groups : int
        Sampled training groups (sizes 2..n-1) whose gains are measured; the
        all-task group is always added.
    evaluate : int
        Extra random held-out groups measured to report prediction quality.
    exhaustive : bool
        Train every group and report the optimal grouping and the gap.
    gain_split : {"validation", "test"}
        Split whose losses define the gains the predictor is fitted on.
    affinity_every : int
        Track affinity every k-th step of the all-task run (1 = every step).
    max_candidates_tasks : int
        All 2^n - 1 groups are candidates up to this many tasks.
    trace_pairs : int
        Keep the per-step affinity of this many strongest pairs (by |average|)
        for the report's Figure 7 plot; 0 = no trace (the affinity is then
        cached in the run store).
    use_measured : bool
        Score the training groups by their measured gains (on ``gain_split``)
        instead of the predictor's output; every other candidate is predicted.
    """

    budget: int = 3
    n_train_groups: int = 20
    evaluate: int = 0
    exhaustive: bool = False
    gain_split: str = "validation"
    affinity_every: int = 8
    max_candidates_tasks: int = 16
    chunk_size: int = 64
    use_measured: bool = True
    trace_pairs: int = 0

    def check(self, n_tasks: int) -> None:
        if n_tasks < 2:
            raise ValueError("grouping needs at least 2 tasks")
        if self.budget < 1:
            raise ValueError(f"--budget must be >= 1, got {self.budget}")
        if self.n_train_groups < 1:
            raise ValueError(f"--train-groups must be >= 1, got {self.n_train_groups}")
        if self.gain_split not in ("validation", "test"):
            raise ValueError("gain_split must be 'validation' or 'test'")
        if self.affinity_every < 1:
            raise ValueError("affinity_every must be >= 1")
        if n_tasks > self.max_candidates_tasks:
            raise ValueError(
                f"{n_tasks} tasks give 2^{n_tasks} - 1 candidate groups; select at most "
                f"{self.max_candidates_tasks} tasks with --tasks"
            )


@dataclass
class GroupingResult:
    report: dict
    results: dict[Group, ModelResult] = field(default_factory=dict)


def _pearson_r2(predicted: np.ndarray, actual: np.ndarray) -> tuple[float | None, float | None]:
    if predicted.size < 3 or np.std(predicted) == 0 or np.std(actual) == 0:
        return None, None
    pearson = float(np.corrcoef(predicted, actual)[0, 1])
    r2 = float(1 - np.sum((actual - predicted) ** 2) / np.sum((actual - actual.mean()) ** 2))
    return pearson, r2


def best_group_losses(groups, results, n_tasks) -> tuple[dict[int, float], dict[int, Group]]:
    """Per task, the test loss in the chosen group where its *validation* loss is lowest.

    This is how TAG and HOA evaluate a grouping with overlaps; ties keep the
    first group in ``groups`` order.
    """
    losses, where = {}, {}
    for t in range(n_tasks):
        best = None
        for g in groups:
            if t in g and (best is None or results[g].val_loss[t] < results[best].val_loss[t]):
                best = g
        if best is not None:
            losses[t], where[t] = results[best].test_loss[t], best
    return losses, where


def _trace_of_strongest_pairs(tracker, affinity: np.ndarray, names, count: int) -> dict:
    """Per-step values of the ``count`` off-diagonal pairs with the largest |average affinity|."""
    off = np.abs(np.where(np.eye(len(names), dtype=bool), 0.0, np.nan_to_num(affinity)))
    order = np.argsort(-off, axis=None, kind="stable")[:count]
    pairs = [np.unravel_index(i, off.shape) for i in order]
    steps = [np.asarray(m) for m in tracker.trace]
    return {
        "steps": [int(s) for s in tracker.trace_steps],
        "pairs": [{"source": names[i], "target": names[j],
                   "values": [None if not np.isfinite(m[i, j]) else float(m[i, j]) for m in steps]}
                  for i, j in pairs],
    }


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
    """Run the whole ETAP grouping job and return its report (see module doc)."""
    from negtransfer.affinity.training import measure_affinity
    from negtransfer.gains.etap import ETAPPredictor
    from negtransfer.select.groups import all_groups, select_groups

    n = dataset.n_tasks
    options.check(n)
    names = dataset.task_names
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    before = store.count()

    def runs(label: str, groups: list[Group]) -> dict[Group, ModelResult]:
        start = time.perf_counter()
        cb = (lambda done, total: progress(label, done, total)) if progress else None
        out = ensure_runs(dataset, groups, config, seed, store, executor=executor,
                          chunk_size=options.chunk_size, on_progress=cb)
        seconds[label] = seconds.get(label, 0.0) + time.perf_counter() - start
        return out

    results: dict[Group, ModelResult] = {}
    everything: Group = tuple(range(n))
    stl = [(t,) for t in range(n)]

    # 1. STL and the all-task group (always a training group).
    results.update(runs("STL + all-task runs", stl + [everything]))

    # 2. Affinity from one tracked all-task run.
    start = time.perf_counter()
    trace = None
    if options.trace_pairs:
        from negtransfer.affinity.training import train_with_affinity

        tracker, _ = train_with_affinity(dataset, config, seed, every=options.affinity_every, keep_trace=True)
        affinity = np.asarray(tracker.affinity_matrix, dtype=float)
        trace = _trace_of_strongest_pairs(tracker, affinity, names, options.trace_pairs)
    else:
        affinity = measure_affinity(dataset, config, seed, every=options.affinity_every, store=store)
    seconds["affinity run"] = time.perf_counter() - start

    # 3. Training groups: sizes 2..n-1, plus the all-task group.
    from math import comb

    available = sum(comb(n, s) for s in range(2, n))  # groups of sizes 2..n-1
    train = [everything]
    if available:
        train = random_groups(n, min(options.n_train_groups, available), (2, n - 1), seed) + train
    results.update(runs("training groups", train))
    attr_split = options.gain_split
    U_train, Y_train = gain_matrix(train, results, n, split=attr_split)

    # 4. Predictor, then predicted gains of every candidate group.
    predictor = ETAPPredictor(affinity, random_state=seed).fit(U_train, Y_train)
    candidates = all_groups(n)
    predicted = predictor.predict(candidates)
    if options.use_measured:
        # Groups already trained score by their measured gains, not predictions.
        row_of = {tuple(int(i) for i in np.flatnonzero(r)): k for k, r in enumerate(candidates)}
        for g, gains in zip(train, Y_train):
            predicted[row_of[g]] = gains

    # 5. Exact selection under the budget (singletons predict gain 0 = STL).
    selection = select_groups(candidates, predicted, options.budget)
    chosen = [tuple(int(i) for i in np.flatnonzero(candidates[row])) for row in selection.groups]
    results.update(runs("chosen groups", chosen))
    selected_loss, task_group = best_group_losses(chosen, results, n)

    report: dict = {
        "dataset": dataset.name,
        "fingerprint": dataset.fingerprint(),
        "seed": seed,
        "budget": options.budget,
        "n_train_groups": len(train),
        "gain_split": options.gain_split,
        "config": config.to_dict(),
        "tasks": list(names),
        "affinity": affinity.tolist(),
        **({"affinity_trace": trace} if trace else {}),
        "train_groups": [[names[t] for t in g] for g in train],
        "selected_groups": [[names[t] for t in g] for g in chosen],
        "selected_predicted_objective": float(selection.objective),
        "task_group": {names[t]: [names[i] for i in g] for t, g in task_group.items()},
    }
    test_loss = {
        "stl": {names[t]: results[(t,)].test_loss[t] for t in range(n)},
        "all_tasks": {names[t]: results[everything].test_loss[t] for t in range(n)},
        "selected": {names[t]: selected_loss[t] for t in range(n)},
    }

    # 6. Prediction quality on held-out groups (evaluated or, with --exhaustive, all).
    train_set = set(train)
    held_out: list[Group] = []
    if options.exhaustive:
        held_out = [g for g in (tuple(np.flatnonzero(r)) for r in candidates) if len(g) > 1 and g not in train_set]
        held_out = [tuple(int(i) for i in g) for g in held_out]
    elif options.evaluate > 0 and available:
        pool = [g for g in random_groups(n, min(options.evaluate + len(train), available), (2, n - 1), seed + 1)
                if g not in train_set]
        held_out = pool[: options.evaluate]
    points = []
    if held_out:
        results.update(runs("held-out groups", held_out))
        U_h, Y_h = gain_matrix(held_out, results, n, split="test")
        P_h = predictor.predict(U_h)
        for row, g in enumerate(held_out):
            for t in g:
                points.append({"group": [names[i] for i in g], "task": names[t],
                               "predicted": float(P_h[row, t]), "actual": float(Y_h[row, t])})
    pearson, r2 = _pearson_r2(np.array([p["predicted"] for p in points]), np.array([p["actual"] for p in points]))
    report["prediction"] = {"pearson": pearson, "r2": r2, "n_groups": len(held_out), "points": points}

    # 7. With --exhaustive: the optimal budget-B grouping on measured test losses.
    totals = {k: float(sum(v.values())) for k, v in test_loss.items()}
    if options.exhaustive:
        measured = np.full(candidates.shape, np.nan)
        for row in range(candidates.shape[0]):
            g = tuple(int(i) for i in np.flatnonzero(candidates[row]))
            for t in g:
                measured[row, t] = -results[g].test_loss[t]
        best = select_groups(candidates, measured, options.budget)
        optimal = [tuple(int(i) for i in np.flatnonzero(candidates[row])) for row in best.groups]
        opt_loss, _ = best_group_losses(optimal, results, n)
        test_loss["optimal"] = {names[t]: opt_loss[t] for t in range(n)}
        totals["optimal"] = float(sum(opt_loss.values()))
        report["optimal"] = {
            "groups": [[names[t] for t in g] for g in optimal],
            "test_loss": test_loss["optimal"],
            "gap": (totals["selected"] - totals["optimal"]) / totals["optimal"],
        }
    report["test_loss"] = test_loss
    report["totals"] = totals
    report["runs"] = {"trained": store.count() - before, "stored_total": store.count()}
    seconds["total"] = time.perf_counter() - t0
    report["seconds"] = seconds
    return GroupingResult(report=report, results=results)
