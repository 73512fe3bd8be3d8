"""TrainConfig's device: validated, part of a run's key only off the CPU; training on a GPU where there is one."""

import numpy as np
import pytest
import torch

from negtransfer.train.config import TrainConfig, check_device_available


def test_device_is_validated_and_keys_only_gpu_runs_apart():
    assert TrainConfig().device == "cpu"
    # the key a default CPU run had before the device field existed (result format 5): stored runs stay reusable
    assert TrainConfig().config_hash() == "fedb84d1373d9bcd"
    assert TrainConfig(device="cuda").config_hash() != TrainConfig().config_hash()
    assert TrainConfig(device="cuda:1").config_hash() != TrainConfig(device="cuda").config_hash()
    for bad in ("gpu", "cuda:x", "cpu:0", "CUDA"):
        with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"):
            TrainConfig(device=bad)


def test_a_torch_device_is_read_as_its_name():
    # the Python user's habit: device=torch.device("cpu") once failed with "--device cpu: PyTorch sees no CUDA GPU"
    config = TrainConfig(device=torch.device("cpu"))
    assert config.device == "cpu" and config.config_hash() == TrainConfig().config_hash()
    check_device_available(config.device)
    assert TrainConfig(device=torch.device("cuda", 1)).device == "cuda:1"


@pytest.mark.parametrize("name, bad", [("max_epochs", 2.5), ("max_epochs", "5"), ("batch_size", 0), ("patience", True),
                                       ("max_epochs", -1)])
def test_counts_must_be_whole_numbers_named_in_the_error(name, bad):
    with pytest.raises(ValueError, match=f"{name} must be a whole number >= 1, got {bad!r}"):
        TrainConfig(**{name: bad})
    assert TrainConfig(max_epochs=np.int64(3)).max_epochs == 3


@pytest.mark.parametrize("name", ["lr", "momentum", "weight_decay"])
def test_rates_must_be_numbers(name):
    with pytest.raises(ValueError, match=f"{name} must be a number, got '0.1'"):
        TrainConfig(**{name: "0.1"})


def test_cuda_without_a_gpu_is_one_clear_error(monkeypatch):
    check_device_available("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="--device cuda: PyTorch sees no CUDA GPU here .*use --device cpu"):
        check_device_available("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_stacked_training_and_affinity_run_on_a_gpu(mixed_dataset):
    from negtransfer.affinity.training import train_with_affinity
    from negtransfer.train.batched import train_group_models

    groups = [(0,), (1, 2), (0, 1, 2, 3)]
    cpu = train_group_models(mixed_dataset, groups, TrainConfig(max_epochs=5), seed=0)
    gpu = train_group_models(mixed_dataset, groups, TrainConfig(max_epochs=5, device="cuda"), seed=0)
    for a, b in zip(cpu, gpu, strict=True):  # the same start and batches; the arithmetic differs in the last bits only
        np.testing.assert_allclose(list(a.test_loss.values()), list(b.test_loss.values()), rtol=1e-3)
    tracker, _, _ = train_with_affinity(mixed_dataset, TrainConfig(max_epochs=3, device="cuda"), seed=0)
    assert np.isfinite(tracker.affinity_matrix).any()
