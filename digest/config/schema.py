"""The configuration's shape: one frozen dataclass per table of `config.toml`, with the defaults.

Nothing here reads a file; `digest.config.load` fills these from a validated TOML document.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time as time_of_day
from pathlib import Path
from typing import Literal

DEFAULT_CONFIG = "config.toml"
USER_AGENT = "digest/0.1 (+https://github.com/digest-newsletter/digest; newsletter builder)"

SourceKind = Literal["http", "file", "glob"]
GroupBy = Literal["day", "week", "none"]
OnHoliday = Literal["send", "next_working_day", "skip"]
Transport = Literal["outbox", "smtp"]
Security = Literal["none", "starttls", "tls"]


SELECT_KEYS = ("item", "title", "link", "date", "summary", "category", "image")


@dataclass(frozen=True, slots=True)
class Selectors:
    """`[sources.select]` of an HTML listing source: CSS selectors, each optionally `selector@attribute`.

    `item` matches one element per entry; the others are looked up inside it. `link` defaults to the
    first `a@href` and `image` to the first `img@src`.
    """

    item: str
    title: str
    link: str = "a@href"
    date: str | None = None
    summary: str | None = None
    category: str | None = None
    image: str = "img@src"


@dataclass(frozen=True, slots=True)
class Source:
    """One `[[sources]]` table. `location` is the URL, or the absolute path / glob for local files."""

    name: str
    url: str
    kind: SourceKind
    location: str
    category: str
    timeout: float
    max_entries: int | None
    user_agent: str
    enabled: bool
    # kind = "html": a news listing page read with `select`; dates in it read with `date_format`.
    select: Selectors | None = None
    date_format: str = "auto"
    # enrich = true: each new entry's article page fills in a missing date, picture, summary, cut title.
    enrich: bool = False


@dataclass(frozen=True, slots=True)
class FetchSettings:
    concurrency: int = 8
    timeout: float = 20.0
    retries: int = 2
    max_bytes: int = 10_000_000
    user_agent: str = USER_AGENT
    enrich_max: int = 50


@dataclass(frozen=True, slots=True)
class DigestSettings:
    title: str = "Weekly digest"
    timezone: str = "Europe/London"
    locale: str = "en_GB"
    lookback_days: int = 7
    max_window_days: int = 31
    group_by: GroupBy = "day"
    categories: tuple[str, ...] = ()
    send_when_empty: bool = False
    section_cap: int = 10
    excerpt_chars: int = 240
    date_format: str = "EEEE d MMMM y"
    min_image_width: int = 120
    max_html_kb: int = 95


@dataclass(frozen=True, slots=True)
class HighlightSettings:
    max: int = 5
    explain: bool = False
    repeat_in_sections: bool = True


@dataclass(frozen=True, slots=True)
class Priority:
    """A strategic priority entries are matched to by whole-word/phrase keywords."""

    name: str
    summary: str
    link: str | None
    keywords: tuple[str, ...]
    categories: tuple[str, ...] = ()
    colour: str | None = None


@dataclass(frozen=True, slots=True)
class ThemeSettings:
    templates: Path | None = None
    organisation: str = ""
    organisation_line: str = ""
    logo_url: str | None = None
    logo_alt: str = ""
    why_line: str = "You receive this email because you subscribed to our news digest."
    primary_colour: str = "#005EB8"
    text_colour: str = "#212B32"
    background_colour: str = "#F0F4F5"
    card_colour: str = "#FFFFFF"
    secondary_text_colour: str = "#4C6272"
    dark_link_colour: str = "#8CC8FF"


@dataclass(frozen=True, slots=True)
class WebSettings:
    base_url: str = "http://127.0.0.1:8080"
    archive_dir: Path = Path(".digest/site")
    secret_env: str = "DIGEST_SECRET"  # noqa: S105 - the name of a variable, not a secret


@dataclass(frozen=True, slots=True)
class DeliverySettings:
    transport: Transport = "outbox"
    from_address: str = "digest@localhost"
    from_name: str = ""
    reply_to: str | None = None
    list_id: str = "digest.localhost"
    unsubscribe_mailto: str | None = None
    outbox: Path = Path(".digest/outbox")
    dkim_key: Path | None = None
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    fallback_name: str = "there"
    bounce_address: str | None = None  # SMTP MAIL FROM and Return-Path; None: the From address
    verp: bool = False  # bounces+<signed id>@domain of bounce_address, one per recipient
    batch_size: int = 500  # recipients a sender claims at a time when the state is PostgreSQL


BounceSourceName = Literal["maildir", "imap"]


@dataclass(frozen=True, slots=True)
class BounceSettings:
    """`[bounces]`: where bounces and complaints arrive, and what they do.

    `maildir` is a Maildir folder (relative to the config file); `imap_host` an IMAP mailbox whose
    `folder` is read, with the password from the environment variable `password_env` names. Processed
    IMAP messages are flagged \\Seen and, with `move_to`, moved to that folder.
    """

    maildir: Path | None = None
    imap_host: str | None = None
    imap_port: int = 993
    imap_user: str | None = None
    password_env: str | None = None
    folder: str = "INBOX"
    move_to: str | None = None
    tls: Security = "tls"
    ca_file: Path | None = None
    timeout: float = 30.0
    soft_limit: int = 3
    sns_cert_hosts: tuple[str, ...] = ("sns.*.amazonaws.com",)
    sns_ca_file: Path | None = None
    sns_topic_arns: tuple[str, ...] = ()

    @property
    def default_source(self) -> BounceSourceName | None:
        """The mailbox `digest bounces process` and `digest run` read without a flag."""
        if self.maildir is not None:
            return "maildir"
        if self.imap_host is not None:
            return "imap"
        return None


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    security: Security = "starttls"
    username: str | None = None
    password_env: str | None = None
    pool_size: int = 4
    rate_per_second: float = 10.0
    timeout: float = 30.0
    data_timeout: float = 600.0  # the wait for the reply to the end of a message (RFC 5321 4.5.3.2.6)
    retries: int = 3
    retry_delay: float = 1.0
    ca_file: Path | None = None


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    day: str = "friday"
    time: str = "08:00"
    timezone: str = "Europe/London"
    catch_up_hours: float = 12.0
    retry_minutes: int = 15
    # A bank holiday region ("england-and-wales", "scotland", "DE-BY"; see digest/config/holidays.py) and
    # what a slot on one of its holidays does: runs anyway, moves to the next working day, or is skipped.
    holidays: str | None = None
    on_holiday: OnHoliday = "send"
    # Build the next issue's draft this many hours before its slot and tell [notify] to (0: off).
    draft_ahead_hours: float = 0.0

    @property
    def at(self) -> time_of_day:
        hours, minutes = self.time.split(":")
        return time_of_day(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class ApprovalSettings:
    required: bool = False
    # Whoever made the last change to an issue's content cannot approve it (needs signed-in users).
    four_eyes: bool = False


@dataclass(frozen=True, slots=True)
class NotifySettings:
    """`[notify]`: the comms team's addresses, told when a draft is ready, waiting, or sent."""

    to: tuple[str, ...] = ()
    preview_url: str = "http://127.0.0.1:8000/"  # the link in the messages
    remind_hours: float = 24.0  # at most one "waiting for approval" reminder per issue this often


