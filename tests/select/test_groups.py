"""Exact group selection under a budget (ETAP section 3.2.3).

`select_groups` (branch and bound) is checked against two independent exact
references: `brute_force_select_groups` (every combination of <= B rows) where
that is affordable, and a subset-partition dynamic programme (below) for all
groups of 7 to 10 tasks, where brute force is not.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from negtransfer.select.groups import (
    GroupSelection,
    all_groups,
    brute_force_select_groups,
    select_groups,
)

# ---------------------------------------------------------------------------
# helpers


def objective_of(U, S, rows):
    """Objective of a selection computed from scratch (None if it does not cover)."""
    vals = np.where(U[list(rows)], S[list(rows)], -np.inf).max(axis=0)
    return float(vals.sum()) if np.isfinite(vals).all() else None


def assert_valid(sel, U, S, budget, candidates=None):
    assert isinstance(sel, GroupSelection)
    assert list(sel.groups) == sorted(set(sel.groups))
    assert 1 <= len(sel.groups) <= budget
    if candidates is not None:
        assert set(sel.groups) <= {int(c) for c in np.asarray(candidates).ravel()}
    value = objective_of(U, S, sel.groups)
    assert value is not None, "selection does not cover every task"
    assert sel.objective == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert len(sel.task_group) == U.shape[1]
    for t, g in enumerate(sel.task_group):
        assert g in sel.groups and U[g, t]
        assert S[g, t] == max(S[h, t] for h in sel.groups if U[h, t])
    assert sel.nodes_explored >= 1


def partition_dp_optimum(U, S, budget):
    """Optimum via a different route: split the tasks into <= budget blocks, each
    hosted by its best candidate containing it. Equal to the selection optimum
    (each task is scored by one chosen group). O(budget * 3^n); -inf if infeasible."""
    m, n = U.shape
    full = 1 << n
    codes = U.astype(np.int64) @ (np.int64(1) << np.arange(n))
    subsets = np.arange(full)
    bits = ((subsets[:, None] >> np.arange(n)) & 1).astype(bool)
    host = np.full(full, -np.inf)  # best score of a block = best hosting group
    for g in range(m):
        inside = (subsets & codes[g]) == subsets
        block_value = np.where(bits, np.where(U[g], S[g], 0.0), 0.0).sum(axis=1)
        host = np.where(inside, np.maximum(host, block_value), host)
    best = np.full(full, -np.inf)
    best[0] = 0.0
    for _ in range(budget):
        new = np.full(full, -np.inf)
        new[0] = 0.0
        for mask in range(1, full):
            low = mask & -mask
            rest = mask ^ low
            sub, value = rest, -np.inf
            while True:  # blocks containing the lowest task of mask
                block = sub | low
                value = max(value, host[block] + best[mask ^ block])
                if sub == 0:
                    break
                sub = (sub - 1) & rest
            new[mask] = value
        best = new
    return best[full - 1]


def random_scores(U, rng, kind):
    m, n = U.shape
    size = U.sum(axis=1, keepdims=True)
    if kind == "normal":
        S = rng.normal(size=(m, n))
    elif kind == "negative":
        S = -rng.exponential(size=(m, n)) - 0.2 * size
    elif kind == "ties":
        S = rng.integers(-2, 3, size=(m, n)).astype(float)
    elif kind == "small-groups":  # large groups are penalised: coverage binds
        S = rng.normal(size=(m, n)) - 0.7 * size
    elif kind == "planted":
        S = planted_scores(U, rng)
    else:
        raise AssertionError(kind)
    return np.where(U, S, np.nan)


def planted_scores(U, rng, noise=0.2):
    """Affinity-derived gains (ETAP eq. 7 style) with clusters, plus noise."""
    n = U.shape[1]
    cluster = rng.integers(max(2, n // 4), size=n)
    same = cluster[:, None] == cluster[None, :]
    affinity = np.where(same, rng.normal(0.3, 0.1, (n, n)), rng.normal(-0.15, 0.15, (n, n)))
    np.fill_diagonal(affinity, 0.0)
    size = U.sum(axis=1, keepdims=True)
    z = (U.astype(float) @ affinity) / np.maximum(size - 1, 1)
    S = np.where(size > 1, z + noise * rng.normal(size=U.shape), 0.0)
    return np.where(U, S, np.nan)


def both_or_neither(U, S, budget, candidates=None):
    """Run both solvers; return (fast, reference), or (None, None) if both refuse."""
    try:
        ref = brute_force_select_groups(U, S, budget, candidates=candidates)
    except ValueError:
        with pytest.raises(ValueError):
            select_groups(U, S, budget, candidates=candidates)
        return None, None
    return select_groups(U, S, budget, candidates=candidates), ref


KINDS = ["normal", "negative", "ties", "small-groups", "planted"]


# ---------------------------------------------------------------------------
# all_groups


def test_all_groups_order_and_sizes():
    U = all_groups(4)
    assert U.dtype == bool and U.shape == (15, 4)
    expected = [c for s in range(1, 5) for c in itertools.combinations(range(4), s)]
    assert [tuple(np.flatnonzero(r)) for r in U] == expected
    pairs = all_groups(5, sizes=[2])
    assert pairs.shape == (10, 5) and (pairs.sum(axis=1) == 2).all()
    some = all_groups(6, sizes=(3, 1))
    assert some.shape == (6 + 20, 6) and (some.sum(axis=1)[:6] == 1).all()
    assert len({r.tobytes() for r in all_groups(10)}) == 2**10 - 1
    np.testing.assert_array_equal(all_groups(7), all_groups(7))


@pytest.mark.parametrize("bad", [dict(n_tasks=0), dict(n_tasks=3, sizes=[4]), dict(n_tasks=3, sizes=[0]),
                                 dict(n_tasks=40)])
def test_all_groups_rejects(bad):
    with pytest.raises(ValueError):
        all_groups(**bad)


# ---------------------------------------------------------------------------
# exactness


def test_hand_example():
    # tasks 0, 1, 2; a pair {0,1} helps both, {1,2} hurts task 2.
    U = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 1, 1]], dtype=bool)
    S = np.full(U.shape, np.nan)
    S[0, 0] = S[1, 1] = S[2, 2] = 0.0
    S[3, [0, 1]] = [0.5, 0.4]
    S[4, [1, 2]] = [0.6, -0.3]
    S[5] = [0.1, 0.1, -0.1]
    one = select_groups(U, S, 1)  # the only single group that covers
    assert one.groups == (5,) and one.objective == pytest.approx(0.1)
    two = select_groups(U, S, 2)
    assert two.groups == (2, 3) and two.objective == pytest.approx(0.9)
    assert two.task_group == (3, 3, 2)
    three = select_groups(U, S, 3)
    assert three.groups == (2, 3, 4) and three.objective == pytest.approx(0.5 + 0.6 + 0.0)
    # ... and the same four-group optimum as with three
    assert select_groups(U, S, 4).objective == pytest.approx(1.1)
    assert three.task_group == (3, 4, 2)


@pytest.mark.parametrize("kind", KINDS)
def test_matches_brute_force_all_groups(kind):
    rng = np.random.default_rng(KINDS.index(kind))
    for n in range(1, 7):
        U = all_groups(n)
        for budget in range(1, 5):
            if math.comb(U.shape[0], budget) > 50_000:
                continue
            for _ in range(3):
                S = random_scores(U, rng, kind)
                fast, ref = both_or_neither(U, S, budget)
                assert_valid(fast, U, S, budget)
                assert fast.objective == pytest.approx(ref.objective, rel=1e-9, abs=1e-12), (n, budget)


@pytest.mark.parametrize("kind", KINDS)
def test_matches_brute_force_candidate_subsets(kind):
    rng = np.random.default_rng(1000 + KINDS.index(kind))
    refused = 0
    for _ in range(40):
        n = int(rng.integers(2, 9))
        U = all_groups(n)
        size = int(rng.integers(n, min(U.shape[0], 28) + 1))
        candidates = rng.choice(U.shape[0], size=size, replace=False)
        if rng.random() < 0.5:
            candidates = np.union1d(candidates, np.arange(n))  # with the singletons
        budget = int(rng.integers(1, 5))
        S = random_scores(U, rng, kind)
        fast, ref = both_or_neither(U, S, budget, candidates)
        if fast is None:
            refused += 1
            continue
        assert_valid(fast, U, S, budget, candidates)
        assert fast.objective == pytest.approx(ref.objective, rel=1e-9, abs=1e-12)
    assert refused < 40


@pytest.mark.parametrize("n", [7, 8])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_partition_dp_all_groups(n, kind):
    rng = np.random.default_rng(10 * n + KINDS.index(kind))
    U = all_groups(n)
    S = random_scores(U, rng, kind)
    for budget in range(1, 5):
        sel = select_groups(U, S, budget)
        assert_valid(sel, U, S, budget)
        assert sel.objective == pytest.approx(partition_dp_optimum(U, S, budget), rel=1e-9, abs=1e-12)


def test_partition_dp_reference_agrees_with_brute_force():
    rng = np.random.default_rng(7)
    for n in (3, 4, 5):
        U = all_groups(n)
        for budget in (1, 2, 3):
            for kind in KINDS:
                S = random_scores(U, rng, kind)
                ref = brute_force_select_groups(U, S, budget)
                assert partition_dp_optimum(U, S, budget) == pytest.approx(ref.objective, rel=1e-12)


def test_matches_partition_dp_ten_tasks_planted_and_restricted():
    rng = np.random.default_rng(11)
    U = all_groups(10)
    for budget in (2, 3, 4):
        S = planted_scores(U, rng)
        sel = select_groups(U, S, budget)
        assert_valid(sel, U, S, budget)
        assert sel.objective == pytest.approx(partition_dp_optimum(U, S, budget), rel=1e-9)
    # restricted candidate list: groups of at most 3 tasks, 4 groups must cover 10 tasks
    small = np.flatnonzero(U.sum(axis=1) <= 3)
    S = random_scores(U, rng, "normal")
    sel = select_groups(U, S, 4, candidates=small)
    assert_valid(sel, U, S, 4, small)
    assert sel.objective == pytest.approx(partition_dp_optimum(U[small], S[small], 4), rel=1e-9)


def test_candidates_as_mask_indices_and_slice_agree():
    rng = np.random.default_rng(3)
    U = all_groups(6)
    S = random_scores(U, rng, "normal")
    mask = rng.random(U.shape[0]) < 0.4
    mask[:6] = True
    by_mask = select_groups(U, S, 3, candidates=mask)
    by_index = select_groups(U, S, 3, candidates=list(np.flatnonzero(mask)[::-1]))  # any order
    sliced = select_groups(U[mask], S[mask], 3)
    assert by_mask == by_index
    assert by_mask.objective == pytest.approx(sliced.objective)
    assert set(by_mask.groups) <= set(np.flatnonzero(mask).tolist())
    # the unrestricted optimum is at least as good
    assert select_groups(U, S, 3).objective >= by_mask.objective - 1e-12


def test_shift_per_task_adds_to_objective():
    # Every task is scored by exactly one group, so adding c_t to column t adds sum(c).
    rng = np.random.default_rng(5)
    U = all_groups(7)
    S = random_scores(U, rng, "planted")
    shift = rng.normal(size=7) * 3
    a = select_groups(U, S, 3)
    b = select_groups(U, S + shift, 3)
    assert b.objective == pytest.approx(a.objective + shift.sum(), rel=1e-9)


def test_all_equal_scores_and_duplicate_rows():
    U = np.vstack([all_groups(4), all_groups(4)])  # every group twice
    S = np.where(U, 1.0, np.nan)
    sel = select_groups(U, S, 2)
    assert sel.objective == 4.0
    assert_valid(sel, U, S, 2)
    rng = np.random.default_rng(9)
    S = random_scores(U, rng, "ties")
    for budget in (1, 2, 3):
        fast, ref = both_or_neither(U, S, budget)
        assert fast.objective == ref.objective


def test_budget_larger_than_candidates():
    U = all_groups(3)
    S = np.where(U, -1.0, np.nan)
    S[0, 0] = 2.0
    sel = select_groups(U, S, 50, candidates=[0, 1, 2])
    assert sel.groups == (0, 1, 2) and sel.objective == 0.0


# ---------------------------------------------------------------------------
# scale and determinism


def test_fourteen_tasks_all_groups_budget_four():
    rng = np.random.default_rng(14)
    U = all_groups(14)
    assert U.shape == (16383, 14)
    S = planted_scores(U, rng, noise=0.3)
    sel = select_groups(U, S, 4)
    assert_valid(sel, U, S, 4)
    # no worse than the all-task group, the singletons (here all score 0), or budget 3
    assert sel.objective >= objective_of(U, S, [U.shape[0] - 1]) - 1e-12
    assert sel.objective >= 0.0
    assert sel.objective >= select_groups(U, S, 3).objective - 1e-12


def test_deterministic_and_row_order_invariant():
    rng = np.random.default_rng(21)
    U = all_groups(9)
    S = random_scores(U, rng, "normal")
    a, b = select_groups(U, S, 4), select_groups(U, S, 4)
    assert a == b
    perm = rng.permutation(U.shape[0])
    c = select_groups(U[perm], S[perm], 4)
    assert c.objective == pytest.approx(a.objective, rel=1e-12)
    assert objective_of(U, S, perm[list(c.groups)]) == pytest.approx(a.objective, rel=1e-12)


# ---------------------------------------------------------------------------
# errors


def test_task_in_no_candidate_is_named():
    U = all_groups(4)
    S = np.where(U, 0.0, np.nan)
    no_task_3 = np.flatnonzero(~U[:, 3])
    with pytest.raises(ValueError, match=r"task\(s\) \[3\]"):
        select_groups(U, S, 4, candidates=no_task_3)
    with pytest.raises(ValueError, match=r"task\(s\) \[3\]"):
        brute_force_select_groups(U, S, 4, candidates=no_task_3)


def test_coverage_impossible_within_budget():
    # pairs only: 6 tasks need 3 groups
    U = all_groups(6, sizes=[2])
    S = np.where(U, 1.0, np.nan)
    with pytest.raises(ValueError, match="raise the budget"):
        select_groups(U, S, 2)
    with pytest.raises(ValueError, match="raise the budget"):
        brute_force_select_groups(U, S, 2)
    assert select_groups(U, S, 3).objective == 6.0
    # disjointness forces the choice: {0,1} and {2,3} only cover with both
    U = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=bool)
    S = np.where(U, 1.0, np.nan)
    with pytest.raises(ValueError, match="cover all 4 tasks"):
        select_groups(U, S, 1)
    assert select_groups(U, S, 2).groups == (0, 2)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda U, S, b, c: (U[:, :3], S, b, c), "shape"),
        (lambda U, S, b, c: (U[0], S[0], b, c), "2-D"),
        (lambda U, S, b, c: (U * 2, S, b, c), "0/1"),
        (lambda U, S, b, c: (U, S, 0, c), "budget"),
        (lambda U, S, b, c: (U, S, 2.5, c), "budget"),
        (lambda U, S, b, c: (U, S, b, [0, 99]), "row indices"),
        (lambda U, S, b, c: (U, S, b, []), "empty"),
        (lambda U, S, b, c: (U, S, b, np.ones(3, dtype=bool)), "mask"),
    ],
)
def test_bad_inputs(change, message):
    U = all_groups(4)
    S = np.where(U, 0.5, np.nan)
    args = change(U, S, 2, None)
    with pytest.raises(ValueError, match=message):
        select_groups(args[0], args[1], args[2], candidates=args[3])


def test_nan_member_score_is_rejected_unless_left_out():
    U = all_groups(3)
    S = np.where(U, 0.5, np.nan)
    S[4, 0] = np.nan  # row 4 = {0, 2}
    with pytest.raises(ValueError, match=r"scores\[4, 0\]"):
        select_groups(U, S, 2)
    keep = [r for r in range(U.shape[0]) if r != 4]
    assert select_groups(U, S, 2, candidates=keep).objective == pytest.approx(1.5)
    S[0, 1] = np.nan  # outside row 0's group: ignored
    assert select_groups(U, S, 2, candidates=keep).objective == pytest.approx(1.5)


def test_zero_one_integer_groups_are_accepted():
    U = all_groups(4)
    S = np.where(U, 1.0, np.nan)
    assert select_groups(U.astype(int), S, 1) == select_groups(U, S, 1)
