"""Built-in image datasets: several binary tasks on the same images (the ETAP CelebA setting, on shipped images).

* ``digit-images``: scikit-learn's 8x8 digits (``load_digits``) as 1 x 8 x 8
  images with 14 binary tasks: "is digit k" for k = 0..9 and four attributes
  that are unions of digits (even, at least 5, has a closed loop, drawn with
  straight strokes only). Every image carries a label for every task, as
  CelebA images carry all 40 attributes; the attributes overlap the digit tasks
  in known ways (``is_8`` implies ``even``, ``at_least_5`` and ``loop``), which
  gives a grouping method answers to find.
* ``fashion-mnist``: Debian's ``dataset-fashion-mnist`` files (1 x 28 x 28
  clothing images), "is class k" for the 10 classes, when the files are in
  ``/usr/share/datasets/fashion-mnist``.

Both are :class:`~negtransfer.data.dataset.MultiTaskDataset` objects of kind
``images``: ``X`` is N x 1 x H x W, standardised with the training images'
pixel mean and std (one channel).
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Sequence

import numpy as np

from negtransfer.data.arrays import dataset_from_arrays
from negtransfer.data.build import DataError, assign_splits, check_fractions, chosen_tasks
from negtransfer.data.dataset import TEST, MultiTaskDataset
from negtransfer.data.packages import MissingPackageError, package_file

__all__ = [
    "DIGIT_ATTRIBUTES",
    "DIGIT_IMAGE_TASKS",
    "FASHION_CLASSES",
    "FASHION_FOLDER",
    "load_digit_images",
    "load_fashion_mnist",
    "read_idx",
]

#: Attribute tasks of ``digit-images``: each is "the digit is one of these".
DIGIT_ATTRIBUTES = {
    "even": (0, 2, 4, 6, 8),
    "at_least_5": (5, 6, 7, 8, 9),
    "loop": (0, 6, 8, 9),  # a closed loop in the usual handwritten shape
    "straight": (1, 4, 7),  # straight strokes only
}
DIGIT_IMAGE_TASKS = tuple(f"is_{k}" for k in range(10)) + tuple(DIGIT_ATTRIBUTES)
DIGITS_LICENSE = ("CC BY 4.0 (UCI Optical Recognition of Handwritten Digits, Alpaydin & Kaynak 1998); "
                  "shipped in scikit-learn (BSD-3-Clause)")
DIGIT_IMAGES_DESCRIPTION = ("8x8 handwritten digits as 1x8x8 images: 'is digit k' (10) and even, >= 5, loop, "
                            "straight (4) binary tasks")



def load_digit_images(
    seed: int = 0, tasks: Sequence[str] | None = None, *, fractions: Sequence[float] = (0.6, 0.2, 0.2)
) -> MultiTaskDataset:
    """scikit-learn's digits as 1 x 8 x 8 images with 14 binary tasks (see the module docstring).

    Read from ``sklearn/datasets/data/digits.csv.gz`` (the file ``load_digits``
    reads; 1797 images, pixel values 0..16).

    Parameters
    ----------
    seed : int
        Fixes the split (table rules: stratified by the rarest task's label).
    tasks : sequence of str, optional
        A subset of :data:`DIGIT_IMAGE_TASKS`; default all 14.
    fractions : (float, float, float)

    Returns
    -------
    MultiTaskDataset
        Kind ``images``; ``X`` (1797, 1, 8, 8); ``info["digits"]`` the digit of each row.

    Raises
    ------
    MissingPackageError
        scikit-learn is not installed.
    """
    names = chosen_tasks(tasks, DIGIT_IMAGE_TASKS, "digit-images")
    path = package_file("sklearn", "datasets/data/digits.csv.gz", install="pip install scikit-learn")
    raw = np.loadtxt(path, delimiter=",")
    pixels, digits = raw[:, :-1], raw[:, -1].astype(np.int64)
    labels = {f"is_{k}": digits == k for k in range(10)}
    labels.update({a: np.isin(digits, members) for a, members in DIGIT_ATTRIBUTES.items()})
    Y = np.stack([labels[t] for t in DIGIT_IMAGE_TASKS], axis=1).astype(np.float64)
    ds = dataset_from_arrays(
        pixels.reshape(-1, 1, 8, 8), Y, task_names=DIGIT_IMAGE_TASKS, tasks=names, feature_names=["gray"],
        task_kinds={t: "binary" for t in names}, seed=seed, fractions=fractions, name="digit-images",
        info={"source": f"scikit-learn package file {path} (load_digits)", "license": DIGITS_LICENSE,
              "description": DIGIT_IMAGES_DESCRIPTION,
              "attributes": {a: list(m) for a, m in DIGIT_ATTRIBUTES.items()}},
    )
    ds.info["digits"] = digits  # every row has labels for every task: no row was dropped
    return ds


# ------------------------------------------------------------------ fashion-mnist
FASHION_FOLDER = "/usr/share/datasets/fashion-mnist"
FASHION_CLASSES = ("t_shirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                   "ankle_boot")
FASHION_TASKS = tuple(f"is_{c}" for c in FASHION_CLASSES)
FASHION_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                 "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
FASHION_INSTALL = "sudo apt-get install dataset-fashion-mnist (Debian/Ubuntu; files in /usr/share/datasets/fashion-mnist)"
FASHION_LICENSE = "MIT (Expat), (c) 2017 Zalando SE; Debian package dataset-fashion-mnist"
FASHION_DESCRIPTION = "Zalando clothing images, 1x28x28: 'is class k' for the 10 classes (T-shirt .. ankle boot)"


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (the MNIST format; gzip-compressed when its name ends in ``.gz``) as an unsigned-byte array.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray of uint8
        Shape from the file's header: (N, rows, cols) for images, (N,) for labels.

    Raises
    ------
    DataError
        Not an unsigned-byte IDX file, or a truncated one.
    """
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read {str(path)!r} ({exc}); the file is damaged: reinstall its package") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise DataError(f"{str(path)!r} is not an unsigned-byte IDX file (MNIST format); check the file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{str(path)!r} holds {body.size} values but its header says {shape}; the file is truncated")
    return body.reshape(shape)


def _fashion_part(folder: Path, part: str, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    image_file, label_file = (folder / name for name in FASHION_FILES[part])
    for file in (image_file, label_file):
        if not file.is_file():
            raise MissingPackageError(f"fashion-mnist needs {file.name} in {str(folder)!r}, which is missing: "
                                      f"{FASHION_INSTALL}")
    images, labels = read_idx(image_file), read_idx(label_file)
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DataError(f"{image_file.name} has shape {images.shape} and {label_file.name} {labels.shape}; they "
                        f"must be (N, 28, 28) and (N,)")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels.astype(np.int64)


def load_fashion_mnist(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    n_train: int | None = 10000,
    n_test: int | None = 2000,
    validation_fraction: float = 0.2,
    folder: str | Path = FASHION_FOLDER,
) -> MultiTaskDataset:
    """Fashion-MNIST from Debian's ``dataset-fashion-mnist`` files as 10 binary "is class k" tasks.

    Parameters
    ----------
    seed : int
        Draws the validation images (stratified by class) from the training images.
    tasks : sequence of str, optional
        A subset of ``is_t_shirt_top`` .. ``is_ankle_boot``; default all 10.
    n_train, n_test : int or None
        Use the first ``n_train`` of the 60000 training images and the first
        ``n_test`` of the 10000 test images (the files are in random order);
        None: all of them (70000 images, about 440 MB while loading).
    validation_fraction : float
        Share of the training images held out for validation.
    folder : str or Path
        Where the four ``*-idx?-ubyte.gz`` files are.

    Returns
    -------
    MultiTaskDataset
        Kind ``images``; ``X`` (n_train + n_test, 1, 28, 28); the given test
        images form the test split; ``info["classes"]`` each row's class index.

    Raises
    ------
    MissingPackageError
        The files are not there (install the Debian package; nothing is downloaded).
    """
    names = chosen_tasks(tasks, FASHION_TASKS, "fashion-mnist")
    for option, value in (("n_train", n_train), ("n_test", n_test)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 10):
            raise DataError(f"{option} must be an integer >= 10 or None (all images), got {value!r}")
    if not 0 < validation_fraction < 1:
        raise DataError(f"validation_fraction must be in (0, 1), got {validation_fraction}")
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingPackageError(f"fashion-mnist reads the files of the Debian package dataset-fashion-mnist, "
                                  f"and {str(folder)!r} does not exist: {FASHION_INSTALL}")
    train_images, train_classes = _fashion_part(folder, "train", n_train)
    test_images, test_classes = _fashion_part(folder, "test", n_test)
    fr = check_fractions((1 - validation_fraction, validation_fraction, 0.0))
    train_codes, _ = assign_splits(np.zeros(len(train_classes), dtype=np.int64), train_classes, fr, int(seed), None)
    split = np.concatenate([train_codes, np.full(len(test_classes), TEST, dtype=np.int8)])
    classes = np.concatenate([train_classes, test_classes])
    images = np.concatenate([train_images, test_images])[:, None, :, :].astype(np.float32) / 255.0
    Y = np.stack([classes == k for k in range(len(FASHION_CLASSES))], axis=1).astype(np.float64)
    ds = dataset_from_arrays(
        images, Y, task_names=FASHION_TASKS, tasks=names, split=split, feature_names=["gray"],
        task_kinds={t: "binary" for t in names}, seed=seed, name="fashion-mnist",
        info={"source": f"Debian package dataset-fashion-mnist files in {folder}", "license": FASHION_LICENSE,
              "description": FASHION_DESCRIPTION, "n_train": len(train_classes), "n_test": len(test_classes),
              "split_rule_detail": f"the files' test images; validation = stratified {validation_fraction:.0%} of "
                                   f"the training images (seeded)"},
    )
    ds.info["classes"] = classes
    return ds
