"""Tests of the per-step affinity tracker (ETAP eq. 4-7) and the TAG lookahead."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import torch

from negtransfer.affinity.tracker import (
    AffinityTracker,
    adam_task_updates,
    flatten_task_gradients,
    optimizer_task_updates,
    per_task_and_summed_gradients,
    per_task_gradients,
    sgd_task_updates,
    step_affinity,
    step_affinity_from_updates,
    tag_lookahead_affinity,
)

DT = torch.float64


# ----------------------------------------------------------------------------
# A tiny two-parameter example, computed by hand
# ----------------------------------------------------------------------------
# theta = (t1, t2) = (1, 2)
# task a: L_a = t1^2 + t2        = 3,  g_a = (2 t1, 1)        = (2, 1)
# task b: L_b = t1 t2 + t2^2     = 6,  g_b = (t2, t1 + 2 t2)  = (2, 5)
# <g_a, g_a> = 5, <g_a, g_b> = 4 + 5 = 9, <g_b, g_b> = 4 + 25 = 29
#
# No momentum, A[i, j] = <g_i, g_j> / L_j:
#   A[a, a] = 5/3, A[a, b] = 9/6, A[b, a] = 9/3, A[b, b] = 29/6
#
# Momentum 0.5 with PyTorch buffer b = (2, -1): c = 0.5 b = (1, -0.5),
# <c, g_a> = 2 - 0.5 = 1.5, <c, g_b> = 2 - 2.5 = -0.5, A[i, j] = (<g_i, g_j> + <c, g_j>) / L_j:
#   A[a, a] = 6.5/3, A[a, b] = 8.5/6, A[b, a] = 10.5/3, A[b, b] = 28.5/6

HAND_PLAIN = np.array([[5 / 3, 9 / 6], [9 / 3, 29 / 6]])
HAND_MOMENTUM = np.array([[6.5 / 3, 8.5 / 6], [10.5 / 3, 28.5 / 6]])


def _hand_losses(theta):
    t1, t2 = theta[0], theta[1]
    return torch.stack([t1**2 + t2, t1 * t2 + t2**2])


def test_eq5_hand_computed_without_momentum():
    theta = torch.tensor([1.0, 2.0], dtype=DT, requires_grad=True)
    L = _hand_losses(theta)
    (G,) = per_task_gradients(L, [theta])
    np.testing.assert_allclose(G.numpy(), [[2.0, 1.0], [2.0, 5.0]])
    A = step_affinity([G], L, lr=0.1)
    np.testing.assert_allclose(A.numpy(), HAND_PLAIN, rtol=1e-12)


def test_eq5_hand_computed_with_momentum_both_conventions():
    theta = torch.tensor([1.0, 2.0], dtype=DT, requires_grad=True)
    L = _hand_losses(theta)
    (G,) = per_task_gradients(L, [theta])
    buf = torch.tensor([2.0, -1.0], dtype=DT)
    A = step_affinity([G], L, velocity=[buf], momentum=0.5)
    np.testing.assert_allclose(A.numpy(), HAND_MOMENTUM, rtol=1e-12)
    # The paper's / Keras velocity is in parameter units: v = -lr * b.
    lr = 0.1
    A_keras = step_affinity([G], L, lr, velocity=-lr * buf, momentum=0.5, convention="keras")
    np.testing.assert_allclose(A_keras.numpy(), HAND_MOMENTUM, rtol=1e-12)
    # Wrongly reading a torch buffer as a Keras velocity gives another answer (the test can fail).
    A_wrong = step_affinity([G], L, lr, velocity=buf, momentum=0.5, convention="keras")
    assert not np.allclose(A_wrong.numpy(), HAND_MOMENTUM)
    # A real torch.optim.SGD holding that buffer gives the same per-task updates.
    opt = torch.optim.SGD([theta], lr=lr, momentum=0.5)
    opt.state[theta]["momentum_buffer"] = buf.clone()
    U, lr_ref = optimizer_task_updates(opt, [theta], [G])
    assert lr_ref == lr
    np.testing.assert_allclose(step_affinity_from_updates([G], L, U).numpy(), HAND_MOMENTUM, rtol=1e-12)
    # First step (no buffer yet): torch sets the buffer to the gradient, i.e. no momentum term.
    opt2 = torch.optim.SGD([theta], lr=lr, momentum=0.5)
    U2, _ = optimizer_task_updates(opt2, [theta], [G])
    np.testing.assert_allclose(step_affinity_from_updates([G], L, U2).numpy(), HAND_PLAIN, rtol=1e-12)


def test_orientation_on_asymmetric_example():
    # L_0 = t1 + 5, L_1 = t2 + 5 at theta = 0: g_0 = (1, 0), g_1 = (0, 1), both losses 5.
    # Momentum 0.5, buffer (-4, 2): c = (-2, 1).
    # Source 0 onto target 1: <g_0 + c, g_1> / 5 = <(-1, 1), (0, 1)> / 5 = +0.2 (helps)
    # Source 1 onto target 0: <g_1 + c, g_0> / 5 = <(-2, 2), (1, 0)> / 5 = -0.4 (hurts)
    theta = torch.zeros(2, dtype=DT, requires_grad=True)

    def losses():
        return torch.stack([theta[0] + 5.0, theta[1] + 5.0])

    opt = torch.optim.SGD([theta], lr=0.1, momentum=0.5)
    opt.state[theta]["momentum_buffer"] = torch.tensor([-4.0, 2.0], dtype=DT)
    tracker = AffinityTracker(2, momentum=True)
    A = tracker.step(losses(), [theta], opt).numpy()
    # Full matrix: A[i, j] = <g_i + c, g_j> / 5 with g_0 + c = (-1, 1), g_1 + c = (-2, 2).
    np.testing.assert_allclose(A, [[-0.2, 0.2], [-0.4, 0.4]], rtol=1e-12)
    # Check the orientation with a real step on task 1 alone: task 0's loss goes UP.
    m = theta.detach().clone().requires_grad_(True)
    o = torch.optim.SGD([m], lr=0.1, momentum=0.5)
    o.state[m]["momentum_buffer"] = torch.tensor([-4.0, 2.0], dtype=DT)
    (m[1] + 5.0).backward()
    o.step()
    assert float(m[0].detach()) + 5.0 > 5.0 and A[1, 0] < 0
    # Eq. 7 averages a column: the score of group {0, 1} onto task 0 is A[1, 0].
    Z = tracker.group_scores(np.array([[True, True]]))
    np.testing.assert_allclose(Z, [[-0.4, 0.2]], rtol=1e-12)


# ----------------------------------------------------------------------------
# A small multi-task network (float64 so first-order comparisons are tight)
# ----------------------------------------------------------------------------

N_TASKS = 3


class TinyMTL(torch.nn.Module):
    def __init__(self, seed=0, n_in=5, n_tasks=N_TASKS):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.encoder = torch.nn.Sequential(torch.nn.Linear(n_in, 6), torch.nn.Tanh(), torch.nn.Linear(6, 4), torch.nn.Tanh())
        self.heads = torch.nn.Linear(4, n_tasks)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.7)
        self.double()

    def task_losses(self, x, y):
        out = self.heads(self.encoder(x))
        return torch.nn.functional.binary_cross_entropy_with_logits(out, y, reduction="none").mean(0)


def _data(seed=1, n=24, n_in=5, n_tasks=N_TASKS):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, n_in, generator=g, dtype=DT)
    y = (torch.randn(n, n_tasks, generator=g, dtype=DT) + x[:, :n_tasks] > 0).to(DT)
    return x, y


def _batches(x, y, size=8):
    return [(x[i : i + size], y[i : i + size]) for i in range(0, len(x), size)]


def _warm_up(model, opt, x, y, steps=3):
    for xb, yb in _batches(x, y)[:steps]:
        opt.zero_grad()
        model.task_losses(xb, yb).sum().backward()
        opt.step()


def test_batched_gradients_equal_per_task_loop():
    model = TinyMTL()
    x, y = _data()
    params = list(model.parameters())
    L = model.task_losses(x, y)
    batched = per_task_gradients(L, params, retain_graph=True)
    for t in range(N_TASKS):
        loop = torch.autograd.grad(L[t], params, retain_graph=True)
        for b, one in zip(batched, loop, strict=True):
            torch.testing.assert_close(b[t], one, rtol=1e-12, atol=1e-14)
    # Head rows of other tasks are exactly zero (task t's loss never touches head t').
    assert float(batched[-2][0, 1:].abs().max()) == 0.0
    # A list of scalar losses works the same.
    L2 = model.task_losses(x, y)
    listed = per_task_gradients([L2[t] for t in range(N_TASKS)], params)
    for a, b in zip(listed, batched, strict=True):
        torch.testing.assert_close(a, b)


def test_batched_gradients_for_stacked_models():
    # Losses of K independent models, shape (K, T): slice [t, k] is model k's gradient of task t.
    models = [TinyMTL(seed=s) for s in (0, 1)]
    x, y = _data()
    W = torch.stack([m.encoder[0].weight for m in models]).detach().requires_grad_(True)
    losses = []
    for k, m in enumerate(models):
        h = torch.tanh(x @ W[k].T + m.encoder[0].bias)
        h = torch.tanh(m.encoder[2](h))
        losses.append(torch.nn.functional.binary_cross_entropy_with_logits(m.heads(h), y, reduction="none").mean(0))
    L = torch.stack(losses)  # (2, T)
    (G,) = per_task_gradients(L, [W], retain_graph=True)
    assert G.shape == (N_TASKS, 2) + tuple(W.shape[1:])
    for k in range(2):
        for t in range(N_TASKS):
            (ref,) = torch.autograd.grad(L[k, t], [W], retain_graph=True)
            torch.testing.assert_close(G[t, k], ref[k], rtol=1e-12, atol=1e-14)


def test_summed_gradients_equal_plain_backward():
    model = TinyMTL()
    x, y = _data()
    shared, heads = list(model.encoder.parameters()), list(model.heads.parameters())
    unused = torch.zeros(3, dtype=DT, requires_grad=True)
    L = model.task_losses(x, y)
    plain = torch.autograd.grad(L.sum(), shared + heads, retain_graph=True)
    per_task, s_shared, s_other = per_task_and_summed_gradients(L, shared, heads + [unused])
    for a, b in zip(s_shared + s_other[:-1], plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    assert s_other[-1] is None  # unused parameter: left alone, like backward()
    for g, s in zip(per_task, s_shared, strict=True):
        torch.testing.assert_close(g.sum(0), s)


def _lookahead_sgd(model, opt, xb, yb, source, lr_small):
    """Real torch.optim step on the source task's loss alone (shared params only), tiny lr."""
    m, o = copy.deepcopy((model, opt))  # one deepcopy keeps the optimizer bound to the copied params
    for gr in o.param_groups:
        gr["lr"] = lr_small
    L0 = m.task_losses(xb, yb).detach()
    o.zero_grad(set_to_none=True)
    m.task_losses(xb, yb)[source].backward()
    for p in m.heads.parameters():
        p.grad = None
    o.step()
    L1 = m.task_losses(xb, yb).detach()
    return (1.0 - L1 / L0) / lr_small


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: torch.optim.SGD(ps, lr=0.1),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
        lambda ps: torch.optim.Adam(ps, lr=0.01),
        lambda ps: torch.optim.AdamW(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
    ],
    ids=["sgd", "sgd-momentum", "sgd-nesterov-wd", "adam", "adamw-amsgrad"],
)
def test_first_order_affinity_matches_actual_lookahead(make_opt):
    model = TinyMTL()
    x, y = _data()
    opt = make_opt(model.parameters())
    _warm_up(model, opt, x, y)
    xb, yb = _batches(x, y)[0]
    tracker = AffinityTracker(N_TASKS, momentum=True)  # the optimiser's full step, momentum included
    lr_small = 1e-7
    expected = np.stack([_lookahead_sgd(model, opt, xb, yb, i, lr_small).numpy() for i in range(N_TASKS)])
    opt.zero_grad()
    A = tracker.step(model.task_losses(xb, yb), model.encoder.parameters(), opt).numpy()
    np.testing.assert_allclose(A, expected, rtol=1e-4, atol=1e-6)
    assert np.abs(A - A.T).max() > 1e-3  # not symmetric: orientation matters here


