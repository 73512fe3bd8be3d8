"""``negtransfer gains``: the gain of every task in each requested group (:mod:`negtransfer.jobs.gains`)."""

from __future__ import annotations

from dataclasses import replace
from typing import Optional

import typer

from negtransfer.cli.console import fail, note
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
from negtransfer.jobs.choices import MODEL_KINDS

RUNS_BLOCK = runs_block("runs/gains")  # --out ... --ray-address, --out defaulting to this folder


@with_option_blocks
def gains(
    groups: Optional[str] = typer.Option(None, "--groups", help="'all', 'random:N', or a file with one group per line (task names joined by '+').", show_default="random:16, or all where fewer groups exist"),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Group sizes for 'all' and 'random:N', e.g. 2-5 or 3.", show_default="2 to all tasks"),
    run_options: RunOptions = RUNS_BLOCK,
    chunk_size: int = ChunkSizeOpt,
    repeats: int = RepeatsOpt,
    folds: int = typer.Option(1, "--folds", min=1, help="Train every model on K folds of the training and validation rows (stratified per task; the same folds for every group): a gain is the mean of the repeats x folds paired gains. 1: the dataset's one split."),
    training_options: TrainingOptions = TRAINING_BLOCK,
    gradient_aggregation: str = GradientAggregationOpt,
    device: Device = DeviceOpt,
    model_options: ModelOptions = MODEL_BLOCK,
    data_options: DataOptions = DATA_BLOCK,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train STL for every task and MTL for each requested group; write gains.csv and gains.json.

    gain = (stl_test_loss - test_loss) / stl_test_loss (ETAP eq. 1): positive means
    the task does better in the group than alone, negative is negative transfer.
    """
    from negtransfer.jobs.gains import GainsOptions, default_groups, run_gains
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
    if groups is None:
        groups, fewer = default_groups(ds.n_tasks, sizes, spelling="--groups ")
        if fewer:
            note(fewer, notes)
    options = GainsOptions(groups=groups, sizes=sizes, repeats=repeats, chunk_size=chunk_size, folds=folds)
    try:
        options.requested_groups(ds.task_names, seed)
    except ValueError as exc:
        fail(str(exc))
    job.start()
    with job.training() as progress:
        report = run_gains(ds, options, config, seed, job.store, executor=job.executor, progress=progress,
                           notify=lambda message: note(message, notes))
    report = replace(report, task_kinds=kinds, notes=tuple(notes))
    frame = report.to_frame()
    with job.writing():
        frame.to_csv(run_options.out / "gains.csv", index=False)
        write_json(run_options.out / "gains.json", report.to_dict())
    negative = int((frame["gain"] < 0).sum()) if len(frame) else 0
    left_out = int(frame["gain"].isna().sum()) if len(frame) else 0
    diverged = (f"; {len(report.diverged)} model(s) diverged, {left_out} gain(s) left out (see the note)"
                if report.diverged else "")
    typer.echo(
        f"wrote {run_options.out / 'gains.csv'} ({len(frame)} rows: {len(report.groups)} groups; "
        f"{negative} task-in-group gains negative = negative transfer{diverged})"
    )
