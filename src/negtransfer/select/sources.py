"""Choosing source tasks for one target task with a linear surrogate.

The pieces of Algorithm 1 of "Identification of Negative Transfers in Multitask
Learning Using Surrogate Models" (papers/surrogate-negative-transfer.txt) that
need no training run:

* :func:`sample_subsets` - step 1: n uniform subsets of a fixed size of the k
  sources (section 2.2);
* :class:`negtransfer.gains.surrogate.LinearSurrogate` - step 2: the relevance
  scores theta (eq. 2-3);
* :func:`select_sources` - step 3: the sources with ``theta_i < gamma``
  (section 3.1);
* :func:`choose_threshold` - gamma by cross-validation over a grid (section
  4.3: -0.5 to 0.5 step 0.1), either with a caller-supplied evaluation of the
  final model or with a cheap criterion computed from the surrogate alone;
* :func:`negative_transfer_metrics` - F1 of the minority class between
  positive and negative transfer, and Spearman of g vs f (section 4.1-4.2);
* :func:`holdout_noise_ceiling` - how high any predictor's correlation with
  noisy measured losses can go;
* :func:`holdout_f1_ceiling` - the F1 a predictor of the true losses would
  expect against measurements as noisy;
* :func:`surrogate_error_curve` - held-out error as the number of subsets
  grows (appendix A, Figure 6);
* :func:`top_m_by_pairwise_gain` - the first-order baseline (HOA/TAG style,
  appendix C.1): the m sources with the largest gain when paired alone with
  the target.

Step 4 (training the final model on the target plus the selection) belongs to
the run machinery. Scores and gamma live on the scale of the surrogate; with
the default ``scale="relative"`` that is the change of the target's loss as a
fraction of its STL loss, negative meaning "helps". See
``docs/methods/source-selection.md``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from negtransfer.gains.surrogate import LinearSurrogate, validate_losses, validate_subsets

__all__ = [
    "DEFAULT_GAMMA_GRID",
    "ErrorCurve",
    "ThresholdChoice",
    "choose_threshold",
    "choose_threshold_by_evaluation",
    "choose_threshold_by_surrogate_cv",
    "holdout_f1_ceiling",
    "holdout_noise_ceiling",
    "negative_transfer_metrics",
    "reference_noise_variance",
    "repeat_noise",
    "sample_subsets",
    "select_sources",
    "surrogate_error_curve",
    "threshold_candidates",
    "top_m_by_pairwise_gain",
]

#: The paper's threshold grid (section 4.3): -0.5 to 0.5 in steps of 0.1, with
#: exact decimals (``np.arange`` would put 1.1e-16 where 0 belongs).
DEFAULT_GAMMA_GRID: np.ndarray = np.round(np.linspace(-0.5, 0.5, 11), 10)

# Above this many candidate subsets, sample by rejection instead of enumerating.
_ENUMERATE_MAX = 20_000


def _check_int(value, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer; got {value!r}")
    v = int(value)
    if v < low or (high is not None and v > high):
        rng = f">= {low}" if high is None else f"between {low} and {high}"
        raise ValueError(f"{name} must be {rng}; got {v}")
    return v


def _check_finite_float(value, name: str) -> float:
    arr = np.asarray(value)
    if arr.ndim != 0 or arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be one number; got {value!r}")
    v = float(arr)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite; got {value!r}")
    return v


def _check_vector(values, name: str, length: int | None = None) -> np.ndarray:
    try:
        v = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a 1-D array of numbers: {exc}") from None
    if v.ndim != 1:
        raise ValueError(f"{name} must be 1-D; got shape {v.shape}")
    if length is not None and v.shape[0] != length:
        raise ValueError(f"{name} has {v.shape[0]} values; expected {length}")
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        raise ValueError(f"{name} must be finite; entries {bad[:10].tolist()} are NaN/inf")
    return v


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation; NaN when undefined (n < 2 or a constant input).

    Pearson's correlation of the average ranks, as ``scipy.stats.spearmanr``
    computes it (the same number), without importing scipy.stats.
    """
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    from negtransfer.train.metrics import average_ranks

    ranked = average_ranks(np.column_stack((a, b)), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rho = np.corrcoef(ranked, rowvar=False)[1, 0]
    return float(rho)


# ---------------------------------------------------------------------------
# step 1: sampling


def sample_subsets(k: int, size: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` uniformly random subsets of ``size`` of the ``k`` source tasks.

    Paper section 2.2: each subset is drawn from the uniform distribution over
    the subsets of a fixed size (alpha in the paper; 5 worked best).

    Subsets are distinct whenever ``n <= C(k, size)``: the result is then a
    uniformly random set of n distinct subsets in random order, so any prefix
    of the rows is itself a uniform sample (used by
    :func:`surrogate_error_curve`). When ``n > C(k, size)``, every subset
    appears ``n // C(k, size)`` times and a uniformly random distinct
    selection of the others once more, so that counts differ by at most one.

    Parameters
    ----------
    k : int
        Number of source tasks (>= 1).
    size : int
        Sources per subset, 1 <= size <= k.
    n : int
        Number of subsets (>= 0).
    seed : int
        The result depends only on ``(k, size, n, seed)``.

    Returns
    -------
    ndarray of shape (n, k), bool
    """
    k = _check_int(k, "k", 1)
    size = _check_int(size, "size", 1, k)
    n = _check_int(n, "n", 0)
    rng = np.random.default_rng(seed)
    total = math.comb(k, size)
    out = np.zeros((n, k), dtype=bool)
    if n == 0:
        return out
    if n >= total or total <= max(_ENUMERATE_MAX, 4 * n):
        combos = np.array(list(itertools.combinations(range(k), size)), dtype=np.intp)
        reps, rest = divmod(n, total)
        rows = np.concatenate([np.tile(np.arange(total), reps), rng.choice(total, size=rest, replace=False)])
        rows = rng.permutation(rows) if reps else rows  # choice(replace=False) is already in random order
        out[np.repeat(np.arange(n), size), combos[rows].ravel()] = True
        return out
    # Rejection: draw uniform subsets, keep unseen ones (acceptance > 3/4 here).
    seen: set[bytes] = set()
    filled = 0
    while filled < n:
        batch = max(2 * (n - filled), 16)
        members = np.argsort(rng.random((batch, k)), axis=1)[:, :size]
        cand = np.zeros((batch, k), dtype=bool)
        cand[np.repeat(np.arange(batch), size), members.ravel()] = True
        for row in cand:
            key = np.packbits(row).tobytes()
            if key in seen:
                continue
            seen.add(key)
            out[filled] = row
            filled += 1
            if filled == n:
                break
    return out


# ---------------------------------------------------------------------------
# step 3: selection


def select_sources(theta, gamma: float):
    """The sources whose relevance score is below the threshold: ``{i : theta_i < gamma}``.

    Algorithm 1, step 3; equivalent to minimising the surrogate ``g(S)`` over
    all subsets when ``gamma = 0`` on an anchored scale (section 3.1).

    Parameters
    ----------
    theta : array-like of shape (k,) or mapping
        Relevance scores (``LinearSurrogate.theta_`` or ``relevance_scores()``).
    gamma : float
        Threshold on the same scale as ``theta`` (strict inequality).

    Returns
    -------
    ndarray of int (ascending indices) for an array; list of keys (in the
    mapping's order) for a mapping.
    """
    gamma = _check_finite_float(gamma, "gamma")
    if isinstance(theta, Mapping):
        keys = list(theta.keys())
        values = _check_vector([theta[key] for key in keys], "theta")
        return [key for key, v in zip(keys, values, strict=True) if v < gamma]
    values = _check_vector(theta, "theta")
    return np.flatnonzero(values < gamma)


def threshold_candidates(theta) -> np.ndarray:
    """Thresholds that produce every distinct selection ``{i : theta_i < gamma}``.

    The midpoints between consecutive distinct sorted scores, plus one below
    the smallest (select nothing) and one above the largest (select all):
    ``len(unique(theta)) + 1`` values, ascending. Use as ``grid=`` when the
    paper's fixed grid is too coarse for the spread of the scores.
    """
    u = np.unique(_check_vector(theta, "theta"))
    if u.size == 0:
        return np.array([0.0])
    spread = max(float(u[-1] - u[0]), 1.0)
    mids = (u[:-1] + u[1:]) / 2
    return np.concatenate([[u[0] - 0.5 * spread], mids, [u[-1] + 0.5 * spread]])


def top_m_by_pairwise_gain(pair_gains, m: int) -> np.ndarray:
    """First-order baseline: the ``m`` sources with the largest pairwise gain.

    ``pair_gains[i]`` is the target's gain when trained together with source
    ``i`` alone (larger is better), for example the MTL gain
    ``(L_STL - L_pair) / L_STL`` (ETAP eq. 1, :func:`negtransfer.gains.table.mtl_gain`)
    or a first-order affinity of source i onto the target. This is how the
    paper runs HOA and TAG as source-selection baselines (appendix C.1), with
    m searched from 0 to k.

    Parameters
    ----------
    pair_gains : array-like of shape (k,)
        Finite gains; train or drop missing pairs first.
    m : int
        0 <= m <= k.

    Returns
    -------
    ndarray of int, shape (m,)
        Best first; ties broken by the lower index.
    """
    g = _check_vector(pair_gains, "pair_gains")
    m = _check_int(m, "m", 0, g.size)
    order = np.argsort(-g, kind="stable")
    return order[:m]


# ---------------------------------------------------------------------------
# evaluation metrics


def negative_transfer_metrics(predicted, actual, stl_loss: float) -> dict:
    """How well predicted losses separate positive from negative transfer.

    A subset S is a **negative transfer** when its target loss is at least the
    STL loss, ``f(S) >= f_STL``, and a **positive transfer** when
    ``f(S) < f_STL`` (paper section 2.1; a tie counts as negative: no gain).
    The same rule applied to the predicted loss gives the predicted class.

    The **minority class** is the class with fewer *actual* members; on a tie
    it is "negative". The F1 score is that of the minority class taken as the
    positive label (paper section 4.1)::

        precision = TP / (TP + FP),  recall = TP / (TP + FN),
        f1 = 2 TP / (2 TP + FP + FN),

    where TP counts subsets both actually and predictively in the minority
    class. When a ratio's denominator is 0 it is NaN. In particular, when all
    actual subsets fall in one class, the minority class is the absent one:
    f1 is 0.0 if the predictions contain that class (all false positives) and
    NaN if they do not (nothing to score).

    Parameters
    ----------
    predicted : array-like of shape (n,)
        Predicted target losses, e.g. ``LinearSurrogate.predict(S)`` (loss units).
    actual : array-like of shape (n,)
        Measured target losses ``f(S)``.
    stl_loss : float
        The target's STL loss.

    Returns
    -------
    dict with keys
        ``f1``, ``precision``, ``recall`` (minority class), ``accuracy``
        (fraction of subsets whose class is predicted right), ``spearman``
        (rank correlation of predicted vs actual losses; NaN when n < 2 or
        either is constant), ``n``, ``minority`` ("negative" or "positive"),
        ``n_negative`` and ``n_positive`` (actual counts).
    """
    pred = _check_vector(predicted, "predicted")
    act = _check_vector(actual, "actual", length=pred.size)
    if pred.size == 0:
        raise ValueError("predicted and actual are empty; pass at least one subset")
    stl = _check_finite_float(stl_loss, "stl_loss")
    pred_neg = pred >= stl
    act_neg = act >= stl
    n = int(act.size)
    n_neg = int(act_neg.sum())
    tp, fp, fn = (int(c) for c in _minority_counts(pred_neg, act_neg))
    nan = float("nan")
    return {
        "f1": 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else nan,
        "precision": tp / (tp + fp) if (tp + fp) else nan,
        "recall": tp / (tp + fn) if (tp + fn) else nan,
        "accuracy": float(np.mean(pred_neg == act_neg)),
        "spearman": _spearman(pred, act),
        "n": n,
        "minority": "negative" if n_neg <= n - n_neg else "positive",
        "n_negative": n_neg,
        "n_positive": n - n_neg,
    }


def _minority_counts(pred_neg: np.ndarray, act_neg: np.ndarray) -> np.ndarray:
    """True positives, false positives and false negatives of the minority class (the class with fewer actual
    members; "negative" on a tie), along the last axis of the predicted and actual negative-transfer flags:
    shape ``(3, *leading)``."""
    n_neg = act_neg.sum(axis=-1, keepdims=True)
    negative_is_minority = n_neg <= act_neg.shape[-1] - n_neg
    m_act = act_neg == negative_is_minority
    m_pred = pred_neg == negative_is_minority
    return np.stack([(m_act & m_pred).sum(axis=-1), (~m_act & m_pred).sum(axis=-1), (m_act & ~m_pred).sum(axis=-1)])


def holdout_noise_ceiling(values) -> float:
    """The correlation a perfect predictor could reach against noisy measured losses.

    Each measured ``f(S)`` is a mean over R repeats: the subset's true loss
    plus run-to-run noise. By classical test theory the correlation of any
    predictor with the measured means is at most ``sqrt(reliability)``, where
    ``reliability = 1 - mean(se^2) / var(f)`` is the share of the spread of
    the means over subsets that is not noise (exact for Pearson, approximate
    for Spearman). Repeat r of every subset shares its seed (common random
    numbers), so part of the noise is a shift common to all subsets of that
    repeat, which changes no ranking: it is removed first by centring each
    repeat's values on their mean over the subsets, and ``se`` is the
    standard error of each subset's centred values. A holdout Spearman close
    to the ceiling means the surrogate is limited by the noise of the
    measurements, not by its fit (more repeats raise the ceiling, more fitted
    subsets do not).

    Parameters
    ----------
    values : array-like of shape (n_subsets, R)
        The measured loss of every subset in every repeat.

    Returns
    -------
    float
        In [0, 1]; 0 when the noise accounts for all of the spread (the
        estimate is clipped there); NaN with fewer than two repeats or two
        subsets, a non-finite value (a diverged run), or no spread.
    """
    noise = repeat_noise(values)
    if noise is None:
        return float("nan")
    _, noise_var, spread = noise
    return float(np.sqrt(max(0.0, 1.0 - noise_var / spread))) if spread > 0 else float("nan")


def repeat_noise(values) -> tuple[np.ndarray, float, float] | None:
    """The measured means of ``values`` (subsets x repeats), the noise variance of a mean (the mean over the
    subsets of the squared standard errors of their values centred per repeat, which leaves out a shift common
    to every subset of one repeat) and the spread of the means over the subsets; None with fewer than two
    subsets or repeats, or a non-finite value (a diverged run)."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 2:
        raise ValueError(f"values must be a 2-D array (subsets x repeats); got shape {v.shape}")
    n, repeats = v.shape
    if n < 2 or repeats < 2 or not np.isfinite(v).all():
        return None
    centred = v - v.mean(axis=0, keepdims=True)
    spread = float(np.var(centred.mean(axis=1), ddof=1))
    return v.mean(axis=1), float(np.mean(centred.var(axis=1, ddof=1) / repeats)), spread


def holdout_f1_ceiling(values, stl_loss: float, *, stl_values=None, draws: int = 1000, seed: int = 0) -> float:
    """The F1 a predictor of the true losses would expect against measured losses as noisy as these.

    The F1 of :func:`negative_transfer_metrics` scores predicted classes (``f(S) >= f_STL``: negative
    transfer) against the classes of the *measured* means. Subsets whose true loss lies within the
    measurement noise of ``f_STL`` land in either class by chance, so even a perfect predictor of the true
    f(S) misses some of them; with few subsets in the minority class (a handful of negative transfers among
    100) a single one moves the F1 a lot. This estimates that expectation under a normal measurement model
    (empirical Bayes; the F1 analogue of :func:`holdout_noise_ceiling`):

    * noise: each measured mean is the true loss plus noise of variance ``s^2``, the mean over the subsets of
      the squared standard errors of their values centred per repeat (a shift common to every subset of one
      repeat, from common random numbers, moves the subsets and their mean f_STL alike; it is left out);
    * truth: the true losses spread around the measured means' mean with variance
      ``tau^2 = var(means) - s^2`` (at least 0), so given its measured mean ``m`` a subset's true loss is
      normal with mean ``mean + b (m - mean)`` and variance ``b s^2``, ``b = tau^2 / (tau^2 + s^2)``;
    * each of ``draws`` draws takes true losses from that posterior and fresh measurements of them (true
      plus noise), and scores the true losses as the prediction against the fresh measurements with
      the F1 of :func:`negative_transfer_metrics` with ``stl_loss`` as the line; the mean F1 over the draws
      (draws with the F1 undefined left out) is returned.
    * with ``stl_values`` (f(STL) in each repeat of ``values``, whose mean is ``stl_loss``), the line is
      measured too: its noise variance ``v`` is that of the mean of STL's values centred per repeat on the
      subsets' mean of that repeat (as the subsets' noise is estimated; the common shift moves STL and the
      subsets alike), and each draw takes a true f(STL) ``stl_loss + e1`` and a fresh measurement of it
      ``stl_loss + e1 + e2`` (``e1, e2 ~ N(0, v)``, drawn after the subsets' draws, so the subsets' draws
      are those without ``stl_values``): the true losses are classed against the true f(STL) (a surrogate
      predicts the change relative to STL), the fresh measurements against the measured one. One
      f(STL) shifts the class of every subset near the line at once; on tv16 at n = 8k with 2 repeats,
      where f(STL)'s noise is about that of one subset, this lowers the ceiling by about 0.07
      (docs/methods/source-selection.md, "What more repeats would buy").

    It is an approximation (normal noise of one size for every subset; without ``stl_values`` the measured
    reference ``f_STL`` taken as exact): a surrogate's holdout F1 well below it is limited by its fit, one
    near it by the noise.

    Parameters
    ----------
    values : array-like of shape (n_subsets, R)
        The measured loss of every holdout subset in every repeat.
    stl_loss : float
        The reference f(STL), the line between the classes.
    stl_values : array-like of shape (R,), optional
        f(STL) in each repeat of ``values`` (the same seeds), ``stl_loss`` their mean: the line's own noise
        is drawn as well. None (default): ``stl_loss`` is taken as exact.
    draws : int
        Simulated draws.
    seed : int
        Seed of the draws.

    Returns
    -------
    float
        In [0, 1]; NaN with fewer than two repeats or two subsets, a non-finite value (in ``stl_values``
        too), or every draw's F1 undefined.
    """
    stl = _check_finite_float(stl_loss, "stl_loss")
    if not isinstance(draws, Integral) or draws < 1:
        raise ValueError(f"draws must be a positive integer; got {draws!r}")
    noise = repeat_noise(values)
    if noise is None:
        return float("nan")
    means, noise_var, spread = noise
    stl_var = 0.0 if stl_values is None else reference_noise_variance(values, stl_values)
    true_var = max(0.0, spread - noise_var)
    if true_var + noise_var <= 0 or not np.isfinite(stl_var):
        return float("nan")
    n = means.size
    shrink = true_var / (true_var + noise_var)
    centre = float(means.mean())
    rng = np.random.default_rng(seed)
    true = centre + shrink * (means - centre) + rng.normal(0.0, np.sqrt(shrink * noise_var), (draws, n))
    measured = true + rng.normal(0.0, np.sqrt(noise_var), (draws, n))
    true_stl = measured_stl = np.full((draws, 1), stl)
    if stl_values is not None:  # the line measured too: its truth, then a fresh measurement of it
        true_stl = stl + rng.normal(0.0, np.sqrt(stl_var), (draws, 1))
        measured_stl = true_stl + rng.normal(0.0, np.sqrt(stl_var), (draws, 1))
    tp, fp, fn = _minority_counts(true >= true_stl, measured >= measured_stl)
    scored = 2 * tp + fp + fn > 0
    return float(np.mean(2 * tp[scored] / (2 * tp + fp + fn)[scored])) if scored.any() else float("nan")


def reference_noise_variance(values, stl_values) -> float:
    """The noise variance of f(STL), the mean of ``stl_values`` (R,), measured in the repeats of ``values``
    (subsets x R, finite, at least two repeats): the variance over the repeats of STL's values centred on the
    subsets' mean of each repeat, over R; NaN where ``stl_values`` is not finite."""
    v = np.asarray(values, dtype=float)
    reference = np.asarray(stl_values, dtype=float)
    if reference.shape != (v.shape[1],):
        raise ValueError(f"stl_values must hold f(STL) of each of the {v.shape[1]} repeats of values; got shape "
                         f"{reference.shape}")
    if not np.isfinite(reference).all():
        return float("nan")
    return float(np.var(reference - v.mean(axis=0), ddof=1) / v.shape[1])


# ---------------------------------------------------------------------------
# threshold selection


@dataclass(frozen=True, eq=False)
class ThresholdChoice:
    """Result of :func:`choose_threshold`.

    Attributes
    ----------
    gamma : float
        The chosen threshold (on the surrogate's score scale).
    grid : ndarray
        Thresholds tried, in the order given.
    scores : ndarray
        Criterion per grid value (mean over folds for ``"surrogate_cv"``).
    criterion : str
        ``"surrogate_cv"`` or ``"evaluation"``.
    greater_is_better : bool
        Direction of ``scores``.
    fold_scores : ndarray of shape (cv, len(grid)) or None
        Per-fold criterion (``"surrogate_cv"`` only).
    theta : ndarray or None
        Scores the selection is made from: the surrogate fitted on all subsets
        (``"surrogate_cv"``) or the ``theta`` passed in (``"evaluation"``).
    selected : ndarray of int or None
        ``select_sources(theta, gamma)``, when ``theta`` is known.
    n_selected : ndarray of int or None
        Number of sources selected at each grid value, when ``theta`` is known.
    n_evaluations : int
        Calls of the evaluation function (``"evaluation"``), or folds fitted.
    """

    gamma: float
    grid: np.ndarray
    scores: np.ndarray
    criterion: str
    greater_is_better: bool = False
    fold_scores: np.ndarray | None = None
    theta: np.ndarray | None = None
    selected: np.ndarray | None = None
    n_selected: np.ndarray | None = None
    n_evaluations: int = 0


def _check_grid(grid) -> np.ndarray:
    g = _check_vector(grid, "grid")
    if g.size == 0:
        raise ValueError("grid is empty; pass at least one threshold")
    return g


def _best_index(grid: np.ndarray, scores: np.ndarray, greater_is_better: bool) -> int:
    """Best score; among (near-)ties the smallest gamma (fewest sources)."""
    s = -scores if greater_is_better else scores
    best = s.min()
    tol = 1e-12 * max(1.0, abs(best))
    tied = np.flatnonzero(s <= best + tol)
    return int(tied[np.argmin(grid[tied])])


def choose_threshold_by_evaluation(
    score_fn: Callable[[float], float],
    grid=DEFAULT_GAMMA_GRID,
    *,
    theta=None,
    greater_is_better: bool = False,
) -> ThresholdChoice:
    """Pick gamma by an evaluation the caller supplies (the paper's procedure).

    ``score_fn(gamma)`` should return the cross-validated (or validation)
    score of the *final* model trained on the target plus
    ``select_sources(theta, gamma)``: a loss by default (lower is better), or
    a metric with ``greater_is_better=True``. What is cross-validated is
    entirely up to ``score_fn``; this function only searches the grid.

    Parameters
    ----------
    score_fn : callable float -> float
        Must return a finite number.
    grid : array-like of float
        Thresholds to try (default: the paper's -0.5 .. 0.5 step 0.1).
    theta : array-like of shape (k,), optional
        The relevance scores. When given, grid values that select the same
        sources share one call of ``score_fn`` (made with the first such
        gamma), and the result reports the selections.
    greater_is_better : bool
        Direction of ``score_fn``.

    Returns
    -------
    ThresholdChoice
        Among equal scores, the smallest gamma (fewest sources) wins.
    """
    if not callable(score_fn):
        raise ValueError(f"score_fn must be callable (gamma -> score); got {type(score_fn).__name__}")
    g = _check_grid(grid)
    th = None if theta is None else _check_vector(theta, "theta")
    cache: dict[tuple[int, ...], float] = {}
    scores = np.empty(g.size)
    calls = 0
    for j, gamma in enumerate(g):
        key = tuple(np.flatnonzero(th < gamma).tolist()) if th is not None else None
        if key is not None and key in cache:
            scores[j] = cache[key]
            continue
        value = score_fn(float(gamma))
        calls += 1
        try:
            value = _check_finite_float(value, "score")
        except ValueError:
            raise ValueError(f"score_fn({float(gamma)!r}) returned {value!r}; it must return a finite number") from None
        scores[j] = value
        if key is not None:
            cache[key] = value
    best = _best_index(g, scores, greater_is_better)
    gamma = float(g[best])
    return ThresholdChoice(
        gamma=gamma,
        grid=g,
        scores=scores,
        criterion="evaluation",
        greater_is_better=bool(greater_is_better),
        theta=th,
        selected=None if th is None else np.flatnonzero(th < gamma),
        n_selected=None if th is None else np.array([(th < x).sum() for x in g]),
        n_evaluations=calls,
    )


def choose_threshold_by_surrogate_cv(
    S,
    f,
    stl_loss: float,
    grid=DEFAULT_GAMMA_GRID,
    *,
    cv: int = 5,
    seed: int = 0,
    surrogate: LinearSurrogate | None = None,
) -> ThresholdChoice:
    """Pick gamma without training: cross-fitted surrogate value of the selection.

    What is cross-validated: the measured subsets are split into ``cv`` folds
    (shuffled with ``seed``). For each fold,

    1. a surrogate fitted on the *other* folds gives scores ``theta_sel`` and,
       for each gamma, a selection ``A = {i : theta_sel_i < gamma}``;
    2. an independent surrogate fitted on the *held-out fold only* gives
       ``theta_eval``, and the fold's criterion is
       ``sum_{i in A} theta_eval_i``: the held-out surrogate's predicted change
       of the target's loss (vs STL) when training with A (0 for A empty).

    The criterion is averaged over folds and minimised; among ties the
    smallest gamma wins (fewest sources). Evaluating with scores that did not
    choose the selection removes the winner's curse: sources whose estimated
    score is negative only by noise contribute about their true score, so
    thresholds that admit them are not rewarded. Without cross-fitting the
    criterion would always pick ``gamma = 0``.

    The criterion extrapolates the additive surrogate from the sampled subset
    size to ``|A|``, as Algorithm 1 itself does; it ranks thresholds by the
    surrogate's opinion, not by a trained model. Use
    :func:`choose_threshold_by_evaluation` to validate final models instead.

    Parameters
    ----------
    S, f, stl_loss
        As for :meth:`LinearSurrogate.fit`.
    grid : array-like of float
        Thresholds on the surrogate's score scale.
    cv : int
        Number of folds, 2 <= cv <= n. Each held-out fold is fitted on its
        own. Fold fits use ``underdetermined="min_norm"``: with least squares
        a source that a fold never samples scores 0 there (no held-out
        evidence counts as neutral) instead of failing. Folds much smaller
        than k make ``theta_eval`` noisy; lower ``cv`` then.
    seed : int
        Fold assignment.
    surrogate : LinearSurrogate, optional
        Template (cloned for every fit); default ``LinearSurrogate()``. Its
        scale must be anchored (``"relative"`` or ``"difference"``).

    Returns
    -------
    ThresholdChoice
        ``theta`` / ``selected`` / ``n_selected`` refer to the surrogate fitted
        on all subsets, the one the final selection is made from.
    """
    from sklearn.base import clone
    from sklearn.model_selection import KFold

    X = validate_subsets(S)
    y = validate_losses(f, X.shape[0])
    g = _check_grid(grid)
    from negtransfer.select.kernel_surrogate import KernelSurrogate

    template = LinearSurrogate() if surrogate is None else surrogate
    if not isinstance(template, (LinearSurrogate, KernelSurrogate)):
        raise ValueError(f"surrogate must be a LinearSurrogate or a KernelSurrogate; got {type(template).__name__}")
    if template.scale == "raw":
        raise ValueError(
            "the surrogate criterion sums scores relative to STL, so it needs an anchored scale: "
            "use LinearSurrogate(scale='relative') or scale='difference', not 'raw'"
        )
    n = X.shape[0]
    cv = _check_int(cv, "cv", 2, n)
    final = clone(template).fit(X, y, stl_loss=stl_loss)
    fold_scores = np.empty((cv, g.size))
    folds = KFold(n_splits=cv, shuffle=True, random_state=seed).split(X)
    fold_template = clone(template).set_params(underdetermined="min_norm")
    for j, (train, held) in enumerate(folds):
        theta_sel = clone(fold_template).fit(X[train], y[train], stl_loss=stl_loss).theta_
        theta_eval = clone(fold_template).fit(X[held], y[held], stl_loss=stl_loss).theta_
        for c, gamma in enumerate(g):
            fold_scores[j, c] = theta_eval[theta_sel < gamma].sum()
    scores = fold_scores.mean(axis=0)
    best = _best_index(g, scores, greater_is_better=False)
    gamma = float(g[best])
    theta = final.theta_
    return ThresholdChoice(
        gamma=gamma,
        grid=g,
        scores=scores,
        criterion="surrogate_cv",
        greater_is_better=False,
        fold_scores=fold_scores,
        theta=theta,
        selected=np.flatnonzero(theta < gamma),
        n_selected=np.array([(theta < x).sum() for x in g]),
        n_evaluations=cv,
    )


def choose_threshold(
    S,
    f=None,
    stl_loss: float | None = None,
    grid=DEFAULT_GAMMA_GRID,
    *,
    cv: int = 5,
    seed: int = 0,
    surrogate: LinearSurrogate | None = None,
    theta=None,
    greater_is_better: bool = False,
) -> ThresholdChoice:
    """Choose the selection threshold gamma over a grid (paper section 3.1, 4.3).

    Two forms:

    * ``choose_threshold(score_fn, grid, theta=..., greater_is_better=...)``
      with a callable first argument: the caller's evaluation of the final
      model, see :func:`choose_threshold_by_evaluation`. The grid may be the
      second positional argument.
    * ``choose_threshold(S, f, stl_loss, grid, cv=5, seed=0, surrogate=...)``:
      the training-free cross-fitted surrogate criterion, see
      :func:`choose_threshold_by_surrogate_cv`.
    """
    if callable(S):
        if stl_loss is not None:
            raise ValueError("with an evaluation function, pass only (score_fn, grid); stl_loss is not used")
        if f is not None:
            grid = f
        return choose_threshold_by_evaluation(S, grid, theta=theta, greater_is_better=greater_is_better)
    if f is None or stl_loss is None:
        raise ValueError(
            "choose_threshold needs either a callable score_fn(gamma), or the measured subsets: "
            "choose_threshold(S, f, stl_loss)"
        )
    if theta is not None or greater_is_better:
        raise ValueError("theta and greater_is_better apply only to the callable form of choose_threshold")
    return choose_threshold_by_surrogate_cv(S, f, stl_loss, grid, cv=cv, seed=seed, surrogate=surrogate)


# ---------------------------------------------------------------------------
# convergence (paper appendix A, Figure 6)


@dataclass(frozen=True, eq=False)
class ErrorCurve:
    """Result of :func:`surrogate_error_curve`; one entry per training size.

    Attributes
    ----------
    sizes : ndarray of int
        Numbers of training subsets.
    mse : ndarray
        Held-out mean squared error of the predicted loss (loss units).
    spearman : ndarray
        Held-out Spearman correlation of predicted vs measured loss.
    train_mse : ndarray
        Mean squared error on the training subsets.
    f1, accuracy : ndarray
        Held-out :func:`negative_transfer_metrics`; NaN without ``stl_loss``.
    holdout : ndarray of int
        Rows of ``S`` held out (ascending).
    train_rows : ndarray of int
        Rows available for training, in order; size n uses the first n.
    """

    sizes: np.ndarray
    mse: np.ndarray
    spearman: np.ndarray
    train_mse: np.ndarray
    f1: np.ndarray
    accuracy: np.ndarray
    holdout: np.ndarray
    train_rows: np.ndarray

    def to_frame(self):
        """The curve as a pandas DataFrame (one row per size)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "n_subsets": self.sizes,
                "mse": self.mse,
                "spearman": self.spearman,
                "train_mse": self.train_mse,
                "f1": self.f1,
                "accuracy": self.accuracy,
            }
        )


def surrogate_error_curve(
    S,
    f,
    sizes,
    seed: int = 0,
    holdout=100,
    *,
    stl_loss: float | None = None,
    surrogate: LinearSurrogate | None = None,
) -> ErrorCurve:
    """Held-out error of the surrogate as the number of training subsets grows.

    Paper appendix A, Figure 6: the MSE on a holdout of 100 subsets converges
    to the run-to-run variance of ``f`` with n <= 8k subsets. A fixed set of
    rows is held out; for each n in ``sizes`` the surrogate is fitted on the
    first n of the remaining rows (in their original order, so nested
    training sets, as when subsets are measured one after another).

    Parameters
    ----------
    S, f
        All measured subsets and losses.
    sizes : sequence of int
        Training sizes, each between 1 and the number of non-held-out rows.
    seed : int
        Chooses the held-out rows when ``holdout`` is an int.
    holdout : int or array-like of int or bool mask
        Number of rows to hold out at random, or the rows themselves.
    stl_loss : float, optional
        Enables ``f1``/``accuracy`` and the anchored scale.
    surrogate : LinearSurrogate, optional
        Template; default ``LinearSurrogate()`` with ``stl_loss``, else
        ``LinearSurrogate(scale="raw")``.

    Returns
    -------
    ErrorCurve
    """
    from sklearn.base import clone

    X = validate_subsets(S)
    y = validate_losses(f, X.shape[0])
    n = X.shape[0]
    if isinstance(holdout, Integral) and not isinstance(holdout, bool):
        n_hold = _check_int(holdout, "holdout", 1, n - 1)
        held = np.sort(np.random.default_rng(seed).choice(n, size=n_hold, replace=False))
    else:
        h = np.asarray(holdout)
        if h.dtype == bool:
            if h.shape != (n,):
                raise ValueError(f"a boolean holdout mask must have shape ({n},); got {h.shape}")
            held = np.flatnonzero(h)
        elif h.ndim == 1 and (h.size == 0 or np.issubdtype(h.dtype, np.integer)):
            held = np.unique(h.astype(np.intp))
            if held.size and (held[0] < 0 or held[-1] >= n):
                raise ValueError(f"holdout rows must be in 0..{n - 1}; got {h.tolist()[:10]}")
        else:
            raise ValueError("holdout must be an int, row indices, or a boolean mask over the rows of S")
        if held.size == 0 or held.size == n:
            raise ValueError(f"holdout must keep between 1 and {n - 1} rows aside; got {held.size}")
    train_rows = np.setdiff1d(np.arange(n), held)
    sz = np.asarray(sizes)
    if sz.ndim != 1 or sz.size == 0 or not np.issubdtype(sz.dtype, np.integer):
        raise ValueError(f"sizes must be a non-empty 1-D sequence of ints; got {sizes!r}")
    for m in sz:
        _check_int(int(m), "each of sizes", 1, train_rows.size)
    if surrogate is None:
        template = LinearSurrogate() if stl_loss is not None else LinearSurrogate(scale="raw")
    else:
        template = surrogate
    stl = None if stl_loss is None else _check_finite_float(stl_loss, "stl_loss")
    out = {key: np.full(sz.size, np.nan) for key in ("mse", "spearman", "train_mse", "f1", "accuracy")}
    for j, m in enumerate(sz):
        rows = train_rows[: int(m)]
        try:
            model = clone(template).fit(X[rows], y[rows], stl_loss=stl)
        except ValueError as exc:
            raise ValueError(f"cannot fit the surrogate on the first {int(m)} subsets: {exc}") from None
        pred = model.predict(X[held])
        out["mse"][j] = float(np.mean((pred - y[held]) ** 2))
        out["spearman"][j] = _spearman(pred, y[held])
        out["train_mse"][j] = float(np.mean((model.predict(X[rows]) - y[rows]) ** 2))
        if stl is not None:
            metrics = negative_transfer_metrics(pred, y[held], stl)
            out["f1"][j] = metrics["f1"]
            out["accuracy"][j] = metrics["accuracy"]
    return ErrorCurve(sizes=sz.astype(int), holdout=held, train_rows=train_rows, **out)
