"""An issue made ready to send: its built files checked, the message template, DKIM signer and secret.

Also picks the transport `[delivery] transport` names, and keeps a send claim fresh while sending.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from digest.config import Config
from digest.deliver import reader_tokens, tokens
from digest.deliver.bounces.verp import verp_address
from digest.deliver.headers import HeaderValueError
from digest.deliver.message import MessageTemplate, Recipient, Sender
from digest.deliver.outbox import OutboxTransport
from digest.deliver.signing import DkimSigner
from digest.deliver.smtp import SmtpTransport
from digest.deliver.tokens import unsubscribe_secret
from digest.deliver.transport import Job, Transport
from digest.errors import ConfigError, DeliveryError, DigestError, UsageError
from digest.models import unsubscribe_url
from digest.state import ledger
from digest.state.issues import IssueRecord
from digest.state.store import Store
from digest.state.topics import VariantRecord

log = logging.getLogger(__name__)
TEST_PREFIX = "[TEST] "


@dataclass(frozen=True, slots=True)
class PreparedIssue:
    """Everything needed to build any recipient's message of one issue."""

    record: IssueRecord
    template: MessageTemplate
    signer: DkimSigner | None
    secret: str
    bounce_address: str | None = None  # [delivery] bounce_address: the envelope sender
    verp: bool = False  # [delivery] verp: bounces+<signed id>@domain per recipient


def choose_issue(
    db: Store, issue_id: str | None, *, test: bool = False, why: str | None = None
) -> tuple[IssueRecord, str]:
    """The issue to send and why it was chosen (in words for the summary and the log).

    Without an id: an issue whose send was interrupted comes first (its remaining recipients are
    waiting for it), else the latest built issue (a newer build supersedes older unsent ones: its
    window starts where the last sent issue ended, so it holds their entries). A test send (`test`)
    takes the same issue, but resumes nothing and reaches no subscriber, and says so. `why` is the
    caller's reason for an `issue_id` it chose itself (default: "chosen with --issue").

    Raises:
        UsageError: no such issue, or none built yet.
    """
    if issue_id:
        record = db.issues.get_issue(issue_id)
        if record is None:
            raise UsageError(f"no built issue {issue_id!r}", hint="digest status lists the built issues")
        return record, why or "chosen with --issue"
    interrupted = db.issues.interrupted_issue()
    if interrupted is not None:
        if test:
            return (
                interrupted,
                "the issue digest send sends next; its interrupted send is not resumed by a test",
            )
        latest = db.issues.latest_issue()
        newer = f"; issue {latest.id} is sent after it" if latest and latest.id != interrupted.id else ""
        return interrupted, f"its send was interrupted and is resumed first{newer}"
    record = db.issues.latest_issue()
    if record is None:
        raise UsageError("no issue has been built yet", hint="run digest build first")
    if record.sent_at is not None:
        if test:
            return record, "the latest built issue, sent already"
        return record, "the latest built issue; it was sent already, so only new subscribers get it"
    return record, "the latest built issue"


def issue_files(record: IssueRecord, variant: VariantRecord | None = None) -> tuple[str, str]:
    """The issue's email.html and email.txt (of a topic variant, when given), checked against the hashes
    recorded at build time.

    Raises:
        DeliveryError: a file is missing or changed since the build.
    """
    candidates = (variant.folder,) if variant else (record.out_dir / record.id, record.out_dir)
    folder = next((f for f in candidates if (f / "email.html").is_file()), None)
    if folder is None:
        raise DeliveryError(
            f"issue {record.id}: email.html is not in {candidates[0] if variant else record.out_dir}",
            hint=f"run digest build again to rebuild issue {record.id}",
        )
    hashes = (
        (variant.html_sha256, variant.text_sha256) if variant else (record.html_sha256, record.text_sha256)
    )
    bodies = []
    for name, expected in zip(("email.html", "email.txt"), hashes, strict=True):
        path = folder / name
        try:
            data = path.read_bytes()
        except OSError as e:
            raise DeliveryError(f"{path}: cannot read: {e.strerror}", hint="run digest build again") from e
        if hashlib.sha256(data).hexdigest() != expected:
            raise DeliveryError(
                f"{path} has changed since issue {record.id} was built",
                hint="edit the draft and run digest build again rather than editing the built files",
            )
        bodies.append(data.decode("utf-8"))
    return bodies[0], bodies[1]


def message_sender(config: Config) -> Sender:
    """The fixed identity of every message of the list, from `[delivery]` and `[digest] title`."""
    d = config.delivery
    return Sender(
        from_address=d.from_address,
        from_name=d.from_name,
        reply_to=d.reply_to,
        list_id=d.list_id,
        list_name=config.digest.title,
        unsubscribe_mailto=d.unsubscribe_mailto,
        fallback_name=d.fallback_name,
    )


