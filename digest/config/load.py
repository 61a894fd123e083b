"""Loading: `config.toml` -> validated, frozen `Config`, with every problem reported at once.

Every path in the file is relative to the folder of the config file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from digest.config.bounces import read_bounces
from digest.config.editions import read_editions
from digest.config.holidays import region_problem
from digest.config.preview import read_notify, read_preview
from digest.config.schema import (
    ApprovalSettings,
    Config,
    DigestSettings,
    GroupBy,
    HighlightSettings,
    OnHoliday,
    Priority,
    ScheduleSettings,
    StatusSettings,
    WebSettings,
)
from digest.config.sections import (
    read_delivery,
    read_fetch,
    read_priority,
    read_smtp,
    read_source,
    read_subscribe,
    read_subscribers,
    read_theme,
)
from digest.config.state import read_state_url
from digest.config.table import (
    Table,
    checked,
    date_format_problem,
    http_url,
    locale_problem,
    time_problem,
    timezone_problem,
)
from digest.errors import ConfigError

# Gmail clips an HTML part above about 102 KB, hiding the footer and its unsubscribe link.
MAX_HTML_KB = 102

ON_HOLIDAY = ("send", "next_working_day", "skip")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def parse_config(data: Mapping[str, Any], path: Path) -> Config:  # noqa: PLR0915 - one line per section
    """Validate an already-loaded TOML document. Raises ConfigError listing every problem."""
    root = path.parent.resolve()
    problems: list[str] = []
    top = Table(data, "", problems)

    state = top.table("state")
    state_path = root / state.text("path", ".digest/state.db")
    lock_path = root / state.text("lock", ".digest/run.lock")
    keep_days = state.integer("keep_days", 90, minimum=1, maximum=36_500)
    ledger_keep_days = state.integer("ledger_keep_days", 400, minimum=30, maximum=36_500)
    state_url, state_password_env = read_state_url(state)
    state.finish()

    fetch = read_fetch(top.table("fetch"))

    sources = [read_source(t, root, fetch) for t in top.tables("sources")]
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
        title=g.text("title", gd.title, header=True),
        timezone=checked(g, "timezone", g.text("timezone", gd.timezone), timezone_problem),
        locale=checked(g, "locale", g.text("locale", gd.locale), locale_problem),
        lookback_days=g.integer("lookback_days", gd.lookback_days, minimum=1, maximum=3650),
        max_window_days=g.integer("max_window_days", gd.max_window_days, minimum=1, maximum=3650),
        group_by=cast(GroupBy, g.choice("group_by", ("day", "week", "none"), gd.group_by)),
        categories=g.strings("categories"),
        send_when_empty=g.boolean("send_when_empty", gd.send_when_empty),
        section_cap=g.integer("section_cap", gd.section_cap, minimum=1, maximum=1000),
        excerpt_chars=g.integer("excerpt_chars", gd.excerpt_chars, minimum=40, maximum=10_000),
        date_format=checked(g, "date_format", g.text("date_format", gd.date_format), date_format_problem),
        min_image_width=g.integer("min_image_width", gd.min_image_width, minimum=0, maximum=4000),
        max_html_kb=g.integer("max_html_kb", gd.max_html_kb, minimum=20),
    )
    if isinstance(digest.max_html_kb, int) and digest.max_html_kb > MAX_HTML_KB:
        g.problem(
            "max_html_kb",
            f"must be at most {MAX_HTML_KB} (Gmail clips larger emails), not {digest.max_html_kb}",
        )
    g.finish()

    highlights = read_highlights(top.table("highlights"))
    priorities, enablers = read_tiers(top)

    theme = read_theme(top.table("theme"), root)

    w = top.table("web")
    wd = WebSettings()
    base_url = w.text("base_url", wd.base_url, header=True)
    http_url(w, "base_url", base_url)
    archive = w.text("archive_dir", str(wd.archive_dir))
    web = WebSettings(
        base_url=base_url.rstrip("/") if isinstance(base_url, str) else wd.base_url,
        archive_dir=root / archive if isinstance(archive, str) else root / wd.archive_dir,
        secret_env=w.text("secret_env", wd.secret_env),
    )
    w.finish()

    delivery = read_delivery(top.table("delivery"), root)
    smtp = read_smtp(top.table("smtp"), root)
    bounces = read_bounces(top.table("bounces"), root) if "bounces" in data else None

    s = top.table("schedule")
    sd = ScheduleSettings()
    schedule = ScheduleSettings(
        day=s.choice("day", WEEKDAYS, sd.day),
        time=checked(s, "time", s.text("time", sd.time), time_problem),
        timezone=checked(s, "timezone", s.text("timezone", sd.timezone), timezone_problem),
        catch_up_hours=s.number("catch_up_hours", sd.catch_up_hours, minimum=0.0, maximum=8760.0),
        retry_minutes=s.integer("retry_minutes", sd.retry_minutes, minimum=1, maximum=10_080),
        holidays=read_holidays(s),
        on_holiday=cast(OnHoliday, s.choice("on_holiday", ON_HOLIDAY, sd.on_holiday)),
        draft_ahead_hours=s.number("draft_ahead_hours", sd.draft_ahead_hours, minimum=0.0, maximum=24.0 * 6),
    )
    s.finish()

    a = top.table("approval")
    approval = ApprovalSettings(
        required=a.boolean("required", False), four_eyes=a.boolean("four_eyes", False)
    )
    a.finish()

    st = top.table("status")
    status = StatusSettings(failing_after=st.integer("failing_after", 3, minimum=1, maximum=1000))
    st.finish()

    p = top.table("preview")
    preview = read_preview(p, root, sources)
    p.finish()

    subscriber_settings = read_subscribers(top.table("subscribers"))
    editions = read_editions(
        top,
        root,
        theme=theme,
        schedule=schedule,
        sources=tuple(s for s in sources if s),
        priorities=priorities,
    )
    notify = read_notify(top.table("notify"))
    subscribe = read_subscribe(top.table("subscribe"))

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
        keep_days=keep_days,
        ledger_keep_days=ledger_keep_days,
        fetch=fetch,
        sources=tuple(s for s in sources if s),
        digest=digest,
        highlights=highlights,
        priorities=priorities,
        theme=theme,
        web=web,
        delivery=delivery,
        smtp=smtp,
        schedule=schedule,
        approval=approval,
        status=status,
        preview=preview,
        state_url=state_url,
        state_password_env=state_password_env,
        subscribers=subscriber_settings,
        notify=notify,
        bounces=bounces,
        enablers=enablers,
        editions=editions,
        subscribe=subscribe,
    )


def read_holidays(s: Table) -> str | None:
    """`[schedule] holidays`: a bank holiday region the `holidays` package knows, or None (not set)."""
    region = s.text("holidays", None)
    if isinstance(region, str):
        return checked(s, "holidays", region.strip(), region_problem) or None
    return None


def read_highlights(h: Table) -> HighlightSettings:
    hd = HighlightSettings()
    highlights = HighlightSettings(
        max=h.integer("max", hd.max, minimum=0, maximum=100),
        explain=h.boolean("explain", hd.explain),
        repeat_in_sections=h.boolean("repeat_in_sections", hd.repeat_in_sections),
    )
    h.finish()
    return highlights


def read_tiers(top: Table) -> tuple[tuple[Priority, ...], tuple[Priority, ...]]:
    """`[[priorities]]` and `[[enablers]]` (the quieter second tier); a name may be used once across both."""
    priorities = tuple(p for p in (read_priority(t) for t in top.tables("priorities")) if p)
    enablers = tuple(p for p in (read_priority(t) for t in top.tables("enablers")) if p)
    names = [p.name.casefold() for p in (*priorities, *enablers)]
    for name in sorted({n for n in names if names.count(n) > 1}):
        top.problems.append(
            f"priorities/enablers: the name {name!r} is used more than once (each priority or enabler"
            " needs its own name)"
        )
    return priorities, enablers


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
