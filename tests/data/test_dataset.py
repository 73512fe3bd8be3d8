"""MultiTaskDataset itself: what a user sees when printing one."""

import numpy as np
import pytest

from negtransfer.data.arrays import dataset_from_arrays


def test_a_dataset_prints_as_one_line_not_its_arrays():
    """print(dataset) in a notebook used to dump X, Y and split in full (thousands of lines for 240 small images)."""
    rng = np.random.default_rng(0)
    images = rng.normal(size=(240, 1, 16, 16)).astype(np.float32)
    labels = np.c_[rng.integers(0, 2, size=(240, 2)), rng.normal(size=240)]
    dataset = dataset_from_arrays(images, labels, task_names=["top", "left", "size"], seed=0)
    text = repr(dataset)
    assert "\n" not in text and len(text) < 300, text
    assert text.startswith("MultiTaskDataset('arrays': 240 images of shape (1, 16, 16), 3 task(s): "
                           "top (binary), left (binary), size (regression); multi-label; split ")
    counts = [int(part.split()[0]) for part in text.split("split ")[1].rstrip(")").split(" / ")]
    assert counts == [len(dataset.indices(s)) for s in ("train", "validation", "test")] and sum(counts) == 240
    many = dataset_from_arrays(rng.normal(size=(60, 3)), rng.integers(0, 2, size=(60, 10)).astype(float),
                               task_names=[f"t{i}" for i in range(10)], row_task=None, seed=0)
    assert "60 table rows of shape (3,), 10 task(s): t0 (binary)" in repr(many) and "... (2 more)" in repr(many)


def test_a_task_named_by_a_list_is_a_type_error_naming_the_tasks():
    """sources(target=["sick"]) failed with "TypeError: unhashable type: 'list'" from a dict lookup."""
    import pandas as pd
    import pytest

    import negtransfer

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 2)), columns=["x", "y"])
    frame["sick"], frame["worse"] = (frame.x > 0).astype(int), (frame.y > 0).astype(int)
    with pytest.raises(TypeError, match=r"a task is named by one string, got list \['sick'\]; this dataset's tasks "
                                        "are: sick, worse"):
        negtransfer.sources(frame, target=["sick"], tasks=["sick", "worse"], alpha=1, n_subsets=2, holdout=0)


def test_task_index_suggests_the_closest_name():
    """A misspelt task name (sources' --target, the API's target=) got the list of tasks only."""
    rng = np.random.default_rng(0)
    ds = dataset_from_arrays(rng.normal(size=(40, 2)), np.tile([[0.0, 1.0], [1.0, 0.0]], (20, 1)),
                             task_names=["north", "south"])
    with pytest.raises(ValueError, match=r"unknown task name\(s\) \['nort'\] \(did you mean 'north'\?\); "
                                         r"this dataset's tasks are: north, south"):
        ds.task_index(["nort"])
    with pytest.raises(ValueError, match=r"\['zzz'\]; this dataset's tasks are"):
        ds.task_index(["zzz"])
