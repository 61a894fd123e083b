"""Bounces and complaints in state: what each did to a subscriber, streaks of soft bounces, SNS replays.

`bounce_events` keeps every bounce or complaint that was matched to a subscriber, with the DSN status
and diagnostic and the status it set (`changed_to`, NULL when it changed nothing). `hook_messages`
holds the ids of SNS notifications already acted on, so a replayed one changes nothing. Both are
folded or pruned after `[state] ledger_keep_days` with the send ledger (digest.state.folds).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row

EventKind = Literal["hard", "soft", "complaint"]
EVENT_KINDS: tuple[EventKind, ...] = ("hard", "soft", "complaint")


@dataclass(frozen=True, slots=True)
class BounceEvent:
    """One bounce or complaint acted on for one subscriber."""

    at: datetime
    source: str
    kind: EventKind
    email: str
    issue_id: str | None
    status: str | None
    diagnostic: str | None
    changed_to: str | None


@dataclass(frozen=True, slots=True)
class IssueBounces:
    """How many distinct recipients of one issue bounced (hard, soft) or complained."""

    hard: int = 0
    soft: int = 0
    complaints: int = 0


def _event(row: Row) -> BounceEvent:
    return BounceEvent(
        at=from_iso(row["at"]),
        source=row["source"],
        kind=row["kind"],
        email=row["email"],
        issue_id=row["issue_id"],
        status=row["status"],
        diagnostic=row["diagnostic"],
        changed_to=row["changed_to"],
    )


class Bounces:
    """Record bounces and complaints and what they did to subscribers."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record_event(
        self,
        *,
        at: datetime,
        source: str,
        kind: EventKind,
        email: str,
        issue_id: str | None,
        status: str | None,
        diagnostic: str | None,
        changed_to: str | None,
    ) -> None:
        """Keep one bounce or complaint and what it did."""
        self._db.execute(
            """INSERT INTO bounce_events (at, source, kind, email, issue_id, status, diagnostic, changed_to)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (to_iso(at), source, kind, email, issue_id, status, diagnostic, changed_to),
        )

    def mark_last_event(self, email: str, changed_to: str) -> None:
        """Note on the latest event of `email` the status it led to (a streak decided after recording)."""
        self._db.execute(
            "UPDATE bounce_events SET changed_to = ?"
            " WHERE id = (SELECT max(id) FROM bounce_events WHERE email = ?)",
            (changed_to, email),
        )

    def events_for(self, email: str) -> Iterator[BounceEvent]:
        """The bounces and complaints of one address, oldest first."""
        rows = self._db.fetch_all("SELECT * FROM bounce_events WHERE email = ? ORDER BY at, id", (email,))
        for row in rows:
            yield _event(row)

    def soft_streak(self, email: str) -> int:
        """How many of the latest issues sent to `email`, in a row, bounced softly (newest first)."""
        rows = self._db.fetch_all(
            """SELECT l.issue_id,
                      CASE WHEN EXISTS (SELECT 1 FROM bounce_events b WHERE b.email = l.email
                                        AND b.issue_id = l.issue_id AND b.kind = 'soft')
                        THEN 1 ELSE 0 END AS soft
               FROM send_ledger l WHERE l.email = ? AND l.status = 'sent'
               ORDER BY l.at DESC, l.issue_id DESC""",
            (email,),
        )
        streak = 0
        for row in rows:
            if not row["soft"]:
                break
            streak += 1
        return streak

    def sent_message(self, message_id: str) -> tuple[str, str] | None:
        """(issue id, address) of the message sent with this Message-ID, from the send ledger."""
        row = self._db.fetch_one(
            "SELECT issue_id, email FROM send_ledger WHERE message_id = ? AND status = 'sent'", (message_id,)
        )
        return (row["issue_id"], row["email"]) if row else None

    def latest_issue_sent_to(self, email: str) -> str | None:
        """The issue most recently sent to `email`, if any."""
        row = self._db.fetch_one(
            "SELECT issue_id FROM send_ledger WHERE email = ? AND status = 'sent' ORDER BY at DESC LIMIT 1",
            (email,),
        )
        return str(row["issue_id"]) if row else None

    def issue_bounces(self, issue_id: str) -> IssueBounces:
        """Distinct recipients of `issue_id` with a hard bounce, a soft bounce, a complaint (with those
        whose events were folded into counts)."""
        counts = {
            row["kind"]: int(row["n"])
            for row in self._db.fetch_all(
                "SELECT kind, count(DISTINCT email) AS n FROM bounce_events WHERE issue_id = ? GROUP BY kind",
                (issue_id,),
            )
        }
        # Events folded after [state] ledger_keep_days (digest.state.folds) count without their addresses.
        for row in self._db.fetch_all(
            "SELECT kind, count FROM bounce_counts WHERE issue_id = ?", (issue_id,)
        ):
            counts[row["kind"]] = counts.get(row["kind"], 0) + int(row["count"])
        return IssueBounces(
            hard=counts.get("hard", 0), soft=counts.get("soft", 0), complaints=counts.get("complaint", 0)
        )

    def remember_hook_message(self, message_id: str, *, at: datetime) -> bool:
        """Note that a notification was acted on; False when it already was (a replay)."""
        added = self._db.execute(
            """INSERT INTO hook_messages (message_id, received_at) VALUES (?, ?)
               ON CONFLICT (message_id) DO NOTHING""",
            (message_id, to_iso(at)),
        )
        return added > 0

    def hook_message_seen(self, message_id: str) -> bool:
        """Whether a notification with this id was acted on already."""
        row = self._db.fetch_one("SELECT 1 FROM hook_messages WHERE message_id = ?", (message_id,))
        return row is not None

    def forget_events(self, email: str) -> int:
        """Delete every bounce and complaint event of one address (erasure); returns how many."""
        return self._db.execute("DELETE FROM bounce_events WHERE email = ?", (email,))
