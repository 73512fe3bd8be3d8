"""``negtransfer compare-grouping``: grouping methods side by side (:mod:`negtransfer.jobs.grouping_comparison`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

from negtransfer.cli.console import fail
from negtransfer.cli.job import Job
from negtransfer.cli.options import (
    DATA_BLOCK,
    MODEL_BLOCK,
    TRAINING_BLOCK,
    ChunkSizeOpt,
    DataOptions,
    Device,
    DeviceOpt,
    ModelOptions,
    QuietOpt,
    RepeatsOpt,
    RunOptions,
    TrainingOptions,
    check_model_on,
    note_split_warnings,
    runs_block,
    split_list,
    with_option_blocks,
)
from negtransfer.jobs.choices import MODEL_KINDS

RUNS_BLOCK = runs_block("runs/compare-grouping")  # --out ... --ray-address, --out defaulting to this folder


@with_option_blocks
def compare_grouping(
    methods: str = typer.Option("etap,tag,hoa,linear-surrogate,mtgnet,ayman,grad-tae", "--methods", help="Comma-separated grouping methods (see `negtransfer group --help`)."),
    budgets: str = typer.Option("2,3,4", "--budgets", help="Comma-separated budgets B."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated seeds (each one splits the data and seeds the runs)."),
    train_groups: int = typer.Option(10, "--train-groups", min=1, help="Training groups before each method's first fit (HOA trains every pair instead; ayman every pair and these)."),
    rounds: int = typer.Option(5, "--rounds", min=1, help="Selection rounds of each job (1 = the one-shot protocol)."),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="Train every group: gaps to the test oracle and prediction quality on every group."),
    evaluate: int = typer.Option(30, "--evaluate", min=0, help="Without --exhaustive: random held-out groups for the prediction quality."),
    folds: int = typer.Option(1, "--folds", min=1, help="Cross-validated gains in every job (as `negtransfer group --folds`): every run trains on K folds of the training and validation rows. 1: the dataset's one split."),
    audit: float = typer.Option(0.0, "--audit", min=0.0, max=0.99, help="Every job holds back this share of the non-test rows as audit rows and decides its verdict and fallback on them (as `negtransfer group --audit`). 0: no audit rows."),
    surgery: str = typer.Option("pcgrad", "--surgery", help="Comma-separated gradient aggregators: the all-task model trained with each is a row beside the groupings (ETAP Section D.3): 'pcgrad', 'mgda', 'imtl-g', 'aligned-mtl', 'graddrop', 'sum'; 'none' for no such row."),
    run_options: RunOptions = RUNS_BLOCK,
    chunk_size: int = ChunkSizeOpt,
    repeats: int = RepeatsOpt,
    training_options: TrainingOptions = TRAINING_BLOCK,
    device: Device = DeviceOpt,
    model_options: ModelOptions = MODEL_BLOCK,
    data_options: DataOptions = DATA_BLOCK,
    quiet: bool = QuietOpt,
) -> None:
    """Compare grouping methods on the same data, seeds and runs; write comparison.csv and report.md.

    Every method runs the grouping job at every budget and seed on one run store
    (runs are shared between methods); the report has, per budget, each method's
    summed test loss (mean ± s.e. over seeds) against STL, the all-task model
    and the test oracle (with --exhaustive), its prediction quality, runs and
    time, paired Wilcoxon tests of ETAP against each method, and a plot of the
    loss by budget.
    """
    from negtransfer.data.folds import fold_validation_rows
    from negtransfer.jobs.grouping import GroupingOptions, check_labelled_splits
    from negtransfer.jobs.grouping_comparison import compare_grouping_methods, summarise, surgery_training_rows
    from negtransfer.jobs.grouping_methods import method_names
    from negtransfer.report.grouping_comparison import write_comparison_report

    names = split_list(methods) or []
    unknown = [m for m in names if m not in method_names()]
    if not names or unknown:
        fail(f"--methods takes comma-separated methods from {', '.join(method_names())}; got {methods!r}")
    try:
        budget_list = [int(b) for b in split_list(budgets) or []]
        seed_list = [int(x) for x in split_list(seeds) or []]
    except ValueError:
        fail(f"--budgets and --seeds take comma-separated whole numbers, got {budgets!r} and {seeds!r}")
    if not budget_list or min(budget_list) < 1 or not seed_list or min(seed_list) < 0:
        fail("--budgets needs numbers >= 1 and --seeds numbers >= 0, at least one of each")
    aggregators = parse_surgery(surgery)
    notes: list[str] = []
    config = training_options.config(device=device, model=model_options.choice())
    job = Job(replace(run_options, seed=seed_list[0], quiet=quiet, device=device), notes)
    first = data_options.load(seed_list[0], MODEL_KINDS)
    note_split_warnings(first, data_options.data, notes)  # (the other commands: through kinds_summary)
    check_model_on(first, config, notes)
    options = GroupingOptions(n_train_groups=train_groups, repeats=repeats, rounds=rounds, exhaustive=exhaustive,
                              evaluate=0 if exhaustive else evaluate, chunk_size=chunk_size, folds=folds, audit=audit)
    cache = {seed_list[0]: first}

    def load(seed):
        if seed not in cache:
            cache[seed] = data_options.load(seed, MODEL_KINDS)
        return cache[seed]

    try:
        options.check(first.n_tasks)
        for seed in seed_list:  # run_grouping's own checks, before the job starts (each seed draws its own split)
            if folds > 1:
                fold_validation_rows(load(seed), folds)  # every task must have a labelled row in every fold
            check_labelled_splits(load(seed), options)
        if aggregators and (folds > 1 or audit > 0):  # (without either: the dataset's one split, as every row)
            notes.append(surgery_training_rows(first, options, seed_list[0]))
    except ValueError as exc:
        fail(str(exc))
    job.start()

    with job.training() as progress:
        rows = compare_grouping_methods(load, names, budget_list, seed_list, options, config, lambda s: job.store,
                                        executor=job.executor, progress=progress, surgery=aggregators)
        summary = summarise(rows, reference=names[0])
        md = write_comparison_report(rows, summary, run_options.out, reference=names[0], dataset=first.name)
        record_notes(md, notes)
    # the change of the loss, not a gain: negative is better, the opposite sign of `group`'s gains; said so once
    typer.echo("summed test loss of each method's chosen groups, and its relative change against STL's "
               "(negative = lower loss = better):")
    for (method, budget), cell in summary.cells.items():
        mean, se, _ = cell["vs_stl"]
        typer.echo(f"{method:>17} B={budget}: summed test loss {cell['selected'].mean:.4f} ({mean:+.2%} vs STL"
                   + (f" ± {se:.2%})" if se is not None else ")"))
    typer.echo(f"wrote {run_options.out / 'comparison.csv'} and {md}")


def record_notes(report: Path, notes: list[str]) -> None:
    """Append the command's ``note:`` lines (e.g. a model trained one at a time) to ``report`` as a Notes section,
    as the group job keeps them in its report."""
    if notes:
        with report.open("a") as handle:
            handle.write("\n## Notes\n\n" + "".join(f"- {line}\n" for line in notes))


def parse_surgery(text: str) -> list[str]:
    """The aggregations named by ``--surgery`` ('none': no row), or one error line listing the choices."""
    from negtransfer.train.config import GRADIENT_AGGREGATIONS

    names = split_list(text) or []
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in GRADIENT_AGGREGATIONS]
    if not names or unknown:
        fail(f"--surgery takes comma-separated gradient aggregators from {', '.join(GRADIENT_AGGREGATIONS)}, "
             f"or 'none'; got {text!r}")
    return list(dict.fromkeys(names))