@dataclass(frozen=True, slots=True)
class StatusSettings:
    failing_after: int = 3


@dataclass(frozen=True, slots=True)
class PreviewSettings:
    access_token_env: str = "DIGEST_PREVIEW_TOKEN"  # noqa: S105 - a variable name
    # Host names (optionally `name:port`) the preview answers besides 127.0.0.1, localhost and [::1].
    allowed_hosts: tuple[str, ...] = ()
    # Sign-in: "password" (users added with `digest users add`) or "header" (a trusted proxy names the user).
    auth: str = "password"
    session_hours: float = 12.0
    user_header: str = "X-Forwarded-Email"
    trusted_proxies: tuple[str, ...] = ()  # addresses or networks ("10.0.0.5", "10.0.0.0/24")
    # [preview.roles]: header-authenticated user -> role; "*" is the role of anyone not listed.
    roles: tuple[tuple[str, str], ...] = ()
    # Where one-off items added in the preview are written, as curated Markdown items (a folder a
    # `*.md` glob source reads); None: the preview cannot add items.
    items_folder: Path | None = None


@dataclass(frozen=True, slots=True)
class SubscriberSettings:
    allow_special_domains: bool = False  # accept .local / .internal (and other special-use) domains


Cadence = Literal["daily", "weekly", "monthly", "cron"]


