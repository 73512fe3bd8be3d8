"""What the gain predictors need of scikit-learn, without importing it: parameters, folds, a fitted check, ridge.

Importing scikit-learn costs one to two seconds in every process (it pulls in
scipy.stats, scipy.sparse and pandas); the default ETAP predictor uses four
small pieces of it. They are written here with the same behaviour:

* :class:`Parameters`: ``get_params`` / ``set_params`` read from ``__init__``'s
  signature, so :func:`sklearn.base.clone` and grid searches still work on the
  predictors (scikit-learn's estimator API, Buitinck et al., "API design for
  machine learning software: experiences from the scikit-learn project", 2013);
* :func:`kfold_splits` and :func:`group_kfold_splits`: the folds of
  ``KFold(shuffle=True, random_state)`` and ``GroupKFold`` (scikit-learn 1.9),
  the same index arrays in the same order;
* :func:`ridge_fit`: ``Ridge(alpha, fit_intercept=True)`` in closed form
  (Hoerl and Kennard, "Ridge regression", Technometrics 1970), solved through an
  SVD of the centred design;
* :func:`check_fitted`: scikit-learn's ``NotFittedError`` (imported only to be
  raised) for a predictor used before ``fit``.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np

__all__ = ["Parameters", "check_fitted", "group_kfold_splits", "kfold_splits", "ridge_fit"]


class Parameters:
    """``get_params`` / ``set_params`` from the names of ``__init__``'s keyword parameters.

    The predictor stores every constructor argument under its own name and
    nothing else, as scikit-learn's estimators do; then :func:`sklearn.base.clone`
    rebuilds an unfitted copy from :meth:`get_params`.
    """

    @classmethod
    def _parameter_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(p.name for p in signature.parameters.values()
                      if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD))

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor arguments, by name (``deep`` is accepted for scikit-learn; no parameter is an estimator)."""
        return {name: getattr(self, name) for name in self._parameter_names()}

    def set_params(self, **params):
        """Set constructor arguments by name; returns self."""
        names = self._parameter_names()
        for name, value in params.items():
            if name not in names:
                raise ValueError(f"error: {type(self).__name__} has no parameter {name!r}; its parameters: "
                                 f"{', '.join(names)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = []
        for name, value in self.get_params().items():
            default = defaults.get(name, inspect.Parameter.empty)
            if default is inspect.Parameter.empty or not _same(value, default):
                text = f"array{np.shape(value)}" if isinstance(value, np.ndarray) else repr(value)
                shown.append(f"{name}={text}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _same(value, default) -> bool:
    """Whether a parameter still has its default (arrays never compare equal to a default)."""
    if isinstance(value, np.ndarray):
        return False
    try:
        return bool(value == default)
    except (TypeError, ValueError):
        return False


def check_fitted(estimator, attribute: str) -> None:
    """Raise scikit-learn's ``NotFittedError`` (a ValueError and AttributeError) when ``attribute`` is not set yet."""
    if not hasattr(estimator, attribute):
        from sklearn.exceptions import NotFittedError

        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet; call fit(U, Y) before "
                             "predict")


def _random_state(random_state) -> np.random.RandomState:
    """``sklearn.utils.check_random_state``: None the global generator, an int a new seeded one, a generator itself."""
    if random_state is None:
        return np.random.mtrand._rand
    if isinstance(random_state, np.random.RandomState):
        return random_state
    return np.random.RandomState(int(random_state))


def _with_training_rows(n_samples: int, test_folds):
    """(train, test) per fold, both ascending: the test rows of the fold and every other row (as scikit-learn's splitters)."""
    everything = np.arange(n_samples)
    for test in test_folds:
        held = np.zeros(n_samples, dtype=bool)
        held[test] = True
        yield everything[~held], everything[held]


def kfold_splits(n_samples: int, n_splits: int, shuffle: bool = False, random_state=None):
    """The (train, test) index pairs of ``sklearn.model_selection.KFold(n_splits, shuffle, random_state).split``.

    Rows are shuffled once (``RandomState(random_state).shuffle``) and cut into
    ``n_splits`` consecutive folds, the first ``n_samples % n_splits`` one row
    longer; a fold's test rows are returned ascending, as scikit-learn does.

    Returns
    -------
    list of (ndarray, ndarray)
    """
    if not 2 <= n_splits <= n_samples:
        raise ValueError(f"error: n_splits={n_splits} needs 2 <= n_splits <= n_samples={n_samples}")
    order = np.arange(n_samples)
    if shuffle:
        _random_state(random_state).shuffle(order)
    sizes = np.full(n_splits, n_samples // n_splits, dtype=int)
    sizes[: n_samples % n_splits] += 1
    ends = np.cumsum(sizes)
    return list(_with_training_rows(n_samples, [order[end - size:end] for size, end in zip(sizes, ends, strict=True)]))


def group_kfold_splits(groups: np.ndarray, n_splits: int):
    """The (train, test) index pairs of ``sklearn.model_selection.GroupKFold(n_splits).split(groups=groups)``.

    Groups are taken from the largest (ties: the later group first) and each
    goes to the fold holding the fewest rows so far (ties: the first fold);
    a fold's test rows are its groups' rows, ascending.

    Returns
    -------
    list of (ndarray, ndarray)
    """
    unique, group_of_row = np.unique(groups, return_inverse=True)
    if n_splits > unique.size:
        raise ValueError(f"error: n_splits={n_splits} is more than the number of groups, {unique.size}")
    rows_per_group = np.bincount(group_of_row)
    largest_first = np.argsort(rows_per_group, kind="stable")[::-1]
    rows_per_fold = np.zeros(n_splits)
    fold_of_group = np.zeros(unique.size)
    for group in largest_first:
        lightest = np.argmin(rows_per_fold)
        rows_per_fold[lightest] += rows_per_group[group]
        fold_of_group[group] = lightest
    fold_of_row = fold_of_group[group_of_row]
    return list(_with_training_rows(len(groups), [np.where(fold_of_row == f)[0] for f in range(n_splits)]))


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray | float]:
    """Coefficients and intercept of ``Ridge(alpha, fit_intercept=True).fit(x, y)``, in closed form.

    Minimises ``||y - x w - b||^2 + alpha ||w||^2`` with an unpenalised
    intercept: ``w = V diag(s / (s^2 + alpha)) U^T (y - mean y)`` from the SVD
    ``U S V^T`` of the centred ``x``, ``b = mean y - mean x . w``. The same
    formula as :func:`negtransfer.gains.etap.ridge_path_predict`, which scores
    the alphas in cross-validation; it agrees with scikit-learn's Cholesky
    solution to rounding (tests/gains/test_estimator.py).

    Parameters
    ----------
    x : ndarray (n_samples, n_features)
    y : ndarray (n_samples,) or (n_samples, n_outputs)
    alpha : float
        Ridge penalty (> 0).

    Returns
    -------
    coef : ndarray (n_features,) or (n_outputs, n_features)
        Shaped as scikit-learn's ``coef_``.
    intercept : float or ndarray (n_outputs,)
    """
    one_output = y.ndim == 1
    y2 = y[:, None] if one_output else y
    x_mean = x.mean(axis=0)
    y_mean = y2.mean(axis=0)
    u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)
    coef = (vt.T * (s / (s**2 + alpha))) @ (u.T @ (y2 - y_mean))  # (p, k)
    intercept = y_mean - x_mean @ coef
    if one_output:
        return coef[:, 0], float(intercept[0])
    return coef.T, intercept
