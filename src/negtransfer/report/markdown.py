"""Markdown report of a grouping job (``negtransfer group`` -> ``OUT/report.md``).

:func:`write_group_report` turns the job's typed report
(:class:`~negtransfer.jobs.grouping_report.GroupingReport`, whose ``to_dict()``
is ``report.json``) into ``report.md`` with PNG plots in ``OUT/plots/``: a
one-screen summary, a per-task table, the plots, and notes on reading them.

matplotlib is only imported when the plots are drawn (inside
:mod:`negtransfer.report.plots`), never by importing this module.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

from negtransfer.gains.paired_rows import verdict_phrase
from negtransfer.jobs.grouping_report import GroupingReport
from negtransfer.report import plots as _plots

__all__ = ["write_group_report", "render_group_report", "render_table", "WORSE_MARKER", "PLOTS_DIR"]

#: Put in the per-task table where the chosen grouping gives a higher test loss than STL.
WORSE_MARKER = "\u26a0 worse than STL"
#: Folder (relative to the report) holding the PNG plots.
PLOTS_DIR = "plots"

_LABELS = {
    "stl": "STL (one model per task)",
    "all_tasks": "all-task MTL (one model)",
    "selected": "**chosen groups**",
    "optimal": "test oracle (exhaustive; chosen on test losses)",
    "validation_oracle": "validation oracle (exhaustive; chosen on validation losses)",
}


# --------------------------------------------------------------------------- formatting


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def fmt_loss(x) -> str:
    """A loss or total: 4 decimals in the usual range, scientific outside it, "n/a" if missing."""
    x = _num(x)
    if not math.isfinite(x):
        return "n/a"
    if x != 0 and (abs(x) >= 1e4 or abs(x) < 1e-3):
        return f"{x:.3e}"
    return f"{x:.4f}"


def fmt_pct(x, signed: bool = True) -> str:
    """A fraction as a percentage (0.031 -> "+3.1%"), "n/a" if missing."""
    x = _num(x)
    if not math.isfinite(x):
        return "n/a"
    s = f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"
    return s.replace("-", "\u2212")


def fmt_pm(value: str, se, formatter: Callable[..., str] = fmt_loss) -> str:
    """``value`` followed by ``± se`` (formatted like the value, unsigned) where the standard error is a number."""
    se = _num(se)
    if not math.isfinite(se) or value == "n/a":
        return value
    if formatter is fmt_pct:  # two significant digits below 0.1%, so a small error is not shown as 0.0%
        spread = f"{se * 100:.1f}%" if se * 100 >= 0.095 else f"{se * 100:.2g}%"
    else:
        spread = formatter(se)
    return f"{value} \u00b1 {spread}"


def fmt_stat(x) -> str:
    x = _num(x)
    return "n/a" if not math.isfinite(x) else f"{x:.3f}"


def _rel(a, b) -> float:
    """(a - b) / |b|; NaN when missing or b == 0."""
    a, b = _num(a), _num(b)
    if not (math.isfinite(a) and math.isfinite(b)) or b == 0:
        return math.nan
    return (a - b) / abs(b)


def _group(g: Sequence[str]) -> str:
    return " + ".join(str(t) for t in g)


def _cell(x) -> str:
    return str(x).replace("|", "\\|").replace("\n", " ")


def render_table(rows: Sequence[Sequence], headers: Sequence[str], align: str | None = None) -> str:
    """A GitHub-flavoured markdown table.

    Parameters
    ----------
    rows : sequence of rows, each a sequence of cells (converted with ``str``;
        ``|`` is escaped, newlines become spaces)
    headers : column titles
    align : one letter per column, ``l`` / ``r`` / ``c``; default left for the
        first column and right for the others (numbers).
    """
    k = len(headers)
    if align is None:
        align = "l" + "r" * (k - 1)
    if len(align) != k:
        raise ValueError(f"align needs one letter per column ({k}); got {align!r}")
    marks = {"l": ":---", "r": "---:", "c": ":---:"}
    try:
        rule = [marks[a] for a in align]
    except KeyError as exc:
        raise ValueError(f"align letters must be l, r or c; got {align!r}") from exc
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "| " + " | ".join(rule) + " |"]
    for r in rows:
        if len(r) != k:
            raise ValueError(f"row {list(r)!r} has {len(r)} cells; the table has {k} columns")
        lines.append("| " + " | ".join(_cell(c) for c in r) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def _draw(name: str, draw: Callable[[Path], object], out_dir: Path, notes: dict[str, str]) -> str | None:
    """Draw one plot into OUT/plots/NAME.png; on failure record why and return None.

    A plot that fails must not cost the report of a job that may have trained
    for hours: the failure is warned about and written into the report instead.
    """
    rel = f"{PLOTS_DIR}/{name}.png"
    try:
        draw(out_dir / rel)
    except Exception as exc:  # noqa: BLE001 - reported in the text, see docstring
        warnings.warn(f"report plot {name!r} failed: {exc}", RuntimeWarning, stacklevel=3)
        notes[name] = f"could not be drawn ({type(exc).__name__}: {exc})"
        return None
    return rel


def _make_plots(report: GroupingReport, out_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    tasks = list(report.tasks)
    made: dict[str, str] = {}
    skipped: dict[str, str] = {}

    def add(name, draw):
        rel = _draw(name, draw, out_dir, skipped)
        if rel:
            made[name] = rel

    if report.affinity is not None and tasks:
        add("affinity", lambda p: _plots.plot_affinity_heatmap(report.affinity, tasks, p))
    else:
        skipped["affinity"] = "no affinity matrix in the report"

    pred = report.prediction
    points = pred.points
    if _plots.finite_points(points):
        add("predicted_vs_actual", lambda p: _plots.plot_predicted_vs_actual(points, p, pred.pearson, pred.r2))
    elif points:
        skipped["predicted_vs_actual"] = "every held-out point has a missing (NaN) predicted or measured gain"
    else:
        skipped["predicted_vs_actual"] = (
            "no held-out groups were trained, so predictions could not be checked "
            "(run `negtransfer group` with `--evaluate M` or `--exhaustive`)"
        )

    groups = report.selected_groups
    if groups and tasks:
        optimal = None if report.optima is None else report.optima.groups
        add("groups", lambda p: _plots.plot_selected_groups(tasks, groups, p, optimal=optimal,
                                                            task_group=report.selection.task_group))
    else:
        skipped["groups"] = "no chosen groups in the report"

    test_loss = report.test_loss
    if test_loss.get("stl") and tasks:
        add("task_losses", lambda p: _plots.plot_task_losses(test_loss, tasks, p, report.losses.gain_se))
    else:
        skipped["task_losses"] = "no STL test losses in the report"

    if report.measurement.trace:
        add("affinity_trace", lambda p: _plots.plot_affinity_trace(report.measurement.trace, p))
    rounds = report.refinement.rounds
    if len(rounds) > 1:
        val = report.comparison.validation_loss
        add("rounds", lambda p: _plots.plot_rounds(rounds, p, stl=val.get("STL (one model per task)"),
                                                   all_tasks=val.get("all-task model")))
    return made, skipped


# --------------------------------------------------------------------------- sections


def _best_group(report: GroupingReport, task: str) -> str:
    """The chosen group whose loss counts for ``task``, as "G<k> (size)" like the summary and plot."""
    groups = [list(g) for g in report.selected_groups]

    def label(g) -> str:
        g = list(g)
        if g in groups:
            k = groups.index(g) + 1
            return f"G{k} (alone)" if len(g) == 1 else f"G{k} ({len(g)} tasks)"
        return _group(g)

    tg = report.selection.task_group
    if task in tg:
        return label(tg[task])
    holding = [g for g in groups if task in g]
    if not holding:
        return "n/a"
    if len(holding) == 1:
        return label(holding[0])
    return "one of " + ", ".join(label(g) for g in holding)


def _totals(report: GroupingReport) -> dict[str, float]:
    totals = dict(report.totals)
    for key, losses in report.test_loss.items():
        if key not in totals and losses:
            totals[key] = sum(_num(v) for v in losses.values())
    return totals


def _worse_tasks(report: GroupingReport) -> list[str]:
    stl, sel = report.test_loss.get("stl") or {}, report.test_loss.get("selected") or {}
    return [t for t in report.tasks if _rel(sel.get(t), stl.get(t)) > 0]


def _summary(report: GroupingReport) -> list[str]:
    """The one-screen summary at the top of report.md."""
    refit = refit_line(report)
    return (_headline(report) + _chosen_groups(report) + _totals_table(report) + ([refit, ""] if refit else [])
            + _prediction_line(report) + _runs_line(report))


def _headline(report: GroupingReport) -> list[str]:
    """The dataset line, then the noise verdict and the comparison with simple alternatives."""
    drawn = [g for g in report.train_groups if len(g) < len(report.tasks)]  # the all-task group is always added
    bits = [f"{len(report.tasks)} tasks", f"budget {report.budget} groups",
            f"{len(drawn)} training groups (and the all-task group)", f"seed {report.seed}"]
    if report.repeats:
        bits.append(f"{report.repeats} repeat(s) per run")
    out = ["Dataset **%s**: %s." % (report.dataset, ", ".join(bits)), ""]
    if report.diverged:
        out += [f"**Diverged** \u26a0: these models never trained (non-finite losses, or never better than their "
                f"initial weights) and are left out of the gains and the selection: {report.diverged}. Lower "
                f"`--lr` or check the features' scale.", ""]
    if report.noise.verdict:
        out += [f"**Noise**: {report.noise.verdict}", ""]
    alternatives = report.comparison
    if alternatives.decided_on == "audit":
        mark = "" if alternatives.better_than_alternatives else "\u26a0 "
        out += [f"**Recommended**: {mark}{recommendation_label(report)}. {alternatives.verdict}", ""]
        line = audit_verdict_line(report)
        if line:
            out += [f"**Audit verdict**: {line}", ""]
    elif alternatives.verdict:
        mark = "" if alternatives.better_than_alternatives else "\u26a0 "
        basis = f" {alternatives.basis}" if alternatives.basis else ""
        out += [f"**Against simple alternatives**: {mark}{alternatives.verdict}{basis}", ""]
    return out


def audit_verdict_line(report: GroupingReport) -> str | None:
    """The three-way verdict on audit rows (better beyond noise, within noise, worse beyond noise) against the
    better alternative, with the paired difference's s.e. over rows and runs (the verdict's) and over runs only
    (report.json ``comparison.audit_difference``); None on validation rows or a report written without it."""
    comparison = report.comparison
    if comparison.decided_on != "audit" or not comparison.noise_verdict:
        return None
    d = comparison.audit_difference[comparison.best_alternative]
    runs_only = f", \u00b1 {d.se_runs:.4f} over runs only" if math.isfinite(d.se_runs) else ""
    return (f"the chosen groups are {verdict_phrase(comparison.noise_verdict)} against the "
            f"{comparison.best_alternative}: difference {d.mean:+.4f} \u00b1 {d.se:.4f} over audit rows and "
            f"runs{runs_only}.")


def recommendation_label(report: GroupingReport) -> str:
    """What the job recommends, in words: the chosen groups, STL or the all-task model (``comparison.recommendation``)."""
    recommendation = report.comparison.recommendation
    if recommendation == "stl":
        return f"STL, one model per task ({len(report.tasks)} models)"
    if recommendation == "all_tasks":
        return "the all-task model (one model for every task)"
    return f"the chosen groups ({len(report.selected_groups)})"


def refit_line(report: GroupingReport) -> str | None:
    """``--refit``: the recommendation's test total after the refit on every non-test row, beside the
    alternatives' refits (report.json ``refit``); None without a refit."""
    refit = report.refit
    if refit is None:
        return None
    names = {"selected": "chosen groups", "stl": "STL", "all_tasks": "all-task"}
    rows = refit.rows
    others = []
    for key in ("selected", "stl", "all_tasks"):
        if key == refit.recommendation or key not in refit.options:
            continue
        text = f"{names[key]} {fmt_pm(fmt_loss(refit.options[key].total), refit.options[key].se)}"
        difference = refit.difference.get(key)
        if difference is not None:
            mean = f"{difference['mean']:+.4f}"
            text += f" (recommended minus it: {fmt_pm(mean, difference['se'])})"
        others.append(text)
    return (f"After the decision, refit on every non-test row ({rows.get('training', 0)} rows: "
            f"{rows.get('from_train', 0)} train, {rows.get('from_validation', 0)} validation, "
            f"{rows.get('from_audit', 0)} audit) for each run's stopping epoch: the recommendation "
            f"({names[refit.recommendation]}) {fmt_pm(fmt_loss(refit.recommended.total), refit.recommended.se)} "
            f"total test loss; " + ", ".join(others) + "; \u00b1 one standard error over the repeats.")


