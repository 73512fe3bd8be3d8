"""What a run store holds and how far its fits in flight are, read without changing anything.

A job keeps its finished runs in a SQLite run store (:class:`~negtransfer.runs.store.RunStore`); a run trained on
its own (``compare``'s units) also saves its fits' state while it trains, beside a file-backed store in
``<store>.checkpoints/<the run's key digest>/fit-<i>.pt`` (:mod:`negtransfer.train.checkpoint`,
:func:`negtransfer.runs.runner.checkpoint_root`). A long unit (TP-AMTL at 2000 epochs: hours) counts in a job's
progress only once it is stored; :func:`store_info` reads both places, so that ``negtransfer store-info PATH``
can say how far each fit has come while the job runs, and how long it has left at the rate its state records
(:attr:`FitProgress.seconds_left`); :class:`FitWatcher` reads the fits still training for a job's own progress
bar (``negtransfer compare``).

Nothing here writes: the store is opened read-only (SQLite's ``mode=ro``; a store that is being written is read
as of its last committed transaction) and each fit file is read with a ``weights_only`` load
(:meth:`~negtransfer.train.checkpoint.FitSlot.read`).
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from negtransfer.runs.store import RECOVER_COMMAND, StoreError, foreign_file, foreign_layout

__all__ = ["FitProgress", "FitWatcher", "StoreInfo", "StoredRuns", "checkpoints_beside", "fits_in_flight",
           "store_info", "stored_runs"]

#: The tables every run store has (:class:`~negtransfer.runs.store.RunStore` creates them when it opens a file).
STORE_TABLES = frozenset({"runs", "artifacts"})

#: Seconds to wait for a job that holds the store's write lock (a commit takes milliseconds).
BUSY_TIMEOUT_SECONDS = 10.0


def checkpoints_beside(store_path: str | Path) -> Path:
    """The folder beside the run store file ``store_path`` where its running fits keep their state:
    ``<store>.checkpoints`` at the store's absolute path."""
    path = Path(store_path).absolute()
    return path.with_name(path.name + ".checkpoints")


@dataclass(frozen=True)
class StoredRuns:
    """The finished runs a store holds.

    Attributes
    ----------
    model_runs : int
        Rows of the ``runs`` table (one trained model each).
    artifacts : int
        Rows of the ``artifacts`` table (JSON results that are not a model row: a ``compare`` unit, an affinity
        record, ...).
    artifact_kinds : dict of str to int
        Artifacts by the kind that wrote them (their key up to the first ``:``, the kind's
        :class:`~negtransfer.runs.specs.ArtifactSlot` template: ``compare``, ``affinity``, ``grad-tae``, ...),
        most first, then by name.
    """

    model_runs: int
    artifacts: int
    artifact_kinds: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class FitProgress:
    """How far one fit in flight has come: what its last saved state (``fit-<i>.pt``) says.

    Attributes
    ----------
    digest : str
        The unit's folder name: the digest of the run's store keys (one folder per run,
        :func:`negtransfer.runs.runner.checkpoint_root`).
    fit : int
        The fit's number in its unit (a unit numbers its fits in the order they start; an STL comparison trains
        one per task).
    path : Path
    saved : float
        When the state was written (the file's modification time, seconds since the epoch).
    readable : bool
        False for a damaged file or one of another checkpoint version; the fields below are then None.
    rounds, max_rounds : int or None
        Rounds done, of the fit's budget (the signature's ``max_rounds``): epochs, or evaluation rounds of a
        fit counted in iterations.
    unit : str or None
        What a round is: ``"epoch"``, or ``"iteration"`` (a round is then ``eval_every`` iterations; VMTL).
    steps : int or None
        Optimisation steps done (iterations, for ``unit="iteration"``).
    stopped : bool or None
        A callback (early stopping) ended the fit before its budget.
    label : str or None
        What the unit is (``"tp-amtl run 3"``: the model and run of a ``compare`` unit), where its state says.
    training_seconds : float or None
        Seconds spent in training steps so far (the state's ``seconds``: the sum of
        :attr:`~negtransfer.train.loop.RoundOutput.seconds`; 0 in a TP-AMTL state saved before the temporal family
        measured it).
    wall_seconds : float or None
        Wall time of the rounds :attr:`wall_rounds` counts: training, validation, callbacks and saves (a state
        saved before the loop recorded it has none: 0).
    wall_rounds : int or None
        The rounds :attr:`wall_seconds` covers: :attr:`rounds`, or fewer when the fit resumed from a state saved
        before the wall time was recorded (0 in such a state).
    """

    digest: str
    fit: int
    path: Path
    saved: float
    readable: bool
    rounds: int | None = None
    max_rounds: int | None = None
    unit: str | None = None
    steps: int | None = None
    stopped: bool | None = None
    label: str | None = None
    training_seconds: float | None = None
    wall_seconds: float | None = None
    wall_rounds: int | None = None

    @property
    def ended(self) -> bool:
        """The fit trained its last round (stopped early or at its budget); its unit may still be training others."""
        return bool(self.stopped) or (self.rounds is not None and self.rounds == self.max_rounds)

    @property
    def fraction(self) -> float | None:
        """Rounds done over the budget (0 to 1), or None for an unreadable file."""
        if self.rounds is None or not self.max_rounds:
            return None
        return self.rounds / self.max_rounds

    @property
    def training_seconds_per_round(self) -> float | None:
        """Seconds of training steps per round so far (validation not counted), or None where the state holds no
        training time (a TP-AMTL state saved before the temporal family measured it)."""
        if not self.rounds or not self.training_seconds or self.training_seconds <= 0:
            return None
        return self.training_seconds / self.rounds

    @property
    def seconds_per_round(self) -> float | None:
        """Wall seconds per round (training, validation and saving: what a round takes), or None where the state
        has no wall time (saved before it was recorded): the rate of :attr:`seconds_left`."""
        if not self.wall_rounds or not self.wall_seconds or self.wall_seconds <= 0:
            return None
        return self.wall_seconds / self.wall_rounds

    @property
    def seconds_left(self) -> float | None:
        """Seconds to the fit's budget at :attr:`seconds_per_round`, from when the state was saved: 0 for an ended
        fit, None where the rate is not known. Early stopping may end the fit sooner."""
        if self.ended:
            return 0.0
        rate = self.seconds_per_round
        if rate is None or self.rounds is None or self.max_rounds is None:
            return None
        return (self.max_rounds - self.rounds) * rate


