"""Reads `config.toml` into a frozen `Config`, reporting every problem at once with its dotted path.

Every path in the file is relative to the folder of the config file. Secrets are never read from the
file: settings such as `password_env` name an environment variable instead.

Raises ConfigError (exit code 2) listing each problem as `sources[2].url: ...`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from datetime import time as time_of_day
from pathlib import Path
from typing import Any, Literal, TypeVar, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.errors import ConfigError

DEFAULT_CONFIG = "config.toml"
USER_AGENT = "digest/0.1 (+https://github.com/digest-newsletter/digest; newsletter builder)"
_GLOB_CHARS = re.compile(r"[*?\[]")
_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

SourceKind = Literal["http", "file", "glob"]
GroupBy = Literal["day", "week", "none"]
Transport = Literal["outbox", "smtp"]
Security = Literal["none", "starttls", "tls"]


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


@dataclass(frozen=True, slots=True)
class FetchSettings:
    concurrency: int = 8
    timeout: float = 20.0
    retries: int = 2
    max_bytes: int = 10_000_000
    user_agent: str = USER_AGENT


@dataclass(frozen=True, slots=True)
class DigestSettings:
    title: str = "Weekly digest"
    timezone: str = "Europe/London"
    locale: str = "en_GB"
    lookback_days: int = 7
    group_by: GroupBy = "day"
    categories: tuple[str, ...] = ()
    send_when_empty: bool = False
    section_cap: int = 10
    excerpt_chars: int = 240
    date_format: str = "EEEE d MMMM y"


@dataclass(frozen=True, slots=True)
class HighlightSettings:
    max: int = 5


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

    @property
    def at(self) -> time_of_day:
        hours, minutes = self.time.split(":")
        return time_of_day(int(hours), int(minutes))


@dataclass(frozen=True, slots=True)
class ApprovalSettings:
    required: bool = False


@dataclass(frozen=True, slots=True)
class StatusSettings:
    failing_after: int = 3


@dataclass(frozen=True, slots=True)
class PreviewSettings:
    access_token_env: str = "DIGEST_PREVIEW_TOKEN"  # noqa: S105 - a variable name


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration. `root` is the folder of the config file."""

    path: Path
    root: Path
    state_path: Path
    lock_path: Path
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

    @property
    def enabled_sources(self) -> tuple[Source, ...]:
        return tuple(s for s in self.sources if s.enabled)


T = TypeVar("T")
_MISSING: Any = object()


class _Table:
    """Reads typed values out of one TOML table, recording problems instead of raising."""

    def __init__(self, data: Mapping[str, Any], path: str, problems: list[str]) -> None:
        self.data = data
        self.path = path
        self.problems = problems
        self.seen: set[str] = set()

    def where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.where(key)}: {message}")

    def _get(self, key: str, kind: type | tuple[type, ...], kind_name: str, default: Any) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is _MISSING:
                self.problem(key, f"is required ({kind_name})")
            return default
        value = self.data[key]
        if isinstance(value, bool) and kind is not bool:
            self.problem(key, f"must be {kind_name}, not {_type_name(value)}")
            return default if default is not _MISSING else None
        if not isinstance(value, kind):
            self.problem(key, f"must be {kind_name}, not {_type_name(value)}")
            return default if default is not _MISSING else None
        return value

    def text(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, str, "a string", default)
        if isinstance(value, str) and key in self.data and not value.strip() and default is _MISSING:
            self.problem(key, "must not be empty")
        return value

    def integer(self, key: str, default: Any = _MISSING, *, minimum: int | None = None) -> Any:
        value = self._get(key, int, "an integer", default)
        if isinstance(value, int) and minimum is not None and value < minimum and key in self.data:
            self.problem(key, f"must be at least {minimum}, not {value}")
            return default
        return value

    def number(self, key: str, default: Any = _MISSING, *, positive: bool = True) -> Any:
        value = self._get(key, (int, float), "a number", default)
        if isinstance(value, int | float) and positive and value <= 0 and key in self.data:
            self.problem(key, f"must be greater than 0, not {value}")
            return default
        return float(value) if isinstance(value, int | float) else value

    def boolean(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, bool, "true or false", default)

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key, list, "a list of strings", list(default))
        if not isinstance(value, list):
            return default
        bad = [i for i, item in enumerate(value) if not isinstance(item, str)]
        for i in bad:
            self.problems.append(f"{self.where(key)}[{i}]: must be a string")
        return tuple(item for item in value if isinstance(item, str))

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        if isinstance(value, str) and value not in choices:
            self.problem(key, f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}")
            return default
        return value if isinstance(value, str) else default

    def table(self, key: str) -> _Table:
        value = self._get(key, dict, "a table", {})
        return _Table(value if isinstance(value, dict) else {}, self.where(key), self.problems)

    def tables(self, key: str) -> list[_Table]:
        value = self._get(key, list, "an array of tables", [])
        if not isinstance(value, list):
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self.problems.append(f"{self.where(key)}[{i}]: must be a table")
                continue
            out.append(_Table(item, f"{self.where(key)}[{i}]", self.problems))
        return out

    def finish(self) -> None:
        for key in sorted(set(self.data) - self.seen):
            self.problem(key, "unknown key (check the spelling against the commented config.toml)")


