"""The run store: every trained model's result is one row of a SQLite file.

A row is keyed by (dataset fingerprint, group, seed, training-config hash), so a
command re-run with the same inputs finds its finished runs and trains only what
is missing. Each write is one SQLite transaction: a process killed at any moment
(even with SIGKILL) loses at most the runs it had not written yet, and the file
stays consistent (SQLite's rollback journal guarantees it).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Sequence

from negtransfer.train.batched import ModelResult, group_text

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


def _encode(result: ModelResult) -> str:
    body = asdict(result)
    for key in ("val_loss", "test_loss", "test_metric", "val_metric"):
        body[key] = {str(k): v for k, v in body[key].items()}
    body["extra"] = {name: {str(k): v for k, v in per_task.items()} for name, per_task in body["extra"].items()}
    return json.dumps(body)


def _decode(text: str) -> ModelResult:
    body = json.loads(text)
    for key in ("val_loss", "test_loss", "test_metric", "val_metric"):
        body[key] = {int(k): (float("nan") if v is None else v) for k, v in body.get(key, {}).items()}
    body["extra"] = {name: {int(k): v for k, v in per_task.items()} for name, per_task in body.get("extra", {}).items()}
    body["group"] = tuple(body["group"])
    return ModelResult(**body)


class RunStore:
    """A SQLite file of finished runs.

    Parameters
    ----------
    path : str or Path
        The database file; created (with its folder) if absent.

    Examples
    --------
    >>> store = RunStore(tmp_path / "runs.sqlite")              # doctest: +SKIP
    >>> missing = store.missing(fp, groups, seed=0, config_hash=h)  # doctest: +SKIP
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        con.execute("PRAGMA synchronous=FULL")
        return con

    def put_many(
        self, dataset: str, seed: int, config_hash: str, results: Iterable[ModelResult], config: dict | None = None
    ) -> None:
        """Write results in one atomic transaction (all or none)."""
        rows = [
            (dataset, group_text(r.group), int(seed), config_hash, _encode(r), time.time()) for r in results
        ]
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            con.executemany("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?)", rows)
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
        """Store a JSON-serialisable result that is not a run (e.g. an affinity matrix)."""
        con = self._connect()
        try:
            con.execute("INSERT OR REPLACE INTO artifacts VALUES (?, ?, ?)", (key, json.dumps(value), time.time()))
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
