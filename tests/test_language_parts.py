"""Language of parts: entries in another language than the edition's carry `lang` (and `dir="rtl"` for
right-to-left scripts) in the email, the web version and the preview; the plain text wraps by display
width (issue 11, item 5)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import httpx
from golden_cases import GOLDEN
from web_support import preview_served, sample_project

from digest.ingest.parse import ParseContext, parse_document
from digest.render import part_language, wrap_text
from digest.render.context import display_width

NOW = datetime(2025, 5, 9, 12, tzinfo=UTC)
ARABIC_FEED = """<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="ar">
  <title>أخبار الصحة</title><id>urn:x:ar</id><updated>2025-05-08T10:00:00Z</updated>
  <entry><title>عيادة جديدة في لوتون</title><id>urn:x:ar:1</id>
    <link href="https://example.org/ar/1"/><updated>2025-05-08T10:00:00Z</updated>
    <summary>تفتح العيادة الجديدة أبوابها يوم الاثنين.</summary></entry>
</feed>
"""


def test_which_parts_need_lang_and_dir() -> None:
    assert part_language(None, "en-GB") == (None, None)
    assert part_language("en-us", "en-GB") == (None, None)
    assert part_language("zh-Hans", "en-GB") == ("zh-Hans", "ltr")
    assert part_language("ar", "en-GB") == ("ar", "rtl")
    assert part_language("he-IL", "en-GB") == ("he-IL", "rtl")
    assert part_language("ur-Arab", "en-GB") == ("ur-Arab", "rtl")
    assert part_language("az-Latn", "en-GB") == ("az-Latn", "ltr")
    assert part_language("ku-Latn", "en-GB") == ("ku-Latn", "ltr")


def test_feeds_give_the_language_of_their_entries() -> None:
    ctx = ParseContext(source="s", category="News", url="https://example.org/feed", seen_at=NOW)
    (arabic,) = parse_document(ARABIC_FEED.encode(), ctx).entries
    assert arabic.language == "ar"
    rss = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>t</title><language>cy-GB</language>
<item><title>Newyddion</title><link>https://example.org/cy</link></item></channel></rss>"""
    (welsh,) = parse_document(rss, ctx).entries
    assert welsh.language == "cy-GB"
    jsonfeed = (
        b'{"version": "https://jsonfeed.org/version/1.1", "title": "t", "language": "fr-FR",'
        b' "items": [{"id": "1", "title": "Nouvelles", "url": "https://example.org/fr"}]}'
    )
    (french,) = parse_document(jsonfeed, ctx).entries
    assert french.language == "fr-FR"


def test_the_chinese_golden_case_marks_its_parts_and_wraps_by_display_width() -> None:
    folder = GOLDEN / "corpus-languages" / "expected"
    email = folder.joinpath("email.html").read_text(encoding="utf-8")
    web = folder.joinpath("web.html").read_text(encoding="utf-8")
    assert re.search(r'<h4 class="h4" lang="zh-Hans" dir="ltr"', email)
    assert re.search(r'<p class="ex" lang="zh-Hans" dir="ltr"', email)
    assert '<h4 lang="zh-Hans" dir="ltr">' in web
    assert '<html lang="en-GB"' in email  # the edition's own language is unchanged
    text = folder.joinpath("email.txt").read_text(encoding="utf-8")
    assert any(re.search(r"[\u4e00-\u9fff]", line) for line in text.splitlines())
    assert max(display_width(line) for line in text.splitlines() if not line.startswith("  http")) <= 78


def test_wrapping_counts_wide_characters_twice() -> None:
    chinese = "国际货币基金组织警告说尽管各国政府采取措施刺激经济但全球经济恢复速度正在减弱" * 3
    lines = wrap_text(chinese, width=78, indent="  ").splitlines()
    assert len(lines) >= 3
    assert all(display_width(line) <= 78 for line in lines)
    assert "".join(line.strip() for line in lines) == chinese
    # Closing punctuation never starts a line: the character before it goes down with it.
    marked = wrap_text("\u4e00" * 10 + "\u3002" + "\u4e8c" * 5, width=20).splitlines()
    assert marked == ["\u4e00" * 9, "\u4e00\u3002" + "\u4e8c" * 5]
    mixed = wrap_text("NHS 英格兰 says waiting lists fell https://example.org/" + "a" * 90, width=40)
    assert "https://example.org/" + "a" * 90 in mixed.splitlines()


def test_the_email_web_version_and_preview_mark_an_arabic_entry(tmp_path: Path) -> None:
    (tmp_path / "extra").mkdir()
    (tmp_path / "extra" / "arabic.atom").write_text(ARABIC_FEED, encoding="utf-8")
    config = sample_project(
        tmp_path,
        append='\n[[sources]]\nname = "Arabic news"\nurl = "extra/arabic.atom"\ncategory = "News"\n',
    )
    with preview_served(config) as (base, workspace), httpx.Client(base_url=base) as client:
        snapshot = workspace.snapshot  # type: ignore[attr-defined]
        assert snapshot.folder is not None
        email = (snapshot.folder / "email.html").read_text(encoding="utf-8")
        web = (snapshot.folder / "web.html").read_text(encoding="utf-8")
        page = client.get("/").text
    assert re.search(r'<h[34] class="h[34]" lang="ar" dir="rtl"', email)
    assert re.search(r'<h[34] lang="ar" dir="rtl">', web)
    assert re.search(r'<p class="entry-title" lang="ar" dir="rtl">', page)
