"""VMTL family: KL closed forms, Gumbel-Softmax weights, test-time posterior means, short training runs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from negtransfer.data.dataset import TEST, TRAIN
from negtransfer.data.domains import dataset_from_domains
from negtransfer.models.vmtl import MODEL_PRESETS, make_model, make_weighting
from negtransfer.nn.vmtl import (
    BayesianLinear,
    GaussianClassifiers,
    GaussianEncoder,
    MixturePrior,
    PointClassifiers,
    PointEncoder,
    VariationalMultiTaskNet,
    gaussian_kl,
    gumbel_softmax_weights,
)
from negtransfer.train.variational import (
    VariationalConfig,
    entropy_ratio,
    evaluate_model,
    fgsm_accuracy,
    fit_variational,
)

torch.set_num_threads(1)


def tiny_domains(seed=0, n=60, d=6, n_classes=3, n_tasks=3):
    """Related domains: one class-mean structure, a per-domain shift."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, d)) * 2
    domains = {}
    for t in range(n_tasks):
        y = np.arange(n) % n_classes
        X = centres[y] + rng.normal(size=(n, d)) + 0.5 * t
        domains[f"dom{t}"] = (X, y)
    return dataset_from_domains(domains, seed=seed)


def batch(ds, split_code=TRAIN):
    xs, ys = [], []
    for t in range(ds.n_tasks):
        rows = (ds.split == split_code) & (ds.row_task == t)
        xs.append(torch.from_numpy(ds.X[rows]))
        ys.append(torch.from_numpy(ds.Y[rows, t].astype(np.int64)))
    return xs, ys


# ---------------------------------------------------------------- KL terms
def test_gaussian_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu_q, mu_p = torch.randn(50, generator=g), torch.randn(50, generator=g)
    var_q, var_p = torch.rand(50, generator=g) + 0.1, torch.rand(50, generator=g) + 0.1
    ours = gaussian_kl(mu_q, var_q, mu_p, var_p)
    ref = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu_q, var_q.sqrt()), torch.distributions.Normal(mu_p, var_p.sqrt())
    )
    assert torch.allclose(ours, ref, atol=1e-5)
    assert torch.allclose(gaussian_kl(mu_q, var_q, mu_q, var_q), torch.zeros(50), atol=1e-6)


def test_normal_prior_kl_terms_equal_the_closed_form_of_the_parameters():
    ds = tiny_domains()
    torch.manual_seed(0)
    model = make_model("vbmtl", ds.n_features, 3, ds.n_tasks, hidden=8, latent=5)
    xs, ys = batch(ds)
    _, parts = model.loss(xs, ys, kl_z_weight=0.0, kl_w_weight=0.0)
    # w: KL[N(M_t, S_t) || N(0, 1)] summed over entries, averaged over tasks
    var = torch.nn.functional.softplus(model.classifiers.w_rho) ** 2 + 1e-8
    kl_w = 0.5 * (var + model.classifiers.w_mu**2 - 1 - torch.log(var)).sum() / ds.n_tasks
    assert math.isclose(parts["kl_w"], float(kl_w.detach()), rel_tol=1e-4)
    # z: batch mean of KL[q(z|x) || N(0, I)] summed over z's dimensions (dropout off for a fixed q)
    model.encoders[0].dropout.p = 0.0
    _, parts = model.loss(xs, ys)
    expected = 0.0
    for x in xs:
        m, v = model.encoders[0](x)
        expected += float(torch.distributions.kl_divergence(
            torch.distributions.Normal(m, v.sqrt()), torch.distributions.Normal(0.0, 1.0)).sum(1).mean().detach())
    assert math.isclose(parts["kl_z"], expected / ds.n_tasks, rel_tol=1e-4)


def test_mixture_prior_kl_uses_the_other_tasks_posteriors():
    ds = tiny_domains()
    torch.manual_seed(0)
    model = make_model("vmtl-mean-prior", ds.n_features, 3, ds.n_tasks, hidden=8, latent=5)
    xs, ys = batch(ds)
    _, parts = model.loss(xs, ys)
    mu = model.classifiers.w_mu.detach()
    var = torch.nn.functional.softplus(model.classifiers.w_rho.detach()) ** 2 + 1e-8
    expected = 0.0
    for t in range(3):
        others = [i for i in range(3) if i != t]
        p_mean = sum(mu[i] for i in others) / 2
        p_var = sum(var[i] for i in others) / 4 + 1e-8
        expected += float(gaussian_kl(mu[t], var[t], p_mean, p_var).sum())
    assert math.isclose(parts["kl_w"], expected / 3, rel_tol=1e-4)


