"""News listing pages (a `kind = "html"` source): one entry per element the `item` selector matches.

The values found by the other selectors go through `build_entry` like a feed entry's, so identity,
cleaning, sanitising and dedupe are the same. A layout change is loud: an `item` selector that matches
nothing, or items that mostly lose their title or date, raise ParseError naming the selector (the source
is then `failed` and keeps its last good entries), never "ok, 0 entries".
"""

from __future__ import annotations

import logging
import posixpath
from typing import Any

from digest.errors import ParseError
from digest.ingest import clean
from digest.ingest.parse.common import Listing, ParseContext, ParsedFeed, build_entry
from digest.ingest.parse.dates import parse_date
from digest.ingest.parse.select import (
    inner_html,
    parse_html,
    select_all,
    select_value,
    split_selector,
    text_of,
)
from digest.models import Entry, Image
from digest.safe_text import scrub_tree

log = logging.getLogger(__name__)

_LAYOUT_HINT = "run `digest sources try URL` to see what the selectors find now, and fix [sources.select]"
_LAZY_SOURCES = ("data-src", "data-lazy-src", "data-original")


def parse_listing(body: bytes, ctx: ParseContext) -> ParsedFeed:
    """Read a listing page with `ctx.listing`'s selectors.

    Raises:
        ParseError: the bytes are not HTML, `item` matches nothing, or most items have no title or date.
    """
    listing = ctx.listing
    if listing is None:  # pragma: no cover - parse_document only calls this for listings
        raise ParseError(f"{ctx.source}: no selectors for an HTML listing")
    root = parse_html(body, what=ctx.source)
    base = _base(root, ctx.url)
    select = listing.select
    items = select_all(root, split_selector(select.item)[0])
    if not items:
        raise ParseError(
            f"{ctx.source}: item selector {select.item!r} matched nothing: has the page's layout changed?",
            hint=_LAYOUT_HINT,
        )
    # control characters and lone surrogates out of every value, here, once (as the other parsers do)
    rows = [scrub_tree(read_item(item, listing, base=base, timezone=ctx.timezone)) for item in items]
    titled = [r for r in rows if r["title"]]
    if len(titled) * 2 < len(rows):
        raise ParseError(
            f"{ctx.source}: title selector {select.title!r} found no title in {len(rows) - len(titled)} of "
            f"{len(rows)} items ({select.item!r}): has the page's layout changed?",
            hint=_LAYOUT_HINT,
        )
    if select.date:
        undated = [r for r in titled if r["published"] is None]
        if len(undated) * 2 > len(titled):
            seen = next((r["date_text"] for r in undated if r["date_text"]), None)
            detail = (
                f"; it found {seen!r}, which date_format {listing.date_format!r} does not read"
                if seen
                else ""
            )
            raise ParseError(
                f"{ctx.source}: date selector {select.date!r} gave no date in {len(undated)} of "
                f"{len(titled)} items{detail}: has the page's layout changed?",
                hint=f"{_LAYOUT_HINT}; set the source's date_format to the CLDR pattern of the page's dates",
            )
    if len(titled) < len(rows):
        log.info(
            "%s: %d of %d items had no title and were left out",
            ctx.source,
            len(rows) - len(titled),
            len(rows),
        )
    entries = tuple(_entry(r, ctx, base) for r in titled)
    title_element = root.find(".//title")
    return ParsedFeed(
        title=clean.clean_title(text_of(title_element)) if title_element is not None else "",
        link=base if base and base.startswith(("http://", "https://")) else None,
        format="html",
        entries=entries,
    )


def read_item(item: Any, listing: Listing, *, base: str | None, timezone: str) -> dict[str, Any]:
    """The raw values of one listing item (also what `digest sources try` prints)."""
    select = listing.select
    title, _ = select_value(item, select.title)
    link = _link(item, select.link)
    date_text, _ = select_value(item, select.date) if select.date else (None, None)
    published = (
        parse_date(date_text, pattern=listing.date_format, locale=listing.locale, timezone=timezone)
        if date_text
        else None
    )
    summary_html = ""
    if select.summary:
        css, attribute = split_selector(select.summary)
        value, found = select_value(item, select.summary)
        if found is not None:
            summary_html = clean.text_to_html(value or "") if attribute else inner_html(found)
        del css
    category, _ = select_value(item, select.category) if select.category else (None, None)
    image_url, image_element = _image(item, select.image)
    return {
        "title": title,
        "link": link,
        "date_text": date_text,
        "published": published,
        "summary_html": summary_html,
        "category": clean.clean_title(category) or None,
        "image": image_url,
        "image_alt": (image_element.get("alt") or "") if image_element is not None else "",
        "base": base,
    }


def _link(item: Any, selector: str) -> str | None:
    value, _ = select_value(item, selector)
    if value is None and selector == "a@href" and item.tag == "a":
        value = item.get("href")
    return value


def _image(item: Any, selector: str) -> tuple[str | None, Any | None]:
    css, attribute = split_selector(selector)
    for found in select_all(item, css):
        value = found.get(attribute) if attribute else None
        if attribute == "src" and (not value or value.startswith("data:")):
            value = next((found.get(a) for a in _LAZY_SOURCES if found.get(a)), value)
        if value and not value.startswith("data:"):
            return value.strip(), found
    return None, None


def _base(root: Any, url: str) -> str | None:
    """The page's <base href> resolved against where it came from, else that address."""
    for element in root.iter("base"):
        href = element.get("href")
        if href:
            resolved = clean.absolute_url(href, url if url.startswith(("http://", "https://")) else None)
            if resolved:
                return resolved
    return url


def _entry(row: dict[str, Any], ctx: ParseContext, base: str | None) -> Entry:
    raw_link = row["link"]
    http_base = base if base and base.startswith(("http://", "https://")) else None
    link = clean.absolute_url(raw_link, http_base) if raw_link else None
    article = None
    if raw_link and link is None and http_base is None and base:
        # A local listing linking a local article file: kept (relative to the config folder) for enrichment.
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(base), raw_link.split("#")[0]))
        if not joined.startswith("../") and not posixpath.isabs(joined) and "://" not in raw_link:
            article = joined
    image = None
    image_url = clean.absolute_url(row["image"], link or http_base) if row["image"] else None
    if image_url:
        image = Image(image_url, clean.clean_title(row["image_alt"]))
    return build_entry(
        ctx,
        guid=f"file:{article}" if article else None,
        link=link,
        base=http_base,
        title=row["title"],
        title_is_html=False,
        published=row["published"],
        updated=None,
        summary_html=row["summary_html"],
        image=image,
        category=row["category"],
        article=article,
    )
