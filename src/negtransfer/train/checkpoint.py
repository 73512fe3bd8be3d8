"""Fits that survive a crash: the state of a running :class:`~negtransfer.train.loop.FitLoop`, saved as it trains.

The run store keeps finished runs, so an interrupted job loses only the runs in
flight. A single run can be long (TP-AMTL with the official budget of 2000
epochs: 990 s a run on pbcseq, about 1.4 hours on nafld at 2.6 s an epoch;
docs/methods/tp-amtl.md, "The official budget on pbcseq"), so a fit may also save its own
state while it trains, and a later attempt at the same run continues from it,
with the same numbers as a fit that was never interrupted.

How it is switched on: whoever runs a unit of work opens a folder for it with
:func:`resume_fits` (``negtransfer.runs.runner`` does, beside a file-backed run
store: ``<store>.checkpoints/<the run's key digest>/``). Inside it, the i-th fit
of the unit (an STL comparison trains one model per task) saves to
``fit-<i>.pt`` every :data:`SAVE_EVERY_SECONDS` of training and when it ends,
and finds it there on the next attempt. Outside :func:`resume_fits` nothing is
saved and nothing changes. A family opts in by giving the loop what else its
training reads and changes (``FitLoop(..., resumable={"optimiser": ...,
"batch_order": generator})``); the loop adds the model, its callbacks' state,
its counters and history, and the random states (torch's global generator and
numpy's). Both families trained by the loop opt in:
:func:`negtransfer.train.temporal.fit` and
:func:`negtransfer.train.variational.fit_variational` (VMTL with the official
schedule of 15,000 iterations: minutes a fit).

A file that does not match the fit (another model's parameter names or shapes,
another number of tasks or rounds) is ignored and overwritten: the fit starts
from the beginning. Files are written atomically (a temporary file, then a
rename), so a crash while saving leaves the previous state.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["SAVE_EVERY_SECONDS", "FitSlot", "current_slot", "resume_fits"]

#: Seconds of training between two saves of a running fit (and once at its end).
SAVE_EVERY_SECONDS = 60.0

#: Bumped when the saved layout changes; a file of another version is ignored.
CHECKPOINT_VERSION = 1

#: The name of a unit's i-th fit's state file (its folder holds nothing else but ``.partial`` files of a save).
FIT_FILE = "fit-{}.pt"

#: :data:`FIT_FILE`, read back: group 1 is the fit's number.
FIT_FILE_PATTERN = re.compile(r"fit-(\d+)\.pt")


@dataclass
class _Folder:
    path: Path
    every_seconds: float
    label: str | None = None
    fits: int = field(default=0)


_ACTIVE: ContextVar[_Folder | None] = ContextVar("negtransfer_fit_checkpoints", default=None)


@contextlib.contextmanager
def resume_fits(folder: str | Path | None, every_seconds: float | None = None, *,
                label: str | None = None) -> Iterator[None]:
    """Let the fits started inside save their state to ``folder`` and resume from it (None: do nothing).

    Parameters
    ----------
    folder : str, Path or None
        One unit of work's folder (created on the first save); None: nothing
        inside is saved (not even inside an enclosing call). The unit's fits
        are numbered in the order they start, so a unit must start the same
        fits in the same order on every attempt (its numbers are seeded, so it does).
    every_seconds : float, optional
        Seconds of training between saves (0: after every round); default
        :data:`SAVE_EVERY_SECONDS`.
    label : str, optional
        What the unit is, in words (``"tp-amtl run 3"``), saved with each state for
        ``negtransfer store-info``; never compared when a state is loaded.
    """
    every_seconds = SAVE_EVERY_SECONDS if every_seconds is None else every_seconds
    if every_seconds < 0:
        raise ValueError(f"every_seconds must be >= 0, got {every_seconds!r}")
    token = _ACTIVE.set(None if folder is None else _Folder(Path(folder), float(every_seconds), label))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


@dataclass(frozen=True)
class FitSlot:
    """Where one fit saves its state: ``path``, every ``every_seconds`` of training, with its unit's ``label``."""

    path: Path
    every_seconds: float
    label: str | None = None

    def read(self) -> dict | None:
        """The saved state of whichever fit wrote the file (``weights_only`` load), or None where there is none or
        it cannot be read: missing, damaged, not a dict, or of another :data:`CHECKPOINT_VERSION`."""
        if not self.path.is_file():
            return None
        try:
            state = torch.load(self.path, weights_only=True)
        except Exception:  # a damaged or foreign file: start again, it is overwritten at the next save
            return None
        if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
            return None
        return state

    def load(self, signature: dict) -> dict | None:
        """The saved state if the file exists and was written by a fit with this ``signature``, else None."""
        state = self.read()
        if state is None or state.get("signature") != signature:
            return None
        return state

    def save(self, state: dict) -> bool:
        """Write ``state`` atomically (a temporary file of this writer's own, then a rename); False if it could not.

        A state that cannot be written (a full disk, a folder removed by another job that finished the same
        run) never fails the fit: it only saves less.
        """
        partial = self.path.with_name(f"{self.path.name}.{os.getpid()}-{threading.get_ident()}.partial")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"version": CHECKPOINT_VERSION, "label": self.label, **state}, partial)
            os.replace(partial, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            return False
        return True


def current_slot() -> FitSlot | None:
    """The next fit's slot inside :func:`resume_fits` (numbering the unit's fits), or None outside it."""
    folder = _ACTIVE.get()
    if folder is None:
        return None
    folder.fits += 1
    return FitSlot(folder.path / FIT_FILE.format(folder.fits - 1), folder.every_seconds, folder.label)


def random_states() -> dict:
    """torch's global CPU generator and numpy's global generator, as tensors and numbers (``weights_only`` loads)."""
    name, keys, position, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                                                       int(position), int(has_gauss), float(gauss)]}


def set_random_states(states: dict) -> None:
    """Restore what :func:`random_states` returned."""
    torch.set_rng_state(states["torch"])
    name, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))


def object_state(value: Any) -> Any:
    """The state of a resumable object: a generator's ``get_state()``, anything else's ``state_dict()``."""
    if isinstance(value, torch.Generator):
        return value.get_state()
    return value.state_dict()


def set_object_state(value: Any, state: Any) -> None:
    """Restore what :func:`object_state` returned."""
    if isinstance(value, torch.Generator):
        value.set_state(state)
    else:
        value.load_state_dict(state)
