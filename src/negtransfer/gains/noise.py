"""How much of a gain table is seed noise: the noise floor every report states.

With R repeats of every run, each measured gain ``y(G -> t)`` is a mean of R
paired per-repeat gains (:func:`negtransfer.gains.table.repeat_gains`). Three
figures say whether the differences between groups are real:

* ``gain_se_median``: the median standard error of a gain (seed-to-seed
  spread / sqrt(R)), against ``between_group_sd``, the spread of the gains
  between groups (both within task: each task's mean gain is removed first,
  since a per-task offset says nothing about *which* group to choose);
* ``split_half_pearson``: the correlation, over all (group, task) entries, of
  the gains measured by the even-numbered and by the odd-numbered repeats
  (``split_half_within_task_pearson``: the same after removing each task's
  mean gain in each half);
* ``reliability``: the Spearman-Brown projection of the within-task split-half
  correlation to the mean of all R repeats, ``2 rho / (1 + rho)``: the share
  of the gains' between-group variance that would repeat in a new set of R
  runs. The ``verdict`` sentence is chosen from it.
"""

from __future__ import annotations

import numpy as np

from negtransfer.data.statistics import standard_error

__all__ = ["noise_floor", "split_noise", "fold_gains", "combined_verdict", "RELIABLE", "NOISY"]

#: Reliability from which gains count as reproducible, and below which they are mostly noise.
RELIABLE = 0.8
NOISY = 0.5


def _pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    if a.size < 3 or np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def _within_task(values: np.ndarray, U: np.ndarray) -> np.ndarray:
    """``values`` (m, n) with each task's mean over its groups removed (NaN outside groups)."""
    counts = U.sum(axis=0)
    means = np.where(counts > 0, np.nansum(np.where(U, values, 0.0), axis=0) / np.maximum(counts, 1), 0.0)
    return np.where(U, values - means[None, :], np.nan)


def noise_floor(U: np.ndarray, G: np.ndarray, *, groups_only: bool = True) -> dict:
    """The noise floor of a gain table with repeats.

    Parameters
    ----------
    U : bool ndarray (m, n)
        Group membership.
    G : float ndarray (m, n, R)
        Per-repeat gains (NaN outside the group).
    groups_only : bool
        Ignore rows of one-task groups (their gain is 0 by definition).

    Returns
    -------
    dict
        ``repeats``, ``n_gains`` (group-task entries used), ``gain_se_median``,
        ``between_group_sd``, ``gain_abs_median``, ``split_half_pearson``,
        ``split_half_within_task_pearson``, ``reliability`` (None where it
        cannot be computed: one repeat, or fewer than 3 entries) and ``verdict``.
    """
    U = np.asarray(U, dtype=bool)
    G = np.asarray(G, dtype=float)
    if groups_only:
        keep = U.sum(axis=1) >= 2
        U, G = U[keep], G[keep]
    R = int(G.shape[2]) if G.ndim == 3 else 1
    entries = U.sum()
    out: dict = {"repeats": R, "n_gains": int(entries), "gain_se_median": None, "between_group_sd": None,
                 "gain_abs_median": None, "split_half_pearson": None, "split_half_within_task_pearson": None,
                 "reliability": None}
    if entries == 0:
        out["verdict"] = "No multi-task group was measured, so there is no gain to judge."
        return out
    with np.errstate(invalid="ignore"):
        mean = G.mean(axis=2)
    centred = _within_task(mean, U)
    out["gain_abs_median"] = float(np.median(np.abs(mean[U])))
    out["between_group_sd"] = float(np.std(centred[U])) if entries > 1 else None
    if R >= 2:
        se = standard_error(G, axis=2)
        out["gain_se_median"] = float(np.median(se[U]))
        even, odd = G[:, :, 0::2].mean(axis=2), G[:, :, 1::2].mean(axis=2)
        out["split_half_pearson"] = _pearson(even[U], odd[U])
        rho = _pearson(_within_task(even, U)[U], _within_task(odd, U)[U])
        out["split_half_within_task_pearson"] = rho
        if rho is not None:
            out["reliability"] = float(2 * rho / (1 + rho)) if rho > -1 else -1.0
    out["verdict"] = _verdict(out)
    return out


def _verdict(noise: dict) -> str:
    R, rel = noise["repeats"], noise["reliability"]
    if R < 2:
        return ("Noise not measured: each gain comes from one training run, so seed noise and real "
                "differences between groups cannot be told apart; run with --repeats 3 or more.")
    if rel is None:
        return (f"Noise not measurable here: too few measured gains ({noise['n_gains']}) for a split-half "
                f"correlation; measure more groups.")
    spread = (f"seed noise {noise['gain_se_median']:.2%} (median s.e. of a gain over {R} repeats) against "
              f"{noise['between_group_sd']:.2%} spread between groups; split-half reliability {rel:.2f}")
    if rel >= RELIABLE:
        return f"Gains are reproducible: {spread}."
    if rel >= NOISY:
        return (f"Gains are noisy: {spread}; differences smaller than about two standard errors are not "
                f"results, and more repeats (--repeats {2 * R}) would sharpen them.")
    return (f"Gains are mostly noise: {spread}. Which groups look best changes from seed to seed; treat the "
            f"recommendation as a weak guess. More repeats (--repeats {2 * R} or more) or more data per task "
            f"would help.")


