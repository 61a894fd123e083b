"""One bad character never stops an issue: control characters, U+FFFE/U+FFFF and lone surrogates in any
field of any source type, or in the draft, are removed where the text enters, and the build succeeds."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.cli import main
from digest.compose.draft import draft_path
from digest.config import parse_config
from digest.errors import ConfigError
from digest.ingest.parse import ParseContext, parse_document
from digest.safe_text import header_problem, scrub_text, scrub_tree

AS_OF = "2025-05-09T17:00:00+01:00"
# One code point of each class that XML 1.0 (so MJML) or UTF-8 cannot carry.
BAD = {
    "nul": "\x00",
    "c0-low": "\x08",
    "vertical-tab": "\x0b",
    "form-feed": "\x0c",
    "c0-high": "\x1f",
    "c0-mid": "\x0e",
    "del": "\x7f",
    "fffe": "\ufffe",
    "ffff": "\uffff",
    "lone-surrogate": "\ud800",
}
FIELDS = ("title", "summary", "link", "image")


def _xml_ref(ch: str) -> str:
    """The character as an XML character reference (how a broken CMS emits it)."""
    return f"&#{ord(ch)};"


def _rss(ch: str) -> str:
    raw = ch if not "\ud800" <= ch <= "\udfff" else _xml_ref(ch)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<title>RSS{raw} feed</title><link>https://rss.example.org/</link>
<item>
  <title>RSS bad{raw} title{_xml_ref(ch)}</title>
  <link>https://rss.example.org/bad{raw}</link>
  <pubDate>Fri, 09 May 2025 09:00:00 +0100</pubDate>
  <description>&lt;p&gt;RSS bad{raw} summary{_xml_ref(ch)}&lt;/p&gt;</description>
  <media:content url="https://rss.example.org/pic{raw}.jpg" medium="image"/>
</item>
<item>
  <title>RSS good item</title>
  <link>https://rss.example.org/good</link>
  <pubDate>Fri, 09 May 2025 08:00:00 +0100</pubDate>
  <description>RSS good summary</description>
</item>
</channel></rss>
"""


def _atom(ch: str) -> str:
    raw = ch if not "\ud800" <= ch <= "\udfff" else _xml_ref(ch)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom{raw}</title><id>urn:atom</id>
<updated>2025-05-09T09:00:00Z</updated>
<entry><title type="html">Atom bad{raw} title{_xml_ref(ch)}</title><id>urn:atom:bad{raw}</id>
  <link href="https://atom.example.org/bad{raw}"/>
  <link rel="enclosure" type="image/jpeg" href="https://atom.example.org/pic{raw}.jpg"/>
  <updated>2025-05-09T09:00:00Z</updated>
  <summary type="html">&lt;p&gt;Atom bad{raw} summary{_xml_ref(ch)}&lt;/p&gt;</summary></entry>
<entry><title>Atom good item</title><id>urn:atom:good</id><link href="https://atom.example.org/good"/>
  <updated>2025-05-09T08:00:00Z</updated><summary>Atom good summary</summary></entry>
