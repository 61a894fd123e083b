"""One run of the weekly job: fetch -> build -> [approval check] -> send, recorded in the runs table.

`run_once` is what `digest run` and each firing of `digest schedule` do. It holds the run lock for its
whole length (a second run gets BusyError, exit 7) and records one row in `runs`: per slot for
scheduled runs (the unique index makes a slot run once), one per manual run.

Never double-send, never silently skip:
- an issue whose sending started but did not finish (a crash, a stop, a dead mail server) is resumed
  before anything is built: the deliver stage's ledger sends only to those without a copy;
- with `[approval] required`, an approved issue whose files still match what was approved is sent as
  it is (rebuilding could change it and void the approval); an unapproved one is left "waiting for
  approval" and sent by the first run after someone approves it;
- a week with nothing new sends nothing ("skipped: nothing new") unless `[digest] send_when_empty`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from digest.config import Config
from digest.errors import ApprovalError, DeliveryError, DigestError, MailboxError, StateError
from digest.pipeline import notify
from digest.pipeline.bounces import process_bounces
from digest.pipeline.build import build_issue
from digest.pipeline.host_lock import RUN_LOCK, host_lock
from digest.pipeline.ledger import fold_old_ledger
from digest.pipeline.send import SendReport, send_issue
from digest.pipeline.signup import delete_stale_signups
from digest.schedule import Action, describe_time, friendly_time
from digest.schedule.cadence import decide_edition, slot_after, slot_before
from digest.schedule.lock import RunLock
from digest.state import runs as run_state
from digest.state.issues import IssueRecord
from digest.state.store import Store, open_store

log = logging.getLogger(__name__)

NOTHING_DUE = "nothing due"
STOPPED = run_state.STOPPED
INTERRUPTED_EXIT = 130  # the exit code of a command stopped on request (SIGINT/SIGTERM), as for Ctrl-C


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What one run did.

    `outcome` is what the runs table and `digest status` show: "sent", "skipped: nothing new",
    "waiting for approval", "already sent", "nothing due", "skipped: missed", "stopped: will resume"
    or "failed: ...". `exit_code` is the CLI's (0, 5 delivery, 8 approval, 130 stopped, ...); `retry` asks the
    scheduler to try the slot again later (waiting for approval, mail server down).
    """

    outcome: str
    run_id: int | None = None
    slot: datetime | None = None
    issue_id: str | None = None
    detail: str = ""
    sent: int = 0
    already_sent: int = 0
    failed: int = 0
    exit_code: int = 0
    retry: bool = False
    hint: str | None = None
    notes: tuple[str, ...] = field(default=())


def _wall_clock() -> datetime:
    return datetime.now(UTC)


def _approved(db: Store, record: IssueRecord) -> bool:
    return db.approvals.is_approved(record.id, record.html_sha256, record.text_sha256)


def _approved_unsent(db: Store) -> IssueRecord | None:
    latest = db.issues.latest_issue()
    if latest is not None and latest.sent_at is None and _approved(db, latest):
        return latest
    return None


def _send(
    config: Config,
    db: Store,
    record: IssueRecord,
    *,
    now: datetime,
    stop: Callable[[], bool],
    on_progress: Callable[[int, int], None] | None,
    why: str,
) -> RunOutcome:
    if stop():
        return RunOutcome(
            STOPPED,
            issue_id=record.id,
            detail=f"stopped before sending issue {record.id}",
            exit_code=INTERRUPTED_EXIT,
        )
    log.info("sending issue %s", record.id)
    report = send_issue(
        config, db, now=now, issue_id=record.id, on_progress=on_progress, should_stop=stop, why=why
    )
    if not report.completed and report.error is None and stop():
        return replace(
            _from_report(report),
            outcome=STOPPED,
            exit_code=INTERRUPTED_EXIT,
            hint=None,
            detail=f"stopped during the send: {report.sent} sent now, {report.not_sent} left for later",
        )
    return _from_report(report)


