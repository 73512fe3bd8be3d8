"""The clinical training loop: masked loss, best checkpoint, MC-averaged prediction, per-task AUROC."""

import numpy as np
import pytest
import torch

from negtransfer.nn.clinical_baselines import LSTMClassifier
from negtransfer.train.temporal import (
    TemporalTrainConfig,
    evaluate_auroc,
    fit,
    masked_bce,
    predict_proba,
)

torch.set_num_threads(1)


def test_masked_bce_ignores_missing_labels_entirely():
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5], [-0.7, 0.1]], requires_grad=True)
    labels = torch.tensor([[1.0, float("nan")], [0.0, float("nan")], [float("nan"), float("nan")]])
    losses, present = masked_bce(logits, labels)
    assert present.tolist() == [True, False]
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits[:2, 0], labels[:2, 0])
    assert torch.allclose(losses[0], expected) and losses[1] == 0
    losses.sum().backward()
    assert torch.all(logits.grad[:, 1] == 0) and logits.grad[2, 0] == 0 and logits.grad[0, 0] != 0


def test_fit_keeps_the_best_validation_epoch_and_reports_auroc():
    from negtransfer.data.timeseries import timeseries_dataset

    rng = np.random.default_rng(0)
    values = rng.normal(size=(80, 5, 3))
    labels = np.stack([(values[:, :, 0].mean(1) > 0), (values[:, :, 1].mean(1) > 0)], axis=1).astype(float)
    ds = timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"], seed=0)
    torch.manual_seed(0)
    trained = fit(LSTMClassifier(3, 2), ds, config=TemporalTrainConfig(max_epochs=30, patience=5), seed=0)
    val = [h["validation_loss"] for h in trained.history]
    assert trained.best_epoch == int(np.argmin(val)) + 1
    assert trained.epochs_run == len(val) and trained.epochs_run <= 30
    scores = evaluate_auroc(trained, ds)
    assert set(scores) == {"a", "b"} and all(0 <= v <= 1 for v in scores.values())
    stl = fit(LSTMClassifier(3, 1), ds, task_indices=[1], config=TemporalTrainConfig(max_epochs=3), seed=0)
    assert set(evaluate_auroc(stl, ds)) == {"b"}
    with pytest.raises(ValueError, match="outputs"):
        fit(LSTMClassifier(3, 2), ds, task_indices=[0], config=TemporalTrainConfig(max_epochs=1))


def test_predict_proba_averages_mc_passes_only_for_stochastic_models():
    class Coin(torch.nn.Module):
        mc_dropout = True

        def forward(self, x, step_mask=None):
            return torch.where(torch.rand(x.shape[0], 1) < 0.5, 10.0, -10.0)

    torch.manual_seed(0)
    probs = predict_proba(Coin(), torch.zeros(4000, 2), None, mc_samples=50)
    assert abs(probs.mean() - 0.5) < 0.02 and probs.std() < 0.2  # averaged, not 0/1
    lstm = LSTMClassifier(3, 1)
    x = torch.randn(6, 4, 3)
    assert np.array_equal(predict_proba(lstm, x, None, mc_samples=5), predict_proba(lstm, x, None, mc_samples=1))


def test_fit_takes_its_loss_weighting_explicitly():
    """The weighting is an argument of fit (Kendall weights are trained with the model), never found on the model."""
    from negtransfer.data.timeseries import timeseries_dataset
    from negtransfer.nn.clinical_baselines import RETAIN
    from negtransfer.train.weighting import KendallWeighting

    rng = np.random.default_rng(0)
    values = rng.normal(size=(60, 3, 2))
    labels = np.stack([(values[:, :, 0].mean(1) > 0), (values[:, :, 1].mean(1) > 0)], axis=1).astype(float)
    ds = timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y"], seed=0)
    torch.manual_seed(0)
    weighting = KendallWeighting(2)
    fit(RETAIN(2, 2), ds, config=TemporalTrainConfig(max_epochs=3, validation_mc_samples=1), seed=0,
        weighting=weighting)
    assert not torch.equal(weighting.log_variance.detach(), torch.zeros(2))  # trained with the model


def test_fit_measures_the_wall_time_of_its_training_steps():
    """Each epoch's RoundOutput.seconds is its steps' wall time (FitResult.seconds_per_step, and the rate that
    `negtransfer store-info` reads from a saved state), without the loop's step callbacks (progress bars)."""
    import time

    from negtransfer.data.timeseries import timeseries_dataset
    from negtransfer.train import loop

    rng = np.random.default_rng(0)
    values = rng.normal(size=(40, 4, 3))
    labels = (values[:, :, :2].mean(1) > 0).astype(float)
    ds = timeseries_dataset(values, labels, task_names=["a", "b"], feature_names=["x", "y", "z"], seed=0)
    rounds, step_done = [], loop.FitLoop.step_done

    def slow_step_done(self):
        time.sleep(0.05)  # a callback this slow would dominate a tiny step's time if it were counted
        step_done(self)

    original_run = loop.FitLoop.run

    def recording_run(self, train_round, evaluate, max_rounds, **kw):
        def timed(fit_loop, r):
            began = time.perf_counter()
            out = train_round(fit_loop, r)
            rounds.append((out.seconds, time.perf_counter() - began, out.steps))
            return out

        return original_run(self, timed, evaluate, max_rounds, **kw)

    torch.manual_seed(0)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(loop.FitLoop, "step_done", slow_step_done)
        patch.setattr(loop.FitLoop, "run", recording_run)
        trained = fit(LSTMClassifier(3, 2), ds, config=TemporalTrainConfig(max_epochs=3, batch_size=8), seed=0)
    assert len(rounds) == 3 and all(steps > 1 for _, _, steps in rounds)
    for seconds, wall, steps in rounds:
        assert 0 < seconds < wall - 0.05 * steps * 0.9  # measured, and the callbacks' sleeps are not in it
    total = sum(seconds for seconds, _, _ in rounds)
    assert trained.seconds_per_step == pytest.approx(total / trained.steps_run)
