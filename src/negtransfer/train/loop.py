"""One fit loop with callbacks, for the model families trained one model at a time (VMTL, TP-AMTL and baselines).

A fit is a sequence of *rounds* (an epoch of the temporal family, ``eval_every``
iterations of the variational family), each made of training steps and ended by
an evaluation on the validation split. The family supplies two functions:

* ``train_round(loop, r) -> RoundOutput``: the steps of round ``r`` (it calls
  :meth:`FitLoop.step_done` after each step, so progress callbacks see steps);
* ``evaluate(r, output) -> Evaluation``: per-task validation scores, an overall
  score and the round's history record.

Everything else is a callback (:class:`Callback`): keeping the best weights
(:class:`KeepBest`, per task or overall), early stopping (:class:`EarlyStopping`,
per task or overall) and progress (:class:`Progress`). The loop returns one
result type, :class:`FitResult`, whatever the family.

A family that gives the loop its other training state (``resumable``: the
optimiser, the batch-order generator) can be resumed after a crash inside
:func:`negtransfer.train.checkpoint.resume_fits`: the loop saves its state as it
trains and continues from it on the next attempt, with the same numbers.

The stacked trainer (:mod:`negtransfer.train.batched`) trains many hard-sharing
models at once with its own vectorised loop and is not built on this one.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from torch import nn

from negtransfer.train.checkpoint import (
    FitSlot,
    current_slot,
    object_state,
    random_states,
    set_object_state,
    set_random_states,
)

__all__ = [
    "Callback",
    "EarlyStopping",
    "Evaluation",
    "FitLoop",
    "FitResult",
    "KeepBest",
    "Progress",
    "RoundOutput",
]


@dataclass
class RoundOutput:
    """What one round of training did: its steps, their summed wall time, and family-specific values."""

    steps: int
    seconds: float = 0.0
    values: dict = field(default_factory=dict)


@dataclass
class Evaluation:
    """The validation result of one round.

    Attributes
    ----------
    scores : list of float
        One validation score per task (NaN: the task could not be scored).
    total : float
        The overall score (e.g. the summed validation loss).
    record : dict
        The round's entry in :attr:`FitResult.history`.
    """

    scores: list
    total: float
    record: dict


@dataclass
class FitResult:
    """What a fit returns, for every family trained by :class:`FitLoop`.

    Attributes
    ----------
    model : nn.Module
        The trained model (the family decides whether it holds the best or the last weights).
    task_indices : tuple of int
        The dataset's tasks the model was trained on, in output order.
    best_states : list of dict or None
        Per task, the state dict of its best round (one shared dict when the best is chosen overall).
    best_at : list of int
        Per task, the step count (``unit``) of its best round.
    best_scores : list of float
        Per task, its validation score at that round.
    rounds_run : int
        Rounds trained (epochs, or evaluations).
    steps_run : int
        Training steps taken.
    unit : str
        What ``best_at`` counts: "epoch" or "iteration".
    seconds_per_step : float
        Mean wall time of a training step.
    history : list of dict
        One record per round.
    """

    model: Any
    task_indices: tuple
    best_states: list
    best_at: list
    best_scores: list
    rounds_run: int
    steps_run: int
    unit: str
    seconds_per_step: float
    history: list = field(default_factory=list)

    # -- names used by the families' callers
    @property
    def best_epoch(self) -> int:
        """The best epoch (overall choice: the same for every task)."""
        return int(self.best_at[0]) if self.best_at else 0

    @property
    def epochs_run(self) -> int:
        return self.rounds_run

    @property
    def best_iteration(self) -> list:
        return list(self.best_at)

    @property
    def best_validation_accuracy(self) -> list:
        return list(self.best_scores)

    @property
    def seconds_per_iteration(self) -> float:
        return self.seconds_per_step


class Callback:
    """Hooks of :class:`FitLoop`; override the ones you need."""

    def on_fit_start(self, loop: "FitLoop") -> None:
        pass

    def on_step_end(self, loop: "FitLoop") -> None:
        pass

    def on_round_end(self, loop: "FitLoop", evaluation: Evaluation) -> None:
        pass

    def state_dict(self) -> dict:
        """What the callback carries from round to round (saved with a resumable fit)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (after :meth:`on_fit_start`)."""


def _improves(new: float, best: float, mode: str) -> bool:
    return new > best if mode == "max" else new < best


class KeepBest(Callback):
    """Keep the weights of the best round, per task or overall.

    Parameters
    ----------
    mode : {"max", "min"}
        Whether higher or lower validation scores are better.
    per_task : bool
        Each task keeps its own best round (its score in
        :attr:`Evaluation.scores`; a NaN score counts as better, so a task that
        cannot be scored keeps its latest weights), or one best round for all
        (by :attr:`Evaluation.total`; a NaN total never improves).
    keep_initial : bool
        Start from the weights before training (so a fit that never improves
        returns them), instead of from nothing.
    """

    def __init__(self, mode: str = "max", *, per_task: bool = True, keep_initial: bool = False):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.mode, self.per_task, self.keep_initial = mode, per_task, keep_initial

    def on_fit_start(self, loop: "FitLoop") -> None:
        worst = -1.0 if self.mode == "max" and self.per_task else (float("-inf") if self.mode == "max" else float("inf"))
        n = loop.n_tasks if self.per_task else 1
        self.best = [worst] * n
        self.at = [0] * n
        initial = copy.deepcopy(loop.model.state_dict()) if self.keep_initial else None
        self.states = [initial] * n

    def on_round_end(self, loop: "FitLoop", evaluation: Evaluation) -> None:
        state = None
        if not self.per_task:
            if _improves(evaluation.total, self.best[0], self.mode):
                self.best[0], self.at[0], self.states[0] = evaluation.total, loop.steps_done, loop.snapshot()
            return
        for t, score in enumerate(evaluation.scores):
            if math.isnan(score) or _improves(score, self.best[t], self.mode):
                state = state or loop.snapshot()
                self.best[t], self.at[t], self.states[t] = score, loop.steps_done, state

    def state_dict(self) -> dict:
        return {"best": list(self.best), "at": list(self.at), "states": list(self.states)}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.at, self.states = list(state["best"]), list(state["at"]), list(state["states"])

    def results(self, n_tasks: int) -> tuple[list, list, list]:
        """Per task: best state, best step count, best score."""
        if self.per_task:
            return list(self.states), list(self.at), list(self.best)
        return [self.states[0]] * n_tasks, [self.at[0]] * n_tasks, [self.best[0]] * n_tasks


class EarlyStopping(Callback):
    """Stop after ``patience`` rounds without improvement, overall or for every task.

    Parameters
    ----------
    patience : int
        Rounds without a better validation score before stopping.
    mode : {"max", "min"}
    per_task : bool
        Count each task's rounds without improvement and stop once every task
        has waited ``patience`` rounds (NaN scores never improve), or count the
        overall score's.
    """

    def __init__(self, patience: int, mode: str = "min", *, per_task: bool = False):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience must be a positive integer, got {patience!r}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.patience, self.mode, self.per_task = patience, mode, per_task

    def on_fit_start(self, loop: "FitLoop") -> None:
        n = loop.n_tasks if self.per_task else 1
        self.best = [float("-inf") if self.mode == "max" else float("inf")] * n
        self.stale = [0] * n

    def on_round_end(self, loop: "FitLoop", evaluation: Evaluation) -> None:
        scores = evaluation.scores if self.per_task else [evaluation.total]
        for t, score in enumerate(scores):
            if _improves(score, self.best[t], self.mode):
                self.best[t], self.stale[t] = score, 0
            else:
                self.stale[t] += 1
        if all(s >= self.patience for s in self.stale):
            loop.stop = True

    def state_dict(self) -> dict:
        return {"best": list(self.best), "stale": list(self.stale)}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.stale = list(state["best"]), list(state["stale"])


class Progress(Callback):
    """Calls ``on_step(done, total)`` after every training step (progress bars)."""

    def __init__(self, on_step: Callable[[int, int], None], total_steps: int):
        self.on_step, self.total = on_step, total_steps

    def on_step_end(self, loop: "FitLoop") -> None:
        self.on_step(loop.steps, self.total)


class FitLoop:
    """Runs rounds of training and evaluation, with callbacks (see the module docstring).

    Parameters
    ----------
    model : nn.Module
    n_tasks : int
        Tasks scored per round (length of :attr:`Evaluation.scores`).
    callbacks : sequence of Callback
        Must include one :class:`KeepBest` for :meth:`run` to report best states.
    unit : {"epoch", "iteration"}
        What :attr:`FitResult.best_at` counts: rounds (epochs) or steps (iterations).
    resumable : mapping, optional
        The family's other training state, by name: objects with
        ``state_dict``/``load_state_dict`` (optimisers) or ``torch.Generator``.
        Given, the fit saves and resumes its state inside
        :func:`~negtransfer.train.checkpoint.resume_fits` (the model, the
        callbacks, the counters, the history and the global random states are
        added by the loop); None (default): it never does.
    """

    def __init__(self, model: nn.Module, n_tasks: int, callbacks: Sequence[Callback] = (), *, unit: str = "epoch",
                 resumable: Mapping[str, Any] | None = None):
        self.model = model
        self.n_tasks = n_tasks
        self.callbacks = list(callbacks)
        self.unit = unit
        self.resumable = None if resumable is None else dict(resumable)
        self.stop = False
        self.steps = 0
        self.rounds = 0
        # the wall time of the rounds run (training, evaluation, callbacks, saves) and how many rounds it covers
        # (fewer than `rounds` after resuming a state saved before it was recorded): the rate of a saved state,
        # for `negtransfer store-info`; never part of a FitResult
        self.wall_seconds = 0.0
        self.wall_rounds = 0

    @property
    def steps_done(self) -> int:
        """Steps (``unit="iteration"``) or rounds (``unit="epoch"``) done so far."""
        return self.steps if self.unit == "iteration" else self.rounds

    def snapshot(self) -> dict:
        """A deep copy of the model's state dict."""
        return copy.deepcopy(self.model.state_dict())

    def step_done(self) -> None:
        """Count one training step (called by ``train_round``)."""
        self.steps += 1
        for cb in self.callbacks:
            cb.on_step_end(self)

    def run(
        self,
        train_round: Callable[["FitLoop", int], RoundOutput],
        evaluate: Callable[[int, RoundOutput], Evaluation],
        max_rounds: int,
        *,
        task_indices: Sequence[int] | None = None,
    ) -> FitResult:
        """Train up to ``max_rounds`` rounds (fewer if a callback stops the loop)."""
        for cb in self.callbacks:
            cb.on_fit_start(self)
        tasks = tuple(range(self.n_tasks)) if task_indices is None else tuple(task_indices)
        slot = current_slot() if self.resumable is not None else None
        seconds = 0.0
        history: list[dict] = []
        if slot is not None:
            seconds, history = self._resume(slot, max_rounds, tasks)
        saved_at = lap = time.perf_counter()
        while self.rounds < max_rounds and not self.stop:
            r = self.rounds + 1
            output = train_round(self, r)
            seconds += output.seconds
            self.rounds = r
            evaluation = evaluate(r, output)
            history.append(evaluation.record)
            for cb in self.callbacks:
                cb.on_round_end(self, evaluation)
            ended = self.stop or r == max_rounds
            now = time.perf_counter()
            self.wall_seconds, self.wall_rounds, lap = self.wall_seconds + now - lap, self.wall_rounds + 1, now
            if slot is not None and (ended or now - saved_at >= slot.every_seconds):
                slot.save(self._state(max_rounds, tasks, seconds, history))
                saved_at = time.perf_counter()
        keeper = next((cb for cb in self.callbacks if isinstance(cb, KeepBest)), None)
        if keeper is not None:
            states, at, scores = keeper.results(self.n_tasks)
        else:
            states, at, scores = [None] * self.n_tasks, [0] * self.n_tasks, [float("nan")] * self.n_tasks
        return FitResult(self.model, tasks, states, at, scores, self.rounds, self.steps, self.unit,
                         seconds / max(self.steps, 1), history)

    # ---------------------------------------------------------------- resuming (train.checkpoint)
    def _signature(self, max_rounds: int, tasks: tuple) -> dict:
        """What a saved state must match to be this fit's: its tasks, the shape of the model and of the loop."""
        return {"tasks": [int(t) for t in tasks], "max_rounds": int(max_rounds), "unit": self.unit,
                "parameters": [[name, list(value.shape)] for name, value in self.model.state_dict().items()],
                "callbacks": [type(cb).__name__ for cb in self.callbacks],
                "resumable": sorted(self.resumable or {})}

    def _state(self, max_rounds: int, tasks: tuple, seconds: float, history: list) -> dict:
        return {"signature": self._signature(max_rounds, tasks), "rounds": self.rounds, "steps": self.steps,
                "stop": self.stop, "seconds": seconds, "wall_seconds": self.wall_seconds,
                "wall_rounds": self.wall_rounds, "history": list(history),
                "model": self.model.state_dict(), "callbacks": [cb.state_dict() for cb in self.callbacks],
                "resumable": {name: object_state(value) for name, value in (self.resumable or {}).items()},
                "random": random_states()}

    def _resume(self, slot: FitSlot, max_rounds: int, tasks: tuple) -> tuple[float, list]:
        """Restore the state saved in ``slot`` (if it is this fit's): ``(seconds, history)`` so far."""
        saved = slot.load(self._signature(max_rounds, tasks))
        if saved is None:
            return 0.0, []
        self.model.load_state_dict(saved["model"])
        for cb, state in zip(self.callbacks, saved["callbacks"], strict=True):
            cb.load_state_dict(state)
        for name, value in (self.resumable or {}).items():
            set_object_state(value, saved["resumable"][name])
        set_random_states(saved["random"])
        self.rounds, self.steps, self.stop = int(saved["rounds"]), int(saved["steps"]), bool(saved["stop"])
        self.wall_seconds, self.wall_rounds = float(saved.get("wall_seconds", 0.0)), int(saved.get("wall_rounds", 0))
        return float(saved["seconds"]), list(saved["history"])
