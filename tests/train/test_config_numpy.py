"""Training options given as NumPy scalars, as a sweep over np.arange or a DataFrame column gives them."""

import numpy as np
import pandas as pd

import negtransfer
from negtransfer.train.config import TrainConfig


def test_numpy_whole_numbers_train_and_key_runs_as_python_ints():
    """max_epochs=np.int64(1) trained, then failed writing the run ("Object of type int64 is not JSON
    serializable"), and keyed its runs apart from max_epochs=1."""
    config = TrainConfig.preset("default", max_epochs=np.int64(3), batch_size=np.int32(16), early_stopping=np.bool_(True))
    assert type(config.max_epochs) is int and type(config.batch_size) is int and type(config.early_stopping) is bool
    assert config.config_hash() == TrainConfig.preset("default", max_epochs=3, batch_size=16).config_hash()
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 2)), columns=["x", "y"])
    frame["a"], frame["b"] = (frame.x > 0).astype(int), (frame.y > 0).astype(int)
    options = dict(tasks=["a", "b"], groups="all", repeats=1)
    assert negtransfer.gains(frame, max_epochs=np.int64(1), **options).to_frame().equals(
        negtransfer.gains(frame, max_epochs=1, **options).to_frame())


def test_numpy_scalars_and_whole_floats_become_python_numbers_everywhere_they_enter():
    """TrainConfig built directly (not only through preset), the job options, and the API's seed: a NumPy scalar
    or a whole float is the Python number, so that reports save to JSON and key runs as that number does."""
    import json

    from negtransfer.api import _check_call
    from negtransfer.jobs.grouping import GroupingOptions
    from negtransfer.jobs.sources import SourceOptions

    config = TrainConfig(max_epochs=np.int64(3), lr=np.float32(0.5), patience=5.0)
    assert type(config.max_epochs) is int and type(config.lr) is float and type(config.patience) is int
    assert config.patience == 5 and config.config_hash() == TrainConfig(max_epochs=3, lr=0.5, patience=5).config_hash()
    grouping = GroupingOptions(budget=np.int64(2), kappa=np.float64(1.0), audit=np.float32(0.25))
    sources = SourceOptions(target="a", alpha=np.int32(2), repeats=np.int64(2))
    assert type(grouping.budget) is int and type(grouping.audit) is float and type(sources.alpha) is int
    json.dumps([grouping.budget, grouping.kappa, grouping.audit, sources.alpha, sources.repeats])
    assert type(_check_call(np.int64(3), None)) is int and _check_call(3.0, None) == 3
