"""`digest run`, `digest schedule` and `digest status`: the unattended weekly job and its state."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.markup import escape
from rich.table import Table

from digest.cli.build import parse_as_of
from digest.cli.common import (
    StopFlag,
    allow_insecure_links_option,
    config_option,
    edition_option,
    read_config,
    refuse_insecure_links,
    stdout,
)
from digest.cli.ingest import status_text
from digest.config import Config
from digest.errors import BusyError, DigestError, UsageError
from digest.pipeline import desk
from digest.pipeline.host_lock import SCHEDULE_LOCK, host_lock
from digest.pipeline.status import Status, gather_status, scheduler_lock_path
from digest.schedule import JobResult, ScheduleLoop, describe_time, friendly_time, next_slot_note
from digest.schedule.lock import RunLock
from digest.state import writable
from digest.state.store import open_store

if TYPE_CHECKING:
    from digest.pipeline.run import RunOutcome

log = logging.getLogger("digest.cli.run")


def _now() -> datetime:
    return datetime.now(UTC)


def _summary(outcome: RunOutcome) -> str:
    issue = f" (issue {outcome.issue_id})" if outcome.issue_id else ""
    if outcome.outcome == "skipped: nothing new" and outcome.detail.startswith("nothing new"):
        return f"skipped: {outcome.detail}"  # "skipped: nothing new since Friday 9 May 2025, 08:00 BST"
    detail = f": {outcome.detail}" if outcome.detail else ""
    return f"{outcome.outcome}{issue}{detail}"


def _report(outcome: RunOutcome) -> int:
    stdout.print(_summary(outcome), markup=False)
    for note in outcome.notes:
        stdout.print(f"  {note}", markup=False)
    if outcome.hint and outcome.exit_code:
        stdout.print(f"hint: {outcome.hint}", markup=False)
    return outcome.exit_code


@click.command("run")
@config_option
@click.option(
    "--as-of",
    "as_of",
    metavar="DATETIME",
    help="End of the issue's window (ISO 8601); default: now.",
)
@click.option(
    "--scheduled",
    is_flag=True,
    help="Run the [schedule] slot that is due, if any (at most once per slot; missed slots are "
    "caught up within catch_up_hours): for systemd timers and cron.",
)
@allow_insecure_links_option
@edition_option
def run_command(
    config_path: Path, as_of: str | None, scheduled: bool, edition: str | None, allow_insecure_links: bool
) -> int:
    """Fetch, build and send the current issue once (resuming an interrupted send).

    With [[editions]], --edition ID runs that edition; without it every edition runs in turn (the exit
    code is the highest of theirs). Like digest send, it refuses to start (exit 2) when the links every
    message carries would not work for readers (what digest check reports), unless --allow-insecure-links.
    """
    # Imported here: the run pipeline pulls in rendering (premailer, lxml, mjml); other commands start fast.
    from digest.pipeline.run import run_due, run_once  # noqa: PLC0415 - keeps `digest` start-up fast

    base = read_config(config_path)
    if scheduled and as_of:
        raise UsageError(
            "--scheduled and --as-of cannot be used together", hint="a scheduled run ends at its slot"
        )
    configs = [read_config(config_path, edition)] if edition or not base.editions else _editions(base)
    for config in configs:
        refuse_insecure_links(config, allowed=allow_insecure_links)
    stop = StopFlag().install()
    code = 0
    for config in configs:
        if stop.is_set():
            break
        if config.edition is not None and len(configs) > 1:
            stdout.print(f"edition {config.edition.id}:", markup=False)
        if scheduled:
            outcome = run_due(config, now=_now(), stop=stop.is_set, clock=_now)
        else:
            when = parse_as_of(as_of, config.digest.timezone)
            outcome = run_once(config, now=_now(), as_of=when, stop=stop.is_set, clock=_now)
        code = max(code, _report(outcome))
    return code


def _editions(config: Config) -> list[Config]:
    """The config narrowed to each of its `[[editions]]`, in the order of the file."""
    from digest.config.editions import edition_config  # noqa: PLC0415 - only configs with editions

    return [edition_config(config, e.id) for e in config.editions]


def scheduled_job(
    config: Config, stop: StopFlag, clock: Callable[[], datetime] = _now
) -> Callable[[datetime], JobResult]:
    """What `digest schedule` does at each firing: `run_due`, with errors logged and retried, never fatal.

    `clock` is the loop's clock: it also gives the time each run finished.
    """
    from digest.pipeline.run import run_due  # noqa: PLC0415 - rendering is loaded only by commands that run

    def job(now: datetime) -> JobResult:
        try:
            outcome = run_due(config, now=now, stop=stop.is_set, clock=clock)
        except BusyError as e:
            log.warning("%s", e.message)
            return JobResult(f"busy: {e.message}", retry=True)
        except DigestError as e:
            log.error("run failed: %s%s", e.message, f" (hint: {e.hint})" if e.hint else "")  # noqa: TRY400 - expected errors need no traceback
            return JobResult(f"failed: {e.message}", retry=True)
        except Exception:  # a bug must not end the unattended loop; the run is retried
            log.exception("run failed with an unexpected error (a bug: please report it)")
            return JobResult("failed: unexpected error", retry=True)
        return JobResult(_summary(outcome), retry=outcome.retry and not stop.is_set())

    return job


def draft_ahead_tick(config: Config) -> Callable[[datetime], None]:
    """What `digest schedule` does between slots: build the next draft `draft_ahead_hours` ahead."""
    from digest.pipeline.run import prepare_ahead  # noqa: PLC0415 - rendering is loaded only when running

    def tick(now: datetime) -> None:
        try:
            built = prepare_ahead(config, now=now)
        except BusyError as e:
            log.info("draft ahead: %s (tried again shortly)", e.message)
            return
        except DigestError as e:
            log.error("draft ahead failed: %s%s", e.message, f" (hint: {e.hint})" if e.hint else "")  # noqa: TRY400 - expected errors need no traceback
            return
        if built:
            log.info("draft ahead: built issue %s and told [notify] to", built)

    return tick


@click.command("schedule")
@config_option
@allow_insecure_links_option
def schedule_command(config_path: Path, allow_insecure_links: bool) -> int:
    """Stay in the foreground and run the weekly send at [schedule] day/time/timezone.

    With [[editions]], every edition runs at its own slots (its cadence, day, time and timezone), with
    the same catch-up, lock and approval rules. Like digest send, it refuses to start (exit 2) when the
    links every message carries would not work for readers, unless --allow-insecure-links.
    """
    config = read_config(config_path)
    for checked in _editions(config) if config.editions else [config]:
        refuse_insecure_links(checked, allowed=allow_insecure_links)
    stop = StopFlag().install()
    with (
        RunLock(scheduler_lock_path(config), now=_now(), purpose="digest schedule"),
        open_store(config) as db,
        host_lock(db, SCHEDULE_LOCK, now=_now(), what="schedule"),
    ):
        if config.editions:
            from digest.schedule.cadence import EditionsLoop  # noqa: PLC0415 - only configs with editions

            EditionsLoop(
                [
                    (c.edition, c.schedule, scheduled_job(c, stop, _now))
                    for c in _editions(config)
                    if c.edition
                ],
                now=_now,
                wait=stop.wait,
                retry_minutes=config.schedule.retry_minutes,
            ).run()
            return 0
        ScheduleLoop(
            config.schedule,
            scheduled_job(config, stop, _now),
            now=_now,
            wait=stop.wait,
            retry_minutes=config.schedule.retry_minutes,
            tick=draft_ahead_tick(config),
        ).run()
    return 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def status_json(status: Status, next_run_note: str | None = None) -> dict[str, Any]:
    """The status as plain JSON-ready data (the shape of `digest status --json`).

    `next_run_note` says what a bank holiday did to the next run (`next_slot_note`), else None.
    """
    return {
        "now": _iso(status.now),
        "next_run": _iso(status.next_run),
        "next_run_note": next_run_note,
        "timezone": status.timezone,
        "scheduler": None
        if status.scheduler is None
        else {"pid": status.scheduler.pid, "host": status.scheduler.host, "since": status.scheduler.since},
        "run_in_progress": None
        if status.run_in_progress is None
        else {
            "pid": status.run_in_progress.pid,
            "host": status.run_in_progress.host,
            "since": status.run_in_progress.since,
        },
        "approval_required": status.approval_required,
        "issues": [
            {
                "id": i.id,
                "subject": i.subject,
                "built_at": _iso(i.built_at),
                "send_started_at": _iso(i.send_started_at),
                "sent_at": _iso(i.sent_at),
                "recipients": i.recipients,
                "failures": i.failures,
                "in_doubt": i.in_doubt,
                "failed": [{"email": f.email, "detail": f.detail} for f in i.failed],
                "approved_by": i.approved_by,
                "approval_current": i.approval_current,
                "hard_bounces": i.hard_bounces,
                "soft_bounces": i.soft_bounces,
                "complaints": i.complaints,
                "bounce_rate": round(i.bounce_rate, 4),
                "complaint_rate": round(i.complaint_rate, 5),
                "flagged": bool(i.attention),
                "attention": list(i.attention),
                "hint": i.hint,
                "workers": [
                    {"holder": w.holder, "batches": w.batches, "heartbeat_at": _iso(w.heartbeat_at)}
                    for w in i.workers
                ],
            }
            for i in status.issues
        ],
        "runs": [
            {
                "id": r.id,
                "slot": _iso(r.slot),
                "started_at": _iso(r.started_at),
                "finished_at": _iso(r.finished_at),
                "outcome": r.outcome,
                "issue_id": r.issue_id,
                "detail": r.detail,
            }
            for r in status.runs
        ],
        "failing_after": status.failing_after,
        "sources": [
            {
                "name": s.report.name,
                "url": s.report.url,
                "status": str(s.report.status),
                "consecutive_failures": s.report.consecutive_failures,
                "flagged": s.flagged,
                "error": s.report.error,
                "entries": s.report.entries,
                "fetched_at": _iso(s.report.fetched_at),
            }
            for s in status.sources
        ],
    }


def _local(value: datetime | None, status: Status) -> str:
    if value is None:
        return "-"
    return friendly_time(value, status.display_timezone, status.locale)


def _print_status(status: Status, next_run_note: str | None = None) -> None:
    tz = status.timezone
    stdout.print(f"next scheduled run: {describe_time(status.next_run, tz)}", markup=False)
    if next_run_note:
        stdout.print(f"  {next_run_note}", markup=False)
    if status.scheduler:
        stdout.print(f"scheduler: running, {status.scheduler.describe()}", markup=False)
    else:
        stdout.print("scheduler: not running (start it with digest schedule, or use a timer)", markup=False)
    if status.run_in_progress:
        stdout.print(f"run in progress: {status.run_in_progress.describe()}", markup=False)
    _print_issues(status)
    _print_runs(status)
    _print_sources(status)


def _print_issues(status: Status) -> None:
    table = Table(title="Recent issues", title_justify="left")
    columns = ("issue", "built at", "sent at", "recipients", "failures", "in doubt", "bounces (hard/soft)")
    for column in (*columns, "complaints", "approval"):
        table.add_column(column, no_wrap=column == "issue")
    for i in status.issues:
        sent = _local(i.sent_at, status) if i.sent_at else ("sending" if i.send_started_at else "not sent")
        approval = (i.approved_by or "") + ("" if i.approval_current or not i.approved_by else " (voided)")
        bounces = f"{i.hard_bounces}/{i.soft_bounces} ({i.bounce_rate:.1%})"
        complaints = f"{i.complaints} ({i.complaint_rate:.2%})"
        table.add_row(
            i.id,
            _local(i.built_at, status),
            sent,
            str(i.recipients),
            str(i.failures),
            str(i.in_doubt),
            bounces,
            complaints,
            approval or "-",
        )
    if not status.issues:
        table.add_row("none built yet", "", "", "", "", "", "", "", "")
    stdout.print(table)
    for i in status.issues:
        for f in i.failed:
            stdout.print(f"  {i.id}: {f.email} failed: {f.detail}", markup=False)
        if i.in_doubt:
            stdout.print(
                f"  {i.id}: {i.in_doubt} in doubt (handed to the server, no reply recorded:"
                " they may have arrived); the next digest send sends them again with the same Message-ID",
                markup=False,
            )
        if i.workers:
            done, total = i.batches
            stdout.print(
                f"  {i.id}: being sent by {len(i.workers)} sender(s), {done} of {total} batches done: "
                + ", ".join(f"{w.holder} (last heartbeat {w.heartbeat_at:%H:%M:%S} UTC)" for w in i.workers),
                markup=False,
            )
        for line in i.attention:
            stdout.print(f"attention: {line}", markup=False)
        if i.hint:
            stdout.print(f"  hint: {i.hint}", markup=False)


def _print_runs(status: Status) -> None:
    runs = Table(title="Recent runs", title_justify="left")
    for column in ("started", "slot", "outcome", "issue", "detail"):
        runs.add_column(column, no_wrap=column in ("outcome", "issue"))
    for r in status.runs:
        runs.add_row(
            _local(r.started_at, status),
            _local(r.slot, status) if r.slot else "manual",
            r.outcome or ("running" if status.run_in_progress else "interrupted (resumed by the next run)"),
            r.issue_id or "-",
            (r.detail or "")[:120],
        )
    if not status.runs:
        runs.add_row("none yet", "", "", "", "")
    stdout.print(runs)


def _print_sources(status: Status) -> None:
    sources = Table(title=f"Sources (flagged after {status.failing_after} failed runs in a row)")
    for column in ("source", "status", "failures in a row", "last fetched"):
        sources.add_column(column, no_wrap=column == "source")
    for s in status.sources:
        name = f"[bold red]! {escape(s.report.name)}[/]" if s.flagged else escape(s.report.name)
        sources.add_row(
            name,
            escape(status_text(s.report)),  # the words digest fetch uses ("not modified", "failed: ...")
            str(s.report.consecutive_failures),
            _local(s.report.fetched_at, status),
        )
    stdout.print(sources)
    for s in status.flagged_sources:
        stdout.print(
            f"attention: source {s.report.name!r} has failed {s.report.consecutive_failures} runs in a row"
            f" ({s.report.error or 'no detail'}); check its URL with digest fetch",
            markup=False,
        )


def _print_audit(events: list[desk.AuditEvent], *, as_json: bool) -> None:
    if as_json:
        rows = [
            {
                "at": e.at.isoformat(),
                "issue_id": e.issue_id,
                "actor": e.actor,
                "action": e.action,
                "detail": e.detail,
                "content_change": e.content,
            }
            for e in events
        ]
        click.echo(json.dumps({"audit": rows}, indent=2))
        return
    if not events:
        stdout.print("the audit trail is empty", markup=False)
    for e in events:
        stdout.print(
            f"{e.at:%Y-%m-%d %H:%M:%S} UTC  {e.issue_id or '-'}  {e.action:<9}  {e.actor}: {e.detail}",
            markup=False,
        )


@click.command("status")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print the status as one JSON object.")
@edition_option
@click.option(
    "--audit",
    "audit",
    is_flag=True,
    help="Show the audit trail instead: who edited, rebuilt, test-sent, approved and sent, and when.",
)
def status_command(config_path: Path, as_json: bool, edition: str | None, audit: bool) -> int:
    """Show recent issues, runs, the next scheduled run and source health.

    With [[editions]], --edition ID shows that edition's issues, runs and next run; without it, every
    edition's issues and runs, and each edition's next run.
    """
    config = read_config(config_path, edition)
    # Reading needs no write access: a read-only SQLite state folder is opened read-only, without
    # migrating. PostgreSQL ([state] url) is opened as configured: the file is not used then.
    read_only = config.state_url is None and not writable(config.state_path)
    db = open_store(config, read_only=read_only)
    if audit:
        try:
            events = desk.audit_events(db, limit=200)
        finally:
            db.close()
        _print_audit(events, as_json=as_json)
        return 0
    try:
        status = gather_status(config, db.for_edition(config.edition_id), now=_now())
    finally:
        db.close()
    note = _next_run_note(config, status.now)
    nexts = _edition_next_runs(config, status.now) if config.editions and config.edition is None else {}
    if as_json:
        data = status_json(status, note)
        if config.editions:
            data["edition"] = config.edition_id
            data["editions"] = [
                {"id": i, "next_run": _iso(t), "next_run_note": n} for i, (t, n) in nexts.items()
            ]
        click.echo(json.dumps(data, indent=2))
    else:
        if config.edition is not None:
            stdout.print(f"edition {config.edition.id}: {config.edition.title}", markup=False)
        for edition_id, (upcoming, edition_note) in nexts.items():
            stdout.print(f"edition {edition_id}: next run {describe_time(upcoming, 'UTC')}", markup=False)
            if edition_note:
                stdout.print(f"  {edition_note}", markup=False)
        _print_status(status, note)
    return 0


def _next_run_note(config: Config, now: datetime) -> str | None:
    """What a bank holiday did to the next run of the config's schedule or of its one edition."""
    if config.edition is None:
        return next_slot_note(config.schedule, now)
    from digest.schedule.cadence import slot_note  # noqa: PLC0415 - only configs with editions

    return slot_note(config.schedule, config.edition, now)


def _edition_next_runs(config: Config, now: datetime) -> dict[str, tuple[datetime, str | None]]:
    """Each edition's next slot and its bank holiday note (`digest status` without --edition)."""
    from digest.schedule.cadence import slot_after, slot_note  # noqa: PLC0415 - only configs with editions

    return {
        c.edition.id: (slot_after(c.schedule, c.edition, now), slot_note(c.schedule, c.edition, now))
        for c in _editions(config)
        if c.edition
    }


def register(group: click.Group) -> None:
    """Add `run`, `schedule` and `status` to the `digest` group."""
    group.add_command(run_command)
    group.add_command(schedule_command)
    group.add_command(status_command)
