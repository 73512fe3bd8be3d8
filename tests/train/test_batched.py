from pathlib import Path

import numpy as np
import pytest
import torch

from negtransfer.nn.hard_sharing import HardSharingMLP, StackedHardSharingMLP
from negtransfer.train.batched import batch_slices, model_seed, train_group_models
from negtransfer.train.config import TrainConfig

GROUPS = [(0,), (1,), (2,), (3,), (0, 1), (0, 2, 3), (1, 2), (0, 1, 2, 3), (2, 3)]


@pytest.fixture(scope="module")
def mixed_150(make_mixed):
    """The mixed dataset at 150 rows (about 90 training rows): the 9 stacked and 9 lone trainings of each case
    below stay short, and the groups stop at different epochs (all but adam at batch size 32)."""
    return make_mixed(n_rows=150)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("batch_size", [32, 7])
def test_batched_equals_one_by_one_bit_for_bit(mixed_150, optimizer, batch_size):
    cfg = TrainConfig(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 0.01, batch_size=batch_size, max_epochs=6, patience=2)
    together = train_group_models(mixed_150, GROUPS, cfg, seed=3)
    # models stop early while others train on (adam at batch size 32 trains every model for all 6 epochs)
    assert len({res.epochs for res in together}) > 1 or (optimizer, batch_size) == ("adam", 32)
    for g, res in zip(GROUPS, together, strict=True):
        alone = train_group_models(mixed_150, [g], cfg, seed=3)[0]
        assert res.group == alone.group == g
        assert res.val_loss == alone.val_loss
        assert res.test_loss == alone.test_loss
        assert res.best_epoch == alone.best_epoch and res.epochs == alone.epochs
        # the metric may be NaN-free here: compare as arrays
        np.testing.assert_array_equal(list(res.test_metric.values()), list(alone.test_metric.values()))


def test_different_stack_partners_do_not_change_numbers(mixed_dataset):
    cfg = TrainConfig(max_epochs=8, patience=2, lr=0.05)
    a = train_group_models(mixed_dataset, [(0, 1), (2,), (1, 2, 3)], cfg, seed=1)
    b = train_group_models(mixed_dataset, [(3,), (1, 2, 3), (0, 1)], cfg, seed=1)
    assert a[0].test_loss == b[2].test_loss
    assert a[2].test_loss == b[1].test_loss


def test_same_seed_same_numbers_other_seed_differs(mixed_dataset):
    cfg = TrainConfig(max_epochs=5, lr=0.05)
    r1 = train_group_models(mixed_dataset, [(0, 1, 2, 3)], cfg, seed=0)[0]
    r2 = train_group_models(mixed_dataset, [(0, 1, 2, 3)], cfg, seed=0)[0]
    r3 = train_group_models(mixed_dataset, [(0, 1, 2, 3)], cfg, seed=1)[0]
    assert r1.test_loss == r2.test_loss
    assert r1.test_loss != r3.test_loss


def test_training_lowers_loss_and_early_stopping_restores_best(mixed_dataset):
    cfg = TrainConfig(max_epochs=60, patience=4, lr=0.05)
    res = train_group_models(mixed_dataset, [(0, 1, 2, 3)], cfg, seed=0)[0]
    untrained = train_group_models(mixed_dataset, [(0, 1, 2, 3)], TrainConfig(max_epochs=1, lr=1e-9), seed=0)[0]
    assert sum(res.test_loss.values()) < sum(untrained.test_loss.values())
    assert res.best_epoch <= res.epochs
    assert res.epochs < 60 and res.epochs - res.best_epoch == cfg.patience
    assert res.test_metric[0] > 0.8  # AUROC of an easy, planted task