def test_tag_lookahead_matches_etap_for_small_lr():
    model = TinyMTL()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _warm_up(model, opt, x, y)
    xb, yb = _batches(x, y)[1]
    shared = list(model.encoder.parameters())
    before = [p.detach().clone() for p in shared]
    closure = lambda: model.task_losses(xb, yb)  # noqa: E731
    Z = tag_lookahead_affinity(closure, shared, lr=1e-7, optimizer=opt).numpy()
    for p, b in zip(shared, before, strict=True):  # parameters restored exactly
        assert torch.equal(p.detach(), b)
    L = model.task_losses(xb, yb)
    G = per_task_gradients(L, shared)
    U, _ = optimizer_task_updates(opt, shared, G)
    A = step_affinity_from_updates(G, L, U).numpy()
    np.testing.assert_allclose(Z, A, rtol=1e-4, atol=1e-6)
    # Explicit SGD form: velocity/momentum instead of an optimizer.
    bufs = [opt.state[p]["momentum_buffer"] for p in shared]
    Z2 = tag_lookahead_affinity(closure, shared, lr=1e-7, velocity=bufs, momentum=0.9).numpy()
    np.testing.assert_allclose(Z2, Z, rtol=1e-6, atol=1e-8)
    # A large lr moves away from the first-order value (the comparison can fail).
    Z_big = tag_lookahead_affinity(closure, shared, lr=5.0, optimizer=opt).numpy()
    assert np.abs(Z_big - A).max() > 1e-3


