"""Reads `config.toml` into a frozen `Config`, reporting every problem at once with its dotted path.

Every path in the file is relative to the folder of the config file. Secrets are never read from the
file: settings such as `password_env` name an environment variable instead.

Raises ConfigError (exit code 2) listing each problem as `sources[2].url: ...`.

The package: `schema` (the dataclasses and defaults), `table` (typed reading of one TOML table and the
shared checks), `sections` (readers of the larger tables), `load` (`parse_config`, `load_config`).
"""

from digest.config.load import load_config, parse_config
from digest.config.schema import (
    DEFAULT_CONFIG,
    SELECT_KEYS,
    USER_AGENT,
    ApprovalSettings,
    BounceSettings,
    Config,
    DeliverySettings,
    DigestSettings,
    Edition,
    FetchSettings,
    GroupBy,
    HighlightSettings,
    PreviewSettings,
    Priority,
    ScheduleSettings,
    Security,
    Selectors,
    SmtpSettings,
    Source,
    SourceKind,
    StatusSettings,
    SubscriberSettings,
    SubscribeSettings,
    ThemeSettings,
    Transport,
    WebSettings,
)

__all__ = [
    "DEFAULT_CONFIG",
    "SELECT_KEYS",
    "USER_AGENT",
    "ApprovalSettings",
    "BounceSettings",
    "Config",
    "DeliverySettings",
    "DigestSettings",
    "Edition",
    "FetchSettings",
    "GroupBy",
    "HighlightSettings",
    "PreviewSettings",
    "Priority",
    "ScheduleSettings",
    "Security",
    "Selectors",
    "SmtpSettings",
    "Source",
    "SourceKind",
    "StatusSettings",
    "SubscribeSettings",
    "SubscriberSettings",
    "ThemeSettings",
    "Transport",
    "WebSettings",
    "load_config",
    "parse_config",
]
