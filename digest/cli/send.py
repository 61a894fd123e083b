"""`digest send` and `digest subscribers ...`: thin shells over pipeline.send and deliver.audience."""

from __future__ import annotations

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
from rich.table import Table
from rich.text import Text

from digest.cli.common import (
    StopFlag,
    config_option,
    edition_option,
    read_config,
    require_edition,
    stderr,
    stdout,
)
from digest.config import Config
from digest.config.links import insecure_links_error, review_links
from digest.deliver import audience
from digest.errors import UsageError
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


def _refuse_insecure_links(config: Config, *, allowed: bool, dry_run: bool) -> None:
    """Refuse a send whose links `digest check` fails (a dry run only says so).

    Raises:
        ConfigError: `[web] base_url` is not https:// or is not reachable, without --allow-insecure-links.
    """
    review = review_links(config)
    if not review.problems:
        return
    if allowed or dry_run:
        for problem in review.problems:
            what = "sending anyway (--allow-insecure-links)" if allowed else "a real send would be refused"
            stderr.print(f"warning: {what}: {problem}", markup=False)
        return
    raise insecure_links_error(config, review)


def _print_dry_run(config: Config, report: SendReport) -> None:
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
    for email in report.recipients:
        stdout.print(f"  {email}", markup=False)
    if report.refused_earlier:
        stdout.print(
            f"({report.refused_earlier} refused permanently by an earlier send are left out;"
            " --retry-failed includes them)",
            markup=False,
        )


def _print_doubts(report: SendReport) -> None:
    """The messages in doubt, and the recipients left out as refused by an earlier send."""
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
@click.option("--dry-run", is_flag=True, help="Say what would be sent to whom, and send nothing.")
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
@click.option(
    "--allow-insecure-links",
    is_flag=True,
    help="Send over SMTP although [web] base_url is not https:// or names a loopback or private address"
    " (the unsubscribe links will not work for readers; `digest check` lists the problems).",
)
@edition_option
def send_command(
    config_path: Path,
    *,
    edition: str | None,
    issue_id: str | None,
    to: tuple[str, ...],
    dry_run: bool,
    retry_failed: bool,
    join: bool,
    allow_insecure_links: bool,
) -> int:
    """Send the latest built issue to every active subscriber who has not had it yet.

    An issue whose send was interrupted is resumed first (the summary says which issue and why).
    Ctrl-C or SIGTERM stops after the messages in flight, which are recorded (exit 130).
    Resumes an interrupted send without sending anyone a second copy. Exit code 5 when a message failed
    permanently or the mail server could not be reached. A permanent refusal (5xx) is final for that
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
    _refuse_insecure_links(config, allowed=allow_insecure_links, dry_run=dry_run)
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
    finally:
        if tasks:
            progress.stop()
        db.close()
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
def import_command(config_path: Path, csv_file: Path) -> int:
    """Add or update subscribers from a CSV file with an `email` column and optional `name` and `tags`.

    `tags` holds tags separated by ';' (e.g. staff;partners); they are added to the subscriber's tags.
    `topics` holds the priorities the reader chose, separated by ';' (e.g. Start Well;Age Well).

    Bad rows are reported with their line number and skipped. People who unsubscribed or bounced stay so.
    """
    config = read_config(config_path)
    db = open_store(config)
    try:
        report = audience.import_csv(
            db,
            csv_file,
            at=datetime.now(UTC),
            allow_special_domains=config.subscribers.allow_special_domains,
            priorities=tuple(p.name for p in config.priorities),
        )
    finally:
        db.close()
    for bad in report.rejected:
        stderr.print(f"{csv_file}:{bad.line}: rejected {bad.value!r}: {bad.reason}", markup=False)
    stdout.print(
        f"{csv_file}: added {report.added}, updated {report.updated}, unchanged {report.unchanged},"
        f" rejected {len(report.rejected)}",
        markup=False,
    )
    if report.kept_inactive:
        stdout.print(
            f"{report.kept_inactive} of them unsubscribed or bounced earlier and stay so"
            " (digest subscribers add EMAIL re-activates one)",
            markup=False,
        )
    return 0


@subscribers_group.command("add")
@config_option
@click.argument("email")
@click.option("--name", default=None, help="The subscriber's name, used in the greeting.")
def add_command(config_path: Path, email: str, name: str | None) -> int:
    """Add one subscriber (or re-activate one who unsubscribed or bounced)."""
    config = read_config(config_path)
    db = open_store(config)
    try:
        address, outcome = audience.add_subscriber(
            db,
            email,
            name=name,
            at=datetime.now(UTC),
            allow_special_domains=config.subscribers.allow_special_domains,
        )
    finally:
        db.close()
    stdout.print(f"{address}: {outcome}", markup=False)
    return 0


@subscribers_group.command("remove")
@config_option
@click.argument("email")
def remove_command(config_path: Path, email: str) -> int:
    """Delete one subscriber from the list (the send history keeps its records)."""
    config = read_config(config_path)
    db = open_store(config)
    try:
        address = audience.normalise_address(
            email, allow_special_domains=config.subscribers.allow_special_domains
        )
    except ValueError:
        address = email.strip()  # not a valid address now: it may still be on an old list as written
    try:
        with db.transaction():
            removed = db.subscribers.remove_subscriber(address)
            if removed:
                db.tags.forget(address)
    finally:
        db.close()
    if not removed:
        raise UsageError(f"{email} is not a subscriber", hint="digest subscribers list shows the list")
    stdout.print(f"{email.strip()}: removed", markup=False)
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
def list_command(config_path: Path, status: str | None, tags: tuple[str, ...]) -> int:
    """List subscribers (address, name, status and why) in address order."""
    config = read_config(config_path)
    db = open_store(config)
    try:
        chosen = next((s for s in STATUSES if s == status), None)
        if tags:
            listed = list(db.tags.iter_tagged(tags, chosen))
            count = db.tags.count_tagged(tags, chosen)
        else:
            listed = list(db.subscribers.iter_subscribers(chosen))
            count = db.subscribers.count_subscribers(chosen)
    finally:
        db.close()
    # Addresses are never cut short (they are copied from here): the email column is as wide as the
    # longest one, the other columns wrap, and only an address wider than the terminal is folded.
    widest = max((len(s.email) for s in listed), default=5)
    table = Table(box=None, pad_edge=False)
    table.add_column("email", min_width=min(widest, max(stdout.width - 20, 20)), overflow="fold")
    for column in ("name", "status", "reason", "since"):
        table.add_column(column, overflow="fold")
    for s in listed:
        cells = (s.email, s.name or "", s.status, s.reason or "", f"{s.updated_at:%Y-%m-%d}")
        table.add_row(*(Text(cell) for cell in cells))
    stdout.print(table)
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
