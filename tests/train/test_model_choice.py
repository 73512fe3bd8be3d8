"""ModelChoice.from_callable: a factory whose source cannot be read says how to key it."""

import sys
import types

import pytest

from negtransfer.train.model_choice import ModelChoice


def test_a_factory_without_readable_source_names_model_version(monkeypatch):
    # a function defined in `python -c` or an exec'd string: no module file, no source lines
    module = types.ModuleType("made_without_a_file")
    exec("def make(input_shape, outputs):\n    return None, []\n", module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    with pytest.raises(ValueError, match=r"cannot be read to key its runs; give a version: model_version='1'"):
        ModelChoice.from_callable(module.make)
    assert ModelChoice.from_callable(module.make, version="1").version == "1"
