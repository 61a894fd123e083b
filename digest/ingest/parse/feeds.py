"""RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 through feedparser: the only module that imports it.

feedparser's own sanitiser and relative-URI resolution are turned off: both are done once, afterwards,
with nh3 and urljoin (`digest.ingest.clean`), which is about twice as fast and keeps one allowlist for
every format.
"""

from __future__ import annotations

import calendar
import functools
import io
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

import feedparser
import feedparser.mixin
import feedparser.urls

from digest.errors import ParseError
from digest.ingest import clean
from digest.ingest.images import best_image, dimension, looks_like_image
from digest.ingest.parse.common import ParseContext, ParsedFeed, build_entry, first_image
from digest.models import Entry, Image
from digest.safe_text import scrub_tree

log = logging.getLogger(__name__)

# bozo exceptions that only say the declared and actual encoding or content type disagree: the feed was
# still read in full.
_BENIGN_BOZO = ("CharacterEncodingOverride", "NonXMLContentType")
_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")
# A character reference feedparser cannot decode: it raises on a surrogate (&#xD800;) or a code point
# past U+10FFFF, losing the whole feed for one character. Such references become U+FFFD first.
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,16})|([0-9]{1,20}));")
_REPLACEMENT_REF = b"&#xFFFD;"

# feedparser re-resolves its xml:base at every start tag (make_safe_absolute_uri(base, base), a urljoin each:
# a seventh of parsing a feed); the function is pure, so each (base, uri) pair is now resolved once.
if not hasattr(feedparser.mixin.make_safe_absolute_uri, "cache_info"):
    feedparser.mixin.make_safe_absolute_uri = functools.lru_cache(maxsize=1024)(
        feedparser.urls.make_safe_absolute_uri
    )


def _unreadable_reference(match: re.Match[bytes]) -> bytes:
    code = int(match[1], 16) if match[1] else int(match[2])
    return _REPLACEMENT_REF if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF else match[0]


def parse_xml_feed(body: bytes, ctx: ParseContext, *, content_type: str | None = None) -> ParsedFeed:
    """Parse RSS or Atom bytes into entries.

    Raises:
        ParseError: feedparser recognised no feed, or the XML is broken before any entry could be read.
    """
    headers: dict[str, str] = {}
    if ctx.url.lower().startswith(("http://", "https://")):
        headers["content-location"] = ctx.url
    if content_type:
        headers["content-type"] = content_type
    try:
        parsed = feedparser.parse(
            io.BytesIO(_CHAR_REF.sub(_unreadable_reference, body)),
            response_headers=headers,
            sanitize_html=False,
            resolve_relative_uris=False,
        )
    except Exception as e:  # feedparser fails in many ways on hostile bytes: all mean "unreadable"
        raise ParseError(
            f"{ctx.source}: feedparser could not read the document ({type(e).__name__}: {e})",
            hint="check that the URL serves an RSS or Atom feed",
        ) from e
    scrub_tree(parsed)  # control characters, lone surrogates: out of every field, here, once
    raw_entries: list[Any] = list(parsed.get("entries") or [])
    version = str(parsed.get("version") or "")
    problem = parsed.get("bozo_exception") if parsed.get("bozo") else None
    problem_name = type(problem).__name__ if problem is not None else ""
    if not raw_entries:
        if not version:
            raise ParseError(
                f"{ctx.source}: not an RSS, Atom or JSON feed{_detail(problem)}",
                hint="check that the URL or file is a feed, not a web page or another document",
            )
        if problem is not None and problem_name not in _BENIGN_BOZO:
            raise ParseError(
                f"{ctx.source}: the feed is not well-formed XML and no entries could be read"
                f"{_detail(problem)}",
                hint="the publisher's feed is broken; tell them, or disable the source until it is fixed",
            )
    elif problem is not None and problem_name not in _BENIGN_BOZO:
        log.warning(
            "%s: feed is not well-formed (%s); read %d entries anyway", ctx.source, problem, len(raw_entries)
        )
    feed = parsed.get("feed") or {}
    feed_link = clean.absolute_url(_text(feed.get("link")), ctx.url) or _http(ctx.url)
    feed_language = _text(feed.get("language")) or _text((feed.get("title_detail") or {}).get("language"))
    entries = tuple(_entry(raw, ctx, feed_link, feed_language) for raw in raw_entries)
    return ParsedFeed(
        title=clean.clean_title(_text(feed.get("title"))),
        link=feed_link,
        format=version or "unknown",
        entries=entries,
    )


