"""Exact selection of at most B task groups that cover every task.

ETAP (Ayman, Mukhopadhyay and Laszka, ICLR 2026), section 3.2.3: given a score for every (candidate group,
member task) pair, such as a predicted MTL gain or a negative test loss, choose
at most ``B`` groups that together cover all ``n`` tasks so as to maximise

    sum over tasks t of  max over chosen groups g containing t of  S[g, t].

Groups may overlap; each task takes its score from its best chosen group. The
problem is NP-hard (it contains set cover), so the paper follows Standley et al.
(2020, "Which tasks should be learned together in multi-task learning?", HOA)
and solves it with branch and bound. :func:`select_groups` is such a branch and
bound, exact up to a relative tolerance of 1e-9 on the objective. Besides
HOA's ingredients (dominance, per-task best, ordering by improvement) it uses a
Lagrangian (LP-relaxation) bound and coverage-driven branching; see
``docs/methods/group-selection.md`` for the algorithm, why it is exact, and
measured times (all 2^n - 1 groups, n <= 16, B <= 4: under a second).
:func:`brute_force_select_groups` is the slow reference that tries every
combination.

Conventions: a group is a boolean mask over the tasks and a set of groups is a
boolean matrix ``U`` of shape (m, n) (DESIGN.md); ``S`` has the same shape and is
ignored (may be NaN) outside the groups. Larger scores are better: pass negative
losses to minimise a loss.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import dataclass

import numpy as np

__all__ = ["GroupSelection", "all_groups", "select_groups", "brute_force_select_groups"]

# Relative optimality tolerance: a subtree is pruned when its upper bound does
# not beat the incumbent by more than this (times 1 + |incumbent|).
_RTOL = 1e-9
# Lagrangian bound: subgradient iterations at the root and at inner nodes.
_ROOT_ITERS = 60
_NODE_ITERS = 12
_STALL = 4


@dataclass(frozen=True)
class GroupSelection:
    """Result of a group selection.

    Attributes
    ----------
    groups : tuple of int
        Chosen rows of the group matrix ``U`` (indices into its rows, sorted).
    objective : float
        Sum over tasks of the task's best score among the chosen groups that
        contain it.
    task_group : tuple of int
        Per task, the row of ``U`` (one of ``groups``) whose score the task
        takes; on ties the smallest row.
    nodes_explored : int
        Search nodes visited (branch and bound) or combinations evaluated
        (brute force); a measure of the work done.
    """

    groups: tuple[int, ...]
    objective: float
    task_group: tuple[int, ...]
    nodes_explored: int


# ---------------------------------------------------------------------------
# Candidate enumeration


def all_groups(n_tasks: int, sizes=None) -> np.ndarray:
    """Every non-empty group of ``n_tasks`` tasks as a boolean multi-hot matrix.

    Parameters
    ----------
    n_tasks : int
        Number of tasks, >= 1.
    sizes : iterable of int, optional
        Keep only groups with these numbers of tasks (each in 1..n_tasks).
        Default: all sizes, i.e. all ``2**n_tasks - 1`` groups.

    Returns
    -------
    numpy.ndarray of bool, shape (m, n_tasks)
        One row per group, ordered by size, then lexicographically by member
        indices (the order of :func:`itertools.combinations`): singletons
        first, the all-task group last.

    Raises
    ------
    ValueError
        If ``n_tasks`` < 1, a size is outside 1..n_tasks, or there would be more
        than 2**24 groups.
    """
    if isinstance(n_tasks, bool) or not isinstance(n_tasks, numbers.Integral) or n_tasks < 1:
        raise ValueError(f"n_tasks must be an integer >= 1, got {n_tasks!r}")
    n_tasks = int(n_tasks)
    if sizes is None:
        size_list = list(range(1, n_tasks + 1))
    else:
        size_list = sorted({int(s) for s in sizes})
        bad = [s for s in size_list if not 1 <= s <= n_tasks]
        if bad:
            raise ValueError(f"group sizes must lie in 1..{n_tasks} (the number of tasks); got {bad}")
    total = sum(math.comb(n_tasks, s) for s in size_list)
    if total > 2**24:
        raise ValueError(
            f"{n_tasks} tasks with sizes {size_list} give {total} groups (more than 2**24); "
            "restrict `sizes` or the number of tasks"
        )
    out = np.zeros((total, n_tasks), dtype=bool)
    row = 0
    for s in size_list:
        count = math.comb(n_tasks, s)
        members = np.fromiter(
            itertools.chain.from_iterable(itertools.combinations(range(n_tasks), s)),
            dtype=np.int64,
            count=count * s,
        ).reshape(count, s)
        out[np.arange(row, row + count)[:, None], members] = True
        row += count
    return out


# ---------------------------------------------------------------------------
# Input checks shared by both solvers


def _candidate_rows(candidates, m: int) -> np.ndarray:
    """Row indices of the candidate groups (all ``m`` rows when None), from indices or a boolean mask."""
    if candidates is None:
        rows = np.arange(m)
    else:
        cand = np.asarray(candidates)
        if cand.dtype == bool:
            if cand.shape != (m,):
                raise ValueError(
                    f"a boolean candidates mask must have shape ({m},) (one per group row), got {cand.shape}"
                )
            rows = np.flatnonzero(cand)
        else:
            cand = cand.reshape(-1) if cand.ndim == 0 else cand
            if cand.ndim != 1 or (cand.size and not np.issubdtype(cand.dtype, np.integer)):
                raise ValueError("candidates must be a 1-D sequence of row indices into groups (or a boolean mask)")
            if cand.size and (cand.min() < 0 or cand.max() >= m):
                raise ValueError(f"candidates must be row indices in 0..{m - 1}; got values outside that range")
            rows = np.unique(cand.astype(np.int64))
        if rows.size == 0:
            raise ValueError("candidates is empty; give at least one row of groups to choose from")
    return rows


def _check_inputs(groups, scores, budget, candidates):
    """Validate and return (U bool (m, n), S float (m, n), budget int, rows int array)."""
    U = np.asarray(groups)
    if U.ndim != 2:
        raise ValueError(f"groups must be a 2-D multi-hot matrix (m groups x n tasks), got shape {U.shape}")
    m, n = U.shape
    if m == 0 or n == 0:
        raise ValueError(f"groups must have at least one row and one task column, got shape {U.shape}")
    if U.dtype != bool:
        if not (np.issubdtype(U.dtype, np.number) and np.isin(U, (0, 1)).all()):
            raise ValueError("groups must be boolean (or 0/1) multi-hot rows; other values were found")
        U = U.astype(bool)
    try:
        S = np.asarray(scores, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"scores must be a numeric (m x n) matrix: {exc}") from None
    if S.shape != U.shape:
        raise ValueError(
            f"scores has shape {S.shape} but groups has shape {U.shape}; they must match "
            "(scores[g, t] = score of task t when trained in group g)"
        )
    if isinstance(budget, bool) or not isinstance(budget, numbers.Integral) or budget < 1:
        raise ValueError(f"budget (the most groups to choose) must be an integer >= 1, got {budget!r}")
    budget = int(budget)

    rows = _candidate_rows(candidates, m)

    # Empty groups can never help; drop them.
    rows = rows[U[rows].any(axis=1)]
    sub_U, sub_S = U[rows], S[rows]
    bad = sub_U & ~np.isfinite(sub_S)
    if bad.any():
        r, t = np.argwhere(bad)[0]
        raise ValueError(
            f"scores[{rows[r]}, {t}] is {sub_S[r, t]} but task {t} is a member of group row {rows[r]}; "
            "every member score must be finite (give a value, or leave that row out via `candidates`)"
        )
    missing = np.flatnonzero(~sub_U.any(axis=0)) if rows.size else np.arange(n)
    if missing.size:
        raise ValueError(
            f"no candidate group contains task(s) {missing.tolist()}, so no selection can cover every task; "
            "add groups containing them (e.g. the singleton groups) to the candidates"
        )
    return U, S, budget, rows


def _finish(U, S, chosen, nodes) -> GroupSelection:
    """Build the result for the chosen original rows (objective recomputed canonically)."""
    chosen = np.array(sorted(int(r) for r in chosen), dtype=np.int64)
    vals = np.where(U[chosen], S[chosen], -np.inf)
    best = vals.argmax(axis=0)  # first maximum = smallest row on ties
    objective = float(vals.max(axis=0).sum())
    return GroupSelection(
        groups=tuple(int(r) for r in chosen),
        objective=objective,
        task_group=tuple(int(chosen[b]) for b in best),
        nodes_explored=int(nodes),
    )


def _infeasible(n, budget):
    return ValueError(
        f"no {budget} or fewer of the candidate groups cover all {n} tasks; raise the budget or "
        "add candidate groups (the singleton groups, or larger groups) so that the tasks can be covered"
    )


# ---------------------------------------------------------------------------
# Reference: brute force


def brute_force_select_groups(groups, scores, budget, *, candidates=None, chunk=20000) -> GroupSelection:
    """Slow reference: evaluate every combination of at most ``budget`` candidates.

    Same problem, inputs and result as :func:`select_groups` (ETAP section
    3.2.3). It walks :func:`itertools.combinations` of 1, 2, ..., ``budget``
    candidate rows (in increasing row order), evaluates them in vectorised
    chunks, and returns the first combination with the largest objective. The
    work is ``sum_k C(m, k)`` combinations, so it is only usable for small
    candidate sets; it exists to test :func:`select_groups`.

    Parameters
    ----------
    groups, scores, budget, candidates
        As in :func:`select_groups`.
    chunk : int
        Combinations evaluated per vectorised step.

    Returns
    -------
    GroupSelection
        ``nodes_explored`` is the number of combinations evaluated.
    """
    U, S, budget, rows = _check_inputs(groups, scores, budget, candidates)
    n = U.shape[1]
    vals = np.where(U[rows], S[rows], -np.inf)  # (m', n)
    best_val, best_combo, count = -np.inf, None, 0
    for k in range(1, min(budget, rows.size) + 1):
        combos = itertools.combinations(range(rows.size), k)
        while True:
            block = np.fromiter(itertools.chain.from_iterable(itertools.islice(combos, chunk)), dtype=np.int64)
            if block.size == 0:
                break
            block = block.reshape(-1, k)
            count += block.shape[0]
            per_task = vals[block].max(axis=1)  # (c, n)
            ok = np.isfinite(per_task).all(axis=1)
            if not ok.any():
                continue
            total = np.where(ok, np.where(np.isfinite(per_task), per_task, 0.0).sum(axis=1), -np.inf)
            i = int(total.argmax())
            if total[i] > best_val:
                best_val, best_combo = total[i], block[i]
    if best_combo is None:
        raise _infeasible(n, budget)
    return _finish(U, S, rows[best_combo], count)


# ---------------------------------------------------------------------------
# Branch and bound


def _drop_dominated(U, S, rows):
    """Candidates (positions into ``rows``) that no other candidate dominates.

    Row h dominates row g when h contains every task of g and scores at least as
    well on each of them: swapping g for h in any selection keeps it covering
    and does not lower the objective, so an optimal selection without g exists.
    Checked for rows with identical membership (exact ties keep the smaller
    row) and for supersets with exactly one more task, which is cheap (m x n
    look-ups). Dominance is transitive and acyclic (a chain grows the group or,
    within one membership, strictly improves the scores or the row order), so
    every dropped row has an undominated dominator and dropping them all at once
    is safe.
    """
    sub_U = U[rows]
    m, n = sub_U.shape
    if n > 62:
        return np.arange(m)
    sub_S = np.where(sub_U, S[rows], -np.inf)
    codes = sub_U.astype(np.int64) @ (np.int64(1) << np.arange(n, dtype=np.int64))
    uniq, first, counts = np.unique(codes, return_index=True, return_counts=True)
    dominated = np.zeros(m, dtype=bool)

    # Identical memberships (rare): pairwise within each repeated code.
    for code in uniq[counts > 1]:
        members = np.flatnonzero(codes == code)
        for a in members:
            for b in members:
                if a == b:
                    continue
                ge = (sub_S[b] >= sub_S[a])[sub_U[a]].all()
                if ge and ((sub_S[b] > sub_S[a])[sub_U[a]].any() or b < a):
                    dominated[a] = True
                    break

    # Supersets with one more task: any row holding that membership will do.
    for t in range(n):
        g = np.flatnonzero(~sub_U[:, t])
        if g.size == 0:
            continue
        sup = codes[g] | (np.int64(1) << t)
        pos = np.minimum(np.searchsorted(uniq, sup), uniq.size - 1)
        found = uniq[pos] == sup
        g, h = g[found], first[pos[found]]
        if g.size:
            ok = ((sub_S[h] >= sub_S[g]) | ~sub_U[g]).all(axis=1)
            dominated[g[ok]] = True
    return np.flatnonzero(~dominated)


def _top_idx(x, k):
    """Indices of the k largest entries of x (k small; x is restored)."""
    if x.size <= k:
        return np.arange(x.size)
    idx = np.empty(k, dtype=np.int64)
    saved = np.empty(k)
    for j in range(k):
        i = int(x.argmax())
        idx[j], saved[j] = i, x[i]
        x[i] = -np.inf
    x[idx] = saved
    return idx


def _top_sum(x, k):
    """Sum of the k largest entries of x (k small)."""
    return float(x[_top_idx(x, k)].sum()) if k > 0 else 0.0


class _Search:
    """Depth-first branch and bound over the kept candidates (see select_groups).

    Scores are stored transposed, ``VT[t, g]`` (tasks x candidates, -inf where
    task t is not in candidate g), so per-candidate sums run over the short
    first axis.
    """

    def __init__(self, M, V, budget):
        member = V[M]
        # Integer scores give integer objectives: an improvement is then >= 1.
        self.integral = bool(np.all(member == np.round(member)) and np.abs(member).max() < 2.0**50)
        self.MT = np.ascontiguousarray(M.T)   # (n, m) membership
        self.VT = np.ascontiguousarray(V.T)   # (n, m) scores, -inf outside
        self.n = M.shape[1]
        if self.n <= 62:  # membership as bit codes, for fast "contains all of" tests
            self.weights = np.int64(1) << np.arange(self.n, dtype=np.int64)
            self.codes = M.astype(np.int64) @ self.weights
        else:
            self.weights = self.codes = None
        self.budget = budget
        self.best_val = -np.inf
        self.best = None
        self.nodes = 0

    def _threshold(self):
        """A bound must exceed this to be worth exploring (incumbent + tolerance)."""
        if not np.isfinite(self.best_val):
            return -np.inf
        if self.integral:
            return self.best_val + 0.5
        return self.best_val + _RTOL * (1.0 + abs(self.best_val))

    # -- incumbent -------------------------------------------------------
    def _value(self, sel):
        if not sel:
            return -np.inf
        per_task = self.VT[:, list(sel)].max(axis=1)
        return float(per_task.sum()) if np.isfinite(per_task).all() else -np.inf

    def _offer(self, sel, value):
        if value > self.best_val:
            self.best_val, self.best = value, tuple(sorted(sel))

    def greedy_start(self):
        """Greedy plus one-swap local search: a good first incumbent."""
        VT, B = self.VT, self.budget
        m = VT.shape[1]
        floor = np.where(np.isfinite(VT), VT, np.inf).min(axis=1) - 1.0  # covering always gains
        sel: list[int] = []
        cur = floor
        covered = np.zeros(self.n, dtype=bool)
        for k in range(min(B, m), 0, -1):  # k picks left, this one included
            gain = np.maximum(VT - cur[:, None], 0.0).sum(axis=0)
            gain[sel] = -1.0
            u = int((~covered).sum())
            if u:  # keep coverage reachable: the other k - 1 picks cover at most maxcov each
                cov = self.MT[~covered].sum(axis=0)
                gain[cov + (k - 1) * cov.max() < u] = -1.0
            g = int(gain.argmax())
            if gain[g] <= 0:
                break
            sel.append(g)
            cur = np.maximum(cur, VT[:, g])
            covered |= self.MT[:, g]
        value = self._value(sel)
        if not np.isfinite(value):
            return
        for _ in range(100):  # swap one chosen group for the best other candidate
            best_move, best_val = None, value
            for i in range(len(sel)):
                rest = [s for j, s in enumerate(sel) if j != i]
                base = VT[:, rest].max(axis=1) if rest else np.full(self.n, -np.inf)
                tot = np.maximum(VT, base[:, None]).sum(axis=0)  # -inf: a task stays uncovered
                tot[sel] = -np.inf
                g = int(tot.argmax())
                if tot[g] > best_val + _RTOL * (1 + abs(best_val)):
                    best_move, best_val = (i, g), float(tot[g])
            if best_move is None:
                break
            sel[best_move[0]] = best_move[1]
            value = self._value(sel)
        self._offer(sel, value)

    # -- bound -----------------------------------------------------------
    def _lagrangian(self, VA, v, w, r, iters):
        """Minimise phi(w) = sum(w) + top-r_g sum_t (VA[t, g] - w_t)+ over w >= v.

        Any such floor w bounds every covering completion with at most r more
        groups from above (see select_groups); the minimum over w is the
        Lagrangian dual of the task-assignment constraints. Projected
        subgradient with Polyak steps aimed at the incumbent, stopped early when
        it stalls. Returns (phi, w, reduced gains).
        """
        target = self._threshold()
        best_phi, best_w, best_gain = np.inf, w, None
        buf = np.empty_like(VA)
        stall = 0
        for _ in range(max(iters, 1)):
            np.subtract(VA, w[:, None], out=buf)
            np.maximum(buf, 0.0, out=buf)
            gain = buf.sum(axis=0)
            top = _top_idx(gain, r)
            phi = float(w.sum() + gain[top].sum())
            if phi < best_phi:
                stall = stall + 1 if best_phi - phi < 0.02 * (best_phi - target) else 0
                best_phi, best_w, best_gain = phi, w, gain
            else:
                stall += 1
            if iters <= 1 or not np.isfinite(target) or best_phi <= target or stall >= _STALL:
                break
            grad = 1.0 - (VA[:, top] > w[:, None]).sum(axis=1)
            grad[(w <= v) & (grad > 0)] = 0.0  # projected: cannot go below v
            norm = float(grad @ grad)
            if norm == 0:
                break
            w = np.maximum(w - (phi - target) / norm * grad, v)
        return best_phi, best_w, best_gain

    # -- search ----------------------------------------------------------
    def run(self):
        m = self.VT.shape[1]
        self.greedy_start()
        v = np.full(self.n, -np.inf)
        w0 = self.VT[:, list(self.best)].max(axis=1) if self.best is not None else self.VT.max(axis=1)
        self._visit(np.arange(m), v, [], self.budget, w0, _ROOT_ITERS)

    def _visit(self, A, v, chosen, r, w_hint, iters):
        self.nodes += 1
        unc = np.isneginf(v)
        u = int(unc.sum())
        if u == 0:
            self._offer(chosen, float(v.sum()))
        if r == 0 or A.size == 0:
            return
        if r == 1:
            self._complete_with_one(A, v, chosen, unc, u)
            return
        useful = self._useful_candidates(A, v, unc, u, r)
        if useful is None:
            return
        A, VA, MU = useful
        # Upper bound: the per-task best, or the Lagrangian bound with floor w.
        per_task = np.maximum(v, VA.max(axis=1))
        if per_task.sum() <= self._threshold():
            return
        w = np.maximum(w_hint, v)
        phi, w, gain = self._lagrangian(VA, v, w, r, iters)
        if phi <= self._threshold():
            return
        base = float(w.sum())
        need = self._threshold() - base  # a completion must have summed gains > need
        if np.isfinite(need):
            # Reduced-gain fixing: a candidate whose gain plus the r - 1 largest
            # gains cannot exceed `need` is in no improving completion here.
            keep = gain + _top_sum(gain, r - 1) > need
            if not keep.all():
                A, VA, gain = A[keep], VA[:, keep], gain[keep]
                if u:
                    MU = MU[:, keep]
                    if not MU.any(axis=1).all():
                        return
        order = np.lexsort((A, -gain))  # by reduced gain, descending; ties by row
        if u:
            self._branch_on_uncovered(A, v, chosen, r, w, base, gain, order, MU, unc)
        else:
            self._enumerate_covered(A, v, chosen, r, w, base, gain, order)

    def _complete_with_one(self, A, v, chosen, unc, u):
        """r = 1: the best single completion, evaluated directly (it must contain every uncovered task)."""
        if u:
            if self.codes is not None:
                ucode = np.int64(self.weights[unc].sum())
                A = A[(self.codes[A] & ucode) == ucode]
            else:
                A = A[self.MT[unc][:, A].all(axis=0)]
            if A.size == 0:
                return
        total = np.maximum(self.VT[:, A], v[:, None]).sum(axis=0)
        g = int(total.argmax())
        if total[g] > self._threshold():
            self._offer(chosen + [int(A[g])], float(total[g]))

    def _useful_candidates(self, A, v, unc, u, r):
        """Candidates that improve a covered task or cover an uncovered one: (A, VA, MU), or None if the
        uncovered tasks cannot be covered with r more groups (MU: membership of the uncovered tasks)."""
        VA = self.VT[:, A]
        v_cov = np.where(unc, np.inf, v)
        imp = np.maximum(VA - v_cov[:, None], 0.0).sum(axis=0)
        if not u:  # every task covered: only improvements count
            keep = imp > 0
            if not keep.all():
                A, VA = A[keep], VA[:, keep]
            return (A, VA, None) if A.size else None
        MU = self.MT[unc][:, A]
        cov = MU.sum(axis=0)
        keep = (imp > 0) | (cov > 0)
        if not keep.all():
            A, VA, MU, cov = A[keep], VA[:, keep], MU[:, keep], cov[keep]
        if A.size == 0:
            return None
        if not MU.any(axis=1).all() or _top_sum(cov.astype(float), r) < u:
            return None  # the uncovered tasks cannot be covered with r more groups
        return A, VA, MU

    @staticmethod
    def _partners(p, need, g_sorted, top_rest):
        """Sorted positions a partner of the candidate at position p may take:
        with the candidate and r - 2 more, its gain must still beat `need`."""
        lim = need - g_sorted[p] - top_rest
        return int(np.searchsorted(-g_sorted, -lim, side="left")) if np.isfinite(lim) else g_sorted.size

    def _branch_on_uncovered(self, A, v, chosen, r, w, base, gain, order, MU, unc):
        """Branch on the uncovered task with fewest candidates: every covering completion contains one of
        them; child i takes the i-th (in gain order) and may not use the earlier ones."""
        g_sorted = gain[order]
        top_rest = _top_sum(gain, r - 2)  # bounds the gains of any r - 2 further groups
        need = self._threshold() - base
        counts = MU.sum(axis=1)
        tstar = int(np.flatnonzero(unc)[counts.argmin()])
        has = self.MT[tstar, A[order]]
        pos_t = np.flatnonzero(has)
        others = g_sorted[~has][: r - 1]
        allowed = np.ones(order.size, dtype=bool)  # by sorted position
        for i, p in enumerate(pos_t):
            nxt = g_sorted[pos_t[i + 1: i + r]]
            rest = np.sort(np.concatenate([others, nxt]))[::-1][: r - 1].sum()
            if g_sorted[p] + rest <= need:
                break  # gains are sorted, so no later child can do better
            allowed[p] = False
            c = int(A[order[p]])
            lim = self._partners(p, need, g_sorted, top_rest)
            child = A[order[:lim][allowed[:lim]]]
            self._visit(child, np.maximum(v, self.VT[:, c]), chosen + [c], r - 1, w, _NODE_ITERS)
            need = self._threshold() - base

    def _enumerate_covered(self, A, v, chosen, r, w, base, gain, order):
        """All tasks covered: enumerate combinations in gain order; child i takes the i-th candidate and may
        only use later ones."""
        g_sorted = gain[order]
        top_rest = _top_sum(gain, r - 2)
        need = self._threshold() - base
        for i in range(order.size):
            rest = g_sorted[i + 1: i + r].sum()
            if g_sorted[i] + rest <= need:
                break
            c = int(A[order[i]])
            child = A[order[i + 1: max(self._partners(i, need, g_sorted, top_rest), i + 1)]]
            self._visit(child, np.maximum(v, self.VT[:, c]), chosen + [c], r - 1, w, _NODE_ITERS)
            need = self._threshold() - base


def select_groups(groups, scores, budget, *, candidates=None) -> GroupSelection:
    """Choose at most ``budget`` groups covering every task, maximising the total score.

    The group selection of ETAP (Ayman, Mukhopadhyay and Laszka, ICLR 2026), section 3.2.3, solved exactly
    by branch and bound in the spirit of Standley et al. (2020, HOA): maximise
    ``sum_t max_{g chosen, t in g} scores[g, t]`` subject to every task lying in
    some chosen group and at most ``budget`` groups. Groups may overlap.

    Algorithm (details in ``docs/methods/group-selection.md``): candidates that
    another candidate dominates (a one-task-larger or identical group scoring at
    least as well on every member) are dropped; a greedy plus one-swap local
    search gives the first incumbent; then a depth-first search. While a task is
    uncovered it branches on the uncovered task with the fewest candidates (one
    child per candidate containing it); once all are covered it enumerates the
    remaining choices in a canonical order. Each node is bounded by the smaller
    of the per-task best score and a Lagrangian bound
    ``sum(w) + sum of the r largest sum_t (S[g, t] - w_t)+`` (r = groups left),
    with the floor ``w`` tuned by a few subgradient steps; children are bounded
    from the parent's ``w`` without being visited, and a child only receives
    the partners whose reduced gain can still beat the incumbent. Candidates
    that can no longer improve any task are dropped at each node. With integer
    scores an improvement must be at least 1.

    Parameters
    ----------
    groups : array-like of bool, shape (m, n)
        Multi-hot candidate groups ``U``; ``groups[g, t]`` is True when task ``t``
        is in group ``g``. Rows without tasks are ignored.
    scores : array-like of float, shape (m, n)
        ``scores[g, t]``: score of task ``t`` when trained in group ``g`` (larger
        is better: a predicted MTL gain, or a negative loss). Entries outside
        the group are ignored (NaN is fine); members must be finite.
    budget : int
        At most this many groups are chosen (>= 1).
    candidates : array-like of int or bool, optional
        Restrict the choice to these rows of ``groups`` (row indices, or a
        boolean mask of length m). Default: every row.

    Returns
    -------
    GroupSelection
        Chosen rows (sorted), objective, per-task source row, nodes explored.
        The objective is optimal up to a relative tolerance of 1e-9; among
        equally good selections, which one is returned is deterministic but
        otherwise unspecified.

    Raises
    ------
    ValueError
        On malformed inputs (shapes, non-boolean groups, non-finite member
        scores, budget < 1, bad candidate indices), when some task is in no
        candidate group, or when no ``budget`` candidates cover all tasks.

    References
    ----------
    Ayman, Mukhopadhyay and Laszka, "Ensemble Prediction of Task Affinity for Efficient Multi-Task Learning" (ICLR 2026), section 3.2.3.
    Standley et al., "Which Tasks Should Be Learned Together in Multi-task
    Learning?", ICML 2020 (branch-and-bound group selection).
    """
    U, S, budget, rows = _check_inputs(groups, scores, budget, candidates)
    n = U.shape[1]
    keep = _drop_dominated(U, S, rows)
    rows = rows[keep]
    M = U[rows]
    V = np.where(M, S[rows], -np.inf)
    search = _Search(M, V, budget)
    search.run()
    if search.best is None:
        raise _infeasible(n, budget)
    return _finish(U, S, rows[list(search.best)], search.nodes)
