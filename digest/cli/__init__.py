"""The `digest` command: a thin layer over `digest.pipeline`. Only this package prints or exits."""

from __future__ import annotations

import logging
import sys
import traceback

import click
from rich.markup import escape

from digest import __version__
from digest.cli import bounces, build, check, ingest, run, send, state, web
from digest.cli.common import stderr
from digest.errors import ConfigError, DigestError
from digest.logs import setup_logging

_options = {"verbose": False}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    _options["verbose"] = verbose
    setup_logging(verbose=verbose, json_lines=log_format == "json")


for module in (check, ingest, build, send, run, web, state, bounces):
    module.register(cli)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code (see the README for the list)."""
    try:
        result = cli.main(args=argv, prog_name="digest", standalone_mode=False)
    except click.exceptions.Abort:
        stderr.print("aborted")
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        e.show()
        return e.exit_code
    except DigestError as e:
        if _options["verbose"]:
            traceback.print_exc()
        stderr.print(f"[bold red]error:[/] {escape(e.message)}", markup=True, highlight=False)
        if isinstance(e, ConfigError):
            for problem in e.problems:
                stderr.print(f"  {problem}", markup=False)
        if e.hint:
            stderr.print(f"[bold]hint:[/] {escape(e.hint)}", markup=True, highlight=False)
        return e.exit_code
    except KeyboardInterrupt:
        stderr.print("interrupted")
        return 130
    except Exception:  # the last line of defence: a bug, reported as one
        logging.getLogger("digest").debug("unexpected error", exc_info=True)
        if _options["verbose"]:
            traceback.print_exc()
        exc = sys.exc_info()[1]
        stderr.print(f"error: unexpected {type(exc).__name__}: {exc}", markup=False)
        stderr.print(
            "hint: this is a bug in digest; run again with -v and report the traceback", markup=False
        )
        return 1
    return result if isinstance(result, int) else 0
