"""The VMTL family (domains-as-tasks data): VMTL, VMTL-AC, their baselines and ablations, as recipes of parts.

Each named model (:data:`PRESETS`) says which parts of :mod:`negtransfer.nn.vmtl`
it is made of and how its task losses are weighted:

===================  =========  ==========  ==========  ========================  ========
name                 encoder    z           w           prior                     weights
===================  =========  ==========  ==========  ========================  ========
stl                  per task   point       point       -                         equal
vstl                 per task   Gaussian    Gaussian    N(0, I)                   equal
bmtl                 shared     point       point       -                         equal
kendall              shared     point       point       -                         Kendall
vbmtl                shared     Gaussian    Gaussian    N(0, I)                   equal
vmtl                 shared     Gaussian    Gaussian    Gumbel-Softmax mixtures   equal
vmtl-ac              shared     Gaussian    amortised   Gumbel-Softmax mixtures   equal
vib                  shared     amortised   point       N(0, I) on z, beta 1e-3   Kendall
bakker               shared     point       point       2 clusters on W_t         equal
mrn                  shared     point       point       task covariance on W      equal
===================  =========  ==========  ==========  ========================  ========

plus the ablations of supplement Tables C.7-C.10, C.14 and C.15:
``vmtl-z-only``, ``vmtl-w-only``, ``vmtl-mean-prior``, ``vmtl-learnable-prior``,
``vmtl-same-weights``, ``vmtl-mc1``, ``vmtl-mc50``.

``vib`` is Qian et al.'s (2020) multi-task variational information bottleneck;
``bakker`` and ``mrn`` are simplified versions of Bakker and Heskes (2003) task
clustering (no gating: the tasks here have no task features) and of Long et
al.'s (2017) multilinear relationship networks (the task covariance only, on
the classifier layer).

For ``negtransfer compare`` (:func:`model_specs`) every model is trained with
:func:`~negtransfer.train.variational.fit_variational` (each task keeps its
best-validation state) and scored on the test split by
:func:`~negtransfer.train.variational.evaluate_model` (``accuracy``,
``entropy_ratio``, ``fgsm_accuracy@eps`` with ``--fgsm``) plus
``validation_accuracy`` (each task's checkpoint's). Options: ``--iterations``,
``--lr``, ``--patience`` (evaluations without a better validation accuracy, per
task), ``--set`` (:class:`~negtransfer.train.variational.VariationalConfig`
fields).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from negtransfer.models.base import FitOptions, Metrics, ModelSpec, config_from_options

__all__ = ["MODEL_PRESETS", "PRESETS", "Preset", "STL_COUNTERPARTS", "make_model", "make_weighting", "model_specs"]


@dataclass(frozen=True)
class Preset:
    """The parts of one named model (see the module docstring's table).

    Parameters
    ----------
    z : {"point", "gaussian", "amortised"}
        The encoder's posterior over z.
    w : {"point", "gaussian", "amortised"}
        The classifiers' posterior.
    shared_encoder : bool
        One encoder for all tasks, or one per task.
    prior : {"normal", "gumbel", "learnable", "mean"}
        N(0, I), or a mixture of the other tasks' posteriors with those weights.
    shared_prior_logits : bool
        One set of mixture logits for z and w.
    output_prior : {None, "clusters", "task-covariance"}
    n_clusters : int
    weighting : {"equal", "kendall"}
    n_samples : int
        L = M, Monte Carlo samples of z and of the logits (per z sample).
    classifier_bias : bool
        Amortised classifiers only: a per-class bias from its own amortised
        network (the official VMTL-AC code's bias generator).
    z_kl_weight : float, optional
        A fixed z-KL weight (the VIB's beta) instead of the trainer's.
    description : str
    """

    z: str
    w: str
    shared_encoder: bool = True
    prior: str = "normal"
    shared_prior_logits: bool = False
    output_prior: str | None = None
    n_clusters: int = 2
    weighting: str = "equal"
    n_samples: int = 10
    classifier_bias: bool = True
    z_kl_weight: float | None = None
    description: str = ""


_VMTL = Preset("gaussian", "gaussian", prior="gumbel",
               description="VMTL: Gumbel-Softmax priors over the other tasks' posteriors")  # fmt: skip

#: The named models.
PRESETS: dict[str, Preset] = {
    "stl": Preset("point", "point", shared_encoder=False, description="single-task networks (deterministic)"),
    "vstl": Preset("gaussian", "gaussian", shared_encoder=False,
                   description="variational single-task networks, N(0, I) priors"),
    "bmtl": Preset("point", "point", description="shared deterministic encoder, per-task classifiers"),
    "kendall": Preset("point", "point", weighting="kendall",
                      description="BMTL with Kendall et al. uncertainty loss weighting"),
    "vbmtl": Preset("gaussian", "gaussian", description="variational BMTL, N(0, I) priors"),
    "vmtl": _VMTL,
    "vmtl-ac": replace(_VMTL, w="amortised", description="VMTL with amortised classifiers"),
    # ablations (Tables C.7-C.10, C.14, C.15)
    "vmtl-z-only": replace(_VMTL, w="point", description="VMTL ablation: Bayesian z only"),
    "vmtl-w-only": replace(_VMTL, z="point", description="VMTL ablation: Bayesian w only"),
    "vmtl-mean-prior": replace(_VMTL, prior="mean", description="VMTL ablation: uniform mixture prior"),
    "vmtl-learnable-prior": replace(_VMTL, prior="learnable", description="VMTL ablation: learnable mixture weights"),
    "vmtl-same-weights": replace(_VMTL, shared_prior_logits=True,
                                 description="VMTL ablation: one set of prior logits for z and w"),
    "vmtl-mc1": replace(_VMTL, n_samples=1, description="VMTL ablation: 1 Monte Carlo sample"),
    "vmtl-mc50": replace(_VMTL, n_samples=50, description="VMTL ablation: 50 Monte Carlo samples"),
    # further baselines of Table C.13
    "vib": Preset("amortised", "point", z_kl_weight=1e-3, weighting="kendall",
                  description="Qian et al. multi-task variational information bottleneck"),
    "bakker": Preset("point", "point", output_prior="clusters",
                     description="Bakker and Heskes task clustering prior on the classifiers (simplified)"),
    "mrn": Preset("point", "point", output_prior="task-covariance",
                  description="Long et al. multilinear relationship networks, task covariance only (simplified)"),
}
MODEL_PRESETS = PRESETS

#: Which single-task model each model is compared with in the report (default: vstl).
STL_COUNTERPARTS = {"stl": None, "vstl": None, "bmtl": "stl", "kendall": "stl", "vib": "stl", "bakker": "stl",
                    "mrn": "stl"}


def make_model(name: str, n_features: int, n_classes: int, n_tasks: int, *, hidden: int = 64, latent: int = 64,
               input_dropout: float = 0.2, init_std: float = 1e-2, n_w_samples: int | None = None,
               **overrides: Any):
    """The :class:`~negtransfer.nn.vmtl.VariationalMultiTaskNet` of the named model, built from its parts.

    Parameters
    ----------
    name : str
        A key of :data:`PRESETS`.
    n_features, n_classes, n_tasks : int
    hidden, latent : int
        Width of the encoders' FC + ELU layer (and of the amortised classifier) and of z.
    input_dropout : float
        Dropout on the inputs (0.7 on 4096-d CNN features in the official code).
    init_std : float
        Initial posterior standard deviation of Gaussian weights (the official
        code: softplus(-3), about 0.049).
    n_w_samples : int, optional
        M, logit samples per z sample (default: the preset's ``n_samples``;
        the official code draws 1).
    **overrides
        Fields of the :class:`Preset` to change (e.g. ``n_samples=3``).

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones) or bad sizes.
    """
    import math

    from negtransfer.nn import vmtl as parts

    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; the models are: {', '.join(PRESETS)}")
    p = replace(PRESETS[name], **overrides)
    for label, value in (("n_features", n_features), ("n_classes", n_classes), ("n_tasks", n_tasks),
                         ("hidden", hidden), ("latent", latent)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if not 0 <= input_dropout < 1:
        raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}")
    if not init_std > 0:
        raise ValueError(f"init_std must be positive, got {init_std}")
    # the parts are built in this order (encoders, classifiers, prior, output prior): it fixes the initialisation
    encoder = {"point": lambda: parts.PointEncoder(n_features, hidden, latent, input_dropout),
               "gaussian": lambda: parts.GaussianEncoder(n_features, hidden, latent, input_dropout, init_std),
               "amortised": lambda: parts.AmortisedEncoder(n_features, hidden, latent, input_dropout, init_std)}[p.z]
    encoders = [encoder() for _ in range(1 if p.shared_encoder else n_tasks)]
    build_classifiers: dict[str, Callable[[], parts.PointClassifiers | parts.AmortisedClassifiers]] = {
        "point": lambda: parts.PointClassifiers(n_tasks, latent, n_classes),
        "gaussian": lambda: parts.GaussianClassifiers(n_tasks, latent, n_classes, init_std),
        "amortised": lambda: parts.AmortisedClassifiers(n_tasks, n_features, n_classes, hidden, latent, init_std,
                                                        bias=p.classifier_bias),
    }
    classifiers = build_classifiers[p.w]()
    prior = (parts.NormalPrior() if p.prior == "normal"
             else parts.MixturePrior(n_tasks, p.prior, shared_logits=p.shared_prior_logits))
    output_prior: parts.ClusterPrior | parts.TaskCovariancePrior | None = None
    if p.output_prior == "clusters":
        output_prior = parts.ClusterPrior(p.n_clusters, latent * n_classes, 1.0 / math.sqrt(latent))
    elif p.output_prior == "task-covariance":
        output_prior = parts.TaskCovariancePrior()
    return parts.VariationalMultiTaskNet(encoders, classifiers, prior=prior, output_prior=output_prior,
                                         n_z_samples=p.n_samples,
                                         n_w_samples=p.n_samples if n_w_samples is None else n_w_samples,
                                         z_kl_weight=p.z_kl_weight)


def make_weighting(name: str, n_tasks: int):
    """The loss weighting the named model trains with (:mod:`negtransfer.train.weighting`)."""
    from negtransfer.train.weighting import make_weighting as weighting

    if name not in PRESETS:
        raise ValueError(f"unknown model {name!r}; the models are: {', '.join(PRESETS)}")
    return weighting(PRESETS[name].weighting, n_tasks)


# ---------------------------------------------------------------- negtransfer compare
def make_config(options: FitOptions):
    """:class:`~negtransfer.train.variational.VariationalConfig` from compare's options.

    Raises
    ------
    ValueError
        ``--epochs``, ``--batch-size`` or ``--optimizer sgd``, which do not apply
        to this family (the message says what does), or a bad ``--set``.

    ``--set preset=vmtl-public`` starts from that training preset
    (:data:`~negtransfer.train.variational.TRAINING_PRESETS`); the other
    ``--set`` pairs and ``--iterations``/``--lr``/``--patience`` go on top.
    """
    from negtransfer.train.variational import VariationalConfig

    if options.epochs is not None:
        raise ValueError("the VMTL models train for a number of iterations, not epochs: give --iterations N "
                         "instead of --epochs")
    if options.batch_size is not None:
        raise ValueError("--batch-size does not apply to the VMTL models: a batch holds per_class rows of every "
                         "class of every task; give --set per_class=N")
    if options.optimizer not in (None, "adam"):
        raise ValueError(f"the VMTL models train with Adam (the paper's optimiser); leave out --optimizer "
                         f"{options.optimizer}")
    settings = dict(options.settings)
    base = VariationalConfig.preset(str(settings.pop("preset", "default")))
    config = config_from_options(VariationalConfig, settings, "VMTL", base=base)
    given = {"iterations": options.iterations, "lr": options.lr, "patience": options.patience}
    return replace(config, **{k: v for k, v in given.items() if v is not None})


def check_dataset(name: str, dataset: Any) -> None:
    """Domains-as-tasks data only (per-task rows, classification tasks over one label space)."""
    from negtransfer.train.variational import check_domains_dataset

    check_domains_dataset(dataset)


def fit_evaluate(name: str, dataset: Any, seed: int, config: Any, options: FitOptions) -> Metrics:
    """Train model ``name`` on ``dataset`` with ``seed``; test-split metrics per task.

    Also ``validation_accuracy``: each task's best validation accuracy (its
    checkpoint's), the figure to compare training settings by without looking
    at the test split.
    """
    import torch

    from negtransfer.train.variational import evaluate_model, fit_variational

    check_dataset(name, dataset)
    torch.manual_seed(seed)
    model = make_model(name, dataset.n_features, dataset.tasks[0].n_classes, dataset.n_tasks,
                       hidden=config.hidden, latent=config.latent, input_dropout=config.input_dropout,
                       init_std=config.init_std, n_w_samples=config.n_w_samples)
    fit = fit_variational(model, dataset, config, seed=seed, weighting=make_weighting(name, dataset.n_tasks))
    metrics = evaluate_model(fit, dataset, "test", fgsm_epsilons=tuple(options.fgsm_epsilons))
    metrics["validation_accuracy"] = dict(zip(dataset.task_names, map(float, fit.best_validation_accuracy), strict=True))
    return metrics


def model_specs() -> list[ModelSpec]:
    """Every VMTL-family model as a :class:`~negtransfer.models.base.ModelSpec` (domains data)."""
    return [
        ModelSpec(name=name, family="vmtl", data_kinds=("domains",), fit_evaluate=fit_evaluate,
                  make_config=make_config, check_dataset=check_dataset,
                  stl_counterpart=STL_COUNTERPARTS.get(name, "vstl"), description=preset.description,
                  version=2 if preset.w == "amortised" else 1)
        for name, preset in PRESETS.items()
    ]