@pytest.mark.parametrize(
    "make_opt",
    [
        lambda ps: torch.optim.Adam(ps, lr=0.05),
        lambda ps: torch.optim.Adam(ps, lr=0.05, weight_decay=0.1, amsgrad=True),
        lambda ps: torch.optim.AdamW(ps, lr=0.05, weight_decay=0.1),
    ],
    ids=["adam", "adam-wd-amsgrad", "adamw"],
)
def test_adam_option_matches_actual_step_for_single_task(make_opt):
    model = TinyMTL(n_tasks=1)
    x, y = _data(n_tasks=1)
    opt = make_opt(model.parameters())
    _warm_up(model, opt, x, y)
    xb, yb = _batches(x, y)[1]
    shared = list(model.encoder.parameters())
    tracker = AffinityTracker(1, optimizer_kind="adam")
    opt.zero_grad()
    L = model.task_losses(xb, yb)
    G = per_task_gradients(L, shared, retain_graph=True)
    U, lr = optimizer_task_updates(opt, shared, G, kind="adam")
    before = torch.cat([p.detach().reshape(-1) for p in shared])
    tracker.step(L, shared, opt)
    opt.step()
    after = torch.cat([p.detach().reshape(-1) for p in shared])
    torch.testing.assert_close(before - after, lr * U[0], rtol=1e-10, atol=1e-13)
    # ... and the recorded affinity is <u, g> / L with that update.
    expected = float(U[0] @ flatten_task_gradients(G)[0] / L.detach()[0])
    np.testing.assert_allclose(tracker.affinity_matrix, [[expected]], rtol=1e-12)
    # The SGD formula would give a different number (Adam's step is not lr * g).
    assert not np.isclose(float(step_affinity(G, L)[0, 0]), expected, rtol=1e-3)


