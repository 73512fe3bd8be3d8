"""Each choice, default and check is written once: the CLI's options against the jobs' options dataclasses."""

import inspect
import typing

import pytest
import typer

from negtransfer.cli import app, compare, compare_grouping, gains, group, sources


def _defaults(command) -> dict:
    return {name: p.default.default for name, p in inspect.signature(command).parameters.items()}


def _choices(command) -> dict:
    """Option name -> its choices, for options typed with a Literal (also Optional[Literal])."""
    hints = typing.get_type_hints(command)
    out = {}
    for name, hint in hints.items():
        args = typing.get_args(hint)
        if typing.get_origin(hint) is typing.Union:
            hint = next(a for a in args if a is not type(None))
        if typing.get_origin(hint) is typing.Literal:
            out[name] = typing.get_args(hint)
    return out


def test_gains_defaults_are_the_jobs():
    from negtransfer.jobs.gains import DEFAULT_GROUPS, GainsOptions

    cli, api = _defaults(gains), GainsOptions()
    for name in ("sizes", "repeats", "chunk_size"):
        assert cli[name] == getattr(api, name), name
    # no --groups: the job's default, or all groups where fewer than it asks for exist (default_groups), the same
    # rule in the Python API (tests/test_api.py); --help names the default
    assert cli["groups"] is None and api.groups == DEFAULT_GROUPS
    assert inspect.signature(gains).parameters["groups"].default.show_default.startswith(DEFAULT_GROUPS)


def test_group_defaults_are_the_jobs():
    from negtransfer.jobs.grouping import GroupingOptions

    cli, api = _defaults(group), GroupingOptions()
    pairs = {"budget": "budget", "method": "method", "train_groups": "n_train_groups", "design": "design",
             "repeats": "repeats", "rounds": "rounds", "kappa": "kappa", "objective": "objective",
             "gain_split": "gain_split", "affinity_every": "affinity_every", "affinity_momentum": "affinity_momentum",
             "affinity_epochs": "affinity_epochs", "chunk_size": "chunk_size", "max_runs": "max_runs",
             "per_round": "per_round", "evaluate": "evaluate", "exhaustive": "exhaustive", "trace": "trace_pairs",
             "audit": "audit", "refit": "refit", "refit_epochs": "refit_epochs"}
    for cli_name, api_name in pairs.items():
        assert cli[cli_name] == getattr(api, api_name), (cli_name, cli[cli_name], getattr(api, api_name))
    assert (not cli["predicted_only"]) == api.use_measured and (1 if cli["no_refine"] else cli["rounds"]) == api.rounds


def test_sources_defaults_are_the_jobs():
    """Options the CLI leaves at None are resolved by the preset (docstring of negtransfer.api.sources)."""
    from negtransfer.jobs.sources import SourceOptions

    cli, api = _defaults(sources), SourceOptions(target="t")
    pairs = {"alpha": "alpha", "subsets": "n_subsets", "max_runs": "max_runs", "holdout": "holdout", "loss": "loss",
             "ridge": "ridge", "group_attribute": "group_attribute", "common_init": "common_init",
             "data_fraction": "data_fraction", "steps_fraction": "steps_fraction", "threshold_by": "threshold_by",
             "stl_repeats": "stl_repeats", "exhaustive_pairs": "exhaustive_pairs", "max_pair_runs": "max_pair_runs",
             "chunk_size": "chunk_size"}
    for cli_name, api_name in pairs.items():
        assert cli[cli_name] == getattr(api, api_name), (cli_name, cli[cli_name], getattr(api, api_name))
    assert (not cli["no_affinity"]) == api.affinity_baseline
    resolved_by_preset = {"repeats", "grid", "training_scheme"}
    assert all(cli[name] is None for name in resolved_by_preset)


def test_compare_defaults_are_the_jobs():
    from negtransfer.jobs.compare import CompareOptions
    from negtransfer.models.base import FitOptions

    cli, api, fit = _defaults(compare), CompareOptions(models=("stl",)), FitOptions()
    assert (cli["runs"], cli["train_fraction"], cli["threads"]) == (api.runs, api.train_fraction, api.threads)
    for name in ("epochs", "iterations", "batch_size", "lr", "optimizer", "patience"):
        assert cli[name] == getattr(fit, name), name


@pytest.mark.parametrize("command", [gains, group, sources, compare_grouping])
def test_training_defaults_are_train_configs(command):
    from negtransfer.train.config import TrainConfig

    cli, config = _defaults(command), TrainConfig()
    assert cli["device"] == config.device and cli["preset"] == "default" and cli["chunk_size"] is None
    if "gradient_aggregation" in cli:
        assert cli["gradient_aggregation"] == config.gradient_aggregation
    if "encoder" in cli:  # None: TrainConfig's model, the built-in mlp, shown as the default in --help
        option = inspect.signature(command).parameters["encoder"].default
        assert cli["encoder"] is None and option.show_default == config.model.encoder == "mlp"
        assert config.model.is_default and cli["model"] is None and cli["model_version"] is None


