"""Parsing feeds into clean entries: ids, titles, links, dates, summaries, excerpts, authors, tags, images."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from digest.errors import ParseError
from digest.ingest.clean import canonical_link, excerpt
from digest.ingest.parse import ParseContext, parse_document
from digest.models import Entry

SEEN = datetime(2025, 5, 9, 12, 0, tzinfo=UTC)
CTX = ParseContext(source="Test", category="News", url="https://example.org/feeds/news.xml", seen_at=SEEN)


def parse(body: str | bytes, **kwargs: object) -> tuple[Entry, ...]:
    data = body.encode() if isinstance(body, str) else body
    return parse_document(data, CTX, **kwargs).entries  # type: ignore[arg-type]


def rss_item(inner: str, channel: str = "<link>https://example.org/</link>", ns: str = "") -> str:
    return (
        f'<?xml version="1.0"?><rss version="2.0" {ns}><channel><title>T</title>{channel}'
        f"<item>{inner}</item></channel></rss>"
    )


def test_title_entities_decoded_and_whitespace_collapsed() -> None:
    (entry,) = parse(
        rss_item("<title>  Fish &amp;amp; chips &#8211;\n\t  now   &lt;b&gt;hot&lt;/b&gt; </title>")
    )
    assert entry.title == "Fish & chips \u2013 now hot"


def test_plain_text_title_keeps_angle_brackets_that_are_text() -> None:
    feed = json.dumps(
        {"version": "https://jsonfeed.org/version/1.1", "items": [{"id": "1", "title": "Use <b> for bold"}]}
    )
    (entry,) = parse(feed)
    assert entry.title == "Use <b> for bold"


def test_entry_without_title_gets_one_from_its_link_slug_or_text() -> None:
    entries = parse(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        "<item><link>https://example.org/get-up-to-date-on-childrens-jabs/</link></item>"
        "<item><description>Parents of school-aged children are being asked to check their "
        "records before the summer holidays begin in July this year.</description></item>"
        "<item><guid isPermaLink='false'>x1</guid></item>"
        "</channel></rss>"
    )
    assert entries[0].title == "Get up to date on childrens jabs"
    assert entries[1].title.startswith("Parents of school-aged children")
    assert entries[1].title.endswith("\u2026") and len(entries[1].title) <= 80
    assert entries[2].title == "Untitled entry from Test"


def test_stable_ids_from_guid_then_link_then_content() -> None:
    body = rss_item("<guid isPermaLink='false'>abc-1</guid><title>A</title>")
    assert parse(body)[0].id == parse(body.replace("<title>A", "<title>B"))[0].id
    linked = rss_item("<link>https://example.org/a?utm_source=x</link><title>A</title>")
    same_link = rss_item("<link>https://example.org/a</link><title>Other title</title>")
    assert parse(linked)[0].id == parse(same_link)[0].id
    bare = rss_item("<title>Only a title</title><description>Text</description>")
    assert parse(bare)[0].id == parse(bare)[0].id
    assert parse(bare)[0].id != parse(bare.replace("Only", "Just"))[0].id
    # A permalink guid and the same link give the same id, so a story keeps its id across feeds.
    as_guid = rss_item("<guid>https://example.org/a</guid><title>A</title>")
    assert parse(as_guid)[0].id == parse(same_link)[0].id


def test_links_are_absolute_and_canonical() -> None:
    (entry,) = parse(
        rss_item(
            "<title>A</title><link>/news/a?id=7&amp;utm_source=x&amp;utm_medium=email&amp;fbclid=1</link>"
        )
    )
    assert entry.link == "https://example.org/news/a?id=7"
    assert canonical_link("HTTPS://Example.ORG:443/a?gclid=1&b=2#top") == "https://example.org/a?b=2#top"
    assert canonical_link("javascript:alert(1)") is None
    assert canonical_link("mailto:a@example.org") is None


def test_relative_links_resolve_against_xml_base() -> None:
    atom = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://blog.example.net/base/">
  <title>B</title><id>urn:b</id><updated>2025-05-01T00:00:00Z</updated>
  <entry xml:base="posts/">
    <title>Post</title><id>urn:p1</id><updated>2025-05-02T10:00:00+01:00</updated>
    <link rel="alternate" href="one.html"/>
    <content type="html">&lt;p&gt;See &lt;a href="two.html"&gt;two&lt;/a&gt;
      &lt;img src="/i.png" alt="A chart"&gt;&lt;/p&gt;</content>
  </entry>
</feed>"""
    (entry,) = parse(atom)
    assert entry.link == "https://blog.example.net/base/posts/one.html"
    assert 'href="https://blog.example.net/base/posts/two.html"' in entry.summary_html
    assert entry.image is not None
    assert entry.image.url == "https://blog.example.net/i.png"
    assert entry.image.alt == "A chart"


