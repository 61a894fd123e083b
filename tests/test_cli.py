"""The command-line surface: every command has help text and is documented in the README."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from digest.cli import cli, main

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _commands(group: click.Group, prefix: str = "digest") -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    context = click.Context(group)
    for name in group.list_commands(context):  # the root group imports its commands when asked
        command = group.get_command(context, name)
        assert command is not None, name
        path = f"{prefix} {name}"
        found.append((path, command))
        if isinstance(command, click.Group):
            found.extend(_commands(command, path))
    return found


COMMANDS = _commands(cli)


def test_the_command_set_is_complete() -> None:
    names = {path for path, _ in COMMANDS}
    for expected in (
        "digest check",
        "digest fetch",
        "digest build",
        "digest send",
        "digest subscribers import",
        "digest subscribers add",
        "digest subscribers remove",
        "digest subscribers list",
        "digest run",
        "digest schedule",
        "digest status",
        "digest preview",
        "digest serve",
        "digest state migrate",
    ):
        assert expected in names


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=[p for p, _ in COMMANDS])
def test_every_command_has_help_and_is_in_the_readme(
    path: str, command: click.Command, capsys: pytest.CaptureFixture[str]
) -> None:
    assert command.help and command.help.strip(), f"{path} has no help text"
    assert re.search(rf"{re.escape(path)}\b", README), f"{path} is not documented in README.md"
    assert main([*path.split()[1:], "--help"]) == 0
    assert "Usage:" in capsys.readouterr().out
