"""Report of ``negtransfer compare-grouping``: comparison.csv, report.md and a plot of loss vs budget."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from negtransfer.jobs.grouping_comparison import ComparisonRow, ComparisonSummary, MeanSE
from negtransfer.report.markdown import fmt_loss, fmt_pct, fmt_stat, render_table

__all__ = ["write_comparison_report", "plot_loss_by_budget"]


def _cell(value: MeanSE, fmt) -> str:
    if value.mean is None:
        return "n/a"
    text = fmt(value.mean)
    if value.se is not None and math.isfinite(value.se):
        text += " ± " + fmt(value.se).lstrip("+\u2212")
    return text


def plot_loss_by_budget(rows: Sequence[ComparisonRow], path) -> Path:
    """Summed test loss of each method's chosen groups by budget (mean ± s.e. over seeds), STL and all-task dashed.

    Rows of the all-task model trained with a gradient aggregator (``kind`` "all-task model", e.g.
    PCGrad) need no budget: each is a dotted horizontal line at its mean over seeds.
    """
    import numpy as np

    from negtransfer.data.statistics import standard_error
    from negtransfer.report.plots import new_figure, save_figure

    fig = new_figure(6.2, 3.8)
    ax = fig.add_subplot(1, 1, 1)
    budgets = sorted({r.budget for r in rows})
    for method in dict.fromkeys(r.method for r in rows if r.is_grouping):
        means, errs = [], []
        for b in budgets:
            v = np.array([r.selected for r in rows if r.method == method and r.budget == b])
            means.append(v.mean() if v.size else np.nan)
            errs.append(standard_error(v, fewer_than_two=0.0))
        ax.errorbar(budgets, means, yerr=errs, marker="o", capsize=3, label=method)
    stl = np.mean([r.stl for r in rows])
    all_tasks = np.mean([r.all_tasks for r in rows])
    ax.axhline(stl, linestyle="--", color="#d62728", linewidth=1, label="STL")
    ax.axhline(all_tasks, linestyle="--", color="#7f7f7f", linewidth=1, label="all-task model")
    colours = ("#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#1f77b4")
    for i, method in enumerate(dict.fromkeys(r.method for r in rows if not r.is_grouping)):
        by_seed = {r.seed: r.selected for r in rows if r.method == method}
        ax.axhline(float(np.mean(list(by_seed.values()))), linestyle=":", linewidth=1.5,
                   color=colours[i % len(colours)], label=method)
    ax.set_xticks(budgets)
    ax.set_xlabel("budget B (groups)")
    ax.set_ylabel("summed test loss of the chosen groups")
    ax.set_title("Grouping methods by budget (mean ± s.e. over seeds)", fontsize=10)
    ax.grid(color="#e5e5e5")
    ax.legend(fontsize=8, frameon=False)
    return save_figure(fig, path)


def write_comparison_report(rows: Sequence[ComparisonRow], summary: ComparisonSummary, out_dir, *,
                            reference: str = "etap", dataset: str = "?", plots: bool = True) -> Path:
    """Write ``comparison.csv`` (one row per method, seed and budget) and ``report.md``; return the latter."""
    import pandas as pd

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([r.to_dict() for r in rows]).to_csv(out_dir / "comparison.csv", index=False)
    seeds = sorted({r.seed for r in rows})
    lines = [f"# Grouping methods compared: {dataset}", "",
             f"Seeds {', '.join(map(str, seeds))}; every method through the same job and run store. Cells are "
             "means ± s.e. over seeds; a difference within about two s.e. is not a result. 'vs STL' and "
             "'vs all-task' are the relative change of the summed test loss, (method − reference) / reference: "
             "negative is a lower loss, better than the reference (the opposite sign of `negtransfer group`'s "
             "gains).", ""]
    cells = summary.cells
    for budget in sorted({r.budget for r in rows}):
        table = []
        for method in dict.fromkeys(r.method for r in rows):
            c = cells.get((method, budget))
            if c is None:
                continue
            table.append([method, _cell(c["selected"], fmt_loss), _cell(c["vs_stl"], fmt_pct),
                          _cell(c["vs_all"], fmt_pct), _cell(c["gap"], fmt_pct), _cell(c["pearson"], fmt_stat),
                          _cell(c["total_gain_pearson"], fmt_stat),
                          _cell(c["pairwise_affinity_pearson"], fmt_stat),
                          _cell(c["runs"], lambda v: f"{v:.0f}"),
                          _cell(c["seconds"], lambda v: f"{v:.0f}")])
        lines += [f"## Budget {budget}", "",
                  render_table(table, ["method", "summed test loss", "vs STL", "vs all-task", "gap to test oracle",
                                       "Pearson (gains)", "Pearson (total gains)", "pairwise affinity vs gain",
                                       "runs", "seconds"]), ""]
    tests = summary.wilcoxon
    if tests:
        rows_w = [[m, "n/a" if t.p is None else f"{t.p:.3f}", f"{t.reference_lower} of {t.cases}"]
                  for m, t in tests.items()]
        lines += ["## Paired Wilcoxon signed-rank tests", "",
                  f"{reference} against each method over the (seed, budget) cases: p-value of the summed test loss "
                  f"difference, and in how many cases {reference} was lower ('n/a': fewer than 6 cases).", "",
                  render_table(rows_w, ["method", "p", f"{reference} lower"]), ""]
    if plots:
        plot_loss_by_budget(rows, out_dir / "plots" / "loss_by_budget.png")
        lines += ["## Summed test loss by budget", "", "![loss by budget](plots/loss_by_budget.png)", ""]
    lines += ["Pearson: the method's first (one-shot) fit on the held-out groups; 'gap to test oracle' needs "
              "`--exhaustive`. 'pairwise affinity vs gain' (ETAP Table 2): Pearson of the method's affinity "
              "z(i -> j) with the test gain of j in {i, j}, for the methods with an affinity and only with "
              "`--exhaustive`. Seconds include training only for runs the store did not hold yet.", ""]
    if any(not r.is_grouping for r in rows):
        lines += ["Rows 'all tasks, one model, NAME': one model of every task whose shared encoder is updated by "
                  "the gradient aggregator NAME (PCGrad: Yu et al. 2020; ETAP Section D.3, Table 10) instead of "
                  "the summed gradient; no grouping, so the same value stands in every budget's table and is "
                  "paired with the reference at every (seed, budget) case. 'vs all-task' compares it with the "
                  "all-task model trained with the summed gradient.", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
