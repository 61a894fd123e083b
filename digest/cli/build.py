"""Commands of this area are registered here."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Add this module's commands to the `digest` group."""
