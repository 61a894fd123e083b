"""Pictures at their real size: sizes from feeds and URLs, the best media:content for the 552 px slot,
avatars and icons dropped, never drawn wider than their natural width (issue 11, item 1)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from golden_cases import GOLDEN, load_case

from digest.config import load_config
from digest.config.load import parse_config
from digest.errors import ConfigError
from digest.ingest.images import best_image, size_from_url
from digest.ingest.parse import ParseContext, parse_document
from digest.models import Entry, Image, Issue, IssueEntry
from digest.render import RenderOptions, RenderSettings, render_issue

NEWS = GOLDEN / "corpus-news" / "feeds"
RELEASES = GOLDEN / "corpus-releases" / "feeds"
NOW = datetime(2022, 4, 6, 12, tzinfo=UTC)


def _parse(path: Path, *, min_width: int = 120) -> tuple[Entry, ...]:
    ctx = ParseContext(
        source=path.stem,
        category="News",
        url="https://example.org/feed",
        seen_at=NOW,
        min_image_width=min_width,
    )
    return parse_document(path.read_bytes(), ctx, label=str(path)).entries


def test_sky_70px_thumbnails_are_icons_and_dropped() -> None:
    entries = _parse(NEWS / "skynews-home.rss")
    assert len(entries) == 10
    assert all(e.image is None for e in entries)
    with_small = _parse(NEWS / "skynews-home.rss", min_width=0)
    assert all(e.image and (e.image.width, e.image.height) == (70, 70) for e in with_small)


def test_nyt_pictures_keep_their_151px_size() -> None:
    entries = _parse(NEWS / "nyt-top-stories.rss")
    sized = [e.image for e in entries if e.image]
    assert sized, "NYT media:content medium=image must give pictures"
    assert {(i.width, i.height) for i in sized} == {(151, 151)}


def test_guardian_untyped_media_content_gives_the_460px_picture() -> None:
    entries = _parse(NEWS / "guardian-uk.rss")
    assert len(entries) == 115
    with_picture = [e for e in entries if e.image]
    assert len(with_picture) >= 110  # was 0 of 115
    assert all(e.image and e.image.width == 460 and "width=460" in e.image.url for e in with_picture)


def test_github_release_avatars_are_dropped() -> None:
    entries = _parse(RELEASES / "github-hugo-releases.atom")
    assert entries
    assert all(e.image is None or "avatars.githubusercontent.com" not in e.image.url for e in entries)


def test_the_best_candidate_for_the_slot() -> None:
    small, mid, wide, huge = (Image(f"https://x.test/{w}.jpg", "", w) for w in (140, 460, 600, 2000))
    assert best_image([huge, small, wide, mid]) == wide  # the smallest at least 552 wide
    assert best_image([small, mid]) == mid  # else the largest
    assert best_image([Image("https://x.test/a.jpg", "", 30)]) is None  # an avatar
    unknown = Image("https://x.test/u.jpg", "")
    assert best_image([unknown, mid]) == mid
    assert best_image([unknown]) == unknown


@pytest.mark.parametrize(
    ("url", "size"),
    [
        ("https://e3.365dm.com/22/04/70x70/sky.jpg?2022", (70, 70)),
        ("https://i.guim.co.uk/img/media/x/master/3500.jpg?width=460&quality=85", (460, None)),
        ("https://i.guim.co.uk/img/media/x/master/3000.jpg?w=140&q=55", (140, None)),
        ("https://cdn.vox-cdn.com/thumbor/a=/0x0:2200x1467/1310x873/cdn/b.jpg", (1310, 873)),
        ("https://example.org/picture.jpg", (None, None)),
    ],
)
def test_sizes_from_urls(url: str, size: tuple[int | None, int | None]) -> None:
    assert size_from_url(url) == size


def test_media_content_without_type_counts_by_extension_or_medium() -> None:
    feed = b"""<?xml version="1.0"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel><title>t</title>
