"""TP-AMTL / P-AMTL: shapes, masking, temporal constraint, variance estimate, training of every catalogued model."""

import numpy as np
import pytest
import torch

from negtransfer.data.dataset import MultiTaskDataset, TaskSpec
from negtransfer.data.timeseries import timeseries_dataset
from negtransfer.models.clinical import CLINICAL_MODELS, build_model, model_weighting
from negtransfer.nn.amtl import (
    PAMTL,
    TPAMTL,
    TRANSFER_MODES,
    UNCERTAINTY_MODES,
    ProbabilisticTaskFeatures,
    mc_variance,
    transfer_mask,
)
from negtransfer.train.temporal import TemporalTrainConfig, fit, masked_bce

torch.set_num_threads(1)


def tiny_sequences(n=48, t=6, f=4, d=3, seed=0):
    """Sequences whose task labels depend on the mean of one feature each (learnable)."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, t, f))
    lengths = rng.integers(2, t + 1, size=n)
    for r, length in enumerate(lengths):
        values[r, length:] = np.nan
    values[rng.random(values.shape) < 0.1] = np.nan
    means = np.nanmean(values, axis=1)
    labels = np.stack([(np.nan_to_num(means[:, k % f]) > 0).astype(float) for k in range(d)], axis=1)
    labels[rng.random(labels.shape) < 0.15] = np.nan
    return timeseries_dataset(values, labels, task_names=[f"t{k}" for k in range(d)],
                              feature_names=[f"x{k}" for k in range(f)], lengths=lengths, seed=seed,
                              fractions=(0.6, 0.2, 0.2))  # fmt: skip


def tiny_rows(n=90, f=10, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)).astype(np.float32)
    Y = (X[:, :d] > 0).astype(np.float32)
    Y[rng.random(Y.shape) < 0.2] = np.nan
    split = np.array([0, 0, 0, 1, 2] * (n // 5), dtype=np.int8)
    tasks = tuple(TaskSpec(f"t{k}", "binary", (0, 1)) for k in range(d))
    return MultiTaskDataset("rows", tasks, X, Y, split, tuple(f"x{i}" for i in range(f)))


def seeded(fn, seed=0):
    torch.manual_seed(seed)
    return fn()


@pytest.mark.parametrize("transfer", TRANSFER_MODES)
def test_tpamtl_shapes_for_every_transfer_mode(transfer):
    model = TPAMTL(n_features=4, n_tasks=3, hidden=8, transfer=transfer)
    x = torch.randn(5, 6, 4)
    logits = model(x, torch.ones(5, 6, dtype=torch.bool), return_details=True)
    assert logits.shape == (5, 3)
    d = model.last_details
    assert d["alpha"].shape == (5, 6, 6, 3, 3)
    assert d["variance"].shape == d["features"].shape == d["combined"].shape == (5, 6, 3, 8)
    allowed = transfer_mask(6, 3, transfer)
    assert torch.all(d["alpha"][:, ~allowed] == 0)
    if transfer != "none":
        assert torch.all(d["alpha"][:, allowed] > 0)  # softplus weights are positive where allowed


def test_transfer_masks_mean_what_their_names_say():
    full = transfer_mask(4, 2, "full")
    assert full[2, 1, 0, 1] and full[2, 2, 1, 0] and not full[1, 2, 0, 0]
    assert not transfer_mask(4, 2, "intra-task")[2, 1, 0, 1] and transfer_mask(4, 2, "intra-task")[2, 1, 1, 1]
    same = transfer_mask(4, 2, "same-step")
    assert same[3, 3, 0, 1] and not same[3, 2, 0, 1]
    back = transfer_mask(4, 2, "future-to-past")
    assert back[1, 3, 0, 1] and not back[3, 1, 0, 1]
    assert not transfer_mask(4, 2, "none").any() and transfer_mask(4, 2, "all-steps").all()
    with pytest.raises(ValueError, match="transfer must be one of"):
        transfer_mask(4, 2, "sideways")


def _details(model, x, mask):
    torch.manual_seed(0)
    logits = model(x, mask, return_details=True)
    return logits, dict(model.last_details)


def test_no_transfer_from_future_steps_unless_unconstrained():
    torch.manual_seed(1)
    x = torch.randn(3, 6, 4)
    mask = torch.ones(3, 6, dtype=torch.bool)
    later = x.clone()
    later[:, 4] += 5.0  # perturb step 4
    for transfer, changes_earlier in (("full", False), ("future-to-past", True), ("all-steps", True)):
        torch.manual_seed(2)
        model = TPAMTL(4, 3, transfer=transfer)
        _, before = _details(model, x, mask)
        _, after = _details(model, later, mask)
        same_early = torch.allclose(before["combined"][:, :4], after["combined"][:, :4])
        assert same_early != changes_earlier, transfer
        # the transfer weights into steps 0..3 never involve source step 4 under the default constraint
        if transfer == "full":
            assert torch.equal(before["alpha"][:, :4], after["alpha"][:, :4])
            assert torch.all(before["alpha"][:, :4, 4:] == 0)


def test_padding_steps_do_not_change_the_prediction():
    torch.manual_seed(3)
    x = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    noisy = x.clone()
    noisy[~mask] = 100.0
    for transfer in ("full", "future-to-past"):
        torch.manual_seed(4)
        model = TPAMTL(4, 2, transfer=transfer)
        a, _ = _details(model, x, mask)
        b, _ = _details(model, noisy, mask)
        assert torch.allclose(a, b, atol=1e-6)


def test_missing_label_gives_no_loss_and_no_gradient():
    torch.manual_seed(5)
    model = TPAMTL(4, 3)
    x = torch.randn(8, 5, 4)
    labels = torch.randint(0, 2, (8, 3)).float()
    labels[:, 1] = float("nan")  # task 1 unlabelled in the whole batch
    labels[0, 2] = float("nan")
    logits = model(x)
    losses, present = masked_bce(logits, labels)
    assert present.tolist() == [True, False, True]
    assert losses[1] == 0
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[1:, 2], labels[1:, 2])
    assert torch.allclose(losses[2], expected)
    (losses * present).sum().backward()
    grad = model.output.weight.grad
    assert torch.all(grad[1] == 0) and torch.all(model.output.bias.grad[1] == 0)
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0


def test_mc_variance_matches_direct_computation():
    torch.manual_seed(6)
    layer = torch.nn.Dropout(0.5)
    x = torch.randn(4, 7)
    torch.manual_seed(7)
    estimate = mc_variance(lambda: layer(x), 6)
    torch.manual_seed(7)
    draws = np.stack([layer(x).numpy() for _ in range(6)])
    np.testing.assert_allclose(estimate.numpy(), draws.var(axis=0), rtol=1e-5, atol=1e-7)


def test_model_variance_is_the_variance_of_extra_mc_passes():
    torch.manual_seed(8)
    model = TPAMTL(4, 2, n_variance_samples=5)
    x = torch.randn(3, 4, 4)
    torch.manual_seed(9)
    model(x, return_details=True)
    reported = model.last_details["variance"]
    torch.manual_seed(9)
    with torch.no_grad():
        model.task_features(model.shared(x)[1])  # the pass that gives the features
        draws = torch.stack([model.task_features(model.shared(x)[1])[0] for _ in range(5)])
    assert torch.allclose(reported, draws.var(0, unbiased=False), atol=1e-6)
    assert torch.all(reported > 0)


def test_aleatoric_variance_estimate_recovers_learned_sigma():
    torch.manual_seed(10)
    model = TPAMTL(4, 2, uncertainty="aleatoric")  # no dropout: variance is sigma^2 alone
    r = model.shared(torch.randn(2, 3, 4))[1].detach()
    _, _, sigma = model.task_features(r)
    estimate = mc_variance(lambda: model.task_features(r)[0], 3000)
    np.testing.assert_allclose(estimate.numpy(), (sigma.detach() ** 2).numpy(), rtol=0.12, atol=1e-4)
    det = TPAMTL(4, 2, uncertainty="deterministic")
    det(torch.randn(2, 3, 4), return_details=True)
    assert torch.all(det.last_details["variance"] == 0)


def test_pamtl_transfers_only_between_different_tasks():
    torch.manual_seed(11)
    model = PAMTL(10, 4, hidden=16)
    logits = model(torch.randn(6, 10), return_details=True)
    assert logits.shape == (6, 4)
    alpha = model.last_details["alpha"]
    assert alpha.shape == (6, 4, 4)
    assert torch.all(torch.diagonal(alpha, dim1=1, dim2=2) == 0)
    assert torch.all(alpha + torch.eye(4) > 0)
    with pytest.raises(ValueError, match="batch, features"):
        model(torch.randn(2, 3, 10))


def test_bad_parameters_are_refused_with_the_options():
    with pytest.raises(ValueError, match="uncertainty must be one of"):
        TPAMTL(4, 2, uncertainty="bayesian")
    with pytest.raises(ValueError, match="n_tasks"):
        TPAMTL(4, 0)
    with pytest.raises(ValueError, match="dropout"):
        TPAMTL(4, 2, dropout=1.0)
    assert set(UNCERTAINTY_MODES) == {"both", "epistemic", "aleatoric", "deterministic"}


@pytest.mark.parametrize("name", list(CLINICAL_MODELS))
def test_every_model_trains_and_its_loss_decreases(name):
    spec = CLINICAL_MODELS[name]
    ds = tiny_sequences() if spec.temporal else tiny_rows()
    tasks = [0] if spec.single_task else list(range(ds.n_tasks))
    torch.manual_seed(0)
    model = build_model(name, ds.X.shape[-1], len(tasks))
    config = TemporalTrainConfig(max_epochs=12, patience=12, batch_size=16, mc_samples=2, validation_mc_samples=1)
    trained = fit(model, ds, task_indices=tasks, config=config, seed=0,
                  weighting=model_weighting(name, model, len(tasks)))
    losses = [h["train_loss"] for h in trained.history]
    assert len(losses) == 12 and np.all(np.isfinite(losses))
    assert np.mean(losses[-5:]) < np.mean(losses[:3])
    assert 1 <= trained.best_epoch <= 12


def test_loss_based_amtl_tracks_running_task_losses():
    from negtransfer.nn.amtl import LossBasedAMTL

    model = LossBasedAMTL(10, 3, hidden=8, momentum=0.5)
    start = model.average_loss.clone()
    total = model.combine_task_losses(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([True, False, True]))
    assert total.item() == pytest.approx(4.0)
    assert model.average_loss[0].item() == pytest.approx(0.5 * start[0].item() + 0.5)
    assert model.average_loss[1] == start[1]  # absent task: unchanged
    alpha = model.transfer_weights()
    assert torch.all(torch.diagonal(alpha) == 0) and torch.all(alpha + torch.eye(3) > 0)


def test_amtl_lstm_penalises_outgoing_transfer_of_high_loss_tasks():
    from negtransfer.nn.clinical_baselines import AMTLLSTM

    model = AMTLLSTM(4, 2, mu=10.0, lam=1.0, gamma=0.0)
    present = torch.tensor([True, True])
    low_first = model.combine_task_losses(torch.tensor([0.1, 1.0]), present)
    model.zero_grad()
    low_first.backward()
    grad = model.transfer_logits.grad
    # the edge out of the high-loss task (row 1) is pushed down harder than the edge out of the low-loss task
    assert grad[1, 0] > grad[0, 1] > 0


def _task_feature_grads(model, task):
    """Gradients of task ``task``'s own feature and variance layers (every TaskLinear slice)."""
    layers = [model.task_features.base, model.task_features.mean1, model.task_features.mean2,
              model.task_features.scale1, model.task_features.scale2]
    out = []
    for layer in layers:
        out += [layer.weight.grad[task], layer.bias.grad[task]]
    return out


