"""Telling the comms team when to act: a draft is ready, an issue waits for approval, an issue was sent.

Messages go to `[notify] to` through the configured transport (the outbox or SMTP), one plain-text
message per address. They are never recorded in the subscribers' send ledger, and a failure to notify
is logged, never fatal: the run itself goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from digest.config import Config
from digest.deliver import Job, Recipient
from digest.deliver.issue import make_transport
from digest.errors import DigestError
from digest.pipeline.build import build_issue
from digest.schedule import describe_time
from digest.schedule.cadence import slot_after
from digest.state import from_iso, to_iso
from digest.state.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Notice:
    subject: str
    body: str


def notice_message(config: Config, notice: Notice, to: str, *, now: datetime) -> EmailMessage:
    d = config.delivery
    message = EmailMessage()
    message["From"] = formataddr((d.from_name, d.from_address)) if d.from_name else d.from_address
    message["To"] = to
    message["Subject"] = notice.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=d.from_address.rpartition("@")[2] or "localhost")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(notice.body)
    return message


def notify_team(config: Config, notice: Notice, *, now: datetime) -> int:
    """Send `notice` to each `[notify] to` address; returns how many the transport accepted.

    Never raises for a delivery problem (it is logged): telling the team must not stop a run.
    """
    if not config.notify.to:
        return 0
    jobs = []
    for address in config.notify.to:
        message = notice_message(config, notice, address, now=now)
        jobs.append(Job(Recipient(address), str(message["Message-ID"]), message.as_bytes()))
    accepted = 0
    try:
        transport = make_transport(config, "notify")
        for delivery in transport.send(jobs):
            if delivery.accepted:
                accepted += 1
            else:
                log.warning("notify: %s not told: %s", delivery.job.recipient.email, delivery.detail)
    except DigestError as e:
        log.warning("notify: the team was not told %r: %s", notice.subject, e.message)
    log.info("notify: told %d of %d addresses: %s", accepted, len(jobs), notice.subject)
    return accepted


def _link(config: Config) -> str:
    return config.notify.preview_url


def draft_ahead(config: Config, db: Store, *, now: datetime) -> str | None:
    """Build the next slot's draft once `[schedule] draft_ahead_hours` before it, and tell the team.

    Done once per slot (remembered in state); returns the issue id built, or None when not due, done
    before, or there is nothing new.
    """
    hours = config.schedule.draft_ahead_hours
    if not hours or not config.notify.to:
        return None
    slot = slot_after(config.schedule, config.edition, now)  # the edition's cadence, holidays applied
    if slot - now > timedelta(hours=hours):
        return None
    key = f"notify.draft_ahead.{to_iso(slot)}"
    if db.settings.get_setting(key) is not None:
        return None
    outcome = build_issue(config, db, now=now, as_of=slot, actor="digest schedule (draft ahead)")
    db.settings.set_setting(key, to_iso(now))  # after the build: a failed build is tried again
    when = describe_time(slot, config.schedule.timezone)
    if outcome.built is None:
        log.info("draft ahead: nothing new for the run of %s", when)
        return None
    issue = outcome.built.issue
    entries = len(issue.entries)
    approval = (
        "It is sent only once approved ([approval] required = true)."
        if config.approval.required
        else "It is sent as it is unless someone changes it."
    )
    notify_team(
        config,
        Notice(
            f"Draft ready for review: {issue.subject}",
            f"The draft of issue {issue.id} ({entries} {'entry' if entries == 1 else 'entries'}) is ready"
            f" for review before the run of {when}.\n\nReview, edit and approve it in the preview:\n"
            f"{_link(config)}\n\n{approval}\n",
        ),
        now=now,
    )
    return issue.id


def remind_waiting(config: Config, db: Store, issue_id: str, *, now: datetime) -> bool:
    """Remind the team that an issue waits for approval (at most once per `[notify] remind_hours`)."""
    if not config.notify.to:
        return False
    key = f"notify.reminded.{issue_id}"
    last = db.settings.get_setting(key)
    if last is not None and now - from_iso(last) < timedelta(hours=config.notify.remind_hours):
        return False
    db.settings.set_setting(key, to_iso(now))
    record = db.issues.get_issue(issue_id)
    subject = record.subject if record else issue_id
    notify_team(
        config,
        Notice(
            f"Waiting for approval: {subject}",
            f"Issue {issue_id} is waiting for approval: the scheduled run does not send it until someone"
            f" approves it.\n\nReview and approve it in the preview:\n{_link(config)}\n",
        ),
        now=now,
    )
    return True


def report_sent(config: Config, db: Store, issue_id: str, *, now: datetime) -> None:
    """Tell the team what a send did: sent, failed, in doubt, and the bounces so far."""
    if not config.notify.to:
        return
    counts = db.ledger.status_counts(issue_id)
    bounces = db.bounces.issue_bounces(issue_id)
    record = db.issues.get_issue(issue_id)
    state = "sent" if record and record.sent_at else "partly sent"
    failed = counts.get("failed", 0) + counts.get("refused", 0)
    notify_team(
        config,
        Notice(
            f"Issue {issue_id} {state}: {counts.get('sent', 0)} delivered",
            f"Issue {issue_id} ({record.subject if record else ''}) is {state}.\n\n"
            f"Sent: {counts.get('sent', 0)}\nFailed: {failed}\nIn doubt: {counts.get('in_doubt', 0)}\n"
            f"Bounces so far: {bounces.hard} hard, {bounces.soft} soft; complaints: {bounces.complaints}\n\n"
            "`digest status` lists each failed address and why.\n",
        ),
        now=now,
    )