<item><title>By extension</title><link>https://example.org/1</link>
  <media:content url="https://example.org/a.jpg?width=600" width="600"/></item>
<item><title>By medium</title><link>https://example.org/2</link>
  <media:content url="https://example.org/pic?id=3" medium="image" width="800"/></item>
<item><title>Neither</title><link>https://example.org/3</link>
  <media:content url="https://example.org/clip.mp4" width="800"/></item>
</channel></rss>"""
    ctx = ParseContext(source="s", category="News", url="https://example.org/feed", seen_at=NOW)
    entries = {e.title: e for e in parse_document(feed, ctx).entries}
    assert entries["By extension"].image == Image("https://example.org/a.jpg?width=600", "", 600)
    assert entries["By medium"].image == Image("https://example.org/pic?id=3", "", 800)
    assert entries["Neither"].image is None


def _render(image: Image, min_width: int = 120) -> str:
    entry = Entry(
        id="e1",
        source="Src",
        category="News",
        title="A story",
        link="https://example.org/s",
        published=NOW,
        summary_text="Text.",
        image=image,
    )
    from digest.models import Group, Section, Window

    issue = Issue(
        id="2022-W14",
        edition=1,
        title="T",
        window=Window(NOW, NOW),
        subject="S",
        preheader="P",
        intro_markdown="",
        highlights=(),
        sections=(Section("News", (Group("", None, (IssueEntry(entry),)),)),),
    )
    settings = replace(
        RenderSettings.from_config(load_config(Path("config.toml"))), min_image_width=min_width
    )
    return render_issue(issue, settings, RenderOptions()).mjml


def test_a_picture_is_never_drawn_wider_than_its_natural_width() -> None:
    mjml = _render(Image("https://example.org/p.jpg", "", 151, 151))
    tag = re.search(r"<img class=\"pic\"[^>]*>", mjml)
    assert tag
    assert 'width="151"' in tag.group(0) and 'height="151"' in tag.group(0)
    assert "max-width:151px" in tag.group(0)
    wide = re.search(r"<img class=\"pic\"[^>]*>", _render(Image("https://example.org/p.jpg", "", 1310, 873)))
    assert wide and 'width="552"' in wide.group(0) and 'height="368"' in wide.group(0)
    unknown = re.search(r"<img class=\"pic\"[^>]*>", _render(Image("https://example.org/p.jpg", "")))
    assert unknown and "width:auto;max-width:100%" in unknown.group(0)


def test_min_image_width_drops_stored_small_pictures_at_render() -> None:
    assert 'class="pic"' not in _render(Image("https://example.org/a.png", "", 30, 30))
    assert 'class="pic"' in _render(Image("https://example.org/a.png", "", 30, 30), min_width=0)


def test_min_image_width_and_max_html_kb_are_validated(tmp_path: Path) -> None:
    base = {"sources": [{"name": "a", "url": "https://example.org/feed"}]}
    config = parse_config(base, tmp_path / "config.toml")
    assert (config.digest.min_image_width, config.digest.max_html_kb) == (120, 95)
    with pytest.raises(ConfigError) as e:
        parse_config({**base, "digest": {"min_image_width": -1, "max_html_kb": 150}}, tmp_path / "c.toml")
    text = "\n".join(e.value.problems)
    assert "digest.min_image_width" in text and "digest.max_html_kb" in text


def test_the_corpus_golden_case_shows_real_sizes() -> None:
    html = (GOLDEN / "corpus-news" / "expected" / "email.html").read_text(encoding="utf-8")
    widths = {int(w) for w in re.findall(r'<img class="pic"[^>]* width="(\d+)"', html)}
    assert widths and max(widths) <= 552 and 151 in widths and 460 in widths
    assert "70x70" not in html
    case = load_case("corpus-releases")
    assert all(e.image is None or "avatars." not in e.image.url for e in case.entries)
    assert any(e.image and e.image.width == 582 for e in case.entries)  # a screenshot in the notes
