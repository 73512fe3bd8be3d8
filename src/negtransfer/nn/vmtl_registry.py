"""Registers the VMTL family with ``negtransfer compare`` (domains-as-tasks data).

Every preset of :data:`negtransfer.nn.vmtl.MODEL_PRESETS` becomes a compare
model: it is built with :func:`~negtransfer.nn.vmtl.make_model`, trained with
:func:`~negtransfer.train.variational.fit_variational` (each task keeps its
best-validation state) and scored on the test split by
:func:`~negtransfer.train.variational.evaluate_model` (``accuracy``,
``entropy_ratio`` and, with ``fgsm_epsilons``, ``fgsm_accuracy@eps``).

Options read from the command: ``iterations`` (overrides
:class:`~negtransfer.train.variational.VariationalConfig`'s), ``fgsm_epsilons``,
and ``config`` (a dict of further VariationalConfig fields).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from negtransfer.jobs.compare import ModelSpec, config_from_options, register_model

__all__ = ["fit_evaluate_preset", "STL_COUNTERPARTS"]

_DESCRIPTIONS = {
    "stl": "single-task networks (deterministic)",
    "vstl": "variational single-task networks, N(0, I) priors",
    "bmtl": "shared deterministic encoder, per-task classifiers",
    "kendall": "BMTL with Kendall et al. uncertainty loss weighting",
    "vbmtl": "variational BMTL, N(0, I) priors",
    "vmtl": "VMTL: Gumbel-Softmax priors over the other tasks' posteriors",
    "vmtl-ac": "VMTL with amortised classifiers",
    "vib": "Qian et al. multi-task variational information bottleneck",
    "bakker": "Bakker and Heskes task clustering prior on the classifiers (simplified)",
    "mrn": "Long et al. multilinear relationship networks, task covariance only (simplified)",
}

#: Which single-task model each model is compared with in the report.
STL_COUNTERPARTS = {"stl": None, "vstl": None, "bmtl": "stl", "kendall": "stl", "vib": "stl", "bakker": "stl",
                    "mrn": "stl"}


def fit_evaluate_preset(name: str, dataset: Any, seed: int, options: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Train preset ``name`` on ``dataset`` with ``seed``; test-split metrics per task.

    Also ``validation_accuracy``: each task's best validation accuracy (its checkpoint's),
    the figure to compare training settings by without looking at the test split.
    """
    import torch

    from negtransfer.nn.vmtl import make_model
    from negtransfer.train.variational import VariationalConfig, check_domains_dataset, evaluate_model, fit_variational

    check_domains_dataset(dataset)
    config = config_from_options(VariationalConfig, options, "VMTL")
    if options.get("iterations"):
        config = replace(config, iterations=int(options["iterations"]))
    torch.manual_seed(seed)
    model = make_model(name, dataset.n_features, dataset.tasks[0].n_classes, dataset.n_tasks,
                       hidden=config.hidden, latent=config.latent, input_dropout=config.input_dropout)
    fit = fit_variational(model, dataset, config, seed=seed)
    metrics = evaluate_model(fit, dataset, "test", fgsm_epsilons=tuple(options.get("fgsm_epsilons") or ()))
    # The validation accuracy each task's checkpoint was chosen by: what settings may be chosen on.
    metrics["validation_accuracy"] = dict(zip(dataset.task_names, map(float, fit.best_validation_accuracy)))
    return metrics


def _register() -> None:
    from functools import partial

    from negtransfer.nn import vmtl as _vmtl  # imports torch: compare loads providers lazily

    for name in _vmtl.MODEL_PRESETS:
        register_model(ModelSpec(
            name=name,
            data_kinds=("domains",),
            fit_evaluate=partial(fit_evaluate_preset, name),
            stl_counterpart=STL_COUNTERPARTS.get(name, "vstl"),
            description=_DESCRIPTIONS.get(name, f"VMTL ablation {name}"),
        ))


_register()
