"""The `digest` command: a thin layer over `digest.pipeline`. Only this package prints or exits.

Start-up is kept fast: `digest --help` and `digest --version` import only click. Each command's module
(and with it feedparser, premailer, starlette, httpx, rich, babel, jinja2 ...) is imported when that
command runs or shows its own help (`LazyGroup`); the list of commands and their one-line summaries is
the table below, which a test keeps equal to the commands themselves.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from typing import NamedTuple

import click

from digest import __version__
from digest.errors import ConfigError, DigestError

_options = {"verbose": False}


class LazyCommand(NamedTuple):
    module: str
    attribute: str
    summary: str  # the first sentence of the command's help, shown by `digest --help`


COMMANDS: dict[str, LazyCommand] = {
    "bounces": LazyCommand(
        "digest.cli.bounces",
        "bounces_group",
        "Process bounces and complaints that arrive in the bounce mailbox.",
    ),
    "build": LazyCommand(
        "digest.cli.build",
        "build_command",
        "Fetch, compose and render one issue (email.html, email.txt, email.eml, web.html, issue.json).",
    ),
    "check": LazyCommand(
        "digest.cli.check", "check", "Validate the configuration file and report every problem at once."
    ),
    "fetch": LazyCommand(
        "digest.cli.ingest",
        "fetch_command",
        "Fetch every enabled source, store its entries, and show each source's health.",
    ),
    "preview": LazyCommand(
        "digest.cli.web",
        "preview",
        "Serve the comms team's preview of the next issue, with its controls and pre-send report.",
    ),
    "publish": LazyCommand(
        "digest.cli.web",
        "publish",
        "Publish sent issues to the web archive again and regenerate its index and feed.",
    ),
    "run": LazyCommand(
        "digest.cli.run",
        "run_command",
        "Fetch, build and send the current issue once (resuming an interrupted send).",
    ),
    "schedule": LazyCommand(
        "digest.cli.run",
        "schedule_command",
        "Stay in the foreground and run the weekly send at [schedule] day/time/timezone.",
    ),
    "send": LazyCommand(
        "digest.cli.send",
        "send_command",
        "Send the latest built issue to every active subscriber who has not had it yet.",
    ),
    "serve": LazyCommand(
        "digest.cli.web", "serve", "Serve the web archive ([web] archive_dir) and the unsubscribe pages."
    ),
    "sources": LazyCommand(
        "digest.cli.sources", "sources", "Try web pages as sources before adding them to the config."
    ),
    "state": LazyCommand(
        "digest.cli.state",
        "state_group",
        "Look after the state database (SQLite by default, PostgreSQL with [state] url).",
    ),
    "status": LazyCommand(
        "digest.cli.run",
        "status_command",
        "Show recent issues, runs, the next scheduled run and source health.",
    ),
    "subscribers": LazyCommand(
        "digest.cli.send", "subscribers_group", "Manage the subscriber list kept in the state database."
    ),
    "users": LazyCommand(
        "digest.cli.users",
        "users_group",
        "Manage who may sign in to the preview (editor, approver or admin).",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported from `COMMANDS` only when one is run or asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            spec = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(spec.module), spec.attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{spec.module}.{spec.attribute} is not a click command")
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `digest --help`, from the summaries, without importing any command."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            # A command not imported yet is stood in for by one with its summary as help: the same text.
            command = self.commands.get(name) or click.Command(name, help=COMMANDS[name].summary)
            rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="digest")
@click.option("-v", "--verbose", is_flag=True, help="Show debug logs and the traceback of any error.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Logs as human-readable lines or as JSON lines.",
)
def cli(verbose: bool, log_format: str) -> None:
    """Turn news feeds into a weekly email digest, and send it exactly once."""
    from digest.logs import setup_logging

    _options["verbose"] = verbose
    setup_logging(verbose=verbose, json_lines=log_format == "json")


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (see the README for the list)."""
    try:
        result = cli.main(args=argv, prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        print("aborted", file=sys.stderr)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except DigestError as e:
        if _options["verbose"]:
            traceback.print_exc()
        from rich.markup import escape

        from digest.cli.common import stderr

        stderr.print(f"[bold red]error:[/] {escape(e.message)}", markup=True, highlight=False)
        if isinstance(e, ConfigError):
            for problem in e.problems:
                stderr.print(f"  {problem}", markup=False)
        if e.hint:
            stderr.print(f"[bold]hint:[/] {escape(e.hint)}", markup=True, highlight=False)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception:  # the last line of defence: a bug, reported as one
        logging.getLogger("digest").debug("unexpected error", exc_info=True)
        if _options["verbose"]:
            traceback.print_exc()
        exc = sys.exc_info()[1]
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        print("hint: this is a bug in digest; run again with -v and report the traceback", file=sys.stderr)
        return 1
    return result if isinstance(result, int) else 0