def _type_name(value: object) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list"}
    return names.get(type(value), "a table" if isinstance(value, dict) else type(value).__name__)


def _http_url(table: _Table, key: str, value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        table.problem(key, f"{value!r} is not an http(s) URL with a host")
        return False
    return True


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _local_path(table: _Table, key: str, value: str, root: Path, *, must_exist: bool) -> Path | None:
    path = (root / value).resolve() if not Path(value).is_absolute() else Path(value).resolve()
    if not _inside(root, path):
        table.problem(key, f"{value!r} is outside the config folder {root} (local files must stay inside it)")
        return None
    if must_exist and not path.exists():
        table.problem(key, f"file {value} does not exist (relative to {root})")
        return None
    return path


def _read_source(table: _Table, root: Path, fetch: FetchSettings) -> Source | None:
    name = table.text("name")
    url = table.text("url")
    category = table.text("category", "News")
    timeout = table.number("timeout", fetch.timeout)
    max_entries = table.integer("max_entries", None, minimum=1)
    user_agent = table.text("user_agent", fetch.user_agent)
    enabled = table.boolean("enabled", True)
    table.finish()
    if not isinstance(url, str) or not url.strip():
        return None
    kind: SourceKind
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        if not _http_url(table, "url", url):
            return None
        kind, location = "http", url
    elif scheme and len(scheme) > 1:
        table.problem("url", f"{url!r}: only http(s) URLs and local paths are supported, not {scheme}:")
        return None
    elif _GLOB_CHARS.search(url):
        fixed = Path(url.split("*")[0].split("?")[0].split("[")[0])
        base = fixed if url.endswith(("/", "\\")) or not fixed.name else fixed.parent
        if _local_path(table, "url", str(base) or ".", root, must_exist=True) is None:
            return None
        if ".." in Path(url).parts:
            table.problem("url", f"{url!r}: a glob may not contain '..'")
            return None
        kind, location = "glob", str(root.resolve() / url)
    else:
        path = _local_path(table, "url", url, root, must_exist=True)
        if path is None:
            return None
        kind, location = "file", str(path)
    if not isinstance(name, str) or not isinstance(category, str):
        return None
    return Source(
        name=name,
        url=url,
        kind=kind,
        location=location,
        category=category,
        timeout=timeout,
        max_entries=max_entries,
        user_agent=user_agent,
        enabled=enabled,
    )


def _read_priority(table: _Table) -> Priority | None:
    name = table.text("name")
    summary = table.text("summary", "")
    link = table.text("link", None)
    if link is not None:
        _http_url(table, "link", link)
    keywords = table.strings("keywords")
    if "keywords" in table.data and not keywords:
        table.problem("keywords", "needs at least one word or phrase")
    categories = table.strings("categories")
    colour = table.text("colour", None)
    if isinstance(colour, str) and not _COLOUR.match(colour):
        table.problem("colour", f"{colour!r} is not a #RRGGBB colour")
    table.finish()
    if not isinstance(name, str):
        return None
    return Priority(name, summary, link, keywords, categories, colour)


def _checked(table: _Table, key: str, value: T, check: Callable[[T], str | None]) -> T:
    message = check(value)
    if message:
        table.problem(key, message)
    return value


def _timezone_problem(value: object) -> str | None:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r} (use an IANA name such as 'Europe/London')"
    return None


def _locale_problem(value: object) -> str | None:
    from babel import Locale, UnknownLocaleError  # noqa: PLC0415 - babel is slow to import

    try:
        Locale.parse(str(value))
    except (UnknownLocaleError, ValueError, TypeError):
        return f"unknown locale {value!r} (use a code such as 'en_GB')"
    return None


