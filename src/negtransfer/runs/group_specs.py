"""Which groups a command should train: ``all``, ``random:N`` or a file of groups."""

from __future__ import annotations

import itertools
import numbers
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from negtransfer.train.results import RepeatedResult

Group = tuple[int, ...]


def parse_sizes(text: str | int | None, n_tasks: int) -> tuple[int, int]:
    """``"2-5"`` -> (2, 5); ``"3"`` or ``3`` -> (3, 3); None -> (2, n_tasks)."""
    if text is None:
        return 2, max(n_tasks, 2)
    if isinstance(text, numbers.Integral) and not isinstance(text, bool):
        text = str(int(text))
    if not isinstance(text, str):  # e.g. sizes=[2, 3] from Python: a list is neither a range nor one size
        raise ValueError(f"sizes must be a range such as '2-5' (sizes 2 to 5) or one size (3 or '3'), "
                         f"got {text!r}")
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-", 1))
        else:
            lo = hi = int(text)
    except ValueError:
        raise ValueError(f"--sizes must look like '2-5' or '3', got {text!r}") from None
    if not 1 <= lo <= hi:
        raise ValueError(f"--sizes needs 1 <= low <= high, got {text!r}")
    if lo > n_tasks:
        raise ValueError(f"--sizes {text!r} asks for groups larger than the {n_tasks} tasks available")
    return lo, min(hi, n_tasks)


def random_groups(n_tasks: int, count: int, sizes: tuple[int, int], seed: int) -> list[Group]:
    """``count`` distinct groups, sizes uniform in ``sizes``, members uniform; seeded."""
    lo, hi = sizes
    from math import comb

    available = sum(comb(n_tasks, s) for s in range(lo, hi + 1))
    if count > available:
        if available == 0:
            raise ValueError(f"no group of {lo}-{hi} tasks exists among {n_tasks} task(s); name more tasks with --tasks")
        raise ValueError(
            f"asked for {count} random groups but only {available} exist with sizes {lo}-{hi} of {n_tasks} tasks; "
            f"ask for at most {available} (--groups random:{available}) or train them all (--groups all)"
        )
    rng = np.random.default_rng(seed)
    out: dict[Group, None] = {}
    while len(out) < count:
        size = int(rng.integers(lo, hi + 1))
        out[tuple(sorted(int(i) for i in rng.choice(n_tasks, size=size, replace=False)))] = None
    return list(out)


def stratified_groups(n_tasks: int, count: int, sizes: tuple[int, int], seed: int) -> list[Group]:
    """``count`` distinct groups spread evenly over the sizes in ``sizes`` (round robin), members uniform; seeded.

    Sizes whose groups are used up are skipped; raises when fewer than ``count``
    groups exist.
    """
    lo, hi = sizes
    from math import comb

    available = {s: comb(n_tasks, s) for s in range(lo, hi + 1)}
    if count > sum(available.values()):
        raise ValueError(f"asked for {count} groups but only {sum(available.values())} exist with sizes {lo}-{hi}")
    rng = np.random.default_rng(seed)
    out: dict[Group, None] = {}
    taken = {s: 0 for s in available}
    size_cycle = [s for s in range(lo, hi + 1)]
    k = 0
    while len(out) < count:
        size = size_cycle[k % len(size_cycle)]
        k += 1
        if taken[size] >= available[size]:
            continue
        while True:
            g = tuple(sorted(int(i) for i in rng.choice(n_tasks, size=size, replace=False)))
            if g not in out:
                break
        out[g] = None
        taken[size] += 1
    return list(out)


#: Designs of the training groups of the grouping job (see :func:`design_groups`).
DESIGNS = ("random", "stratified", "pairs")


