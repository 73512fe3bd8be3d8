"""The short ``repr`` of a job's report: what a report shows when printed or left at a notebook's prompt.

A report's dataclass repr spells out every field (several thousand characters of nested records); the
summary names the report's answer (its chosen groups, selected sources, models ...) with floats to four
significant digits. Every field stays an attribute (``dataclasses.fields(report)``), and ``to_dict()`` and
``to_frame()`` hold the whole report.
"""

from __future__ import annotations

from typing import Any, Mapping


def summary_repr(kind: str, **fields: Any) -> str:
    """``kind(name=value, ...)``, each value as :func:`short` writes it.

    Parameters
    ----------
    kind : str
        The report's class name.
    **fields
        The values to show, in order.

    Returns
    -------
    str
    """
    return f"{kind}({', '.join(f'{name}={short(value)}' for name, value in fields.items())})"


def short(value: Any) -> str:
    """``repr(value)`` with every float, in mappings, lists and tuples too, to four significant digits."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{key!r}: {short(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(short(item) for item in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(short(item) for item in value) + ("," if len(value) == 1 else "") + ")"
    return repr(value)
