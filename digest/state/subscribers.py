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


def address_order(db: Database, column: str = "email") -> str:
    """The key `subscribers list` orders addresses by, the same on both backends: the address with its
    ASCII letters lowercased, compared byte by byte.

    That is SQLite's NOCASE, the column's own collation. PostgreSQL's column collation (ICU, without
    case) orders punctuation and digits its own way (`a_b`, `a-b`, `a.b`, `a+b`...), so there the key is
    `lower()` under the "C" collation (which lowercases ASCII only, and compares bytes), with an index on
    it (schema: `subscribers_email_order`) so that the keyset pages stay index scans.
    """
    return f'lower({column} COLLATE "C")' if db.dialect == "postgresql" else column


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
    status_at: datetime | None = None  # when the status last changed
    consent: ConsentRecord | None = None  # how and when they joined (None: joined before records were kept)


ConsentMethod = Literal["form", "import", "cli", "resubscribe"]
CONSENT_METHODS: tuple[ConsentMethod, ...] = ("form", "import", "cli", "resubscribe")


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """Proof of consent: when, how, the wording's sha256 (text in consent_texts), where, and the client."""

    consented_at: datetime
    method: ConsentMethod
    wording_sha256: str | None
    source: str | None  # the page or file it came from
    ip: str | None  # only with [subscribe] record_ip = "truncated", already truncated


@dataclass(frozen=True, slots=True)
class StatusChange:
    at: datetime
    status: str
    reason: str | None


