"""``negtransfer group``: choose task groups (:mod:`negtransfer.jobs.grouping`), and its console summary."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional, TypeAlias

import typer

from negtransfer.cli.console import fail, note, option_given
from negtransfer.cli.job import Job
from negtransfer.cli.options import (
    DATA_BLOCK,
    MODEL_BLOCK,
    TRAINING_BLOCK,
    ChunkSizeOpt,
    DataOptions,
    Device,
    DeviceOpt,
    GradientAggregationOpt,
    ModelOptions,
    QuietOpt,
    RepeatsOpt,
    RunOptions,
    SeedOpt,
    TrainingOptions,
    check_model_on,
    fit_batch_size,
    kinds_summary,
    note_unused_balance,
    runs_block,
    with_option_blocks,
)
from negtransfer.jobs.choices import GAIN_SPLITS, MODEL_KINDS, OBJECTIVES

if TYPE_CHECKING:  # a type checker sees plain strings; typer reads the Literals built from the domain tuples
    from negtransfer.jobs.grouping_report import GroupingReport

    Objective: TypeAlias = str
    GainSplit: TypeAlias = str
else:
    Objective = Literal[OBJECTIVES]
    GainSplit = Literal[GAIN_SPLITS]
#: ``--affinity-epochs``: :data:`negtransfer.affinity.training.AFFINITY_EPOCHS` (checked by the tests; that module
#: imports PyTorch, which ``--help`` must not).
AffinityEpochs = Literal["all", "until-best"]
RefitEpochs = Literal["passes", "steps"]
#: ``--design``: :data:`negtransfer.runs.group_specs.DESIGNS` (checked by the tests; that module imports NumPy).
Design = Literal["random", "stratified", "pairs"]


def grouping_method_name(text: str) -> str:
    """``--method``: a registered grouping method's name (the registry is read when the command runs)."""
    from negtransfer.jobs.grouping_methods import method_names

    if text not in method_names():
        raise typer.BadParameter(f"{text!r} is not a grouping method; the methods are: {', '.join(method_names())}")
    return text


RUNS_BLOCK = runs_block("runs/group")  # --out ... --ray-address, --out defaulting to this folder


