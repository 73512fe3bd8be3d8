"""Model catalogue of the TP-AMTL comparison: names -> builders, for ``negtransfer compare``.

Each entry builds an ``nn.Module`` for a dataset and says whether it is an STL
model (one model per task, one output each) or a multi-task model (one model,
one output per task). Temporal models take (B, T, F) inputs with a step mask
(:class:`~negtransfer.data.timeseries.TimeSeriesMultiTaskDataset`); the
non-temporal ones take (B, F) (mnist-variation, any
:class:`~negtransfer.data.dataset.MultiTaskDataset` with binary tasks).

Temporal (paper Table 2 and Table 4)
    ``stl-lstm``, ``mtl-lstm``, ``stl-transformer``, ``mtl-transformer``,
    ``stl-retain``, ``mtl-retain``, ``stl-ua``, ``mtl-ua``, ``stl-sand``,
    ``mtl-sand``, ``stl-adacare``, ``mtl-adacare``, ``amtl-lstm``,
    ``retain-kendall``, ``tp-amtl`` and the ablations
    ``amtl-notransfer``, ``amtl-intratask``, ``amtl-samestep``, ``td-amtl``,
    ``tp-amtl-constrained`` (future-to-past), ``tp-amtl-epistemic``,
    ``tp-amtl-aleatoric``.
Non-temporal (paper Table 1)
    ``stl``, ``mtl`` (hard-sharing MLP), ``amtl-loss``, ``p-amtl``.

Importing this module registers every model with ``negtransfer compare``
(:func:`negtransfer.jobs.compare.register_model`; data kind ``"time-series"``
for the temporal models, ``"multi-task"`` for the others) and the datasets
``pbcseq`` and ``nafld`` (:func:`negtransfer.jobs.compare.register_dataset`).
Compare's ``--iterations`` sets the maximum number of epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

__all__ = ["ClinicalModelSpec", "CLINICAL_MODELS", "build_model", "clinical_model_names"]


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
    description : str
    """

    name: str
    builder: Callable[..., Any]
    single_task: bool
    temporal: bool
    options: dict = field(default_factory=dict)
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
    out["mtl-adacare"] = ClinicalModelSpec("mtl-adacare", _baseline("AdaCare"), False, True,
                                           description="hard-sharing MTL AdaCare (simplified)")  # fmt: skip
    out["stl-adacare"] = ClinicalModelSpec("stl-adacare", _baseline("AdaCare"), True, True,
                                           description="STL AdaCare (simplified)")  # fmt: skip
    out["amtl-lstm"] = ClinicalModelSpec("amtl-lstm", _baseline("AMTLLSTM"), False, True,
                                         description="AMTL (Lee et al. 2016) on a shared LSTM")  # fmt: skip
    out["retain-kendall"] = ClinicalModelSpec("retain-kendall", _baseline("KendallRETAIN"), False, True,
                                              description="MTL RETAIN with Kendall uncertainty loss weights")  # fmt: skip
    variants = {
        "tp-amtl": {},
        "amtl-notransfer": {"transfer": "none"},
        "amtl-intratask": {"transfer": "intra-task"},
        "amtl-samestep": {"transfer": "same-step"},
        "td-amtl": {"uncertainty": "deterministic"},
        "tp-amtl-constrained": {"transfer": "future-to-past"},
        "tp-amtl-epistemic": {"uncertainty": "epistemic"},
        "tp-amtl-aleatoric": {"uncertainty": "aleatoric"},
    }
    for name, options in variants.items():
        out[name] = ClinicalModelSpec(name, _tp_amtl, False, True, options, f"TPAMTL({options or 'full'})")
    out["stl"] = ClinicalModelSpec("stl", _baseline("MLPClassifier"), True, False, description="STL MLP")
    out["mtl"] = ClinicalModelSpec("mtl", _baseline("MLPClassifier"), False, False, description="hard-sharing MLP")
    out["p-amtl"] = ClinicalModelSpec("p-amtl", _p_amtl, False, False, description="P-AMTL (non-temporal)")
    out["amtl-loss"] = ClinicalModelSpec("amtl-loss", _amtl_loss, False, False,
                                         description="AMTL-Loss: loss-based transfer weights (Table 1)")  # fmt: skip
    return out