@dataclass(frozen=True)
class StoreInfo:
    """A run store's finished runs and its fits in flight (:func:`store_info`).

    Attributes
    ----------
    path : Path
    size_bytes : int
    runs : StoredRuns
    checkpoints : Path
        The folder of fits in flight (:func:`checkpoints_beside`); it may not exist.
    fits : tuple of FitProgress
        By unit, then fit number.
    read_at : float
        When it was read (seconds since the epoch): the reference of "saved N minutes ago".
    """

    path: Path
    size_bytes: int
    runs: StoredRuns
    checkpoints: Path
    fits: tuple[FitProgress, ...]
    read_at: float

    @property
    def units(self) -> int:
        """Units with at least one fit in flight."""
        return len({fit.digest for fit in self.fits})

    def to_dict(self) -> dict:
        """JSON-ready: counts, the artifacts by kind, and each fit with its times in ISO 8601 (UTC)."""
        return {
            "store": str(self.path),
            "size_bytes": self.size_bytes,
            "model_runs": self.runs.model_runs,
            "artifacts": self.runs.artifacts,
            "artifact_kinds": dict(self.runs.artifact_kinds),
            "checkpoints": str(self.checkpoints),
            "read_at": _iso(self.read_at),
            "fits": [{
                "unit": fit.digest, "label": fit.label, "fit": fit.fit, "path": str(fit.path), "readable": fit.readable,
                "rounds": fit.rounds, "max_rounds": fit.max_rounds, "unit_of_rounds": fit.unit, "steps": fit.steps,
                "stopped_early": fit.stopped, "ended": fit.ended if fit.readable else None,
                "saved": _iso(fit.saved), "seconds_since_saved": round(max(self.read_at - fit.saved, 0.0), 1),
                "training_seconds": fit.training_seconds,
                "training_seconds_per_round": _rounded(fit.training_seconds_per_round, 4),
                "wall_seconds": fit.wall_seconds, "wall_rounds": fit.wall_rounds,
                "seconds_per_round": _rounded(fit.seconds_per_round, 4), "seconds_left": _rounded(fit.seconds_left, 1),
            } for fit in self.fits],
        }


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def _check_store_file(path: Path) -> None:
    """Refuse what is not an existing run store file before SQLite opens it (a missing file is never created)."""
    if path.is_dir():
        inside = path / "runs.sqlite"
        hint = f"; the run store of a job with --out {path} is {inside}" if inside.is_file() else ""
        raise StoreError(f"run store {str(path)!r} is a folder; give the store file (OUT/runs.sqlite by default, "
                         f"or the job's --store){hint}")
    if not path.exists():
        raise StoreError(f"run store {str(path)!r} does not exist; give the store file of a job (OUT/runs.sqlite "
                         f"by default, or the job's --store)")
    if not os.access(path, os.R_OK):
        raise StoreError(f"run store {str(path)!r} is not readable; change its permissions (chmod u+r {path})")
    what = "empty (0 bytes)" if path.stat().st_size == 0 else foreign_file(path)
    if what:
        raise StoreError(f"{str(path)!r} is {what}: not a run store; give the store file of a job "
                         f"(OUT/runs.sqlite by default, or the job's --store)")


