"""model= given a network instead of a factory of one: the mistake a PyTorch user makes first."""

import numpy as np
import pandas as pd
import pytest
from torch import nn

import negtransfer
from negtransfer.train.model_choice import ModelChoice


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(3, 2)

    def forward(self, x):
        return self.layer(x)


def test_a_network_or_its_class_is_refused_with_what_a_factory_is():
    """An instance was refused as "a model factory given as a callable must be a module-level function", a class
    failed with "Net.__init__() takes 1 positional argument but 3 were given"."""
    with pytest.raises(ValueError, match="not a network: got an instance of Net; negtransfer builds one network per group "
                                         "of tasks, so write a function make\\(input_shape, outputs\\)"):
        ModelChoice.from_callable(Net())
    with pytest.raises(ValueError, match="not the nn.Module class Net; write a function make\\(input_shape, outputs\\)"):
        ModelChoice.from_callable(Net)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(40, 3)), columns=["x", "y", "z"])
    frame["a"], frame["b"] = (frame.x > 0).astype(int), (frame.y > 0).astype(int)
    with pytest.raises(ValueError, match="model= takes a factory that builds the network"):
        negtransfer.gains(frame, tasks=["a", "b"], model=Net())
    with pytest.raises(ValueError, match="not the nn.Module class Net"):
        negtransfer.group(frame, tasks=["a", "b"], model=Net, model_arguments={"width": 4})