def _from_report(report: SendReport) -> RunOutcome:
    failures = "; ".join(f"{f.email}: {f.reason}" for f in report.failed[:5])
    counts = f"{report.sent} sent now, {report.already_sent} had it already"
    if report.failed:
        counts += f", {len(report.failed)} failed ({failures}{', ...' if len(report.failed) > 5 else ''})"
    if report.in_doubt:
        counts += f", {len(report.in_doubt)} in doubt (no reply from the server; sent again next time)"
    if report.in_doubt_earlier:
        counts += f", {report.in_doubt_earlier} in doubt from an earlier send (sent again, same Message-ID)"
    base = RunOutcome(
        run_state.SENT,
        issue_id=report.issue_id,
        detail=counts,
        sent=report.sent,
        already_sent=report.already_sent,
        failed=len(report.failed),
        notes=report.notes,
    )
    if report.completed:
        if report.sent == 0 and not report.failed:
            return replace(base, outcome=run_state.ALREADY_SENT)
        if report.failed:
            return replace(
                base,
                exit_code=DeliveryError.exit_code,
                hint="digest status lists each failed address and why",
            )
        return base
    reason = report.error or f"{report.not_sent} of {report.planned} not delivered yet"
    return replace(
        base,
        outcome=f"failed: {reason}"[:200],
        exit_code=DeliveryError.exit_code,
        retry=True,
        hint=report.hint or "the next run resumes the send (digest run, or digest send)",
    )


def _waiting(db: Store, record: IssueRecord) -> RunOutcome:
    approval = db.approvals.get_approval(record.id)
    why = "its approval no longer matches its content" if approval else "nobody has approved it yet"
    log.warning("issue %s is waiting for approval (%s); it is not sent", record.id, why)
    return RunOutcome(
        run_state.WAITING_FOR_APPROVAL,
        issue_id=record.id,
        detail=f"issue {record.id} is waiting for approval: {why}",
        exit_code=ApprovalError.exit_code,
        retry=True,
        hint="approve it in digest preview; the next run sends it",
    )


def _process_bounces(config: Config, db: Store, *, now: datetime) -> None:
    """Read the bounce mailbox first (when `[bounces]` names one), so this issue skips the addresses
    that bounced or complained since the last. A mailbox that cannot be read is logged, never fatal:
    the issue still goes out."""
    source = config.bounces.default_source if config.bounces else None
    if source is None:
        return
    try:
        report = process_bounces(config, db, source=source, now=lambda: now)
    except MailboxError as e:
        log.warning("bounce mailbox not processed: %s%s", e.message, f" ({e.hint})" if e.hint else "")
        return
    log.info(
        "bounce mailbox: %d message(s), %d subscriber(s) marked bounced or complained",
        len(report.outcomes),
        len(report.changed),
    )


def _pipeline(
    config: Config,
    db: Store,
    *,
    now: datetime,
    as_of: datetime,
    stop: Callable[[], bool],
    on_progress: Callable[[int, int], None] | None,
    recheck: bool = False,
) -> RunOutcome:
    """The stages. `recheck`: the slot already built its issue and waits for its approval, so it is
    not rebuilt (a rebuild could change what the comms team is approving in the preview)."""
    _process_bounces(config, db, now=now)
    delete_stale_signups(config, db, now=now)
    unfinished = db.issues.interrupted_issue()  # resumed before anything is built
    if unfinished is not None:
        log.info("resuming the interrupted send of issue %s", unfinished.id)
        return _send(
            config,
            db,
            unfinished,
            now=now,
            stop=stop,
            on_progress=on_progress,
            why="its send was interrupted and is resumed before anything is built",
        )
    if config.approval.required:
        approved = _approved_unsent(db)
        if approved is not None:
            log.info("issue %s is approved: sending it as approved, without rebuilding", approved.id)
            return _send(
                config,
                db,
                approved,
                now=now,
                stop=stop,
                on_progress=on_progress,
                why="approved, so sent as approved without rebuilding",
            )
        pending = db.issues.latest_issue()
        if recheck and pending is not None and pending.sent_at is None:
            return _waiting(db, pending)

    outcome = build_issue(config, db, now=now, as_of=as_of, actor="digest run")
    for note in outcome.notes:
        log.info("build: %s", note)
    if outcome.built is None:
        since = outcome.nothing_new_since
        when = friendly_time(since, config.digest.timezone, config.digest.locale) if since else ""
        detail = f"nothing new since {when}" if since else "nothing new"
        log.info("%s: no issue is sent (set [digest] send_when_empty = true to send one anyway)", detail)
        return RunOutcome(run_state.NOTHING_NEW, detail=detail)
    issue_id = outcome.built.issue.id
    record = db.issues.get_issue(issue_id)
    if record is None:  # pragma: no cover - build records every issue it builds
        raise DeliveryError(f"issue {issue_id} was built but is not in state", hint="run digest build again")
    if record.sent_at is not None:
        return RunOutcome(
            run_state.ALREADY_SENT, issue_id=issue_id, detail=f"issue {issue_id} was sent before"
        )
    if config.approval.required and not _approved(db, record):
        return _waiting(db, record)
    return _send(config, db, record, now=now, stop=stop, on_progress=on_progress, why="built by this run")


