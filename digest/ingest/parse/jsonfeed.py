"""JSON Feed 1.0 and 1.1 (https://jsonfeed.org/version/1.1), mapped by hand: feedparser does not read it.

Fields of the wrong type are ignored one by one (logged), never fatal: a feed with one odd item still gives
its other items.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from digest.errors import ParseError
from digest.ingest import clean
from digest.ingest.parse.common import ParseContext, ParsedFeed, build_entry
from digest.models import Entry, Image
from digest.safe_text import scrub_tree

log = logging.getLogger(__name__)
_VERSION_PREFIXES = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")
_KNOWN_VERSIONS = ("1", "1.1")


def looks_like_json(body: bytes) -> bool:
    """True when the document's first non-blank character opens a JSON object."""
    head = body[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"{")


def parse_json_feed(body: bytes, ctx: ParseContext) -> ParsedFeed:
    """Parse JSON Feed bytes into entries.

    Raises:
        ParseError: the bytes are not JSON, or the JSON is not a JSON Feed.
    """
    try:
        # raw control characters are read (strict=False), then they and "\ud800" escapes are removed from
        # every field, here, once
        data = scrub_tree(json.loads(body.decode("utf-8-sig"), strict=False))
    except UnicodeDecodeError as e:
        raise ParseError(f"{ctx.source}: JSON feed is not UTF-8 (byte {e.start})") from e
    except json.JSONDecodeError as e:
        raise ParseError(
            f"{ctx.source}: not valid JSON at line {e.lineno} column {e.colno} ({e.msg})",
            hint="the document may be cut short; check the feed in a browser",
        ) from e
    except RecursionError as e:
        raise ParseError(f"{ctx.source}: JSON nested too deeply to be a feed") from e
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not version.startswith(_VERSION_PREFIXES):
        raise ParseError(
            f"{ctx.source}: JSON document is not a JSON Feed (no jsonfeed.org version)",
            hint="digest reads JSON Feed 1.0/1.1, RSS and Atom; look for one of those on the site",
        )
    number = version.rsplit("/", 1)[-1]
    if number not in _KNOWN_VERSIONS:
        log.warning("%s: unknown JSON Feed version %s; reading it as 1.1", ctx.source, number)
    items = data.get("items")
    if not isinstance(items, list):
        raise ParseError(f"{ctx.source}: JSON Feed has no 'items' list")
    home = clean.absolute_url(_str(data.get("home_page_url")), ctx.url if _is_http(ctx.url) else None)
    base = home or (ctx.url if _is_http(ctx.url) else None)
    feed_author = _author(data)
    entries = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            log.warning("%s: JSON Feed item %d is not an object; skipped", ctx.source, index)
            continue
        entries.append(_entry(item, ctx, base, feed_author, _str(data.get("language"))))
    return ParsedFeed(
        title=clean.clean_title(_str(data.get("title")), markup=False),
        link=home,
        format=f"json{number}",
        entries=tuple(entries),
    )


def _is_http(url: str) -> bool:
    return url.lower().startswith(("http://", "https://"))


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _date(value: object) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


def _author(obj: dict[str, Any]) -> str | None:
    candidates: list[Any] = []
    authors = obj.get("authors")
    if isinstance(authors, list):
        candidates.extend(authors)
    candidates.append(obj.get("author"))
    for author in candidates:
        if isinstance(author, dict) and isinstance(author.get("name"), str) and author["name"].strip():
            return str(author["name"])
    return None


def _image(item: dict[str, Any], base: str | None) -> Image | None:
    for key in ("image", "banner_image"):
        url = clean.absolute_url(_str(item.get(key)), base)
        if url:
            return Image(url, "")
    attachments = item.get("attachments")
    for attachment in attachments if isinstance(attachments, list) else []:
        if isinstance(attachment, dict) and str(attachment.get("mime_type") or "").startswith("image/"):
            url = clean.absolute_url(_str(attachment.get("url")), base)
            if url:
                return Image(url, clean.clean_title(_str(attachment.get("title")) or "", markup=False))
    return None


def _entry(
    item: dict[str, Any], ctx: ParseContext, base: str | None, feed_author: str | None, language: str | None
) -> Entry:
    raw_id = item.get("id")
    guid = str(raw_id) if isinstance(raw_id, str | int | float) and not isinstance(raw_id, bool) else None
    link = _str(item.get("url")) or _str(item.get("external_url"))
    item_base = clean.absolute_url(link, base) or base
    summary = _str(item.get("summary"))
    content_html = _str(item.get("content_html"))
    content_text = _str(item.get("content_text"))
    if summary and summary.strip():
        html, text = clean.text_to_html(summary), summary
    elif content_html and content_html.strip():
        html, text = content_html, None
    else:
        html, text = clean.text_to_html(content_text or ""), content_text
    raw_tags = item.get("tags")
    tags = tuple(t for t in raw_tags if isinstance(t, str)) if isinstance(raw_tags, list) else ()
    return build_entry(
        ctx,
        guid=guid,
        link=link,
        base=base,
        title=_str(item.get("title")),
        title_is_html=False,
        published=_date(item.get("date_published")),
        updated=_date(item.get("date_modified")),
        summary_html=html,
        summary_text=text,
        author=_author(item) or feed_author,
        tags=tags,
        image=_image(item, item_base),
        language=_str(item.get("language")) or language,
    )
