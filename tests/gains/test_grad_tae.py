"""GRAD-TAE (Li et al., KDD 2024): projected per-example gradients and first-order subset estimates."""

import numpy as np
import pytest
import torch

from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset, TaskSpec
from negtransfer.data.synthetic import make_synthetic_tasks
from negtransfer.gains.grad_tae import GradTAE, sample_subsets, train_base_model
from negtransfer.runs.tracked import measure_grad_tae_affinity
from negtransfer.train.config import TrainConfig
from negtransfer.train.losses import TaskLossLayout


def _mixed_dataset(n=240, seed=0):
    """Shared rows with one task of each kind (binary, regression, 3 classes) and some missing labels."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5)).astype(np.float32)
    Y = np.stack([(X[:, 0] + X[:, 1] > 0), X[:, 1] - X[:, 2] + 0.3 * rng.normal(size=n),
                  np.digitize(X[:, 0] - X[:, 3], [-0.5, 0.5])], axis=1).astype(np.float32)
    Y[::5, 0] = np.nan
    split = np.repeat([TRAIN, VALIDATION, TEST], [n // 2, n // 4, n - n // 2 - n // 4])
    tasks = (TaskSpec("b", "binary", (0, 1)), TaskSpec("r", "regression"), TaskSpec("m", "multiclass", (0, 1, 2)))
    return MultiTaskDataset("mixed", tasks, X, Y, split, tuple(f"f{i}" for i in range(5)))


def _forward(params, x):
    h = x
    for i in range(0, len(params), 2):
        h = h @ params[i] + params[i + 1]
        if i < len(params) - 2:
            h = torch.relu(h)
    return h


@pytest.fixture(scope="module")
def mixed():
    ds = _mixed_dataset()
    params, result = train_base_model(ds, TrainConfig(hidden=(8,), max_epochs=15), 0)
    return ds, params, result


def test_estimate_at_the_base_point_is_the_base_models_loss(mixed):
    """With w = 0 (C tiny) every kind's estimated loss is the trained model's validation loss (the outputs are right)."""
    ds, params, result = mixed
    est = GradTAE(C=1e-12, projection_dim=20).fit(params, ds)
    estimated = est.estimated_losses((0, 1, 2))
    for t in range(3):
        assert estimated[t] == pytest.approx(result.val_loss[t], rel=1e-4)
    assert est.train_features_.shape == (int((~np.isnan(ds.Y[ds.split == TRAIN])).sum()), 20)


def test_vectorised_gradients_equal_a_loop_of_backward_passes(mixed):
    ds, params, _ = mixed
    est = GradTAE(projection_dim=30, chunk_rows=7).fit(params, ds)
    layout = TaskLossLayout(ds.tasks)
    P = torch.from_numpy(est.projection_)
    for e in (0, 1, len(est.train_task_) // 2, len(est.train_task_) - 1):  # a binary, a regression, a multiclass row
        t = int(est.train_task_[e])  # examples are ordered by task, then row
        rows = np.flatnonzero((ds.split == TRAIN) & ~np.isnan(ds.Y[:, t]))
        row = rows[e - int(np.flatnonzero(est.train_task_ == t)[0])]
        p = [q.clone().requires_grad_(True) for q in params]
        out = _forward(p, torch.from_numpy(ds.X[row]))[layout.output_slice(t)]
        if ds.tasks[t].kind == "multiclass":
            y = int(ds.Y[row, t])
            out = out[y] - torch.logsumexp(torch.cat([out[:y], out[y + 1:]]), 0)
        else:
            out = out[0]
        g = torch.autograd.grad(out, p)
        expected = (torch.cat([x.reshape(-1) for x in g]).double() @ P.double()).numpy()
        np.testing.assert_allclose(est.train_features_[e], expected, rtol=1e-4, atol=1e-6)
        assert est.train_offset_[e] == pytest.approx(float(out.detach()), rel=1e-5, abs=1e-6)


def test_first_order_estimate_matches_fine_tuning_a_little():
    """Fine-tune the real network in the projected directions (same objective, same penalty): the linear estimate
    of each member's validation loss is close, and ranks the subsets as fine-tuning does."""
    ds = make_synthetic_tasks(n_tasks=4, n_clusters=2, n_samples=200, n_features=6, task_kind="binary", seed=1)
    params, _ = train_base_model(ds, TrainConfig(hidden=(8,), max_epochs=4), 0)
    C = 3e-3
    est = GradTAE(C=C, projection_dim=40).fit(params, ds)
    P = torch.from_numpy(est.projection_).double()
    X, Y = torch.from_numpy(ds.X).double(), torch.from_numpy(ds.Y).double()
    base = [q.double() for q in params]
    shapes = [q.shape for q in base]

    def network_losses(w, tasks, split):
        update = P @ w
        cut = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
        p = [b + update[cut[i]:cut[i + 1]].reshape(s) for i, (b, s) in enumerate(zip(base, shapes, strict=True))]
        out = _forward(p, X[torch.from_numpy(ds.split == split)])
        y = Y[torch.from_numpy(ds.split == split)]
        return [torch.nn.functional.binary_cross_entropy_with_logits(out[:, t], y[:, t], reduction="sum"
                                                                       if split == TRAIN else "mean")
                for t in tasks]

    estimated, actual, base_loss = [], [], []
    for subset in [(0,), (0, 1), (0, 3), (0, 1, 2, 3)]:
        w = torch.zeros(40, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([w], max_iter=40, tolerance_grad=1e-10, tolerance_change=1e-12,
                                line_search_fn="strong_wolfe")

        def closure(opt=opt, w=w, subset=subset):
            opt.zero_grad()
            loss = sum(network_losses(w, subset, TRAIN)) + (w @ w) / (2 * C)
            loss.backward()
            return loss

        opt.step(closure)
        w_linear = est.delta(subset)
        cosine = float(w.detach().numpy() @ w_linear / np.linalg.norm(w.detach().numpy()) / np.linalg.norm(w_linear))
        assert cosine > 0.95, (subset, cosine)
        with torch.no_grad():
            fine_tuned = [float(v) for v in network_losses(w, subset, VALIDATION)]
            at_base = [float(v) for v in network_losses(torch.zeros(40, dtype=torch.float64), subset, VALIDATION)]
        linear = est.estimated_losses(subset)
        for t, ft, b0 in zip(subset, fine_tuned, at_base, strict=True):
            estimated.append(linear[t])
            actual.append(ft)
            base_loss.append(b0)
    estimated, actual, base_loss = map(np.array, (estimated, actual, base_loss))
    moved = actual - base_loss
    assert np.abs(moved).max() > 5e-3  # the fine-tuning did move the losses
    np.testing.assert_allclose(estimated - base_loss, moved, atol=0.25 * np.abs(moved).max())
    assert np.corrcoef(estimated - base_loss, moved)[0, 1] > 0.9


@pytest.mark.parametrize("layout", ["multi-label", "per-task-rows"])
def test_planted_clusters_have_higher_affinity_within_than_across(layout):
    ds = make_synthetic_tasks(n_tasks=6, n_clusters=2, task_kind="binary" if layout == "multi-label" else "regression",
                              n_samples=1200 if layout == "multi-label" else 1000, seed=0, layout=layout)
    params, _ = train_base_model(ds, TrainConfig(max_epochs=15), 0)
    est = GradTAE(random_state=3).fit(params, ds)
    A = est.affinity()
    clusters = np.asarray(ds.info["clusters"])
    same = clusters[:, None] == clusters[None, :]
    off = ~np.eye(6, dtype=bool)
    assert np.isnan(np.diag(A)).all() and np.isfinite(A[off]).all()
    assert A[same & off].mean() > A[~same].mean()
    # per target task: its best source is in its own cluster for most tasks
    best = np.nanargmax(A, axis=0)
    assert (clusters[best] == clusters).sum() >= 5
    assert len(est.subsets_) == 15 and est.n_regressions_ == 15 + 6  # every 2-subset of 6, and each task alone


def test_deterministic_given_a_seed(mixed):
    ds, params, _ = mixed
    a = GradTAE(random_state=5, subset_size=2).fit(params, ds)
    b = GradTAE(random_state=5, subset_size=2).fit(params, ds)
    c = GradTAE(random_state=6, subset_size=2).fit(params, ds)
    np.testing.assert_array_equal(a.affinity(), b.affinity())
    np.testing.assert_array_equal(a.train_features_, b.train_features_)
    assert not np.allclose(a.train_features_, c.train_features_)  # another projection
    assert sample_subsets(10, 4, 20, 1) == sample_subsets(10, 4, 20, 1) != sample_subsets(10, 4, 20, 2)
    assert len(set(sample_subsets(10, 4, 20, 1))) == 20 and len(sample_subsets(4, 2, 99, 0)) == 6


def test_gains_of_groups(mixed):
    ds, params, _ = mixed
    est = GradTAE().fit(params, ds)
    U = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=bool)
    G = est.estimate_gains(U)
    assert G[0, 0] == 0.0 and np.isnan(G[0, 1:]).all() and np.isfinite(G[U]).all()
    alone, both = est.estimated_losses((0,))[0], est.estimated_losses((0, 1))[0]
    assert G[1, 0] == pytest.approx((alone - both) / alone)