def _date_format_problem(value: object) -> str | None:
    from babel.dates import format_date  # noqa: PLC0415 - babel is slow to import

    hint = "use a CLDR pattern with the day (d), such as 'EEEE d MMMM y', or short/medium/long/full"
    text = str(value)
    if text not in ("short", "medium", "long", "full") and "d" not in text:
        return f"{value!r} is not a date pattern showing the day; {hint}"
    try:
        format_date(date(2025, 5, 9), text, locale="en_GB")
    except (ValueError, KeyError, AttributeError) as e:
        return f"{value!r} is not a date pattern ({e}); {hint}"
    return None


def _time_problem(value: object) -> str | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value))
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        return f"{value!r} is not a time of day as HH:MM"
    return None


def _read_theme(t: _Table, root: Path) -> ThemeSettings:
    d = ThemeSettings()
    templates = t.text("templates", None)
    template_path = None
    if isinstance(templates, str):
        template_path = _local_path(t, "templates", templates, root, must_exist=True)
    colours = {}
    for key in (
        "primary_colour",
        "text_colour",
        "background_colour",
        "card_colour",
        "secondary_text_colour",
        "dark_link_colour",
    ):
        value = t.text(key, getattr(d, key))
        if isinstance(value, str) and not _COLOUR.match(value):
            t.problem(key, f"{value!r} is not a #RRGGBB colour")
            value = getattr(d, key)
        colours[key] = value
    logo_url = t.text("logo_url", None)
    if logo_url is not None:
        _http_url(t, "logo_url", logo_url)
    theme = ThemeSettings(
        templates=template_path,
        organisation=t.text("organisation", d.organisation),
        organisation_line=t.text("organisation_line", d.organisation_line),
        logo_url=logo_url,
        logo_alt=t.text("logo_alt", d.logo_alt),
        why_line=t.text("why_line", d.why_line),
        **colours,
    )
    t.finish()
    return theme


def _read_delivery(t: _Table, root: Path) -> DeliverySettings:
    d = DeliverySettings()
    transport = cast(Transport, t.choice("transport", ("outbox", "smtp"), d.transport))
    outbox = t.text("outbox", str(d.outbox))
    dkim_key = t.text("dkim_key", None)
    dkim_path = None
    if isinstance(dkim_key, str):
        dkim_path = _local_path(t, "dkim_key", dkim_key, root, must_exist=True)
    selector = t.text("dkim_selector", None)
    domain = t.text("dkim_domain", None)
    if (dkim_key is None) != (selector is None):
        t.problem("dkim_selector", "dkim_key and dkim_selector must be set together")
    delivery = DeliverySettings(
        transport=transport,
        from_address=t.text("from_address", d.from_address),
        from_name=t.text("from_name", d.from_name),
        reply_to=t.text("reply_to", None),
        list_id=t.text("list_id", d.list_id),
        unsubscribe_mailto=t.text("unsubscribe_mailto", None),
        outbox=(root / outbox) if isinstance(outbox, str) else root / d.outbox,
        dkim_key=dkim_path,
        dkim_selector=selector,
        dkim_domain=domain,
        fallback_name=t.text("fallback_name", d.fallback_name),
    )
    t.finish()
    return delivery


def _read_smtp(t: _Table, root: Path) -> SmtpSettings:
    d = SmtpSettings()
    ca_file = t.text("ca_file", None)
    ca_path = None
    if isinstance(ca_file, str):
        ca_path = _local_path(t, "ca_file", ca_file, root, must_exist=True)
    smtp = SmtpSettings(
        host=t.text("host", d.host),
        port=t.integer("port", d.port, minimum=1),
        security=cast(Security, t.choice("security", ("none", "starttls", "tls"), d.security)),
        username=t.text("username", None),
        password_env=t.text("password_env", None),
        pool_size=t.integer("pool_size", d.pool_size, minimum=1),
        rate_per_second=t.number("rate_per_second", d.rate_per_second),
        timeout=t.number("timeout", d.timeout),
        retries=t.integer("retries", d.retries, minimum=0),
        retry_delay=t.number("retry_delay", d.retry_delay),
        ca_file=ca_path,
    )
    if smtp.username and not smtp.password_env:
        t.problem("password_env", "username is set, so name the environment variable holding the password")
    t.finish()
    return smtp


