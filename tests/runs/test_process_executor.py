"""The process executor's errors at the boundary: what a user of executor='process' is told when it cannot work."""

import os
import sys
import types

import pytest

from negtransfer.runs.executors import ProcessPoolExecutor


def _user_config(factory):
    return types.SimpleNamespace(model=types.SimpleNamespace(factory=factory))


def test_a_notebook_factory_is_refused_before_any_worker_starts(monkeypatch):
    """A factory defined in a notebook is `__main__:make`, which a spawned worker cannot import: said at once, with
    the fix, instead of failing in every worker once training starts."""
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))  # a notebook's __main__: no file
    with pytest.raises(ValueError, match="make is defined in an interactive session .* model='mynet.py:make', or "
                                         "use executor='local'"):
        ProcessPoolExecutor(1).run(None, [[((0,), 0)]], _user_config("__main__:make"), 0, lambda results: None)
    script = types.ModuleType("__main__")
    script.__file__ = "/somewhere/job.py"  # a script: spawned workers import it, so its factories resolve
    monkeypatch.setitem(sys.modules, "__main__", script)
    ProcessPoolExecutor(1).run(None, [], _user_config("__main__:make"), 0, lambda results: None)  # no chunk, no pool
    ProcessPoolExecutor(1).run(None, [], _user_config(None), 0, lambda results: None)


@pytest.mark.slow
def test_a_worker_that_dies_is_explained_with_the_main_guard():
    """A script without `if __name__ == "__main__":` makes every spawned worker run the script again and die; the
    pool's bare BrokenProcessPool said neither why nor what to do."""
    with pytest.raises(RuntimeError, match='ended abruptly.*if __name__ == "__main__":.*out of memory'):
        ProcessPoolExecutor(1).map(os._exit, [3], lambda index, result: None)
