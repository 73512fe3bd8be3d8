"""Wall time of exact group selection over all 2^n - 1 candidate groups.

For n tasks in {10, 12, 14, 16} and budgets B in {2, 3, 4}, scores are drawn for
every non-empty group (``all_groups(n)``) and ``select_groups`` picks the best
B groups exactly (ETAP section 3.2.3). Times are for the selection only (the
candidate matrix and the scores are built beforehand), median over seeds; the
nodes column is the median number of branch-and-bound nodes.

Score families
--------------
planted   realistic: a task-affinity matrix with planted clusters (within-cluster
          affinity ~ N(0.3, 0.1), across ~ N(-0.15, 0.15)); the score of task t
          in group G is the mean affinity of the other members onto t (ETAP
          eq. 7 style) plus N(0, 0.2) noise; singletons score 0 (STL).
noise     pure noise: every member score ~ N(0, 1).
coverage  hard case: N(0, 1) minus 0.5 per group member, so small groups score
          best but B groups must still cover all n tasks.

For scale, the "combinations" column is sum_{k<=B} C(2^n - 1, k), the number of
selections an unbounded enumeration (the public ETAP code) would evaluate.

Run: ``python benchmarks/group_selection_scaling.py [--seeds 5] [--sizes 10,12,14,16]
[--budgets 2,3,4] [--families planted,noise,coverage]`` (``--smoke``: one seed, n = 8 and 14, B = 2 and 4,
the planted family; a check that it runs).
The last line is ``selection_n14_b4_seconds: X``: the slowest family's median
time for n = 14, B = 4.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import time

import numpy as np

from negtransfer.select.groups import all_groups, select_groups


def planted_scores(U: np.ndarray, rng: np.random.Generator, noise: float = 0.2) -> np.ndarray:
    n = U.shape[1]
    cluster = rng.integers(max(2, n // 4), size=n)
    same = cluster[:, None] == cluster[None, :]
    affinity = np.where(same, rng.normal(0.3, 0.1, (n, n)), rng.normal(-0.15, 0.15, (n, n)))
    np.fill_diagonal(affinity, 0.0)  # affinity[source, target]; the diagonal is unused
    size = U.sum(axis=1, keepdims=True)
    mean_other = (U.astype(float) @ affinity) / np.maximum(size - 1, 1)
    S = np.where(size > 1, mean_other + noise * rng.normal(size=U.shape), 0.0)
    return np.where(U, S, np.nan)


def noise_scores(U: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.where(U, rng.normal(size=U.shape), np.nan)


def coverage_scores(U: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return np.where(U, rng.normal(size=U.shape) - 0.5 * U.sum(axis=1, keepdims=True), np.nan)


FAMILIES = {"planted": planted_scores, "noise": noise_scores, "coverage": coverage_scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--sizes", default="10,12,14,16")
    parser.add_argument("--budgets", default="2,3,4")
    parser.add_argument("--families", default="planted,noise,coverage")
    parser.add_argument("--smoke", action="store_true", help="Smallest settings: checks that the script runs.")
    args = parser.parse_args()
    if args.smoke:
        args.seeds, args.sizes, args.budgets, args.families = 1, "8,14", "2,4", "planted"
    sizes = [int(x) for x in args.sizes.split(",")]
    budgets = [int(x) for x in args.budgets.split(",")]
    families = args.families.split(",")

    print(f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPU(s), "
          f"{platform.processor() or platform.machine()}; median of {args.seeds} seeds")
    header = (f"{'family':<10}{'n':>4}{'B':>3}{'groups':>8}{'combinations':>14}"
              f"{'median s':>10}{'max s':>8}{'nodes':>7}{'max nodes':>10}")
    print(header)
    print("-" * len(header))
    n14b4 = {}
    for family in families:
        make = FAMILIES[family]
        for n in sizes:
            U = all_groups(n)
            m = U.shape[0]
            for B in budgets:
                times, nodes = [], []
                for seed in range(args.seeds):
                    S = make(U, np.random.default_rng(1000 * n + seed))
                    t0 = time.perf_counter()
                    result = select_groups(U, S, B)
                    times.append(time.perf_counter() - t0)
                    nodes.append(result.nodes_explored)
                combos = sum(math.comb(m, k) for k in range(1, B + 1))
                med = statistics.median(times)
                print(f"{family:<10}{n:>4}{B:>3}{m:>8}{combos:>14.2e}{med:>10.3f}{max(times):>8.3f}"
                      f"{int(statistics.median(nodes)):>7}{max(nodes):>10}", flush=True)
                if n == 14 and B == 4:
                    n14b4[family] = med
    if n14b4:
        print(f"selection_n14_b4_seconds: {max(n14b4.values()):.3f}")


if __name__ == "__main__":
    main()
