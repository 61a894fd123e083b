"""Trying a web page as a source (`digest sources try`): what selectors extract, its feed links, or
candidate `item` selectors (repeated elements that each hold a link and a date), ranked."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from digest.config import USER_AGENT, Selectors
from digest.errors import FetchError, InvalidValueError, UsageError
from digest.ingest import clean, fetch
from digest.ingest.parse.common import Listing
from digest.ingest.parse.dates import parse_date
from digest.ingest.parse.jsonfeed import looks_like_json
from digest.ingest.parse.listing import read_item
from digest.ingest.parse.select import describe, parse_html, select_all, split_selector, text_of

FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/json")
_MAX_DATE_TEXT = 60


@dataclass(frozen=True, slots=True)
class FeedLink:
    url: str
    type: str
    title: str


@dataclass(frozen=True, slots=True)
class Candidate:
    """A suggested `item` selector: how many elements it matches, how many hold a link and a date, and
    selectors for the title and date inside the first of them."""

    item: str
    matches: int
    with_link_and_date: int
    title: str | None
    date: str | None
    example: str


@dataclass(frozen=True, slots=True)
class TriedItem:
    title: str | None
    link: str | None
    date_text: str | None
    published: datetime | None
    summary: str
    category: str | None
    image: str | None


@dataclass(frozen=True, slots=True)
class TryResult:
    """What `digest sources try` found on one page: items (with selectors), else feeds and candidates."""

    url: str
    items: tuple[TriedItem, ...] = ()
    feeds: tuple[FeedLink, ...] = ()
    candidates: tuple[Candidate, ...] = ()


def try_page(
    target: str,
    select: dict[str, str],
    *,
    date_format: str = "auto",
    locale: str = "en_GB",
    timezone: str = "UTC",
    user_agent: str = USER_AGENT,
    timeout: float = 20.0,
    max_bytes: int = 10_000_000,
) -> TryResult:
    """Fetch (or read) `target` and apply `select` (keys as in [sources.select]; empty: look for feeds).

    Raises:
        UsageError: a selector is not valid CSS, or --select-* is given without --select-item.
        FetchError: the page cannot be fetched or read.
        ParseError: the page is not HTML.
    """
    for key, value in select.items():
        try:
            split_selector(value)
        except InvalidValueError as e:
            raise InvalidValueError(f"--select-{key}: {e}") from None
    if select and "item" not in select:
        raise UsageError(
            "--select-item is needed with the other --select-* options", hint="try with no selectors first"
        )
    body, url = _read(target, user_agent=user_agent, timeout=timeout, max_bytes=max_bytes)
    own_type = None if select else feed_type(body)
    if own_type:  # the address is a feed itself: it is the source's url, as any feed link would be
        return TryResult(url=url, feeds=(FeedLink(url=url, type=own_type, title="this address is a feed"),))
    root = parse_html(body, what=target)
    base = url if url.startswith(("http://", "https://")) else None
    for element in root.iter("base"):
        base = clean.absolute_url(element.get("href"), base) or base
    if select:
        selectors = Selectors(
            item=select["item"],
            title=select.get("title", "h1, h2, h3, h4, h5, h6, a"),
            link=select.get("link", "a@href"),
            date=select.get("date"),
            summary=select.get("summary"),
            category=select.get("category"),
            image=select.get("image", "img@src"),
        )
        listing = Listing(selectors, date_format, locale)
        items = []
        for element in select_all(root, split_selector(selectors.item)[0]):
            row = read_item(element, listing, base=base, timezone=timezone)
            items.append(
                TriedItem(
                    title=row["title"],
                    link=clean.absolute_url(row["link"], base) or row["link"],
                    date_text=row["date_text"],
                    published=row["published"],
                    summary=clean.excerpt(
                        clean.sanitised_text(clean.sanitise_html(row["summary_html"], base)), 160
                    ),
                    category=row["category"],
                    image=clean.absolute_url(row["image"], base) or row["image"],
                )
            )
        return TryResult(url=url, items=tuple(items))
    feeds = feed_links(root, base)
    if feeds:
        return TryResult(url=url, feeds=feeds)
    return TryResult(url=url, candidates=candidates(root, timezone=timezone))


_FEED_ROOT = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*|<\?[^>]*>\s*)*<(rss|feed|rdf:RDF)[\s>]",
    re.DOTALL,
)
_FEED_TYPES = {
    b"rss": "application/rss+xml",
    b"feed": "application/atom+xml",
    b"rdf:RDF": "application/rdf+xml",
}


def feed_type(body: bytes) -> str | None:
    """The type of feed `body` is (RSS, Atom, RSS 1.0 or JSON Feed), or None for anything else."""
    found = _FEED_ROOT.match(body[:4096])
    if found:
        return _FEED_TYPES[found[1]]
    if looks_like_json(body) and b"jsonfeed.org/version" in body[:4096]:
        return "application/feed+json"
    return None


def _read(target: str, *, user_agent: str, timeout: float, max_bytes: int) -> tuple[bytes, str]:
    if target.startswith(("http://", "https://")):

        async def get() -> fetch.Fetched:
            async with fetch.new_client(concurrency=1) as client:
                return await fetch.fetch_http(
                    client,
                    target,
                    name=target,
                    timeout=timeout,
                    user_agent=user_agent,
                    validators=fetch.Validators(),
                    max_bytes=max_bytes,
                    retries=0,
                )

        fetched = asyncio.run(get())
        if not fetched.documents:
            raise FetchError(f"{target}: HTTP {fetched.http_status}: no page to read")
        return fetched.documents[0].body, fetched.url
    path = Path(target)
    try:
        return path.read_bytes()[:max_bytes], str(path)
    except FileNotFoundError:
        raise UsageError(
            f"{target}: no such file", hint="give an http(s) URL or the path of a saved page"
        ) from None
    except OSError as e:
        raise UsageError(f"{target}: cannot read it: {e.strerror}") from e


def feed_links(root: Any, base: str | None) -> tuple[FeedLink, ...]:
    """The page's `<link rel="alternate">` feeds (RSS, Atom, JSON Feed), absolute where possible."""
    found: list[FeedLink] = []
    for link in root.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").lower().strip()
        href = link.get("href")
        if "alternate" in rel and kind in FEED_TYPES and href:
            url = clean.absolute_url(href, base) or href
            if all(f.url != url for f in found):
                found.append(FeedLink(url, kind, clean.collapse(link.get("title") or "")))
    return tuple(found)


