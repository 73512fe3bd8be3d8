"""VMTL training options: the official code's schedule preset, one optimiser per task, the KL warm-up."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from negtransfer.data.domains import dataset_from_domains
from negtransfer.models.base import FitOptions
from negtransfer.models.vmtl import make_config, make_model, make_weighting
from negtransfer.train.variational import TRAINING_PRESETS, VariationalConfig, _step_own_parameters, fit_variational

torch.set_num_threads(1)


def tiny_domains(n=30, d=5, n_tasks=3):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, d)) * 2
    domains = {}
    for t in range(n_tasks):
        y = np.arange(n) % 2
        domains[f"d{t}"] = (centres[y] + rng.normal(size=(n, d)) + 0.3 * t, y)
    return dataset_from_domains(domains, seed=0)


def test_public_preset_kl_schedule_and_posterior_initialisation():
    ours, public = VariationalConfig(), VariationalConfig.preset("vmtl-public")
    assert ours.kl_w_weight(600, 4) == pytest.approx(6e-5)  # +1e-6 every 10 iterations
    assert public.iterations == 15000 and public.lr == 1e-4 and public.optimiser == "per-task"
    assert public.kl_w_weight(15000, 4) == pytest.approx(6e-3)  # +1e-6 on each of 4 per-task steps
    assert public.kl_w_weight(15000, 2) == pytest.approx(3e-3)
    assert public.init_std == pytest.approx(math.log1p(math.exp(-3)))
    assert public.n_w_samples == 1
    assert public.temperature(7000) == pytest.approx(0.5, abs=0.01)
    assert VariationalConfig.preset("vmtl-public", iterations=3000).iterations == 3000
    assert TRAINING_PRESETS["default"] == {}
    with pytest.raises(ValueError, match="unknown VMTL training preset"):
        VariationalConfig.preset("vmtl-paper")
    with pytest.raises(ValueError, match="optimiser must be one of"):
        VariationalConfig(optimiser="sgd")


def test_compare_set_preset_goes_under_the_other_options():
    config = make_config(FitOptions(iterations=300, settings={"preset": "vmtl-public", "per_class": 2}))
    assert config.iterations == 300 and config.per_class == 2 and config.optimiser == "per-task"
    assert make_config(FitOptions()) == VariationalConfig()
    with pytest.raises(ValueError, match="unknown VMTL training preset"):
        make_config(FitOptions(settings={"preset": "nope"}))


def test_a_task_step_moves_the_shared_encoder_and_only_that_tasks_own_parameters():
    ds = tiny_domains()
    torch.manual_seed(0)
    model = make_model("vmtl", ds.n_features, 2, ds.n_tasks, hidden=6, latent=4)
    weighting = make_weighting("kendall", ds.n_tasks)
    opt = torch.optim.Adam(list(model.parameters()) + list(weighting.parameters()), lr=0.05, weight_decay=0.1)
    xs = [torch.randn(6, ds.n_features) for _ in range(3)]
    ys = [torch.tensor([0, 1] * 3) for _ in range(3)]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    w_before = weighting.log_variance.detach().clone()
    model.train()
    loss, _ = model.loss(xs, ys, kl_w_weight=1e-3, weighting=weighting, tasks=[1])
    opt.zero_grad()
    loss.backward()
    _step_own_parameters(opt, model, weighting, 1)
    params = dict(model.named_parameters())
    for name in ("classifiers.w_mu", "classifiers.w_rho", "prior.alpha_z", "prior.alpha_w"):
        assert torch.equal(params[name][[0, 2]], before[name][[0, 2]]), name  # other tasks' rows untouched
        assert not torch.equal(params[name][1], before[name][1]), name
    assert not torch.equal(params["encoders.0.trunk.weight"], before["encoders.0.trunk.weight"])
    assert torch.equal(weighting.log_variance[[0, 2]], w_before[[0, 2]])


def test_per_task_optimiser_trains_and_is_seeded():
    ds = tiny_domains()
    config = VariationalConfig(iterations=8, eval_every=4, hidden=6, latent=4, optimiser="per-task",
                               kl_w_warmup_unit="task-step", n_w_samples=1)  # fmt: skip
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = make_model("vmtl-ac", ds.n_features, 2, ds.n_tasks, hidden=6, latent=4)
        fit = fit_variational(model, ds, config, seed=3)
        runs.append([h["loss"] for h in fit.history])
        assert fit.history[-1]["kl_w_weight"] == 0.0  # 8 iterations: no warm-up step yet
    assert runs[0] == runs[1] and all(np.isfinite(runs[0]))
    assert VariationalConfig(kl_w_warmup_unit="task-step").kl_w_weight(20, 3) == pytest.approx(6e-6)


def test_kl_w_final_ramps_to_its_value_at_the_last_iteration():
    config = VariationalConfig(kl_w_final=6e-3)  # 600 iterations, a step every 10
    assert config.kl_w_weight(0, 4) == 0.0
    assert config.kl_w_weight(300, 4) == pytest.approx(3e-3)
    assert config.kl_w_weight(600, 4) == pytest.approx(6e-3)
    assert config.kl_w_weight(609, 4) == pytest.approx(6e-3)  # the ramp ends; it never overshoots
    assert VariationalConfig(kl_w_final=6e-3, kl_w_max=1e-3).kl_w_weight(600, 4) == pytest.approx(1e-3)
    per_row = VariationalConfig(kl_w_final="1/n", iterations=100)
    assert per_row.kl_w_weight(100, 3, [10, 20, 40]) == pytest.approx([0.1, 0.05, 0.025])
    assert per_row.kl_w_weight(50, 3, [10, 20, 40]) == pytest.approx([0.05, 0.025, 0.0125])
    with pytest.raises(ValueError, match="needs every task's number of training rows"):
        per_row.kl_w_weight(50, 3)
    for bad in ("1/N", -1.0, float("nan"), True):
        with pytest.raises(ValueError, match="kl_w_final must be"):
            VariationalConfig(kl_w_final=bad)


def test_kl_w_final_from_compare_settings_and_unchanged_default_keys():
    assert make_config(FitOptions(settings={"kl_w_final": "1/n"})).kl_w_final == "1/n"
    assert make_config(FitOptions(settings={"kl_w_final": 6e-3})).kl_w_final == 6e-3
    with pytest.raises(ValueError, match="kl_w_final must be"):
        make_config(FitOptions(settings={"kl_w_final": "half"}))
    with pytest.raises(ValueError, match="takes a number"):
        make_config(FitOptions(settings={"patience": "ten"}))  # other optional fields still take numbers only
    from negtransfer.train.config import config_hash

    assert "kl_w_final" not in VariationalConfig().hash_fields()  # stored runs from before the field keep their keys
    assert config_hash(VariationalConfig()) != config_hash(VariationalConfig(kl_w_final=6e-3))


def test_per_task_kl_weight_weights_each_tasks_kl():
    ds = tiny_domains()
    xs = [torch.randn(6, ds.n_features) for _ in range(3)]
    ys = [torch.tensor([0, 1] * 3) for _ in range(3)]
    torch.manual_seed(0)
    model = make_model("vmtl", ds.n_features, 2, ds.n_tasks, hidden=6, latent=4)
    model.eval()  # posterior means: the loss is a deterministic function of the weights

    def loss(beta):
        torch.manual_seed(1)
        return float(model.loss(xs, ys, kl_w_weight=beta)[0].detach())

    base, parts = loss(0.0), model.loss(xs, ys, kl_w_weight=0.0)[1]
    assert parts["kl_w"] > 0
    with torch.no_grad():
        kl = [float(model._kl_w(t, [model.classifiers(s) for s in range(3)], 1.0)) for t in range(3)]
    assert loss([0.5, 0.0, 0.0]) - base == pytest.approx(0.5 * kl[0] / 3, rel=1e-4)
    expected = sum(b * k for b, k in zip([0.1, 0.2, 0.3], kl, strict=True)) / 3
    assert loss([0.1, 0.2, 0.3]) - base == pytest.approx(expected, rel=1e-4)
    assert loss(0.2) == pytest.approx(loss([0.2, 0.2, 0.2]), rel=1e-6)
