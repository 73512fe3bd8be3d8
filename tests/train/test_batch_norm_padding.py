"""A model trained one at a time (batch norm) sees only its real rows: the zero rows that pad every batch of a
stack to a multiple of 16 never enter its batch statistics (issue 24)."""

import numpy as np
import pytest
from torch import nn

from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset, TaskSpec
from negtransfer.nn.stacked import UnstackableModelWarning
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig
from negtransfer.train.model_choice import ModelChoice

pytestmark = pytest.mark.filterwarnings("ignore::negtransfer.nn.stacked.UnstackableModelWarning")
MEAN = 5.0


def input_batch_norm(input_shape, outputs):
    """Batch norm straight on the inputs: its running mean estimates the mean of the rows it was trained on."""
    width = int(np.prod(input_shape))
    encoder = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(width), nn.Linear(width, 4), nn.Tanh())
    return encoder, [nn.Linear(4, out) for out in outputs]


def _dataset(per_task_rows: bool, n: int = 240, seed: int = 0) -> MultiTaskDataset:
    """Inputs of mean 5 (zero rows are far from them) and two binary tasks, multi-label or one task per row."""
    rng = np.random.default_rng(seed)
    X = (MEAN + rng.normal(size=(n, 3))).astype(np.float32)
    Y = np.stack([X[:, 0] > MEAN, X[:, 1] > MEAN], axis=1).astype(np.float32)
    split = np.repeat([TRAIN, VALIDATION, TEST], [n // 2, n // 4, n - n // 2 - n // 4])
    row_task = None
    if per_task_rows:  # rows alternate between the tasks, each labelled for its own task only
        row_task = np.arange(n) % 2
        Y[np.arange(n), 1 - row_task] = np.nan
    tasks = (TaskSpec("a", "binary", (0, 1)), TaskSpec("b", "binary", (0, 1)))
    return MultiTaskDataset("shifted", tasks, X, Y, split, ("x0", "x1", "x2"), row_task=row_task)


@pytest.mark.parametrize("per_task_rows", [False, True])
@pytest.mark.parametrize("batching", ["auto", "per-task"])
def test_batch_statistics_of_a_model_trained_alone_leave_out_the_padding_rows(per_task_rows, batching):
    ds = _dataset(per_task_rows)
    if batching == "per-task" and not per_task_rows:
        pytest.skip("per-task batches are a scheme of per-task-rows data")
    # 5 rows a batch (per task with per-task batches), padded to 16: with the padding the mean would be far below 5
    config = TrainConfig(model=ModelChoice.from_callable(input_batch_norm), batch_size=5, max_epochs=3,
                         early_stopping=False, lr=1e-6, batching=batching)
    with pytest.warns(UnstackableModelWarning):
        result = train_group_models(ds, [(0, 1)], config, seed=0, keep_parameters=True)[0]
    running_mean = result.extra["parameters"]["encoder.1.running_mean"].numpy()
    train_mean = ds.X[ds.split == TRAIN].mean(axis=0)
    np.testing.assert_allclose(running_mean, train_mean, atol=0.3)
    assert np.isfinite(list(result.val_loss.values())).all()



def test_a_batch_of_one_row_is_skipped_by_a_model_trained_alone():
    """Task a has 60 training rows: batches of 59 leave one row, on which a batch norm cannot train (it would raise)."""
    ds = _dataset(True)
    assert int(((ds.split == TRAIN) & (ds.row_task == 0)).sum()) == 60
    config = TrainConfig(model=ModelChoice.from_callable(input_batch_norm), batch_size=59, max_epochs=2,
                         batching="pooled")
    result = train_group_models(ds, [(0,)], config, seed=0)[0]
    assert np.isfinite(list(result.val_loss.values())).all() and result.epochs == 2
