"""``negtransfer sources``: choose source tasks for a target (:mod:`negtransfer.jobs.sources`)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Literal, Optional, TypeAlias

import typer

from negtransfer.cli.console import fail, note
from negtransfer.cli.job import Job
from negtransfer.cli.options import (
    DATA_BLOCK,
    MODEL_BLOCK,
    RUNS,
    TRAINING_BLOCK,
    ChunkSizeOpt,
    DataOptions,
    Device,
    DeviceOpt,
    ModelOptions,
    QuietOpt,
    RunOptions,
    SeedOpt,
    TrainingOptions,
    check_model_on,
    fit_batch_size,
    kinds_summary,
    nonnegative_number,
    note_unused_balance,
    runs_block,
    with_option_blocks,
)
from negtransfer.jobs.choices import (
    EXHAUSTIVE_PAIRS,
    MODEL_KINDS,
    SOURCE_LOSSES,
    SOURCE_TRAININGS,
    SURROGATES,
    THRESHOLD_BY,
    THRESHOLD_GRIDS,
)

if TYPE_CHECKING:  # a type checker sees plain strings; typer reads the Literals built from the domain tuples
    SourceTraining: TypeAlias = str
    SourceLoss: TypeAlias = str
    ThresholdGrid: TypeAlias = str
    ThresholdBy: TypeAlias = str
    ExhaustivePairs: TypeAlias = str
    SurrogateKind: TypeAlias = str
else:
    SourceTraining = Literal[SOURCE_TRAININGS]
    SourceLoss = Literal[SOURCE_LOSSES]
    ThresholdGrid = Literal[THRESHOLD_GRIDS]
    ThresholdBy = Literal[THRESHOLD_BY]
    ExhaustivePairs = Literal[EXHAUSTIVE_PAIRS]
    SurrogateKind = Literal[SURROGATES]


RUNS_BLOCK = runs_block("runs/sources")  # --out ... --ray-address, --out defaulting to this folder


@with_option_blocks
def sources(
    target: str = typer.Option(..., "--target", help="The target task (a label column or a task-column value)."),
    alpha: int = typer.Option(5, "--alpha", min=1, help="Sources per sampled subset."),
    subsets: Optional[int] = typer.Option(None, "--subsets", min=2, help="Subsets the surrogate is fitted on.", show_default="8k for k sources (the paper's), capped by --max-runs"),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", min=1, help="Budget of subset runs (subsets x repeats) for the default --subsets."),
    holdout: int = typer.Option(100, "--holdout", min=0, help="Further subsets for negative-transfer prediction."),
    training_scheme: Optional[SourceTraining] = typer.Option(None, "--training", help="'parity': STL, subset and final models share one objective (mean loss over rows), one step budget and early stopping on half the target's validation rows, f(S) on the other half; 'task-modeling': the public code's fixed epochs; 'legacy': the trainer's defaults (figures before issue 11).", show_default="parity; task-modeling with --preset task-modeling"),
    loss: Optional[SourceLoss] = typer.Option(None, "--loss", help="f(S): cross_entropy, margin (probabilities), logit_margin or zero_one (classification), mse (regression).", show_default="the training loss (cross_entropy; mse for regression); logit_margin for task-modeling, margin for legacy"),
    ridge: Optional[str] = typer.Option(None, "--ridge", help="Ridge penalty of the surrogate: a number (0 = least squares, eq. 3) or 'auto' (the strength with the least leave-one-out error over the fitted subsets; least squares is a candidate).", show_default="0; auto when fewer than 1.5k subsets are fitted under --training parity"),
    surrogate: SurrogateKind = typer.Option("linear", "--surrogate", help="Surrogate of f(S): 'linear' (the paper's eq. 2-3) or 'kernel' (kernel ridge regression on the subset indicators; kernel, width and --ridge strength chosen by leave-one-out error over the fitted subsets)."),
    independent_holdout: bool = typer.Option(False, "--independent-holdout", help="Also train the holdout subsets and STL with repeat seeds no fitted subset used, and report the negative-transfer prediction on them (holdout x repeats + repeats more runs)."),
    no_affinity: bool = typer.Option(False, "--no-affinity", help="Skip the affinity-ranked baseline."),
    group_attribute: Optional[str] = typer.Option(None, "--group-attribute", help="Row attribute (e.g. race in tv16) for worst-group accuracy and parity gaps."),
    common_init: bool = typer.Option(False, "--common-init", help="Subset models share one initialisation (common random numbers: less noise in f(S))."),
    grid: Optional[ThresholdGrid] = typer.Option(None, "--grid", help="Thresholds tried: 'all' (one per distinct selection) or 'paper' (-0.5..0.5 step 0.1 on the raw scores of eq. 3; on relative scores with --training legacy).", show_default="all; paper with --preset task-modeling"),
    data_fraction: float = typer.Option(1.0, "--data-fraction", help="Subset models train on this fraction of the training rows (paper's speed-up: 0.4)."),
    steps_fraction: float = typer.Option(1.0, "--steps-fraction", help="Subset models get this fraction of the epoch budget (paper's speed-up: 0.2)."),
    threshold_by: ThresholdBy = typer.Option("validation", "--threshold-by", help="Choose gamma by the final models' target 'validation' loss (paper) or the training-free cross-fitted 'surrogate' criterion."),
    stl_repeats: int = typer.Option(1, "--stl-repeats", min=1, help="Mean of this many STL runs is the reference f(STL) that subsets are judged against."),
    exhaustive_pairs: ExhaustivePairs = typer.Option("auto", "--exhaustive-pairs", help="Baseline: best of all 1-2 source combinations; 'auto' (when k(k-1)/2 <= --max-pair-runs), 'on' or 'off'."),
    max_pair_runs: int = typer.Option(300, "--max-pair-runs", min=0, help="Pair models allowed for --exhaustive-pairs auto."),
    run_options: RunOptions = RUNS_BLOCK,
    chunk_size: int = ChunkSizeOpt,
    repeats: Optional[int] = typer.Option(None, "--repeats", min=1, help="Runs per model (common random numbers); f(S), f(STL) and every loss are means over the repeats, with standard errors in report.json.", show_default="3; 5 with --preset task-modeling (the authors average 3-5)", rich_help_panel=RUNS),
    training_options: TrainingOptions = TRAINING_BLOCK,
    device: Device = DeviceOpt,
    model_options: ModelOptions = MODEL_BLOCK,
    data_options: DataOptions = DATA_BLOCK,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Choose source tasks for a target with a surrogate model of its loss over source subsets.

    Writes report.json (relevance scores, threshold, selection, holdout F1 and
    Spearman, the target's test loss and metric under STL, all sources, the
    selection and the baselines) and report.md with plots.
    """
    from negtransfer.jobs.sources import SourceOptions, preset_defaults, run_sources
    from negtransfer.report.jsonio import write_json
    from negtransfer.report.sources import write_sources_report

    notes: list[str] = []
    # the source-selection figures in docs/methods/source-selection.md were measured with pooled batches and
    # an initialisation per subset model (--common-init shares one)
    job_defaults, training_defaults = preset_defaults(training_options.preset)
    training = replace(training_options, batching=training_options.batching or training_defaults.get("batching"))
    config = training.config(shared_init=common_init, device=device, model=model_options.choice())
    if not (math.isfinite(data_fraction) and 0 < data_fraction <= 1 and math.isfinite(steps_fraction) and 0 < steps_fraction <= 1):
        fail(f"--data-fraction and --steps-fraction must be in (0, 1], got {data_fraction} and {steps_fraction}")
    penalty: float | str | None = ridge
    if ridge is not None and ridge != "auto":
        penalty = nonnegative_number(ridge, "--ridge ('auto' or a number)")
    job = Job(replace(run_options, seed=seed, quiet=quiet, device=device), notes)
    ds = data_options.load(seed, MODEL_KINDS)
    check_model_on(ds, config, notes)
    config = fit_batch_size(ds, config, training_options.batch_size, notes)
    note_unused_balance(ds, config, notes)
    kinds = kinds_summary(ds, data_options.data, notes)
    options = SourceOptions(target=target, alpha=alpha, n_subsets=subsets, holdout=holdout, loss=loss,
                            ridge=penalty, affinity_baseline=not no_affinity, chunk_size=chunk_size,
                            data_fraction=data_fraction, steps_fraction=steps_fraction,
                            grid=grid or job_defaults["grid"],
                            group_attribute=group_attribute, common_init=common_init,
                            exhaustive_pairs=exhaustive_pairs, max_pair_runs=max_pair_runs,
                            threshold_by=threshold_by, stl_repeats=stl_repeats,
                            repeats=repeats or job_defaults["repeats"],
                            training=training_scheme or job_defaults["training"],
                            max_runs=max_runs, surrogate=surrogate, independent_holdout=independent_holdout)
    try:
        options.check(ds)
    except ValueError as exc:
        fail(str(exc))
    from math import comb

    distinct = comb(ds.n_tasks - 1, alpha)
    n_fit = options.subsets_for(ds.n_tasks - 1)
    if n_fit + holdout > distinct:
        note(f"{n_fit} fitted + {holdout} holdout subsets are more than the {distinct} distinct subsets of {alpha} "
             f"of the {ds.n_tasks - 1} sources; subsets repeat", notes)
    job.start()
    with job.training() as progress:
        report = run_sources(ds, options, config, seed, job.store, executor=job.executor, progress=progress,
                             notify=lambda message: note(message, notes))
    report.task_kinds, report.notes = kinds, notes
    with job.writing():
        write_json(run_options.out / "report.json", report.to_dict())
        md = write_sources_report(report, run_options.out)
    typer.echo(f"target {report.target}: selected {len(report.selected)} of {report.n_sources} sources "
               f"(threshold {report.threshold:.3g}): {', '.join(report.selected) or 'none'}")
    typer.echo("test loss: " + " | ".join(f"{k} {v:.4f}" for k, v in report.test_loss.items()))
    scores, independent = report.holdout.scores, report.holdout.independent
    if scores is not None and scores.n:
        typer.echo(f"holdout: F1 (minority class) {_holdout_f1(scores)}, Spearman {_number(scores.spearman)}")
    if independent is not None:
        typer.echo(f"holdout on unseen repeat seeds: F1 {_holdout_f1(independent.scores)}, Spearman "
                   f"{_number(independent.scores.spearman)}")
    if report.check:
        typer.echo(f"recommended: {report.check.recommended} ({report.check.reason})")
        if report.check.paired:
            closest = report.check.paired["selected_minus_best"]
            spread = f" ± {closest.se:.4f}" if math.isfinite(closest.se) else " (no s.e.)"
            typer.echo(f"check: selection minus {report.check.best_alternative} {closest.mean:+.4f}{spread} "
                       f"(over {report.check.noise}): {report.check.verdict}")
    typer.echo(f"report: {md}")


def _number(value) -> str:
    """``0.712``, or ``n/a`` for a score that is not defined (NaN) or not recorded (None)."""
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _holdout_f1(scores) -> str:
    """The minority class's F1 on the holdout subsets; where it is not defined (no subset of that class measured
    or predicted), ``n/a`` and the class balance that says why, as report.md has it: the console printed ``nan``."""
    if scores.f1 is not None and math.isfinite(scores.f1):
        return f"{scores.f1:.3f}"
    return f"n/a ({scores.n_negative} negative, {scores.n_positive} positive transfers among {scores.n} subsets)"
