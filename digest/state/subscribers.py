"""Subscribers in state: address (case-insensitive key), optional name, and status."""

from __future__ import annotations

import secrets
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
    token_id: str  # what unsubscribe tokens carry; new on every (re)subscribe
    address_tokens: bool  # old tokens naming the address still count (not re-subscribed since)


def new_token_id() -> str:
    """A random subscription id for unsubscribe tokens (128 bits, hex)."""
    return secrets.token_hex(16)


def _subscriber(row: sqlite3.Row) -> Subscriber:
    return Subscriber(
        email=row["email"],
        name=row["name"],
        status=row["status"],
        reason=row["reason"],
        created_at=from_iso(row["created_at"]),
        updated_at=from_iso(row["updated_at"]),
        token_id=row["token_id"],
        address_tokens=bool(row["address_tokens"]),
    )


def upsert_subscriber(
    db: sqlite3.Connection, email: str, *, name: str | None, at: datetime, reactivate: bool = True
) -> Literal["added", "updated", "unchanged"]:
    """Add an address as active, or update the name (and, with `reactivate`, the status) of a known one.

    A new or re-activated subscription gets a new token id: unsubscribe links sent before stop working.
    """
    row = db.execute("SELECT * FROM subscribers WHERE email = ?", (email,)).fetchone()
    if row is None:
        db.execute(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at, token_id)"
            " VALUES (?, ?, 'active', ?, ?, ?)",
            (email, name, to_iso(at), to_iso(at), new_token_id()),
        )
        return "added"
    new_name = name if name is not None else row["name"]
    new_status = "active" if reactivate else row["status"]
    if new_name == row["name"] and new_status == row["status"]:
        return "unchanged"
    db.execute(
        f"UPDATE subscribers SET name = ?, status = ?, reason = CASE WHEN ? = status THEN reason END,"
        f" {_RESUBSCRIBE}, updated_at = ? WHERE email = ?",
        (new_name, new_status, new_status, *_resubscribe_args(new_status), to_iso(at), email),
    )
    return "updated"


# Moving a row to 'active' from another status starts a new subscription: a new token id, and old
# address tokens no longer count. Evaluated before `status` is assigned (SQLite reads the old row).
_RESUBSCRIBE = (
    "token_id = CASE WHEN ? = 'active' AND status <> 'active' THEN ? ELSE token_id END,"
    " address_tokens = CASE WHEN ? = 'active' AND status <> 'active' THEN 0 ELSE address_tokens END"
)


def _resubscribe_args(status: str) -> tuple[str, str, str]:
    return status, new_token_id(), status


def set_status(
    db: sqlite3.Connection, email: str, status: SubscriberStatus, *, at: datetime, reason: str | None = None
) -> bool:
    """Change a subscriber's status; returns False when the address is unknown.

    Setting an inactive subscriber back to 'active' gives it a new token id, as `upsert_subscriber` does.
    """
    cursor = db.execute(
        f"UPDATE subscribers SET status = ?, reason = ?, {_RESUBSCRIBE}, updated_at = ? WHERE email = ?",
        (status, reason, *_resubscribe_args(status), to_iso(at), email),
    )
    return cursor.rowcount > 0


def remove_subscriber(db: sqlite3.Connection, email: str) -> bool:
    return db.execute("DELETE FROM subscribers WHERE email = ?", (email,)).rowcount > 0


def get_subscriber(db: sqlite3.Connection, email: str) -> Subscriber | None:
    row = db.execute("SELECT * FROM subscribers WHERE email = ?", (email,)).fetchone()
    return _subscriber(row) if row else None


def subscriber_by_token(db: sqlite3.Connection, token_id: str) -> Subscriber | None:
    """The subscriber whose current subscription has this token id, if any."""
    row = db.execute("SELECT * FROM subscribers WHERE token_id = ?", (token_id,)).fetchone()
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
