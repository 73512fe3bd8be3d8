"""Report of a source-selection job: ``report.md`` and three plots.

Plots: relevance scores with the chosen threshold, predicted vs measured f(S)
on the holdout subsets, and the surrogate's held-out error as the number of
training subsets grows (paper Figure 6). matplotlib is imported inside the
plotting functions only.
"""

from __future__ import annotations

import math
from pathlib import Path

from negtransfer.jobs.sources import (
    AlternativesCheck,
    HoldoutPoint,
    HoldoutPrediction,
    RidgeChoice,
    SourcesReport,
    check_pairs,
)
from negtransfer.report.markdown import render_table
from negtransfer.report.plots import new_figure, save_figure

METHOD_LABELS = {
    "stl": "STL (target alone)",
    "all_sources": "all sources",
    "selected": "**surrogate selection**",
    "pairwise_top_m": "top-m by pairwise gain (HOA-style)",
    "affinity_top_m": "top-m by ETAP affinity",
    "exhaustive_pairs": "best of all 1-2 source combinations (exhaustive)",
}


def plot_relevance(relevance: dict, threshold: float, selected, path,
                   xlabel: str = "relevance score theta (relative change of the target's loss; negative = helps)") -> Path:
    """Horizontal bars of theta per source, sorted, with the threshold line."""
    items = sorted(relevance.items(), key=lambda kv: kv[1])
    height = max(3.0, 0.22 * len(items) + 1.2)
    fig = new_figure(7.0, height)
    ax = fig.add_subplot(1, 1, 1)
    chosen = set(selected)
    colours = ["#2b8cbe" if name in chosen else "#bdbdbd" for name, _ in items]
    ax.barh(range(len(items)), [v for _, v in items], color=colours)
    ax.set_yticks(range(len(items)), [name for name, _ in items], fontsize=7 if len(items) > 25 else 9)
    ax.axvline(threshold, color="#d7301f", linestyle="--", label=f"threshold gamma = {threshold:.3g}")
    ax.axvline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel(xlabel)
    ax.set_title("Relevance of each source (blue: selected)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_surrogate_fit(points: list[HoldoutPoint], stl_loss: float, path) -> Path:
    """Predicted g(S) vs measured f(S) on holdout subsets, with the STL line."""
    fig = new_figure(5.5, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    pred = [p.predicted for p in points]
    act = [p.actual for p in points]
    ax.scatter(pred, act, s=14, alpha=0.7, color="#2b8cbe")
    lo, hi = min(pred + act + [stl_loss]), max(pred + act + [stl_loss])
    ax.plot([lo, hi], [lo, hi], color="grey", linestyle=":", label="y = x")
    ax.axhline(stl_loss, color="#d7301f", linewidth=0.8, label="STL loss")
    ax.axvline(stl_loss, color="#d7301f", linewidth=0.8)
    ax.set_xlabel("predicted target loss g(S)")
    ax.set_ylabel("measured target loss f(S)")
    ax.set_title("Holdout subsets: above the red line = negative transfer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_error_curve(curve: dict, path) -> Path:
    """Held-out MSE of the surrogate against the number of fitted subsets."""
    fig = new_figure(5.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    sizes = curve.get("n_subsets") or []
    mse = curve.get("mse") or []
    ax.plot(sizes, mse, marker="o", color="#2b8cbe")
    ax.set_xlabel("subsets the surrogate is fitted on (n)")
    ax.set_ylabel("holdout mean squared error")
    ax.set_title("Surrogate error vs n (paper Figure 6)")
    fig.tight_layout()
    return save_figure(fig, path)


def _fmt(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.4f}"


def _ridge_words(ridge: RidgeChoice | None) -> str:
    """The linear surrogate's fit in words: least squares, or ridge with its strength and how it was chosen."""
    if ridge is None:
        return "least squares (eq. 3)"
    fitted = "least squares (eq. 3)" if ridge.alpha == 0 else f"ridge with alpha = {ridge.alpha:.3g}"
    return fitted + (", chosen by leave-one-out error over the fitted subsets" if ridge.option == "auto" else "")


def _surrogate_words(report: SourcesReport) -> str:
    """The surrogate in words: the linear one with its ridge, or the kernel one with its kernel and strength."""
    surrogate = report.surrogate
    if surrogate is None or surrogate.kind != "kernel":
        return _ridge_words(report.ridge)
    width = f", width {surrogate.gamma:.3g}" if surrogate.gamma is not None else ""
    strength = float("nan") if surrogate.alpha is None else surrogate.alpha
    return (f"kernel ridge regression on the subset indicators, {surrogate.kernel} kernel{width}, strength "
            f"{strength:.3g}, chosen by leave-one-out error over the fitted subsets")


def _holdout_lines(holdout: HoldoutPrediction) -> list[str]:
    """The negative-transfer prediction on the holdout subsets, and on repeat seeds no fitted subset used, when
    measured."""
    scores = holdout.scores
    if scores is None or not scores.n:
        return []
    lines = [f"**Negative-transfer prediction** on {scores.n} holdout subsets: F1 of the minority class "
             f"({scores.minority}) {_fmt(scores.f1)} (class balance: {scores.n_negative} negative, "
             f"{scores.n_positive} positive transfers), Spearman of g vs f {_fmt(scores.spearman)}"
             + (f" (noise ceiling {_fmt(scores.noise_ceiling)}: the most any predictor could reach against "
                "these measured f(S), given their standard errors over the repeats)"
                if _finite(scores.noise_ceiling) else "")
             + (f"; F1 ceiling {_fmt(scores.f1_ceiling)}: the F1 a predictor of the true f(S) would expect "
                "against measurements this noisy." if _finite(scores.f1_ceiling) else "."), ""]
    independent = holdout.independent
    if independent is None or not independent.scores.n:
        return lines
    ind = independent.scores
    return lines + [f"On the same holdout subsets trained with repeat seeds {independent.repeats}, which no fitted "
                    f"subset used: F1 {_fmt(ind.f1)} ({ind.n_negative} negative, {ind.n_positive} positive), "
                    f"Spearman {_fmt(ind.spearman)} (noise ceiling {_fmt(ind.noise_ceiling)}; F1 ceiling "
                    f"{_fmt(ind.f1_ceiling)}).", ""]


def _check_lines(check: AlternativesCheck | None) -> list[str]:
    """Never knowingly worse: which of the selection, STL and all sources is recommended, and why."""
    if check is None:
        return []
    name = {"selected": "the selection", "stl": "STL (the target alone)", "all_sources": "all sources"}
    rows = [[name[key], _fmt(check.loss[key]) + f" ± {_fmt(check.se[key])}"] for key in name]
    return ["## Recommendation", "", f"**Recommended: {name[check.recommended]}**, because "
            f"{check.reason}.", "", render_table(rows, ["model", f"target loss on {check.rows} rows ± s.e."]),
            "", *_check_noise_lines(check, name)]


def _check_noise_lines(check: AlternativesCheck, name: dict[str, str]) -> list[str]:
    """The check's paired differences with their s.e. over rows and repeats and the three-way verdicts; for a
    report.json written before they existed, the over-repeats s.e. it holds, said so."""
    if not check.paired:
        return [f"Noise: the selection minus {name[check.best_alternative]} is {check.difference:+.4f} ± "
                f"{_fmt(check.difference_se)} over the repeats only ({check.noise_note}); no verdict recorded.", ""]
    labels = {key: "STL minus all sources" if first == "stl" else f"the selection minus {name[second]}"
              for key, (first, second) in check_pairs(check.best_alternative).items()}
    over = ("the rows and the repeats" if check.noise == "rows and repeats"
            else "the repeats only (no per-row losses)")
    paired = [(label, check.paired[key]) for key, label in labels.items()]
    rows = [[label, f"{d.mean:+.4f}", _fmt(d.se), _fmt(d.se_runs), f"**{d.verdict}**"] for label, d in paired]
    return [f"**Verdict: {check.verdict}** (the selection against the better alternative). Paired differences on "
            f"the {check.n_rows} rows, with a standard error over {over}; \"within noise\": within "
            f"{check.margin_se:g} standard error{'' if check.margin_se == 1 else 's'} of zero. The recommendation is "
            "the lower mean whatever the verdict.", "",
            render_table(rows, ["difference", "mean", f"s.e. over {check.noise}", "s.e. over the repeats only",
                                "verdict"]), "", f"Per-row losses: {check.noise_note}.", ""]


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def write_sources_report(report: SourcesReport | dict, out_dir) -> Path:
    """Write ``report.md`` (and ``plots/*.png``) for a ``negtransfer sources`` run.

    Parameters
    ----------
    report : SourcesReport or dict
        The job's :class:`~negtransfer.jobs.sources.SourcesReport`, or its ``to_dict()`` (report.json), read back
        into one.
    out_dir : path
        The folder ``report.md`` and ``plots/`` are written to.
    """
    report = report if isinstance(report, SourcesReport) else SourcesReport.from_dict(report)
    out_dir = Path(out_dir)
    plots = out_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    figures: list[tuple[str, str]] = []
    if report.threshold_scale == "raw":  # the paper grid acts on eq. 3's raw scores
        plot_relevance(report.raw_relevance or {}, report.threshold, report.selected, plots / "relevance.png",
                       xlabel="relevance score theta on the raw scale of eq. 3 (lower = more useful)")
    else:
        plot_relevance(report.relevance, report.threshold, report.selected, plots / "relevance.png")
    figures.append(("Relevance scores and threshold", "plots/relevance.png"))
    if report.holdout_points:
        plot_surrogate_fit(report.holdout_points, report.stl_val_loss, plots / "surrogate_fit.png")
        figures.append(("Predicted vs measured f(S) on the holdout", "plots/surrogate_fit.png"))
    curve = report.holdout.error_curve
    if curve:
        plot_error_curve(curve, plots / "error_curve.png")
        figures.append(("Surrogate error vs number of subsets", "plots/error_curve.png"))

    repeats = report.repeats
    rows_note = (" on the half of its validation rows that did not choose the stopping epoch"
                 if report.f_rows == "estimate half" else "")
    lines = [
        f"# Source selection for target `{report.target}` ({report.dataset})",
        "",
        f"{report.n_sources} candidate sources, subsets of {report.alpha}, f(S) = target validation "
        f"{report.loss} loss{rows_note}, seed {report.seed}, training scheme "
        f"`{report.training}`, {repeats} run{'s' if repeats > 1 else ''} per model "
        f"(figures are means over them). Surrogate: {_surrogate_words(report)}.",
        "",
        f"**Selected** ({len(report.selected)} sources, threshold gamma = {report.threshold:.3g}): "
        + (", ".join(report.selected) if report.selected else "none (the target alone is best)"),
        "",
    ]
    lines += _holdout_lines(report.holdout)
    lines += _check_lines(report.check)
    se = report.subset_se or {}
    if repeats > 1 and se:
        lines += [f"Noise of f(S) over the {repeats} repeats: standard error {_fmt(se.get('mean'))} (mean over "
                  f"subsets), {_fmt(se.get('paired_mean'))} for f(S) - f(STL) paired by repeat; f(STL) = "
                  f"{_fmt(report.stl_val_loss)} ± {_fmt(report.stl_val_se)}. Per subset: "
                  "`subsets` in report.json.", ""]
    metric = report.test_metric_name
    rows = []
    test_se = report.test_loss_se or {}
    for key, label in METHOD_LABELS.items():
        if key not in report.test_loss:
            continue
        acc = report.test_accuracy[key] if report.test_accuracy else None
        loss = _fmt(report.test_loss[key]) + (f" ± {_fmt(test_se[key])}" if repeats > 1 and key in test_se else "")
        rows.append([label, str(len(report.methods[key])), loss,
                     _fmt(report.test_metric[key]), _fmt(acc), str(report.runs[key])])
    lines += ["## Target's test results", "",
              render_table(rows, ["method", "sources", "test loss" + (" ± s.e." if repeats > 1 else ""),
                                  f"test {metric}", "test accuracy", "runs needed"]),
              "", "Runs needed counts the trained models each method relies on (STL included where it is used).", ""]
    fairness = report.fairness
    if fairness:
        frows = [[METHOD_LABELS.get(key, key), _fmt(f["accuracy"]), _fmt(f["worst_group_accuracy"]),
                  str(f["worst_group"]), _fmt(f["demographic_parity_gap"]), _fmt(f["equal_opportunity_gap"])]
                 for key, f in fairness.items() if key != "attribute"]
        lines += [f"## Fairness across `{fairness['attribute']}` groups (target's test rows)", "",
                  render_table(frows, ["method", "accuracy", "worst-group accuracy", "worst group",
                                       "demographic-parity gap", "equal-opportunity gap"]),
                  "", "Gaps are the largest minus the smallest positive-prediction rate (demographic parity) "
                  "or true-positive rate (equal opportunity) over the groups.", ""]
    lines += ["## Plots", ""]
    for title, rel in figures:
        lines += [f"### {title}", "", f"![{title}]({rel})", ""]
    lines += ["## How to read", "",
              "- A relevance score theta_i is the surrogate's estimate of how much adding source i changes the "
              "target's validation loss, relative to training the target alone: negative helps, positive hurts.",
              *(["- With the kernel surrogate, theta_i is its mean predicted change of the target's loss when source "
                 "i joins the other sources of a fitted subset (the mean of g(S) - g(S minus i) over the fitted "
                 "subsets holding i); pairs of sources may interact, which theta alone does not show."]
                if report.surrogate is not None and report.surrogate.kind == "kernel" else []),
              "- Sources with theta below the threshold are selected; the threshold is the grid value whose "
              + ("selection gave the lowest target validation loss."
                 if report.threshold_by == "validation" else
                 "selection the cross-fitted surrogate criterion scored best (no model trained to choose it)."),
              "- The exhaustive baseline, when present, trains the target with every combination of one or two "
              "sources and keeps the one with the lowest target validation loss (paper Table 3).", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
