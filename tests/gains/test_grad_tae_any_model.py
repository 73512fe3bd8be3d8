"""GRAD-TAE on a model of any factory (issue 24): gradients of the network's own forward pass at its trained state."""

import numpy as np
import pytest
import torch
from torch import nn

from negtransfer.data.dataset import TEST, TRAIN, VALIDATION, MultiTaskDataset, TaskSpec
from negtransfer.gains.grad_tae import GradTAE, grad_tae_run, train_base_model
from negtransfer.nn.contract import build_model
from negtransfer.train.config import TrainConfig
from negtransfer.train.losses import TaskLossLayout
from negtransfer.train.model_choice import ModelChoice

# the batch-norm factory trains one at a time, which the trainer says once as a warning (not under test here)
pytestmark = pytest.mark.filterwarnings("ignore::negtransfer.nn.stacked.UnstackableModelWarning")


def batch_norm_cnn(input_shape, outputs):
    """A CNN with batch norm (running statistics: trained one at a time) and one head per task."""
    channels, height, width = input_shape
    encoder = nn.Sequential(nn.Conv2d(channels, 3, kernel_size=3, padding=1), nn.BatchNorm2d(3), nn.ReLU(),
                            nn.Flatten(), nn.Linear(3 * height * width, 6), nn.Tanh())
    return encoder, [nn.Linear(6, out) for out in outputs]


def _images(n=160, seed=0):
    """1 x 4 x 4 images with a binary, a regression and a 3-class task (some labels missing)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 1, 4, 4)).astype(np.float32)
    flat = X.reshape(n, -1)
    Y = np.stack([flat[:, 0] + flat[:, 5] > 0, flat[:, 3] - flat[:, 9] + 0.2 * rng.normal(size=n),
                  np.digitize(flat[:, 1] - flat[:, 2], [-0.5, 0.5])], axis=1).astype(np.float32)
    Y[::6, 0] = np.nan
    split = np.repeat([TRAIN, VALIDATION, TEST], [n // 2, n // 4, n - n // 2 - n // 4])
    tasks = (TaskSpec("b", "binary", (0, 1)), TaskSpec("r", "regression"), TaskSpec("m", "multiclass", (0, 1, 2)))
    return MultiTaskDataset("images", tasks, X, Y, split, ("gray",))


MODELS = {"cnn": ModelChoice(encoder="cnn", arguments=(("channels", (2,)), ("hidden", 6))),
          "batch-norm factory": ModelChoice.from_callable(batch_norm_cnn)}


@pytest.fixture(scope="module", params=list(MODELS))
def trained(request):
    ds = _images()
    config = TrainConfig(max_epochs=4, batch_size=32, model=MODELS[request.param])
    state, result = train_base_model(ds, config, 0)
    network = build_model(config.model.factory_function(), ds.X.shape[1:], [t.output_dim for t in ds.tasks], seed=0)
    return ds, config, state, result, network


def _loop_gradient(network, state, x, task, label, layout, names):
    """One example's output gradient by an ordinary backward pass through a copy of the trained model."""
    network.load_state_dict(state)
    network.eval()
    out = network(torch.from_numpy(x)[None])[0][layout.output_slice(task)]
    if layout.tasks[task].kind == "multiclass":
        y = int(label)
        out = out[y] - torch.logsumexp(torch.cat([out[:y], out[y + 1:]]), 0)
    else:
        out = out[0]
    chosen = dict(network.named_parameters())
    grads = torch.autograd.grad(out, [chosen[name] for name in names])
    return torch.cat([g.reshape(-1) for g in grads]).double(), float(out.detach())