#: Split reliability from which gains measured on one split foretell those on another, and below which they
#: hardly do (the same thresholds as the seed noise's).
SPLIT_RELIABLE = RELIABLE
SPLIT_NOISY = NOISY


def fold_gains(G: np.ndarray, folds: int) -> np.ndarray:
    """Per-run gains (m, n, R * K), runs ordered repeat-major (run ``r * K + f``), as (m, n, R, K)."""
    G = np.asarray(G, dtype=float)
    if G.shape[2] % folds:
        raise ValueError(f"{G.shape[2]} runs per gain are not a whole number of repeats of {folds} folds")
    return G.reshape(G.shape[0], G.shape[1], G.shape[2] // folds, folds)


def split_noise(U: np.ndarray, G: np.ndarray, folds: int, validation_rows: list[int] | None = None, *,
                groups_only: bool = True) -> dict:
    """How well gains measured on one split (fold) foretell gains measured on another.

    The seed noise (:func:`noise_floor`) compares repeats that share one
    split, so whatever the split's own sample of validation rows does to a
    gain counts there as signal. Here every fold's gains (means over its
    repeats) are compared with every other fold's: ``fold_pearson`` and
    ``fold_within_task_pearson`` are the means over the K (K - 1) / 2 fold
    pairs of the Pearson correlation over (group, task) entries (the latter
    after removing each task's mean gain in each fold), and
    ``split_reliability`` is the Spearman-Brown projection of the mean
    within-task correlation to the mean of all K folds,
    ``K rho / (1 + (K - 1) rho)``: the share of the cross-validated gains'
    between-group variance that another draw of the split would repeat.

    Parameters
    ----------
    U : bool ndarray (m, n)
    G : float ndarray (m, n, R * K)
        Per-run gains, runs ordered repeat-major (run ``r * K + f``).
    folds : int
        K; with K = 1 nothing is measured (the verdict says how to measure it).
    validation_rows : list of int, optional
        How many rows each fold validates on (stated in the verdict).

    Returns
    -------
    dict
        ``folds``, ``validation_rows_per_fold``, ``fold_pearson``,
        ``fold_within_task_pearson``, ``split_reliability`` (None where not
        measurable) and ``verdict``.
    """
    U = np.asarray(U, dtype=bool)
    out: dict = {"folds": int(folds), "validation_rows_per_fold": list(validation_rows or []),
                 "fold_pearson": None, "fold_within_task_pearson": None, "split_reliability": None}
    if folds < 2:
        out["verdict"] = ("Split noise not measured: every run validates on the same rows, so how much the gains "
                          "owe to that one split cannot be told; run with --folds 3 or more to measure it.")
        return out
    per_fold = fold_gains(G, folds)
    if groups_only:
        keep = U.sum(axis=1) >= 2
        U, per_fold = U[keep], per_fold[keep]
    with np.errstate(invalid="ignore"):
        means = per_fold.mean(axis=2)  # (m, n, K): each fold's gains over its repeats
    plain, within = [], []
    for a in range(folds):
        for b in range(a + 1, folds):
            plain.append(_pearson(means[:, :, a][U], means[:, :, b][U]))
            within.append(_pearson(_within_task(means[:, :, a], U)[U], _within_task(means[:, :, b], U)[U]))
    if all(p is not None for p in plain):
        out["fold_pearson"] = float(np.mean([float(p) for p in plain if p is not None]))
    if all(w is not None for w in within):
        rho = float(np.mean([float(w) for w in within if w is not None]))
        out["fold_within_task_pearson"] = rho
        denominator = 1 + (folds - 1) * rho
        out["split_reliability"] = float(folds * rho / denominator) if denominator > 0 else -1.0
    out["verdict"] = _split_verdict(out)
    return out


def _split_verdict(noise: dict) -> str:
    K, rel, rows = noise["folds"], noise["split_reliability"], noise["validation_rows_per_fold"]
    where = f"{K} folds" + (f" validating on {'/'.join(map(str, rows))} rows" if rows else "")
    if rel is None:
        return f"Split noise not measurable ({where}): too few measured gains for a correlation between folds."
    agreement = (f"gains of one fold foretell another's with within-task Pearson "
                 f"{noise['fold_within_task_pearson']:.2f} (mean over fold pairs; {where}), split reliability "
                 f"{rel:.2f} for their mean")
    if rel >= SPLIT_RELIABLE:
        return f"Gains hold across splits: {agreement}."
    if rel >= SPLIT_NOISY:
        return f"Gains depend on the split in part: {agreement}; more folds (--folds {2 * K}) would sharpen them."
    return (f"Gains are mostly the split's noise: {agreement}. Which groups look best changes with the validation "
            f"rows; treat the recommendation as a weak guess.")


def combined_verdict(seed: dict, split: dict) -> str:
    """One sentence on both noises: the seed noise's verdict (:func:`noise_floor`), then the split noise's."""
    return f"{seed.get('verdict', '')} {split.get('verdict', '')}".strip()
