"""The send ledger (issue x recipient) and send claims: what makes every issue go out exactly once.

A ledger row is written as each message is accepted by the transport, so a send that is interrupted
resumes with exactly the recipients that have no `sent` row. A `failed` row records why a message was
not accepted (it was definitely not delivered, so a later run may try that recipient again); a
`refused` row a permanent refusal (5xx), final for that issue unless a send asks to retry them. An
`in_doubt` row is a message handed over whose reply never came: it may have been delivered, and the
next send sends it again (with the same Message-ID, so the reader's client shows one message).

A claim in `send_claims` keeps two `digest send` processes from sending one issue at once. The holder
refreshes its heartbeat while it sends and deletes the claim when it stops. A claim left by a process
that crashed is taken over when it is provably dead (same host, its process id no longer exists) or
when its heartbeat is older than `stale_after` (a holder on another host, or a frozen machine).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from digest.errors import BusyError
from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row, count_of

CLAIM_STALE_AFTER = timedelta(minutes=2)
HEARTBEAT_EVERY = timedelta(seconds=10)

LedgerStatus = Literal["sent", "failed", "refused", "in_doubt"]


@dataclass(frozen=True, slots=True)
class Claim:
    """Who is sending an issue: `holder` is "host:pid:nonce"."""

    issue_id: str
    holder: str
    claimed_at: datetime
    heartbeat_at: datetime

    @property
    def host(self) -> str:
        return self.holder.split(":", 1)[0]

    @property
    def pid(self) -> int | None:
        parts = self.holder.split(":")
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


@dataclass(frozen=True, slots=True)
class LedgerRow:
    issue_id: str
    email: str
    status: LedgerStatus
    message_id: str | None
    detail: str | None
    at: datetime


def new_holder() -> str:
    """A claim holder id for this process: host, process id and a random nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _process_gone(claim: Claim) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    return holder_gone(claim.holder)


def holder_gone(holder: str) -> bool:
    """True when `holder` ("host:pid:nonce") ran on this host and its process no longer exists."""
    parts = holder.split(":")
    host = parts[0]
    pid = int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None
    if host != socket.gethostname() or pid is None:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _claim(row: Row) -> Claim:
    return Claim(
        issue_id=row["issue_id"],
        holder=row["holder"],
        claimed_at=from_iso(row["claimed_at"]),
        heartbeat_at=from_iso(row["heartbeat_at"]),
    )


def _row(row: Row) -> LedgerRow:
    return LedgerRow(
        issue_id=row["issue_id"],
        email=row["email"],
        status=row["status"],
        message_id=row["message_id"],
        detail=row["detail"],
        at=from_iso(row["at"]),
    )


# Active subscribers without a row that settles them: `sent`, and `refused` unless retrying those.
_PENDING = """FROM subscribers s
    LEFT JOIN send_ledger l ON l.issue_id = ? AND l.email = s.email AND l.status IN ({settled})
    WHERE s.status = 'active' AND l.email IS NULL"""


# An edition's `audience`: only subscribers holding one of its tags.
_AUDIENCE = " AND EXISTS (SELECT 1 FROM subscriber_tags t WHERE t.email = s.email AND t.tag IN ({tags}))"


def _pending(retry_refused: bool, audience: tuple[str, ...] = ()) -> str:
    query = _PENDING.format(settled="'sent'" if retry_refused else "'sent', 'refused'")
    if audience:
        query += _AUDIENCE.format(tags=", ".join("?" for _ in audience))
    return query