def test_dates_are_aware_utc_and_undated_entries_are_flagged() -> None:
    entries = parse(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>'
        "<item><title>A</title><pubDate>Fri, 09 May 2025 09:30:00 +0100</pubDate></item>"
        "<item><title>B</title></item>"
        "<item><title>C</title><pubDate>Seg, 24 Set 2018 10:00:00 -0300</pubDate></item>"
        "</channel></rss>"
    )
    assert entries[0].published == datetime(2025, 5, 9, 8, 30, tzinfo=UTC)
    assert entries[0].published.tzinfo is UTC
    assert not entries[0].date_estimated
    for undated in entries[1:]:
        assert undated.date_estimated
        assert undated.published == SEEN


def test_updated_only_atom_entry_uses_updated_date() -> None:
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>B</title><id>urn:b</id>'
        "<entry><title>P</title><id>urn:p</id><updated>2025-05-02T10:00:00Z</updated></entry></feed>"
    )
    (entry,) = parse(atom)
    assert entry.published == datetime(2025, 5, 2, 10, tzinfo=UTC)
    assert not entry.date_estimated


def test_summary_excerpt_is_cut_at_a_word_boundary_with_an_ellipsis() -> None:
    words = " ".join(f"word{i}" for i in range(100))
    ctx = ParseContext(
        source="T", category="News", url="https://example.org/", seen_at=SEEN, excerpt_chars=60
    )
    (entry,) = parse_document(
        rss_item(f"<title>A</title><description>&lt;p&gt;{words}&lt;/p&gt;</description>").encode(), ctx
    ).entries
    assert entry.summary_text.endswith("\u2026")
    assert len(entry.summary_text) <= 60
    assert entry.summary_text[:-1] in words
    assert words.startswith(entry.summary_text[:-1])
    assert words[len(entry.summary_text) - 1] == " "  # the cut falls between two words
    assert excerpt("short text", 60) == "short text"
    assert excerpt("a " * 10 + "b", 12) == "a a a a a\u2026"


def test_plain_text_summary_is_escaped_not_interpreted() -> None:
    atom = (
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>B</title><id>urn:b</id>'
        "<entry><title>P</title><id>urn:p</id>"
        '<summary type="text">1 &lt; 2 &amp;&amp; &lt;script&gt;x</summary>'
        "</entry></feed>"
    )
    (entry,) = parse(atom)
    assert entry.summary_html == "<p>1 &lt; 2 &amp;&amp; &lt;script&gt;x</p>"
    assert entry.summary_text == "1 < 2 && <script>x"


def test_author_and_tags() -> None:
    (entry,) = parse(
        rss_item(
            "<title>A</title><dc:creator>Jane Smith</dc:creator>"
            "<category>Health</category><category> Health </category><category>Workforce</category>",
            ns='xmlns:dc="http://purl.org/dc/elements/1.1/"',
        )
    )
    assert entry.author == "Jane Smith"
    assert entry.tags == ("Health", "Workforce")


@pytest.mark.parametrize(
    ("inner", "url", "alt"),
    [
        (
            '<media:content url="https://cdn.example.org/a.jpg" medium="image">'
            "<media:description>Nurses</media:description></media:content>",
            "https://cdn.example.org/a.jpg",
            "",
        ),
        (
            '<media:thumbnail url="https://cdn.example.org/t.jpg" width="120"/>',
            "https://cdn.example.org/t.jpg",
            "",
        ),
        (
            '<enclosure url="https://cdn.example.org/e.png" type="image/png" length="100"/>',
            "https://cdn.example.org/e.png",
            "",
        ),
        (
            '<description>&lt;img src="https://x.example/pixel.gif" width="1" height="1"&gt;'
            '&lt;img src="/pic.jpg" alt="A ward"&gt;</description>',
            "https://example.org/pic.jpg",
            "A ward",
        ),
    ],
    ids=["media-content", "media-thumbnail", "image-enclosure", "first-img"],
)
def test_image_with_alt(inner: str, url: str, alt: str) -> None:
    ns = 'xmlns:media="http://search.yahoo.com/mrss/"'
    (entry,) = parse(rss_item(f"<title>A</title>{inner}", ns=ns))
    assert entry.image is not None
    assert (entry.image.url, entry.image.alt) == (url, alt)


