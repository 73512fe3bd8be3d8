"""``negtransfer compare``: train named models for R runs and tabulate per-task metrics.

One command compares models from several families (VMTL on domains-as-tasks
data, TP-AMTL on clinical time series, ...). Each family registers its models
from its own *provider module*; this module knows nothing model-specific.

Adding models
-------------
1. Write a module (e.g. ``negtransfer/nn/amtl_registry.py``) that calls
   :func:`register_model` at import time, once per model::

       from negtransfer.jobs.compare import ModelSpec, register_model

       def _fit_evaluate(dataset, seed, options):
           ...                                  # train on dataset's train rows, choose on validation
           return {"auroc": {"task a": 0.81, "task b": 0.77, "average": 0.79}}

       register_model(ModelSpec(name="tp-amtl", data_kinds=("time-series",),
                                fit_evaluate=_fit_evaluate, stl_counterpart="stl-retain",
                                description="TP-AMTL (Nguyen et al. 2021)"))

   ``fit_evaluate(dataset, seed, options) -> {metric: {task: value}}`` gets the
   prepared dataset of one run, that run's seed and the command's options
   (``iterations``, ``fgsm_epsilons``, ``train_fraction``; ignore the ones you
   do not use). Return test-split metrics; include an ``"average"`` task if you
   want one in the report (it is computed as the mean over tasks otherwise).
2. Add the module's dotted name to :data:`PROVIDER_MODULES`. Providers are
   imported lazily, the first time the registry is read.
3. If the family has its own datasets that :func:`negtransfer.data.builtin.load_builtin`
   does not know, call :func:`register_dataset` (name -> ``loader(seed)``), and
   give their objects a ``data_kind`` attribute or ``info["data_kind"]``.

Model names may repeat across data kinds (``stl`` for domains and for time
series): the dataset's kind picks the entry.

Outputs (:func:`run_compare`, :func:`write_outputs`)
    ``results.csv`` with columns ``model, task, run, metric, value`` (one row per
    run, task and metric; ``task = "average"`` for the mean over tasks) and
    ``report.md``: one table per metric in the layout of the VMTL paper's
    tables, rows = models, columns = tasks and the average, cells = mean ±
    standard error over runs; a cell is marked ``↓`` when the model's mean is
    below that of its STL counterpart (``stl_counterpart``) on that task.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "DATA_KINDS",
    "ModelSpec",
    "PROVIDER_MODULES",
    "config_from_options",
    "data_kind",
    "model_names",
    "prepare_dataset",
    "register_dataset",
    "register_model",
    "report_markdown",
    "resolve_models",
    "run_compare",
    "write_outputs",
]

#: Modules that register models with :func:`register_model` when imported.
PROVIDER_MODULES: tuple[str, ...] = ("negtransfer.nn.vmtl_registry", "negtransfer.nn.amtl_registry")

#: Data kinds: "domains" (per-task rows, one label space, see
#: negtransfer.data.domains), "multi-task" (any other MultiTaskDataset),
#: "time-series" (set by the dataset itself).
DATA_KINDS = ("domains", "multi-task", "time-series")

#: Metrics where lower is better (the STL marker flips for them).
LOWER_IS_BETTER = ("mse", "loss", "seconds_per_iteration")


@dataclass(frozen=True)
class ModelSpec:
    """One model the compare command can run.

    Parameters
    ----------
    name : str
        What ``--models`` calls it.
    data_kinds : tuple of str
        Kinds of dataset it accepts (see :data:`DATA_KINDS`).
    fit_evaluate : callable
        ``fit_evaluate(dataset, seed, options) -> {metric: {task: value}}``.
    stl_counterpart : str or None
        The single-task model its cells are compared with in the report.
    description : str
    """

    name: str
    data_kinds: tuple[str, ...]
    fit_evaluate: Callable[[Any, int, Mapping[str, Any]], dict[str, dict[str, float]]]
    stl_counterpart: str | None = None
    description: str = ""


_MODELS: dict[str, list[ModelSpec]] = {}
_DATASETS: dict[str, Callable[[int], Any]] = {}
_LOADED = {"providers": False}


def register_model(spec: ModelSpec) -> None:
    """Add a model (replacing an entry of the same name that accepts the same kinds)."""
    entries = [s for s in _MODELS.get(spec.name, []) if not set(s.data_kinds) & set(spec.data_kinds)]
    _MODELS[spec.name] = entries + [spec]


def register_dataset(name: str, loader: Callable[[int], Any]) -> None:
    """Make ``--dataset name`` load ``loader(seed)`` instead of a built-in dataset."""
    _DATASETS[name] = loader


def _load_providers() -> None:
    if _LOADED["providers"]:
        return
    _LOADED["providers"] = True
    for module in PROVIDER_MODULES:
        importlib.import_module(module)


def config_from_options(config_class: type, options: Mapping[str, Any] | None, family: str) -> Any:
    """The training config of one model family from ``compare``'s ``--set KEY=VALUE`` settings.

    Parameters
    ----------
    config_class : dataclass type
        The family's training configuration (e.g. ``VariationalConfig``).
    options : mapping, optional
        ``compare``'s options; ``options["config"]`` holds the ``--set`` pairs.
    family : str
        Named in the error for an unknown setting.

    Raises
    ------
    ValueError
        A setting that is not a field of ``config_class``; the message lists the fields.
    """
    settings = dict((options or {}).get("config") or {})
    fields = config_class.__dataclass_fields__
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise ValueError(f"unknown {family} training setting(s) {', '.join(unknown)}; "
                         f"the settings are: {', '.join(sorted(fields))}")
    defaults = config_class()
    for key, value in settings.items():
        settings[key] = _setting_value(key, value, getattr(defaults, key))
    return config_class(**settings)


def _setting_value(key: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the field's default (bool from true/false; int or float from numbers)."""
    if isinstance(default, bool):
        text = str(value).strip().lower()
        if isinstance(value, bool) or text in ("true", "false", "1", "0"):
            return value if isinstance(value, bool) else text in ("true", "1")
        raise ValueError(f"setting {key} takes true or false, got {value!r}")
    if isinstance(default, (int, float)) or default is None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            if default is None and value is None:
                return None
            raise ValueError(f"setting {key} takes a number, got {value!r}")
        if isinstance(default, int) and not float(value).is_integer():
            raise ValueError(f"setting {key} takes a whole number, got {value!r}")
        return int(value) if isinstance(default, int) else value
    return value