def _oracle_lines(report: GroupingReport) -> list[str]:
    """The test and validation oracles' groups, and the search's own gap (``--exhaustive``)."""
    optima = report.optima
    if optima is None or not optima.groups:
        return []
    out = ["", "Test oracle (exhaustive search on measured test losses, each task in its best chosen group): "
           + "; ".join(f"{{{_group(g)}}}" for g in optima.groups) + "."]
    validation = optima.validation_oracle
    if validation.groups:
        out.append("Validation oracle (the best a chooser that sees only validation losses could do with every "
                   "group measured): " + "; ".join(f"{{{_group(g)}}}" for g in validation.groups) + ".")
        if validation.val_gap is not None:
            out.append(f"On validation losses the chosen groups are {fmt_pct(validation.val_gap)} from it (the "
                       "search's own gap; the rest of the gap on test losses is how imperfectly validation losses "
                       "foretell test losses).")
    return out


def _chosen_groups(report: GroupingReport) -> list[str]:
    """The chosen groups, the oracles' groups and the rounds."""
    groups = report.selected_groups
    out = [f"**Chosen groups** ({len(groups)}):", ""]
    for k, g in enumerate(groups, 1):
        alone = " (alone, i.e. STL)" if len(g) == 1 else ""
        out.append(f"- **G{k}**: {_group(g) or '(empty group)'}{alone}")
    out += _oracle_lines(report)
    ref = report.refinement
    final = "; then a final selection among the measured groups" if ref.final_among_measured else ""
    out += ["", f"**Rounds**: {ref.rounds_run} ({ref.stopped}{final}); the recommendation "
                f"used {ref.runs_used} runs, {_num(ref.runs_vs_one_shot):.2f}x the one-shot "
                f"protocol's {ref.one_shot_runs}."]
    return out + [""]


