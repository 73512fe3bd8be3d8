"""The run store: every trained model's result is one row of a SQLite file.

A row is keyed by (dataset fingerprint, group, seed, training-config hash), so a
command re-run with the same inputs finds its finished runs and trains only what
is missing. Each write is one SQLite transaction: a process killed at any moment
(even with SIGKILL) loses at most the runs it had not written yet, and the file
stays consistent (SQLite's rollback journal guarantees it).

Opening a store checks it first (:class:`StoreError` if the path is a folder,
not writable, not a SQLite file, damaged, or another program's database), so a
command fails before any training rather than after it. negtransfer never
deletes a store or overwrites a stored row: a result written once stays as it is
(a second writer of the same key, which computed the same numbers, is ignored).
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from negtransfer.train.results import ModelResult, group_text

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    dataset TEXT NOT NULL,
    grp TEXT NOT NULL,
    seed INTEGER NOT NULL,
    config TEXT NOT NULL,
    result TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (dataset, grp, seed, config)
);
CREATE TABLE IF NOT EXISTS artifacts (
    key TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS configs (
    config TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
"""


#: Columns of the ``runs`` table; a database whose ``runs`` table differs is not a run store.
_RUN_COLUMNS = ("dataset", "grp", "seed", "config", "result", "created")

#: How to salvage rows from a damaged store (also in docs/errors.md).
RECOVER_COMMAND = "negtransfer recover-store {path} {path}.recovered"


#: The path of a run store kept in memory (:class:`RunStore`).
MEMORY = ":memory:"


class _KeptOpen(sqlite3.Connection):
    """The one connection of an in-memory store: ``close()`` keeps it open (closing would drop its runs)."""

    def close(self) -> None:
        pass


class StoreError(Exception):
    """A run store that cannot be used; the message names the file and the fix."""


def _damaged(path: Path, reason: str) -> StoreError:
    moved = f"{path}.damaged"
    what = "is not a SQLite database or its header is damaged" if "not a database" in reason else "is damaged"
    return StoreError(
        f"run store {str(path)!r} {what} ({reason}); move it aside (mv {path} {moved}) and run again: "
        f"its runs are then trained anew. To keep the readable runs instead: "
        f"{RECOVER_COMMAND.format(path=moved)}, then pass --store {moved}.recovered (docs/errors.md)"
    )


#: The first bytes of every SQLite database file (the SQLite file format, section 1.3).
SQLITE_HEADER = b"SQLite format 3\x00"
#: File name endings of data files, never of a run store (``--store data.csv`` is a slip for ``--data``).
DATA_SUFFIXES = (".csv", ".gz", ".parquet", ".pq", ".npz", ".npy", ".txt", ".tsv", ".json", ".xlsx")


def foreign_file(path: Path) -> str | None:
    """Why the existing, non-empty file ``path`` is not a run store at all, or None where it may be one.

    A file without SQLite's header is some other file when its name ends like a data file or its first 4 KB are
    text; a binary file without the header may be a run store whose header was damaged (None: the caller says
    "damaged").
    """
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if head.startswith(SQLITE_HEADER):
        return None
    if path.name.lower().endswith(DATA_SUFFIXES):
        return f"a data file ({path.suffix}), not a SQLite database"
    if b"\x00" not in head:
        try:
            head.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return "a text file, not a SQLite database"
    return None


def foreign_layout(con: sqlite3.Connection) -> str | None:
    """Why the SQLite database on ``con`` is not laid out as a run store (its ``runs`` table has other columns:
    another program's), or None (a run store's ``runs`` table, or none yet)."""
    columns = tuple(row[1] for row in con.execute("PRAGMA table_info(runs)"))
    if columns and columns != _RUN_COLUMNS:
        return f"its 'runs' table has columns {', '.join(columns)}"
    return None