def _read_fetch(f: _Table) -> FetchSettings:
    fd = FetchSettings()
    fetch = FetchSettings(
        concurrency=f.integer("concurrency", fd.concurrency, minimum=1),
        timeout=f.number("timeout", fd.timeout),
        retries=f.integer("retries", fd.retries, minimum=0),
        max_bytes=f.integer("max_bytes", fd.max_bytes, minimum=1024),
        user_agent=f.text("user_agent", fd.user_agent),
    )
    f.finish()
    return fetch


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    """Validate an already-loaded TOML document. Raises ConfigError listing every problem."""
    root = path.parent.resolve()
    problems: list[str] = []
    top = _Table(data, "", problems)

    state = top.table("state")
    state_path = root / state.text("path", ".digest/state.db")
    lock_path = root / state.text("lock", ".digest/run.lock")
    state.finish()

    fetch = _read_fetch(top.table("fetch"))

    sources = [_read_source(t, root, fetch) for t in top.tables("sources")]
    if "sources" not in data:
        problems.append("sources: at least one [[sources]] table is needed")
    names = [s.name for s in sources if s]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(
            f"sources: the name {name!r} is used more than once (names identify sources in state)"
        )

    g = top.table("digest")
    gd = DigestSettings()
    digest = DigestSettings(
        title=g.text("title", gd.title),
        timezone=_checked(g, "timezone", g.text("timezone", gd.timezone), _timezone_problem),
        locale=_checked(g, "locale", g.text("locale", gd.locale), _locale_problem),
        lookback_days=g.integer("lookback_days", gd.lookback_days, minimum=1),
        group_by=cast(GroupBy, g.choice("group_by", ("day", "week", "none"), gd.group_by)),
        categories=g.strings("categories"),
        send_when_empty=g.boolean("send_when_empty", gd.send_when_empty),
        section_cap=g.integer("section_cap", gd.section_cap, minimum=1),
        excerpt_chars=g.integer("excerpt_chars", gd.excerpt_chars, minimum=40),
        date_format=_checked(g, "date_format", g.text("date_format", gd.date_format), _date_format_problem),
    )
    g.finish()

    h = top.table("highlights")
    highlights = HighlightSettings(max=h.integer("max", HighlightSettings().max, minimum=0))
    h.finish()

    priorities = [_read_priority(t) for t in top.tables("priorities")]

    theme = _read_theme(top.table("theme"), root)

    w = top.table("web")
    wd = WebSettings()
    base_url = w.text("base_url", wd.base_url)
    _http_url(w, "base_url", base_url)
    archive = w.text("archive_dir", str(wd.archive_dir))
    web = WebSettings(
        base_url=base_url.rstrip("/") if isinstance(base_url, str) else wd.base_url,
        archive_dir=root / archive if isinstance(archive, str) else root / wd.archive_dir,
        secret_env=w.text("secret_env", wd.secret_env),
    )
    w.finish()

    delivery = _read_delivery(top.table("delivery"), root)
    smtp = _read_smtp(top.table("smtp"), root)

    s = top.table("schedule")
    sd = ScheduleSettings()
    schedule = ScheduleSettings(
        day=s.choice("day", _WEEKDAYS, sd.day),
        time=_checked(s, "time", s.text("time", sd.time), _time_problem),
        timezone=_checked(s, "timezone", s.text("timezone", sd.timezone), _timezone_problem),
        catch_up_hours=s.number("catch_up_hours", sd.catch_up_hours, positive=False),
        retry_minutes=s.integer("retry_minutes", sd.retry_minutes, minimum=1),
    )
    s.finish()

    a = top.table("approval")
    approval = ApprovalSettings(required=a.boolean("required", False))
    a.finish()

    st = top.table("status")
    status = StatusSettings(failing_after=st.integer("failing_after", 3, minimum=1))
    st.finish()

    p = top.table("preview")
    preview = PreviewSettings(access_token_env=p.text("access_token_env", PreviewSettings().access_token_env))
    p.finish()

    top.finish()
    if problems:
        raise ConfigError(
            f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''} in the configuration",
            hint="fix each key listed above; the shipped config.toml documents every setting",
            problems=tuple(problems),
        )
    return Config(
        path=path,
        root=root,
        state_path=state_path,
        lock_path=lock_path,
        fetch=fetch,
        sources=tuple(s for s in sources if s),
        digest=digest,
        highlights=highlights,
        priorities=tuple(p for p in priorities if p),
        theme=theme,
        web=web,
        delivery=delivery,
        smtp=smtp,
        schedule=schedule,
        approval=approval,
        status=status,
        preview=preview,
    )


def load_config(path: Path | str) -> Config:
    """Read and validate a config file.

    Raises:
        ConfigError: the file is missing, not TOML, or has invalid settings (all listed at once).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: config file not found",
            hint="pass --config PATH, or run from the folder holding config.toml",
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: {e.strerror}") from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text at byte {e.start}", hint="save the file as UTF-8") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}", hint="check the line and column given") from e
    return parse_config(data, path)