def _totals_table(report: GroupingReport) -> list[str]:
    """Summed test losses of every training option, and the chosen groups against each."""
    tasks = report.tasks
    totals = _totals(report)
    totals_se, gain_se = report.losses.totals_se, report.losses.total_gain_se
    rows = [[_LABELS[key], fmt_pm(fmt_loss(totals[key]), totals_se.get(key)),
             "\u2014" if key == "stl" else fmt_pm(fmt_pct(-_rel(totals[key], totals.get("stl"))), gain_se.get(key),
                                                  fmt_pct)]
            for key in ("stl", "all_tasks", "selected", "optimal", "validation_oracle") if key in totals]
    out = [render_table(rows, ["training", "total test loss \u00b1 s.e.", "gain vs STL \u00b1 s.e."]), ""]
    sel = totals.get("selected")
    phrases = [f"{fmt_pm(fmt_pct(-_rel(sel, totals.get('stl'))), gain_se.get('selected'), fmt_pct)} vs STL"]
    if "all_tasks" in totals:
        phrases.append(f"{fmt_pm(fmt_pct(-_rel(sel, totals['all_tasks'])), gain_se.get('selected_vs_all_tasks'), fmt_pct)}"
                       f" vs all-task MTL")
    if "optimal" in totals:
        gap = report.optima.gap if report.optima is not None else _rel(sel, totals["optimal"])
        phrases.append(f"{fmt_pct(-gap)} vs the test oracle (the gap)")
    if "validation_oracle" in totals:
        phrases.append(f"{fmt_pct(-_rel(sel, totals['validation_oracle']))} vs the validation oracle")
    out.append("Gain of the chosen groups' total test loss (ETAP eq. 1's sign, as every gain here: positive = "
               "lower loss): " + ", ".join(phrases) + "; \u00b1 one standard error over the repeats (paired: "
               "repeat r against repeat r); a gain within about two standard errors of 0 is within the noise.")
    worse = _worse_tasks(report)
    if worse:
        out.append(f"Tasks with a higher test loss than STL under the chosen groups: "
                   f"{len(worse)} of {len(tasks)} ({', '.join(worse)}).")
    else:
        out.append("No task has a higher test loss than STL under the chosen groups.")
    return out + [""]