def check_store_path(path: str | Path) -> Path:
    """Check that a run store can be created or written at ``path``, without creating it.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    Path

    Raises
    ------
    StoreError
        The path is a folder, lies under a file, its folder or file is not writable, or it is a data or text file
        (:func:`foreign_file`).
    """
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"run store {str(path)!r} is a folder; give a file path, e.g. {path / 'runs.sqlite'}")
    folder = path.parent
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise StoreError(f"run store {str(path)!r} cannot be created: {str(parent)!r} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise StoreError(
                    f"run store {str(path)!r} cannot be written: no write permission in folder {str(parent)!r}; "
                    f"choose another --store or --out, or change the folder's permissions"
                )
            break
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise StoreError(
            f"run store {str(path)!r} is not readable and writable; change its permissions (chmod u+rw {path}) "
            f"or choose another --store"
        )
    foreign = foreign_file(path) if path.is_file() and path.stat().st_size > 0 else None
    if foreign:
        raise StoreError(
            f"--store {str(path)!r} is {foreign}: not a run store (your data goes to --data); give a new file for "
            f"the run store, e.g. --store runs.sqlite, or leave out --store (OUT/runs.sqlite); this file is left as "
            f"it is"
        )
    return path


#: The per-row loss fields of :class:`ModelResult` (audit runs only).
ROW_LOSS_KEYS = ("audit_row_loss", "test_row_loss")


def _encode(result: ModelResult) -> str:
    body = asdict(result)
    for key in ("val_loss", "test_loss", "test_metric", "val_metric"):
        body[key] = {str(k): v for k, v in body[key].items()}
    body["extra"] = {name: {str(k): v for k, v in per_task.items()} for name, per_task in body["extra"].items()}
    audit = body.pop("audit_loss")
    if audit:  # results without audit rows are stored as before the field existed
        body["audit_loss"] = {str(k): v for k, v in audit.items()}
    for key in ROW_LOSS_KEYS:  # per-row losses: base64 of little-endian float32, only when recorded
        rows = body.pop(key)
        if rows:
            body[key] = {str(k): base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode("ascii")
                         for k, v in rows.items()}
    return json.dumps(body)


def _decode(text: str) -> ModelResult:
    body = json.loads(text)
    for key in ("val_loss", "test_loss", "test_metric", "val_metric", "audit_loss"):
        body[key] = {int(k): (float("nan") if v is None else v) for k, v in body.get(key, {}).items()}
    body["extra"] = {name: {int(k): v for k, v in per_task.items()} for name, per_task in body.get("extra", {}).items()}
    for key in ROW_LOSS_KEYS:  # absent in results stored before the fields existed
        body[key] = {int(k): np.frombuffer(base64.b64decode(v), dtype="<f4").astype(np.float32)
                     for k, v in body.get(key, {}).items()}
    body["group"] = tuple(body["group"])
    return ModelResult(**body)


