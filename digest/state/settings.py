"""Small named values kept in state, such as the generated signing secret."""

from __future__ import annotations

import secrets
import sqlite3

from digest.state import transaction


def get_setting(db: sqlite3.Connection, key: str) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
    return str(row[0]) if row else None


def set_setting(db: sqlite3.Connection, key: str, value: str) -> None:
    db.execute(
        "INSERT INTO settings (key, value) VALUES (?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def generated_secret(db: sqlite3.Connection, key: str) -> str:
    """A random secret created on first use and kept in state, the same for every later call."""
    with transaction(db):
        existing = get_setting(db, key)
        if existing:
            return existing
        value = secrets.token_urlsafe(32)
        set_setting(db, key, value)
        return value
