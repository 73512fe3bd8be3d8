"""PNG plots for the grouping report (matplotlib, Agg backend).

matplotlib is imported inside the functions, never at module import, so
importing :mod:`negtransfer.report` stays cheap. Figures are built with
``matplotlib.figure.Figure`` on an Agg canvas: no pyplot, no global backend
switch, nothing left open in a notebook that happens to call these.

Every function takes plain Python/NumPy data (matrices, task names, losses by
task) or the parts of the typed grouping report
(:class:`~negtransfer.jobs.grouping_report.PredictionPoint`,
:class:`~negtransfer.jobs.grouping_report.RoundRecord`), tolerates NaN / ``None`` values (drawn as missing, never as zero), writes one
PNG to ``path`` and returns ``path`` as a :class:`pathlib.Path`.

Orientation of affinity matrices, as everywhere in negtransfer:
``affinity[i][j]`` is the affinity of SOURCE task ``i`` onto TARGET task ``j``
(ETAP: Ayman, Mukhopadhyay and Laszka, ICLR 2026, eq. 6); rows are sources, columns are targets.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from negtransfer.jobs.grouping_report import PredictionPoint, RoundRecord

__all__ = [
    "plot_affinity_heatmap",
    "plot_predicted_vs_actual",
    "plot_selected_groups",
    "plot_task_losses",
    "plot_rounds",
    "finite_points",
    "axis_labels",
    "new_figure",
    "save_figure",
    "LOSS_SERIES",
]

# (key in report["test_loss"], legend label, colour); STL is the reference (0 %).
LOSS_SERIES = (
    ("all_tasks", "all-task MTL (one model)", "#9e9e9e"),
    ("selected", "chosen groups", "#1f77b4"),
    ("optimal", "test oracle (exhaustive)", "#2ca02c"),
)

_DPI = 110


def new_figure(width: float, height: float):
    """A matplotlib Figure of ``width`` x ``height`` inches at the reports' resolution, on the Agg canvas (no
    display, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path) -> Path:
    """Write ``fig`` as a PNG to ``path`` (folders created; no software tag, so equal figures give equal files)
    and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", bbox_inches="tight", pad_inches=0.15, metadata={"Software": None})
    return path


def _float(x) -> float:
    """``x`` as a float, with ``None`` and non-numbers as NaN."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _fmt_stat(x) -> str:
    x = _float(x)
    return "n/a" if not math.isfinite(x) else f"{x:.3f}"


# --------------------------------------------------------------------------- task names on axes

#: Longest task name drawn on an axis; longer names are cut with an ellipsis (report.md lists them in full).
LABEL_CHARS = 24


def _drawable(text: str) -> bool:
    """Whether matplotlib's default font has a glyph for every character of ``text`` (else it draws boxes)."""
    if text.isascii():
        return True
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    return all(font.get_char_index(ord(c)) != 0 for c in text if not c.isspace())


def axis_labels(tasks: Sequence[str], limit: int = LABEL_CHARS) -> tuple[list[str], dict[str, str]]:
    """The labels the plots draw for ``tasks`` and the renamed ones (label -> full name).

    A name whose characters the default font cannot draw (e.g. Chinese or Japanese, drawn as empty boxes before)
    is drawn as ``T<k>`` (its position, 1-based); a name longer than ``limit`` characters is cut with an ellipsis
    (a long name once made a 5358 x 4394 px affinity plot). report.md lists the renamed ones under the plots.
    """
    labels, renamed = [], {}
    for k, name in enumerate(map(str, tasks), 1):
        label = name if _drawable(name) else f"T{k}"
        if len(label) > limit:
            label = label[: limit - 1] + "\u2026"
        if label in renamed or (label != name and label in tasks):
            label = f"T{k}"
        if label != name:
            renamed[label] = name
        labels.append(label)
    return labels, renamed


# --------------------------------------------------------------------------- affinity


