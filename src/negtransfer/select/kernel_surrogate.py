"""Kernel surrogate of a target task's loss over subsets of source tasks.

The linear surrogate (:class:`negtransfer.gains.surrogate.LinearSurrogate`,
"Identification of Negative Transfers in Multitask Learning Using Surrogate
Models", eq. 2-3) is additive: it cannot represent two sources that hurt the
target only when trained together. Zhang, Duan and Zhang ("Efficient
estimation of kernel surrogate models for task attribution", ICLR 2026) fit
kernel ridge regression on the subset indicator vectors instead, with an RBF
kernel, so that interactions between sources enter the surrogate.

:class:`KernelSurrogate` does that on the same inputs and the same score scale
as the linear surrogate (``fit(S, f, stl_loss)``; ``y(S) = (f(S) - f_STL) /
|f_STL|`` by default, so the empty set is the STL run)::

    g(S) = sum_r c_r K(x_S, x_r),   c = (K + alpha I)^-1 y     (kernel ridge, no intercept)

The kernel and its parameters are chosen by the closed-form leave-one-out
error of kernel ridge regression on the fitted subsets (:func:`kernel_loo_errors`),
among a linear kernel (which is the ridge-penalised linear surrogate exactly),
a quadratic one (every pair of sources gets its own interaction term) and RBF
kernels of several widths. Far from every fitted subset the RBF and quadratic
surrogates fall back to ``g = 0``, the STL reference: no evidence, no transfer.

Reading the model (``docs/methods/source-selection.md``):

* **negative-transfer prediction** of a subset S: ``predict(S) >= f_STL``, as
  for the linear surrogate;
* **relevance of source i** (``theta_``): the mean, over the fitted subsets that
  contain i, of ``g(S) - g(S minus i)``, the predicted change of the target's
  loss when i is removed from a subset like the sampled ones. For the linear
  kernel this is exactly the linear surrogate's theta_i; a source in no fitted
  subset gets 0. The paper scores a task by removing it from the full set of
  tasks (compared with leave-one-out retraining); with subsets of 5 of 50
  sources the full set lies far outside the fitted subsets, so we read the
  model where it was fitted.
"""

from __future__ import annotations

import math
from numbers import Real
from typing import cast

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from negtransfer.gains.surrogate import AUTO_ALPHAS, validate_losses, validate_stl, validate_subsets

__all__ = ["KERNELS", "KernelSurrogate", "kernel_loo_errors", "kernel_matrix"]

#: Kernels :class:`KernelSurrogate` knows; ``"auto"`` chooses among them by leave-one-out error.
KERNELS: tuple[str, ...] = ("linear", "quadratic", "rbf")

#: RBF widths ``kernel="auto"`` tries: ``K = exp(-gamma ||x - x'||^2)`` with ``||x - x'||^2`` twice the
#: number of sources two subsets of one size do not share.
AUTO_RBF_GAMMAS: tuple[float, ...] = tuple(np.geomspace(0.02, 2.0, 7).tolist())

#: Ridge strengths tried (those of the linear surrogate's ``alpha="auto"`` but least squares, which
#: interpolates with a kernel of full rank).
KERNEL_ALPHAS: tuple[float, ...] = tuple(a for a in AUTO_ALPHAS if a > 0)

_SCALES = ("relative", "difference")


def kernel_matrix(A: np.ndarray, B: np.ndarray, kernel: str, gamma: float = 1.0) -> np.ndarray:
    """The kernel between the rows of two membership matrices (0/1 floats), shape (len(A), len(B)).

    ``"linear"``: ``x . x'`` (the number of shared sources); ``"quadratic"``:
    ``(x . x')^2``, whose features are every source and every pair of sources;
    ``"rbf"``: ``exp(-gamma ||x - x'||^2)``.
    """
    dot = A @ B.T
    if kernel == "linear":
        return dot
    if kernel == "quadratic":
        return dot**2
    if kernel == "rbf":
        sq = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * dot
        return np.exp(-gamma * np.maximum(sq, 0.0))
    raise ValueError(f"kernel must be one of {KERNELS}; got {kernel!r}")