@with_option_blocks
def group(
    budget: int = typer.Option(3, "--budget", min=1, help="At most B groups, together covering every task."),
    method: str = typer.Option("etap", "--method", parser=grouping_method_name, metavar="METHOD", help="Grouping method (the registered ones: negtransfer.jobs.grouping_methods.register adds more): 'etap' (ETAP's affinity + spline map + residual), 'tag' (TAG's lookahead affinity), 'hoa' (every pair trained, group gains = pairs' means), 'linear-surrogate' (Li et al. 2023), 'mtgnet' (Song et al. 2022), 'ayman' (every pair + training groups trained, a network predicts a group's total gain; Ayman et al. 2023), 'grad-tae' (Li et al. 2024: affinity from the all-task model's projected gradients); docs/methods/grouping-methods.md."),
    train_groups: int = typer.Option(20, "--train-groups", min=1, help="Training groups (sizes 2..n-1) whose gains are measured before the first fit of the predictor."),
    design: Design = typer.Option("random", "--design", help="How the training groups are drawn: 'random' (a uniform size, then members; the paper's), 'stratified' (sizes spread evenly), 'pairs' (every pair, then larger groups)."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Selection rounds: 1 is the paper's one-shot protocol; more refine actively (train what the selection or the predictor's uncertainty asks for, refit, select again) until the selection is made of measured groups and stops changing."),
    no_refine: bool = typer.Option(False, "--no-refine", help="The paper's one-shot protocol: the same as --rounds 1."),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", min=1, help="Budget of runs (groups x repeats x folds, STL and all-task included) for the recommendation.", show_default="3x the one-shot protocol's runs"),
    per_round: Optional[int] = typer.Option(None, "--per-round", min=1, help="Groups measured per refinement round.", show_default="2 x budget, at least 4"),
    kappa: float = typer.Option(1.0, "--kappa", min=0.0, help="Optimism of the refinement: an unmeasured group counts with its predicted gain plus kappa x the predictor's cross-validated error."),
    objective: Objective = typer.Option("total-loss", "--objective", help="What the selection maximises: the decrease of the summed validation loss (ETAP Table 4's criterion), the sum of gains (ETAP eq. 1), or the summed relative change of the task metric."),
    affinity_momentum: Optional[bool] = typer.Option(None, "--affinity-momentum/--no-affinity-momentum", help="Include the momentum term of ETAP eq. 4 in the affinity.", show_default="the method's own: without for etap (as the public code for Chemical and CelebA; measured better), with for tag (its lookahead takes the full optimiser step)"),
    affinity_epochs: AffinityEpochs = typer.Option("all", "--affinity-epochs", help="Average the affinity over every epoch of the all-task runs, or only up to their best epoch."),
    evaluate: int = typer.Option(0, "--evaluate", min=0, help="Also measure M random held-out groups and report Pearson and R^2."),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="Train every group; report the optimal grouping and the gap."),
    gain_split: GainSplit = typer.Option("validation", "--gain-split", help="Split whose gains fit the predictor: 'validation' (no test data used for choices) or 'test' (the paper's eq. 1)."),
    predicted_only: bool = typer.Option(False, "--predicted-only", help="Score the training groups by predictions too (the paper's selection); default: by their measured gains."),
    trace: int = typer.Option(0, "--trace", min=0, help="Plot the per-step affinity of this many strongest task pairs (ETAP Figure 7)."),
    audit: float = typer.Option(0.0, "--audit", min=0.0, max=0.99, help="Hold back this share of the non-test rows (stratified per task and class): no run trains, stops or measures gains on them, and the verdict against STL and the all-task model, and the fallback to the better of them, are decided on them. 0: no audit rows; the verdict is on the validation rows that also chose the groups."),
    refit: bool = typer.Option(False, "--refit/--no-refit", help="After the decision, retrain the chosen groups, the STL models and the all-task model on every non-test row (train, validation and audit) for each run's stopping epoch, without early stopping, and report their test losses beside the early-stopped ones (report.json 'refit')."),
    refit_epochs: RefitEpochs = typer.Option("steps", "--refit-epochs", help="With --refit: each refit trains its early-stopped run's stopping epoch scaled by the row ratio, about the same optimiser steps ('steps'), or as that many passes over its (larger) training rows ('passes')."),
    affinity_every: int = typer.Option(8, "--affinity-every", min=1, help="Track affinity every k-th step of the all-task run (1 = every step; 8 was chosen by benchmarks/affinity_overhead.py)."),
    run_options: RunOptions = RUNS_BLOCK,
    chunk_size: int = ChunkSizeOpt,
    repeats: int = RepeatsOpt,
    folds: int = typer.Option(1, "--folds", min=1, help="Cross-validated gains: train every run on K folds of the training and validation rows (stratified per task; fold f of every group validates on the same rows), so gains, validation losses and every choice are means over folds and repeats, and the report states how well one fold's gains foretell another's (the split noise). 1: the dataset's one split."),
    training_options: TrainingOptions = TRAINING_BLOCK,
    gradient_aggregation: str = GradientAggregationOpt,
    device: Device = DeviceOpt,
    model_options: ModelOptions = MODEL_BLOCK,
    data_options: DataOptions = DATA_BLOCK,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Find the best task groups with ETAP and write report.json and report.md.

    STL runs, one all-task run with affinity tracking, N sampled training groups,
    the ETAP gain predictor, exact selection of at most B groups, training of the
    chosen groups, and a report.
    """
    from negtransfer.data.folds import fold_validation_rows
    from negtransfer.jobs.grouping import GroupingOptions, check_labelled_splits, run_grouping
    from negtransfer.report.jsonio import write_json

    notes: list[str] = []
    config = training_options.config(device=device, gradient_aggregation=gradient_aggregation,
                                     model=model_options.choice())
    job = Job(replace(run_options, seed=seed, quiet=quiet, device=device), notes)
    ds = data_options.load(seed, MODEL_KINDS)
    check_model_on(ds, config, notes)
    config = fit_batch_size(ds, config, training_options.batch_size, notes)
    note_unused_balance(ds, config, notes)
    kinds = kinds_summary(ds, data_options.data, notes)
    if ds.n_tasks < 2:
        fail(f"group needs at least 2 tasks, got {ds.n_tasks} ({', '.join(ds.task_names)}); name more with --tasks")
    options = GroupingOptions(budget=budget, method=method, n_train_groups=train_groups, design=design, repeats=repeats,
                              rounds=1 if no_refine else rounds, per_round=per_round, max_runs=max_runs, kappa=kappa,
                              objective=objective, evaluate=evaluate, exhaustive=exhaustive,
                              gain_split=gain_split, affinity_every=affinity_every,
                              affinity_momentum=affinity_momentum, affinity_epochs=affinity_epochs,
                              chunk_size=chunk_size, use_measured=not predicted_only, trace_pairs=trace, audit=audit,
                              folds=folds, refit=refit, refit_epochs=refit_epochs)
    try:
        options.check(ds.n_tasks)
        if folds > 1:
            fold_validation_rows(ds, folds)  # every task must have a labelled row in every fold
        check_labelled_splits(ds, options)  # run_grouping's own check, before the job starts
    except ValueError as exc:
        fail(str(exc))
    from negtransfer.jobs.grouping_methods import get_method

    if config.gradient_aggregation != "sum" and get_method(method).measures_affinity:
        fail(f"--method {method} measures affinity on all-task runs trained with the summed gradient; "
             f"--gradient-aggregation {config.gradient_aggregation} works with the methods that need no affinity "
             f"(e.g. hoa, linear-surrogate, mtgnet), or compare it as a row: "
             f"negtransfer compare-grouping --surgery {config.gradient_aggregation}")
    grouping_notes(ds.n_tasks, budget, train_groups, evaluate, exhaustive, notes, method=method,
                   train_groups_given=option_given("train_groups"))
    job.start()
    from negtransfer.gains.divergence import DivergedError

    with job.training() as progress:
        try:
            result = run_grouping(ds, options, config, seed, job.store, executor=job.executor, progress=progress)
        except DivergedError as exc:
            fail(str(exc))
    report = result.report.with_command_line(kinds, notes)
    from negtransfer.report.markdown import write_group_report

    with job.writing():
        write_json(run_options.out / "report.json", report.to_dict())
        md = write_group_report(report, run_options.out)
    print_group_summary(report, run_options.out / "report.json", md)


def grouping_notes(n: int, budget: int, train_groups: int, evaluate: int, exhaustive: bool, notes: list,
                    method: str = "etap", train_groups_given: bool = True) -> None:
    """Say so when the job will use less than was asked for (it never fails for it).

    ``train_groups_given``: whether ``--train-groups`` was on the command line; its default (20) on a few tasks, or
    any value with ``--exhaustive`` (which trains every group anyway), is no request to adjust, so no note says so.
    """
    from math import comb

    from negtransfer.jobs.grouping_methods import get_method

    available = sum(comb(n, s) for s in range(2, n))  # groups of sizes 2..n-1
    spec = get_method(method)
    trained = min(spec.n_training_groups(n, train_groups), available)  # HOA: every pair; Ayman et al.: and more
    if available == 0 and train_groups_given:
        note(f"with {n} tasks no group lies between one task and all of them: only the all-task group is "
             f"trained and --train-groups {train_groups} is not used", notes)
    elif train_groups > available and spec.draws_training_groups and train_groups_given and not exhaustive:
        note(f"--train-groups {train_groups} is more than the {available} groups of 2..{n - 1} of the {n} tasks; "
             f"all {available} are trained (with the all-task group)", notes)
    if budget == 1 and n > 1:
        note("--budget 1: the only single group that covers every task is the all-task group, so no grouping is "
             "chosen: the report shows the all-task model against STL; give --budget 2 or more to choose groups",
             notes)
    if budget > n:
        note(f"--budget {budget} is more than the {n} tasks; a grouping never needs more groups than tasks, "
             f"so at most {n} are chosen", notes)
    if exhaustive and evaluate:
        note(f"--evaluate {evaluate} is ignored with --exhaustive, which measures every group", notes)
    elif evaluate > available - trained and available:
        left = available - trained
        note(f"--evaluate {evaluate}: only {left} held-out group(s) of 2..{n - 1} tasks are left besides the "
             f"{trained} training groups; " + ("all of them are measured" if left else
                                                "the prediction quality is not reported"), notes)



def print_group_summary(report: GroupingReport, json_path: Path, md_path: Path) -> None:
    """The console summary of a grouping job from its typed report."""
    from rich.console import Console
    from rich.markup import escape

    from negtransfer.report.markdown import (
        audit_verdict_line,
        fmt_loss,
        fmt_pct,
        fmt_pm,
        recommendation_label,
        refit_line,
    )

    console = Console()
    totals, se, gain_se = report.totals, report.losses.totals_se, report.losses.total_gain_se
    if report.diverged:
        console.print(f"[bold red]Diverged[/bold red]: left out of the gains and the selection: "
                      f"{escape(report.diverged)}", soft_wrap=True)
    if report.noise.verdict:
        console.print(f"[bold]Noise[/bold]: {report.noise.verdict}", soft_wrap=True)
    console.print("[bold]Chosen groups[/bold] (budget %d):" % report.budget)
    for g in report.selected_groups:
        console.print("  " + escape(" + ".join(g)))

    if report.comparison.decided_on != "audit" and not report.comparison.better_than_alternatives:
        # before the test totals, to which its "unless the test figures below say otherwise" points (it came after)
        console.print(f"[bold red]warning[/bold red]: {escape(report.comparison.verdict)} "
                      f"{escape(report.comparison.basis)}", soft_wrap=True)

    # ETAP eq. 1's sign: positive = the chosen groups' loss is lower. Each is the chosen groups' gain over the
    # reference it follows, said so ("chosen's gain"): "all-task 2.6518 (gain +1.0%)" read as the all-task model's
    # own gain over STL, which report.md's table gives (+0.5% there).
    def gain(reference: str, key: str) -> str:
        return fmt_pm(fmt_pct(1 - totals["selected"] / totals[reference]), gain_se.get(key), fmt_pct)

    spread = " \u00b1 s.e." if any(v == v for v in se.values()) else ""  # NaN (one repeat): no s.e.
    line = (f"total test loss{spread}: chosen {fmt_pm(fmt_loss(totals['selected']), se.get('selected'))} | "
            f"STL {fmt_pm(fmt_loss(totals['stl']), se.get('stl'))} (chosen's gain {gain('stl', 'selected')}) | "
            f"all-task {fmt_pm(fmt_loss(totals['all_tasks']), se.get('all_tasks'))} "
            f"(chosen's gain {gain('all_tasks', 'selected_vs_all_tasks')})")
    if report.optima is not None:
        line += f" | test oracle {fmt_loss(totals['optimal'])} (chosen's gain {fmt_pct(-report.optima.gap)})"
    console.print(line, soft_wrap=True)
    refit = refit_line(report)
    if refit is not None:
        console.print(escape(refit), soft_wrap=True)
    ref = report.refinement
    final = "; then a final selection among the measured groups" if ref.final_among_measured else ""
    console.print(f"rounds: {ref.rounds_run} ({ref.stopped}{final}); {ref.runs_used} runs, "
                  f"{ref.runs_vs_one_shot:.2f}x the one-shot protocol", soft_wrap=True)
    if report.comparison.decided_on == "audit":
        console.print(f"[bold]Recommended[/bold]: {escape(recommendation_label(report))}. "
                      f"{escape(report.comparison.verdict)}", soft_wrap=True)
        if verdict_line := audit_verdict_line(report):
            console.print(f"[bold]Audit verdict[/bold]: {escape(verdict_line)}", soft_wrap=True)
    pred = report.prediction
    if pred.pearson is not None:
        console.print(f"gain prediction on {pred.n_groups} held-out groups: Pearson {pred.pearson:.3f}, R^2 {pred.r2:.3f}")
    if report.timing is not None:
        console.print(f"time: {report.timing.summary()}", soft_wrap=True)
    console.print(f"report: {md_path}  data: {json_path}")