def test_adam_updates_functional_form_matches_optimizer_state():
    model = TinyMTL()
    x, y = _data()
    opt = torch.optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.99), eps=1e-6)
    _warm_up(model, opt, x, y)
    shared = list(model.encoder.parameters())
    L = model.task_losses(x, y)
    G = per_task_gradients(L, shared)
    U_opt, _ = optimizer_task_updates(opt, shared, G)
    st = [opt.state[p] for p in shared]
    U_fun = adam_task_updates(
        G, exp_avg=[s["exp_avg"] for s in st], exp_avg_sq=[s["exp_avg_sq"] for s in st],
        step=float(st[0]["step"]), betas=(0.8, 0.99), eps=1e-6,
    )
    torch.testing.assert_close(U_opt, U_fun)
    # Trainer entry point with updates= gives the same matrix.
    tr = AffinityTracker(N_TASKS, optimizer_kind="adam")
    A = tr.update(G, L, 0.01, updates=U_fun)
    torch.testing.assert_close(A, step_affinity_from_updates(G, L, U_opt))
    with pytest.raises(ValueError, match="updates="):
        AffinityTracker(N_TASKS, optimizer_kind="adam").update(G, L, 0.01)


def _train(model, opt, x, y, epochs=2, tracker=None):
    for _ in range(epochs):
        for xb, yb in _batches(x, y):
            opt.zero_grad()
            L = model.task_losses(xb, yb)
            if tracker is None:
                L.sum().backward()
            else:
                tracker.step(L, model.encoder.parameters(), opt)
            opt.step()
        if tracker is not None:
            tracker.end_epoch()
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("every", [1, 2])
def test_user_loop_step_trains_identically_to_plain_loop(every):
    x, y = _data()
    m1, m2 = TinyMTL(), TinyMTL()
    p_plain = _train(m1, torch.optim.SGD(m1.parameters(), lr=0.2, momentum=0.9), x, y)
    tracker = AffinityTracker(N_TASKS, every=every)
    p_track = _train(m2, torch.optim.SGD(m2.parameters(), lr=0.2, momentum=0.9), x, y, tracker=tracker)
    for a, b in zip(p_plain, p_track, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)
    assert tracker.n_steps_seen == 6
    assert tracker.n_steps_tracked == (6 if every == 1 else 3)
    assert np.isfinite(tracker.affinity_matrix).all()


