import pickle

import numpy as np
import pytest

from negtransfer.data.task_sets import TaskSet


def test_a_task_set_is_the_sorted_tuple():
    s = TaskSet([3, 1, 3])
    assert s == (1, 3) and tuple(s) == (1, 3) and hash(s) == hash((1, 3))
    assert {(1, 3): "found"}[s] == "found" and {s: "found"}[(1, 3)] == "found"
    assert repr(s) == "TaskSet(1, 3)" and pickle.loads(pickle.dumps(s)) == s
    assert type(pickle.loads(pickle.dumps(s))) is TaskSet
    assert TaskSet(np.array([2, 0], dtype=np.int64)) == (0, 2)
    for bad in ([-1], [1.5], ["1"], [True]):
        with pytest.raises(ValueError, match="task indices"):
            TaskSet(bad)


def test_conversions_round_trip():
    names = ["a", "b", "c", "d"]
    s = TaskSet.from_mask(np.array([False, True, False, True]))
    assert s == (1, 3)
    assert s.to_mask(4).tolist() == [False, True, False, True]
    assert s.names(names) == ["b", "d"] and s.label(names) == "b + d"
    assert TaskSet.from_names(["d", "b"], names) == s
    assert s.key() == "1+3" and TaskSet.from_key("3+1") == s
    assert TaskSet.all_tasks(3) == (0, 1, 2) and TaskSet.singletons(2) == [(0,), (1,)]
    with pytest.raises(ValueError, match="unknown task 'e'.*a, b, c, d"):
        TaskSet.from_names(["e"], names)
    with pytest.raises(ValueError, match="'0\\+x'"):
        TaskSet.from_key("0+x")
    with pytest.raises(ValueError, match="out of range"):
        s.to_mask(3)
    with pytest.raises(ValueError, match="one row"):
        TaskSet.from_mask(np.zeros((2, 2), dtype=bool))
