import numpy as np

from negtransfer.jobs.grouping_comparison import ordered_pair_values


def test_ordered_pair_values_pairs_each_affinity_with_its_targets_gain():
    A = np.arange(9, dtype=float).reshape(3, 3)  # A[i, j]: source i onto target j
    pairs = [(0, 1), (0, 2), (1, 2)]
    Y = np.array([[10, 11, np.nan], [20, np.nan, 22], [np.nan, 31, 32]])  # gain of each member in its pair
    z, y, target = ordered_pair_values(A, Y, pairs)
    assert z.tolist() == [1, 2, 5, 3, 6, 7]  # (0->1), (0->2), (1->2), then (1->0), (2->0), (2->1)
    assert y.tolist() == [11, 22, 32, 10, 20, 31]
    assert target.tolist() == [1, 2, 2, 0, 0, 1]