def test_update_api_matches_user_loop_step():
    x, y = _data()
    model = TinyMTL()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _warm_up(model, opt, x, y)
    shared = list(model.encoder.parameters())
    t_step, t_update = AffinityTracker(N_TASKS, momentum=True), AffinityTracker(N_TASKS)
    L = model.task_losses(x, y)
    G = per_task_gradients(L, shared, retain_graph=True)
    bufs = [opt.state[p]["momentum_buffer"] for p in shared]
    A_update = t_update.update(G, L, 0.1, velocity=bufs, momentum=0.9)
    A_step = t_step.step(L, shared, opt)
    torch.testing.assert_close(A_update, A_step)
    # Same as the updates form with torch's SGD rule.
    torch.testing.assert_close(A_update, step_affinity_from_updates(G, L, sgd_task_updates(G, momentum=0.9, velocity=bufs)))


def test_schedule_every_k_records_every_kth_step_and_estimates_the_same_average():
    x, y = _data(n=48)
    m1, m2 = TinyMTL(), TinyMTL()
    full = AffinityTracker(N_TASKS, every=1, keep_trace=True)
    sparse = AffinityTracker(N_TASKS, every=3, keep_trace=True)
    _train(m1, torch.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9), x, y, epochs=2, tracker=full)
    _train(m2, torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9), x, y, epochs=2, tracker=sparse)
    assert full.n_steps_seen == sparse.n_steps_seen == 12
    assert sparse.n_steps_tracked == 4 and sparse.trace_steps == [0, 3, 6, 9]
    assert full.trace_steps == list(range(12))
    sub = np.stack(full.trace)[[0, 3, 6, 9]]
    np.testing.assert_allclose(np.stack(sparse.trace), sub, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sparse.affinity_matrix, sub.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(full.affinity_matrix, np.stack(full.trace).mean(0), rtol=1e-12)


def test_update_skips_unscheduled_steps():
    tr = AffinityTracker(2, every=2)
    G = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    L = torch.tensor([1.0, 1.0])
    assert tr.is_due and tr.update(G, L) is not None
    assert not tr.is_due and tr.update(G, L) is None
    tr.skip()  # the caller chose not to track step 2: counted, not recorded
    assert tr.n_steps_seen == 3 and tr.n_steps_tracked == 1


def test_absent_tasks_are_excluded_per_entry():
    tr = AffinityTracker(3)
    G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    L1 = torch.tensor([1.0, 2.0, 4.0])
    A1 = step_affinity(G, L1)
    tr.update(G, L1)
    # Task 2 has no label in the second batch: loss 0 -> its row and column are skipped.
    L2 = torch.tensor([2.0, 1.0, 0.0])
    A2 = step_affinity(G, L2)
    tr.update(G, L2)
    avg = tr.affinity_matrix
    np.testing.assert_allclose(avg[:2, :2], ((A1 + A2) / 2)[:2, :2].numpy())
    np.testing.assert_allclose(avg[2, :], A1[2, :].numpy())
    np.testing.assert_allclose(avg[:, 2], A1[:, 2].numpy())


def test_epoch_average_differs_from_step_average():
    G = torch.eye(2)
    steps = AffinityTracker(2, average="steps")
    epochs = AffinityTracker(2, average="epochs")
    # epoch 1: one step with affinity scale 1; epoch 2: three steps with scale 3
    for tr in (steps, epochs):
        tr.update(G, torch.tensor([1.0, 1.0]))
        tr.end_epoch()
        for _ in range(3):
            tr.update(G * 3**0.5, torch.tensor([1.0, 1.0]))
        tr.end_epoch()
    np.testing.assert_allclose(np.diag(steps.affinity_matrix), [2.5, 2.5])  # (1 + 3 * 3) / 4
    np.testing.assert_allclose(np.diag(epochs.affinity_matrix), [2.0, 2.0])  # (1 + 3) / 2
    assert epochs.epoch_affinity_matrices.shape == (2, 2, 2)


def test_state_dict_round_trip_and_resume():
    x, y = _data(n=48)
    model = TinyMTL()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    tr = AffinityTracker(N_TASKS, every=2, keep_trace=True, task_names=["a", "b", "c"], average="epochs")
    _train(model, opt, x, y, epochs=1, tracker=tr)
    buf = io.BytesIO()
    torch.save(tr.state_dict(), buf)
    buf.seek(0)
    restored = AffinityTracker(N_TASKS, every=2, keep_trace=True, average="epochs")
    restored.load_state_dict(torch.load(buf, weights_only=True))
    assert restored.task_names == ["a", "b", "c"]
    assert (restored.n_steps_seen, restored.n_steps_tracked) == (tr.n_steps_seen, tr.n_steps_tracked)
    np.testing.assert_array_equal(restored.affinity_matrix, tr.affinity_matrix)
    np.testing.assert_array_equal(np.stack(restored.trace), np.stack(tr.trace))
    # Resuming: both continue identically (same schedule phase, same sums).
    m1, m2 = copy.deepcopy(model), copy.deepcopy(model)
    o1 = torch.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9)
    o1.load_state_dict(copy.deepcopy(opt.state_dict()))
    o2 = torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
    o2.load_state_dict(copy.deepcopy(opt.state_dict()))
    _train(m1, o1, x, y, epochs=1, tracker=tr)
    _train(m2, o2, x, y, epochs=1, tracker=restored)
    np.testing.assert_array_equal(restored.affinity_matrix, tr.affinity_matrix)
    assert restored.trace_steps == tr.trace_steps == [0, 2, 4, 6, 8, 10]
    with pytest.raises(ValueError, match="n_tasks"):
        AffinityTracker(2).load_state_dict(tr.state_dict())


