"""Folds of the non-test rows (negtransfer.data.folds): disjoint, covering, stratified, deterministic."""

import copy

import numpy as np
import pytest

from negtransfer.data.dataset import TEST, TRAIN, UNUSED, VALIDATION, MultiTaskDataset, TaskSpec
from negtransfer.data.folds import fold_dataset, fold_datasets, fold_parts, fold_validation_rows

AUDIT = 4  # a held-back code of another job part: kept out of every fold like TEST


def per_task_rows_dataset(seed=0, rows=(90, 150, 61), info_seed=3):
    """Per-task rows: three binary tasks with unbalanced classes, some TEST, UNUSED and AUDIT rows."""
    rng = np.random.default_rng(seed)
    n = sum(rows)
    row_task = np.repeat(np.arange(len(rows)), rows)
    Y = np.full((n, len(rows)), np.nan, dtype=np.float32)
    Y[np.arange(n), row_task] = (rng.random(n) < 0.3).astype(np.float32)
    split = rng.choice([TRAIN, TRAIN, TRAIN, VALIDATION, TEST, UNUSED, AUDIT], size=n).astype(np.int8)
    tasks = tuple(TaskSpec(f"t{j}", "binary", (0, 1)) for j in range(len(rows)))
    return MultiTaskDataset("ptr", tasks, rng.normal(size=(n, 4)), Y, split, ("a", "b", "c", "d"), row_task=row_task,
                            info={"seed": info_seed})


def test_parts_are_disjoint_cover_the_training_and_validation_rows_and_keep_every_other_code(mixed_dataset):
    for ds in (mixed_dataset, per_task_rows_dataset()):
        for k in (2, 3, 5):
            parts = fold_parts(ds, k)
            choosing = np.isin(ds.split, (TRAIN, VALIDATION))
            assert (parts[~choosing] == -1).all() and set(np.unique(parts[choosing])) == set(range(k))
            sizes = np.bincount(parts[choosing], minlength=k)
            assert sizes.max() - sizes.min() <= 1
            folds = fold_datasets(ds, k)
            validating = np.zeros(len(parts), dtype=int)
            for f, fold in enumerate(folds):
                assert (fold.split[~choosing] == ds.split[~choosing]).all()  # TEST, UNUSED, AUDIT kept
                assert ((fold.split == VALIDATION) == (parts == f)).all()
                assert ((fold.split == TRAIN) == (choosing & (parts != f))).all()
                validating += fold.split == VALIDATION
                assert fold.X is ds.X and fold.Y is ds.Y  # only the split codes differ
            assert (validating[choosing] == 1).all()  # every row validates in exactly one fold
            assert fold_validation_rows(ds, k) == [int(s) for s in sizes]


def test_per_task_rows_are_stratified_per_task_and_class():
    ds = per_task_rows_dataset()
    parts = fold_parts(ds, 3)
    choosing = parts >= 0
    for t in range(ds.n_tasks):
        for c in (0.0, 1.0):
            stratum = choosing & (ds.row_task == t) & (ds.Y[:, t] == c)
            counts = np.bincount(parts[stratum], minlength=3)
            assert counts.max() - counts.min() <= 1, (t, c, counts)


def test_multi_label_rows_are_stratified_on_the_classification_labels(mixed_dataset):
    parts = fold_parts(mixed_dataset, 3)
    choosing = parts >= 0
    first = mixed_dataset.Y[:, 0]
    for c in (0.0, 1.0):  # the first classification task: exact up to one row
        counts = np.bincount(parts[choosing & (first == c)], minlength=3)
        assert counts.max() - counts.min() <= 1
    for t in (1, 2):  # the later ones: within a few rows
        for c in np.unique(mixed_dataset.Y[choosing, t][~np.isnan(mixed_dataset.Y[choosing, t])]):
            counts = np.bincount(parts[choosing & (mixed_dataset.Y[:, t] == c)], minlength=3)
            assert counts.max() - counts.min() <= 6, (t, c, counts)


def test_folds_are_drawn_from_the_split_seed_alone():
    ds = per_task_rows_dataset()
    again = per_task_rows_dataset()
    assert (fold_parts(ds, 3) == fold_parts(again, 3)).all()
    other = copy.copy(ds)
    other.info = {"seed": 4}
    assert (fold_parts(other, 3) != fold_parts(ds, 3)).any()
    # every fold is its own dataset to the run store: fingerprints differ from each other and from the original
    prints = {fold.fingerprint() for fold in fold_datasets(ds, 3)}
    assert len(prints) == 3 and ds.fingerprint() not in prints
    assert [f.fingerprint() for f in fold_datasets(ds, 3)] == [f.fingerprint() for f in fold_datasets(again, 3)]


def test_one_fold_is_the_dataset_itself_and_bad_requests_are_named(mixed_dataset):
    assert fold_dataset(mixed_dataset, 1, 0) is mixed_dataset and fold_datasets(mixed_dataset, 1) == [mixed_dataset]
    assert fold_validation_rows(mixed_dataset, 1) == [int((mixed_dataset.split == VALIDATION).sum())]
    with pytest.raises(ValueError, match="--folds must be a whole number >= 2"):
        fold_parts(mixed_dataset, 1)
    with pytest.raises(ValueError, match="fold 3 is not one of 0..2"):
        fold_dataset(mixed_dataset, 3, 3)
    tiny = per_task_rows_dataset(rows=(90, 150, 8))
    with pytest.raises(ValueError, match=r"task 't2' has \d labelled training and validation rows"):
        fold_parts(tiny, 10)
