"""The standard error of a paired difference of summed losses over rows and runs (issue 25).

A grouping's summed loss on a set of scored rows (the audit part, or the test
split) is, in run r (a repeat, or a repeat and fold),

    D_r = sum_t (1/n_t) sum_{i in S_t} l_{t,i,r},

the sum over tasks of the mean loss over the n_t rows S_t labelled for task t.
Written per row, D_r is the mean over the N rows labelled for any task of

    z_{r,i} = N * sum_{t : i in S_t} l_{t,i,r} / n_t            (:func:`row_contributions`),

and the paired difference of two groupings is the same with l replaced by the
chosen grouping's loss minus the alternative's on the same row and run
(common random numbers: run r against run r).

Two things are random in the mean over runs, D = (1/(R N)) sum_{r,i} z_{r,i}:
which rows were drawn into the scored part, and how each run trained. The
model is the two-way crossed random-effects model (Searle, Casella and
McCulloch 1992, *Variance Components*, ch. 4; Cornfield and Tukey 1956)

    z_{r,i} = mu + a_i + b_r + e_{r,i},

a_i a row effect (variance sigma_a^2, rows drawn within strata), b_r a run
effect common to every row of the run (sigma_b^2), e_{r,i} the row-by-run
interaction (sigma_e^2). Then

    Var(D) = sigma_a^2 / N + sigma_b^2 / R + sigma_e^2 / (N R).

With the row means zbar_i (over runs), the run means zbar_r (over rows) and the
grand mean zbar:

    V_rows = sum_s (N_s / N)^2 s_s^2 / N_s,  s_s^2 the sample variance of zbar_i
             within stratum s (the stratified-sampling variance of a mean,
             Cochran 1977, *Sampling Techniques*, eq. 5.6), expectation
             sigma_a^2 / N + sigma_e^2 / (N R);
    V_runs = sum_r (zbar_r - zbar)^2 / ((R - 1) R): the over-runs variance the
             audit printed before (paired over repeats and folds only),
             expectation sigma_b^2 / R + sigma_e^2 / (N R);
    E      = MS_err / (N R),  MS_err = sum_{r,i} (z_{r,i} - zbar_i - zbar_r + zbar)^2
             / ((N - 1)(R - 1)), expectation sigma_e^2 / (N R);

and the estimate, each variance component clamped at zero (the usual
ANOVA estimator truncated at 0),

    Var(D) = max(0, V_rows - E) + max(0, V_runs - E) + E,                 (*)

which is never below V_runs: the standard error over rows and runs is at
least the over-runs one. Clamping errs on the safe side where a component is
near zero (with neither a row nor a run effect, by about a third on planted
data: tests/gains/test_paired_rows.py). With one run (R = 1) only V_rows is estimable and
(*) is V_rows (run-to-run noise then unknown, as it was before).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Mapping

import numpy as np

__all__ = ["PairedSE", "PairedDifference", "paired_row_se", "row_contributions", "noise_verdict", "paired_difference",
           "differences_to_dict", "differences_from_dict", "verdict_phrase", "NOISE_VERDICTS", "VERDICT_PHRASES"]

#: The three-way verdict of a paired difference (chosen minus alternative) against its noise.
NOISE_VERDICTS = ("better", "within noise", "worse")

#: Each verdict of :data:`NOISE_VERDICTS` in words, per style (:func:`verdict_phrase`): ``"plain"`` (report.md's
#: audit line: "the chosen groups are better beyond noise against the STL"), ``"than"`` (the audit's verdict:
#: "the chosen groups are within noise of the STL") and ``"loss"`` (the sources check, a difference of losses:
#: "lower beyond noise").
VERDICT_PHRASES: dict[str, dict[str, str]] = {
    "plain": {"better": "better beyond noise", "within noise": "within noise", "worse": "worse beyond noise"},
    "than": {"better": "better beyond noise than", "within noise": "within noise of", "worse": "worse beyond noise than"},
    "loss": {"better": "lower beyond noise", "within noise": "within noise", "worse": "higher beyond noise"},
}


def verdict_phrase(verdict: str, style: str = "plain") -> str:
    """The words for ``verdict`` (one of :data:`NOISE_VERDICTS`) in ``style`` (a key of :data:`VERDICT_PHRASES`).

    Raises
    ------
    ValueError
        An unknown verdict or style.
    """
    phrases = VERDICT_PHRASES.get(style)
    if phrases is None:
        raise ValueError(f"unknown verdict style {style!r}: use one of {', '.join(VERDICT_PHRASES)}")
    if verdict not in phrases:
        raise ValueError(f"unknown verdict {verdict!r}: use one of {', '.join(NOISE_VERDICTS)}")
    return phrases[verdict]


@dataclass(frozen=True)
class PairedSE:
    """Standard errors of a mean paired difference (:func:`paired_row_se`).

    Attributes
    ----------
    se : float
        Over rows and runs: the square root of (*) in the module docstring.
    se_runs : float
        Over runs only (repeats and folds): sqrt(V_runs); NaN with one run.
    se_rows : float
        Over rows only, each row's mean over the runs: sqrt(V_rows); NaN with one row per stratum.
    """

    se: float
    se_runs: float
    se_rows: float


@dataclass(frozen=True)
class PairedDifference:
    """A paired difference (chosen minus alternative) with its standard errors and its verdict
    (:func:`paired_difference`): the grouping audit's ``audit_difference`` and ``test_difference``, the sources
    check's ``paired`` and ``test_paired``.

    Attributes
    ----------
    mean : float
        Over the runs.
    se : float
        Over rows and runs (:func:`paired_row_se`); ``se_runs`` without per-row losses.
    se_runs : float
        Over the runs only (NaN with one run, or in a report.json written before it was recorded).
    se_rows : float
        Over the rows only; NaN without per-row losses.
    verdict : str
        Three-way: one of :data:`NOISE_VERDICTS`, or the caller's words for it (the sources check's
        :func:`verdict_phrase` in the ``"loss"`` style); empty in a report.json written before it was recorded.
    """

    mean: float
    se: float
    se_runs: float = float("nan")
    se_rows: float = float("nan")
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        """report.json's record: ``mean``, ``se``, ``se_runs``, ``se_rows``, ``verdict``, in that order."""
        return asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> PairedDifference:
        """A record read back from report.json (:meth:`to_dict`; NaN written there as null reads back as NaN); one
        written before ``se_runs``, ``se_rows`` and ``verdict`` were recorded (``mean`` and ``se`` only) reads back
        with NaN and an empty verdict."""
        def number(key: str) -> float:
            figure = value.get(key)
            return float("nan") if figure is None else figure

        return cls(number("mean"), number("se"), number("se_runs"), number("se_rows"), value.get("verdict", ""))

    def with_verdict(self, verdict: str) -> PairedDifference:
        """The same difference with ``verdict`` in other words (e.g. :func:`verdict_phrase`)."""
        return replace(self, verdict=verdict)


