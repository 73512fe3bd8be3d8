"""The fit loop and its callbacks: best weights per task or overall, early stopping, progress, one result type."""

import math

import pytest
import torch

from negtransfer.train.loop import EarlyStopping, Evaluation, FitLoop, KeepBest, Progress, RoundOutput


def _run(scores, callbacks, *, totals=None, unit="epoch", steps_per_round=2):
    """A loop over a one-parameter model whose weight is the round number; per-task scores given per round."""
    model = torch.nn.Linear(1, 1, bias=False)

    def train_round(loop, r):
        with torch.no_grad():
            model.weight.fill_(float(r))
        for _ in range(steps_per_round):
            loop.step_done()
        return RoundOutput(steps_per_round)

    def evaluate(r, out):
        total = totals[r - 1] if totals else sum(scores[r - 1])
        return Evaluation(list(scores[r - 1]), total, {"round": r})

    loop = FitLoop(model, len(scores[0]), callbacks, unit=unit)
    return loop.run(train_round, evaluate, len(scores))


def test_keep_best_per_task_and_overall():
    scores = [(0.5, 0.9), (0.7, 0.8), (0.6, float("nan"))]
    res = _run(scores, [KeepBest("max", per_task=True)], unit="iteration")
    assert res.best_scores[0] == 0.7 and res.best_at[0] == 4  # iteration count at round 2
    assert math.isnan(res.best_scores[1]) and res.best_at[1] == 6  # NaN: keeps its latest weights
    assert float(res.best_states[0]["weight"]) == 2.0 and float(res.best_states[1]["weight"]) == 3.0
    res = _run(scores, [KeepBest("min", per_task=False, keep_initial=True)], totals=[1.0, 0.5, float("nan")])
    assert res.best_epoch == 2 and float(res.best_states[1]["weight"]) == 2.0  # one state for all tasks
    assert res.rounds_run == res.epochs_run == 3 and [h["round"] for h in res.history] == [1, 2, 3]


def test_early_stopping_overall_and_per_task():
    scores = [(1.0, 1.0), (0.5, 2.0), (0.6, 0.1), (0.7, 0.2), (0.8, 0.3), (0.9, 0.4)]
    res = _run(scores, [EarlyStopping(2, "min")], totals=[2.0, 2.5, 0.7, 0.9, 1.1, 1.3])
    assert res.rounds_run == 5  # best at round 3, then two rounds without a lower total
    res = _run(scores, [EarlyStopping(2, "min", per_task=True)])
    assert res.rounds_run == 5  # task 0 stale since round 2, task 1 since round 3: both >= 2 at round 5
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(0)


def test_progress_sees_every_step():
    seen = []
    res = _run([(1.0,), (0.5,)], [Progress(lambda done, total: seen.append((done, total)), 4)], steps_per_round=2)
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)] and res.steps_run == 4
