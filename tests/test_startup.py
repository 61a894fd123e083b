"""Start-up: `digest --help` and `digest --version` import click and nothing heavy; each command's own
modules load when it runs or shows its help. The lazy command table agrees with the commands."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from digest.cli import COMMANDS, LazyGroup, cli

# What a command needs and `--help` must not pay for (each costs tens to hundreds of ms to import).
HEAVY = (
    "feedparser",
    "premailer",
    "cssutils",
    "lxml",
    "starlette",
    "uvicorn",
    "httpx",
    "rich",
    "babel",
    "jinja2",
    "mjml",
    "dkim",
    "dns",
    "nh3",
    "email_validator",
    "markdown_it",
    "itsdangerous",
    "schedule",
    "pytz",
    "sqlite3",
    "holidays",  # only when [schedule] holidays is set
)


# `python -m digest ARGS`, then the modules it imported as JSON on stderr (sys.modules also sees the
# modules importlib.import_module loads, which `-X importtime` does not report).
PROBE = """
import json, runpy, sys
sys.argv = ["digest", *sys.argv[1:]]
try:
    runpy.run_module("digest", run_name="__main__", alter_sys=True)
except SystemExit as e:
    code = e.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def _imported(*args: str) -> set[str]:
    """The modules `python -m digest ARGS` has imported when it exits (in a fresh interpreter)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, check=False
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None), result.stderr[-2000:]
    names = set(report["modules"])
    assert "click" in names and "digest.cli" in names
    return names


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("-h",)])
def test_help_and_version_import_nothing_heavy(args: tuple[str, ...]) -> None:
    imported = _imported(*args)
    heavy = sorted(n for n in imported if n.split(".")[0] in HEAVY)
    assert heavy == [], f"digest {' '.join(args)} imported {heavy}"
    commands = sorted(n for n in imported if n.startswith("digest.") and n != "digest.cli")
    assert commands == ["digest.errors"], commands


def test_a_commands_help_loads_only_what_it_needs() -> None:
    imported = _imported("check", "--help")
    assert "digest.cli.check" in imported
    assert not {"digest.cli.web", "digest.cli.send", "starlette", "uvicorn"} & imported


def test_the_command_list_is_the_same_as_with_every_command_loaded() -> None:
    lazy = CliRunner().invoke(LazyGroup(name="digest", params=cli.params, help=cli.help), ["--help"])
    eager = click.Group(name="digest", params=cli.params, help=cli.help)
    for name, spec in COMMANDS.items():
        eager.add_command(getattr(importlib.import_module(spec.module), spec.attribute), name)
    expected = CliRunner().invoke(eager, ["--help"])
    assert lazy.exit_code == expected.exit_code == 0
    assert lazy.output == expected.output
    assert lazy.output.count("\n  ") >= len(COMMANDS)


def test_each_summary_is_the_first_sentence_of_the_commands_help() -> None:
    for name, spec in COMMANDS.items():
        command = getattr(importlib.import_module(spec.module), spec.attribute)
        assert isinstance(command, click.Command)
        assert command.name == name
        assert command.get_short_help_str(1000) == spec.summary, name


def test_the_table_lists_every_command_the_modules_register() -> None:
    """A command added to a module's `register` but not to the table would be missing from `digest`."""
    registered: dict[str, str] = {}
    for module in sorted({spec.module for spec in COMMANDS.values()}):
        group = click.Group()
        importlib.import_module(module).register(group)
        registered.update(dict.fromkeys(group.commands, module))
    assert registered == {name: spec.module for name, spec in COMMANDS.items()}


def test_an_unknown_command_is_still_an_error() -> None:
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output
