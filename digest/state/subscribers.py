"""Subscribers in state: address (case-insensitive key), optional name, and status."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row, count_of

SubscriberStatus = Literal["active", "unsubscribed", "bounced", "complained"]
_PAGE = 1000  # subscribers read per query when listing them all
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


def subscriber_from_row(row: Row) -> Subscriber:
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


_subscriber = subscriber_from_row


# Moving a row to 'active' from another status starts a new subscription: a new token id, and old
# address tokens no longer count. Evaluated before `status` is assigned (SQLite reads the old row).
_RESUBSCRIBE = (
    "token_id = CASE WHEN ? = 'active' AND status <> 'active' THEN ? ELSE token_id END,"
    " address_tokens = CASE WHEN ? = 'active' AND status <> 'active' THEN 0 ELSE address_tokens END"
)


def _resubscribe_args(status: str) -> tuple[str, str, str]:
    return status, new_token_id(), status


class Subscribers:
    """The subscriber list: add, update, look up, page through."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert_subscriber(
        self, email: str, *, name: str | None, at: datetime, reactivate: bool = True
    ) -> Literal["added", "updated", "unchanged"]:
        """Add an address as active, or update the name (and, with `reactivate`, the status) of a known one.

        A new or re-activated subscription gets a new token id: unsubscribe links sent before stop working.
        """
        row = self._db.fetch_one("SELECT * FROM subscribers WHERE email = ?", (email,))
        if row is None:
            self._db.execute(
                "INSERT INTO subscribers (email, name, status, created_at, updated_at, token_id)"
                " VALUES (?, ?, 'active', ?, ?, ?)",
                (email, name, to_iso(at), to_iso(at), new_token_id()),
            )
            return "added"
        new_name = name if name is not None else row["name"]
        new_status = "active" if reactivate else row["status"]
        if new_name == row["name"] and new_status == row["status"]:
            return "unchanged"
        self._db.execute(
            f"UPDATE subscribers SET name = ?, status = ?, reason = CASE WHEN ? = status THEN reason END,"
            f" {_RESUBSCRIBE}, updated_at = ? WHERE email = ?",
            (new_name, new_status, new_status, *_resubscribe_args(new_status), to_iso(at), email),
        )
        return "updated"

    def set_status(
        self, email: str, status: SubscriberStatus, *, at: datetime, reason: str | None = None
    ) -> bool:
        """Change a subscriber's status; returns False when the address is unknown.

        Setting an inactive subscriber back to 'active' gives it a new token id, as `upsert_subscriber` does.
        """
        changed = self._db.execute(
            f"UPDATE subscribers SET status = ?, reason = ?, {_RESUBSCRIBE}, updated_at = ? WHERE email = ?",
            (status, reason, *_resubscribe_args(status), to_iso(at), email),
        )
        return changed > 0

    def remove_subscriber(self, email: str) -> bool:
        return self._db.execute("DELETE FROM subscribers WHERE email = ?", (email,)) > 0

    def get_subscriber(self, email: str) -> Subscriber | None:
        row = self._db.fetch_one("SELECT * FROM subscribers WHERE email = ?", (email,))
        return _subscriber(row) if row else None

    def subscriber_by_token(self, token_id: str) -> Subscriber | None:
        """The subscriber whose current subscription has this token id, if any."""
        row = self._db.fetch_one("SELECT * FROM subscribers WHERE token_id = ?", (token_id,))
        return _subscriber(row) if row else None

    def iter_subscribers(self, status: SubscriberStatus | None = None) -> Iterator[Subscriber]:
        """Subscribers in address order, optionally with one status only (streamed, a page at a time)."""
        params: tuple[str, ...] = ()
        query = "SELECT * FROM subscribers WHERE email > ? ORDER BY email LIMIT ?"
        if status is not None:
            query = "SELECT * FROM subscribers WHERE status = ? AND email > ? ORDER BY email LIMIT ?"
            params = (status,)
        after = ""
        while True:  # a page at a time (keyset pagination): a large list is never held in memory
            rows = self._db.fetch_all(query, (*params, after, _PAGE))
            for row in rows:
                yield _subscriber(row)
            if len(rows) < _PAGE:
                return
            after = rows[-1]["email"]

    def count_subscribers(self, status: SubscriberStatus | None = None) -> int:
        if status is None:
            return count_of(self._db.fetch_one("SELECT count(*) FROM subscribers"))
        return count_of(self._db.fetch_one("SELECT count(*) FROM subscribers WHERE status = ?", (status,)))