@dataclass(frozen=True, slots=True)
class Edition:
    """One `[[editions]]` table: a newsletter of its own made from the shared pool of sources.

    `cadence` is daily, weekly, monthly or cron (then `cron` holds the expression, evaluated with
    croniter in `timezone`); `day` is a weekday name (weekly) or a day of the month 1-28 (monthly).
    Empty `sources`/`priorities` mean all of them; empty `audience` means every active subscriber.
    `theme` is `[theme]` with the keys of `[editions.theme]` (and `templates`) over it; None: `[theme]`.
    """

    id: str
    title: str
    cadence: Cadence
    time: str
    timezone: str
    day: str = ""
    cron: str = ""
    sources: tuple[str, ...] = ()
    priorities: tuple[str, ...] = ()
    audience: tuple[str, ...] = ()
    theme: ThemeSettings | None = None

    @property
    def cron_expression(self) -> str:
        """The cadence as a five-field cron expression (minute hour day-of-month month day-of-week)."""
        if self.cadence == "cron":
            return self.cron
        hours, minutes = self.time.split(":")
        at = f"{int(minutes)} {int(hours)}"
        if self.cadence == "daily":
            return f"{at} * * *"
        if self.cadence == "monthly":
            return f"{at} {int(self.day or 1)} * *"
        return f"{at} * * {self.day[:3]}"


RecordIp = Literal["none", "truncated"]


@dataclass(frozen=True, slots=True)
class SubscribeSettings:
    """`[subscribe]`: readers signing themselves up on `digest serve` (double opt-in)."""

    enabled: bool = False  # off: /subscribe, /confirm and /preferences are not served
    consent_text: str = "Send me this newsletter by email. I can unsubscribe at any time."
    privacy_url: str | None = None
    confirm_within_hours: int = 48
    pending_keep_days: int = 7
    per_ip_per_hour: int = 5
    record_ip: RecordIp = "none"


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration. `root` is the folder of the config file.

    `keep_days` is `[state] keep_days`: how long entries that left their feed are kept in state.
    `ledger_keep_days` is `[state] ledger_keep_days`: after how many days the send ledger's rows of a
    sent issue (one per recipient) are folded into per-issue counts.
    `state_url` is `[state] url`: when set, the state is in that PostgreSQL database (not at
    `state_path`), with the password from the environment variable `state_password_env` names.
    """

    path: Path
    root: Path
    state_path: Path
    lock_path: Path
    keep_days: int
    fetch: FetchSettings
    sources: tuple[Source, ...]
    digest: DigestSettings
    highlights: HighlightSettings
    priorities: tuple[Priority, ...]
    theme: ThemeSettings
    web: WebSettings
    delivery: DeliverySettings
    smtp: SmtpSettings
    schedule: ScheduleSettings
    approval: ApprovalSettings
    status: StatusSettings
    preview: PreviewSettings
    state_url: str | None = None
    state_password_env: str | None = None
    ledger_keep_days: int = 400
    subscribers: SubscriberSettings = SubscriberSettings()
    notify: NotifySettings = NotifySettings()
    bounces: BounceSettings | None = None  # None: no [bounces] table
    enablers: tuple[Priority, ...] = ()
    editions: tuple[Edition, ...] = ()  # [[editions]]; empty: one edition from [digest]/[schedule]
    edition: Edition | None = None  # the edition this config was narrowed to (`edition_config`)

    @property
    def edition_id(self) -> str | None:
        return self.edition.id if self.edition else None

    @property
    def archive_url(self) -> str:
        """The public URL of this edition's part of the web archive (`[web] base_url`, plus `/<id>`)."""
        return f"{self.web.base_url}/{self.edition.id}" if self.edition else self.web.base_url

    subscribe: SubscribeSettings = SubscribeSettings()

    @property
    def enabled_sources(self) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.enabled)
