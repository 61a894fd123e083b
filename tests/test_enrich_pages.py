"""Enrichment on the 83 real article pages of ../shared/pages/, served by the local test server: what each
page yields is checked against what the page itself says, found by a different, simpler method (regular
expressions over the raw bytes), plus a small hand-checked table. Fuzzed HTML gives entries or ParseError."""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urljoin

import pytest
from conftest import SHARED
from feed_server import feed, running_server
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.config import Selectors, load_config
from digest.errors import ParseError
from digest.ingest.enrich import apply_article
from digest.ingest.parse import Listing, ParseContext, parse_document
from digest.ingest.parse.article import read_article
from digest.models import Entry
from digest.pipeline.ingest import ingest_sources
from digest.state.store import open_store

PAGES = sorted((SHARED / "pages").glob("*.html"))
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def _meta(raw: str, name: str) -> str | None:
    """The content of the first <meta property|name=NAME content=...> in either attribute order."""
    values = _metas(raw, name)
    return values[0] if values else None


def _metas(raw: str, name: str) -> list[str]:
    """Every <meta property|name=NAME content=...> value, in either attribute order."""
    found = []
    for pattern in (
        rf"<meta[^>]*?(?:property|name)\s*=\s*[\"']{re.escape(name)}[\"'][^>]*?content\s*=\s*[\"']([^\"']*)[\"']",
        rf"<meta[^>]*?content\s*=\s*[\"']([^\"']*)[\"'][^>]*?(?:property|name)\s*=\s*[\"']{re.escape(name)}[\"']",
    ):
        found += [html.unescape(v).strip() for v in re.findall(pattern, raw, re.IGNORECASE) if v.strip()]
    return found


def _stated_dates(raw: str) -> set[str]:
    """Every publication date the page states anywhere, as YYYY-MM-DD (a date only: zones vary)."""
    values = re.findall(r"\"date(?:Published|Created|Modified)\"\s*:\s*\"([^\"]+)\"", raw)
    values += re.findall(r"datetime\s*=\s*[\"']([^\"']+)[\"']", raw)
    values += re.findall(r"itemprop=[\"']datePublished[\"'][^>]*content=[\"']([^\"']+)", raw)
    for name in ("article:published_time", "date", "DC.date.issued"):
        value = _meta(raw, name)
        if value:
            values.append(value)
    days = set()
    for value in values:
        text = value.strip()
        if not re.match(r"\d{4}-\d{2}-\d{2}", text):
            continue
        days.add(text[:10])
        try:
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            continue
        if when.tzinfo is not None:  # the UTC day (the test config's time zone is UTC)
            days.add(when.astimezone(UTC).date().isoformat())
    return days


def _has_no_metadata(raw: str) -> bool:
    lowered = raw.lower()
    return not any(
        marker in lowered
        for marker in (
            'property="og:',
            "property='og:",
            "application/ld+json",
            "itemprop",
            "<time",
            'name="description"',
            "name='description'",
            'rel="canonical"',
            "rel='canonical'",
            'name="date"',
        )
    )


def _norm(text: str) -> str:
    return " ".join(html.unescape(text).split()).casefold()


def test_every_page_is_read() -> None:
    assert len(PAGES) == 83


@pytest.mark.parametrize(
    ("name", "title", "image", "day"),
    [
        # checked by hand against the pages' source
        (
            "dw.com.uncork.html",
            "Uncork the mystery of Germany's Frühburgunder | DW | 10.06.2013",
            "https://www.dw.com/image/16864611_304.jpg",
            None,
        ),
        (
            "heise.de.lithium.html",
            "Lithium aus dem Schredder",
            "https://heise.cloudimg.io/bound/1200x1200/q85.png-lossy-85.webp-lossy-85.foil1/_www-heise-de_/imgs/18/2/6/9/9/5/4/4/A192528_large_Audi-3-700-86e317e6b44fd5cf.jpeg",
            "2019-06-20",
        ),
        ("blog.python.org.html", "Python 3.6.0 is now available!", None, None),
        ("theguardian.com.academics.html", None, None, "2020-01-20"),
    ],
)
def test_a_hand_checked_sample(name: str, title: str | None, image: str | None, day: str | None) -> None:
    meta = read_article((SHARED / "pages" / name).read_bytes(), "https://example.org/article", timezone="UTC")
    if title:
        assert meta.title == title
    if image:
        assert meta.image is not None and meta.image.url == image
    if name == "dw.com.uncork.html":
        assert meta.image is not None and (meta.image.width, meta.image.height) == (940, 529)
    if day:
        assert meta.published is not None and meta.published.date().isoformat() == day
    if name == "blog.python.org.html":
        assert meta.image is None and meta.published is None


def _full_title(og_title: str, site: str | None) -> str:
    """og:title less a trailing " - site name" (the site's name is not part of the story's title)."""
    if site:
        for separator in (" | ", " - ", " \u2013 ", " \u2014 "):
            if og_title.endswith(separator + site):
                return og_title[: -len(separator + site)]
    return og_title