def _slot_done(config: Config, db: Store, slot: datetime) -> RunOutcome | None:
    """The outcome of a slot that already ran for good (never run again), else None."""
    record = db.runs.run_for_slot(slot)
    if record is None or record.outcome not in run_state.FINAL:
        return None
    return RunOutcome(
        run_state.ALREADY_SENT if record.outcome == run_state.SENT else record.outcome or "",
        run_id=record.id,
        slot=slot,
        issue_id=record.issue_id,
        detail=f"the run of {describe_time(slot, config.schedule.timezone)} already ended: {record.outcome}",
    )


def _start(db: Store, slot: datetime | None, now: datetime) -> tuple[int, str | None]:
    """Start (or take over again) the run's row; returns its id and the slot's previous outcome."""
    previous = None
    if slot is None:
        run_id = db.runs.start_run(started_at=now)
    else:
        record = db.runs.run_for_slot(slot)
        if record is None:
            run_id = db.runs.start_run(started_at=now, slot=slot)
        else:
            note = (
                "resumed after an interruption"
                if record.outcome is None
                else f"again after '{record.outcome}'"
            )
            db.runs.reopen_run(record.id, started_at=now, note=note)
            run_id, previous = record.id, record.outcome
    if run_id is None:  # pragma: no cover - the run lock is held, so nobody else inserted the slot
        raise StateError("the runs table refused a new run", hint="check the state file with digest status")
    return run_id, previous


def _tell_team(config: Config, db: Store, result: RunOutcome, *, now: datetime) -> None:
    """`[notify] to`: a reminder for an issue waiting for approval, a report after a send."""
    if result.issue_id is None or not config.notify.to:
        return
    if result.outcome == run_state.WAITING_FOR_APPROVAL:
        notify.remind_waiting(config, db, result.issue_id, now=now)
    elif (result.sent or result.failed) and result.outcome != STOPPED:
        notify.report_sent(config, db, result.issue_id, now=now)


def prepare_ahead(config: Config, *, now: datetime) -> str | None:
    """`[schedule] draft_ahead_hours`: build the next slot's draft and tell the team, once per slot.

    Cheap when not due (slot arithmetic only). Returns the issue id built, else None.

    Raises:
        BusyError: a run holds the lock (the next tick tries again).
    """
    hours = config.schedule.draft_ahead_hours
    upcoming = slot_after(config.schedule, config.edition, now)
    if not hours or not config.notify.to or upcoming - now > timedelta(hours=hours):
        return None
    with RunLock(config.lock_path, now=now, purpose="digest draft ahead"):
        db = open_store(config)
        try:
            return notify.draft_ahead(config, db, now=now)
        finally:
            db.close()


def _run_locked(
    config: Config,
    db: Store,
    *,
    now: datetime,
    as_of: datetime | None,
    slot: datetime | None,
    stop: Callable[[], bool],
    on_progress: Callable[[int, int], None] | None,
    clock: Callable[[], datetime],
) -> RunOutcome:
    if slot is not None:
        done = _slot_done(config, db, slot)
        if done is not None:
            log.info("%s", done.detail)
            return done
    run_id, previous = _start(db, slot, now)
    try:
        result = _pipeline(
            config,
            db,
            now=now,
            as_of=as_of or slot or now,
            stop=stop,
            on_progress=on_progress,
            recheck=previous == run_state.WAITING_FOR_APPROVAL,
        )
    except DigestError as e:
        try:
            db.runs.finish_run(run_id, finished_at=clock(), outcome=f"failed: {e.message}"[:200])
        except StateError as recording:  # the state store is what failed: report the first error
            log.warning("could not record the failed run: %s", recording.message)
        raise
    db.runs.finish_run(
        run_id,
        finished_at=clock(),
        outcome=result.outcome,
        detail=result.detail or None,
        issue_id=result.issue_id,
    )
    _tell_team(config, db, result, now=now)
    try:
        fold_old_ledger(config, db, now=now)
    except StateError as e:  # the run itself is done and recorded: the next run folds again
        log.warning("could not fold the old send-ledger rows: %s", e.message)
    log.info(
        "run finished: %s%s",
        result.outcome,
        f" ({result.detail})" if result.detail else "",
        extra={
            "outcome": result.outcome,
            "issue_id": result.issue_id,
            "slot": slot.isoformat() if slot else None,
        },
    )
    return replace(result, run_id=run_id, slot=slot)


