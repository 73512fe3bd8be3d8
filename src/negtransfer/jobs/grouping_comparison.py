"""Several grouping methods on the same data, seeds and runs (``negtransfer compare-grouping``).

Every method of :data:`negtransfer.gains.methods.METHODS` goes through the same
grouping job (:func:`negtransfer.jobs.grouping.run_grouping`) on the same run
store, so the runs one method measures are reused by the others, and its
report is read into one row per (method, seed, budget): the chosen groups'
summed test loss (against STL, the all-task model and, with ``exhaustive``, the
test oracle), the prediction quality of the method's first fit (Pearson of
per-task gains, and of per-group total gains as in ETAP's Table 5), the
pairwise affinity correlation for the affinity methods (ETAP's Table 2), the
runs used, and the seconds the job took. :func:`summarise` turns the rows
into means ± s.e. over seeds and paired Wilcoxon signed-rank tests against a
reference method over the (seed, budget) cases (ETAP's Tables 11-12).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from negtransfer.jobs.grouping import GroupingOptions, run_grouping

__all__ = ["compare_grouping_methods", "summarise"]


def total_gain_pearson(report: dict) -> float | None:
    """Pearson of predicted vs measured summed gain per held-out group (ETAP Table 5)."""
    by_group: dict[tuple, list] = {}
    for p in report["prediction"]["points"]:
        acc = by_group.setdefault(tuple(p["group"]), [0.0, 0.0])
        acc[0] += p["predicted"]
        acc[1] += p["actual"]
    if len(by_group) < 3:
        return None
    pred, act = np.array(list(by_group.values())).T
    if np.std(pred) == 0 or np.std(act) == 0:
        return None
    return float(np.corrcoef(pred, act)[0, 1])


def compare_grouping_methods(
    load: Callable[[int], object],
    methods: Sequence[str],
    budgets: Sequence[int],
    seeds: Sequence[int],
    options: GroupingOptions,
    config,
    store_for: Callable[[int], object],
    *,
    executor=None,
    progress=None,
) -> list[dict]:
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

    Returns
    -------
    list of dict
        Keys ``method, seed, budget, selected, stl, all_tasks, vs_stl, vs_all, gap`` (None without an
        exhaustive run), ``pearson, within_task_pearson, total_gain_pearson, runs, seconds, groups``.
    """
    rows = []
    for seed in seeds:
        dataset = load(seed)
        store = store_for(seed)
        for method in methods:
            for budget in budgets:
                start = time.perf_counter()
                report = run_grouping(dataset, replace(options, method=method, budget=budget), config, seed, store,
                                      executor=executor, progress=progress).report
                t = report["totals"]
                rows.append({
                    "method": method, "seed": seed, "budget": budget, "selected": t["selected"], "stl": t["stl"],
                    "all_tasks": t["all_tasks"], "vs_stl": t["selected"] / t["stl"] - 1,
                    "vs_all": t["selected"] / t["all_tasks"] - 1,
                    "gap": (report.get("optimal") or {}).get("gap"),
                    "pearson": report["prediction"]["pearson"],
                    "within_task_pearson": report["prediction"]["within_task_pearson"],
                    "total_gain_pearson": total_gain_pearson(report),
                    "runs": report["refinement"]["runs_used"], "seconds": time.perf_counter() - start,
                    "groups": " | ".join(" + ".join(g) for g in report["selected_groups"]),
                })
    return rows


def summarise(rows: list[dict], reference: str = "etap") -> dict:
    """Means ± s.e. over seeds per (method, budget), and Wilcoxon tests of ``reference`` against each method.

    Returns
    -------
    dict
        ``cells``: {(method, budget): {key: (mean, se, n)}} for the numeric keys of the rows;
        ``wilcoxon``: {method: {"p": p-value or None, "reference_lower": k, "cases": m}} over the
        (seed, budget) cases both methods ran (p None when fewer than 6 cases or all equal).
    """
    from scipy.stats import wilcoxon

    keys = ("selected", "vs_stl", "vs_all", "gap", "pearson", "within_task_pearson", "total_gain_pearson",
            "runs", "seconds")
    cells: dict = {}
    for method in dict.fromkeys(r["method"] for r in rows):
        for budget in sorted({r["budget"] for r in rows}):
            sel = [r for r in rows if r["method"] == method and r["budget"] == budget]
            if not sel:
                continue
            cell = {}
            for key in keys:
                v = np.array([r[key] for r in sel if r[key] is not None and np.isfinite(r[key])], dtype=float)
                se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None
                cell[key] = (float(v.mean()) if v.size else None, se, int(v.size))
            cells[(method, budget)] = cell
    tests = {}
    ref = {(r["seed"], r["budget"]): r["selected"] for r in rows if r["method"] == reference}
    for method in dict.fromkeys(r["method"] for r in rows if r["method"] != reference):
        mine = {(r["seed"], r["budget"]): r["selected"] for r in rows if r["method"] == method}
        common = sorted(set(mine) & set(ref))
        diff = [ref[k] - mine[k] for k in common]
        p = None
        if len(diff) >= 6 and any(d != 0 for d in diff):
            p = float(wilcoxon(diff).pvalue)
        tests[method] = {"p": p, "reference_lower": int(sum(d < 0 for d in diff)), "cases": len(diff)}
    return {"cells": cells, "wilcoxon": tests}