</feed>
"""


def _json_feed(ch: str) -> str:
    escaped = f"\\u{ord(ch):04x}"  # "\ud800" in JSON: a lone surrogate after decoding
    raw = ch if not "\ud800" <= ch <= "\udfff" else escaped
    return (
        '{"version": "https://jsonfeed.org/version/1.1", "title": "JSON' + escaped + '", "items": ['
        '{"id": "bad' + raw + '", "title": "JSON bad' + raw + " title" + escaped + '",'
        ' "url": "https://json.example.org/bad' + escaped + '",'
        ' "image": "https://json.example.org/pic' + raw + '.jpg",'
        ' "summary": "JSON bad' + raw + " summary" + escaped + '",'
        ' "date_published": "2025-05-09T09:00:00+01:00"},'
        '{"id": "good", "title": "JSON good item", "url": "https://json.example.org/good",'
        ' "summary": "JSON good summary", "date_published": "2025-05-09T08:00:00+01:00"}]}'
    )


def _markdown(ch: str) -> str:
    escaped = f"\\u{ord(ch):04x}"
    raw = ch if not "\ud800" <= ch <= "\udfff" else ""
    return (
        "---\n"
        f'title: "Markdown bad{raw} title{escaped}"\n'
        "date: 2025-05-09\n"
        f'link: "https://md.example.org/bad{escaped}"\n'
        f'image: "https://md.example.org/pic{escaped}.jpg"\n'
        f'image_alt: "alt{escaped}"\n'
        f'summary: "Markdown bad{raw} summary{escaped}"\n'
        f'author: "Comms{escaped}"\n'
        f"tags: [one{raw}, two]\n"
        "---\n"
        f"Markdown bad{raw} body.\n"
    )


GOOD_ITEM = "---\ntitle: Markdown good item\ndate: 2025-05-09\n---\nMarkdown good body.\n"
CONFIG = """
[[sources]]
name = "rss"
url = "feeds/rss.xml"
category = "News"

[[sources]]
name = "atom"
url = "feeds/atom.xml"
category = "News"

[[sources]]
name = "json"
url = "feeds/feed.json"
category = "News"

[[sources]]
name = "items"
url = "feeds/items/*.md"
category = "Events"

[digest]
title = "Bad characters weekly"
lookback_days = 7
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8", "surrogatepass"))


@pytest.fixture(params=sorted(BAD), ids=sorted(BAD))
def bad(request: pytest.FixtureRequest) -> str:
    return BAD[str(request.param)]


