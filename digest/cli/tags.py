"""`digest subscribers tag`, `untag` and `topics`: the audiences of `[[editions]]` (an edition goes to
subscribers holding any of its `audience` tags) and the priorities a reader chose (their topic variant)."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.common import config_option, read_config, stdout
from digest.deliver import audience
from digest.errors import UsageError
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


@click.command("topics")
@config_option
@click.argument("email")
@click.argument("priorities", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Clear the choice: the reader gets the whole issue.")
def topics_command(config_path: Path, email: str, priorities: tuple[str, ...], everything: bool) -> int:
    """Set the priorities a reader chose: they get the variant of each issue with only those entries.

    Name priorities as in [[priorities]] name (quote names with spaces); --all clears the choice.
    """
    if everything == bool(priorities):
        raise UsageError(
            "give either priority names or --all",
            hint='for example: digest subscribers topics ann@example.org "Start Well" "Age Well"',
        )
    config = read_config(config_path)
    with open_store(config) as db:
        address, chosen = audience.set_topics(
            db,
            email,
            () if everything else priorities,
            configured=[p.name for p in config.priorities],
            allow_special_domains=config.subscribers.allow_special_domains,
        )
    stdout.print(f"{address}: topics {'; '.join(chosen) or 'all (the whole issue)'}", markup=False)
    return 0
