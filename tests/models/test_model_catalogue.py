"""The model catalogue's errors as a user of compare meets them."""

import numpy as np
import pytest

import negtransfer
from negtransfer.data.arrays import dataset_from_arrays


@pytest.mark.parametrize("shape, kind", [((8, 1, 4, 4), "images"), ((8, 5, 3), "sequences")])
def test_compare_on_data_no_model_takes_says_where_that_data_can_go(shape, kind):
    """On images it read "the models for images data are: none", which left the user nowhere to go."""
    rng = np.random.default_rng(0)
    labels = np.tile([[0.0, 1.0], [1.0, 0.0]], (shape[0] // 2, 1))
    data = dataset_from_arrays(rng.normal(size=(shape[0] * 5, *shape[1:])), np.tile(labels, (5, 1)), seed=0)
    with pytest.raises(ValueError, match=f"model 'stl' does not accept {kind} data .*; no model of compare takes "
                                         f"{kind} data; gains, group and sources train .*--encoder cnn.*model= in "
                                         "Python"):
        negtransfer.compare(data, models=["stl"], runs=1)
    with pytest.raises(ValueError, match=f"unknown model\\(s\\) nope; no model of compare takes {kind} data"):
        negtransfer.compare(data, models=["nope"], runs=1)