def _cut(title: str) -> str:
    """The title cut at a word boundary near 40% of its length, as listings cut them, with "…"."""
    words = " ".join(title.split())
    space = words.find(" ", max(12, len(words) * 2 // 5))
    stem = words[:space] if space > 0 else words[: len(words) // 2]
    return stem.rstrip(" -|:,\u2013\u2014") + "…"


def _listing(titles: list[str]) -> bytes:
    items = "".join(
        f'<li class="a"><a href="/pages/{i}">{html.escape(t)}</a></li>' for i, t in enumerate(titles)
    )
    return f"<!DOCTYPE html><html><body><ul>{items}</ul></body></html>".encode()


def test_enrichment_of_the_83_pages_matches_what_each_page_says(tmp_path: Path) -> None:
    raws = [p.read_bytes() for p in PAGES]
    texts = [r.decode("utf-8", "replace") for r in raws]
    og_titles = [_meta(t, "og:title") for t in texts]
    # The listing cuts each title the page states in og:title, so enrichment should complete it.
    titles = [_cut(og) if og and len(og) > 30 else f"Article {i}" for i, og in enumerate(og_titles)]
    with running_server() as server:
        server.routes["/list"] = feed(_listing(titles), content_type="text/html")
        for i, raw in enumerate(raws):
            server.routes[f"/pages/{i}"] = feed(raw, content_type="text/html")
        config_path = tmp_path / "config.toml"
        config_path.write_text(
            "[fetch]\nenrich_max = 100\nconcurrency = 8\n\n[[sources]]\n"
            f'name = "pages"\nurl = "{server.url}/list"\nkind = "html"\nenrich = true\n'
            'select = { item = "li.a", title = "a" }\n\n[digest]\ntimezone = "UTC"\n',
            encoding="utf-8",
        )
        config = load_config(config_path)
        db = open_store(config)
        result = ingest_sources(config, db, now=NOW, parse_processes=0)
        assert result.reports[0].status.value == "ok"
        entries = {e.link: e for e in db.entries.current_entries("pages")}
        assert len(entries) == 83
        counts = {"title": 0, "image": 0, "date": 0, "bare": 0}
        for i, text in enumerate(texts):
            entry = entries[f"{server.url}/pages/{i}"]
            page = f"{server.url}/pages/{i}"
            og_title, og_image = og_titles[i], _meta(text, "og:image")
            full = _full_title(og_title or "", _meta(text, "og:site_name"))
            if titles[i].endswith("…") and len(_norm(full)) > len(_norm(titles[i].rstrip("…"))):
                assert og_title is not None
                assert "title" in entry.enriched, PAGES[i].name
                # the full title is the page's og:title (less a trailing " | site name")
                assert _norm(entry.title) == _norm(full), PAGES[i].name
                assert len(entry.title) > len(titles[i]), PAGES[i].name
                counts["title"] += 1
            if og_image and not _meta(text, "og:image:secure_url"):
                assert entry.image is not None, PAGES[i].name
                assert entry.image.url in {urljoin(page, v) for v in _metas(text, "og:image")}, PAGES[i].name
                counts["image"] += 1
            if "date" in entry.enriched:
                assert entry.published.date().isoformat() in _stated_dates(text), PAGES[i].name
                counts["date"] += 1
            else:
                assert entry.date_estimated
            if _has_no_metadata(text):
                assert entry.enriched == (), PAGES[i].name
                assert entry.title == titles[i] and entry.image is None
                counts["bare"] += 1
        # the corpus exercises every branch: many titles, pictures and dates, and some bare pages
        assert (
            counts["title"] >= 40 and counts["image"] >= 40 and counts["date"] >= 30 and counts["bare"] >= 1
        ), counts


def test_a_page_with_no_metadata_leaves_the_entry_as_it_was() -> None:
    body = b"<html><head><title>Just a page</title></head><body><p>Hello 9 May 2025</p></body></html>"
    meta = read_article(body, "https://example.org/a")
    assert meta.empty
    entry = Entry(
        id="x",
        source="s",
        category="News",
        title="Cut short…",
        link="https://example.org/a",
        published=NOW,
        date_estimated=True,
    )
    assert apply_article(entry, meta, excerpt_chars=240) is entry


LISTING = ParseContext(
    source="fuzz",
    category="News",
    url="https://example.org/",
    seen_at=NOW,
    listing=Listing(
        Selectors(item="li, div.card", title="a, h3", date="time@datetime", summary="p"), "auto", "en_GB"
    ),
)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzzed_bytes_give_entries_or_a_parse_error(body: bytes) -> None:
    try:
        parsed = parse_document(body, LISTING)
    except ParseError:
        return
    assert all(e.title for e in parsed.entries)


_TAGS = st.sampled_from(
    [
        "<li>",
        "</li>",
        "<div class='card'>",
        "</div>",
        "<a href='/x'>",
        "</a>",
        "<h3>",
        "<p>",
        "<time datetime='2025-05-09'>",
        "<script>",
        "<!--",
        "<![CDATA[",
        "&amp;",
        "\x00",
        "é",
        "<meta charset='bogus'>",
    ]
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(_TAGS, st.text(max_size=20)), max_size=60))
def test_fuzzed_html_gives_entries_or_a_parse_error_and_articles_never_raise(parts: list[str]) -> None:
    body = "".join(parts).encode("utf-8", "surrogatepass")
    try:
        parsed = parse_document(body, LISTING)
        assert all(e.title for e in parsed.entries)
    except ParseError:
        pass
    read_article(body, "https://example.org/a")  # never raises: a page it cannot read yields nothing
    json.dumps([1])
