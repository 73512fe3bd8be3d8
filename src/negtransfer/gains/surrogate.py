"""Linear surrogate of a target task's loss over subsets of source tasks.

Implements the task model of "Identification of Negative Transfers in Multitask
Learning Using Surrogate Models" (papers/surrogate-negative-transfer.txt,
section 2.2). For a target task t and k source tasks, ``f(S)`` is the target's
validation loss after training an MTL model on ``S + {t}`` (eq. 1). The
surrogate is additive over the sources (eq. 2)::

    g_theta(S) = sum_{i in S} theta_i

and ``theta`` minimises the squared error over n sampled subsets (eq. 3),
optionally with a ridge penalty. ``theta_i`` is the *relevance score* of source
i; lower means more useful to the target.

Score scale (what ``theta`` is measured in; see ``docs/methods/source-selection.md``)
-----------------------------------------------------------------------------------
The paper fits ``g(S)`` to the raw loss ``f(S)``, so ``g(empty set) = 0``: the
additive model implicitly claims the target would have loss 0 with no source,
and every ``theta_i`` carries a share ``~ f_STL / |S|`` of the target's own loss.
The scores then have no natural zero, and a threshold gamma means different
things for different targets and losses. We anchor the empty set at the STL run
instead (``S = {}`` *is* single-task learning, and the paper itself calls S a
negative transfer when its loss exceeds STL, section 2.1), and fit the change
relative to STL with the intercept fixed by that anchor:

* ``scale="relative"`` (default): ``y(S) = (f(S) - f_STL) / |f_STL|``. This is
  minus the project's MTL gain (ETAP eq. 1, :func:`negtransfer.gains.table.mtl_gain`),
  with ``|f_STL|`` so that the sign survives losses that can be negative, such as
  the paper's negative classification margin. ``theta_i = -0.1`` reads "adding
  source i lowers the target's loss by 10% of its STL loss".
* ``scale="difference"``: ``y(S) = f(S) - f_STL``, in the loss's own units.
* ``scale="raw"``: ``y(S) = f(S)``, the paper's eq. 3 verbatim.

Under the two anchored scales ``theta_i < 0`` means "helps", ``theta_i > 0``
"hurts", and ``g(S) >= 0`` predicts a negative transfer from S. The threshold
gamma of source selection (paper section 3.1, grid -0.5 .. 0.5) is applied to
``theta`` on the chosen scale.

Why this loses nothing: every sampled subset has the same size ``a`` (alpha in
the paper), so each row of the membership matrix sums to ``a``. Shifting every
target by a constant ``c`` is then exactly absorbed by shifting every score by
``c / a``; with least squares (``alpha=0``) and no intercept::

    theta_raw = |f_STL| * theta_relative + f_STL / a   (elementwise, exactly).

The ranking of the sources, the spacing of the scores, the family of
threshold selections and the predicted losses of subsets of size ``a`` are the
same on all three scales; only the position of zero (and the unit) differs.

Intercept
---------
``fit_intercept=True`` adds a free term ``b`` (``g(S) = b + sum theta_i``). With
subsets of one fixed size ``b`` is not identifiable: ``(b, theta)`` and
``(b + c, theta - c / a)`` predict the same for every sampled subset, so the
zero of the scores would be arbitrary (decided by the penalty or by numerical
noise). ``fit`` therefore raises when every subset has the same size and
``fit_intercept=True``; the default ``False`` with an anchored scale fixes the
intercept at the STL run instead. With subsets of varied sizes the intercept is
identifiable and estimates how far the model's extrapolation to the empty set
lies from STL.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

__all__ = ["LinearSurrogate", "SCALES", "validate_losses", "validate_subsets"]

#: Scales on which the relevance scores can be fitted (see the module docstring).
SCALES: tuple[str, ...] = ("relative", "difference", "raw")

# |f_STL| below this makes the relative scale meaningless (division by ~0).
_MIN_ABS_STL = 1e-12


def validate_subsets(S, n_sources: int | None = None, name: str = "S") -> np.ndarray:
    """Check a source-membership matrix and return it as a boolean array.

    Parameters
    ----------
    S : array-like of shape (n_subsets, n_sources)
        ``S[r, i]`` is true when source task ``i`` is in subset ``r``. Booleans,
        or numbers that are all 0 or 1. Empty rows (no source: the STL run) are
        allowed.
    n_sources : int, optional
        Required number of columns.
    name : str
        Name used in error messages.

    Returns
    -------
    numpy.ndarray of shape (n_subsets, n_sources), bool

    Raises
    ------
    ValueError
        If ``S`` is not 2-D, has no rows or columns, has the wrong number of
        columns, or holds a value other than 0/1.
    """
    s = np.asarray(S)
    if s.ndim != 2:
        hint = " (wrap a single subset mask as mask[None, :])" if s.ndim == 1 else ""
        raise ValueError(
            f"{name} must be a 2-D membership matrix of shape (n_subsets, n_sources); "
            f"got shape {s.shape}{hint}"
        )
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"{name} has shape {s.shape}; it needs at least one subset and one source")
    if n_sources is not None and s.shape[1] != n_sources:
        raise ValueError(
            f"{name} has {s.shape[1]} columns but the surrogate was fitted on {n_sources} "
            "source tasks; columns must be the same sources in the same order"
        )
    if s.dtype == bool:
        return s
    if not np.issubdtype(s.dtype, np.number):
        raise ValueError(f"{name} must be boolean or 0/1 numbers; got dtype {s.dtype}")
    bad = ~((s == 0) | (s == 1))
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"{name} must hold only 0/1 (membership); {name}[{r}, {c}] = {s[r, c].item()!r}")
    return s.astype(bool)


def validate_losses(f, n_rows: int, name: str = "f") -> np.ndarray:
    """Check the per-subset target losses: 1-D, one per row of ``S``, finite."""
    y = np.asarray(f, dtype=float)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one target loss per subset); got shape {y.shape}")
    if y.shape[0] != n_rows:
        raise ValueError(f"{name} has {y.shape[0]} values but S has {n_rows} subsets (rows); they must match")
    bad = ~np.isfinite(y)
    if bad.any():
        rows = np.flatnonzero(bad)[:10].tolist()
        raise ValueError(
            f"{name} must be finite; rows {rows} are NaN/inf (a failed or missing run?). "
            "Drop those subsets from S and f"
        )
    return y


def validate_stl(stl_loss, scale: str) -> float | None:
    """The target's STL loss as a finite float (None only on the raw scale), checked for ``scale``."""
    if stl_loss is None:
        if scale != "raw":
            raise ValueError(
                f"scale={scale!r} measures theta relative to the target's STL loss: pass "
                "stl_loss= to fit (or use scale='raw' for the paper's unanchored eq. 3)"
            )
        return None
    arr = np.asarray(stl_loss)
    if arr.ndim != 0 or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(
            f"stl_loss must be one number (the target's STL validation loss); got {stl_loss!r}"
        )
    stl = float(arr)
    if not math.isfinite(stl):
        raise ValueError(f"stl_loss must be finite; got {stl_loss!r}")
    if scale == "relative" and abs(stl) < _MIN_ABS_STL:
        raise ValueError(
            f"stl_loss={stl!r} is (nearly) zero, so the relative scale (f - STL) / |STL| is undefined; "
            "use scale='difference'"
        )
    return stl