def test_missing_labels_carry_no_loss(mixed_dataset):
    """Changing features of rows whose label is missing for a task leaves an STL model of that task unchanged."""
    ds = mixed_dataset
    cfg = TrainConfig(max_epochs=4, lr=0.05)
    base = train_group_models(ds, [(3,)], cfg, seed=0)[0]
    Y = ds.Y.copy()
    unlabelled = np.isnan(Y[:, 3]) & (ds.split == 0)
    assert unlabelled.sum() > 10
    # Corrupt the *other* tasks' labels on those rows: task 3's model must not notice.
    Y[unlabelled, :3] = np.where(np.isnan(Y[unlabelled, :3]), np.nan, 0.0)
    ds2 = type(ds)(ds.name, ds.tasks, ds.X, Y, ds.split, ds.feature_names)
    other = train_group_models(ds2, [(3,)], cfg, seed=0)[0]
    assert base.test_loss == other.test_loss


def test_model_seed_depends_only_on_seed_and_group():
    assert model_seed(0, (1, 2), 5) == model_seed(0, [2, 1], 5)
    assert model_seed(0, (1, 2), 5) != model_seed(1, (1, 2), 5)
    assert model_seed(0, (1, 2), 5) != model_seed(0, (1, 3), 5)


def test_stacked_model_matches_single_module():
    x = torch.randn(9, 5)
    stack = StackedHardSharingMLP(5, (4, 3), 6, seeds=[11, 12])
    single = HardSharingMLP(5, (4, 3), 6, seed=12)
    torch.testing.assert_close(stack(x)[1], single(x))
    torch.testing.assert_close(stack.unstack(1)(x), single(x))


def test_batch_slices_merge_tiny_tail():
    assert [(s.start, s.stop) for s in batch_slices(10, 4)] == [(0, 4), (4, 10)]
    assert [(s.start, s.stop) for s in batch_slices(12, 4)] == [(0, 4), (4, 8), (8, 12)]
    assert [(s.start, s.stop) for s in batch_slices(3, 4)] == [(0, 3)]


def test_bad_groups_rejected(mixed_dataset):
    with pytest.raises(ValueError, match="outside"):
        train_group_models(mixed_dataset, [(0, 9)], TrainConfig(max_epochs=1), seed=0)


def test_config_validation_and_hash():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    assert TrainConfig().config_hash() == TrainConfig().config_hash()
    assert TrainConfig(lr=0.1).config_hash() != TrainConfig().config_hash()


def _per_task_rows_dataset(seed=0):
    """Per-task rows: each row belongs to one of 4 tasks of very different sizes."""
    from negtransfer.data.dataset import MultiTaskDataset, TaskSpec

    rng = np.random.default_rng(seed)
    sizes = [40, 90, 150, 260]
    row_task = np.repeat(np.arange(4), sizes)
    X = rng.normal(size=(row_task.size, 5)).astype(np.float32)
    w = rng.normal(size=5)
    Y = np.full((row_task.size, 4), np.nan)
    for t in range(4):
        rows = row_task == t
        sign = 1.0 if t < 2 else -1.0
        Y[rows, t] = (sign * X[rows] @ w + 0.5 * rng.normal(size=rows.sum()) > 0).astype(float)
    split = rng.choice([0, 0, 0, 1, 2], size=row_task.size).astype(np.int8)
    tasks = tuple(TaskSpec(f"s{t}", "binary", (0, 1)) for t in range(4))
    return MultiTaskDataset("rows", tasks, X, Y, split, tuple(f"x{i}" for i in range(5)), row_task=row_task)


def test_per_task_rows_models_see_only_their_rows_and_match_alone():
    ds = _per_task_rows_dataset()
    cfg = TrainConfig(max_epochs=10, patience=3, lr=0.05)
    groups = [(0,), (1,), (3,), (0, 1), (2, 3), (0, 1, 2, 3)]
    together = train_group_models(ds, groups, cfg, seed=2)
    for g, res in zip(groups, together, strict=True):
        alone = train_group_models(ds, [g], cfg, seed=2)[0]
        assert res.test_loss == alone.test_loss and res.epochs == alone.epochs
    # rows of other tasks cannot change a model: perturb task 3's features, task 0's STL model is unchanged
    X = ds.X.copy()
    X[ds.row_task == 3] += 5.0
    moved = type(ds)(ds.name, ds.tasks, X, ds.Y, ds.split, ds.feature_names, row_task=ds.row_task)
    assert train_group_models(moved, [(0,)], cfg, seed=2)[0].test_loss == together[0].test_loss
    assert train_group_models(moved, [(0, 3)], cfg, seed=2)[0].test_loss != train_group_models(ds, [(0, 3)], cfg, seed=2)[0].test_loss


