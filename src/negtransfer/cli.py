"""The ``negtransfer`` command line.

Heavy packages (torch, pandas, scikit-learn) are imported inside the commands,
so ``negtransfer --help`` answers at once.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Find which tasks help or hurt each other, and group them.",
)

# --------------------------------------------------------------------- options
DatasetOpt = typer.Option(None, "--dataset", help="Built-in dataset (see `negtransfer datasets`). Default: yeast.")
DataOpt = typer.Option(None, "--data", help="Your own .csv or .parquet file.")
TasksOpt = typer.Option(None, "--tasks", help="Comma-separated task names (label columns, or task-column values).")
FeaturesOpt = typer.Option(None, "--features", help="Comma-separated feature columns (default: all other columns).")
TaskColumnOpt = typer.Option(None, "--task-column", help="Column saying which task each row belongs to.")
LabelOpt = typer.Option(None, "--label", help="Label column, with --task-column.")
ImputeOpt = typer.Option(None, "--impute", help="Fill NaN features with the training 'mean' or 'median'.")
SeedOpt = typer.Option(0, "--seed", help="Fixes splits, initialisation and batch order.")
QuietOpt = typer.Option(False, "-q", "--quiet", help="No progress bars.")
StoreOpt = typer.Option(None, "--store", help="Run store (SQLite); default OUT/runs.sqlite.")
ExecutorOpt = typer.Option("local", "--executor", help="'local' (vectorised, in-process) or 'process' (process pool).")
WorkersOpt = typer.Option(None, "--workers", help="Processes for --executor process.")
ChunkSizeOpt = typer.Option(64, "--chunk-size", help="Models trained at once in one vectorised stack.")
EpochsOpt = typer.Option(None, "--epochs", help="Maximum epochs.")
BatchSizeOpt = typer.Option(None, "--batch-size")
LrOpt = typer.Option(None, "--lr")
OptimizerOpt = typer.Option(None, "--optimizer", help="'sgd' (momentum 0.9) or 'adam'.")
PatienceOpt = typer.Option(None, "--patience", help="Early-stopping patience in epochs.")


def _split_list(text: Optional[str]) -> Optional[list[str]]:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def load_dataset_from_options(
    dataset: Optional[str],
    data: Optional[Path],
    tasks: Optional[str],
    features: Optional[str],
    task_column: Optional[str],
    label: Optional[str],
    impute: Optional[str],
    seed: int,
):
    """The dataset named by the common command-line options, or a clean error."""
    if dataset and data:
        _fail("give either --dataset or --data, not both")
    task_list = _split_list(tasks)
    try:
        if data is not None:
            from negtransfer.data.files import dataset_from_file

            return dataset_from_file(
                data,
                tasks=task_list,
                features=_split_list(features),
                task_column=task_column,
                label_column=label,
                impute=impute,
                seed=seed,
            )
        from negtransfer.data.builtin import load_builtin

        return load_builtin(dataset or "yeast", seed=seed, tasks=task_list)
    except (ValueError, FileNotFoundError, ImportError, KeyError) as exc:
        _fail(str(exc))


def _train_config(epochs, batch_size, lr, optimizer, patience):
    from negtransfer.train.config import TrainConfig

    kwargs = {k: v for k, v in dict(max_epochs=epochs, batch_size=batch_size, lr=lr, optimizer=optimizer, patience=patience).items() if v is not None}
    try:
        return TrainConfig(**kwargs)
    except ValueError as exc:
        _fail(str(exc))


# -------------------------------------------------------------------- commands
@app.command()
def datasets() -> None:
    """List the built-in datasets with their sizes and licenses."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from negtransfer.data.builtin import list_builtin
    from negtransfer.data.timeseries import TIMESERIES_REGISTRY

    rows = list_builtin()
    for entry in TIMESERIES_REGISTRY.values():  # sequences: `negtransfer compare` only
        rows.append({"name": entry.name, "tasks": "", "kind": "series", "rows": "", "features": "",
                     "source": entry.source, "license": entry.license,
                     "available": "yes" if importlib.util.find_spec(entry.source) else f"no: {entry.install}",
                     "default": ""})
    table = Table(title="Built-in datasets", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)  # fits 80 columns
    columns = {"name": "name", "tasks": "tasks", "kind": "kind", "rows": "rows", "features": "feat.",
               "source": "source", "available": "installed"}
    for header in columns.values():
        table.add_column(header, no_wrap=True)
    for row in rows:
        name = f"{row['name']} (default)" if row["default"] else row["name"]
        installed = "yes" if row["available"] == "yes" else "no"
        table.add_row(name, *(str(row[c]) for c in ("tasks", "kind", "rows", "features", "source")), installed)
    console = Console()
    console.print(table)
    missing = [row for row in rows if row["available"] != "yes"]
    if missing:
        console.print("To install:")
        for row in missing:
            console.print(f"  {row['name']}: {row['available'][len('no: '):]}", soft_wrap=True)
    console.print("Licenses (details: docs/datasets.md):")
    for row in rows:
        console.print(f"  {row['name']}: {row['license']}", soft_wrap=True)


