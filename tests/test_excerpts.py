"""Excerpts that read as prose: blocks separated, captions and credits never open an excerpt, a title
made from the text is not repeated as the excerpt (issue 11, item 2)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from golden_cases import GOLDEN

from digest.ingest.clean import is_credit, prose_text
from digest.ingest.parse import ParseContext, parse_document
from digest.ingest.parse.common import build_entry

NOW = datetime(2022, 4, 6, 12, tzinfo=UTC)
CTX = ParseContext(source="s", category="News", url="https://example.org/feed", seen_at=NOW)


def test_blocks_are_separated_as_sentences() -> None:
    text = prose_text("<p>More time for play would help them</p><p>Last week, while watching</p>")
    assert text == "More time for play would help them. Last week, while watching"
    assert prose_text("<p>Ends well.</p><p>Next one</p>") == "Ends well. Next one"
    assert prose_text("<p>a list of</p><p>lower-case words</p>") == "a list of lower-case words"
    assert (
        prose_text("<ul><li>At the UN</li><li>\u2018Barbarians\u2019: troops</li></ul>")
        == "At the UN. \u2018Barbarians\u2019: troops"
    )


@pytest.mark.parametrize(
    "caption",
    [
        "<figure><img src='https://x.test/a.jpg'>"
        "<figcaption>Illustration by Alex Castro / The Verge</figcaption></figure>",
        "<p>Photo by Jane Doe/Getty Images</p>",
        "<p>Image: Plex</p>",
        "<p>Photograph: Stefan Rousseau/PA</p>",
        "<figure><figcaption>Members of staff at the opening of the new unit</figcaption></figure>",
    ],
)
def test_captions_and_credits_never_open_an_excerpt(caption: str) -> None:
    entry = build_entry(
        CTX,
        guid="g",
        link="https://example.org/a",
        base=None,
        title="A story",
        title_is_html=False,
        published=NOW,
        updated=None,
        summary_html=caption + "<p>On Tuesday morning, channels showed strange videos.</p>",
    )
    assert entry.summary_text.startswith("On Tuesday morning")


def test_prose_is_not_taken_for_a_credit() -> None:
    assert not is_credit("Photography students from Luton won a national award this week for their work.")
    assert is_credit("Photo by Jane Doe/Getty Images")
    assert is_credit("Illustration by Alex Castro / The Verge")


def test_the_verge_excerpts_open_with_prose() -> None:
    path = GOLDEN / "corpus-news" / "feeds" / "verge-front.atom"
    entries = parse_document(path.read_bytes(), CTX, label=str(path)).entries
    assert entries
    for entry in entries:
        assert not entry.summary_text.startswith(("Illustration by", "Image:", "Photo by", "Photo:")), (
            entry.title
        )


def test_a_title_made_from_the_text_is_not_repeated_as_the_excerpt() -> None:
    short = build_entry(
        CTX,
        guid="g1",
        link="https://example.org/1",
        base=None,
        title=None,
        title_is_html=False,
        published=NOW,
        updated=None,
        summary_html="<p>Our new clinic opens on Monday.</p>",
    )
    assert short.title == "Our new clinic opens on Monday."
    assert short.summary_text == ""
    long_text = (
        "Our new clinic opens on Monday in the centre of town, with more appointments for everyone. " * 3
    )
    long = build_entry(
        CTX,
        guid="g2",
        link="https://example.org/2",
        base=None,
        title=None,
        title_is_html=False,
        published=NOW,
        updated=None,
        summary_html=f"<p>{long_text}</p>",
    )
    assert long.title.endswith("…")
    assert long.summary_text.startswith("…")
    assert not long.summary_text.startswith(long.title[:-1])
