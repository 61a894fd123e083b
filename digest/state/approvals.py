"""Approvals of built issues: who approved, when, and the hashes of exactly what they approved.

An issue with topic variants is approved as a whole: the approval also keeps one hash of all its
variants (`variants_fingerprint`), and an approval read back whose variants have changed since (one
added, dropped or rebuilt differently) covers nothing, wherever it is checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.state import from_iso, to_iso
from digest.state.backend import Database
from digest.state.topics import variants_fingerprint


@dataclass(frozen=True, slots=True)
class Approval:
    issue_id: str
    approved_by: str
    approved_at: datetime
    html_sha256: str
    text_sha256: str
    variants_current: bool = True  # the issue's topic variants are still those approved

    def covers(self, html_sha256: str, text_sha256: str) -> bool:
        """True when the approved content is exactly this content, its topic variants included (any
        change voids an approval)."""
        return self.variants_current and self.html_sha256 == html_sha256 and self.text_sha256 == text_sha256


class Approvals:
    """Record and read approvals of built issues."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record_approval(
        self,
        *,
        issue_id: str,
        approved_by: str,
        approved_at: datetime,
        html_sha256: str,
        text_sha256: str,
    ) -> Approval:
        variants = variants_fingerprint(self._db, issue_id)
        self._db.execute(
            """INSERT INTO approvals (issue_id, approved_by, approved_at, html_sha256, text_sha256,
                                      variants_sha256)
               VALUES (?, ?, ?, ?, ?, ?)
               ON CONFLICT (issue_id) DO UPDATE SET approved_by = excluded.approved_by,
                   approved_at = excluded.approved_at, html_sha256 = excluded.html_sha256,
                   text_sha256 = excluded.text_sha256, variants_sha256 = excluded.variants_sha256""",
            (issue_id, approved_by, to_iso(approved_at), html_sha256, text_sha256, variants),
        )
        return Approval(issue_id, approved_by, approved_at, html_sha256, text_sha256)

    def get_approval(self, issue_id: str) -> Approval | None:
        row = self._db.fetch_one("SELECT * FROM approvals WHERE issue_id = ?", (issue_id,))
        if row is None:
            return None
        return Approval(
            row["issue_id"],
            row["approved_by"],
            from_iso(row["approved_at"]),
            row["html_sha256"],
            row["text_sha256"],
            variants_current=row["variants_sha256"] == variants_fingerprint(self._db, issue_id),
        )

    def is_approved(self, issue_id: str, html_sha256: str, text_sha256: str) -> bool:
        approval = self.get_approval(issue_id)
        return approval is not None and approval.covers(html_sha256, text_sha256)
