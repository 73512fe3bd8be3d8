import numpy as np

from negtransfer.data.dataset import TaskSpec
from negtransfer.train.metrics import auroc, classification_losses, task_metric


def test_auroc_known_values():
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert np.isnan(auroc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_margin_zero_one_accuracy_binary_and_multiclass():
    binary = TaskSpec("b", "binary", (0, 1))
    out = classification_losses(binary, np.array([1.0, 0.0]), np.array([0.9, 0.3]))
    # margins: row 1: 0.1 - 0.9 = -0.8; row 2: 0.3 - 0.7 = -0.4
    assert np.isclose(out["margin_loss"], -0.6) and out["accuracy"] == 1.0 and out["zero_one"] == 0.0
    multi = TaskSpec("m", "multiclass", ("a", "b", "c"))
    probs = np.array([[0.2, 0.5, 0.3], [0.6, 0.3, 0.1]])
    out = classification_losses(multi, np.array([1.0, 1.0]), probs)
    assert np.isclose(out["margin_loss"], ((0.3 - 0.5) + (0.6 - 0.3)) / 2) and out["accuracy"] == 0.5
    assert classification_losses(TaskSpec("r", "regression"), np.array([1.0]), np.array([1.0])) == {}


def test_regression_metric_in_original_units():
    task = TaskSpec("r", "regression", target_std=2.0)
    assert task_metric(task, np.array([0.0, 1.0]), np.array([1.0, 1.0])) == 0.5 * 4
