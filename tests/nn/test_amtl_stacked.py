"""TP-AMTL's and P-AMTL's MC passes stacked along the batch give the numbers of one pass at a time, bit for bit."""

import pytest
import torch
import torch.nn.functional as F

from negtransfer.nn.amtl import PAMTL, TPAMTL, ProbabilisticTaskFeatures

VARIANTS = [{}, {"transfer": "none"}, {"uncertainty": "aleatoric"}, {"uncertainty": "epistemic"},
            {"uncertainty": "deterministic"}, {"transfer": "same-step"}, {"hidden": 16}, {"noise": "dropconnect"}]  # fmt: skip


#: TP-AMTL's stacked passes are exact on one thread only (``negtransfer.nn.amtl._stacking_exact``).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_and_inputs(options, b=27, t=4, f=15, d=5, seed=0):
    torch.manual_seed(seed)
    model = TPAMTL(f, d, **options)
    x = torch.randn(b, t, f)
    step_mask = torch.rand(b, t) < 0.8
    step_mask[:, 0] = True
    return model, x, step_mask


def mc_passes(model, x, step_mask, stacked, passes=7, seed=1):
    """The pass logits of ``mc_logits`` and the random state after it (a probe draw)."""
    model.stack_passes = stacked
    torch.manual_seed(seed)
    logits = model.mc_logits(x, step_mask, passes)
    return logits, torch.rand(3)


@pytest.mark.parametrize("options", VARIANTS)
def test_stacked_mc_logits_equal_one_pass_at_a_time(options):
    model, x, step_mask = model_and_inputs(options)
    assert model._stackable(27, 4) == (options.get("noise") != "dropconnect")  # the stacked path runs (not the fallback)
    stacked, after_stacked = mc_passes(model, x, step_mask, True)
    torch.manual_seed(1)
    with torch.no_grad():
        calls = [model(x, step_mask) for _ in range(7)]
    after_calls = torch.rand(3)
    assert len(stacked) == 7
    for mine, call in zip(stacked, calls, strict=True):
        assert torch.equal(mine, call) and mine.stride() == call.stride()  # same bits, same memory layout
    assert torch.equal(after_stacked, after_calls)  # the same random numbers were consumed
    sequential, _ = mc_passes(model, x, step_mask, False)
    assert all(torch.equal(a, b) for a, b in zip(stacked, sequential, strict=True))


@pytest.mark.parametrize("options", [VARIANTS[0], VARIANTS[2], VARIANTS[3]])  # with variance passes to stack
def test_training_forward_with_stacked_variance_passes_is_unchanged(options):
    model, x, step_mask = model_and_inputs(options, b=16)
    assert model._stackable(16, 4)
    results = {}
    for stacked in (False, True):
        model.stack_passes = stacked
        model.zero_grad()
        torch.manual_seed(2)
        logits = model(x, step_mask, return_details=True)
        logits.sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        results[stacked] = (logits.detach(), model.last_details["variance"], grads, torch.rand(2))
    one, many = results[False], results[True]
    assert torch.equal(one[0], many[0]) and torch.equal(one[1], many[1]) and torch.equal(one[3], many[3])
    assert len(one[2]) == len(many[2]) and all(torch.equal(a, b) for a, b in zip(one[2], many[2], strict=True))
    if options.get("uncertainty") != "deterministic":
        assert torch.all(many[1] > 0)  # the variance passes did draw noise


def reference_task_features(layer: ProbabilisticTaskFeatures, shared: torch.Tensor):
    """The task features as written before the noise was drawn up front: F.dropout and randn_like inline."""
    x = shared.unsqueeze(-2).expand(*shared.shape[:-1], layer.n_tasks, shared.shape[-1])

    def drop(value):
        return F.dropout(value, layer.dropout, training=layer.training) if layer.dropout > 0 else value

    h = F.leaky_relu(layer.base(drop(x)))
    mu = F.leaky_relu(layer.mean2(drop(F.leaky_relu(layer.mean1(drop(h))))))
    sigma = F.softplus(layer.scale2(drop(F.leaky_relu(layer.scale1(drop(h))))))
    return mu + sigma * torch.randn_like(sigma) if layer.sample_latent else mu


@pytest.mark.parametrize("sample_latent,use_dropout", [(True, True), (False, True), (True, False)])
def test_noise_drawn_first_equals_noise_drawn_inline(sample_latent, use_dropout):
    torch.manual_seed(3)
    layer = ProbabilisticTaskFeatures(4, 8, 8, 0.3, sample_latent, use_dropout)
    lstm = torch.nn.LSTM(8, 8, batch_first=True)
    shared, _ = lstm(torch.randn(6, 5, 8))  # step-major memory, as TP-AMTL's features see it
    torch.manual_seed(4)
    expected, after_expected = reference_task_features(layer, shared), torch.rand(2)
    torch.manual_seed(4)
    got, after_got = layer(shared)[0], torch.rand(2)
    assert torch.equal(expected, got) and torch.equal(after_expected, after_got)


def test_the_lstm_output_layout_the_stacked_noise_assumes():
    """TPAMTL.draw_noise lays its masks out for a step-major LSTM output; torch must still give one."""
    torch.manual_seed(5)
    model = TPAMTL(3, 2)
    for grad in (False, True):
        with torch.set_grad_enabled(grad):
            r, _ = model.rnn(torch.randn(7, 4, 8))
        assert r.stride() == torch.empty(4, 7, 8).transpose(0, 1).stride()


def test_unstackable_shapes_fall_back_to_one_pass_at_a_time():
    model, _, _ = model_and_inputs({}, b=3, t=1, d=3, f=4)  # 3 x 1 x 3 x 8 = 72: not a multiple of 32
    assert not model._stackable(3, 1) and not model._stackable(1, 4) and model._stackable(4, 4)
    torch.set_num_threads(2)  # torch splits large tensors between threads at unaligned boundaries
    assert not model._stackable(4, 4)
    torch.set_num_threads(1)
    model.stack_passes = False
    assert not model._stackable(4, 4)
    model.stack_passes, model.noise = True, "dropconnect"
    assert not model._stackable(4, 4)


@pytest.mark.parametrize("options", [{}, {"transfer": "none"}, {"uncertainty": "aleatoric"}, {"noise": "dropconnect"}])
def test_pamtl_stacked_passes_equal_one_pass_at_a_time(options):
    torch.manual_seed(6)
    model = PAMTL(10, 4, hidden=16, **options)
    x = torch.randn(30, 10)
    assert model._stackable(30) == (options.get("noise") != "dropconnect")
    results = {}
    for stacked in (False, True):
        model.stack_passes = stacked
        model.zero_grad()
        torch.manual_seed(7)
        logits = model(x, return_details=True)  # training forward: its variance passes stacked
        logits.sum().backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        passes = model.mc_logits(x, None, 6)
        results[stacked] = (logits.detach(), model.last_details["variance"], grads, passes, torch.rand(2))
    torch.manual_seed(7)
    model(x)
    with torch.no_grad():
        calls = [model(x) for _ in range(6)]
    one, many = results[False], results[True]
    for a, b in [(one[0], many[0]), (one[1], many[1]), (one[4], many[4]), *zip(one[2], many[2], strict=True)]:
        assert torch.equal(a, b)
    for mine, call in zip(many[3], calls, strict=True):
        assert torch.equal(mine, call) and mine.stride() == call.stride()
