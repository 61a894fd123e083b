"""The audit trail: who did what to which issue, and when (edits, rebuilds, test sends, approvals, sends)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One recorded action. `content` is True for a change to what the issue says (four-eyes counts it)."""

    id: int
    at: datetime
    issue_id: str | None
    actor: str
    action: str  # edit | rebuild | test-send | approve | void | send
    detail: str
    content: bool


def _event(row: Row) -> AuditEvent:
    return AuditEvent(
        id=int(row["id"]),
        at=from_iso(row["at"]),
        issue_id=row["issue_id"],
        actor=row["actor"],
        action=row["action"],
        detail=row["detail"],
        content=bool(row["content"]),
    )


class Audit:
    """Append to and read the audit trail (rows are never changed or deleted, except that an erased
    person's address is replaced where it was written: `redact_address`)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self, *, at: datetime, issue_id: str | None, actor: str, action: str, detail: str, content: bool
    ) -> int:
        row = self._db.fetch_one(
            """INSERT INTO audit_events (at, issue_id, actor, action, detail, content)
               VALUES (?, ?, ?, ?, ?, ?) RETURNING id""",
            (to_iso(at), issue_id, actor, action, detail, 1 if content else 0),
        )
        return int(row[0]) if row else 0

    def events(self, *, issue_id: str | None = None, limit: int = 100) -> list[AuditEvent]:
        """The latest events (of one issue when `issue_id`), newest first."""
        if issue_id is None:
            rows = self._db.fetch_all("SELECT * FROM audit_events ORDER BY id DESC LIMIT ?", (limit,))
        else:
            rows = self._db.fetch_all(
                "SELECT * FROM audit_events WHERE issue_id = ? ORDER BY id DESC LIMIT ?", (issue_id, limit)
            )
        return [_event(r) for r in rows]

    def last_content_change(self, issue_id: str) -> AuditEvent | None:
        row = self._db.fetch_one(
            "SELECT * FROM audit_events WHERE issue_id = ? AND content = 1 ORDER BY id DESC LIMIT 1",
            (issue_id,),
        )
        return _event(row) if row else None

    def redact_address(self, email: str, stand_in: str) -> int:
        """Replace an erased person's address (any case) in the details that name it, such as the
        recipients of a test copy; returns how many events were changed. Only the whole address is
        replaced: forgetting `an@example.org` leaves `joan@example.org` and `an@example.org.uk` alone."""
        pattern = _whole_address(email)
        # Every detail naming an address is read and matched here, not with LIKE: `_` and `%` in an
        # address are LIKE wildcards, and SQLite's lower() folds ASCII letters only.
        rows = self._db.fetch_all("SELECT id, detail FROM audit_events WHERE detail LIKE ?", ("%@%",))
        changed = 0
        for row in rows:
            redacted = pattern.sub(lambda _: stand_in, row["detail"])
            if redacted != row["detail"]:
                self._db.execute("UPDATE audit_events SET detail = ? WHERE id = ?", (redacted, row["id"]))
                changed += 1
        return changed


# Characters that may continue an address's local part to the left, or its domain to the right (a dot
# ends a domain only when no label follows it: "sent to an@example.org." names an@example.org).
_LOCAL = r"[\w.!#$%&*+/=?^`{|}~-]"
_DOMAIN = r"[\w-]"


def _whole_address(email: str) -> re.Pattern[str]:
    """`email` (any case) where it stands as a whole address, not inside a longer one."""
    return re.compile(rf"(?<!{_LOCAL}){re.escape(email)}(?!{_DOMAIN}|\.{_DOMAIN})", re.IGNORECASE)
