"""Old send-ledger rows folded into per-issue counts, so the ledger does not grow without bound.

The ledger keeps one row per issue and recipient (address, Message-ID, detail): what makes a send
exactly-once and lets a bounce be matched to its issue. Once an issue is sent and its rows are older
than `[state] ledger_keep_days`, that detail has done its work: `fold_ledger` replaces the rows by
one count per issue and status in `ledger_counts` (no address, no Message-ID, no detail is kept) and
`digest status` adds those counts to what the remaining rows say. Rows of an issue whose sending has
not finished are never folded (a resumed send needs them).

The bounces and complaints of those issues go the same way: once every event of an address for a sent
issue is older than the cutoff, the events become one count per issue and kind in `bounce_counts` (the
distinct addresses, which is what the bounce and complaint rates of `digest status` count) and the rows,
with their addresses and diagnostics, are deleted; an event matched to no issue is deleted at the same
age. `hook_messages` (the ids of SNS notifications acted on, kept to refuse a replay) older than the
cutoff are deleted: SNS messages older than an hour are refused by their signed Timestamp anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from digest.state import to_iso
from digest.state.backend import Database, count_of

# Ledger rows old enough to fold: older than the cutoff, of an issue whose sending finished.
_FOLDABLE = "send_ledger.at < ? AND send_ledger.issue_id IN (SELECT id FROM issues WHERE sent_at IS NOT NULL)"
# Bounce events old enough to fold: of a sent issue, and every event of the same address for that issue
# older than the cutoff (so an address is counted once per issue and kind, whichever fold takes it).
_BOUNCES_FOLDABLE = """bounce_events.issue_id IN (SELECT id FROM issues WHERE sent_at IS NOT NULL)
    AND NOT EXISTS (SELECT 1 FROM bounce_events AS later WHERE later.issue_id = bounce_events.issue_id
                    AND later.email = bounce_events.email AND later.at >= ?)"""


@dataclass(frozen=True, slots=True)
class FoldResult:
    """How many ledger rows were folded, of how many issues; bounce events folded or deleted, and SNS
    message ids forgotten."""

    rows: int
    issues: int
    bounce_events: int = 0
    hook_messages: int = 0


class LedgerFolds:
    """Fold old ledger rows into per-issue counts, and read those counts back."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def fold_ledger(self, *, before: datetime, at: datetime) -> FoldResult:
        """Fold the ledger rows and bounce events older than `before` of every sent issue into counts
        (`ledger_counts`, `bounce_counts`), and delete the older bounce events of no issue and SNS
        message ids: one transaction, so the counts grow by exactly the rows deleted."""
        cutoff = to_iso(before)
        with self._db.transaction():
            issues = count_of(
                self._db.fetch_one(
                    f"SELECT count(DISTINCT issue_id) FROM send_ledger WHERE {_FOLDABLE}", (cutoff,)
                )
            )
            rows = 0
            if issues:
                self._db.execute(
                    f"""INSERT INTO ledger_counts (issue_id, status, count, folded_at)
                        SELECT issue_id, status, count(*), ? FROM send_ledger WHERE {_FOLDABLE}
                        GROUP BY issue_id, status
                        ON CONFLICT (issue_id, status) DO UPDATE
                        SET count = ledger_counts.count + excluded.count, folded_at = excluded.folded_at""",
                    (to_iso(at), cutoff),
                )
                rows = self._db.execute(f"DELETE FROM send_ledger WHERE {_FOLDABLE}", (cutoff,))
            events = self._fold_bounces(cutoff, at)
            hooks = self._db.execute("DELETE FROM hook_messages WHERE received_at < ?", (cutoff,))
        return FoldResult(rows, issues, events, hooks)

    def _fold_bounces(self, cutoff: str, at: datetime) -> int:
        """Fold the old bounce events of sent issues into `bounce_counts`, delete the old ones of no
        issue; returns how many rows went."""
        self._db.execute(
            f"""INSERT INTO bounce_counts (issue_id, kind, count, folded_at)
                SELECT issue_id, kind, count(DISTINCT email), ? FROM bounce_events WHERE {_BOUNCES_FOLDABLE}
                GROUP BY issue_id, kind
                ON CONFLICT (issue_id, kind) DO UPDATE
                SET count = bounce_counts.count + excluded.count, folded_at = excluded.folded_at""",
            (to_iso(at), cutoff),
        )
        folded = self._db.execute(f"DELETE FROM bounce_events WHERE {_BOUNCES_FOLDABLE}", (cutoff,))
        return folded + self._db.execute(
            "DELETE FROM bounce_events WHERE issue_id IS NULL AND at < ?", (cutoff,)
        )

    def folded_counts(self, issue_id: str) -> dict[str, int]:
        """The folded count of each status of the issue (statuses with none are left out)."""
        rows = self._db.fetch_all("SELECT status, count FROM ledger_counts WHERE issue_id = ?", (issue_id,))
        return {str(r["status"]): int(r["count"]) for r in rows}

    def folded_rows(self) -> int:
        """How many ledger rows have been folded in all."""
        return count_of(self._db.fetch_one("SELECT coalesce(sum(count), 0) FROM ledger_counts"))

    def folded_bounces(self, issue_id: str) -> dict[str, int]:
        """The folded count of each bounce kind of the issue, in distinct addresses (none: left out)."""
        rows = self._db.fetch_all("SELECT kind, count FROM bounce_counts WHERE issue_id = ?", (issue_id,))
        return {str(r["kind"]): int(r["count"]) for r in rows}