@app.command()
def gains(
    groups: str = typer.Option("random:16", "--groups", help="'all', 'random:N', or a file with one group per line (tasks joined by '+')."),
    sizes: Optional[str] = typer.Option(None, "--sizes", help="Group sizes for 'all'/'random:N', e.g. 2-5."),
    out: Path = typer.Option(Path("runs/gains"), "--out", help="Output folder."),
    store: Optional[Path] = StoreOpt,
    executor: str = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    chunk_size: int = ChunkSizeOpt,
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    lr: Optional[float] = LrOpt,
    optimizer: Optional[str] = OptimizerOpt,
    patience: Optional[int] = PatienceOpt,
    dataset: Optional[str] = DatasetOpt,
    data: Optional[Path] = DataOpt,
    tasks: Optional[str] = TasksOpt,
    features: Optional[str] = FeaturesOpt,
    task_column: Optional[str] = TaskColumnOpt,
    label: Optional[str] = LabelOpt,
    impute: Optional[str] = ImputeOpt,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train STL for every task and MTL for each requested group; write gains.csv/json.

    gain = (stl_test_loss - test_loss) / stl_test_loss (ETAP eq. 1): positive means
    the task does better in the group than alone, negative is negative transfer.
    """
    from negtransfer.gains.table import gains_frame
    from negtransfer.runs.executors import make_executor
    from negtransfer.runs.group_specs import parse_group_spec, parse_sizes
    from negtransfer.runs.runner import ensure_runs
    from negtransfer.runs.store import RunStore

    ds = load_dataset_from_options(dataset, data, tasks, features, task_column, label, impute, seed)
    config = _train_config(epochs, batch_size, lr, optimizer, patience)
    try:
        size_range = parse_sizes(sizes, ds.n_tasks)
        requested = parse_group_spec(groups, ds.task_names, size_range, seed)
        runner = make_executor(executor, workers)
    except ValueError as exc:
        _fail(str(exc))
    stl = [(t,) for t in range(ds.n_tasks)]
    mtl = [g for g in requested if len(g) > 1]
    out.mkdir(parents=True, exist_ok=True)
    run_store = RunStore(store or out / "runs.sqlite")
    stage = f"training {len(stl)} STL + {len(mtl)} group models"
    with _stage_progress(quiet) as progress:
        update = (lambda done, total: progress(stage, done, total)) if progress else None
        results = ensure_runs(ds, stl + mtl, config, seed, run_store, executor=runner, chunk_size=chunk_size, on_progress=update)
    frame = gains_frame(mtl, results, ds.task_names, [t.metric_name for t in ds.tasks])
    frame.to_csv(out / "gains.csv", index=False)
    payload = {
        "dataset": ds.name,
        "fingerprint": ds.fingerprint(),
        "seed": seed,
        "config": config.to_dict(),
        "tasks": list(ds.task_names),
        "stl": {
            ds.task_names[t]: {"test_loss": results[(t,)].test_loss[t], "test_metric": results[(t,)].test_metric[t]}
            for t in range(ds.n_tasks)
        },
        "gains": json.loads(frame.to_json(orient="records")),
    }
    (out / "gains.json").write_text(json.dumps(payload, indent=2))
    if not quiet:
        neg = int((frame["gain"] < 0).sum()) if len(frame) else 0
        typer.echo(
            f"wrote {out / 'gains.csv'} ({len(frame)} rows: {len(mtl)} groups; "
            f"{neg} task-in-group gains negative = negative transfer)"
        )


@app.command()
def group(
    budget: int = typer.Option(3, "--budget", help="At most B groups, together covering every task."),
    train_groups: int = typer.Option(20, "--train-groups", help="Sampled groups (sizes 2..n-1) whose gains are measured to fit the predictor."),
    evaluate: int = typer.Option(0, "--evaluate", help="Also measure M random held-out groups and report Pearson and R^2."),
    exhaustive: bool = typer.Option(False, "--exhaustive", help="Train every group; report the optimal grouping and the gap."),
    gain_split: str = typer.Option("validation", "--gain-split", help="Split whose gains fit the predictor: 'validation' (no test data used for choices) or 'test' (the paper's eq. 1)."),
    predicted_only: bool = typer.Option(False, "--predicted-only", help="Score the training groups by predictions too (the paper's selection); default: by their measured gains."),
    trace: int = typer.Option(0, "--trace", help="Plot the per-step affinity of this many strongest task pairs (ETAP Figure 7)."),
    affinity_every: int = typer.Option(8, "--affinity-every", help="Track affinity every k-th step of the all-task run (1 = every step; 8 was chosen by benchmarks/affinity_overhead.py)."),
    out: Path = typer.Option(Path("runs/group"), "--out", help="Output folder."),
    store: Optional[Path] = StoreOpt,
    executor: str = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    chunk_size: int = ChunkSizeOpt,
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    lr: Optional[float] = LrOpt,
    optimizer: Optional[str] = OptimizerOpt,
    patience: Optional[int] = PatienceOpt,
    dataset: Optional[str] = DatasetOpt,
    data: Optional[Path] = DataOpt,
    tasks: Optional[str] = TasksOpt,
    features: Optional[str] = FeaturesOpt,
    task_column: Optional[str] = TaskColumnOpt,
    label: Optional[str] = LabelOpt,
    impute: Optional[str] = ImputeOpt,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Find the best task groups with ETAP and write report.json and report.md.

    STL runs, one all-task run with affinity tracking, N sampled training groups,
    the ETAP gain predictor, exact selection of at most B groups, training of the
    chosen groups, and a report.
    """
    from negtransfer.jobs.grouping import GroupingOptions, run_grouping
    from negtransfer.runs.executors import make_executor
    from negtransfer.runs.store import RunStore

    ds = load_dataset_from_options(dataset, data, tasks, features, task_column, label, impute, seed)
    config = _train_config(epochs, batch_size, lr, optimizer, patience)
    options = GroupingOptions(budget=budget, n_train_groups=train_groups, evaluate=evaluate, exhaustive=exhaustive,
                              gain_split=gain_split, affinity_every=affinity_every, chunk_size=chunk_size,
                              use_measured=not predicted_only, trace_pairs=trace)
    try:
        options.check(ds.n_tasks)
        runner = make_executor(executor, workers)
    except ValueError as exc:
        _fail(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    run_store = RunStore(store or out / "runs.sqlite")
    with _stage_progress(quiet) as progress:
        result = run_grouping(ds, options, config, seed, run_store, executor=runner, progress=progress)
    report = result.report
    (out / "report.json").write_text(json.dumps(report, indent=2))
    from negtransfer.report.markdown import write_group_report

    md = write_group_report(report, out)
    if not quiet:
        _print_group_summary(report, out / "report.json", md)


@app.command()
def sources(
    target: str = typer.Option(..., "--target", help="The target task (a label column or a task-column value)."),
    alpha: int = typer.Option(5, "--alpha", help="Sources per sampled subset."),
    subsets: int = typer.Option(200, "--subsets", help="Subsets the surrogate is fitted on."),
    holdout: int = typer.Option(100, "--holdout", help="Further subsets for negative-transfer prediction."),
    loss: Optional[str] = typer.Option(None, "--loss", help="f(S): margin (default, classification), cross_entropy, zero_one, mse (regression)."),
    ridge: float = typer.Option(0.0, "--ridge", help="Ridge penalty of the surrogate (0 = least squares)."),
    no_affinity: bool = typer.Option(False, "--no-affinity", help="Skip the affinity-ranked baseline."),
    group_attribute: Optional[str] = typer.Option(None, "--group-attribute", help="Row attribute (e.g. race in tv16) for worst-group accuracy and parity gaps."),
    common_init: bool = typer.Option(False, "--common-init", help="Subset models share one initialisation (common random numbers: less noise in f(S))."),
    grid: str = typer.Option("paper", "--grid", help="Thresholds tried: 'paper' (-0.5..0.5 step 0.1) or 'all' (one per distinct selection)."),
    data_fraction: float = typer.Option(1.0, "--data-fraction", help="Subset models train on this fraction of the training rows (paper's speed-up: 0.4)."),
    steps_fraction: float = typer.Option(1.0, "--steps-fraction", help="Subset models get this fraction of the epoch budget (paper's speed-up: 0.2)."),
    threshold_by: str = typer.Option("validation", "--threshold-by", help="Choose gamma by the final models' target 'validation' loss (paper) or the training-free cross-fitted 'surrogate' criterion."),
    stl_repeats: int = typer.Option(1, "--stl-repeats", help="Mean of this many STL runs is the reference f(STL) that subsets are judged against."),
    exhaustive_pairs: str = typer.Option("auto", "--exhaustive-pairs", help="Baseline: best of all 1-2 source combinations; 'auto' (when k(k-1)/2 <= --max-pair-runs), 'on' or 'off'."),
    max_pair_runs: int = typer.Option(300, "--max-pair-runs", help="Pair models allowed for --exhaustive-pairs auto."),
    out: Path = typer.Option(Path("runs/sources"), "--out", help="Output folder."),
    store: Optional[Path] = StoreOpt,
    executor: str = ExecutorOpt,
    workers: Optional[int] = WorkersOpt,
    chunk_size: int = ChunkSizeOpt,
    epochs: Optional[int] = EpochsOpt,
    batch_size: Optional[int] = BatchSizeOpt,
    lr: Optional[float] = LrOpt,
    optimizer: Optional[str] = OptimizerOpt,
    patience: Optional[int] = PatienceOpt,
    dataset: Optional[str] = DatasetOpt,
    data: Optional[Path] = DataOpt,
    tasks: Optional[str] = TasksOpt,
    features: Optional[str] = FeaturesOpt,
    task_column: Optional[str] = TaskColumnOpt,
    label: Optional[str] = LabelOpt,
    impute: Optional[str] = ImputeOpt,
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Choose source tasks for a target with a surrogate model of its loss over source subsets.

    Writes report.json (relevance scores, threshold, selection, holdout F1 and
    Spearman, the target's test loss and metric under STL, all sources, the
    selection and the baselines) and report.md with plots.
    """
    from negtransfer.jobs.sources import SourceOptions, run_sources
    from negtransfer.report.sources import write_sources_report
    from negtransfer.runs.executors import make_executor
    from negtransfer.runs.store import RunStore

    ds = load_dataset_from_options(dataset, data, tasks, features, task_column, label, impute, seed)
    config = _train_config(epochs, batch_size, lr, optimizer, patience)
    options = SourceOptions(target=target, alpha=alpha, n_subsets=subsets, holdout=holdout, loss=loss,
                            ridge=ridge, affinity_baseline=not no_affinity, chunk_size=chunk_size,
                            data_fraction=data_fraction, steps_fraction=steps_fraction, grid=grid,
                            group_attribute=group_attribute, common_init=common_init,
                            exhaustive_pairs=exhaustive_pairs, max_pair_runs=max_pair_runs,
                            threshold_by=threshold_by, stl_repeats=stl_repeats)
    try:
        options.check(ds)
        runner = make_executor(executor, workers)
    except ValueError as exc:
        _fail(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    run_store = RunStore(store or out / "runs.sqlite")
    with _stage_progress(quiet) as progress:
        report = run_sources(ds, options, config, seed, run_store, executor=runner, progress=progress)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    md = write_sources_report(report, out)
    if not quiet:
        tl = report["test_loss"]
        typer.echo(f"target {report['target']}: selected {len(report['selected'])} of {report['n_sources']} sources "
                   f"(threshold {report['threshold']:.3g}): {', '.join(report['selected']) or 'none'}")
        typer.echo("test loss: " + " | ".join(f"{k} {v:.4f}" for k, v in tl.items()))
        h = report["holdout"]
        if h.get("n"):
            typer.echo(f"holdout: F1 (minority class) {h['f1']:.3f}, Spearman {h['spearman']:.3f}")
        typer.echo(f"report: {md}")


@app.command()
def compare(
    dataset: str = typer.Option(..., "--dataset", help="Dataset (built-in, e.g. heart-hospitals, digit-domains)."),
    models: str = typer.Option(..., "--models", help="Comma-separated model names, e.g. stl,bmtl,vmtl."),
    runs: int = typer.Option(3, "--runs", help="Runs; run r uses seed + r for split, subsample and model."),
    train_fraction: Optional[float] = typer.Option(None, "--train-fraction", help="Share of each task's rows used for training (domains data: the VMTL paper's 0.05..0.6)."),
    iterations: Optional[int] = typer.Option(None, "--iterations", help="Training iterations per model (default: the model family's)."),
    fgsm: Optional[str] = typer.Option(None, "--fgsm", help="Comma-separated FGSM noise levels, e.g. 0.05,0.1 (adds fgsm_accuracy@eps)."),
    settings: Optional[str] = typer.Option(None, "--set", help="Comma-separated KEY=VALUE training settings for the model family (VMTL: VariationalConfig fields, e.g. kl_w_warmup_step=1e-4)."),
    out: Path = typer.Option(Path("runs/compare"), "--out", help="Output folder."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads (small models run fastest on one)."),
    seed: int = SeedOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train each named model for R runs and write results.csv and report.md (mean ± s.e. per task).

    results.csv has columns model, task, run, metric, value; report.md has one
    table per metric in the paper's layout, with cells below the model's
    single-task counterpart marked.
    """
    from negtransfer.jobs.compare import run_compare, write_outputs

    names = _split_list(models) or []
    epsilons: list[float] = []
    for text in _split_list(fgsm) or []:
        try:
            epsilons.append(float(text))
        except ValueError:
            _fail(f"--fgsm takes numbers, got {text!r}")
    if runs < 1:
        _fail(f"--runs must be at least 1, got {runs}")
    if iterations is not None and iterations < 1:
        _fail(f"--iterations must be at least 1, got {iterations}")
    config: dict = {}
    for item in _split_list(settings) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            _fail(f"--set takes KEY=VALUE pairs, got {item!r}")
        try:
            config[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            config[key.strip()] = value
    options = {"iterations": iterations, "fgsm_epsilons": epsilons, "config": config}
    if threads < 1:
        _fail(f"--threads must be at least 1, got {threads}")
    import torch

    torch.set_num_threads(threads)
    try:
        with _stage_progress(quiet) as progress:
            result = run_compare(dataset, names, runs=runs, seed=seed, train_fraction=train_fraction,
                                 options=options, progress=progress)
    except (ValueError, ImportError, KeyError) as exc:
        _fail(str(exc))
    csv_path, md_path = write_outputs(result, out)
    if not quiet:
        from negtransfer.jobs.compare import summary_table

        metric = "accuracy" if any(r["metric"] == "accuracy" for r in result.rows) else result.rows[0]["metric"]
        for name, cells in summary_table(result, metric).items():
            mean, se = cells.get("average", (float("nan"), float("nan")))
            typer.echo(f"{name:>22}: average {metric} {mean:.4f} ± {se:.4f}")
        typer.echo(f"wrote {csv_path} and {md_path}")


@contextmanager
def _stage_progress(quiet: bool):
    """One progress bar per stage of a job: ``progress(stage, done, total)``."""
    if quiet:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn()) as bar:
        stages: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in stages:
                stages[stage] = bar.add_task(stage, total=total)
            bar.update(stages[stage], completed=done, total=total)

        yield progress


def _print_group_summary(report: dict, json_path: Path, md_path: Path) -> None:
    from rich.console import Console

    console = Console()
    totals = report["totals"]
    console.print("[bold]Chosen groups[/bold] (budget %d):" % report["budget"])
    for g in report["selected_groups"]:
        console.print("  " + " + ".join(g))
    line = (f"total test loss: chosen {totals['selected']:.4f} | STL {totals['stl']:.4f} "
            f"({(totals['selected'] / totals['stl'] - 1):+.1%}) | all-task {totals['all_tasks']:.4f} "
            f"({(totals['selected'] / totals['all_tasks'] - 1):+.1%})")
    if "optimal" in totals:
        line += f" | optimal {totals['optimal']:.4f} (gap {report['optimal']['gap']:+.1%})"
    console.print(line)
    pred = report["prediction"]
    if pred["pearson"] is not None:
        console.print(f"gain prediction on {pred['n_groups']} held-out groups: Pearson {pred['pearson']:.3f}, R^2 {pred['r2']:.3f}")
    console.print(f"report: {md_path}  data: {json_path}")


def main() -> None:  # pragma: no cover - entry point
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
