"""``negtransfer compare``: train named models for R runs and tabulate their metrics (:mod:`negtransfer.jobs.compare`)."""

from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import typer

from negtransfer.cli.console import fail
from negtransfer.cli.job import Job
from negtransfer.cli.options import (
    COMPARE_TRAINING_BLOCK,
    DATA_BLOCK,
    RUNS,
    TRAINING,
    DataOptions,
    QuietOpt,
    RunOptions,
    SeedOpt,
    TrainingOptions,
    fgsm_levels,
    parse_settings,
    runs_block,
    split_list,
    with_option_blocks,
)

if TYPE_CHECKING:
    from negtransfer.runs.store_info import FitProgress

RUNS_BLOCK = runs_block("runs/compare")  # --out ... --ray-address, --out defaulting to this folder

#: Seconds between two redraws of the fits in flight below compare's progress bar.
IN_FLIGHT_REFRESH_SECONDS = 5.0


@with_option_blocks
def compare(
    models: str = typer.Option(..., "--models", help="Comma-separated model names, e.g. stl,bmtl,vmtl (the models "
                               "for the dataset's kind are listed when a name is wrong)."),
    runs: int = typer.Option(3, "--runs", min=1, help="Runs; run r uses seed + r for split, subsample and model."),
    train_fraction: Optional[float] = typer.Option(None, "--train-fraction", help="Share of each task's rows used for training (domains data: the VMTL paper's 0.05..0.6).", show_default="all training rows"),
    fgsm: Optional[str] = typer.Option(None, "--fgsm", help="Comma-separated FGSM noise levels, e.g. 0.05,0.1 (adds fgsm_accuracy@eps; VMTL family)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", min=1, help="Training iterations per model (VMTL family; for the TP-AMTL family the same as --epochs).", show_default="the model family's", rich_help_panel=TRAINING),
    training: TrainingOptions = COMPARE_TRAINING_BLOCK,
    baselines: str = typer.Option("ours", "--baselines", help="Single-task baselines report.md marks and pairs "
                                  "against: ours (stl-lstm, stl, vstl ...), paper (the public code's, e.g. "
                                  "stl-lstm-public for TP-AMTL) or both; paper and both add paired differences "
                                  "(mean ± s.e. over runs). Run the baselines too (--models)."),
    select: Optional[str] = typer.Option(None, "--select-on-validation", help="A grid of model options, e.g. "
                                         "\"hidden=16,32,64;dropout=0.1,0.3,0.5\": every model (the baselines too) "
                                         "is trained with each setting in every run and keeps, per run, the one with "
                                         "the best mean validation AUROC over tasks (TP-AMTL family); report.md says "
                                         "which, selection.csv has every setting's scores.", rich_help_panel=TRAINING),
    settings: Optional[str] = typer.Option(None, "--set", help="Comma-separated KEY=VALUE training settings for the model family (VMTL: VariationalConfig fields, e.g. kl_w_warmup_step=1e-4; TP-AMTL: TemporalTrainConfig fields, e.g. mc_samples=5).", rich_help_panel=TRAINING),
    run_options: RunOptions = RUNS_BLOCK,
    threads: int = typer.Option(1, "--threads", min=1, help="torch CPU threads per model (small models run fastest on one).", rich_help_panel=RUNS),
    data_options: DataOptions = DATA_BLOCK,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train each named model for R runs and write results.csv, report.md and report.json.

    Data: domains (per-task rows over one label space: heart-hospitals,
    digit-domains, or --data FILE --task-column --label) for the VMTL family;
    time series (pbcseq, nafld, or --data with a PhysioNet 2012 folder) and
    binary tables (mnist-variation) for the TP-AMTL family. Runs go through the
    run store like every command: a rerun (also after a kill) trains only what
    is missing and writes the same results.csv.
    results.csv has columns model, task, run, metric, value; report.md has one
    table per metric in the paper's layout (mean ± s.e. per task), with cells
    below the model's single-task counterpart marked. The TP-AMTL family adds
    the kept checkpoint's validation AUROC and loss (metrics val_auroc,
    val_loss) to results.csv; --select-on-validation chooses model options by
    them.
    """
    from negtransfer.jobs.compare import BASELINE_CHOICES, CompareOptions, parse_selection_grid, run_compare
    from negtransfer.models.base import FitOptions
    from negtransfer.report.compare import write_compare_outputs

    notes: list[str] = []
    if baselines not in BASELINE_CHOICES:
        fail(f"--baselines must be one of {', '.join(BASELINE_CHOICES)}, got {baselines!r}")
    training.check()
    fit = FitOptions(epochs=training.epochs, iterations=iterations, batch_size=training.batch_size, lr=training.lr,
                     optimizer=training.optimizer, patience=training.patience, settings=parse_settings(settings),
                     fgsm_epsilons=tuple(fgsm_levels(fgsm)))
    try:
        options = CompareOptions(models=tuple(split_list(models) or ()), runs=runs, train_fraction=train_fraction,
                                 fit=fit, threads=threads, select_on_validation=parse_selection_grid(select))
        options.check()
    except ValueError as exc:
        fail(str(exc))
    job = Job(replace(run_options, seed=seed, quiet=quiet, threads=threads), notes)
    load = data_options.loader(kinds=None)
    import torch

    torch.set_num_threads(threads)
    job.start()
    try:
        with job.training() as progress, in_flight(progress, job.store) as shown:
            report = run_compare(load, data_options.name, options, seed, job.store, executor=job.executor,
                                 progress=shown)
    except (ValueError, ImportError, KeyError, FileNotFoundError) as exc:
        fail(str(exc))
    report.notes = notes
    report.baselines = baselines
    with job.writing():
        csv_path, md_path, json_path = write_compare_outputs(report, run_options.out)
    _echo_summary(report)
    if report.reused:
        typer.echo(f"{report.reused} of {report.reused + report.trained} model runs were in the run store")
    typer.echo(f"wrote {csv_path}, {md_path} and {json_path}")


def fit_in_flight_text(fit: FitProgress) -> str:
    """``tp-amtl@v2 run 2 epoch 109/2,000 (about 1 h 10 min left)``: one fit still training (a VMTL fit counts
    evaluation rounds: ``round 3/150``; a unit's fits after its first add ``fit i``)."""
    from negtransfer.cli.store_info import time_left

    unit = fit.label or f"{fit.digest[:8]}…"
    if fit.fit:
        unit += f" fit {fit.fit}"
    where = f"{'epoch' if fit.unit == 'epoch' else 'round'} {fit.rounds or 0:,}/{fit.max_rounds or 0:,}"
    return f"{unit} {where} ({time_left(fit)})"


def in_flight_text(fits: tuple[FitProgress, ...]) -> str:
    """What compare shows below its progress bar while fits save their state: one line per fit in flight,
    ``in flight: tp-amtl@v2 run 2 epoch 109/2,000 (about 1 h 3 min left)`` (empty without any), by unit name (runs
    in number order), then fit."""
    def order(fit: FitProgress) -> tuple:
        name = fit.label or fit.digest
        return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)), fit.fit

    return "\n".join(f"in flight: {fit_in_flight_text(fit)}" for fit in sorted(fits, key=order))


