"""The outputs of ``negtransfer compare``: results.csv, report.md (the papers' table layout) and report.json.

One renderer serves every model family: :func:`metric_table` gives the cells of
one metric's table (rows = models, columns = tasks and their average, cells =
mean ± standard error over runs, ``↓`` where a model's mean is worse than its
single-task counterpart's), in percent for accuracies and AUROC
(``report.md``) or as plain numbers with more digits (``percent=False``, the
TP-AMTL tables of docs/methods/tp-amtl.md).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from negtransfer.report.jsonio import write_json
from negtransfer.report.markdown import render_table

__all__ = [
    "MARKERS",
    "RESULT_COLUMNS",
    "baseline_differences",
    "baseline_differences_markdown",
    "lower_is_better",
    "metric_table",
    "paired_differences",
    "p_value_text",
    "paired_markdown",
    "paired_runs",
    "paper_table_markdown",
    "report_markdown",
    "selection_markdown",
    "write_compare_outputs",
    "write_results_csv",
    "write_selection_csv",
]

#: Columns of results.csv.
RESULT_COLUMNS = ["model", "task", "run", "metric", "value"]

#: Metrics where lower is better (the marker flips for them; also as validation metrics, ``val_loss``).
LOWER_IS_BETTER = ("mse", "loss", "seconds_per_iteration")

#: Columns of selection.csv (``--select-on-validation``): every setting's metrics per model, run and task.
SELECTION_COLUMNS = ["model", "run", "setting", "chosen", "task", "metric", "value"]


def lower_is_better(metric: str) -> bool:
    name = metric.removeprefix("val_")
    return any(name.startswith(m) for m in LOWER_IS_BETTER)

#: The cell marker of a mean below (lower-is-better: above) a single-task baseline, by the baseline's kind:
#: ours (``ModelSpec.stl_counterpart``) or the paper's public code's (``--baselines paper|both``).
MARKERS = {"ours": "↓", "paper": "⇣"}


def _percent(metric: str) -> bool:
    return "accuracy" in metric or metric == "auroc"


def _baselines(report: Any, baselines: str | None) -> str:
    return getattr(report, "baselines", "ours") if baselines is None else baselines


def metric_table(report: Any, metric: str, *, percent: bool | None = None, digits: int | None = None,
                 baselines: str | None = None) -> list[list[str]]:  # fmt: skip
    """Rows ``[model, cell per task..., average cell]`` of one metric's table.

    Parameters
    ----------
    report : CompareReport
    metric : str
    percent : bool, optional
        Scale by 100 (default: for accuracies and AUROC).
    digits : int, optional
        Decimals (default 1 in percent, else 3).
    baselines : {"ours", "paper", "both"}, optional
        Which single-task baselines mark the cells (default: the report's
        ``baselines``, ``"ours"``).

    Notes
    -----
    A cell ends in ``" ↓"`` when the model's mean is below (for a
    lower-is-better metric: above) that of its single-task counterpart on that
    task, when the counterpart was run; in ``" ⇣"`` when it is below the
    paper's public baseline (:data:`MARKERS`; ``ModelEntry.counterparts``).
    """
    percent = _percent(metric) if percent is None else percent
    digits = (1 if percent else 3) if digits is None else digits
    k = 100.0 if percent else 1.0
    table = report.summary(metric)
    lower = lower_is_better(metric)
    by_name = {m.name: m for m in report.models}
    choice = _baselines(report, baselines)
    rows = []
    for name, cells in table.items():
        refs = [(MARKERS[kind], table[ref]) for kind, ref in by_name[name].counterparts(choice)
                if ref != name and ref in table]
        row = [name]
        for task in report.tasks:
            if task not in cells:
                row.append("")
                continue
            mean, se = cells[task]
            text = f"{mean * k:.{digits}f}"
            if not math.isnan(se):
                text += f" ± {se * k:.{digits}f}"
            for marker, ref in refs:
                if task in ref and not math.isnan(mean) and (mean > ref[task][0] if lower else mean < ref[task][0]):
                    text += f" {marker}"
            row.append(text)
        rows.append(row)
    return rows


def report_markdown(report: Any) -> str:
    """report.md: one table per metric, models x (tasks, average), mean ± s.e., ``↓`` below STL.

    With ``report.baselines`` ``"paper"`` or ``"both"`` the cells are marked
    against the paper's public baselines (``⇣``; with ``both`` against ours as
    well) and a last section gives each model's paired differences from them
    (:func:`baseline_differences_markdown`).
    """
    metrics = _test_metrics(report)
    scaled = any(_percent(m) for m in metrics)
    choice = _baselines(report, None)
    lines = [
        f"# Model comparison on {report.dataset}",
        "",
        f"{report.runs} run(s), seeds {report.seed}..{report.seed + report.runs - 1} (run r: split, training "
        f"subsample and model seeded with seed + r); train fraction: "
        f"{report.train_fraction if report.train_fraction is not None else 'all training rows'}; "
        f"data kind: {report.data_kind}.",
        "Cells: mean ± standard error over runs on the test split"
        + (" (accuracies in %)" if scaled else "")
        + "; " + _legend(choice),
        "",
    ]
    for metric in metrics:
        lines += [f"## {metric}", "", "| model | " + " | ".join("Avg." if t == "average" else t for t in report.tasks)
                  + " |", "|---|" + "---:|" * len(report.tasks)]
        lines += [f"| {row[0]} | " + " | ".join(row[1:]) + " |" for row in metric_table(report, metric)]
        lines.append("")
    names = {m.name for m in report.models}
    pairs = [(kind, m.name, ref) for m in report.models for kind, ref in m.counterparts(choice)]
    for kind, title in (("ours", "Single-task counterparts"), ("paper", "The paper's public baselines")):
        run = [f"{name} vs {ref}" for k, name, ref in pairs if k == kind and ref in names]
        if run:
            lines += [f"{title}: " + ", ".join(run) + ".", ""]
    missing = sorted({ref for _, _, ref in pairs if ref not in names})
    if missing:
        lines += [f"Not run, so not marked against: {', '.join(missing)}.", ""]
    if choice != "ours" and metrics:
        lines += baseline_differences_markdown(report, _headline(metrics), choice).splitlines() + [""]
    if getattr(report, "selection", None):
        lines += selection_markdown(report).splitlines() + [""]
    return "\n".join(lines)


def _test_metrics(report: Any) -> list[str]:
    """The report's test metrics (validation ones, ``val_...``, are in results.csv only)."""
    return [m for m in report.metrics() if not m.startswith("val_")]


