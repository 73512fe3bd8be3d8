"""The model contract, the built-in encoders and StackedModel (issue 24)."""

import pytest
import torch
from torch import nn

from negtransfer.nn import encoders
from negtransfer.nn.contract import build_model, check_factory
from negtransfer.nn.stacked import StackedModel, stacking_plan
from negtransfer.train.model_choice import BUILTIN_ENCODER_NAMES

SHAPES = {"mlp": (2, 3), "cnn": (3, 8, 8), "lstm": (6, 2), "transformer": (6, 2)}


def test_the_builtin_encoders_keep_the_contract_and_stack():
    assert tuple(encoders.BUILTIN_ENCODERS) == BUILTIN_ENCODER_NAMES
    for name, make in encoders.BUILTIN_ENCODERS.items():
        check_factory(make, SHAPES[name], [1, 3, 2])
        plan = stacking_plan(make, SHAPES[name], [1, 3, 2], rows=16)
        assert plan.stackable and plan.note is None, name


@pytest.mark.parametrize("name", ["mlp", "cnn", "lstm", "transformer"])
def test_model_k_of_a_stack_is_the_model_built_alone_from_its_seed(name):
    make = encoders.BUILTIN_ENCODERS[name]
    stack = StackedModel(make, SHAPES[name], [1, 3, 2], seeds=[11, 12, 13])
    x = torch.randn(3, 5, *SHAPES[name])
    out = stack(x)
    assert out.shape == (3, 5, 6)
    for k, seed in enumerate([11, 12, 13]):
        alone = build_model(make, SHAPES[name], [1, 3, 2], seed)
        torch.testing.assert_close(out[k], alone(x[k]), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(stack.unstack(k)(x[k]), alone(x[k]))
    shared = stack(x[0])  # one batch for every model
    torch.testing.assert_close(shared[1], build_model(make, SHAPES[name], [1, 3, 2], 12)(x[0]), rtol=1e-5,
                               atol=1e-6)
    stack.keep_models(torch.tensor([2, 0]))
    assert stack.n_models == 2
    torch.testing.assert_close(stack(x[[2, 0]])[0], out[2])
    assert len(stack.shared_parameters()) + len(stack.head_parameters()) == len(list(stack.parameters()))
    alone = build_model(make, SHAPES[name], [1, 3, 2], 11)  # the encoder's parameters are the shared ones
    assert [p.shape[1:] for p in stack.shared_parameters()] == [p.shape for p in alone.encoder.parameters()]
    assert [p.shape[1:] for p in stack.head_parameters()] == [p.shape for p in alone.heads.parameters()]
    assert all(p.shape[0] == 2 for p in stack.parameters())


def test_initialisation_depends_only_on_the_seed():
    a = build_model(encoders.cnn, (1, 4, 4), [1], seed=3)
    torch.manual_seed(123)
    b = build_model(encoders.cnn, (1, 4, 4), [1], seed=3)
    state = torch.get_rng_state()
    build_model(encoders.cnn, (1, 4, 4), [1], seed=4)
    assert torch.equal(state, torch.get_rng_state())  # building a model leaves the global generator alone
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def _linear(width=4):
    def make(input_shape, outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(6, width)), [nn.Linear(width, o) for o in outputs]
    return make


def test_a_bad_factory_is_refused_with_one_error_naming_the_problem():
    with pytest.raises(ValueError, match="must return \\(encoder, heads\\)"):
        check_factory(lambda s, o: nn.Linear(6, 1), (6,), [1])
    with pytest.raises(ValueError, match="returned 1 head\\(s\\) for 2 tasks"):
        check_factory(lambda s, o: (nn.Flatten(), [nn.Linear(6, 1)]), (6,), [1, 1])
    with pytest.raises(ValueError, match="head 1 .* returned \\(2, 1\\) .* must return \\(2, 3\\)"):
        check_factory(lambda s, o: (nn.Flatten(), [nn.Linear(6, 1), nn.Linear(6, 1)]), (6,), [1, 3])
    with pytest.raises(ValueError, match="raised RuntimeError on a batch of shape \\(2, 5\\)"):
        check_factory(_linear(), (5,), [1])
    with pytest.raises(ValueError, match="raised ZeroDivisionError"):
        check_factory(lambda s, o: 1 / 0, (6,), [1])
    with pytest.raises(ValueError, match="encoder of type int"):
        check_factory(lambda s, o: (3, [nn.Linear(6, 1)]), (6,), [1])
    with pytest.raises(ValueError, match="no trainable parameters"):
        check_factory(lambda s, o: (nn.Flatten(), [nn.Linear(6, 1)]), (6,), [1])
    with pytest.raises(ValueError, match="needs examples shaped \\(channels, height, width\\)"):
        check_factory(encoders.cnn, (6,), [1])
    check_factory(_linear(), (2, 3), [1, 2])


def test_stacking_plan_names_why_a_model_trains_one_at_a_time():
    def batch_norm(shape, outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.BatchNorm1d(4)), [nn.Linear(4, o) for o in outputs]

    def fused_lstm(shape, outputs):
        class Last(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(2, 4, batch_first=True)

            def forward(self, x):
                return self.lstm(x)[0][:, -1]
        return Last(), [nn.Linear(4, o) for o in outputs]

    def branching(shape, outputs):
        class Branch(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(6, 4)

            def forward(self, x):
                h = self.linear(x.flatten(1))
                return h if h.sum() > 0 else -h
        return Branch(), [nn.Linear(4, o) for o in outputs]

    assert "buffers" in stacking_plan(batch_norm, (6,), [1]).note
    assert "vmap cannot run" in stacking_plan(fused_lstm, (3, 2), [1]).note
    assert "vmap cannot run" in stacking_plan(branching, (6,), [1]).note
    with pytest.raises(ValueError, match="one at a time"):
        StackedModel(batch_norm, (6,), [1], seeds=[0, 1], stackable=False)


def _small_factory(input_shape, outputs, width=4):
    return nn.Linear(input_shape[0], width), [nn.Linear(width, o) for o in outputs]


def test_a_factory_with_its_arguments_is_named_by_its_function():
    # model_arguments bind the factory with functools.partial; the error named 'functools:partial'
    import functools

    with pytest.raises(ValueError, match=r"the model factory [\w.]*test_any_model_nn:_small_factory "
                                         r"\(with depth=3\) raised TypeError: .*unexpected keyword argument 'depth'"):
        build_model(functools.partial(_small_factory, depth=3), (5,), [1, 1], seed=0)
