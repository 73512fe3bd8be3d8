"""Initialisation schemes of the built-in MLP (negtransfer.nn.initialisation)."""

import math

import pytest
import torch

from negtransfer.nn.hard_sharing import HardSharingMLP, StackedHardSharingMLP, init_parameters
from negtransfer.nn.initialisation import INIT_SCHEMES, dense_parameters
from negtransfer.train.config import INITS, TrainConfig

SHAPES = [(180, 32), (32, 16), (16, 3)]


def test_torch_scheme_is_pytorchs_linear_default_drawn_weights_then_biases():
    params = dense_parameters(7, SHAPES, "torch")
    gen = torch.Generator().manual_seed(7)
    for layer, (fan_in, fan_out) in enumerate(SHAPES):
        bound = 1 / math.sqrt(fan_in)
        weight = torch.rand(fan_in, fan_out, generator=gen) * 2 * bound - bound
        bias = torch.rand(fan_out, generator=gen) * 2 * bound - bound
        assert torch.allclose(params[2 * layer], weight, atol=1e-7) and torch.allclose(params[2 * layer + 1], bias,
                                                                                        atol=1e-7)


def test_glorot_scheme_has_glorot_uniform_weights_and_zero_biases():
    params = dense_parameters(3, SHAPES, "glorot")
    for layer, (fan_in, fan_out) in enumerate(SHAPES):
        weight, bias = params[2 * layer], params[2 * layer + 1]
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert weight.shape == (fan_in, fan_out) and bias.shape == (fan_out,)
        assert weight.abs().max() <= bound and (bias == 0).all()
        if fan_in * fan_out > 1000:  # a large layer fills its range: U(-a, a) has variance a^2 / 3
            assert weight.abs().max() > 0.95 * bound
            assert abs(weight.var().item() - bound**2 / 3) < 0.1 * bound**2 / 3


def test_schemes_are_seeded_and_differ():
    assert all(torch.equal(a, b) for a, b in zip(dense_parameters(1, SHAPES, "glorot"),
                                                 dense_parameters(1, SHAPES, "glorot"), strict=True))
    assert not torch.equal(dense_parameters(1, SHAPES, "glorot")[0], dense_parameters(2, SHAPES, "glorot")[0])
    assert not torch.equal(dense_parameters(1, SHAPES, "glorot")[0], dense_parameters(1, SHAPES, "torch")[0])
    with pytest.raises(ValueError, match="init must be one of torch, glorot"):
        dense_parameters(1, SHAPES, "xavier")
    assert INIT_SCHEMES == INITS  # the config's choices are the module's


def test_stacked_mlp_takes_the_scheme_and_its_models_unstack_alike():
    stack = StackedHardSharingMLP(180, (32, 16), 3, seeds=[4, 5], init="glorot")
    assert all((b == 0).all() for b in stack.biases)
    expected = init_parameters(5, 180, (32, 16), 3, "glorot")
    assert torch.equal(stack.weights[0][1], expected[0])
    x = torch.rand(6, 180)
    single = stack.unstack(1)
    assert isinstance(single, HardSharingMLP) and torch.allclose(single(x), stack(x)[1], atol=1e-6)
    # the default scheme is the one before the option existed
    assert torch.equal(StackedHardSharingMLP(180, (32, 16), 3, seeds=[4]).weights[0][0],
                       dense_parameters(4, SHAPES, "torch")[0])


def test_init_in_the_config_keys_runs_only_when_not_the_default():
    assert TrainConfig().config_hash() == TrainConfig(init="torch").config_hash() == "fedb84d1373d9bcd"
    assert TrainConfig(init="glorot").config_hash() != TrainConfig().config_hash()
    with pytest.raises(ValueError, match="init must be one of torch, glorot, got 'he'"):
        TrainConfig(init="he")
    with pytest.raises(ValueError, match="initialises itself"):
        TrainConfig(init="glorot", model="cnn")


def test_a_presets_init_leaves_another_network_to_initialise_itself():
    assert TrainConfig.preset("etap-chemical").init == "glorot"
    assert TrainConfig.preset("etap-chemical", model="lstm").init == "torch"
    assert TrainConfig.preset("etap-chemical", model="mlp").init == "glorot"
    with pytest.raises(ValueError, match="initialises itself"):
        TrainConfig.preset("etap-chemical", model="lstm", init="glorot")


def test_init_is_written_out_only_when_not_the_default():
    assert "init" not in TrainConfig().to_dict()
    assert TrainConfig(init="glorot").to_dict()["init"] == "glorot"
    assert TrainConfig(**TrainConfig(init="glorot").to_dict()) == TrainConfig(init="glorot")


def test_single_mlp_for_a_users_loop_takes_the_scheme_like_the_stack():
    single = HardSharingMLP(180, (32, 16), 3, seed=5, init="glorot")
    stack = StackedHardSharingMLP(180, (32, 16), 3, seeds=[4, 5], init="glorot")
    assert torch.equal(single.layers()[0].weight.T, stack.weights[0][1])
    assert all((layer.bias == 0).all() for layer in single.layers())
    assert not torch.equal(HardSharingMLP(180, (32, 16), 3, seed=5).layers()[0].weight, single.layers()[0].weight)
