"""Which network the stacked trainer trains: a built-in encoder or a user's factory (:class:`ModelChoice`).

A model choice is a reference, never the callable itself in the key: a built-in
encoder's name (:data:`~negtransfer.nn.encoders.BUILTIN_ENCODERS`), or a user
factory given as ``"package.module:function"`` or ``"path/file.py:function"``,
with the factory's keyword arguments. It pickles as that reference (so it
travels to a process-pool worker, which resolves it there) and keys stored runs
(:meth:`ModelChoice.key_fields`, part of ``TrainConfig.config_hash``):

* a built-in encoder: its name, its version
  (:data:`ENCODER_VERSIONS`) and its arguments;
* a user factory: the reference, a SHA-256 of its source file (or the
  ``version`` the user gives instead) and its arguments. Editing the file
  changes the key, so stale runs are never reused; with a ``version`` the user
  decides: keep it to reuse the stored runs, change it to train again;
* a Python callable (the API path, :meth:`ModelChoice.from_callable`): its
  module and qualified name and its module's source hash (the function's own
  source where the module has no file, e.g. a notebook).

The default, ``ModelChoice()``, is the built-in ``mlp`` with the widths of
``TrainConfig.hidden``: the trainer's hand-fused network
(:class:`~negtransfer.nn.hard_sharing.StackedHardSharingMLP`), with the numbers
and run keys it always had.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

__all__ = ["BUILTIN_ENCODER_NAMES", "ENCODER_VERSIONS", "ModelChoice"]

#: Version of each built-in encoder (:data:`negtransfer.nn.encoders.BUILTIN_ENCODERS`), part of its runs' key:
#: raised when an encoder's architecture or initialisation changes, so stored runs of the old one are not reused.
ENCODER_VERSIONS = {"mlp": 1, "cnn": 1, "lstm": 1, "transformer": 1}
#: The built-in encoders' names (``--encoder``); this module does not import torch.
BUILTIN_ENCODER_NAMES = tuple(ENCODER_VERSIONS)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _split_reference(reference: str) -> tuple[str, str]:
    target, sep, function = reference.rpartition(":")
    if not sep or not target or not function or not all(part.isidentifier() for part in function.split(".")):
        raise ValueError(f"a model factory is given as 'package.module:function' or 'path/file.py:function', "
                         f"got {reference!r}")
    return target, function


def _is_file_reference(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _module_source_file(module_name: str) -> Path:
    """The source file of an importable module, found without importing it."""
    loaded = sys.modules.get(module_name)
    origin = getattr(loaded, "__file__", None) if loaded is not None else None
    if origin is None:
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError) as exc:
            raise ValueError(f"the model factory's module {module_name!r} cannot be found ({exc}); check the name "
                             "and that its package is installed or on PYTHONPATH") from exc
        if spec is None:
            raise ValueError(f"the model factory's module {module_name!r} cannot be found; check the name and that "
                             "its package is installed or on PYTHONPATH")
        origin = spec.origin
    if origin is None or not Path(origin).is_file():
        raise ValueError(f"the model factory's module {module_name!r} has no source file to hash; give a version "
                         "(ModelChoice(..., version='1')) to key its runs")
    return Path(origin)


@dataclass(frozen=True)
class ModelChoice:
    """The network of a training configuration (``TrainConfig.model``).

    Parameters
    ----------
    encoder : str
        A built-in encoder: ``"mlp"`` (default), ``"cnn"``, ``"lstm"`` or
        ``"transformer"``. Ignored (leave it) when ``factory`` is given.
    factory : str or None
        A user factory ``"package.module:function"`` or ``"path/file.py:function"``
        (:mod:`negtransfer.nn.contract`).
    arguments : tuple of (name, value) pairs
        Keyword arguments of the factory (values JSON-like: numbers, strings,
        booleans, tuples). A dict is accepted and stored sorted. The ``mlp``
        encoder takes none: its widths are ``TrainConfig.hidden``.
    version : str or None
        A user factory's version, keying its runs instead of its source hash.
    source_hash : str or None
        SHA-256 (16 hex digits) of a user factory's source file, filled in at
        construction (leave it None).
    """

    encoder: str = "mlp"
    factory: str | None = None
    arguments: tuple[tuple[str, Any], ...] = ()
    version: str | None = None
    source_hash: str | None = None

    def __post_init__(self) -> None:
        args = self.arguments.items() if isinstance(self.arguments, dict) else self.arguments
        pairs = tuple(sorted((str(k), _frozen(v)) for k, v in args))
        object.__setattr__(self, "arguments", pairs)
        if self.factory is None:
            if self.encoder not in BUILTIN_ENCODER_NAMES:
                raise ValueError(f"unknown encoder {self.encoder!r}; the built-in encoders are: "
                                 f"{', '.join(BUILTIN_ENCODER_NAMES)} (or give a factory 'FILE.py:FUNCTION')")
            if self.encoder == "mlp" and pairs:
                raise ValueError("the mlp encoder takes no arguments: its layer widths are TrainConfig.hidden "
                                 "(--hidden)")
            return
        target, _ = _split_reference(self.factory)
        if self.version is None and self.source_hash is None:
            object.__setattr__(self, "source_hash", _file_digest(self._source_file(target)))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_callable(cls, make: Callable, *, version: str | None = None, **arguments: Any) -> "ModelChoice":
        """The choice of a Python factory given directly (the API path).

        Keyed by ``module:qualname`` and the module's source hash (or
        ``version``); resolved by importing that name, so it also works in a
        process-pool worker when the module is importable there. A function
        defined in a notebook (no module file) is keyed by its own source.
        """
        _refuse_a_network(make)
        module, name = getattr(make, "__module__", None), getattr(make, "__qualname__", None)
        if not module or not name or "<" in name:
            raise ValueError(f"a model factory given as a callable must be a module-level function (got {make!r}); "
                             "define it with def at the top level of a module")
        choice = object.__new__(cls)
        source_hash = None
        if version is None:
            try:
                source_hash = _file_digest(_module_source_file(module))
            except ValueError:
                try:
                    source_hash = hashlib.sha256(inspect.getsource(make).encode()).hexdigest()[:16]
                except (OSError, TypeError) as exc:
                    raise ValueError(f"the source of {module}:{name} cannot be read to key its runs; give a "
                                     "version: model_version='1' in negtransfer.group/gains/sources "
                                     "(ModelChoice.from_callable(make, version='1'))") from exc
        cls.__init__(choice, factory=f"{module}:{name}", arguments=tuple(arguments.items()), version=version,
                     source_hash=source_hash)
        object.__setattr__(choice, "_callable", make)
        return choice

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_callable", None)  # the reference travels; the worker resolves it
        return state

    def __setstate__(self, state: dict) -> None:
        for key, value in state.items():
            object.__setattr__(self, key, value)

    # ------------------------------------------------------------------ what it is
    @property
    def is_default(self) -> bool:
        """The trainer's built-in MLP (the hand-fused fast path)."""
        return self.factory is None and self.encoder == "mlp"

    @property
    def name(self) -> str:
        """The encoder's name or the factory's reference."""
        return self.factory if self.factory is not None else self.encoder

    def key_fields(self) -> dict:
        """What keys the runs of this model: name, version or source hash, and arguments."""
        if self.factory is None:
            return {"encoder": self.encoder, "version": ENCODER_VERSIONS[self.encoder],
                    "arguments": [list(p) for p in self.arguments]}
        return {"factory": self.factory, "version": self.version, "source": None if self.version else self.source_hash,
                "arguments": [list(p) for p in self.arguments]}

    def to_dict(self) -> dict:
        return {"name": self.name, **self.key_fields()}

    # ------------------------------------------------------------------ resolving
    def factory_function(self) -> Callable:
        """The factory ``make(input_shape, outputs) -> (encoder, heads)`` with the arguments bound.

        Raises
        ------
        ValueError
            The module, file or function does not exist, or a file changed
            since this choice was made (its hash no longer matches).
        """
        import functools

        from negtransfer.nn.encoders import BUILTIN_ENCODERS

        make: Callable | None = getattr(self, "_callable", None)
        if make is None:
            make = BUILTIN_ENCODERS[self.encoder] if self.factory is None else self._import_factory()
        return functools.partial(make, **dict(self.arguments)) if self.arguments else make

    def _source_file(self, target: str) -> Path:
        if _is_file_reference(target):
            path = Path(target).expanduser()
            if not path.is_file():
                raise ValueError(f"the model file {target!r} does not exist (give 'path/file.py:function')")
            return path
        return _module_source_file(target)

    def _import_factory(self) -> Callable:
        assert self.factory is not None
        target, function = _split_reference(self.factory)
        if _is_file_reference(target):
            path = self._source_file(target).resolve()
            if self.version is None and self.source_hash is not None and _file_digest(path) != self.source_hash:
                raise ValueError(f"the model file {target} changed since the job started (its hash differs); "
                                 "run the job again")
            module_name = "negtransfer_user_model_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
            module = sys.modules.get(module_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(module_name, path)
                if spec is None or spec.loader is None:
                    raise ValueError(f"the model file {target!r} cannot be imported")
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                try:
                    spec.loader.exec_module(module)
                except Exception as exc:
                    del sys.modules[module_name]
                    raise ValueError(f"importing the model file {target!r} raised {type(exc).__name__}: {exc}") from exc
        else:
            try:
                module = importlib.import_module(target)
            except Exception as exc:
                raise ValueError(f"the model factory's module {target!r} cannot be imported "
                                 f"({type(exc).__name__}: {exc})") from exc
        obj: Any = module
        for part in function.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                raise ValueError(f"{target!r} has no function {function!r} (give 'FILE.py:FUNCTION' or "
                                 "'package.module:FUNCTION')")
        if not callable(obj):
            raise ValueError(f"{self.factory!r} is not callable")
        return obj


def _refuse_a_network(make: Any) -> None:
    """Raise ValueError when ``make`` is a network (an ``nn.Module`` or its class) rather than a factory of one.

    Both are callable: an instance was refused as "a model factory given as a callable must be a module-level
    function", a class failed with a TypeError about its ``__init__`` arguments; neither said what a factory is.
    """
    torch = sys.modules.get("torch")  # a network exists only where torch is imported; this module never imports it
    if torch is None:
        return
    module_class = torch.nn.Module
    factory = ("write a function make(input_shape, outputs) that returns (encoder, heads): a shared nn.Module and "
               "one nn.Module per task (docs/your-network.md)")
    if isinstance(make, module_class):
        raise ValueError(f"model= takes a factory that builds the network, not a network: got an instance of "
                         f"{type(make).__name__}; negtransfer builds one network per group of tasks, so {factory}")
    if isinstance(make, type) and issubclass(make, module_class):
        raise ValueError(f"model= takes a factory function, not the nn.Module class {make.__name__}; {factory}")


def _frozen(value: Any) -> Any:
    """A hashable form of an argument value (lists become tuples)."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _frozen(v)) for k, v in value.items()))
    return value