def prepare_issue(
    config: Config, db: Store, record: IssueRecord, *, test: bool, variant: VariantRecord | None = None
) -> PreparedIssue:
    """The issue (or one of its topic variants) ready to personalise: files checked, template, signer.

    Raises:
        DeliveryError: the files are missing or changed, or have no unsubscribe link placeholder.
        ConfigError: a `[delivery]` setting cannot go in a header.
    """
    html, text = issue_files(record, variant)
    d = config.delivery
    sender = message_sender(config)
    try:
        template = MessageTemplate(
            html_body=html,
            text_body=text,
            subject=(TEST_PREFIX if test else "") + record.subject,
            sender=sender,
            issue_id=record.id,
        )
    except HeaderValueError as e:
        raise ConfigError(str(e), hint="fix the [delivery] setting named above") from e
    if not template.has_unsubscribe_link:
        raise DeliveryError(
            f"issue {record.id}: email.html or email.txt has no unsubscribe link placeholder",
            hint="the templates must contain the unsubscribe URL placeholder; run digest build again",
        )
    signer = None
    if d.dkim_key is not None and d.dkim_selector:
        signer = DkimSigner(d.dkim_key, d.dkim_selector, d.dkim_domain or sender.domain)
    secret = unsubscribe_secret(config, db)
    return PreparedIssue(record, template, signer, secret, d.bounce_address, d.verp)


def make_transport(config: Config, label: str) -> Transport:
    if config.delivery.transport == "outbox":
        return OutboxTransport(config.delivery.outbox, label=label)
    password = None
    if config.smtp.username:
        variable = config.smtp.password_env or ""
        password = os.environ.get(variable)
        if not password:
            raise ConfigError(
                f"smtp.password_env: the environment variable {variable} is not set",
                hint=f"export {variable}=... with the SMTP password of {config.smtp.username!r}",
            )
    envelope_from = config.delivery.bounce_address or config.delivery.from_address
    return SmtpTransport(config.smtp, envelope_from=envelope_from, password=password)


def make_job(
    p: PreparedIssue,
    base_url: str,
    recipient: Recipient,
    at: datetime,
    *,
    test: bool = False,
    message_id: str | None = None,
) -> Job:
    """The finished message for one recipient. Its Message-ID is `message_id` (that of a copy in doubt),
    else derived from the issue and the address (the same for a copy sent again after a crash), except
    in a test send, which gets a fresh one (a test copy must not hide the real one in the mailbox)."""
    token_id = recipient.token_id or tokens.NO_SUBSCRIPTION
    url = unsubscribe_url(base_url, tokens.unsubscribe_token(p.secret, token_id))
    if message_id is None and test:
        message_id = p.template.new_message_id()
    elif message_id is None:
        key = hmac.new(p.secret.encode(), b"digest message-id", hashlib.sha256).digest()
        message_id = p.template.message_id_for(key, recipient.email)
    preferences = None
    if recipient.token_id:
        preferences = reader_tokens.preferences_url(
            base_url, reader_tokens.preferences_token(p.secret, recipient.token_id)
        )
    message = p.template.message(
        recipient, unsubscribe_url=url, message_id=message_id, date=at, preferences_url=preferences
    )
    if p.signer is not None:
        message = p.signer.sign(message)
    envelope = p.bounce_address
    if envelope and p.verp:
        envelope = verp_address(envelope, p.secret, recipient.email)
    return Job(recipient=recipient, message_id=message_id, message=message, envelope_from=envelope)


class Heartbeat:
    """Keeps the send claim fresh from a thread with its own handle on the state; `lost` if taken over.

    `refresh(store, at)` replaces what is kept fresh (a sender sharing a send refreshes its batches
    too); it returns False when what it refreshes was taken over.

    If the claim cannot be refreshed for half the time after which others may take it over (the state
    file is locked or unwritable), `lost` is set too: better to stop than to risk a second sender.
    """

    def __init__(
        self,
        db: Store,
        issue_id: str,
        holder: str,
        clock: Callable[[], datetime],
        *,
        every: timedelta = ledger.HEARTBEAT_EVERY,
        refresh: Callable[[Store, datetime], bool] | None = None,
    ) -> None:
        self.lost = False
        self._refresh = refresh or self._refresh_claim
        self._issue_id, self._holder, self._clock = issue_id, holder, clock
        self._every = every.total_seconds()
        self._stop = threading.Event()
        self._store = db
        self._thread = threading.Thread(target=self._run, name="send-heartbeat", daemon=True)

    def _refresh_claim(self, db: Store, at: datetime) -> bool:
        return db.ledger.refresh_claim(self._issue_id, self._holder, at=at)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        give_up = ledger.CLAIM_STALE_AFTER.total_seconds() / 2
        last_ok = time.monotonic()
        db: Store | None = None
        try:
            while not self._stop.wait(self._every):
                try:
                    db = db or self._store.another()
                    ours = self._refresh(db, self._clock())
                except DigestError as e:
                    log.warning("could not refresh the claim on issue %s: %s", self._issue_id, e)
                    if time.monotonic() - last_ok > give_up:
                        self.lost = True
                        return
                    continue
                if not ours:
                    log.error("the claim on issue %s was taken over by another process", self._issue_id)
                    self.lost = True
                    return
                last_ok = time.monotonic()
        finally:
            if db is not None:
                db.close()
