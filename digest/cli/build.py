"""`digest build`: fetch, compose and render one issue into `DIR/<issue-id>/`; prints its email.html path."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from babel.dates import format_datetime

from digest.cli.common import config_option, edition_option, read_config, require_edition, stderr, stdout
from digest.config import Config
from digest.errors import UsageError
from digest.state.store import open_store


def parse_as_of(value: str | None, timezone: str) -> datetime | None:
    """An ISO 8601 date-time for --as-of; one without an offset is read in the edition's time zone.

    Raises:
        UsageError: the value is not an ISO 8601 date-time.
    """
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UsageError(
            f"--as-of {value!r} is not an ISO 8601 date-time",
            hint="write it like 2025-05-09T17:00:00+01:00 (without an offset: in the [digest] timezone)",
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed.astimezone(UTC)


def _local(value: datetime, config: Config) -> str:
    local = value.astimezone(ZoneInfo(config.digest.timezone))
    return str(format_datetime(local, "EEEE d MMMM y, HH:mm zzz", locale=config.digest.locale))


@click.command("build")
@config_option
@click.option(
    "--as-of",
    "as_of",
    metavar="DATETIME",
    help="End the issue's window at this ISO 8601 time instead of now (e.g. 2025-05-09T17:00:00+01:00).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder the issue is written into, as DIR/<issue-id>/ [default: out/ next to the config file].",
)
@click.option("--offline", is_flag=True, help="Fetch nothing: build from the entries state holds.")
@edition_option
def build_command(
    config_path: Path, as_of: str | None, out_dir: Path | None, offline: bool, edition: str | None
) -> int:
    """Fetch, compose and render one issue (email.html, email.txt, email.eml, web.html, issue.json).

    Prints the path of email.html. With nothing new since the last sent issue it says so, builds
    nothing and exits 0 (unless [digest] send_when_empty = true, which builds a short issue).
    The issue's draft, DIR/<issue-id>.draft.toml, is applied when it exists.
    """
    # Imported here: rendering pulls in premailer, lxml and mjml, which every other command can do without.
    from digest.pipeline.build import build_issue  # noqa: PLC0415 - keeps `digest` start-up fast

    config = read_config(config_path, edition)
    require_edition(config, "build")
    when = parse_as_of(as_of, config.digest.timezone)
    db = open_store(config)
    try:
        spinner = stderr.status("building") if stderr.is_terminal else None
        with spinner or nullcontext():
            outcome = build_issue(
                config,
                db,
                now=datetime.now(UTC),
                as_of=when,
                out_dir=out_dir.resolve() if out_dir else None,
                offline=offline,
                on_progress=spinner.update if spinner else None,
                actor="digest build",
            )
    finally:
        db.close()
    for note in outcome.notes:
        stderr.print(f"note: {note}", markup=False)
    if outcome.built is None:
        since = outcome.nothing_new_since
        stderr.print(
            f"nothing new since {_local(since, config) if since else 'the last issue'}", markup=False
        )
        return 0
    built = outcome.built
    issue = built.issue
    stderr.print(
        f"built issue {issue.id} (edition {issue.edition}): {len(issue.entries)} entries, "
        f"{len(issue.highlights)} highlights, {built.size / 1024:.1f} KB",
        markup=False,
    )
    stdout.print(str(built.email_html), markup=False)
    return 0


def register(group: click.Group) -> None:
    """Add this module's commands to the `digest` group."""
    group.add_command(build_command)
