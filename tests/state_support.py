"""Raw SQL on a Store's SQLite file, for tests that set up or inspect state below the Store's operations."""

from __future__ import annotations

import sqlite3

from digest.state.backend import SqliteDatabase
from digest.state.store import Store


def sql(store: Store) -> sqlite3.Connection:
    """The SQLite connection under `store` (what a test uses to plant or read rows directly)."""
    database = store._database
    assert isinstance(database, SqliteDatabase), "raw SQL in tests is for the SQLite state"
    return database.connection
