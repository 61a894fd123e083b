"""Bytes -> clean entries: RSS/Atom (feedparser), JSON Feed (by hand) and curated Markdown items.

`parse_document` picks the parser from the bytes themselves (a feed served with the wrong content type or
file extension still parses) and refuses a web page with a hint to look for the site's feed.
"""

from __future__ import annotations

import html
import re

from digest.errors import ParseError
from digest.ingest.clean import absolute_url
from digest.ingest.parse.common import Listing, ParseContext, ParsedFeed, entry_id
from digest.ingest.parse.items import is_markdown_name, parse_item
from digest.ingest.parse.jsonfeed import looks_like_json, parse_json_feed

__all__ = ["Listing", "ParseContext", "ParsedFeed", "entry_id", "parse_document"]

_HTML_PAGE = re.compile(
    rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.IGNORECASE | re.DOTALL
)
_FEED_LINK = re.compile(
    rb"<link[^>]+type=[\"']application/(rss|atom|feed)\+(xml|json)[\"'][^>]*>", re.IGNORECASE
)
_HREF = re.compile(rb"href=[\"']([^\"']+)[\"']", re.IGNORECASE)


def parse_document(
    body: bytes, ctx: ParseContext, *, content_type: str | None = None, label: str | None = None
) -> ParsedFeed:
    """Parse one fetched document. `label` names a local file (used to identify curated items).

    Raises:
        ParseError: the bytes are not a feed digest can read; the message says what they look like.
    """
    kind = (content_type or "").split(";")[0].strip().lower()
    name = label or ctx.url
    if ctx.listing is not None:  # a `kind = "html"` source: a listing page read with its selectors
        from digest.ingest.parse.listing import parse_listing  # noqa: PLC0415 - lxml loads only for listings

        return parse_listing(body, ctx)
    if is_markdown_name(name) or kind == "text/markdown":
        return parse_item(body, ctx, label=label or ctx.url)
    if not body.strip():
        raise ParseError(f"{ctx.source}: the document is empty", hint="check the URL or file")
    if looks_like_json(body):
        return parse_json_feed(body, ctx)
    if _HTML_PAGE.match(body[:4096]):
        raise ParseError(
            f"{ctx.source}: got a web page (served as {kind or 'unknown type'}), not a feed",
            hint=_feed_hint(body, ctx.url),
        )
    from digest.ingest.parse.feeds import parse_xml_feed  # noqa: PLC0415 - feedparser is slow to import

    return parse_xml_feed(body, ctx, content_type=content_type)


def _feed_hint(body: bytes, page_url: str) -> str:
    link = _FEED_LINK.search(body[:200_000])
    href = _HREF.search(link.group(0)) if link else None
    if href:
        raw = html.unescape(href.group(1).decode("utf-8", "replace"))
        url = absolute_url(raw, page_url) if page_url.startswith(("http://", "https://")) else raw
        if url:
            return f"the page names a feed: set the source's url to {url}"
    return "set the source's url to the site's RSS, Atom or JSON feed, not its web page"