def _date_element(element: Any, timezone: str) -> Any | None:
    """The first element under `element` that holds a date (a <time>, or short text that reads as one)."""
    for child in element.iter():
        if not isinstance(child.tag, str):
            continue
        if child.tag == "time" and (child.get("datetime") or text_of(child)):
            return child
        text = (child.text or "").strip()
        short = text and len(text) <= _MAX_DATE_TEXT and any(c.isdigit() for c in text)
        if short and parse_date(text, timezone=timezone) is not None:
            return child
    return None


def _has_link(element: Any) -> bool:
    return (element.tag == "a" and bool(element.get("href"))) or any(a.get("href") for a in element.iter("a"))


def candidates(root: Any, *, timezone: str = "UTC", limit: int = 5) -> tuple[Candidate, ...]:
    """Repeated elements (same tag and classes, at least 3) that each hold a link and a date, best first:
    most such elements, then the largest share of matches that have both, then the innermost."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag not in (
            "html",
            "head",
            "body",
            "script",
            "style",
            "a",
        ):
            groups[describe(element)].append(element)
    ranked: list[tuple[tuple[int, float, int], Candidate]] = []
    for selector, elements in groups.items():
        if len(elements) < 3:
            continue
        good = [e for e in elements if _has_link(e) and _date_element(e, timezone) is not None]
        if len(good) < 2:
            continue
        first = good[0]
        date_element = _date_element(first, timezone)
        date_selector = None
        if date_element is not None:
            date_selector = describe(date_element) + ("@datetime" if date_element.get("datetime") else "")
        heading = next((h for h in first.iter("h1", "h2", "h3", "h4", "h5", "h6")), None)
        title_selector = describe(heading) if heading is not None else "a"
        depth = sum(1 for _ in first.iterancestors())
        candidate = Candidate(
            item=selector,
            matches=len(select_all(root, selector)),
            with_link_and_date=len(good),
            title=title_selector,
            date=date_selector,
            example=clean.excerpt(text_of(first), 100),
        )
        ranked.append(((len(good), len(good) / len(elements), depth), candidate))
    ranked.sort(key=lambda pair: pair[0], reverse=True)
    return tuple(c for _, c in ranked[:limit])
