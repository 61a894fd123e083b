"""Runs of the weekly job in state: one row per scheduled slot (unique), plus one per manual run.

The unique index on `slot` is what makes a missed slot caught up only once: the process that inserts
the slot's row owns it; every later attempt finds the row and reads what happened. A row whose
`finished_at` is empty belongs to a run that is still going or whose process died (the run lock tells
which); such a run is resumed by `reopen_run`, never started twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row

SENT = "sent"
NOTHING_NEW = "skipped: nothing new"
WAITING_FOR_APPROVAL = "waiting for approval"
ALREADY_SENT = "already sent"
MISSED = "skipped: missed"
INTERRUPTED = "interrupted"
FAILED = "failed"
STOPPED = "stopped: will resume"
# Outcomes after which a slot is done for good: it is never run again.
FINAL = (SENT, NOTHING_NEW, ALREADY_SENT, MISSED, INTERRUPTED)


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run of the job. `outcome` is None while it runs (or if its process died mid-run)."""

    id: int
    slot: datetime | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    issue_id: str | None
    detail: str | None

    @property
    def finished(self) -> bool:
        return self.finished_at is not None


def _record(row: Row) -> RunRecord:
    return RunRecord(
        id=row["id"],
        slot=from_iso(row["slot"]) if row["slot"] else None,
        started_at=from_iso(row["started_at"]),
        finished_at=from_iso(row["finished_at"]) if row["finished_at"] else None,
        outcome=row["outcome"],
        issue_id=row["issue_id"],
        detail=row["detail"],
    )


class Runs:
    """Record runs of the scheduled job, one per slot."""

    def __init__(self, db: Database, edition: str | None = None) -> None:
        self._db = db
        # `[[editions]]`: the runs of one edition (its slots are its own); None: every run, as before.
        self._edition = edition

    def _and_edition(self) -> tuple[str, tuple[str, ...]]:
        return ("", ()) if self._edition is None else (" AND edition_id = ?", (self._edition,))

    def start_run(self, *, started_at: datetime, slot: datetime | None = None) -> int | None:
        """Record a run as started; returns its id, or None when a run for `slot` already exists."""
        row = self._db.fetch_one(
            "INSERT INTO runs (slot, started_at, edition_id) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING RETURNING id",
            (to_iso(slot) if slot else None, to_iso(started_at), self._edition or ""),
        )
        return int(row[0]) if row else None

    def record_run(
        self,
        *,
        slot: datetime | None,
        at: datetime,
        outcome: str,
        detail: str | None = None,
        issue_id: str | None = None,
    ) -> int | None:
        """Record a finished run at once (a skipped slot); None when the slot already has a run."""
        with self._db.transaction():
            run_id = self.start_run(started_at=at, slot=slot)
            if run_id is not None:
                self.finish_run(run_id, finished_at=at, outcome=outcome, detail=detail, issue_id=issue_id)
        return run_id

    def reopen_run(self, run_id: int, *, started_at: datetime, note: str) -> None:
        """Take over a slot's run again (resume after a crash, or re-check an approval), keeping its row."""
        row = self._db.fetch_one("SELECT detail FROM runs WHERE id = ?", (run_id,))
        previous = row["detail"] if row and row["detail"] else ""
        detail = f"{previous}; {note}" if previous else note
        self._db.execute(
            "UPDATE runs SET started_at = ?, finished_at = NULL, outcome = NULL, detail = ? WHERE id = ?",
            (to_iso(started_at), detail[-2000:], run_id),
        )

    def finish_run(
        self,
        run_id: int,
        *,
        finished_at: datetime,
        outcome: str,
        detail: str | None = None,
        issue_id: str | None = None,
    ) -> None:
        """Record how a run ended; `detail` is appended to what an earlier attempt of the slot noted."""
        row = self._db.fetch_one("SELECT detail FROM runs WHERE id = ?", (run_id,))
        previous = row["detail"] if row and row["detail"] else ""
        if detail and previous:
            detail = f"{previous}; {detail}"
        elif not detail:
            detail = previous or None
        self._db.execute(
            "UPDATE runs SET finished_at = ?, outcome = ?, detail = ?, issue_id = coalesce(?, issue_id)"
            " WHERE id = ?",
            (to_iso(finished_at), outcome, detail[-2000:] if detail else None, issue_id, run_id),
        )

    def get_run(self, run_id: int) -> RunRecord | None:
        row = self._db.fetch_one("SELECT * FROM runs WHERE id = ?", (run_id,))
        return _record(row) if row else None

    def run_for_slot(self, slot: datetime) -> RunRecord | None:
        scope, params = self._and_edition()
        row = self._db.fetch_one(f"SELECT * FROM runs WHERE slot = ?{scope}", (to_iso(slot), *params))
        return _record(row) if row else None

    def recent_runs(self, limit: int = 10) -> tuple[RunRecord, ...]:
        """The latest runs, newest first."""
        scope, params = self._and_edition()
        rows = self._db.fetch_all(
            f"SELECT * FROM runs WHERE 1 = 1{scope} ORDER BY started_at DESC, id DESC LIMIT ?",
            (*params, limit),
        )
        return tuple(_record(r) for r in rows)

    def last_slot_run(self) -> RunRecord | None:
        """The run of the latest scheduled slot (manual runs are not slots)."""
        scope, params = self._and_edition()
        row = self._db.fetch_one(
            f"SELECT * FROM runs WHERE slot IS NOT NULL{scope} ORDER BY slot DESC LIMIT 1", params
        )
        return _record(row) if row else None

    def runs_for_issue(self, issue_id: str) -> tuple[RunRecord, ...]:
        rows = self._db.fetch_all(
            "SELECT * FROM runs WHERE issue_id = ? ORDER BY started_at, id", (issue_id,)
        )
        return tuple(_record(r) for r in rows)