CLINICAL_MODELS: dict[str, ClinicalModelSpec] = _specs()


def clinical_model_names(temporal: bool | None = None) -> list[str]:
    """Names of the catalogued models (only temporal or non-temporal ones if asked)."""
    return [n for n, s in CLINICAL_MODELS.items() if temporal is None or s.temporal == temporal]


def build_model(name: str, n_features: int, n_outputs: int, **overrides: Any):
    """Build the named model; ``overrides`` replace its default options."""
    spec = CLINICAL_MODELS.get(name)
    if spec is None:
        raise ValueError(f"unknown model {name!r}; the models are: {', '.join(CLINICAL_MODELS)}")
    return spec.builder(n_features, n_outputs, **{**spec.options, **overrides})


# ---------------------------------------------------------------- negtransfer compare
#: The single-task model each multi-task model is compared with (TP-AMTL builds on an LSTM).
STL_COUNTERPART = {
    "mtl-lstm": "stl-lstm", "mtl-transformer": "stl-transformer", "mtl-retain": "stl-retain",
    "mtl-ua": "stl-ua", "mtl-sand": "stl-sand", "retain-kendall": "stl-retain",
    "tp-amtl": "stl-lstm", "amtl-notransfer": "stl-lstm", "amtl-intratask": "stl-lstm",
    "amtl-samestep": "stl-lstm", "td-amtl": "stl-lstm", "tp-amtl-constrained": "stl-lstm",
    "tp-amtl-epistemic": "stl-lstm", "tp-amtl-aleatoric": "stl-lstm", "mtl": "stl", "p-amtl": "stl",
    "mtl-adacare": "stl-adacare", "amtl-lstm": "stl-lstm", "amtl-loss": "stl",
}  # fmt: skip


def fit_evaluate(name: str, dataset: Any, seed: int, options: Any) -> dict[str, dict[str, float]]:
    """``negtransfer compare`` entry point: ``{"auroc": {task: test AUROC}}`` of the named model.

    ``options["config"]`` (``--set KEY=VALUE``) sets
    :class:`~negtransfer.train.temporal.TemporalTrainConfig` fields;
    ``options["iterations"]`` (if set) is the maximum number of epochs.
    """
    from dataclasses import replace

    from negtransfer.jobs.clinical import train_and_score
    from negtransfer.jobs.compare import config_from_options
    from negtransfer.train.temporal import TemporalTrainConfig

    family = "time-series" if CLINICAL_MODELS[name].temporal else f"{name!r} (multi-task table model)"
    config = config_from_options(TemporalTrainConfig, options, family)
    if options and options.get("iterations"):
        config = replace(config, max_epochs=int(options["iterations"]))
    return {"auroc": train_and_score(name, dataset, seed, config)}


def _register_with_compare() -> None:
    from functools import partial

    from negtransfer.jobs.compare import ModelSpec, register_dataset, register_model

    for name, spec in CLINICAL_MODELS.items():
        register_model(ModelSpec(
            name=name,
            data_kinds=("time-series",) if spec.temporal else ("multi-task",),
            fit_evaluate=partial(fit_evaluate, name),
            stl_counterpart=None if spec.single_task else STL_COUNTERPART.get(name),
            description=spec.description,
        ))  # fmt: skip

    def _loader(dataset_name: str):
        def load(seed: int):
            from negtransfer.data.timeseries import load_timeseries

            return load_timeseries(dataset_name, seed=seed)

        return load

    for dataset_name in ("pbcseq", "nafld"):
        register_dataset(dataset_name, _loader(dataset_name))


_register_with_compare()