def plot_affinity_heatmap(affinity, tasks: Sequence[str], path, *, annotate: bool | None = None) -> Path:
    """Heatmap of the task affinity matrix.

    Parameters
    ----------
    affinity : array-like (n, n)
        ``affinity[i][j]`` = affinity of SOURCE task ``i`` (row) onto TARGET task
        ``j`` (column), ETAP eq. 6. Positive: updates on the source lower the
        target's loss (helps); negative: they raise it (hurts).
    tasks : sequence of n task names
    path : output PNG path
    annotate : write the value in each cell; default when n <= 10.

    The colour map is diverging and centred at 0 (blue = helps, red = hurts),
    symmetric around 0 with limits from the off-diagonal entries only: the
    diagonal (self-affinity, unused by grouping) is greyed out so that it does
    not wash out the scale. NaN cells are grey too.
    """
    a = np.array(affinity, dtype=float)
    n = len(tasks)
    if a.shape != (n, n):
        raise ValueError(f"affinity must be {n} x {n} to match the {n} task names; got shape {a.shape}")
    off = ~np.eye(n, dtype=bool)
    finite_off = a[off & np.isfinite(a)]
    vmax = float(np.max(np.abs(finite_off))) if finite_off.size else 1.0
    if vmax == 0:
        vmax = 1.0
    # Scale tiny/huge affinities (often ~1e-3) so annotations and the colour bar stay short.
    exponent = int(math.floor(math.log10(vmax)))
    scale_exp = exponent if (exponent < -1 or exponent > 2) else 0
    shown = np.where(off, a, np.nan) / 10.0**scale_exp
    vmax /= 10.0**scale_exp

    if annotate is None:
        annotate = n <= 10
    tasks, _ = axis_labels(tasks)
    longest = max((len(t) for t in tasks), default=1)
    cell = 0.55 if n <= 10 else 0.42
    side = max(4.0, n * cell)
    label_room = 0.09 * longest + 0.6  # inches taken by tick labels
    fig = new_figure(side + label_room + 1.4, side + label_room + 0.6)
    ax = fig.add_subplot(1, 1, 1)

    import matplotlib as mpl

    cmap = mpl.colormaps["RdBu"].with_extremes(bad="#d9d9d9")
    im = ax.imshow(np.ma.masked_invalid(shown), cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    fontsize = 9 if n <= 16 else 7
    ax.set_xticklabels(tasks, rotation=45, ha="right", rotation_mode="anchor", fontsize=fontsize)
    ax.set_yticklabels(tasks, fontsize=fontsize)
    ax.set_xlabel("target task (affected)")
    ax.set_ylabel("source task (update taken on)")
    ax.set_title("Task affinity: source (row) \u2192 target (column)")
    # Thin white grid between cells.
    ax.set_xticks(np.arange(-0.5, n, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n, 1), minor=True)
    ax.grid(which="minor", color="white", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    for i in range(n):
        ax.text(i, i, "\u2014", ha="center", va="center", color="#7f7f7f", fontsize=fontsize)
    if annotate:
        for i in range(n):
            for j in range(n):
                v = shown[i, j]
                if i == j or not np.isfinite(v):
                    continue
                dark = abs(v) > 0.6 * vmax
                ax.text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    cbar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    unit = f" [$\\times 10^{{{scale_exp}}}$]" if scale_exp else ""
    cbar.set_label(f"affinity{unit}\n\u2190 hurts target   helps target \u2192")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- prediction


def finite_points(points: Sequence[PredictionPoint]) -> list[PredictionPoint]:
    """The prediction points whose predicted and actual gains are both finite."""
    out = []
    for p in points or ():
        pr, ac = _float(p.predicted), _float(p.actual)
        if math.isfinite(pr) and math.isfinite(ac):
            out.append(p)
    return out


def plot_predicted_vs_actual(points: Sequence[PredictionPoint], path, pearson=None, r2=None) -> Path:
    """Scatter of predicted vs measured MTL gain, one point per (held-out group, task).

    Parameters
    ----------
    points : PredictionPoint sequence, with ``group`` (task names), ``task``,
        ``predicted`` and ``actual`` (gains, ETAP eq. 1: relative loss decrease
        vs STL; positive = the task does better in the group than alone).
    pearson, r2 : shown in the title ("n/a" for None / NaN).

    Points are coloured by group size; the dashed line is y = x (perfect
    prediction), thin lines at 0 separate helped from hurt tasks. Points with a
    NaN coordinate are dropped (their count is printed on the plot).

    Raises
    ------
    ValueError
        If no point has both values finite (nothing to draw).
    """
    good = finite_points(points)
    if not good:
        raise ValueError("no prediction point with finite predicted and actual gain; nothing to plot")
    dropped = len(points) - len(good)
    pred = np.array([_float(p.predicted) for p in good])
    act = np.array([_float(p.actual) for p in good])
    sizes = np.array([len(p.group or ()) for p in good])

    fig = new_figure(5.8, 5.2)
    ax = fig.add_subplot(1, 1, 1)
    lo = float(min(pred.min(), act.min()))
    hi = float(max(pred.max(), act.max()))
    pad = 0.06 * (hi - lo) if hi > lo else max(abs(hi), 0.01) * 0.5 + 1e-3
    lo, hi = lo - pad, hi + pad
    ax.axhline(0, color="#bbbbbb", linewidth=0.8, zorder=0)
    ax.axvline(0, color="#bbbbbb", linewidth=0.8, zorder=0)
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="#555555", linewidth=1, label="y = x", zorder=1)

    import matplotlib as mpl

    unique = sorted(set(int(s) for s in sizes))
    cmap = mpl.colormaps["plasma"]
    for k, s in enumerate(unique):
        colour = cmap(0.05 + 0.75 * k / max(len(unique) - 1, 1))
        m = sizes == s
        ax.scatter(pred[m], act[m], s=26, color=colour, alpha=0.8, edgecolors="white", linewidths=0.4,
                   label=f"group of {s} tasks ({int(m.sum())})", zorder=2)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_aspect("equal", adjustable="box")
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    for axis in (ax.xaxis, ax.yaxis):  # at most 6 short ticks: long fractions once overlapped on the x axis
        axis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=None))
    ax.set_xlabel("predicted gain (ETAP)")
    ax.set_ylabel("measured gain on test split")
    n_groups = len({tuple(p.group or ()) for p in good})
    ax.set_title(f"Predicted vs measured MTL gain\nPearson {_fmt_stat(pearson)}, R\u00b2 {_fmt_stat(r2)}"
                 f"  ({len(good)} points, {n_groups} held-out groups)", fontsize=10)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.85)
    note = "gain = (STL loss \u2212 group loss) / STL loss; > 0: group helps the task"
    if dropped:
        note += f"\n{dropped} point(s) with NaN values not shown"
    ax.text(0.5, -0.13, note, transform=ax.transAxes, ha="center", va="top", fontsize=7.5, color="#555555")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- groups


