"""`digest state migrate --to URL`: move the SQLite state into an empty PostgreSQL database.
`digest state fold`: fold the old send-ledger rows into per-issue counts."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import click

from digest.cli.common import config_option, read_config, stdout
from digest.config.state import url_problem
from digest.errors import UsageError
from digest.pipeline.ledger import fold_old_ledger
from digest.state.store import open_store


@click.group("state")
def state_group() -> None:
    """Look after the state database (SQLite by default, PostgreSQL with [state] url)."""


@state_group.command("migrate")
@config_option
@click.option(
    "--to",
    "url",
    required=True,
    metavar="postgresql://USER@HOST:PORT/DB",
    help="The empty PostgreSQL database to copy the SQLite state into (no password in the URL).",
)
@click.option(
    "--password-env",
    metavar="NAME",
    default=None,
    help="Environment variable holding the PostgreSQL password (PGPASSWORD and ~/.pgpass work too).",
)
def migrate_command(config_path: Path, url: str, password_env: str | None) -> int:
    """Copy the SQLite state ([state] path) into an empty PostgreSQL database and check the counts.

    Every table is copied (subscribers, the send ledger, issues, approvals, the feed cache, entries,
    runs, settings) in one transaction: either all of it arrives, with the row count of each table
    checked, or nothing does. A database where any table holds a row is refused. Stop digest run,
    schedule and serve first; then set [state] url to the new database.
    """
    config = read_config(config_path)
    problem = url_problem(url)
    if problem and "password" in problem:
        raise UsageError(
            "--to: must not contain a password",
            hint="pass postgresql://USER@HOST:PORT/DATABASE and --password-env NAME, a variable holding it",
        )
    if problem:
        raise UsageError(f"--to: {problem}", hint="pass the URL as postgresql://USER@HOST:PORT/DATABASE")
    if config.state_url:
        raise UsageError(
            f"{config.path}: the state is already in PostgreSQL ([state] url = {config.state_url})",
            hint="digest state migrate copies a SQLite state ([state] path) into PostgreSQL",
        )
    if password_env is not None and not os.environ.get(password_env):
        raise UsageError(
            f"--password-env: the environment variable {password_env} is not set",
            hint=f"set {password_env} to the password of the PostgreSQL user in --to",
        )
    if not config.state_path.exists():
        raise UsageError(
            f"{config.state_path}: no SQLite state here to migrate ([state] path)",
            hint="check --config; digest fetch, build or subscribers create the state",
        )
    # psycopg only for this command
    from digest.state.backend import SqliteDatabase  # noqa: PLC0415
    from digest.state.copy import copy_state  # noqa: PLC0415
    from digest.state.postgres import PostgresDatabase  # noqa: PLC0415

    source = SqliteDatabase.open(config.state_path)
    try:
        target = PostgresDatabase.open(url, password_env=password_env, pool_size=1, require_empty=True)
        try:
            counts = copy_state(source, target)
        finally:
            target.close()
    finally:
        source.close()
    width = max(len(c.table) for c in counts)
    for c in counts:
        stdout.print(f"{c.table:<{width}}  {c.copied_rows:>9} of {c.source_rows}", markup=False)
    total = sum(c.copied_rows for c in counts)
    stdout.print(
        f"Copied {total} rows in {len(counts)} tables from {config.state_path} to {url}; every count"
        " matches. To use it, replace [state] path with:",
        markup=False,
    )
    stdout.print(
        f'  url = "{url}"' + (f'\n  password_env = "{password_env}"' if password_env else ""), markup=False
    )
    return 0


def register(group: click.Group) -> None:
    """Add `state` to the `digest` group."""
    group.add_command(state_group)


@state_group.command("fold")
@config_option
def fold_command(config_path: Path) -> int:
    """Fold send-ledger rows older than [state] ledger_keep_days into per-issue counts.

    For each issue whose sending has finished, the rows of its recipients (address, Message-ID,
    outcome) older than ledger_keep_days (default 400) become one count per outcome: digest status
    still shows them, the addresses are gone. The bounces and complaints of those issues become counts
    too, and older SNS message ids are forgotten. digest run does this at the end of every run.
    """
    config = read_config(config_path)
    db = open_store(config)
    try:
        result = fold_old_ledger(config, db, now=datetime.now(UTC))
    finally:
        db.close()
    stdout.print(
        f"Folded {result.rows} send-ledger row{'s' * (result.rows != 1)} of {result.issues}"
        f" issue{'s' * (result.issues != 1)} older than {config.ledger_keep_days} days"
        " into per-issue counts.",
        markup=False,
    )
    if result.bounce_events or result.hook_messages:
        stdout.print(
            f"Folded or deleted {result.bounce_events} bounce event{'s' * (result.bounce_events != 1)}"
            f" and forgot {result.hook_messages} SNS message id{'s' * (result.hook_messages != 1)}"
            " as old.",
            markup=False,
        )
    return 0
