"""What a run is: its specification (:class:`RunSpec`), its kind (:class:`RunKind`) and where the store keeps it.

Every trained model of every command is one :class:`RunSpec`: a *kind* (a
group model of the stacked trainer, the tracked all-task run that also measures
affinity, GRAD-TAE's base model, one ``compare`` model, ...), a *group* of
task indices, a *repeat*, a *configuration* and *extras* (the kind's own
choices, e.g. how often affinity is tracked). :func:`negtransfer.runs.runner.ensure`
makes a list of specifications exist: it reads what the run store holds, sends
the rest to the executor and writes each result as it arrives.

The key rule (:func:`store_keys`), one for every kind: a specification of
dataset fingerprint ``fp`` and job seed ``s`` is stored

* as a row of the ``runs`` table keyed by (``fp``, the group as ``"0+3+5"``,
  the training seed, the configuration's hash), when its kind stores a model
  result (:attr:`RunKind.stores_model`), and
* as one artifact per slot of its kind (:attr:`RunKind.artifacts`), keyed by
  the slot's template filled with ``fingerprint``, ``seed`` (the training
  seed), ``config`` (the configuration's hash), ``group`` and the extras.

The training seed is ``kind.training_seed(s, repeat)``:
:func:`~negtransfer.train.batched.repeat_seed` for the hard-sharing kinds, so
repeat 0 is the run of a job without repeats. Two specifications that share a
store entry are the same run: a group specification of the all-task group and
the tracked run of the same repeat and configuration both store that run's
row, so :func:`~negtransfer.runs.runner.ensure` trains the tracked run alone
(its model result is bit-identical to the stacked trainer's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

from negtransfer.train.batched import group_text, repeat_seed
from negtransfer.train.config import config_hash
from negtransfer.train.results import ModelResult

__all__ = ["GROUP", "ArtifactSlot", "RunKind", "RunOutput", "RunSpec", "StoreKeys", "config_digest", "group_specs",
           "store_keys"]

Group = tuple[int, ...]


@dataclass(frozen=True)
class ArtifactSlot:
    """One JSON value a kind of run stores next to (or instead of) its model result.

    Parameters
    ----------
    name : str
        The value's name in :attr:`RunOutput.records`.
    template : str
        Its store key, a :meth:`str.format` template over ``fingerprint``,
        ``seed``, ``config``, ``group`` and the specification's extras.
    when : str, optional
        The extra that asks for this value: the slot exists only for
        specifications whose extra of that name is true (e.g. ``trace``).
    """

    name: str
    template: str
    when: str | None = None


@dataclass(frozen=True)
class RunKind:
    """A kind of run: what it stores, and how one is trained.

    Parameters
    ----------
    name : str
    stores_model : bool
        Its output has a :class:`~negtransfer.train.results.ModelResult`, kept
        as a ``runs`` row of the specification's group.
    artifacts : tuple of ArtifactSlot
        The JSON values it keeps in the ``artifacts`` table.
    train : callable, optional
        ``train(dataset, spec, seed) -> RunOutput`` for one specification (the
        job's seed; the kind derives the training seed). A module-level
        function, so that a process pool or Ray can send it to a worker.
        None for the stacked kind, trained in vectorised chunks by
        :meth:`~negtransfer.runs.executors.Executor.run`.
    training_seed : callable
        ``training_seed(seed, repeat)``, module-level; default
        :func:`~negtransfer.train.batched.repeat_seed`.
    """

    name: str
    stores_model: bool
    artifacts: tuple[ArtifactSlot, ...] = ()
    train: Callable[[Any, "RunSpec", int], "RunOutput"] | None = None
    training_seed: Callable[[int, int], int] = repeat_seed

    @property
    def stacked(self) -> bool:
        """Trained in vectorised chunks of group models (the stacked trainer)."""
        return self.train is None


@dataclass(frozen=True)
class RunSpec:
    """One run: a kind, a group of tasks, a repeat, a configuration and the kind's extras.

    Parameters
    ----------
    kind : RunKind
    group : sequence of int
        Task indices (stored sorted and without duplicates); ``()`` for a
        kind whose model takes every task of its data (``compare``).
    repeat : int
        Repeat number (>= 0); the training seed is ``kind.training_seed(seed, repeat)``.
    config : dataclass
        The training configuration (:class:`~negtransfer.train.config.TrainConfig`
        or a model family's config); its hash is part of the key.
    extras : mapping or tuple of (name, value) pairs
        The kind's own choices (stored as a tuple of pairs sorted by name);
        those its key templates name are part of the key, the others travel
        to the worker only.

    Raises
    ------
    ValueError
        A negative repeat or task index.
    """

    kind: RunKind
    group: Group
    repeat: int
    config: Any
    extras: Mapping[str, Any] | tuple[tuple[str, Any], ...] = field(default=())  # a sorted tuple once made

    def __post_init__(self) -> None:
        group = tuple(sorted({int(t) for t in self.group}))
        if group and group[0] < 0:
            raise ValueError(f"a run's group names task indices >= 0, got {list(self.group)}")
        if isinstance(self.repeat, bool) or int(self.repeat) != self.repeat or self.repeat < 0:
            raise ValueError(f"a run's repeat must be a whole number >= 0, got {self.repeat!r}")
        extras = self.extras.items() if isinstance(self.extras, Mapping) else self.extras
        object.__setattr__(self, "group", group)
        object.__setattr__(self, "repeat", int(self.repeat))
        object.__setattr__(self, "extras", tuple(sorted((str(k), v) for k, v in extras)))

    def extra(self, name: str, default: Any = None) -> Any:
        """The extra ``name``, or ``default``."""
        return dict(self.extras).get(name, default)


@dataclass
class RunOutput:
    """What one run produced: its model result and its named JSON values.

    Attributes
    ----------
    result : ModelResult or None
        For kinds that store a model result (``repeat`` set to the specification's).
    records : dict
        Artifact name -> JSON-ready value (:attr:`ArtifactSlot.name`).
    """

    result: ModelResult | None = None
    records: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoreKeys:
    """Where the store keeps one specification's output (:func:`store_keys`).

    Attributes
    ----------
    run : tuple or None
        ``(fingerprint, group text, training seed, config hash)``: its ``runs`` row.
    artifacts : tuple of (name, key)
    """

    run: tuple[str, str, int, str] | None
    artifacts: tuple[tuple[str, str], ...]

    def entries(self) -> frozenset:
        """Every store entry, as a set (two specifications with equal sets are the same run)."""
        return frozenset(([("run", *self.run)] if self.run else []) + [("artifact", k) for _, k in self.artifacts])

    def model_row(self) -> tuple[str, str, int, str]:
        """``run``, for a kind that stores a model result (every stacked kind does).

        Raises
        ------
        ValueError
            The kind stores no model result (its keys are artifacts only).
        """
        if self.run is None:
            raise ValueError("this run stores no model result, only artifacts: it has no runs row")
        return self.run


def config_digest(config: Any) -> str:
    """The configuration's hash in store keys: ``config.config_hash()`` where defined, else :func:`config_hash`."""
    own = getattr(config, "config_hash", None)
    return own() if callable(own) else config_hash(config)


def config_record(config: Any) -> dict:
    """The configuration as stored next to its runs (``configs`` table)."""
    own = getattr(config, "to_dict", None)
    return own() if callable(own) else asdict(config)


def store_keys(spec: RunSpec, fingerprint: str, seed: int, digest: str | None = None) -> StoreKeys:
    """The key rule: where ``spec``'s output is stored, for data of ``fingerprint`` and job seed ``seed``.

    Parameters
    ----------
    spec : RunSpec
    fingerprint : str
        The dataset's fingerprint (``dataset.fingerprint()``).
    seed : int
        The job's seed.
    digest : str, optional
        ``config_digest(spec.config)`` when the caller has it already.

    Returns
    -------
    StoreKeys

    Raises
    ------
    ValueError
        A key template names an extra the specification lacks.
    """
    kind = spec.kind
    training_seed = int(kind.training_seed(seed, spec.repeat))
    digest = config_digest(spec.config) if digest is None else digest
    extras = dict(spec.extras)
    fields = {**extras, "fingerprint": fingerprint, "seed": training_seed, "config": digest,
              "group": group_text(spec.group)}
    artifacts = []
    for slot in kind.artifacts:
        if slot.when is not None and not extras.get(slot.when):
            continue
        try:
            artifacts.append((slot.name, slot.template.format(**fields)))
        except KeyError as exc:
            raise ValueError(f"a {kind.name!r} run needs the extra {exc.args[0]!r} for its store key "
                             f"(extras given: {', '.join(extras) or 'none'})") from None
    run = (fingerprint, group_text(spec.group), training_seed, digest) if kind.stores_model else None
    return StoreKeys(run, tuple(artifacts))


#: A hard-sharing model of one group, trained by the stacked trainer in vectorised chunks (every command's
#: group runs: STL, all-task and multi-task groups). Its store key is the ``runs`` row alone.
GROUP = RunKind("group", stores_model=True)


def group_specs(groups: Sequence[Sequence[int]], config: Any, repeats: int = 1) -> list[RunSpec]:
    """Group specifications of every group (deduplicated, in first-seen order) and repeat 0 .. repeats - 1.

    Raises
    ------
    ValueError
        ``repeats`` below 1.
    """
    if isinstance(repeats, bool) or int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be a whole number >= 1, got {repeats!r}")
    wanted = dict.fromkeys(tuple(sorted(int(i) for i in g)) for g in groups)
    return [RunSpec(GROUP, g, r, config) for g in wanted for r in range(int(repeats))]