def selection_markdown(report: Any) -> str:
    """report.md's section on ``--select-on-validation``: the grid, and the setting each model chose per run.

    Each cell is the chosen setting with its mean validation AUROC over tasks;
    the tables above hold the chosen settings' test metrics.
    """
    selection = report.selection
    scores = {(c.model, c.run, c.setting): c.metrics.get("val_auroc", {}).get("average")
              for c in selection.candidates}
    grid = "; ".join(f"{name} = {', '.join(map(str, values))}" for name, values in selection.grid.items())
    n = len(next(iter(selection.chosen.values()), {}))
    lines = ["## Settings chosen on validation", "",
             f"Grid: {grid} ({n} run(s); every model of the table went through the same grid). Per model and "
             f"run the setting with the highest {selection.metric} of the kept checkpoint was kept; the "
             "tables above are its test metrics, and the training seconds those of every setting. Every "
             "setting's metrics: selection.csv.", "",
             "| model | " + " | ".join(f"run {r}" for r in range(n)) + " |", "|---|" + "---|" * n]
    for model, runs in selection.chosen.items():
        cells = []
        for run, label in runs.items():
            score = scores.get((model, int(run), label))
            cells.append(label + ("" if score is None or math.isnan(score) else f" ({score:.4f})"))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _legend(choice: str) -> str:
    ours = "↓ marks a mean below the model's single-task counterpart on that task"
    paper = "⇣ a mean below the paper's public single-task baseline (its own counterpart where it has none)"
    return {"ours": ours + ".", "paper": paper[0].upper() + paper[1:] + ".", "both": f"{ours}, {paper}."}[choice]


