"""The TP-AMTL family (clinical time series, and binary tables): TP-AMTL, P-AMTL and their paper's baselines.

Each entry of :data:`CLINICAL_MODELS` builds an ``nn.Module`` for a dataset and
says whether it is an STL model (one model per task, one output each) or a
multi-task model (one model, one output per task), and how its task losses are
combined (:mod:`negtransfer.train.weighting`). Temporal models take (B, T, F)
inputs with a step mask (:class:`~negtransfer.data.timeseries.TimeSeriesMultiTaskDataset`);
the non-temporal ones take (B, F) rows (mnist-variation, or any
:class:`~negtransfer.data.dataset.MultiTaskDataset` with binary tasks).

Temporal (paper Table 2 and Table 4), data kind ``time-series``
    ``stl-lstm``, ``mtl-lstm``, ``stl-transformer``, ``mtl-transformer``,
    ``stl-retain``, ``mtl-retain``, ``stl-ua``, ``mtl-ua``, ``stl-sand``,
    ``mtl-sand``, ``stl-adacare``, ``mtl-adacare``, ``amtl-lstm``,
    ``retain-kendall``, ``tp-amtl`` and the ablations
    ``amtl-notransfer``, ``amtl-intratask``, ``amtl-samestep``, ``td-amtl``,
    ``tp-amtl-constrained`` (future-to-past), ``tp-amtl-epistemic``,
    ``tp-amtl-aleatoric``, ``tp-amtl-dropconnect`` (the official code's
    DropConnect noise); ``stl-lstm-public``, ``mtl-lstm-public`` (the official
    code's LSTM baselines: width 8, two layers, TP-AMTL's attention head);
    width-matched ones: ``tp-amtl-h16`` (TP-AMTL at width 16), ``stl-lstm-h8``
    (our LSTM at width 8), ``stl-lstm-public-h16`` (the public one at 16).
Non-temporal (paper Table 1), data kinds ``table`` and ``per-task-rows`` with binary tasks
    ``stl``, ``mtl`` (hard-sharing MLP), ``amtl-loss``, ``p-amtl``, ``p-amtl-dropconnect``.

Every model is trained by :func:`~negtransfer.train.temporal.fit` and scored by
test AUROC per task (:func:`train_and_score`); ``compare`` also records the
validation AUROC and loss of the checkpoint each model keeps (``val_auroc``,
``val_loss``: :func:`train_and_evaluate`), and ``--select-on-validation``
chooses builder options (``hidden``, ``dropout``, ...) by them. Options of ``negtransfer
compare``: ``--epochs`` (or ``--iterations``: the maximum number of epochs),
``--batch-size``, ``--lr``, ``--patience``, ``--set``
(:class:`~negtransfer.train.temporal.TemporalTrainConfig` fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from negtransfer.models.base import FitOptions, Metrics, ModelSpec, config_from_options

__all__ = [
    "CLINICAL_MODELS",
    "ClinicalModelSpec",
    "PAPER_COUNTERPART",
    "STL_COUNTERPART",
    "build_model",
    "check_model_options",
    "clinical_model_names",
    "model_specs",
    "model_weighting",
    "train_and_evaluate",
    "train_and_score",
]


@dataclass(frozen=True)
class ClinicalModelSpec:
    """How to build one named model.

    Parameters
    ----------
    name : str
    builder : callable
        ``builder(n_features, n_outputs, **options) -> nn.Module``.
    single_task : bool
        STL: one model per task (``n_outputs=1``).
    temporal : bool
        Takes (B, T, F) sequences; False: (B, F) rows.
    options : dict
        Keyword arguments for the builder.
    weighting : {"equal", "kendall", "model"}
        How the task losses are combined: their sum, Kendall et al.'s
        uncertainty weights, or the model's own ``combine_task_losses`` (the
        AMTL baselines, whose regulariser or running losses need the task losses).
    description : str
    """

    name: str
    builder: Callable[..., Any]
    single_task: bool
    temporal: bool
    options: dict = field(default_factory=dict)
    weighting: str = "equal"
    description: str = ""


def _tp_amtl(n_features: int, n_outputs: int, **options: Any):
    from negtransfer.nn.amtl import TPAMTL

    return TPAMTL(n_features, n_outputs, **options)


def _p_amtl(n_features: int, n_outputs: int, **options: Any):
    from negtransfer.nn.amtl import PAMTL

    return PAMTL(n_features, n_outputs, **options)


def _amtl_loss(n_features: int, n_outputs: int, **options: Any):
    from negtransfer.nn.amtl import LossBasedAMTL

    return LossBasedAMTL(n_features, n_outputs, **options)


def _baseline(class_name: str) -> Callable[..., Any]:
    def build(n_features: int, n_outputs: int, **options: Any):
        from negtransfer.nn import clinical_baselines

        return getattr(clinical_baselines, class_name)(n_features, n_outputs, **options)

    build.__name__ = f"build_{class_name}"
    return build


def _specs() -> dict[str, ClinicalModelSpec]:
    out: dict[str, ClinicalModelSpec] = {}
    for short, cls in (("lstm", "LSTMClassifier"), ("transformer", "TransformerClassifier"),
                       ("retain", "RETAIN"), ("ua", "UncertaintyAwareRETAIN"), ("sand", "SAnDClassifier")):  # fmt: skip
        out[f"stl-{short}"] = ClinicalModelSpec(f"stl-{short}", _baseline(cls), True, True, description=f"STL {cls}")
        out[f"mtl-{short}"] = ClinicalModelSpec(f"mtl-{short}", _baseline(cls), False, True,
                                                description=f"hard-sharing MTL {cls}")  # fmt: skip
    out["stl-lstm-public"] = ClinicalModelSpec("stl-lstm-public", _baseline("AttentionLSTM"), True, True,
                                               description="STL LSTM of the TP-AMTL code (width 8, 2 layers, "
                                                           "attention head)")  # fmt: skip
    out["mtl-lstm-public"] = ClinicalModelSpec("mtl-lstm-public", _baseline("AttentionLSTM"), False, True,
                                               description="hard-sharing MTL LSTM of the TP-AMTL code (width 8, "
                                                           "2 layers, attention head)")  # fmt: skip
    # width-matched baselines (issue 29): our LSTM at TP-AMTL's width 8, the public code's at our width 16
    out["stl-lstm-h8"] = ClinicalModelSpec("stl-lstm-h8", _baseline("LSTMClassifier"), True, True, {"hidden": 8},
                                           description="STL LSTMClassifier of width 8 (TP-AMTL's)")  # fmt: skip
    out["stl-lstm-public-h16"] = ClinicalModelSpec("stl-lstm-public-h16", _baseline("AttentionLSTM"), True, True,
                                                   {"hidden": 16}, description="STL LSTM of the TP-AMTL code at "
                                                   "width 16 (our baselines')")  # fmt: skip
    out["mtl-adacare"] = ClinicalModelSpec("mtl-adacare", _baseline("AdaCare"), False, True,
                                           description="hard-sharing MTL AdaCare (simplified)")  # fmt: skip
    out["stl-adacare"] = ClinicalModelSpec("stl-adacare", _baseline("AdaCare"), True, True,
                                           description="STL AdaCare (simplified)")  # fmt: skip
    out["amtl-lstm"] = ClinicalModelSpec("amtl-lstm", _baseline("AMTLLSTM"), False, True, weighting="model",
                                         description="AMTL (Lee et al. 2016) on a shared LSTM")  # fmt: skip
    out["retain-kendall"] = ClinicalModelSpec("retain-kendall", _baseline("RETAIN"), False, True, weighting="kendall",
                                              description="MTL RETAIN with Kendall uncertainty loss weights")  # fmt: skip
    variants: dict[str, dict[str, Any]] = {
        "tp-amtl": {},
        "amtl-notransfer": {"transfer": "none"},
        "amtl-intratask": {"transfer": "intra-task"},
        "amtl-samestep": {"transfer": "same-step"},
        "td-amtl": {"uncertainty": "deterministic"},
        "tp-amtl-constrained": {"transfer": "future-to-past"},
        "tp-amtl-epistemic": {"uncertainty": "epistemic"},
        "tp-amtl-aleatoric": {"uncertainty": "aleatoric"},
        "tp-amtl-dropconnect": {"noise": "dropconnect"},
        "tp-amtl-h16": {"hidden": 16},
    }
    for name, options in variants.items():
        out[name] = ClinicalModelSpec(name, _tp_amtl, False, True, options, description=f"TPAMTL({options or 'full'})")
    out["stl"] = ClinicalModelSpec("stl", _baseline("MLPClassifier"), True, False, description="STL MLP")
    out["mtl"] = ClinicalModelSpec("mtl", _baseline("MLPClassifier"), False, False, description="hard-sharing MLP")
    out["p-amtl"] = ClinicalModelSpec("p-amtl", _p_amtl, False, False, description="P-AMTL (non-temporal)")
    out["p-amtl-dropconnect"] = ClinicalModelSpec("p-amtl-dropconnect", _p_amtl, False, False, {"noise": "dropconnect"},
                                                  description="P-AMTL with DropConnect task layers")  # fmt: skip
    out["amtl-loss"] = ClinicalModelSpec("amtl-loss", _amtl_loss, False, False, weighting="model",
                                         description="AMTL-Loss: loss-based transfer weights (Table 1)")  # fmt: skip
    return out


CLINICAL_MODELS: dict[str, ClinicalModelSpec] = _specs()

#: The single-task model each multi-task model is compared with (TP-AMTL builds on an LSTM).
STL_COUNTERPART = {
    "mtl-lstm": "stl-lstm", "mtl-transformer": "stl-transformer", "mtl-retain": "stl-retain",
    "mtl-ua": "stl-ua", "mtl-sand": "stl-sand", "retain-kendall": "stl-retain",
    "tp-amtl": "stl-lstm", "amtl-notransfer": "stl-lstm", "amtl-intratask": "stl-lstm",
    "amtl-samestep": "stl-lstm", "td-amtl": "stl-lstm", "tp-amtl-constrained": "stl-lstm",
    "tp-amtl-epistemic": "stl-lstm", "tp-amtl-aleatoric": "stl-lstm", "mtl": "stl", "p-amtl": "stl",
    "mtl-adacare": "stl-adacare", "amtl-lstm": "stl-lstm", "amtl-loss": "stl",
    "tp-amtl-dropconnect": "stl-lstm", "p-amtl-dropconnect": "stl", "mtl-lstm-public": "stl-lstm-public",
    "tp-amtl-h16": "stl-lstm",
}  # fmt: skip


#: The public TP-AMTL code's single-task baseline (width 8, two layers, TP-AMTL's attention head) for the models
#: built on its LSTM, where it differs from ours (``negtransfer compare --baselines paper|both``).
PAPER_COUNTERPART = {name: "stl-lstm-public" for name, ours in STL_COUNTERPART.items() if ours == "stl-lstm"
                     and name != "mtl-lstm"}

#: Models whose code changed their numbers (issue 12: stop-gradients on the transfer path, L2 on the
#: base network only, validation with as many MC passes as test); see ``ModelSpec.version``.
MODEL_VERSIONS = {name: 2 for name, spec in CLINICAL_MODELS.items() if spec.builder in (_tp_amtl, _p_amtl)}


def clinical_model_names(temporal: bool | None = None) -> list[str]:
    """Names of the catalogued models (only temporal or non-temporal ones if asked)."""
    return [n for n, s in CLINICAL_MODELS.items() if temporal is None or s.temporal == temporal]


def _spec(name: str) -> ClinicalModelSpec:
    spec = CLINICAL_MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; the models are: {', '.join(CLINICAL_MODELS)}")
    return spec


def build_model(name: str, n_features: int, n_outputs: int, **overrides: Any):
    """Build the named model; ``overrides`` replace its default options."""
    spec = _spec(name)
    return spec.builder(n_features, n_outputs, **{**spec.options, **overrides})


class _ModelLoss:
    """The combiner of a model whose loss needs the task losses (``model.combine_task_losses``)."""

    def __init__(self, model):
        self.model = model

    def __call__(self, losses, present):
        return self.model.combine_task_losses(losses, present)


def model_weighting(name: str, model, n_outputs: int):
    """How model ``name`` (built as ``model``) combines its ``n_outputs`` task losses."""
    from negtransfer.train.weighting import EqualWeighting, KendallWeighting

    kind = _spec(name).weighting
    if kind == "model":
        return _ModelLoss(model)
    return KendallWeighting(n_outputs) if kind == "kendall" else EqualWeighting()


def train_and_score(name: str, dataset, seed: int, config=None, options: dict | None = None) -> dict[str, float]:
    """Train the named model on ``dataset`` (one model per task for STL) and return test AUROC per task.

    ``torch.manual_seed(seed)`` precedes every model's construction and
    :func:`~negtransfer.train.temporal.fit` uses ``seed``, so the scores are
    reproducible. ``options`` replace the model's builder options (``hidden``,
    ``dropout`` ...).
    """
    return train_and_evaluate(name, dataset, seed, config, options)["auroc"]


def train_and_evaluate(name: str, dataset, seed: int, config=None, options: dict | None = None) -> Metrics:
    """As :func:`train_and_score`, with the validation metrics of the checkpoint each model keeps.

    Returns
    -------
    dict
        ``{"auroc": {task: test AUROC}, "val_auroc": {task: validation AUROC},
        "val_loss": {task: validation binary cross-entropy}}``
        (:func:`~negtransfer.train.temporal.evaluate_split`: the kept weights,
        as many MC passes as the test). The test AUROC is computed first, from
        the same random state as before the validation metrics existed, so it
        is unchanged by them.
    """
    import torch

    from negtransfer.train.temporal import TemporalTrainConfig, evaluate_auroc, evaluate_split, fit

    spec = _spec(name)
    config = config or TemporalTrainConfig()
    check_dataset(name, dataset)
    groups = [[k] for k in range(dataset.n_tasks)] if spec.single_task else [list(range(dataset.n_tasks))]
    metrics: Metrics = {"auroc": {}, "val_auroc": {}, "val_loss": {}}
    for group in groups:
        torch.manual_seed(seed)
        model = build_model(name, dataset.X.shape[-1], len(group), **(options or {}))
        trained = fit(model, dataset, task_indices=group, config=config, seed=seed,
                      weighting=model_weighting(name, model, len(group)))
        metrics["auroc"].update(evaluate_auroc(trained, dataset, "test", mc_samples=config.mc_samples, seed=seed))
        validation = evaluate_split(trained, dataset, "validation", mc_samples=config.mc_samples, seed=seed)
        metrics["val_auroc"].update(validation["auroc"])
        metrics["val_loss"].update(validation["loss"])
    return {metric: {task: per_task[task] for task in dataset.task_names if task in per_task}
            for metric, per_task in metrics.items()}


def check_model_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ValueError when model ``name`` cannot be built with builder ``options`` (unknown or bad values).

    Builds the model once on 3 features (cheap) with the options; used before
    any training by ``negtransfer compare --select-on-validation``.
    """
    spec = _spec(name)
    outputs = 1 if spec.single_task else 2
    try:
        build_model(name, 3, outputs, **dict(options))
    except TypeError as exc:
        raise ValueError(f"model {name!r} does not take the option(s) {', '.join(sorted(options))} ({exc}); "
                         f"choose options of its builder {spec.description!r}, e.g. hidden, dropout") from None
    except ValueError as exc:
        raise ValueError(f"model {name!r} with options {dict(options)}: {exc}") from None