def run_once(
    config: Config,
    *,
    now: datetime,
    as_of: datetime | None = None,
    slot: datetime | None = None,
    stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> RunOutcome:
    """Fetch, build, check approval and send once, holding the run lock; the run is recorded in state.

    `slot` ties the run to a scheduled time: the window then ends at the slot (unless `as_of` says
    otherwise) and a slot that already ran for good is not run again. `stop()` is polled between the
    stages: once it is true the run leaves the issue for the next run to resume. `clock()` gives the
    time the run finished (`runs.finished_at`); by default the wall clock.

    Raises:
        BusyError: another run holds the lock (the message names its pid, host and start time).
        DigestError: a stage failed (recorded as "failed: ..." in the runs table first).
    """
    with RunLock(config.lock_path, now=now, purpose="digest run"):
        db = open_store(config)
        held = ExitStack()  # with the state in PostgreSQL, the lock shared by every host too
        try:
            held.enter_context(host_lock(db, RUN_LOCK, now=now, what="run"))
            return _run_locked(
                config,
                db,
                now=now,
                as_of=as_of,
                slot=slot,
                stop=stop or (lambda: False),
                on_progress=on_progress,
                clock=clock or _wall_clock,
            )
        finally:
            held.close()
            db.close()


def run_due(
    config: Config,
    *,
    now: datetime,
    stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> RunOutcome:
    """Run the latest scheduled slot if it is due; otherwise say when the next one is.

    Due means: on time, missed by at most `catch_up_hours`, interrupted, or waiting for approval /
    failed within `catch_up_hours`. A slot missed by more is recorded as skipped (once) and logged
    with why. Used by `digest schedule` (at start and at every slot) and `digest run --scheduled`.

    Raises:
        BusyError: another run holds the lock.
        DigestError: a stage failed (recorded in the runs table first).
    """
    settings, edition = config.schedule, config.edition
    with RunLock(config.lock_path, now=now, purpose="digest run"):
        db = open_store(config)
        held = ExitStack()  # with the state in PostgreSQL, the lock shared by every host too
        try:
            held.enter_context(host_lock(db, RUN_LOCK, now=now, what="run"))
            record = db.runs.run_for_slot(slot_before(settings, edition, now))
            verdict = decide_edition(settings, edition, now, record, first=db.runs.last_slot_run() is None)
            upcoming = describe_time(slot_after(settings, edition, now), settings.timezone)
            if verdict.action is Action.SKIP:
                log.warning("skipped: %s", verdict.reason)
                if record is None:
                    db.runs.record_run(
                        slot=verdict.slot, at=now, outcome=run_state.MISSED, detail=verdict.reason
                    )
                else:
                    db.runs.finish_run(
                        record.id, finished_at=now, outcome=run_state.INTERRUPTED, detail=verdict.reason
                    )
                return RunOutcome(
                    run_state.MISSED, slot=verdict.slot, detail=f"{verdict.reason}; next run {upcoming}"
                )
            if verdict.action is Action.NONE:
                log.log(logging.INFO if record is None else logging.DEBUG, "%s", verdict.reason)
                notify.draft_ahead(config, db, now=now)
                return RunOutcome(
                    NOTHING_DUE, slot=verdict.slot, detail=f"{verdict.reason}; next run {upcoming}"
                )
            log.info("%s", verdict.reason)
            return _run_locked(
                config,
                db,
                now=now,
                as_of=None,
                slot=verdict.slot,
                stop=stop or (lambda: False),
                on_progress=on_progress,
                clock=clock or _wall_clock,
            )
        finally:
            held.close()
            db.close()