def _membership_panel(ax, tasks, groups, title, task_group=None, colour="#1f77b4"):
    n, m = len(tasks), len(groups)
    index = {t: i for i, t in enumerate(tasks)}
    ax.set_xlim(-0.5, m - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    for c in range(m):
        if c % 2 == 0:
            ax.axvspan(c - 0.5, c + 0.5, color="#f2f2f2", zorder=0)
    for r in range(n):
        ax.axhline(r, color="#e0e0e0", linewidth=0.6, zorder=0)
    for c, g in enumerate(groups):
        rows = sorted(index[t] for t in g if t in index)
        if len(rows) > 1:
            ax.plot([c, c], [rows[0], rows[-1]], color=colour, linewidth=2, alpha=0.35, zorder=1)
        for r in rows:
            counted = task_group is None or list(task_group.get(tasks[r], ())) == list(g)
            ax.scatter([c], [r], s=110, zorder=2, linewidths=1.6, edgecolors=colour,
                       facecolors=colour if counted else "white")
    ax.set_xticks(range(m))
    ax.set_xticklabels([f"G{c + 1}\n({len(g) if len(g) > 1 else 'alone'})" for c, g in enumerate(groups)],
                       fontsize=8)
    ax.set_yticks(range(n))
    ax.set_yticklabels(tasks, fontsize=9 if n <= 16 else 7)
    ax.tick_params(length=0)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_title(title, fontsize=10)


def plot_selected_groups(tasks: Sequence[str], groups, path, *, optimal=None,
                         task_group: Mapping[str, Sequence[str]] | None = None) -> Path:
    """Task x group membership matrix of the chosen grouping.

    Parameters
    ----------
    tasks : task names (rows, in dataset order)
    groups : chosen groups, lists of task names (columns G1, G2, ...; the
        number of tasks in the group is under the label)
    optimal : optional optimal groups (``--exhaustive``), drawn in a second
        panel beside the chosen ones
    task_group : optional ``{task: group}``: the chosen group whose model gives
        the task's reported loss (lowest validation loss among the groups that
        hold it). With it, a hollow dot marks membership in a group whose loss
        is not the one counted for that task; without it, all dots are filled.
    """
    labels, _ = axis_labels(tasks)
    short = dict(zip(map(str, tasks), labels, strict=True))
    groups = [[short.get(t, t) for t in g] for g in groups]
    optimal = None if not optimal else [[short.get(t, t) for t in g] for g in optimal]
    if task_group is not None:
        task_group = {short.get(t, t): [short.get(m, m) for m in g] for t, g in task_group.items()}
    tasks = labels
    panels = [(groups, f"chosen groups ({len(groups)})", task_group, "#1f77b4")]
    if optimal:
        panels.append(([list(g) for g in optimal], f"optimal groups ({len(optimal)})", None, "#2ca02c"))
    n = len(tasks)
    widths = [max(len(p[0]), 1) for p in panels]
    longest = max((len(t) for t in tasks), default=1)
    height = max(2.6, 0.32 * n + 1.4)
    fig = new_figure(0.08 * longest + 0.6 + sum(0.7 * w + 0.8 for w in widths), height)
    gs = fig.add_gridspec(1, len(panels), width_ratios=[w + 0.6 for w in widths], wspace=0.15)
    first = None
    for k, (gs_groups, title, tg, colour) in enumerate(panels):
        ax = fig.add_subplot(gs[0, k], sharey=first)
        _membership_panel(ax, list(tasks), gs_groups, title, tg, colour)
        if first is None:
            first = ax
        else:
            ax.tick_params(labelleft=False)
    uncovered = [t for t in tasks if not any(t in g for g in groups)]
    notes = []
    if task_group is not None and any(
        list(task_group.get(t, ())) != list(g) for g in groups for t in g if t in task_group
    ):
        notes.append("filled: group whose loss counts for the task; hollow: also a member")
    if uncovered:
        notes.append("not covered by the chosen groups: " + ", ".join(uncovered))
    if notes:
        fig.text(0.5, -0.12 / height, "\n".join(notes), ha="center", va="top", fontsize=8, color="#555555")
    return save_figure(fig, path)


# --------------------------------------------------------------------------- losses


def relative_change(loss: float | None, stl: float | None) -> float:
    """(loss - stl) / stl; NaN when either is missing (None or NaN) or stl is 0."""
    x, ref = _float(loss), _float(stl)
    if not (math.isfinite(x) and math.isfinite(ref)) or ref == 0:
        return math.nan
    return (x - ref) / abs(ref)


def plot_task_losses(test_loss: Mapping[str, Mapping[str, float]], tasks: Sequence[str], path,
                     gain_se: Mapping[str, Mapping[str, float]] | None = None) -> Path:
    """Per-task gain against STL (ETAP eq. 1), grouped horizontal bars with error bars.

    Parameters
    ----------
    test_loss : ``{"stl": {task: loss}, "all_tasks": {...}, "selected": {...},
        optionally "optimal": {...}}``
    tasks : task names (rows)
    gain_se : ``{"all_tasks": {task: se}, "selected": {...}}``, optional
        Standard errors of the gains over the repeats (the report's ``losses.gain_se``): drawn as error bars of
        +- one standard error.

    Each bar is the gain ``(STL loss - loss) / STL loss`` in percent, the sign
    of every gain in the reports, so tasks with different loss scales are
    comparable: STL is the 0 line, bars to the right are better than training
    the task alone, bars to the left (hatched for the chosen groups) are
    negative transfer. Missing / NaN losses get no bar and an "n/a" mark.
    """
    stl = test_loss.get("stl", {})
    series = [(key, label, colour) for key, label, colour in LOSS_SERIES if test_loss.get(key)]
    n, k = len(tasks), max(len(series), 1)
    values = np.array([[-relative_change(test_loss[key].get(t), stl.get(t)) * 100 for t in tasks]
                       for key, _, _ in series]).reshape(len(series), n)
    errors = np.array([[_float((gain_se or {}).get(key, {}).get(t)) * 100 for t in tasks]
                       for key, _, _ in series]).reshape(len(series), n)
    tasks, _ = axis_labels(tasks)
    longest = max((len(t) for t in tasks), default=1)
    fig = new_figure(7.0 + 0.07 * longest, max(2.8, n * (0.11 * k + 0.14) + 1.6))
    ax = fig.add_subplot(1, 1, 1)
    height = 0.8 / k
    reach = np.abs(values) + np.where(np.isfinite(errors), errors, 0.0)
    finite = reach[np.isfinite(reach)]
    span = float(np.max(finite)) if finite.size else 1.0
    span = span if span > 0 else 1.0
    for s, (key, label, colour) in enumerate(series):
        y = np.arange(n) - 0.4 + height * (s + 0.5)
        v = values[s]
        ok = np.isfinite(v)
        bars = ax.barh(y[ok], v[ok], height=height * 0.92, color=colour, label=label, zorder=2)
        bar_error = errors[s][ok]
        if np.isfinite(bar_error).any():
            ax.errorbar(v[ok], y[ok], xerr=np.where(np.isfinite(bar_error), bar_error, 0.0), fmt="none",
                        ecolor="#333333", elinewidth=0.9, capsize=2, zorder=4)
        if key == "selected":
            for bar, val in zip(bars, v[ok], strict=True):
                if val < 0:
                    bar.set_hatch("///")
                    bar.set_edgecolor("#b22222")
        for yy in y[~ok]:
            ax.text(0, yy, " n/a", va="center", ha="left", fontsize=7, color="#777777")
    ax.axvline(0, color="black", linewidth=1, zorder=3)
    ax.set_yticks(range(n))
    ax.set_yticklabels(tasks, fontsize=9 if n <= 16 else 7)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(-1.15 * span, 1.15 * span)
    ax.grid(axis="x", color="#e5e5e5", zorder=0)
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    # Steps 1/2/5 only, so that short tick labels are exact (no -2.5 shown as -2%).
    ax.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 5, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{round(v, 9) + 0.0:.4g}%".replace("-", "\u2212")))
    ax.set_xlabel("gain vs STL = (STL loss \u2212 loss) / STL loss (STL = 0; bars: \u00b1 1 s.e. over repeats)\n"
                  "\u2190 higher loss than alone      lower loss than alone \u2192")
    ax.set_title("Per-task gain against single-task training (STL)", fontsize=10, pad=26)
    if series:
        ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(series), fontsize=8, frameon=False)
    return save_figure(fig, path)


