"""``negtransfer compare``: train named models for R runs through the run store, and tabulate per-task metrics.

One job compares models of any family of :mod:`negtransfer.models` on one
dataset (VMTL on domains-as-tasks data, TP-AMTL on clinical time series, ...).
Run ``r`` uses seed ``seed + r`` for the split, the training subsample and the
model, and every model of a run sees the same split and training rows (a paired
comparison).

Like every command, it goes through the run store and an executor:

* each (model, run) is one unit of work, keyed in the store by the prepared
  dataset's fingerprint (split and subsample included), the model, its family's
  training configuration, the run's seed and the metric options; finished units
  are written as they complete (one transaction each);
* a repeated call reuses the stored units and trains only the missing ones, so
  a comparison killed at any moment (even with SIGKILL) resumes where it stopped
  and writes a byte-identical ``results.csv``;
* the units run in this process, in a pool of processes or as Ray tasks
  (``--executor``; a Ray task declares ``--threads`` CPUs); results never
  depend on where they ran.

Outputs (written by :mod:`negtransfer.report.compare`): ``results.csv`` with
columns ``model, task, run, metric, value`` (one row per run, task and metric;
``task = "average"`` for the mean over tasks), ``report.md`` (one table per
metric in the layout of the papers' tables) and ``report.json``
(:meth:`CompareReport.to_dict`).

Families that report validation metrics (the clinical one: ``val_auroc`` and
``val_loss``, the kept checkpoint's, per task) add those rows to results.csv
after all test rows. With ``--select-on-validation GRID`` (sklearn's
``param_grid`` as text, e.g. ``"hidden=16,32,64;dropout=0.1,0.3,0.5"``) every
model of the comparison is trained once per setting of the grid in every run,
and per (model, run) the setting with the best mean validation AUROC over tasks
is kept: its rows are the model's rows of the tables (the runs stay paired),
the seconds of a (model, run) are those of all its settings, and
``selection.csv`` / report.json's ``selection`` give every setting's scores and
the one each run chose (:func:`select_on_validation`).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

from negtransfer.models.base import FitOptions, ModelCatalogue, ModelSpec, with_average
from negtransfer.runs.specs import ArtifactSlot, RunKind, RunOutput, RunSpec, store_keys
from negtransfer.train.config import config_hash

__all__ = [
    "BASELINE_CHOICES",
    "COMPARE",
    "CompareOptions",
    "CompareReport",
    "ModelEntry",
    "compare_key",
    "compare_spec",
    "grid_settings",
    "parse_selection_grid",
    "prepare_dataset",
    "run_compare",
    "select_on_validation",
    "setting_label",
]

#: Bumped when a stored comparison result changes meaning, so old stores are not reused.
RESULT_FORMAT = 1

#: Metrics where lower is better (the STL marker flips for them).
LOWER_IS_BETTER = ("mse", "loss", "seconds_per_iteration")

#: Validation metrics (``val_auroc``, ``val_loss``: the kept checkpoint's, per task) start with this; results.csv
#: lists them after every test metric, and report.md's tables leave them out.
VALIDATION_PREFIX = "val_"

#: What ``--select-on-validation`` maximises: the mean over tasks (``"average"``) of this validation metric.
SELECTION_METRIC = "val_auroc"

#: ``--baselines``: which single-task baseline each model is marked and paired against: ours
#: (``ModelSpec.stl_counterpart``), the paper's public code's (``ModelSpec.paper_counterpart``), or both.
BASELINE_CHOICES = ("ours", "paper", "both")


@dataclass(frozen=True)
class CompareOptions:
    """Choices of one comparison.

    Parameters
    ----------
    models : tuple of str
        Model names (:class:`~negtransfer.models.base.ModelCatalogue`).
    runs : int
        Runs; run r uses seed + r.
    train_fraction : float, optional
        Share of each task's training rows used (domains data: per domain and
        class, the VMTL paper's 0.05..0.6); None: all.
    fit : FitOptions
        Training options and ``--set`` settings read by the model families.
    threads : int
        torch CPU threads per unit of work (small models run fastest on one).
    select_on_validation : tuple
        The grid of builder options chosen on validation
        (:func:`parse_selection_grid`): ``((name, (value, ...)), ...)``; empty
        (default): each model with its own options, trained once per run.
    """

    models: tuple
    runs: int = 3
    train_fraction: float | None = None
    fit: FitOptions = field(default_factory=FitOptions)
    threads: int = 1
    select_on_validation: tuple = ()

    def check(self) -> None:
        """Raise ValueError naming a bad option and its fix."""
        if not self.models:
            raise ValueError("--models names no model; give comma-separated names, e.g. --models stl,bmtl")
        if isinstance(self.runs, bool) or not isinstance(self.runs, int) or self.runs < 1:
            raise ValueError(f"--runs must be a positive integer, got {self.runs!r}")
        f = self.train_fraction
        if f is not None and not (math.isfinite(f) and 0 < f <= 1):
            raise ValueError(f"--train-fraction must be in (0, 1], got {f}")
        for eps in self.fit.fgsm_epsilons:
            if not (math.isfinite(eps) and eps >= 0):
                raise ValueError(f"--fgsm noise levels must be finite numbers >= 0, got {eps!r}")
        _check_grid(self.select_on_validation)


@dataclass(frozen=True)
class ModelEntry:
    """A compared model as the report shows it.

    ``stl_counterpart`` is our single-task baseline of the model,
    ``paper_counterpart`` the paper's public code's where that is another model
    (None: the paper's baseline is ``stl_counterpart``).
    """

    name: str
    family: str
    stl_counterpart: str | None
    description: str
    paper_counterpart: str | None = None

    def counterparts(self, baselines: str = "ours") -> list[tuple[str, str]]:
        """``[(kind, baseline model)]`` the model is compared with under ``--baselines`` (kind ``"ours"`` or
        ``"paper"``; ``both`` lists the paper's only where it is another model than ours)."""
        if baselines not in BASELINE_CHOICES:
            raise ValueError(f"--baselines must be one of {', '.join(BASELINE_CHOICES)}, got {baselines!r}")
        ours = [("ours", self.stl_counterpart)] if self.stl_counterpart else []
        paper_name = self.paper_counterpart or self.stl_counterpart
        paper = [("paper", paper_name)] if paper_name else []
        if baselines == "ours":
            return ours
        if baselines == "paper":
            return paper
        return ours + [p for p in paper if not ours or p[1] != ours[0][1]]


@dataclass(frozen=True)
class SelectionCandidate:
    """One (model, run, setting) that ``--select-on-validation`` trained: a row of ``selection.csv``'s long form.

    Attributes
    ----------
    model : str
    run : int
    setting : str
        The setting's label (:func:`setting_label`, e.g. ``"hidden=64,dropout=0.3"``).
    options : dict
        The setting as model options (``{"hidden": 64, "dropout": 0.3}``).
    chosen : bool
        Whether this setting was kept for this (model, run).
    seconds : float
        Its training seconds.
    metrics : dict
        ``{metric: {task: value or None}}``, test and validation metrics.
    """

    model: str
    run: int
    setting: str
    options: dict
    chosen: bool
    seconds: float
    metrics: dict

    def to_json(self) -> dict:
        """report.json's entry of ``selection.candidates``."""
        return {"model": self.model, "run": self.run, "setting": self.setting, "options": self.options,
                "chosen": self.chosen, "seconds": self.seconds, "metrics": self.metrics}


@dataclass(frozen=True)
class ValidationSelection:
    """What ``--select-on-validation`` chose (:func:`select_on_validation`): report.json's ``selection``.

    Attributes
    ----------
    metric : str
        What the choice maximised (the mean validation AUROC over tasks).
    grid : dict
        ``{option name: [values]}``, in grid order.
    chosen : dict
        ``{model: {run (str): setting label}}``.
    candidates : tuple of SelectionCandidate
        Every (model, run, setting) trained, in training order.
    """

    metric: str
    grid: dict
    chosen: dict
    candidates: tuple[SelectionCandidate, ...]

    def to_json(self) -> dict:
        """report.json's ``selection``."""
        return {"metric": self.metric, "grid": self.grid, "chosen": self.chosen,
                "candidates": [c.to_json() for c in self.candidates]}


@dataclass
class CompareReport:
    """What a comparison produced: the long results table and what the report needs.

    Attributes
    ----------
    dataset : str
    data_kind : str
    runs, seed : int
    train_fraction : float or None
    models : list of ModelEntry
        In command order.
    tasks : list of str
        In the order the models reported them, ``"average"`` last.
    rows : list of dict
        ``model, task, run, metric, value``: the rows of ``results.csv``.
    configs : dict
        Per model family, the training configuration used.
    options : dict
        The fit options (``--epochs`` ..., ``--set``, ``--fgsm``).
    seconds : dict
        ``"model/run"`` -> training seconds of that unit (as stored).
    trained, reused : int
        Units trained by this call, and units found in the run store.
    notes : list of str
    baselines : {"ours", "paper", "both"}
        Which single-task baselines report.md marks and pairs against
        (:meth:`ModelEntry.counterparts`); a reporting choice, not part of any
        run's key.
    selection : ValidationSelection or None
        With ``--select-on-validation``: the grid, the setting chosen per model
        and run, and every candidate's options, seconds and metrics per task;
        None otherwise.
    """

    dataset: str
    data_kind: str
    runs: int
    seed: int
    train_fraction: float | None
    models: list
    tasks: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    configs: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    trained: int = 0
    reused: int = 0
    notes: list = field(default_factory=list)
    baselines: str = "ours"
    selection: ValidationSelection | None = None

    def __repr__(self) -> str:
        """The comparison in one line (:mod:`negtransfer.jobs.summary_repr`); the fields hold the rest."""
        from negtransfer.jobs.summary_repr import summary_repr

        return summary_repr("CompareReport", dataset=self.dataset, models=[m.name for m in self.models],
                            tasks=[t for t in self.tasks if t != "average"], runs=self.runs, seed=self.seed,
                            metrics=self.metrics(), trained=self.trained, reused=self.reused)

    def metrics(self) -> list[str]:
        """The metrics, in the order the models reported them (test metrics first, then validation ones)."""
        return list(dict.fromkeys(r["metric"] for r in self.rows))

    def test_metrics(self) -> list[str]:
        """The metrics of the test split (those not starting with :data:`VALIDATION_PREFIX`)."""
        return [m for m in self.metrics() if not m.startswith(VALIDATION_PREFIX)]

    def summary(self, metric: str) -> dict[str, dict[str, tuple[float, float]]]:
        """``{model: {task: (mean, standard error)}}`` over runs for one metric (s.e. NaN with one run); a metric
        no model reported raises ValueError naming those reported (:meth:`metrics`)."""
        if self.rows and metric not in self.metrics():
            raise ValueError(f"no model reported the metric {metric!r}; the metrics are: {', '.join(self.metrics())}")
        out: dict[str, dict[str, tuple[float, float]]] = {}
        for model in self.models:
            out[model.name] = {}
            for task in self.tasks:
                vals = [r["value"] for r in self.rows
                        if r["model"] == model.name and r["task"] == task and r["metric"] == metric]
                if vals:
                    out[model.name][task] = _mean_se(vals)
        return out

    def setting_rows(self, setting: str, suffix: str = "") -> list[dict]:
        """With ``--select-on-validation``: the rows (as :attr:`rows`) every model had with one setting of the grid
        (its label, e.g. ``"hidden=64,dropout=0.3"``), whether chosen or not; model names end in ``suffix``."""
        rows = []
        for c in self.selection.candidates if self.selection else ():
            if c.setting != setting:
                continue
            for metric, per_task in c.metrics.items():
                rows += [{"model": c.model + suffix, "task": task, "run": c.run, "metric": metric,
                          "value": float("nan") if v is None else float(v)} for task, v in per_task.items()]
        return rows

    def to_frame(self):
        """The long results table (results.csv): columns ``model, task, run, metric, value``, one row per model,
        task (``"average"`` for the mean over tasks), run and metric."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=["model", "task", "run", "metric", "value"])

    def to_dict(self) -> dict:
        """report.json: everything but the rows (those are results.csv)."""
        return {
            "dataset": self.dataset,
            "data_kind": self.data_kind,
            "runs": self.runs,
            "seed": self.seed,
            "train_fraction": self.train_fraction,
            "models": [vars(m) for m in self.models],
            "tasks": list(self.tasks),
            "configs": self.configs,
            "options": self.options,
            "seconds": self.seconds,
            "trained": self.trained,
            "reused": self.reused,
            "notes": list(self.notes),
            "baselines": self.baselines,
            **({"selection": self.selection.to_json()} if self.selection else {}),
        }


def _mean_se(values: Sequence[float]) -> tuple[float, float]:
    import numpy as np

    from negtransfer.data.statistics import standard_error

    v = np.asarray([x for x in values if not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), standard_error(v)


def prepare_dataset(dataset: Any, train_fraction: float | None, seed: int) -> Any:
    """Apply ``--train-fraction``: per domain and class for domains data, else the dataset's own method."""
    if train_fraction is None:
        return dataset
    from negtransfer.data.builtin import data_kind

    if data_kind(dataset) == "domains":
        from negtransfer.data.domains import with_domain_train_fraction

        return with_domain_train_fraction(dataset, train_fraction, seed=seed)
    if hasattr(dataset, "with_train_fraction"):
        return dataset.with_train_fraction(train_fraction, seed=seed)
    raise ValueError(f"dataset {getattr(dataset, 'name', '?')!r} does not support --train-fraction")


def _offset_seed(seed: int, run: int) -> int:
    """Run r of a comparison uses seed + r (split, subsample and model)."""
    return int(seed) + int(run)


def _fit_spec(dataset: Any, spec: RunSpec, seed: int) -> RunOutput:
    """Train and score the (model, run) of a comparison's run specification (a worker's function)."""
    unit = _Unit(spec.extra("model_spec"), dataset, _offset_seed(seed, spec.repeat), spec.config, spec.extra("fit"),
                 int(spec.extra("threads")), tuple(spec.extra("model_options", ())))
    return RunOutput(records={"compare": _fit_unit(unit)})


#: One model of a comparison trained and scored for one run (run r: seed + r, the run's own split). Its store key
#: is that of RESULT_FORMAT 1, unchanged.
COMPARE = RunKind("compare", stores_model=False, artifacts=(ArtifactSlot(
    "compare", f"compare:v{RESULT_FORMAT}:{{fingerprint}}:{{family}}:{{model}}:{{config}}:{{seed}}:fgsm={{fgsm}}:"
               "threads={threads}"),), train=_fit_spec, training_seed=_offset_seed)


def compare_spec(
    spec: ModelSpec, run: int, config: Any, options: FitOptions, threads: int = 1, model_options: tuple = ()
) -> RunSpec:
    """The run specification of one (model, run) unit: run ``run``'s model ``spec`` trained with ``config``.

    A model whose code changed its numbers has ``spec.version > 1``, which
    follows its name in the key (``tp-amtl@v2``); version-1 keys are unchanged.
    torch's thread count is part of the key: several threads may sum in another order.
    ``model_options`` (one setting of ``--select-on-validation``, ``((name, value), ...)``)
    follow the name in brackets (``p-amtl@v2[hidden=32,dropout=0.5]``); without them the key is as before.
    """
    fgsm = ",".join(repr(float(e)) for e in options.fgsm_epsilons)
    name = spec.name if spec.version <= 1 else f"{spec.name}@v{int(spec.version)}"
    extras = {"family": spec.family, "model": name, "fgsm": fgsm, "threads": int(threads), "model_spec": spec,
              "fit": options}
    if model_options:
        extras["model"] = f"{name}[{setting_label(model_options)}]"
        extras["model_options"] = tuple(model_options)
    return RunSpec(COMPARE, (), run, config, extras)


def compare_key(fingerprint: str, spec: ModelSpec, config_digest: str, seed: int, options: FitOptions,
                threads: int = 1) -> str:
    """Run-store key of one (model, run) unit with run seed ``seed``: everything its numbers depend on.

    The key rule of every run (:func:`negtransfer.runs.specs.store_keys`) applied to :func:`compare_spec`.
    """
    return store_keys(compare_spec(spec, 0, None, options, threads), fingerprint, seed, config_digest).artifacts[0][1]


@dataclass(frozen=True)
class _Unit:
    """One model trained and scored for one run: what a worker needs (it pickles)."""

    spec: ModelSpec
    dataset: Any
    seed: int
    config: Any
    options: FitOptions
    threads: int
    model_options: tuple = ()


def _fit_unit(unit: _Unit) -> dict:
    """Train and score one unit; ``{"metrics": ..., "seconds": ...}`` (JSON-ready)."""
    import torch

    torch.set_num_threads(unit.threads)
    start = time.perf_counter()
    if unit.model_options:  # a family with ``check_options`` takes them (ModelSpec)
        fit_evaluate: Any = unit.spec.fit_evaluate
        metrics = fit_evaluate(unit.spec.name, unit.dataset, unit.seed, unit.config, unit.options,
                               model_options=dict(unit.model_options))
    else:
        metrics = unit.spec.fit_evaluate(unit.spec.name, unit.dataset, unit.seed, unit.config, unit.options)
    return {"metrics": with_average(metrics), "seconds": time.perf_counter() - start}


def run_compare(
    load: Callable[[int], Any],
    name: str,
    options: CompareOptions,
    seed: int,
    store,
    *,
    catalogue: ModelCatalogue | None = None,
    executor=None,
    progress: Callable[[str, int, int], None] | None = None,
) -> CompareReport:
    """Run every model for ``options.runs`` runs through the run store; run r uses seed ``seed + r``.

    Parameters
    ----------
    load : callable
        ``load(seed) -> dataset``: the dataset split with that seed.
    name : str
        The dataset's name in the report.
    options : CompareOptions
    seed : int
    store : RunStore
        Finished units are read from and written to it.
    catalogue : ModelCatalogue, optional
        Default :func:`negtransfer.models.catalogue.default_catalogue`.
    executor : Executor, optional
        Default: in this process.
    progress : callable, optional
        ``progress(stage, done, total)``.

    Returns
    -------
    CompareReport

    Raises
    ------
    ValueError
        Bad options, unknown or incompatible models or data, before any training.
    """
    from negtransfer.data.builtin import data_kind
    from negtransfer.runs.runner import ensure

    options.check()
    if catalogue is None:
        from negtransfer.models.catalogue import default_catalogue

        catalogue = default_catalogue()
    first = load(seed)
    kind = data_kind(first)
    model_specs = catalogue.resolve(list(options.models), kind)
    configs = _family_configs(model_specs, options.fit)
    datasets = [prepare_dataset(first if r == 0 else load(seed + r), options.train_fraction, seed + r)
                for r in range(options.runs)]
    for spec in model_specs:
        if spec.check_dataset is not None:
            spec.check_dataset(spec.name, datasets[0])
    settings = grid_settings(options.select_on_validation)
    if options.select_on_validation:
        _check_selectable(model_specs, settings)
    units, specs = [], []
    for r, ds in enumerate(datasets):
        for spec in model_specs:
            config, _ = configs[spec.family]
            for setting in settings:
                units.append(_Unit(spec, ds, seed + r, config, options.fit, options.threads, setting))
                specs.append(compare_spec(spec, r, config, options.fit, options.threads, setting))
    cb = (lambda done, total: progress("models x runs", done, total)) if progress is not None else None
    trained: list = []
    outputs = ensure(datasets, specs, seed, store, executor=executor, on_progress=cb, trained=trained)
    stored = [out.records["compare"] for out in outputs]
    selection: ValidationSelection | None = None
    if options.select_on_validation:
        units, stored, selection = select_on_validation(units, stored, seed, options.select_on_validation)
    report = CompareReport(
        dataset=name, data_kind=kind, runs=options.runs, seed=seed, train_fraction=options.train_fraction,
        models=[ModelEntry(s.name, s.family, s.stl_counterpart, s.description, s.paper_counterpart)
                for s in model_specs],
        configs={family: asdict(config) for family, (config, _) in configs.items()},
        options={**options.fit.to_dict(), "threads": options.threads},
        trained=len(trained), reused=len(specs) - len(trained), selection=selection,
    )
    _fill_rows(report, units, stored)
    return report


def _family_configs(specs: Sequence[ModelSpec], fit: FitOptions) -> dict:
    """Per family, its training config (built once, before any training) and the config's hash."""
    configs: dict = {}
    for spec in specs:
        if spec.family in configs:
            continue
        try:
            config = spec.make_config(fit)
        except ValueError as exc:
            names = ", ".join(repr(s.name) for s in specs if s.family == spec.family)
            raise ValueError(f"{exc} (model family of {names})") from None
        configs[spec.family] = (config, config_hash(config))
    return configs


def _fill_rows(report: CompareReport, units: Sequence[_Unit], values: Sequence[dict]) -> None:
    """The long table, in run, model, metric and task order; ``"average"`` the last task.

    The test metrics of every unit come first, then the validation metrics
    (:data:`VALIDATION_PREFIX`) in the same order, so a comparison's test rows
    are those it had before validation metrics were recorded.
    """
    tasks: list[str] = []
    for validation in (False, True):
        for unit, value in zip(units, values, strict=True):
            run = unit.seed - report.seed
            report.seconds[f"{unit.spec.name}/{run}"] = value["seconds"]
            for metric, per_task in value["metrics"].items():
                if metric.startswith(VALIDATION_PREFIX) != validation:
                    continue
                for task, v in per_task.items():
                    if task not in tasks:
                        tasks.append(task)
                    report.rows.append({"model": unit.spec.name, "task": task, "run": run, "metric": metric,
                                        "value": float("nan") if v is None else float(v)})
    if "average" in tasks:
        tasks = [t for t in tasks if t != "average"] + ["average"]
    report.tasks = tasks


# ---------------------------------------------------------------- --select-on-validation
def _parse_value(text: str) -> Any:
    """A grid value: a JSON number, boolean or null, else the string as given."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, (int, float, bool)) or value is None else text


def parse_selection_grid(text: str | None) -> tuple:
    """``--select-on-validation``'s grid from text, in the order given.

    ``"hidden=16,32,64;dropout=0.1,0.3,0.5"`` ->
    ``(("hidden", (16, 32, 64)), ("dropout", (0.1, 0.3, 0.5)))``: options
    separated by ``;``, each ``NAME=V1,V2,...`` (numbers as numbers). The
    settings tried are every combination (:func:`grid_settings`), as
    scikit-learn's ``ParameterGrid``.

    Raises
    ------
    ValueError
        An option without ``=`` or values, a name given twice, or a value
        repeated (the message names it and shows the form).
    """
    if not text or not text.strip():
        return ()
    form = 'give NAME=V1,V2;NAME=V1,V2, e.g. "hidden=16,32,64;dropout=0.1,0.3,0.5"'
    grid = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, eq, values = part.partition("=")
        name = name.strip()
        items = tuple(_parse_value(v.strip()) for v in values.split(",") if v.strip())
        if not eq or not name or not items:
            raise ValueError(f"--select-on-validation: {part!r} is not NAME=V1,V2,...; {form}")
        grid.append((name, items))
    grid_tuple = tuple(grid)
    _check_grid(grid_tuple)
    return grid_tuple


def _check_grid(grid: tuple) -> None:
    """Raise ValueError for a grid with a repeated option name or value, or an empty value list."""
    names = [name for name, _ in grid]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ValueError(f"--select-on-validation names {', '.join(dups)} more than once; give each option once")
    for name, values in grid:
        if not values:
            raise ValueError(f"--select-on-validation: option {name!r} has no values; give NAME=V1,V2,...")
        if len({repr(v) for v in values}) != len(values):
            raise ValueError(f"--select-on-validation: option {name!r} repeats a value in {list(values)}; "
                             f"give each value once")


def grid_settings(grid: tuple) -> list[tuple]:
    """Every setting of the grid, ``((name, value), ...)``, the last option varying fastest; ``[()]`` for none."""
    if not grid:
        return [()]
    names = [name for name, _ in grid]
    return [tuple(zip(names, combo, strict=True)) for combo in itertools.product(*(values for _, values in grid))]


def setting_label(setting: tuple) -> str:
    """``"hidden=32,dropout=0.5"``: a setting as results, reports and run-store keys name it."""
    return ",".join(f"{name}={value}" for name, value in setting)


def _check_selectable(specs: Sequence[ModelSpec], settings: Sequence[tuple]) -> None:
    """Before any training: every model takes every setting (its family's ``check_options``)."""
    for spec in specs:
        if spec.check_options is None:
            raise ValueError(f"model {spec.name!r} ({spec.family} family) cannot have options chosen on validation "
                             f"(its family reports no validation metric); leave out --select-on-validation or "
                             f"compare models of the clinical family")
        for setting in settings:
            spec.check_options(spec.name, dict(setting))


def _selection_score(value: dict) -> float:
    """The mean validation AUROC over tasks of one unit; -inf when missing or NaN (never chosen over a number)."""
    score = value["metrics"].get(SELECTION_METRIC, {}).get("average")
    return -math.inf if score is None or math.isnan(float(score)) else float(score)


def select_on_validation(
    units: Sequence[_Unit], values: Sequence[dict], seed: int, grid: tuple
) -> tuple[list[_Unit], list[dict], ValidationSelection]:
    """Per (model, run), keep the setting with the highest mean validation AUROC over tasks.

    Parameters
    ----------
    units, values : sequences
        One per (run, model, setting), in that order, and their stored results.
    seed : int
        The comparison's seed (run r: seed + r).
    grid : tuple
        The grid (:func:`parse_selection_grid`), for the report.

    Returns
    -------
    units, values : lists
        One per (run, model): the chosen setting's unit and results, with the
        seconds of every setting of that (model, run) (what choosing cost).
    selection : ValidationSelection
        The grid, the chosen setting per model and run, and every candidate
        (per model, run and setting). Ties go to the setting first in grid
        order; a test metric never enters the choice.
    """
    groups: dict[tuple[int, str], list[int]] = {}
    for i, unit in enumerate(units):
        groups.setdefault((unit.seed - seed, unit.spec.name), []).append(i)
    kept_units: list[_Unit] = []
    kept_values: list[dict] = []
    chosen: dict[str, dict[str, str]] = {}
    candidates: list[SelectionCandidate] = []
    for (run, model), members in groups.items():
        best = max(members, key=lambda i: (_selection_score(values[i]), -i))
        total = sum(float(values[i]["seconds"]) for i in members)
        kept_units.append(units[best])
        kept_values.append({**values[best], "seconds": total})
        chosen.setdefault(model, {})[str(run)] = setting_label(units[best].model_options)
        for i in members:
            candidates.append(SelectionCandidate(
                model=model, run=run, setting=setting_label(units[i].model_options),
                options=dict(units[i].model_options), chosen=i == best, seconds=float(values[i]["seconds"]),
                metrics=values[i]["metrics"]))
    selection = ValidationSelection(metric=f"{SELECTION_METRIC} (mean over tasks)",
                                    grid={name: list(v) for name, v in grid}, chosen=chosen,
                                    candidates=tuple(candidates))
    return kept_units, kept_values, selection
