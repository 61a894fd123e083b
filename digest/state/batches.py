"""Batches of recipients for several senders sharing one send (`digest send --join`, PostgreSQL).

The first sender of an issue (holding its `send_claims` claim) cuts the pending recipients into
batches of `size` addresses: a batch is the range of addresses from `lo` (inclusive) to `hi`
(exclusive, NULL for the last), and the first starts at '' so the ranges cover every address, also
one subscribed after they were made. Each sender, the first and any joiner, claims one open batch at
a time with `SELECT ... FOR UPDATE SKIP LOCKED` (two senders never wait on, nor take, the same
batch), refreshes the heartbeat of the batches it holds, and marks a batch done once every message
of it is recorded in the ledger. A batch whose holder stopped is taken over once its heartbeat is
older than `stale_after`, or at once when its holder ran on this host and its process is gone.

Only a message in flight when its sender died can reach its recipient twice: the ledger has no row
for it, so the sender that takes the batch over sends it again (with the same Message-ID).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.state import from_iso, to_iso
from digest.state.backend import Database, Row, count_of

_PENDING = """FROM subscribers s
    LEFT JOIN send_ledger l ON l.issue_id = ? AND l.email = s.email AND l.status IN ({settled})
    WHERE s.status = 'active' AND l.email IS NULL"""

# The first open batch nobody holds (or whose holder is stale), by address. It reads the open batches
# only, through the partial index send_batches_open: late in a send of 1,000,000 (4,000 batches) a claim
# would otherwise step over the thousands already done.
CLAIMABLE = (
    "SELECT * FROM send_batches WHERE issue_id = ? AND done = 0"
    " AND (holder IS NULL OR heartbeat_at < ?) ORDER BY lo LIMIT 1"
)


def _pending(retry_refused: bool) -> str:
    return _PENDING.format(settled="'sent'" if retry_refused else "'sent', 'refused'")


@dataclass(frozen=True, slots=True)
class Batch:
    """One range of addresses of an issue's send: `lo` <= address < `hi` (None: no upper end)."""

    issue_id: str
    lo: str
    hi: str | None
    holder: str | None
    heartbeat_at: datetime | None
    done: bool


@dataclass(frozen=True, slots=True)
class Worker:
    """A sender holding batches of a send in progress."""

    holder: str
    batches: int
    heartbeat_at: datetime


def _batch(row: Row) -> Batch:
    beat = row["heartbeat_at"]
    return Batch(
        issue_id=row["issue_id"],
        lo=row["lo"],
        hi=row["hi"],
        holder=row["holder"],
        heartbeat_at=from_iso(beat) if beat else None,
        done=bool(row["done"]),
    )