@pytest.mark.parametrize("noise", ["dropout", "dropconnect"])
def test_one_tasks_loss_leaves_other_tasks_features_untouched(noise):
    """Official code: the transfer path is stop-gradient; task 0's loss cannot train tasks 1 and 2's own layers."""
    torch.manual_seed(12)
    model = TPAMTL(4, 3, noise=noise)
    x = torch.randn(6, 5, 4)
    model(x)[:, 0].sum().backward()
    for task in (1, 2):
        assert all(torch.all(g == 0) for g in _task_feature_grads(model, task)), task
    assert any(g.abs().sum() > 0 for g in _task_feature_grads(model, 0))
    assert model.transfer_net.w_target.grad[0].abs().sum() > 0  # F into task 0 is trained
    assert torch.all(model.transfer_net.w_target.grad[1:] == 0)
    assert model.transfer_net.g1.weight.grad[1].abs().sum() > 0  # G1 of a source still learns
    # the earlier behaviour (only F's source inputs detached) leaks into the other tasks
    torch.manual_seed(12)
    leaky = TPAMTL(4, 3, noise=noise, stop_gradient=False)
    leaky(x)[:, 0].sum().backward()
    assert any(g.abs().sum() > 0 for g in _task_feature_grads(leaky, 1))


def test_pamtl_stop_gradient_isolates_the_other_tasks():
    torch.manual_seed(13)
    model = PAMTL(10, 3, hidden=8)
    model(torch.randn(5, 10))[:, 2].sum().backward()
    for task in (0, 1):
        assert all(torch.all(g == 0) for g in _task_feature_grads(model, task))


