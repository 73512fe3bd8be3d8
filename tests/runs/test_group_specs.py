"""Group sizes as the Python API receives them (the command line's forms are tested in test_store.py)."""

import numpy as np
import pandas as pd
import pytest

import negtransfer
from negtransfer.runs.group_specs import parse_sizes


def test_sizes_take_a_whole_number_and_name_the_forms_for_anything_else():
    """sizes=[2, 3] failed deep in parse_sizes with "int() argument must be ... not 'list'"."""
    assert parse_sizes(3, 4) == parse_sizes("3", 4) == (3, 3)
    assert parse_sizes(np.int64(2), 4) == (2, 2)
    for bad in ([2, 3], (2, 5), 2.5, True):
        with pytest.raises(ValueError, match=r"sizes must be a range such as '2-5' .* or one size \(3 or '3'\)"):
            parse_sizes(bad, 4)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 2)), columns=["x", "y"])
    frame["a"], frame["b"], frame["c"] = (frame.x > 0).astype(int), (frame.y > 0).astype(int), frame.x + frame.y
    with pytest.raises(ValueError, match="sizes must be a range"):  # before anything is trained
        negtransfer.gains(frame, tasks=["a", "b", "c"], sizes=[2, 3])
