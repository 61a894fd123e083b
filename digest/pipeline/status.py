"""What `digest status` shows: recent issues and their delivery, recent runs, the next scheduled run,
whether the scheduler is running, and the health of each source (flagged after N failures in a row).

Everything is read from state and the lock files; nothing is fetched, locked or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.config import Config
from digest.models import SourceReport
from digest.pipeline.ingest import source_reports
from digest.schedule.cadence import slot_after, slot_before
from digest.schedule.lock import LockHolder, is_locked, read_holder
from digest.state import issues
from digest.state.batches import Worker
from digest.state.runs import RunRecord
from digest.state.store import Store

BOUNCE_RATE_FLAG = 0.02
COMPLAINT_RATE_FLAG = 0.001


@dataclass(frozen=True, slots=True)
class FailedRecipient:
    email: str
    detail: str


@dataclass(frozen=True, slots=True)
class IssueStatus:
    """One built issue: when built and sent, how many recipients have it, how many failed (temporarily
    or refused permanently), and how many are in doubt (handed over, the server's reply never came)."""

    id: str
    subject: str
    built_at: datetime
    send_started_at: datetime | None
    sent_at: datetime | None
    recipients: int
    failures: int
    failed: tuple[FailedRecipient, ...]
    approved_by: str | None
    approval_current: bool
    in_doubt: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    complaints: int = 0
    workers: tuple[Worker, ...] = ()  # senders holding batches of a send in progress (PostgreSQL)
    batches: tuple[int, int] = (0, 0)  # (done, all) batches of the send in progress

    @property
    def bounce_rate(self) -> float:
        """Recipients who bounced (hard or soft), as a share of those the issue was sent to."""
        return (self.hard_bounces + self.soft_bounces) / self.recipients if self.recipients else 0.0

    @property
    def complaint_rate(self) -> float:
        return self.complaints / self.recipients if self.recipients else 0.0

    @property
    def attention(self) -> tuple[str, ...]:
        """Why this issue is flagged: bounces above 2% or complaints above 0.1% of its recipients."""
        found = []
        if self.bounce_rate > BOUNCE_RATE_FLAG:
            found.append(
                f"issue {self.id}: {self.bounce_rate:.1%} of recipients bounced"
                f" ({self.hard_bounces} hard, {self.soft_bounces} soft; over {BOUNCE_RATE_FLAG:.0%})"
            )
        if self.complaint_rate > COMPLAINT_RATE_FLAG:
            found.append(
                f"issue {self.id}: {self.complaint_rate:.2%} of recipients complained"
                f" ({self.complaints}; over {COMPLAINT_RATE_FLAG:.1%})"
            )
        return tuple(found)

    @property
    def hint(self) -> str | None:
        if not self.attention:
            return None
        parts = []
        if self.bounce_rate > BOUNCE_RATE_FLAG:
            parts.append(
                "clean the list before the next issue: run digest bounces process, and check where the"
                " bounced addresses came from (digest subscribers list --status bounced); Amazon SES"
                " reviews accounts above 5% and mailbox providers throttle well before"
            )
        if self.complaint_rate > COMPLAINT_RATE_FLAG:
            parts.append(
                "send only to people who asked for the digest and keep the unsubscribe link plain;"
                " providers throttle above 0.1% complaints (Gmail asks for under 0.3%)"
            )
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class SourceHealth:
    report: SourceReport
    flagged: bool


@dataclass(frozen=True, slots=True)
class Status:
    now: datetime
    issues: tuple[IssueStatus, ...]
    runs: tuple[RunRecord, ...]
    next_run: datetime
    last_slot: datetime
    timezone: str
    scheduler: LockHolder | None
    run_in_progress: LockHolder | None
    sources: tuple[SourceHealth, ...]
    failing_after: int
    approval_required: bool
    display_timezone: str = "Europe/London"  # [digest] timezone and locale: how times are shown to people
    locale: str = "en_GB"

    @property
    def flagged_sources(self) -> tuple[SourceHealth, ...]:
        return tuple(s for s in self.sources if s.flagged)


def scheduler_lock_path(config: Config) -> Path:
    """The lock `digest schedule` holds while it runs: the run lock's name plus `.schedule`."""
    return config.lock_path.with_name(config.lock_path.name + ".schedule")


def _issue_status(db: Store, record: issues.IssueRecord) -> IssueStatus:
    counts = db.ledger.status_counts(record.id)
    for status, folded in db.folds.folded_counts(record.id).items():  # rows folded after ledger_keep_days
        counts[status] = counts.get(status, 0) + folded
    failed = tuple(
        FailedRecipient(row.email, row.detail or "") for row in db.ledger.failed_rows(record.id, limit=20)
    )
    approval = db.approvals.get_approval(record.id)
    bounced = db.bounces.issue_bounces(record.id)
    return IssueStatus(
        id=record.id,
        subject=record.subject,
        built_at=record.built_at,
        send_started_at=record.send_started_at,
        sent_at=record.sent_at,
        recipients=int(counts.get("sent", 0)),
        failures=int(counts.get("failed", 0)) + int(counts.get("refused", 0)),
        in_doubt=int(counts.get("in_doubt", 0)),
        failed=failed,
        approved_by=approval.approved_by if approval else None,
        approval_current=bool(approval and approval.covers(record.html_sha256, record.text_sha256)),
        hard_bounces=bounced.hard,
        soft_bounces=bounced.soft,
        complaints=bounced.complaints,
        workers=db.batches.workers(record.id) if record.sent_at is None else (),
        batches=db.batches.progress(record.id) if record.sent_at is None else (0, 0),
    )


def _holder(lock: Path) -> LockHolder | None:
    if not is_locked(lock):
        return None
    return read_holder(lock) or LockHolder(None, None, None, None)


def gather_status(config: Config, db: Store, *, now: datetime, limit: int = 10) -> Status:
    """Collect the status of the digest from state (read-only)."""
    threshold = config.status.failing_after
    return Status(
        now=now,
        issues=tuple(_issue_status(db, r) for r in db.issues.recent_issues(limit)),
        runs=db.runs.recent_runs(limit),
        next_run=slot_after(config.schedule, config.edition, now),
        last_slot=slot_before(config.schedule, config.edition, now),
        timezone=config.schedule.timezone,
        scheduler=_holder(scheduler_lock_path(config)),
        run_in_progress=_holder(config.lock_path),
        sources=tuple(
            SourceHealth(r, r.consecutive_failures >= threshold) for r in source_reports(config, db)
        ),
        failing_after=threshold,
        approval_required=config.approval.required,
        display_timezone=config.digest.timezone,
        locale=config.digest.locale,
    )
