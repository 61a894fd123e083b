"""Built and sent issues in state: what was built, from which entries, and when it was sent."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row, count_of


@dataclass(frozen=True, slots=True)
class IssueRecord:
    """One built issue as state knows it. `sent_at` is set once every recipient has been handled."""

    id: str
    edition: int
    window_start: datetime
    window_end: datetime
    subject: str
    built_at: datetime
    out_dir: Path
    html_sha256: str
    text_sha256: str
    entry_count: int
    empty: bool
    send_started_at: datetime | None
    sent_at: datetime | None


def _record(row: Row) -> IssueRecord:
    return IssueRecord(
        id=row["id"],
        edition=row["edition"],
        window_start=from_iso(row["window_start"]),
        window_end=from_iso(row["window_end"]),
        subject=row["subject"],
        built_at=from_iso(row["built_at"]),
        out_dir=Path(row["out_dir"]),
        html_sha256=row["html_sha256"],
        text_sha256=row["text_sha256"],
        entry_count=row["entry_count"],
        empty=bool(row["empty"]),
        send_started_at=from_iso(row["send_started_at"]) if row["send_started_at"] else None,
        sent_at=from_iso(row["sent_at"]) if row["sent_at"] else None,
    )


class Issues:
    """Record built issues, their entries, and when they were sent.

    `edition` scopes the questions "which issue" (latest, interrupted, last sent, recent, the count, the
    entries sent) to one `[[editions]]` id; None (a config without editions) asks them over every issue,
    as before editions existed. Looking an issue up by id is never scoped: ids are unique across editions.
    """

    def __init__(self, db: Database, edition: str | None = None) -> None:
        self._db = db
        self._edition = edition

    def _scope(self, where: str = "") -> tuple[str, tuple[str, ...]]:
        """A WHERE clause (joined with `where`) limiting rows to the edition, and its parameters."""
        if self._edition is None:
            return (f" WHERE {where}" if where else ""), ()
        return (f" WHERE edition_id = ? AND {where}" if where else " WHERE edition_id = ?"), (self._edition,)

    def record_built_issue(
        self,
        *,
        issue_id: str,
        edition: int,
        window_start: datetime,
        window_end: datetime,
        subject: str,
        built_at: datetime,
        out_dir: Path,
        html_sha256: str,
        text_sha256: str,
        entry_ids: Iterable[str],
        empty: bool,
    ) -> None:
        """Insert or replace a built (not yet sent) issue and the ids of the entries it holds.

        Rebuilding an issue whose sending has started is refused: its recipients may already hold it.
        """
        ids = sorted(set(entry_ids))
        with self._db.transaction():
            row = self._db.fetch_one("SELECT send_started_at FROM issues WHERE id = ?", (issue_id,))
            if row is not None and row["send_started_at"] is not None:
                raise ValueError(f"issue {issue_id} is already being sent or was sent; it cannot be rebuilt")
            self._db.execute(
                """INSERT INTO issues (id, edition, window_start, window_end, subject, built_at, out_dir,
                                       html_sha256, text_sha256, entry_count, empty, edition_id)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (id) DO UPDATE SET
                       edition = excluded.edition, window_start = excluded.window_start,
                       window_end = excluded.window_end, subject = excluded.subject,
                       built_at = excluded.built_at, out_dir = excluded.out_dir,
                       html_sha256 = excluded.html_sha256, text_sha256 = excluded.text_sha256,
                       entry_count = excluded.entry_count, empty = excluded.empty""",
                (
                    issue_id,
                    edition,
                    to_iso(window_start),
                    to_iso(window_end),
                    subject,
                    to_iso(built_at),
                    str(out_dir),
                    html_sha256,
                    text_sha256,
                    len(ids),
                    int(empty),
                    self._edition or "",
                ),
            )
            self._db.execute("DELETE FROM issue_entries WHERE issue_id = ?", (issue_id,))
            self._db.execute_many(
                "INSERT INTO issue_entries (issue_id, entry_id) VALUES (?, ?)", [(issue_id, i) for i in ids]
            )

    def discard_unsent_issue(self, issue_id: str) -> IssueRecord | None:
        """Forget a built issue whose sending never started: its row, its entry list and any approval of it.

        For a rebuild that finds the issue now holds nothing, so no stale copy can be sent. Returns the record
        removed, or None when there was none or its sending has started (a started issue is never forgotten).
        """
        with self._db.transaction():
            row = self._db.fetch_one(
                "SELECT * FROM issues WHERE id = ? AND send_started_at IS NULL", (issue_id,)
            )
            if row is None:
                return None
            self._db.execute("DELETE FROM issue_entries WHERE issue_id = ?", (issue_id,))
            self._db.execute("DELETE FROM approvals WHERE issue_id = ?", (issue_id,))
            self._db.execute("DELETE FROM issues WHERE id = ?", (issue_id,))
        return _record(row)

    def get_issue(self, issue_id: str) -> IssueRecord | None:
        row = self._db.fetch_one("SELECT * FROM issues WHERE id = ?", (issue_id,))
        return _record(row) if row else None

    def latest_issue(self) -> IssueRecord | None:
        """The most recently built issue (by window end, then build time)."""
        where, params = self._scope()
        row = self._db.fetch_one(
            f"SELECT * FROM issues{where} ORDER BY window_end DESC, built_at DESC LIMIT 1", params
        )
        return _record(row) if row else None

    def interrupted_issue(self) -> IssueRecord | None:
        """The issue whose sending began but did not finish (the latest, should there be several), if any."""
        where, params = self._scope("send_started_at IS NOT NULL AND sent_at IS NULL")
        row = self._db.fetch_one(
            f"SELECT * FROM issues{where} ORDER BY window_end DESC, built_at DESC LIMIT 1", params
        )
        return _record(row) if row else None

    def last_sent_issue(self) -> IssueRecord | None:
        """The sent issue with the latest window end: the next window starts where it ended."""
        where, params = self._scope("sent_at IS NOT NULL")
        row = self._db.fetch_one(f"SELECT * FROM issues{where} ORDER BY window_end DESC LIMIT 1", params)
        return _record(row) if row else None

    def recent_issues(self, limit: int = 10) -> tuple[IssueRecord, ...]:
        where, params = self._scope()
        rows = self._db.fetch_all(
            f"SELECT * FROM issues{where} ORDER BY window_end DESC, built_at DESC LIMIT ?", (*params, limit)
        )
        return tuple(_record(r) for r in rows)

    def issue_edition(self, issue_id: str) -> str | None:
        """The `[[editions]]` id an issue was built for ("" without editions), None for an unknown issue."""
        row = self._db.fetch_one("SELECT edition_id FROM issues WHERE id = ?", (issue_id,))
        return str(row[0]) if row else None

    def sent_issue_count(self) -> int:
        where, params = self._scope("sent_at IS NOT NULL")
        return count_of(self._db.fetch_one(f"SELECT count(*) FROM issues{where}", params))

    def issue_entry_ids(self, issue_id: str) -> frozenset[str]:
        rows = self._db.fetch_all("SELECT entry_id FROM issue_entries WHERE issue_id = ?", (issue_id,))
        return frozenset(r[0] for r in rows)

    def mark_send_started(self, issue_id: str, at: datetime) -> None:
        """Record that sending began (from then on the issue is frozen: rebuilding it is refused)."""
        self._db.execute(
            "UPDATE issues SET send_started_at = coalesce(send_started_at, ?) WHERE id = ?",
            (to_iso(at), issue_id),
        )

    def mark_issue_sent(self, issue_id: str, at: datetime) -> None:
        """Mark the issue sent and its entries as sent, so later windows leave them out."""
        with self._db.transaction():
            self._db.execute(
                "UPDATE issues SET sent_at = coalesce(sent_at, ?),"
                " send_started_at = coalesce(send_started_at, ?)"
                " WHERE id = ?",
                (to_iso(at), to_iso(at), issue_id),
            )
            self._db.execute(
                """INSERT INTO sent_entries (entry_id, issue_id, sent_at)
                   SELECT entry_id, issue_id, ? FROM issue_entries WHERE issue_id = ?
                   ON CONFLICT (entry_id) DO NOTHING""",
                (to_iso(at), issue_id),
            )

    def sent_entry_ids(self) -> frozenset[str]:
        """Ids of every entry that went out in an earlier, sent issue (of this edition, when scoped: an
        entry another edition sent can still go out in this one)."""
        if self._edition is None:
            return frozenset(r[0] for r in self._db.fetch_all("SELECT entry_id FROM sent_entries"))
        rows = self._db.fetch_all(
            "SELECT DISTINCT ie.entry_id FROM issue_entries ie JOIN issues i ON i.id = ie.issue_id"
            " WHERE i.edition_id = ? AND i.sent_at IS NOT NULL",
            (self._edition,),
        )
        return frozenset(r[0] for r in rows)
