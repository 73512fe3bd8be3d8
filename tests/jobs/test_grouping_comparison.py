import numpy as np
import pytest

from negtransfer.jobs.grouping_comparison import ordered_pair_values


def test_ordered_pair_values_pairs_each_affinity_with_its_targets_gain():
    A = np.arange(9, dtype=float).reshape(3, 3)  # A[i, j]: source i onto target j
    pairs = [(0, 1), (0, 2), (1, 2)]
    Y = np.array([[10, 11, np.nan], [20, np.nan, 22], [np.nan, 31, 32]])  # gain of each member in its pair
    z, y, target = ordered_pair_values(A, Y, pairs)
    assert z.tolist() == [1, 2, 5, 3, 6, 7]  # (0->1), (0->2), (1->2), then (1->0), (2->0), (2->1)
    assert y.tolist() == [11, 22, 32, 10, 20, 31]
    assert target.tolist() == [1, 2, 2, 0, 0, 1]


def _row(method, seed, budget, selected, kind="grouping"):
    from negtransfer.jobs.grouping_comparison import ComparisonRow

    return ComparisonRow(method=method, kind=kind, seed=seed, budget=budget, selected=selected, stl=1.0,
                         all_tasks=1.0, vs_stl=selected - 1, vs_all=selected - 1, gap=None, pearson=0.5,
                         within_task_pearson=None, total_gain_pearson=None, runs=10, seconds=1.0,
                         pairwise_affinity_pearson=None, groups="a + b | c")


def test_summary_of_typed_rows():
    from negtransfer.jobs.grouping_comparison import MeanSE, summarise

    rows = [_row("etap", s, b, 0.9 - 0.01 * s) for s in range(3) for b in (2, 3)]
    rows += [_row("hoa", s, b, 0.95) for s in range(3) for b in (2, 3)]
    summary = summarise(rows, reference="etap")
    cell = summary.cells[("etap", 2)]
    assert cell["selected"].mean == pytest.approx(0.89) and cell["selected"].n == 3
    assert cell["selected"].se == pytest.approx(np.std([0.9, 0.89, 0.88], ddof=1) / np.sqrt(3))
    assert cell["gap"] == MeanSE(None, None, 0)  # no value: no mean
    test = summary.wilcoxon["hoa"]
    assert test.cases == 6 and test.reference_lower == 6 and test.p is not None and test.p < 0.05
    assert rows[0].to_dict()["groups"] == "a + b | c" and list(rows[0].to_dict())[:2] == ["method", "kind"]
