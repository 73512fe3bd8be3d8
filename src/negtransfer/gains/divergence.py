"""Diverged runs: models whose training went wrong, found from what the trainer returns, and kept out of gains.

A run *diverged* when one of its validation or test losses is not finite
(NaN or inf: the weights blew up), or when it never improved on its initial
weights (best epoch 0: early stopping kept the untrained model, as with a
learning rate such as 1e30, where every step makes the loss worse). Such a
run's losses say nothing about transfer: an untrained STL model and an
untrained group model with the same seed give identical losses, so every gain
came out exactly 0.0 before this check (issue 28). The gain of a task in a
group uses repeat r only where both the group's run r and the task's STL run r
trained (:func:`diverged_mask`); the mean and standard error are over the
repeats left (:func:`repeat_mean_se`), NaN where none is left.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from negtransfer.data.statistics import standard_error
from negtransfer.train.results import ModelResult, RepeatedResult

Group = tuple[int, ...]
Result = ModelResult | RepeatedResult

class DivergedError(ValueError):
    """The reference runs of a job diverged: every gain would rest on them; the message names the models."""


#: Why a run diverged, as reports write it.
NON_FINITE = "non-finite losses"
NEVER_IMPROVED = "never improved on its initial weights"


def divergence_reason(run: ModelResult) -> str | None:
    """Why ``run`` diverged (:data:`NON_FINITE`, :data:`NEVER_IMPROVED`), or None for a run that trained."""
    losses = [*run.val_loss.values(), *run.test_loss.values()]
    if any(not math.isfinite(float(v)) for v in losses):
        return NON_FINITE
    if run.best_epoch == 0 and run.epochs > 0:
        return NEVER_IMPROVED
    return None


def _runs(result: Result) -> list[ModelResult]:
    return list(result.runs) if isinstance(result, RepeatedResult) else [result]


def diverged_runs(results: Mapping[Group, Result]) -> dict[Group, list[tuple[int, str]]]:
    """Every group with a diverged repeat: group -> [(repeat, reason), ...] (groups in the order of ``results``)."""
    found: dict[Group, list[tuple[int, str]]] = {}
    for group, result in results.items():
        for r, run in enumerate(_runs(result)):
            reason = divergence_reason(run)
            if reason is not None:
                found.setdefault(group, []).append((r, reason))
    return found


def diverged_mask(groups: Sequence[Group], results: Mapping[Group, Result], n_tasks: int) -> np.ndarray:
    """(m, n, R) bool: True where repeat r of task t's gain in ``groups[m]`` rests on a diverged run (the group's
    run r or the STL run r of t); False outside the groups."""
    R = len(_runs(results[groups[0]])) if groups else 1
    mask = np.zeros((len(groups), n_tasks, R), dtype=bool)
    bad = {g: {r for r, _ in found} for g, found in diverged_runs(
        {g: results[g] for g in {*map(tuple, groups), *((t,) for g in groups for t in g)}}).items()}
    if not bad:
        return mask
    for row, g in enumerate(groups):
        for t in g:
            for r in bad.get(tuple(g), set()) | bad.get((t,), set()):
                mask[row, t, r] = True
    return mask


def repeat_mean_se(G: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the repeat axis of ``G`` (m, n, R), leaving out the repeats ``mask`` marks.

    Without a marked repeat this is exactly ``G.mean(axis=2)`` and ``G.std(axis=2, ddof=1) / sqrt(R)`` (NaN with
    one repeat), so jobs without divergence keep their numbers; with one, each cell uses its repeats left (NaN mean
    where none is left, NaN standard error where fewer than two are).
    """
    if mask is None or not mask.any():  # (gains.table.standard_errors' rule; that module imports this one)
        with np.errstate(invalid="ignore"):
            return G.mean(axis=-1), standard_error(G, axis=-1)
    count = (~mask).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.where(mask, 0.0, G).sum(axis=-1) / np.maximum(count, 1), np.nan)
        centred = np.where(mask, 0.0, G - mean[..., None])
        var = (centred ** 2).sum(axis=-1) / np.maximum(count - 1, 1)
        se = np.where(count >= 2, np.sqrt(var / np.maximum(count, 1)), np.nan)
    return mean, se


def describe_diverged(found: Mapping[Group, Sequence[tuple[int, str]]], task_names: Sequence[str],
                      repeats: int, limit: int = 6) -> str:
    """One line naming the diverged models: ``STL of a (repeats 0, 1 of 3: never improved ...); a+b (...)``."""
    parts = []
    for group, items in found.items():
        name = f"STL of {task_names[group[0]]}" if len(group) == 1 else "+".join(task_names[t] for t in group)
        reasons = sorted({reason for _, reason in items})
        parts.append(f"{name} ({len(items)} of {repeats} repeat{'s' if repeats > 1 else ''}: {'; '.join(reasons)})")
    shown = "; ".join(parts[:limit])
    return shown + (f"; and {len(parts) - limit} more" if len(parts) > limit else "")
