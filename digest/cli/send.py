"""`digest send` and `digest subscribers ...`: thin shells over pipeline.send and deliver.audience."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from digest.cli.common import (
    StopFlag,
    allow_insecure_links_option,
    config_option,
    edition_option,
    read_config,
    refuse_insecure_links,
    require_edition,
    stderr,
    stdout,
    write_personal_file,
)
from digest.config import Config
from digest.deliver import audience
from digest.errors import InvalidValueError, UsageError
from digest.pipeline import subscribers as subscriber_rights
from digest.pipeline.desk import record_audit
from digest.pipeline.send import SendReport, join_send, send_issue
from digest.state.store import open_store
from digest.state.subscribers import STATUSES

_SHOW_FAILURES = 20


class RateColumn(ProgressColumn):
    """Messages per second, as measured by rich over the last few seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f} msg/s" if speed else "- msg/s", style="progress.data.speed")


def _split_addresses(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(a.strip() for value in values for a in value.split(",") if a.strip())


def _where(config: Config) -> str:
    if config.delivery.transport == "outbox":
        return f"the outbox {config.delivery.outbox}"
    return f"smtp {config.smtp.host}:{config.smtp.port} ({config.smtp.security})"


def _print_summary(config: Config, report: SendReport) -> None:
    if report.dry_run or report.idle:
        _print_dry_run(config, report)
        return
    parts = [f"sent {report.sent}"]
    if not report.test:
        parts.append(f"already sent {report.already_sent}")
    parts.append(f"failed {len(report.failed)}")
    if not report.test:
        parts.append(f"in doubt {len(report.in_doubt)}")
    unsent = report.not_sent - len(report.failed) - len(report.in_doubt)
    if unsent > 0:
        parts.append(f"not attempted {unsent}")
    style = "green" if report.ok else "red"
    why = f" ({report.chosen_because})" if report.chosen_because else ""
    stdout.print(f"[bold {style}]Issue {escape(report.issue_id)}{escape(why)}:[/] " + ", ".join(parts))
    for failure in report.failed[:_SHOW_FAILURES]:
        tag = "bounced, marked so" if failure.bounced else ("permanent" if failure.permanent else "temporary")
        stdout.print(f"  failed {failure.email}: {failure.reason} ({tag})", markup=False)
    if len(report.failed) > _SHOW_FAILURES:
        stdout.print(f"  ... and {len(report.failed) - _SHOW_FAILURES} more failures", markup=False)
    _print_doubts(report)
    _print_variants(report)
    _print_sharing(report)
    for note in report.notes:
        stdout.print(note, markup=False)
    if report.completed:
        stdout.print("The issue is marked sent.", markup=False)
    elif not report.test and report.error is None and any(not f.permanent for f in report.failed):
        stdout.print("Run digest send again to retry the temporary failures.", markup=False)
    if report.error:
        stderr.print(f"[bold red]error:[/] {escape(report.error)}")
        if report.hint:
            stderr.print(f"[bold]hint:[/] {escape(report.hint)}")


def _print_variants(report: SendReport) -> None:
    """Readers left out because their topic variant is empty, and the copies sent of each variant."""
    if report.no_entries:
        stdout.print(
            f"{report.no_entries} reader(s) not sent this issue: their topics have no entries in it",
            markup=False,
        )
    if len(report.variants) > 1 or any(key for key, _ in report.variants):
        copies = ", ".join(f"{key or 'whole issue'}: {count}" for key, count in report.variants)
        stdout.print(f"Copies by topic variant: {copies}", markup=False)


def _print_sharing(report: SendReport) -> None:
    """The batches this sender took (state in PostgreSQL), and a send it took over from a stopped one."""
    if report.batches:
        what = "joined the send" if report.joined else "shared with any digest send --join"
        stdout.print(f"Batches sent by this process: {report.batches} ({what}).", markup=False)
    if report.took_over_from:
        stdout.print(f"Resumed a send left by a stopped process ({report.took_over_from}).", markup=False)


def _print_dry_run(
    config: Config, report: SendReport, *, verbose: bool = False, recipients_file: Path | None = None
) -> None:
    if report.idle:  # --join with nothing being sent
        for note in report.notes:
            stdout.print(note, markup=False)
        return
    what = "test send" if report.test else "send"
    already = "" if report.test else f"; {report.already_sent} already have it"
    stdout.print(
        f"Dry run: the {what} of issue {report.issue_id} ({report.subject!r}; {report.chosen_because})"
        " would go to"
        f" {report.planned} recipient(s) through {_where(config)}{already}:",
        markup=False,
    )
    # A summary only: printing 500,000 lines through the terminal is what made a dry run slow. The
    # addresses are listed with --verbose (written in one go) or to a file.
    if verbose and report.recipients:
        sys.stdout.write("".join(f"  {email}\n" for email in report.recipients))
        sys.stdout.flush()
    if recipients_file is not None:
        write_personal_file(recipients_file, "".join(f"{email}\n" for email in report.recipients))
        stdout.print(f"The {report.planned} recipient(s) are listed in {recipients_file}.", markup=False)
    elif report.recipients and not verbose:
        stdout.print("(--verbose lists them, --recipients FILE writes them to a file)", markup=False)
    if report.refused_earlier:
        stdout.print(
            f"({report.refused_earlier} refused permanently by an earlier send are left out;"
            " --retry-failed includes them)",
            markup=False,
        )


def _print_doubts(report: SendReport) -> None:
    """The messages in doubt (now and from an earlier send), and the recipients left out as refused by
    an earlier send."""
    if report.in_doubt_earlier:
        stdout.print(
            f"{report.in_doubt_earlier} message(s) were in doubt from an earlier send that stopped (handed"
            " over, no reply recorded): this send sends them again with their same Message-ID.",
            markup=False,
        )
    for doubt in report.in_doubt[:_SHOW_FAILURES]:
        stdout.print(f"  in doubt {doubt.email}: {doubt.reason}", markup=False)
    if report.in_doubt:
        stdout.print(
            f"{len(report.in_doubt)} message(s) were handed to the server but its reply never came: they"
            " may have been delivered. They were not retried; the next digest send sends them again with"
            " the same Message-ID (most mail clients then show one message).",
            markup=False,
        )
    if report.refused_earlier:
        stdout.print(
            f"{report.refused_earlier} recipient(s) refused permanently by an earlier send were not tried"
            " again (digest send --retry-failed tries them).",
            markup=False,
        )


@click.command("send")
@config_option
@click.option("--issue", "issue_id", metavar="ID", help="Issue to send (default: the latest built issue).")
@click.option(
    "--to",
    "to",
    multiple=True,
    metavar="ADDR[,ADDR]",
    help='Test send to these addresses only: subject prefixed "[TEST] ", nothing recorded or marked sent.',
)
@click.option("--dry-run", is_flag=True, help="Say what would be sent to how many, and send nothing.")
@click.option("--verbose", is_flag=True, help="With --dry-run: list every recipient.")
@click.option(
    "--recipients",
    "recipients_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="With --dry-run: write the recipients to this file, one per line.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Also send to recipients this issue was refused for permanently (5xx) by an earlier send.",
)
@click.option(
    "--join",
    "join",
    is_flag=True,
    help="Add this process as a sender to the send in progress (state in PostgreSQL, any host with the"
    " same config): it claims batches of recipients until every batch is done.",
)
@allow_insecure_links_option
@edition_option
def send_command(  # noqa: PLR0912 - one branch per option that changes what a send does
    config_path: Path,
    *,
    edition: str | None,
    issue_id: str | None,
    to: tuple[str, ...],
    dry_run: bool,
    verbose: bool,
    recipients_file: Path | None,
    retry_failed: bool,
    join: bool,
    allow_insecure_links: bool,
) -> int:
    """Send the latest built issue to every active subscriber who has not had it yet.

    An issue whose send was interrupted is resumed first (the summary says which issue and why).
    Ctrl-C or SIGTERM stops after the messages in flight, which are recorded (exit 130).
    Resumes an interrupted send without sending anyone a second copy. Exit code 5 when any message failed
    or is in doubt, or the mail server could not be reached. A permanent refusal (5xx) is final for that
    recipient in that issue: later sends leave them out unless --retry-failed is given.

    With the state in PostgreSQL the send is cut into batches of recipients ([delivery] batch_size), and
    `digest send --join` on any host with the same config adds a sender to it; with nothing being sent,
    --join says so and exits 0.
    """
    config = read_config(config_path, edition)
    if config.editions and edition is None and issue_id is not None:
        config = read_config(config_path, _edition_of_issue(config, issue_id))
    require_edition(config, "send")
    if join and (to or dry_run):
        raise UsageError(
            f"--join cannot be used with {'--to' if to else '--dry-run'}",
            hint="--join adds a sender to the send in progress; leave out the other option",
        )
    if join and config.state_url is None:
        raise UsageError(
            f"--join needs the state in PostgreSQL ([state] url), and this config keeps it in the SQLite"
            f" file {config.state_path}",
            hint='set [state] url = "postgresql://user@host:5432/digest" on every host (digest state'
            " migrate --to URL copies this state there), or run one digest send without --join",
        )
    refuse_insecure_links(config, allowed=allow_insecure_links, dry_run=dry_run)
    db = open_store(config)
    addresses = _split_addresses(to)
    if to and not addresses:
        raise UsageError("--to: give at least one address")
    stop = StopFlag()
    # The bar appears with the first progress report, which comes once the issue, the addresses and
    # the transport have been checked: an error before that is shown without a bar.
    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=stderr,
        transient=False,
        disable=dry_run,
    )
    tasks: list[TaskID] = []

    def on_progress(done: int, total: int) -> None:
        if not tasks:
            progress.start()
            tasks.append(progress.add_task("sending", total=total))
        progress.update(tasks[0], completed=done, total=total)

    try:
        with stop.installed():
            if join:
                report = join_send(
                    config,
                    db,
                    now=datetime.now(UTC),
                    issue_id=issue_id,
                    on_progress=on_progress,
                    should_stop=stop.is_set,
                    retry_failed=retry_failed,
                )
            else:
                report = send_issue(
                    config,
                    db,
                    now=datetime.now(UTC),
                    issue_id=issue_id,
                    to=addresses,
                    dry_run=dry_run,
                    on_progress=on_progress,
                    should_stop=stop.is_set,
                    retry_failed=retry_failed,
                )
                if report.test and not report.dry_run and (report.sent or report.failed):
                    record_audit(  # as the preview's test send is
                        db,
                        at=datetime.now(UTC),
                        issue_id=report.issue_id,
                        actor="digest send --to",
                        action="test-send",
                        detail=f"sent a test to {', '.join(addresses)} ({report.sent} sent)",
                    )
    finally:
        if tasks:
            progress.stop()
        db.close()
    if report.dry_run:
        _print_dry_run(config, report, verbose=verbose, recipients_file=recipients_file)
    else:
        _print_summary(config, report)
    if stop.is_set() and not report.completed and report.error is None:
        left = report.not_sent - len(report.failed) - len(report.in_doubt)
        if report.test:
            stdout.print(f"Stopped on request: the test send did not reach {left} address(es).", markup=False)
        else:
            stdout.print(
                f"Stopped on request: {left} recipient(s) left; every message the server accepted is"
                " recorded. Run digest send again to send the rest.",
                markup=False,
            )
        return 130
    return 0 if report.ok else 5


