"""`digest subscribers tag` and `untag`: the audiences of `[[editions]]` (an edition goes to subscribers
holding any of its `audience` tags)."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.common import config_option, read_config, stdout
from digest.deliver import audience
from digest.state.store import open_store


@click.command("tag")
@config_option
@click.argument("email")
@click.argument("tags", nargs=-1, required=True)
def tag_command(config_path: Path, email: str, tags: tuple[str, ...]) -> int:
    """Give a subscriber one or more tags (the audiences of [[editions]], e.g. staff residents)."""
    config = read_config(config_path)
    with open_store(config) as db:
        address, now_held = audience.tag_subscriber(
            db, email, tags, allow_special_domains=config.subscribers.allow_special_domains
        )
    stdout.print(f"{address}: tags {', '.join(now_held) or '(none)'}", markup=False)
    return 0


@click.command("untag")
@config_option
@click.argument("email")
@click.argument("tags", nargs=-1, required=True)
def untag_command(config_path: Path, email: str, tags: tuple[str, ...]) -> int:
    """Take one or more tags from a subscriber."""
    config = read_config(config_path)
    with open_store(config) as db:
        address, now_held = audience.untag_subscriber(
            db, email, tags, allow_special_domains=config.subscribers.allow_special_domains
        )
    stdout.print(f"{address}: tags {', '.join(now_held) or '(none)'}", markup=False)
    return 0
