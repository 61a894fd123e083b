"""Send a built issue exactly once: claim it, personalise, hand to the transport, record each acceptance.

`send_issue` is used by `digest send` and by the scheduled run. A real send claims the issue (so a
second process cannot send it too), sends to every active subscriber without a `sent` ledger row, and
writes that row as each message is accepted; an interrupted send resumes where it stopped. Once every
active subscriber has it (or was refused permanently), the issue is marked sent, which marks its
entries sent, and it is published to the web archive when that part is installed.

A permanent refusal (5xx) is final for that recipient in that issue (a `refused` row): later sends do
not try again unless asked to (`retry_failed`). Each recipient is recorded `in_doubt` just before its
message is handed over (the transport calls back once the server has accepted the recipient, before
DATA), and the reply then replaces that row; so a sender killed at any point leaves every message the
server may have without a reply recorded as `in_doubt` (at most `pool_size` of them), and a message
whose reply never came stays so. Those are not retried in the same run, and are sent again by the next
send with their same Message-ID (each copy's Message-ID is derived from the issue and the address).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email

from digest.config import Config
from digest.deliver import Delivery, HandingOver, Job, Recipient, Transport
from digest.deliver.headers import HeaderValueError
from digest.deliver.issue import (
    TEST_PREFIX,
    Heartbeat,
    PreparedIssue,
    choose_issue,
    make_job,
    make_transport,
    prepare_issue,
)
from digest.errors import ApprovalError, DeliveryError, StateError, UsageError
from digest.pipeline import batched
from digest.pipeline.desk import record_audit
from digest.pipeline.topics import VariantRouter
from digest.state import ledger
from digest.state.store import Store

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
HANDED_OVER = "handed over; no reply recorded yet (if the send stopped here, the message may have arrived)"


@dataclass(frozen=True, slots=True)
class Failure:
    """A recipient the issue did not reach in this run, and why."""

    email: str
    reason: str
    permanent: bool
    bounced: bool = False


@dataclass(frozen=True, slots=True)
class SendReport:
    """What one `send_issue` call did. `ok` is False when anything failed or the server was unreachable."""

    issue_id: str
    subject: str
    transport: str
    dry_run: bool = False
    test: bool = False
    planned: int = 0
    sent: int = 0
    already_sent: int = 0
    failed: tuple[Failure, ...] = ()
    in_doubt: tuple[Failure, ...] = ()  # handed over, reply never came: may have been delivered
    in_doubt_earlier: int = 0  # in doubt from an earlier send when this one started: sent again now
    refused_earlier: int = 0  # refused permanently by an earlier send and not tried again
    recipients: tuple[str, ...] = ()
    error: str | None = None
    hint: str | None = None
    completed: bool = False
    took_over_from: str | None = None
    notes: tuple[str, ...] = field(default=())
    chosen_because: str = ""  # why this issue (the latest built, an interrupted send resumed, --issue)
    # Readers whose topic variant has no entries this issue: not sent, not an error (a --join worker
    # counts those of the batches it took).
    no_entries: int = 0
    # Copies sent of each topic variant ("" the whole issue); a --join worker's own copies.
    variants: tuple[tuple[str, int], ...] = ()
    joined: bool = False  # a `digest send --join` worker
    idle: bool = False  # --join found no send in progress: nothing was done
    batches: int = 0  # batches this sender claimed (state in PostgreSQL)

    @property
    def not_sent(self) -> int:
        """Recipients planned for this run that have no copy yet (failed or never tried)."""
        return self.planned - self.sent

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and not self.failed
            and not self.in_doubt
            and (self.dry_run or self.not_sent == 0)
        )


def send_issue(
    config: Config,
    db: Store,
    *,
    now: datetime,
    issue_id: str | None = None,
    to: Sequence[str] = (),
    dry_run: bool = False,
    on_progress: Progress | None = None,
    clock: Callable[[], datetime] | None = None,
    should_stop: Callable[[], bool] | None = None,
    why: str | None = None,
    retry_failed: bool = False,
) -> SendReport:
    """Send an issue (default: the latest built) to every active subscriber who does not have it yet.

    `to` makes it a test send to those addresses only ("[TEST] " subject, no ledger, nothing marked
    sent); `dry_run` only reports who would get it. `clock` gives the time of each message (default:
    `now` moved on by the time elapsed). Failures of single messages and an unreachable server are in
    the report (`ok` False), not raised. Once `should_stop()` is true no new message is started: those in
    flight are finished and recorded, and the rest is left for the next send (the report is not
    `completed`). `why` says why the caller chose `issue_id` (for the log and the report; default
    "chosen with --issue"). `retry_failed` also sends to recipients an earlier send of this issue had
    refused permanently (5xx), who are otherwise left out.

    Raises:
        UsageError: no built issue, an unknown issue id, or a bad `to` address.
        DeliveryError: the issue's files are missing or changed since the build, or nobody to send to.
        ConfigError: a delivery setting cannot be used (an address, the SMTP password variable).
        BusyError: another process is sending this issue.
        ApprovalError: `[approval] required` and the issue (as built now) is not approved.
    """
    clock = clock or _elapsed_clock(now)
    record, why = choose_issue(db, issue_id, test=bool(to), why=why)
    built_for = db.issues.issue_edition(record.id) or None
    if config.editions and built_for != config.edition_id:
        raise UsageError(
            f"issue {record.id} was built for edition {built_for or '(none)'}, not {config.edition_id}",
            hint=f"send it with --edition {built_for}" if built_for else "build the edition first",
        )
    log.info("issue %s: %s", record.id, why)
    prepared = prepare_issue(config, db, record, test=bool(to))
    if to:
        recipients = _test_recipients(db, to)
        report = _test_send(
            config,
            db,
            prepared,
            recipients=recipients,
            dry_run=dry_run,
            on_progress=on_progress,
            clock=clock,
            should_stop=should_stop,
        )
        return replace(report, chosen_because=why)
    if dry_run:
        pending = tuple(
            email for email, _, _ in db.ledger.pending_recipients(record.id, retry_refused=retry_failed)
        )
        return SendReport(
            issue_id=record.id,
            subject=record.subject,
            transport=config.delivery.transport,
            dry_run=True,
            planned=len(pending),
            already_sent=db.ledger.sent_count(record.id),
            refused_earlier=_refused_earlier(db, record.id, retry_failed),
            recipients=pending,
            chosen_because=why,
        )
    if config.approval.required and not db.approvals.is_approved(
        record.id, record.html_sha256, record.text_sha256
    ):
        raise ApprovalError(
            f"issue {record.id} has not been approved since it was last built",
            hint="approve it in digest preview ([approval] required = true); --to sends a test meanwhile",
        )
    report = _real_send(
        config, db, prepared, on_progress, clock, should_stop=should_stop, retry_failed=retry_failed
    )
    if report.sent or report.failed:
        record_audit(
            db,
            at=clock(),
            issue_id=record.id,
            actor="digest send",
            action="send",
            detail=f"sent to {report.sent} of {report.planned} recipients through {report.transport}"
            + (f", {len(report.failed)} failed" if report.failed else ""),
        )
    return replace(report, chosen_because=why)


def _elapsed_clock(now: datetime) -> Callable[[], datetime]:
    start = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - start)


def _test_recipients(db: Store, to: Sequence[str]) -> tuple[Recipient, ...]:
    out = []
    for raw in to:
        try:
            email = validate_email(raw.strip(), check_deliverability=False, allow_smtputf8=False).ascii_email
        except EmailNotValidError as e:
            raise UsageError(f"--to: {raw!r} is not a valid address: {e}") from e
        known = db.subscribers.get_subscriber(email or "")
        out.append(Recipient(email or raw, known.name if known else None, known.token_id if known else None))
    return tuple(out)


def _test_send(
    config: Config,
    db: Store,
    p: PreparedIssue,
    *,
    recipients: tuple[Recipient, ...],
    dry_run: bool,
    on_progress: Progress | None,
    clock: Callable[[], datetime],
    should_stop: Callable[[], bool] | None = None,
) -> SendReport:
    report = SendReport(
        issue_id=p.record.id,
        subject=TEST_PREFIX + p.record.subject,
        transport=config.delivery.transport,
        test=True,
        dry_run=dry_run,
        planned=len(recipients),
        recipients=tuple(r.email for r in recipients),
    )
    if dry_run:
        return report
    sent, failed, error, hint = 0, [], None, None
    transport = make_transport(config, f"test-{p.record.id}")
    if on_progress:
        on_progress(0, len(recipients))
    try:
        jobs = (make_job(p, config.web.base_url, r, clock(), test=True) for r in recipients)
        for done, delivery in enumerate(transport.send(jobs, should_stop=should_stop), start=1):
            if delivery.accepted:
                sent += 1
            else:
                failed.append(Failure(delivery.job.recipient.email, delivery.detail, delivery.permanent))
            if on_progress:
                on_progress(done, len(recipients))
    except DeliveryError as e:
        error, hint = e.message, e.hint
    return replace(report, sent=sent, failed=tuple(failed), error=error, hint=hint)


def _real_send(
    config: Config,
    db: Store,
    p: PreparedIssue,
    on_progress: Progress | None,
    clock: Callable[[], datetime],
    *,
    should_stop: Callable[[], bool] | None = None,
    retry_failed: bool = False,
) -> SendReport:
    issue_id = p.record.id
    transport = make_transport(config, issue_id)  # a missing password fails before anything is claimed
    router = VariantRouter.make(config, db, p)
    holder = ledger.new_holder()
    stale = db.ledger.claim_send(issue_id, holder, at=clock())
    if stale is not None:
        log.warning("took over the send of issue %s from %s, which stopped", issue_id, stale.holder)
    try:
        already = db.ledger.sent_count(issue_id)
        planned = db.ledger.pending_count(issue_id, retry_refused=retry_failed)
        without = _no_entries(db, issue_id, router, retry_failed) if router.empty else 0
        planned -= without
        refused_earlier = _refused_earlier(db, issue_id, retry_failed)
        report = SendReport(
            issue_id=issue_id,
            subject=p.record.subject,
            transport=config.delivery.transport,
            planned=planned,
            already_sent=already,
            refused_earlier=refused_earlier,
            in_doubt_earlier=db.ledger.status_counts(issue_id)["in_doubt"],
            took_over_from=stale.holder if stale else None,
            no_entries=without,
        )
        if planned == 0 and already == 0 and refused_earlier == 0 and without == 0:
            raise DeliveryError(
                f"issue {issue_id}: there are no active subscribers to send it to",
                hint="add them with digest subscribers import FILE.csv or digest subscribers add EMAIL",
            )
        if on_progress:
            on_progress(0, planned)
        if planned and db.dialect == "postgresql":
            # Cut into batches that `digest send --join` workers on any host can share; each sender routes
            # each recipient of its batches to their topic variant as a single sender does.
            db.batches.open_round(issue_id, size=config.delivery.batch_size, retry_refused=retry_failed)
            report = _deliver_batched(
                config,
                db,
                router,
                transport=transport,
                report=report,
                holder=holder,
                on_progress=on_progress,
                clock=clock,
                should_stop=should_stop,
                retry_failed=retry_failed,
                claim=True,
            )
        elif planned:
            report = _deliver_pending(
                config,
                db,
                router,
                transport=transport,
                report=report,
                holder=holder,
                on_progress=on_progress,
                clock=clock,
                should_stop=should_stop,
                retry_failed=retry_failed,
            )
        report = _note_unbuilt(report, router)
        report = replace(report, variants=tuple(sorted(db.ledger.sent_variants(issue_id).items())))
        return _complete(config, db, p, report, clock, router=router)
    finally:
        db.ledger.release_claim(issue_id, holder)


def _note_unbuilt(report: SendReport, router: VariantRouter) -> SendReport:
    """The report with a note on the readers who chose topics after the build (sent the whole issue)."""
    if not router.unbuilt:
        return report
    note = f"{router.unbuilt} reader(s) chose topics after the build: they got the whole issue"
    return replace(report, notes=(*report.notes, note))


def _complete(
    config: Config,
    db: Store,
    p: PreparedIssue,
    report: SendReport,
    clock: Callable[[], datetime],
    *,
    router: VariantRouter | None = None,
) -> SendReport:
    """Mark the issue sent (and publish it) when every active subscriber has it."""
    issue_id = p.record.id
    if report.error is None and _finished(db, issue_id, report, router):
        current = db.issues.get_issue(issue_id)
        first = current is not None and current.sent_at is None
        db.issues.mark_issue_sent(issue_id, clock())
        # Published when first marked sent; a later run for late subscribers does not publish again.
        notes = _publish(config, db, issue_id) if first else ()
        report = replace(report, completed=True, notes=report.notes + notes)
    return report


def join_send(
    config: Config,
    db: Store,
    *,
    now: datetime,
    issue_id: str | None = None,
    on_progress: Progress | None = None,
    clock: Callable[[], datetime] | None = None,
    should_stop: Callable[[], bool] | None = None,
    retry_failed: bool = False,
) -> SendReport:
    """Add this process as a sender to the send in progress (`digest send --join`, state in PostgreSQL).

    Claims batches of recipients until every batch is done (taking over those of senders that died),
    sending each recipient their topic variant as the first sender would (readers of an empty variant
    get nothing), then marks the issue sent when every active subscriber has it. With no send in
    progress (no open batches: the first `digest send` makes them) the report is `idle` and nothing is
    sent.

    Raises:
        StateError: the state is not in PostgreSQL.
        UsageError: `issue_id` names no built issue.
        DeliveryError, ConfigError, ApprovalError: as `send_issue`.
    """
    if db.dialect != "postgresql":
        raise StateError(
            f"digest send --join needs the state in PostgreSQL, and {db.name} is a SQLite file",
            hint='set [state] url = "postgresql://..." on every host (digest state migrate --to URL copies'
            " this state there), or run a single digest send without --join",
        )
    clock = clock or _elapsed_clock(now)
    chosen = issue_id or db.batches.issue_in_progress()
    if chosen is None or db.batches.open_count(chosen) == 0:
        what = f"issue {issue_id} is" if issue_id else "no issue is"
        return SendReport(
            issue_id=issue_id or "",
            subject="",
            transport=config.delivery.transport,
            joined=True,
            idle=True,
            notes=(
                f"Nothing to join: {what} being sent (the first digest send starts a send; --join adds"
                " workers to it while it runs).",
            ),
        )
    record, why = choose_issue(db, chosen, why="the issue being sent")
    p = prepare_issue(config, db, record, test=False)
    if config.approval.required and not db.approvals.is_approved(
        record.id, record.html_sha256, record.text_sha256
    ):
        raise ApprovalError(
            f"issue {record.id} has not been approved since it was last built",
            hint="approve it in digest preview ([approval] required = true)",
        )
    transport = make_transport(config, record.id)
    # Built as the first sender built it (the same issue, variants and choices): each recipient of the
    # batches this process claims gets the same copy from it as from any other sender.
    router = VariantRouter.make(config, db, p)
    planned = db.ledger.pending_count(record.id, retry_refused=retry_failed)
    report = SendReport(
        issue_id=record.id,
        subject=record.subject,
        transport=config.delivery.transport,
        planned=planned,
        already_sent=db.ledger.sent_count(record.id),
        refused_earlier=_refused_earlier(db, record.id, retry_failed),
        chosen_because=why,
        joined=True,
    )
    if on_progress:
        on_progress(0, planned)
    report = _deliver_batched(
        config,
        db,
        router,
        transport=transport,
        report=report,
        holder=ledger.new_holder(),
        on_progress=on_progress,
        clock=clock,
        should_stop=should_stop,
        retry_failed=retry_failed,
        claim=False,
    )
    # A joiner reports the readers of an empty variant in the batches it took (the first sender, all).
    report = _note_unbuilt(replace(report, no_entries=router.no_entries), router)
    if db.batches.open_count(record.id) == 0:
        report = _complete(config, db, p, report, clock, router=router)
    return report


def _refused_earlier(db: Store, issue_id: str, retry_failed: bool) -> int:
    """Active subscribers left out because an earlier send of the issue was refused for them."""
    if retry_failed:
        return 0
    return db.ledger.refused_count(issue_id)


def _no_entries(db: Store, issue_id: str, router: VariantRouter, retry_failed: bool) -> int:
    """Pending recipients whose topic variant has no entries: they get nothing this issue."""
    pending = db.ledger.pending_recipients(issue_id, retry_refused=retry_failed)
    return sum(1 for email, _, _ in pending if router.is_empty_for(email))


def _finished(db: Store, issue_id: str, report: SendReport, router: VariantRouter | None = None) -> bool:
    """Every active subscriber has the issue, except those refused permanently (now or before) and those
    whose topic variant has no entries."""
    done_some = db.ledger.sent_count(issue_id) > 0 or report.no_entries > 0
    refused = {f.email.lower() for f in report.failed if f.permanent}
    # A count first: a sender stopping early in a send to 1,000,000 would otherwise read every address.
    pending = db.ledger.pending_count(issue_id)
    if pending == 0:
        return done_some
    if (router is None or not router.empty) and pending > len(refused):
        return False
    still = {email.lower() for email, _, _ in db.ledger.pending_recipients(issue_id)}
    if router is not None:
        still = {email for email in still if not router.is_empty_for(email)}
    return done_some and still <= refused


def _deliver_pending(
    config: Config,
    db: Store,
    router: VariantRouter,
    *,
    transport: Transport,
    report: SendReport,
    holder: str,
    on_progress: Progress | None,
    clock: Callable[[], datetime],
    should_stop: Callable[[], bool] | None = None,
    retry_failed: bool = False,
) -> SendReport:
    issue_id = router.whole.record.id
    failures: list[Failure] = []
    in_doubt: list[Failure] = []
    sent = done = 0
    error: DeliveryError | None = None

    def jobs(heartbeat: Heartbeat) -> Iterator[Job]:
        nonlocal done
        started = False
        for email, name, token_id in db.ledger.pending_recipients(issue_id, retry_refused=retry_failed):
            if heartbeat.lost or (should_stop is not None and should_stop()):
                return
            # Checked just before each hand-over, not only at the heartbeat: a sender whose claim was
            # taken over stops at once, and a recipient served by another sender since our page of
            # pending ones was read is skipped.
            claim = db.ledger.get_claim(issue_id)
            if claim is None or claim.holder != holder:
                heartbeat.lost = True
                return
            served, earlier = _served(db, issue_id, email, retry_failed=retry_failed)
            # Settled already, or their topic variant has no entries this issue: nothing to send.
            if served or (copy := router.route(email)[1]) is None:
                continue
            recipient = Recipient(email, name, token_id)
            try:
                job = make_job(copy, config.web.base_url, recipient, clock(), message_id=earlier)
            except HeaderValueError as e:
                db.ledger.record_failed(issue_id, email, detail=str(e), at=clock(), permanent=True)
                failures.append(Failure(email, str(e), permanent=True))
                done += 1
                continue
            if not started:  # from the first message handed over, the issue is frozen (no rebuild)
                db.issues.mark_send_started(issue_id, clock())
                started = True
            yield job

    with Heartbeat(db, issue_id, holder, clock) as heartbeat:
        # The transport starts no other message on a connection until the Delivery it handed back is
        # recorded here (it resumes when the next one is asked for); closing it stops every worker, so a
        # failed ledger write leaves at most one unrecorded message per connection, and that one has
        # its `in_doubt` row (written by `handing_over` before it left).
        deliveries = transport.send(
            jobs(heartbeat),
            should_stop=should_stop,
            handing_over=_record_handing_over(db, issue_id, clock),
        )
        try:
            for delivery in deliveries:
                _record(
                    db,
                    issue_id,
                    delivery,
                    clock(),
                    variant=router.handed_variant(delivery.job.recipient.email),
                )
                email = delivery.job.recipient.email
                if delivery.accepted:
                    sent += 1
                elif delivery.in_doubt:
                    in_doubt.append(Failure(email, delivery.detail, permanent=False))
                else:
                    failures.append(Failure(email, delivery.detail, delivery.permanent, delivery.bounced))
                done += 1
                if on_progress:
                    on_progress(done, report.planned)
        except DeliveryError as e:
            error = e
        finally:
            close = getattr(deliveries, "close", None)
            if close is not None:
                close()
        if heartbeat.lost and error is None:
            error = DeliveryError(
                f"issue {issue_id}: another process took over this send (our claim went stale)",
                hint="check digest status; the other process sends the rest",
            )
    return replace(
        report,
        sent=sent,
        failed=tuple(failures),
        in_doubt=tuple(in_doubt),
        error=error.message if error else None,
        hint=error.hint if error else None,
    )


def _deliver_batched(
    config: Config,
    db: Store,
    router: VariantRouter,
    *,
    transport: Transport,
    report: SendReport,
    holder: str,
    on_progress: Progress | None,
    clock: Callable[[], datetime],
    should_stop: Callable[[], bool] | None,
    retry_failed: bool,
    claim: bool,
) -> SendReport:
    """This sender's share of a send cut into batches (see `digest.pipeline.batched`): each recipient
    gets the copy `router` routes them to, and the ledger row records its variant."""
    issue_id = router.whole.record.id
    failures: list[Failure] = []
    in_doubt: list[Failure] = []
    counts = {"sent": 0, "done": 0, "started": 0}
    copies: dict[str, int] = {}  # variant key ("" the whole issue) -> copies this sender sent

    def job_for(recipient: Recipient, earlier: str | None) -> Job | None:
        copy = router.route(recipient.email)[1]
        if copy is None:  # their topic variant has no entries this issue: nothing to send, not an error
            return None
        try:
            job = make_job(copy, config.web.base_url, recipient, clock(), message_id=earlier)
        except HeaderValueError as e:
            router.handed_variant(recipient.email)  # not handed over: forget its route
            db.ledger.record_failed(issue_id, recipient.email, detail=str(e), at=clock(), permanent=True)
            failures.append(Failure(recipient.email, str(e), permanent=True))
            counts["done"] += 1
            return None
        if not counts["started"]:  # from the first message handed over, the issue is frozen (no rebuild)
            db.issues.mark_send_started(issue_id, clock())
            counts["started"] = 1
        return job

    def record(delivery: Delivery) -> None:
        email = delivery.job.recipient.email
        variant = router.handed_variant(email)
        _record(db, issue_id, delivery, clock(), variant=variant)
        if delivery.accepted:
            counts["sent"] += 1
            copies[variant or ""] = copies.get(variant or "", 0) + 1
        elif delivery.in_doubt:
            in_doubt.append(Failure(email, delivery.detail, permanent=False))
        else:
            failures.append(Failure(email, delivery.detail, delivery.permanent, delivery.bounced))
        counts["done"] += 1
        if on_progress:
            on_progress(counts["done"], report.planned)

    def refresh_claim(store: Store, at: datetime) -> bool:
        return store.ledger.refresh_claim(issue_id, holder, at=at)

    run = batched.deliver_batches(
        db,
        issue_id,
        transport=transport,
        holder=holder,
        make_job=job_for,
        record=record,
        clock=clock,
        should_stop=should_stop,
        retry_failed=retry_failed,
        also_refresh=refresh_claim if claim else None,
        handing_over=_record_handing_over(db, issue_id, clock),
    )
    error = run.error
    if run.lost and error is None:
        error = DeliveryError(
            f"issue {issue_id}: another process took over this send (our claim went stale)",
            hint="check digest status; the other process sends the rest",
        )
    took_over = ", ".join(dict.fromkeys(run.took_over_from)) or report.took_over_from
    return replace(
        report,
        # The senders share the pending recipients: this one's part is what it handed over.
        planned=counts["sent"] + len(failures) + len(in_doubt),
        sent=counts["sent"],
        failed=tuple(failures),
        in_doubt=tuple(in_doubt),
        error=error.message if error else None,
        hint=error.hint if error else None,
        took_over_from=took_over,
        batches=run.batches,
        variants=tuple(sorted(copies.items())),
    )


def _record_handing_over(db: Store, issue_id: str, clock: Callable[[], datetime]) -> HandingOver:
    """The transport's `handing_over`: the recipient's `in_doubt` row, committed before the message
    leaves (a StateError stops the transport before that message, and every other, is handed over)."""

    def handing_over(job: Job) -> None:
        db.ledger.record_in_doubt(
            issue_id, job.recipient.email, message_id=job.message_id, detail=HANDED_OVER, at=clock()
        )

    return handing_over


def _served(db: Store, issue_id: str, email: str, *, retry_failed: bool) -> tuple[bool, str | None]:
    """Whether `email` is settled for the issue now (sent, or refused unless retrying those), and the
    Message-ID of a copy in doubt (sent again with the same one)."""
    row = db.ledger.ledger_entry(issue_id, email)
    if row is None:
        return False, None
    settled = ("sent",) if retry_failed else ("sent", "refused")
    return row.status in settled, row.message_id if row.status == "in_doubt" else None


def _record(
    db: Store, issue_id: str, delivery: Delivery, at: datetime, *, variant: str | None = None
) -> None:
    """The ledger row of one settled message (and a hard bounce on the subscriber); `variant` is the
    topic variant the message was (None: the whole issue)."""
    email = delivery.job.recipient.email
    if delivery.accepted:
        db.ledger.record_sent(issue_id, email, message_id=delivery.job.message_id, at=at, variant=variant)
    elif delivery.in_doubt:
        db.ledger.record_in_doubt(
            issue_id, email, message_id=delivery.job.message_id, detail=delivery.detail, at=at
        )
    else:
        with db.transaction():
            db.ledger.record_failed(
                issue_id, email, detail=delivery.detail, at=at, permanent=delivery.permanent
            )
            if delivery.bounced:
                db.subscribers.set_status(email, "bounced", at=at, reason=delivery.detail)


def _publish(config: Config, db: Store, issue_id: str) -> tuple[str, ...]:
    """Publish the sent issue to the web archive when `digest.pipeline.web` provides `publish_issue`."""
    try:
        web = importlib.import_module("digest.pipeline.web")
    except ImportError:
        return ()
    publish = getattr(web, "publish_issue", None)
    if publish is None:
        return ()
    try:
        publish(config, db, issue_id)
    except Exception as e:  # the issue is sent: a failed publish is reported, never fatal
        log.warning("publishing issue %s to the web archive failed: %s", issue_id, e, exc_info=True)
        return (f"the issue was sent but publishing it to the web archive failed: {e}",)
    return (f"published issue {issue_id} to the web archive",)
