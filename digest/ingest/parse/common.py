"""What every parser shares: the parse context, the parsed feed value, and building a clean `Entry`."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from digest.config.schema import Selectors
from digest.ingest import clean
from digest.ingest.images import MIN_IMAGE_WIDTH, dimension, sized, too_small
from digest.models import Entry, Image

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
_ID_LENGTH = 20


@dataclass(frozen=True, slots=True)
class ParseContext:
    """What a parser needs to know besides the bytes.

    `url` is where the document came from (base for relative links; a file path for local sources).
    `seen_at` stands in as the date of undated entries until state supplies their first-seen time.
    `priorities` are the configured priority names (curated items may only name these).
    """

    source: str
    category: str
    url: str
    seen_at: datetime
    excerpt_chars: int = 240
    timezone: str = "UTC"
    priorities: tuple[str, ...] = ()
    listing: Listing | None = None
    min_image_width: int = MIN_IMAGE_WIDTH


@dataclass(frozen=True, slots=True)
class Listing:
    """How to read an HTML listing page (a `kind = "html"` source): its selectors, and its dates' pattern
    read in the digest's locale."""

    select: Selectors
    date_format: str = "auto"
    locale: str = "en_GB"


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    """A parsed document: the feed's own title/link, its format (e.g. "rss20", "json1.1", "markdown")."""

    title: str
    link: str | None
    format: str
    entries: tuple[Entry, ...]


def entry_id(source: str, guid: str | None, link: str | None, fallback: str) -> str:
    """A stable id: from the guid (URLs canonicalised; bare guids scoped to the source), else the canonical
    link, else a hash of `fallback` (the entry's content). Hashed to a short URL- and TOML-safe string."""
    guid = (guid or "").strip()
    if guid:
        as_link = clean.canonical_link(guid) if guid.lower().startswith(("http://", "https://")) else None
        if as_link:
            key = f"url:{as_link}"
        elif _SCHEME.match(guid):
            key = f"guid:{guid}"
        else:
            key = f"guid:{source}:{guid}"
    elif link:
        key = f"url:{link}"
    else:
        key = f"hash:{source}:{fallback}"
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:_ID_LENGTH]


def first_image(fragment: str, base: str | None, min_width: int = MIN_IMAGE_WIDTH) -> Image | None:
    """The first real <img> of an HTML fragment, absolute, with its alt text and size (tracking pixels,
    and pictures known to be narrower than `min_width` px such as avatars and icons, skipped)."""
    if "<img" not in fragment and "<IMG" not in fragment:
        return None
    for attributes in clean.images(fragment):
        if attributes.get("width", "").strip() in ("0", "1") or attributes.get("height", "").strip() in (
            "0",
            "1",
        ):
            continue  # a tracking pixel, not a picture
        url = clean.absolute_url(attributes.get("src"), base)
        if not url:
            continue
        image = sized(
            Image(
                url,
                clean.clean_title(attributes.get("alt", "")),
                dimension(attributes.get("width")),
                dimension(attributes.get("height")),
            )
        )
        if not too_small(image, min_width):
            return image
    return None


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")


def language_tag(value: object) -> str | None:
    """A BCP 47 language tag as a feed gives it ("en-us", "zh_CN" -> "zh-CN"), or None when not one."""
    if not isinstance(value, str):
        return None
    tag = value.strip().replace("_", "-")
    return tag if _LANGUAGE_TAG.fullmatch(tag) and len(tag) <= 35 else None


def aware_utc(value: datetime | None) -> datetime | None:
    """An aware UTC datetime (naive values are taken as UTC), or None."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def build_entry(
    ctx: ParseContext,
    *,
    guid: str | None,
    link: str | None,
    base: str | None,
    title: str | None,
    title_is_html: bool,
    published: datetime | None,
    updated: datetime | None,
    summary_html: str,
    author: str | None = None,
    tags: tuple[str, ...] = (),
    image: Image | None = None,
    category: str | None = None,
    priority: str | None = None,
    pinned: bool = False,
    summary_text: str | None = None,
    article: str | None = None,
    language: str | None = None,
) -> Entry:
    """Make a clean Entry from raw values: sanitised HTML, excerpt, canonical link, derived title, stable id.

    `summary_html` is untrusted and is sanitised here; `summary_text`, when given, is the excerpt source.
    """
    canonical = clean.canonical_link(link, base)
    safe_html = clean.sanitise_html(summary_html, canonical or base)
    text = clean.collapse(summary_text) if summary_text else clean.prose_text(safe_html)
    cleaned_title = clean.clean_title(title, markup=title_is_html)
    if not cleaned_title:
        cleaned_title = clean.derived_title(text, canonical, f"Untitled entry from {ctx.source}")
        text = clean.rest_after_title(text, cleaned_title)  # the title is not repeated as the excerpt
    published = aware_utc(published)
    updated = aware_utc(updated)
    estimated = published is None and updated is None
    when = published or updated or ctx.seen_at
    if image is None:
        image = first_image(summary_html, canonical or base, ctx.min_image_width)
    if image is not None:
        image = sized(image)
        if too_small(image, ctx.min_image_width):
            image = None
    tag_list: list[str] = []
    for tag in tags:
        value = clean.clean_title(tag)
        if value and value not in tag_list:
            tag_list.append(value)
    author_name = clean.clean_title(author) or None
    fallback = (
        f"{clean.normalised_title(cleaned_title)}|{when.isoformat() if not estimated else ''}|{safe_html}"
    )
    return Entry(
        id=entry_id(ctx.source, guid, canonical, fallback),
        source=ctx.source,
        category=category or ctx.category,
        title=cleaned_title,
        link=canonical,
        published=when,
        updated=updated if updated and updated != when else None,
        date_estimated=estimated,
        summary_html=safe_html,
        summary_text=clean.excerpt(text, ctx.excerpt_chars),
        author=author_name,
        tags=tuple(tag_list),
        image=image,
        priority=priority,
        pinned=pinned,
        article=article,
        language=language_tag(language),
    )
