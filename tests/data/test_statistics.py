"""negtransfer.data.statistics.standard_error: the one standard-error formula every layer uses."""

from __future__ import annotations

import math

import numpy as np
import pytest

from negtransfer.data.statistics import standard_error


def test_scalar_is_sample_sd_over_root_n():
    values = [0.1, 0.4, 0.2, 0.9]
    mean = sum(values) / 4
    by_hand = math.sqrt(sum((v - mean) ** 2 for v in values) / 3) / 2
    assert standard_error(values) == pytest.approx(by_hand, rel=1e-12)
    assert isinstance(standard_error(np.array(values)), float)


def test_the_same_bits_as_the_formula_it_replaced():
    rng = np.random.default_rng(3)
    for n in (2, 3, 7, 8, 33):
        v = rng.normal(size=n)
        assert standard_error(v) == float(v.std(ddof=1) / np.sqrt(v.size))


@pytest.mark.parametrize("values", [[], [0.5], np.array(2.0)])
def test_fewer_than_two_values_give_the_chosen_stand_in(values):
    assert math.isnan(standard_error(values))
    assert standard_error(values, fewer_than_two=0.0) == 0.0
    assert standard_error(values, fewer_than_two=math.inf) == math.inf


def test_axis_gives_one_standard_error_per_slice():
    G = np.arange(24, dtype=float).reshape(2, 3, 4) ** 1.5
    se = standard_error(G, axis=-1)
    assert se.shape == (2, 3)
    np.testing.assert_array_equal(se, G.std(axis=-1, ddof=1) / np.sqrt(4))
    np.testing.assert_array_equal(standard_error(G, axis=0), G.std(axis=0, ddof=1) / np.sqrt(2))


def test_axis_with_one_entry_is_filled_with_the_stand_in():
    G = np.ones((2, 3, 1))
    assert np.isnan(standard_error(G, axis=2)).all() and standard_error(G, axis=2).shape == (2, 3)
    np.testing.assert_array_equal(standard_error(G, axis=-1, fewer_than_two=0.0), np.zeros((2, 3)))


def test_float32_follows_numpys_rules_as_the_old_formula():
    G = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    old = G.std(axis=1, ddof=1) / np.sqrt(3)
    assert standard_error(G, axis=1).dtype == old.dtype
    np.testing.assert_array_equal(standard_error(G, axis=1), old)
