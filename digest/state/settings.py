"""Small named values kept in state, such as the generated signing secret."""

from __future__ import annotations

import secrets

from digest.state.backend import Database


class Settings:
    """Small named values, such as the generated signing secret."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def get_setting(self, key: str) -> str | None:
        row = self._db.fetch_one("SELECT value FROM settings WHERE key = ?", (key,))
        return str(row[0]) if row else None

    def set_setting(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO settings (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def generated_secret(self, key: str) -> str:
        """A random secret created on first use and kept in state, the same for every later call.

        The first writer wins: two processes creating it at once (PostgreSQL, several `digest serve`
        hosts) both get the one stored, never each its own (which would sign and hash differently)."""
        with self._db.transaction():
            existing = self.get_setting(key)
            if existing:
                return existing
            self._db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                (key, secrets.token_urlsafe(32)),
            )
            stored = self.get_setting(key)
            if stored:
                return stored
            value = secrets.token_urlsafe(32)  # an empty value was there: replace it
            self.set_setting(key, value)
            return value
