"""Summary statistics shared by every layer: the standard error of a mean over repeats, runs or seeds.

It stands in ``data/``, the lowest layer, so that every package that reports a
mean ± s.e. (gains, select, jobs, report, the benchmarks) may import it
(tests/test_imports.py: imports point down the layers).
"""

from __future__ import annotations

import math
from typing import Any, overload

import numpy as np


@overload
def standard_error(values: Any, axis: None = None, *, fewer_than_two: float = math.nan) -> float: ...


@overload
def standard_error(values: Any, axis: int, *, fewer_than_two: float = math.nan) -> np.ndarray: ...


def standard_error(values: Any, axis: int | None = None, *, fewer_than_two: float = math.nan) -> float | np.ndarray:
    """Standard error of the mean: the sample standard deviation over ``sqrt(n)``.

    ``s / sqrt(n)`` with ``s`` the standard deviation with Bessel's correction
    (``ddof=1``, divisor ``n - 1``), computed exactly as
    ``values.std(axis=axis, ddof=1) / np.sqrt(n)`` (the same bits and dtype).

    Parameters
    ----------
    values : array-like
        The numbers; NaN entries propagate (filter them first where they mean
        "missing").
    axis : int or None
        None: one standard error over all of ``values`` (``n = values.size``).
        An int: one per slice along that axis (``n = values.shape[axis]``).
    fewer_than_two : float
        What stands for a standard error with ``n < 2`` (no spread to measure):
        NaN by default; a plot's error bar may want 0.

    Returns
    -------
    float, or an ndarray of the shape of ``values`` without ``axis``
        With ``n < 2``: ``fewer_than_two`` (an array filled with it for an ``axis``).
    """
    array = np.asarray(values)
    if axis is None:
        if array.size < 2:
            return float(fewer_than_two)
        return float(array.std(ddof=1) / np.sqrt(array.size))
    n = array.shape[axis]
    if n < 2:
        return np.full(np.delete(array.shape, axis), fewer_than_two)
    with np.errstate(invalid="ignore"):
        return array.std(axis=axis, ddof=1) / np.sqrt(n)