def _edition_of_issue(config: Config, issue_id: str) -> str | None:
    """The `[[editions]]` id `--issue` was built for (so `--edition` may be left out), None if unknown."""
    with open_store(config) as db:
        edition = db.issues.issue_edition(issue_id)
    return edition or None


@click.group("subscribers")
def subscribers_group() -> None:
    """Manage the subscriber list kept in the state database."""


@subscribers_group.command("import")
@config_option
@click.argument("csv_file", metavar="FILE.csv", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--consent",
    "consent",
    metavar="TEXT",
    default="",
    help="The basis you hold for mailing these people (required; kept on each consent record).",
)
@click.option(
    "--resubscribe",
    is_flag=True,
    help="Re-activate people who unsubscribed, bounced, complained or were erased (they asked again).",
)
def import_command(config_path: Path, csv_file: Path, consent: str, resubscribe: bool) -> int:
    """Add or update subscribers from a CSV file (comma, semicolon or tab) with an email column.

    A `tags` column holds tags separated by ';' (e.g. staff;partners), added to the subscriber's tags;
    a `topics` column the priorities the reader chose, separated by ';' (e.g. Start Well;Age Well).

    Headers such as `email`, `Email Address`, `E-mail`, `email_address`, `name`, `First Name` and
    `Last Name` are recognised. Bad rows are reported with their line number and skipped. People who
    unsubscribed, bounced, complained or were erased stay so (reported per line) unless --resubscribe.
    """
    config = read_config(config_path)
    db = open_store(config)
    try:
        with Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            console=stderr,
            transient=True,
            disable=not stderr.is_terminal,
        ) as bar:
            task = bar.add_task("import", total=None)

            def advance(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = audience.import_csv(
                db,
                csv_file,
                at=datetime.now(UTC),
                consent=consent,
                allow_special_domains=config.subscribers.allow_special_domains,
                priorities=tuple(p.name for p in config.priorities),
                resubscribe=resubscribe,
                progress=advance if stderr.is_terminal else None,
            )
    finally:
        db.close()
    for bad in report.rejected:
        stderr.print(f"{csv_file}:{bad.line}: rejected {bad.value!r}: {bad.reason}", markup=False)
    for kept in report.suppressed:
        stderr.print(f"{csv_file}:{kept.line}: {kept.email}: suppressed: {kept.why}", markup=False)
    stdout.print(
        f"{csv_file}: added {report.added}, updated {report.updated}, unchanged {report.unchanged},"
        f" rejected {len(report.rejected)}, suppressed {len(report.suppressed)}"
        + (f", resubscribed {report.resubscribed}" if resubscribe else ""),
        markup=False,
    )
    if report.suppressed:
        stdout.print(
            f"{len(report.suppressed)} of them unsubscribed, bounced, complained or were erased earlier and"
            " stay so (--resubscribe only if they asked to join again)",
            markup=False,
        )
    return 0


@subscribers_group.command("add")
@config_option
@click.argument("email")
@click.option("--name", default=None, help="The subscriber's name, used in the greeting.")
@click.option("--consent", default=None, metavar="TEXT", help="How they agreed (kept on the consent record).")
@click.option(
    "--resubscribe",
    is_flag=True,
    help="Re-activate an address that unsubscribed, bounced, complained or was erased (they asked again).",
)
def add_command(
    config_path: Path, email: str, name: str | None, consent: str | None, resubscribe: bool
) -> int:
    """Add one subscriber (an unsubscribed, bounced or complained one only with --resubscribe)."""
    config = read_config(config_path)
    db = open_store(config)
    try:
        address, outcome = audience.add_subscriber(
            db,
            email,
            name=name,
            at=datetime.now(UTC),
            allow_special_domains=config.subscribers.allow_special_domains,
            consent=consent,
            resubscribe=resubscribe,
        )
    finally:
        db.close()
    stdout.print(f"{address}: {outcome}", markup=False)
    return 0


@subscribers_group.command("remove")
@config_option
@click.argument("email")
def remove_command(config_path: Path, email: str) -> int:
    """Unsubscribe one subscriber (reason "removed by operator"); the row stays, so no import re-adds them.

    To erase someone entirely, use digest subscribers forget.
    """
    config = read_config(config_path)
    db = open_store(config)
    try:
        address = audience.normalise_address(
            email, allow_special_domains=config.subscribers.allow_special_domains
        )
    except InvalidValueError:
        address = email.strip()  # not a valid address now: it may still be on an old list as written
    try:
        found = db.subscribers.get_subscriber(address)
        if found is not None and found.status == "active":
            with db.transaction():
                db.subscribers.set_status(
                    address, "unsubscribed", at=datetime.now(UTC), reason="removed by operator"
                )
                db.tags.forget(address)
    finally:
        db.close()
    if found is None:
        raise UsageError(f"{email} is not a subscriber", hint="digest subscribers list shows the list")
    if found.status != "active":
        stdout.print(f"{email.strip()}: already {found.status}", markup=False)
    else:
        stdout.print(f"{email.strip()}: unsubscribed (removed by operator)", markup=False)
    return 0


@subscribers_group.command("export")
@config_option
@click.argument("email")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file.",
)
def export_command(config_path: Path, email: str, output: Path | None) -> int:
    """Write everything held about one person as JSON (a subject access request under UK GDPR)."""
    config = read_config(config_path)
    db = open_store(config)
    try:
        data = subscriber_rights.export_subscriber(db, email)
    finally:
        db.close()
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    if output is None:
        click.echo(text, nl=False)
    else:
        write_personal_file(output, text)
    return 0


