"""The executors' reprs: what a notebook shows for make_executor(...)."""

from negtransfer.runs.executors import make_executor


def test_an_executor_shows_its_kind_and_workers():
    assert repr(make_executor("local", 1)) == "InProcessExecutor(workers=1)"
    assert repr(make_executor("process", 2)) == "ProcessPoolExecutor(workers=2)"
