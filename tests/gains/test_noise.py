import numpy as np
import pytest

from negtransfer.gains.noise import noise_floor
from negtransfer.gains.table import repeat_gains, standard_errors


def _table(signal_sd, noise_sd, R, m=60, n=5, seed=0):
    rng = np.random.default_rng(seed)
    U = rng.random((m, n)) < 0.5
    U[:, :2] = True  # every group has >= 2 tasks
    offsets = rng.normal(0, 0.5, size=n)  # per-task offsets: not signal for choosing groups
    true = offsets[None, :] + rng.normal(0, signal_sd, size=(m, n))
    G = true[:, :, None] + rng.normal(0, noise_sd, size=(m, n, R))
    return U, np.where(U[:, :, None], G, np.nan)


def test_strong_signal_is_reliable_and_pure_noise_is_not():
    U, G = _table(signal_sd=0.05, noise_sd=0.005, R=4)
    good = noise_floor(U, G)
    assert good["reliability"] > 0.9 and good["verdict"].startswith("Gains are reproducible")
    assert good["gain_se_median"] == pytest.approx(0.005 / 2, rel=0.3)
    U, G = _table(signal_sd=0.0, noise_sd=0.05, R=4)
    bad = noise_floor(U, G)
    assert bad["reliability"] < 0.5 and bad["verdict"].startswith("Gains are mostly noise")
    # the raw split-half correlation is inflated by the per-task offsets; the within-task one is not
    assert bad["split_half_pearson"] > 0.5 > bad["split_half_within_task_pearson"]


def test_one_repeat_says_noise_is_not_measured():
    U, G = _table(signal_sd=0.05, noise_sd=0.01, R=1)
    out = noise_floor(U, G)
    assert out["repeats"] == 1 and out["reliability"] is None and out["gain_se_median"] is None
    assert "--repeats" in out["verdict"] and out["verdict"].startswith("Noise not measured")


def test_standard_errors_and_single_task_rows_ignored():
    G = np.array([[[0.1, 0.3], [np.nan, np.nan]]])
    np.testing.assert_allclose(standard_errors(G)[0, 0], np.std([0.1, 0.3], ddof=1) / np.sqrt(2))
    U = np.array([[True, False]])
    assert noise_floor(U, G)["n_gains"] == 0  # a one-task group carries no gain


def test_repeat_gains_pair_each_repeat_with_its_stl_run():
    from negtransfer.train.results import ModelResult, RepeatedResult

    def run(g, losses, r):
        return ModelResult(group=g, val_loss=dict(zip(g, losses, strict=True)), test_loss=dict(zip(g, losses, strict=True)),
                           test_metric={t: 0.5 for t in g}, best_epoch=1, epochs=1, repeat=r,
                           val_metric={t: 0.5 for t in g})

    results = {
        (0,): RepeatedResult((0,), [run((0,), [1.0], 0), run((0,), [2.0], 1)]),
        (1,): RepeatedResult((1,), [run((1,), [1.0], 0), run((1,), [1.0], 1)]),
        (0, 1): RepeatedResult((0, 1), [run((0, 1), [0.5, 1.0], 0), run((0, 1), [1.5, 1.2], 1)]),
    }
    U, G = repeat_gains([(0, 1)], results, 2, split="test")
    np.testing.assert_allclose(G[0, 0], [0.5, 0.25])  # paired: (1 - 0.5)/1 and (2 - 1.5)/2
    np.testing.assert_allclose(G[0, 1], [0.0, -0.2])
    with pytest.raises(ValueError, match="higher_better"):
        repeat_gains([(0, 1)], results, 2, measure="metric")