def _prediction_line(report: GroupingReport) -> list[str]:
    pred = report.prediction
    n_groups = pred.n_groups or 0
    n_points = len(pred.points)
    if math.isfinite(_num(pred.pearson)):
        return [f"**Gain prediction** (the first, one-shot fit) on {n_groups} held-out groups ({n_points} task "
                f"points): Pearson {fmt_stat(pred.pearson)}, R\u00b2 {fmt_stat(pred.r2)}; "
                f"within-task Pearson {fmt_stat(pred.within_task_pearson)} (which group is better for a "
                f"task); predicting each task's mean training gain alone gives Pearson "
                f"{fmt_stat(pred.per_task_mean_pearson)}."]
    if n_groups:
        return [f"**Gain prediction**: {n_groups} held-out groups were trained, but Pearson/R\u00b2 "
                "could not be computed (fewer than 3 finite points, or constant gains)."]
    return ["**Gain prediction**: not checked; no held-out groups were trained "
            "(use `--evaluate M` or `--exhaustive`)."]


def _runs_line(report: GroupingReport) -> list[str]:
    line = [f"{report.runs.trained} runs trained by this job", f"{report.runs.stored_total} in the run store"]
    total = _num(report.seconds.get("total"))
    if math.isfinite(total):
        line.append(f"{total:.1f} s in total")
    out = ["", "**Runs**: " + ", ".join(line) + "."]
    if report.timing is not None:
        out += ["", f"**Time**: {report.timing.summary()}."]
    return out