class Batches:
    """The batches of the sends in progress, claimed by senders that share a send."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def _skip_locked(self) -> str:
        # SQLite has one writer at a time (BEGIN IMMEDIATE): there is no row lock to skip.
        return " FOR UPDATE SKIP LOCKED" if self._db.dialect == "postgresql" else ""

    def open_round(self, issue_id: str, *, size: int, retry_refused: bool = False) -> int:
        """Make the batches of a send of `issue_id` unless some are still open; the number of open ones.

        Call it holding the issue's send claim (one maker at a time). Open batches are kept (senders
        may hold them: a restarted first sender joins them); done ones are replaced by a new cut of
        the recipients still pending.
        """
        with self._db.transaction():
            open_now = self.open_count(issue_id)
            if open_now:
                return open_now
            self._db.execute("DELETE FROM send_batches WHERE issue_id = ?", (issue_id,))
            rows = self._db.fetch_all(
                f"""SELECT email FROM (
                        SELECT s.email AS email, row_number() OVER (ORDER BY s.email) AS n
                        {_pending(retry_refused)}) p
                    WHERE (n - 1) % ? = 0 ORDER BY email""",
                (issue_id, size),
            )
            starts = [str(r[0]) for r in rows]
            if not starts:
                return 0
            starts[0] = ""  # the first batch starts below every address
            ends: list[str | None] = [*starts[1:], None]
            self._db.execute_many(
                "INSERT INTO send_batches (issue_id, lo, hi) VALUES (?, ?, ?)",
                [(issue_id, lo, hi) for lo, hi in zip(starts, ends, strict=True)],
            )
            return len(starts)

    def open_count(self, issue_id: str) -> int:
        """Batches of the issue not yet done (held or waiting)."""
        return count_of(
            self._db.fetch_one(
                "SELECT count(*) FROM send_batches WHERE issue_id = ? AND done = 0", (issue_id,)
            )
        )

    def issue_in_progress(self) -> str | None:
        """The issue with open batches (a send to join), None when nothing is being sent."""
        row = self._db.fetch_one(
            "SELECT issue_id FROM send_batches WHERE done = 0 ORDER BY issue_id DESC LIMIT 1"
        )
        return str(row[0]) if row else None

    def claim_batch(
        self,
        issue_id: str,
        holder: str,
        *,
        at: datetime,
        stale_after: timedelta,
        gone: Callable[[str], bool] = lambda _holder: False,
    ) -> tuple[Batch, str | None] | None:
        """Claim an open batch nobody holds, or one whose holder is stale or `gone(holder)`.

        Returns the batch and the holder it was taken over from (None for a free batch), or None when
        no batch can be claimed now (all done, or held by live senders).
        """
        stale = to_iso(at - stale_after)
        with self._db.transaction():
            row = self._db.fetch_one(CLAIMABLE + self._skip_locked(), (issue_id, stale))
            if row is None:
                held = self._db.fetch_all(
                    "SELECT * FROM send_batches WHERE issue_id = ? AND done = 0 AND holder <> ?"
                    " ORDER BY lo" + self._skip_locked(),
                    (issue_id, holder),
                )
                row = next((r for r in held if gone(str(r["holder"]))), None)
            if row is None:
                return None
            previous = row["holder"]
            self._db.execute(
                "UPDATE send_batches SET holder = ?, claimed_at = ?, heartbeat_at = ?"
                " WHERE issue_id = ? AND lo = ?",
                (holder, to_iso(at), to_iso(at), issue_id, row["lo"]),
            )
        batch = _batch(row)
        return Batch(issue_id, batch.lo, batch.hi, holder, at, False), previous

    def recipients(
        self, batch: Batch, *, retry_refused: bool = False
    ) -> list[tuple[str, str | None, str, str | None]]:
        """(email, name, token id, Message-ID of a copy in doubt) of the batch's active subscribers
        without a settling row, by address. Read once the batch is claimed: while it is held, only its
        holder writes the ledger rows of its recipients."""
        upper = " AND s.email < ?" if batch.hi is not None else ""
        settled = "'sent'" if retry_refused else "'sent', 'refused'"
        rows = self._db.fetch_all(
            f"""SELECT s.email, s.name, s.token_id, d.message_id FROM subscribers s
                LEFT JOIN send_ledger l ON l.issue_id = ? AND l.email = s.email AND l.status IN ({settled})
                LEFT JOIN send_ledger d ON d.issue_id = ? AND d.email = s.email AND d.status = 'in_doubt'
                WHERE s.status = 'active' AND l.email IS NULL AND s.email >= ?{upper}
                ORDER BY s.email""",
            (batch.issue_id, batch.issue_id, batch.lo) + ((batch.hi,) if batch.hi is not None else ()),
        )
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def holds(self, batch: Batch, holder: str) -> bool:
        """True while `holder` holds `batch` (it was not taken over as stale)."""
        row = self._db.fetch_one(
            "SELECT holder FROM send_batches WHERE issue_id = ? AND lo = ?", (batch.issue_id, batch.lo)
        )
        return row is not None and row[0] == holder

    def refresh(self, issue_id: str, holder: str, *, at: datetime) -> int:
        """Move the heartbeat of every open batch `holder` holds on; how many it still holds."""
        return self._db.execute(
            "UPDATE send_batches SET heartbeat_at = ? WHERE issue_id = ? AND holder = ? AND done = 0",
            (to_iso(at), issue_id, holder),
        )

    def finish(self, batch: Batch, holder: str) -> bool:
        """Mark the batch done (every message of it is recorded); False when it is no longer ours."""
        return (
            self._db.execute(
                "UPDATE send_batches SET done = 1 WHERE issue_id = ? AND lo = ? AND holder = ?",
                (batch.issue_id, batch.lo, holder),
            )
            > 0
        )

    def release(self, issue_id: str, holder: str) -> None:
        """Give back the open batches `holder` holds (a sender that stops early): others take them."""
        self._db.execute(
            "UPDATE send_batches SET holder = NULL, heartbeat_at = NULL"
            " WHERE issue_id = ? AND holder = ? AND done = 0",
            (issue_id, holder),
        )

    def workers(self, issue_id: str) -> tuple[Worker, ...]:
        """The senders holding open batches of the issue, with their latest heartbeat."""
        rows = self._db.fetch_all(
            "SELECT holder, count(*) AS batches, max(heartbeat_at) AS beat FROM send_batches"
            " WHERE issue_id = ? AND done = 0 AND holder IS NOT NULL GROUP BY holder ORDER BY holder",
            (issue_id,),
        )
        return tuple(Worker(str(r[0]), int(r[1]), from_iso(r[2])) for r in rows)

    def progress(self, issue_id: str) -> tuple[int, int]:
        """(done, all) batches of the issue's current send."""
        row = self._db.fetch_one(
            "SELECT coalesce(sum(done), 0), count(*) FROM send_batches WHERE issue_id = ?", (issue_id,)
        )
        return (int(row[0]), int(row[1])) if row else (0, 0)