#: Ridge strengths ``alpha="auto"`` tries: least squares (when the subsets determine every score) and 21
#: strengths from 0.01 to 100, log-spaced. The membership matrix is 0/1, so these are in units of "subsets".
AUTO_ALPHAS = (0.0, *np.geomspace(0.01, 100.0, 21).tolist())


def leave_one_out_alpha(X: np.ndarray, t: np.ndarray, alphas=AUTO_ALPHAS) -> tuple[float, np.ndarray]:
    """The ridge strength with the least leave-one-out squared error, and the errors.

    For ridge regression the leave-one-out residual has the closed form
    ``(t_i - yhat_i) / (1 - H_ii)`` with ``H = X (X'X + alpha I)^-1 X'`` (the
    PRESS statistic), computed here from one SVD of X. ``alpha = 0`` is tried
    only when X has full column rank and more rows than columns (otherwise
    least squares interpolates some row and its leave-one-out error is
    undefined).

    Parameters
    ----------
    X : ndarray (n, k)
        Design matrix (centred when the caller fits an intercept).
    t : ndarray (n,)
        Targets.
    alphas : sequence of float
        Strengths to try.

    Returns
    -------
    (alpha, errors)
        The chosen strength (the smallest on a tie) and the mean squared
        leave-one-out error of every strength (``inf`` where it is undefined).
    """
    n, k = X.shape
    U, sv, _ = np.linalg.svd(X, full_matrices=False)
    full_rank = n > k and sv.size == k and sv.min() > 1e-10 * max(sv.max(), 1.0)
    Ut = U.T @ t
    errors = np.full(len(alphas), np.inf)
    for i, alpha in enumerate(alphas):
        if alpha == 0.0 and not full_rank:
            continue
        shrink = sv**2 / (sv**2 + alpha)  # all ones for least squares (tried only at full rank, so sv > 0)
        leverage = (U**2) @ shrink
        if (1.0 - leverage).min() <= 1e-10:
            continue
        residual = (t - U @ (shrink * Ut)) / (1.0 - leverage)
        errors[i] = float(np.mean(residual**2))
    if not np.isfinite(errors).any():
        return float(max(alphas)), errors
    return float(alphas[int(np.argmin(errors))]), errors


