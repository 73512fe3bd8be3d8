"""``negtransfer gains``: the gain of every task in each requested group (:mod:`negtransfer.jobs.gains`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from negtransfer.cli.console import fail, note
from negtransfer.cli.job import Job
from negtransfer.cli.options import (
    Batching,
    BatchingOpt,
    BatchSizeOpt,
    ChunkSizeOpt,
    DataOpt,
    DataOptions,
    DatasetOpt,
    Device,
    DeviceOpt,
    Encoder,
    EncoderOpt,
    EpochsOpt,
    Executor,
    ExecutorOpt,
    FeaturesOpt,
    GradientAggregationOpt,
    Impute,
    ImputeOpt,
    LabelOpt,
    LrOpt,
    ModelArgOpt,
    ModelOpt,
    ModelOptions,
    ModelVersionOpt,
    Optimizer,
    OptimizerOpt,
    OversampleOpt,
    PatienceOpt,
    Preset,
    PresetOpt,
    QuietOpt,
    RayAddressOpt,
    RepeatsOpt,
    RunOptions,
    SeedOpt,
    StoreOpt,
    TaskColumnOpt,
    TaskKindsOpt,
    TasksOpt,
    TrainingOptions,
    WorkersOpt,
    check_model_on,
    fit_batch_size,
    kinds_summary,
    note_unused_balance,
    out_option,
)
from negtransfer.jobs.choices import MODEL_KINDS

OutOpt = out_option("runs/gains")  # built once at import, like the shared options


def gains(
    groups: str = typer.Option("random:16", "--groups", help="'all', 'random:N', or a file with one group per line (task names joined by '+')."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Group sizes for 'all' and 'random:N', e.g. 2-5 or 3.", show_default="2 to all tasks"),
    out: Path = OutOpt,
    store: Optional[Path] = StoreOpt,
    executor: Executor = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    ray_address: Optional[str] = RayAddressOpt,
    chunk_size: int = ChunkSizeOpt,
    repeats: int = RepeatsOpt,
    folds: int = typer.Option(1, "--folds", min=1, help="Train every model on K folds of the training and validation rows (stratified per task; the same folds for every group): a gain is the mean of the repeats x folds paired gains. 1: the dataset's one split."),
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    lr: Optional[float] = LrOpt,
    optimizer: Optional[Optimizer] = OptimizerOpt,
    patience: Optional[int] = PatienceOpt,
    preset: Preset = PresetOpt,
    batching: Optional[Batching] = BatchingOpt,
    oversample: Optional[bool] = OversampleOpt,
    gradient_aggregation: str = GradientAggregationOpt,
    device: Device = DeviceOpt,
    encoder: Optional[Encoder] = EncoderOpt,
    model: Optional[str] = ModelOpt,
    model_version: Optional[str] = ModelVersionOpt,
    model_arg: Optional[list[str]] = ModelArgOpt,
    dataset: Optional[str] = DatasetOpt,
    data: Optional[Path] = DataOpt,
    tasks: Optional[str] = TasksOpt,
    features: Optional[str] = FeaturesOpt,
    task_column: Optional[str] = TaskColumnOpt,
    label: Optional[str] = LabelOpt,
    task_kinds: Optional[str] = TaskKindsOpt,
    impute: Optional[Impute] = ImputeOpt,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train STL for every task and MTL for each requested group; write gains.csv and gains.json.

    gain = (stl_test_loss - test_loss) / stl_test_loss (ETAP eq. 1): positive means
    the task does better in the group than alone, negative is negative transfer.
    """
    from dataclasses import replace

    from negtransfer.jobs.gains import GainsOptions, run_gains
    from negtransfer.report.jsonio import write_json

    notes: list[str] = []
    config = TrainingOptions(epochs, batch_size, lr, optimizer, patience, preset, batching, oversample).config(
        device=device, gradient_aggregation=gradient_aggregation,
        model=ModelOptions(encoder, model, model_version, model_arg).choice())
    job = Job(RunOptions(out, store, executor, workers, seed, quiet, ray_address, device=device), notes)
    ds = DataOptions(dataset, data, tasks, features, task_column, label, impute, task_kinds).load(seed, MODEL_KINDS)
    check_model_on(ds, config, notes)
    config = fit_batch_size(ds, config, batch_size, notes)
    note_unused_balance(ds, config, notes)
    kinds = kinds_summary(ds, data, notes)
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
        frame.to_csv(out / "gains.csv", index=False)
        write_json(out / "gains.json", report.to_dict())
    negative = int((frame["gain"] < 0).sum()) if len(frame) else 0
    left_out = int(frame["gain"].isna().sum()) if len(frame) else 0
    diverged = (f"; {len(report.diverged)} model(s) diverged, {left_out} gain(s) left out (see the note)"
                if report.diverged else "")
    typer.echo(
        f"wrote {out / 'gains.csv'} ({len(frame)} rows: {len(report.groups)} groups; "
        f"{negative} task-in-group gains negative = negative transfer{diverged})"
    )