@pytest.mark.parametrize("which", ["all", "shared"])
def test_vectorised_gradients_of_a_factory_model_equal_a_loop_of_backward_passes(trained, which):
    ds, _, state, _, network = trained
    assert isinstance(state, dict) and any(name.startswith("heads.") for name in state)
    est = GradTAE(projection_dim=25, chunk_rows=9, parameters=which).fit(state, ds, network=network)
    names = [n for n, _ in network.named_parameters() if which == "all" or n.startswith("encoder.")]
    assert est.n_parameters_ == sum(dict(network.named_parameters())[n].numel() for n in names)
    layout = TaskLossLayout(ds.tasks)
    P = torch.from_numpy(est.projection_).double()
    for e in (0, 1, len(est.train_task_) // 2, len(est.train_task_) - 1):  # a binary, a regression, a multiclass row
        t = int(est.train_task_[e])
        rows = np.flatnonzero((ds.split == TRAIN) & ~np.isnan(ds.Y[:, t]))
        row = rows[e - int(np.flatnonzero(est.train_task_ == t)[0])]
        gradient, value = _loop_gradient(network, state, ds.X[row], t, ds.Y[row, t], layout, names)
        np.testing.assert_allclose(est.train_features_[e], (gradient @ P).numpy(), rtol=1e-4, atol=1e-6)
        assert est.train_offset_[e] == pytest.approx(value, rel=1e-5, abs=1e-6)


def test_estimate_at_the_trained_state_is_the_base_models_loss(trained):
    """With w = 0 (C tiny) each task's estimated loss is the trained model's validation loss."""
    ds, _, state, result, network = trained
    estimated = GradTAE(C=1e-12, projection_dim=10).fit(state, ds, network=network).estimated_losses((0, 1, 2))
    for t in range(3):
        assert estimated[t] == pytest.approx(result.val_loss[t], rel=1e-4)


def test_grad_tae_run_builds_the_network_itself(trained):
    ds, config, _, _, _ = trained
    _, record = grad_tae_run(ds, config, 0, 0, GradTAE(projection_dim=10, n_subsets=3))
    A = np.array(record["affinity"], dtype=float)
    assert A.shape == (3, 3) and np.isnan(np.diag(A)).all() and np.isfinite(A[~np.eye(3, dtype=bool)]).all()


def test_a_state_dict_without_its_network_is_a_clear_error(trained):
    ds, _, state, _, network = trained
    with pytest.raises(ValueError, match="needs network="):
        GradTAE().fit(state, ds)
    with pytest.raises(ValueError, match="the parameters name"):
        GradTAE().fit({k: v for k, v in state.items() if not k.startswith("heads.0")}, ds, network=network)


class _LastStep(nn.Module):
    def __init__(self, features):
        super().__init__()
        self.gru = nn.GRU(features, 4, batch_first=True)

    def forward(self, x):
        return self.gru(x)[0][:, -1]


def gru_network(input_shape, outputs):
    """A GRU over the sequence, its last step's state to one linear head per task: vmap cannot run nn.GRU."""
    return _LastStep(input_shape[1]), [nn.Linear(4, out) for out in outputs]


def test_a_model_vmap_cannot_run_is_refused_before_the_base_model_trains(monkeypatch):
    """With nn.GRU, GRAD-TAE failed after training its base model, inside torch: "output with shape [1, 8] doesn't
    match the broadcast shape [270, 1, 8]"."""
    import negtransfer.gains.grad_tae as grad_tae

    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 5, 2)).astype(np.float32)
    Y = np.stack([X[:, -1, 0] > 0, X[:, 0, 1] > 0], axis=1).astype(np.float32)
    split = np.repeat([TRAIN, VALIDATION, TEST], [12, 6, 6])
    ds = MultiTaskDataset("sequences", (TaskSpec("a", "binary", (0, 1)), TaskSpec("b", "binary", (0, 1))), X, Y,
                          split, ("f0", "f1"))
    config = TrainConfig(max_epochs=1, model=ModelChoice.from_callable(gru_network))
    monkeypatch.setattr(grad_tae, "train_base_model", lambda *a, **k: pytest.fail("trained before the check"))
    with pytest.raises(ValueError, match=f"GRAD-TAE .* cannot run the model of {__name__}:gru_network .*; group its "
                                         "tasks with another method \\(etap, tag"):
        grad_tae_run(ds, config, 0, 0, GradTAE(projection_dim=4, n_subsets=2))
    grad_tae.check_per_example_gradients(TrainConfig(model=ModelChoice.from_callable(batch_norm_cnn)), _images(8))
