"""The stacked trainer with any model (issue 24): built-in encoders and user factories, stacked or one at a time."""

import pickle
import warnings

import numpy as np
import pytest
from torch import nn

from negtransfer.nn.stacked import UnstackableModelWarning
from negtransfer.train.batched import model_stacking_plan, train_group_models
from negtransfer.train.config import TrainConfig
from negtransfer.train.model_choice import ModelChoice

GROUPS = [(0,), (1,), (0, 1, 2), (1, 2), (0, 2)]
REPEATS = [0, 0, 1, 0, 1]


def _same(a, b):
    assert a.group == b.group and a.repeat == b.repeat
    assert a.val_loss == b.val_loss and a.test_loss == b.test_loss
    assert a.best_epoch == b.best_epoch and a.epochs == b.epochs
    np.testing.assert_array_equal(list(a.test_metric.values()), list(b.test_metric.values()))


@pytest.mark.parametrize(("encoder", "optimizer"), [("cnn", "sgd"), ("lstm", "adam"), ("transformer", "sgd")])
def test_a_model_trained_in_a_stack_equals_it_trained_alone_bit_for_bit(encoder, optimizer, shaped_data,
                                                                        example_shapes):
    data = shaped_data(example_shapes[encoder])
    cfg = TrainConfig(model=ModelChoice(encoder), optimizer=optimizer, max_epochs=5, patience=1,
                      lr=0.05 if optimizer == "sgd" else 0.01)
    together = train_group_models(data, GROUPS, cfg, seed=2, repeats=REPEATS)
    assert len({res.epochs for res in together}) > 1  # models stopped at different epochs: the stack shrank
    for g, r, res in zip(GROUPS, REPEATS, together, strict=True):
        _same(res, train_group_models(data, [g], cfg, seed=2, repeats=[r])[0])
    partners = train_group_models(data, [GROUPS[3], GROUPS[2]], cfg, seed=2, repeats=[0, 1])
    _same(partners[1], together[2])


def test_training_a_factory_model_lowers_the_loss_and_keeps_its_best_weights(shaped_data, example_shapes):
    data = shaped_data(example_shapes["cnn"], n_rows=300)
    short = TrainConfig(model="cnn", max_epochs=1, lr=0.1)
    longer = TrainConfig(model="cnn", max_epochs=12, patience=3, lr=0.1)
    r1 = train_group_models(data, [(0, 1, 2)], short, seed=0)[0]
    r2 = train_group_models(data, [(0, 1, 2)], longer, seed=0, keep_parameters=True)[0]
    assert sum(r2.val_loss.values()) < sum(r1.val_loss.values())
    assert 1 <= r2.best_epoch <= r2.epochs
    state = r2.extra["parameters"]
    assert any(name.startswith("encoder.") for name in state) and any(name.startswith("heads.") for name in state)


def test_the_mlp_reads_examples_of_any_shape_flattened(shaped_data):
    cube = shaped_data((2, 3))
    flat = shaped_data((6,))
    cfg = TrainConfig(max_epochs=3)
    for a, b in zip(train_group_models(cube, GROUPS[:3], cfg, seed=1), train_group_models(flat, GROUPS[:3], cfg, seed=1),
                    strict=True):
        _same(a, b)


def batch_norm_model(input_shape, outputs):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 8), nn.BatchNorm1d(8), nn.ReLU())
    return encoder, [nn.Linear(8, o) for o in outputs]


def dropout_model(input_shape, outputs):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 8), nn.ReLU(), nn.Dropout(0.3))
    return encoder, [nn.Linear(8, o) for o in outputs]


@pytest.mark.parametrize("make", [batch_norm_model, dropout_model])
def test_a_model_that_cannot_stack_trains_one_at_a_time_with_a_warning(make, shaped_data):
    data = shaped_data((2, 3))
    cfg = TrainConfig(model=ModelChoice.from_callable(make), max_epochs=3, lr=0.05)
    plan = model_stacking_plan(cfg, (2, 3), [1, 3, 1], 32)
    assert not plan.stackable and plan.note
    with pytest.warns(UnstackableModelWarning, match="one at a time"):
        together = train_group_models(data, GROUPS[:3], cfg, seed=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnstackableModelWarning)
        for g, res in zip(GROUPS[:3], together, strict=True):
            _same(res, train_group_models(data, [g], cfg, seed=5)[0])


def test_a_user_factory_file_trains_and_keys_its_runs_by_its_source(tmp_path, shaped_data):
    path = tmp_path / "my_model.py"
    path.write_text("from torch import nn\n\n\ndef make(input_shape, outputs, width=8):\n"
                    "    encoder = nn.Sequential(nn.Flatten(), nn.Linear(6, width), nn.Tanh())\n"
                    "    return encoder, [nn.Linear(width, o) for o in outputs]\n")
    choice = ModelChoice(factory=f"{path}:make", arguments={"width": 4})
    cfg = TrainConfig(model=choice, max_epochs=2)
    assert cfg.config_hash() != TrainConfig(model=ModelChoice(factory=f"{path}:make")).config_hash()
    results = train_group_models(shaped_data((2, 3)), GROUPS[:2], cfg, seed=0)
    assert all(np.isfinite(list(r.test_loss.values())).all() for r in results)
    worker = pickle.loads(pickle.dumps(cfg))  # what a process-pool worker receives: the reference and the hash
    assert worker == cfg and worker.config_hash() == cfg.config_hash()
    before = cfg.config_hash()
    path.write_text(path.read_text() + "\n# edited\n")
    assert TrainConfig(model=ModelChoice(factory=f"{path}:make", arguments={"width": 4})).config_hash() != before
    with pytest.raises(ValueError, match="changed since the job started"):
        worker.model.factory_function()


