"""Multi-group metrics for fairness-minded users: one number per group, and the gaps.

All functions take hard predictions (class labels, not probabilities) and a
``groups`` array that names each row's group (a demographic attribute such as
race or sex; see :func:`negtransfer.data.social.row_attribute` for the built-in
datasets). Binary metrics expect labels and predictions coded 0/1 (or bool),
1 being the positive ("favourable") outcome, as :class:`~negtransfer.data.TaskSpec`
encodes binary tasks (``classes[1]`` is the positive class). numpy only.

Definitions, for groups g with rows R_g:

* accuracy_g = mean over R_g of [y_pred == y_true];
  **worst-group accuracy** = min_g accuracy_g (Sagawa et al., 2020);
* selection rate_g = P(y_pred = 1 | g);
  **demographic-parity gap** = max_g - min_g of the selection rate (statistical
  parity; Dwork et al., 2012; Calders & Verwer, 2010);
* true-positive rate_g = P(y_pred = 1 | y_true = 1, g);
  **equal-opportunity gap** = max_g - min_g of the true-positive rate
  (Hardt, Price & Srebro, 2016, Definition 2: equal opportunity holds when the
  true-positive rates are equal across groups).

Skipping rule: a rate is undefined for a group with no rows in its denominator
(no positives for the true-positive rate, no negatives for the false-positive
rate); such groups are left out of the max and min (and reported as NaN in
:func:`group_metrics`). The optional ``min_rows`` / ``min_positives`` arguments
leave out groups too small to estimate a rate well. A gap is NaN when no group
qualifies, and 0.0 when exactly one does.

References
----------
Hardt, M., Price, E. and Srebro, N. (2016). Equality of opportunity in supervised
learning. NeurIPS 29.
Dwork, C., Hardt, M., Pitassi, T., Reingold, O. and Zemel, R. (2012). Fairness
through awareness. ITCS.
Calders, T. and Verwer, S. (2010). Three naive Bayes approaches for
discrimination-free classification. Data Mining and Knowledge Discovery 21.
Sagawa, S., Koh, P. W., Hashimoto, T. B. and Liang, P. (2020). Distributionally
robust neural networks for group shifts. ICLR.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "demographic_parity_gap",
    "equal_opportunity_gap",
    "fairness_summary",
    "group_metrics",
    "worst_group_accuracy",
]


# ---------------------------------------------------------------- validation
def _as_1d(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (one entry per row), got shape {arr.shape}")
    return arr


def _check_lengths(**arrays: np.ndarray) -> int:
    sizes = {name: len(a) for name, a in arrays.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"one entry per row is needed in each array, got lengths {sizes}")
    n = next(iter(sizes.values()))
    if n == 0:
        raise ValueError(f"no rows: {', '.join(sizes)} are empty")
    return n


def _binary(values: Any, name: str) -> np.ndarray:
    """0/1 (or bool) values as bool; a clear error for probabilities or other labels."""
    arr = _as_1d(values, name)
    if arr.dtype == bool:
        return arr
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be 0/1 or bool for this binary metric, got values of dtype {arr.dtype}")
    if np.isnan(arr.astype(float)).any():
        raise ValueError(f"{name} has NaN entries; drop the unlabelled rows first")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        example = arr[bad][0]
        hint = (
            " (these look like probabilities: threshold them first, e.g. y_pred = proba >= 0.5)"
            if name == "y_pred" and np.all((arr >= 0) & (arr <= 1))
            else ""
        )
        raise ValueError(f"{name} must hold only 0 and 1 for this binary metric, found {example!r}{hint}")
    return arr.astype(bool)


def _labels(values: Any, name: str) -> np.ndarray:
    arr = _as_1d(values, name)
    if np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(f"{name} has NaN entries; drop the unlabelled rows first")
    return arr


def _group_index(groups: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct groups and each row's index into them."""
    arr = _as_1d(groups, "groups")
    if arr.dtype == object:
        missing = np.array([g is None or (isinstance(g, float) and np.isnan(g)) for g in arr])
        if missing.any():
            raise ValueError(f"groups has {int(missing.sum())} missing entries (None/NaN); give every row a group")
    elif np.issubdtype(arr.dtype, np.floating) and np.isnan(arr).any():
        raise ValueError(f"groups has {int(np.isnan(arr).sum())} NaN entries; give every row a group")
    try:
        names, inverse = np.unique(arr, return_inverse=True)
    except TypeError:  # mixed types: compare as text
        names, inverse = np.unique(arr.astype(str), return_inverse=True)
    return names, inverse.reshape(-1)


