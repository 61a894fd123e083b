"""The SQLite state store: feed cache, entries, issues, subscribers, the send ledger, approvals, runs.

One database file (`[state] path`). `open_state` creates it and applies migrations. Each part of the
store has its own module (`state.feeds`, `state.issues`, ...) of plain functions over a
`sqlite3.Connection`; datetimes are stored as ISO 8601 UTC strings.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from digest.errors import StateError
from digest.state.schema import MIGRATIONS

__all__ = ["from_iso", "open_state", "to_iso", "transaction"]


def open_state(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the state database and bring its schema up to date.

    Raises:
        StateError: the file cannot be created or opened, is not a digest state database, or is newer
            than this version of digest understands.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        _migrate(db)
    except sqlite3.DatabaseError as e:
        raise StateError(
            f"{path}: cannot open the state database: {e}",
            hint="check the [state] path in config; if the file is not a digest database, move it away",
        ) from e
    except OSError as e:
        raise StateError(f"{path}: cannot create the state folder: {e.strerror}") from e
    return db


def _migrate(db: sqlite3.Connection) -> None:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise StateError(
            f"state schema version {version} is newer than this digest understands ({len(MIGRATIONS)})",
            hint="upgrade digest, or point [state] path at another file",
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        with transaction(db):
            for statement in script.split(";\n"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number}")


@contextmanager
def transaction(db: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """Run a block in one transaction (BEGIN IMMEDIATE by default), committing or rolling back."""
    db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def to_iso(value: datetime) -> str:
    """An aware datetime as an ISO 8601 UTC string (the storage format of every time in state)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime given to state")
    return value.astimezone(UTC).isoformat()


def from_iso(value: str) -> datetime:
    """Read back a time written by `to_iso`."""
    return datetime.fromisoformat(value).astimezone(UTC)
