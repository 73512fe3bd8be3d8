"""B-spline bases of one feature, built once and reused (ETAP stage 1, eq. 8).

ETAP's stage 1 (Ayman, Mukhopadhyay and Laszka, "Ensemble Prediction of Task
Affinity for Efficient Multi-Task Learning", ICLR 2026, eq. 8-9) maps the
groupwise affinity score through a B-spline basis :math:`\\phi` and a ridge
regression. Its hyperparameters (degree, knot count, ridge strength) are chosen
by cross-validation, which asks for the basis of every (fold, degree, knot
count): building each through scikit-learn's ``SplineTransformer`` costs far
more in input checks than in arithmetic.

What a fitted ``SplineTransformer(n_knots, degree, knots="uniform",
extrapolation="constant", include_bias=True)`` depends on is its training
data's minimum and maximum alone (the uniform knots span them); the basis row
of a point depends on that point and the knots alone. So the basis of every
point of the feature is built once per (minimum, maximum, degree, knot count)
(:class:`SplineBasisCache`) and a fold's training and held-out design matrices
are row selections of it. :func:`spline_knots` and :func:`spline_basis` repeat
``SplineTransformer``'s arithmetic step by step (same numpy and scipy calls on
arrays of the same shapes), so the matrices are the same numbers to the last
bit; ``tests/gains/test_splines.py`` checks that against scikit-learn.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import BSpline

__all__ = ["SplineBasisCache", "spline_basis", "spline_knots"]


def spline_knots(x_min: float, x_max: float, degree: int, n_knots: int) -> np.ndarray:
    """The knot vector of ``SplineTransformer(knots="uniform")`` fitted on data spanning ``[x_min, x_max]``.

    ``n_knots`` uniform base knots from ``x_min`` to ``x_max``, extended by
    ``degree`` knots on each side at the spacing of the first (last) two base
    knots (Eilers and Marx's advice, as scikit-learn does).

    Parameters
    ----------
    x_min, x_max : float
        Smallest and largest training value of the feature.
    degree : int
        Polynomial degree of the splines (>= 1).
    n_knots : int
        Base knots (>= 2).

    Returns
    -------
    ndarray of shape (n_knots + 2 * degree,)
    """
    lo = np.zeros(1, dtype=np.float64)
    hi = np.zeros(1, dtype=np.float64)
    lo[0], hi[0] = x_min, x_max
    base = np.linspace(start=lo, stop=hi, num=n_knots, endpoint=True, dtype=np.float64)  # (n_knots, 1)
    dist_min = base[1] - base[0]
    dist_max = base[-1] - base[-2]
    knots = np.r_[
        np.linspace(base[0] - degree * dist_min, base[0] - dist_min, num=degree),
        base,
        np.linspace(base[-1] + dist_max, base[-1] + degree * dist_max, num=degree),
    ]
    return knots[:, 0]


def spline_basis(x: np.ndarray, knots: np.ndarray, degree: int) -> np.ndarray:
    """The B-spline design matrix of ``x`` (constant extrapolation, every basis function kept).

    Points inside ``[knots[degree], knots[-degree - 1]]`` (the training range)
    get the values of the ``n_knots + degree - 1`` B-splines; points below
    (above) it get the values at the lower (upper) end in the first (last)
    ``degree`` columns and 0 elsewhere, as ``SplineTransformer(extrapolation=
    "constant", include_bias=True).transform``.

    Parameters
    ----------
    x : ndarray of shape (n,)
        Finite feature values.
    knots : ndarray
        From :func:`spline_knots`.
    degree : int

    Returns
    -------
    ndarray of shape (n, n_knots + degree - 1), C order
    """
    n_splines = knots.size - degree - 1
    spline = BSpline.construct_fast(knots, np.eye(n_splines, dtype=np.float64), degree, extrapolate=False)
    x_min, x_max = knots[degree], knots[-degree - 1]
    basis = np.zeros((x.size, n_splines), dtype=np.float64)
    inside = (x_min <= x) & (x <= x_max)
    basis[inside] = spline(x[inside])
    below, above = x < x_min, x > x_max
    if below.any():
        basis[below, :degree] = spline(x_min)[:degree]
    if above.any():
        basis[above, -degree:] = spline(x_max)[-degree:]
    return basis


class SplineBasisCache:
    """The B-spline bases of one feature vector, built once per (training range, degree, knot count).

    A cross-validated search over degrees and knot counts needs the basis of
    each fold's training rows (knots from their range) and held-out rows (the
    same knots). Here the basis of *every* point is built once per key
    ``(x_min, x_max, degree, n_knots)`` and each fold takes its rows of it:
    folds whose training rows span the same range, which is most of them,
    share one basis.

    Parameters
    ----------
    x : ndarray of shape (n,)
        The feature (ETAP: the groupwise affinity score of each (group, member) pair).
    """

    def __init__(self, x: np.ndarray):
        self.x = np.ascontiguousarray(x, dtype=np.float64)
        self._bases: dict[tuple[float, float, int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._bases)

    def basis(self, train_rows: np.ndarray, degree: int, n_knots: int) -> np.ndarray:
        """The basis of every point with the knots a ``SplineTransformer`` fitted on ``x[train_rows]`` would use.

        Parameters
        ----------
        train_rows : ndarray of int
            The rows the knots are fitted on (at least two).
        degree, n_knots : int

        Returns
        -------
        ndarray of shape (n, n_knots + degree - 1); not to be modified (it is shared)
        """
        fitted_on = self.x[train_rows]
        key = (float(np.nanmin(fitted_on)), float(np.nanmax(fitted_on)), int(degree), int(n_knots))
        found = self._bases.get(key)
        if found is None:
            found = spline_basis(self.x, spline_knots(key[0], key[1], degree, n_knots), degree)
            found.setflags(write=False)
            self._bases[key] = found
        return found