# ---------------------------------------------------------------- negtransfer compare
def make_config(options: FitOptions):
    """:class:`~negtransfer.train.temporal.TemporalTrainConfig` from compare's options.

    ``--epochs`` (or ``--iterations``, kept for earlier command lines) sets the
    maximum number of epochs.

    Raises
    ------
    ValueError
        ``--optimizer sgd`` (these models train with Adam), both ``--epochs``
        and ``--iterations``, or a bad ``--set``.
    """
    from negtransfer.train.temporal import TemporalTrainConfig

    if options.optimizer not in (None, "adam"):
        raise ValueError(f"the TP-AMTL family trains with Adam (the paper's optimiser); leave out --optimizer "
                         f"{options.optimizer}")
    if options.epochs is not None and options.iterations is not None and options.epochs != options.iterations:
        raise ValueError("give --epochs or --iterations, not both (for the TP-AMTL family both set the maximum "
                         "number of epochs)")
    config = config_from_options(TemporalTrainConfig, options.settings, "TP-AMTL-family")
    epochs = options.epochs if options.epochs is not None else options.iterations
    given = {"max_epochs": epochs, "batch_size": options.batch_size, "lr": options.lr, "patience": options.patience}
    return replace(config, **{k: v for k, v in given.items() if v is not None})