class RunStore:
    """A SQLite file of finished runs.

    Parameters
    ----------
    path : str or Path
        The database file; created (with its folder) if absent. ``":memory:"``
        (:data:`MEMORY`) keeps the runs in this process only, for one session
        (the Python API's default): nothing is written to disk.

    Raises
    ------
    StoreError
        The path is a folder or not writable, or the file is not a SQLite
        database, is damaged (failed ``PRAGMA quick_check``), or holds another
        program's tables. Nothing in the file is changed in that case.

    Examples
    --------
    >>> store = RunStore(tmp_path / "runs.sqlite")              # doctest: +SKIP
    >>> missing = store.missing(fp, groups, seed=0, config_hash=h)  # doctest: +SKIP
    """

    def __init__(self, path: str | Path):
        self._memory: sqlite3.Connection | None = None
        if str(path) == MEMORY:
            self.path = Path(MEMORY)
            self._memory = sqlite3.connect(MEMORY, isolation_level=None, check_same_thread=False,
                                           factory=_KeptOpen)
            self._memory.executescript(_SCHEMA)
            return
        self.path = check_store_path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of run store {str(self.path)!r}: {exc.strerror or exc}") from None
        self._open_checked()

    def _open_checked(self) -> None:
        """Create the tables if absent, after checking that an existing file is a healthy run store."""
        existed = self.path.exists() and self.path.stat().st_size > 0
        try:
            con = self._connect()
            try:
                if existed:
                    problems = [str(row[0]) for row in con.execute("PRAGMA quick_check")]
                    if problems != ["ok"]:
                        lines = [ln for p in problems for ln in p.splitlines() if not ln.startswith("***")]
                        raise _damaged(self.path, lines[0] if lines else "quick_check failed")
                    layout = foreign_layout(con)
                    if layout:
                        raise StoreError(
                            f"{str(self.path)!r} is a SQLite database but not a negtransfer run store ({layout}); "
                            f"give another --store path and leave this file as it is"
                        )
                con.executescript(_SCHEMA)
            finally:
                con.close()
        except sqlite3.OperationalError as exc:  # locked, cannot open, read-only, I/O
            raise StoreError(f"cannot use run store {str(self.path)!r}: {exc}; check the path, its permissions "
                             f"and free disk space, or choose another --store") from None
        except sqlite3.DatabaseError as exc:  # not a database, malformed
            raise _damaged(self.path, str(exc)) from None

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    @property
    def in_memory(self) -> bool:
        """Whether the runs live in this process only (``RunStore(":memory:")``)."""
        return self._memory is not None

    def _connect(self) -> sqlite3.Connection:
        if self._memory is not None:  # one connection for the store's life: each new one would be an empty database
            return self._memory
        con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        con.execute("PRAGMA synchronous=FULL")
        return con

    def put_many(
        self, dataset: str, seed: int, config_hash: str, results: Iterable[ModelResult], config: dict | None = None
    ) -> None:
        """Write results in one atomic transaction (all or none); rows already stored are kept as they are."""
        rows = [
            (dataset, group_text(r.group), int(seed), config_hash, _encode(r), time.time()) for r in results
        ]
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            con.executemany("INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?)", rows)
            if config is not None:
                con.execute(
                    "INSERT OR IGNORE INTO configs VALUES (?, ?)", (config_hash, json.dumps(config, sort_keys=True))
                )
            con.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def get_many(
        self, dataset: str, groups: Sequence[Sequence[int]], seed: int, config_hash: str
    ) -> dict[str, ModelResult]:
        """Stored results for the given groups, keyed by group text (``"0+3+5"``)."""
        wanted = {group_text(g) for g in groups}
        con = self._connect()
        try:
            cur = con.execute(
                "SELECT grp, result FROM runs WHERE dataset=? AND seed=? AND config=?",
                (dataset, int(seed), config_hash),
            )
            return {grp: _decode(text) for grp, text in cur if grp in wanted}
        finally:
            con.close()

    def missing(
        self, dataset: str, groups: Sequence[Sequence[int]], seed: int, config_hash: str
    ) -> list[tuple[int, ...]]:
        """The groups (in the given order, deduplicated) that have no stored result."""
        have = self.get_many(dataset, groups, seed, config_hash)
        out, seen = [], set()
        for g in groups:
            key = group_text(g)
            if key not in have and key not in seen:
                seen.add(key)
                out.append(tuple(sorted(int(i) for i in g)))
        return out

    def put_artifact(self, key: str, value) -> None:
        """Store a JSON-serialisable result that is not a run (e.g. an affinity matrix); an existing key is kept."""
        con = self._connect()
        try:
            con.execute("INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?)", (key, json.dumps(value), time.time()))
        finally:
            con.close()

    def get_artifact(self, key: str):
        """The stored value for ``key``, or None."""
        con = self._connect()
        try:
            row = con.execute("SELECT body FROM artifacts WHERE key=?", (key,)).fetchone()
        finally:
            con.close()
        return None if row is None else json.loads(row[0])

    def count(self) -> int:
        con = self._connect()
        try:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        finally:
            con.close()


