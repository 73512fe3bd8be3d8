"""Multi-group fairness metrics on hand-computed cases and against a pandas recount."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from negtransfer.train.fairness import (
    demographic_parity_gap,
    equal_opportunity_gap,
    fairness_summary,
    group_metrics,
    worst_group_accuracy,
)

# Hand-computed case. Group a: 4 rows (2 positives), b: 3 rows (1 positive), c: 2 rows (no positive).
GROUPS = np.array(["a", "a", "a", "a", "b", "b", "b", "c", "c"])
Y_TRUE = np.array([1, 1, 0, 0, 1, 0, 0, 0, 0])
Y_PRED = np.array([1, 0, 0, 1, 1, 1, 0, 1, 1])
#            accuracy  selection rate  TPR        FPR
# a          2/4       2/4             1/2        1/2
# b          2/3       2/3             1/1        1/2
# c          0/2       2/2             undefined  2/2


def test_worst_group_accuracy_hand_computed():
    assert worst_group_accuracy(Y_TRUE, Y_PRED, GROUPS) == 0.0  # group c
    assert worst_group_accuracy(Y_TRUE, Y_PRED, GROUPS, min_rows=3) == 0.5  # c (2 rows) left out: a
    assert np.isnan(worst_group_accuracy(Y_TRUE, Y_PRED, GROUPS, min_rows=5))
    # multiclass labels and integer groups work too
    assert worst_group_accuracy(["x", "y", "z", "z"], ["x", "y", "y", "z"], [0, 0, 1, 1]) == 0.5


def test_demographic_parity_gap_hand_computed():
    assert demographic_parity_gap(Y_PRED, GROUPS) == pytest.approx(1.0 - 0.5)  # c minus a
    assert demographic_parity_gap(Y_PRED, GROUPS, min_rows=3) == pytest.approx(2 / 3 - 1 / 2)
    assert demographic_parity_gap([1, 0, 1, 0], ["m", "m", "f", "f"]) == 0.0  # parity
    assert demographic_parity_gap([1, 1, 0], ["m", "m", "m"]) == 0.0  # one group: no gap
    assert demographic_parity_gap(np.array([True, False, False, False]), ["m", "m", "f", "f"]) == 0.5


def test_equal_opportunity_gap_skips_groups_without_positives():
    # c has no positives, so its TPR is undefined and it is skipped: b (1.0) minus a (0.5)
    assert equal_opportunity_gap(Y_TRUE, Y_PRED, GROUPS) == pytest.approx(0.5)
    assert equal_opportunity_gap(Y_TRUE, Y_PRED, GROUPS, min_positives=2) == 0.0  # only a qualifies
    assert np.isnan(equal_opportunity_gap(Y_TRUE, Y_PRED, GROUPS, min_positives=3))
    assert np.isnan(equal_opportunity_gap([0, 0], [1, 0], ["a", "b"]))  # nobody positive
    # negatives do not matter for equal opportunity (they would for equalised odds)
    assert equal_opportunity_gap([1, 0, 1, 0], [1, 1, 1, 0], ["a", "a", "b", "b"]) == 0.0


def test_group_metrics_table():
    rows = group_metrics(Y_TRUE, Y_PRED, GROUPS)
    assert [r["group"] for r in rows] == ["a", "b", "c"]
    a, b, c = rows
    assert (a["rows"], a["positives"], b["rows"], b["positives"], c["rows"], c["positives"]) == (4, 2, 3, 1, 2, 0)
    assert [r["accuracy"] for r in rows] == pytest.approx([0.5, 2 / 3, 0.0])
    assert [r["selection_rate"] for r in rows] == pytest.approx([0.5, 2 / 3, 1.0])
    assert [r["base_rate"] for r in rows] == pytest.approx([0.5, 1 / 3, 0.0])
    assert a["tpr"] == 0.5 and b["tpr"] == 1.0 and np.isnan(c["tpr"])
    assert [r["fpr"] for r in rows] == pytest.approx([0.5, 0.5, 1.0])
    assert list(a) == ["group", "rows", "positives", "base_rate", "selection_rate", "accuracy", "tpr", "fpr"]
    assert isinstance(a["group"], str)
    multi = group_metrics(["x", "y", "z"], ["x", "y", "y"], ["g", "g", "h"])
    assert [r["accuracy"] for r in multi] == [1.0, 0.0] and np.isnan(multi[0]["tpr"]) and multi[0]["positives"] is None


def test_fairness_summary():
    s = fairness_summary(Y_TRUE, Y_PRED, GROUPS)
    assert s["accuracy"] == pytest.approx(4 / 9)
    assert (s["worst_group"], s["worst_group_accuracy"], s["groups"]) == ("c", 0.0, 3)
    assert s["demographic_parity_gap"] == pytest.approx(0.5) and s["equal_opportunity_gap"] == pytest.approx(0.5)
    assert fairness_summary(Y_TRUE, Y_PRED, GROUPS, min_rows=3)["worst_group"] == "a"


def test_metrics_match_a_pandas_recount_and_ignore_row_order():
    rng = np.random.default_rng(0)
    n = 500
    groups = rng.choice(["w", "x", "y", "z"], size=n, p=[0.5, 0.3, 0.15, 0.05])
    y_true = (rng.random(n) < np.where(groups == "w", 0.6, 0.3)).astype(int)
    y_pred = (rng.random(n) < 0.4 + 0.3 * y_true).astype(int)
    frame = pd.DataFrame({"g": groups, "t": y_true, "p": y_pred, "ok": (y_true == y_pred).astype(float)})
    acc = frame.groupby("g")["ok"].mean()
    sel = frame.groupby("g")["p"].mean()
    tpr = frame[frame["t"] == 1].groupby("g")["p"].mean()
    assert worst_group_accuracy(y_true, y_pred, groups) == pytest.approx(acc.min())
    assert demographic_parity_gap(y_pred, groups) == pytest.approx(sel.max() - sel.min())
    assert equal_opportunity_gap(y_true, y_pred, groups) == pytest.approx(tpr.max() - tpr.min())
    order = rng.permutation(n)
    assert equal_opportunity_gap(y_true[order], y_pred[order], groups[order]) == pytest.approx(tpr.max() - tpr.min())
    table = {r["group"]: r for r in group_metrics(y_true, y_pred, groups)}
    assert table["z"]["rows"] == int((groups == "z").sum()) and table["z"]["tpr"] == pytest.approx(tpr["z"])


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="probabilities.*proba >= 0.5"):
        demographic_parity_gap([0.2, 0.7], ["a", "b"])
    with pytest.raises(ValueError, match="y_true must hold only 0 and 1"):
        equal_opportunity_gap([0, 2], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="lengths"):
        worst_group_accuracy([0, 1], [0, 1], ["a"])
    with pytest.raises(ValueError, match="no rows"):
        worst_group_accuracy([], [], [])
    with pytest.raises(ValueError, match="missing entries"):
        demographic_parity_gap([0, 1], np.array(["a", None], dtype=object))
    with pytest.raises(ValueError, match="NaN"):
        worst_group_accuracy([0.0, np.nan], [0, 1], ["a", "b"])
    with pytest.raises(ValueError, match="1-D"):
        demographic_parity_gap(np.zeros((2, 2)), ["a", "b"])


def test_fairness_imports_numpy_only():
    code = "import sys, negtransfer.train.fairness; print(any(m in sys.modules for m in ('pandas', 'torch', 'scipy')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