def _task_table(report: GroupingReport) -> list[str]:
    tasks = report.tasks
    tl = report.test_loss
    stl, allt, sel = tl.get("stl") or {}, tl.get("all_tasks") or {}, tl.get("selected") or {}
    opt = tl.get("optimal") or (report.optima.test_oracle.test_loss if report.optima is not None else {})
    headers = ["task", "STL", "all-task", "chosen", "gain vs STL \u00b1 s.e.", "group used"]
    if opt:
        headers.insert(4, "optimal")
    headers.append("")
    rows = []
    task_se = report.losses.gain_se.get("selected") or {}
    for t in tasks:
        gain = -_rel(sel.get(t), stl.get(t))  # ETAP eq. 1 sign: > 0 = lower loss than STL
        row = [t, fmt_loss(stl.get(t)), fmt_loss(allt.get(t)), fmt_loss(sel.get(t))]
        if opt:
            row.append(fmt_loss(opt.get(t)))
        row += [fmt_pm(fmt_pct(gain), task_se.get(t), fmt_pct), _best_group(report, t),
                WORSE_MARKER if gain < 0 else ""]
        rows.append(row)
    totals, se = _totals(report), report.losses.totals_se
    total_row = ["**total**", fmt_pm(fmt_loss(totals.get("stl")), se.get("stl")),
                 fmt_pm(fmt_loss(totals.get("all_tasks")), se.get("all_tasks")),
                 fmt_pm(fmt_loss(totals.get("selected")), se.get("selected"))]
    if opt:
        total_row.append(fmt_loss(totals.get("optimal")))
    total_row += [fmt_pm(fmt_pct(-_rel(totals.get("selected"), totals.get("stl"))),
                         report.losses.total_gain_se.get("selected"), fmt_pct), "", ""]
    rows.append(total_row)
    align = "l" + "r" * (len(headers) - 3) + "ll"
    return [render_table(rows, headers, align)]


