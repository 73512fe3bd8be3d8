"""Average ranks with numpy: scipy.stats.rankdata's numbers, and AUROC without importing scipy.stats."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from negtransfer.train.metrics import auroc, auroc_rows, average_ranks


def test_ties_share_the_mean_of_their_ranks():
    assert average_ranks([3, 1, 3, 2]).tolist() == [3.5, 1.0, 3.5, 2.0]
    assert average_ranks([[2.0, 2.0, 2.0], [0.5, -1.0, 0.5]], axis=1).tolist() == [[2.0, 2.0, 2.0],
                                                                                   [2.5, 1.0, 2.5]]
    assert average_ranks([[1, 9], [0, 9]], axis=0).tolist() == [[2.0, 1.5], [1.0, 1.5]]
    assert average_ranks(np.array([], dtype=float)).shape == (0,)


def test_a_slice_with_nan_gets_nan_ranks():
    ranks = average_ranks(np.array([[1.0, np.nan, 0.0], [1.0, 2.0, 0.0]]), axis=1)
    assert np.isnan(ranks[0]).all() and ranks[1].tolist() == [2.0, 3.0, 1.0]


def test_ranks_are_scipys_rankdata():
    rankdata = pytest.importorskip("scipy.stats").rankdata
    rng = np.random.default_rng(0)
    for _ in range(300):
        shape = tuple(rng.integers(1, 8, size=rng.integers(1, 4)))
        values = rng.integers(0, 5, size=shape).astype(rng.choice([np.float32, np.float64, np.int64]))
        if values.dtype.kind == "f" and rng.random() < 0.2:
            values.flat[rng.integers(values.size)] = np.nan
        axis = int(rng.integers(-values.ndim, values.ndim))
        expected = rankdata(values, axis=axis)
        got = average_ranks(values, axis=axis)
        assert got.dtype == expected.dtype and np.array_equal(got, expected, equal_nan=True)


def test_auroc_counts_ties_as_half():
    y = np.array([0, 0, 1, 1])
    assert auroc(y, np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auroc(y, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    rows = auroc_rows(y, np.array([[0.1, 0.4, 0.35, 0.8], [0.9, 0.8, 0.1, 0.2]]))
    assert rows.tolist() == [0.75, 0.0]


def test_auroc_needs_no_scipy_stats():
    code = ("import sys, numpy as np; from negtransfer.train.metrics import auroc_rows; "
            "auroc_rows(np.array([0, 1, 1]), np.array([[0.2, 0.5, 0.9]])); print('scipy.stats' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
