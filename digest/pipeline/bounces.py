"""Processing the bounce mailbox: classify each message, match it to a subscriber, act on it.

Matching: the VERP id in the address the bounce was sent to, else the Message-ID of the original
message in the send ledger, else a failed address that is a subscriber. What it does
(`apply_event`, shared with the SES hook): a hard bounce makes the subscriber `bounced` at once;
`[bounces] soft_limit` soft bounces in a row across issues do the same; a complaint makes them
`complained`. Each is kept in state with the DSN status and diagnostic (`digest subscribers show`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.config import BounceSettings, Config
from digest.deliver.bounces import Classified, Kind, classify_message, open_source, ses
from digest.deliver.bounces.verp import VerpIndex, verp_id_of
from digest.deliver.tokens import existing_unsubscribe_secret
from digest.errors import UsageError
from digest.state import subscribers
from digest.state.bounces import EventKind
from digest.state.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BounceOutcome:
    """One message of the mailbox: what it is, whom it names, and what it did (`changed_to`)."""

    source: str
    kind: Kind
    recipients: tuple[str, ...]
    status: str | None
    diagnostic: str | None
    subscriber: str | None
    issue: str | None
    changed_to: str | None = None

    def as_json(self) -> dict[str, object]:
        """The `--json` object: exactly source, kind, recipients, status, diagnostic, subscriber, issue."""
        return {
            "source": self.source,
            "kind": self.kind,
            "recipients": list(self.recipients),
            "status": self.status,
            "diagnostic": self.diagnostic,
            "subscriber": self.subscriber,
            "issue": self.issue,
        }


@dataclass(frozen=True, slots=True)
class BounceReport:
    source: str
    dry_run: bool
    outcomes: tuple[BounceOutcome, ...]

    def count(self, kind: Kind) -> int:
        return sum(1 for o in self.outcomes if o.kind == kind)

    @property
    def changed(self) -> tuple[BounceOutcome, ...]:
        return tuple(o for o in self.outcomes if o.changed_to)


def bounce_settings(config: Config) -> BounceSettings:
    return config.bounces or BounceSettings()


def choose_source(config: Config, *, maildir: Path | None, imap: bool) -> str:
    """`maildir` or `imap`, from the flags, else from `[bounces]`.

    Raises:
        UsageError: both flags, or neither and nothing configured.
    """
    if maildir is not None and imap:
        raise UsageError("--maildir and --imap: give one, not both")
    if maildir is not None:
        return "maildir"
    if imap:
        return "imap"
    chosen = bounce_settings(config).default_source
    if chosen is None:
        raise UsageError(
            f"{config.path}: no bounce mailbox: [bounces] sets neither maildir nor imap_host",
            hint="pass --maildir PATH or --imap, or set [bounces] maildir or imap_host",
        )
    return chosen


def match(
    db: Store,
    classified: Classified,
    *,
    bounce_address: str | None,
    verp: Callable[[str], str | None],
) -> tuple[str | None, str | None]:
    """(subscriber address, issue id) a bounce is about, or None for what cannot be matched."""
    email: str | None = None
    issue: str | None = None
    if bounce_address:
        for address in classified.delivered_to:
            verp_id = verp_id_of(address, bounce_address)
            if verp_id and (found := verp(verp_id)):
                email = found
                break
    if classified.original_message_id:
        sent = db.bounces.sent_message(classified.original_message_id)
        if sent is not None:
            issue = sent[0]
            email = email or sent[1]
    if email is None:
        for address in (*classified.recipients, *classified.original_recipients):
            known = db.subscribers.get_subscriber(address)
            if known is not None:
                email = known.email
                break
    if email is not None:
        known = db.subscribers.get_subscriber(email)
        email = known.email if known else None
    if email is not None and issue is None:
        issue = db.bounces.latest_issue_sent_to(email)
    return email, issue


def apply_event(
    db: Store,
    *,
    kind: EventKind,
    email: str,
    issue: str | None,
    status: str | None,
    diagnostic: str | None,
    source: str,
    soft_limit: int,
    at: datetime,
) -> str | None:
    """Record one bounce or complaint and change the subscriber's status if it calls for it.

    Returns the status set (`bounced`, `complained`) or None when nothing changed.
    """
    with db.transaction():
        current = db.subscribers.get_subscriber(email)
        if current is None:
            return None
        new_status: subscribers.SubscriberStatus | None = None
        reason = f"{kind} bounce" if kind != "complaint" else "complaint"
        reason += f" {status}" if status else ""
        reason += f": {diagnostic}" if diagnostic else ""
        if kind == "complaint":
            new_status = "complained" if current.status != "complained" else None
        elif kind == "hard":
            new_status = "bounced" if current.status in ("active", "unsubscribed") else None
        db.bounces.record_event(
            at=at,
            source=source,
            kind=kind,
            email=current.email,
            issue_id=issue,
            status=status,
            diagnostic=diagnostic,
            changed_to=new_status,
        )
        if kind == "soft" and current.status == "active":
            streak = db.bounces.soft_streak(current.email)
            if streak >= soft_limit:
                new_status = "bounced"
                reason = f"{streak} soft bounces in a row (soft_limit {soft_limit}); last: {reason}"
                db.bounces.mark_last_event(current.email, new_status)
        if new_status is not None:
            db.subscribers.set_status(current.email, new_status, at=at, reason=reason[:500])
    if new_status is not None:
        log.info("%s: %s (%s)", current.email, new_status, reason)
    return new_status


def process_bounces(
    config: Config,
    db: Store,
    *,
    source: str,
    maildir: Path | None = None,
    dry_run: bool = False,
    now: Callable[[], datetime],
) -> BounceReport:
    """Read the bounce mailbox once; every message is classified, matched and (unless `dry_run`)
    acted on and moved out of the way.

    Raises:
        MailboxError: the mailbox cannot be opened or updated.
    """
    settings = bounce_settings(config)
    bounce_address = config.delivery.bounce_address
    index: VerpIndex | None = None

    def verp(verp_id: str) -> str | None:
        nonlocal index
        if index is None:
            # Read, never create, the secret: with none yet, no VERP id was ever handed out.
            secret = existing_unsubscribe_secret(config, db)
            if not secret:
                return None
            index = VerpIndex(secret, (s.email for s in db.subscribers.iter_subscribers()))
        return index.address(verp_id)

    mailbox = open_source(source, settings, maildir=maildir, dry_run=dry_run)
    outcomes: list[BounceOutcome] = []
    try:
        for item in mailbox.messages():
            classified = classify_message(item.raw)
            email, issue = (None, None)
            if classified.kind in ("hard", "soft", "complaint"):
                email, issue = match(db, classified, bounce_address=bounce_address, verp=verp)
            changed: str | None = None
            if email is not None and not dry_run and classified.kind in ("hard", "soft", "complaint"):
                failure = next(
                    (f for f in classified.failures if f.address.lower() == email.lower()),
                    classified.failures[0] if classified.failures else None,
                )
                kind = failure.kind if failure and failure.kind in ("hard", "soft") else classified.kind
                changed = apply_event(
                    db,
                    kind="complaint"
                    if classified.kind == "complaint"
                    else ("hard" if kind == "hard" else "soft"),
                    email=email,
                    issue=issue,
                    status=failure.status if failure else classified.status,
                    diagnostic=failure.diagnostic if failure else classified.diagnostic,
                    source=f"{source}:{item.source}",
                    soft_limit=settings.soft_limit,
                    at=now(),
                )
            outcomes.append(
                BounceOutcome(
                    source=item.source,
                    kind=classified.kind,
                    recipients=classified.recipients,
                    status=classified.status,
                    diagnostic=classified.diagnostic,
                    subscriber=email,
                    issue=issue,
                    changed_to=changed,
                )
            )
            mailbox.done(item)
    finally:
        mailbox.close()
    return BounceReport(source=source, dry_run=dry_run, outcomes=tuple(outcomes))


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """The answer to one SNS request: an HTTP status and a short text, and what it changed."""

    status: int
    text: str
    changed: tuple[str, ...] = ()


def handle_sns(
    config: Config,
    db: Store,
    body: bytes,
    *,
    now: datetime,
    certs: ses.CertificateCache,
    confirm: Callable[[str], bytes],
) -> HookOutcome:
    """Act on one SNS request for `POST /hooks/ses`: a verified SES bounce or complaint notification
    takes the same path as a bounce from the mailbox; a verified subscription confirmation is
    confirmed. A forged, malformed, too old or replayed message changes nothing."""
    settings = bounce_settings(config)
    try:
        message = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return HookOutcome(400, "not an SNS message (not JSON)")
    if not isinstance(message, dict):
        return HookOutcome(400, "not an SNS message")
    try:
        ses.verify(message, cert_hosts=settings.sns_cert_hosts, certs=certs, now=now)
    except ses.SnsError as e:
        log.warning("POST /hooks/ses refused: %s", e)
        return HookOutcome(403, f"refused: {e}")
    topic = str(message.get("TopicArn", ""))
    if settings.sns_topic_arns and topic not in settings.sns_topic_arns:
        log.warning("POST /hooks/ses refused: topic %s is not in [bounces] sns_topic_arns", topic)
        return HookOutcome(403, "refused: topic not allowed")
    message_id = str(message.get("MessageId", ""))
    if db.bounces.hook_message_seen(message_id):
        return HookOutcome(200, "already processed")
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        url = str(message.get("SubscribeURL", ""))
        if not ses.host_allowed(url, settings.sns_cert_hosts):
            return HookOutcome(403, "refused: SubscribeURL is not on a host in [bounces] sns_cert_hosts")
        try:
            confirm(url)
        except ses.SnsError as e:
            log.warning("SNS subscription to %s not confirmed: %s", topic, e)
            return HookOutcome(502, f"confirmation failed: {e}")
        db.bounces.remember_hook_message(message_id, at=now)
        log.info("confirmed the SNS subscription to %s", topic)
        return HookOutcome(200, "subscription confirmed")
    if kind != "Notification":
        db.bounces.remember_hook_message(message_id, at=now)
        return HookOutcome(200, "ignored")
    try:
        events = ses.ses_events(message)
    except ses.SnsError as e:
        return HookOutcome(400, f"not an SES notification: {e}")
    changed = _apply_ses_events(
        db, events, source=f"ses:{message_id}", soft_limit=settings.soft_limit, now=now
    )
    db.bounces.remember_hook_message(message_id, at=now)
    return HookOutcome(200, f"{len(events)} recipient(s) processed", changed)


def _apply_ses_events(
    db: Store, events: tuple[ses.SesEvent, ...], *, source: str, soft_limit: int, now: datetime
) -> tuple[str, ...]:
    changed: list[str] = []
    for event in events:
        known = db.subscribers.get_subscriber(event.email)
        if known is None:
            continue
        issue = None
        if event.message_id:
            sent = db.bounces.sent_message(event.message_id)
            issue = sent[0] if sent and sent[1].lower() == known.email.lower() else None
        issue = issue or db.bounces.latest_issue_sent_to(known.email)
        became = apply_event(
            db,
            kind="complaint" if event.kind == "complaint" else ("hard" if event.kind == "hard" else "soft"),
            email=known.email,
            issue=issue,
            status=event.status,
            diagnostic=event.diagnostic,
            source=source,
            soft_limit=soft_limit,
            at=now,
        )
        if became:
            changed.append(f"{known.email}: {became}")
    return tuple(changed)