_CAPTIONS = {
    "affinity": ("Task affinity",
                 "Row = source task, column = target task: the colour of cell (i, j) is the affinity of "
                 "task i onto task j (ETAP eq. 6, averaged over the all-task run). Blue: training on the "
                 "source lowered the target's loss (helps); red: raised it (hurts)."),
    "groups": ("Chosen grouping",
               "One column per chosen group, one row per task; a dot marks membership."),
    "task_losses": ("Per-task gain vs STL",
                    "Each task's gain against training it alone (ETAP eq. 1; STL = 0), with error bars of "
                    "\u00b1 one standard error over the repeats. Right of the line is better than STL; hatched "
                    "blue bars are tasks the chosen groups made worse; a bar whose error bar crosses 0 is within "
                    "the noise."),
    "affinity_trace": ("Affinity during training",
                       "Per-step affinity of the strongest task pairs in the all-task run (faint) and its "
                       "running mean (bold), as in ETAP's Figure 7: single steps are noisy, the average is "
                       "stable."),
    "rounds": ("Refinement rounds",
               "Summed validation loss of each round's selection once its groups were measured (one point per "
               "round played; a star marked \"final\" for the final selection among the measured groups, which "
               "is not a round of its own; the last point carries its value); dashed lines: the all-task model "
               "and (if the budget allows it) STL on the same validation rows."),
    "predicted_vs_actual": ("Predicted vs measured gains",
                            "One point per (held-out group, task). Points on the dashed y = x line "
                            "are predicted exactly."),
}


def _notes(report: GroupingReport) -> list[str]:
    gs = report.gain_split
    fitted = f" (the predictor was fitted on {gs}-split gains)" if gs else ""
    return [
        "- **Affinity orientation.** `affinity[i][j]` is the affinity of SOURCE task *i* onto TARGET "
        "task *j* (ETAP eq. 6): how much a gradient step on task *i* alone lowers task *j*'s loss. "
        "In the heatmap and in `report.json` rows are sources and columns are targets, so read a "
        "**row** to see whom a task helps and a **column** to see who helps a task. The matrix is "
        "not symmetric. The diagonal (a task onto itself) is not used for grouping and is greyed "
        "out; the colour scale is symmetric around 0 and set by the off-diagonal cells.",
        "- **Gain** of a task in a group (ETAP eq. 1) = (STL loss \u2212 group loss) / STL loss. "
        "Positive: the task does better in the group than alone; negative: negative transfer"
        f"{fitted}.",
        "- **Chosen loss of a task** in several chosen groups: the test loss from the group with "
        "the lowest *validation* loss for that task (\"group used\" column; a filled dot in the "
        "grouping plot, hollow for the other groups holding it).",
        "- **\u26a0** in the per-task table marks tasks whose test loss under the chosen groups is "
        "higher than under STL.",
        "- **Totals** are sums of per-task test losses; tasks with very different loss scales weigh "
        "differently in them, which is why the per-task plot shows relative changes.",
        "- \"n/a\" marks a value that is missing or not a number in the report (e.g. a task without "
        "test labels).",
    ]


