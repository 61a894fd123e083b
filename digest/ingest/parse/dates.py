"""Dates as web pages write them: a CLDR pattern read in a locale ("d MMMM y" reads "9 May 2025"), or "auto".

"auto" reads ISO 8601 (with or without a time), RFC 2822 and the common English forms ("9 May 2025",
"9th May 2025", "Friday 9 May 2025", "May 9, 2025", "9 May 2025 14:30"). A date without a time is midnight
in the digest's time zone; a time without a zone is in that zone. Everything returned is aware UTC.
"""

from __future__ import annotations

import email.utils
import re
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

_WEEKDAY = r"(?:(?:mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun)[a-z]*\.?,?\s+)?"
_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH = r"(?P<month>[a-z]{3,9})\.?"
_DAY = r"(?P<day>\d{1,2})(?:st|nd|rd|th)?"
_YEAR = r"(?P<year>\d{4})"
_TIME = r"(?:,?\s+(?:at\s+)?(?P<hour>\d{1,2})[:.](?P<minute>\d{2})\s*(?P<ampm>am|pm)?)?"
_ENGLISH = (
    re.compile(rf"^{_WEEKDAY}{_DAY}\s+(?:of\s+)?{_MONTH},?\s+{_YEAR}{_TIME}$", re.IGNORECASE),
    re.compile(rf"^{_WEEKDAY}{_MONTH}\s+{_DAY},?\s+{_YEAR}{_TIME}$", re.IGNORECASE),
)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")

# CLDR pattern letters digest reads; the others (era, quarter, week...) are refused by `pattern_problem`.
_FIELDS = re.compile(r"'[^']*'|([a-zA-Z])\1*")


def parse_date(
    text: str, *, pattern: str = "auto", locale: str = "en_GB", timezone: str = "UTC"
) -> datetime | None:
    """Read `text` as a date with `pattern` ("auto" or a CLDR pattern); None when it does not match."""
    value = " ".join(text.split())
    if not value:
        return None
    zone = ZoneInfo(timezone)
    if pattern == "auto":
        return _auto(value, zone)
    regex, fields = _compiled(pattern, locale)
    match = regex.fullmatch(value)
    if not match:
        return None
    return _assemble(match, fields, locale, zone)


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` cannot read dates (None when it can): it needs a day, a month and a year."""
    if pattern == "auto":
        return None
    letters = {m.group(1) for m in _FIELDS.finditer(pattern) if m.group(1)}
    unknown = letters - set("dMLyEcahHkKms")
    if unknown:
        return f"{pattern!r}: digest cannot read the pattern letters {''.join(sorted(unknown))}"
    if not {"d", "y"} <= letters or not letters & {"M", "L"}:
        return f'{pattern!r} needs a day (d), a month (M or MMMM) and a year (y), or use "auto"'
    return None


def _auto(value: str, zone: ZoneInfo) -> datetime | None:
    if _ISO_DATE.match(value):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
        except ValueError:
            return None
        return _aware(parsed, zone)
    for regex in _ENGLISH:
        match = regex.match(value)
        if match:
            month = _MONTHS.get(match["month"].lower())
            if month is None:
                return None
            hour, minute = _clock(match["hour"], match["minute"], match["ampm"])
            try:
                return _aware(datetime(int(match["year"]), month, int(match["day"]), hour, minute), zone)  # noqa: DTZ001
            except ValueError:
                return None
    if "," in value or value[:3].isalpha():
        try:
            return _aware(email.utils.parsedate_to_datetime(value), zone)
        except (TypeError, ValueError, IndexError):
            return None
    return None


def _clock(hour: str | None, minute: str | None, ampm: str | None) -> tuple[int, int]:
    if hour is None or minute is None:
        return 0, 0
    h = int(hour) % 24
    if ampm:
        h = h % 12 + (12 if ampm.lower() == "pm" else 0)
    return h, int(minute)


def _aware(value: datetime, zone: ZoneInfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


@lru_cache(maxsize=64)
def _compiled(pattern: str, locale: str) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """A regular expression for a CLDR pattern in `locale`, and the pattern letter of each group."""
    from babel import Locale  # noqa: PLC0415 - babel is slow to import

    loc = Locale.parse(locale)
    parts: list[str] = []
    fields: list[str] = []
    position = 0
    for match in _FIELDS.finditer(pattern):
        parts.append(re.escape(pattern[position : match.start()]).replace("\\ ", r"\s*"))
        position = match.end()
        token = match.group(0)
        if token.startswith("'"):
            parts.append(re.escape(token[1:-1] or "'"))
            continue
        letter, width = token[0], len(token)
        group = f"f{len(fields)}"
        if letter in "ML" and width >= 3:
            names = _names(loc, "months", letter, width)
            parts.append(f"(?P<{group}>{'|'.join(names)})\\.?")
        elif letter in "Ec":
            names = _names(loc, "days", letter, width)
            parts.append(f"(?:{'|'.join(names)})\\.?")
            continue
        elif letter == "a":
            periods = [re.escape(p) for p in loc.day_periods["format"]["abbreviated"].values()] + ["am", "pm"]
            parts.append(f"(?P<{group}>{'|'.join(periods)})")
        elif letter == "y":
            parts.append(f"(?P<{group}>\\d{{2}}|\\d{{4}})")
        else:
            parts.append(
                f"(?P<{group}>\\d{{1,2}})(?:st|nd|rd|th)?" if letter == "d" else f"(?P<{group}>\\d{{1,2}})"
            )
        fields.append(letter if not (letter in "ML" and width >= 3) else "N")
    parts.append(re.escape(pattern[position:]).replace("\\ ", r"\s*"))
    return re.compile("".join(parts), re.IGNORECASE), tuple(fields)


def _names(loc: object, kind: str, letter: str, width: int) -> list[str]:
    context = "stand-alone" if letter in "Lc" else "format"
    table = getattr(loc, kind)[context]
    names: set[str] = set()
    for style in ("wide", "abbreviated"):
        names.update(str(n) for n in table[style].values())
    return sorted((re.escape(n) for n in names), key=len, reverse=True)


def _assemble(match: re.Match[str], fields: tuple[str, ...], locale: str, zone: ZoneInfo) -> datetime | None:
    from babel import Locale  # noqa: PLC0415

    values: dict[str, str] = {}
    for index, letter in enumerate(fields):
        values.setdefault(letter, match.group(f"f{index}"))
    month: int | None = None
    if "N" in values:
        loc = Locale.parse(locale)
        wanted = values["N"].lower().rstrip(".")
        for context in ("format", "stand-alone"):
            for style in ("wide", "abbreviated"):
                for number, name in loc.months[context][style].items():
                    if str(name).lower().rstrip(".") == wanted:
                        month = int(number)
        if month is None:
            return None
    else:
        month = int(values.get("M") or values.get("L") or 0)
    year = int(values["y"])
    if year < 100:
        year += 2000
    hour = int(values.get("H") or values.get("k") or values.get("h") or values.get("K") or 0)
    if "a" in values and ("h" in values or "K" in values):
        pm = values["a"].lower() in ("pm", "p.m.") or values["a"].lower().startswith("p")
        hour = hour % 12 + (12 if pm else 0)
    try:
        parsed = datetime(  # noqa: DTZ001 - the zone is set by _aware below
            year, month, int(values["d"]), hour % 24, int(values.get("m") or 0), int(values.get("s") or 0)
        )
    except (ValueError, KeyError):
        return None
    return _aware(parsed, zone)