def _readable_rows(con: sqlite3.Connection, table: str, max_gap: int = 10_000) -> list[tuple]:
    """Every row of ``table`` that can still be read, skipping damaged pages.

    A forward and a backward scan by rowid stop at the first damaged page;
    the rowids between where they stopped are then probed one by one.
    """
    rows: dict[int, tuple] = {}

    def scan(order: str) -> int | None:
        last = None
        try:
            for row in con.execute(f"SELECT rowid, * FROM {table} ORDER BY rowid {order}"):
                rows[row[0]] = row[1:]
                last = row[0]
        except sqlite3.DatabaseError:
            return last if last is not None else (0 if order == "ASC" else None)
        return None  # the scan went through

    low = scan("ASC")
    if low is None:
        return list(rows.values())
    high = scan("DESC")
    if high is None:
        try:
            high = int(con.execute(f"SELECT max(rowid) FROM {table}").fetchone()[0] or 0) + 1
        except sqlite3.DatabaseError:
            high = low + max_gap
    misses = 0
    for rowid in range(low + 1, min(high, low + 1 + 100 * max_gap)):
        try:
            row = con.execute(f"SELECT rowid, * FROM {table} WHERE rowid = ?", (rowid,)).fetchone()
        except sqlite3.DatabaseError:
            row = None
        if row is None:
            misses += 1
            if misses > max_gap:
                break
            continue
        misses = 0
        rows[row[0]] = row[1:]
    return list(rows.values())


def _check_recoverable(damaged: Path) -> None:
    """Refuse a file that is no run store (empty, a data or text file) instead of "recovering" 0 runs from it."""
    what = "empty (0 bytes)" if damaged.stat().st_size == 0 else foreign_file(damaged)
    if what:
        raise StoreError(f"{str(damaged)!r} is {what}: not a run store, nothing to recover; give the damaged "
                         f"--store file (OUT/runs.sqlite by default)")


def _check_store_tables(con: sqlite3.Connection, damaged: Path) -> None:
    """Refuse a readable SQLite database that has none of a run store's tables (another program's database)."""
    try:
        tables = {str(row[0]) for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError:  # a damaged schema: recover what can be read
        return
    if tables and not tables & {"runs", "artifacts", "configs"}:
        con.close()
        raise StoreError(f"{str(damaged)!r} is a SQLite database but not a run store (its tables: "
                         f"{', '.join(sorted(tables))}); nothing to recover; give the damaged --store file")


def recover_store(damaged: str | Path, recovered: str | Path) -> dict[str, int]:
    """Copy every readable, well-formed row of a damaged run store into a new store.

    Parameters
    ----------
    damaged : str or Path
        The damaged store (only read).
    recovered : str or Path
        A new store file; it must not exist yet.

    Returns
    -------
    dict
        ``{"runs": copied, "artifacts": copied, "skipped": unreadable or malformed rows}``.

    Raises
    ------
    StoreError
        ``damaged`` is missing or ``recovered`` already exists.
    """
    damaged, recovered = Path(damaged), Path(recovered)
    if not damaged.is_file():
        raise StoreError(f"{str(damaged)!r} is not a file; give the path of the damaged run store")
    if recovered.exists():
        raise StoreError(f"{str(recovered)!r} already exists; give a new file name for the recovered store")
    _check_recoverable(damaged)
    try:
        src = sqlite3.connect(f"file:{damaged.resolve()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {str(damaged)!r}: {exc}") from None
    src.execute("PRAGMA writable_schema=ON")  # read past a damaged schema, as sqlite3's .dump does (nothing is written)
    _check_store_tables(src, damaged)
    kept: dict[str, list[tuple]] = {"runs": [], "artifacts": [], "configs": []}
    skipped = 0
    try:
        for table, width in (("runs", 6), ("artifacts", 3), ("configs", 2)):
            try:
                rows = _readable_rows(src, table)
            except sqlite3.DatabaseError:  # the table itself is unreadable (damaged schema)
                rows = []
            for row in rows:
                ok = len(row) == width and all(v is not None for v in row)
                if ok and table == "runs":
                    try:
                        _decode(row[4])
                    except Exception:
                        ok = False
                if ok:
                    kept[table].append(row)
                else:
                    skipped += 1
    finally:
        src.close()
    store = RunStore(recovered)
    con = store._connect()
    try:
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT OR IGNORE INTO runs VALUES (?, ?, ?, ?, ?, ?)", kept["runs"])
        con.executemany("INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?)", kept["artifacts"])
        con.executemany("INSERT OR IGNORE INTO configs VALUES (?, ?)", kept["configs"])
        con.execute("COMMIT")
    finally:
        con.close()
    return {"runs": len(kept["runs"]), "artifacts": len(kept["artifacts"]), "skipped": skipped}