def plot_affinity_trace(trace: Mapping, path) -> Path:
    """Per-step affinity of a few task pairs during the all-task run (ETAP Figure 7).

    ``trace`` holds ``steps`` (tracked step numbers) and ``pairs``, a list of
    ``{"source", "target", "values"}``. Each pair is drawn faintly step by step,
    with its running mean (what eq. 6 averages) on top.
    """
    fig = new_figure(7.5, 4.2)
    ax = fig.add_subplot(1, 1, 1)
    steps = np.asarray(trace["steps"], dtype=float)
    colours = ["#2b8cbe", "#d7301f", "#31a354", "#756bb1", "#636363", "#e6550d"]
    for i, pair in enumerate(trace["pairs"]):
        values = np.asarray([np.nan if v is None else v for v in pair["values"]], dtype=float)
        colour = colours[i % len(colours)]
        ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.7)
        finite = np.isfinite(values)
        running = np.cumsum(np.where(finite, values, 0.0)) / np.maximum(np.cumsum(finite), 1)
        ax.plot(steps, running, color=colour, linewidth=1.8, label=f"{pair['source']} \u2192 {pair['target']}")
    ax.axhline(0.0, color="black", linewidth=0.6)
    ax.set_xlabel("training step of the all-task run")
    ax.set_ylabel("affinity (source \u2192 target)")
    ax.set_title("Per-step affinity (faint) and its running mean (bold)")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_rounds(rounds: Sequence[RoundRecord], path, *, stl: float | None = None,
                all_tasks: float | None = None) -> Path:
    """The selection's summed validation loss by refinement round (the report's ``refinement.rounds``).

    One point per round played (its selection, once measured), and a star for
    the final selection among the measured groups where the job made one (it
    is not a round: x tick "final"); the last point is labelled with its value.
    Dashed lines mark the STL and all-task models' validation totals when
    given. A falling line means the rounds found better groups than the first
    selection.
    """
    drawn = [r for r in rounds if math.isfinite(_float(r.selection_val_loss))]
    played = [r for r in drawn if not r.final_among_measured]
    final = [r for r in drawn if r.final_among_measured]
    fig = new_figure(5.6, 3.4)
    ax = fig.add_subplot(1, 1, 1)
    xs = list(range(len(played)))
    ys = [_float(r.selection_val_loss) for r in played]
    ax.plot(xs, ys, marker="o", color="#1f77b4", label="selection of the round")
    ticks = [str(int(r.round)) for r in played]
    if final:  # not a round of its own: the last selection redone among the measured groups only
        x_final, y_final = len(played), _float(final[-1].selection_val_loss)
        ax.plot([x_final], [y_final], marker="*", markersize=12, linestyle="none", color="#ff7f0e",
                label="final selection among measured groups")
        ticks.append("final")
    last_x = len(ticks) - 1
    last_y = y_final if final else (ys[-1] if ys else math.nan)
    if math.isfinite(last_y):
        ax.annotate(f"{last_y:.4g}", (last_x, last_y), textcoords="offset points", xytext=(6, 6), fontsize=8)
    for value, label, colour in ((stl, "STL", "#d62728"), (all_tasks, "all-task model", "#7f7f7f")):
        if value is not None and math.isfinite(_float(value)):
            ax.axhline(_float(value), linestyle="--", color=colour, linewidth=1, label=label)
    ax.set_xticks(range(len(ticks)))
    ax.set_xticklabels(ticks)
    ax.set_xlim(-0.5, max(len(ticks) - 0.5, 0.5))
    ax.set_xlabel(f"round ({len(played)} played" + (", then the final selection)" if final else ")"))
    ax.set_ylabel("summed validation loss")
    ax.set_title("Refinement: the selection's validation loss by round", fontsize=10)
    ax.grid(color="#e5e5e5")
    ax.legend(fontsize=8, frameon=False)
    return save_figure(fig, path)
