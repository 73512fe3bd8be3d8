"""PhysioNet / CinC 2012 challenge folders: hourly-binned ICU stays and the TP-AMTL paper's four tasks."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from negtransfer.data.build import DataError
from negtransfer.data.timeseries.dataset import TimeSeriesMultiTaskDataset, select_tasks, timeseries_dataset

__all__ = ["PHYSIONET_STATIC", "PHYSIONET_TASKS", "PHYSIONET_TIME_SERIES", "is_physionet_folder",
           "load_physionet2012_folder", "outcomes_file", "read_physionet2012"]


#: The 37 time-series variables of the PhysioNet/CinC 2012 challenge (plus Weight, also static).
PHYSIONET_TIME_SERIES = (
    "ALP", "ALT", "AST", "Albumin", "BUN", "Bilirubin", "Cholesterol", "Creatinine", "DiasABP", "FiO2",
    "GCS", "Glucose", "HCO3", "HCT", "HR", "K", "Lactate", "MAP", "MechVent", "Mg", "NIDiasABP", "NIMAP",
    "NISysABP", "Na", "PaCO2", "PaO2", "Platelets", "RespRate", "SaO2", "SysABP", "Temp", "TroponinI",
    "TroponinT", "Urine", "WBC", "Weight", "pH",
)  # fmt: skip
#: Static descriptors recorded at 00:00 and used as features (ICUType is a task, not a feature).
PHYSIONET_STATIC = ("Age", "Gender", "Height")
#: Task name -> definition, as in the TP-AMTL paper (PhysioNet experiments).
PHYSIONET_TASKS = {
    "stay<3": "Length_of_stay < 3 days (Outcomes file)",
    "cardiac": "ICUType == 2 (Cardiac Surgery Recovery Unit)",
    "recovery": "ICUType == 4 (Surgical ICU)",
    "mortality": "In-hospital_death == 1 (Outcomes file)",
}


def _parse_hhmm(text: str, path: Path, line: int) -> int:
    try:
        hours, minutes = text.strip().split(":")
        return int(hours) * 60 + int(minutes)
    except ValueError:
        raise DataError(f"{path}, line {line}: time {text!r} is not HH:MM") from None


def _read_record(path: Path, column: dict, n_steps: int, sums: np.ndarray, counts: np.ndarray):
    """Add one record file's values into its (T, F) ``sums`` and ``counts``; its ID, static descriptors, last step."""
    lines = path.read_text().splitlines()
    if not lines or lines[0].replace(" ", "").lower() != "time,parameter,value":
        raise DataError(f"{path}: the first line must be the header 'Time,Parameter,Value'")
    statics: dict[str, float] = {}
    record_id = path.stem
    last_step = 0
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split(",")
        if len(parts) != 3:
            raise DataError(f"{path}, line {i}: expected 'Time,Parameter,Value', got {line!r}")
        minute = _parse_hhmm(parts[0], path, i)
        name, raw = parts[1].strip(), parts[2].strip()
        try:
            value = float(raw)
        except ValueError:
            raise DataError(f"{path}, line {i}: value {raw!r} of {name} is not a number") from None
        if name == "RecordID":
            record_id = str(int(value))
            continue
        if minute == 0 and name in ("Age", "Gender", "Height", "ICUType", "Weight") and name not in statics:
            statics[name] = value
            if name != "Weight":
                continue
        if value < 0 or name not in column:  # -1 = not recorded; unknown names ignored
            continue
        step = min(minute // 60, n_steps - 1)
        sums[step, column[name]] += value
        counts[step, column[name]] += 1
        last_step = max(last_step, step)
    return record_id, statics, last_step


def _record_labels(record_id: str, icu: float | None, by_id) -> np.ndarray:
    """The four task labels of one record (NaN where unknown): stay<3, cardiac, recovery, mortality."""
    labels = np.full(len(PHYSIONET_TASKS), np.nan)
    if icu is not None and icu >= 1:
        labels[1] = float(icu == 2)
        labels[2] = float(icu == 4)
    key = int(record_id) if record_id.isdigit() else record_id
    if key in by_id.index:
        row = by_id.loc[key]
        los, death = float(row["Length_of_stay"]), float(row["In-hospital_death"])
        if los >= 0:
            labels[0] = float(los < 3)
        if death in (0, 1):
            labels[3] = death
    return labels


def outcomes_file(folder: Path) -> Path:
    """The outcomes file of a PhysioNet 2012 record folder: the first ``Outcomes*.txt`` inside it, else the one
    the challenge ships beside it (``set-a/`` and ``Outcomes-a.txt`` in one parent folder).

    Raises
    ------
    DataError
        Neither exists.
    """
    inside = sorted(folder.glob("Outcomes*.txt"))
    if inside:
        return inside[0]
    name = folder.resolve().name  # "." inside set-a/ is set-a
    beside = folder.resolve().parent / f"Outcomes-{name[len('set-'):]}.txt" if name.startswith("set-") else None
    if beside is None or not beside.is_file():
        where = "" if beside is None else f" nor {beside.name} beside it"
        raise DataError(f"no Outcomes*.txt file in {folder}{where}; pass outcomes=<path to Outcomes-a.txt>")
    return beside


def is_physionet_folder(path: Path) -> bool:
    """Whether ``path`` is a PhysioNet 2012 record folder: a folder with an outcomes file (:func:`outcomes_file`)."""
    if not path.is_dir():
        return False
    try:
        outcomes_file(path)
    except DataError:
        return False
    return True


def read_physionet2012(
    folder: str | Path,
    *,
    outcomes: str | Path | None = None,
    n_steps: int = 48,
    parameters: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[str], list[str]]:
    """Raw hourly-binned arrays from a PhysioNet 2012 challenge folder.

    Parameters
    ----------
    folder : path
        Folder of ``<RecordID>.txt`` files, each with a ``Time,Parameter,Value``
        header and rows like ``00:51,HR,85``. Static descriptors (Age, Gender,
        Height, ICUType, Weight) sit at ``00:00``; the value ``-1`` means
        "not recorded" and is treated as missing.
    outcomes : path, optional
        The outcomes file (``RecordID,SAPS-I,SOFA,Length_of_stay,Survival,In-hospital_death``);
        default: the first ``Outcomes*.txt`` in ``folder``, else the challenge's own layout, the file beside
        it (``set-a/`` -> ``Outcomes-a.txt`` in the same parent folder; :func:`outcomes_file`). Records without a row
        get NaN for the outcome tasks (the ICUType tasks keep their labels).
    n_steps : int
        Hourly bins: a row at minute m goes to bin ``min(m // 60, n_steps - 1)``;
        several values in one bin are averaged. Static descriptors fill every step.
    parameters : sequence of str, optional
        Time-series variables to keep (default :data:`PHYSIONET_TIME_SERIES`).

    Returns
    -------
    values (N, T, F), labels (N, 4), lengths (N,), record_ids, feature_names, task_names
    """
    import pandas as pd

    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"PhysioNet folder {folder} does not exist or is not a folder")
    if isinstance(n_steps, bool) or not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise DataError(f"n_steps must be a positive integer, got {n_steps!r}")
    params = list(parameters) if parameters is not None else list(PHYSIONET_TIME_SERIES)
    features = params + [s for s in PHYSIONET_STATIC if s not in params]
    column = {p: i for i, p in enumerate(features)}
    files = sorted(p for p in folder.glob("*.txt") if not p.name.lower().startswith("outcomes"))
    if not files:
        raise DataError(f"no <RecordID>.txt record files in {folder}")
    if outcomes is None:
        outcomes = outcomes_file(folder)
    table = pd.read_csv(outcomes)
    needed = ["RecordID", "Length_of_stay", "In-hospital_death"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise DataError(f"outcomes file {outcomes} lacks column(s) {missing}; its columns are {list(table.columns)}")
    by_id = table.set_index("RecordID")

    n = len(files)
    sums = np.zeros((n, n_steps, len(features)))
    counts = np.zeros_like(sums)
    labels = np.full((n, len(PHYSIONET_TASKS)), np.nan)
    lengths = np.ones(n, dtype=np.int64)
    record_ids = []
    for r, path in enumerate(files):
        record_id, statics, last_step = _read_record(path, column, n_steps, sums[r], counts[r])
        for s in PHYSIONET_STATIC:
            if s in column and statics.get(s, -1) >= 0:
                sums[r, :, column[s]] = statics[s]
                counts[r, :, column[s]] = 1
        lengths[r] = last_step + 1
        record_ids.append(record_id)
        labels[r] = _record_labels(record_id, statics.get("ICUType"), by_id)
    with np.errstate(invalid="ignore"):
        values = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return values, labels, lengths, record_ids, features, list(PHYSIONET_TASKS)


def load_physionet2012_folder(
    folder: str | Path,
    *,
    outcomes: str | Path | None = None,
    seed: int = 0,
    n_steps: int = 48,
    fractions: Sequence[float] = (0.7, 0.1, 0.2),
    impute: str = "zero",
    tasks: Sequence[str] | None = None,
) -> TimeSeriesMultiTaskDataset:
    """A :class:`TimeSeriesMultiTaskDataset` from a PhysioNet 2012 folder (see :func:`read_physionet2012`).

    Tasks (TP-AMTL paper): ``stay<3``, ``cardiac`` (ICUType 2), ``recovery``
    (ICUType 4, surgical ICU), ``mortality``; ``tasks`` picks a subset. The record
    IDs are in ``info["record_ids"]``.
    """
    values, labels, lengths, ids, features, names = read_physionet2012(folder, outcomes=outcomes, n_steps=n_steps)
    labels, names = select_tasks(labels, names, tasks, "PhysioNet")
    return timeseries_dataset(
        values, labels, task_names=names, feature_names=features, lengths=lengths, seed=seed,
        fractions=fractions, impute=impute, name="physionet2012",
        info={"source": str(folder), "record_ids": list(ids),
              "task_definitions": {t: PHYSIONET_TASKS[t] for t in names}, "step": "1 hour"},
    )  # fmt: skip