def test_dropconnect_draws_one_weight_mask_per_pass():
    torch.manual_seed(14)
    feats = ProbabilisticTaskFeatures(2, 4, 4, dropout=0.5, sample_latent=False, dropconnect=True)
    feats.train()
    row = torch.randn(1, 4)
    x = row.expand(6, 4)  # six identical rows: one mask per pass gives them identical outputs
    _, mu, _ = feats(x)
    assert torch.allclose(mu, mu[:1].expand_as(mu))
    _, mu2, _ = feats(x)
    assert not torch.allclose(mu, mu2)  # the next pass draws new masks
    act = ProbabilisticTaskFeatures(2, 4, 4, dropout=0.5, sample_latent=False)
    act.train()
    _, mu3, _ = act(x)
    assert not torch.allclose(mu3, mu3[:1].expand_as(mu3))  # activation dropout: a mask per row
    feats.eval()
    assert torch.equal(feats(x)[1], feats(x)[1])
    with pytest.raises(ValueError, match="noise must be one of"):
        TPAMTL(4, 2, noise="gaussian")


def test_l2_covers_the_base_network_only():
    from negtransfer.train.temporal import parameter_groups

    model = TPAMTL(4, 2)
    penalised = {id(p) for p in model.l2_parameters()}
    assert id(model.embed.weight) in penalised and id(model.task_features.scale2.weight) in penalised
    assert id(model.rnn.weight_hh_l0) in penalised and id(model.rnn.bias_hh_l0) not in penalised
    assert id(model.transfer_net.w_target) not in penalised and id(model.output.weight) not in penalised
    assert id(model.task_features.base.bias) not in penalised
    groups = parameter_groups(model, [], 2e-4, "model")
    assert [g["weight_decay"] for g in groups] == [2e-4, 0.0]
    assert {id(p) for p in groups[0]["params"]} == penalised
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    (everything,) = parameter_groups(model, [], 2e-4, "all")
    assert len(everything["params"]) == len(list(model.parameters()))
    # one step on zero data-gradients: only the penalised weights move
    opt = torch.optim.Adam(groups, lr=0.1)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert "embed.weight" in moved and "output.weight" not in moved and "transfer_net.w2" not in moved


def test_validation_uses_as_many_mc_passes_as_test_unless_told():
    assert TemporalTrainConfig(mc_samples=7).validation_passes == 7
    assert TemporalTrainConfig(mc_samples=7, validation_mc_samples=2).validation_passes == 2
    with pytest.raises(ValueError, match="l2 must be one of"):
        TemporalTrainConfig(l2="biases")


def test_public_lstm_baseline_has_the_attention_head():
    from negtransfer.nn.clinical_baselines import AttentionLSTM

    torch.manual_seed(15)
    model = AttentionLSTM(4, 3)
    assert model.rnn.num_layers == 2 and model.rnn.hidden_size == 8
    x = torch.randn(2, 6, 4)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [1] * 6], dtype=torch.bool)
    noisy = x.clone()
    noisy[~mask] = 50.0
    assert torch.allclose(model(x, mask), model(noisy, mask), atol=1e-6)  # padding is ignored
    assert all("weight" in n for n, p in model.named_parameters() if any(p is q for q in model.l2_parameters()))