def _details(report: GroupingReport) -> list[str]:
    out = []
    train = report.train_groups
    if train:
        out += ["<details><summary>Training groups (%d)</summary>" % len(train), ""]
        out += [f"- {_group(g)}" for g in train]
        out += ["", "</details>", ""]
    config = report.config
    if config:
        out += ["<details><summary>Training configuration</summary>", ""]
        out.append(render_table([[k, f"`{v}`"] for k, v in config.items()], ["setting", "value"], "ll"))
        out += ["", "</details>", ""]
    seconds = report.seconds
    if seconds:
        out += ["<details><summary>Time by stage</summary>", ""]
        out.append(render_table([[k, f"{_num(v):.1f}"] for k, v in seconds.items()], ["stage", "seconds"]))
        out += ["", "</details>", ""]
    cost = report.measurement.cost or {}
    if cost:  # what the grouping method itself spent beyond training runs (GRAD-TAE: gradients, regressions)
        out += [f"<details><summary>Cost of the {report.method} method</summary>", ""]
        out.append(render_table([[k, _cost_cell(v)] for k, v in cost.items()], ["item", "value"], "ll"))
        out += ["", "</details>", ""]
    return out


def _cost_cell(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"`{value}`"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def render_group_report(report: GroupingReport, plot_paths: Mapping[str, str],
                        skipped: Mapping[str, str] | None = None) -> str:
    """The text of report.md for ``report``, embedding ``plot_paths`` ({name: relative path})."""
    skipped = skipped or {}
    lines = [f"# Task grouping report: {report.dataset}", ""]
    lines += _summary(report)
    lines += ["", "## Per-task test loss", ""]
    lines += _task_table(report)
    lines += ["", "Gain vs STL = (STL loss \u2212 chosen loss) / STL loss; \u26a0 marks a negative gain. "
                  "\"Group used\" is the chosen group (numbered as above) whose model gives the task's "
                  "loss.", "", "## Plots", ""]
    names = ["groups", "task_losses", "affinity", "predicted_vs_actual"]
    if "affinity_trace" in plot_paths or report.measurement.trace:
        names.append("affinity_trace")
    if "rounds" in plot_paths:
        names.insert(2, "rounds")
    for name in names:
        title, caption = _CAPTIONS[name]
        lines += [f"### {title}", ""]
        if name in plot_paths:
            lines += [f"![{title}]({plot_paths[name]})", "", caption, ""]
        else:
            lines += [f"*Not drawn: {skipped.get(name, 'not available')}.*", ""]
    _, renamed = _plots.axis_labels(report.tasks)
    if renamed:
        lines += ["Task names shortened on the plots' axes (too long, or characters the plot font cannot draw): "
                  + "; ".join(f"{label} = {full}" for label, full in renamed.items()) + ".", ""]
    lines += ["## How to read this report", ""]
    lines += _notes(report)
    lines.append("")
    lines += _details(report)
    return "\n".join(lines).rstrip() + "\n"


def write_group_report(report: GroupingReport, out_dir, *, plots: bool = True) -> Path:
    """Write ``out_dir/report.md`` (and PNG plots under ``out_dir/plots/``).

    Parameters
    ----------
    report : GroupingReport
        The grouping job's typed report (:func:`negtransfer.jobs.grouping.run_grouping`;
        :meth:`GroupingReport.from_dict` reads a report.json back). Missing or NaN
        values are shown as "n/a"; a plot without data is skipped and the report
        says why.
    out_dir : folder to write into (created if needed)
    plots : draw the PNG plots (set False for a text-only report)

    Returns
    -------
    pathlib.Path of report.md
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if plots:
        made, skipped = _make_plots(report, out_dir)
    else:
        made, skipped = {}, {k: "plots were turned off" for k in _CAPTIONS}
    path = out_dir / "report.md"
    path.write_text(render_group_report(report, made, skipped), encoding="utf-8")
    return path