def test_one_bad_character_in_every_field_of_every_source_and_the_draft_builds(
    tmp_path: Path, bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    site = tmp_path / "site"
    _write(site / "config.toml", CONFIG)
    _write(site / "feeds" / "rss.xml", _rss(bad))
    _write(site / "feeds" / "atom.xml", _atom(bad))
    _write(site / "feeds" / "feed.json", _json_feed(bad))
    _write(site / "feeds" / "items" / "bad.md", _markdown(bad))
    _write(site / "feeds" / "items" / "good.md", GOOD_ITEM)
    escaped = f"\\u{ord(bad):04X}"
    intro_value = f'"Editor{escaped} note"' if not "\ud800" <= bad <= "\udfff" else '"Editor note"'
    _write(draft_path(site / "out", "2025-W19"), f"intro = {intro_value}\n")

    code = main(["build", "--config", str(site / "config.toml"), "--as-of", AS_OF])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    folder = site / "out" / "2025-W19"
    issue = json.loads((folder / "issue.json").read_text(encoding="utf-8"))
    entries = [e for s in issue["sections"] for g in s["groups"] for e in g["entries"]]
    titles = {e["title"] for e in entries}
    for kind in ("RSS", "Atom", "JSON", "Markdown"):
        assert f"{kind} good item" in titles, (kind, titles)
        bad_titles = [t for t in titles if t.startswith(f"{kind} bad")]
        assert len(bad_titles) == 1, (kind, titles)  # the bad entry is there too, cleaned
    html = (folder / "email.html").read_text(encoding="utf-8")
    text = (folder / "email.txt").read_text(encoding="utf-8")
    web = (folder / "web.html").read_text(encoding="utf-8")
    for output in (html, text, web, json.dumps(issue, ensure_ascii=False)):
        assert scrub_text(output) == output
        assert bad not in output
    assert "Editor note" in html
    for entry in entries:
        for value in (entry["title"], entry.get("link") or "", json.dumps(entry, ensure_ascii=False)):
            assert scrub_text(value) == value


@pytest.mark.parametrize("name", sorted(BAD))
def test_every_field_of_a_parsed_entry_is_clean(name: str) -> None:
    bad = BAD[name]
    ctx = ParseContext("s", "News", "https://example.org/feed", datetime(2025, 5, 9, tzinfo=UTC))
    documents = {
        "rss": (_rss(bad), None),
        "atom": (_atom(bad), None),
        "json": (_json_feed(bad), None),
        "markdown": (_markdown(bad), "bad.md"),
    }
    for kind, (document, label) in documents.items():
        parsed = parse_document(document.encode("utf-8", "surrogatepass"), ctx, label=label)
        assert parsed.entries, kind
        assert scrub_text(parsed.title) == parsed.title
        for entry in parsed.entries:
            values = [
                entry.title,
                entry.link or "",
                entry.summary_html,
                entry.summary_text,
                entry.author or "",
            ]
            values += list(entry.tags)
            if entry.image:
                values += [entry.image.url, entry.image.alt]
            for value in values:
                assert scrub_text(value) == value, (kind, value)
        bad_entry = next(e for e in parsed.entries if "bad" in e.title)
        if kind != "atom":  # feedparser drops an enclosure whose URL it cannot read
            assert bad_entry.image is not None, kind


def test_scrub_text_keeps_ordinary_text_and_whitespace() -> None:
    text = "Caf\u00e9 \u2013 \U0001f600 tab\there\nline\r\n\u2028"
    assert scrub_text(text) == text
    assert scrub_text("a\x00b\x0bc\x0cd\x1fe\x7ff\ufffeg\uffffh\U0010ffffi") == "abcdefghi"
    assert scrub_text("lone\ud800 surrogate") == "lone\ufffd surrogate"
    assert scrub_tree({"a": ["x\x00", ("y\x01",)], "b": 3}) == {"a": ["x", ("y",)], "b": 3}


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\u2028b", "a\x00b", "a\x85b", "a\tb"])
def test_a_header_value_with_a_control_character_is_a_problem(value: str) -> None:
    assert header_problem(value) is not None
    assert header_problem("BLMK Health and Care Partnership \u2013 news") is None


@pytest.mark.parametrize("name", sorted(BAD))
def test_config_strings_lose_bad_characters_and_header_strings_are_refused(name: str, tmp_path: Path) -> None:
    bad = BAD[name]
    (tmp_path / "a.xml").write_text("<rss/>")
    data = {
        "sources": [{"name": f"a{bad}", "url": "a.xml", "category": f"News{bad}"}],
        "theme": {"organisation": f"Org{bad}", "why_line": f"Why{bad}"},
        "digest": {"categories": [f"News{bad}"]},
        "priorities": [{"name": f"Start{bad} Well", "summary": f"S{bad}", "keywords": [f"k{bad}"]}],
    }
    config = parse_config(data, tmp_path / "config.toml")
    gone = scrub_text(bad)  # "" (removed), or U+FFFD for a lone surrogate
    assert (config.sources[0].name, config.sources[0].category) == (f"a{gone}", f"News{gone}")
    assert (config.theme.organisation, config.theme.why_line) == (f"Org{gone}", f"Why{gone}")
    assert config.digest.categories == (f"News{gone}",)
    assert (config.priorities[0].name, config.priorities[0].keywords) == (f"Start{gone} Well", (f"k{gone}",))
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {**data, "digest": {"title": f"T{bad}"}, "delivery": {"from_name": f"N{bad}"}},
            tmp_path / "config.toml",
        )
    assert {p.split(":")[0] for p in caught.value.problems} == {"digest.title", "delivery.from_name"}


def test_a_character_reference_feedparser_cannot_decode_loses_one_character_not_the_feed() -> None:
    ctx = ParseContext("s", "News", "https://example.org/feed", datetime(2025, 5, 9, tzinfo=UTC))
    body = (
        b'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        b"<item><title>a &#1114112; &#xD800; &#x110000; b</title></item>"
        b"<item><title>good &#233;</title></item></channel></rss>"
    )
    parsed = parse_document(body, ctx)
    assert [e.title for e in parsed.entries] == ["a \ufffd \ufffd \ufffd b", "good \u00e9"]