def _damaged(path: Path, reason: str) -> StoreError:
    return StoreError(f"run store {str(path)!r} is damaged ({reason}); nothing in it was changed. To copy its "
                      f"readable runs into a new store: {RECOVER_COMMAND.format(path=path)} (docs/errors.md)")


def _has_store_columns(con: sqlite3.Connection) -> bool:
    """The columns read here exist: the ``runs`` table's are a run store's (:func:`~negtransfer.runs.store.
    foreign_layout`), and the ``artifacts`` table has ``key`` and ``body`` (another program's tables may be named
    alike)."""
    if foreign_layout(con) is not None:
        return False
    try:
        con.execute("SELECT key, body FROM artifacts LIMIT 0")
    except sqlite3.OperationalError as exc:
        if "no such column" in str(exc):
            return False
        raise
    return True


def stored_runs(path: str | Path) -> StoredRuns:
    """Count the finished runs of the run store file ``path``, opened read-only.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    StoredRuns

    Raises
    ------
    StoreError
        ``path`` is missing, a folder, unreadable, empty, a data or text file, another program's SQLite
        database, damaged, or locked by a writer for over :data:`BUSY_TIMEOUT_SECONDS`. Nothing is created or
        changed in any case.
    """
    path = Path(path)
    _check_store_file(path)
    try:
        con = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=BUSY_TIMEOUT_SECONDS)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open run store {str(path)!r} to read it: {exc}") from None
    try:
        tables = {str(row[0]) for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables >= STORE_TABLES or not _has_store_columns(con):
            raise StoreError(f"{str(path)!r} is a SQLite database but not a negtransfer run store (its tables: "
                             f"{', '.join(sorted(tables)) or 'none'}); give the store file of a job "
                             f"(OUT/runs.sqlite by default, or the job's --store)")
        model_runs = int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        kinds = con.execute(
            "SELECT CASE WHEN instr(key, ':') > 0 THEN substr(key, 1, instr(key, ':') - 1) ELSE key END AS kind, "
            "COUNT(*) AS n FROM artifacts GROUP BY kind ORDER BY n DESC, kind").fetchall()
    except sqlite3.OperationalError as exc:  # locked for longer than the timeout, a hot journal, or an I/O error
        journal = path.with_name(path.name + "-journal")
        if "readonly" in str(exc) and journal.exists():  # only a writer may roll back a hot journal
            raise StoreError(f"run store {str(path)!r} holds a write that a stopped job left unfinished ({journal} "
                             f"is left); store-info only reads, so it cannot undo it: run the job's command again "
                             f"(opening the store undoes the unfinished write and keeps every finished run), then "
                             f"store-info") from None
        raise StoreError(f"cannot read run store {str(path)!r}: {exc}; a job may be writing it, try again in a "
                         f"moment") from None
    except sqlite3.DatabaseError as exc:  # not a database, malformed
        raise _damaged(path, str(exc)) from None
    finally:
        con.close()
    artifact_kinds = {str(kind): int(n) for kind, n in kinds}
    return StoredRuns(model_runs, sum(artifact_kinds.values()), artifact_kinds)


def _fit_progress(digest: str, fit: int, path: Path) -> FitProgress | None:
    """What the state file ``path`` says (None if it vanished: its unit was stored meanwhile)."""
    from negtransfer.train.checkpoint import FitSlot

    try:
        saved = path.stat().st_mtime
    except OSError:
        return None
    unreadable = FitProgress(digest, fit, path, saved, False)
    state = FitSlot(path, 0.0).read()
    if state is None:
        return unreadable
    try:
        signature = state["signature"]
        return FitProgress(digest, fit, path, saved, True, rounds=int(state["rounds"]),
                           max_rounds=int(signature["max_rounds"]), unit=str(signature["unit"]),
                           steps=int(state["steps"]), stopped=bool(state["stop"]),
                           label=None if state.get("label") is None else str(state["label"]),
                           training_seconds=float(state.get("seconds", 0.0)),
                           wall_seconds=float(state.get("wall_seconds", 0.0)),
                           wall_rounds=int(state.get("wall_rounds", 0)))
    except Exception:  # not a fit's state (missing or odd fields): shown as unreadable, never raised into a job
        return unreadable


def _state_files(root: Path) -> list[tuple[str, int, Path]]:
    """``(digest, fit number, path)`` of every ``<root>/<digest>/fit-<i>.pt``, by unit then fit number."""
    try:
        units = sorted(entry for entry in root.iterdir() if entry.is_dir())
    except OSError:  # absent (no fit in flight), or not a folder
        return []
    if not units:  # nothing to read: store-info answers without importing PyTorch (the checkpoint module's)
        return []
    from negtransfer.train.checkpoint import FIT_FILE_PATTERN

    files = []
    for unit in units:
        try:
            names = [(int(match.group(1)), entry) for entry in unit.iterdir()
                     if (match := FIT_FILE_PATTERN.fullmatch(entry.name)) and entry.is_file()]
        except OSError:  # removed meanwhile: the unit was stored
            continue
        files += [(unit.name, number, entry) for number, entry in sorted(names)]
    return files


def fits_in_flight(checkpoints: str | Path) -> tuple[FitProgress, ...]:
    """Every fit state ``<checkpoints>/<digest>/fit-<i>.pt``, by unit then fit number (none if the folder is absent).

    A file that cannot be read (damaged, of another checkpoint version, not a fit's state) is listed with
    ``readable=False``; temporary files of a save in progress (``fit-<i>.pt.<writer>.partial``) are not listed.
    """
    fits = (_fit_progress(digest, number, path) for digest, number, path in _state_files(Path(checkpoints)))
    return tuple(fit for fit in fits if fit is not None)


class FitWatcher:
    """The fits still training under one checkpoint folder, for a job's live progress (``negtransfer compare``).

    Each :meth:`running` call lists the folder and reads only the state files written since the last call (a fit
    saves once a minute of training; a state is small), so calling it every few
    seconds costs a few ``stat`` calls between saves. Nothing is written.

    Parameters
    ----------
    checkpoints : str or Path
        The folder beside the job's run store (:func:`checkpoints_beside`).
    since : float
        Seconds since the epoch: states saved before (left by an earlier, killed job, until this job resumes
        them) are not shown.
    """

    def __init__(self, checkpoints: str | Path, since: float):
        self.checkpoints, self.since = Path(checkpoints), float(since)
        self._read: dict[Path, tuple[int, FitProgress | None]] = {}  # path -> (mtime in ns, what it said)

    def running(self) -> tuple[FitProgress, ...]:
        """The readable fits saved since :attr:`since` that have not ended, by unit then fit number."""
        fits, seen = [], {}
        for digest, number, path in _state_files(self.checkpoints):
            try:
                changed = path.stat().st_mtime_ns
            except OSError:  # its unit was stored meanwhile
                continue
            cached = self._read.get(path)
            fit = cached[1] if cached is not None and cached[0] == changed else _fit_progress(digest, number, path)
            seen[path] = (changed, fit)
            if fit is not None and fit.readable and not fit.ended and fit.saved >= self.since:
                fits.append(fit)
        self._read = seen
        return tuple(fits)


def store_info(path: str | Path) -> StoreInfo:
    """A run store's finished runs (:func:`stored_runs`) and its fits in flight (:func:`fits_in_flight`).

    Parameters
    ----------
    path : str or Path
        The run store file (a job's ``OUT/runs.sqlite`` or ``--store``); only read.

    Returns
    -------
    StoreInfo

    Raises
    ------
    StoreError
        ``path`` is not a readable run store (:func:`stored_runs`).
    """
    path = Path(path)
    runs = stored_runs(path)
    checkpoints = checkpoints_beside(path)
    return StoreInfo(path, path.stat().st_size, runs, checkpoints, fits_in_flight(checkpoints), time.time())