def test_per_task_rows_epoch_covers_only_the_groups_rows():
    ds = _per_task_rows_dataset()
    steps = []
    hook = lambda losses, model, opt, batch: steps.append(1)  # noqa: E731 - counts steps, keeps the default backward
    cfg = TrainConfig(max_epochs=1, batch_size=16)
    train_group_models(ds, [(0,)], cfg, seed=0, step_hook=hook)
    n0 = int(((ds.row_task == 0) & (ds.split == 0)).sum())
    assert len(steps) == -(-n0 // 16)


def test_shared_init_starts_every_model_from_the_same_weights(mixed_dataset):
    frozen = TrainConfig(max_epochs=1, lr=1e-30, shared_init=True)
    a, b = train_group_models(mixed_dataset, [(0, 1), (0, 2, 3)], frozen, seed=0)
    assert a.test_loss[0] == b.test_loss[0]
    own = TrainConfig(max_epochs=1, lr=1e-30, shared_init=False)
    a, b = train_group_models(mixed_dataset, [(0, 1), (0, 2, 3)], own, seed=0)
    assert a.test_loss[0] != b.test_loss[0]


# ------------------------------------------------------------------ repeats
def test_repeat_seed_zero_is_the_job_seed_and_others_differ():
    from negtransfer.train.batched import repeat_seed

    assert repeat_seed(7, 0) == 7
    seeds = {repeat_seed(s, r) for s in range(3) for r in range(4)}
    assert len(seeds) == 12  # no two (seed, repeat) pairs share a training seed
    with pytest.raises(ValueError):
        repeat_seed(0, -1)


@pytest.mark.parametrize("per_task_rows", [False, True])
def test_repeats_stacked_equal_repeats_trained_alone(mixed_dataset, per_task_rows):
    ds = _per_task_rows_dataset() if per_task_rows else mixed_dataset
    cfg = TrainConfig(max_epochs=6, patience=2, lr=0.05, shared_init=True)
    groups = [(0,), (0, 1), (0,), (0, 1), (1, 2, 3)]
    repeats = [0, 0, 1, 1, 2]
    together = train_group_models(ds, groups, cfg, seed=4, repeats=repeats)
    for g, r, res in zip(groups, repeats, together, strict=True):
        alone = train_group_models(ds, [g], cfg, seed=4, repeats=[r])[0]
        assert res.repeat == alone.repeat == r
        assert res.test_loss == alone.test_loss and res.epochs == alone.epochs
    # repeat 0 is the run without repeats; other repeats are other runs
    assert together[0].test_loss == train_group_models(ds, [(0,)], cfg, seed=4)[0].test_loss
    assert together[0].test_loss != together[2].test_loss


def test_common_init_per_repeat(mixed_dataset):
    frozen = TrainConfig(max_epochs=1, lr=1e-30, shared_init=True)
    res = train_group_models(mixed_dataset, [(0, 1), (0, 2, 3), (0, 1), (0, 2, 3)], frozen, seed=0, repeats=[0, 0, 1, 1])
    assert res[0].test_loss[0] == res[1].test_loss[0]  # repeat 0: one starting point
    assert res[2].test_loss[0] == res[3].test_loss[0]  # repeat 1: another one
    assert res[0].test_loss[0] != res[2].test_loss[0]


def test_a_run_is_trained_once(mixed_dataset):
    with pytest.raises(ValueError, match="twice"):
        train_group_models(mixed_dataset, [(0,), (0,)], TrainConfig(max_epochs=1), seed=0, repeats=[1, 1])
    with pytest.raises(ValueError, match="entries"):
        train_group_models(mixed_dataset, [(0,)], TrainConfig(max_epochs=1), seed=0, repeats=[0, 1])


# --------------------------------------------- per-task batches, oversampling, schedule
def test_task_batches_take_batch_size_rows_of_every_task():
    ds = _per_task_rows_dataset()
    seen = []

    def hook(losses, model, opt, batch):
        seen.append(None)

    cfg = TrainConfig(max_epochs=1, batch_size=16, batching="per-task")
    train_group_models(ds, [(0, 3)], cfg, seed=0, step_hook=hook)
    n = [int(((ds.row_task == t) & (ds.split == 0)).sum()) for t in (0, 3)]
    assert len(seen) == -(-max(n) // 16)  # steps until the larger task is used up
    seen.clear()
    train_group_models(ds, [(0, 3)], TrainConfig(**{**cfg.to_dict(), "oversample": True}), seed=0, step_hook=hook)
    assert len(seen) == -(-max(n) // 16)  # oversampled: the same number of steps, the small task topped up


def test_oversampling_draws_equally_from_each_class():
    import torch

    from negtransfer.train.batched import _Batches

    ds = _per_task_rows_dataset()
    cfg = TrainConfig(batch_size=8, batching="per-task", oversample=True)
    batches = _Batches(ds, [(0, 3)], [5], cfg)
    small, large = batches.rows[0]
    assert small.numel() == large.numel() == int(((ds.row_task == 3) & (ds.split == 0)).sum())
    original = int(((ds.row_task == 0) & (ds.split == 0)).sum())
    added = torch.from_numpy(ds.Y[small[original:].numpy(), 0])
    assert abs(int((added == 1).sum()) - int((added == 0).sum())) <= 1
    assert set(small.tolist()) <= set(np.flatnonzero((ds.row_task == 0) & (ds.split == 0)).tolist())
    # single-task models are not oversampled
    alone = _Batches(ds, [(0,)], [5], cfg)
    assert alone.rows[0][0].numel() == original


def test_task_batches_stacked_equal_alone():
    ds = _per_task_rows_dataset()
    cfg = TrainConfig(max_epochs=5, patience=2, lr=0.05, batch_size=8, batching="per-task", oversample=True)
    groups = [(0,), (1, 2), (0, 3), (0, 1, 2, 3), (3,)]
    together = train_group_models(ds, groups, cfg, seed=1)
    for g, res in zip(groups, together, strict=True):
        assert res.test_loss == train_group_models(ds, [g], cfg, seed=1)[0].test_loss


def test_per_task_batches_need_per_task_rows(mixed_dataset):
    with pytest.raises(ValueError, match="per-task-rows"):
        train_group_models(mixed_dataset, [(0,)], TrainConfig(max_epochs=1, batching="per-task"), seed=0)
    with pytest.raises(ValueError, match="per-task batches"):
        TrainConfig(oversample=True, batching="pooled")
    with pytest.raises(ValueError, match="batching"):
        TrainConfig(batching="sideways")
    # auto: per-task batches for per-task rows, pooled for multi-label data
    assert TrainConfig().per_task_batches(True) and not TrainConfig().per_task_batches(False)
    assert not TrainConfig(batching="pooled").per_task_batches(True)


def test_learning_rate_schedule_and_presets():
    cfg = TrainConfig.preset("etap-chemical")
    assert (cfg.lr, cfg.batch_size, cfg.patience, cfg.max_epochs) == (0.001, 264, 20, 1000)
    assert (cfg.init, cfg.oversample, cfg.batching) == ("glorot", True, "per-task")
    assert cfg.learning_rate_at(1) == cfg.learning_rate_at(149) == 0.001
    assert cfg.learning_rate_at(150) == 0.0005 and cfg.learning_rate_at(225) == 0.00025
    assert TrainConfig().learning_rate_at(500) == TrainConfig().lr
    assert TrainConfig.preset("etap-chemical", lr=0.01).lr == 0.01
    with pytest.raises(ValueError, match="unknown training preset"):
        TrainConfig.preset("nope")


def test_odd_evaluation_sizes_do_not_depend_on_the_stack():
    """Validation/test sets whose row counts are not multiples of 16 (here 5 binary outputs over ~300 rows)
    take other MKL paths for other stack sizes unless padded; a model's numbers must not change."""
    import itertools

    from negtransfer.data.synthetic import make_synthetic_tasks

    ds = make_synthetic_tasks(n_tasks=5, n_clusters=2, task_kind="binary", layout="per-task-rows", n_samples=300,
                              seed=3)
    assert (ds.split == 2).sum() % 16 and (ds.split == 1).sum() % 16
    cfg = TrainConfig(max_epochs=6)
    groups = [g for g in itertools.combinations(range(5), 3) if 0 in g]
    together = train_group_models(ds, groups, cfg, 0)
    for g, res in zip(groups, together, strict=True):
        alone = train_group_models(ds, [g], cfg, 0)[0]
        assert res.test_loss == alone.test_loss and res.val_loss == alone.val_loss


# --- options for training parity between STL and group models (issue 11) ---------------------------------


def test_new_options_at_their_defaults_keep_every_stored_runs_key():
    # the hash of the defaults (and of a preset) before these options existed: stores stay valid
    assert TrainConfig().config_hash() == "fedb84d1373d9bcd"
    # the preset before it initialised as Keras does keeps its key; with Glorot it keys new runs (issue 25)
    assert TrainConfig.preset("etap-chemical", init="torch").config_hash() == "a6caa4246e63b5e7"
    assert TrainConfig.preset("etap-chemical").config_hash() not in ("a6caa4246e63b5e7", "fedb84d1373d9bcd")
    for change in ({"loss_weighting": "row-mean"}, {"steps_per_epoch": 3}, {"stopping_task": 0},
                   {"stopping_rows": "half"}, {"early_stopping": False}):
        assert TrainConfig(**change).config_hash() != TrainConfig().config_hash()


def test_new_options_are_checked():
    with pytest.raises(ValueError, match="loss_weighting"):
        TrainConfig(loss_weighting="sum")
    with pytest.raises(ValueError, match="steps_per_epoch"):
        TrainConfig(steps_per_epoch=-1)
    with pytest.raises(ValueError, match="steps_per_epoch needs pooled"):
        TrainConfig(steps_per_epoch=2, batching="per-task")
    with pytest.raises(ValueError, match="stopping_task"):
        TrainConfig(stopping_task=-1)
    with pytest.raises(ValueError, match="stopping_rows"):
        TrainConfig(stopping_rows="third")


def test_row_mean_is_task_mean_for_one_task_and_differs_for_groups():
    ds = _per_task_rows_dataset()
    base = TrainConfig(max_epochs=4, lr=0.05, batching="pooled")
    rows = TrainConfig(max_epochs=4, lr=0.05, batching="pooled", loss_weighting="row-mean")
    assert train_group_models(ds, [(0,)], base, 0)[0].test_loss == train_group_models(ds, [(0,)], rows, 0)[0].test_loss
    assert train_group_models(ds, [(0, 1)], base, 0)[0].test_loss != train_group_models(ds, [(0, 1)], rows, 0)[0].test_loss


def test_steps_per_epoch_gives_every_group_the_same_step_budget(mixed_dataset):
    ds = _per_task_rows_dataset()
    steps = []
    hook = lambda losses, model, opt, batch: steps.append(batch[0].shape[1])  # noqa: E731
    cfg = TrainConfig(max_epochs=3, batch_size=16, batching="pooled", steps_per_epoch=5, early_stopping=False)
    for group in [(0,), (0, 1, 2, 3)]:
        steps.clear()
        res = train_group_models(ds, [group], cfg, seed=0, step_hook=hook)[0]
        assert len(steps) == 15 and res.epochs == 3 and res.best_epoch == 3  # fixed budget, last weights kept
    with pytest.raises(ValueError, match="per-task-rows"):
        train_group_models(mixed_dataset, [(0,)], TrainConfig(steps_per_epoch=2), 0)


def test_parity_options_stacked_equal_alone():
    ds = _per_task_rows_dataset()
    cfg = TrainConfig(max_epochs=6, patience=2, lr=0.05, batching="pooled", loss_weighting="row-mean",
                      steps_per_epoch=4, stopping_task=0, stopping_rows="half")
    groups = [(0,), (0, 1), (0, 2, 3), (0, 1, 2, 3)]
    together = train_group_models(ds, groups, cfg, seed=1)
    for g, res in zip(groups, together, strict=True):
        alone = train_group_models(ds, [g], cfg, seed=1)[0]
        assert res.test_loss == alone.test_loss and res.extra["val_est_loss"] == alone.extra["val_est_loss"]
    with pytest.raises(ValueError, match="stopping task 0"):
        train_group_models(ds, [(1, 2)], cfg, seed=1)


def test_validation_halves_split_each_tasks_rows_in_two():
    from negtransfer.train.batched import validation_halves

    ds = _per_task_rows_dataset()
    stop, est = validation_halves(ds)
    assert not set(stop) & set(est) and set(stop) | set(est) == set(np.flatnonzero(ds.split == 1))
    for t in range(ds.n_tasks):
        assert abs(int((ds.row_task[stop] == t).sum()) - int((ds.row_task[est] == t).sum())) <= 1
    cfg = TrainConfig(max_epochs=5, lr=0.05, batching="pooled", stopping_task=0, stopping_rows="half")
    res = train_group_models(ds, [(0, 1)], cfg, 0)[0]
    assert set(res.extra["val_est_loss"]) == {0, 1} and res.extra["val_est_loss"][0] != res.val_loss[0]
    assert {"val_est_margin_loss", "val_est_logit_margin", "val_est_zero_one"} <= set(res.extra)


def test_stopping_on_the_target_alone_ignores_the_other_tasks_validation_rows():
    ds = _per_task_rows_dataset()
    X = ds.X.copy()
    X[(ds.split == 1) & (ds.row_task == 0)] *= -1  # task 0's validation rows now disagree with training
    moved = type(ds)(ds.name, ds.tasks, X, ds.Y, ds.split, ds.feature_names, row_task=ds.row_task)
    summed = TrainConfig(max_epochs=40, patience=5, lr=0.01, batching="pooled")
    target = TrainConfig(max_epochs=40, patience=5, lr=0.01, batching="pooled", stopping_task=3)
    # the summed stopping loss moves with task 0's validation rows; stopping on task 3 alone does not
    assert train_group_models(moved, [(0, 3)], summed, 0)[0].best_epoch != \
        train_group_models(ds, [(0, 3)], summed, 0)[0].best_epoch
    a, b = train_group_models(moved, [(0, 3)], target, 0)[0], train_group_models(ds, [(0, 3)], target, 0)[0]
    assert a.best_epoch == b.best_epoch and a.test_loss[3] == b.test_loss[3]


def test_logit_margin_of_a_binary_task_is_minus_the_signed_logit():
    ds = _per_task_rows_dataset()
    res = train_group_models(ds, [(0,)], TrainConfig(max_epochs=3, lr=0.05), 0, keep_test_predictions=True)[0]
    p = np.asarray(res.extra["test_prediction"][0], dtype=float)
    y = ds.Y[np.asarray(res.extra["test_rows"][0]), 0]
    expected = np.mean((1 - 2 * y) * np.log(p / (1 - p)))
    assert res.extra["test_logit_margin"][0] == pytest.approx(expected, rel=1e-4)


def _intel_cpu() -> bool:
    try:
        return "GenuineIntel" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


# the default widths everywhere; narrow ones only on an Intel CPU: on an AMD EPYC (MKL, AVX-512) widths (8, 4),
# (16, 4) and (16, 16) round differently in a stack of 2 than alone, in the last bits (docs/training.md)
@pytest.mark.parametrize("hidden", [(32, 16), pytest.param((8, 4), marks=pytest.mark.skipif(
    not _intel_cpu(), reason="narrow layers are stack-invariant on Intel CPUs only (docs/training.md)"))])
def test_kept_parameters_are_each_models_best_weights(mixed_dataset, hidden):
    """keep_parameters: [W1, b1, ...] of every model of a stack, whose outputs give the reported validation losses."""
    from negtransfer.data.dataset import VALIDATION
    from negtransfer.train.losses import TaskLossLayout

    ds = mixed_dataset
    cfg = TrainConfig(max_epochs=4, lr=0.05, hidden=hidden)
    results = train_group_models(ds, [(0, 1), (0, 1, 2, 3)], cfg, seed=2, keep_parameters=True)
    alone = train_group_models(ds, [(0, 1, 2, 3)], cfg, seed=2, keep_parameters=True)[0]
    layout = TaskLossLayout(ds.tasks)
    x, y = torch.from_numpy(ds.X[ds.split == VALIDATION]), torch.from_numpy(ds.Y[ds.split == VALIDATION])
    for res in results:
        params = res.extra["parameters"]
        assert [tuple(p.shape) for p in params] == [(ds.n_features, hidden[0]), (hidden[0],), hidden, (hidden[1],), (hidden[1], layout.n_outputs),
                                                    (layout.n_outputs,)]
        h = x
        for i in range(0, len(params), 2):
            h = h @ params[i] + params[i + 1]
            h = torch.relu(h) if i < len(params) - 2 else h
        losses = layout.task_losses(h.unsqueeze(0), y)[0][0]
        for t in res.group:
            assert float(losses[t]) == pytest.approx(res.val_loss[t], rel=1e-5)
    for a, b in zip(results[1].extra["parameters"], alone.extra["parameters"], strict=True):
        assert torch.equal(a, b)
    assert "parameters" not in train_group_models(ds, [(0,)], cfg, seed=2)[0].extra


def test_no_validation_rows_skip_the_per_epoch_validation_with_the_same_numbers(mixed_dataset, monkeypatch):
    """A refit's dataset has no validation row: the stack is not run on the empty rows each epoch, and every
    number is what running it gave (losses 0, the record advanced; checked against the old validation)."""
    from negtransfer.jobs.grouping import refit_dataset
    from negtransfer.train import batched

    refit = refit_dataset(mixed_dataset)
    cfg = TrainConfig(max_epochs=4, lr=0.05, early_stopping=False)
    groups = [(0, 1), (2,), (0, 1, 2, 3)]
    validated = []
    stopping_loss = batched._stopping_loss
    monkeypatch.setattr(batched, "_stopping_loss", lambda *args: validated.append(1) or stopping_loss(*args))
    skipped = train_group_models(refit, groups, cfg, seed=2, epochs=[3, 4, 2])
    assert not validated  # no epoch scored the stack on the empty validation rows
    train_group_models(mixed_dataset, groups, cfg, seed=2, epochs=[3, 4, 2])
    assert len(validated) == 4  # with validation rows: every epoch

    @torch.no_grad()
    def old_validate(model, layout, validation, state, epoch, config):
        model.eval()
        val_sums, val_counts = layout.loss_sums(model(validation[0]), validation[1])
        return state.update(epoch, batched._stopping_loss(val_sums, val_counts, state.mask, config),
                            batched.stack_state(model), config)

    monkeypatch.setattr(batched, "_validate", old_validate)
    run = train_group_models(refit, groups, cfg, seed=2, epochs=[3, 4, 2])
    for a, b in zip(skipped, run, strict=True):
        assert a.test_loss == b.test_loss and (a.best_epoch, a.epochs) == (b.best_epoch, b.epochs)
    assert [r.epochs for r in skipped] == [3, 4, 2]
