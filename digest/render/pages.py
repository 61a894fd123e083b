"""HTML pages of the web area (preview, unsubscribe, archive index, errors) from their Jinja2 templates.

Rendered through `PageSet` (the render package stays the only importer of jinja2): autoescape is on for
every page template and undefined names raise, so feed content reaches a page only as escaped text.
The templates are package data in `digest/web/templates/`; the web apps reach these functions through
the pipeline (`digest.pipeline.web`), never directly.
"""

from __future__ import annotations

from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime

from digest.render import PageSet

PAGE_TEMPLATES = Path(str(resources.files("digest") / "web" / "templates"))


class PageFormat:
    """Dates shown in the edition's time zone and locale ("Friday 9 May 2025")."""

    def __init__(self, *, locale: str, timezone: str) -> None:
        self.locale = locale
        self.tz = ZoneInfo(timezone)

    def date(self, value: datetime) -> str:
        return str(format_date(value.astimezone(self.tz).date(), "EEEE d MMMM y", locale=self.locale))

    def datetime(self, value: datetime) -> str:
        return str(format_datetime(value.astimezone(self.tz), "EEEE d MMMM y, HH:mm zzz", locale=self.locale))


_PAGES = PageSet(PAGE_TEMPLATES, filters={"kb": lambda size: f"{size / 1024:.1f} KB"})


def render_page(name: str, **context: Any) -> str:
    """Render one page template with `context` (every value escaped unless marked safe)."""
    return _PAGES.render(name, **context)


def render_message(
    *,
    lang: str,
    title: str,
    heading: str,
    message: str,
    detail: str | None = None,
    css: str = "assets/site.css",
) -> str:
    """A plain page with one message: errors, a bad unsubscribe link, a page not found."""
    return render_page(
        "message.html", lang=lang, title=title, heading=heading, message=message, detail=detail, css=css
    )
