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