def _headline(metrics: list[str]) -> str:
    """The metric paired differences and the console use: accuracy where reported, else the first."""
    return "accuracy" if "accuracy" in metrics else metrics[0]


def baseline_differences(report: Any, metric: str, baselines: str | None = None, *,
                         task: str = "average") -> list[dict]:  # fmt: skip
    """Each model's paired differences (:func:`paired_differences`) from its single-task baselines.

    Parameters
    ----------
    report : CompareReport
    metric : str
    baselines : {"ours", "paper", "both"}, optional
        Default: the report's.
    task : str

    Returns
    -------
    list of dict
        In model order, one per (model, baseline) whose baseline was run:
        ``model``, ``kind`` (``"ours"`` or ``"paper"``), ``baseline`` and the
        fields of :func:`paired_differences` (``mean``, ``se``, ``better``,
        ``runs``, ``wilcoxon_p``, ``t_p``).
    """
    choice = _baselines(report, baselines)
    names = {m.name for m in report.models}
    cache: dict[str, dict] = {}
    out = []
    for model in report.models:
        for kind, ref in model.counterparts(choice):
            if ref not in names or ref == model.name:
                continue
            if ref not in cache:
                cache[ref] = paired_differences(report, metric, ref, task=task)
            if model.name in cache[ref]:
                out.append({"model": model.name, "kind": kind, "baseline": ref, **cache[ref][model.name]})
    return out


def baseline_differences_markdown(report: Any, metric: str, baselines: str | None = None, *,
                                  task: str = "average") -> str:  # fmt: skip
    """:func:`baseline_differences` as a report.md section (in % for accuracies and AUROC)."""
    scale, digits = (100.0, 1) if _percent(metric) else (1.0, 4)
    rows = [[d["model"], d["baseline"], d["kind"], f"{d['mean'] * scale:+.{digits}f} ± {d['se'] * scale:.{digits}f}",
             f"{d['better']}/{d['runs']}", p_value_text(d["wilcoxon_p"]), p_value_text(d["t_p"])]
            for d in baseline_differences(report, metric, baselines, task=task)]
    title = f"## Paired differences from the single-task baselines ({metric}, {task}{', in %' if scale > 1 else ''})"
    if not rows:
        return f"{title}\n\nNo model's baseline was run."
    header = ["model", "minus", "baseline", "mean ± s.e.", "runs better", "Wilcoxon p", "paired t p"]
    note = ("Run by run (runs share splits and seeds); with 5 runs the smallest two-sided Wilcoxon p is 0.062.")
    return f"{title}\n\n{note}\n\n{render_table(rows, header)}"


def paired_differences(report: Any, metric: str, reference: str, *, task: str = "average") -> dict[str, dict]:
    """Per model, its run-by-run difference from ``reference`` on one task (runs share splits and seeds).

    Returns
    -------
    dict
        ``{model: {"mean", "se", "better", "runs", "wilcoxon_p", "t_p"}}``: the
        mean and standard error of (model - reference) over the runs both
        have, how many runs the model is better in (lower for lower-is-better
        metrics), the two-sided Wilcoxon signed-rank p-value (None with fewer
        than 5 runs or all differences 0; its smallest possible value with 5
        runs is 0.0625) and the paired t-test's p-value (None under 2 runs).
    """
    values: dict[str, dict[int, float]] = {}
    for r in report.rows:
        if r["metric"] == metric and r["task"] == task and not math.isnan(r["value"]):
            values.setdefault(r["model"], {})[int(r["run"])] = float(r["value"])
    if reference not in values:
        raise ValueError(f"reference model {reference!r} has no {metric!r} results for {task!r}; run it too")
    lower = lower_is_better(metric)
    return {model: paired_runs(values[model], values[reference], lower_is_better=lower)
            for model in (m.name for m in report.models) if model != reference and model in values}


