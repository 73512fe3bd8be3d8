"""The source selection's Spearman correlation without scipy.stats: scipy's number, NaN where undefined."""

from __future__ import annotations

import math

import numpy as np
import pytest

from negtransfer.select.sources import _spearman


def test_spearman_is_scipys():
    spearmanr = pytest.importorskip("scipy.stats").spearmanr
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(2, 30))
        a, b = rng.normal(size=n), rng.normal(size=n)
        if rng.random() < 0.5:  # ties
            a, b = np.round(a, 1), np.round(2 * b)
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        assert _spearman(a, b) == float(spearmanr(a, b).statistic)


def test_spearman_of_monotone_and_undefined_inputs():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    assert _spearman(a, a ** 3) == pytest.approx(1.0)
    assert _spearman(a, -a) == pytest.approx(-1.0)
    assert math.isnan(_spearman(a, np.ones(4)))
    assert math.isnan(_spearman(a[:1], a[:1]))
