"""Curated items accept the front matter people write: YAML 1.2 read safely, today's checks and messages
kept (issue 11, item 9)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digest.errors import ParseError
from digest.ingest.parse import ParseContext, parse_document

CTX = ParseContext(
    source="Items",
    category="News",
    url="items",
    seen_at=datetime(2025, 5, 9, tzinfo=UTC),
    timezone="Europe/London",
    priorities=("Start Well",),
)


def _parse(front: str, body: str = "Body text.") -> object:
    (entry,) = parse_document(f"---\n{front}---\n{body}\n".encode(), CTX, label="items/x.md").entries
    return entry


def test_block_lists_folded_scalars_and_quoted_lists() -> None:
    entry = _parse(
        "title: Clinic news\n"
        "tags:\n  - maternity\n  - workforce\n"
        "summary: >\n  One sentence\n  folded over two lines.\n"
        "author: Comms team\n"
    )
    assert entry.tags == ("maternity", "workforce")  # type: ignore[attr-defined]
    assert entry.summary_text == "One sentence folded over two lines."  # type: ignore[attr-defined]
    quoted = _parse('title: A\ntags: ["Luton, Bedford", workforce]\n')
    assert quoted.tags == ("Luton, Bedford", "workforce")  # type: ignore[attr-defined]
    flow = _parse("title: A\ntags: [maternity, workforce]\n")
    assert flow.tags == ("maternity", "workforce")  # type: ignore[attr-defined]


def test_a_bare_colon_in_a_title_is_still_accepted() -> None:
    assert _parse("title: Update: new clinic\n").title == "Update: new clinic"  # type: ignore[attr-defined]
    commented = _parse("title: Update: new clinic   # a comment\n")
    assert commented.title == "Update: new clinic"  # type: ignore[attr-defined]


def test_no_stays_a_string() -> None:
    assert _parse("title: no\n").title == "no"  # type: ignore[attr-defined]
    assert _parse("title: A\nauthor: yes\n").author == "yes"  # type: ignore[attr-defined]
    assert _parse("title: A\npinned: no\n").pinned is False  # type: ignore[attr-defined]
    assert _parse("title: A\npinned: true\n").pinned is True  # type: ignore[attr-defined]


def test_dates_and_times() -> None:
    entry = _parse("title: A\ndate: 2025-05-05T09:30:00+01:00\n")
    assert entry.published == datetime(2025, 5, 5, 8, 30, tzinfo=UTC)  # type: ignore[attr-defined]
    midnight = _parse("title: A\ndate: 2025-05-05\n")
    assert midnight.published == datetime(2025, 5, 4, 23, 0, tzinfo=UTC)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("front", "message"),
    [
        ("titel: Typo\n", "items/x.md: line 2: unknown key 'titel'"),
        ("title: A\ntitle: B\n", "items/x.md: line 3: title is given twice"),
        ("title: A\ntags:\n  - a\n  -: [\n", "items/x.md: line"),
        ('title: "unterminated\n', "title: unterminated or invalid double-quoted string"),
        ("title: A\nlink:\n  - https://a.example\n", "link: expected a single value, not list"),
    ],
)
def test_errors_name_the_file_line_and_key(front: str, message: str) -> None:
    with pytest.raises(ParseError) as e:
        _parse(front)
    assert message in str(e.value)
