"""An article page's own metadata: title, publication date, picture, description and address.

Read with extruct (OpenGraph, JSON-LD `NewsArticle`/`Article`/`BlogPosting`..., microdata), then the page's
`<meta name="description">`, `<link rel="canonical">` and `<time datetime>`. What the page does not say stays
None: enrichment fills an entry only from what is there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from digest.ingest import clean
from digest.ingest.parse.dates import parse_date
from digest.ingest.parse.select import parse_html
from digest.models import Image
from digest.safe_text import scrub_text, scrub_tree

log = logging.getLogger(__name__)

ARTICLE_TYPES = frozenset(
    {
        "Article",
        "NewsArticle",
        "BlogPosting",
        "ReportageNews",
        "AnalysisNewsArticle",
        "OpinionNewsArticle",
        "BackgroundNewsArticle",
        "TechArticle",
        "ScholarlyArticle",
        "LiveBlogPosting",
        "Report",
        "CreativeWork",
    }
)
_SYNTAXES = ["opengraph", "json-ld", "microdata"]


@dataclass(frozen=True, slots=True)
class ArticleMeta:
    """What an article page says about itself (None: the page does not say)."""

    title: str | None = None
    published: datetime | None = None
    image: Image | None = None
    summary: str | None = None
    url: str | None = None

    @property
    def empty(self) -> bool:
        return self == ArticleMeta()


def read_article(body: bytes, url: str, *, timezone: str = "UTC") -> ArticleMeta:
    """The metadata of one article page; an empty ArticleMeta when it has none or is not HTML."""
    import extruct  # noqa: PLC0415 - extruct (rdflib) is slow to import and only enrichment needs it

    try:
        root = parse_html(body, what=url)
    except Exception:  # noqa: BLE001 - not a page we can read: nothing to enrich with
        return ArticleMeta()
    base = url if url.startswith(("http://", "https://")) else None
    try:
        data = extruct.extract(root, base_url=base, syntaxes=_SYNTAXES, uniform=True, errors="ignore")
    except Exception as e:  # noqa: BLE001 - extruct fails in many ways on odd pages; then only the HTML
        log.debug("%s: extruct could not read the page (%s)", url, e)
        data = {}
    data = scrub_tree(data)  # control characters and lone surrogates out, here, once
    og = _opengraph(data.get("opengraph") or [])
    ld = _articles(data.get("json-ld") or [])
    micro = _articles(data.get("microdata") or [])
    metas = scrub_tree(_metas(root))

    title = _first(
        og.get("og:title"),
        *(_text(a.get("headline")) for a in ld + micro),
        *(_text(a.get("name")) for a in ld),
    )
    if title:
        title = _without_site_name(clean.clean_title(title), og.get("og:site_name"))
    published = _date(
        timezone,
        *(_text(a.get("datePublished")) for a in ld),
        og.get("article:published_time"),
        metas.get("article:published_time"),
        *(_text(a.get("datePublished")) for a in micro),
        *_times(root),
        metas.get("date"),
        metas.get("dc.date.issued"),
    )
    image = _image(og, ld + micro, base)
    summary = _first(
        og.get("og:description"),
        *(_text(a.get("description")) for a in ld + micro),
        metas.get("description"),
    )
    canonical = next(
        (e.get("href") for e in root.iter("link") if (e.get("rel") or "").lower() == "canonical"), None
    )
    page_url = clean.canonical_link(og.get("og:url") or canonical, base)
    return ArticleMeta(
        title=scrub_text(title) if title else None,
        published=published,
        image=image,
        summary=clean.collapse(summary) if summary else None,
        url=page_url,
    )


def _opengraph(items: list[Any]) -> dict[str, str]:
    merged: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):
            for key, value in item.items():
                text = _text(value[0] if isinstance(value, list) and value else value)
                if isinstance(key, str) and text and key not in merged:
                    merged[key] = text
    return merged


def _articles(items: list[Any]) -> list[dict[str, Any]]:
    """Every JSON-LD or microdata object of an article type (looking inside @graph and lists)."""
    found: list[dict[str, Any]] = []

    def visit(value: Any, depth: int) -> None:
        if depth > 6:
            return
        if isinstance(value, list):
            for v in value:
                visit(v, depth + 1)
        elif isinstance(value, dict):
            kinds = value.get("@type")
            names = kinds if isinstance(kinds, list) else [kinds]
            if any(isinstance(n, str) and n.rsplit("/", 1)[-1] in ARTICLE_TYPES for n in names):
                found.append(value)
            if "@graph" in value:
                visit(value["@graph"], depth + 1)

    visit(items, 0)
    return found


def _metas(root: Any) -> dict[str, str]:
    values: dict[str, str] = {}
    for meta in root.iter("meta"):
        key = (meta.get("property") or meta.get("name") or meta.get("itemprop") or "").strip().lower()
        content = (meta.get("content") or "").strip()
        if key and content and key not in values:
            values[key] = content
    return values


def _times(root: Any) -> list[str]:
    """`<time datetime>` values that date the article: inside <article> or marked as its publication, else
    the page's only one (a page with several may date sidebar teasers for other stories)."""
    marked = [
        t.get("datetime")
        for t in root.iter("time")
        if t.get("datetime")
        and (t.get("itemprop") == "datePublished" or t.get("pubdate") is not None or _inside_article(t))
    ]
    if marked:
        return [str(v) for v in marked]
    every = {str(t.get("datetime")).strip() for t in root.iter("time") if t.get("datetime")}
    return list(every) if len(every) == 1 else []


def _inside_article(element: Any) -> bool:
    return any(parent.tag == "article" for parent in element.iterancestors())


def _date(timezone: str, *values: str | None) -> datetime | None:
    for value in values:
        if value:
            parsed = parse_date(value, timezone=timezone)
            if parsed is not None:
                return parsed
    return None


def _image(og: dict[str, str], articles: list[dict[str, Any]], base: str | None) -> Image | None:
    url = clean.absolute_url(
        og.get("og:image:secure_url") or og.get("og:image") or og.get("og:image:url"), base
    )
    if url:
        return Image(
            url,
            clean.clean_title(og.get("og:image:alt")),
            _pixels(og.get("og:image:width")),
            _pixels(og.get("og:image:height")),
        )
    for article in articles:
        value = article.get("image")
        value = value[0] if isinstance(value, list) and value else value
        if isinstance(value, dict):
            found = clean.absolute_url(_text(value.get("url") or value.get("contentUrl")), base)
            if found:
                return Image(found, "", _pixels(value.get("width")), _pixels(value.get("height")))
        found = clean.absolute_url(_text(value), base)
        if found:
            return Image(found, "")
    return None


def _pixels(value: object) -> int | None:
    if isinstance(value, dict):
        value = value.get("value")
    match = re.match(r"^\s*(\d{1,5})(?:px)?\s*$", str(value)) if value is not None else None
    return int(match.group(1)) if match and int(match.group(1)) > 0 else None


def _text(value: object) -> str | None:
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _first(*values: str | None) -> str | None:
    return next((v for v in values if v and v.strip()), None)


def _without_site_name(title: str, site: str | None) -> str:
    if site:
        for separator in (" | ", " - ", " \u2013 ", " \u2014 "):
            suffix = f"{separator}{site.strip()}"
            if title.endswith(suffix) and len(title) > len(suffix):
                return title[: -len(suffix)].strip()
    return title
