"""`digest users`: the people who may sign in to the preview, and their roles."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from digest.cli.common import config_option, read_config, stdout
from digest.pipeline import desk
from digest.state.store import open_store


def _now() -> datetime:
    return datetime.now(UTC)


def _password(stdin: bool) -> str:
    """The new password: from the first line of stdin with --password-stdin, else prompted twice, hidden."""
    if stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    value = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return str(value)


_stdin_option = click.option(
    "--password-stdin",
    "password_stdin",
    is_flag=True,
    help="Read the password from the first line of standard input (for scripts) instead of prompting.",
)


@click.group("users")
def users_group() -> None:
    """Manage who may sign in to the preview (editor, approver or admin).

    Once a user exists, `digest preview` asks everyone to sign in. Passwords are hashed with argon2id.
    """


@users_group.command("add")
@config_option
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(desk.ROLES),
    required=True,
    help="editor: edit and test-send; approver: also approve; admin: also manage users.",
)
@_stdin_option
def add(config_path: Path, name: str, role: str, password_stdin: bool) -> int:
    """Add a preview user; the password is prompted (hidden, typed twice)."""
    config = read_config(config_path)
    desk.check_name(name)
    password = _password(password_stdin)
    with open_store(config) as db:
        desk.add_user(db, name, role, password, now=_now())
    stdout.print(f"added {name} ({role}): the preview now asks for a sign-in", markup=False)
    return 0


@users_group.command("list")
@config_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_command(config_path: Path, as_json: bool) -> int:
    """List the preview users and their roles."""
    config = read_config(config_path)
    with open_store(config) as db:
        users = desk.list_users(db)
    if as_json:
        rows = [{"name": u.name, "role": u.role, "created_at": u.created_at.isoformat()} for u in users]
        click.echo(json.dumps(rows, indent=2))
    elif not users:
        stdout.print("no users: the preview answers on this machine only, without a sign-in", markup=False)
    for user in users if not as_json else ():
        stdout.print(f"{user.name}\t{user.role}\tadded {user.created_at:%Y-%m-%d %H:%M} UTC", markup=False)
    return 0


@users_group.command("remove")
@config_option
@click.argument("name")
def remove(config_path: Path, name: str) -> int:
    """Remove a preview user (their sessions end at their next request)."""
    config = read_config(config_path)
    with open_store(config) as db:
        desk.remove_user(db, name)
    stdout.print(f"removed {name}", markup=False)
    return 0


@users_group.command("passwd")
@config_option
@click.argument("name")
@_stdin_option
def passwd(config_path: Path, name: str, password_stdin: bool) -> int:
    """Set a new password for a preview user (prompted, hidden, typed twice)."""
    config = read_config(config_path)
    with open_store(config) as db:
        desk.require_user(db, name)
        password = _password(password_stdin)
        desk.change_password(db, name, password, now=_now())
    stdout.print(f"changed the password of {name}", markup=False)
    return 0


def register(group: click.Group) -> None:
    """Add `users` to the `digest` group."""
    group.add_command(users_group)
