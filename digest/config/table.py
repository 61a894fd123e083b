"""Reading typed values out of TOML tables, recording each problem with its dotted path instead of raising.

`Table` reads one table's keys (and flags unknown ones); the checks below are shared by the section readers.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest.safe_text import header_problem, scrub_text

COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")

T = TypeVar("T")
_MISSING: Any = object()


class Table:
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
            self.problem(key, f"must be {kind_name}, not {type_name(value)}")
            return default if default is not _MISSING else None
        if not isinstance(value, kind):
            self.problem(key, f"must be {kind_name}, not {type_name(value)}")
            return default if default is not _MISSING else None
        return value

    def text(self, key: str, default: Any = _MISSING, *, header: bool = False) -> Any:
        """A string, with the characters XML cannot carry removed (`scrub_text`).

        `header`: the value goes into a mail or HTTP header, so a control character or line separator
        in it is a problem (reported), not silently removed.
        """
        value = self._get(key, str, "a string", default)
        if isinstance(value, str) and key in self.data:
            problem = header_problem(value) if header else None
            if problem:
                self.problem(key, problem)
                return default if default is not _MISSING else None
            value = scrub_text(value)
            if not value.strip() and default is _MISSING:
                self.problem(key, "must not be empty")
        return value

    def integer(
        self, key: str, default: Any = _MISSING, *, minimum: int | None = None, maximum: int | None = None
    ) -> Any:
        """An integer, at least `minimum` and at most `maximum` (when given)."""
        value = self._get(key, int, "an integer", default)
        if not isinstance(value, int) or isinstance(value, bool) or key not in self.data:
            return value
        allowed = f" (allowed: {minimum} to {maximum})" if minimum is not None and maximum is not None else ""
        if minimum is not None and value < minimum:
            self.problem(key, f"must be at least {minimum}, not {value}{allowed}")
            return default
        if maximum is not None and value > maximum:
            self.problem(key, f"must be at most {maximum}, not {value}{allowed}")
            return default
        return value

    def number(
        self,
        key: str,
        default: Any = _MISSING,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> Any:
        """A finite number; greater than 0 unless `minimum` is given (then at least `minimum`), and at
        most `maximum` when given."""
        value = self._get(key, (int, float), "a number", default)
        if isinstance(value, int | float) and key in self.data:
            low = f"at least {minimum:g}" if minimum is not None else "greater than 0"
            allowed = f" (allowed: {low}, at most {maximum:g})" if maximum is not None else ""
            if not math.isfinite(value) or (value <= 0 if minimum is None else value < minimum):
                self.problem(key, f"must be {low}, not {value}{allowed}")
                return default
            if maximum is not None and value > maximum:
                self.problem(key, f"must be at most {maximum:g}, not {value}{allowed}")
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
        return tuple(scrub_text(item) for item in value if isinstance(item, str))

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(key, default)
        if isinstance(value, str) and value not in choices:
            self.problem(key, f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}")
            return default
        return value if isinstance(value, str) else default

    def table(self, key: str) -> Table:
        value = self._get(key, dict, "a table", {})
        return Table(value if isinstance(value, dict) else {}, self.where(key), self.problems)

    def tables(self, key: str) -> list[Table]:
        value = self._get(key, list, "an array of tables", [])
        if not isinstance(value, list):
            return []
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self.problems.append(f"{self.where(key)}[{i}]: must be a table")
                continue
            out.append(Table(item, f"{self.where(key)}[{i}]", self.problems))
        return out

    def finish(self) -> None:
        for key in sorted(set(self.data) - self.seen):
            self.problem(key, "unknown key (check the spelling against the commented config.toml)")


def type_name(value: object) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list"}
    return names.get(type(value), "a table" if isinstance(value, dict) else type(value).__name__)


def http_url(table: Table, key: str, value: object) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        table.problem(key, f"{value!r} is not an http(s) URL with a host")
        return False
    return True


def inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def local_path(
    table: Table, key: str, value: str, root: Path, *, must_exist: bool, absolute_anywhere: bool = False
) -> Path | None:
    """The path `value` names, relative to the config folder; it must stay inside that folder.

    With `absolute_anywhere` an absolute path may name any file (a system CA store in /etc/ssl, a
    DKIM key kept with the mail server's keys); a relative one must still stay inside.
    """
    absolute = Path(value).is_absolute()
    path = (root / value).resolve() if not absolute else Path(value).resolve()
    if not (absolute and absolute_anywhere) and not inside(root, path):
        table.problem(key, f"{value!r} is outside the config folder {root} (local files must stay inside it)")
        return None
    if must_exist and not path.exists():
        table.problem(key, f"file {value} does not exist (relative to {root})")
        return None
    return path


def checked(table: Table, key: str, value: T, check: Callable[[T], str | None]) -> T:
    message = check(value)
    if message:
        table.problem(key, message)
    return value


def timezone_problem(value: object) -> str | None:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        return f"unknown time zone {value!r} (use an IANA name such as 'Europe/London')"
    return None


def locale_problem(value: object) -> str | None:
    from babel import Locale, UnknownLocaleError  # noqa: PLC0415 - babel is slow to import

    try:
        Locale.parse(str(value))
    except (UnknownLocaleError, ValueError, TypeError):
        return f"unknown locale {value!r} (use a code such as 'en_GB')"
    return None


def date_format_problem(value: object) -> str | None:
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


def time_problem(value: object) -> str | None:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", str(value))
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        return f"{value!r} is not a time of day as HH:MM"
    return None


_HOST_NAME = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)


def host_problem(value: str) -> str | None:
    """Why `value` is not a `host` or `host:port` as a browser sends it in the Host header, or None."""
    hint = (
        "use a host name or address as typed in the browser,"
        " such as 'preview.intranet.example' or '192.0.2.10:8000'"
    )
    if "*" in value:
        return f"{value!r}: wildcards are not allowed (list each name); {hint}"
    if "/" in value or "@" in value:
        return f"{value!r} is not a host name (a URL?); {hint}"
    host, port = split_host(value)
    if port is not None and not (port.isascii() and port.isdigit() and 0 < int(port) <= 65535):
        return f"{value!r}: the port must be a number from 1 to 65535; {hint}"
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return f"{value!r} is not an IPv6 address in brackets; {hint}"
        return None
    if not _HOST_NAME.fullmatch(host) or len(host) > 253:
        return f"{value!r} is not a host name; {hint}"
    return None


def split_host(value: str) -> tuple[str, str | None]:
    """`("name", "port")` of `name:port`, `("[::1]", "8000")` of `[::1]:8000`; port None when absent."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1 :]
        return value[: end + 1], rest[1:] if rest.startswith(":") else (rest or None)
    name, colon, port = value.rpartition(":")
    if not colon:
        return value, None
    return name, port


def allowed_hosts(table: Table, key: str) -> tuple[str, ...]:
    """A list of host names (`name` or `name:port`), lower-cased; each bad one is a problem."""
    table.strings(key)  # reports a value that is not a list of strings
    raw = table.data.get(key)
    out = []
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, str):
            continue
        value = item.strip().lower()
        message = host_problem(value) if value else "must not be empty"
        if message:
            table.problems.append(f"{table.where(key)}[{i}]: {message}")
        else:
            out.append(value)
    return tuple(out)