def test_choices_are_the_domain_tuples():
    """Every Literal choice of a command is a domain tuple, in its order (help and errors list them so)."""
    from negtransfer.affinity.training import AFFINITY_EPOCHS
    from negtransfer.data.build import IMPUTE_CHOICES
    from negtransfer.jobs.choices import (
        EXHAUSTIVE_PAIRS,
        GAIN_SPLITS,
        OBJECTIVES,
        SOURCE_LOSSES,
        SOURCE_TRAININGS,
        SURROGATES,
        THRESHOLD_BY,
        THRESHOLD_GRIDS,
    )
    from negtransfer.jobs.grouping import REFIT_EPOCHS
    from negtransfer.runs.group_specs import DESIGNS
    from negtransfer.train.config import BATCHING, DEVICES, PRESETS
    from negtransfer.train.model_choice import BUILTIN_ENCODER_NAMES

    expected = {"design": DESIGNS, "objective": OBJECTIVES, "gain_split": GAIN_SPLITS,
                "affinity_epochs": AFFINITY_EPOCHS, "loss": SOURCE_LOSSES, "training_scheme": SOURCE_TRAININGS,
                "grid": THRESHOLD_GRIDS, "threshold_by": THRESHOLD_BY, "exhaustive_pairs": EXHAUSTIVE_PAIRS, "surrogate": SURROGATES,
                "device": DEVICES, "preset": tuple(PRESETS), "batching": BATCHING,
                "impute": tuple(c for c in IMPUTE_CHOICES if c is not None), "executor": ("local", "process", "ray"),
                "optimizer": ("sgd", "adam"), "encoder": BUILTIN_ENCODER_NAMES, "refit_epochs": REFIT_EPOCHS}
    seen = set()
    for command in (gains, group, compare_grouping, sources, compare):
        for name, choices in _choices(command).items():
            assert choices == expected[name], (command.__name__, name, choices)
            seen.add(name)
    assert seen == set(expected)


def test_method_choices_come_from_the_registry_when_the_command_runs():
    """--method is checked against the grouping-method registry at run time (a registered plug-in is accepted)."""
    from negtransfer.cli.group import grouping_method_name
    from negtransfer.jobs.grouping_methods import method_names

    for name in method_names():
        assert grouping_method_name(name) == name
    with pytest.raises(typer.BadParameter, match="is not a grouping method; the methods are: etap"):
        grouping_method_name("nope")


def test_the_unchecked_choices_are_what_the_domain_accepts():
    """--executor and --optimizer stay Literals (their domain modules import PyTorch); the domain takes each."""
    from negtransfer.runs.executors import make_executor
    from negtransfer.train.config import TrainConfig

    for name in ("local", "process"):
        assert make_executor(name, 1) is not None
    with pytest.raises(ValueError, match="unknown executor"):
        make_executor("threads")
    for name in ("sgd", "adam"):
        assert TrainConfig(optimizer=name).optimizer == name
    with pytest.raises(ValueError):
        TrainConfig(optimizer="rmsprop")


def test_task_kinds_are_the_datas():
    from negtransfer.cli.options import TASK_KINDS
    from negtransfer.data.build import TASK_KINDS as DATA_TASK_KINDS

    assert TASK_KINDS == DATA_TASK_KINDS


def test_every_command_is_registered_once():
    from negtransfer.cli.app import COMMANDS

    names = [c.name for c in app.registered_commands]
    assert names == list(COMMANDS) and len(set(names)) == len(names)


def test_option_blocks_stand_in_place_and_reach_the_command_bundled():
    """with_option_blocks: a block's options replace its parameter where it stands (--help's order), and the
    command receives their values as the block's bundle."""
    from pathlib import Path

    from typer.testing import CliRunner

    from negtransfer.cli.options import DATA_BLOCK, DataOptions, RunOptions, runs_block, with_option_blocks

    seen = {}
    runs_x = runs_block("runs/x")

    @with_option_blocks
    def command(first: int = typer.Option(1, "--first"), runs: RunOptions = runs_x,
                data: DataOptions = DATA_BLOCK, last: bool = typer.Option(False, "--last")) -> None:
        seen.update(first=first, runs=runs, data=data, last=last)

    assert list(inspect.signature(command).parameters) == [
        "first", "out", "store", "executor", "workers", "ray_address", "dataset", "data", "tasks", "features",
        "task_column", "label", "task_kinds", "impute", "last"]
    cli = typer.Typer()
    cli.command()(command)
    result = CliRunner().invoke(cli, ["--dataset", "yeast", "--tasks", "a,b", "--workers", "2", "--last"])
    assert result.exit_code == 0, result.output
    assert seen == {"first": 1, "runs": RunOptions(out=Path("runs/x"), workers=2),
                    "data": DataOptions(dataset="yeast", tasks="a,b"), "last": True}


def test_key_value_options_parse_their_values_as_json_where_they_parse():
    """``--set`` and ``--model-arg`` read VALUE alike (:func:`~negtransfer.cli.options.json_or_text`): numbers,
    true/false and lists as JSON, anything else as the text."""
    from negtransfer.cli.options import parse_model_arguments, parse_settings

    assert parse_settings("lr=1e-4,balanced=false,name=fast") == {"lr": 1e-4, "balanced": False, "name": "fast"}
    assert parse_model_arguments(["width=[4, 2]", "kind=gru"]) == {"width": [4, 2], "kind": "gru"}
    with pytest.raises(typer.Exit):
        parse_settings("lr")
