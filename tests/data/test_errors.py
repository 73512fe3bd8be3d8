"""Every bad input gets a DataError naming the culprit and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from negtransfer.data.build import DataError, dataset_from_frame


def frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "y1": rng.integers(0, 2, size=n),
            "y2": rng.normal(size=n),
            "group": rng.choice(["north", "south"], size=n),
            "label": rng.integers(0, 2, size=n),
        }
    )


def raises(fragments, **kwargs):
    """Build from ``kwargs`` (frame defaulting to ``frame()``) and check every fragment is in the message."""
    data = kwargs.pop("data", None)
    with pytest.raises(DataError) as info:
        dataset_from_frame(frame() if data is None else data, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in: {message}"
    return message


def test_error_is_a_value_error():
    assert issubclass(DataError, ValueError)


# ----------------------------------------------------------------- columns
def test_missing_task_column_named_with_suggestion():
    raises(["'y3'", "not found", "did you mean 'y", "'x1'"], tasks=["y1", "y3"], features=["x1"])


def test_missing_feature_column_named():
    raises(["feature column", "'x9'", "not found"], tasks=["y1"], features=["x1", "x9"])


def test_duplicate_columns_named():
    data = frame()
    data.columns = ["x1", "x1", "y1", "y2", "group", "label"]
    raises(["duplicate column", "'x1'", "rename"], data=data, tasks=["y1"])


def test_duplicate_names_in_options():
    raises(["tasks", "'y1'", "more than once"], tasks=["y1", "y1"], features=["x1"])
    raises(["features", "'x1'", "more than once"], tasks=["y1"], features=["x1", "x1"])


def test_non_numeric_feature_named_with_fixes():
    raises(["non-numeric feature", "'group'", "north", "get_dummies", "--features"], tasks=["y1"], features=["x1", "group"])


def test_non_numeric_default_features_named():
    # the default features are all other columns, including the text column 'group'
    raises(["'group'", "non-numeric"], tasks=["y1", "y2", "label"])


def test_nan_in_features_named_with_impute_hint():
    data = frame()
    data.loc[[3, 5], "x2"] = np.nan
    raises(["'x2 (2 missing)'", "--impute mean"], data=data, tasks=["y1"], features=["x1", "x2"])


def test_infinite_feature_named():
    data = frame()
    data.loc[3, "x1"] = np.inf
    raises(["infinite", "'x1'"], data=data, tasks=["y1"], features=["x1", "x2"])


def test_impute_impossible_when_training_rows_have_no_value():
    data = frame()
    data["x3"] = np.nan
    raises(["'x3'", "no values in the training split", "--features"], data=data, tasks=["y1"], features=["x1", "x3"], impute="mean")


def test_no_features_left():
    data = frame()[["y1", "y2"]]
    raises(["no feature columns"], data=data, tasks=["y1", "y2"])


def test_empty_features_list():
    raises(["features list is empty"], tasks=["y1"], features=[])


# ----------------------------------------------------------------- tasks and labels
def test_tasks_required_for_multi_label():
    raises(["tasks=", "--tasks"], features=["x1"])


def test_empty_tasks_list():
    raises(["tasks list is empty"], tasks=[], features=["x1"])
    raises(["tasks list is empty", "'group'"], task_column="group", label_column="label", tasks=[])


def test_unknown_task_names_list_known_ones():
    msg = raises(["'west'", "'group'", "'north'", "'south'"], task_column="group", label_column="label", tasks=["north", "west"])
    assert "unknown task" in msg


def test_task_without_labels():
    data = frame()
    data["y3"] = np.nan
    raises(["task 'y3'", "no labels"], data=data, tasks=["y1", "y3"], features=["x1"])


def test_per_task_without_labels():
    data = frame()
    data.loc[data["group"] == "south", "label"] = np.nan
    raises(["task 'south'", "no labels", "'label'"], data=data, task_column="group", label_column="label")


def test_single_value_task():
    data = frame()
    data["y3"] = 1
    raises(["task 'y3'", "single label value (1)"], data=data, tasks=["y3"], features=["x1"])


def test_single_class_in_training_split_names_task_and_class():
    # chronological split: the only positives are the last rows, so training sees class 0 alone
    n = 50
    data = pd.DataFrame({"t": np.arange(n), "x": np.arange(n, dtype=float), "y": [0] * 45 + [1] * 5})
    raises(["task 'y'", "only class 0", "training split"], data=data, tasks=["y"], features=["x"], time_column="t")


def test_single_class_in_training_split_multilabel_random():
    # 'b' has one positive; stratifying by the rarer... both have one: 'a' wins, so 'b' is dealt at random
    rng = np.random.default_rng(0)
    n = 40
    data = pd.DataFrame({"x": rng.normal(size=n), "a": 0, "b": 0})
    data.loc[0, "a"] = 1
    data.loc[1, "b"] = 1
    failures = 0
    for seed in range(10):
        try:
            dataset_from_frame(data, tasks=["a", "b"], seed=seed)
        except DataError as exc:
            assert "task 'b' has only class 0 in its training split" in str(exc)
            failures += 1
    assert 0 < failures < 10


def test_too_few_rows_says_how_many():
    data = frame(n=3)
    raises(["3 labelled row", "at least 4", "2 train, 1 validation, 1 test"], data=data, tasks=["y2"], features=["x1"])


def test_too_few_labelled_rows_for_a_task():
    data = frame()
    data.loc[3:, "y2"] = np.nan
    raises(["task 'y2'", "only 3 labelled", "at least 4"], data=data, tasks=["y1", "y2"], features=["x1"])


def test_too_few_rows_for_a_task_per_task_layout():
    data = frame()
    data.loc[data.index[:3], "group"] = "tiny"
    raises(["task 'tiny'", "only 3", "at least 4"], data=data, task_column="group", label_column="label")


def test_identifier_like_label_refused():
    data = pd.DataFrame({"x": np.arange(300.0), "id": [f"gene{i}" for i in range(300)]})
    raises(["'id'", "300 distinct", "identifier"], data=data, tasks=["id"])


# ----------------------------------------------------------------- roles
def test_task_column_that_is_also_a_feature():
    raises(["'group'", "both a task column and a feature"], task_column="group", label_column="label", features=["x1", "group"])


def test_label_column_that_is_also_a_feature():
    raises(["'label'", "both a label column and a feature"], task_column="group", label_column="label", features=["x1", "label"])


def test_multi_label_task_listed_as_feature():
    raises(["'y1'", "both a task"], tasks=["y1"], features=["x1", "y1"])


def test_label_column_without_task_column():
    raises(["label_column='label' (label= in negtransfer.gains/group/sources/compare) needs task_column"],
           label_column="label", tasks=["y1"])


def test_task_column_without_label_column():
    raises(["task_column='group' needs label_column", "--label", "label='COL' in negtransfer.gains"],
           task_column="group")


def test_task_column_missing_from_table():
    raises(["task column", "'region'", "not found"], task_column="region", label_column="label")


def test_task_and_label_column_equal():
    raises(["both 'group'"], task_column="group", label_column="group")


def test_empty_task_values():
    data = frame()
    data.loc[4, "group"] = None
    raises(["'group'", "empty in 1 row", "4"], data=data, task_column="group", label_column="label")


# ----------------------------------------------------------------- options
def test_bad_task_kinds():
    raises(["unknown task", "'y9'"], tasks=["y1"], features=["x1"], task_kinds={"y9": "binary"})
    raises(["task_kinds['y1']", "'ordinal'", "binary, multiclass, regression"], tasks=["y1"], features=["x1"], task_kinds={"y1": "ordinal"})
    data = frame()
    data["y3"] = np.arange(len(data)) % 3
    raises(["'y3'", "declared binary", "3 distinct"], data=data, tasks=["y3"], features=["x1"], task_kinds={"y3": "binary"})
    raises(["'group'", "regression", "non-numeric", "north"], tasks=["group"], features=["x1"], task_kinds={"group": "regression"})


def test_bad_impute_fractions_seed():
    raises(["impute", "'zero'"], tasks=["y1"], features=["x1"], impute="zero")
    raises(["fractions", "summing to 1"], tasks=["y1"], features=["x1"], fractions=(0.5, 0.2, 0.2))
    raises(["training fraction must be positive"], tasks=["y1"], features=["x1"], fractions=(0.0, 0.5, 0.5))
    raises(["seed", "-1"], tasks=["y1"], features=["x1"], seed=-1)


def test_not_a_frame_and_empty_frame():
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        dataset_from_frame(np.zeros((3, 3)), tasks=["a"])
    raises(["no rows"], data=frame().iloc[:0], tasks=["y1"], features=["x1"])


@pytest.mark.parametrize("bad", ["y1+y2", "y,1"])
def test_task_names_with_group_separators_refused(bad):
    data = frame().rename(columns={"y1": bad})
    raises([repr(bad), "rename the label column"], data=data, tasks=[bad], features=["x1"])
    rows = frame()
    rows["group"] = rows["group"].replace("north", bad)
    raises([repr(bad), "replace that value in column 'group'"], data=rows, task_column="group", label_column="label",
           features=["x1"])
