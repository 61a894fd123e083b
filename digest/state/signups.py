"""Sign-ups waiting for their confirmation (double opt-in): status `pending` until the link is used."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row, count_of

SignupMethod = Literal["form", "resubscribe", "change"]


@dataclass(frozen=True, slots=True)
class Signup:
    """One pending confirmation: the address to confirm, and for a change of address the old one."""

    email: str
    token_id: str  # what the confirmation link carries; new with each confirmation email
    name: str | None
    old_email: str | None
    method: SignupMethod
    created_at: datetime
    mailed_at: datetime
    consent_sha256: str | None
    consent_source: str | None
    consent_ip: str | None
    # The priorities chosen on the form, applied when confirmed (): all topics; None: no choice was asked
    # for (a resubscribe, a change of address, no [[priorities]]), so the subscriber's topics stay.
    topics: tuple[str, ...] | None = None


def _topics(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(str(name) for name in json.loads(text))


def _signup(row: Row) -> Signup:
    return Signup(
        email=row["email"],
        token_id=row["token_id"],
        name=row["name"],
        old_email=row["old_email"],
        method=row["method"],
        created_at=from_iso(row["created_at"]),
        mailed_at=from_iso(row["mailed_at"]),
        consent_sha256=row["consent_sha256"],
        consent_source=row["consent_source"],
        consent_ip=row["consent_ip"],
        topics=_topics(row["topics"]),
    )


class Signups:
    """Pending sign-ups: started (or renewed) by the form, confirmed or expired."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self,
        email: str,
        *,
        name: str | None,
        method: SignupMethod,
        at: datetime,
        min_gap: timedelta,
        old_email: str | None = None,
        consent_sha256: str | None = None,
        consent_source: str | None = None,
        consent_ip: str | None = None,
        topics: tuple[str, ...] | None = None,
    ) -> Signup | None:
        """Start a sign-up for `email`, or renew the pending one with a new token id.

        Returns the sign-up to mail, or None when a confirmation email went to this address less than
        `min_gap` ago (one email per address per gap, however often the form is sent). `topics` is kept
        with the sign-up (a renewal replaces it) until `confirm` applies it; None: no choice made.
        """
        row = self._db.fetch_one("SELECT * FROM signups WHERE email = ?", (email,))
        if row is not None and at - from_iso(row["mailed_at"]) < min_gap:
            return None
        created = row["created_at"] if row is not None else to_iso(at)
        values = (
            secrets.token_hex(16),
            name,
            old_email,
            method,
            created,
            to_iso(at),
            consent_sha256,
            consent_source,
            consent_ip,
            None if topics is None else json.dumps(list(topics)),
        )
        self._db.execute(
            "INSERT INTO signups (email, token_id, name, old_email, method, created_at, mailed_at,"
            " consent_sha256, consent_source, consent_ip, topics) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (email) DO UPDATE SET token_id = excluded.token_id, name = excluded.name,"
            " old_email = excluded.old_email, method = excluded.method, mailed_at = excluded.mailed_at,"
            " consent_sha256 = excluded.consent_sha256, consent_source = excluded.consent_source,"
            " consent_ip = excluded.consent_ip, topics = excluded.topics",
            (email, *values),
        )
        return self.get(email)

    def get(self, email: str) -> Signup | None:
        row = self._db.fetch_one("SELECT * FROM signups WHERE email = ?", (email,))
        return _signup(row) if row else None

    def by_token(self, token_id: str) -> Signup | None:
        row = self._db.fetch_one("SELECT * FROM signups WHERE token_id = ?", (token_id,))
        return _signup(row) if row else None

    def delete(self, email: str) -> bool:
        return self._db.execute("DELETE FROM signups WHERE email = ?", (email,)) > 0

    def forget(self, email: str) -> int:
        """Delete every pending sign-up of an address: its own, and a change of address from or to it
        (erasure: `digest subscribers forget`); returns how many."""
        return self._db.execute("DELETE FROM signups WHERE email = ? OR old_email = ?", (email, email))

    def delete_started_before(self, cutoff: datetime) -> int:
        """Delete pending sign-ups started before `cutoff` (never confirmed); returns how many."""
        return self._db.execute("DELETE FROM signups WHERE created_at < ?", (to_iso(cutoff),))

    def count(self) -> int:
        return count_of(self._db.fetch_one("SELECT count(*) FROM signups"))
