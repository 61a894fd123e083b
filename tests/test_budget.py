"""The size budget keeps as much as fits: an ordered search finds the richest variant under
`[digest] max_html_kb`, says what was cut, and leaves the plain text whole (issue 11, item 3)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from golden_cases import build_case, load_case
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.pipeline.build.budget import Axes, Variant, richest_fitting


def _brute_force(axes: Axes, fits: object) -> Variant | None:
    fitting = [v for v in axes.all_variants() if fits(v)]  # type: ignore[operator]
    return max(fitting) if fitting else None


@settings(max_examples=300, deadline=None)
@given(
    caps=st.integers(min_value=1, max_value=12),
    excerpts=st.integers(min_value=1, max_value=8),
    per_entry=st.integers(min_value=1, max_value=50),
    per_char=st.integers(min_value=0, max_value=5),
    picture=st.integers(min_value=0, max_value=400),
    limit=st.integers(min_value=0, max_value=20_000),
)
def test_the_ordered_search_finds_what_trying_all_finds(  # noqa: PLR0917 - hypothesis passes each by name
    caps: int, excerpts: int, per_entry: int, per_char: int, picture: int, limit: int
) -> None:
    axes = Axes(
        caps=(None, *range(caps - 1, 0, -1)) if caps > 1 else (None,),
        excerpts=tuple(sorted({240, 200, 160, 120, 100, 80, 60, 0}, reverse=True)[:excerpts]) or (240,),
    )

    def size(v: Variant) -> int:  # grows along every axis, as the email does
        shown = (v.cap or caps) * 3
        return shown * (per_entry + per_char * v.excerpt_chars + (picture if v.pictures else 0))

    calls: list[Variant] = []

    def fits(v: Variant) -> bool:
        calls.append(v)
        return size(v) <= limit

    assert richest_fitting(axes, fits) == _brute_force(axes, lambda v: size(v) <= limit)
    assert len(set(calls)) < len(axes.all_variants()) or len(axes.all_variants()) <= 8


def test_entries_then_excerpts_then_pictures() -> None:
    axes = Axes(caps=(None, 5), excerpts=(240, 100, 0))
    # Everything fits except pictures: excerpts are kept at full length.
    chosen = richest_fitting(axes, lambda v: not v.pictures)
    assert chosen == axes.variant(0, 0, False)
    # Only short excerpts fit with every entry: fewer entries is the last resort.
    chosen = richest_fitting(axes, lambda v: (v.cap == 5 or v.excerpt_chars <= 100) and not v.pictures)
    assert chosen == axes.variant(0, 1, False)


def test_oversized_issue_keeps_excerpts_and_says_what_was_cut(tmp_path: Path) -> None:
    case = load_case("oversized")
    config, outcome = build_case(case, tmp_path)
    assert outcome.built is not None
    folder = outcome.built.folder
    html = (folder / "email.html").read_text(encoding="utf-8")
    text = (folder / "email.txt").read_text(encoding="utf-8")
    assert len(html.encode()) <= config.digest.max_html_kb * 1024
    (note,) = [n for n in outcome.notes if "budget" in n]
    assert "[digest] max_html_kb" in note and "excerpts cut to" in note
    assert 'class="ex"' in html  # not headlines only
    assert "more in News on the web version" not in html  # every entry kept
    # The plain text is not cut for the HTML's budget: its excerpts run past the HTML's.
    longest_text = max(len(p) for p in re.split(r"\n\s*\n", text))
    assert longest_text > 300


def test_a_lower_budget_is_respected(tmp_path: Path) -> None:
    case = load_case("oversized")
    case = replace(
        case, overrides={**case.overrides, "digest": {**case.overrides["digest"], "max_html_kb": 40}}
    )
    config, outcome = build_case(case, tmp_path)
    assert config.digest.max_html_kb == 40
    assert outcome.built is not None
    size = len((outcome.built.folder / "email.html").read_bytes())
    assert size <= 40 * 1024
    assert any("over the 40 KB budget" in n for n in outcome.notes)
