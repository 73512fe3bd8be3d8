"""The tracked all-task run: its model result is the stacked trainer's, bit for bit; its records."""

import numpy as np
import pytest

from negtransfer.affinity.training import affinity_record, combine_affinity, trace_record, train_with_affinity
from negtransfer.train.batched import train_group_models
from negtransfer.train.config import TrainConfig


@pytest.mark.parametrize("kind", ["etap", "tag"])
def test_the_tracked_run_trains_exactly_as_the_stacked_trainer(mixed_dataset, kind):
    """Tracked steps use the trainer's own backward pass: the result equals the all-task run of a stack of groups."""
    config = TrainConfig(max_epochs=4, patience=2, lr=0.05, weight_decay=1e-4)
    everything = (0, 1, 2, 3)
    stacked = train_group_models(mixed_dataset, [(0,), (1, 2), everything, everything], config, 0,
                                 repeats=[0, 0, 0, 1])
    for repeat in (0, 1):
        tracker, result, plain = train_with_affinity(mixed_dataset, config, 0, repeat=repeat, every=1, kind=kind,
                                                     keep_trace=True)
        other = stacked[2 + repeat]
        assert (result.val_loss, result.test_loss, result.test_metric, result.best_epoch, result.epochs) == \
            (other.val_loss, other.test_loss, other.test_metric, other.best_epoch, other.epochs)
        assert tracker.n_steps_tracked > 0
    record = affinity_record(tracker, result, plain)
    assert record["best_epoch"] == result.best_epoch and record["steps_tracked"] == tracker.n_steps_tracked
    assert np.asarray(record["plain"]).shape == (len(record["epochs"]), 4, 4)
    trace = trace_record(tracker, plain)
    assert len(trace["steps"]) == len(trace["momentum"]) == len(trace["plain"]) == tracker.n_steps_tracked
    A = combine_affinity([record], 4, momentum=False)
    np.testing.assert_allclose(A, np.nanmean(np.asarray(record["plain"]), axis=0), rtol=1e-12)