def differences_to_dict(differences: Mapping[str, PairedDifference]) -> dict[str, dict[str, Any]]:
    """Name -> :meth:`PairedDifference.to_dict`: a record's paired differences as report.json holds them."""
    return {name: difference.to_dict() for name, difference in differences.items()}


def differences_from_dict(record: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``record`` (a report.json record) whose ``keys`` (each name -> a paired difference's dict, where
    present) hold :class:`PairedDifference` records (:meth:`PairedDifference.from_dict`)."""
    out = dict(record)
    for key in keys:
        if key in out:
            out[key] = {name: PairedDifference.from_dict(value) for name, value in out[key].items()}
    return out


def row_contributions(row_losses: dict[int, np.ndarray], positions: dict[int, np.ndarray], n_rows: int) -> np.ndarray:
    """Per run and row (R, N), z_{r,i} = N * sum_t l_{t,i,r} / n_t: the row's share of the summed loss, so that
    the mean over rows of run r is that run's summed loss (sum over tasks of the mean over the task's rows).

    Parameters
    ----------
    row_losses : dict task -> ndarray (R, n_t)
        Per run, the loss of each row labelled for the task (or a paired difference of two such losses).
    positions : dict task -> ndarray of int (n_t,)
        Where those rows sit among the N rows (0 .. N - 1).
    n_rows : int
        N, the rows labelled for any task.
    """
    runs = next(iter(row_losses.values())).shape[0]
    z = np.zeros((runs, n_rows))
    for t, losses in row_losses.items():
        if losses.shape[1]:
            z += _scatter(positions[t], losses * (n_rows / losses.shape[1]), n_rows).T
    return z


def _scatter(positions: np.ndarray, values: np.ndarray, n_rows: int) -> np.ndarray:
    """(N, R): ``values`` (R, n_t) added at rows ``positions`` (distinct within a task), zero elsewhere."""
    out = np.zeros((n_rows, values.shape[0]))
    out[np.asarray(positions, dtype=np.intp)] = values.T
    return out


def paired_row_se(z: np.ndarray, strata: np.ndarray | None = None) -> PairedSE:
    """The standard error of the mean of ``z`` over runs and rows, (*) in the module docstring.

    Parameters
    ----------
    z : ndarray (R, N)
        Per run and row, the row's share of a paired difference (:func:`row_contributions`).
    strata : ndarray (N,), optional
        The stratum each row was drawn within (e.g. its task on per-task-rows data); default one stratum.

    Returns
    -------
    PairedSE
    """
    z = np.asarray(z, dtype=float)
    runs, n = z.shape
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    row_mean = z.mean(axis=0)
    v_rows, any_spread = 0.0, False
    for s in np.unique(strata):
        members = row_mean[strata == s]
        if members.size >= 2:
            v_rows += (members.size / n) ** 2 * float(np.var(members, ddof=1)) / members.size
            any_spread = True
    if not any_spread:
        v_rows = float("nan")
    if runs < 2:
        return PairedSE(float(np.sqrt(v_rows)), float("nan"), float(np.sqrt(v_rows)))
    run_mean = z.mean(axis=1)
    v_runs = float(np.var(run_mean, ddof=1)) / runs
    if n < 2 or not any_spread:
        return PairedSE(float(np.sqrt(v_runs)), float(np.sqrt(v_runs)), float(np.sqrt(v_rows)))
    residual = z - row_mean[None, :] - run_mean[:, None] + z.mean()
    e = float((residual ** 2).sum()) / ((n - 1) * (runs - 1)) / (n * runs)
    variance = max(0.0, v_rows - e) + max(0.0, v_runs - e) + e
    return PairedSE(float(np.sqrt(variance)), float(np.sqrt(v_runs)), float(np.sqrt(v_rows)))


def noise_verdict(mean: float, se: float, margin: float) -> str:
    """``"better"`` (mean < -margin * se), ``"worse"`` (mean > margin * se) or ``"within noise"``: the three-way
    verdict of a paired difference chosen minus alternative (a lower loss is better); a NaN ``se`` counts as 0."""
    bound = margin * (se if np.isfinite(se) else 0.0)
    if mean < -bound:
        return "better"
    if mean > bound:
        return "worse"
    return "within noise"


def paired_difference(per_run: np.ndarray, z: np.ndarray | None, margin: float,
                      strata: np.ndarray | None = None) -> PairedDifference:
    """A paired difference (chosen minus alternative) with both its standard errors and its verdict.

    Parameters
    ----------
    per_run : ndarray (R,)
        Per run, the difference of the two summed losses.
    z : ndarray (R, N), or None
        Per run and row, the row's share of the difference (:func:`row_contributions`); None without per-row
        losses, when the s.e. is the over-runs one.
    margin : float
        The verdict's margin, in standard errors (:func:`noise_verdict`).
    strata : ndarray (N,), optional
        As in :func:`paired_row_se`.

    Returns
    -------
    PairedDifference
        ``mean`` (over runs), ``se`` (over rows and runs, :func:`paired_row_se`; ``se_runs`` when ``z`` is
        None), ``se_runs`` (over runs only), ``se_rows`` (over rows only; NaN when ``z`` is None) and
        ``verdict`` (:data:`NOISE_VERDICTS`).
    """
    from negtransfer.data.statistics import standard_error

    mean, se_runs = float(np.mean(per_run)), standard_error(per_run)
    se, se_rows = se_runs, float("nan")
    if z is not None:
        paired = paired_row_se(z, strata)
        se, se_rows = paired.se, paired.se_rows
    return PairedDifference(mean, se, se_runs, se_rows, noise_verdict(mean, se, margin))