@subscribers_group.command("forget")
@config_option
@click.argument("email")
def forget_command(config_path: Path, email: str) -> int:
    """Erase one person (UK GDPR): row, name, consent, history and ledger addresses go; only a keyed hash
    of the address stays on a suppression list, so later imports still refuse it."""
    config = read_config(config_path)
    db = open_store(config)
    try:
        blanked = subscriber_rights.forget_subscriber(db, email, now=datetime.now(UTC))
    finally:
        db.close()
    stdout.print(f"erased; {blanked} send record(s) kept without the address", markup=False)
    return 0


@subscribers_group.command("list")
@config_option
@click.option(
    "--status", type=click.Choice(STATUSES), default=None, help="Only subscribers with this status."
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="TAG",
    help="Only subscribers holding this tag (repeat for any of several).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (streamed).")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header line (streamed).")
def list_command(
    config_path: Path, status: str | None, tags: tuple[str, ...], as_json: bool, as_csv: bool
) -> int:
    """List subscribers (address, name, status, why and since) in address order, streamed."""
    if as_json and as_csv:
        raise UsageError("--json and --csv cannot be used together", hint="choose one")
    config = read_config(config_path)
    db = open_store(config)
    try:
        chosen = next((s for s in STATUSES if s == status), None)
        out = sys.stdout
        count = 0
        writer = csv.writer(out, lineterminator="\n") if as_csv else None
        if writer is not None:
            writer.writerow(("email", "name", "status", "reason", "since"))
        listed = db.tags.iter_tagged(tags, chosen) if tags else db.subscribers.iter_subscribers(chosen)
        for s in listed:
            count += 1
            since = (s.status_at or s.updated_at).date().isoformat()
            if writer is not None:
                writer.writerow((s.email, s.name or "", s.status, s.reason or "", since))
            elif as_json:
                record = {"email": s.email, "name": s.name, "status": s.status, "reason": s.reason}
                out.write(json.dumps({**record, "since": since}, ensure_ascii=False) + "\n")
            else:
                # One line each, never a table held in memory: the address first and whole (it is copied).
                fields = (s.email, s.name or "-", s.status, s.reason or "-", since)
                out.write("  ".join(f.replace("\t", " ") for f in fields) + "\n")
    finally:
        db.close()
    if not (as_json or as_csv):
        tagged = f" tagged {' or '.join(tags)}" if tags else ""
        stdout.print(f"{count} subscriber(s)" + (f" {status}" if status else "") + tagged, markup=False)
    return 0


def register(group: click.Group) -> None:
    """Add `send` and `subscribers` to the `digest` group."""
    group.add_command(send_command)
    group.add_command(subscribers_group)


def _add_show() -> None:
    """`digest subscribers show` lives with the bounce commands (it prints a subscriber's bounce history)."""
    from digest.cli.bounces import show_command  # noqa: PLC0415 - cli.bounces imports this module's peers

    subscribers_group.add_command(show_command)


_add_show()


def _add_tags() -> None:
    """`digest subscribers tag` and `untag` live in `digest.cli.tags`."""
    from digest.cli.tags import tag_command, topics_command, untag_command  # noqa: PLC0415 - as _add_show

    subscribers_group.add_command(tag_command)
    subscribers_group.add_command(untag_command)
    subscribers_group.add_command(topics_command)


_add_tags()