def test_bayesian_linear_local_reparameterisation_moments():
    torch.manual_seed(0)
    layer = BayesianLinear(4, 3, init_std=0.3)
    x = torch.randn(2, 4)
    mean, var = layer(x)
    # Monte Carlo over weight samples: x W has mean x M + b and variance x^2 S
    eps = torch.randn(20000, 4, 3)
    w = layer.weight_mu.detach() + layer.weight_var.detach().sqrt() * eps
    out = torch.einsum("bi,sio->sbo", x, w) + layer.bias.detach()
    assert torch.allclose(out.mean(0), mean.detach(), atol=0.03)
    assert torch.allclose(out.var(0), var.detach(), rtol=0.05, atol=1e-3)


# ---------------------------------------------------------------- Gumbel-Softmax
def test_gumbel_softmax_weights_sum_to_one_and_sharpen_as_temperature_falls():
    logits = torch.tensor([[0.3, -0.2, 0.1, 0.0]] * 200)
    entropies = []
    for tau in (5.0, 1.0, 0.5, 0.1):
        pi = gumbel_softmax_weights(logits, tau, generator=torch.Generator().manual_seed(7))  # same noise
        assert torch.allclose(pi.sum(-1), torch.ones(200), atol=1e-6)
        assert (pi >= 0).all()
        entropies.append(float(-(pi * pi.clamp_min(1e-12).log()).sum(-1).mean()))
    assert all(a > b for a, b in itertools.pairwise(entropies))
    assert entropies[-1] < 0.2 * math.log(4)  # close to one-hot at tau = 0.1
    # without noise: softmax(alpha / tau)
    assert torch.allclose(gumbel_softmax_weights(logits[:1], 1.0, noise=False), torch.softmax(logits[:1], -1))
    with pytest.raises(ValueError):
        gumbel_softmax_weights(logits, 0.0)


def test_prior_weight_kinds():
    model = make_model("vmtl", 4, 3, 4, hidden=4, latent=4)
    model.train()
    w1, w2 = model.mixture_weights(0, "w", 1.0), model.mixture_weights(0, "w", 1.0)
    assert w1.shape == (3,) and not torch.allclose(w1, w2)  # Gumbel noise while training
    # separate prior logits for z and w (one shared set only in vmtl-same-weights)
    assert isinstance(model.alpha_w, torch.nn.Parameter) and isinstance(model.alpha_z, torch.nn.Parameter)
    assert make_model("vmtl-same-weights", 4, 3, 4, hidden=4, latent=4).alpha_w is None
    assert make_model("vmtl-same-weights", 4, 3, 4).alpha_w is None
    mean = make_model("vmtl-mean-prior", 4, 3, 4).mixture_weights(1, "z", 1.0)
    assert torch.allclose(mean, torch.full((3,), 1 / 3))
    learn = make_model("vmtl-learnable-prior", 4, 3, 4)
    with torch.no_grad():
        learn.alpha_z[2] = torch.tensor([1.0, 0.0, -1.0])
    assert torch.allclose(learn.mixture_weights(2, "z", 0.5), torch.softmax(torch.tensor([1.0, 0.0, -1.0]), 0))


# ---------------------------------------------------------------- test time
@pytest.mark.parametrize("name", ["vmtl", "vmtl-ac", "vstl"])
def test_eval_mode_predicts_with_posterior_means(name):
    ds = tiny_domains()
    torch.manual_seed(0)
    model = make_model(name, ds.n_features, 3, ds.n_tasks, hidden=8, latent=5, init_std=0.5)
    xs, ys = batch(ds)
    model.set_class_prototypes(xs, ys)
    model.train()
    l1, _ = model.loss(xs, ys)
    l2, _ = model.loss(xs, ys)
    assert not torch.isclose(l1, l2)  # stochastic objective while training
    model.eval()
    x = xs[1]
    a, b = model(x, 1), model(x, 1)
    assert torch.equal(a, b)
    enc = model.encoders[0 if model.shared_encoder else 1]
    z_mean = enc.head(torch.nn.functional.elu(enc.trunk(x)))[0]
    clf = model.classifiers
    if clf.has_bias:  # VMTL-AC: weights and a bias row from the running class centres
        w = clf.net(clf.centres[1])[0]
        b = clf.bias_net(clf.centres[1])[0]
        assert torch.allclose(a, z_mean @ w + b, atol=1e-5)
    else:
        assert torch.allclose(a, z_mean @ clf.w_mu[1], atol=1e-5)


