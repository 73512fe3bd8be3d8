"""What a comparison model is (:class:`ModelSpec`), the catalogue that holds them, and their fit options.

A *family* is one module of :mod:`negtransfer.models` (``vmtl``, ``clinical``)
with a ``model_specs()`` function returning its :class:`ModelSpec` s. Nothing
registers itself: :func:`negtransfer.models.catalogue.default_catalogue` lists
the families, and a user adds models to a catalogue of their own
(:meth:`ModelCatalogue.add`) and passes it to
:func:`negtransfer.jobs.compare.run_compare`.

A spec's functions are module-level functions, so specs can be sent to worker
processes (``--executor process``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

import numpy as np

__all__ = [
    "FitOptions",
    "Metrics",
    "ModelCatalogue",
    "ModelSpec",
    "config_from_options",
    "with_average",
]

#: ``{metric: {task: value}}`` on the test split (``"average"``: the mean over tasks).
Metrics = dict


@dataclass(frozen=True)
class FitOptions:
    """The options of ``negtransfer compare`` that every model family reads.

    Parameters
    ----------
    epochs, iterations, batch_size, lr, optimizer, patience : optional
        The shared training options (``--epochs`` ...); None: the family's
        default. A family refuses the ones that do not apply to it (its
        ``make_config`` raises ValueError naming the option and the fix).
    settings : mapping
        ``--set KEY=VALUE`` pairs: fields of the family's training config.
    fgsm_epsilons : tuple of float
        Noise levels for the FGSM robustness metric (families that report it).
    """

    epochs: int | None = None
    iterations: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    optimizer: str | None = None
    patience: int | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)
    fgsm_epsilons: tuple = ()

    def given(self) -> dict[str, Any]:
        """The shared training options given (not None), by their command-line names."""
        names = {"epochs": "--epochs", "iterations": "--iterations", "batch_size": "--batch-size", "lr": "--lr",
                 "optimizer": "--optimizer", "patience": "--patience"}
        return {flag: getattr(self, attr) for attr, flag in names.items() if getattr(self, attr) is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "iterations": self.iterations, "batch_size": self.batch_size, "lr": self.lr,
                "optimizer": self.optimizer, "patience": self.patience, "settings": dict(self.settings),
                "fgsm_epsilons": list(self.fgsm_epsilons)}


@dataclass(frozen=True)
class ModelSpec:
    """One model ``negtransfer compare`` can run.

    Parameters
    ----------
    name : str
        What ``--models`` calls it. Names may repeat across data kinds (``stl``
        for domains and for tables): the dataset's kind picks the entry.
    family : str
        The family module's name (``"vmtl"``, ``"clinical"``).
    data_kinds : tuple of str
        Kinds of data it accepts (:data:`negtransfer.data.builtin.DATA_KINDS`).
    fit_evaluate : callable
        ``fit_evaluate(name, dataset, seed, config, options) -> Metrics``: train
        on the dataset's training split (choices on validation only), return
        test-split metrics.
    make_config : callable
        ``make_config(options: FitOptions) -> config``: the family's training
        configuration (a dataclass with ``to_dict``); raises ValueError for an
        option that does not apply. Called once, before any training.
    check_dataset : callable, optional
        ``check_dataset(name, dataset)``: raises ValueError (naming the fix)
        for data the model cannot train on, before any training.
    stl_counterpart : str or None
        The single-task model its cells are compared with in the report.
    paper_counterpart : str or None
        The paper's public code's single-task baseline where that is another
        model than ``stl_counterpart`` (``stl-lstm-public`` for TP-AMTL), for
        ``negtransfer compare --baselines paper|both``; None: the paper's
        baseline is ``stl_counterpart``.
    description : str
    version : int
        Raised when the model's code changes its numbers (same name, same
        configuration), so that ``compare``'s stored results of the old code
        are not reused (part of the run-store key from 2 on).
    check_options : callable, optional
        ``check_options(name, model_options)``: raises ValueError for builder
        options (``hidden``, ``dropout`` ...) the model cannot take. A family
        that sets it takes ``fit_evaluate(..., model_options=...)`` and reports
        validation metrics (``val_auroc`` ...), so ``compare
        --select-on-validation`` can choose those options; None: it cannot.
    """

    name: str
    family: str
    data_kinds: tuple
    fit_evaluate: Callable[[str, Any, int, Any, FitOptions], Metrics]
    make_config: Callable[[FitOptions], Any]
    check_dataset: Callable[[str, Any], None] | None = None
    stl_counterpart: str | None = None
    description: str = ""
    version: int = 1
    paper_counterpart: str | None = None
    check_options: Callable[[str, Mapping[str, Any]], None] | None = None


class ModelCatalogue:
    """The models ``negtransfer compare`` knows, by name and data kind.

    Parameters
    ----------
    specs : iterable of ModelSpec
        In the order listings show them.
    """

    def __init__(self, specs: Sequence[ModelSpec] = ()):
        self._specs: dict[str, list[ModelSpec]] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: ModelSpec) -> None:
        """Add a model (replacing an entry of the same name that accepts the same kinds)."""
        entries = [s for s in self._specs.get(spec.name, []) if not set(s.data_kinds) & set(spec.data_kinds)]
        self._specs[spec.name] = entries + [spec]

    def names(self, kind: str | None = None) -> list[str]:
        """Model names (only those accepting ``kind`` if given), in the order they were added."""
        return [n for n, specs in self._specs.items() if kind is None or any(kind in s.data_kinds for s in specs)]

    def specs(self) -> list[ModelSpec]:
        return [s for specs in self._specs.values() for s in specs]

    def resolve(self, names: Sequence[str], kind: str) -> list[ModelSpec]:
        """The specs for ``names`` on data of ``kind``.

        Raises
        ------
        ValueError
            No, repeated or unknown names, or names with no entry for ``kind``;
            the message lists the valid models for this kind of data.
        """
        if not names:
            raise ValueError("no models named; give --models a,b,c")
        names = list(names)
        dups = sorted({n for n in names if names.count(n) > 1})
        if dups:
            raise ValueError(f"model(s) named more than once: {', '.join(dups)}")
        valid = self.names(kind)
        unknown = [n for n in names if n not in self._specs]
        if unknown:
            raise ValueError(f"unknown model(s) {', '.join(unknown)}; {_models_for(kind, valid)}")
        out = []
        for n in names:
            match = [s for s in self._specs[n] if kind in s.data_kinds]
            if not match:
                accepts = sorted({k for s in self._specs[n] for k in s.data_kinds})
                raise ValueError(
                    f"model {n!r} does not accept {kind} data (it takes {', '.join(accepts)}); "
                    f"{_models_for(kind, valid)}"
                )
            out.append(match[0])
        return out


def _models_for(kind: str, valid: Sequence[str]) -> str:
    """The models that take ``kind`` data, or, where none does (images, sequences), where such data can go."""
    if valid:
        return f"the models for {kind} data are: {', '.join(valid)}"
    return (f"no model of compare takes {kind} data; gains, group and sources train a built-in encoder on it "
            f"(--encoder cnn|lstm|transformer) or your own network (--model FILE.py:FUNCTION; model= in Python)")


def config_from_options(config_class: type[Any], settings: Mapping[str, Any] | None, family: str,
                        base: Any = None) -> Any:  # fmt: skip
    """The training config of one model family from ``compare``'s ``--set KEY=VALUE`` settings.

    Parameters
    ----------
    config_class : dataclass type
        The family's training configuration (e.g. ``VariationalConfig``).
    settings : mapping, optional
        The ``--set`` pairs (values as parsed from JSON, or strings).
    family : str
        Named in the error for an unknown setting.
    base : config_class instance, optional
        The settings go on top of it (a named preset); default: the class defaults.

    Raises
    ------
    ValueError
        A setting that is not a field of ``config_class`` (the message lists the
        fields), or a value of the wrong type.
    """
    settings = dict(settings or {})
    fields = config_class.__dataclass_fields__
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        raise ValueError(f"unknown {family} training setting(s) {', '.join(unknown)}; "
                         f"the settings are: {', '.join(sorted(fields))}")
    defaults = config_class()
    for key, value in settings.items():
        takes_text = "str" in str(fields[key].type)  # e.g. ``float | str | None``: a name is a valid value
        settings[key] = value if takes_text and isinstance(value, str) else _setting_value(key, value,
                                                                                             getattr(defaults, key))
    return config_class(**settings) if base is None else replace(base, **settings)


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


def with_average(metrics: Mapping[str, Mapping[str, float]]) -> Metrics:
    """``metrics`` with an ``"average"`` task (the mean over finite task values) where a metric has none."""
    out: Metrics = {}
    for metric, per_task in metrics.items():
        values = {task: float(v) for task, v in per_task.items()}
        if "average" not in values:
            finite = [v for v in values.values() if v is not None and not math.isnan(v)]
            values["average"] = float(np.mean(finite)) if finite else float("nan")
        out[metric] = values
    return out