def test_group_scores_use_eq7_on_the_average():
    tr = AffinityTracker(3)
    G = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    L = torch.tensor([1.0, 2.0, 4.0])
    tr.update(G, L)
    A = tr.affinity_matrix
    Z = tr.group_scores(np.array([[True, True, True], [True, False, True]]))
    np.testing.assert_allclose(Z[0, 0], (A[1, 0] + A[2, 0]) / 2)
    np.testing.assert_allclose(Z[1, 2], A[0, 2])
    assert np.isnan(Z[1, 1])


def test_errors_name_the_bad_input():
    with pytest.raises(ValueError, match="every"):
        AffinityTracker(3, every=0)
    with pytest.raises(ValueError, match="optimizer_kind"):
        AffinityTracker(3, optimizer_kind="rmsprop")
    model = TinyMTL()
    x, y = _data()
    opt = torch.optim.RMSprop(model.parameters(), lr=0.01)
    with pytest.raises(ValueError, match="optimizer_kind='sgd'"):
        AffinityTracker(N_TASKS).step(model.task_losses(x, y), model.encoder.parameters(), opt)
    with pytest.raises(ValueError, match="n_tasks=2"):
        AffinityTracker(2).step(model.task_losses(x, y), model.encoder.parameters(), opt)
    # optimizer_kind="sgd" with a non-SGD optimizer: plain gradient steps.
    tr = AffinityTracker(N_TASKS, optimizer_kind="sgd")
    L = model.task_losses(x, y)
    G = per_task_gradients(L, list(model.encoder.parameters()), retain_graph=True)
    A = tr.step(L, model.encoder.parameters(), opt)
    torch.testing.assert_close(A, step_affinity(G, L))


