import json
import math

import numpy as np

from negtransfer.report.jsonio import dumps_strict, write_json


def test_non_finite_numbers_become_null(tmp_path):
    value = {"a": float("nan"), "b": [1.0, float("inf"), -float("inf")], "c": np.float32("nan"),
             "d": np.array([0.5, np.nan]), "e": (1, "x"), "f": np.int64(3)}
    text = dumps_strict(value)

    def refuse(token):
        raise AssertionError(token)

    assert json.loads(text, parse_constant=refuse) == {"a": None, "b": [1.0, None, None], "c": None,
                                                       "d": [0.5, None], "e": [1, "x"], "f": 3}
    path = write_json(tmp_path / "r.json", {"x": math.nan})
    assert json.loads(path.read_text()) == {"x": None}