def test_bad_input_gets_a_clear_error(mixed):
    ds, params, _ = mixed
    with pytest.raises(ValueError, match="C must be a positive"):
        GradTAE(C=0).fit(params, ds)
    with pytest.raises(ValueError, match="parameters must be one of"):
        GradTAE(parameters="heads").fit(params, ds)
    with pytest.raises(ValueError, match="projection_dim"):
        GradTAE(projection_dim=0).fit(params, ds)
    with pytest.raises(ValueError, match="features"):
        GradTAE().fit(params, _mixed_dataset().subset_tasks(["b", "r"]))
    with pytest.raises(ValueError, match=r"\[W1, b1"):
        GradTAE().fit(params[:3], ds)
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        GradTAE().affinity()
    est = GradTAE().fit(params, ds)
    with pytest.raises(ValueError, match="tasks in 0..2"):
        est.delta((0, 3))
    with pytest.raises(ValueError, match="subset_size"):
        GradTAE(subset_size=4).fit(params, ds).affinity()
    no_val = _mixed_dataset()
    no_val.Y[no_val.split == VALIDATION, 1] = np.nan
    with pytest.raises(ValueError, match="'r' has no labelled validation row"):
        GradTAE().fit(params, no_val)
    with pytest.raises(ValueError, match="subset size"):
        sample_subsets(3, 4, 1, 0)


def test_measured_affinity_is_stored_and_reused(tmp_path):
    from negtransfer.runs.store import RunStore

    ds = _mixed_dataset()
    config = TrainConfig(hidden=(8,), max_epochs=3)
    store = RunStore(tmp_path / "runs.sqlite")
    A, cost = measure_grad_tae_affinity(ds, config, 0, store=store, repeats=2)
    assert cost["reused_repeats"] == 0 and cost["repeats"] == 2 and cost["projection_dim"] == 200
    assert cost["seconds_gradients_and_regressions"] == pytest.approx(cost["seconds_gradients"]
                                                                     + cost["seconds_regressions"])
    again, cost2 = measure_grad_tae_affinity(ds, config, 0, store=store, repeats=2)
    assert cost2["reused_repeats"] == 2
    np.testing.assert_array_equal(A, again)
    one, _ = measure_grad_tae_affinity(ds, config, 0, store=store, repeats=1)
    assert not np.allclose(one[~np.eye(3, dtype=bool)], A[~np.eye(3, dtype=bool)])  # repeat 1 has its own model