def _rate(hits: np.ndarray, inverse: np.ndarray, mask: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Per group: mean of ``hits`` over rows in ``mask``, and the count of such rows (NaN rate if 0)."""
    den = np.bincount(inverse[mask], minlength=n_groups)
    num = np.bincount(inverse[mask], weights=hits[mask].astype(float), minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(den > 0, num / np.maximum(den, 1), np.nan)
    return rate, den


def _gap(rates: np.ndarray, keep: np.ndarray) -> float:
    values = rates[keep & ~np.isnan(rates)]
    if values.size == 0:
        return float("nan")
    return float(values.max() - values.min())


# ---------------------------------------------------------------- metrics
def worst_group_accuracy(y_true: Any, y_pred: Any, groups: Any, *, min_rows: int = 1) -> float:
    """The lowest per-group accuracy: ``min_g mean(y_pred == y_true | g)``.

    Works for any class labels (binary or multiclass). Groups with fewer than
    ``min_rows`` rows are left out; NaN when none is left.

    Parameters
    ----------
    y_true, y_pred : array-like (R,)
        True and predicted class labels.
    groups : array-like (R,)
        Each row's group (any hashable values: strings, integers).
    min_rows : int
        Smallest group counted (default 1: every group).

    Returns
    -------
    float

    References
    ----------
    Sagawa et al. (2020), "Distributionally robust neural networks for group
    shifts", ICLR: worst-group accuracy as the robustness target.
    """
    y_true = _labels(y_true, "y_true")
    y_pred = _labels(y_pred, "y_pred")
    g = _as_1d(groups, "groups")
    _check_lengths(y_true=y_true, y_pred=y_pred, groups=g)
    names, inverse = _group_index(g)
    acc, n = _rate(y_true == y_pred, inverse, np.ones(len(inverse), bool), len(names))
    keep = n >= max(int(min_rows), 1)
    return float(acc[keep].min()) if keep.any() else float("nan")


def demographic_parity_gap(y_pred: Any, groups: Any, *, min_rows: int = 1) -> float:
    """Largest difference in positive-prediction rate between groups.

    ``max_g P(y_pred = 1 | g) - min_g P(y_pred = 1 | g)`` over groups with at
    least ``min_rows`` rows. 0 means demographic (statistical) parity: every group
    receives the positive prediction equally often, whatever its true labels.

    Parameters
    ----------
    y_pred : array-like (R,) of 0/1 or bool
        Hard predictions (threshold probabilities first).
    groups : array-like (R,)
    min_rows : int
        Smallest group counted (default 1).

    Returns
    -------
    float in [0, 1]; NaN when no group qualifies.

    References
    ----------
    Dwork et al. (2012), "Fairness through awareness" (statistical parity);
    Calders & Verwer (2010).
    """
    y_pred = _binary(y_pred, "y_pred")
    g = _as_1d(groups, "groups")
    _check_lengths(y_pred=y_pred, groups=g)
    names, inverse = _group_index(g)
    rate, n = _rate(y_pred, inverse, np.ones(len(inverse), bool), len(names))
    return _gap(rate, n >= max(int(min_rows), 1))


def equal_opportunity_gap(y_true: Any, y_pred: Any, groups: Any, *, min_positives: int = 1) -> float:
    """Largest difference in true-positive rate between groups.

    ``max_g TPR_g - min_g TPR_g`` with ``TPR_g = P(y_pred = 1 | y_true = 1, g)``.
    Groups with fewer than ``min_positives`` true positives-to-find (rows with
    ``y_true = 1``; default 1) are skipped: their TPR is undefined or too noisy.
    0 means equal opportunity in the sense of Hardt, Price & Srebro (2016),
    Definition 2 (equal true-positive rates for the positive outcome).

    Parameters
    ----------
    y_true, y_pred : array-like (R,) of 0/1 or bool
    groups : array-like (R,)
    min_positives : int

    Returns
    -------
    float in [0, 1]; NaN when no group has enough positives, 0.0 when one has.

    References
    ----------
    Hardt, M., Price, E. and Srebro, N. (2016). Equality of opportunity in
    supervised learning. NeurIPS 29.
    """
    y_true = _binary(y_true, "y_true")
    y_pred = _binary(y_pred, "y_pred")
    g = _as_1d(groups, "groups")
    _check_lengths(y_true=y_true, y_pred=y_pred, groups=g)
    names, inverse = _group_index(g)
    tpr, n_pos = _rate(y_pred, inverse, y_true, len(names))
    return _gap(tpr, n_pos >= max(int(min_positives), 1))


def group_metrics(y_true: Any, y_pred: Any, groups: Any) -> list[dict[str, Any]]:
    """A per-group table: size, base rate, selection rate, accuracy, TPR, FPR.

    Parameters
    ----------
    y_true, y_pred : array-like (R,)
        Class labels. The rate columns need 0/1 (or bool) labels; for other
        labels (multiclass) they are NaN and only ``rows`` and ``accuracy`` are filled.
    groups : array-like (R,)

    Returns
    -------
    list of dict
        One row per group, sorted by group, with keys ``group, rows, positives,
        base_rate`` (P(y_true = 1 | g)), ``selection_rate`` (P(y_pred = 1 | g)),
        ``accuracy``, ``tpr`` (P(y_pred = 1 | y_true = 1, g); NaN without
        positives), ``fpr`` (P(y_pred = 1 | y_true = 0, g); NaN without negatives).
        ``pandas.DataFrame(rows)`` turns it into a table.
    """
    y_true_raw = _labels(y_true, "y_true")
    y_pred_raw = _labels(y_pred, "y_pred")
    g = _as_1d(groups, "groups")
    _check_lengths(y_true=y_true_raw, y_pred=y_pred_raw, groups=g)
    names, inverse = _group_index(g)
    k = len(names)
    everyone = np.ones(len(inverse), bool)
    acc, rows = _rate(y_true_raw == y_pred_raw, inverse, everyone, k)
    try:
        yt = _binary(y_true_raw, "y_true")
        yp = _binary(y_pred_raw, "y_pred")
        binary = True
    except ValueError:
        binary = False
    nan = np.full(k, np.nan)
    if binary:
        base, _ = _rate(yt, inverse, everyone, k)
        sel, _ = _rate(yp, inverse, everyone, k)
        tpr, n_pos = _rate(yp, inverse, yt, k)
        fpr, _ = _rate(yp, inverse, ~yt, k)
    else:
        base = sel = tpr = fpr = nan
        n_pos = np.full(k, -1)
    out = []
    for i, name in enumerate(names):
        out.append(
            {
                "group": name.item() if isinstance(name, np.generic) else name,
                "rows": int(rows[i]),
                "positives": int(n_pos[i]) if binary else None,
                "base_rate": float(base[i]),
                "selection_rate": float(sel[i]),
                "accuracy": float(acc[i]),
                "tpr": float(tpr[i]),
                "fpr": float(fpr[i]),
            }
        )
    return out


def fairness_summary(
    y_true: Any, y_pred: Any, groups: Any, *, min_rows: int = 1, min_positives: int = 1
) -> dict[str, Any]:
    """The three headline numbers and where they come from, for reports.

    Returns
    -------
    dict
        ``accuracy`` (overall), ``worst_group_accuracy``, ``worst_group`` (its
        name; the first in sorted order on ties), ``demographic_parity_gap``,
        ``equal_opportunity_gap``, ``groups`` (number of groups). Binary 0/1
        labels are required (the gaps are binary metrics).
    """
    table = group_metrics(_binary(y_true, "y_true"), _binary(y_pred, "y_pred"), groups)
    counted = [r for r in table if r["rows"] >= max(int(min_rows), 1)]
    worst = min(counted, key=lambda r: r["accuracy"]) if counted else None
    yt = _binary(y_true, "y_true")
    yp = _binary(y_pred, "y_pred")
    return {
        "accuracy": float(np.mean(yt == yp)),
        "worst_group_accuracy": worst["accuracy"] if worst else float("nan"),
        "worst_group": worst["group"] if worst else None,
        "demographic_parity_gap": demographic_parity_gap(yp, groups, min_rows=min_rows),
        "equal_opportunity_gap": equal_opportunity_gap(yt, yp, groups, min_positives=min_positives),
        "groups": len(table),
    }
