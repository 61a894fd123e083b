"""The preview's users: a name, a role, and an argon2 hash of the password (never the password)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: str  # editor | approver | admin
    password_hash: str
    created_at: datetime
    updated_at: datetime


def _user(row: Row) -> User:
    return User(
        name=row["name"],
        role=row["role"],
        password_hash=row["password_hash"],
        created_at=from_iso(row["created_at"]),
        updated_at=from_iso(row["updated_at"]),
    )


class Users:
    """Add, read, change and remove the preview's users."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add_user(self, *, name: str, role: str, password_hash: str, at: datetime) -> bool:
        """Add a user; returns False (and changes nothing) when the name is taken."""
        row = self._db.fetch_one(
            """INSERT INTO users (name, role, password_hash, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
               ON CONFLICT (name) DO NOTHING RETURNING name""",
            (name, role, password_hash, to_iso(at), to_iso(at)),
        )
        return row is not None

    def get_user(self, name: str) -> User | None:
        row = self._db.fetch_one("SELECT * FROM users WHERE name = ?", (name,))
        return _user(row) if row else None

    def list_users(self) -> list[User]:
        return [_user(r) for r in self._db.fetch_all("SELECT * FROM users ORDER BY name", ())]

    def count_users(self) -> int:
        row = self._db.fetch_one("SELECT COUNT(*) AS n FROM users", ())
        return int(row["n"]) if row else 0

    def set_password_hash(self, name: str, password_hash: str, *, at: datetime) -> bool:
        """Replace a user's password hash; returns False when there is no such user."""
        changed = self._db.execute(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE name = ?",
            (password_hash, to_iso(at), name),
        )
        return changed > 0

    def remove_user(self, name: str) -> bool:
        return self._db.execute("DELETE FROM users WHERE name = ?", (name,)) > 0
