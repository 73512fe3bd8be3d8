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
``SplineTransformer``'s arithmetic step by step (same numpy calls on arrays of
the same shapes, and :func:`bspline_values` the same floating-point operations,
in the same order, as scipy's ``BSpline`` evaluation), so the matrices are the
same numbers to the last bit without importing scipy.interpolate (half a
second); ``tests/gains/test_splines.py`` checks that against scikit-learn and
scipy.
"""

from __future__ import annotations

import numpy as np

from negtransfer.gains.estimator import ridge_fit

__all__ = ["SplineBasisCache", "SplineRidge", "bspline_values", "spline_basis", "spline_knots"]


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


def bspline_values(x: np.ndarray, knots: np.ndarray, degree: int) -> np.ndarray:
    """Every B-spline of ``knots`` at each point of ``x`` inside ``[knots[degree], knots[-degree - 1]]``.

    Cox-de Boor recursion (de Boor, "A Practical Guide to Splines", 1978,
    chapter X: the ``degree + 1`` non-zero B-splines at a point from the
    constant one of its knot interval), vectorised over the points, with the
    operations of scipy's ``BSpline`` evaluation (``_deBoor_D``) in their order,
    so that ``bspline_values(x, t, k)`` equals ``BSpline(t, eye(n), k,
    extrapolate=False)(x)`` bit for bit.

    Parameters
    ----------
    x : ndarray of shape (n,)
        Points inside the base interval.
    knots : ndarray
        Non-decreasing knots (at least ``2 * degree + 2``); where two coincide
        the B-spline between them is 0, as scipy's.
    degree : int

    Returns
    -------
    ndarray of shape (n, knots.size - degree - 1)
    """
    n_splines = knots.size - degree - 1
    # the knot interval of each point: knots[ell] <= x < knots[ell + 1], the last interval closed
    ell = np.clip(np.searchsorted(knots, x, side="right") - 1, degree, n_splines - 1)
    # the knots around each point, knots[ell + o] for o = 1 - degree .. degree, and their distances to it
    around = knots[ell + np.arange(1 - degree, degree + 1)[:, None]]  # (2 * degree, n)
    right, left = around - x, x - around
    degenerate = bool(np.any(np.diff(knots) == 0))
    h = np.zeros((degree + 1, x.size))
    h[0] = 1.0
    for j in range(1, degree + 1):
        hh = h[:j].copy()
        h[0] = 0.0
        for n in range(1, j + 1):
            b, a = n + degree - 1, n - j + degree - 1  # knots[ell + n] and knots[ell + n - j]
            gap = around[b] - around[a]
            # knots that coincide (a constant feature): that B-spline is 0, as in scipy
            w = np.divide(hh[n - 1], gap, out=np.zeros_like(gap), where=gap != 0) if degenerate else hh[n - 1] / gap
            h[n - 1] += w * right[b]
            h[n] = w * left[a]
    values = np.zeros((x.size, n_splines))
    flat = values.reshape(-1)
    first = np.arange(x.size) * n_splines + ell - degree  # each point's first non-zero B-spline
    for a in range(degree + 1):
        flat[first + a] = h[a]
    return values


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
    x_min, x_max = knots[degree], knots[-degree - 1]
    basis = np.zeros((x.size, n_splines), dtype=np.float64)
    inside = (x_min <= x) & (x <= x_max)
    basis[inside] = bspline_values(x[inside], knots, degree)
    below, above = x < x_min, x > x_max
    if below.any():
        basis[below, :degree] = bspline_values(np.array([x_min]), knots, degree)[0, :degree]
    if above.any():
        basis[above, -degree:] = bspline_values(np.array([x_max]), knots, degree)[0, -degree:]
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
        return self.basis_on_range(float(np.nanmin(fitted_on)), float(np.nanmax(fitted_on)), degree, n_knots)

    def basis_on_range(self, x_min: float, x_max: float, degree: int, n_knots: int) -> np.ndarray:
        """:meth:`basis` for training rows spanning ``[x_min, x_max]`` (a search takes each fold's range once).

        Returns
        -------
        ndarray of shape (n, n_knots + degree - 1); not to be modified (it is shared)
        """
        key = (x_min, x_max, int(degree), int(n_knots))
        found = self._bases.get(key)
        if found is None:
            found = spline_basis(self.x, spline_knots(x_min, x_max, degree, n_knots), degree)
            found.setflags(write=False)
            self._bases[key] = found
        return found


class SplineRidge:
    """ETAP's fitted stage-1 map: B-spline basis of the affinity score, then ridge regression (eq. 8-9).

    The model ``Pipeline([SplineTransformer(degree, n_knots, include_bias=True),
    Ridge(alpha)])`` of Ayman, Mukhopadhyay and Laszka (ICLR 2026, eq. 8-9),
    without scikit-learn: knots from the training range (:func:`spline_knots`),
    the design matrix by :func:`spline_basis` (the transformer's numbers to the
    last bit) and the ridge in closed form
    (:func:`~negtransfer.gains.estimator.ridge_fit`, scikit-learn's solution to
    rounding).

    Parameters
    ----------
    degree : int
        Spline degree (>= 1).
    n_knots : int
        Base knots (>= 2).
    alpha : float
        Ridge penalty (> 0).

    Attributes
    ----------
    knots_ : ndarray
        The knot vector (:func:`spline_knots` of the training range).
    coef_ : ndarray (n_knots + degree - 1,)
    intercept_ : float
    """

    def __init__(self, degree: int, n_knots: int, alpha: float):
        self.degree = degree
        self.n_knots = n_knots
        self.alpha = alpha

    def __repr__(self) -> str:
        return f"SplineRidge(degree={self.degree}, n_knots={self.n_knots}, alpha={self.alpha})"

    def fit(self, z: np.ndarray, y: np.ndarray) -> SplineRidge:
        """Fit on scores ``z`` (n,) or (n, 1) and gains ``y`` (n,); returns self."""
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        self.knots_ = spline_knots(float(np.nanmin(z)), float(np.nanmax(z)), self.degree, self.n_knots)
        coef, intercept = ridge_fit(spline_basis(z, self.knots_, self.degree), np.asarray(y, dtype=np.float64),
                                    self.alpha)
        self.coef_ = coef
        self.intercept_ = float(intercept)
        return self

    def predict(self, z: np.ndarray) -> np.ndarray:
        """The map at scores ``z`` (n,) or (n, 1): an (n,) array."""
        z = np.asarray(z, dtype=np.float64).reshape(-1)
        return spline_basis(z, self.knots_, self.degree) @ self.coef_ + self.intercept_
