"""Bank holiday regions for `[schedule] holidays`, and the one importer of the `holidays` package.

A region is a name below ("england-and-wales", "scotland", "northern-ireland", "wales", "england"), a
country code the package knows ("IE", "FR"), or a country code and one of its subdivisions ("DE-BY",
"US-NY", "GB-SCT"). The package is imported only when a region is configured (it costs ~40 ms), so
`digest --help` and configurations without holidays never load it.
"""

from __future__ import annotations

import functools
from datetime import date
from typing import TYPE_CHECKING

from digest.errors import ConfigError

if TYPE_CHECKING:
    from holidays import HolidayBase

# The UK's bank holidays differ by nation; England and Wales share theirs.
REGION_NAMES = {
    "england-and-wales": ("GB", "ENG"),
    "england": ("GB", "ENG"),
    "wales": ("GB", "WLS"),
    "scotland": ("GB", "SCT"),
    "northern-ireland": ("GB", "NIR"),
}
EXAMPLES = "'england-and-wales', 'scotland', 'northern-ireland', 'IE', 'DE-BY', 'US-NY'"


def _supported() -> dict[str, list[str]]:
    import holidays  # noqa: PLC0415 - only when [schedule] holidays is set

    return dict(holidays.list_supported_countries())


def resolve_region(region: str) -> tuple[str, str | None] | None:
    """(country, subdivision) for a region name or code, in the package's spelling; None if unknown."""
    key = region.strip()
    if key.casefold() in REGION_NAMES:
        return REGION_NAMES[key.casefold()]
    country, _, subdivision = key.partition("-")
    supported = _supported()
    codes = {c.casefold(): c for c in supported}
    code = codes.get(country.casefold())
    if code is None:
        return None
    if not subdivision:
        return code, None
    subdivisions = {s.casefold(): s for s in supported[code]}
    found = subdivisions.get(subdivision.casefold())
    return None if found is None else (code, found)


def region_problem(value: object) -> str | None:
    """Why `value` is not a bank holiday region (one line with examples), or None."""
    if isinstance(value, str) and value.strip() and resolve_region(value) is not None:
        return None
    return (
        f"unknown bank holiday region {value!r} "
        f"(use e.g. {EXAMPLES}: a region name, a country code or COUNTRY-SUBDIVISION)"
    )


@functools.lru_cache(maxsize=8)
def _calendar(region: str) -> HolidayBase:
    import holidays  # noqa: PLC0415 - only when [schedule] holidays is set

    resolved = resolve_region(region)
    if resolved is None:  # config validation reports it first; a hand-made ScheduleSettings lands here
        raise ConfigError(f"schedule.holidays: {region_problem(region)}", hint="fix it in config.toml")
    country, subdivision = resolved
    return holidays.country_holidays(country, subdiv=subdivision)


def bank_holiday(region: str, day: date) -> str | None:
    """The name of the bank holiday on `day` in `region` (e.g. "Spring Bank Holiday"), or None."""
    name = _calendar(region).get(day)
    return None if name is None else str(name)