def check_dataset(name: str, dataset: Any) -> None:
    """Sequences for the temporal models, rows for the others; binary tasks only (AUROC)."""
    spec = _spec(name)
    temporal = dataset.X.ndim == 3
    if spec.temporal != temporal:
        kind = "sequences (B, T, F)" if spec.temporal else "rows (B, F)"
        raise ValueError(f"model {name!r} takes {kind}, which dataset {dataset.name!r} does not have")
    bad = [t.name for t in dataset.tasks if t.kind != "binary"]
    if bad:
        raise ValueError(f"dataset {dataset.name!r} has non-binary tasks ({', '.join(bad[:5])}); model {name!r} "
                         f"is scored by AUROC and needs binary tasks: choose them with --tasks")


def fit_evaluate(name: str, dataset: Any, seed: int, config: Any, options: FitOptions,
                 model_options: Mapping[str, Any] | None = None) -> Metrics:  # fmt: skip
    """``negtransfer compare`` entry point: the named model's test AUROC and the validation metrics of its kept
    checkpoint per task (:func:`train_and_evaluate`); ``model_options`` replace builder options
    (``--select-on-validation``)."""
    return train_and_evaluate(name, dataset, seed, config, dict(model_options or {}))


def model_specs() -> list[ModelSpec]:
    """Every model of the family as a :class:`~negtransfer.models.base.ModelSpec`."""
    return [
        ModelSpec(name=name, family="clinical",
                  data_kinds=("time-series",) if spec.temporal else ("table", "per-task-rows"),
                  fit_evaluate=fit_evaluate, make_config=make_config, check_dataset=check_dataset,
                  check_options=check_model_options,
                  stl_counterpart=None if spec.single_task else STL_COUNTERPART.get(name),
                  description=spec.description, version=MODEL_VERSIONS.get(name, 1),
                  paper_counterpart=None if spec.single_task else PAPER_COUNTERPART.get(name))
        for name, spec in CLINICAL_MODELS.items()
    ]
