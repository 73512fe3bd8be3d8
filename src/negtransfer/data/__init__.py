"""Datasets: the :class:`MultiTaskDataset` contract, builders, loaders, synthetic data.

Importing this package loads numpy only; pandas is imported by the functions that
read or build tables.
"""

from negtransfer.data.arrays import dataset_from_arrays
from negtransfer.data.build import DataError, dataset_from_frame
from negtransfer.data.builtin import MissingPackageError, list_builtin, load_builtin
from negtransfer.data.dataset import SPLIT_NAMES, TEST, TRAIN, VALIDATION, MultiTaskDataset, TaskSpec
from negtransfer.data.files import dataset_from_file, load_table
from negtransfer.data.synthetic import make_synthetic_tasks

__all__ = [
    "DataError",
    "MissingPackageError",
    "MultiTaskDataset",
    "SPLIT_NAMES",
    "TEST",
    "TRAIN",
    "TaskSpec",
    "VALIDATION",
    "dataset_from_arrays",
    "dataset_from_file",
    "dataset_from_frame",
    "list_builtin",
    "load_builtin",
    "load_table",
    "make_synthetic_tasks",
]
