"""Web pages for HTML-listing and enrichment tests: a listing shaped like BLMK's "Latest news and highlights"
(label, date "9 May 2025", title and teaser cut with "...", a link to the article) and article pages."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass

from conftest import SHARED

SELECT = {
    "item": ".news-card",
    "title": ".news-card__title",
    "link": "a.news-card__link@href",
    "date": ".news-card__date",
    "summary": ".news-card__teaser",
    "category": ".news-card__label",
}


@dataclass(frozen=True)
class Story:
    slug: str
    label: str
    date_text: str
    date_iso: str
    cut_title: str
    full_title: str
    teaser: str


def blmk_stories() -> list[Story]:
    """The May 2025 items of BLMK's listing (../shared/blmk/listing-items.json). The full titles of cut ones
    are the listed words plus a test ending: the real endings are not known."""
    items = json.loads((SHARED / "blmk" / "listing-items.json").read_text(encoding="utf-8"))
    stories = []
    for i, item in enumerate(it for it in items if it["date_iso"].startswith("2025-05")):
        cut = item["title"]
        full = cut.rstrip("…").rstrip() + " (full title from the article page)" if cut.endswith("…") else cut
        stories.append(
            Story(
                f"story-{i}",
                item["category"],
                item["date_text"],
                item["date_iso"],
                cut,
                full,
                item["summary"],
            )
        )
    return stories


def listing_page(stories: list[Story], *, card_class: str = "news-card", image: bool = False) -> bytes:
    cards = "".join(
        f"""
    <div class="{card_class}">
      <span class="news-card__label">{html.escape(s.label)}</span>
      <span class="news-card__date">{html.escape(s.date_text)}</span>
      <h3 class="news-card__title">{html.escape(s.cut_title)}</h3>
      <p class="news-card__teaser">{html.escape(s.teaser)}</p>
      {f'<img src="/img/{s.slug}-thumb.jpg" alt="">' if image else ""}
      <a class="news-card__link" href="/articles/{s.slug}">Read more</a>
    </div>"""
        for s in stories
    )
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Our priorities</title>
<link rel="stylesheet" href="/style.css"></head><body><nav><a href="/">Home</a></nav>
<main><h2>Latest news and highlights</h2><div class="news-grid">{cards}
</div></main><aside><h3>Contact</h3><p>Call us on 0300 000 0000</p></aside></body></html>""".encode()


def article_page(story: Story, *, base: str, og: bool = True) -> bytes:
    """An article page with OpenGraph tags (og=False: a page with no metadata at all)."""
    meta = (
        f"""<meta property="og:title" content="{html.escape(story.full_title)}">
<meta property="og:type" content="article">
<meta property="og:url" content="{base}/articles/{story.slug}">
<meta property="og:image" content="{base}/img/{story.slug}.jpg">
<meta property="og:image:width" content="1200"><meta property="og:image:height" content="630">
<meta property="og:image:alt" content="Picture for {html.escape(story.full_title)}">
<meta property="article:published_time" content="{story.date_iso}T09:30:00+01:00">
<meta property="og:description" content="{html.escape(story.teaser)}">"""
        if og
        else ""
    )
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(story.full_title)} - BLMK</title>{meta}</head>
<body><article><h1>{html.escape(story.full_title)}</h1><p>{html.escape(story.teaser)}</p></article></body></html>""".encode()
