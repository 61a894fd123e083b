"""`[[editions]]`: several newsletters from one pool of sources, each with its own cadence and audience.

`read_editions` validates the tables (every problem with its dotted path, as elsewhere). `edition_config`
narrows a `Config` to one edition: its title, sources, priorities, theme overrides, schedule time zone,
and its own part of the web archive; the pipeline then runs unchanged on that narrowed config (the
state it opens is scoped to the edition: see `digest.state.store.open_store`). A config without
`[[editions]]` is never narrowed: it behaves exactly as one edition from `[digest]` and `[schedule]`.
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from pathlib import Path
from typing import cast

from digest.config.schema import Cadence, Config, Edition, Priority, ScheduleSettings, Source, ThemeSettings
from digest.config.sections import read_theme
from digest.config.table import Table, checked, time_problem, timezone_problem
from digest.errors import UsageError

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
CADENCES = ("daily", "weekly", "monthly")
EDITION_ID = re.compile(r"^[a-z0-9](?:[a-z0-9_]{0,30}[a-z0-9])?$")
_THEME_KEYS = tuple(f.name for f in fields(ThemeSettings))


def cron_problem(value: object) -> str | None:
    """Why `value` is not a five-field cron expression croniter accepts, or None."""
    from croniter import croniter  # noqa: PLC0415 - only configs with a cron cadence need it

    text = str(value)
    if len(text.split()) != 5 or not croniter.is_valid(text):
        return (
            f"{text!r} is neither daily, weekly, monthly nor a five-field cron expression"
            ' (minute hour day-of-month month day-of-week, e.g. "0 8 * * mon-fri")'
        )
    return None


def _read_edition(
    t: Table,
    root: Path,
    *,
    base_theme: ThemeSettings,
    schedule: ScheduleSettings,
    sources: tuple[Source, ...],
    priorities: tuple[Priority, ...],
) -> Edition | None:
    edition_id = t.text("id")
    if isinstance(edition_id, str) and not EDITION_ID.match(edition_id):
        t.problem(
            "id",
            f"{edition_id!r} must be 1-32 lower-case letters, digits or '_' (it is used in issue ids and"
            " folder names; '-' separates it from the week)",
        )
    title = t.text("title", None, header=True)
    raw_cadence = t.text("cadence", "weekly")
    cadence: Cadence = "weekly"
    cron = ""
    if isinstance(raw_cadence, str) and raw_cadence in CADENCES:
        cadence = cast(Cadence, raw_cadence)
    elif isinstance(raw_cadence, str) and checked(t, "cadence", raw_cadence, cron_problem) is not None:
        cadence, cron = "cron", " ".join(raw_cadence.split())
    time = checked(t, "time", t.text("time", schedule.time), time_problem)
    timezone = checked(t, "timezone", t.text("timezone", schedule.timezone), timezone_problem)
    day = _read_day(t, cadence, schedule)
    names = {s.name for s in sources}
    wanted = t.strings("sources")
    for name in wanted:
        if name not in names:
            t.problem("sources", f"{name!r} is not the name of a [[sources]] table")
    known = {p.name.casefold() for p in priorities}
    chosen = t.strings("priorities")
    for name in chosen:
        if name.casefold() not in known:
            t.problem("priorities", f"{name!r} is not the name of a [[priorities]] table")
    audience = tuple(a.strip().casefold() for a in t.strings("audience") if a.strip())
    theme = _read_theme_overrides(t, root, base_theme)
    t.finish()
    if not isinstance(edition_id, str) or not EDITION_ID.match(edition_id):
        return None
    return Edition(
        id=edition_id,
        title=title if isinstance(title, str) else edition_id,
        cadence=cadence,
        time=time if isinstance(time, str) else schedule.time,
        timezone=timezone if isinstance(timezone, str) else schedule.timezone,
        day=day,
        cron=cron,
        sources=wanted,
        priorities=chosen,
        audience=audience,
        theme=theme,
    )


def _read_day(t: Table, cadence: Cadence, schedule: ScheduleSettings) -> str:
    """`day`: a weekday (weekly, default `[schedule] day`) or a day of the month 1-28 (monthly, default 1)."""
    if cadence == "weekly":
        return t.choice("day", WEEKDAYS, schedule.day)
    if cadence == "monthly":
        value = t.integer("day", 1, minimum=1, maximum=28)
        return str(value) if isinstance(value, int) else "1"
    if "day" in t.data:
        t.text("day", None)
        t.problem("day", f"is only read with cadence weekly or monthly, not {cadence}")
    return ""


def _read_theme_overrides(t: Table, root: Path, base: ThemeSettings) -> ThemeSettings | None:
    """`[editions.theme]` (and `templates` on the edition itself): only the keys given override `[theme]`."""
    data = dict(t.data.get("theme") or {}) if isinstance(t.data.get("theme"), dict) else {}
    if "templates" in t.data:
        data["templates"] = t.data["templates"]
    t.seen.update({"theme", "templates"})
    if "theme" in t.data and not isinstance(t.data["theme"], dict):
        t.problem("theme", "must be a table")
        return None
    if not data:
        return None
    read = read_theme(Table(data, t.where("theme"), t.problems), root)
    return replace(base, **{key: getattr(read, key) for key in _THEME_KEYS if key in data})


def read_editions(
    top: Table,
    root: Path,
    *,
    theme: ThemeSettings,
    schedule: ScheduleSettings,
    sources: tuple[Source, ...],
    priorities: tuple[Priority, ...],
) -> tuple[Edition, ...]:
    """Every `[[editions]]` table; ids must be unique."""
    tables = top.tables("editions")
    read = (
        _read_edition(t, root, base_theme=theme, schedule=schedule, sources=sources, priorities=priorities)
        for t in tables
    )
    editions = tuple(e for e in read if e)
    ids = [e.id for e in editions]
    for edition_id in sorted({i for i in ids if ids.count(i) > 1}):
        top.problems.append(f"editions: the id {edition_id!r} is used more than once (ids name issues)")
    return editions


def edition_ids(config: Config) -> tuple[str, ...]:
    return tuple(e.id for e in config.editions)


def find_edition(config: Config, edition_id: str) -> Edition:
    """The `[[editions]]` table with this id.

    Raises:
        UsageError: no such edition (the message lists those configured).
    """
    for edition in config.editions:
        if edition.id == edition_id:
            return edition
    known = ", ".join(edition_ids(config)) or "none: the config has no [[editions]]"
    raise UsageError(
        f"--edition {edition_id!r}: no such edition in {config.path}", hint=f"editions configured: {known}"
    )


def edition_config(config: Config, edition_id: str) -> Config:
    """The config narrowed to one edition: what the pipeline builds, sends and publishes it with.

    Raises:
        UsageError: no such edition.
    """
    edition = find_edition(config, edition_id)
    wanted = set(edition.sources)
    sources = tuple(s for s in config.sources if not wanted or s.name in wanted)
    chosen = {p.casefold() for p in edition.priorities}
    priorities = tuple(p for p in config.priorities if not chosen or p.name.casefold() in chosen)
    schedule = replace(
        config.schedule,
        timezone=edition.timezone,
        time=edition.time,
        day=edition.day if edition.cadence == "weekly" else config.schedule.day,
    )
    return replace(
        config,
        sources=sources,
        priorities=priorities,
        theme=edition.theme or config.theme,
        schedule=schedule,
        digest=replace(config.digest, title=edition.title),
        web=replace(config.web, archive_dir=config.web.archive_dir / edition.id),
        edition=edition,
    )
