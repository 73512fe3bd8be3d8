"""Model comparisons of the TP-AMTL paper: train named models for R runs, report AUROC per task.

:func:`run_temporal_comparison` returns the long table ``model, task, run,
metric, value`` (the ``results.csv`` of ``negtransfer compare``);
:func:`comparison_table` turns it into the paper's layout (mean and standard
error per task and their average; cells where a multi-task model falls below
its single-task counterpart are marked).

Runs: run ``r`` uses ``seed + r`` for the data split and for the model's
initialisation, dropout and batch order, so the R runs are R random splits
(the paper reports 5 runs with mean and standard error).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from negtransfer.nn.amtl_registry import CLINICAL_MODELS, STL_COUNTERPART, build_model

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "STL_COUNTERPART",
    "comparison_markdown",
    "comparison_table",
    "load_comparison_dataset",
    "run_temporal_comparison",
    "train_and_score",
]



def load_comparison_dataset(name: str, seed: int = 0, **options: Any):
    """A dataset for the clinical comparison: a time-series one (pbcseq, nafld,
    ``physionet2012:<folder>``) or a built-in :class:`MultiTaskDataset` with
    binary tasks (mnist-variation, yeast, ...)."""
    from negtransfer.data.timeseries import TIMESERIES_REGISTRY, load_timeseries

    if name in TIMESERIES_REGISTRY or name.startswith("physionet2012:"):
        return load_timeseries(name, seed=seed, **options)
    from negtransfer.data.builtin import load_builtin

    ds = load_builtin(name, seed=seed, **options)
    bad = [t.name for t in ds.tasks if t.kind != "binary"]
    if bad:
        raise ValueError(f"dataset {name!r} has non-binary tasks ({', '.join(bad[:5])}); the AUROC comparison needs binary tasks")
    return ds


def train_and_score(name: str, dataset, seed: int, config=None, options: dict | None = None) -> dict[str, float]:
    """Train the named model on ``dataset`` (one model per task for STL) and return test AUROC per task.

    ``torch.manual_seed(seed)`` precedes every model's construction and
    :func:`~negtransfer.train.temporal.fit` uses ``seed``, so the scores are
    reproducible. Used by :func:`run_temporal_comparison` and by the
    ``negtransfer compare`` provider (:mod:`negtransfer.nn.amtl_registry`).
    """
    import torch

    from negtransfer.train.temporal import TemporalTrainConfig, evaluate_auroc, fit

    spec = CLINICAL_MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; the models are: {', '.join(CLINICAL_MODELS)}")
    config = config or TemporalTrainConfig()
    temporal = dataset.X.ndim == 3
    if spec.temporal != temporal:
        kind = "sequences (B, T, F)" if spec.temporal else "rows (B, F)"
        raise ValueError(f"model {name!r} takes {kind}, which dataset {dataset.name!r} does not have")
    groups = [[k] for k in range(dataset.n_tasks)] if spec.single_task else [list(range(dataset.n_tasks))]
    scores: dict[str, float] = {}
    for group in groups:
        torch.manual_seed(seed)
        model = build_model(name, dataset.X.shape[-1], len(group), **(options or {}))
        trained = fit(model, dataset, task_indices=group, config=config, seed=seed)
        scores.update(evaluate_auroc(trained, dataset, "test", mc_samples=config.mc_samples, seed=seed))
    return {task: scores[task] for task in dataset.task_names if task in scores}


def run_temporal_comparison(
    dataset: str | Callable[[int], Any],
    models: Sequence[str],
    runs: int = 5,
    seed: int = 0,
    *,
    config=None,
    model_options: dict[str, dict] | None = None,
    progress: Callable[[str], None] | None = None,
) -> "pd.DataFrame":
    """Train every named model ``runs`` times; AUROC per task on the test split.

    Parameters
    ----------
    dataset : str or callable
        A name for :func:`load_comparison_dataset`, or ``dataset(seed) -> dataset``.
    models : sequence of str
        Names from :data:`negtransfer.nn.amtl_registry.CLINICAL_MODELS`.
    runs : int
    seed : int
        Run r uses ``seed + r`` (split and model).
    config : TemporalTrainConfig, optional
    model_options : dict, optional
        Per model name, builder keyword overrides (e.g. ``{"tp-amtl": {"hidden": 16}}``).
    progress : callable, optional
        Called with one line per trained model.

    Returns
    -------
    pandas.DataFrame
        Columns ``model, task, run, metric, value`` (metric ``"auroc"``), plus
        ``seconds`` (training time of the model, summed over STL models).
    """
    import pandas as pd

    from negtransfer.train.temporal import TemporalTrainConfig

    unknown = [m for m in models if m not in CLINICAL_MODELS]
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; the models are: {', '.join(CLINICAL_MODELS)}")
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"runs must be a positive integer, got {runs!r}")
    config = config or TemporalTrainConfig()
    model_options = model_options or {}
    rows = []
    for run in range(runs):
        run_seed = seed + run
        ds = dataset(run_seed) if callable(dataset) else load_comparison_dataset(dataset, seed=run_seed)
        for name in models:
            start = time.perf_counter()
            scores = train_and_score(name, ds, run_seed, config, model_options.get(name))
            seconds = time.perf_counter() - start
            for task, value in scores.items():
                rows.append({"model": name, "task": task, "run": run, "metric": "auroc", "value": value,
                             "seconds": seconds})  # fmt: skip
            if progress is not None:
                mean = np.nanmean(list(scores.values()))
                progress(f"run {run} {name}: mean AUROC {mean:.4f} ({seconds:.1f} s)")
    return pd.DataFrame(rows, columns=["model", "task", "run", "metric", "value", "seconds"])


def comparison_table(results: "pd.DataFrame", counterpart: dict[str, str] | None = None) -> "pd.DataFrame":
    """The paper's layout: one row per model, ``mean ± se`` per task and for the average.

    The average of a run is the mean over tasks; its mean and standard error are
    taken over runs. A multi-task model's cell ends in ``" ↓"`` when its mean is
    below that of its single-task counterpart (:data:`STL_COUNTERPART`) present
    in ``results``.
    """
    import pandas as pd

    counterpart = STL_COUNTERPART if counterpart is None else counterpart
    tasks = list(dict.fromkeys(results["task"]))
    models = list(dict.fromkeys(results["model"]))
    wide = results.pivot_table(index=["model", "run"], columns="task", values="value")[tasks]
    wide["Average"] = wide[tasks].mean(axis=1)
    stats = {}
    for model in models:
        block = wide.loc[model]
        n = block.notna().sum()
        stats[model] = (block.mean(), block.std(ddof=1) / np.sqrt(n.clip(lower=1)))
    table = {}
    for model in models:
        mean, se = stats[model]
        ref = counterpart.get(model)
        cells = {}
        for col in tasks + ["Average"]:
            text = f"{mean[col]:.4f} ± {0.0 if np.isnan(se[col]) else se[col]:.4f}"
            if ref in stats and mean[col] < stats[ref][0][col]:
                text += " ↓"
            cells[col] = text
        table[model] = cells
    return pd.DataFrame.from_dict(table, orient="index")[tasks + ["Average"]]


def comparison_markdown(table: "pd.DataFrame") -> str:
    """A :func:`comparison_table` as a markdown table (model names in the first column)."""
    from negtransfer.report.markdown import render_table

    rows = [[model, *table.loc[model].tolist()] for model in table.index]
    return render_table(rows, ["Model", *table.columns])
