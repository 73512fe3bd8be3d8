"""Tests for negtransfer.affinity.scores (ETAP eq. 7)."""

import warnings

import numpy as np
import pytest

from negtransfer.affinity.scores import group_affinity_scores, nan_mean_of_matrices

# affinity[i, j] = affinity of source i onto target j; deliberately asymmetric
A = np.array(
    [
        [9.0, 1.0, 2.0, 3.0],
        [4.0, 9.0, 5.0, 6.0],
        [7.0, 8.0, 9.0, 10.0],
        [11.0, 12.0, 13.0, 9.0],
    ]
)


def test_hand_computed_groups():
    U = np.array(
        [
            [True, True, True, False],  # {0, 1, 2}
            [False, True, False, True],  # {1, 3}
            [True, True, True, True],  # all
        ]
    )
    Z = group_affinity_scores(A, U)
    nan = np.nan
    expected = np.array(
        [
            # target 0: sources 1, 2 -> (4 + 7) / 2; target 1: (1 + 8) / 2; target 2: (2 + 5) / 2
            [5.5, 4.5, 3.5, nan],
            # target 1: source 3 -> 12; target 3: source 1 -> 6
            [nan, 12.0, nan, 6.0],
            # target t: mean of column t without the diagonal
            [22 / 3, 21 / 3, 20 / 3, 19 / 3],
        ]
    )
    np.testing.assert_allclose(Z, expected, equal_nan=True)


def test_orientation_rows_are_sources_columns_are_targets():
    # only task 0 -> task 1 transfers; task 1 -> task 0 is zero
    a = np.zeros((3, 3))
    a[0, 1] = 1.0
    Z = group_affinity_scores(a, [[True, True, False]])
    assert Z[0, 1] == 1.0  # group {0, 1} onto target 1 uses source 0
    assert Z[0, 0] == 0.0  # onto target 0 uses source 1, which has no affinity
    # transposing the matrix swaps the roles
    Zt = group_affinity_scores(a.T, [[True, True, False]])
    assert Zt[0, 0] == 1.0 and Zt[0, 1] == 0.0


def test_matches_brute_force_loop():
    rng = np.random.default_rng(3)
    n = 7
    a = rng.normal(size=(n, n))
    U = rng.random((40, n)) < 0.5
    U[~U.any(axis=1), 0] = True
    Z = group_affinity_scores(a, U)
    for g in range(U.shape[0]):
        members = np.flatnonzero(U[g])
        for t in range(n):
            if t not in members or members.size == 1:
                assert np.isnan(Z[g, t])
            else:
                others = [j for j in members if j != t]
                assert Z[g, t] == pytest.approx(np.mean([a[j, t] for j in others]))


def test_singletons_and_outside_are_nan_and_diagonal_ignored():
    a = A.copy()
    a[np.diag_indices(4)] = np.nan  # self-affinity may be missing
    Z = group_affinity_scores(a, [[0, 0, 1, 0], [1, 0, 0, 1]])
    assert np.isnan(Z[0]).all()
    np.testing.assert_allclose(Z[1], [11.0, np.nan, np.nan, 3.0], equal_nan=True)


def test_accepts_integer_groups_and_returns_float():
    Z = group_affinity_scores(A.astype(int), np.array([[1, 1, 0, 0]], dtype=np.int8))
    assert Z.dtype == np.float64 and Z.shape == (1, 4)
    np.testing.assert_allclose(Z[0, :2], [4.0, 1.0])


def test_does_not_modify_inputs():
    a = A.copy()
    U = np.ones((1, 4), dtype=bool)
    group_affinity_scores(a, U)
    np.testing.assert_array_equal(a, A)


@pytest.mark.parametrize(
    "affinity, groups, match",
    [
        (np.zeros((3, 4)), [[1, 1, 0]], "square"),
        (np.zeros(3), [[1, 1, 0]], "square"),
        (np.array([[0.0, np.nan], [1.0, 0.0]]), [[1, 1]], r"non-finite off-diagonal.*\[0, 1\]"),
        (np.zeros((3, 3)), [[1, 1]], "2 columns but the affinity matrix covers 3"),
        (np.zeros((3, 3)), [1, 1, 0], "2-D"),
        (np.zeros((3, 3)), [[1, 2, 0]], "multi-hot"),
        (np.zeros((3, 3)), [[1, 1, 0], [0, 0, 0]], "row 1 selects no task"),
        (np.zeros((3, 3)), np.zeros((0, 3)), "no rows"),
    ],
)
def test_bad_inputs_raise_clear_errors(affinity, groups, match):
    with pytest.raises(ValueError, match=match):
        group_affinity_scores(affinity, groups)


def test_nan_mean_of_matrices_ignores_unmeasured_entries_without_warning():
    first = np.array([[np.nan, 1.0], [2.0, np.nan]])
    second = np.array([[np.nan, 3.0], [np.nan, np.nan]])  # (1, 0) not measured in this repeat
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mean = nan_mean_of_matrices([first, second])
    assert mean[0, 1] == 2.0 and mean[1, 0] == 2.0 and np.isnan(np.diag(mean)).all()
