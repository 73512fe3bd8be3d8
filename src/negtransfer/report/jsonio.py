"""Strict JSON for the files negtransfer writes (report.json, gains.json, compare.json).

Python's ``json`` writes NaN and infinities as the bare tokens ``NaN`` and
``Infinity``, which the JSON standard (RFC 8259) does not allow and most
parsers (JavaScript, jq, Go, R's jsonlite in strict mode) reject. Here every
non-finite float becomes ``null``, NumPy scalars and arrays become plain
numbers and lists, and the output is checked with ``allow_nan=False``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["dumps_strict", "strict", "write_json"]


def strict(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None, recursively.

    Dicts, lists and tuples are walked; NumPy scalars and arrays are turned
    into Python numbers and lists first. Other objects are returned as they are.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if hasattr(value, "tolist") and type(value).__module__.startswith("numpy"):
        return strict(value.tolist())
    return value


def dumps_strict(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`strict` ``(value)`` with ``allow_nan=False`` (``indent=2`` by default)."""
    kwargs.setdefault("indent", 2)
    return json.dumps(strict(value), allow_nan=False, **kwargs)


def write_json(path: str | Path, value: Any, **kwargs: Any) -> Path:
    """Write ``value`` as strict JSON to ``path``; returns the path."""
    path = Path(path)
    path.write_text(dumps_strict(value, **kwargs) + "\n")
    return path
