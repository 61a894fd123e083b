"""`digest sources`: work out how to read a site that has no feed (`digest sources try URL`)."""

from __future__ import annotations

import json
from typing import Any

import click

from digest.cli.common import stdout
from digest.config import SELECT_KEYS
from digest.config.table import locale_problem, timezone_problem
from digest.errors import UsageError
from digest.pipeline.sources import try_page
from digest.state import to_iso


@click.group("sources")
def sources() -> None:
    """Try web pages as sources before adding them to the config."""


def _select_options(func: Any) -> Any:
    for key in reversed(SELECT_KEYS):
        func = click.option(
            f"--select-{key}",
            f"select_{key}",
            metavar="CSS",
            default=None,
            help=f"The [sources.select] {key} selector to try ('css' for text, 'css@attr' for an attribute).",
        )(func)
    return func


@sources.command("try")
@click.argument("target", metavar="URL")
@_select_options
@click.option("--date-format", default="auto", show_default=True, help="CLDR pattern of the page's dates.")
@click.option("--locale", default="en_GB", show_default=True, help="Locale the dates are written in.")
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    metavar="ZONE",
    help="Read a date without a time as midnight in this zone, as the source will in [digest] timezone.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def try_command(
    target: str, date_format: str, locale: str, timezone: str, as_json: bool, **selected: str | None
) -> int:
    """Show what selectors extract from a page (URL or saved file), entry by entry.

    With no --select-* options, list the page's feed links (<link rel="alternate">) or, when it has none,
    suggest `item` selectors: repeated elements that each hold a link and a date, best first.
    """
    select = {k.removeprefix("select_"): v for k, v in selected.items() if v}
    from digest.ingest.parse.dates import pattern_problem  # noqa: PLC0415 - as the config check does

    for option, problem in (
        ("--timezone", timezone_problem(timezone)),
        ("--locale", locale_problem(locale)),
        ("--date-format", pattern_problem(date_format)),
    ):
        if problem:
            raise UsageError(f"{option}: {problem}")
    result = try_page(target, select, date_format=date_format, locale=locale, timezone=timezone)
    if as_json:
        stdout.print_json(json.dumps(_document(result)))
        return 0
    if select:
        stdout.print(f"{result.url}: {len(result.items)} items match {select['item']!r}", markup=False)
        for number, item in enumerate(result.items, start=1):
            stdout.print(f"\n{number}. {item.title or '(no title)'}", markup=False)
            when = item.published.isoformat() if item.published else "not read"
            for label, value in (
                ("link", item.link),
                ("date", f"{item.date_text!r} -> {when}" if item.date_text else None),
                ("category", item.category),
                ("image", item.image),
                ("summary", item.summary),
            ):
                if value:
                    stdout.print(f"   {label}: {value}", markup=False)
        return 0
    if [f.url for f in result.feeds] == [result.url]:
        stdout.print(
            f"{result.url} is a feed ({result.feeds[0].type}): use it as the source's url as it is"
            ' (kind = "feed", the default; no selectors needed)',
            markup=False,
        )
        return 0
    if result.feeds:
        stdout.print(
            f"{result.url} names {len(result.feeds)} feed(s): use one as the source's url", markup=False
        )
        for link in result.feeds:
            stdout.print(
                f"  {link.url}  ({link.type}{': ' + link.title if link.title else ''})", markup=False
            )
        return 0
    if not result.candidates:
        stdout.print(
            f"{result.url}: no feed links, and no repeated elements holding a link and a date", markup=False
        )
        return 0
    stdout.print(f"{result.url}: no feed links; candidate item selectors, best first:", markup=False)
    for c in result.candidates:
        flags = f"--select-item {c.item!r}" + (f" --select-title {c.title!r}" if c.title else "")
        flags += f" --select-date {c.date!r}" if c.date else ""
        stdout.print(
            f"\n  {c.item}  ({c.with_link_and_date} of {c.matches} hold a link and a date)\n"
            f"    e.g. {c.example}\n    try: digest sources try {target} {flags}",
            markup=False,
        )
    return 0


def _document(result: Any) -> dict[str, Any]:
    return {
        "url": result.url,
        "items": [
            {
                "title": i.title,
                "link": i.link,
                "date_text": i.date_text,
                "published": to_iso(i.published) if i.published else None,
                "summary": i.summary,
                "category": i.category,
                "image": i.image,
            }
            for i in result.items
        ],
        "feeds": [{"url": f.url, "type": f.type, "title": f.title} for f in result.feeds],
        "candidates": [
            {
                "item": c.item,
                "matches": c.matches,
                "with_link_and_date": c.with_link_and_date,
                "title": c.title,
                "date": c.date,
                "example": c.example,
            }
            for c in result.candidates
        ],
    }


def register(group: click.Group) -> None:
    group.add_command(sources)