def paired_runs(values: dict[int, float], reference: dict[int, float], *, lower_is_better: bool = False) -> dict:
    """The run-by-run difference ``values - reference`` over the runs both have (runs share splits and seeds).

    Parameters
    ----------
    values, reference : dict
        ``{run: value}`` of the two models (or of one model in two settings).
    lower_is_better : bool
        Count a run as better when its difference is negative (losses) instead of positive.

    Returns
    -------
    dict
        ``{"mean", "se", "better", "runs", "wilcoxon_p", "t_p"}``, as :func:`paired_differences` describes.
    """
    from scipy.stats import ttest_rel, wilcoxon

    from negtransfer.data.statistics import standard_error

    runs = sorted(set(values) & set(reference))
    diff = [values[r] - reference[r] for r in runs]
    n = len(diff)
    mean = sum(diff) / n if n else float("nan")
    wil = float(wilcoxon(diff).pvalue) if n >= 5 and any(diff) else None
    t_p = float(ttest_rel([values[r] for r in runs], [reference[r] for r in runs]).pvalue) \
        if n > 1 and any(diff) else None
    better = sum((d < 0) if lower_is_better else (d > 0) for d in diff)
    return {"mean": mean, "se": standard_error(diff), "better": better, "runs": n, "wilcoxon_p": wil, "t_p": t_p}


def paired_markdown(report: Any, metric: str, reference: str, *, task: str = "average", scale: float = 1.0,
                    digits: int = 4) -> str:  # fmt: skip
    """:func:`paired_differences` as a markdown table (``model | diff ± s.e. | runs better | p``)."""
    rows = []
    for model, d in paired_differences(report, metric, reference, task=task).items():
        rows.append([model, f"{d['mean'] * scale:+.{digits}f} ± {d['se'] * scale:.{digits}f}",
                     f"{d['better']}/{d['runs']}", p_value_text(d["wilcoxon_p"]), p_value_text(d["t_p"])])
    header = [f"{metric} ({task}) minus {reference}", "mean ± s.e.", "runs better", "Wilcoxon p", "paired t p"]
    return render_table(rows, header)


def p_value_text(p: float | None) -> str:
    return "" if p is None or math.isnan(p) else f"{p:.3f}"


def paper_table_markdown(report: Any, metric: str, *, digits: int = 4) -> str:
    """One metric as a plain-number markdown table (``Model | task ... | Average``), as in docs/methods/tp-amtl.md."""
    header = ["Model", *("Average" if t == "average" else t for t in report.tasks)]
    return render_table(metric_table(report, metric, percent=False, digits=digits), header)


def write_results_csv(report: Any, path: Path) -> Path:
    """results.csv: one row per model, task, run and metric."""
    import csv

    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(report.rows)
    return path


def write_selection_csv(report: Any, path: Path) -> Path:
    """selection.csv: per model, run, setting of ``--select-on-validation``, task and metric, its value."""
    import csv

    path = Path(path)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=SELECTION_COLUMNS)
        writer.writeheader()
        for c in report.selection.candidates:
            for metric, per_task in c.metrics.items():
                for task, value in per_task.items():
                    writer.writerow({"model": c.model, "run": c.run, "setting": c.setting,
                                     "chosen": c.chosen, "task": task, "metric": metric,
                                     "value": float("nan") if value is None else float(value)})
    return path


def write_compare_outputs(report: Any, out: Path) -> tuple[Path, Path, Path]:
    """Write ``out/results.csv``, ``out/report.md`` and ``out/report.json`` (and ``out/selection.csv`` with
    ``--select-on-validation``); return the first three paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = write_results_csv(report, out / "results.csv")
    if getattr(report, "selection", None):
        write_selection_csv(report, out / "selection.csv")
    md_path = out / "report.md"
    md_path.write_text(report_markdown(report))
    json_path = out / "report.json"
    write_json(json_path, report.to_dict(), default=str)
    return csv_path, md_path, json_path
