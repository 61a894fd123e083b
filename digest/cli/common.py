"""Shared pieces of the command-line layer: the --config option, consoles, and loading config."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from digest.config import DEFAULT_CONFIG, Config, load_config

F = TypeVar("F", bound=Callable[..., Any])

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


def read_config(config_path: Path) -> Config:
    """Load and validate the config file (raises ConfigError listing every problem)."""
    return load_config(config_path)