class Ledger:
    """The send ledger and send claims: what makes every issue go out exactly once."""

    def __init__(self, db: Database, audience: tuple[str, ...] = ()) -> None:
        self._db = db
        # `[[editions]] audience`: the tags whose holders are an edition's recipients; () is everyone.
        self._audience = audience

    def get_claim(self, issue_id: str) -> Claim | None:
        row = self._db.fetch_one("SELECT * FROM send_claims WHERE issue_id = ?", (issue_id,))
        return _claim(row) if row else None

    def claim_send(
        self,
        issue_id: str,
        holder: str,
        *,
        at: datetime,
        stale_after: timedelta = CLAIM_STALE_AFTER,
    ) -> Claim | None:
        """Claim the right to send `issue_id`; returns the stale claim that was taken over, if any.

        Raises:
            BusyError: another live process holds the claim.
        """
        with self._db.transaction():
            existing = self.get_claim(issue_id)
            if existing is not None and existing.holder != holder:
                stale = at - existing.heartbeat_at > stale_after
                if not stale and not _process_gone(existing):
                    raise BusyError(
                        f"issue {issue_id} is being sent by another digest process ({existing.holder},"
                        f" since {existing.claimed_at:%Y-%m-%d %H:%M:%S} UTC)",
                        hint="wait for it to finish; if that process is gone, its claim expires"
                        f" {int(stale_after.total_seconds())} s after its last heartbeat"
                        + (
                            "; digest send --join adds this process as a sender instead"
                            if self._db.dialect == "postgresql"
                            else ""
                        ),
                    )
            self._db.execute(
                """INSERT INTO send_claims (issue_id, holder, claimed_at, heartbeat_at) VALUES (?, ?, ?, ?)
                   ON CONFLICT (issue_id) DO UPDATE SET holder = excluded.holder,
                       claimed_at = excluded.claimed_at, heartbeat_at = excluded.heartbeat_at""",
                (issue_id, holder, to_iso(at), to_iso(at)),
            )
        return existing if existing is not None and existing.holder != holder else None

    def refresh_claim(self, issue_id: str, holder: str, *, at: datetime) -> bool:
        """Move the heartbeat on; False when the claim is no longer ours (taken over as stale)."""
        changed = self._db.execute(
            "UPDATE send_claims SET heartbeat_at = ? WHERE issue_id = ? AND holder = ?",
            (to_iso(at), issue_id, holder),
        )
        return changed > 0

    def release_claim(self, issue_id: str, holder: str) -> None:
        self._db.execute("DELETE FROM send_claims WHERE issue_id = ? AND holder = ?", (issue_id, holder))

    def record_sent(
        self, issue_id: str, email: str, *, message_id: str, at: datetime, variant: str | None = None
    ) -> None:
        """Record that the transport accepted the message for `email` (committed at once); `variant` is
        the key of the topic variant it was (None: the whole issue)."""
        self._db.execute(
            """INSERT INTO send_ledger (issue_id, email, status, message_id, detail, at, variant)
               VALUES (?, ?, 'sent', ?, NULL, ?, ?)
               ON CONFLICT (issue_id, email) DO UPDATE SET status = 'sent', message_id = excluded.message_id,
                   detail = NULL, at = excluded.at, variant = excluded.variant""",
            (issue_id, email, message_id, to_iso(at), variant),
        )

    def sent_variants(self, issue_id: str) -> dict[str, int]:
        """How many recipients got each topic variant of an issue ("" for the whole issue)."""
        rows = self._db.fetch_all(
            "SELECT coalesce(variant, ''), count(*) FROM send_ledger WHERE issue_id = ? AND status = 'sent'"
            " GROUP BY coalesce(variant, '')",
            (issue_id,),
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def record_failed(
        self,
        issue_id: str,
        email: str,
        *,
        detail: str,
        at: datetime,
        permanent: bool = False,
    ) -> None:
        """Record why the message for `email` was not accepted (`refused` when `permanent`, else `failed`).

        A `sent` row is never overwritten.
        """
        status = "refused" if permanent else "failed"
        self._db.execute(
            """INSERT INTO send_ledger (issue_id, email, status, message_id, detail, at)
               VALUES (?, ?, ?, NULL, ?, ?)
               ON CONFLICT (issue_id, email) DO UPDATE SET status = excluded.status, detail = excluded.detail,
                   at = excluded.at
               WHERE send_ledger.status <> 'sent'""",
            (issue_id, email, status, detail, to_iso(at)),
        )

    def record_in_doubt(
        self, issue_id: str, email: str, *, message_id: str, detail: str, at: datetime
    ) -> None:
        """Record that the message for `email` was handed over but its reply never came.

        A `sent` row is never overwritten.
        """
        self._db.execute(
            """INSERT INTO send_ledger (issue_id, email, status, message_id, detail, at)
               VALUES (?, ?, 'in_doubt', ?, ?, ?)
               ON CONFLICT (issue_id, email) DO UPDATE SET status = 'in_doubt',
                   message_id = excluded.message_id, detail = excluded.detail, at = excluded.at
               WHERE send_ledger.status <> 'sent'""",
            (issue_id, email, message_id, detail, to_iso(at)),
        )

    def ledger_entry(self, issue_id: str, email: str) -> LedgerRow | None:
        row = self._db.fetch_one(
            "SELECT * FROM send_ledger WHERE issue_id = ? AND email = ?", (issue_id, email)
        )
        return _row(row) if row else None

    def iter_ledger(self, issue_id: str, status: LedgerStatus | None = None) -> Iterator[LedgerRow]:
        if status is None:
            rows = self._db.fetch_all(
                "SELECT * FROM send_ledger WHERE issue_id = ? ORDER BY email", (issue_id,)
            )
        else:
            rows = self._db.fetch_all(
                "SELECT * FROM send_ledger WHERE issue_id = ? AND status = ? ORDER BY email",
                (issue_id, status),
            )
        for row in rows:
            yield _row(row)

    def status_counts(self, issue_id: str) -> dict[str, int]:
        """How many ledger rows of the issue have each status (statuses without rows are 0)."""
        counts = dict.fromkeys(("sent", "failed", "refused", "in_doubt"), 0)
        for status, count in self._db.fetch_all(
            "SELECT status, count(*) FROM send_ledger WHERE issue_id = ? GROUP BY status", (issue_id,)
        ):
            counts[str(status)] = int(count)
        return counts

    def failed_rows(self, issue_id: str, *, limit: int) -> tuple[LedgerRow, ...]:
        """The first `limit` recipients (by address) the issue failed for or was refused for."""
        rows = self._db.fetch_all(
            "SELECT * FROM send_ledger WHERE issue_id = ? AND status IN ('failed', 'refused')"
            " ORDER BY email LIMIT ?",
            (issue_id, limit),
        )
        return tuple(_row(r) for r in rows)

    def sent_count(self, issue_id: str) -> int:
        """How many recipients the issue was accepted for."""
        return count_of(
            self._db.fetch_one(
                "SELECT count(*) FROM send_ledger WHERE issue_id = ? AND status = 'sent'", (issue_id,)
            )
        )

    def pending_count(self, issue_id: str, *, retry_refused: bool = False) -> int:
        """Active subscribers the issue has not yet been sent to (nor refused, unless `retry_refused`)."""
        return count_of(
            self._db.fetch_one(
                f"SELECT count(*) {_pending(retry_refused, self._audience)}", (issue_id, *self._audience)
            )
        )

    def refused_count(self, issue_id: str) -> int:
        """Active subscribers (of the audience) left out of a send of the issue because an earlier one was
        refused for them: `pending_count(retry_refused=True) - pending_count()`, read from the issue's
        ledger rows instead of twice over every subscriber (at 1,000,000 each sender starts sooner)."""
        return count_of(
            self._db.fetch_one(
                "SELECT count(*) FROM send_ledger l JOIN subscribers s ON s.email = l.email"
                " WHERE l.issue_id = ? AND l.status = 'refused' AND s.status = 'active'"
                + (_AUDIENCE.format(tags=", ".join("?" for _ in self._audience)) if self._audience else ""),
                (issue_id, *self._audience),
            )
        )

    def pending_recipients(
        self, issue_id: str, *, page_size: int = 500, retry_refused: bool = False
    ) -> Iterator[tuple[str, str | None, str]]:
        """(email, name, token id) of every active subscriber without a `sent` (or `refused`) row, by address.

        A `refused` row (a permanent refusal) settles the recipient for this issue unless `retry_refused`.
        Read a page at a time (keyset pagination), so the ledger can be written between pages and a
        large list is never held in memory.
        """
        after = ""
        columns = "s.email, s.name, s.token_id"
        pending = _pending(retry_refused, self._audience)
        query = f"SELECT {columns} {pending} AND s.email > ? ORDER BY s.email LIMIT ?"
        while True:
            rows = self._db.fetch_all(query, (issue_id, *self._audience, after, page_size))
            if not rows:
                return
            for row in rows:
                yield row[0], row[1], row[2]
            after = rows[-1][0]

    def sends_to(self, email: str) -> list[tuple[str, str, datetime]]:
        """(issue id, status, when) of every ledger row of one address, oldest first (subject access)."""
        rows = self._db.fetch_all(
            "SELECT issue_id, status, at FROM send_ledger WHERE email = ? ORDER BY at, issue_id", (email,)
        )
        return [(str(r["issue_id"]), str(r["status"]), from_iso(r["at"])) for r in rows]

    def blank_address(self, email: str, replacement: str) -> int:
        """Replace an address in every ledger row by `replacement` and drop the rows' details (which may quote
        it, as an SMTP refusal does); the counts per issue stay right. Returns the rows changed."""
        return self._db.execute(
            "UPDATE send_ledger SET email = ?, detail = NULL WHERE email = ?", (replacement, email)
        )