def model_names(kind: str | None = None) -> list[str]:
    """Registered model names (only those accepting ``kind`` if given), in registration order."""
    _load_providers()
    return [n for n, specs in _MODELS.items() if kind is None or any(kind in s.data_kinds for s in specs)]


def data_kind(dataset: Any) -> str:
    """The kind of a dataset: its ``data_kind`` attribute or ``info["data_kind"]``, else inferred.

    A :class:`~negtransfer.data.dataset.MultiTaskDataset` with per-task rows and
    classification tasks that share one class list is ``"domains"``; any other
    one is ``"multi-task"``.
    """
    kind = getattr(dataset, "data_kind", None) or getattr(dataset, "info", {}).get("data_kind")
    if kind:
        return str(kind)
    tasks = getattr(dataset, "tasks", ())
    if (
        getattr(dataset, "row_task", None) is not None
        and tasks
        and all(t.kind in ("multiclass", "binary") for t in tasks)
        and len({t.classes for t in tasks}) == 1
    ):
        return "domains"
    return "multi-task"


def resolve_models(names: Sequence[str], kind: str) -> list[ModelSpec]:
    """The specs for ``names`` on data of ``kind``.

    Raises
    ------
    ValueError
        Unknown names, or names with no entry for ``kind``; the message lists
        the valid models for this kind of data.
    """
    _load_providers()
    if not names:
        raise ValueError("no models named; give --models a,b,c")
    dups = sorted({n for n in names if list(names).count(n) > 1})
    if dups:
        raise ValueError(f"model(s) named more than once: {', '.join(dups)}")
    valid = model_names(kind)
    unknown = [n for n in names if n not in _MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; the models for {kind} data are: {', '.join(valid)}")
    out = []
    for n in names:
        match = [s for s in _MODELS[n] if kind in s.data_kinds]
        if not match:
            accepts = sorted({k for s in _MODELS[n] for k in s.data_kinds})
            raise ValueError(
                f"model {n!r} does not accept {kind} data (it takes {', '.join(accepts)}); "
                f"the models for {kind} data are: {', '.join(valid)}"
            )
        out.append(match[0])
    return out


def load_compare_dataset(name: str, seed: int) -> Any:
    """A registered compare dataset or a built-in one (:func:`~negtransfer.data.builtin.load_builtin`)."""
    _load_providers()
    if name in _DATASETS:
        return _DATASETS[name](seed)
    from negtransfer.data.builtin import load_builtin

    return load_builtin(name, seed=seed)


def prepare_dataset(dataset: Any, train_fraction: float | None, seed: int) -> Any:
    """Apply ``--train-fraction``: per domain and class for domains data, else the dataset's own method."""
    if train_fraction is None:
        return dataset
    if data_kind(dataset) == "domains":
        from negtransfer.data.domains import with_domain_train_fraction

        return with_domain_train_fraction(dataset, train_fraction, seed=seed)
    if hasattr(dataset, "with_train_fraction"):
        return dataset.with_train_fraction(train_fraction, seed=seed)
    raise ValueError(f"dataset {getattr(dataset, 'name', '?')!r} does not support --train-fraction")


@dataclass
class CompareResult:
    """Rows of ``results.csv`` plus what the report needs."""

    rows: list = field(default_factory=list)  # dicts: model, task, run, metric, value
    models: list = field(default_factory=list)  # ModelSpec, in command order
    tasks: list = field(default_factory=list)
    info: dict = field(default_factory=dict)


def run_compare(
    dataset_name: str,
    models: Sequence[str],
    *,
    runs: int = 3,
    seed: int = 0,
    train_fraction: float | None = None,
    options: Mapping[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    dataset_loader: Callable[[int], Any] | None = None,
) -> CompareResult:
    """Run every model for ``runs`` runs; run r uses seed ``seed + r`` for split, subsample and model.

    All models of one run see the same split and training rows (a paired
    comparison).

    Parameters
    ----------
    dataset_name : str
    models : sequence of str
    runs : int
    seed : int
    train_fraction : float, optional
    options : mapping, optional
        Passed to every ``fit_evaluate``.
    progress : callable, optional
        ``progress(stage, done, total)``.
    dataset_loader : callable, optional
        ``loader(seed)``, instead of loading ``dataset_name`` (tests).

    Raises
    ------
    ValueError
        Bad run count, unknown or incompatible models, bad train fraction.
    """
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    load = dataset_loader or (lambda s: load_compare_dataset(dataset_name, s))
    first = load(seed)
    kind = data_kind(first)
    specs = resolve_models(list(models), kind)
    opts = {**dict(options or {}), "train_fraction": train_fraction}
    result = CompareResult(models=specs, info={"dataset": dataset_name, "data_kind": kind, "runs": runs,
                                               "seed": seed, "train_fraction": train_fraction,
                                               "options": {k: v for k, v in opts.items()}})
    total = runs * len(specs)
    done = 0
    for r in range(runs):
        run_seed = seed + r
        ds = prepare_dataset(first if r == 0 else load(run_seed), train_fraction, run_seed)
        for spec in specs:
            metrics = spec.fit_evaluate(ds, run_seed, opts)
            for metric, per_task in metrics.items():
                values = dict(per_task)
                if "average" not in values:
                    finite = [v for v in values.values() if v is not None and not math.isnan(v)]
                    values["average"] = float(np.mean(finite)) if finite else float("nan")
                for task, value in values.items():
                    if task not in result.tasks:
                        result.tasks.append(task)
                    result.rows.append({"model": spec.name, "task": task, "run": r, "metric": metric,
                                        "value": float(value)})
            done += 1
            if progress is not None:
                progress("models x runs", done, total)
    if "average" in result.tasks:  # the average column last
        result.tasks = [t for t in result.tasks if t != "average"] + ["average"]
    return result


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return float(v.mean()), se


def summary_table(result: CompareResult, metric: str) -> dict[str, dict[str, tuple[float, float]]]:
    """``{model: {task: (mean, standard error)}}`` over runs for one metric."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for spec in result.models:
        out[spec.name] = {}
        for task in result.tasks:
            vals = [r["value"] for r in result.rows if r["model"] == spec.name and r["task"] == task and r["metric"] == metric]
            if vals:
                out[spec.name][task] = _mean_se(vals)
    return out


def report_markdown(result: CompareResult) -> str:
    """The report: one table per metric, models x (tasks, average), mean ± s.e., ``↓`` below STL."""
    info = result.info
    metrics = list(dict.fromkeys(r["metric"] for r in result.rows))
    scale = {m: 100.0 for m in metrics if "accuracy" in m or m == "auroc"}  # in %
    lines = [
        f"# Model comparison on {info['dataset']}",
        "",
        f"{info['runs']} run(s), seeds {info['seed']}..{info['seed'] + info['runs'] - 1} (run r: split, training "
        f"subsample and model seeded with seed + r); train fraction: "
        f"{info['train_fraction'] if info['train_fraction'] is not None else 'all training rows'}; "
        f"data kind: {info['data_kind']}.",
        "Cells: mean ± standard error over runs on the test split"
        + (" (accuracies in %)" if scale else "")
        + "; ↓ marks a mean below the model's single-task counterpart on that task.",
        "",
    ]
    by_name = {s.name: s for s in result.models}
    for metric in metrics:
        table = summary_table(result, metric)
        k = scale.get(metric, 1.0)
        lower = any(metric.startswith(m) for m in LOWER_IS_BETTER)
        lines += [f"## {metric}", "", "| model | " + " | ".join("Avg." if t == "average" else t for t in result.tasks) + " |",
                  "|---|" + "---:|" * len(result.tasks)]
        for name, cells in table.items():
            ref_name = by_name[name].stl_counterpart
            ref = table.get(ref_name) if ref_name and ref_name != name else None
            row = []
            for task in result.tasks:
                if task not in cells:
                    row.append("")
                    continue
                mean, se = cells[task]
                text = f"{mean * k:.1f}" if k != 1.0 else f"{mean:.3f}"
                if not math.isnan(se):
                    text += f" ± {se * k:.1f}" if k != 1.0 else f" ± {se:.3f}"
                if ref is not None and task in ref and not math.isnan(mean):
                    worse = mean > ref[task][0] if lower else mean < ref[task][0]
                    if worse:
                        text += " ↓"
                row.append(text)
            lines.append(f"| {name} | " + " | ".join(row) + " |")
        lines.append("")
    counterparts = [f"{s.name} vs {s.stl_counterpart}" for s in result.models if s.stl_counterpart and s.stl_counterpart in by_name]
    if counterparts:
        lines += ["Single-task counterparts: " + ", ".join(counterparts) + ".", ""]
    missing = sorted({s.stl_counterpart for s in result.models if s.stl_counterpart and s.stl_counterpart not in by_name})
    if missing:
        lines += [f"Not run, so not marked against: {', '.join(missing)}.", ""]
    return "\n".join(lines)


def write_outputs(result: CompareResult, out: Path) -> tuple[Path, Path]:
    """Write ``out/results.csv`` and ``out/report.md``; return their paths."""
    import csv

    from negtransfer.report.jsonio import write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    with csv_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["model", "task", "run", "metric", "value"])
        writer.writeheader()
        writer.writerows(result.rows)
    md_path = out / "report.md"
    md_path.write_text(report_markdown(result))
    write_json(out / "compare.json", result.info, default=str)
    return csv_path, md_path