class InFlightProgress:
    """compare's ``progress(stage, done, total)`` with the fits in flight below the bar, redrawn every
    ``every`` seconds by a thread of its own while it is entered (``with``).

    A unit counts in the bar only once it is stored (a TP-AMTL unit at 2000 epochs trains for hours); its fits
    save their state every minute beside the run store (:mod:`negtransfer.train.checkpoint`), also from the
    workers of ``--executor process``, so the folder is read
    (:class:`~negtransfer.runs.store_info.FitWatcher`: only states written since the last redraw). What is
    computed and stored does not change.

    Parameters
    ----------
    progress : callable
        The console's ``progress(stage, done, total, detail="")`` (:func:`negtransfer.cli.console.stage_progress`).
    checkpoints : Path
        The folder beside the job's run store.
    since : float, optional
        Seconds since the epoch; states saved before are not shown (default: now).
    every : float
        Seconds between redraws (:data:`IN_FLIGHT_REFRESH_SECONDS`).
    """

    def __init__(self, progress: Callable[..., None], checkpoints: Path, since: float | None = None,
                 every: float = IN_FLIGHT_REFRESH_SECONDS):
        from negtransfer.runs.store_info import FitWatcher

        self.progress, self.every = progress, float(every)
        self.watcher = FitWatcher(checkpoints, time.time() if since is None else since)
        self.last: tuple[str, int, int] | None = None  # the latest (stage, done, total)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self.last = (stage, done, total)
            self._draw()

    def redraw(self) -> None:
        """Read the fits in flight again and redraw the latest stage (nothing before the first report)."""
        with self._lock:
            self._draw()

    def _draw(self) -> None:
        if self.last is not None:
            stage, done, total = self.last
            self.progress(stage, done, total, detail=in_flight_text(self.watcher.running()) if done < total else "")

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.redraw()

    def __enter__(self) -> "InFlightProgress":
        self._thread = threading.Thread(target=self._run, name="negtransfer-fits-in-flight", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@contextmanager
def in_flight(progress: Callable[..., None] | None, store):
    """``progress`` with the fits in flight beside the file-backed run store ``store`` below its bar
    (:class:`InFlightProgress`); None (``-q``) stays None, and an in-memory store has no fits to show."""
    from negtransfer.runs.runner import checkpoint_root

    root = checkpoint_root(store)
    if progress is None or root is None:
        yield progress
        return
    with InFlightProgress(progress, root) as shown:
        yield shown


def _plus_minus(mean: float, se: float, spec: str, runs: int) -> str:
    """``mean ± se`` in format ``spec``; without a standard error (NaN, as over a single run) the mean and why,
    not ``± nan``."""
    import math

    if math.isfinite(se):
        return f"{mean:{spec}} ± {se:.4f}"
    return f"{mean:{spec}} (no s.e.: " + ("one run; --runs 2 or more gives one)" if runs == 1 else "not defined)")


def _echo_summary(report) -> None:
    """Each model's average of the headline metric, then (``--baselines paper|both``) its paired differences."""
    from negtransfer.report.compare import baseline_differences

    metrics = report.metrics()
    metric = "accuracy" if "accuracy" in metrics else metrics[0]
    for name, cells in report.summary(metric).items():
        mean, se = cells.get("average", (float("nan"), float("nan")))
        typer.echo(f"{name:>22}: average {metric} {_plus_minus(mean, se, '.4f', report.runs)}")
    for name, runs in (report.selection.chosen if report.selection else {}).items():
        typer.echo(f"{name:>22}: chosen on validation, per run: " + "; ".join(runs.values()))
    if report.baselines == "ours":
        return
    for d in baseline_differences(report, metric):
        difference = _plus_minus(d["mean"], d["se"], "+.4f", report.runs)
        typer.echo(f"{d['model']:>22}: minus {d['baseline']} ({d['kind']}) {difference}, "
                   f"better in {d['better']}/{d['runs']} runs")
