"""Shared pieces of the command-line layer: the --config option, consoles, and loading config."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click
from rich.console import Console

from digest.config import DEFAULT_CONFIG, Config, load_config
from digest.config.links import insecure_links_error, review_links
from digest.errors import UsageError

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("digest.cli")

stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def config_option(func: F) -> F:
    """Add `--config PATH` (default: $DIGEST_CONFIG or ./config.toml) to a command."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=lambda: os.environ.get("DIGEST_CONFIG", DEFAULT_CONFIG),
        show_default="$DIGEST_CONFIG or config.toml",
        help="Configuration file; every path in it is relative to its folder.",
    )(func)


def read_config(config_path: Path, edition: str | None = None) -> Config:
    """Load and validate the config file (raises ConfigError listing every problem); with `edition`,
    narrowed to that `[[editions]]` table (raises UsageError for an unknown id)."""
    config = load_config(config_path)
    if edition is None:
        return config
    from digest.config.editions import edition_config  # noqa: PLC0415 - light, but only with --edition

    return edition_config(config, edition)


def edition_option(func: F) -> F:
    """Add `--edition ID` (an `[[editions]]` id) to a command."""
    return click.option(
        "--edition",
        "edition",
        metavar="ID",
        default=None,
        help="The [[editions]] edition to act on (its id, e.g. staff); needed when the config has editions.",
    )(func)


def require_edition(config: Config, command: str) -> None:
    """A config with `[[editions]]` needs `--edition` for commands that act on one issue.

    Raises:
        UsageError: naming the editions configured.
    """
    if config.editions and config.edition is None:
        ids = ", ".join(e.id for e in config.editions)
        raise UsageError(
            f"{config.path} has [[editions]]: say which with --edition ID",
            hint=f"digest {command} --edition one of: {ids}",
        )


def allow_insecure_links_option(func: F) -> F:
    """Add `--allow-insecure-links` to a command that sends (send, run, schedule)."""
    return click.option(
        "--allow-insecure-links",
        is_flag=True,
        help="Send over SMTP although [web] base_url is not https:// or names a loopback or private address"
        " (the unsubscribe links will not work for readers; `digest check` lists the problems).",
    )(func)


def refuse_insecure_links(config: Config, *, allowed: bool, dry_run: bool = False) -> None:
    """Refuse a send whose links `digest check` fails (a dry run, or --allow-insecure-links, only warns).

    `digest send`, `digest run` and `digest schedule` call it before anything is sent.

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


class StopFlag:
    """SIGINT/SIGTERM ask the job to stop: the run in progress finishes the message in flight and
    leaves the rest for the next run; a second signal stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def install(self) -> StopFlag:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)
        return self

    @contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Install the handlers for a block, then put back the ones there were before."""
        previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        self.install()
        try:
            yield self
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.event.is_set():
            log.warning("%s again: stopping now", name)
            raise KeyboardInterrupt
        self.event.set()
        log.warning(
            "%s received: stopping; a run or send in progress stops after the messages in flight and"
            " leaves the rest for the next run (send the signal again to stop at once)",
            name,
        )

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait(self, seconds: float) -> bool:
        return self.event.wait(seconds)


def write_personal_file(path: Path, text: str) -> None:
    """Write a file of personal data (addresses, a subject access export) readable by its owner only.

    Raises:
        UsageError: the file cannot be written (the message names it and why).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            os.fchmod(handle.fileno(), 0o600)  # an existing file too: it now holds personal data
            handle.write(text)
    except OSError as e:
        raise UsageError(
            f"{path}: cannot write: {e.strerror}", hint="give a path in a folder you can write"
        ) from e