def design_groups(design: str, n_tasks: int, count: int, seed: int) -> list[Group]:
    """Training groups of sizes 2..n-1 by a design.

    ``"random"``: a uniform size, then uniform members, per group (the ETAP
    paper's sampling); ``"stratified"``: sizes spread evenly; ``"pairs"``:
    every pair of tasks (HOA's design: with stacked training all n(n-1)/2 pairs
    cost about as much as a few larger groups), then ``count`` minus the pairs
    stratified larger groups if ``count`` is larger. ``count`` is capped at the
    number of groups that exist (sizes 2..n-1).
    """
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; use one of {', '.join(DESIGNS)}")
    from math import comb

    hi = n_tasks - 1
    available = sum(comb(n_tasks, s) for s in range(2, hi + 1))
    count = min(count, available)
    if count <= 0 or hi < 2:
        return []
    if design == "random":
        return random_groups(n_tasks, count, (2, hi), seed)
    if design == "stratified":
        return stratified_groups(n_tasks, count, (2, hi), seed)
    pairs: list[Group] = list(itertools.combinations(range(n_tasks), 2)) if n_tasks > 2 else []
    rest = count - len(pairs)
    if rest > 0 and hi >= 3:
        pairs += stratified_groups(n_tasks, min(rest, available - len(pairs)), (3, hi), seed)
    return pairs


def every_group(n_tasks: int, sizes: tuple[int, int]) -> list[Group]:
    """Every group with a size in ``sizes``, smallest first."""
    lo, hi = sizes
    return [g for s in range(lo, hi + 1) for g in itertools.combinations(range(n_tasks), s)]


def read_group_file(path: str | Path, task_names: Sequence[str]) -> list[Group]:
    """One group per line, task names separated by ``+`` or ``,``; ``#`` starts a comment."""
    lookup = {name: i for i, name in enumerate(task_names)}
    groups: list[Group] = []
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"--groups {str(path)!r} is a folder; give a text file with one group per line "
                         f"(task names joined by '+'), or 'all' or 'random:N'")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"--groups file {str(path)!r} is not UTF-8 text; write one group per line, "
                         f"task names joined by '+'") from None
    except OSError as exc:
        raise ValueError(f"cannot read --groups file {str(path)!r}: {exc.strerror or exc}") from None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        names = [n.strip() for n in line.replace(",", "+").split("+") if n.strip()]
        unknown = [n for n in names if n not in lookup]
        if unknown:
            raise ValueError(
                f"{path}:{lineno}: unknown task(s) {unknown}; known tasks: {', '.join(task_names)}"
            )
        groups.append(tuple(sorted({lookup[n] for n in names})))
    if not groups:
        raise ValueError(f"{path} lists no groups (one group per line, tasks joined by '+')")
    return list(dict.fromkeys(groups))


def parse_group_spec(spec: str, task_names: Sequence[str], sizes: tuple[int, int], seed: int) -> list[Group]:
    """Groups for ``--groups all|random:N|FILE``."""
    n = len(task_names)
    if spec == "all":
        return every_group(n, sizes)
    if spec.startswith("random:"):
        try:
            count = int(spec.split(":", 1)[1])
        except ValueError:
            raise ValueError(f"--groups random:N needs an integer N, got {spec!r}") from None
        if count < 1:
            raise ValueError("--groups random:N needs N >= 1")
        return random_groups(n, count, sizes, seed)
    if Path(spec).exists():
        return read_group_file(spec, task_names)
    raise ValueError(f"--groups must be 'all', 'random:N' or an existing file of groups, got {spec!r}")


def across_folds(per_fold: Sequence[Mapping[tuple[int, ...], RepeatedResult]]) -> dict[tuple[int, ...], RepeatedResult]:
    """Each group's runs over every fold (``--folds K``; :mod:`negtransfer.data.folds`), one result per group.

    Run ``r * K + f`` of a group is its repeat r on fold f (repeat-major), so a paired gain
    (:func:`negtransfer.gains.table.repeat_gains`) pairs the runs of one repeat and fold (common random
    numbers) and every mean is over folds and repeats. One fold: its results as they are.

    Parameters
    ----------
    per_fold : sequence of mapping group -> RepeatedResult
        Fold f's results, every fold with the same groups and repeats.
    """
    if len(per_fold) == 1:
        return dict(per_fold[0])
    return {g: RepeatedResult(g, [fold[g].runs[r] for r in range(first.repeats) for fold in per_fold])
            for g, first in per_fold[0].items()}
