"""The model contract's checks for shapes of a factory's return that a PyTorch user writes naturally."""

import pytest
from torch import nn

from negtransfer.nn.contract import build_model, check_factory


def _encoder(input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0] * input_shape[1], 8))


def test_heads_as_a_dict_are_refused_saying_a_list_in_task_order_is_wanted():
    """A ModuleDict of three heads was counted as one: "returned 1 head(s) for 3 tasks"."""
    for kind in (nn.ModuleDict, dict):
        def make(input_shape, outputs, kind=kind):
            return _encoder(input_shape), kind({f"task{t}": nn.Linear(8, o) for t, o in enumerate(outputs)})

        with pytest.raises(ValueError, match=f"returned its heads as a {kind.__name__}; return them as a list .* in "
                                             "task order"):
            check_factory(make, (10, 3), [1, 1, 1])


def test_heads_from_a_generator_expression_are_the_heads_it_yields():
    """A generator expression of heads was counted as one head."""
    model = build_model(lambda s, o: (_encoder(s), (nn.Linear(8, w) for w in o)), (10, 3), [1, 2, 1], seed=0)
    assert [head.out_features for head in model.heads] == [1, 2, 1]


def test_an_encoder_that_returns_a_tuple_is_explained():
    """nn.GRU as the encoder: the heads failed with "linear(): argument 'input' ... must be Tensor, not tuple"."""
    def make(input_shape, outputs):
        return nn.GRU(input_shape[1], 8, batch_first=True), [nn.Linear(8, o) for o in outputs]

    with pytest.raises(ValueError, match=r"raised TypeError on a batch of shape \(2, 10, 3\): .*not tuple \(the encoder "
                                         r"returned a tuple, not a tensor of features: an nn.GRU or nn.LSTM returns "
                                         r"\(output, state\)"):
        check_factory(make, (10, 3), [1, 1])