def test_the_default_model_keeps_every_stored_runs_key_and_other_models_change_it():
    assert TrainConfig().config_hash() == "fedb84d1373d9bcd"  # the value before models could be chosen
    assert TrainConfig(model="mlp").config_hash() == TrainConfig().config_hash()
    assert "model" not in TrainConfig().to_dict()
    keys = {TrainConfig(model=m).config_hash() for m in
            ("cnn", "lstm", "transformer", ModelChoice("cnn", arguments={"hidden": 16}),
             ModelChoice("lstm", arguments={"hidden": 16}))}
    assert len(keys) == 5 and TrainConfig().config_hash() not in keys
    with_version = ModelChoice.from_callable(batch_norm_model, version="1")
    assert with_version.key_fields()["version"] == "1" and with_version.key_fields()["source"] is None
    assert TrainConfig(model=with_version).config_hash() != TrainConfig(
        model=ModelChoice.from_callable(batch_norm_model, version="2")).config_hash()
    keyed = ModelChoice.from_callable(batch_norm_model)
    assert keyed.factory.endswith(":batch_norm_model") and keyed.source_hash
    assert pickle.loads(pickle.dumps(keyed)).factory_function() is batch_norm_model


def test_bad_model_choices_are_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="unknown encoder 'resnet'"):
        ModelChoice("resnet")
    with pytest.raises(ValueError, match="mlp encoder takes no arguments"):
        ModelChoice("mlp", arguments={"hidden": 3})
    with pytest.raises(ValueError, match="does not exist"):
        ModelChoice(factory=str(tmp_path / "missing.py") + ":make")
    with pytest.raises(ValueError, match="cannot be found"):
        ModelChoice(factory="no_such_package_xyz.models:make")
    with pytest.raises(ValueError, match="'package.module:function'"):
        ModelChoice(factory="just_a_name")
    path = tmp_path / "m.py"
    path.write_text("def other(input_shape, outputs):\n    return None\n")
    with pytest.raises(ValueError, match="has no function 'make'"):
        ModelChoice(factory=f"{path}:make").factory_function()
    with pytest.raises(ValueError, match="module-level function"):
        ModelChoice.from_callable(lambda s, o: None)


def test_pcgrad_and_per_task_rows_work_with_a_factory_model_stacked_as_alone(shaped_data, example_shapes):
    data = shaped_data(example_shapes["lstm"])
    cfg = TrainConfig(model="lstm", gradient_aggregation="pcgrad", max_epochs=3, lr=0.05)
    together = train_group_models(data, GROUPS[2:], cfg, seed=1)
    for g, res in zip(GROUPS[2:], together, strict=True):
        _same(res, train_group_models(data, [g], cfg, seed=1)[0])
    rows = shaped_data(example_shapes["cnn"], n_rows=120)
    rows.Y[:] = np.nan
    rows.row_task = np.arange(120) % 3
    full = shaped_data(example_shapes["cnn"], n_rows=120).Y
    rows.Y[np.arange(120), rows.row_task] = np.nan_to_num(full[np.arange(120), rows.row_task])
    cfg = TrainConfig(model="cnn", max_epochs=2, lr=0.05)
    together = train_group_models(rows, GROUPS[2:], cfg, seed=1)
    for g, res in zip(GROUPS[2:], together, strict=True):
        _same(res, train_group_models(rows, [g], cfg, seed=1)[0])


def test_tag_lookahead_runs_on_a_model_that_cannot_stack_without_touching_its_buffers(shaped_data):
    from negtransfer.affinity.training import train_with_affinity

    data = shaped_data((2, 3))
    cfg = TrainConfig(model=ModelChoice.from_callable(batch_norm_model), max_epochs=2, lr=0.05)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnstackableModelWarning)
        tracker, result, _ = train_with_affinity(data, cfg, seed=0, kind="tag")
        plain = train_group_models(data, [(0, 1, 2)], cfg, seed=0)[0]
    assert np.isfinite(tracker.affinity_matrix).all()
    _same(result, plain)  # the lookahead passes leave the batch-norm statistics alone


def wrong_width(input_shape, outputs):
    return nn.Flatten(), [nn.Linear(6, 2) for _ in outputs]


def test_check_model_refuses_a_bad_factory_before_training_and_notes_one_that_cannot_stack(shaped_data):
    from negtransfer.train.batched import check_model

    data = shaped_data((2, 3))
    with pytest.raises(ValueError, match="head 0 .* must return \\(2, 1\\)"):
        check_model(data, TrainConfig(model=wrong_width))
    with pytest.raises(ValueError, match="head 0"):
        train_group_models(data, [(0,)], TrainConfig(model=wrong_width), seed=0)
    assert check_model(data, TrainConfig(model=dropout_model)).note
    assert check_model(data, TrainConfig(model="mlp")).stackable