def kernel_loo_errors(K: np.ndarray, y: np.ndarray, alphas=KERNEL_ALPHAS) -> np.ndarray:
    """Mean squared leave-one-out error of kernel ridge regression at every strength in ``alphas``.

    Kernel ridge regression is a linear smoother, ``yhat = H y`` with
    ``H = K (K + alpha I)^-1``, so the leave-one-out residual of row i is
    ``(y_i - yhat_i) / (1 - H_ii)`` (the PRESS statistic), for all strengths
    from one eigendecomposition of K. ``inf`` where a leverage reaches 1.
    """
    lam, V = np.linalg.eigh(K)
    lam = np.maximum(lam, 0.0)
    Vy = V.T @ y
    errors = np.full(len(alphas), np.inf)
    for j, alpha in enumerate(alphas):
        shrink = lam / (lam + alpha)
        leverage = (V**2) @ shrink
        if (1.0 - leverage).min() <= 1e-10:
            continue
        residual = (y - V @ (shrink * Vy)) / (1.0 - leverage)
        errors[j] = float(np.mean(residual**2))
    return errors


class KernelSurrogate(RegressorMixin, BaseEstimator):
    """Kernel ridge surrogate of a target's loss over source subsets (Zhang, Duan and Zhang, ICLR 2026).

    The same interface and score scale as
    :class:`negtransfer.gains.surrogate.LinearSurrogate` (module docstring).

    Parameters
    ----------
    kernel : {"auto", "linear", "quadratic", "rbf"}, default "auto"
        ``"auto"``: the kernel (and RBF width) with the least leave-one-out
        error over the fitted subsets.
    gamma : float or "auto", default "auto"
        RBF width (``kernel="rbf"``); ``"auto"`` tries :data:`AUTO_RBF_GAMMAS`.
    alpha : float or "auto", default "auto"
        Ridge strength, > 0; ``"auto"`` tries :data:`KERNEL_ALPHAS` by the
        same leave-one-out error.
    scale : {"relative", "difference"}, default "relative"
        What the surrogate is fitted to: the change of the target's loss
        relative to STL, or the difference in loss units.
    underdetermined : str, default "raise"
        Accepted so that callers can treat both surrogates alike
        (``set_params(underdetermined="min_norm")``); kernel ridge with
        ``alpha > 0`` is always determined, so it changes nothing.

    Attributes
    ----------
    theta_ : ndarray (k,)
        Relevance of every source (module docstring); lower = more useful.
    kernel_, gamma_, alpha_ : str, float, float
        The kernel, RBF width (NaN for the others) and strength used.
    loo_mse_ : float
        Its leave-one-out mean squared error on the fitted subsets (score scale).
    loo_table_ : list of dict
        The best leave-one-out error of every kernel (and width) tried.
    dual_coef_ : ndarray (n,)
    stl_loss_, reference_, unit_, intercept_ : float
        As for the linear surrogate (``intercept_`` is 0).
    n_features_in_ : int
    """

    def __init__(self, kernel: str = "auto", gamma: float | str = "auto", alpha: float | str = "auto",
                 scale: str = "relative", underdetermined: str = "raise"):
        self.kernel = kernel
        self.gamma = gamma
        self.alpha = alpha
        self.scale = scale
        self.underdetermined = underdetermined

    def _check_params(self) -> None:
        if self.kernel != "auto" and self.kernel not in KERNELS:
            raise ValueError(f"kernel must be 'auto' or one of {KERNELS}; got {self.kernel!r}")
        for name in ("gamma", "alpha"):
            value = getattr(self, name)
            if isinstance(value, str) and value == "auto":
                continue
            if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)) or not (
                    math.isfinite(float(value)) and float(value) > 0):
                raise ValueError(f"{name} must be 'auto' or a finite number > 0; got {value!r}")
        if self.scale not in _SCALES:
            raise ValueError(f"scale must be one of {_SCALES} (the kernel surrogate is anchored at STL); "
                             f"got {self.scale!r}")

    def _candidates(self) -> list[tuple[str, float]]:
        kernels = KERNELS if self.kernel == "auto" else (self.kernel,)
        gammas = AUTO_RBF_GAMMAS if self.gamma == "auto" else (float(self.gamma),)
        out: list[tuple[str, float]] = []
        for kernel in kernels:
            out += [(kernel, g) for g in gammas] if kernel == "rbf" else [(kernel, float("nan"))]
        return out

    def fit(self, S, f, stl_loss: float | None = None) -> "KernelSurrogate":
        """Fit on measured subsets: ``S`` (n, k) membership, ``f`` (n,) target losses, ``stl_loss`` f(STL).

        Returns
        -------
        self
        """
        self._check_params()
        X = validate_subsets(S)
        n, k = X.shape
        y_raw = validate_losses(f, n)
        stl = self._stl(stl_loss)
        self.unit_ = abs(stl) if self.scale == "relative" else 1.0
        y = (y_raw - stl) / self.unit_
        Xf = X.astype(float)
        alphas = KERNEL_ALPHAS if self.alpha == "auto" else (float(self.alpha),)
        from threadpoolctl import threadpool_limits

        best: tuple[float, str, float, float] = (np.inf, "linear", float("nan"), alphas[-1])
        table = []
        # one thread: these matrices are small (n subsets), and several BLAS threads on a busy machine made
        # each eigendecomposition about 100 times slower
        with threadpool_limits(limits=1):
            for kernel, gamma in self._candidates():
                errors = kernel_loo_errors(kernel_matrix(Xf, Xf, kernel, gamma), y, alphas)
                j = int(np.argmin(errors))
                table.append({"kernel": kernel, "gamma": gamma, "alpha": float(alphas[j]),
                              "loo_mse": float(errors[j])})
                if errors[j] < best[0]:
                    best = (float(errors[j]), kernel, gamma, float(alphas[j]))
        self.loo_mse_, self.kernel_, self.gamma_, self.alpha_ = best
        self.loo_table_ = table
        K = kernel_matrix(Xf, Xf, self.kernel_, self.gamma_)
        self.dual_coef_ = np.linalg.solve(K + self.alpha_ * np.eye(n), y)
        self.X_fit_ = Xf
        self.stl_loss_ = stl
        self.reference_ = stl
        self.intercept_ = 0.0
        self.n_features_in_ = k
        self.subset_sizes_ = np.unique(X.sum(axis=1)).astype(int)
        self.theta_ = self._relevance(Xf)
        self.coef_ = self.theta_
        return self

    def _stl(self, stl_loss) -> float:
        if stl_loss is None:
            raise ValueError("the kernel surrogate is anchored at the STL run: pass stl_loss= to fit")
        return cast(float, validate_stl(stl_loss, self.scale))  # None only for a missing stl_loss, refused above

    def _relevance(self, X: np.ndarray) -> np.ndarray:
        """Mean over the fitted subsets holding source i of g(S) - g(S minus i); 0 for a source in none."""
        theta = np.zeros(X.shape[1])
        value = self._value(X)
        for i in range(X.shape[1]):
            rows = np.flatnonzero(X[:, i] > 0)
            if rows.size:
                without = X[rows].copy()
                without[:, i] = 0.0
                theta[i] = float(np.mean(value[rows] - self._value(without)))
        return theta

    def _value(self, X: np.ndarray) -> np.ndarray:
        return kernel_matrix(X, self.X_fit_, self.kernel_, self.gamma_) @ self.dual_coef_

    def _check_fitted_input(self, S) -> np.ndarray:
        if not hasattr(self, "dual_coef_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this KernelSurrogate is not fitted yet; call fit(S, f, stl_loss=...) first")
        return validate_subsets(S, n_sources=self.n_features_in_)

    def surrogate_value(self, S) -> np.ndarray:
        """``g(S)`` on the score scale: the predicted change of the target's loss vs STL (negative = helps)."""
        return self._value(self._check_fitted_input(S).astype(float))

    def predict(self, S) -> np.ndarray:
        """Predicted target loss of every subset, in the loss's units: ``f_STL + unit * g(S)``."""
        return self.reference_ + self.unit_ * self.surrogate_value(S)

    def predict_negative_transfer(self, S) -> np.ndarray:
        """True where the predicted loss is at least the STL loss (negative transfer)."""
        return self.predict(S) >= self.stl_loss_

    def relevance_scores(self, names=None) -> dict:
        """``{index or name: theta_i}`` in column order (lower = more useful)."""
        if not hasattr(self, "theta_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this KernelSurrogate is not fitted yet; call fit first")
        keys = list(range(self.n_features_in_)) if names is None else list(names)
        if len(keys) != self.n_features_in_:
            raise ValueError(f"names has {len(keys)} entries but there are {self.n_features_in_} sources")
        return {key: float(v) for key, v in zip(keys, self.theta_, strict=True)}

    def describe(self) -> dict:
        """The fitted kernel, width, strength and leave-one-out error, for report.json."""
        return {"kernel": self.kernel_, "gamma": None if math.isnan(self.gamma_) else self.gamma_,
                "alpha": self.alpha_, "loo_mse": self.loo_mse_, "candidates": self.loo_table_}
