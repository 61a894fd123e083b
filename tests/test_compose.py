"""Compose: window, selection, priority matching, highlights, grouping, the draft, subject and preheader."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest.compose import (
    EDITOR_PICK,
    UNDATED_LABEL,
    ComposeSettings,
    base_issue_id,
    cap_sections,
    compose_issue,
    draft_notes,
    issue_window,
    match_priorities,
    section_order,
    select_entries,
)
from digest.compose.draft import Draft
from digest.config import Priority, load_config
from digest.errors import RenderError
from digest.models import Entry, Issue, Window

REPO = Path(__file__).resolve().parent.parent
AS_OF = datetime.fromisoformat("2025-05-09T17:00:00+01:00")
WINDOW = Window(start=datetime(2025, 5, 2, 16, tzinfo=UTC), end=datetime(2025, 5, 9, 16, tzinfo=UTC))
START_WELL = Priority(
    "Start Well", "", None, ("midwife", "midwives", "young people", "children's vaccinations")
)
GROWTH = Priority("Growth", "", None, ("net zero", "sustainable"))
SETTINGS = ComposeSettings(
    title="Weekly news", categories=("News", "Blog"), priorities=(START_WELL, GROWTH), highlights_max=3
)


def entry(entry_id: str, when: datetime, **fields: object) -> Entry:
    values: dict[str, object] = {
        "source": "News feed",
        "category": "News",
        "title": f"Story {entry_id}",
        "link": f"https://example.org/{entry_id}",
    }
    values.update(fields)
    return Entry(id=entry_id, published=when, **values)  # type: ignore[arg-type]


def at(day: int, hour: int = 9) -> datetime:
    return datetime(2025, 5, day, hour, tzinfo=UTC)


def compose(entries: list[Entry], settings: ComposeSettings = SETTINGS, draft: Draft | None = None) -> Issue:
    return compose_issue(
        entries, window=WINDOW, issue_id="2025-W19", edition=1, settings=settings, draft=draft
    )


# ---------------------------------------------------------------------------------------------- window


def test_first_window_looks_back_lookback_days_and_later_ones_start_at_the_last_sent_end() -> None:
    first = issue_window(as_of=AS_OF, last_sent_end=None, lookback_days=7)
    assert first == Window(datetime(2025, 5, 2, 16, tzinfo=UTC), datetime(2025, 5, 9, 16, tzinfo=UTC))
    later = issue_window(as_of=AS_OF, last_sent_end=datetime(2025, 5, 5, tzinfo=UTC), lookback_days=7)
    assert later.start == datetime(2025, 5, 5, tzinfo=UTC)
    assert later.end.tzinfo is UTC


def test_an_as_of_before_the_last_sent_end_gives_an_empty_window() -> None:
    window = issue_window(as_of=AS_OF, last_sent_end=AS_OF + timedelta(days=1), lookback_days=7)
    assert window.start == window.end


def test_a_naive_as_of_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        issue_window(as_of=datetime(2025, 5, 9), last_sent_end=None, lookback_days=7)


def test_issue_id_is_the_iso_week_of_the_windows_last_moment_in_the_edition_time_zone() -> None:
    assert base_issue_id(WINDOW, "Europe/London") == "2025-W19"
    # Sunday 11 May 23:30 London is still week 19; the window end is exclusive.
    sunday = Window(WINDOW.start, datetime(2025, 5, 11, 22, 30, tzinfo=UTC))
    assert base_issue_id(sunday, "Europe/London") == "2025-W19"
    monday_london = Window(WINDOW.start, datetime(2025, 5, 11, 23, 30, tzinfo=UTC))
    assert base_issue_id(monday_london, "Europe/London") == "2025-W20"
    assert base_issue_id(monday_london, "UTC") == "2025-W19"
    # ISO years: 29 December 2025 is in 2026-W01.
    assert base_issue_id(Window(WINDOW.start, datetime(2025, 12, 30, tzinfo=UTC)), "UTC") == "2026-W01"


def test_a_rerun_in_the_same_week_gives_the_same_id() -> None:
    monday = issue_window(as_of=datetime(2025, 5, 5, 9, tzinfo=UTC), last_sent_end=None, lookback_days=7)
    friday = issue_window(as_of=AS_OF, last_sent_end=None, lookback_days=7)
    assert base_issue_id(monday, "Europe/London") == base_issue_id(friday, "Europe/London")


# ---------------------------------------------------------------------------------------------- selection


def test_selection_keeps_entries_inside_the_half_open_window_and_leaves_out_sent_ones() -> None:
    entries = [
        entry("before", WINDOW.start - timedelta(seconds=1)),
        entry("start", WINDOW.start),
        entry("inside", at(6)),
        entry("end", WINDOW.end),
        entry("sent", at(7)),
    ]
    chosen = select_entries(entries, WINDOW, exclude_ids=frozenset({"sent"}))
    assert [e.id for e in chosen] == ["inside", "start"]


def test_duplicate_ids_keep_the_most_recently_updated_whatever_the_order() -> None:
    old = entry("x", at(5), title="Old title")
    new = entry("x", at(5), title="New title", updated=at(6))
    for entries in ([old, new], [new, old]):
        (chosen,) = select_entries(entries, WINDOW, exclude_ids=frozenset())
        assert chosen.title == "New title"


# ---------------------------------------------------------------------------------------------- matching


def test_keywords_match_whole_words_and_phrases_only() -> None:
    assert match_priorities(entry("a", at(5), title="Midwives celebrated"), (START_WELL,))[0].reason == (
        "matched 'midwives'"
    )
    assert match_priorities(entry("b", at(5), title="Midwifery matters"), (START_WELL,)) == ()
    assert match_priorities(
        entry("c", at(5), title="A midwife's day"), (START_WELL,)
    )  # possessive is a word end
    assert match_priorities(entry("d", at(5), summary_text="For young\n   people locally"), (START_WELL,))
    assert match_priorities(entry("e", at(5), summary_text="youngpeople"), (START_WELL,)) == ()


def test_matching_ignores_case_and_curly_apostrophes() -> None:
    (match,) = match_priorities(
        entry("a", at(5), title="CHILDREN\u2019S VACCINATIONS this Easter"), (START_WELL,)
    )
    assert match.reason == "matched 'children's vaccinations'"


def test_title_counts_more_than_tags_and_tags_more_than_summary() -> None:
    title = match_priorities(entry("t", at(5), title="Net zero"), (GROWTH,))[0]
    tags = match_priorities(entry("g", at(5), tags=("net zero",)), (GROWTH,))[0]
    summary = match_priorities(entry("s", at(5), summary_text="net zero"), (GROWTH,))[0]
    assert title.strength > tags.strength > summary.strength > 0


def test_the_category_counts_as_a_tag() -> None:
    community = Priority("Communities", "", None, ("community",))
    assert match_priorities(entry("a", at(5), category="Community"), (community,))


def test_a_priority_with_categories_only_matches_entries_of_those_categories() -> None:
    blog_only = replace(GROWTH, categories=("Blog",))
    assert match_priorities(entry("a", at(5), title="Net zero"), (blog_only,)) == ()
    assert match_priorities(entry("b", at(5), title="Net zero", category="blog"), (blog_only,))


def test_several_priorities_are_strongest_first_with_every_reason_kept() -> None:
    matches = match_priorities(
        entry("a", at(5), title="Sustainable maternity", summary_text="midwives and net zero"),
        (START_WELL, GROWTH),
    )
    assert [m.priority for m in matches] == ["Growth", "Start Well"]
    assert matches[0].reason == "matched 'sustainable', 'net zero'"


def test_a_curated_items_own_priority_counts_most() -> None:
    matches = match_priorities(
        entry("a", at(5), title="Net zero", priority="start well"), (START_WELL, GROWTH)
    )
    assert matches[0].priority == "Start Well"
    assert matches[0].reason == "tagged 'Start Well' by its source"


# ---------------------------------------------------------------------------------------------- highlights


def test_highlights_rank_by_match_strength_then_recency_up_to_the_maximum() -> None:
    entries = [
        entry("weak-new", at(8), summary_text="midwives"),
        entry("strong-old", at(3), title="Midwives and young people"),
        entry("weak-old", at(4), summary_text="midwives"),
        entry("strong-new", at(7), title="Midwives and young people"),
        entry("none", at(8)),
    ]
    issue = compose(entries)
    assert [h.item.entry.id for h in issue.highlights] == ["strong-new", "strong-old", "weak-new"]
    assert all(h.priority == "Start Well" for h in issue.highlights)
    # Every entry stays in its section; the highlights are extra.
    assert {i.entry.id for i in issue.entries} == {e.id for e in entries}


def test_pinned_entries_lead_the_highlights_even_unmatched_and_past_the_maximum() -> None:
    entries = [entry(str(i), at(3 + i), title="Midwives") for i in range(5)]
    entries.append(entry("plain", at(4)))
    entries.append(entry("curated", at(4), pinned=True))
    issue = compose(entries, draft=Draft(pinned=("plain", "1")))
    ids = [h.item.entry.id for h in issue.highlights]
    assert ids[:3] == ["plain", "1", "curated"]
    assert len(ids) == 3
    assert issue.highlights[0].priority == EDITOR_PICK
    assert issue.highlights[0].reason == "pinned by the editor"


def test_the_draft_drops_reorders_retags_and_adds_the_intro() -> None:
    entries = [
        entry("a", at(8), title="Midwives"),
        entry("b", at(7), title="Net zero"),
        entry("c", at(8, 10)),
        entry("gone", at(8)),
    ]
    draft = Draft(
        intro="Hello **all**",
        dropped=("gone",),
        highlight_order=("b",),
        retag=(("a", ("growth",)), ("c", ("Start Well",))),
    )
    issue = compose(entries, draft=draft)
    assert "gone" not in {i.entry.id for i in issue.entries}
    assert [h.item.entry.id for h in issue.highlights] == ["b", "c", "a"]
    by_id = {i.entry.id: i for i in issue.entries}
    assert by_id["a"].priorities == ("Growth",)
    assert by_id["a"].matches[0].reason == "re-tagged by the editor"
    assert issue.intro_markdown == "Hello **all**"
    day = next(g for g in issue.sections[0].groups if g.date == date(2025, 5, 8))
    assert [i.entry.id for i in day.entries] == ["c", "a"]  # newest first


def test_order_puts_named_entries_first_within_their_group() -> None:
    entries = [entry("new", at(8, 12)), entry("old", at(8, 8))]
    issue = compose(entries, draft=Draft(order=("old",)))
    assert [i.entry.id for i in issue.sections[0].groups[0].entries] == ["old", "new"]


def test_the_day_order_leaves_the_highlights_alone() -> None:
    # Both in the highlights and in one day: swapping them in their day keeps the highlights' order.
    both = [
        entry("strong", at(8, 12), title="Midwives and net zero"),
        entry("weak", at(8, 8), title="Midwives"),
    ]
    issue = compose(both, draft=Draft(order=("weak", "strong")))
    assert [i.entry.id for i in issue.sections[0].groups[0].entries] == ["weak", "strong"]
    assert [h.item.entry.id for h in issue.highlights] == ["strong", "weak"]
    # A crowded issue: an entry placed first in its day does not climb into the highlights.
    crowded = [entry(f"m{i}", at(7, 9 + i), title="Midwives") for i in range(3)]
    crowded.append(entry("below", at(8), summary_text="A word about midwives"))
    issue = compose(crowded, draft=Draft(order=("below",)))
    assert "below" not in {h.item.entry.id for h in issue.highlights}
    assert issue.sections[0].groups[0].entries[0].entry.id == "below"


def test_highlight_order_follows_the_pins_and_leads_the_ranking() -> None:
    entries = [
        entry("pin", at(5), title="Plain"),
        entry("source", at(6), title="Plain too", pinned=True),
        entry("top", at(8), title="Midwives and net zero"),
        entry("mid", at(7), title="Midwives"),
        entry("low", at(6, 10), summary_text="midwives"),
    ]
    settings = replace(SETTINGS, highlights_max=4)
    draft = Draft(pinned=("pin",), highlight_order=("low", "source", "mid"))
    issue = compose(entries, settings, draft)
    # Pinned in the draft, then pinned by the source, then the named ones, then the ranking (cut at 4).
    assert [h.item.entry.id for h in issue.highlights] == ["pin", "source", "low", "mid"]
    # highlight_order does not touch the day groups.
    day6 = next(g for g in issue.sections[0].groups if g.date == date(2025, 5, 6))
    assert [i.entry.id for i in day6.entries] == ["low", "source"]


def test_retag_with_an_unknown_priority_is_an_error_naming_it() -> None:
    with pytest.raises(RenderError, match="'Space'"):
        compose([entry("a", at(5))], draft=Draft(retag=(("a", ("Space",)),)))


def test_an_empty_retag_removes_every_match() -> None:
    issue = compose([entry("a", at(5), title="Midwives")], draft=Draft(retag=(("a", ()),)))
    assert issue.highlights == ()
    assert issue.entries[0].matches == ()


def test_draft_notes_name_ids_that_cannot_apply() -> None:
    entries = [entry("here", at(5)), entry("old", at(1)), entry("sent", at(6))]
    draft = Draft(pinned=("here", "old", "typo"), dropped=("sent",))
    notes = draft_notes(draft, entries, WINDOW, exclude_ids=frozenset({"sent"}))
    assert notes == (
        "draft: entry 'old' is not in this issue's window; its edits were not applied",
        "draft: entry 'sent' was sent in an earlier issue; its edits were not applied",
        "draft: entry 'typo' names no known entry; its edits were not applied",
    )


# ---------------------------------------------------------------------------------------------- grouping


def test_sections_follow_the_configured_order_then_the_rest_alphabetically() -> None:
    assert section_order(["zeta", "Blog", "alpha", "News"], ("News", "Blog", "Missing")) == (
        "News",
        "Blog",
        "alpha",
        "zeta",
    )


def test_day_groups_are_newest_first_with_headings_in_the_edition_time_zone_and_locale() -> None:
    entries = [
        entry("late", datetime(2025, 5, 8, 23, 30, tzinfo=UTC)),  # 00:30 on Friday 9 May in London
        entry("thu", datetime(2025, 5, 8, 12, tzinfo=UTC)),
    ]
    issue = compose(entries)
    (news,) = issue.sections
    assert [(g.label, g.date) for g in news.groups] == [
        ("Friday 9 May 2025", date(2025, 5, 9)),
        ("Thursday 8 May 2025", date(2025, 5, 8)),
    ]
    french = compose(entries, replace(SETTINGS, locale="fr_FR", timezone="UTC"))
    assert [g.label for g in french.sections[0].groups] == ["jeudi 8 mai 2025"]


def test_week_and_none_grouping() -> None:
    entries = [entry("mon", at(5)), entry("sun", at(4)), entry("fri", at(9, 8))]
    weekly = compose(entries, replace(SETTINGS, group_by="week"))
    assert [(g.label, len(g.entries)) for g in weekly.sections[0].groups] == [
        ("Week of Monday 5 May 2025", 2),
        ("Week of Monday 28 April 2025", 1),
    ]
    flat = compose(entries, replace(SETTINGS, group_by="none"))
    (group,) = flat.sections[0].groups
    assert group.label == ""
    assert [i.entry.id for i in group.entries] == ["fri", "mon", "sun"]


def test_entries_without_a_date_get_their_own_group_last() -> None:
    entries = [entry("dated", at(5)), entry("undated", at(8), date_estimated=True)]
    (section,) = compose(entries).sections
    assert [g.label for g in section.groups] == ["Monday 5 May 2025", UNDATED_LABEL]
    assert section.groups[-1].date is None


def test_the_section_cap_counts_what_goes_to_the_web_version() -> None:
    entries = [entry(str(i), at(3 + i % 6, i % 20)) for i in range(12)]
    issue = compose(entries, replace(SETTINGS, section_cap=5))
    assert issue.sections[0].more == 7
    assert sum(len(g.entries) for g in issue.sections[0].groups) == 12  # all kept for the web version
    assert cap_sections(issue, 2).sections[0].more == 10
    assert cap_sections(issue, 9).sections[0].more == 7  # never fewer left out than the config's cap


# ---------------------------------------------------------------------------------------------- the issue


def test_subject_preheader_and_empty_issue() -> None:
    issue = compose([entry("a", at(8), title="Midwives win award")])
    assert issue.subject == "Weekly news: 9 May 2025"
    assert issue.preheader == "1 update this time: Midwives win award"
    empty = compose([])
    assert empty.empty
    assert empty.subject == "Weekly news: no new updates, 9 May 2025"
    assert empty.preheader == "No new updates since Friday 2 May 2025."


def test_a_long_preheader_is_cut_at_a_word() -> None:
    entries = [entry(str(i), at(8), title="Midwives " + "word " * 30) for i in range(3)]
    preheader = compose(entries).preheader
    assert len(preheader) <= 140
    assert preheader.endswith("\u2026")
    assert "  " not in preheader


def test_settings_come_from_the_shipped_config() -> None:
    settings = ComposeSettings.from_config(load_config(REPO / "config.toml"))
    assert settings.categories == ("News", "Blog", "Campaigns and events")
    assert [p.name for p in settings.priorities] == [
        "Start Well",
        "Live Well",
        "Age Well",
        "Growth",
        "Reducing Inequalities",
    ]
    assert settings.highlights_max == 4


def test_date_format_is_a_validated_config_key(tmp_path: Path) -> None:
    from digest.config import parse_config
    from digest.errors import ConfigError

    (tmp_path / "a.xml").write_text("<rss/>")
    base = {"sources": [{"name": "a", "url": "a.xml"}]}
    config = parse_config({**base, "digest": {"date_format": "full"}}, tmp_path / "config.toml")
    assert config.digest.date_format == "full"
    assert parse_config(base, tmp_path / "config.toml").digest.date_format == "EEEE d MMMM y"
    with pytest.raises(ConfigError) as caught:
        parse_config({**base, "digest": {"date_format": "MMMM y"}}, tmp_path / "config.toml")
    assert "digest.date_format: 'MMMM y' is not a date pattern showing the day" in caught.value.problems[0]
    assert "date_format" in (REPO / "config.toml").read_text()
