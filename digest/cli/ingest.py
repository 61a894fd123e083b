"""`digest fetch`: fetch every enabled source, keep its entries in state, and show each source's health."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from digest.cli.common import config_option, read_config, stderr, stdout
from digest.errors import UsageError
from digest.models import SourceReport, SourceStatus
from digest.pipeline.ingest import ingest_sources
from digest.state.store import open_store

EXIT_SOURCES_FAILED = 3


def report_json(report: SourceReport) -> dict[str, Any]:
    """One source's health as the JSON object `digest fetch --json` prints."""
    return {
        "name": report.name,
        "url": report.url,
        "category": report.category,
        "status": report.status.value,
        "entries": report.entries,
        "http_status": report.http_status,
        "error": report.error,
        "redirected_to": report.redirected_to,
        "permanent_redirect": report.permanent_redirect,
        "newest_entry": report.newest_entry.isoformat() if report.newest_entry else None,
        "consecutive_failures": report.consecutive_failures,
        "fetched_at": report.fetched_at.isoformat() if report.fetched_at else None,
    }


def status_text(report: SourceReport) -> str:
    """A source's status in words: ok, not modified, failed: reason, gone, with any redirect."""
    if report.status is SourceStatus.FAILED:
        # The stored error names the source so it reads on its own; here it sits beside the name.
        reason = (report.error or "unknown error").removeprefix(f"{report.name}: ")
        text = f"failed: {reason}"
    elif report.status is SourceStatus.GONE:
        text = "gone (HTTP 410): remove the source or change its url"
    elif report.status is SourceStatus.NOT_MODIFIED:
        text = "not modified"
    else:
        text = "ok"
    if report.redirected_to:
        kind = "moved permanently to" if report.permanent_redirect else "redirected to"
        text += f"; {kind} {report.redirected_to}"
        if report.permanent_redirect:
            text += " (update the url in the config)"
    return text


def _table(reports: tuple[SourceReport, ...]) -> Table:
    table = Table(title="Sources", title_justify="left")
    table.add_column("Source", overflow="fold")
    table.add_column("Status", overflow="fold")
    table.add_column("Entries", justify="right")
    table.add_column("Newest entry")
    table.add_column("Failures in a row", justify="right")
    styles = {SourceStatus.OK: "green", SourceStatus.NOT_MODIFIED: "green", SourceStatus.GONE: "yellow"}
    for report in reports:
        table.add_row(
            report.name,
            status_text(report),
            str(report.entries),
            report.newest_entry.strftime("%Y-%m-%d %H:%M UTC") if report.newest_entry else "-",
            str(report.consecutive_failures),
            style=styles.get(report.status, "red"),
        )
    return table


@click.command("fetch")
@config_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print a JSON list with one object per source instead of a table."
)
@click.option(
    "--strict", is_flag=True, help="Exit with code 3 when any source failed (default: only when all failed)."
)
@click.option("--offline", is_flag=True, help="Fetch nothing: show what state holds from the last fetch.")
def fetch_command(config_path: Path, as_json: bool, strict: bool, offline: bool) -> int:
    """Fetch every enabled source, store its entries, and show each source's health.

    Exit code 0 when at least one source worked, 3 when all failed (with --strict: when any failed).
    """
    config = read_config(config_path)
    sources = config.enabled_sources
    if not sources:
        raise UsageError(
            f"{config.path}: no source is enabled", hint="set enabled = true on a [[sources]] table"
        )
    db = open_store(config)
    try:
        with Progress(
            TextColumn("fetching"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
            disable=not stderr.is_terminal,
        ) as progress:
            task = progress.add_task("", total=len(sources))

            def advance(report: SourceReport, done: int, total: int) -> None:
                progress.update(task, completed=done, total=total, description=report.name)

            result = ingest_sources(config, db, now=datetime.now(UTC), offline=offline, on_progress=advance)
    finally:
        db.close()
    if as_json:
        stdout.print_json(json.dumps([report_json(r) for r in result.reports], ensure_ascii=False))
    else:
        stdout.print(_table(result.reports))
        stdout.print(f"{len(result.entries)} entries after removing duplicates", markup=False)
    worked = [r for r in result.reports if r.status in (SourceStatus.OK, SourceStatus.NOT_MODIFIED)]
    if not worked or (strict and len(worked) < len(result.reports)):
        return EXIT_SOURCES_FAILED
    return 0


def register(group: click.Group) -> None:
    """Add this module's commands to the `digest` group."""
    group.add_command(fetch_command)