def test_audio_enclosure_is_not_an_image() -> None:
    (entry,) = parse(rss_item('<title>A</title><enclosure url="https://e.org/a.mp3" type="audio/mpeg"/>'))
    assert entry.image is None


def test_feedburner_original_link_wins() -> None:
    (entry,) = parse(
        rss_item(
            "<title>A</title><link>http://feeds.feedburner.com/~r/x/~3/abc/</link>"
            "<feedburner:origLink>https://example.org/real?utm_campaign=feed</feedburner:origLink>",
            ns='xmlns:feedburner="http://rssnamespace.org/feedburner/ext/1.0"',
        )
    )
    assert entry.link == "https://example.org/real"


def test_json_feed_maps_to_the_same_entry() -> None:
    feed = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": "J",
        "home_page_url": "https://example.org/",
        "authors": [{"name": "Feed Author"}],
        "items": [
            {
                "id": "42",
                "url": "/posts/42?utm_source=rss",
                "title": "Fish &amp; chips",
                "content_html": "<p>Hello <script>alert(1)</script><a href='/x'>x</a></p>",
                "date_published": "2025-05-09T09:30:00+01:00",
                "date_modified": "2025-05-10T00:00:00Z",
                "tags": ["a", 3, "b"],
                "image": "https://example.org/i.jpg",
            },
            {"id": 7, "content_text": "No title here but some text", "authors": [{"name": "Item Author"}]},
            "not an item",
        ],
    }
    first, second = parse(json.dumps(feed))
    assert first.title == "Fish & chips"
    assert first.link == "https://example.org/posts/42"
    assert first.published == datetime(2025, 5, 9, 8, 30, tzinfo=UTC)
    assert first.updated == datetime(2025, 5, 10, tzinfo=UTC)
    assert "<script" not in first.summary_html and 'href="https://example.org/x"' in first.summary_html
    assert first.tags == ("a", "b")
    assert first.author == "Feed Author"
    assert first.image is not None and first.image.url == "https://example.org/i.jpg"
    assert second.title == "No title here but some text"
    assert second.author == "Item Author"
    assert second.date_estimated


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "not valid JSON"),
        (b'{"rss": {"channel": {}}}', "not a JSON Feed"),
        (b'{"version": "https://jsonfeed.org/version/1", "items": 3}', "no 'items' list"),
        (b"<!DOCTYPE html><html><body>Hi</body></html>", "web page"),
        (b"   ", "empty"),
        (b"<rss version='2.0'><channel><title>x</titl", "not well-formed"),
        (b"hello world, this is just text", "not an RSS, Atom or JSON feed"),
    ],
)
def test_unreadable_documents_raise_one_clear_parse_error(body: bytes, message: str) -> None:
    with pytest.raises(ParseError, match=message) as caught:
        parse(body)
    assert str(caught.value).startswith("Test: ")


def test_web_page_error_names_the_feed_it_links_to() -> None:
    page = b'<html><head><link rel="alternate" type="application/rss+xml" href="https://ex.org/feed"></head>'
    with pytest.raises(ParseError) as caught:
        parse(page, content_type="text/html")
    assert caught.value.hint is not None and "https://ex.org/feed" in caught.value.hint


def test_declared_encodings_are_honoured() -> None:
    body = (
        '<?xml version="1.0" encoding="iso-8859-1"?><rss version="2.0"><channel><title>T</title>'
        "<item><title>Caf\xe9 cr\xe8me</title></item></channel></rss>"
    ).encode("iso-8859-1")
    (entry,) = parse(body)
    assert entry.title == "Caf\u00e9 cr\u00e8me"


def test_image_from_full_content_when_the_summary_is_a_teaser() -> None:
    (entry,) = parse(
        rss_item(
            "<title>A</title><description>Just a teaser.</description>"
            "<content:encoded><![CDATA[<p>Full text</p><img src='/photo.jpg' alt='The new clinic'>]]>"
            "</content:encoded>",
            ns='xmlns:content="http://purl.org/rss/1.0/modules/content/"',
        )
    )
    assert entry.summary_text == "Just a teaser."
    assert entry.image is not None
    assert (entry.image.url, entry.image.alt) == ("https://example.org/photo.jpg", "The new clinic")


def test_title_drops_control_and_bidi_characters_but_keeps_emoji_joiners() -> None:
    (entry,) = parse(
        rss_item("<title>Nurse\u00ad day \u202ethgir\u202c \U0001f469\u200d\u2695\ufe0f</title>")
    )
    assert entry.title == "Nurse day thgir \U0001f469\u200d\u2695\ufe0f"