def test_a_user_loop_s_mistakes_are_named_at_the_tracker_not_deep_in_autograd():
    """Detached losses, the encoder module instead of its parameters and a missing optimizer each failed inside
    torch (a RuntimeError about grad_fn, a TypeError of autograd, an AttributeError on param_groups)."""
    model = TinyMTL()
    x, y = _data()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="task_losses carry no autograd graph"):
        AffinityTracker(N_TASKS).step(model.task_losses(x, y).detach(), model.encoder.parameters(), opt)
    with torch.no_grad():
        losses = model.task_losses(x, y)
    with pytest.raises(ValueError, match="no autograd graph .* torch.no_grad"):
        AffinityTracker(N_TASKS).step(losses, model.encoder.parameters(), opt)
    with pytest.raises(TypeError, match=r"shared_params must be .*model.encoder.parameters\(\)\), got Linear, Tanh"):
        AffinityTracker(N_TASKS).step(model.task_losses(x, y), model.encoder, opt)
    with pytest.raises(TypeError, match="optimizer must be the torch.optim.Optimizer .*, got NoneType"):
        AffinityTracker(N_TASKS).step(model.task_losses(x, y), model.encoder.parameters(), None)


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_user_loop_default_leaves_momentum_out_like_the_job(weight_decay):
    """Issue 28: the tracker in a user's own loop scores plain gradient steps by default (the grouping job's ETAP
    default, --no-affinity-momentum); ``momentum=True`` adds the buffer term of eq. 4, and the two differ."""
    x, y = _data()
    model = TinyMTL()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=weight_decay)
    _warm_up(model, opt, x, y)
    shared = list(model.encoder.parameters())
    L = model.task_losses(x, y)
    G = per_task_gradients(L, shared, retain_graph=True)
    # the job's "plain" tracker (negtransfer.affinity.training): no velocity, the weight decay kept
    plain = AffinityTracker(N_TASKS).update(G, L, 0.1, weight_decay=weight_decay, params=[p.detach() for p in shared])
    default = AffinityTracker(N_TASKS).step(L, shared, opt, retain_graph=True)
    torch.testing.assert_close(default, plain)
    opt.zero_grad()
    with_momentum = AffinityTracker(N_TASKS, momentum=True).step(L, shared, opt)
    assert not torch.allclose(with_momentum, default)