def _consent_args(consent: ConsentRecord | None) -> tuple[str | None, ...]:
    if consent is None:
        return (None, None, None, None, None)
    return (to_iso(consent.consented_at), consent.method, consent.wording_sha256, consent.source, consent.ip)


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
        status_at=from_iso(row["status_at"]) if row["status_at"] else None,
        consent=ConsentRecord(
            consented_at=from_iso(row["consented_at"]),
            method=row["consent_method"],
            wording_sha256=row["consent_sha256"],
            source=row["consent_source"],
            ip=row["consent_ip"],
        )
        if row["consented_at"]
        else None,
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
        self,
        email: str,
        *,
        name: str | None,
        at: datetime,
        reactivate: bool = True,
        consent: ConsentRecord | None = None,
    ) -> Literal["added", "updated", "unchanged"]:
        """Add an address as active, or update the name (and, with `reactivate`, the status) of a known one.

        A new or re-activated subscription gets a new token id: unsubscribe links sent before stop working.
        `consent` is recorded on a new row and on a re-activation (it replaces the old record then).
        """
        row = self._db.fetch_one("SELECT * FROM subscribers WHERE email = ?", (email,))
        if row is None:
            self._db.execute(
                "INSERT INTO subscribers (email, name, status, created_at, updated_at, token_id, status_at,"
                " consented_at, consent_method, consent_sha256, consent_source, consent_ip)"
                " VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (email, name, to_iso(at), to_iso(at), new_token_id(), to_iso(at), *_consent_args(consent)),
            )
            self._history(email, "active", at=at, reason=consent.method if consent else None)
            return "added"
        new_name = name if name is not None else row["name"]
        new_status = "active" if reactivate else row["status"]
        if new_name == row["name"] and new_status == row["status"]:
            return "unchanged"
        status_changed = new_status != row["status"]
        self._db.execute(
            f"UPDATE subscribers SET name = ?, status = ?, reason = CASE WHEN ? = status THEN reason END,"
            f" {_RESUBSCRIBE}, status_at = CASE WHEN ? <> status THEN ? ELSE status_at END,"
            f" updated_at = ? WHERE email = ?",
            (
                new_name,
                new_status,
                new_status,
                *_resubscribe_args(new_status),
                new_status,
                to_iso(at),
                to_iso(at),
                email,
            ),
        )
        if status_changed:
            if consent is not None:
                self.set_consent(email, consent)
            self._history(email, new_status, at=at, reason=consent.method if consent else None)
        return "updated"

    def brief(self, email: str) -> tuple[str, str, str | None, datetime] | None:
        """(stored address, status, name, when the status last changed) of one address; None if unknown.
        One light query, for imports of many rows."""
        row = self._db.fetch_one(
            "SELECT email, status, name, coalesce(status_at, updated_at) FROM subscribers WHERE email = ?",
            (email,),
        )
        return (row[0], row[1], row[2], from_iso(row[3])) if row else None

    def brief_many(self, emails: list[str]) -> dict[str, tuple[str, str, str | None, datetime]]:
        """`brief` of many addresses in one query each 500, keyed by the address in lower case."""
        found: dict[str, tuple[str, str, str | None, datetime]] = {}
        for start in range(0, len(emails), 500):
            chunk = emails[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            for row in self._db.fetch_all(
                "SELECT email, status, name, coalesce(status_at, updated_at) FROM subscribers"
                f" WHERE email IN ({marks})",
                tuple(chunk),
            ):
                found[str(row[0]).lower()] = (row[0], row[1], row[2], from_iso(row[3]))
        return found

    def add_many(self, people: list[tuple[str, str | None]], *, at: datetime, consent: ConsentRecord) -> int:
        """Insert new active subscribers (address, name) in one statement each for the rows and their
        history, all with the same consent record. The addresses must not be on the list yet."""
        when = to_iso(at)
        record = _consent_args(consent)
        self._db.execute_many(
            "INSERT INTO subscribers (email, name, status, created_at, updated_at, token_id, status_at,"
            " consented_at, consent_method, consent_sha256, consent_source, consent_ip)"
            " VALUES (?, ?, 'active', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((email, name, when, when, new_token_id(), when, *record) for email, name in people),
        )
        self._db.execute_many(
            "INSERT INTO subscriber_history (email, at, status, reason) VALUES (?, ?, 'active', ?)",
            ((email, when, consent.method) for email, _ in people),
        )
        return len(people)

    def set_consent(self, email: str, consent: ConsentRecord) -> None:
        """Replace the consent record of one subscriber."""
        self._db.execute(
            "UPDATE subscribers SET consented_at = ?, consent_method = ?, consent_sha256 = ?,"
            " consent_source = ?, consent_ip = ? WHERE email = ?",
            (*_consent_args(consent), email),
        )

    def _history(self, email: str, status: str, *, at: datetime, reason: str | None) -> None:
        self._db.execute(
            "INSERT INTO subscriber_history (email, at, status, reason) VALUES (?, ?, ?, ?)",
            (email, to_iso(at), status, reason),
        )

    def history(self, email: str) -> list[StatusChange]:
        """Every status change of one address, oldest first."""
        rows = self._db.fetch_all(
            "SELECT at, status, reason FROM subscriber_history WHERE email = ? ORDER BY at, id", (email,)
        )
        return [StatusChange(from_iso(r["at"]), r["status"], r["reason"]) for r in rows]

    def set_status(
        self, email: str, status: SubscriberStatus, *, at: datetime, reason: str | None = None
    ) -> bool:
        """Change a subscriber's status; returns False when the address is unknown.

        Setting an inactive subscriber back to 'active' gives it a new token id, as `upsert_subscriber` does.
        """
        changed = self._db.execute(
            f"UPDATE subscribers SET status = ?, reason = ?, {_RESUBSCRIBE},"
            " status_at = CASE WHEN ? <> status THEN ? ELSE status_at END, updated_at = ? WHERE email = ?",
            (status, reason, *_resubscribe_args(status), status, to_iso(at), to_iso(at), email),
        )
        if changed:
            self._history(email, status, at=at, reason=reason)
        return changed > 0

    def set_name(self, email: str, name: str | None, *, at: datetime) -> bool:
        """Change the name a subscriber is greeted by."""
        return (
            self._db.execute(
                "UPDATE subscribers SET name = ?, updated_at = ? WHERE email = ?", (name, to_iso(at), email)
            )
            > 0
        )

    def touch(self, email: str, *, at: datetime) -> bool:
        """Record that a subscriber's preferences changed (their topics: kept in a table of their own)."""
        return (
            self._db.execute("UPDATE subscribers SET updated_at = ? WHERE email = ?", (to_iso(at), email)) > 0
        )

    def change_address(self, old: str, new: str, *, at: datetime) -> bool:
        """Move a subscription to a new address (confirmed by its owner): name, status, consent and token
        id stay; the history follows. Returns False when `old` is unknown or `new` is on the list already."""
        if self._db.fetch_one("SELECT 1 FROM subscribers WHERE email = ?", (new,)) is not None:
            return False
        changed = self._db.execute(
            "UPDATE subscribers SET email = ?, updated_at = ? WHERE email = ?", (new, to_iso(at), old)
        )
        if changed:
            self._db.execute("UPDATE subscriber_history SET email = ? WHERE email = ?", (new, old))
            self._history(new, "active", at=at, reason="address changed")
        return changed > 0

    def delete_subscriber(self, email: str) -> bool:
        """Delete the row and its status history (erasure: `digest subscribers forget`)."""
        self._db.execute("DELETE FROM subscriber_history WHERE email = ?", (email,))
        return self._db.execute("DELETE FROM subscribers WHERE email = ?", (email,)) > 0

    def get_subscriber(self, email: str) -> Subscriber | None:
        row = self._db.fetch_one("SELECT * FROM subscribers WHERE email = ?", (email,))
        return _subscriber(row) if row else None

    def subscriber_by_token(self, token_id: str) -> Subscriber | None:
        """The subscriber whose current subscription has this token id, if any."""
        row = self._db.fetch_one("SELECT * FROM subscribers WHERE token_id = ?", (token_id,))
        return _subscriber(row) if row else None

    def iter_subscribers(self, status: SubscriberStatus | None = None) -> Iterator[Subscriber]:
        """Subscribers in address order (`address_order`), optionally with one status only (streamed, a
        page at a time)."""
        key = address_order(self._db)
        params: tuple[str, ...] = ()
        where = ""
        if status is not None:
            where = "status = ? AND "
            params = (status,)
        query = f"SELECT *, {key} AS sort_key FROM subscribers WHERE {where}{key} > ? ORDER BY {key} LIMIT ?"
        after = ""
        while True:  # a page at a time (keyset pagination): a large list is never held in memory
            rows = self._db.fetch_all(query, (*params, after, _PAGE))
            for row in rows:
                yield _subscriber(row)
            if len(rows) < _PAGE:
                return
            after = rows[-1]["sort_key"]

    def count_subscribers(self, status: SubscriberStatus | None = None) -> int:
        if status is None:
            return count_of(self._db.fetch_one("SELECT count(*) FROM subscribers"))
        return count_of(self._db.fetch_one("SELECT count(*) FROM subscribers WHERE status = ?", (status,)))