class LinearSurrogate(RegressorMixin, BaseEstimator):
    """Additive surrogate ``g(S) = sum_{i in S} theta_i`` of a target's loss (paper eq. 2-3).

    Parameters
    ----------
    alpha : float or "auto", default 0.0
        Ridge strength: minimise ``||y - b - S theta||^2 + alpha * ||theta||^2``
        (sum over subsets, as :class:`sklearn.linear_model.Ridge`; the intercept
        is not penalised). ``0`` is least squares, the paper's eq. 3, and needs
        at least as many subsets as sources with every source sampled; use
        ``alpha > 0`` when there are fewer. Under ridge a source that was never
        sampled gets ``theta = 0`` (no evidence: the STL reference).
        ``"auto"``: the strength among :data:`AUTO_ALPHAS` (least squares
        included) with the least leave-one-out error over the fitted subsets
        (:func:`leave_one_out_alpha`); stored in ``alpha_``. With few subsets
        per source (n near k) least squares nearly interpolates the noise of f
        and ranks unseen subsets poorly; see docs/methods/source-selection.md.
    scale : {"relative", "difference", "raw"}, default "relative"
        What ``theta`` is measured in (module docstring). ``"relative"`` and
        ``"difference"`` need ``stl_loss`` in :meth:`fit`.
    fit_intercept : bool, default False
        Fit a free term ``b`` besides the STL anchor. Only identifiable when the
        subsets have different sizes; raises otherwise (module docstring).
    underdetermined : {"raise", "min_norm"}, default "raise"
        What least squares (``alpha=0``) does when the subsets do not determine
        every score (fewer subsets than sources, a source never sampled,
        collinear sources). ``"raise"``: a ``ValueError`` that says how to fix
        it. ``"min_norm"``: the minimum-norm least-squares solution, in which a
        never-sampled source gets ``theta = 0`` (no evidence: the STL
        reference); used for the small folds of
        :func:`negtransfer.select.sources.choose_threshold_by_surrogate_cv`.

    Attributes
    ----------
    theta_ : ndarray of shape (k,)
        Relevance scores on the ``scale``; lower is more useful to the target.
    alpha_ : float
        The ridge strength used (``alpha``, or the one ``"auto"`` chose).
    coef_ : ndarray of shape (k,)
        Same array as ``theta_`` (scikit-learn name).
    intercept_ : float
        ``b`` on the score scale (0.0 unless ``fit_intercept``).
    stl_loss_ : float or None
        The STL loss given to :meth:`fit`.
    reference_ : float
        Loss predicted for the empty subset before ``b``: ``stl_loss_`` for the
        anchored scales, 0 for ``"raw"``.
    unit_ : float
        Loss units per score unit: ``|stl_loss_|`` for ``"relative"``, else 1.
    n_features_in_ : int
        Number of source tasks k.
    subset_sizes_ : ndarray of int
        Distinct subset sizes seen in :meth:`fit`.
    """

    def __init__(
        self,
        alpha: float | str = 0.0,
        scale: str = "relative",
        fit_intercept: bool = False,
        underdetermined: str = "raise",
    ):
        self.alpha = alpha
        self.scale = scale
        self.fit_intercept = fit_intercept
        self.underdetermined = underdetermined

    # ------------------------------------------------------------------ fit
    def _check_params(self) -> None:
        if isinstance(self.alpha, str) and self.alpha == "auto":
            pass
        elif isinstance(self.alpha, bool) or not isinstance(self.alpha, (Real, np.floating, np.integer)):
            raise ValueError(f"alpha must be a number >= 0 (ridge strength) or 'auto'; got {self.alpha!r}")
        elif not (math.isfinite(float(self.alpha)) and float(self.alpha) >= 0):
            raise ValueError(f"alpha must be a finite number >= 0 (ridge strength); got {self.alpha!r}")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {SCALES}; got {self.scale!r}")
        if not isinstance(self.fit_intercept, (bool, np.bool_)):
            raise ValueError(f"fit_intercept must be True or False; got {self.fit_intercept!r}")
        if self.underdetermined not in ("raise", "min_norm"):
            raise ValueError(f"underdetermined must be 'raise' or 'min_norm'; got {self.underdetermined!r}")

    def _targets(self, f: np.ndarray, stl: float | None) -> np.ndarray:
        if self.scale == "raw" or stl is None:  # stl is None on the raw scale only (validate_stl)
            return f
        if self.scale == "difference":
            return f - stl
        return (f - stl) / abs(stl)

    def fit(self, S, f, stl_loss: float | None = None) -> "LinearSurrogate":
        """Estimate the relevance scores from measured subsets.

        Parameters
        ----------
        S : array-like of shape (n_subsets, k)
            Boolean (or 0/1) membership of the k source tasks in each subset.
        f : array-like of shape (n_subsets,)
            The target's validation loss after training on each subset plus the
            target (paper eq. 1). Lower is better.
        stl_loss : float, optional
            The target's validation loss when trained alone. Required for the
            ``"relative"`` and ``"difference"`` scales; with ``"raw"`` it is only
            stored (for :meth:`predict_negative_transfer`).

        Returns
        -------
        self
        """
        self._check_params()
        X = validate_subsets(S)
        n, k = X.shape
        y = validate_losses(f, n)
        stl = validate_stl(stl_loss, self.scale)
        sizes = np.unique(X.sum(axis=1))
        if self.fit_intercept and sizes.size == 1:
            raise ValueError(
                f"fit_intercept=True cannot be identified: every subset has {int(sizes[0])} sources, so an "
                f"intercept b and a shift of every theta by -b/{int(sizes[0])} predict the same. Use "
                "fit_intercept=False (the STL run anchors the empty set) or add subsets of other sizes"
            )
        Xf = X.astype(float)
        t = self._targets(y, stl)
        if self.fit_intercept:
            x_mean, t_mean = Xf.mean(axis=0), t.mean()
            Xc, tc = Xf - x_mean, t - t_mean
        else:
            Xc, tc = Xf, t
        alpha = leave_one_out_alpha(Xc, tc)[0] if self.alpha == "auto" else float(self.alpha)
        if alpha == 0.0:
            if self.underdetermined == "raise":
                self._check_identifiable(X, Xc)
            A, b = Xc, tc
        else:
            A = np.vstack([Xc, math.sqrt(alpha) * np.eye(k)])
            b = np.concatenate([tc, np.zeros(k)])
        theta, *_ = np.linalg.lstsq(A, b, rcond=None)
        intercept = float(t_mean - x_mean @ theta) if self.fit_intercept else 0.0

        self.theta_ = theta
        self.alpha_ = alpha
        self.coef_ = self.theta_
        self.intercept_ = intercept
        self.stl_loss_ = stl
        anchor = 0.0 if stl is None else stl  # stl is None on the raw scale only (validate_stl)
        self.reference_ = 0.0 if self.scale == "raw" else anchor
        self.unit_ = abs(anchor) if self.scale == "relative" else 1.0
        self.n_features_in_ = k
        self.subset_sizes_ = sizes.astype(int)
        return self

    def _check_identifiable(self, X: np.ndarray, Xc: np.ndarray) -> None:
        n, k = X.shape
        need = k + (1 if self.fit_intercept else 0)
        if n < need:
            raise ValueError(
                f"least squares (alpha=0) needs at least {need} subsets for {k} source tasks"
                f"{' plus an intercept' if self.fit_intercept else ''}; got {n}. Sample more subsets "
                "(the paper finds n <= 8k enough) or set alpha > 0 for ridge"
            )
        never = np.flatnonzero(~X.any(axis=0))
        if never.size:
            raise ValueError(
                f"source task(s) {never.tolist()} appear in no subset, so least squares cannot score them; "
                "sample subsets that include them or set alpha > 0 (ridge gives them theta = 0)"
            )
        always = np.flatnonzero(X.all(axis=0))
        rank = np.linalg.matrix_rank(Xc)
        if rank < k:
            detail = (
                f" (source(s) {always.tolist()} are in every subset)" if always.size and self.fit_intercept
                else " (e.g. every subset holds all sources, or two sources always appear together)"
            )
            raise ValueError(
                f"the subsets do not determine all {k} scores: the membership matrix has rank {rank} < {k}"
                f"{detail}. Sample more varied subsets (uniform subsets of a size below k) or set alpha > 0"
            )

    # -------------------------------------------------------------- predict
    def _check_fitted_input(self, S) -> np.ndarray:
        if not hasattr(self, "theta_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this LinearSurrogate is not fitted yet; call fit(S, f, stl_loss=...) first")
        return validate_subsets(S, n_sources=self.n_features_in_)

    def surrogate_value(self, S) -> np.ndarray:
        """``g(S) = intercept_ + sum_{i in S} theta_i`` on the score scale.

        For the anchored scales this is the predicted change of the target's
        loss relative to STL (negative: positive transfer). Shape (n_subsets,).
        """
        X = self._check_fitted_input(S)
        return self.intercept_ + X.astype(float) @ self.theta_

    def predict(self, S) -> np.ndarray:
        """Predicted target loss for each subset, in the loss's own units.

        ``reference_ + unit_ * g(S)``; comparable to ``f`` and to ``stl_loss_``.
        Shape (n_subsets,).
        """
        value = self.surrogate_value(S)
        return self.reference_ + self.unit_ * value

    def predict_negative_transfer(self, S) -> np.ndarray:
        """True where the predicted loss is at least the STL loss (negative transfer).

        Same rule as :func:`negtransfer.select.sources.negative_transfer_metrics`.
        Needs ``stl_loss`` to have been passed to :meth:`fit`.
        """
        pred = self.predict(S)
        if self.stl_loss_ is None:
            raise ValueError("predicting negative transfer needs the STL loss: pass stl_loss= to fit")
        return pred >= self.stl_loss_

    def relevance_scores(self, names=None) -> dict:
        """Relevance score of every source: ``{index: theta_i}`` (or ``{name: theta_i}``).

        Parameters
        ----------
        names : sequence of str, optional
            Source task names, in column order of ``S``.

        Returns
        -------
        dict
            In column order. Lower is more useful; on the anchored scales a
            negative score means the source is predicted to help the target.
        """
        if not hasattr(self, "theta_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this LinearSurrogate is not fitted yet; call fit first")
        keys: Sequence[Any]
        if names is None:
            keys = range(self.n_features_in_)
        else:
            keys = list(names)
            if len(keys) != self.n_features_in_:
                raise ValueError(f"names has {len(keys)} entries but there are {self.n_features_in_} sources")
        return {key: float(v) for key, v in zip(keys, self.theta_, strict=True)}