def _detail(problem: object) -> str:
    if problem is None:
        return ""
    text = re.sub(r"^<unknown>:(\d+):(\d+):", r"line \1 column \2:", clean.collapse(str(problem)))
    return f" ({text[:200]})" if text else f" ({type(problem).__name__})"


def _http(url: str) -> str | None:
    return url if url.lower().startswith(("http://", "https://")) else None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _date(value: object) -> datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _body(raw: Any, base: str | None) -> tuple[str, str | None]:
    """The entry's summary (else its longest content) as HTML, and the base URL it is relative to."""
    detail = raw.get("summary_detail") or {}
    value = _text(raw.get("summary")) or ""
    kind = str(detail.get("type") or "text/html")
    if not value.strip():
        contents = [c for c in raw.get("content") or [] if _text(c.get("value"))]
        if contents:
            best = max(contents, key=lambda c: len(c.get("value") or ""))
            value, kind, detail = best["value"], str(best.get("type") or "text/html"), best
    content_base = clean.absolute_url(_text(detail.get("base")), base) or base
    if kind in _HTML_TYPES or kind.endswith(("html", "xml")):
        return value, content_base
    return clean.text_to_html(value), content_base


def _image(raw: Any, base: str | None, min_width: int) -> Image | None:
    """The entry's best picture for the email: among its `media:content` pictures (a `type` of image/*,
    `medium="image"`, or no type and a URL ending in an image extension), else its thumbnails, else an
    image enclosure. Sizes come from the attributes or the URL; too-narrow pictures are dropped."""
    contents: list[Image] = []
    for media in raw.get("media_content") or []:
        medium = str(media.get("medium") or "")
        kind = str(media.get("type") or "")
        url = clean.absolute_url(_text(media.get("url")), base)
        if not url:
            continue
        if (
            medium == "image"
            or kind.startswith("image/")
            or (not kind and not medium and looks_like_image(url))
        ):
            # feedparser folds media:description into the entry summary, so no alt text is known:
            # the image is decorative beside the entry's title.
            contents.append(_sized(url, media))
    thumbnails = [
        _sized(url, thumb)
        for thumb in raw.get("media_thumbnail") or []
        if (url := clean.absolute_url(_text(thumb.get("url")), base))
    ]
    enclosures = [
        Image(url, "")
        for link in raw.get("links") or []
        if link.get("rel") == "enclosure"
        and str(link.get("type") or "").startswith("image/")
        and (url := clean.absolute_url(_text(link.get("href")), base))
    ]
    for candidates in (contents, thumbnails, enclosures):
        chosen = best_image(candidates, min_width)
        if chosen:
            return chosen
    return None


def _sized(url: str, attributes: Any) -> Image:
    return Image(url, "", dimension(attributes.get("width")), dimension(attributes.get("height")))


def _entry(raw: Any, ctx: ParseContext, feed_link: str | None, feed_language: str | None) -> Entry:
    link = _text(raw.get("feedburner_origlink")) or _text(raw.get("link"))
    base = clean.absolute_url(link, feed_link) or feed_link
    html, content_base = _body(raw, base)
    title_detail = raw.get("title_detail") or {}
    title_type = str(title_detail.get("type") or "text/plain")
    author = (raw.get("author_detail") or {}).get("name") or raw.get("author")
    tags = tuple(
        str(t.get("label") or t.get("term") or "")
        for t in raw.get("tags") or []
        if t.get("label") or t.get("term")
    )
    guid = _text(raw.get("id"))
    return build_entry(
        ctx,
        guid=guid,
        link=link,
        base=feed_link,
        title=_text(raw.get("title")),
        title_is_html=title_type in _HTML_TYPES,
        language=_text(title_detail.get("language"))
        or _text((raw.get("summary_detail") or {}).get("language"))
        or feed_language,
        published=_date(raw.get("published_parsed")) or _date(raw.get("created_parsed")),
        updated=_date(dict.get(raw, "updated_parsed")),  # plain get: no fallback to published
        summary_html=html,
        author=_text(author),
        tags=tags,
        image=_image(raw, content_base, ctx.min_image_width)
        or first_image(html, content_base, ctx.min_image_width)
        or _content_image(raw, content_base, ctx.min_image_width),
    )


def _content_image(raw: Any, base: str | None, min_width: int) -> Image | None:
    """The first picture of the full content, for feeds whose summary is a bare teaser."""
    for content in raw.get("content") or []:
        value = _text(content.get("value"))
        image = (
            first_image(value, clean.absolute_url(_text(content.get("base")), base) or base, min_width)
            if value
            else None
        )
        if image:
            return image
    return None
