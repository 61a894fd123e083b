"""Old send-ledger rows folded into per-issue counts, so the ledger does not grow without bound.

The ledger keeps one row per issue and recipient (address, Message-ID, detail): what makes a send
exactly-once and lets a bounce be matched to its issue. Once an issue is sent and its rows are older
than `[state] ledger_keep_days`, that detail has done its work: `fold_ledger` replaces the rows by
one count per issue and status in `ledger_counts` (no address, no Message-ID, no detail is kept) and
`digest status` adds those counts to what the remaining rows say. Rows of an issue whose sending has
not finished are never folded (a resumed send needs them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.state import to_iso
from digest.state.backend import Database, count_of

# Ledger rows old enough to fold: older than the cutoff, of an issue whose sending finished.
_FOLDABLE = "send_ledger.at < ? AND send_ledger.issue_id IN (SELECT id FROM issues WHERE sent_at IS NOT NULL)"


@dataclass(frozen=True, slots=True)
class FoldResult:
    """How many ledger rows were folded, of how many issues."""

    rows: int
    issues: int


class LedgerFolds:
    """Fold old ledger rows into per-issue counts, and read those counts back."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def fold_ledger(self, *, before: datetime, at: datetime) -> FoldResult:
        """Fold the ledger rows older than `before` of every sent issue into `ledger_counts` (one
        transaction: the counts grow by exactly the rows deleted)."""
        cutoff = to_iso(before)
        with self._db.transaction():
            issues = count_of(
                self._db.fetch_one(
                    f"SELECT count(DISTINCT issue_id) FROM send_ledger WHERE {_FOLDABLE}", (cutoff,)
                )
            )
            if not issues:
                return FoldResult(0, 0)
            self._db.execute(
                f"""INSERT INTO ledger_counts (issue_id, status, count, folded_at)
                    SELECT issue_id, status, count(*), ? FROM send_ledger WHERE {_FOLDABLE}
                    GROUP BY issue_id, status
                    ON CONFLICT (issue_id, status) DO UPDATE
                    SET count = ledger_counts.count + excluded.count, folded_at = excluded.folded_at""",
                (to_iso(at), cutoff),
            )
            rows = self._db.execute(f"DELETE FROM send_ledger WHERE {_FOLDABLE}", (cutoff,))
        return FoldResult(rows, issues)

    def folded_counts(self, issue_id: str) -> dict[str, int]:
        """The folded count of each status of the issue (statuses with none are left out)."""
        rows = self._db.fetch_all("SELECT status, count FROM ledger_counts WHERE issue_id = ?", (issue_id,))
        return {str(r["status"]): int(r["count"]) for r in rows}

    def folded_rows(self) -> int:
        """How many ledger rows have been folded in all."""
        return count_of(self._db.fetch_one("SELECT coalesce(sum(count), 0) FROM ledger_counts"))