# ---------------------------------------------------------------- training
@pytest.mark.parametrize("name", sorted(MODEL_PRESETS))
def test_every_model_trains_a_few_steps(name):
    ds = tiny_domains(n=30)
    torch.manual_seed(0)
    model = make_model(name, ds.n_features, 3, ds.n_tasks, hidden=8, latent=6)
    before = [p.detach().clone() for p in model.parameters()]
    fit = fit_variational(model, ds, VariationalConfig(iterations=6, eval_every=3, hidden=8, latent=6), seed=0,
                          weighting=make_weighting(name, ds.n_tasks))
    assert all(np.isfinite(h["loss"]) for h in fit.history)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert all(s is not None for s in fit.best_states)
    metrics = evaluate_model(fit, ds, fgsm_epsilons=(0.0, 0.5))
    assert set(metrics["accuracy"]) == {"dom0", "dom1", "dom2", "average"}
    assert metrics["fgsm_accuracy@0"] == metrics["accuracy"]


@pytest.mark.slow  # over 5 s: the default suite stays under 2 minutes
def test_vmtl_learns_tiny_related_domains_and_is_seeded():
    ds = tiny_domains(n=90)
    config = VariationalConfig(iterations=150, eval_every=25, hidden=16, latent=8)
    runs = []
    for _ in range(2):
        torch.manual_seed(0)
        model = make_model("vmtl", ds.n_features, 3, ds.n_tasks, hidden=16, latent=8)
        runs.append(evaluate_model(fit_variational(model, ds, config, seed=0), ds)["accuracy"])
    assert runs[0] == runs[1]
    assert runs[0]["average"] > 0.6  # chance is 1/3


def test_constructor_and_config_validation():
    with pytest.raises(ValueError, match="unknown model"):
        make_model("nope", 3, 2, 2)
    per_task = [GaussianEncoder(3, 4, 4) for _ in range(2)]
    with pytest.raises(ValueError, match="one shared encoder"):
        VariationalMultiTaskNet(per_task, GaussianClassifiers(2, 4, 2), prior=MixturePrior(2))
    with pytest.raises(ValueError, match="point-estimate classifiers"):
        from negtransfer.nn.vmtl import TaskCovariancePrior

        VariationalMultiTaskNet(PointEncoder(3, 4, 4), GaussianClassifiers(2, 4, 2), output_prior=TaskCovariancePrior())
    with pytest.raises(ValueError, match="mixture weights"):
        MixturePrior(2, "uniform")
    with pytest.raises(ValueError, match="at least two tasks"):
        MixturePrior(1)
    with pytest.raises(ValueError, match="one shared encoder or one per task"):
        VariationalMultiTaskNet([PointEncoder(3, 4, 4)] * 3, PointClassifiers(2, 4, 2))
    with pytest.raises(ValueError):
        VariationalConfig(iterations=0)
    cfg = VariationalConfig(temperature_decay=0.01)
    assert cfg.temperature(0) == 1.0 and cfg.temperature(10**6) == 0.5
    assert cfg.kl_w_weight(9) == 0.0 and math.isclose(cfg.kl_w_weight(25), 2e-6)


# ---------------------------------------------------------------- metrics
def test_entropy_ratio_on_known_predictions():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5], [0.6, 0.4]])
    y = np.array([0, 0, 1, 1])  # the last two are wrong

    def h(p):
        return -(p * np.log(p)).sum()

    expected = np.mean([h(probs[2]), h(probs[3])]) / h(probs[0])
    assert math.isclose(entropy_ratio(probs, y), expected, rel_tol=1e-9)
    assert math.isnan(entropy_ratio(probs[:2], y[:2]))  # nothing misclassified


def test_fgsm_lowers_accuracy_of_a_linear_model():
    ds = tiny_domains(n=90)
    torch.manual_seed(0)
    model = make_model("bmtl", ds.n_features, 3, ds.n_tasks, hidden=16, latent=8)
    fit_variational(model, ds, VariationalConfig(iterations=150, eval_every=50, hidden=16, latent=8), seed=0)
    xs, ys = batch(ds, TEST)
    acc = fgsm_accuracy(model, xs[0], ys[0], 0, (0.0, 0.5, 2.0))
    assert acc[0.0] >= acc[0.5] >= acc[2.0] and acc[2.0] < acc[0.0]


def test_batches_balanced_per_class_or_uniform():
    from negtransfer.train.variational import _balanced_batch, _uniform_batch

    y = torch.tensor([0] * 90 + [1] * 10)
    x = torch.arange(100, dtype=torch.float32)[:, None]
    gen = torch.Generator().manual_seed(0)
    _, by = _balanced_batch([x], [y], 50, gen)
    assert int((by[0] == 1).sum()) == 50 and len(by[0]) == 100  # 50 per class, drawn with replacement
    _, by = _uniform_batch([x], [y], 2000, gen)
    assert 0.05 < float((by[0] == 1).float().mean()) < 0.15  # keeps the 10% class frequency
    ds = tiny_domains(n=30)
    torch.manual_seed(0)
    model = make_model("vmtl", ds.n_features, 3, ds.n_tasks, hidden=8, latent=6)
    fit = fit_variational(model, ds, VariationalConfig(iterations=4, eval_every=2, balanced_batches=False), seed=0)
    assert np.isfinite(fit.history[-1]["loss"])


