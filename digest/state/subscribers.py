"""Subscribers in state: address (case-insensitive key), optional name, and status."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from digest.state import from_iso, to_iso

SubscriberStatus = Literal["active", "unsubscribed", "bounced", "complained"]
STATUSES: tuple[SubscriberStatus, ...] = ("active", "unsubscribed", "bounced", "complained")


@dataclass(frozen=True, slots=True)
class Subscriber:
    email: str
    name: str | None
    status: SubscriberStatus
    reason: str | None
    created_at: datetime
    updated_at: datetime


def _subscriber(row: sqlite3.Row) -> Subscriber:
    return Subscriber(
        email=row["email"],
        name=row["name"],
        status=row["status"],
        reason=row["reason"],
        created_at=from_iso(row["created_at"]),
        updated_at=from_iso(row["updated_at"]),
    )


def upsert_subscriber(
    db: sqlite3.Connection, email: str, *, name: str | None, at: datetime, reactivate: bool = True
) -> Literal["added", "updated", "unchanged"]:
    """Add an address as active, or update the name (and, with `reactivate`, the status) of a known one."""
    row = db.execute("SELECT * FROM subscribers WHERE email = ?", (email,)).fetchone()
    if row is None:
        db.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at)"
            " VALUES (?, ?, 'active', ?, ?)",
            (email, name, to_iso(at), to_iso(at)),
        )
        return "added"
    new_name = name if name is not None else row["name"]
    new_status = "active" if reactivate else row["status"]
    if new_name == row["name"] and new_status == row["status"]:
        return "unchanged"
    db.execute(
        "UPDATE subscribers SET name = ?, status = ?, reason = CASE WHEN ? = status THEN reason END,"
        " updated_at = ? WHERE email = ?",
        (new_name, new_status, new_status, to_iso(at), email),
    )
    return "updated"


def set_status(
    db: sqlite3.Connection, email: str, status: SubscriberStatus, *, at: datetime, reason: str | None = None
) -> bool:
    """Change a subscriber's status; returns False when the address is unknown."""
    cursor = db.execute(
        "UPDATE subscribers SET status = ?, reason = ?, updated_at = ? WHERE email = ?",
        (status, reason, to_iso(at), email),
    )
    return cursor.rowcount > 0


def remove_subscriber(db: sqlite3.Connection, email: str) -> bool:
    return db.execute("DELETE FROM subscribers WHERE email = ?", (email,)).rowcount > 0


def get_subscriber(db: sqlite3.Connection, email: str) -> Subscriber | None:
    row = db.execute("SELECT * FROM subscribers WHERE email = ?", (email,)).fetchone()
    return _subscriber(row) if row else None


def iter_subscribers(db: sqlite3.Connection, status: SubscriberStatus | None = None) -> Iterator[Subscriber]:
    """Subscribers in address order, optionally only those with one status (streamed, not loaded at once)."""
    if status is None:
        rows = db.execute("SELECT * FROM subscribers ORDER BY email")
    else:
        rows = db.execute("SELECT * FROM subscribers WHERE status = ? ORDER BY email", (status,))
    for row in rows:
        yield _subscriber(row)


def count_subscribers(db: sqlite3.Connection, status: SubscriberStatus | None = None) -> int:
    if status is None:
        return int(db.execute("SELECT count(*) FROM subscribers").fetchone()[0])
    return int(db.execute("SELECT count(*) FROM subscribers WHERE status = ?", (status,)).fetchone()[0])
