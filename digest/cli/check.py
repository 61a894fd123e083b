"""`digest check`: validate a configuration (and, with --email, a built email)."""

from __future__ import annotations

from pathlib import Path

import click

from digest.cli.common import config_option, read_config, stdout


@click.command()
@config_option
def check(config_path: Path) -> int:
    """Validate the configuration file and report every problem at once."""
    config = read_config(config_path)
    enabled = len(config.enabled_sources)
    stdout.print(
        f"{config.path}: ok ({enabled} source{'s' if enabled != 1 else ''} enabled, "
        f"{len(config.priorities)} priorities)",
        markup=False,
    )
    return 0


def register(group: click.Group) -> None:
    group.add_command(check)