def test_patience_stops_once_no_task_improves():
    ds = tiny_domains(n=30)
    torch.manual_seed(0)
    model = make_model("bmtl", ds.n_features, 3, ds.n_tasks, hidden=8, latent=6)
    config = VariationalConfig(iterations=400, eval_every=5, patience=2, hidden=8, latent=6)
    fit = fit_variational(model, ds, config, seed=0)
    assert fit.steps_run < 400 and fit.steps_run == 5 * fit.rounds_run  # stopped early, at an evaluation
    assert max(fit.best_at) <= fit.steps_run - 2 * 5  # the last two evaluations improved no task


# ---------------------------------------------------------------- VMTL-AC (official-code behaviour)
def test_amortised_classifiers_keep_running_class_centres_without_mixing_classes():
    from negtransfer.nn.vmtl import AmortisedClassifiers

    clf = AmortisedClassifiers(2, 3, 3, hidden=4, latent=5)
    x1 = torch.tensor([[1.0, 0, 0], [3.0, 0, 0], [0, 2.0, 0]])
    y1 = torch.tensor([0, 0, 1])
    clf.observe(0, x1, y1)
    assert torch.allclose(clf.centres[0, 0], torch.tensor([2.0, 0, 0]))
    assert torch.allclose(clf.centres[0, 1], torch.tensor([0, 2.0, 0]))
    assert torch.all(clf.centres[0, 2] == 0)  # never seen: the initial centre, not another class's rows
    x2 = torch.tensor([[5.0, 0, 0], [0, 0, 7.0]])
    clf.observe(0, x2, torch.tensor([0, 2]))  # class 1 absent from this batch
    assert torch.allclose(clf.centres[0, 0], torch.tensor([3.0, 0, 0]))  # (1 + 3 + 5) / 3: every row seen
    assert torch.allclose(clf.centres[0, 1], torch.tensor([0, 2.0, 0]))  # kept its running centre
    assert torch.allclose(clf.centres[0, 2], torch.tensor([0, 0, 7.0]))
    assert torch.all(clf.centres[1] == 0)  # another task's centres are its own


def test_vmtl_ac_trains_and_tests_on_the_running_centres():
    ds = tiny_domains()
    torch.manual_seed(0)
    model = make_model("vmtl-ac", ds.n_features, 3, ds.n_tasks, hidden=8, latent=5)
    xs, ys = batch(ds)
    half = [x[: len(x) // 2] for x in xs], [y[: len(y) // 2] for y in ys]
    model.train()
    model.loss(*half)
    model.loss(xs, ys)  # second batch: the centres average both
    clf = model.classifiers
    expected = torch.stack([(half[0][1][half[1][1] == c].sum(0) + xs[1][ys[1] == c].sum(0))
                            / ((half[1][1] == c).sum() + (ys[1] == c).sum()) for c in range(3)])  # fmt: skip
    assert torch.allclose(clf.centres[1], expected, atol=1e-5)
    model.eval()
    before = clf.centres.clone()
    model.loss(xs, ys)  # evaluation never moves the centres
    assert torch.equal(clf.centres, before)
    assert not any(isinstance(m, torch.nn.Dropout) for m in clf.modules())  # no dropout on class centres
    model.train()
    w1, w2 = clf(0), clf(0)
    assert torch.equal(w1[0], w2[0])


def test_vmtl_ac_has_a_classifier_bias():
    torch.manual_seed(1)
    model = make_model("vmtl-ac", 6, 3, 2, hidden=8, latent=5)
    mean, var = model.classifiers(0)
    assert mean.shape == var.shape == (6, 3)  # latent + 1 rows: the last is the bias
    assert model.classifiers.bias_net is not None
    no_bias = make_model("vmtl-ac", 6, 3, 2, hidden=8, latent=5, classifier_bias=False)
    assert no_bias.classifiers(0)[0].shape == (5, 3) and not no_bias.classifiers.has_bias
    model.eval()
    x = torch.randn(4, 6)
    z = model.encoders[0](x)[0]
    w, _ = model.classifiers(0)
    assert torch.allclose(model(x, 0), z @ w[:-1] + w[-1], atol=1e-5)


def test_logit_samples_m_is_an_option():
    assert make_model("vmtl", 4, 3, 2, n_w_samples=1).n_w_samples == 1
    assert make_model("vmtl", 4, 3, 2).n_w_samples == 10
    assert make_model("vmtl", 4, 3, 2, n_w_samples=1).n_z_samples == 10
